from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from engine.calibration import sigmoid
from engine.reranker import ScoredPairs

TINY = Path(__file__).parent / "data" / "tiny"


@pytest.fixture
def tiny_dir() -> Path:
    return TINY


class FakeScorer:
    """A pair scorer with the real interface: the logit is a fixed number per passage (by its first word),
    or the count of query words found in the passage. Records every call so tests can check the cost."""

    def __init__(self, logits_by_prefix: dict[str, float] | None = None):
        self.logits_by_prefix = logits_by_prefix or {}
        self.calls: list[int] = []

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


@pytest.fixture
def fake_scorer() -> FakeScorer:
    return FakeScorer()
