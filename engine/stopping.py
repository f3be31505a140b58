"""When to stop reranking: small pure policies, no model.

Candidates arrive in recall order and are scored a chunk at a time. After each chunk the reranking loop
asks its policy ``decide(confidences, total)`` with the calibrated confidences scored so far (recall order)
and the number of candidates; the policy answers whether to stop, why, and how big the next chunk is.

- `FullRerank`: score every candidate up to a depth (the reference).
- `Threshold`: Ying & Huo (WSDM Cup 2020): fixed chunks; stop once any confidence passes tau.
- `TopKConfident`: stop once the k best scored candidates all pass tau.
- `BoundStop` (ours, for the learned fusion): candidates come in order of their best possible fused score;
  stop once none left could enter the top k (within a margin).
- `ResidualRisk` (ours): estimate, from statistics measured on the dev split, the probability that some
  unscored candidate would still enter the top k, and stop once it falls below epsilon. Chunks grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class StopReason(str, Enum):
    """Why reranking stopped. A str: it compares equal to, and serializes as, its value."""

    NOT_STOPPED = ""
    EXHAUSTED = "exhausted"  # every candidate was scored
    MAX_DEPTH = "max_depth"  # the policy's depth cap was reached
    CONFIDENT = "confident"  # a confidence threshold was passed (Threshold, TopKConfident)
    LOW_RISK = "low_risk"  # ResidualRisk: unscored candidates can no longer change the top k
    DEADLINE = "deadline"  # the caller's time budget ran out
    CLIENT_GONE = "client_gone"  # the caller went away: nobody is waiting for the rest
    BOUNDED = "bounded"  # BoundStop: no unscored candidate's best possible fused score reaches the top k
    NO_CANDIDATES = "no_candidates"  # recall found nothing to rerank (a filter or words no document matches)

    @property
    def early(self) -> bool:
        """Whether the policy chose to stop before its candidates or depth ran out."""
        return self not in (StopReason.EXHAUSTED, StopReason.MAX_DEPTH, StopReason.NOT_STOPPED,
                            StopReason.NO_CANDIDATES)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Decision:
    """A policy's answer after a chunk: whether to `stop`, the `reason`, and how many candidates to score next (0 when
    stopping)."""

    stop: bool
    reason: StopReason
    next_chunk: int = 0


def _sizes_ok(chunk: int, depth: int) -> None:
    if chunk <= 0 or depth <= 0:
        raise ValueError(f"chunk and depth must be positive, got chunk={chunk}, depth={depth}")


def _go_on(chunk: int, scored: int, depth: int) -> Decision:
    """Score the next chunk, but never past the depth cap (a chunk of 16 under a cap of 10 scores 10)."""
    return Decision(False, StopReason.NOT_STOPPED, min(chunk, depth - scored))


def _exhausted(scored: int, total: int, depth: int) -> Decision | None:
    if scored >= total:
        return Decision(True, StopReason.EXHAUSTED)
    if scored >= depth:
        return Decision(True, StopReason.MAX_DEPTH)
    return None


@dataclass(frozen=True)
class FullRerank:
    """Score the first `depth` candidates, in chunks of `chunk`."""

    depth: int = 100
    chunk: int = 16
    name = "full"

    def __post_init__(self) -> None:
        _sizes_ok(self.chunk, self.depth)

    def decide(self, confidences: np.ndarray, total: int) -> Decision:
        """Stop once every candidate, or `depth` of them, is scored; else score the next `chunk`."""
        return _exhausted(len(confidences), total, self.depth) or _go_on(self.chunk, len(confidences), self.depth)


@dataclass(frozen=True)
class Threshold:
    """The published rule: stop after a chunk in which any candidate's confidence reaches `tau`."""

    tau: float = 0.9
    chunk: int = 10
    depth: int = 100
    name = "threshold"

    def __post_init__(self) -> None:
        _sizes_ok(self.chunk, self.depth)

    def decide(self, confidences: np.ndarray, total: int) -> Decision:
        """Stop (CONFIDENT) once any scored confidence reaches `tau`; else go on as `FullRerank` does."""
        if len(confidences) and confidences.max() >= self.tau:
            return Decision(True, StopReason.CONFIDENT)
        return _exhausted(len(confidences), total, self.depth) or _go_on(self.chunk, len(confidences), self.depth)


@dataclass(frozen=True)
class TopKConfident:
    """Stop once the `k` most confident scored candidates all reach `tau`."""

    k: int = 3
    tau: float = 0.5
    chunk: int = 10
    depth: int = 100
    name = "topk"

    def __post_init__(self) -> None:
        _sizes_ok(self.chunk, self.depth)

    def decide(self, confidences: np.ndarray, total: int) -> Decision:
        """Stop (CONFIDENT) once the `k`-th best scored confidence reaches `tau`; else go on as `FullRerank` does."""
        if len(confidences) >= self.k and np.sort(confidences)[-self.k] >= self.tau:
            return Decision(True, StopReason.CONFIDENT)
        return _exhausted(len(confidences), total, self.depth) or _go_on(self.chunk, len(confidences), self.depth)


@dataclass(frozen=True)
class RankPrior:
    """What the dev split says about candidates, for `ResidualRisk`.

    `relevant_at_rank[r]`: the fraction of dev queries with a relevant passage at recall rank r + 1.
    `relevant_confidences` / `other_confidences`: sorted calibrated confidences of relevant and
    non-relevant dev candidates, whose tails say how likely a candidate is to beat a given confidence.
    """

    relevant_at_rank: np.ndarray
    relevant_confidences: np.ndarray
    other_confidences: np.ndarray

    def p_relevant(self, ranks: np.ndarray) -> np.ndarray:
        """The dev fraction of queries with a relevant passage at each 0-based recall rank of `ranks` (same shape);
        ranks past the table get its last entry."""
        table = self.relevant_at_rank
        return table[np.minimum(ranks, len(table) - 1)]

    def p_above(self, confidence):
        """P(confidence > c) for a relevant and for a non-relevant candidate (add-one smoothed); `c` may be
        an array, one threshold per candidate."""
        def tail(values: np.ndarray):
            above = len(values) - np.searchsorted(values, confidence, side="right")
            return (above + 1) / (len(values) + 2)
        return tail(self.relevant_confidences), tail(self.other_confidences)

    def as_dict(self) -> dict:
        """The three arrays as lists, for JSON (the operating point); `from_dict` reads them back."""
        return {k: getattr(self, k).tolist() for k in ("relevant_at_rank", "relevant_confidences",
                                                        "other_confidences")}

    @classmethod
    def from_dict(cls, data: dict) -> RankPrior:
        """The prior `as_dict` wrote, its arrays as float64."""
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in data.items()})


def blend_score(confidence, recall_rank, blend: float):
    """The rerank score: calibrated confidence blended with the recall rank (scalars or arrays)."""
    return (1 - blend) * confidence + blend / np.log2(1 + recall_rank)


def residual_risk(confidences: np.ndarray, total: int, depth: int, k: int, prior: RankPrior,
                  blend: float = 0.0) -> float:
    """Expected number of unscored candidates (within `depth`) whose rerank score would beat the current k-th
    best. With a blend, a deep candidate needs a higher confidence to get there than a shallow one."""
    scored = len(confidences)
    last = min(total, depth)
    if scored >= last or blend >= 1:
        return 0.0
    ranks = np.arange(scored + 1, last + 1)
    if scored >= k:
        kth = np.sort(blend_score(confidences, np.arange(1, scored + 1), blend))[-k]
        needed = (kth - blend / np.log2(1 + ranks)) / (1 - blend)
    else:
        needed = np.full(len(ranks), -np.inf)  # fewer than k scored: any candidate enters the top k
    p_rel = prior.p_relevant(ranks - 1)
    above_rel, above_other = prior.p_above(needed)
    return float(np.sum(p_rel * above_rel + (1 - p_rel) * above_other))


@dataclass(frozen=True)
class ResidualRisk:
    """Stop when the expected number of unscored candidates that would enter the top `k` is below `epsilon`.

    Chunks start at `first_chunk` and double (up to `max_chunk`): most questions are settled by their first
    few candidates, and the rest should not pay one call per small chunk.
    """

    prior: RankPrior = field(repr=False)
    epsilon: float = 0.05
    k: int = 3
    first_chunk: int = 4
    max_chunk: int = 32
    depth: int = 100
    blend: float = 0.0  # the rerank loop's blend, so the risk is about the ranking actually produced
    name = "risk"

    def __post_init__(self) -> None:
        _sizes_ok(self.first_chunk, self.depth)

    def decide(self, confidences: np.ndarray, total: int) -> Decision:
        """Stop (LOW_RISK) once something is scored and `residual_risk` is below `epsilon`; else score as many more as
        are scored so far, at least `first_chunk` and at most `max_chunk`."""
        done = _exhausted(len(confidences), total, self.depth)
        if done:
            return done
        risk = residual_risk(confidences, total, self.depth, self.k, self.prior, self.blend)
        if len(confidences) and risk < self.epsilon:
            return Decision(True, StopReason.LOW_RISK)
        return _go_on(min(self.max_chunk, max(self.first_chunk, len(confidences))), len(confidences), self.depth)


@dataclass(frozen=True)
class BoundStop:
    """Stop once no unscored candidate could still enter the top `k` of the fused scores.

    `decide(scored, bounds)` takes the fused log-odds of the scored candidates and the upper bounds of the
    unscored ones (`Fusion.upper_bound`; the loop scores candidates in descending bound order). It stops when
    the k-th best scored log-odds is at least the highest unscored bound minus `margin` (0: exact, the top k
    is what a full rerank would give as long as no logit exceeds the bound). Chunks start at `first_chunk`
    and double, at most `depth` candidates are scored.
    """

    k: int = 1
    margin: float = 0.0
    first_chunk: int = 2
    depth: int = 100
    name = "bound"

    def __post_init__(self) -> None:
        _sizes_ok(self.first_chunk, self.depth)
        if self.k < 1 or self.margin < 0:
            raise ValueError(f"BoundStop needs k >= 1 and margin >= 0, got k={self.k}, margin={self.margin}")

    def decide(self, scored: np.ndarray, bounds: np.ndarray) -> Decision:
        """`scored`: the fused log-odds of the scored candidates; `bounds`: the upper bounds of the unscored ones. Stop
        (BOUNDED) once the `k`-th best scored is at least the highest bound minus `margin`; else score as many more as
        are scored so far, at least `first_chunk`."""
        done = len(scored)
        stop = _exhausted(done, done + len(bounds), self.depth)
        if stop:
            return stop
        if done >= self.k and np.sort(scored)[-self.k] >= bounds.max() - self.margin:
            return Decision(True, StopReason.BOUNDED)
        return _go_on(max(self.first_chunk, done), done, self.depth)

