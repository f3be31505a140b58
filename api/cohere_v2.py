"""Cohere-compatible ``POST /v2/rerank``: the request and response shapes of Cohere's v2 rerank API.

Cohere's current Python client (``cohere.ClientV2(...).rerank(model=..., query=..., documents=[...])``) works
against it unchanged. As in v2, documents are strings (structured data goes in as text, e.g. YAML), results
carry each document's `index` and `relevance_score` (here the calibrated confidence), and documents are not
returned. ``max_tokens_per_doc`` cuts each document to its first that many words (whitespace-separated: a
close count of Cohere's tokens) and reads all of them, in chunks of about 120 words that each fit the model's
window (`document_chunks`); without it, the first 10 chunks are read, as /v1/rerank reads by default.
``model`` and ``priority`` are accepted and ignored: this server has one model and answers in order.
"""

from __future__ import annotations

import uuid

from pydantic import Field

from earlyrank.api.cohere import CohereMeta, cohere_meta
from earlyrank.api.errors import invalid
from earlyrank.api.openapi import limit
from earlyrank.api.schemas import Body, OptionalInteger, QueryText, StrictRequest
from earlyrank.engine.rerank import RerankResult


class CohereV2RerankRequest(StrictRequest):
    """The body of ``POST /v2/rerank``, as in Cohere's v2 rerank API."""

    model: str | None = Field(None, description="Accepted for compatibility; this server has one model.")
    query: QueryText
    documents: list[str] = Field(min_length=1, description="The texts to rank against the query.",
                                 json_schema_extra=limit(maxItems="max_documents"))
    top_n: OptionalInteger = Field(None, ge=1, description="Results to return (default: all).")
    max_tokens_per_doc: OptionalInteger = Field(
        None, ge=1, description="Read this many words of each document, all of them, in chunks of about 120 "
                                "(default: its first 10 chunks, about 1,200 words, as /v1/rerank's "
                                "max_chunks_per_doc).")
    priority: OptionalInteger = Field(None, ge=0, description="Accepted for compatibility; requests are answered "
                                                             "in order.")


class CohereV2Result(Body):
    """One document's result: its position in the request and its relevance score."""

    index: int = Field(description="Position of the document in the request.")
    relevance_score: float = Field(description="Calibrated probability that the document is relevant.")


class CohereV2RerankResponse(Body):
    """The response of ``POST /v2/rerank``: a fresh id, results by relevance score (at most `top_n`), metadata."""

    id: str
    results: list[CohereV2Result]
    meta: CohereMeta


def v2_document_texts(request: CohereV2RerankRequest, max_chars: int) -> list[str]:
    """Each document as the model reads it (cut to `max_tokens_per_doc` words); a 422 naming a document longer
    than `max_chars` characters."""
    texts = []
    for i, text in enumerate(request.documents):
        if request.max_tokens_per_doc is not None:
            words = text.split()
            if len(words) > request.max_tokens_per_doc:
                text = " ".join(words[:request.max_tokens_per_doc])
        if len(text) > max_chars:
            raise invalid(("body", "documents", i), f"{len(text)} characters; the limit is {max_chars}",
                          "string_too_long")
        texts.append(text)
    return texts


def cohere_v2_response(request: CohereV2RerankRequest, texts: list[str], result: RerankResult,
                       warnings: list[str] | None = None) -> CohereV2RerankResponse:
    """Every document scored: results by relevance, ties in request order, cut to `top_n`."""
    results = [CohereV2Result(index=int(hit.doc_id), relevance_score=hit.confidence or 0.0)
               for hit in result.hits[:request.top_n]]
    return CohereV2RerankResponse(id=str(uuid.uuid4()), results=results,
                                  meta=cohere_meta("2", len(texts), warnings))
