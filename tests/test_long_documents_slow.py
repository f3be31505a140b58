"""A long document over /v1/rerank with the real cross-encoder: where the answer sits must not matter."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api import build_tiny_index, make_app

from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.pipeline import Pipeline

pytestmark = pytest.mark.slow

FILLER = [f"The committee met on day {i} and discussed the budget, the schedule and the catering at length."
          for i in range(16)]
ANSWER = "Paris is the capital and largest city of France."


def test_an_answer_after_sixteen_filler_sentences_scores_as_it_does_first(tmp_path):
    """Issue 19: over /v1/rerank an answer after about 1,900 characters of filler scored 0.001, first 0.846."""
    app = make_app(Pipeline(build_tiny_index(tmp_path), CrossEncoder.load(), mode="bm25"), max_document_chars=10_000)
    first, late = " ".join([ANSWER, *FILLER]), " ".join([*FILLER, ANSWER])
    assert len(late) > 1_500
    with TestClient(app) as client:
        body = client.post("/v1/rerank", json={"query": "What is the capital of France?",
                                               "documents": [first, late]}).json()
    scores = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert scores[0] > 0.5 and abs(scores[0] - scores[1]) <= 0.1, scores


def five_thousand_words_with_the_answer_near_the_end() -> tuple[str, int]:
    """A 5,000-word document of varied filler with ANSWER at word 4,500; and the word it starts at."""
    sentences = [f"On day {i} the committee discussed item {i % 7} of the budget, the schedule and the catering "
                 f"at length." for i in range(1, 278)]  # 18 words each
    before = " ".join(sentences[:250])
    text = " ".join([before, ANSWER, *sentences[250:], "The meeting closed at noon."])
    return text, len(before.split())


def test_a_fact_near_the_end_of_a_five_thousand_word_document_is_found_and_read(tmp_path):
    """Issue 19: indexed whole, the document was read in its first two windows and the fact at word ~4,500
    scored 0.001; indexed as passages, the passage holding it is found and scores as a short text would."""
    from earlyrank.engine.model_files import DEFAULT_MODEL
    from earlyrank.indexes.passages import PassageParams, Splitter
    from earlyrank.indexes.store import build_index, load_index
    from earlyrank.indexes.types import Document

    text, at = five_thousand_words_with_the_answer_near_the_end()
    assert len(text.split()) == 5_000 and at == 4_500
    docs = [Document("minutes", text, "Committee minutes"), Document("cats", "Cats purr and hunt mice.", "Cats")]
    scorer = CrossEncoder.load()
    splitter = Splitter(PassageParams(), DEFAULT_MODEL / "tokenizer.json")
    confidence = {}
    for name, passages in (("split", splitter), ("whole", None)):
        index = load_index(build_index(docs, tmp_path / name, dense=False, progress=False, passages=passages))
        answer = Pipeline(index, scorer, mode="bm25").ask("What is the capital of France?")
        assert answer.answer is not None and answer.answer_passage is not None
        assert answer.answer_passage.doc_id == "minutes" and ANSWER in answer.answer.text
        confidence[name] = answer.confidence
    assert confidence["split"] >= 0.5 and confidence["whole"] < 0.1, confidence


def test_the_bundled_cross_encoder_says_when_a_question_is_cut():
    """The note reads the real model's tokenizer and window (192: a question keeps 94 word pieces), through the
    ContentGuard `earlyrank ask` and the service put around it; the cut it names is the one `pair_ids` makes."""
    from earlyrank.engine.pipeline import question_cut_note
    from earlyrank.engine.rerank import ContentGuard

    scorer = CrossEncoder.load()
    assert question_cut_note(ContentGuard(scorer), "How long is the warranty of the coffee machine?") is None
    long = "How long is the warranty of the coffee machine? " * 12
    note = question_cut_note(ContentGuard(scorer), long)
    assert note is not None and "only its first 94" in note
    assert question_cut_note(ContentGuard(scorer), long, ["warranty " * 300]) == note
    (ids, passage_start), = scorer.pair_ids([long], ["warranty " * 300])
    assert passage_start - 2 == 94  # [CLS] + 94 question pieces + [SEP]
