from __future__ import annotations

import pytest

from earlyrank.indexes.hybrid import FusionParams, HybridRetriever, rrf
from earlyrank.indexes.types import Hit


class ListRetriever:
    def __init__(self, name: str, ids: list[str]):
        self.name, self.ids = name, ids

    def search(self, query: str, k: int) -> list[Hit]:
        return [Hit(d, 1.0 / r, r, {self.name: 1.0 / r}) for r, d in enumerate(self.ids[:k], 1)]


def test_rrf_by_hand():
    a = ListRetriever("bm25", ["x", "y", "z"]).search("", 3)
    b = ListRetriever("dense", ["y", "w"]).search("", 2)
    fused = rrf([a, b], k=10)
    # y: 1/12 + 1/11 = 0.17424; x: 1/11 = 0.0909; w: 1/12 = 0.0833; z: 1/13 = 0.0769
    assert [h.doc_id for h in fused] == ["y", "x", "w", "z"]
    assert fused[0].score == pytest.approx(1 / 12 + 1 / 11)
    assert fused[0].stage_scores == {"bm25": 0.5, "dense": 1.0, "rrf": pytest.approx(1 / 12 + 1 / 11)}
    assert [h.rank for h in fused] == [1, 2, 3, 4]


def test_hybrid_depth_and_k():
    hybrid = HybridRetriever([ListRetriever("bm25", list("abcdef")), ListRetriever("dense", list("fedcba"))],
                             FusionParams(k=60, depth=2))
    # depth 2: only a, b from the first list and f, e from the second are fused; ties keep first-seen order.
    assert [h.doc_id for h in hybrid.search("q", 2)] == ["a", "f"]
    # k=4 raises the depth to 4: c and d are in both lists (1/63 + 1/64) and now beat a and f (1/61).
    assert [h.doc_id for h in hybrid.search("q", 4)] == ["c", "d", "a", "f"]
    with pytest.raises(ValueError):
        FusionParams(depth=0)
