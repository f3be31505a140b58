"""``create_app(settings)`` builds the earlyrank service; nothing is built or loaded at import time.

The index and the cross-encoder are loaded once, by `pipeline_factory(settings)` (default `load_served_pipeline`)
in a thread the lifespan starts: the server listens at once, and /ready and the work endpoints answer 503
``loading`` until the load is done. Under a server (the lifespan runs on the main thread) a failed load logs the
loader's message, stops the server as SIGTERM would, and exits with status 3, uvicorn's startup failure; under a
test client the lifespan's end waits for the load and raises its error. SIGTERM is `api.shutdown`'s: readiness
turns 503 at once, work still running after the grace period is answered 503, and at the lifespan's end the
micro-batcher stops.

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)  # api.server.serve: exit statuses too
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
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
from earlyrank.api.openapi import install_openapi
from earlyrank.api.shutdown import Shutdown, ShutdownMiddleware
from earlyrank.engine.model_files import ModelLoadError
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.rerank import ContentGuard
from earlyrank.engine.scoring import PairScorer
from earlyrank.engine.settings import Settings
from earlyrank.indexes.manifest import IndexStoreError

__all__ = [
    "PipelineFactory", "app_from_env", "create_app", "get_pipeline", "get_runtime", "get_settings",
    "load_served_pipeline",
]

PipelineFactory = Callable[[Settings], Pipeline]
STARTUP_FAILURE = 3  # uvicorn's exit status for an app that could not start; its worker supervisor stops on it
log = logging.getLogger("earlyrank.api")


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


def exit_server(status: int) -> None:
    """Raise SystemExit(`status`): called on the server's event loop, it ends the server process with `status`."""
    raise SystemExit(status)


def app_from_env() -> FastAPI:
    """`create_app(Settings())`: the zero-argument factory each of `uvicorn --workers N` processes calls."""
    return create_app(Settings())


def _version() -> str:
    try:
        return version("earlyrank")
    except PackageNotFoundError:
        return "0+unknown"


def start_loading(runtime: Runtime, factory: PipelineFactory, loop: asyncio.AbstractEventLoop,
                  serving: bool) -> threading.Thread:
    """Load `runtime.pipeline` with `factory` in a daemon thread; on failure set `runtime.load_error`, log it and,
    when `serving`, stop the server as SIGTERM would."""

    def load() -> None:
        try:
            runtime.pipeline = factory(runtime.settings)
        except Exception as error:
            runtime.load_error = error
            # A model or index that cannot be read is the user's to mend, and its message says how; anything else
            # is ours, and its traceback goes to the log.
            known = isinstance(error, (ModelLoadError, IndexStoreError))
            log.error("could not load the index and model: %s", error, exc_info=None if known else error)
            if serving:
                loop.call_soon_threadsafe(signal.raise_signal, signal.SIGTERM)

    loader = threading.Thread(target=load, name="earlyrank-loader", daemon=True)
    loader.start()
    return loader


def create_app(settings: Settings, pipeline_factory: PipelineFactory | None = None) -> FastAPI:
    """The FastAPI app for `settings`; `pipeline_factory(settings)` is called once, at startup."""
    factory = pipeline_factory or load_served_pipeline
    limiter = WorkLimiter(settings.max_concurrent, settings.retry_after_seconds)

    def batch_queue_depth() -> float:
        batcher = batcher_of(runtime.pipeline)
        return batcher.queue_depth() if batcher else 0

    runtime = Runtime(settings, limiter, Metrics(lambda: limiter.in_flight, batch_queue_depth),
                      Shutdown(settings.shutdown_grace_seconds, settings.retry_after_seconds))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        serving = threading.current_thread() is threading.main_thread()
        runtime.shutdown.attach(loop, hook_signals=serving)
        loader = start_loading(runtime, factory, loop, serving)
        try:
            yield
        finally:
            runtime.shutdown.detach()
            if not serving:  # a stopping server does not wait for a load nobody will use
                await run_in_threadpool(loader.join)
            batcher = batcher_of(runtime.pipeline)
            if batcher is not None:
                await run_in_threadpool(batcher.close)
        if runtime.load_error is not None:
            if serving:  # raised on the loop, not here, where the lifespan protocol would catch it
                loop.call_soon(exit_server, STARTUP_FAILURE)
            else:
                raise runtime.load_error

    app = FastAPI(title="earlyrank", version=_version(), lifespan=lifespan,
                  description="Retrieve-then-rerank question answering with a calibrated, early-stopping "
                              "cross-encoder.")
    app.state.runtime = runtime
    install_openapi(app, settings)
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(explain.router)
    app.include_router(documents.router)
    app.include_router(ops.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ShutdownMiddleware, shutdown=runtime.shutdown)
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)  # outermost: counts 413s too
    return app
