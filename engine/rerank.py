"""The early-stopping reranking loop: score candidates in recall order, a chunk at a time, until the policy
says stop. Final ranking: scored candidates by their rerank score, then the unscored in recall order.

Unscored candidates keep their recall order and get score -1. The rerank score is the calibrated
confidence, optionally blended with the recall rank:
``score = (1 - blend) * confidence + blend / log2(1 + recall_rank)``; `blend` is chosen on the dev split.

A passage with no content (no letter or digit) cannot answer anything: `ContentGuard` gives it the logit
`NO_CONTENT_LOGIT` and confidence 0 without asking the model, and the loop ranks any candidate with that
logit after all the others, unscored ones included, with score -2 (`NO_CONTENT_SCORE`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from earlyrank.engine.scoring import PairScorer, ScoredPairs
from earlyrank.engine.stopping import Decision, StopReason, blend_score
from earlyrank.indexes.types import CONFIDENCE, LOGIT, Hit

# "Certainly irrelevant": far below any cross-encoder's logit, and finite, so it stays valid JSON.
NO_CONTENT_LOGIT = -1e4
NO_CONTENT_SCORE = -2.0
_WORD = re.compile(r"\w")


def has_content(text: str) -> bool:
    """True if `text` has a letter or digit (a ``\\w`` character); ``""``, ``"   "`` and ``"..."`` have none."""
    return _WORD.search(text) is not None


class ContentGuard:
    """A `PairScorer` that keeps contentless passages from `scorer`: they get `NO_CONTENT_LOGIT` and
    confidence 0.0, the rest are scored by `scorer` in one call. A contentless query is a ValueError.

    Wraps the scorer of anything that reranks real texts (the served pipeline, the CLI, /v1/rerank); offline
    replay, whose passages are placeholders, uses its cached scores unwrapped.
    """

    def __init__(self, scorer: PairScorer):
        self.scorer: PairScorer = scorer.scorer if isinstance(scorer, ContentGuard) else scorer

    def identity(self) -> dict:
        """The wrapped scorer's identity (model name, path, calibration), or its class name."""
        identity = getattr(self.scorer, "identity", None)
        return identity() if callable(identity) else {"name": type(self.scorer).__name__}

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        """Logits and confidences of `passages` for `query`, in order; a contentless passage gets `NO_CONTENT_LOGIT` and
        0.0 without reaching the model. ValueError if the query has no letter or digit."""
        if not has_content(query):
            raise ValueError(f"the query {query!r} has no letter or digit; ask a question with words")
        real = [i for i, p in enumerate(passages) if has_content(p)]
        logits = np.full(len(passages), NO_CONTENT_LOGIT)
        confidences = np.zeros(len(passages))
        if real:
            scored = self.scorer.score(query, [passages[i] for i in real])
            logits[real] = scored.logits
            confidences[real] = scored.confidences
        return ScoredPairs(logits, confidences)


class Policy(Protocol):
    """A stopping rule for `rerank`: asked ``decide(confidences, total)`` after each chunk (see `engine.stopping`)."""

    def decide(self, confidences: np.ndarray, total: int) -> Decision:
        """Whether to stop, why, and the next chunk's size, from the confidences so far (recall order)."""


@dataclass(frozen=True)
class RerankResult:
    """A reranked list and what it cost: `scored` pairs out of `candidates`, and why it stopped."""

    hits: list[Hit]
    scored: int
    candidates: int
    stopped_early: bool
    reason: str
    seconds: float

    @property
    def fraction_scored(self) -> float:
        """The share of the candidates that was scored, in [0, 1]; 0.0 when there were none."""
        return self.scored / self.candidates if self.candidates else 0.0


def chunk_within_deadline(wanted: int, deadline: float | None, seconds: float, scored: int) -> int:
    """How many of the `wanted` next pairs to score so that the chunk ends by `deadline` (a `time.monotonic()`
    instant): all of them without a deadline; one before any pair has been timed; otherwise as many as the
    rate measured so far (`seconds` for `scored` pairs) fits in the time left. 0 means stop: none fits.

    A piece that has started always finishes, so this is what keeps a response near its budget: the overshoot
    is at most about one pair's time, not one chunk's (`score_whole_chunk` scores a chunk in such pieces)."""
    if deadline is None:
        return wanted
    left = deadline - time.monotonic()
    if left <= 0:
        return 0
    if scored == 0:
        return min(wanted, 1)
    if seconds <= 0:
        return wanted
    return min(wanted, int(left / (seconds / scored)))


def score_whole_chunk(query: str, passages: Sequence[str], scorer: PairScorer, deadline: float | None,
                      started: float, scored: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Score `passages`, the chunk a stopping policy asked for, in pieces that each fit before `deadline`
    (`chunk_within_deadline`, with `scored` pairs timed since `started`, a `time.monotonic()` instant).

    Returns (logits, confidences, whole), each array of shape (pairs scored,); `whole` is False when the deadline
    cut the chunk short. A policy is tuned on whole chunks (a first chunk of 2 decides after 2 pairs), so it must
    never be asked to decide after a piece of one: a deadline that only sizes the pieces leaves every decision,
    and so the answer, as it is without a deadline, and one that cuts a chunk stops the rerank as a deadline
    stop (the response says it was degraded).
    """
    logits: list[np.ndarray] = []
    confidences: list[np.ndarray] = []
    done = 0
    while done < len(passages):
        size = chunk_within_deadline(len(passages) - done, deadline, time.monotonic() - started, scored + done)
        if size == 0:
            break
        chunk = scorer.score(query, passages[done:done + size])
        logits.append(np.asarray(chunk.logits, dtype=float))
        confidences.append(np.asarray(chunk.confidences, dtype=float))
        done += size
    return (np.concatenate([np.zeros(0), *logits]), np.concatenate([np.zeros(0), *confidences]),
            done == len(passages))


def rerank(query: str, candidates: Sequence[Hit], passages: Sequence[str], scorer: PairScorer, policy: Policy,
           blend: float = 0.0, deadline: float | None = None, cancel: threading.Event | None = None) -> RerankResult:
    """Rerank `candidates` (recall order; `passages[i]` is candidate i's text) under `policy`.

    `deadline` is a `time.monotonic()` instant after which no new piece of a chunk starts (`score_whole_chunk`;
    reason ``deadline``, the policy never deciding on part of a chunk); once `cancel` is set (the client went
    away), no new chunk starts (reason ``client_gone``).
    """
    if len(candidates) != len(passages):
        raise ValueError(f"{len(candidates)} candidates but {len(passages)} passages")
    if not 0 <= blend <= 1:
        raise ValueError(f"blend must be in [0, 1], got {blend}")
    started = time.monotonic()
    logits = np.zeros(0)
    confidences = np.zeros(0)
    decision = policy.decide(confidences, len(candidates))
    while not decision.stop:
        start = len(confidences)
        if cancel is not None and cancel.is_set():
            decision = Decision(True, StopReason.CLIENT_GONE)
            break
        chunk_logits, chunk_confidences, whole = score_whole_chunk(
            query, passages[start:start + decision.next_chunk], scorer, deadline, started, start)
        logits = np.concatenate([logits, chunk_logits])
        confidences = np.concatenate([confidences, chunk_confidences])
        if not whole:
            decision = Decision(True, StopReason.DEADLINE)
            break
        decision = policy.decide(confidences, len(candidates))
    if not candidates:  # nothing to score: say so, rather than that every candidate was scored
        decision = Decision(True, StopReason.NO_CANDIDATES)
    scored = len(confidences)
    empty = [i for i in range(scored) if logits[i] <= NO_CONTENT_LOGIT]
    ranked = [(float(blend_score(float(confidences[i]), candidates[i].rank, blend)), i)
              for i in range(scored) if logits[i] > NO_CONTENT_LOGIT]
    ranked.sort(key=lambda pair: (-pair[0], pair[1]))
    ranked += [(-1.0, i) for i in range(scored, len(candidates))] + [(NO_CONTENT_SCORE, i) for i in empty]
    hits = []
    for rank, (score, i) in enumerate(ranked, 1):
        cand = candidates[i]
        stages = {**cand.stage_scores, "recall": cand.score, "recall_rank": cand.rank}
        if i < scored:
            stages |= {LOGIT: float(logits[i]), CONFIDENCE: float(confidences[i])}
        hits.append(Hit(cand.doc_id, score, rank, stages))
    early = decision.reason.early and scored < len(candidates)
    return RerankResult(hits, scored, len(candidates), early, decision.reason, time.monotonic() - started)
