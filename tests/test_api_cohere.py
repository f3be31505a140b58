"""``POST /v1/rerank`` speaks Cohere's v1 rerank API: its shapes, checked by hand and by Cohere's own client.

FakeScorer's logit is (query words found in the document) - 2, so for the query "capital of France":
"Paris is the capital of France" -> 1 (0.7311), "France has wine" -> -1 (0.2689), "cats purr" -> -2 (0.1192).
"""

from __future__ import annotations

import pytest
from conftest import FakeScorer
from fastapi.testclient import TestClient
from test_api import build_tiny_index, make_app

from earlyrank.engine.pipeline import Pipeline
from earlyrank.indexes.store import LoadedIndex

QUERY = "capital of France"
DOCS = ["cats purr", "Paris is the capital of France", "France has wine"]


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> LoadedIndex:
    return build_tiny_index(tmp_path_factory.mktemp("cohere"))


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def client(tiny_index, scorer) -> TestClient:
    return TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), max_documents=5, depth=5,
                               max_document_chars=40, max_batch_pairs=2))


def test_results_sorted_by_calibrated_relevance_with_request_indexes(client, scorer):
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "results", "meta"} and body["id"]
    assert [r["index"] for r in body["results"]] == [1, 2, 0]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx([0.731059, 0.268941, 0.119203],
                                                                            abs=1e-6)
    assert all("document" not in r for r in body["results"])  # Cohere's default: return_documents false
    assert body["meta"] == {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}
    assert sum(scorer.calls) == 3 and max(scorer.calls) <= 2  # every document, in max_batch_pairs chunks


def test_top_n_return_documents_and_ties_in_request_order(client):
    docs = ["dogs bark", "Paris is the capital of France", "cats purr"]  # "dogs bark" and "cats purr" tie
    body = client.post("/v1/rerank", json={"model": "rerank-english-v3.0", "query": QUERY, "documents": docs,
                                           "top_n": 2, "return_documents": True,
                                           "max_chunks_per_doc": 10}).json()
    assert body["results"] == [
        {"index": 1, "relevance_score": pytest.approx(0.731059, abs=1e-6),
         "document": {"text": "Paris is the capital of France"}},
        {"index": 0, "relevance_score": pytest.approx(0.119203, abs=1e-6), "document": {"text": "dogs bark"}},
    ]


def test_object_documents_keep_their_fields_and_rank_fields_choose_the_text(client):
    docs = [{"text": "cats purr", "source": "a"}, {"title": "Paris", "body": "capital of France"}]
    missing = client.post("/v1/rerank", json={"query": QUERY, "documents": docs})
    assert missing.status_code == 422 and missing.json()["error"] == (
        "documents[1]: object has no 'text' field; give one, or name the fields to read in rank_fields")
    docs[1]["text"] = "see body"
    unnamed = client.post("/v1/rerank", json={"query": QUERY, "documents": docs, "rank_fields": ["title", "body"]})
    assert unnamed.status_code == 422
    assert unnamed.json()["error"] == "documents[0]: object has no 'title', 'body' field named in rank_fields"
    docs[0].update(title="Cats", body="cats purr")
    body = client.post("/v1/rerank", json={"query": QUERY, "documents": docs, "rank_fields": ["title", "body"],
                                           "return_documents": True}).json()
    # The model reads "title: Paris\nbody: capital of France": all three query words, logit 1.
    assert body["results"][0] == {"index": 1, "relevance_score": pytest.approx(0.731059, abs=1e-6),
                                  "document": {"text": "see body", "title": "Paris", "body": "capital of France"}}
    assert body["results"][1]["document"] == {"text": "cats purr", "source": "a", "title": "Cats",
                                              "body": "cats purr"}
    plain = client.post("/v1/rerank", json={"query": QUERY, "documents": docs}).json()
    assert [r["index"] for r in plain["results"]] == [0, 1]  # "cats purr" -2 and "see body" -2 tie: in order


@pytest.mark.parametrize("body, field", [
    ({"query": QUERY, "documents": []}, "documents"),
    ({"query": QUERY}, "documents"),
    ({"query": QUERY, "documents": "one string"}, "documents"),
    ({"query": QUERY, "documents": [1, 2]}, "documents[0]"),
    ({"query": QUERY, "documents": ["a", None]}, "documents[1]"),
    ({"query": QUERY, "documents": [{"text": 3}]}, "documents[0].text"),
    ({"query": QUERY, "documents": [{"text": "a", "year": 1999}]}, "documents[0].year"),
    ({"query": QUERY, "documents": ["a"] * 6}, "documents"),
    ({"query": QUERY, "documents": ["a", "x" * 41]}, "documents[1]"),
    ({"query": "", "documents": ["a"]}, "query"),
    ({"query": QUERY, "documents": ["a"], "top_n": 0}, "top_n"),
    ({"query": QUERY, "documents": ["a"], "return_documents": "true"}, "return_documents"),
    ({"query": QUERY, "documents": ["a"], "rank_fields": []}, "rank_fields"),
    ({"query": QUERY, "documents": ["a"], "truncate": "END"}, "truncate"),
])
def test_bad_rerank_requests_are_422_naming_the_field(client, scorer, body, field):
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}: ")
    assert response.json()["detail"]
    assert scorer.calls == []


@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument with the TestClient")
def test_cohere_python_client_works_unchanged(client):
    cohere = pytest.importorskip("cohere")
    co = cohere.Client(api_key="not-needed", base_url=str(client.base_url), httpx_client=client)
    response = co.rerank(model="rerank-english-v3.0", query=QUERY, documents=DOCS, top_n=2, return_documents=True)
    assert [r.index for r in response.results] == [1, 2]
    assert response.results[0].relevance_score == pytest.approx(0.731059, abs=1e-6)
    assert response.results[0].document.text == "Paris is the capital of France"
    assert response.meta.api_version.version == "1" and response.id
    with pytest.raises(cohere.core.api_error.ApiError) as refused:
        co.rerank(query="", documents=DOCS)
    assert refused.value.status_code == 422 and refused.value.body["error"].startswith("query: ")


def test_objects_ranked_by_a_field_other_than_text(client):
    """Objects whose only field is the one `rank_fields` names were once refused for lacking `text`."""
    docs = [{"content": "cats purr"}, {"content": "Paris is the capital of France", "id": "p"}]
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": docs, "rank_fields": ["content"],
                                               "return_documents": True})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [1, 0]
    assert results[0]["document"] == {"content": "Paris is the capital of France", "id": "p"}
    no_field = client.post("/v1/rerank", json={"query": QUERY, "documents": [{"content": "x"}]})
    assert no_field.status_code == 422 and no_field.json()["error"].startswith("documents[0]:")


def test_v2_rerank_with_cohere_client_v2(client):
    cohere = pytest.importorskip("cohere")
    co = cohere.ClientV2(api_key="not-needed", base_url=str(client.base_url), httpx_client=client)
    response = co.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=2)
    assert [r.index for r in response.results] == [1, 2]
    assert response.results[0].relevance_score == pytest.approx(0.731059, abs=1e-6)
    assert response.meta.api_version.version == "2" and response.id
    # The answer's words after the first two are not read: "Paris is" has no query word (logit -2).
    cut = co.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, max_tokens_per_doc=2)
    assert [r.relevance_score for r in cut.results if r.index == 1] == [pytest.approx(0.119203, abs=1e-6)]
    with pytest.raises(cohere.core.api_error.ApiError) as refused:
        co.rerank(model="rerank-v3.5", query="", documents=DOCS)
    assert refused.value.status_code == 422 and refused.value.body["error"].startswith("query: ")


def test_v2_rerank_refuses_what_v2_does_not_take(client):
    objects = client.post("/v2/rerank", json={"query": QUERY, "documents": [{"text": "x"}]})
    assert objects.status_code == 422 and objects.json()["error"].startswith("documents[0]:")
    zero = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, "max_tokens_per_doc": 0})
    assert zero.status_code == 422 and zero.json()["error"].startswith("max_tokens_per_doc:")
    too_many = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS * 2})
    assert too_many.status_code == 422 and "the limit is 5" in too_many.json()["error"]


def test_a_long_document_scores_as_its_best_chunk_and_says_which(tiny_index, scorer):
    """Issue 19: an answer after 1,900 characters of filler once scored 0.001 against 0.846 at the start."""
    from earlyrank.api.document_chunks import CHUNK_WORDS, document_chunks

    filler = " ".join(["Filler words about nothing in particular."] * 60)  # 360 words
    late = f"{filler} Paris is the capital of France."
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), max_document_chars=5000))
    body = client.post("/v1/rerank", json={"query": QUERY, "documents": [late, "Paris is the capital of France."]})
    results = body.json()["results"]
    assert [r["relevance_score"] for r in results] == [pytest.approx(0.731059, abs=1e-6)] * 2
    assert {r["index"]: r.get("chunk_index") for r in results} == {0: 3, 1: None}
    few = client.post("/v1/rerank", json={"query": QUERY, "documents": [late], "max_chunks_per_doc": 2}).json()
    assert few["results"][0]["relevance_score"] < 0.2  # the first two chunks hold only filler
    # ... and the response says so (it did not): the rest of the document was never read
    assert few["meta"]["warnings"] == ["document 0: read its first 2 of 4 chunks of about 120 words; the rest was "
                                       "not scored (raise max_chunks_per_doc, or max_tokens_per_doc on /v2/rerank, "
                                       "to read it)"]
    assert "warnings" not in body.json()["meta"]  # everything read: no warnings at all
    chunks = document_chunks(late, 10)
    assert len(chunks) == 4 and all(len(c.split()) <= CHUNK_WORDS for c in chunks)
    assert chunks[-1].endswith("capital of France.") and document_chunks("short text") == ["short text"]


def test_v2_reads_as_many_words_as_max_tokens_per_doc_asks(tiny_index, scorer):
    """/v2/rerank documented max_tokens_per_doc as "default: all of it" yet always read at most 10 chunks (about
    1,200 words), so an answer past them scored as filler even when the caller asked for 100,000 words."""
    filler = " ".join(["Filler words about nothing in particular."] * 240)  # 1,440 words: 12 or more chunks
    late = f"{filler} Paris is the capital of France."
    client = TestClient(make_app(Pipeline(tiny_index, scorer, mode="bm25"), max_document_chars=20_000))

    def score(**options) -> float:
        response = client.post("/v2/rerank", json={"query": QUERY, "documents": [late], **options})
        assert response.status_code == 200, response.text
        return response.json()["results"][0]["relevance_score"]

    assert score() < 0.2  # the default: the first 10 chunks, as /v1/rerank's max_chunks_per_doc
    cut = client.post("/v2/rerank", json={"query": QUERY, "documents": [late]}).json()["meta"]["warnings"]
    assert len(cut) == 1 and cut[0].startswith("document 0: read its first 10 of ")
    assert score(max_tokens_per_doc=100_000) == pytest.approx(0.731059, abs=1e-6)
    assert score(max_tokens_per_doc=1_000) < 0.2  # cut before the answer
