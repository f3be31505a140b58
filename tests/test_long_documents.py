"""Long documents indexed as passages: recall finds a late passage, results come one per document (or every
passage on request) through the pipeline, the API and the CLI, and updates split and delete a document's passages.

`MINUTES` (test_passages) is split at 150 word pieces into passages m1#p0 .. m1#p4; only the last speaks of the
harbour bridge. The dense part is `fake_encode` (test_updates): a bag of hashed words, so a question is nearest
the passage that shares its words.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import make_app
from test_passages import FACT, MINUTES, TOKENIZER
from test_updates import CountingEncoder, assert_bm25_equals_a_fresh_build, fake_encode, tiny_docs
from typer.testing import CliRunner

from earlyrank.cli import app as cli
from earlyrank.engine.evaluation import run_from_hits
from earlyrank.engine.pipeline import Pipeline
from earlyrank.indexes.manifest import MANIFEST
from earlyrank.indexes.passages import PassageParams, Splitter
from earlyrank.indexes.store import IndexStoreError, LoadedIndex, build_index, load_index
from earlyrank.indexes.types import Document, Hit, Passage
from earlyrank.indexes.update import update_index

BRIDGE = "When will the harbour bridge reopen?"
MINUTES_DOC = Document("m1", MINUTES, "Minutes")
NOTE = Document("n1", "A short note on the catering.", "Note")
SPLIT = Splitter(PassageParams(), TOKENIZER)
runner = CliRunner()


def build(tmp_path, docs, splitter: Splitter | None = SPLIT) -> LoadedIndex:
    return load_index(build_index(docs, tmp_path / "idx", progress=False, encoder=fake_encode, passages=splitter))


@pytest.fixture
def index(tmp_path) -> LoadedIndex:
    return build(tmp_path, [*tiny_docs(), MINUTES_DOC, NOTE])


def test_a_late_passage_is_found_by_bm25_and_dense(index):
    assert index.dense is not None and len(index.documents) == 14 and len(index.docs) == 18
    bm25 = index.retriever("bm25").search(BRIDGE, 1)
    dense = index.dense.search_vector(fake_encode([BRIDGE])[0], 1)
    assert [h.doc_id for h in bm25] == [h.doc_id for h in dense] == ["m1#p4"]
    where = index.passage("m1#p4")
    assert (where.doc_id, where.number) == ("m1", 4) and FACT in MINUTES[where.start:where.end]
    assert index.doc("m1#p4").full_text.startswith("Minutes. ")  # each passage is read under its title


def test_short_documents_keep_their_ids_and_rows(tmp_path, index):
    whole = build(tmp_path / "whole", tiny_docs())
    assert [d.id for d in index.docs[:12]] == [d.id for d in whole.docs] == [d.id for d in tiny_docs()]
    assert index.passage("d3") == Passage("d3", 0, 0, len(index.doc("d3").text))
    assert "passages.npy" not in whole.manifest["files"]  # nothing split: each row is a document


def test_search_and_answer_give_one_hit_per_document_unless_asked_for_every_passage(index):
    pipeline = Pipeline(index, FakeScorer(), mode="bm25")
    best = pipeline.search("committee catering", 2)
    assert [h.document_id for h in best] == ["m1", "n1"]  # m1's five passages rank first: recall reads on
    every = pipeline.search("committee catering", 2, all_passages=True)
    assert [h.document_id for h in every] == ["m1", "m1"] and every[0].doc_id != every[1].doc_id
    reranked = pipeline.rerank("committee catering", 3)
    assert len({h.document_id for h in reranked.hits}) == len(reranked.hits) == 2 and reranked.candidates == 6
    assert len(pipeline.rerank("committee catering", 3, all_passages=True).hits) == 3


def test_the_answer_is_the_passage_with_its_place_in_the_document(index):
    answer = Pipeline(index, FakeScorer(), mode="bm25").ask(BRIDGE, 3)
    assert answer.answer is not None and answer.answer.id == "m1#p4" and answer.answer_passage is not None
    where = answer.answer_passage
    assert where.doc_id == "m1" and MINUTES[where.start:where.end] == answer.answer.text
    assert answer.sentence is not None and answer.sentence.text == FACT  # offsets in the passage's text
    assert answer.answer.text[answer.sentence.start:answer.sentence.end] == FACT


def test_the_api_says_which_document_and_where(index):
    client = TestClient(make_app(Pipeline(index, FakeScorer(), mode="bm25")))
    hits = client.post("/v1/search", json={"query": "committee catering", "top_k": 2}).json()["hits"]
    assert [h["doc_id"] for h in hits] == ["m1", "n1"]
    recalled = client.post("/v1/search", json={"query": "committee catering", "top_k": 2, "all_passages": True})
    assert [h["doc_id"] for h in recalled.json()["hits"]] == ["m1", "m1"]
    every = client.post("/v1/search", json={"query": "committee catering", "top_k": 3, "all_passages": True,
                                            "rerank": True}).json()["hits"]
    assert [h["doc_id"] for h in every].count("m1") >= 2
    for h in every:
        text = MINUTES if h["doc_id"] == "m1" else NOTE.text
        assert text[h["start"]:h["end"]] == h["text"]
        assert h["passage_id"] == (f"m1#p{h['passage']}" if h["doc_id"] == "m1" else h["doc_id"])
    why = client.post("/v1/explain", json={"query": BRIDGE, "doc_id": every[0]["passage_id"], "num_samples": 10})
    assert why.status_code == 200, why.text
    body = client.post("/v1/answer", json={"query": BRIDGE}).json()
    answer = body["answer"]
    assert (answer["id"], answer["passage"]) == ("m1", 4) and MINUTES[answer["start"]:answer["end"]] == answer["text"]
    sentence = body["answer_sentence"]
    assert answer["text"][sentence["start"]:sentence["end"]] == FACT


def test_evaluation_scores_a_document_by_its_best_passage():
    hits = [Hit("m1#p3", 3.0, 1, {}, Passage("m1", 3, 0, 1)), Hit("d1", 2.0, 2),
            Hit("m1#p0", 1.0, 3, {}, Passage("m1", 0, 0, 1))]
    assert run_from_hits({"q": hits}) == {"q": {"m1": 3.0, "d1": 2.0}}


def test_the_manifest_keeps_the_sizes_and_the_tokenizer_and_refuses_bad_ones(index):
    entry = index.manifest["passages"]
    assert entry["params"] == {"tokens": 150, "overlap": 1} and entry["tokenizer"] == SPLIT.identity()
    assert {"passage_tokenizer.json", "passages.npy"} <= set(index.manifest["files"])
    assert index.manifest["corpus"]["documents"] == 14 and index.manifest["corpus"]["passages"] == 18
    manifest_path = index.path.resolve() / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["passages"]["params"]["tokens"] = -5
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexStoreError, match="passages parameters are invalid.*rebuild it with"):
        load_index(index.path)


def test_an_added_long_document_is_split_as_a_build_splits_it_and_deleted_whole(tmp_path):
    ferry = Document("m2", MINUTES.replace("harbour bridge", "river ferry"), "Minutes")
    path = build_index(tiny_docs(), tmp_path / "idx", progress=False, encoder=fake_encode, passages=SPLIT)
    added = update_index(path, add=[MINUTES_DOC, ferry], encoder=fake_encode).index
    built = build(tmp_path / "fresh", [*tiny_docs(), MINUTES_DOC, ferry])
    assert [(d.id, d.text) for d in added.docs] == [(d.id, d.text) for d in built.docs]
    assert [h.doc_id for h in added.retriever("bm25").search(BRIDGE, 1)] == ["m1#p4"]
    assert added.dense is not None and added.dense.search_vector(fake_encode([BRIDGE])[0], 1)[0].doc_id == "m1#p4"
    assert_bm25_equals_a_fresh_build(load_index(path))
    encoder = CountingEncoder()
    update_index(path, delete=["m1"], encoder=encoder)
    after = load_index(path)
    assert encoder.texts == []  # m2's passages keep their rows and vectors
    assert [d.id for d in after.docs] == [d.id for d in tiny_docs()] + [f"m2#p{n}" for n in range(5)]
    assert after.dense is not None and after.dense.index.ntotal == 17
    ferry_fact = fake_encode([FACT.replace("harbour bridge", "river ferry")])[0]
    assert after.dense.search_vector(ferry_fact, 1)[0].doc_id == "m2#p4"
    assert all(not h.doc_id.startswith("m1") for h in after.retriever("bm25").search(BRIDGE, 17))
    assert_bm25_equals_a_fresh_build(after)
    update_index(path, delete=["m2"], encoder=fake_encode)
    assert "passages.npy" not in load_index(path).manifest["files"]  # nothing split any more


def test_replacing_a_long_document_with_a_short_one_leaves_one_passage(tmp_path, index):
    update_index(index.path, add=[Document("m1", "The bridge is open again.", "Minutes")], encoder=fake_encode)
    after = load_index(index.path)
    assert [d.id for d in after.docs if d.id.startswith("m1")] == ["m1"] and len(after.docs) == 14
    np.testing.assert_array_equal(after.dense.vectors(np.arange(14)), fake_encode([d.full_text for d in after.docs]))


def test_an_index_without_a_splitter_keeps_added_documents_whole(tmp_path):
    path = build_index(tiny_docs(), tmp_path / "idx", progress=False, encoder=fake_encode)
    after = update_index(path, add=[MINUTES_DOC], encoder=fake_encode).index
    assert "passages" not in after.manifest and after.doc("m1").text == MINUTES and len(after.docs) == 13


def test_the_cli_splits_at_the_size_asked_and_lists_every_passage_on_request(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n"
                              for d in [*tiny_docs(), MINUTES_DOC]))
    out = tmp_path / "idx"
    made = runner.invoke(cli, ["index", str(corpus), "--out", str(out), "--bm25", "--passage-tokens", "250"])
    assert made.exit_code == 0 and "13 documents (15 passages)" in made.output, made.output
    every = runner.invoke(cli, ["search", "committee budget", "-i", str(out), "-m", "bm25", "-k", "2", "--json",
                                "--all-passages"])
    assert [(h["doc_id"], h["passage"]) for h in json.loads(every.output)] == [("m1", 0), ("m1", 1)]
    best = runner.invoke(cli, ["search", "committee budget", "-i", str(out), "-m", "bm25", "-k", "2", "--json"])
    assert [h["doc_id"] for h in json.loads(best.output)] == ["m1"]  # no other document speaks of either
    whole = runner.invoke(cli, ["index", str(corpus), "--out", str(out), "--bm25", "--no-split"])
    assert "13 documents (13 passages)" in whole.output and "passages" not in load_index(out).manifest
    bad = runner.invoke(cli, ["index", str(corpus), "--out", str(out), "--bm25", "--passage-overlap", "-1"])
    assert bad.exit_code == 2 and "overlap=-1" in bad.output
    # Sizes that index nonsense were taken without a word: 1 word piece made hundreds of fragments, 100,000
    # passages the dense encoder cuts at 256; and --no-split silently won over --passage-tokens.
    for size in ("1", "31", "257", "100000"):
        bad = runner.invoke(cli, ["index", str(corpus), "--out", str(out), "--bm25", "--passage-tokens", size])
        assert bad.exit_code == 2 and f"--passage-tokens {size}: give 32 to 256, or 0 to never split" in bad.output
    both = runner.invoke(cli, ["index", str(corpus), "--out", str(out), "--bm25", "--no-split", "--passage-tokens",
                               "200"])
    assert both.exit_code == 2 and "give one of them" in both.output


def test_a_split_index_is_gated_by_the_split_threshold(tmp_path, index):
    """A gate fitted on split indexes too keeps a threshold for them: the same question and top passage (d3,
    Paris: FakeScorer logit 3, answer confidence sigmoid(3) = 0.953) is withheld on an index of whole documents
    (threshold 0.99) and answered on one that splits them (split threshold 0.9)."""
    from test_api import FRANCE

    from earlyrank.engine.abstention import AnswerGate
    from earlyrank.engine.calibration import Calibration

    gate = dataclasses.replace(AnswerGate.platt(Calibration(1.0, 0.0, "platt"), 0.99), split_threshold=0.9)
    whole = build(tmp_path / "whole", [*tiny_docs(), MINUTES_DOC, NOTE], splitter=None)
    assert index.passages.split and not whole.passages.split
    withheld = Pipeline(whole, FakeScorer(), mode="bm25", answer_gate=gate).ask(FRANCE)
    answered = Pipeline(index, FakeScorer(), mode="bm25", answer_gate=gate).ask(FRANCE)
    assert withheld.abstained and withheld.answer_confidence == pytest.approx(0.952574, abs=1e-6)
    assert not answered.abstained and answered.answer.id == "d3"
    assert AnswerGate.from_dict(json.loads(json.dumps(gate.as_dict()))) == gate  # the first format keeps it too


def test_the_hits_table_never_cuts_a_passage_id():
    """A long document id keeps its ``#pN`` in the CLI's table (it used to be cut at 24 characters, so two
    passages of "Jacksonville,_Florida_1" both read "Jacksonville,_Florida_1#")."""
    from earlyrank.cli.common import hits_table

    long_id = "Jacksonville,_Florida_1"
    docs = {f"{long_id}#p{n}": Document(f"{long_id}#p{n}", f"passage {n}", "Jacksonville") for n in (0, 12)}
    table = hits_table([Hit(f"{long_id}#p12", 2.0, 1), Hit(f"{long_id}#p0", 1.0, 2)], docs.__getitem__)
    rows = table.splitlines()
    assert f"{long_id}#p12  Jacksonville. passage 12" in rows[1]
    assert f"{long_id}#p0   Jacksonville. passage 0" in rows[2]
    assert rows[0].index("passage") == rows[1].index("Jacksonville.")  # the header lines up with the widest id


def test_the_hits_table_says_not_scored_instead_of_the_stand_in_score():
    """A reranked passage the early stop left unscored sorts by -1 (-2 with no letter or digit); the table printed
    that as its score, which reads as a relevance. A recall-only hit (no rerank) keeps its recall score."""
    from earlyrank.cli.common import hits_table

    docs = {i: Document(i, f"text {i}") for i in ("a", "b", "c")}
    scored = Hit("a", 0.75, 1, {"recall": 0.03, "recall_rank": 2, "logit": 1.1, "confidence": 0.75})
    unscored = Hit("b", -1.0, 2, {"recall": 0.02, "recall_rank": 3})
    recalled = Hit("c", -1.0, 1, {"bm25": -1.0})  # a recall score that happens to be -1
    rows = hits_table([scored, unscored], docs.__getitem__).splitlines()
    assert "0.7500" in rows[1] and "not scored" in rows[2] and "-1.0000" not in rows[2]
    assert rows[0].index("doc") == rows[2].index("b  ")  # the wider cell keeps the columns lined up
    assert rows[-1].startswith("(not scored: the reranker stopped before it")
    plain = hits_table([recalled], docs.__getitem__).splitlines()
    assert "-1.0000" in plain[1] and len(plain) == 2
    blank = Hit("c", -2.0, 3, {"recall": 0.01, "recall_rank": 1, "logit": -1e4, "confidence": 0.0})  # ContentGuard
    rows = hits_table([scored, unscored, blank], docs.__getitem__).splitlines()
    assert "no text" in rows[3] and "-2.0000" not in rows[3]
    assert rows[-2:] == ["(not scored: the reranker stopped before it, so it keeps its recall order)",
                         "(no text: no letter or digit, so it was not scored and comes last)"]


def test_explaining_a_split_documents_id_names_its_passages(index, monkeypatch):
    """/v1/answer's `answer.id` is the document's id; /v1/explain and `explain --doc` said only "no passage 'm1'"
    (or "no document 'm1'", though m1 is one), leaving the caller to guess the DOCID#pN form."""
    client = TestClient(make_app(Pipeline(index, FakeScorer(), mode="bm25")))
    why = client.post("/v1/explain", json={"query": BRIDGE, "doc_id": "m1", "num_samples": 10})
    assert why.status_code == 404
    assert ("'m1' is a document indexed as 5 passages (m1#p0, m1#p1, ..., m1#p4); give one of their ids"
            in why.json()["error"])
    assert "no passage 'nope' in the index" in index.missing_passage("nope")
    assert index.missing_passage("n1#p0") == "no passage 'n1#p0' in the index"  # n1 is whole: no passages
    result = runner.invoke(cli, ["explain", BRIDGE, "--doc", "m1", "--index", str(index.path)])
    assert result.exit_code == 2 and "'m1' is a document indexed as 5 passages" in result.output
