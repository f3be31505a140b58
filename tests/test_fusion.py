"""The learned fusion: features, the bound, BoundStop, and the fused rerank loop (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from earlyrank.engine.fused_rerank import rerank_fused
from earlyrank.engine.fusion import FEATURES, CandidateSignals, Fusion
from earlyrank.engine.stopping import BoundStop, StopReason
from earlyrank.indexes.types import Hit


def signals(n: int, seed: int = 0) -> CandidateSignals:
    rng = np.random.default_rng(seed)
    return CandidateSignals(rng.uniform(0, 1, n), rng.uniform(0, 20, n), np.arange(1, n + 1, dtype=float))


def test_static_features_by_hand():
    s = CandidateSignals(np.array([0.5, 0.8]), np.array([4.0, 0.0]), np.array([1.0, 3.0]))
    # cosine, cosine - best cosine, bm25 / best bm25, 1 / log2(1 + rank)
    assert s.features() == pytest.approx(np.array([[0.5, -0.3, 1.0, 1.0], [0.8, 0.0, 0.0, 0.5]]))
    none = CandidateSignals(np.array([0.1]), np.array([0.0]), np.array([1.0]))
    assert none.features()[0, 2] == 0.0  # no query term anywhere: no division by zero


def test_unequal_signal_lengths_are_refused():
    with pytest.raises(ValueError, match="signal lengths differ"):
        CandidateSignals(np.zeros(2), np.zeros(3), np.ones(2))


def test_log_odds_probability_and_bound_by_hand():
    fusion = Fusion((2.0, 1.0, 0.0, 0.5, 0.0), intercept=-1.0, logit_high=3.0)
    s = CandidateSignals(np.array([0.5]), np.array([4.0]), np.array([1.0]))
    static = fusion.static_log_odds(s)  # -1 + 0.5 * 1 + 0.5 * 1
    assert static == pytest.approx([0.0])
    assert fusion.log_odds(static, np.array([1.5])) == pytest.approx([3.0])
    assert fusion.upper_bound(static) == pytest.approx([6.0])
    assert Fusion.probability(np.array([0.0])) == pytest.approx([0.5])


def test_a_fusion_round_trips_and_a_foreign_one_is_refused(tmp_path):
    fusion = Fusion((1.0, 2.0, 3.0, 4.0, 5.0), 0.5, 7.0)
    assert Fusion.from_dict(fusion.as_dict()) == fusion
    bad = tmp_path / "fusion.json"
    bad.write_text('{"fusion": {"features": ["logit"], "weights": [1], "intercept": 0, "logit_high": 1}}')
    with pytest.raises(ValueError, match="fusion.json.*refit"):
        Fusion.load(bad)
    with pytest.raises(ValueError, match=f"need {len(FEATURES)} weights"):
        Fusion((1.0,), 0.0, 0.0)


def test_bound_stop_decisions():
    policy = BoundStop(k=2, margin=0.0, first_chunk=2, depth=10)
    first = policy.decide(np.zeros(0), np.array([5.0, 4.0, 3.0]))
    assert not first.stop and first.next_chunk == 2
    assert policy.decide(np.array([4.5, 4.0]), np.array([3.9])).reason == StopReason.BOUNDED
    more = policy.decide(np.array([4.5, 3.0]), np.array([3.9, 1.0]))
    assert not more.stop and more.next_chunk == 2  # chunks double: 2 scored, 2 more
    assert BoundStop(k=2, margin=1.0).decide(np.array([4.5, 3.0]), np.array([3.9])).stop  # within the margin
    assert policy.decide(np.array([1.0, 0.0]), np.zeros(0)).reason == StopReason.EXHAUSTED
    with pytest.raises(ValueError, match="k >= 1"):
        BoundStop(k=0)


class LogitTable:
    """Scores passages (here, their keys) by a fixed table; counts the pairs asked for."""

    def __init__(self, logits: dict[str, float]):
        self.logits = logits
        self.asked: list[str] = []

    def score(self, query, passages):
        from earlyrank.engine.scoring import ScoredPairs

        self.asked.extend(passages)
        values = np.array([self.logits[p] for p in passages])
        return ScoredPairs(values, Fusion.probability(values))


@pytest.mark.parametrize("seed", range(5))
def test_an_exact_bound_gives_the_full_reranks_top_k_for_fewer_pairs(seed):
    n = 40
    rng = np.random.default_rng(seed)
    s = signals(n, seed)
    keys = [f"d{i}" for i in range(n)]
    logits = rng.normal(0, 0.5, n)  # recall's signals spread the candidates wider than the logit can
    fusion = Fusion((1.0, 6.0, 0.0, 1.0, 0.5), -2.0, float(logits.max()))
    hits = [Hit(k, 0.0, r, {}) for r, k in enumerate(keys, 1)]
    table = dict(zip(keys, logits, strict=True))
    full = rerank_fused("q", hits, keys, s, LogitTable(table), fusion, BoundStop(k=100, depth=n))
    scorer = LogitTable(table)
    early = rerank_fused("q", hits, keys, s, scorer, fusion, BoundStop(k=3, depth=n))
    assert full.scored == n and not full.stopped_early
    assert [h.doc_id for h in early.hits[:3]] == [h.doc_id for h in full.hits[:3]]
    assert early.scored == len(scorer.asked) < n
    fused = fusion.log_odds(fusion.static_log_odds(s), logits)
    assert [h.doc_id for h in full.hits] == [keys[i] for i in np.argsort(-fused, kind="stable")]
    top = full.hits[0].stage_scores
    assert top["confidence"] == pytest.approx(Fusion.probability(np.array([fused.max()]))[0])
    assert full.hits[0].score == top["confidence"] and "ce_confidence" in top


def test_unscored_candidates_follow_and_mismatched_lengths_are_refused():
    s = signals(5)
    keys = [f"d{i}" for i in range(5)]
    hits = [Hit(k, 0.0, r, {}) for r, k in enumerate(keys, 1)]
    fusion = Fusion((1.0, 0.0, 0.0, 0.0, 0.0), 0.0, 100.0)  # a huge bound: only the depth cap stops it
    result = rerank_fused("q", hits, keys, s, LogitTable(dict.fromkeys(keys, 0.0)), fusion,
                          BoundStop(k=1, first_chunk=2, depth=2))
    assert result.scored == 2 and result.reason == StopReason.MAX_DEPTH
    assert [h.score for h in result.hits[2:]] == [-1.0] * 3 and len(result.hits) == 5
    with pytest.raises(ValueError, match="5 candidates, 4 passages"):
        rerank_fused("q", hits, keys[:4], s, LogitTable({}), fusion, BoundStop())


def test_a_contentless_passage_comes_last_in_the_fused_ranking_too():
    from earlyrank.engine.rerank import NO_CONTENT_LOGIT, NO_CONTENT_SCORE

    keys = ["real", "empty", "other"]
    hits = [Hit(k, 0.0, r, {}) for r, k in enumerate(keys, 1)]
    s = CandidateSignals(np.array([0.9, 0.8, 0.1]), np.zeros(3), np.arange(1, 4, dtype=float))
    table = LogitTable({"real": 1.0, "empty": NO_CONTENT_LOGIT, "other": 0.0})
    result = rerank_fused("q", hits, keys, s, table, Fusion((1.0, 1.0, 0, 0, 0), 0.0, 5.0),
                          BoundStop(k=1, first_chunk=2, depth=2))
    assert [h.doc_id for h in result.hits] == ["real", "other", "empty"]  # below the unscored "other"
    assert result.hits[-1].score == NO_CONTENT_SCORE and result.hits[1].score == -1.0


def test_a_negative_logit_weight_is_refused_since_the_bound_assumes_it():
    with pytest.raises(ValueError, match="logit's weight must be >= 0"):
        Fusion((-1.0, 0.0, 0.0, 0.0, 0.0), 0.0, 1.0)


def test_a_fused_model_over_a_bm25_only_index_falls_back_to_the_blend(tmp_path, monkeypatch, caplog):
    """Every request once failed with a 422 blaming the client's mode; now the pipeline loads without fusion."""
    import json
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from conftest import FakeScorer
    from test_api import build_tiny_index

    from earlyrank.engine import cross_encoder
    from earlyrank.engine.model_files import FUSION
    from earlyrank.engine.pipeline import load_fusion, load_pipeline

    index = build_tiny_index(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / FUSION).write_text(json.dumps({"fusion": Fusion((1.0, 1.0, 0, 0, 0), 0.0, 5.0).as_dict()}))
    monkeypatch.setattr(cross_encoder.CrossEncoder, "load", classmethod(lambda cls, *a, **k: FakeScorer()))
    pipeline = load_pipeline(index.path, model, mode="bm25")
    assert pipeline.fusion is None and "needs an index with both BM25 and dense parts" in caplog.text
    assert pipeline.ask("What is the capital of France?").answer is not None
    (model / FUSION).write_text(json.dumps({"fusion": Fusion((1.0, 1.0, 0, 0, 0), 0.0, 5.0).as_dict(),
                                            "stopping": {"k": 0}}))
    with pytest.raises(ValueError, match="fusion.json: its stopping rule"):
        load_fusion(model)
