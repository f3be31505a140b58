"""Dynamic micro-batching: pairs from concurrent requests go through the model together.

``BatchingScorer(cross_encoder).score(query, passages)`` has the `PairScorer` interface. Callers (worker
threads) queue their pairs and wait; one batcher thread takes the first waiting call, gathers more for at
most `max_wait_ms` or until `max_pairs` pairs, runs them as one ``logits(queries, passages)`` call (one
query per pair) and applies the model's own calibration. Scores equal scoring alone: a pair's logit does
not depend on its batch-mates beyond padding, which the model masks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from earlyrank.engine.scoring import ScoredPairs


class Calibrated(Protocol):
    """Anything that turns raw logits into calibrated confidences (a `Calibration`)."""

    def confidence(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities in [0, 1] for raw logits (log-odds), same shape."""


class LogitModel(Protocol):
    """What the batcher needs of a model: logits for pairs with one query each, and its calibration."""

    @property
    def calibration(self) -> Calibrated:
        """The model's calibration, applied to every batch's logits."""

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """One raw logit per (query, passage) pair, in input order."""


class BatchScoringError(RuntimeError):
    """The batched model call failed; the cause is chained."""


@dataclass
class _Call:
    query: str
    passages: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: ScoredPairs | None = None
    error: BaseException | None = None


_STOP = None


class BatchingScorer:
    """A `PairScorer` that merges concurrent `score` calls into bounded batches on one thread."""

    def __init__(self, model: LogitModel, max_wait_ms: float = 5.0, max_pairs: int = 64):
        if max_wait_ms < 0 or max_pairs < 1:
            raise ValueError(f"need max_wait_ms >= 0 and max_pairs >= 1, got {max_wait_ms} and {max_pairs}")
        self.model = model
        self.max_wait = max_wait_ms / 1000
        self.max_pairs = max_pairs
        self.batches = 0
        self.pairs = 0
        self._queue: queue.Queue[_Call | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()  # closing and queueing exclude each other: nothing queues after the stop
        self._thread = threading.Thread(target=self._run, name="earlyrank-batcher", daemon=True)
        self._thread.start()

    @property
    def calibration(self) -> Calibrated:
        """The wrapped model's calibration."""
        return self.model.calibration

    def queue_depth(self) -> int:
        """Scoring calls waiting to be batched."""
        return self._queue.qsize()

    def identity(self) -> dict:
        """The wrapped model's identity (or its class name) with the batching settings: max_wait_ms and max_pairs."""
        identity = getattr(self.model, "identity", None)
        base = identity() if callable(identity) else {"name": type(self.model).__name__}
        return {**base, "batching": {"max_wait_ms": self.max_wait * 1000, "max_pairs": self.max_pairs}}

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        """Logits and calibrated confidences of `passages` for `query`; blocks until its batch has run."""
        if not passages:
            empty = np.zeros(0, dtype=np.float32)
            return ScoredPairs(empty, self.model.calibration.confidence(empty))
        call = _Call(query, list(passages))
        with self._lock:
            if self._closed:
                raise BatchScoringError("the batching scorer is closed")
            self._queue.put(call)
        call.done.wait()
        if call.error is not None:
            raise BatchScoringError(f"scoring failed: {call.error}") from call.error
        assert call.result is not None
        return call.result

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        carried: _Call | None = None
        while True:
            first = carried or self._queue.get()
            if first is _STOP:
                return
            batch, carried, stop = self._gather(first)
            self._score(batch)
            if stop:
                return

    def _gather(self, first: _Call) -> tuple[list[_Call], _Call | None, bool]:
        """`first` plus whatever arrives within the wait, up to `max_pairs`; a call that would overflow the
        batch is carried to the next one (a single call larger than `max_pairs` goes alone, whole)."""
        batch, size = [first], len(first.passages)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_pairs:
            try:
                call = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if call is _STOP:
                return batch, None, True
            if size + len(call.passages) > self.max_pairs:
                return batch, call, False
            batch.append(call)
            size += len(call.passages)
        return batch, None, False

    def _score(self, batch: list[_Call]) -> None:
        """Score `batch` in one model call; if that fails, each call alone, so one bad request (say, text the
        tokenizer refuses) fails only itself and never the strangers batched with it."""
        try:
            try:
                results = self._forward(batch)
            except Exception as error:  # every waiting caller must hear of it, or it waits for ever
                if len(batch) == 1:
                    batch[0].error = error
                    return
                for call in batch:
                    self._score([call])
                return
            for call, result in zip(batch, results, strict=True):
                call.result = result
        finally:
            for call in batch:
                call.done.set()

    def _forward(self, batch: list[_Call]) -> list[ScoredPairs]:
        """One model call for every pair of `batch`: each call's logits and calibrated confidences."""
        queries = [c.query for c in batch for _ in c.passages]
        passages = [p for c in batch for p in c.passages]
        logits = np.asarray(self.model.logits(queries, passages))
        if logits.shape != (len(passages),):
            raise ValueError(f"the model returned {logits.shape} logits for {len(passages)} pairs")
        confidences = np.asarray(self.model.calibration.confidence(logits))
        results, start = [], 0
        for call in batch:
            end = start + len(call.passages)
            results.append(ScoredPairs(logits[start:end], confidences[start:end]))
            start = end
        self.batches += 1
        self.pairs += len(passages)
        return results
