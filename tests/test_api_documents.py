"""``POST /v1/documents`` and ``DELETE /v1/documents/{id}`` against the real app, with its lifespan, over a
BM25-only index of tests/data/tiny (12 documents) built for each test, and the fake scorer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import TINY, FakeScorer
from fastapi.testclient import TestClient
from test_api import BlockingScorer

from earlyrank.api.app import create_app
from earlyrank.engine.datasets import load_corpus
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.settings import Settings
from earlyrank.indexes.store import build_index, load_index
from earlyrank.indexes.types import Document

CLOVES = {"id": "z1", "title": "Zanzibar", "text": "Zanzibar exports cloves.", "metadata": {"region": "east"}}


@pytest.fixture
def index_path(tmp_path) -> Path:
    return build_index(load_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", dense=False, progress=False)


@contextmanager
def serve(index_path: Path, scorer=None, **settings) -> Iterator[TestClient]:
    """A client of the app whose lifespan loads the index at `index_path` with `scorer` (FakeScorer by default),
    once it is ready."""
    app = create_app(Settings(mode="bm25", index_path=index_path, **settings),
                     pipeline_factory=lambda s: Pipeline(load_index(s.index_path), scorer or FakeScorer(), mode="bm25"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        yield client


def search_ids(client: TestClient, query: str) -> list[str]:
    response = client.post("/v1/search", json={"query": query, "mode": "bm25", "top_k": 12})
    assert response.status_code == 200, response.text
    return [h["doc_id"] for h in response.json()["hits"]]


def test_added_documents_are_served_and_written(index_path):
    with serve(index_path) as client:
        response = client.post("/v1/documents", json={"documents": [CLOVES, {"text": "A passage without an id."}]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ids"][0] == "z1" and len(body["ids"][1]) == 16  # an id made from the title and text
        assert (body["added"], body["replaced"], body["documents"]) == (2, 0, 14)
        assert search_ids(client, "Zanzibar cloves")[0] == "z1"
        filtered = client.post("/v1/search", json={"query": "cloves", "mode": "bm25", "filter": {"region": "east"}})
        assert [h["doc_id"] for h in filtered.json()["hits"]] == ["z1"]  # the filters' map is the new version's
        assert client.get("/info").json()["index"]["documents"] == 14
    stored = load_index(index_path)
    assert stored.doc("z1").metadata == {"region": "east"} and len(stored.docs) == 14


def test_an_existing_id_is_replaced_and_delete_removes_it(index_path):
    with serve(index_path) as client:
        assert search_ids(client, "capital of France")[0] == "d3"
        replaced = client.post("/v1/documents", json={"documents": [{"id": "d3", "text": "Lyon weaves silk."}]})
        assert replaced.json()["replaced"] == 1 and replaced.json()["documents"] == 12
        assert search_ids(client, "silk")[0] == "d3" and "d3" not in search_ids(client, "capital of France")
        deleted = client.delete("/v1/documents/d3")
        assert deleted.status_code == 200 and deleted.json()["deleted"] == "d3" and deleted.json()["documents"] == 11
        assert "d3" not in search_ids(client, "silk")
        again = client.delete("/v1/documents/d3")
        assert again.status_code == 404 and again.json()["error_type"] == "not_found"
        assert again.json()["error"] == "no document 'd3' in the index; nothing was changed"
    assert len(load_index(index_path).docs) == 11


def test_an_id_with_a_slash_can_be_deleted(index_path):
    """A folder's documents are named by their paths."""
    with serve(index_path) as client:
        client.post("/v1/documents", json={"documents": [{"id": "guides/setup.md", "text": "Set it up."}]})
        assert client.delete("/v1/documents/guides/setup.md").status_code == 200


@pytest.mark.parametrize("documents, field, message", [
    ([], "documents", "documents: List should have at least 1 item"),
    ([{"id": "z1", "text": "   "}], "documents.0.text", "documents[0].text: is empty"),
    ([{"id": "z1"}], "documents.0.text", "documents[0].text: Field required"),
    ([{"id": "", "text": "x"}], "documents.0.id", "documents[0].id: String should have at least 1 character"),
    ([{"id": 7, "text": "x"}], "documents.0.id", "documents[0].id: Input should be a valid string"),
    ([{"text": "x", "body": "y"}], "documents.0.body", "documents[0].body: Extra inputs are not permitted"),
    ([CLOVES, {**CLOVES, "text": "Again."}], "documents.1.id",
     "documents[1].id: duplicate document id 'z1', first at documents[0]"),
    ([{"text": f"passage {i}"} for i in range(4)], "documents", "documents: 4 documents; the limit is 3"),
    ([{"id": "guide#p3", "text": "x"}], "documents.0.id",
     "documents[0].id: document id 'guide#p3' ends in '#p' and a number"),
    ([{"id": "nl\nx", "text": "x"}], "documents.0.id", "documents[0].id: document id 'nl\\nx' holds a control"),
    ([{"id": "   ", "text": "x"}], "documents.0.id", "documents[0].id: document id '   ' is blank"),
])
def test_bad_documents_are_a_422_naming_the_field_and_change_nothing(index_path, documents, field, message):
    version = index_path.resolve()
    with serve(index_path, max_documents=3, depth=3) as client:
        response = client.post("/v1/documents", json={"documents": documents})
        assert response.status_code == 422, response.text
        assert response.json()["error"].startswith(message)
        assert ".".join(map(str, response.json()["detail"][0]["loc"][1:])) == field
    assert index_path.resolve() == version


def test_deleting_the_last_document_is_refused(tmp_path):
    out = build_index(load_corpus(TINY / "corpus.jsonl")[:1], tmp_path / "idx", dense=False, progress=False)
    with serve(out) as client:
        response = client.delete("/v1/documents/d1")
        assert response.status_code == 409 and "an index needs at least one document" in response.json()["error"]


def test_several_workers_refuse_updates(index_path):
    with serve(index_path, workers=2) as client:
        response = client.post("/v1/documents", json={"documents": [CLOVES]})
        assert response.status_code == 409 and "single server process" in response.json()["error"]


def test_a_request_already_running_finishes_on_the_version_it_started_with(index_path):
    scorer = BlockingScorer()
    with serve(index_path, scorer) as client:
        answers: list = []
        asking = threading.Thread(target=lambda: answers.append(client.post(
            "/v1/answer", json={"query": "What is the capital of France?", "mode": "bm25"})))
        asking.start()
        assert scorer.entered.acquire(timeout=10)  # reranking the old version's candidates
        assert client.delete("/v1/documents/d3").status_code == 200
        scorer.release.set()
        asking.join()
        assert answers[0].status_code == 200 and answers[0].json()["answer"]["id"] == "d3"
        assert "d3" not in search_ids(client, "capital of France")


@pytest.mark.parametrize("doc_id", ["", "%20%20"])
def test_delete_without_an_id_is_refused_naming_the_path(index_path, doc_id):
    with serve(index_path) as client:
        response = client.delete(f"/v1/documents/{doc_id}")
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error_type"] == "validation_error" and "doc_id" in body["error"] and "blank" in body["error"]
    assert len(load_index(index_path).docs) == 12


def test_metadata_that_could_not_be_stored_is_refused_and_an_index_holding_some_still_loads(index_path, tmp_path):
    """NaN in metadata got a 200 and was written; every later load and update of the index then failed on it."""
    with serve(index_path) as client:
        for metadata, problem in (('{"price": NaN}', "NaN or Infinity"),  # Python's json reads NaN; httpx won't send it
                                  # 31 lists in an object are 32 levels, 33 as the index stores them
                                  ('{"deep": ' + "[" * 31 + "1" + "]" * 31 + "}", "nested more than 32 levels")):
            response = client.post("/v1/documents", headers={"content-type": "application/json"},
                                   content='{"documents": [{"text": "Cloves.", "metadata": ' + metadata + "}]}")
            assert response.status_code == 422 and problem in response.json()["error"], response.text
            assert "documents[0].metadata" in response.json()["error"]
    assert len(load_index(index_path).docs) == 12
    # an index written before the check, holding NaN, loads (its own docs.jsonl is not checked as input is)
    old = build_index([Document("a", "Apples.", metadata={"price": float("nan")})], tmp_path / "old", dense=False,
                      progress=False)
    assert load_index(old).doc("a").text == "Apples."
