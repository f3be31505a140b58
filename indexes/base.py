"""The recall interface: anything with ``search(query, k) -> list[Hit]``."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from earlyrank.indexes.types import Hit


class Retriever(Protocol):
    """First-stage recall: ``search(query, k)`` returns up to `k` hits, best first, ranked from 1."""

    def search(self, query: str, k: int) -> list[Hit]:
        """Up to `k` hits for `query`, best first; ValueError if `k` is not a positive integer."""


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties broken by lower index, so results are stable."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < scores.shape[0]:
        # Take every index tied with the k-th score, so the tie-break below sees all of them.
        kth = np.partition(scores, -k)[-k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(scores.shape[0])
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def check_k(k: int) -> None:
    """ValueError unless `k` is a positive integer (a float such as 5.0 is refused too)."""
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
