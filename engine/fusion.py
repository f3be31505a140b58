"""The learned final score: the cross-encoder logit combined with the signals recall already has.

For candidate i of a query, the fused log-odds of relevance is linear in its features::

    log_odds[i] = intercept + w_logit * logit[i] + sum_f w_f * feature_f[i]

with the features (all known before any pair is scored, and none needing a model call):

- ``cosine``: the dense cosine of the query and the passage, from the index's stored vectors;
- ``cosine_gap``: ``cosine`` minus the best cosine among the query's candidates;
- ``bm25_rel``: the BM25 score over the best BM25 score among the candidates (0 when no term matches);
- ``recall_rr``: ``1 / log2(1 + recall rank)``.

``sigmoid(log_odds)`` is the relevance probability, fitted (logistic regression) on the dev splits of every
training domain by `earlyrank fit-fusion` (`earlyrank.engine.fusion_training`). Because the score is
monotone in the logit, an unscored candidate can reach at most ``static + w_logit * logit_high``, where
``logit_high`` is the highest logit seen on dev: `BoundStop` stops once no unscored candidate could still
enter the top k.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STATIC_FEATURES = ("cosine", "cosine_gap", "bm25_rel", "recall_rr")
FEATURES = ("logit", *STATIC_FEATURES)


@dataclass(frozen=True)
class CandidateSignals:
    """What recall knows of a query's candidates, each an array of shape (candidates,), in recall order.

    `bm25` is the raw BM25 score (0 where no query term occurs); `cosine` is in [-1, 1]; `recall_rank` starts
    at 1.
    """

    cosine: np.ndarray
    bm25: np.ndarray
    recall_rank: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.cosine) == len(self.bm25) == len(self.recall_rank):
            raise ValueError(f"signal lengths differ: cosine {len(self.cosine)}, bm25 {len(self.bm25)}, "
                             f"recall_rank {len(self.recall_rank)}")

    def features(self) -> np.ndarray:
        """The static features, shape (candidates, 4), in `STATIC_FEATURES` order."""
        cosine = np.asarray(self.cosine, dtype=np.float64)
        bm25 = np.asarray(self.bm25, dtype=np.float64)
        if not cosine.size:
            return np.zeros((0, len(STATIC_FEATURES)))
        top_bm25 = bm25.max()
        bm25_rel = bm25 / top_bm25 if top_bm25 > 0 else np.zeros_like(bm25)
        recall_rr = 1.0 / np.log2(1.0 + np.asarray(self.recall_rank, dtype=np.float64))
        return np.column_stack([cosine, cosine - cosine.max(), bm25_rel, recall_rr])


@dataclass(frozen=True)
class Fusion:
    """Weights of the fused log-odds (`FEATURES` order) and the logit bound used for stopping."""

    weights: tuple[float, ...]
    intercept: float
    logit_high: float

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"need {len(FEATURES)} weights ({', '.join(FEATURES)}), got {len(self.weights)}")
        if self.weights[0] < 0:  # the bound on unscored candidates assumes a higher logit never lowers the score
            raise ValueError(f"the logit's weight must be >= 0, got {self.weights[0]}")

    @property
    def logit_weight(self) -> float:
        return self.weights[0]

    def static_log_odds(self, signals: CandidateSignals) -> np.ndarray:
        """Everything of the log-odds but the logit's term, shape (candidates,)."""
        return self.intercept + signals.features() @ np.asarray(self.weights[1:])

    def log_odds(self, static: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Fused log-odds of candidates whose static part and logit are known (same shapes)."""
        return static + self.logit_weight * np.asarray(logits, dtype=np.float64)

    def upper_bound(self, static: np.ndarray) -> np.ndarray:
        """The highest log-odds an unscored candidate could reach (its logit at most `logit_high`)."""
        return static + max(self.logit_weight, 0.0) * self.logit_high

    @staticmethod
    def probability(log_odds: np.ndarray) -> np.ndarray:
        """The relevance probability in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(log_odds, dtype=np.float64), -500.0, 500.0)))

    def as_dict(self) -> dict:
        return {"features": list(FEATURES), "weights": list(self.weights), "intercept": self.intercept,
                "logit_high": self.logit_high}

    @classmethod
    def from_dict(cls, data: dict) -> Fusion:
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"fusion features {data.get('features')} are not {list(FEATURES)}; refit it with "
                             f"`earlyrank fit-fusion`")
        return cls(tuple(float(w) for w in data["weights"]), float(data["intercept"]), float(data["logit_high"]))

    @classmethod
    def load(cls, path: Path) -> Fusion:
        """Read a fusion.json; ValueError naming the file if it is not one."""
        try:
            return cls.from_dict(json.loads(path.read_text())["fusion"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a fusion written by `earlyrank fit-fusion` ({e}); refit it") from None
