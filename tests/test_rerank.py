from __future__ import annotations

import time

import pytest

from earlyrank.engine.rerank import rerank
from earlyrank.engine.stopping import FullRerank, Threshold
from earlyrank.indexes.types import Hit


def _candidates(n: int) -> tuple[list[Hit], list[str]]:
    hits = [Hit(f"d{i}", 1.0 / i, i, {"bm25": 1.0 / i}) for i in range(1, n + 1)]
    return hits, [f"p{i} passage" for i in range(1, n + 1)]


def test_threshold_stops_after_the_chunk_with_a_confident_candidate(fake_scorer):
    fake_scorer.logits_by_prefix = {"p7 ": 3.0, "p2 ": 1.0}  # sigmoid(3) = 0.95, others sigmoid(-2) = 0.12
    hits, passages = _candidates(20)
    result = rerank("q", hits, passages, fake_scorer, Threshold(tau=0.9, chunk=5))
    assert fake_scorer.calls == [5, 5]
    assert (result.scored, result.candidates, result.stopped_early, result.reason) == (10, 20, True, "confident")
    assert [h.doc_id for h in result.hits[:2]] == ["d7", "d2"]
    # Scored candidates by confidence (ties in recall order), then the unscored in recall order.
    assert [h.doc_id for h in result.hits[2:10]] == ["d1", "d3", "d4", "d5", "d6", "d8", "d9", "d10"]
    assert [h.doc_id for h in result.hits[10:]] == [f"d{i}" for i in range(11, 21)]
    assert [h.rank for h in result.hits] == list(range(1, 21))
    assert result.hits[0].stage_scores["confidence"] == pytest.approx(0.952574, abs=1e-6)
    assert "confidence" not in result.hits[12].stage_scores


def test_full_rerank_scores_everything_and_blend_uses_recall_rank(fake_scorer):
    fake_scorer.logits_by_prefix = {"p3 ": 0.0}  # 0.5 vs 0.12 elsewhere
    hits, passages = _candidates(6)
    result = rerank("q", hits, passages, fake_scorer, FullRerank(depth=100, chunk=4))
    assert (result.scored, result.stopped_early, result.reason) == (6, False, "exhausted")
    assert result.hits[0].doc_id == "d3"
    blended = rerank("q", hits, passages, fake_scorer, FullRerank(depth=100, chunk=4), blend=0.5)
    # d1: 0.5 * 0.119 + 0.5 / log2(2) = 0.56; d3: 0.5 * 0.5 + 0.5 / log2(4) = 0.5
    assert [h.doc_id for h in blended.hits[:2]] == ["d1", "d3"]


def test_deadline_stops_before_the_next_chunk(fake_scorer):
    hits, passages = _candidates(10)
    result = rerank("q", hits, passages, fake_scorer, FullRerank(chunk=2), deadline=time.monotonic() - 1)
    assert (result.scored, result.reason, fake_scorer.calls) == (0, "deadline", [])
    assert [h.doc_id for h in result.hits] == [f"d{i}" for i in range(1, 11)]


def test_mismatched_inputs(fake_scorer):
    hits, passages = _candidates(3)
    with pytest.raises(ValueError, match="3 candidates but 2 passages"):
        rerank("q", hits, passages[:2], fake_scorer, FullRerank())
