"""`earlyrank serve --workers 2`: two server processes on one port, each answering like a single process, 503
loading until its model has loaded, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from earlyrank.engine.datasets import load_corpus
from earlyrank.indexes.store import build_index

pytestmark = pytest.mark.slow
TINY = Path(__file__).parent / "data" / "tiny" / "corpus.jsonl"


def workers(pid: int) -> list[int]:
    """uvicorn's worker processes under `pid`: its spawned children (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if parent == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts worker processes through /proc")
def test_two_workers_share_the_port_and_answer_alike(tmp_path):
    index = build_index(load_corpus(TINY), tmp_path / "idx", dense=False, progress=False, corpus_name="tiny")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "EARLYRANK_MODE": "bm25", "EARLYRANK_DEPTH": "12"}
    server = subprocess.Popen([sys.executable, "-m", "earlyrank.cli", "serve", "--index", str(index), "--port",
                               str(port), "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(workers(server.pid)) < 2:
            time.sleep(0.5)
        assert len(workers(server.pid)) == 2, "uvicorn did not start two worker processes"
        # Once a worker has started, the port answers while the models load: /ready is a 503 loading (before,
        # it was refused, or with two workers hung, until a model had loaded).
        seen = set()
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{base}/ready", timeout=15)
            except httpx.ConnectError:  # no worker listens yet
                time.sleep(0.2)
                continue
            if ready.status_code == 200:
                break
            seen.add(ready.json()["error_type"])
            time.sleep(0.2)
        assert seen == {"loading"}
        answers = set()
        while time.monotonic() < deadline and len(answers) < 1:
            try:
                response = httpx.post(f"{base}/v1/answer", json={"query": "Which animals hunt mice?"}, timeout=60)
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if response.status_code == 503:  # a worker still loading its model
                time.sleep(0.5)
                continue
            assert response.status_code == 200, response.text
            answers.add(response.json()["answer"]["id"])
        # Enough requests that both workers take some; every one gets the same answer. The other worker may still
        # be loading its model: its 503 loading is the designed answer then, so only count what was answered.
        answered = 0
        while answered < 8 and time.monotonic() < deadline:
            response = httpx.post(f"{base}/v1/answer", json={"query": "Which animals hunt mice?"}, timeout=60)
            if response.status_code == 503 and response.json()["error_type"] == "loading":
                time.sleep(0.5)
                continue
            assert response.status_code == 200, response.text
            answers.add(response.json()["answer"]["id"])
            answered += 1
        assert answered == 8
        assert len(answers) == 1 and answers <= {"d1", "d10"}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0  # a clean stop, as a supervisor expects
    finally:
        server.kill()
