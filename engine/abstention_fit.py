"""Fit the answer gate on dev questions and their unanswerable twins, and measure risk against coverage.

An unanswerable twin is a question with its judged passages taken out of its candidates, as if the corpus
lacked them: its top passage is then never right. Over answerable questions and their twins, a logistic
regression of "the top passage is right" on the top passage's features (`engine.answer_features`) gives the
answer confidence, and the threshold is the lowest answer confidence at which the answered questions are right
at least `precision` of the time. Risk-coverage (Geifman & El-Yaniv, NeurIPS 2017): answer the most confident
questions first; at each coverage the risk is the share of answered questions whose answer is wrong; AURC is the
mean risk over coverages. The adoption rule is in docs/experiments/abstention.md (fourth attempt): the mean of the
dev sets' AURC below the recall score's, and on no dev set significantly worse by a paired bootstrap over
questions (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993; `scipy.stats.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from earlyrank.engine.abstention import AnswerGate
from earlyrank.engine.answer_features import ANSWER_FEATURES, question_features
from earlyrank.engine.calibration import Calibration, sigmoid
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
    """Per question (answerable ones, then their twins): the top passage's features (rows, `ANSWER_FEATURES`
    order), whether it is right, whether the question is answerable, and the question's id (a twin's is its
    question's, so the two fall in one fold)."""

    features: np.ndarray
    right: np.ndarray
    answerable: np.ndarray
    question: np.ndarray

    @property
    def top_logit(self) -> np.ndarray:
        return self.features[:, ANSWER_FEATURES.index("top_logit")]

    @property
    def top_recall(self) -> np.ndarray:
        return self.features[:, ANSWER_FEATURES.index("recall_score")]

    def gate_input(self, gate: AnswerGate) -> np.ndarray:
        """What `gate` reads of each question: the top logit, or every feature."""
        return self.top_logit if gate.top_logit_only else self.features

    def subset(self, mask: np.ndarray) -> Outcomes:
        return Outcomes(self.features[mask], self.right[mask], self.answerable[mask], self.question[mask])


def outcomes(scored: Sequence[ScoredQuery], qrels: dict, policy, calibration: Calibration, blend: float, index
             ) -> Outcomes:
    """Replay `policy` over each question and its twin; the features of the top passage (signals from `index`)
    and whether it was right."""
    questions = [sq for sq in scored if sq.candidates] + [twin(sq, qrels.get(sq.query_id, {})) for sq in scored]
    questions = [sq for sq in questions if sq.candidates]
    results, _, _ = replay(questions, policy, calibration, blend)
    rows, right, answerable = [], [], []
    for sq in questions:
        ranked = results[sq.query_id]
        features = question_features(index, sq.text, ranked)
        if features is None:
            raise ValueError(f"question {sq.query_id}: the stopping rule scored no passage; no answer to judge")
        rows.append(features)
        answerable.append(not sq.query_id.endswith(TWIN))
        right.append(answerable[-1] and qrels.get(sq.query_id, {}).get(ranked[0].doc_id, 0) > 0)
    ids = [sq.query_id.removesuffix(TWIN) for sq in questions]
    return Outcomes(np.asarray(rows).reshape(-1, len(ANSWER_FEATURES)), np.asarray(right, dtype=float),
                    np.asarray(answerable, dtype=bool), np.asarray(ids, dtype=object))


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


def fit_logistic(dev: Sequence[Outcomes]) -> tuple[np.ndarray, float, np.ndarray]:
    """Logistic regression (scikit-learn, C = 1) of `right` on the standardized features, every set weighted
    equally: (weights on the raw features, intercept, weights on the standardized features)."""
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([o.features for o in dev])
    y = np.concatenate([o.right for o in dev]) > 0
    w = np.concatenate([np.full(len(o.right), 1.0 / len(o.right)) for o in dev])
    if len(set(y)) < 2:
        raise ValueError("the dev questions are all right or all wrong: nothing to tell apart")
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / std, y, sample_weight=w * len(w))
    standardized = model.coef_[0]
    weights = standardized / std
    return weights, float(model.intercept_[0] - np.sum(weights * mean)), standardized


def cross_validated(dev: Sequence[Outcomes], folds: int = 5, seed: int = 0,
                    groups: Sequence[str] | None = None) -> list[np.ndarray]:
    """Each dev question's answer confidence from a fit that saw neither it nor its twin: `folds` folds over the
    questions of every set, a twin in its question's fold. Sets of one `groups` name (default: every set its own)
    ask the same questions, e.g. of one data set over a whole-passage and a split index: a question falls in one
    fold in all of them."""
    rng = np.random.default_rng(seed)
    groups = list(groups) if groups is not None else [str(i) for i in range(len(dev))]
    if len(groups) != len(dev):
        raise ValueError(f"{len(groups)} group names for {len(dev)} dev sets")
    fold: dict[tuple[str, str], int] = {}
    fold_of = []
    for o, group in zip(dev, groups, strict=True):
        ids = [q for q in sorted(set(o.question)) if (group, q) not in fold]
        fold.update(zip(((group, q) for q in ids), rng.integers(0, folds, len(ids)).tolist(), strict=True))
        fold_of.append(np.asarray([fold[group, q] for q in o.question]))
    out = [np.zeros(len(o.right)) for o in dev]
    for k in range(folds):
        weights, intercept, _ = fit_logistic([o.subset(f != k) for o, f in zip(dev, fold_of, strict=True)])
        for o, f, confidence in zip(dev, fold_of, out, strict=True):
            held = f == k
            confidence[held] = sigmoid(intercept + o.features[held] @ weights)
    return out


def aurc_gap_interval(confidence: np.ndarray, baseline: np.ndarray, o: Outcomes, resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """The 90% interval of AURC(`confidence`) - AURC(`baseline`) over `o`'s rows (one confidence per row, each array
    shape (rows,)), by a paired percentile bootstrap that resamples questions, a twin drawn with its question
    (`o.question`); scipy.stats.bootstrap (Efron and Tibshirani, "An Introduction to the Bootstrap", 1993).

    Each end is a one-sided 95% bound: a low end above 0 means `confidence` is significantly worse (p < 0.05), a
    high end below 0 that it is significantly better. Returns (low, high)."""
    from scipy.stats import bootstrap

    _, cluster = np.unique(o.question.astype(str), return_inverse=True)
    rows = [np.flatnonzero(cluster == c) for c in range(cluster.max() + 1)]

    def gap(clusters: np.ndarray) -> float:
        picked = np.concatenate([rows[int(c)] for c in clusters])
        right = o.right[picked]
        return risk_coverage(confidence[picked], right)["aurc"] - risk_coverage(baseline[picked], right)["aurc"]

    result = bootstrap((np.arange(len(rows)),), gap, n_resamples=resamples, vectorized=False,
                       method="percentile", confidence_level=0.90, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def aurc_gap_lower_bound(confidence: np.ndarray, baseline: np.ndarray, o: Outcomes, resamples: int = 2000,
                         seed: int = 0) -> float:
    """The one-sided 95% lower bound of AURC(`confidence`) - AURC(`baseline`): `aurc_gap_interval`'s low end. A
    bound above 0 means `confidence` is significantly worse (p < 0.05)."""
    return aurc_gap_interval(confidence, baseline, o, resamples, seed)[0]


def gate_adopted(sets: dict[str, dict]) -> bool:
    """The adoption rule over per-set reports (`aurc_cross_validated`, `aurc_recall_score`, `significantly_worse`):
    the mean AURC over the sets below the recall score's mean, and no set significantly worse."""
    gate = np.mean([s["aurc_cross_validated"] for s in sets.values()])
    recall = np.mean([s["aurc_recall_score"] for s in sets.values()])
    return bool(gate < recall) and not any(s["significantly_worse"] for s in sets.values())


def kinds_hold(new: Mapping[bool, dict], current: Mapping[bool, dict] | None, precision: float = 0.9,
               whole_slack: float = 0.05) -> bool:
    """The sixth attempt's parts 2 and 3 (docs/experiments/abstention.md), over `pooled` answers by kind of index
    (True: split): every kind's answers right at least `precision` of the time; against the `current` gate's on
    the same rows (where there is one), a larger share of the answerable questions answered on split indexes, and
    at most `whole_slack` less on whole-passage ones."""
    if any(n["precision"] < precision for n in new.values()):
        return False
    if current is None:
        return True
    for kind, n in new.items():
        now = current[kind]["answerable_answered"]
        if (kind and n["answerable_answered"] <= now) or (not kind and n["answerable_answered"] < now - whole_slack):
            return False
    return True


def fit_answer_gate(dev: Sequence[Outcomes], names: Sequence[str], recall_mode: str, precision: float = 0.9,
                    folds: int = 5, groups: Sequence[str] | None = None,
                    split: Sequence[bool] | None = None) -> AnswerGate:
    """The multi-feature gate fitted on every dev set, its threshold chosen on the cross-validated confidences,
    and a report: per set the cross-validated AURC against the recall score's and the top logit's, what the
    threshold does there, the standardized weights, and whether the adoption rule holds: the mean over sets of
    the cross-validated AURC below the recall score's, and no set significantly worse (`aurc_gap_lower_bound`).
    `groups` as in `cross_validated`. Where some sets are over split indexes (`split`, one flag a set), the
    whole-passage sets choose `threshold` and the split ones `split_threshold`, each for `precision` on its own
    sets pooled. ValueError if the dev questions are all right or all wrong."""
    if len(set(names)) < len(names):
        raise ValueError(f"two dev sets share a name: {sorted(names)}; each set's report is kept under its name")
    weights, intercept, standardized = fit_logistic(dev)
    held_out = cross_validated(dev, folds, groups=groups)
    kinds = [bool(k) for k in split] if split is not None else [False] * len(dev)
    if len(kinds) != len(dev):
        raise ValueError(f"{len(kinds)} split flags for {len(dev)} dev sets")

    def kind_threshold(of_split: bool) -> float:
        picked = [i for i, k in enumerate(kinds) if k == of_split]
        return threshold_for_precision(np.concatenate([held_out[i] for i in picked]),
                                       np.concatenate([dev[i].right for i in picked]), precision)

    threshold = kind_threshold(False) if not all(kinds) else kind_threshold(True)
    split_threshold = kind_threshold(True) if any(kinds) and not all(kinds) else None
    sets = {}
    for name, o, confidence, of_split in zip(names, dev, held_out, kinds, strict=True):
        cut = split_threshold if of_split and split_threshold is not None else threshold
        sets[name] = {"questions": len(o.right), "answerable": int(o.answerable.sum()),
                      "aurc_cross_validated": risk_coverage(confidence, o.right)["aurc"],
                      "aurc_recall_score": risk_coverage(o.top_recall, o.right)["aurc"],
                      "aurc_top_logit": risk_coverage(o.top_logit, o.right)["aurc"],
                      "split_index": of_split,
                      "at_threshold_cross_validated": answered_share((confidence >= cut) & (cut < 1.0), o)}
        sets[name]["beats_recall_score"] = sets[name]["aurc_cross_validated"] < sets[name]["aurc_recall_score"]
        bound = aurc_gap_lower_bound(confidence, o.top_recall, o)
        sets[name]["aurc_gap_lower_bound"] = bound
        sets[name]["significantly_worse"] = bound > 0
    report = {"sets": sets, "folds": folds, "target_precision": precision,
              "standardized_weights": dict(zip(ANSWER_FEATURES, standardized.tolist(), strict=True)),
              "mean_aurc_cross_validated": float(np.mean([s["aurc_cross_validated"] for s in sets.values()])),
              "mean_aurc_recall_score": float(np.mean([s["aurc_recall_score"] for s in sets.values()])),
              "adopted": gate_adopted(sets)}
    return AnswerGate(tuple(weights.tolist()), intercept, threshold, ANSWER_FEATURES, recall_mode, report,
                      split_threshold)


def risk_coverage(confidence: np.ndarray, right: np.ndarray) -> dict:
    """AURC, accuracy at 80% and 90% coverage, and the curve (coverage, accuracy) at 20 points.

    Questions are answered from the most confident down; `confidence` and `right` have shape (questions,), `right`
    1.0 for a right answer. Tied confidences come in no defined order, so each tied block counts every one of its
    places at the block's mean correctness: the expected curve over every order of the ties. AURC is the mean
    risk (1 - accuracy) over the coverages 1/n, ..., 1 (Geifman and El-Yaniv, "Selective Classification for Deep
    Neural Networks", 2017).
    """
    order = np.argsort(-confidence, kind="stable")
    ranked, outcome = confidence[order], right[order].astype(float)
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    sizes = np.diff(np.r_[starts, len(ranked)])
    outcome = np.repeat(np.add.reduceat(outcome, starts) / sizes, sizes) if len(ranked) else outcome
    accuracy = np.cumsum(outcome) / np.arange(1, len(order) + 1)
    coverage = np.arange(1, len(order) + 1) / len(order)

    def at(c: float) -> float:
        return float(accuracy[max(0, int(np.ceil(c * len(order))) - 1)])

    points = np.linspace(0.05, 1.0, 20)
    return {"aurc": float(np.mean(1 - accuracy)), "accuracy_at_80": at(0.8), "accuracy_at_90": at(0.9),
            "curve": [[float(c), at(c)] for c in points], "coverage_all": [float(x) for x in coverage[-1:]]}


def answered_share(answered: np.ndarray, o: Outcomes) -> dict:
    """Of the questions `answered` (a mask): the share of answerable questions answered, the precision of all
    answers (1.0 when none), and the counts (`pooled` adds them up over sets)."""
    return {"answerable_answered": float(answered[o.answerable].mean()) if o.answerable.any() else 0.0,
            "precision": float(o.right[answered].mean()) if answered.any() else 1.0,
            "answered": int(answered.sum()), "questions": len(answered), "right": int(o.right[answered].sum()),
            "answerable": int(o.answerable.sum()), "answerable_answered_count": int(answered[o.answerable].sum())}


def pooled(shares: Sequence[dict]) -> dict:
    """`answered_share`s of several sets as one: the share of all their answerable questions answered and the
    precision of all their answers (1.0 when none)."""
    answered = sum(s["answered"] for s in shares)
    answerable = sum(s["answerable"] for s in shares)
    return {"answerable_answered": sum(s["answerable_answered_count"] for s in shares) / answerable if answerable
            else 0.0, "precision": sum(s["right"] for s in shares) / answered if answered else 1.0,
            "answered": answered, "questions": sum(s["questions"] for s in shares)}


def at_threshold(gate: AnswerGate, o: Outcomes, split: bool = False) -> dict:
    """What the gate does on `o` (over a split index if `split`): the share of answerable questions answered, and
    the precision of all answers."""
    answered = ~np.array([gate.withholds(c, split) for c in gate.confidences(o.gate_input(gate))], dtype=bool)
    return answered_share(answered, o)
