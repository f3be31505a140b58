"""What routes depend on: the app's runtime state, its settings and the loaded pipeline.

Tests swap the pipeline with ``app.dependency_overrides[get_pipeline] = lambda: my_pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from earlyrank.api.errors import ApiError
from earlyrank.api.limits import WorkLimiter
from earlyrank.api.metrics import Metrics
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.settings import Settings


@dataclass
class Runtime:
    """Mutable per-app state: the pipeline appears when the lifespan has loaded it; `draining` at shutdown."""

    settings: Settings
    limiter: WorkLimiter
    metrics: Metrics
    pipeline: Pipeline | None = None
    draining: bool = False


def get_runtime(request: Request) -> Runtime:
    """The app's `Runtime`, set up by `create_app`."""
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return get_runtime(request).settings


def get_pipeline(request: Request) -> Pipeline:
    """The loaded pipeline, or a 503 while the index and model are loading."""
    pipeline = get_runtime(request).pipeline
    if pipeline is None:
        raise ApiError(503, "not_ready", "not ready: the index and model are not loaded yet")
    return pipeline
