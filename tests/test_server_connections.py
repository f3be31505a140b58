"""Client connections of a real server (tests/fake_server.py, a fake scorer): an idle keep-alive connection outlives
the clients' own idle limits, so a client never sends a request on a connection the server is closing."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
from test_api import build_tiny_index
from test_shutdown import first_answer, start_server

from earlyrank.indexes.store import LoadedIndex

HTTPX_KEEP_ALIVE_SECONDS = 5.0  # httpx's default keepalive_expiry: it reuses a connection idle up to this long


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("connections"))


def test_a_connection_idle_past_the_clients_keep_alive_still_answers(tiny_index, tmp_path):
    # With uvicorn's 5 s the server closed such a connection as httpx, trusting its own 5 s, sent a request on
    # it: a reset, about one request in 70,000 in a 10-minute soak (benchmarks/load.py --soak).
    server, base = start_server(tiny_index, tmp_path)
    try:
        first_answer(f"{base}/health", server)
        url = urlsplit(base)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        connection.request("GET", "/health")
        assert connection.getresponse().read() and connection.sock is not None
        socket = connection.sock
        time.sleep(HTTPX_KEEP_ALIVE_SECONDS + 0.5)
        connection.request("GET", "/health")  # on the same socket: http.client reopens only a socket it closed
        response = connection.getresponse()
        assert response.status == 200 and connection.sock is socket
        connection.close()
    finally:
        server.kill()
        server.communicate()
