"""Passages with no letter or digit ("", "   ", "...") are never sent to the model, rank below every real
passage and are never the answer; a query with no letter or digit is refused (issue 21, item 1).

`ShortIsBest` scores like a model fooled by empty text: the shorter the passage, the higher its logit, so
without the guard the contentless passages would come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import FakeScorer, LoadedClient
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app
from typer.testing import CliRunner

from earlyrank.api.app import create_app
from earlyrank.cli import app as cli
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.rerank import NO_CONTENT_LOGIT, ContentGuard, has_content, rerank
from earlyrank.engine.settings import Settings
from earlyrank.engine.stopping import Threshold
from earlyrank.indexes.store import LoadedIndex
from earlyrank.indexes.types import Document, Hit, Passage

EMPTY = ["", "   ", "..."]
REAL = ["Bananas are yellow and grow in warm countries.", "The stock market closed higher on Friday."]


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("contentless"))


@pytest.fixture
def client(tiny_index) -> TestClient:
    return TestClient(make_app(Pipeline(tiny_index, FakeScorer(), mode="bm25")))


class ShortIsBest(FakeScorer):
    def logit(self, query: str, passage: str) -> float:
        return 2.0 - len(passage) / 10

    def score(self, query: str, passages: Sequence[str]):
        self.seen = [*getattr(self, "seen", []), *passages]
        return super().score(query, passages)


class FixedRecall:
    """An index whose recall returns its documents in the order given, whatever the query; like a `LoadedIndex`
    built without a BM25 part, its `bm25` is None."""

    bm25 = None

    def __init__(self, docs: list[Document]):
        self.docs = {d.id: d for d in docs}
        self.manifest: dict = {"corpus": {"name": "fixed"}}
        self.path = Path("fixed")

    def doc(self, doc_id: str) -> Document:
        return self.docs[doc_id]

    def passage(self, doc_id: str) -> Passage:
        return Passage(doc_id, 0, 0, len(self.docs[doc_id].text))

    def retriever(self, mode: str):
        ids = list(self.docs)

        class Recall:
            def search(self, query: str, k: int) -> list[Hit]:
                return [Hit(d, 1.0 / r, r, {"bm25": 1.0 / r}) for r, d in enumerate(ids[:k], 1)]
        return Recall()


def docs(texts: list[str]) -> list[Document]:
    return [Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]


def test_has_content_means_a_letter_or_digit():
    assert [has_content(t) for t in ["", "   ", "...", "?!", "a", "7", "été", "東京"]] == [
        False, False, False, False, True, True, True, True]


def test_the_guard_keeps_contentless_passages_from_the_model():
    inner = ShortIsBest()
    scored = ContentGuard(inner).score("how tall is mount everest", [*EMPTY, *REAL])
    assert inner.seen == REAL and inner.calls == [2]
    assert scored.logits.tolist()[:3] == [NO_CONTENT_LOGIT] * 3 and scored.confidences.tolist()[:3] == [0.0] * 3
    assert scored.confidences[3] > 0 and ContentGuard(ContentGuard(inner)).scorer is inner
    assert ContentGuard(inner).score("q", EMPTY).confidences.tolist() == [0.0] * 3 and inner.calls == [2]
    with pytest.raises(ValueError, match="no letter or digit"):
        ContentGuard(inner).score("???", REAL)


def test_contentless_candidates_rank_last_even_below_unscored_ones_and_with_a_blend():
    # Recall order: a contentless passage first; a threshold stop leaves the last two unscored.
    texts = ["...", REAL[0], "", REAL[1], "more text here", "and more"]
    hits = [Hit(f"d{i}", 1.0, i + 1) for i in range(len(texts))]
    result = rerank("q", hits, texts, ContentGuard(ShortIsBest()), Threshold(tau=0.999, chunk=4, depth=4),
                    blend=0.5)
    assert result.scored == 4 and result.reason == "max_depth"
    # d1 and d3 scored by the model; d4, d5 unscored (-1); d0 and d2 contentless (-2), last.
    assert [h.doc_id for h in result.hits] == ["d1", "d3", "d4", "d5", "d0", "d2"]
    assert [h.score for h in result.hits[2:]] == [-1.0, -1.0, -2.0, -2.0]
    assert [h.stage_scores["confidence"] for h in result.hits[4:]] == [0.0, 0.0]


def test_rerank_endpoint_puts_the_issue_example_in_the_right_order(tiny_index):
    scorer = ShortIsBest()
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25")))
    body = client.post("/v1/rerank", json={"query": "how tall is mount everest", "documents": [*EMPTY, *REAL]})
    assert body.status_code == 200, body.text
    results = body.json()["results"]
    assert [r["index"] for r in results] == [4, 3, 0, 1, 2]  # the shorter real one first, then the empty
    assert [r["relevance_score"] for r in results[2:]] == [0.0, 0.0, 0.0]
    assert min(r["relevance_score"] for r in results[:2]) > 0 and scorer.seen == REAL


@pytest.fixture
def served(monkeypatch):
    """The served pipeline (`load_served_pipeline`, batching on) over FixedRecall and ShortIsBest."""
    def serve(texts: list[str]) -> TestClient:
        loaded = Pipeline(FixedRecall(docs(texts)), ShortIsBest(), mode="bm25")  # type: ignore[arg-type]
        monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline", lambda *a, **k: loaded)
        return LoadedClient(create_app(Settings(mode="bm25", batching=True, batch_wait_ms=1)))
    return serve


def test_the_served_answer_is_never_a_contentless_passage(served):
    with served(["", "...", REAL[0], "  "]) as client:
        body = client.post("/v1/answer", json={"query": "how tall is mount everest"}).json()
    assert body["answer"]["id"] == "d2"
    assert [h["doc_id"] for h in body["hits"]] == ["d2", "d0", "d1", "d3"]
    assert [h["confidence"] for h in body["hits"][1:]] == [0.0, 0.0, 0.0]
    with served(["", "..."]) as client:
        body = client.post("/v1/answer", json={"query": "how tall is mount everest"}).json()
    assert body["answer"] is None and [h["confidence"] for h in body["hits"]] == [0.0, 0.0]


@pytest.mark.parametrize("path, extra", [
    ("/v1/answer", {}), ("/v1/search", {"rerank": True}), ("/v1/rerank", {"documents": ["a"]}),
    ("/v1/explain", {"document": "Paris"}),
])
@pytest.mark.parametrize("query", ["???", "...", " - "])
def test_a_query_with_no_letter_or_digit_is_a_422_naming_the_query(client, path, extra, query):
    response = client.post(path, json={"query": query, **extra})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "query: must contain at least one letter or digit"
    assert body["error_type"] == "validation_error" and body["detail"][0]["loc"] == ["body", "query"]


def test_cli_refuses_a_contentless_query_and_never_answers_with_a_contentless_passage(monkeypatch):
    runner = CliRunner()
    for command in ("search", "ask"):
        result = runner.invoke(cli, [command, "???", "--mode", "bm25"])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.strip() == "error: the query '???' has no letter or digit; ask a question with words"
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline",
                        lambda *a, **k: Pipeline(FixedRecall(docs(["...", ""])), ShortIsBest(), mode="bm25"))
    result = runner.invoke(cli, ["ask", FRANCE, "--mode", "bm25"])
    assert result.exit_code == 0 and result.output.strip() == "no passage matched the question"
