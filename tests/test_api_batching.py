"""The micro-batcher: concurrent scoring calls merge into bounded batches and score exactly as alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import FakeScorer, LoadedClient
from test_api import build_tiny_index

from earlyrank.api.app import batcher_of, create_app, load_served_pipeline
from earlyrank.api.batching import BatchingScorer, BatchScoringError
from earlyrank.engine.calibration import Calibration
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.rerank import ContentGuard
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.settings import Settings
from earlyrank.engine.stopping import Threshold
from earlyrank.indexes.store import LoadedIndex


class CalibratedFake(FakeScorer):
    """FakeScorer with a non-trivial calibration, scoring alone the way CrossEncoder.score does."""

    calibration = Calibration(scale=2.0, bias=-0.5, method="platt")

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        logits = np.array([self.logit(query, p) for p in passages], dtype=np.float64)
        return ScoredPairs(logits, self.calibration.confidence(logits))


REQUESTS = [
    ("capital of France", ["Paris is the capital of France", "Berlin is a capital"]),
    ("which animals hunt mice", ["cats hunt mice", "owls hunt mice too", "tea is brewed"]),
    ("how do plants make sugar", ["plants make sugar by photosynthesis"]),
    ("what causes tides", ["the moon causes the tides", "rivers flow", "coffee has caffeine", "volcanoes"]),
]


def score_concurrently(scorer, requests) -> list[ScoredPairs]:
    results: list[ScoredPairs | None] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def work(i: int) -> None:
        start.wait()
        results[i] = scorer.score(*requests[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def test_concurrent_calls_run_as_one_batch_and_score_as_alone():
    model = CalibratedFake()
    total = sum(len(p) for _, p in REQUESTS)
    batcher = BatchingScorer(model, max_wait_ms=2000, max_pairs=total)  # full batch: flushes at once
    try:
        started = time.monotonic()
        batched = score_concurrently(batcher, REQUESTS)
        assert time.monotonic() - started < 1.5
    finally:
        batcher.close()
    assert len(model.batches) == 1 and len(set(model.batches[0])) == len(REQUESTS)
    for (query, passages), got in zip(REQUESTS, batched, strict=True):
        alone = model.score(query, passages)
        np.testing.assert_allclose(got.logits, alone.logits, atol=1e-5)
        np.testing.assert_allclose(got.confidences, alone.confidences, atol=1e-5)
    assert not np.allclose(batched[0].confidences, 1 / (1 + np.exp(-batched[0].logits)))  # calibrated
    assert (batcher.batches, batcher.pairs) == (1, total)


def test_batches_never_exceed_max_pairs_and_an_oversized_call_goes_alone_and_whole():
    model = FakeScorer()
    requests = [("q one", ["a", "b", "c"]), ("q two", ["d", "e", "f"]), ("q big", list("ghijkl"))]
    batcher = BatchingScorer(model, max_wait_ms=100, max_pairs=4)
    try:
        results = score_concurrently(batcher, requests)
    finally:
        batcher.close()
    sizes = sorted(len(b) for b in model.batches)
    assert sizes == [3, 3, 6]
    assert [b for b in model.batches if len(b) == 6] == [["q big"] * 6]
    assert [len(r.logits) for r in results] == [3, 3, 6]


def test_a_lone_call_waits_no_longer_than_the_bound():
    model = FakeScorer()
    batcher = BatchingScorer(model, max_wait_ms=50, max_pairs=64)
    try:
        started = time.monotonic()
        result = batcher.score("capital", ["capital city"])
        assert 0.04 <= time.monotonic() - started < 1.0
    finally:
        batcher.close()
    assert result.logits.tolist() == [-1.0]


def test_a_model_failure_reaches_every_caller_and_the_batcher_survives():
    class Flaky(FakeScorer):
        fail = True

        def logits(self, queries, passages):
            if self.fail:
                raise RuntimeError("out of memory")
            return super().logits(queries, passages)
    model = Flaky()
    batcher = BatchingScorer(model, max_wait_ms=500, max_pairs=3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            batcher.score("q", ["a"])
        except BatchScoringError as e:
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    try:
        assert len(errors) == 3 and all("out of memory" in str(e.__cause__) for e in errors)
        model.fail = False
        assert batcher.score("q", ["q"]).logits.tolist() == [-1.0]
    finally:
        batcher.close()


def test_empty_calls_skip_the_model_and_a_closed_batcher_refuses_work():
    model = FakeScorer()
    batcher = BatchingScorer(model, max_wait_ms=1)
    assert batcher.score("q", []).logits.shape == (0,) and model.batches == []
    batcher.close()
    batcher.close()  # idempotent
    with pytest.raises(BatchScoringError, match="closed"):
        batcher.score("q", ["a"])
    with pytest.raises(ValueError, match="max_pairs >= 1"):
        BatchingScorer(model, max_pairs=0)


# --- through the app -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("batching"))


def test_concurrent_rerank_requests_share_batches_and_match_scoring_alone(tiny_index):
    model = CalibratedFake()
    total = sum(len(p) for _, p in REQUESTS)
    batcher = BatchingScorer(model, max_wait_ms=2000, max_pairs=total)
    settings = Settings(mode="bm25", max_batch_pairs=total, batching=True)
    app = create_app(settings, pipeline_factory=lambda _: Pipeline(tiny_index, batcher, mode="bm25"))
    bodies: list[dict | None] = [None] * len(REQUESTS)
    with LoadedClient(app) as client:
        start = threading.Barrier(len(REQUESTS))

        def work(i: int) -> None:
            start.wait()
            query, docs = REQUESTS[i]
            bodies[i] = client.post("/v1/rerank", json={"query": query, "documents": docs}).json()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(REQUESTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert "earlyrank_batch_queue_depth 0.0" in client.get("/metrics").text
    assert len(model.batches) < len(REQUESTS) and max(len(set(b)) for b in model.batches) > 1
    for (query, docs), body in zip(REQUESTS, bodies, strict=True):
        assert body is not None
        alone = model.score(query, docs).confidences
        got = {r["index"]: r["relevance_score"] for r in body["results"]}
        np.testing.assert_allclose([got[i] for i in range(len(docs))], alone, atol=1e-5)
    with pytest.raises(BatchScoringError, match="closed"):  # the lifespan's end stopped the batcher
        batcher.score("q", ["a"])


def test_the_served_pipeline_keeps_the_tuned_operating_point_behind_a_batcher(tiny_index, monkeypatch):
    tuned = Pipeline(tiny_index, FakeScorer(), Threshold(tau=0.8, chunk=4, depth=50), "bm25", 50, 0.25)
    calls = []

    def fake_load(index_dir, model_dir=None, mode="hybrid", depth=100, backend=None):
        calls.append((index_dir, model_dir, mode, depth, backend))
        return tuned
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline", fake_load)
    settings = Settings(mode="bm25", depth=50, batch_wait_ms=1, max_batch_pairs=8, backend="torch-fp32",
                        batching=True)
    served = load_served_pipeline(settings)
    batcher = batcher_of(served)
    try:
        assert calls == [(settings.index_path, None, "bm25", 50, "torch-fp32")]
        assert isinstance(served.scorer, ContentGuard) and served.scorer.scorer is batcher
        assert isinstance(batcher, BatchingScorer) and batcher.model is tuned.scorer
        assert (batcher.max_pairs, served.policy, served.blend, served.depth) == (8, tuned.policy, 0.25, 50)
        assert served.ask("What is the capital of France?").answer.id == "d3"
        # A passage with no letter or digit never reaches the model: confidence 0, last.
        scored = served.scorer.score("capital of France", ["...", "Paris is the capital of France"])
        assert scored.confidences.tolist()[0] == 0.0 and scored.confidences[1] > 0.5
        assert tuned.scorer.batches[-1] == ["capital of France"]
    finally:
        batcher.close()


@pytest.mark.slow
def test_the_real_cross_encoder_scores_the_same_batched_with_strangers():
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.model_files import DEFAULT_MODEL

    if not (DEFAULT_MODEL / "config.json").is_file():
        pytest.skip(f"{DEFAULT_MODEL}: no trained model yet")
    model = CrossEncoder.load(backend="torch-fp32")  # bf16 logits move a little with their batch-mates
    total = sum(len(p) for _, p in REQUESTS)
    batcher = BatchingScorer(model, max_wait_ms=2000, max_pairs=total)
    try:
        batched = score_concurrently(batcher, REQUESTS)
    finally:
        batcher.close()
    assert batcher.batches == 1
    for (query, passages), got in zip(REQUESTS, batched, strict=True):
        alone = model.score(query, passages)  # other batch-mates, other padding: the mask must hide it
        np.testing.assert_allclose(got.confidences, alone.confidences, atol=1e-5)
        np.testing.assert_allclose(got.logits, alone.logits, atol=1e-4)


def test_the_served_pipeline_keeps_the_learned_fusion(tiny_index, monkeypatch):
    """The served pipeline once rebuilt itself from a few fields and dropped the fusion stored with the model."""
    from earlyrank.engine.fusion import Fusion
    from earlyrank.engine.stopping import BoundStop

    fusion, stop = Fusion((1.0, 2.0, 0.0, 0.5, 0.1), -1.0, 4.0), BoundStop(k=3, margin=0.5, depth=50)
    tuned = Pipeline(tiny_index, FakeScorer(), Threshold(tau=0.8, chunk=4, depth=50), "bm25", 50, 0.25, fusion, stop)
    monkeypatch.setattr("earlyrank.engine.pipeline.load_pipeline", lambda *args, **kwargs: tuned)
    for batching in (False, True):
        served = load_served_pipeline(Settings(batching=batching, batch_wait_ms=1))
        try:
            assert (served.fusion, served.fusion_stop, served.policy, served.blend) == (fusion, stop, tuned.policy,
                                                                                        0.25)
        finally:
            batcher = batcher_of(served)
            if batcher is not None:
                batcher.close()
