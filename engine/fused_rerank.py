"""The early-stopping rerank loop for the learned fusion (`earlyrank.engine.fusion`).

Candidates are scored best-first by the highest fused score each could still reach (its static part plus the
logit's largest possible term), a chunk at a time, until `BoundStop` says no unscored candidate could enter
the top k. Final ranking: scored candidates by their fused relevance probability, then the unscored ones by
their bound. Each hit's `score` and its ``confidence`` stage are the fused probability; the cross-encoder's
own calibrated confidence is kept as ``ce_confidence``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from earlyrank.engine.fusion import CandidateSignals, Fusion
from earlyrank.engine.rerank import NO_CONTENT_LOGIT, NO_CONTENT_SCORE, RerankResult, score_whole_chunk
from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.stopping import BoundStop, Decision, StopReason
from earlyrank.indexes.types import CONFIDENCE, LOGIT, Hit


def rerank_fused(query: str, candidates: Sequence[Hit], passages: Sequence[str], signals: CandidateSignals,
                 scorer: PairScorer, fusion: Fusion, policy: BoundStop, deadline: float | None = None,
                 cancel: threading.Event | None = None) -> RerankResult:
    """Rerank `candidates` (recall order; `passages[i]` and the arrays of `signals` belong to candidate i).

    `deadline` is a `time.monotonic()` instant after which no new piece of a chunk starts (`score_whole_chunk`;
    reason ``deadline``); once `cancel` is set, no new chunk starts (reason ``client_gone``).
    Raises ValueError if the lengths differ.
    """
    if not len(candidates) == len(passages) == len(signals.cosine):
        raise ValueError(f"{len(candidates)} candidates, {len(passages)} passages and {len(signals.cosine)} "
                         f"signals; give one of each per candidate")
    started = time.monotonic()
    static = fusion.static_log_odds(signals)
    bounds = fusion.upper_bound(static)
    order = np.argsort(-bounds, kind="stable")
    logits = np.zeros(0)
    confidences = np.zeros(0)
    fused = np.zeros(0)
    decision = policy.decide(fused, bounds[order])
    while not decision.stop:
        if cancel is not None and cancel.is_set():
            decision = Decision(True, StopReason.CLIENT_GONE)
            break
        take = order[len(logits):len(logits) + decision.next_chunk]
        chunk_logits, chunk_confidences, whole = score_whole_chunk(
            query, [passages[i] for i in take], scorer, deadline, started, len(logits))
        logits = np.concatenate([logits, chunk_logits])
        confidences = np.concatenate([confidences, chunk_confidences])
        fused = fusion.log_odds(static[order[:len(logits)]], logits)
        if not whole:
            decision = Decision(True, StopReason.DEADLINE)
            break
        decision = policy.decide(fused, bounds[order[len(logits):]])
    if not candidates:  # nothing to score: say so, rather than that every candidate was scored
        decision = Decision(True, StopReason.NO_CANDIDATES)
    scored = len(logits)
    probability = Fusion.probability(fused)
    hits: list[Hit] = []
    empty = [j for j in range(scored) if logits[j] <= NO_CONTENT_LOGIT]  # ContentGuard's mark: no content
    for j in sorted(set(range(scored)) - set(empty), key=lambda j: (-fused[j], j)):
        cand = candidates[order[j]]
        stages = {**cand.stage_scores, "recall": cand.score, "recall_rank": cand.rank, LOGIT: float(logits[j]),
                  "ce_confidence": float(confidences[j]), "fused_log_odds": float(fused[j]),
                  CONFIDENCE: float(probability[j])}
        hits.append(Hit(cand.doc_id, float(probability[j]), len(hits) + 1, stages))
    for i in order[scored:]:
        cand = candidates[i]
        stages = {**cand.stage_scores, "recall": cand.score, "recall_rank": cand.rank}
        hits.append(Hit(cand.doc_id, -1.0, len(hits) + 1, stages))
    for j in empty:  # a passage with no letter or digit comes last, below the unscored, as in `rerank`
        cand = candidates[order[j]]
        stages = {**cand.stage_scores, "recall": cand.score, "recall_rank": cand.rank, LOGIT: float(logits[j]),
                  CONFIDENCE: 0.0}
        hits.append(Hit(cand.doc_id, NO_CONTENT_SCORE, len(hits) + 1, stages))
    early = decision.reason.early and scored < len(candidates)
    return RerankResult(hits, scored, len(candidates), early, decision.reason, time.monotonic() - started)
