"""Cohere-compatible ``POST /v1/rerank``: the request and response shapes of Cohere's v1 rerank API.

A client written for Cohere's v1 API works unchanged against this server: documents are strings or
objects with a ``text`` field or the fields named by ``rank_fields``; results are sorted by
``relevance_score`` (here the calibrated confidence), carry the document's ``index`` in the request and,
with ``return_documents``, the document itself; a long document is read in up to ``max_chunks_per_doc``
overlapping chunks (default 10) and scores as its best chunk, whose number the result gives. ``model`` is
accepted and ignored: this server has one model.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from earlyrank.api.errors import UNION_TAGS, invalid
from earlyrank.api.openapi import limit
from earlyrank.api.schemas import Body, OptionalInteger, QueryText, StrictRequest
from earlyrank.engine.rerank import ContentGuard, RerankResult, rerank
from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.stopping import FullRerank
from earlyrank.indexes.types import Hit

STRING_DOCUMENT, OBJECT_DOCUMENT = UNION_TAGS


class DocumentObject(BaseModel):
    """A document as an object: a `text` field and any other string fields, all returned as given."""

    model_config = ConfigDict(extra="allow", strict=True)

    text: str | None = None  # needed unless `rank_fields` names the fields to read
    __pydantic_extra__: dict[str, str]

    def fields(self) -> dict[str, str]:
        """Every field of the object by name, `text` first when it has one."""
        return {**({"text": self.text} if self.text is not None else {}), **(self.model_extra or {})}


def _document_kind(value: object) -> str | None:
    if isinstance(value, str):
        return STRING_DOCUMENT
    return OBJECT_DOCUMENT if isinstance(value, dict | DocumentObject) else None


# Tagged by Python type, so a bad document gets one error in the right place, not one per union member.
DocumentIn = Annotated[
    Annotated[str, Tag(STRING_DOCUMENT)] | Annotated[DocumentObject, Tag(OBJECT_DOCUMENT)],
    Discriminator(_document_kind, custom_error_type="document_type",
                  custom_error_message="must be a string or an object of string fields"),
]


class CohereRerankRequest(StrictRequest):
    """The body of ``POST /v1/rerank``, as in Cohere's v1 rerank API: a query and the documents to rank."""

    model: str | None = Field(None, description="Accepted for compatibility; this server has one model.")
    query: QueryText
    documents: list[DocumentIn] = Field(
        min_length=1, description="Strings, or objects with a `text` field and any other string fields.",
        json_schema_extra=limit(maxItems="max_documents"))
    top_n: OptionalInteger = Field(None, ge=1, description="Results to return (default: all).")
    rank_fields: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, min_length=1, description="Object fields the model reads, in order (default: `text`).")
    return_documents: bool = Field(False, description="Return each document with its result.")
    max_chunks_per_doc: OptionalInteger = Field(None, ge=1, description=(
        "A long document is read in at most this many overlapping chunks of whole sentences, up to 120 words each "
        "(default 10); it scores as its best chunk."))


class ReturnedDocument(BaseModel):
    """A document returned with its result (``return_documents``): its `text` and any other fields it was sent with."""

    model_config = ConfigDict(extra="allow")

    text: str | None = None


class CohereResult(Body):
    """One document's result: its position in the request and its relevance score."""

    index: int = Field(description="Position of the document in the request.")
    relevance_score: float = Field(description="Calibrated probability that the document is relevant.")
    chunk_index: int | None = Field(None, description="Which chunk of a long document gave its score (0: its "
                                                      "start); absent for a document read whole.")
    document: ReturnedDocument | None = None


class ApiVersion(Body):
    """The version of Cohere's API this response follows ("1")."""

    version: str


class BilledUnits(Body):
    """Search units as Cohere bills them, one per 100 documents (at least one); nothing is billed here."""

    search_units: int


class CohereMeta(Body):
    """Response metadata, shaped as Cohere's v1 API returns it."""

    api_version: ApiVersion
    billed_units: BilledUnits
    warnings: list[str] | None = Field(None, description=(
        "As Cohere's meta.warnings: here, each document longer than the chunks read (its rest was not scored)."))


class CohereRerankResponse(Body):
    """The response of ``POST /v1/rerank``: a fresh id, the results by relevance score (at most `top_n`), metadata."""

    id: str
    results: list[CohereResult]
    meta: CohereMeta


def document_texts(request: CohereRerankRequest, max_chars: int) -> list[str]:
    """The text the model reads for each document; a 422 naming the document when one cannot be read.

    An object is read as its `text` field, or as ``field: value`` lines for the `rank_fields` in order.
    """
    wanted = request.rank_fields or ["text"]
    texts = []
    for i, doc in enumerate(request.documents):
        loc = ("body", "documents", i)
        if isinstance(doc, str):
            text = doc
        else:
            fields = doc.fields()
            missing = [f for f in wanted if f not in fields]
            if missing:
                names = ", ".join(repr(f) for f in missing[:3]) + (f" and {len(missing) - 3} more"
                                                                  if len(missing) > 3 else "")
                hint = (" named in rank_fields" if request.rank_fields
                        else "; give one, or name the fields to read in rank_fields")
                raise invalid(loc, f"object has no {names} field{hint}", "missing")
            text = fields["text"] if wanted == ["text"] else "\n".join(f"{f}: {fields[f]}" for f in wanted)
        if len(text) > max_chars:
            raise invalid(loc, f"{len(text)} characters; the limit is {max_chars}", "string_too_long")
        texts.append(text)
    return texts


def check_document_count(documents: Sequence[object], limit: int) -> None:
    """A 422 on `documents` (ApiError) if there are more than `limit` of them."""
    if len(documents) > limit:
        raise invalid(("body", "documents"), f"{len(documents)} documents; the limit is {limit} per request",
                      "too_long")


def score_documents(query: str, texts: list[str], scorer: PairScorer, chunk: int,
                    cancel: threading.Event | None = None) -> RerankResult:
    """Rerank every document (no recall, no early stop), `chunk` pairs per scoring call, starting no call once
    `cancel` is set; a document with no letter or digit is not sent to the model and comes last, at confidence 0."""
    candidates = [Hit(str(i), 0.0, i + 1) for i in range(len(texts))]
    return rerank(query, candidates, texts, ContentGuard(scorer), FullRerank(depth=len(texts), chunk=chunk),
                  cancel=cancel)


def cohere_response(request: CohereRerankRequest, texts: list[str], result: RerankResult,
                    warnings: list[str] | None = None) -> CohereRerankResponse:
    """Every document scored: results by relevance, ties in request order, cut to `top_n`."""
    results = []
    for hit in result.hits[:request.top_n]:
        index = int(hit.doc_id)
        document = None
        if request.return_documents:
            original = request.documents[index]
            document = ReturnedDocument(**({"text": original} if isinstance(original, str) else original.fields()))
        chunk = hit.stage_scores.get("chunk")
        results.append(CohereResult(index=index, relevance_score=hit.confidence,
                                    chunk_index=None if chunk is None else int(chunk), document=document))
    return CohereRerankResponse(id=str(uuid.uuid4()), results=results,
                                meta=cohere_meta("1", len(texts), warnings))


def cohere_meta(version: str, documents: int, warnings: list[str] | None = None) -> CohereMeta:
    """Response metadata: the API version, the search units Cohere would bill (one per query with up to 100
    documents; clients that track usage read it) and any `warnings` (absent when there are none)."""
    return CohereMeta(api_version=ApiVersion(version=version),
                      billed_units=BilledUnits(search_units=max(1, math.ceil(documents / 100))),
                      warnings=warnings or None)
