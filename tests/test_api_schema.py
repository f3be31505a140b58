"""The served /openapi.json says what the server accepts: what schemathesis's checks found (issue 21), each case
reproduced alone. A request the schema calls valid is not refused for its form, one it calls invalid is refused,
and the schema is read as a client's validator reads it (jsonschema-rs, JSON Schema 2020-12).
"""

from __future__ import annotations

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import FRANCE, build_tiny_index, make_app

from earlyrank.api.openapi import limit, with_limits
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.settings import Settings
from earlyrank.indexes.store import LoadedIndex

jsonschema_rs = pytest.importorskip("jsonschema_rs")  # schemathesis's validator, installed with it


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("schema"))


@pytest.fixture(scope="module")
def client(tiny_index) -> TestClient:
    return TestClient(make_app(Pipeline(tiny_index, FakeScorer(), mode="bm25"), depth=3, max_documents=3,
                               max_query_chars=50, max_document_chars=100))


def valid(client: TestClient, model: str, body: dict) -> bool:
    """Whether `body` is valid by the request schema `model` of the client's app's /openapi.json."""
    components = client.get("/openapi.json").json()["components"]
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{model}",
                                        "components": components}).is_valid(body)


@pytest.mark.parametrize("path, body", [
    ("/v1/answer", {"query": FRANCE, "top_k": 1.0, "max_candidates": 2.0, "timeout_ms": 60000.0}),
    ("/v1/search", {"query": FRANCE, "top_k": 1.0, "rerank": True}),
    ("/v1/rerank", {"query": FRANCE, "documents": ["Paris", "Berlin"], "top_n": 1.0, "max_chunks_per_doc": 2.0}),
    ("/v2/rerank", {"query": FRANCE, "documents": ["Paris", "Berlin"], "top_n": 1.0, "max_tokens_per_doc": 5.0,
                    "priority": 0.0}),
    ("/v1/explain", {"query": FRANCE, "document": "Paris is big", "num_samples": 8.0, "num_features": 1.0,
                     "seed": 3.0}),
])
def test_a_whole_number_written_with_a_fraction_is_an_integer(client, path, body):
    # JSON has one number type: 1.0 is the integer JSON Schema's `integer` allows (found: "top_n": 8.0 was a 422).
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer.get("hits", answer.get("results", answer.get("weights")))) == 1


@pytest.mark.parametrize("value", [1.5, "1", True])
def test_other_non_integers_are_still_refused(client, value):
    response = client.post("/v2/rerank", json={"query": FRANCE, "documents": ["Paris"], "top_n": value})
    assert response.status_code == 422 and response.json()["error"].startswith("top_n:")


@pytest.mark.parametrize("body, ok", [
    ({"query": "Paris?", "document": "Paris is big"}, True),
    ({"query": "Paris?", "doc_id": "d3"}, True),
    ({"query": "Paris?", "document": "Paris is big", "doc_id": None}, True),
    ({"query": "Paris?"}, False),  # found: valid by the schema, a 422 from the server
    ({"query": "Paris?", "document": "Paris is big", "doc_id": "d3"}, False),
    ({"query": "Paris?", "document": None, "doc_id": None}, False),
])
def test_explain_takes_exactly_one_passage_and_the_schema_says_so(client, body, ok):
    assert valid(client, "ExplainRequest", body) is ok
    assert (client.post("/v1/explain", json={**body, "num_samples": 8}).status_code == 200) is ok


@pytest.mark.parametrize("text", ["¬", "...", " _ ", "é", "東京", "½", "Paris?"])
def test_a_query_needs_a_letter_or_digit_by_the_schema_as_by_the_server(client, text):
    # Found: the pattern was `\S`, so "¬" was valid by the schema and a 422 from the server.
    accepted = client.post("/v2/rerank", json={"query": text, "documents": ["Paris"]}).status_code == 200
    assert valid(client, "CohereV2RerankRequest", {"query": text, "documents": ["Paris"]}) is accepted
    assert accepted is any(c.isalnum() or c == "_" for c in text)
    explained = client.post("/v1/explain", json={"query": "Paris?", "document": text, "num_samples": 8})
    assert valid(client, "ExplainRequest", {"query": "Paris?", "document": text}) is (explained.status_code == 200)


def test_the_schema_carries_the_limits_the_settings_set(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["AnswerRequest"]["properties"]["query"]["maxLength"] == 50
    assert schemas["AnswerRequest"]["properties"]["max_candidates"]["maximum"] == 3
    assert schemas["ExplainRequest"]["properties"]["document"]["maxLength"] == 100
    for model in ("CohereRerankRequest", "CohereV2RerankRequest", "AddDocumentsRequest"):
        assert schemas[model]["properties"]["documents"]["maxItems"] == 3
    assert "x-earlyrank-limit" not in str(schemas)


@pytest.mark.parametrize("model, path, body", [
    ("AnswerRequest", "/v1/answer", {"query": "q" * 50, "max_candidates": 3}),
    ("CohereV2RerankRequest", "/v2/rerank", {"query": "Paris?", "documents": ["Paris"] * 3}),
    ("ExplainRequest", "/v1/explain", {"query": "Paris?", "document": "p" * 100, "num_samples": 8}),
])
def test_a_request_at_a_limit_is_valid_and_served_and_one_past_it_neither(client, model, path, body):
    assert valid(client, model, body) and client.post(path, json=body).status_code == 200
    over = {key: value + value[:1] if isinstance(value, str | list) else value + 1 for key, value in body.items()}
    assert not valid(client, model, over) and client.post(path, json=over).status_code == 422


def test_a_limit_names_a_setting():
    assert with_limits({"type": "string", **limit(maxLength="max_query_chars")}, Settings(max_query_chars=7)) == {
        "type": "string", "maxLength": 7}
    with pytest.raises(ValueError, match="no such setting: max_query_length"):
        limit(maxLength="max_query_length")


def test_metrics_are_in_the_schema_as_text(client):
    content = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_only_answers_and_searches_document_a_504(client):
    paths = client.get("/openapi.json").json()["paths"]
    with_504 = {path for path, item in paths.items() for operation in item.values() if "504" in operation["responses"]}
    assert with_504 == {"/v1/answer", "/v1/search"}
