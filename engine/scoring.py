"""What the rerank loop needs from a scorer: `PairScorer.score(query, passages) -> ScoredPairs`.

The cross-encoder, the API's micro-batcher, offline replay and the tests' fakes all implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ScoredPairs:
    """Raw logits and calibrated confidences for a list of pairs, in the order given."""

    logits: np.ndarray
    confidences: np.ndarray


class PairScorer(Protocol):
    """Anything that scores (query, passage) pairs: the cross-encoder, the API's batcher, replay, test fakes."""

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        """Logits and calibrated confidences of `passages` for `query`, one each, in the order given."""
