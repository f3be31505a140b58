"""Prometheus metrics, one registry per app (so two apps in one process, as in tests, never share counts)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Request counts and latencies by endpoint, reranking cost, early stops and queue depths."""

    def __init__(self, in_flight: Callable[[], float], batch_queue: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("earlyrank_requests", "HTTP requests by endpoint, method and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("earlyrank_request_seconds", "HTTP request latency by endpoint.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.pairs = Counter("earlyrank_pairs_scored", "(query, passage) pairs scored by the reranker.",
                             ["endpoint"], registry=r)
        self.candidates = Counter("earlyrank_candidates", "Candidates offered to the reranker.",
                                  ["endpoint"], registry=r)
        self.early_stops = Counter("earlyrank_early_stops", "Reranks that stopped before the last candidate.",
                                   ["endpoint", "reason"], registry=r)
        Gauge("earlyrank_work_in_flight", "Requests doing work now (more than the cap get 429).",
              registry=r).set_function(in_flight)
        Gauge("earlyrank_batch_queue_depth", "Scoring calls waiting for the micro-batcher.",
              registry=r).set_function(batch_queue)

    def observe_rerank(self, endpoint: str, scored: int, candidates: int, stopped_early: bool,
                       reason: str) -> None:
        """Count one rerank's scored pairs and candidates under `endpoint`, and its early stop under `reason` if it
        stopped early."""
        self.pairs.labels(endpoint).inc(scored)
        self.candidates.labels(endpoint).inc(candidates)
        if stopped_early:
            self.early_stops.labels(endpoint, reason).inc()

    def render(self) -> bytes:
        """Every metric of this app in the Prometheus text format (`CONTENT_TYPE`), as bytes."""
        return generate_latest(self.registry)


def _endpoint(scope: Scope) -> str:
    """The route template (``/v1/answer``), never the raw path: unknown paths must not grow the label set."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """Counts every response (including 413s and 429s) by endpoint and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            endpoint = _endpoint(scope)
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
