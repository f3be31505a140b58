from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from earlyrank.engine.calibration import Calibration, sigmoid
from earlyrank.engine.scoring import ScoredPairs

TINY = Path(__file__).parent / "data" / "tiny"


def load_program(relative: str):
    """The repository's program at `relative` (e.g. "benchmarks/report.py"), imported as a module, for tests of
    programs that are not part of the installed package."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_dir() -> Path:
    return TINY


class FakeScorer:
    """A pair scorer with the real interface: the logit is a fixed number per passage (by its first word),
    or the count of query words found in the passage. Records every call so tests can check the cost.

    Also has the batch interface the API's micro-batcher uses: `logits(queries, passages)` (one query per
    pair) and an identity `calibration`, so batched and direct scores agree exactly."""

    calibration = Calibration()

    def __init__(self, logits_by_prefix: dict[str, float] | None = None):
        self.logits_by_prefix = logits_by_prefix or {}
        self.calls: list[int] = []
        self.batches: list[list[str]] = []  # the queries of each `logits` call, one per pair

    def logit(self, query: str, passage: str) -> float:
        for prefix, value in self.logits_by_prefix.items():
            if passage.startswith(prefix):
                return value
        words = set(query.lower().replace("?", "").split())
        return float(sum(w in passage.lower() for w in words)) - 2.0

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        self.calls.append(len(passages))
        logits = np.array([self.logit(query, p) for p in passages], dtype=np.float64)
        return ScoredPairs(logits, sigmoid(logits))

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries for {len(passages)} passages")
        self.batches.append(list(queries))
        return np.array([self.logit(q, p) for q, p in zip(queries, passages, strict=True)], dtype=np.float64)


@pytest.fixture
def fake_scorer() -> FakeScorer:
    return FakeScorer()


class LoadedClient(TestClient):
    """A TestClient whose ``with`` block starts once the app's pipeline has loaded or failed to: the lifespan loads it
    in a thread, and /ready answers 503 loading until then."""

    def __enter__(self) -> LoadedClient:
        super().__enter__()
        deadline = time.monotonic() + 30
        while self.get("/ready").json().get("error_type") == "loading":
            if time.monotonic() > deadline:
                raise TimeoutError("the app was still loading after 30 s")
            time.sleep(0.01)
        return self
