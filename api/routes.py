"""The work endpoints: ``/v1/answer``, ``/v1/search`` and the Cohere-compatible ``/v1/rerank``.

Each is thin: check the limits the settings impose, take a work slot (429 when none is free), run the engine
in a worker thread so the event loop stays free, convert the result.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from earlyrank.api.cohere import (
    CohereRerankRequest,
    CohereRerankResponse,
    check_document_count,
    cohere_response,
    document_texts,
    score_documents,
)
from earlyrank.api.cohere_v2 import CohereV2RerankRequest, CohereV2RerankResponse, cohere_v2_response, v2_document_texts
from earlyrank.api.deps import Runtime, get_pipeline, get_runtime
from earlyrank.api.document_chunks import DEFAULT_MAX_CHUNKS, best_chunks, chunked
from earlyrank.api.errors import ApiError, invalid
from earlyrank.api.schemas import (
    AnswerRequest,
    AnswerResponse,
    ErrorResponse,
    Mode,
    SearchRequest,
    SearchResponse,
    answer_response,
    search_response,
)
from earlyrank.api.shutdown import Shutdown
from earlyrank.engine.pipeline import Pipeline, check_query, question_cut_note
from earlyrank.engine.rerank import Policy, RerankResult
from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.settings import Settings
from earlyrank.engine.stopping import StopReason, Threshold
from earlyrank.indexes.store import IndexStoreError

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (413, 422, 429, 503)}
TIMED_ERRORS = {**ERRORS, 504: {"model": ErrorResponse}}  # with `timeout_ms`: a budget that scored nothing
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """How one request reranks: recall mode and depth, stopping policy (None: the pipeline's own), deadline
    and hits returned."""

    mode: Mode
    k: int
    depth: int
    policy: Policy | None
    deadline: float | None


def check_query_length(query: str, settings: Settings) -> None:
    """A 422 on `query` if it is longer than the settings' `max_query_chars` characters."""
    if len(query) > settings.max_query_chars:
        raise invalid(("body", "query"), f"{len(query)} characters; the limit is {settings.max_query_chars}",
                      "string_too_long")


def plan(body: AnswerRequest, settings: Settings) -> Plan:
    """The `Plan` of one /v1/answer or /v1/search request: the body's choices, else the settings'. A threshold becomes a
    `Threshold` policy (Ying & Huo, WSDM Cup 2020), `timeout_ms` a `time.monotonic()` deadline. A 422 if the query is
    too long or `max_candidates` is above `max_documents`."""
    check_query_length(body.query, settings)
    depth = body.max_candidates or settings.depth
    if depth > settings.max_documents:
        raise invalid(("body", "max_candidates"), f"{depth}; the limit is {settings.max_documents}", "too_large")
    tau = body.threshold if body.threshold is not None else settings.threshold
    policy = None if tau is None else Threshold(tau=tau, chunk=settings.chunk, depth=depth)
    deadline = time.monotonic() + body.timeout_ms / 1000 if body.timeout_ms else None
    return Plan(body.mode or settings.mode, body.top_k or settings.top_k, depth, policy, deadline)


async def run_engine(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run engine code in a worker thread; a recall mode the index was built without is a 422.

    Other engine errors are bugs here (the schemas and limits already rule out bad arguments): 500.
    """
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except IndexStoreError as e:
        # The detail, not the message: the message names a server-side path.
        raise invalid(("body", "mode"), f"not available on this server ({e.detail})") from e


def require_reranker(pipeline: Pipeline) -> PairScorer:
    """The pipeline's scorer; a 503 (not_ready) when the server runs without a reranker."""
    if pipeline.scorer is None:
        raise ApiError(503, "not_ready", "no reranker is loaded; this server can only search (rerank: false)")
    return pipeline.scorer


def check_deadline(scored: int, candidates: int, reason: str, timeout_ms: int | None) -> bool:
    """True if the deadline cut reranking short; a 504 if it left nothing scored."""
    if reason != StopReason.DEADLINE:
        return False
    if scored == 0 and candidates > 0:
        raise ApiError(504, "timeout", f"timeout_ms: the {timeout_ms} ms budget ran out before any candidate "
                       f"was reranked; allow more time")
    return True


@asynccontextmanager
async def client_watch(request: Request, shutdown: Shutdown) -> AsyncIterator[threading.Event]:
    """An event set once nobody waits for the answer: the client has gone (it closed the connection) or the shutdown
    grace period has ended (the client got a 503 instead), checked every 50 ms while the block runs; and set on
    leaving the block, which a cancelled request leaves with its engine thread still running. Reranking stops at
    its next chunk."""
    gone = threading.Event()

    async def watch() -> None:
        while not gone.is_set():
            if shutdown.ended.is_set() or await request.is_disconnected():
                gone.set()
                return
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        gone.set()
        watcher.cancel()


@router.post("/v1/answer", response_model=AnswerResponse, responses=TIMED_ERRORS)
async def answer(body: AnswerRequest, request: Request, pipeline: Pipeline = Depends(get_pipeline),
                 runtime: Runtime = Depends(get_runtime)) -> AnswerResponse:
    """The best passage for a question, its calibrated confidence, the ranking and what it cost."""
    p = plan(body, runtime.settings)
    require_reranker(pipeline)
    with runtime.limiter.slot():
        async with client_watch(request, runtime.shutdown) as gone:
            result = await run_engine(pipeline.ask, body.query, p.k, mode=p.mode, policy=p.policy, depth=p.depth,
                                      deadline=p.deadline, cancel=gone, filter=body.filter,
                                      all_passages=body.all_passages)
    degraded = check_deadline(result.scored, result.candidates, result.reason, body.timeout_ms)
    runtime.metrics.observe_rerank("/v1/answer", result.scored, result.candidates, result.stopped_early,
                                   result.reason)
    return answer_response(result, pipeline.index.doc, degraded)


@router.post("/v1/search", response_model=SearchResponse, responses=TIMED_ERRORS)
async def search(body: SearchRequest, request: Request, pipeline: Pipeline = Depends(get_pipeline),
                 runtime: Runtime = Depends(get_runtime)) -> SearchResponse:
    """Recall, optionally reranked; every hit carries every stage's score."""
    p = plan(body, runtime.settings)
    started = time.perf_counter()
    with runtime.limiter.slot():
        if not body.rerank:
            hits = await run_engine(pipeline.search, body.query, p.k, p.mode, body.filter, body.all_passages)
            return search_response(body.query, p.mode, hits, pipeline.index.doc, None, False,
                                   time.perf_counter() - started)
        require_reranker(pipeline)
        async with client_watch(request, runtime.shutdown) as gone:
            result = await run_engine(pipeline.rerank, body.query, p.k, mode=p.mode, policy=p.policy, depth=p.depth,
                                      deadline=p.deadline, cancel=gone, filter=body.filter,
                                      all_passages=body.all_passages)
    degraded = check_deadline(result.scored, result.candidates, result.reason, body.timeout_ms)
    runtime.metrics.observe_rerank("/v1/search", result.scored, result.candidates, result.stopped_early,
                                   result.reason)
    return search_response(body.query, p.mode, result.hits, pipeline.index.doc, result, degraded,
                           time.perf_counter() - started)


@router.post("/v1/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True,
             responses=ERRORS)
async def rerank_documents(body: CohereRerankRequest, request: Request, pipeline: Pipeline = Depends(get_pipeline),
                           runtime: Runtime = Depends(get_runtime)) -> CohereRerankResponse:
    """Cohere-compatible: score every document against the query (no recall), most relevant first."""
    check_query_length(body.query, runtime.settings)
    check_document_count(body.documents, runtime.settings.max_documents)
    texts = document_texts(body, runtime.settings.max_document_chars)
    chunks, owners, warnings = chunked(texts, body.max_chunks_per_doc or DEFAULT_MAX_CHUNKS)
    result = await rerank_every_document("/v1/rerank", body.query, chunks, pipeline, runtime, request)
    return cohere_response(body, texts, best_chunks(result, owners, len(texts)),
                           with_cut_note(warnings, pipeline, body.query, chunks))


@router.post("/v2/rerank", response_model=CohereV2RerankResponse, response_model_exclude_none=True,
             responses=ERRORS)
async def rerank_documents_v2(body: CohereV2RerankRequest, request: Request,
                              pipeline: Pipeline = Depends(get_pipeline),
                              runtime: Runtime = Depends(get_runtime)) -> CohereV2RerankResponse:
    """Cohere v2-compatible: score every document against the query (no recall), most relevant first."""
    check_query_length(body.query, runtime.settings)
    check_document_count(body.documents, runtime.settings.max_documents)
    texts = v2_document_texts(body, runtime.settings.max_document_chars)
    # Asked for N words, read all of them (each chunk has at least one word, so N chunks cover them); else the
    # first chunks, as /v1/rerank's default max_chunks_per_doc.
    chunks, owners, warnings = chunked(texts, body.max_tokens_per_doc or DEFAULT_MAX_CHUNKS)
    result = await rerank_every_document("/v2/rerank", body.query, chunks, pipeline, runtime, request)
    return cohere_v2_response(body, texts, best_chunks(result, owners, len(texts)),
                              with_cut_note(warnings, pipeline, body.query, chunks))


def with_cut_note(warnings: list[str], pipeline: Pipeline, query: str, read: list[str]) -> list[str]:
    """`warnings`, and first `question_cut_note`'s note if the reranker read the query cut beside one of `read`."""
    note = question_cut_note(pipeline.scorer, check_query(query), read)
    return [note, *warnings] if note else warnings


async def rerank_every_document(endpoint: str, query: str, texts: list[str], pipeline: Pipeline,
                                runtime: Runtime, request: Request) -> RerankResult:
    """Score every text against `query` under the work limiter (no recall, no early stop but for a client that has
    gone or a shutdown); counted under `endpoint` in the metrics. A 503 if no reranker is loaded, a 429 beyond the
    concurrency limit."""
    scorer = require_reranker(pipeline)
    query = check_query(query)  # in NFKC form, as the pipeline reads a question
    with runtime.limiter.slot():
        async with client_watch(request, runtime.shutdown) as gone:
            result = await run_engine(score_documents, query, texts, scorer, runtime.settings.max_batch_pairs, gone)
    runtime.metrics.observe_rerank(endpoint, result.scored, result.candidates, result.stopped_early, result.reason)
    return result
