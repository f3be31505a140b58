"""The HTTP service against the real app: a BM25-only index of the tiny corpus and fake scorers with the real
interface, swapped in through `app.dependency_overrides[get_pipeline]` (or the lifespan's pipeline factory).

FakeScorer's logit is (query words found in the passage) - 2, confidence sigmoid(logit). For "What is the
capital of France?" BM25 recalls d3 (Paris) then d4 (Berlin); d3 scores 3 (0.9526), d4 scores 2 (0.8808).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import TINY, FakeScorer, LoadedClient
from fastapi import FastAPI
from fastapi.testclient import TestClient

from earlyrank.api.app import create_app, get_pipeline
from earlyrank.engine.calibration import sigmoid
from earlyrank.engine.datasets import load_corpus
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.rerank import ContentGuard
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.settings import Settings
from earlyrank.engine.stopping import Threshold
from earlyrank.indexes.store import LoadedIndex, build_index, load_index

FRANCE = "What is the capital of France?"


def build_tiny_index(directory: Path) -> LoadedIndex:
    """A BM25-only index of tests/data/tiny (12 documents), built in `directory`."""
    out = build_index(load_corpus(TINY / "corpus.jsonl"), directory / "idx", dense=False, progress=False,
                      corpus_name="tiny")
    return load_index(out)


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("api"))


def make_app(pipeline: Pipeline, **settings) -> FastAPI:
    """An app whose pipeline is `pipeline`: through the dependency override, so no lifespan is needed, and
    from the lifespan's factory when a test enters one."""
    app = create_app(Settings(**{"mode": "bm25", **settings}), pipeline_factory=lambda _: pipeline)
    app.dependency_overrides[get_pipeline] = lambda: pipeline
    return app


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def client(tiny_index, scorer) -> TestClient:
    return TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25")))


class BlockingScorer(FakeScorer):
    """Holds every scoring call until `release` is set; `entered` counts the calls waiting."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        self.entered.release()
        if not self.release.wait(10):
            raise RuntimeError("test never released the scorer")
        return super().score(query, passages)


class SlowScorer(FakeScorer):
    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        time.sleep(self.delay)
        return super().score(query, passages)


class SlowRecall:
    """An index whose recall takes `delay` seconds (the rest is the real tiny index)."""

    def __init__(self, index: LoadedIndex, delay: float):
        self.index, self.delay = index, delay
        self.manifest, self.path = index.manifest, index.path

    def doc(self, doc_id: str):
        return self.index.doc(doc_id)

    def passage(self, doc_id: str):
        return self.index.passage(doc_id)

    def retriever(self, mode: str):
        outer = self

        class Slow:
            def search(self, query: str, k: int):
                time.sleep(outer.delay)
                return outer.index.retriever(mode).search(query, k)
        return Slow()


# --- answers and searches ---------------------------------------------------------------------------------

def test_answer_returns_best_passage_ranking_and_cost(client, scorer):
    body = client.post("/v1/answer", json={"query": FRANCE, "threshold": 0.99}).json()
    assert body["answer"] == {"id": "d3", "title": "Paris", "confidence": pytest.approx(float(sigmoid(3.0))),
                              "text": "Paris is the capital of France and home to the Eiffel Tower.",
                              "passage": 0, "start": 0, "end": 60}
    assert [h["doc_id"] for h in body["hits"]] == ["d3", "d4"]
    assert [h["confidence"] for h in body["hits"]] == pytest.approx([0.952574, 0.880797], abs=1e-6)
    assert [h["logit"] for h in body["hits"]] == [3.0, 2.0]
    assert (body["scored"], body["candidates"], body["stopped_early"], body["reason"], body["degraded"]) == (
        2, 2, False, "exhausted", False)
    assert body["hits"][0]["stage_scores"]["bm25"] == body["hits"][0]["recall_score"] > 0
    # Two pairs reranked, then the answer passage's one sentence scored for the answer sentence.
    assert body["seconds"] >= 0 and scorer.calls == [2, 1]
    assert body["answer_sentence"] == {"text": "Paris is the capital of France and home to the Eiffel Tower.",
                                       "start": 0, "end": 60, "confidence": pytest.approx(0.952574, abs=1e-6)}


def test_answer_stops_early_under_the_threshold_and_reports_unscored_hits(tiny_index):
    scorer = FakeScorer({"Berlin": 4.0})  # d4 would win (0.982), but d3 (0.953) passes 0.9 first
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), chunk=1, threshold=0.9))
    body = client.post("/v1/answer", json={"query": FRANCE}).json()
    assert (body["answer"]["id"], body["scored"], body["candidates"]) == ("d3", 1, 2)
    assert (body["stopped_early"], body["reason"]) == (True, "confident")
    unscored = body["hits"][1]
    assert (unscored["doc_id"], unscored["confidence"], unscored["logit"], unscored["score"]) == ("d4", None, None, -1)
    assert unscored["recall_rank"] == 2
    full = client.post("/v1/answer", json={"query": FRANCE, "threshold": 0.99}).json()
    assert (full["answer"]["id"], full["scored"], full["reason"]) == ("d4", 2, "exhausted")


def test_without_a_threshold_the_pipelines_own_policy_decides(tiny_index):
    scorer = FakeScorer({"Berlin": 4.0})
    tuned = Pipeline(tiny_index, scorer, Threshold(tau=0.9, chunk=1), mode="bm25")  # as `earlyrank tune` stores
    client = TestClient(make_app(tuned))
    body = client.post("/v1/answer", json={"query": FRANCE}).json()
    assert (body["answer"]["id"], body["scored"], body["reason"]) == ("d3", 1, "confident")
    overridden = client.post("/v1/answer", json={"query": FRANCE, "threshold": 0.99}).json()
    assert (overridden["answer"]["id"], overridden["scored"]) == ("d4", 2)


def test_answer_with_nothing_recalled_is_an_empty_answer(client, scorer):
    body = client.post("/v1/answer", json={"query": "zebra xylophone"}).json()
    assert (body["answer"], body["hits"], body["scored"], body["candidates"]) == (None, [], 0, 0)
    assert scorer.calls == []


def test_max_candidates_and_top_k_bound_the_work_and_the_answer(client, scorer):
    body = client.post("/v1/answer", json={"query": "Which animals hunt mice?", "max_candidates": 2,
                                           "top_k": 1, "threshold": 1.0}).json()
    assert (body["candidates"], body["scored"], len(body["hits"])) == (2, 2, 1)
    assert body["hits"][0]["doc_id"] == "d1" and scorer.calls == [2, 1]  # then the answer sentence


def test_search_recall_only_has_recall_scores_and_no_confidence(client, scorer):
    body = client.post("/v1/search", json={"query": "Which animals hunt mice?", "top_k": 2}).json()
    assert (body["reranked"], body["mode"], body["scored"], body["reason"]) == (False, "bm25", 0, "recall_only")
    assert [h["doc_id"] for h in body["hits"]] == ["d1", "d10"]
    hit = body["hits"][0]
    assert hit["confidence"] is None and hit["logit"] is None
    assert hit["stage_scores"] == {"bm25": hit["recall_score"]} and hit["recall_rank"] == 1
    assert scorer.calls == []


def test_search_with_rerank_has_every_stage_score(client):
    body = client.post("/v1/search", json={"query": "Which animals hunt mice?", "rerank": True,
                                           "threshold": 1.0}).json()
    assert body["reranked"] and (body["scored"], body["candidates"]) == (3, 3)
    assert [h["doc_id"] for h in body["hits"]] == ["d1", "d10", "d2"]
    assert [h["confidence"] for h in body["hits"]] == pytest.approx([0.731059, 0.5, 0.268941], abs=1e-6)
    for hit in body["hits"]:
        assert set(hit["stage_scores"]) == {"bm25", "recall", "recall_rank", "logit", "confidence"}
        assert hit["recall_score"] == hit["stage_scores"]["bm25"]
    assert [h["recall_rank"] for h in body["hits"]] == [1, 2, 3]


# --- request errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body, field", [
    ("/v1/answer", {"query": ""}, "query"),
    ("/v1/answer", {"query": "   "}, "query"),
    ("/v1/answer", {}, "query"),
    ("/v1/answer", {"query": 42}, "query"),
    ("/v1/answer", {"query": "x", "top_k": "3"}, "top_k"),
    ("/v1/answer", {"query": "x", "top_k": 2.5}, "top_k"),  # 2.0 is JSON's integer 2 (test_api_schema.py)
    ("/v1/answer", {"query": "x", "top_k": 0}, "top_k"),
    ("/v1/answer", {"query": "x", "threshold": "0.5"}, "threshold"),
    ("/v1/answer", {"query": "x", "threshold": 1.5}, "threshold"),
    ("/v1/answer", {"query": "x", "timeout_ms": 0}, "timeout_ms"),
    ("/v1/answer", {"query": "x", "mode": "sparse"}, "mode"),
    ("/v1/answer", {"query": "x", "temperature": 1}, "temperature"),
    ("/v1/search", {"query": "x", "rerank": "yes"}, "rerank"),
    ("/v1/search", {"query": "x", "max_candidates": True}, "max_candidates"),
])
def test_invalid_requests_are_422_naming_the_field(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error_type"] == "validation_error"
    assert error["error"].startswith(f"{field}: ")
    assert error["detail"] and error["detail"][0]["loc"][:2] == ["body", field]


@pytest.mark.parametrize("content", ['{"query": "x"', "[1, 2]", "null", "query=x", b'{"query": "\xff"}'])
def test_malformed_or_non_object_json_is_422(client, content):
    response = client.post("/v1/answer", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error_type"] == "validation_error" and response.json()["error"]


def test_limits_from_settings_are_422(tiny_index, scorer):
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), max_query_chars=20, max_documents=5,
                                 depth=5))
    long = client.post("/v1/answer", json={"query": "capital " * 5})
    assert long.status_code == 422 and long.json()["error"] == "query: 40 characters; the limit is 20"
    deep = client.post("/v1/search", json={"query": "capital", "rerank": True, "max_candidates": 6})
    assert deep.status_code == 422 and deep.json()["error"] == "max_candidates: 6; the limit is 5"
    assert scorer.calls == []


def test_a_mode_the_index_lacks_is_422_without_server_paths(client, tiny_index):
    response = client.post("/v1/answer", json={"query": FRANCE, "mode": "dense"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("mode: not available on this server (this index has no dense")
    assert str(tiny_index.path) not in response.text


def test_body_over_the_limit_is_413_by_length_and_by_stream(tiny_index, scorer):
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), max_body_bytes=1000))
    declared = client.post("/v1/answer", json={"query": "x" * 2000})
    assert declared.status_code == 413 and declared.json()["error_type"] == "body_too_large"
    assert "1000-byte limit" in declared.json()["error"]

    def chunks():  # no Content-Length: the size is only known by counting
        yield b'{"query": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'
    streamed = client.post("/v1/answer", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error_type"] == "body_too_large"
    assert client.post("/v1/answer", json={"query": FRANCE}).status_code == 200
    assert scorer.calls == [2, 1]  # only the last request reached the model: its rerank and answer sentence


def test_unknown_paths_and_methods_use_the_error_shape(client):
    missing = client.get("/v2/answer")
    assert missing.status_code == 404
    assert missing.json() == {"error": "/v2/answer: no such endpoint", "error_type": "not_found", "detail": []}
    wrong = client.get("/v1/answer")
    assert wrong.status_code == 405 and wrong.json()["error_type"] == "method_not_allowed"


def test_an_engine_failure_is_a_500_in_the_error_shape(tiny_index):
    class Broken(FakeScorer):
        def score(self, query, passages):
            raise RuntimeError("model exploded")
    client = TestClient(make_app(Pipeline(tiny_index, Broken(), mode="bm25")), raise_server_exceptions=False)
    response = client.post("/v1/answer", json={"query": FRANCE})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); see the server log",
                               "error_type": "internal_error", "detail": []}


def test_a_pipeline_without_a_reranker_can_only_search(tiny_index):
    client = TestClient(make_app(Pipeline(tiny_index, None, mode="bm25")))
    for path, body in (("/v1/answer", {"query": FRANCE}), ("/v1/search", {"query": FRANCE, "rerank": True}),
                       ("/v1/rerank", {"query": FRANCE, "documents": ["a"]})):
        response = client.post(path, json=body)
        assert response.status_code == 503 and response.json()["error"].startswith("no reranker is loaded")
    assert client.post("/v1/search", json={"query": FRANCE}).status_code == 200


# --- backpressure and deadlines -----------------------------------------------------------------------------

def test_more_concurrent_work_than_the_cap_is_429_at_once(tiny_index):
    scorer = BlockingScorer()
    app = make_app(Pipeline(tiny_index, scorer, mode="bm25"), max_concurrent=2, retry_after_seconds=3)
    with TestClient(app) as client:
        results: list[int] = []
        held = [threading.Thread(target=lambda: results.append(
            client.post("/v1/answer", json={"query": FRANCE}).status_code)) for _ in range(2)]
        for t in held:
            t.start()
        try:
            for _ in range(2):
                assert scorer.entered.acquire(timeout=5), "the first two requests never reached the scorer"
            started = time.monotonic()
            refused = client.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
            assert time.monotonic() - started < 1
            assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
            assert refused.json()["error_type"] == "overloaded"
            assert client.get("/health").status_code == 200
            assert "earlyrank_work_in_flight 2.0" in client.get("/metrics").text
        finally:
            scorer.release.set()
            for t in held:
                t.join(10)
        assert results == [200, 200]
        assert client.post("/v1/answer", json={"query": FRANCE}).status_code == 200


def test_a_deadline_mid_rerank_gives_a_degraded_partial_answer(tiny_index):
    scorer = SlowScorer(0.3)  # the deadline passes while the first one-candidate chunk is scored
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), chunk=1))
    body = client.post("/v1/answer", json={"query": FRANCE, "threshold": 0.99, "timeout_ms": 150}).json()
    assert (body["degraded"], body["reason"], body["scored"], body["candidates"]) == (True, "deadline", 1, 2)
    assert body["stopped_early"] and body["answer"]["id"] == "d3"
    assert body["hits"][1]["confidence"] is None


def test_a_deadline_before_any_scoring_is_504(tiny_index, scorer):
    client = TestClient(make_app(Pipeline(SlowRecall(tiny_index, 0.2), scorer, mode="bm25")))
    for path, extra in (("/v1/answer", {}), ("/v1/search", {"rerank": True})):
        response = client.post(path, json={"query": FRANCE, "timeout_ms": 50, **extra})
        assert response.status_code == 504
        assert response.json()["error_type"] == "timeout" and response.json()["error"].startswith("timeout_ms: ")
    assert scorer.calls == []
    recall_only = client.post("/v1/search", json={"query": FRANCE, "timeout_ms": 50})
    assert recall_only.status_code == 200  # nothing to rerank, nothing to time out


# --- lifecycle, info, metrics, page -------------------------------------------------------------------------

def test_health_and_readiness_through_the_lifespan(tiny_index, scorer):
    loads: list[Settings] = []

    def factory(settings: Settings) -> Pipeline:
        loads.append(settings)
        return Pipeline(tiny_index, scorer, mode="bm25")
    app = create_app(Settings(mode="bm25"), pipeline_factory=factory)
    client = LoadedClient(app)
    assert client.get("/health").json() == {"status": "ok"}
    not_loaded = client.get("/ready")
    assert not_loaded.status_code == 503 and not_loaded.json()["error_type"] == "loading"
    assert client.post("/v1/answer", json={"query": FRANCE}).status_code == 503
    with client:
        assert client.get("/ready").json() == {"status": "ready"}
        assert client.post("/v1/answer", json={"query": FRANCE}).json()["answer"]["id"] == "d3"
    assert len(loads) == 1
    draining = client.get("/ready")  # the lifespan has ended: a SIGTERM'd server
    assert draining.status_code == 503 and draining.json()["error"] == "not ready: shutting down"
    assert client.get("/health").status_code == 200


def test_a_failed_load_stops_the_server():
    def factory(settings: Settings) -> Pipeline:
        raise FileNotFoundError("indexes-data/default: no index here")
    with pytest.raises(FileNotFoundError, match="no index here"), TestClient(create_app(Settings(), factory)):
        pass


def test_info_names_the_model_the_index_and_the_settings(client):
    info = client.get("/info").json()
    assert info["model"] == {"name": "FakeScorer"}
    assert info["index"]["documents"] == 12 and info["index"]["corpus"] == "tiny"
    assert set(info["index"]["parts"]) == {"bm25"} and "files" not in info["index"]
    assert info["settings"]["mode"] == "bm25" and info["settings"]["max_body_bytes"] == 1 << 20


def test_info_names_the_model_behind_the_served_wrappers(tiny_index):
    """The served scorer is the model behind a ContentGuard; /info once named the wrapper instead."""
    class NamedScorer(FakeScorer):
        def identity(self) -> dict:
            return {"name": "earlyrank-minilm-ce", "path": "/models/ce"}

    served = Pipeline(tiny_index, ContentGuard(NamedScorer()), mode="bm25")
    app = create_app(Settings(mode="bm25"), lambda settings: served)
    with LoadedClient(app) as client:
        assert client.get("/info").json()["model"] == {"name": "earlyrank-minilm-ce", "path": "/models/ce"}


def test_metrics_count_requests_pairs_and_early_stops(tiny_index):
    scorer = FakeScorer({"Berlin": 4.0})
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), chunk=1, threshold=0.9))
    client.post("/v1/answer", json={"query": FRANCE})  # scores 1 of 2, stops: confident
    client.post("/v1/answer", json={"query": ""})
    text = client.get("/metrics").text
    assert 'earlyrank_requests_total{endpoint="/v1/answer",method="POST",status="200"} 1.0' in text
    assert 'earlyrank_requests_total{endpoint="/v1/answer",method="POST",status="422"} 1.0' in text
    assert 'earlyrank_request_seconds_count{endpoint="/v1/answer"} 2.0' in text
    assert 'earlyrank_pairs_scored_total{endpoint="/v1/answer"} 1.0' in text
    assert 'earlyrank_candidates_total{endpoint="/v1/answer"} 2.0' in text
    assert 'earlyrank_early_stops_total{endpoint="/v1/answer",reason="confident"} 1.0' in text
    assert "earlyrank_batch_queue_depth 0.0" in text


def test_openapi_documents_the_api_but_not_the_page(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/answer", "/v1/search", "/v1/rerank", "/health", "/ready", "/info", "/metrics"} <= set(paths)
    assert "/" not in paths
    assert "ErrorResponse" in str(paths["/v1/answer"]["post"]["responses"]["422"])


def test_the_page_is_plain_html_that_asks_the_answer_endpoint(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<form" in page.text and 'fetch("v1/answer"' in page.text


# --- settings -----------------------------------------------------------------------------------------------

def test_settings_come_from_earlyrank_environment_variables(monkeypatch):
    monkeypatch.setenv("EARLYRANK_PORT", "9001")
    monkeypatch.setenv("EARLYRANK_MODE", "bm25")
    monkeypatch.setenv("EARLYRANK_THRESHOLD", "0.7")
    monkeypatch.setenv("EARLYRANK_MODEL_PATH", "none")
    monkeypatch.setenv("EARLYRANK_THREADS", "2")  # the engine's own variable, not a setting: ignored
    settings = Settings()
    assert (settings.port, settings.mode, settings.threshold, settings.model_path) == (9001, "bm25", 0.7, None)
    assert (settings.max_body_bytes, settings.max_documents, settings.max_concurrent) == (1 << 20, 1000, 4)
    monkeypatch.setenv("EARLYRANK_THRESHOLD", "none")
    assert Settings().threshold is None
    monkeypatch.setenv("EARLYRANK_MODE", "sparse")
    with pytest.raises(ValueError, match="mode"):
        Settings()


def test_settings_refuse_a_default_depth_the_limits_would_refuse():
    with pytest.raises(ValueError, match=r"depth \(100\) is above max_documents \(50\)"):
        Settings(max_documents=50)
    with pytest.raises(ValueError, match="frozen"):
        Settings().port = 1  # type: ignore[misc]


def test_an_answer_withheld_after_a_deadline_cut_says_deadline(tiny_index):
    """With a deadline that cut reranking short, a withheld answer said only no_confident_answer: a client could not
    tell that more time might well give one. The cut is the reason; degraded says so too."""
    from earlyrank.engine.abstention import AnswerGate
    from earlyrank.engine.calibration import Calibration

    gate = AnswerGate.platt(Calibration(1.0, -1.0, "platt"), threshold=0.999)  # withholds every answer
    client = TestClient(make_app(Pipeline(tiny_index, SlowScorer(0.3), mode="bm25", answer_gate=gate), chunk=1))
    cut = client.post("/v1/answer", json={"query": FRANCE, "threshold": 0.99, "timeout_ms": 150}).json()
    assert (cut["answer"], cut["degraded"], cut["reason"]) == (None, True, "deadline")
    whole = client.post("/v1/answer", json={"query": FRANCE, "threshold": 0.99}).json()
    assert (whole["answer"], whole["degraded"], whole["reason"]) == (None, False, "no_confident_answer")


@pytest.mark.parametrize("query", ["🤔", " ?! "])
def test_the_python_api_refuses_a_question_without_a_letter_or_digit_as_the_cli_and_service_do(tiny_index, query):
    """`pipeline.ask("🤔")` answered with no answer and reason low_risk, which the README's example printed as
    "no answer: low_risk"; the CLI and /v1/answer refuse it."""
    pipeline = Pipeline(tiny_index, FakeScorer(), mode="bm25")
    for call in (pipeline.ask, pipeline.search, pipeline.rerank):
        with pytest.raises(ValueError, match="has no letter or digit; ask a question with words"):
            call(query)
