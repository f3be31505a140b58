"""POST /v1/explain against the real app with the fake scorer (see test_api.py for the fixture's numbers)."""

from __future__ import annotations

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    index = build_tiny_index(tmp_path_factory.mktemp("explain"))
    return TestClient(make_app(Pipeline(index, FakeScorer(), mode="bm25")))


def test_explain_an_indexed_passage(client):
    body = {"query": "why does a volcano erupt", "doc_id": "d6", "num_samples": 200, "num_features": 3}
    response = client.post("/v1/explain", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    # FakeScorer counts query words found in the passage: removing "erupts" always loses "erupt".
    weights = {w["word"]: w["weight"] for w in data["weights"]}
    assert weights.get("erupts", 0) > 0.05 and len(weights) == 3
    assert data["text"].startswith("Volcanoes. A volcano erupts") and data["samples"] == 200
    assert 0 <= data["confidence"] <= 1 and data["r2"] > 0.5
    again = client.post("/v1/explain", json=body).json()
    assert again["weights"] == data["weights"]


def test_explain_free_text_and_errors(client):
    ok = client.post("/v1/explain", json={"query": "coffee caffeine", "document": "Coffee has caffeine in it."})
    assert ok.status_code == 200 and ok.json()["weights"][0]["weight"] > 0
    both = client.post("/v1/explain", json={"query": "q", "document": "x", "doc_id": "d1"})
    assert both.status_code == 422 and "exactly one of document or doc_id" in both.json()["error"]
    missing = client.post("/v1/explain", json={"query": "q", "doc_id": "nope"})
    assert missing.status_code == 404 and "no passage 'nope'" in missing.json()["error"]
    too_many = client.post("/v1/explain", json={"query": "q", "doc_id": "d1", "num_samples": 10**6})
    assert too_many.status_code == 422 and "num_samples" in too_many.json()["error"]
    no_words = client.post("/v1/explain", json={"query": "q", "document": " .,; "})
    assert no_words.status_code == 422 and "no words" in no_words.json()["error"]
