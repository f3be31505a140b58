"""Metadata filters, worked out by hand: which documents a filter matches, and recall that applies it before
its top k (so k matching hits come back whenever k exist), through BM25, dense (exact, faiss's selector, and
HNSW's fallback), hybrid, the pipeline, the API and the CLI.

The tiny corpus gets two fields: `topic` (animals d1 d2 d10, places d3 d4 d11, science d5 d6 d9, food d7 d8
d12) and `country` (d3 "fr", d4 "de", d11 ["fr", "de"], the rivers of Paris and Berlin). BM25 for "capital of
France and Paris" ranks d3 (6.15), d4 (1.75), d11 (1.63) and nothing else; for "What is the capital of
France?" d3, then d4.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import TINY, FakeScorer
from fastapi.testclient import TestClient
from test_api import FRANCE, make_app
from typer.testing import CliRunner

from earlyrank.cli import app as cli
from earlyrank.engine.datasets import load_corpus
from earlyrank.engine.pipeline import Pipeline
from earlyrank.indexes import dense as dense_module
from earlyrank.indexes.dense import DenseIndex, DenseParams
from earlyrank.indexes.filters import FilterError, MetadataFilter, MetadataIndex
from earlyrank.indexes.hybrid import FusionParams, HybridRetriever
from earlyrank.indexes.store import LoadedIndex, build_index, load_index
from earlyrank.indexes.types import Document, Hit

TOPIC = {"d1": "animals", "d2": "animals", "d10": "animals", "d3": "places", "d4": "places", "d11": "places",
         "d5": "science", "d6": "science", "d9": "science", "d7": "food", "d8": "food", "d12": "food"}
COUNTRY = {"d3": "fr", "d4": "de", "d11": ["fr", "de"]}
PARIS = "capital of France and Paris"
runner = CliRunner()


def tagged_docs() -> list[Document]:
    return [dataclasses.replace(d, metadata={"topic": TOPIC[d.id]} | ({"country": COUNTRY[d.id]}
                                                                      if d.id in COUNTRY else {}))
            for d in load_corpus(TINY / "corpus.jsonl")]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> LoadedIndex:
    out = build_index(tagged_docs(), tmp_path_factory.mktemp("filters") / "idx", dense=False, progress=False)
    return load_index(out)


def ids(hits: Sequence[Hit]) -> list[str]:
    return [h.doc_id for h in hits]


# --- what a filter matches ------------------------------------------------------------------------------

def test_equality_is_by_json_type_and_a_documents_list_matches_by_any_item():
    docs = [Document("a", "x", metadata={"n": 2, "flag": True, "tags": ["red", "blue"], "o": {"k": 1}}),
            Document("b", "x", metadata={"n": 2.0, "flag": 1, "tags": "red", "o": None}),
            Document("c", "x", metadata={"n": "2", "flag": "true"}),
            Document("d", "x")]
    found = MetadataIndex(docs)
    assert found.allowed({"n": 2}).tolist() == [0, 1]  # 2 equals 2.0, not "2"
    assert found.allowed({"n": "2"}).tolist() == [2]
    assert found.allowed({"flag": True}).tolist() == [0]  # true is not 1 (in Python, True == 1)
    assert found.allowed({"flag": 1}).tolist() == [1]
    assert found.allowed({"tags": "blue"}).tolist() == [0]
    assert found.allowed({"tags": ["red", "green"]}).tolist() == [0, 1]  # a list in the filter: any of
    assert found.allowed({"o": None}).tolist() == [1]  # null matches null, not a missing field or an object
    assert found.allowed({"tags": "red", "n": 2.0, "flag": 1}).tolist() == [1]  # every field must match
    assert found.allowed({"colour": "red"}).tolist() == []  # a field no document has matches nothing
    assert found.allowed({}) is None and found.allowed(None) is None  # no condition: every document


@pytest.mark.parametrize("spec, message", [
    ("billing", "must be an object of field names to values, got a string"),
    ({"topic": {"is": "food"}}, "field 'topic': a value cannot be an object"),
    ({"topic": []}, "field 'topic': an empty list matches nothing"),
    ({"topic": ["food", ["places"]]}, "field 'topic': a list inside a list"),
    ({"year": float("nan")}, "field 'year': nan equals nothing"),
    ({"year": (2020, 2021)}, "field 'year': a value must be a string, number, boolean or null"),
])
def test_a_bad_filter_names_the_field_and_the_problem(spec, message):
    with pytest.raises(FilterError, match=message.replace("[", r"\[")):
        MetadataFilter.parse(spec)


# --- recall applies the filter before its top k ---------------------------------------------------------

def test_bm25_returns_k_matching_hits_where_dropping_from_its_top_k_would_not(index):
    assert ids(index.bm25.search(PARIS, 2)) == ["d3", "d4"]  # unfiltered: d3 does not match country "de"
    allowed = index.metadata.allowed({"country": "de"})
    assert ids(index.bm25.search(PARIS, 2, allowed)) == ["d4", "d11"]
    assert ids(index.bm25.search(PARIS, 10, index.metadata.allowed({"topic": "animals"}))) == []  # none scores


def unit(degrees: float) -> list[float]:
    return [np.cos(np.radians(degrees)), np.sin(np.radians(degrees))]


@pytest.mark.parametrize("kind, exact_below", [("flat", 4096), ("hnsw", 4096), ("hnsw", 0)],
                         ids=["flat-selector", "hnsw-exact", "hnsw-selector"])
def test_dense_returns_the_k_nearest_matching_vectors(kind, exact_below, monkeypatch):
    monkeypatch.setattr(dense_module, "EXACT_BELOW", exact_below)
    # Documents a..f at 0, 10, ..., 50 degrees: nearest the query (0 degrees) in that order.
    vectors = np.asarray([unit(a) for a in range(0, 60, 10)], dtype=np.float32)
    dense = DenseIndex.from_vectors(list("abcdef"), vectors, DenseParams(index=kind))
    query = np.asarray(unit(0), dtype=np.float32)
    assert ids(dense.search_vector(query, 2)) == ["a", "b"]
    assert ids(dense.search_vector(query, 2, np.array([1, 3, 5]))) == ["b", "d"]
    assert ids(dense.search_vector(query, 5, np.array([2, 4]))) == ["c", "e"]
    assert dense.search_vector(query, 3, np.array([], dtype=np.int64)) == []


def test_hnsw_falls_back_to_exact_search_when_its_walk_finds_too_few(monkeypatch):
    monkeypatch.setattr(dense_module, "EXACT_BELOW", 0)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    dense = DenseIndex.from_vectors([str(i) for i in range(3000)], vectors, DenseParams("hnsw", hnsw_ef_search=16))
    allowed = np.arange(0, 3000, 300)  # 10 documents scattered through the graph: the walk meets 2 of them
    expected = allowed[np.argsort(-(vectors[allowed] @ vectors[1]))]
    assert ids(dense.search_vector(vectors[1], 10, allowed)) == [str(i) for i in expected]


class VectorRecall:
    """Dense recall of a fixed query vector (no encoder): the real index behind the retriever interface."""

    def __init__(self, dense: DenseIndex, vector: np.ndarray):
        self.dense, self.vector = dense, vector

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        return self.dense.search_vector(self.vector, k, allowed)


def test_hybrid_filters_every_list_it_fuses(index):
    # Dense ranks in corpus order (d1, d2, d3, ...); BM25 ranks d3, d4, d11. Fused at depth 3 (RRF k=60): d3
    # 1/61 + 1/63, d1 1/61, then d4 and d2 at 1/62 (BM25's list first).
    vectors = np.asarray([unit(5 * i) for i in range(len(index.docs))], dtype=np.float32)
    dense = DenseIndex.from_vectors([d.id for d in index.docs], vectors, DenseParams())
    hybrid = HybridRetriever([index.bm25, VectorRecall(dense, vectors[0])], FusionParams(depth=3))
    assert ids(hybrid.search(PARIS, 3)) == ["d3", "d1", "d4"]
    # Country "de": both lists hold d4 then d11, and neither d3 (BM25's best) nor d1 (dense's best).
    assert ids(hybrid.search(PARIS, 3, index.metadata.allowed({"country": "de"}))) == ["d4", "d11"]


# --- the pipeline: the reranker sees only matching passages ---------------------------------------------

class SeenScorer(FakeScorer):
    def score(self, query: str, passages: Sequence[str]):
        self.seen = [*getattr(self, "seen", []), *passages]
        return super().score(query, passages)


def test_the_answer_under_a_filter_that_excludes_the_unfiltered_best(index):
    scorer = SeenScorer()
    pipeline = Pipeline(index, scorer, mode="bm25")
    assert pipeline.ask(FRANCE, 5, sentence_too=False).answer.id == "d3"
    scorer.seen = []
    answer = pipeline.ask(FRANCE, 5, sentence_too=False, filter={"country": "de"})
    assert answer.answer.id == "d4" and ids(answer.hits) == ["d4"]
    assert scorer.seen == [index.doc("d4").full_text]  # d3 never reached the reranker
    assert ids(pipeline.search(PARIS, 2, filter={"country": ["de"]})) == ["d4", "d11"]
    with pytest.raises(FilterError):
        pipeline.search(PARIS, 2, filter={"country": {}})


# --- the API and the CLI --------------------------------------------------------------------------------

@pytest.fixture
def client(index) -> TestClient:
    return TestClient(make_app(Pipeline(index, FakeScorer(), mode="bm25")))


@pytest.mark.parametrize("rerank", [False, True])
def test_search_returns_k_hits_that_all_match(client, rerank):
    body = client.post("/v1/search", json={"query": PARIS, "top_k": 2, "rerank": rerank,
                                           "filter": {"country": "de"}}).json()
    assert sorted(h["doc_id"] for h in body["hits"]) == ["d11", "d4"]


def test_answer_takes_a_filter(client):
    assert client.post("/v1/answer", json={"query": FRANCE}).json()["answer"]["id"] == "d3"
    body = client.post("/v1/answer", json={"query": FRANCE, "filter": {"topic": "places", "country": "de"}}).json()
    assert body["answer"]["id"] == "d4" and [h["doc_id"] for h in body["hits"]] == ["d4"]
    body = client.post("/v1/answer", json={"query": FRANCE, "filter": {"topic": "food"}}).json()
    assert body["answer"] is None and body["hits"] == []


@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer"])
@pytest.mark.parametrize("bad, problem", [
    ("places", "must be an object of field names to values, got a string"),
    (["topic", "places"], "must be an object of field names to values, got a list"),
    ({"topic": {"$eq": "places"}}, "field 'topic': a value cannot be an object"),
    ({"topic": []}, "field 'topic': an empty list matches nothing"),
    ({"topic": [["places"]]}, "field 'topic': a list inside a list"),
])
def test_a_bad_filter_is_a_422_naming_the_field(client, path, bad, problem):
    response = client.post(path, json={"query": FRANCE, "filter": bad})
    assert response.status_code == 422
    body = response.json()
    assert body["error"].startswith(f"filter: {problem}")
    assert body["detail"][0]["loc"] == ["body", "filter"] and body["detail"][0]["type"] == "filter_invalid"


@pytest.fixture(scope="module")
def faq_index(tmp_path_factory):
    """tests/data/formats/faq.jsonl: two "billing" documents (refunds; gift cards, tagged cards and checkout),
    one "delivery" (shipping, id 7b080f678bf45cb2), one "support" (warranty)."""
    out = tmp_path_factory.mktemp("faq") / "idx"
    result = runner.invoke(cli, ["index", str(TINY.parent / "formats" / "faq.jsonl"), "--out", str(out), "--bm25"])
    assert result.exit_code == 0, result.output
    return out


def cli_search(index_dir, *filters: str) -> list[dict]:
    args = ["search", "card within two days warranty", "--index", str(index_dir), "--mode", "bm25", "--json"]
    result = runner.invoke(cli, [*args, *(a for f in filters for a in ("--filter", f))])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_search_filter(faq_index):
    assert [h["metadata"]["category"] for h in cli_search(faq_index)] == ["delivery", "billing", "support", "billing"]
    assert [h["metadata"]["category"] for h in cli_search(faq_index, "category=billing")] == ["billing"] * 2
    assert [h["metadata"]["tags"] for h in cli_search(faq_index, "tags=checkout")] == [["cards", "checkout"]]
    either = ["delivery", "support"]
    assert [h["metadata"]["category"] for h in cli_search(faq_index, "category=support",
                                                          "category=delivery")] == either
    assert [h["metadata"]["category"] for h in cli_search(faq_index, 'category:=["support", "delivery"]')] == either


@pytest.mark.parametrize("option, message", [
    ("category", "--filter 'category': write FIELD=VALUE"),
    ("year:=twenty", "--filter 'year:=twenty': 'twenty' is not JSON"),
    ('category:={"is": "billing"}', "--filter: field 'category': a value cannot be an object"),
    ("category:=[]", "--filter: field 'category': an empty list matches nothing"),
])
def test_cli_refuses_a_bad_filter_in_one_line(faq_index, option, message):
    for command in ("search", "ask"):
        result = runner.invoke(cli, [command, "cards", "--index", str(faq_index), "--filter", option])
        assert result.exit_code == 2 and result.output.startswith(f"error: {message}")
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_cli_ask_filter(index, monkeypatch):
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline",
                        lambda *a, **k: Pipeline(index, FakeScorer(), mode="bm25"))
    result = runner.invoke(cli, ["ask", FRANCE, "--mode", "bm25", "--json", "--filter", "country=de"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["answer"]["id"] == "d4" and [h["doc_id"] for h in answer["hits"]] == ["d4"]


def test_cli_ask_says_when_the_filter_matches_no_document(index, monkeypatch):
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline",
                        lambda *a, **k: Pipeline(index, FakeScorer(), mode="bm25"))
    result = runner.invoke(cli, ["ask", FRANCE, "--mode", "bm25", "--filter", "colour=red"])
    assert result.exit_code == 0, result.output
    assert 'no document matches the filter {"colour": "red"}' in result.output
    # search printed only the table's header for the same filter, with nothing to say why
    searched = runner.invoke(cli, ["search", FRANCE, "--index", str(index.path), "--mode", "bm25", "--filter",
                                   "colour=red"])
    assert searched.exit_code == 0 and 'no document matches the filter {"colour": "red"}' in searched.output
    assert "FIELD:=NUMBER" in searched.output and "passage" not in searched.output  # no table header


def test_cli_json_is_the_services_json(index, monkeypatch):
    """`ask --json` and `search --json` print the bodies /v1/answer and /v1/search return, from the same code: the
    CLI once had its own shape (`warning` and `abstained` where the service has `warnings` and reason
    ``no_confident_answer``, and hits without recall_score, confidence or logit)."""
    from earlyrank.engine.abstention import AnswerGate
    from earlyrank.engine.calibration import Calibration

    gate = AnswerGate.platt(Calibration(1.0, -1.0, "platt"), threshold=0.99)  # withholds every answer here
    pipeline = Pipeline(index, FakeScorer(), mode="bm25", answer_gate=gate)
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline", lambda *a, **k: pipeline)
    client = TestClient(make_app(pipeline))
    for command, path, body in (("ask", "/v1/answer", {"query": PARIS, "top_k": 5}),
                                ("search", "/v1/search", {"query": PARIS, "top_k": 5, "mode": "bm25"})):
        args = [command, PARIS, "--index", str(index.path), "--mode", "bm25", "-k", "5", "--json"]
        printed = runner.invoke(cli, args)
        assert printed.exit_code == 0, printed.output
        served = client.post(path, json=body)
        assert served.status_code == 200, served.text
        ours, theirs = json.loads(printed.output), served.json()
        if command == "ask":
            assert ours.pop("seconds") >= 0 and theirs.pop("seconds") >= 0
            assert ours["answer"] is None and ours["reason"] == "no_confident_answer"
            assert ours["hits"][0]["metadata"] == {"topic": "places", "country": "fr"}
            assert ours == theirs
        else:
            assert ours == theirs["hits"]


def test_a_filter_that_matches_nothing_says_no_candidates_not_exhausted(index):
    """With nothing recalled the response said `exhausted` (every candidate scored), which reads as "looked at
    everything and found no answer" rather than "nothing matched your filter"."""
    client = TestClient(make_app(Pipeline(index, FakeScorer(), mode="bm25")))
    body = client.post("/v1/answer", json={"query": FRANCE, "filter": {"country": "it"}}).json()
    assert (body["answer"], body["hits"], body["scored"], body["reason"]) == (None, [], 0, "no_candidates")
    assert body["stopped_early"] is False
    found = client.post("/v1/answer", json={"query": FRANCE, "filter": {"country": "fr"}}).json()
    assert found["reason"] != "no_candidates" and found["hits"]


def test_the_readmes_python_example_runs_whatever_the_outcome(index, faq_index, monkeypatch, capsys):
    """README's "From Python" example read `answer.sentence.text` whenever the answer was not withheld, so it
    crashed with AttributeError when nothing was recalled (or the top passage had no text)."""
    import re
    from pathlib import Path

    import earlyrank.engine.pipeline as pipeline_module

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"From Python:\n\n```python\n(.*?)```", readme, re.S).group(1)
    from earlyrank.engine.abstention import AnswerGate
    from earlyrank.engine.calibration import Calibration

    withholds = AnswerGate.platt(Calibration(1.0, -1.0, "platt"), threshold=0.999)
    for loaded, gate, expected in ((load_index(faq_index), None, "warranty"),
                                   (index, None, "no answer: no_candidates"),
                                   (load_index(faq_index), withholds, "no answer: no confident answer")):
        monkeypatch.setattr(pipeline_module, "load_pipeline", lambda *a, _i=loaded, _g=gate, **k: Pipeline(
            _i, FakeScorer(), mode="bm25", answer_gate=_g))
        exec(compile(example, "README.md", "exec"), {})
        assert expected in capsys.readouterr().out.lower()


@pytest.mark.parametrize("k", [0, -1, "5", 2.5, None, True])
def test_the_python_api_refuses_a_k_that_is_not_a_positive_integer(index, k):
    """`Pipeline.ask` and `rerank` took any k (0, -1, "5", None all gave every hit; 2.5 with all_passages a
    TypeError after scoring); `search`, the CLI and HTTP already refused them."""
    scorer = FakeScorer()
    pipeline = Pipeline(index, scorer, mode="bm25")
    for call in (pipeline.ask, pipeline.rerank, pipeline.search):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            call(FRANCE, k)
    assert scorer.calls == []  # refused before any pair was scored
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        pipeline.ask(FRANCE, 3, depth=0)


def test_cli_says_when_documents_match_the_filter_but_recall_found_none(index):
    """It said "no document matches the filter" when one did and BM25 only shared no word with it, which sent
    users to debug metadata that was right."""
    searched = runner.invoke(cli, ["search", "xylophone quartet", "--index", str(index.path), "--mode", "bm25",
                                   "--filter", "country=de"])
    assert searched.exit_code == 0, searched.output
    assert '2 indexed passages match the filter {"country": "de"}, but recall found none of them' in searched.output
    assert "no document matches" not in searched.output
