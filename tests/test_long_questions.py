"""A question too long for the reranker to read whole is answered with a note saying so (it was cut in silence)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline, question_cut_note


class WordPieceScorer(FakeScorer):
    """FakeScorer with the `CrossEncoder`'s tokenizing interface: one word piece per word, a 192-piece window."""

    max_length = 192

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(range(len(t.split()))) for t in texts]

    def pair_ids(self, queries: Sequence[str], passages: Sequence[str]) -> list[tuple[list[int], int]]:
        """The cut `CrossEncoder.pair_ids` makes (``longest_first``), over word counts."""
        room, pairs = self.max_length - 3, []
        for q, p in zip(self.token_ids(queries), self.token_ids(passages), strict=True):
            if len(q) + len(p) > room:
                short = min(len(p) if len(q) > len(p) else len(q), room // 2)
                q, p = (q[:room - short], p[:short]) if len(q) > len(p) else (q[:short], p[:room - short])
            pairs.append(([0, *q, 0, *p, 0], len(q) + 2))
        return pairs


def test_the_note_comes_when_a_pair_cuts_the_question():
    scorer = WordPieceScorer()  # room 189: beside a passage at least as long, the question keeps 189 // 2 = 94 pieces
    words = lambda n: " ".join(["word"] * n)  # noqa: E731
    assert question_cut_note(scorer, words(94)) is None
    note = question_cut_note(scorer, words(95))
    assert note is not None and "95 word pieces" in note and "only its first 94" in note
    assert question_cut_note(scorer, words(95), [words(200)]) == note
    # Beside short passages nothing is cut (106 + 10 <= 189): the first version said so all the same.
    assert question_cut_note(scorer, words(106), [words(10), words(20)]) is None
    assert "only its first 169" in question_cut_note(scorer, words(180), [words(10), words(20)])
    assert question_cut_note(FakeScorer(), words(500)) is None  # a scorer that does not tokenize
    # A passage with no letter or digit never reaches the model (ContentGuard), so it cuts nothing.
    assert question_cut_note(scorer, words(120), [words(6), "... " * 400]) is None
    assert question_cut_note(scorer, words(120), ["... " * 400]) is None


def test_the_note_reads_the_model_inside_the_guard_and_the_batcher():
    """The service wraps the model in a ContentGuard around a micro-batcher and `ask` in a ContentGuard: the first
    version asked the wrapper how it tokenizes, got nothing, and never gave the note outside the tests."""
    from earlyrank.api.batching import BatchingScorer
    from earlyrank.engine.rerank import ContentGuard

    long = " ".join(["word"] * 120)
    batcher = BatchingScorer(WordPieceScorer())
    try:
        for wrapped in (ContentGuard(WordPieceScorer()), ContentGuard(batcher)):
            note = question_cut_note(wrapped, long)
            assert note is not None and "120 word pieces" in note
    finally:
        batcher.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    index = build_tiny_index(tmp_path_factory.mktemp("long-questions"))
    return TestClient(make_app(Pipeline(index, WordPieceScorer(), mode="bm25")))


def test_a_long_question_is_answered_with_the_note_and_a_short_one_without(client):
    long = FRANCE + " " + " ".join(["please"] * 250)
    body = client.post("/v1/answer", json={"query": long}).json()
    assert body["answer"] is not None, body
    assert len(body["warnings"]) == 1 and "word pieces long and the reranker read only" in body["warnings"][0]
    assert client.post("/v1/answer", json={"query": FRANCE}).json()["warnings"] == []
    # 120 words more: beside the tiny corpus's short passages the question is read whole, so no note
    assert client.post("/v1/answer", json={"query": FRANCE + " please" * 120}).json()["warnings"] == []


def test_a_question_in_fullwidth_letters_is_read_as_the_letters_it_stands_for(client):
    """"ｗａｒｒａｎｔｙ" passed the language check once it read compatibility forms, but went to recall and the
    reranker as it was: the cross-encoder's tokenizer reads fullwidth letters as unknown pieces. The pipeline now reads
    every question in NFKC form."""
    from test_api import FRANCE

    plain = client.post("/v1/answer", json={"query": FRANCE}).json()
    wide = FRANCE.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})  # every ASCII letter in its fullwidth form
    assert wide != FRANCE
    body = client.post("/v1/answer", json={"query": wide}).json()
    assert body["warnings"] == [] and body["answer"] is not None
    assert [h["doc_id"] for h in body["hits"]] == [h["doc_id"] for h in plain["hits"]]
    assert body["answer"]["confidence"] == plain["answer"]["confidence"]


@pytest.mark.parametrize("endpoint", ["/v1/rerank", "/v2/rerank"])
def test_the_rerank_endpoints_note_a_long_query_and_read_fullwidth_letters(client, endpoint):
    """/v1/rerank and /v2/rerank cut a long query as /v1/answer does, without a word, and sent fullwidth letters to
    the model as they were."""
    documents = ["Paris is the capital of France.", "Berlin is the capital of Germany."]
    body = {"query": "capital of France " + " ".join(["please"] * 250), "documents": documents}
    if endpoint == "/v2/rerank":
        body["model"] = "earlyrank"
    warnings = client.post(endpoint, json=body).json()["meta"]["warnings"]
    assert len(warnings) == 1 and "read only its first 183" in warnings[0]  # 189 less the 6 words of a document
    plain = client.post(endpoint, json={**body, "query": "capital of France"}).json()
    wide = client.post(endpoint, json={**body, "query": "ｃａｐｉｔａｌ ｏｆ Ｆｒａｎｃｅ"}).json()
    assert "warnings" not in wide["meta"] and wide["results"] == plain["results"]


def test_a_question_whose_nfkc_form_has_no_letter_is_read_as_given(client):
    """A halfwidth sound mark "ﾞ" is a letter, so it passed the content check, but its NFKC form is a combining
    mark: recall ran on the normal form and the ContentGuard refused it, a 500 on /v1/answer and /v1/rerank."""
    from earlyrank.engine.language import reading_form

    assert reading_form(" ﾞ ") == "ﾞ" and reading_form(" ｗａｒ ") == "war"
    assert client.post("/v1/answer", json={"query": "ﾞ"}).status_code == 200
    assert client.post("/v1/rerank", json={"query": "ͺ", "documents": ["a b"]}).status_code == 200


def test_explain_reads_the_question_as_the_answer_does(client):
    """/v1/explain scored "ｗａｒｒａｎｔｙ" as it was sent (0.47 with the bundled model) while /v1/answer read it as
    "warranty" (0.82): the confidence explained was not the one shown."""
    from test_api import FRANCE

    wide = FRANCE.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    answer = client.post("/v1/answer", json={"query": wide}).json()["answer"]
    body = {"document": answer["text"], "num_samples": 20}
    plain = client.post("/v1/explain", json={**body, "query": FRANCE}).json()
    read = client.post("/v1/explain", json={**body, "query": wide}).json()
    assert read["confidence"] == plain["confidence"] == answer["confidence"]
