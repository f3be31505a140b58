"""Change the served index: ``POST /v1/documents`` adds (or replaces) documents, ``DELETE /v1/documents/{id}``
deletes one.

Each writes a new version of the index on disk (`indexes.update`: crash-safe, one writer at a time), then
serves it: the app's pipeline is swapped for one over the new version, and requests already running finish
on the version they started with. With several server processes (``--workers N``) each holds its own copy
of the index, so updates over HTTP are refused (409); use ``earlyrank add`` and restart the server.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, Field

from earlyrank.api.deps import Runtime, get_pipeline, get_runtime
from earlyrank.api.errors import ApiError, invalid
from earlyrank.api.openapi import limit
from earlyrank.api.schemas import Body, ErrorResponse, StrictRequest
from earlyrank.engine.pipeline import Pipeline
from earlyrank.indexes.corpus import record_problem
from earlyrank.indexes.document_files import content_id
from earlyrank.indexes.passage_table import check_document_id
from earlyrank.indexes.store import IndexStoreError
from earlyrank.indexes.types import Document
from earlyrank.indexes.update import UnknownDocumentError, UpdateResult, update_index

log = logging.getLogger("earlyrank.api")
router = APIRouter()
RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (409, 413, 422, 503)}
# One update at a time in this process, from writing the new version to serving it, so that the versions are
# served in the order they were written (the index's lock file orders the writers of all processes).
_WRITER = threading.Lock()


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty")
    return text


def _storable(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` if it can be written to the index and served back (`indexes.corpus.record_problem`): NaN passed,
    was written, and the index could then not be loaded, nor updated again."""
    if problem := record_problem({"metadata": metadata}):  # as the index stores it, one level down
        raise ValueError(problem)
    return metadata


class DocumentIn(StrictRequest):
    """A document to add: as a line of the JSON files `earlyrank index` reads."""

    id: Annotated[str | None, AfterValidator(lambda v: v if v is None else check_document_id(v))] = Field(
        None, min_length=1, description=(
        "The document's id; one the index holds is replaced. Without one, the id is made from the title and "
        "text (16 hex digits of their SHA-256), as `earlyrank index` does."))
    title: str = Field("", description="Optional title, read with the text by recall and the reranker.")
    text: Annotated[str, Field(min_length=1, description="The passage."), AfterValidator(_not_blank)]
    metadata: Annotated[dict[str, Any], AfterValidator(_storable)] = Field(
        default_factory=dict, description="Any other fields, kept with the document: no NaN or Infinity, and at most "
        "32 levels of objects and lists.")


class AddDocumentsRequest(StrictRequest):
    """The body of ``POST /v1/documents``."""

    documents: list[DocumentIn] = Field(min_length=1, json_schema_extra=limit(maxItems="max_documents"), description=(
        "Documents to add, ids unique; at most the server's max_documents."))


class AddDocumentsResponse(Body):
    """What ``POST /v1/documents`` did."""

    ids: list[str] = Field(description="The documents' ids, in the order sent (made ones included).")
    added: int = Field(description="Documents new to the index.")
    replaced: int = Field(description="Documents that replaced one with the same id.")
    documents: int = Field(description="Documents in the index now.")
    seconds: float = Field(description="Time the update took, writing the new version included.")


class DeleteDocumentResponse(Body):
    """What ``DELETE /v1/documents/{id}`` did."""

    deleted: str = Field(description="The id of the deleted document.")
    documents: int = Field(description="Documents in the index now.")
    seconds: float = Field(description="Time the update took, writing the new version included.")


def to_documents(items: Sequence[DocumentIn]) -> list[Document]:
    """The request's documents, each with its id (made from title and text when missing); a 422 naming the second
    of two documents with the same id."""
    docs: list[Document] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        doc_id = item.id or content_id(item.title, item.text)
        if doc_id in first:
            raise invalid(("body", "documents", i, "id"), f"duplicate document id {doc_id!r}, first at "
                          f"documents[{first[doc_id]}]", "duplicate_id")
        first[doc_id] = i
        docs.append(Document(id=doc_id, text=item.text, title=item.title, metadata=item.metadata))
    return docs


def apply_update(runtime: Runtime, served: Pipeline, add: Sequence[Document], delete: Sequence[str]) -> UpdateResult:
    """Write the update into the served index, then serve the new version: the app's pipeline becomes a copy of the
    one served (the current one, else `served`) over the new index. 404 for an unknown id, 409 for an update that
    would empty the index."""
    if runtime.settings.workers > 1:
        raise ApiError(409, "conflict", f"updates over HTTP need a single server process; this server runs "
                       f"{runtime.settings.workers}, each with its own copy of the index: update with "
                       f"`earlyrank add` or `earlyrank delete` and restart it")
    with _WRITER:
        base = runtime.pipeline or served
        dense = base.index.dense
        try:
            result = update_index(base.index.path, add, delete, model_path=dense.model_path if dense else None)
        except UnknownDocumentError as e:
            raise ApiError(404, "not_found", str(e)) from e
        except IndexStoreError as e:  # the index on disk is missing or broken: the message names server paths
            log.error("could not update the index: %s", e)
            raise ApiError(503, "index_unavailable", "the index on disk could not be updated; see the server "
                           "log") from e
        except ValueError as e:
            raise ApiError(409, "conflict", str(e)) from e
        # A shallow copy keeps everything else the pipeline holds (scorer, policy, fusion), shared with the old
        # one, which the requests still running keep using.
        updated = copy.copy(base)
        updated.index = result.index
        runtime.pipeline = updated
    return result


@router.post("/v1/documents", response_model=AddDocumentsResponse,
             responses={**RESPONSES, 404: {"model": ErrorResponse}})
async def add_documents(body: AddDocumentsRequest, pipeline: Pipeline = Depends(get_pipeline),
                        runtime: Runtime = Depends(get_runtime)) -> AddDocumentsResponse:
    """Add documents to the served index, replacing those whose id it holds; only the new documents are
    tokenized and encoded. Served once written; the index on disk is updated atomically."""
    if len(body.documents) > runtime.settings.max_documents:
        raise invalid(("body", "documents"), f"{len(body.documents)} documents; the limit is "
                      f"{runtime.settings.max_documents}", "too_long")
    docs = to_documents(body.documents)
    result = await run_in_threadpool(apply_update, runtime, pipeline, docs, ())
    return AddDocumentsResponse(ids=[d.id for d in docs], added=len(result.added), replaced=len(result.replaced),
                                documents=len(result.index.documents), seconds=result.seconds)


@router.delete("/v1/documents/{doc_id:path}", response_model=DeleteDocumentResponse,
               responses={**RESPONSES, 404: {"model": ErrorResponse}})
async def delete_document(doc_id: str, pipeline: Pipeline = Depends(get_pipeline),
                          runtime: Runtime = Depends(get_runtime)) -> DeleteDocumentResponse:
    """Delete one document from the served index; 404 if it holds no document with this id, 422 if the id is
    blank (``DELETE /v1/documents/`` names no document)."""
    if not doc_id.strip():
        raise invalid(("path", "doc_id"), f"document id {doc_id!r} is blank; put the id of the document to delete "
                      f"at the end of the path: /v1/documents/ID")
    result = await run_in_threadpool(apply_update, runtime, pipeline, (), (doc_id,))
    return DeleteDocumentResponse(deleted=doc_id, documents=len(result.index.documents), seconds=result.seconds)
