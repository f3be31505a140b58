from __future__ import annotations

import numpy as np
import pytest

from earlyrank.engine.stopping import FullRerank, RankPrior, ResidualRisk, Threshold, TopKConfident, residual_risk


def c(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_full_rerank_scores_up_to_depth_in_chunks():
    policy = FullRerank(depth=20, chunk=8)
    assert policy.decide(c(), 50).next_chunk == 8
    assert not policy.decide(np.zeros(16), 50).stop
    assert policy.decide(np.zeros(20), 50).reason == "max_depth"
    assert policy.decide(np.zeros(7), 7).reason == "exhausted"


def test_threshold_rule_of_ying_and_huo():
    policy = Threshold(tau=0.8, chunk=5, depth=100)
    first = policy.decide(c(), 30)
    assert (first.stop, first.next_chunk) == (False, 5)
    assert not policy.decide(c(0.1, 0.7, 0.2, 0.3, 0.79), 30).stop
    stop = policy.decide(c(0.1, 0.7, 0.2, 0.3, 0.8), 30)
    assert (stop.stop, stop.reason) == (True, "confident")
    assert policy.decide(c(0.1, 0.2), 2).reason == "exhausted"


def test_topk_waits_for_k_confident():
    policy = TopKConfident(k=2, tau=0.6, chunk=4)
    assert not policy.decide(c(0.9, 0.1, 0.2, 0.3), 20).stop
    assert policy.decide(c(0.9, 0.1, 0.65, 0.3), 20).reason == "confident"


def chunks_scored(policy, total: int) -> list[int]:
    """The chunk sizes a policy asks for when nothing ever makes it confident."""
    sizes, scored = [], 0
    while not (decision := policy.decide(np.zeros(scored), total)).stop:
        sizes.append(decision.next_chunk)
        scored += decision.next_chunk
    return sizes


@pytest.fixture
def prior() -> RankPrior:
    # Relevant passages sit mostly at the top of recall; relevant confidences are high, others low.
    return RankPrior(relevant_at_rank=c(0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01),
                     relevant_confidences=np.sort(c(0.3, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)),
                     other_confidences=np.sort(c(*np.linspace(0.0, 0.4, 18), 0.6, 0.8)))


def test_residual_risk_by_hand(prior):
    # One scored candidate at 0.85 (k=1); ranks 2..3 remain (depth 3).
    # P(rel beats 0.85) = (4 + 1) / (8 + 2) = 0.5; P(other beats 0.85) = (0 + 1) / (20 + 2) = 1/22.
    risk = residual_risk(c(0.85), total=10, depth=3, k=1, prior=prior)
    expected = sum(p * 0.5 + (1 - p) / 22 for p in (0.2, 0.1))
    assert risk == pytest.approx(expected)
    assert residual_risk(c(0.85, 0.1, 0.1), total=10, depth=3, k=1, prior=prior) == 0.0


def test_residual_risk_stops_sooner_when_top_is_confident(prior):
    policy = ResidualRisk(prior=prior, epsilon=0.5, k=1, first_chunk=2, max_chunk=8, depth=10)
    assert policy.decide(c(), 10) .next_chunk == 2
    confident = policy.decide(c(0.99, 0.1), 10)
    unsure = policy.decide(c(0.35, 0.1), 10)
    assert confident.stop and confident.reason == "low_risk"
    assert not unsure.stop and unsure.next_chunk == 2
    assert policy.decide(c(0.35, 0.1, 0.2, 0.3), 10).next_chunk == 4  # chunks grow with what was scored


def test_prior_round_trips(prior):
    again = RankPrior.from_dict(prior.as_dict())
    np.testing.assert_array_equal(again.relevant_at_rank, prior.relevant_at_rank)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="chunk and depth must be positive"):
        Threshold(chunk=0)


def test_blend_makes_deep_candidates_need_more_confidence(prior):
    # Scored: ranks 1 and 2 with confidences 0.6 and 0.2; k=1. Without blend the top score is 0.6.
    plain = residual_risk(c(0.6, 0.2), total=10, depth=4, k=1, prior=prior)
    # blend 0.5: top = 0.5*0.6 + 0.5/log2(2) = 0.8; rank 3 needs (0.8 - 0.5/2) / 0.5 = 1.1 and rank 4
    # (0.8 - 0.5/log2(5)) / 0.5 = 1.17, above any confidence: only the smoothing is left, 1/10 and 1/22.
    blended = residual_risk(c(0.6, 0.2), total=10, depth=4, k=1, prior=prior, blend=0.5)
    expected = (0.1 * 0.1 + 0.9 / 22) + (0.05 * 0.1 + 0.95 / 22)
    assert blended == pytest.approx(expected)
    assert blended < plain
    assert residual_risk(c(0.6), total=10, depth=4, k=1, prior=prior, blend=1.0) == 0.0


def test_no_policy_scores_past_its_depth_cap(prior):
    assert chunks_scored(FullRerank(depth=10, chunk=16), 100) == [10]
    assert chunks_scored(Threshold(tau=0.9, chunk=4, depth=10), 100) == [4, 4, 2]
    assert chunks_scored(TopKConfident(k=2, tau=0.9, chunk=8, depth=10), 100) == [8, 2]
    assert chunks_scored(ResidualRisk(prior=prior, epsilon=0.0, k=1, first_chunk=4, depth=20), 100) == [4, 4, 8, 4]
    assert chunks_scored(FullRerank(depth=100, chunk=16), 30) == [16, 16]  # fewer candidates than the cap
