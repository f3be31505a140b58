"""The early-stopping reranking loop: score candidates in recall order, a chunk at a time, until the policy
says stop. Final ranking: scored candidates by their rerank score, then the unscored in recall order.

Unscored candidates keep their recall order and get score -1. The rerank score is the calibrated
confidence, optionally blended with the recall rank:
``score = (1 - blend) * confidence + blend / log2(1 + recall_rank)``; `blend` is chosen on the dev split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.stopping import Decision, StopReason, blend_score
from earlyrank.indexes.types import Hit


class Policy(Protocol):
    def decide(self, confidences: np.ndarray, total: int) -> Decision: ...


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
        return self.scored / self.candidates if self.candidates else 0.0


def rerank(query: str, candidates: Sequence[Hit], passages: Sequence[str], scorer: PairScorer, policy: Policy,
           blend: float = 0.0, deadline: float | None = None) -> RerankResult:
    """Rerank `candidates` (recall order; `passages[i]` is candidate i's text) under `policy`.

    `deadline` is a `time.monotonic()` instant after which no new chunk starts (reason ``deadline``).
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
        if deadline is not None and time.monotonic() >= deadline:
            decision = Decision(True, StopReason.DEADLINE)
            break
        start = len(confidences)
        chunk = scorer.score(query, passages[start:start + decision.next_chunk])
        logits = np.concatenate([logits, chunk.logits])
        confidences = np.concatenate([confidences, chunk.confidences])
        decision = policy.decide(confidences, len(candidates))
    scored = len(confidences)
    ranked = [
        (float(blend_score(float(c), candidates[i].rank, blend)), i) for i, c in enumerate(confidences)
    ]
    ranked.sort(key=lambda pair: (-pair[0], pair[1]))
    hits = []
    for rank, (score, i) in enumerate(ranked, 1):
        cand = candidates[i]
        stages = {**cand.stage_scores, "recall": cand.score, "recall_rank": cand.rank,
                  "logit": float(logits[i]), "confidence": float(confidences[i])}
        hits.append(Hit(cand.doc_id, score, rank, stages))
    for i in range(scored, len(candidates)):
        cand = candidates[i]
        stages = {**cand.stage_scores, "recall": cand.score, "recall_rank": cand.rank}
        hits.append(Hit(cand.doc_id, -1.0, len(hits) + 1, stages))
    early = decision.reason.early and scored < len(candidates)
    return RerankResult(hits, scored, len(candidates), early, decision.reason, time.monotonic() - started)
