"""Offline scoring spread over Ray actors: `engine.offline.score_split` with the cross-encoder in N processes.

Recall runs on the driver (it is cheap). Each actor loads its scorer once, from a picklable factory, and
scores whole queries; an `ActorPool` hands the next query to whichever actor is free and returns results
in query order. They are appended to the same JSONL cache `score_split` writes, record for record, so either
function resumes the other's cache and replay cannot tell which one scored.

The "seconds" of a record is the time its actor spent scoring, on that actor's own threads
(`cpus_per_worker`), so per-pair costs derived from a Ray-scored cache describe one worker, not the machine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earlyrank.engine.offline import ScoredQuery, cache_line, read_cache
from earlyrank.indexes.ray_session import check_capacity, ray_session
from earlyrank.indexes.types import Hit, Query

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrossEncoderFactory:
    """Picklable recipe for the scorer an actor loads: ``CrossEncoder.load(model_dir, ...)``."""

    model_dir: Path
    backend: str = "torch-fp32"
    max_length: int | None = None
    batch_size: int = 16
    windows: int | None = None

    @classmethod
    def like(cls, scorer) -> CrossEncoderFactory:
        """The recipe that reloads `scorer` (a loaded `CrossEncoder`) as it is: same files, length, windows,
        backend."""
        return cls(Path(scorer.path), scorer.backend.name, scorer.max_length, scorer.batch_size, scorer.windows)

    def __call__(self):
        from earlyrank.engine.cross_encoder import CrossEncoder

        return CrossEncoder.load(self.model_dir, self.max_length, self.batch_size, self.backend, self.windows)


@dataclass(frozen=True)
class WorkerCost:
    """What one actor did: queries and pairs scored, and the seconds spent scoring them."""

    worker: int
    queries: int
    pairs: int
    seconds: float


class ScoringWorker:
    """Actor body: one scorer per process; scores one query's passages per call."""

    def __init__(self, worker: int, factory: Callable[[], Any], threads: int):
        os.environ["EARLYRANK_THREADS"] = str(threads)  # read once by configure_torch, in this fresh process
        self.worker = worker
        self.scorer = factory()

    def score(self, query: str, passages: list[str]) -> tuple[int, list[float], float]:
        """Raw logits of `passages` for `query` with this actor's scorer: (worker id, one logit per passage in order,
        seconds spent scoring)."""
        started = time.perf_counter()
        logits = self.scorer.logits([query] * len(passages), passages)
        return self.worker, [float(x) for x in logits], time.perf_counter() - started


def score_split_ray(queries: Sequence[Query], index, scorer_factory: Callable[[], Any], mode: str, depth: int,
                    cache: Path, address: str | None = None, workers: int = 2, cpus_per_worker: int = 1,
                    progress: bool = True) -> list[ScoredQuery]:
    """`score_split` on `workers` Ray actors, each holding `scorer_factory()`; same cache, same records.

    `address` is None or "local" for a local cluster, else a cluster to join (see `ray_session`). Per-worker
    costs are logged at INFO on this module's logger.
    """
    done = read_cache(cache)
    todo = [q for q in queries if q.id not in done]
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        retriever = index.retriever(mode)
        recalled = [(q, retriever.search(q.text, depth)) for q in todo]
        with ray_session(address) as ray:
            check_capacity(ray, workers, cpus_per_worker)
            costs = _score_on_actors(ray, recalled, index, scorer_factory, workers, cpus_per_worker, cache, done,
                                     f"score {mode} top-{depth} on {workers} Ray workers" if progress else None)
        for c in costs:
            log.info("ray worker %d: %d queries, %d pairs, %.2f s scoring (%.1f pairs/s)", c.worker, c.queries,
                     c.pairs, c.seconds, c.pairs / c.seconds if c.seconds else 0.0)
    return [done[q.id] for q in queries]


def _score_on_actors(ray, recalled: list[tuple[Query, list[Hit]]], index, factory, workers: int,
                     cpus_per_worker: int, cache: Path, done: dict[str, ScoredQuery],
                     progress_label: str | None) -> list[WorkerCost]:
    """Score every recalled query on an actor pool, appending each to `cache` and `done` in query order."""
    from ray.util import ActorPool
    from tqdm import tqdm

    actor = ray.remote(num_cpus=cpus_per_worker)(ScoringWorker)
    actors = [actor.remote(i, factory, cpus_per_worker) for i in range(workers)]
    tally = np.zeros((workers, 3))  # queries, pairs, seconds per worker
    try:
        pool = ActorPool(actors)
        results = pool.map(lambda a, item: a.score.remote(
            item[0].text, [index.doc(h.doc_id).full_text for h in item[1]]), recalled)
        with cache.open("a") as f:
            for (query, hits), (worker, logits, seconds) in tqdm(
                    zip(recalled, results, strict=True), total=len(recalled), unit="query", desc=progress_label,
                    disable=progress_label is None):
                done[query.id] = ScoredQuery(query.id, query.text, hits, np.asarray(logits, np.float64), seconds)
                f.write(cache_line(done[query.id]))
                f.flush()
                tally[worker] += (1, len(logits), seconds)
    finally:
        for a in actors:
            ray.kill(a)
    return [WorkerCost(i, int(q), int(p), float(s)) for i, (q, p, s) in enumerate(tally)]
