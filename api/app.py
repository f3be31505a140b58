"""``create_app(settings)`` builds the earlyrank service; nothing is built or loaded at import time.

The index and the cross-encoder are loaded once, in the lifespan, by `pipeline_factory(settings)` (default
`load_served_pipeline`); a failure there stops the server with the loader's message. At shutdown (SIGTERM:
uvicorn stops accepting, lets in-flight requests finish, then runs the lifespan's end) readiness turns 503
and the micro-batcher stops.

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import cast

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from earlyrank.api import documents, explain, ops, routes
from earlyrank.api.batching import BatchingScorer, LogitModel
from earlyrank.api.deps import Runtime, get_pipeline, get_runtime, get_settings
from earlyrank.api.errors import install_error_handlers
from earlyrank.api.limits import BodyLimitMiddleware, WorkLimiter
from earlyrank.api.metrics import Metrics, MetricsMiddleware
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.rerank import ContentGuard
from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.settings import Settings

__all__ = [
    "PipelineFactory", "app_from_env", "create_app", "get_pipeline", "get_runtime", "get_settings",
    "load_served_pipeline",
]

PipelineFactory = Callable[[Settings], Pipeline]


def load_served_pipeline(settings: Settings) -> Pipeline:
    """The served pipeline: `engine.pipeline.load_pipeline` (the index, the cross-encoder and the operating
    point tuned with it), its scorer behind a micro-batcher and a `ContentGuard` (passages with no letter or
    digit never reach the model)."""
    from earlyrank.engine.pipeline import load_pipeline

    loaded = load_pipeline(settings.index_path, settings.model_path, settings.mode, settings.depth, settings.backend)
    if loaded.scorer is None:
        raise ValueError(f"{settings.model_path or 'the bundled model'}: no reranker was loaded")
    scorer: PairScorer = loaded.scorer
    if settings.batching:
        model = cast(LogitModel, loaded.scorer)  # a CrossEncoder: batched logits and its calibration
        scorer = BatchingScorer(model, settings.batch_wait_ms, settings.max_batch_pairs)
    return loaded.with_scorer(ContentGuard(scorer))


def batcher_of(pipeline: Pipeline | None) -> BatchingScorer | None:
    """The pipeline's micro-batcher, if its scorer is one (behind a `ContentGuard` or not)."""
    scorer = pipeline.scorer if pipeline else None
    scorer = scorer.scorer if isinstance(scorer, ContentGuard) else scorer
    return scorer if isinstance(scorer, BatchingScorer) else None


def app_from_env() -> FastAPI:
    """`create_app(Settings())`: the zero-argument factory each of `uvicorn --workers N` processes calls."""
    return create_app(Settings())


def _version() -> str:
    try:
        return version("earlyrank")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: Settings, pipeline_factory: PipelineFactory | None = None) -> FastAPI:
    """The FastAPI app for `settings`; `pipeline_factory(settings)` is called once, at startup."""
    factory = pipeline_factory or load_served_pipeline
    limiter = WorkLimiter(settings.max_concurrent, settings.retry_after_seconds)

    def batch_queue_depth() -> float:
        batcher = batcher_of(runtime.pipeline)
        return batcher.queue_depth() if batcher else 0

    runtime = Runtime(settings, limiter, Metrics(lambda: limiter.in_flight, batch_queue_depth))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.pipeline = await run_in_threadpool(factory, settings)
        runtime.draining = False
        try:
            yield
        finally:
            runtime.draining = True
            batcher = batcher_of(runtime.pipeline)
            if batcher is not None:
                await run_in_threadpool(batcher.close)

    app = FastAPI(title="earlyrank", version=_version(), lifespan=lifespan,
                  description="Retrieve-then-rerank question answering with a calibrated, early-stopping "
                              "cross-encoder.")
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(explain.router)
    app.include_router(documents.router)
    app.include_router(ops.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)  # outermost: counts 413s too
    return app
