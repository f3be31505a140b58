"""Invalid Unicode and absurd JSON get a clear 422 in the project's error shape, never a 500, and one bad
request never fails the requests batched with it (issue 21, items 2 and 4).

JSON allows a lone surrogate (``"\\ud800"``); Python keeps it in a str, and the real tokenizer then fails on it.
`StrictScorer` fails the same way, so a surrogate that reached the model would be a 500 here too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import build_tiny_index, make_app
from test_api_batching import score_concurrently
from typer.testing import CliRunner

from earlyrank.api.batching import BatchingScorer, BatchScoringError
from earlyrank.cli import app as cli
from earlyrank.engine.pipeline import Pipeline
from earlyrank.indexes.store import LoadedIndex

SURROGATE = "\ud800"


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("bad_input"))


class StrictScorer(FakeScorer):
    """Refuses text that is not UTF-8, as a real tokenizer does."""

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        for text in [*queries, *passages]:
            text.encode("utf-8")
        return super().logits(queries, passages)

    def score(self, query: str, passages: Sequence[str]):
        self.logits([query] * len(passages), passages)
        return super().score(query, passages)


@pytest.fixture
def client(tiny_index) -> TestClient:
    return TestClient(make_app(Pipeline(tiny_index, StrictScorer(), mode="bm25")), raise_server_exceptions=False)


def post(client: TestClient, path: str, body: dict):
    """Send `body` with lone surrogates escaped as JSON allows (``json.dumps`` writes them as \\ud800)."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize("path, body, field, where", [
    ("/v1/answer", {"query": f"Paris {SURROGATE}"}, "query", ""),
    ("/v1/search", {"query": f"Paris {SURROGATE}", "rerank": True}, "query", ""),
    ("/v1/explain", {"query": f"capital {SURROGATE}", "document": "Paris"}, "query", ""),
    ("/v1/explain", {"query": "capital", "document": f"Paris {SURROGATE}"}, "document", ""),
    ("/v1/explain", {"query": "capital", "doc_id": f"d3{SURROGATE}"}, "doc_id", ""),
    ("/v1/rerank", {"query": f"capital {SURROGATE}", "documents": ["Paris"]}, "query", ""),
    ("/v1/rerank", {"query": "capital", "documents": ["Berlin", f"Paris {SURROGATE}"]}, "documents",
     " of documents[1]"),
    ("/v1/rerank", {"query": "capital", "documents": [{"text": f"Paris {SURROGATE}"}]}, "documents",
     " of documents[0].text"),
    ("/v1/rerank", {"query": "capital", "documents": [{"text": "Paris", "title": f"x {SURROGATE}"}],
                    "rank_fields": ["title"]}, "documents", " of documents[0].title"),
    ("/v1/rerank", {"query": "capital", "documents": [{"text": "Paris", f"t{SURROGATE}": "x"}]}, "documents",
     " of documents[0] (a field name)"),
    ("/v1/rerank", {"query": "capital", "documents": ["Paris"], "rank_fields": [f"x {SURROGATE}"]}, "rank_fields",
     " of rank_fields[0]"),
    ("/v1/rerank", {"query": "capital", "documents": ["Paris"], "model": f"m{SURROGATE}"}, "model", ""),
])
def test_a_lone_surrogate_in_any_text_field_is_a_422_naming_it(client, path, body, field, where):
    response = post(client, path, body)
    assert response.status_code == 422, response.text
    at = 1 if field in ("model",) else (2 if field == "doc_id" else None)
    got = response.json()
    assert got["error_type"] == "validation_error" and got["detail"][0]["loc"] == ["body", field]
    assert got["error"].startswith(f"{field}: a lone surrogate (invalid Unicode) at character ")
    assert got["error"].endswith(f"{where}; send UTF-8 text")
    if at is not None:
        assert f"at character {at}{where};" in got["error"]


def test_an_unknown_field_named_with_a_surrogate_is_still_a_json_422(client):
    response = post(client, "/v1/answer", {"query": "capital", f"x{SURROGATE}": 1})
    assert response.status_code == 422 and response.json()["error_type"] == "validation_error"


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_deeply_nested_json_is_a_422_that_says_so(client, depth):
    response = client.post("/v1/answer", content="[" * depth + "]" * depth,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert body["error_type"] == "validation_error"
    assert body["error"] == "body: JSON nested too deeply to parse; no field of this API nests more than a few levels"
    assert body["detail"] == [{"loc": ["body"], "msg": "JSON nested too deeply", "type": "json_too_deep"}]


class FailsOnBad(FakeScorer):
    """A model whose forward pass fails for the whole batch if any pair in it holds "BAD"."""

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        self.batches.append(list(queries))
        if any("BAD" in p for p in passages):
            raise ValueError("the tokenizer refused a passage")
        return np.array([self.logit(q, p) for q, p in zip(queries, passages, strict=True)], dtype=np.float64)


def test_a_failing_request_does_not_fail_the_strangers_batched_with_it():
    model = FailsOnBad()
    requests = [("capital of France", ["Paris is the capital of France"]), ("bad one", ["a BAD passage"]),
                ("which animals hunt mice", ["cats hunt mice", "tea"])]
    batcher = BatchingScorer(model, max_wait_ms=2000, max_pairs=4)  # all four pairs: one batch, at once
    results: list = [None] * 3
    start = threading.Barrier(3)

    def work(i: int) -> None:
        start.wait()
        try:
            results[i] = batcher.score(*requests[i])
        except BatchScoringError as e:
            results[i] = e
    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        batcher.close()
    assert len(model.batches[0]) == 4  # the three went out together first
    assert isinstance(results[1], BatchScoringError) and "refused" in str(results[1])
    for i in (0, 2):
        alone = model.score(*requests[i])
        np.testing.assert_allclose(results[i].logits, alone.logits)
        np.testing.assert_allclose(results[i].confidences, alone.confidences)


def test_good_batches_still_go_out_whole():
    model = FailsOnBad()
    batcher = BatchingScorer(model, max_wait_ms=2000, max_pairs=3)
    try:
        score_concurrently(batcher, [("q one", ["a", "b"]), ("q two", ["c"])])
    finally:
        batcher.close()
    assert len(model.batches) == 1 and batcher.batches == 1


@pytest.mark.parametrize("args", [
    ["ask", "caf\udcff capital"], ["search", "caf\udcff capital"], ["explain", "caf\udcff", "--doc", "d3"],
    ["explain", "capital", "--doc", "d\udcff"],
])
def test_cli_arguments_that_are_not_utf8_are_one_line_errors(args):
    # A byte that is not UTF-8 reaches Python's argv as a lone surrogate (\udcff for 0xff).
    result = CliRunner().invoke(cli, [*args, "--index", "/nonexistent-index"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    what = "--doc id" if "--doc" in args and "\udcff" in args[-1] else "query"
    assert result.output.strip().splitlines() == [
        f"error: the {what} is not UTF-8 text (byte 0xff at character {1 if what != 'query' else 3}); "
        f"check the terminal's encoding"]


@pytest.mark.parametrize(("content", "headers", "message"), [
    ('{"query": "capital of France"}', {"content-type": "text/plain"},
     "body: send the body as a JSON object with the header 'content-type: application/json' (this request's "
     "content-type: text/plain)"),
    ("query=capital", {"content-type": "application/x-www-form-urlencoded"}, "content-type: application/x-www-form"),
    ('["capital of France"]', {"content-type": "application/json"}, "body: must be a JSON object ({...})"),
])
def test_a_body_that_is_not_a_json_object_says_what_to_send(client, content, headers, message):
    """Pydantic's "Input should be a valid dictionary or object to extract fields from" named neither the missing
    content-type (curl -d sends a form) nor what to send."""
    response = client.post("/v1/answer", content=content, headers=headers)
    assert response.status_code == 422 and message in response.json()["error"]
