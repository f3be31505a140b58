"""Fit the answer gate on dev questions and their unanswerable twins, and measure risk against coverage.

An unanswerable twin is a question with its judged passages taken out of its candidates, as if the corpus
lacked them: its top passage is then never right. Over answerable questions and their twins, the top passage's
logit is mapped to the probability that the top passage is right (Platt scaling), and the threshold is the
lowest answer confidence at which the answered questions are right at least `precision` of the time.
Risk-coverage (Geifman & El-Yaniv, NeurIPS 2017): answer the most confident questions first; at each coverage
the risk is the share of answered questions whose answer is wrong; AURC is the mean risk over coverages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earlyrank.engine.abstention import AnswerGate
from earlyrank.engine.calibration import Calibration, fit_platt
from earlyrank.engine.offline import ScoredQuery, replay
from earlyrank.indexes.types import Hit

TWIN = "#unanswerable"


def twin(sq: ScoredQuery, judged: dict[str, int]) -> ScoredQuery:
    """The question with its judged passages removed from its candidates (recall ranks renumbered)."""
    keep = [i for i, h in enumerate(sq.candidates) if judged.get(h.doc_id, 0) <= 0]
    hits = [Hit(sq.candidates[i].doc_id, sq.candidates[i].score, r, sq.candidates[i].stage_scores)
            for r, i in enumerate(keep, 1)]
    return ScoredQuery(sq.query_id + TWIN, sq.text, hits, sq.logits[keep], sq.seconds)


@dataclass(frozen=True)
class Outcomes:
    """Per question (answerable ones, then their twins): the top passage's logit and recall score, whether it is
    right, and whether the question is answerable. Arrays of shape (questions,)."""

    top_logit: np.ndarray
    top_recall: np.ndarray
    right: np.ndarray
    answerable: np.ndarray


def outcomes(scored: Sequence[ScoredQuery], qrels: dict, policy, calibration: Calibration, blend: float
             ) -> Outcomes:
    """Replay `policy` over each question and its twin; what the top passage was and whether it was right."""
    questions = [sq for sq in scored if sq.candidates] + [twin(sq, qrels.get(sq.query_id, {})) for sq in scored]
    questions = [sq for sq in questions if sq.candidates]
    results, _, _ = replay(questions, policy, calibration, blend)
    logits, recall, right, answerable = [], [], [], []
    for sq in questions:
        top = results[sq.query_id][0]
        logits.append(top.logit if top.logit is not None else float(sq.logits[0]))
        recall.append(float(top.stage_scores.get("recall", top.score)))
        answerable.append(not sq.query_id.endswith(TWIN))
        right.append(answerable[-1] and qrels.get(sq.query_id, {}).get(top.doc_id, 0) > 0)
    return Outcomes(np.asarray(logits), np.asarray(recall), np.asarray(right, dtype=float),
                    np.asarray(answerable, dtype=bool))


def threshold_for_precision(confidence: np.ndarray, right: np.ndarray, precision: float) -> float:
    """The lowest threshold whose answered questions (confidence >= it) are right at least `precision` of the
    time; 1.0 (answer nothing) if none is."""
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence = confidence[order]
    hits = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    # A threshold answers every question at or above it, so only cut after the last of tied confidences.
    cut = np.append(sorted_confidence[1:] < sorted_confidence[:-1], True)
    ok = np.nonzero((hits >= precision) & cut)[0]
    return float(sorted_confidence[ok.max()]) if ok.size else 1.0


def fit_gate(dev: Sequence[Outcomes], precision: float = 0.9) -> AnswerGate:
    """Platt scaling of the top logit to P(right), over every dev set pooled, and its threshold for `precision`."""
    logits = np.concatenate([o.top_logit for o in dev])
    right = np.concatenate([o.right for o in dev])
    calibration = fit_platt(logits, right)
    return AnswerGate(calibration, threshold_for_precision(calibration.confidence(logits), right, precision))


def risk_coverage(confidence: np.ndarray, right: np.ndarray) -> dict:
    """AURC, accuracy at 80% and 90% coverage, and the curve (coverage, accuracy) at 20 points."""
    order = np.argsort(-confidence, kind="stable")
    accuracy = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    coverage = np.arange(1, len(order) + 1) / len(order)

    def at(c: float) -> float:
        return float(accuracy[max(0, int(np.ceil(c * len(order))) - 1)])

    points = np.linspace(0.05, 1.0, 20)
    return {"aurc": float(np.mean(1 - accuracy)), "accuracy_at_80": at(0.8), "accuracy_at_90": at(0.9),
            "curve": [[float(c), at(c)] for c in points], "coverage_all": [float(x) for x in coverage[-1:]]}


def at_threshold(gate: AnswerGate, o: Outcomes) -> dict:
    """What the gate does on `o`: the share of answerable questions answered, and the precision of all answers."""
    answered = ~np.array([gate.withholds(c) for c in gate.calibration.confidence(o.top_logit)], dtype=bool)
    return {"answerable_answered": float(answered[o.answerable].mean()) if o.answerable.any() else 0.0,
            "precision": float(o.right[answered].mean()) if answered.any() else 1.0,
            "answered": int(answered.sum()), "questions": len(answered)}
