"""Reranking stops for a client that has gone: in the loops, and through the service."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
from test_api import FRANCE, SlowScorer, build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.rerank import rerank
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.stopping import FullRerank
from earlyrank.indexes.types import Hit


class LeavingScorer:
    """Scores everything 0.5; the client leaves during the first chunk."""

    def __init__(self, gone: threading.Event):
        self.gone, self.calls = gone, []

    def score(self, query, passages):
        self.calls.append(len(passages))
        self.gone.set()
        return ScoredPairs(np.zeros(len(passages)), np.full(len(passages), 0.5))


def test_the_loop_starts_no_chunk_once_the_client_has_gone():
    gone = threading.Event()
    scorer = LeavingScorer(gone)
    hits = [Hit(f"d{i}", 1.0, i) for i in range(1, 11)]
    result = rerank("q", hits, [f"p{i}" for i in range(10)], scorer, FullRerank(chunk=2), cancel=gone)
    assert scorer.calls == [2] and result.reason == "client_gone" and result.stopped_early


def test_the_service_stops_reranking_when_the_client_disconnects(tmp_path):
    """Each chunk takes 0.3 s and the client is gone from the start: at most a chunk that already started runs
    (the watcher usually sees the disconnect during recall, and nothing is scored)."""
    scorer = SlowScorer(0.3)
    app = make_app(Pipeline(build_tiny_index(tmp_path), scorer, mode="bm25"), chunk=1)
    body = json.dumps({"query": FRANCE, "threshold": 0.999}).encode()
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/answer", "raw_path": b"/v1/answer", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    assert sum(scorer.calls) <= 1  # without the watch: both candidates, then the answer sentence
    assert json.loads(sent[1]["body"])["reason"] == "client_gone"
