"""Issue 21 item 10: starting and stopping as a supervisor expects.

In process (a test client, the drain begun as SIGTERM would): /ready is 503 `loading` while the pipeline loads
and `shutting_down` from the stop on; work still running when the grace period ends is a JSON 503 and stops.
Through a real server (tests/fake_server.py, a fake scorer): the port answers while loading, SIGTERM gives the
request still running a JSON 503 and the process exits with status 0; a failed load exits with status 3.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from conftest import FakeScorer, LoadedClient
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app

from earlyrank.api.app import create_app
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.settings import Settings
from earlyrank.indexes.store import LoadedIndex, read_manifest

DOCUMENTS = [f"Paris is the capital of France, fact {i}." for i in range(30)]
SERVER = Path(__file__).parent / "fake_server.py"


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("shutdown"))


class PacedScorer(FakeScorer):
    """0.1 s per scoring call; `entered` is set at the first."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        self.entered.set()
        time.sleep(0.1)
        return super().score(query, passages)


def test_ready_says_loading_until_the_pipeline_has_loaded(tiny_index):
    """The load runs beside the server: /health is 200 and /ready a 503 `loading` meanwhile (before, the lifespan
    held the server's start until the load was done, and a client found no server)."""
    release = threading.Event()

    def factory(settings: Settings) -> Pipeline:
        release.wait(5)
        return Pipeline(tiny_index, FakeScorer(), mode="bm25")
    with TestClient(create_app(Settings(mode="bm25", retry_after_seconds=2), factory)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        loading = client.get("/ready")
        assert loading.status_code == 503 and loading.headers["retry-after"] == "2"
        assert loading.json() == {"error": "not ready: the index and model are loading", "error_type": "loading",
                                  "detail": []}
        assert client.post("/v1/answer", json={"query": FRANCE}).json()["error_type"] == "loading"
        release.set()
        deadline = time.monotonic() + 5
        while client.get("/ready").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.get("/ready").json() == {"status": "ready"}
        assert client.post("/v1/answer", json={"query": FRANCE}).json()["answer"]["id"] == "d3"


def test_work_running_past_the_grace_period_is_a_json_503_and_stops(tiny_index):
    """30 one-pair calls of 0.1 s; the stop begins during the first and the grace period is 0.4 s: the client gets
    the error shape with Retry-After (not uvicorn's plain-text 500 later), and scoring stops."""
    scorer = PacedScorer()
    app = make_app(Pipeline(tiny_index, scorer, mode="bm25"), shutdown_grace_seconds=0.4, retry_after_seconds=2,
                   max_batch_pairs=1)
    responses: list[httpx.Response] = []
    with LoadedClient(app) as client:
        request = threading.Thread(target=lambda: responses.append(
            client.post("/v1/rerank", json={"query": FRANCE, "documents": DOCUMENTS})))
        request.start()
        assert scorer.entered.wait(5)
        app.state.runtime.shutdown.begin()  # what SIGTERM does
        began = time.monotonic()
        draining = client.get("/ready")
        assert draining.status_code == 503 and draining.json()["error_type"] == "shutting_down"
        assert client.get("/health").status_code == 200
        request.join(10)
        answered = time.monotonic() - began
        calls = len(scorer.calls)
        time.sleep(0.5)
        # At most the call under way and one started before the 50 ms watch saw the end (not 5 more).
        assert len(scorer.calls) <= calls + 2 < len(DOCUMENTS)
    (response,) = responses
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert response.json() == {"error": "shutting down: the request was still running 0.4 s after the server was "
                                        "told to stop; retry it", "error_type": "shutting_down", "detail": []}
    assert 0.35 < answered < 2


def test_work_that_ends_within_the_grace_period_is_answered_as_usual(tiny_index):
    scorer = PacedScorer()
    app = make_app(Pipeline(tiny_index, scorer, mode="bm25"), shutdown_grace_seconds=5, max_batch_pairs=1)
    responses: list[httpx.Response] = []
    with LoadedClient(app) as client:
        request = threading.Thread(target=lambda: responses.append(
            client.post("/v1/rerank", json={"query": FRANCE, "documents": DOCUMENTS[:4]})))
        request.start()
        assert scorer.entered.wait(5)
        app.state.runtime.shutdown.begin()
        request.join(10)
    assert responses[0].status_code == 200 and len(responses[0].json()["results"]) == 4


# --- a real server ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tiny_index, control: Path, *mode: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(SERVER), str(tiny_index.path), str(port), str(control), "1",
                               *mode], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return server, f"http://127.0.0.1:{port}"


def first_answer(url: str, server: subprocess.Popen) -> httpx.Response:
    """The first answer from `url` once the server listens (connection refused until then)."""
    deadline = time.monotonic() + 60
    while server.poll() is None and time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=5)
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError(f"no answer from {url}; the server {'exited' if server.poll() is not None else 'hung'}")


def test_a_real_server_answers_while_loading_and_exits_0_after_sigterm(tiny_index, tmp_path):
    server, base = start_server(tiny_index, tmp_path)
    try:
        assert first_answer(f"{base}/health", server).status_code == 200
        loading = httpx.get(f"{base}/ready")
        assert loading.status_code == 503 and loading.json()["error_type"] == "loading"
        (tmp_path / "release").touch()
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        responses: list[httpx.Response] = []
        request = threading.Thread(target=lambda: responses.append(httpx.post(
            f"{base}/v1/rerank", json={"query": FRANCE, "documents": DOCUMENTS}, timeout=30)))
        request.start()
        while not (tmp_path / "scoring").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        request.join(30)
        status = server.wait(timeout=30)
    finally:
        server.kill()
        stderr = server.communicate()[1]
    (response,) = responses  # 30 calls of 0.2 s: still running when the 1 s grace period ended
    assert response.status_code == 503 and response.headers["retry-after"] == "2", response.text
    assert response.json()["error_type"] == "shutting_down"
    assert status == 0, stderr


def test_a_real_server_whose_load_fails_exits_3_with_the_loaders_message(tiny_index, tmp_path):
    server, _ = start_server(tiny_index, tmp_path, "fail")
    try:
        status = server.wait(timeout=60)
    finally:
        server.kill()
        stderr = server.communicate()[1]
    assert status == 3 and f"{tiny_index.path}: no index here" in stderr, stderr


def test_two_workers_whose_load_fails_exit_3_with_the_loaders_message(tmp_path):
    """uvicorn's worker supervisor stops once a worker fails to start, but then exited with status 0 itself."""
    index = build_tiny_index(tmp_path).path
    root, manifest = read_manifest(index)
    with (root / sorted(manifest["files"])[0]).open("ab") as f:  # the manifest still reads; loading fails
        f.write(b"extra")
    server = subprocess.Popen([sys.executable, "-m", "earlyrank.cli", "serve", "--index", str(index), "--port",
                               str(free_port()), "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        status = server.wait(timeout=120)
    finally:
        server.kill()
        stderr = server.communicate()[1]
    # The message says what to do; a traceback under it only buried it.
    assert status == 3 and "manifest says" in stderr and "Traceback" not in stderr, stderr
