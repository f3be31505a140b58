"""Offline scoring for calibration, tuning and benchmarks: score every recall candidate once, then replay.

`score_split` runs the real cross-encoder on the top `depth` recall candidates of each query and appends
each query's logits to a JSONL cache as soon as it is scored (a crash loses at most one query; a rerun
resumes). `ReplayScorer` then serves those logits through the normal scorer interface, so every stopping
policy is evaluated by the very same `rerank` loop the service uses, and the pairs it asks for are counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.calibration import Calibration
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.indexes.types import Hit, Query


@dataclass(frozen=True)
class ScoredQuery:
    """One query's recall candidates (recall order), their passages' logits and the scoring time."""

    query_id: str
    text: str
    candidates: list[Hit]
    logits: np.ndarray
    seconds: float


def _hit_record(h: Hit) -> list:
    return [h.doc_id, h.score, h.rank, h.stage_scores]


def read_cache(cache: Path) -> dict[str, ScoredQuery]:
    """The queries already scored in `cache`, by id; a line cut short by a crash ends the read."""
    done: dict[str, ScoredQuery] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by a crash: everything after it is rescored
            done[r["id"]] = ScoredQuery(r["id"], r["text"], [Hit(d, s, k, st) for d, s, k, st in r["hits"]],
                                        np.asarray(r["logits"], dtype=np.float64), r["seconds"])
    return done


def cache_line(sq: ScoredQuery) -> str:
    """One query's cache record, as `read_cache` reads it back."""
    return json.dumps({"id": sq.query_id, "text": sq.text, "hits": [_hit_record(h) for h in sq.candidates],
                       "logits": [float(x) for x in sq.logits], "seconds": sq.seconds}) + "\n"


def score_split(queries: Sequence[Query], index, scorer, mode: str, depth: int, cache: Path,
                progress: bool = True, run=None) -> list[ScoredQuery]:
    """Score (or read from `cache`) the top-`depth` `mode` candidates of every query: recall's over `index`, or,
    given `run` (an `indexes.run_file.RunRetriever`), that run's list for the query's id.

    A cached query is scored again when its text is not the query's, or, with `run`, when its candidates are not
    the run's list (a run file edited since, or a cache written when lists were matched by query text)."""
    from tqdm import tqdm

    done = read_cache(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    recall = index.retriever(mode) if run is None else None

    def candidates(query: Query) -> list:
        return run.search(query.id, depth) if recall is None else recall.search(query.text, depth)

    def stale(query: Query) -> bool:
        cached = done.get(query.id)
        if cached is None or cached.text != query.text:
            return True
        return run is not None and [h.doc_id for h in cached.candidates] != [h.doc_id for h in candidates(query)]

    todo = [q for q in queries if stale(q)]
    with cache.open("a") as f:
        for query in tqdm(todo, desc=f"score {mode} top-{depth}", unit="query", disable=not progress):
            hits = candidates(query)
            passages = [index.doc(h.doc_id).full_text for h in hits]
            started = time.perf_counter()
            logits = scorer.logits([query.text] * len(passages), passages)
            seconds = time.perf_counter() - started
            done[query.id] = ScoredQuery(query.id, query.text, hits, np.asarray(logits, np.float64), seconds)
            f.write(cache_line(done[query.id]))
            f.flush()
    return [done[q.id] for q in queries]


class ReplayScorer:
    """Serves cached logits for one query's candidates, in order, and counts the pairs asked for."""

    def __init__(self, scored: ScoredQuery, calibration: Calibration):
        self.scored = scored
        self.calibration = calibration
        self.position = 0

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        """The next ``len(passages)`` cached logits (the loop asks in recall order; the texts are not read) and their
        confidences under this scorer's calibration."""
        logits = self.scored.logits[self.position:self.position + len(passages)]
        self.position += len(passages)
        return ScoredPairs(logits, self.calibration.confidence(logits))


def replay(scored: Sequence[ScoredQuery], policy, calibration: Calibration, blend: float = 0.0,
           depth: int | None = None):
    """Run `policy` over cached scores: ({query: hits}, pairs scored per query, stop reasons)."""
    from earlyrank.engine.rerank import rerank

    results, pairs, reasons = {}, [], []
    for sq in scored:
        candidates = sq.candidates[:depth] if depth else sq.candidates
        result = rerank(sq.text, candidates, [""] * len(candidates), ReplayScorer(sq, calibration), policy, blend)
        results[sq.query_id] = result.hits
        pairs.append(result.scored)
        reasons.append(result.reason)
    return results, np.asarray(pairs), reasons


def labelled_pairs(scored: Sequence[ScoredQuery], qrels: dict, relevance_level: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """All (logit, relevant?) pairs of the cached candidates, relevant meaning a grade >= `relevance_level`:
    calibration data drawn as inference draws it."""
    logits: list[float] = []
    labels: list[float] = []
    for sq in scored:
        judged = qrels.get(sq.query_id, {})
        logits.extend(sq.logits.tolist())
        labels.extend(1.0 if judged.get(h.doc_id, 0) >= max(relevance_level, 1) else 0.0 for h in sq.candidates)
    return np.asarray(logits), np.asarray(labels)
