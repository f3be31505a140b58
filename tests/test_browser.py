"""The web page in a real headless Chromium (Debian's package; .ci/run installs it), served by uvicorn."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import uvicorn
from conftest import FakeScorer
from test_api import build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def serve(app):
    """Run `app` on a free port in a thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    index = build_tiny_index(tmp_path_factory.mktemp("browser"))
    yield from serve(make_app(Pipeline(index, FakeScorer(), mode="bm25")))


@pytest.fixture(scope="module")
def gated_url(tmp_path_factory):
    """A model whose answer gate withholds every answer: answer confidence sigmoid(3 - 1) = 88.1% < 99%."""
    from earlyrank.engine.abstention import AnswerGate
    from earlyrank.engine.calibration import Calibration

    index = build_tiny_index(tmp_path_factory.mktemp("gated"))
    gate = AnswerGate.platt(Calibration(1.0, -1.0, "platt"), threshold=0.99)
    yield from serve(make_app(Pipeline(index, FakeScorer(), mode="bm25", answer_gate=gate)))


def rendered(url: str, tmp_path) -> str:
    """The page's DOM after its scripts ran (asking the question given in ?q=)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_page_asks_and_shows_answer_confidence_and_cost(base_url, tmp_path):
    query = urllib.parse.quote("What is the capital of France?")
    dom = rendered(f"{base_url}/?q={query}", tmp_path)
    assert '<div class="answer"><h2>Paris</h2>' in dom
    # The answer sentence is marked inside the passage (here the passage is one sentence).
    assert ('<mark class="answer-sentence">Paris is the capital of France and home to the Eiffel Tower.</mark>'
            in dom)
    assert "Scored 2 of 2 candidates" in dom  # BM25 recalls d3 and d4; the fake scores both
    assert "95.3%" in dom  # sigmoid(3) for Paris, shown as the confidence bar's label
    assert dom.count('<li>') == 2 and "Berlin" in dom


def test_page_shows_errors_from_the_api(base_url, tmp_path):
    dom = rendered(f"{base_url}/?q=%20", tmp_path)  # a blank question passes the form, the API refuses it
    assert '<div class="error">422: query:' in dom and '<div class="answer">' not in dom


def test_page_says_no_confident_answer_plainly_with_the_warning(base_url, tmp_path):
    query = urllib.parse.quote("法国的首都是哪里")
    dom = rendered(f"{base_url}/?q={query}", tmp_path)
    assert '<div class="no-answer">No confident answer.</div>' in dom and '<div class="answer">' not in dom
    assert '<p class="warning">' in dom and "English only" in dom


def test_a_withheld_answer_names_both_probabilities(gated_url, tmp_path):
    """"answers it with 0.0% confidence" above a 78.8% bar read as a contradiction: the two figures are the answer
    confidence and each passage's relevance, and the page now names both."""
    dom = rendered(f"{gated_url}/?q={urllib.parse.quote('What is the capital of France?')}", tmp_path)
    assert ("No confident answer. Answer confidence of the best passage below: 88.1% (the bars show each "
            "passage's relevance).") in dom
    assert '<div class="answer">' not in dom and "95.3%" in dom  # Paris's relevance bar
