"""Hybrid recall: reciprocal-rank fusion (RRF) of BM25 and dense lists.

``score(d) = sum over lists of 1 / (k + rank(d))`` (Cormack et al., SIGIR 2009); `k` and each list's depth
are settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earlyrank.indexes.base import FilteredRetriever, check_k, search_within
from earlyrank.indexes.types import Hit


@dataclass(frozen=True)
class FusionParams:
    """Reciprocal-rank fusion settings (Cormack et al., SIGIR 2009): the constant `k` in ``1 / (k + rank)`` and how deep
    each list is read. ValueError for k < 0 or depth <= 0."""

    k: int = 60
    depth: int = 100

    def __post_init__(self) -> None:
        if self.k < 0 or self.depth <= 0:
            raise ValueError(f"RRF needs k >= 0 and depth > 0, got k={self.k}, depth={self.depth}")


def rrf(ranked_lists: Sequence[list[Hit]], k: int = 60) -> list[Hit]:
    """Fuse ranked lists; each hit keeps every list's stage scores; ties keep first-seen order."""
    fused: dict[str, float] = {}
    stages: dict[str, dict[str, float]] = {}
    for hits in ranked_lists:
        for hit in hits:
            fused[hit.doc_id] = fused.get(hit.doc_id, 0.0) + 1.0 / (k + hit.rank)
            stages.setdefault(hit.doc_id, {}).update(hit.stage_scores)
    order = sorted(fused, key=lambda d: -fused[d])  # sorted() is stable: ties keep first-seen order
    return [Hit(d, fused[d], r, {**stages[d], "rrf": fused[d]}) for r, d in enumerate(order, 1)]


class HybridRetriever:
    """Recall from several retrievers (BM25 and dense), fused by `rrf`; each hit keeps every list's stage scores."""

    name = "hybrid"

    def __init__(self, retrievers: Sequence[FilteredRetriever], params: FusionParams | None = None):
        self.retrievers = list(retrievers)
        self.params = params or FusionParams()

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The top `k` of the fused lists, each retriever asked for max(depth, k) hits (from the positions
        `allowed` only, if given); ValueError if `k` is not a positive integer."""
        check_k(k)
        depth = max(self.params.depth, k)
        return rrf([search_within(r, query, depth, allowed) for r in self.retrievers], self.params.k)[:k]
