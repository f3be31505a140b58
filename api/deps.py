"""What routes depend on: the app's runtime state, its settings and the loaded pipeline.

Tests swap the pipeline with ``app.dependency_overrides[get_pipeline] = lambda: my_pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from earlyrank.api.errors import ApiError
from earlyrank.api.limits import WorkLimiter
from earlyrank.api.metrics import Metrics
from earlyrank.api.shutdown import Shutdown
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.settings import Settings


@dataclass
class Runtime:
    """Mutable per-app state: the pipeline appears when the lifespan's loader has loaded it (`load_error` if that
    failed); `shutdown` says whether the service is stopping."""

    settings: Settings
    limiter: WorkLimiter
    metrics: Metrics
    shutdown: Shutdown
    pipeline: Pipeline | None = None
    load_error: Exception | None = None


def get_runtime(request: Request) -> Runtime:
    """The app's `Runtime`, set up by `create_app`."""
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return get_runtime(request).settings


def get_pipeline(request: Request) -> Pipeline:
    """The loaded pipeline; a 503 (`loading`, with Retry-After) while the index and model load, and `load_failed` if
    that failed (the message stays in the server log: it names server paths)."""
    runtime = get_runtime(request)
    if runtime.pipeline is not None:
        return runtime.pipeline
    if runtime.load_error is not None:
        raise ApiError(503, "load_failed", "not ready: loading the index and model failed; see the server log")
    raise ApiError(503, "loading", "not ready: the index and model are loading",
                   headers={"Retry-After": str(runtime.settings.retry_after_seconds)})
