"""Fit the learned fusion on dev data pooled across domains, measure what each signal adds, choose its stopping.

`earlyrank fit-fusion` scores (or reads from the cache) each data set's dev-split candidates, fits a
scikit-learn `LogisticRegression` on the features of `earlyrank.engine.fusion`, and writes ``fusion.json`` into
the model directory: the weights, the cheapest `BoundStop` setting within 1% of the full fused rerank on dev,
and a report: 5-fold cross-validated dev nDCG@10 of the fusion, of the shipped blend and of each signal alone,
and the drop when each feature is left out. The adoption rule is in docs/experiments/learned-fusion.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.calibration import Calibration
from earlyrank.engine.evaluation import evaluate_run
from earlyrank.engine.fusion import FEATURES, CandidateSignals, Fusion
from earlyrank.engine.model_files import FUSION
from earlyrank.engine.offline import ScoredQuery
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.stopping import BoundStop, blend_score


@dataclass(frozen=True)
class QueryFeatures:
    """One query's candidates (recall order): ids, the feature matrix (candidates, len(FEATURES)), labels."""

    query_id: str
    doc_ids: list[str]
    signals: CandidateSignals
    logits: np.ndarray
    labels: np.ndarray  # the judged grade, 0 where unjudged

    @property
    def matrix(self) -> np.ndarray:
        return np.column_stack([self.logits, self.signals.features()])


def query_features(index, scored: Sequence[ScoredQuery], qrels: dict) -> list[QueryFeatures]:
    """Features of every cached query's candidates, from `index` (its stored vectors and BM25 weights)."""
    from earlyrank.indexes.signals import candidate_scores

    out = []
    for sq in scored:
        ids = [h.doc_id for h in sq.candidates]
        cosine, bm25 = candidate_scores(index, sq.text, ids)
        ranks = np.asarray([h.rank for h in sq.candidates], dtype=np.float64)
        judged = qrels.get(sq.query_id, {})
        out.append(QueryFeatures(sq.query_id, ids, CandidateSignals(cosine, bm25, ranks), sq.logits,
                                 np.asarray([judged.get(d, 0) for d in ids], dtype=np.float64)))
    return out


def fit(sets: Sequence[Sequence[QueryFeatures]], keep: Sequence[str] = FEATURES, logit_high: float | None = None
        ) -> Fusion:
    """Logistic regression of relevance (grade > 0) on the features in `keep` (the others get weight 0),
    each data set weighted equally; standardization is folded back into the weights."""
    from sklearn.linear_model import LogisticRegression

    columns = [FEATURES.index(f) for f in keep]
    xs, ys, ws = [], [], []
    for queries in sets:
        x = np.vstack([q.matrix for q in queries])
        xs.append(x[:, columns])
        ys.append(np.concatenate([q.labels for q in queries]) > 0)
        ws.append(np.full(len(x), 1.0 / len(x)))
    x, y, w = np.vstack(xs), np.concatenate(ys), np.concatenate(ws) * len(np.concatenate(ws))
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / std, y, sample_weight=w)
    coef = model.coef_[0] / std
    weights = np.zeros(len(FEATURES))
    weights[columns] = coef
    intercept = float(model.intercept_[0] - np.sum(coef * mean))
    if logit_high is None:
        logit_high = float(np.max(np.vstack(xs)[:, list(keep).index("logit")])) if "logit" in keep else 0.0
    high = logit_high
    return Fusion(tuple(float(v) for v in weights), intercept, high)


def ranked_run(queries: Sequence[QueryFeatures], scores: Sequence[np.ndarray]) -> dict[str, dict[str, float]]:
    """A run whose order is each query's `scores` (higher first; ties keep recall order)."""
    run = {}
    for q, s in zip(queries, scores, strict=True):
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        run[q.query_id] = {q.doc_ids[i]: float(len(order) - r) for r, i in enumerate(order)}
    return run


def ndcg_per_query(queries: Sequence[QueryFeatures], qrels: dict, scores: Sequence[np.ndarray]) -> dict:
    return evaluate_run(qrels, ranked_run(queries, scores), ("nDCG@10",), per_query=True)["nDCG@10"]


def fused_scores(fusion: Fusion, queries: Sequence[QueryFeatures]) -> list[np.ndarray]:
    return [fusion.log_odds(fusion.static_log_odds(q.signals), q.logits) for q in queries]


def cross_validated(sets: Sequence[Sequence[QueryFeatures]], keep: Sequence[str] = FEATURES, folds: int = 5,
                    seed: int = 0) -> list[list[np.ndarray]]:
    """Each query's fused scores from a fit that did not see it: folds over the queries of every set."""
    rng = np.random.default_rng(seed)
    fold_of = [rng.integers(0, folds, len(queries)) for queries in sets]
    out = [[np.zeros(0)] * len(queries) for queries in sets]
    for k in range(folds):
        train = [[q for q, f in zip(queries, fs, strict=True) if f != k] for queries, fs in zip(sets, fold_of,
                                                                                                 strict=True)]
        fusion = fit(train, keep)
        for s, (queries, fs) in enumerate(zip(sets, fold_of, strict=True)):
            for i, (q, f) in enumerate(zip(queries, fs, strict=True)):
                if f == k:
                    out[s][i] = fused_scores(fusion, [q])[0]
    return out


class LookupScorer:
    """Serves cached logits by passage key (the doc id), for replaying `rerank_fused` in any order."""

    def __init__(self, query: QueryFeatures, calibration: Calibration):
        self.logit_of = dict(zip(query.doc_ids, query.logits, strict=True))
        self.calibration = calibration

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        logits = np.asarray([self.logit_of[p] for p in passages], dtype=np.float64)
        return ScoredPairs(logits, self.calibration.confidence(logits))


def replay_fused(fusion: Fusion, policy: BoundStop, queries: Sequence[QueryFeatures], calibration: Calibration
                 ) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """(run, pairs scored per query) of `rerank_fused` under `policy` over cached logits."""
    from earlyrank.engine.evaluation import run_from_hits
    from earlyrank.engine.fused_rerank import rerank_fused
    from earlyrank.indexes.types import Hit

    results, pairs = {}, []
    for q in queries:
        hits = [Hit(d, 0.0, r, {}) for r, d in enumerate(q.doc_ids, 1)]
        result = rerank_fused("", hits, q.doc_ids, q.signals, LookupScorer(q, calibration), fusion, policy)
        results[q.query_id] = result.hits
        pairs.append(result.scored)
    return run_from_hits(results), np.asarray(pairs)


STOP_GRID = [BoundStop(k, margin, first, 100) for k in (1, 3, 10) for margin in (0.0, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0)
             for first in (2, 4, 8)]


def choose_stopping(fusion: Fusion, sets: Sequence[Sequence[QueryFeatures]], qrels: Sequence[dict],
                    calibration: Calibration, max_loss: float = 0.01) -> dict:
    """The cheapest `BoundStop` whose mean dev nDCG@10 and RR@10 stay within `max_loss` of the full fused
    rerank's (depth set to the caller's at serving time)."""
    def quality(policy: BoundStop) -> tuple[float, float, float]:
        ndcg, rr, pairs = [], [], []
        for queries, judged in zip(sets, qrels, strict=True):
            run, n = replay_fused(fusion, policy, queries, calibration)
            m = evaluate_run({q.query_id: judged[q.query_id] for q in queries}, run, ("nDCG@10", "RR@10"))
            ndcg.append(m["nDCG@10"])
            rr.append(m["RR@10"])
            pairs.append(n.mean())
        return float(np.mean(ndcg)), float(np.mean(rr)), float(np.mean(pairs))

    full = quality(BoundStop(k=100, depth=100))
    rows = [(p, *quality(p)) for p in STOP_GRID]
    ok = [r for r in rows if r[1] >= (1 - max_loss) * full[0] and r[2] >= (1 - max_loss) * full[1]]
    best = min(ok, key=lambda r: (r[3], -r[1]))
    return {"k": best[0].k, "margin": best[0].margin, "first_chunk": best[0].first_chunk,
            "dev_ndcg@10": best[1], "dev_rr@10": best[2], "dev_pairs_per_query": best[3],
            "full": {"dev_ndcg@10": full[0], "dev_rr@10": full[1], "dev_pairs_per_query": full[2]}}


def signal_report(sets: Sequence[Sequence[QueryFeatures]], qrels: Sequence[dict], names: Sequence[str],
                  calibration: Calibration, blend: float) -> dict:
    """Cross-validated dev nDCG@10 per set: the fusion, the shipped blend, each signal alone, and the fusion
    without each feature."""
    def mean_ndcg(scores: list[list[np.ndarray]]) -> dict[str, float]:
        return {name: float(np.mean(list(ndcg_per_query(queries, judged, s).values())))
                for name, queries, judged, s in zip(names, sets, qrels, scores, strict=True)}

    alone = {
        "fusion (cross-validated)": cross_validated(sets),
        "shipped blend": [[blend_score(calibration.confidence(q.logits), q.signals.recall_rank, blend)
                           for q in queries] for queries in sets],
        "logit alone": [[q.logits for q in queries] for queries in sets],
        "cosine alone": [[q.signals.cosine for q in queries] for queries in sets],
        "bm25 alone": [[q.signals.bm25 for q in queries] for queries in sets],
        "recall order": [[-q.signals.recall_rank for q in queries] for queries in sets],
    }
    report = {name: mean_ndcg(scores) for name, scores in alone.items()}
    for feature in FEATURES:
        keep = [f for f in FEATURES if f != feature]
        report[f"fusion without {feature}"] = mean_ndcg(cross_validated(sets, keep))
    return report


def kept_features(report: dict, names: Sequence[str]) -> tuple[str, ...]:
    """The features whose removal lowers the mean cross-validated nDCG@10 (the adoption rule's third point)."""
    def mean(row: str) -> float:
        return float(np.mean([report[row][n] for n in names]))

    full = mean("fusion (cross-validated)")
    return tuple(f for f in FEATURES if mean(f"fusion without {f}") < full)


def write_fusion(model_dir: Path, fusion: Fusion, stopping: dict, report: dict, dev_sets: list[str]) -> Path:
    path = model_dir / FUSION
    path.write_text(json.dumps({"fusion": fusion.as_dict(), "stopping": stopping, "dev_sets": dev_sets,
                                "report": report}, indent=1))
    return path
