from __future__ import annotations

import sys
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


class FakeClock:
    """A `time` stand-in whose clock moves only when a pair is scored."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class TimedScorer:
    """Each pair takes `per_pair` seconds on the fake clock; records every chunk's size."""

    def __init__(self, clock: FakeClock, per_pair: float):
        self.clock, self.per_pair, self.calls = clock, per_pair, []

    def score(self, query, passages):
        import numpy as np

        from earlyrank.engine.scoring import ScoredPairs

        self.calls.append(len(passages))
        self.clock.now += self.per_pair * len(passages)
        return ScoredPairs(np.zeros(len(passages)), np.full(len(passages), 0.5))


def test_a_deadline_bounds_the_time_to_about_one_pair_past_it(monkeypatch):
    """A started chunk always finishes: with chunks of 16 at 50 ms a pair, a 300 ms budget once took 800 ms."""
    rerank_module = sys.modules["earlyrank.engine.rerank"]  # the package re-exports the function by this name
    clock = FakeClock()
    monkeypatch.setattr(rerank_module, "time", clock)
    scorer = TimedScorer(clock, per_pair=0.05)
    hits, passages = _candidates(40)
    result = rerank("q", hits, passages, scorer, FullRerank(chunk=16), deadline=clock.now + 0.3)
    assert result.reason == "deadline" and result.stopped_early
    assert scorer.calls[0] == 1  # nothing timed yet: one pair measures the rate
    assert clock.now - 1000.0 <= 0.3 + 0.05 + 1e-9 and result.scored == 6


def test_the_fused_loop_keeps_the_same_budget(monkeypatch):
    import numpy as np

    from earlyrank.engine.fused_rerank import rerank_fused
    from earlyrank.engine.fusion import CandidateSignals, Fusion
    from earlyrank.engine.stopping import BoundStop

    clock = FakeClock()
    monkeypatch.setattr(sys.modules["earlyrank.engine.rerank"], "time", clock)
    monkeypatch.setattr(sys.modules["earlyrank.engine.fused_rerank"], "time", clock)
    scorer = TimedScorer(clock, per_pair=0.05)
    hits, passages = _candidates(40)
    signals = CandidateSignals(np.linspace(1, 0, 40), np.zeros(40), np.arange(1, 41, dtype=float))
    result = rerank_fused("q", hits, passages, signals, scorer, Fusion((1.0, 1.0, 0, 0, 0), 0.0, 50.0),
                          BoundStop(k=1, first_chunk=16, depth=40), deadline=clock.now + 0.3)
    assert result.reason == "deadline" and clock.now - 1000.0 <= 0.35 + 1e-9 and scorer.calls[0] == 1


def test_the_answer_sentence_keeps_to_the_deadline(monkeypatch, tmp_path):
    """Reranking that ends just inside the budget once went on to score every sentence of the answer."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_api import build_tiny_index

    from earlyrank.engine.pipeline import Pipeline

    clock = FakeClock()
    monkeypatch.setattr(sys.modules["earlyrank.engine.rerank"], "time", clock)
    scorer = TimedScorer(clock, per_pair=0.05)
    pipeline = Pipeline(build_tiny_index(tmp_path), scorer, FullRerank(chunk=1), mode="bm25", depth=2)
    answer = pipeline.ask("What is the capital of France?", deadline=clock.now + 0.12)
    assert answer.scored == 2 and answer.reason == "exhausted"  # 0.10 s of the 0.12 s budget
    assert answer.sentence is None and scorer.calls == [1, 1]  # no time left for a sentence pair


class RecordingPolicy:
    """Asks for chunks of 2 and stops once a decision has seen 4 pairs; records how many it saw at each decision."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def decide(self, confidences, total):
        from earlyrank.engine.stopping import Decision, StopReason

        self.seen.append(len(confidences))
        if len(confidences) >= 4:
            return Decision(True, StopReason.LOW_RISK)
        return Decision(False, StopReason.NOT_STOPPED, next_chunk=2)


@pytest.mark.parametrize("fused", [False, True])
def test_a_deadline_never_makes_the_policy_decide_on_part_of_a_chunk(monkeypatch, fused):
    """A deadline timed its first pair alone and then let the policy decide after that one pair: a rule tuned to
    decide after 2 stopped after 1, so any timeout_ms changed the answer (and the gate then withheld it) while
    the response said it was not degraded. Now the deadline only sizes the pieces of a chunk: a roomy deadline
    gives the policy the decisions it gets without one, and one that cuts a chunk stops with reason deadline."""
    import numpy as np

    from earlyrank.engine.fused_rerank import rerank_fused
    from earlyrank.engine.fusion import CandidateSignals, Fusion

    clock = FakeClock()
    monkeypatch.setattr(sys.modules["earlyrank.engine.rerank"], "time", clock)
    monkeypatch.setattr(sys.modules["earlyrank.engine.fused_rerank"], "time", clock)
    hits, passages = _candidates(10)
    signals = CandidateSignals(np.linspace(1, 0, 10), np.zeros(10), np.arange(1, 11, dtype=float))

    def run(deadline):
        policy, scorer = RecordingPolicy(), TimedScorer(clock, per_pair=0.05)
        if fused:
            result = rerank_fused("q", hits, passages, signals, scorer, Fusion((1.0, 1.0, 0, 0, 0), 0.0, 50.0),
                                  policy, deadline=deadline)  # type: ignore[arg-type]
        else:
            result = rerank("q", hits, passages, scorer, policy, deadline=deadline)  # type: ignore[arg-type]
        return policy.seen, scorer.calls, result

    free = run(None)
    roomy = run(clock.now + 60.0)
    assert free[0] == roomy[0] == [0, 2, 4]
    assert roomy[1] == [1, 1, 2]  # the first pair alone to time the rate; the policy still saw whole chunks
    assert (free[2].scored, free[2].reason) == (roomy[2].scored, roomy[2].reason) == (4, "low_risk")
    cut = run(clock.now + 0.17)  # time for 3 pairs and a bit: the second chunk cannot finish
    assert cut[0] == [0, 2] and (cut[2].reason, cut[2].scored) == ("deadline", 3)
