"""Operations endpoints: liveness, readiness, what is loaded, Prometheus metrics, and the demo page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, PlainTextResponse, Response

from earlyrank.api.deps import Runtime, get_pipeline, get_runtime
from earlyrank.api.errors import ApiError
from earlyrank.api.metrics import CONTENT_TYPE
from earlyrank.api.schemas import ErrorResponse, InfoResponse, StatusResponse
from earlyrank.engine.pipeline import Pipeline

STATIC = Path(__file__).parent / "static"
router = APIRouter()


def describe_scorer(scorer: Any) -> dict[str, Any]:
    """The model's own identity (path, name, calibration) when it offers one."""
    if scorer is None:
        return {"name": None}
    identity = getattr(scorer, "identity", None)
    return identity() if callable(identity) else {"name": type(scorer).__name__}


def describe_index(index: Any) -> dict[str, Any]:
    """The manifest's summary: no file list or checksums, which are long and say nothing to a client."""
    manifest = getattr(index, "manifest", {}) or {}
    corpus = manifest.get("corpus", {})
    return {"path": str(getattr(index, "path", "")), "created": manifest.get("created"),
            "corpus": corpus.get("name"), "documents": corpus.get("documents"),
            "parts": manifest.get("parts", {}), "fusion": manifest.get("fusion")}


@router.get("/health", response_model=StatusResponse)
async def health() -> StatusResponse:
    """Liveness: 200 whenever the process answers."""
    return StatusResponse(status="ok")


@router.get("/ready", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
async def ready(runtime: Runtime = Depends(get_runtime),
                pipeline: Pipeline = Depends(get_pipeline)) -> StatusResponse:
    """Readiness: 200 once the index and model are loaded; 503 before that (`loading`) and from SIGTERM on
    (`shutting_down`)."""
    if runtime.shutdown.draining:
        raise ApiError(503, "shutting_down", "not ready: shutting down")
    return StatusResponse(status="ready")


@router.get("/info", response_model=InfoResponse, responses={503: {"model": ErrorResponse}})
async def info(runtime: Runtime = Depends(get_runtime), pipeline: Pipeline = Depends(get_pipeline)) -> InfoResponse:
    """The model's identity, the index's manifest summary and the settings in force."""
    return InfoResponse(model=describe_scorer(pipeline.scorer), index=describe_index(pipeline.index),
                        settings=runtime.settings.model_dump(mode="json"))


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(runtime: Runtime = Depends(get_runtime)) -> Response:
    """Prometheus metrics in the text exposition format: requests by endpoint and status, latencies, pairs
    scored, early stops, work in flight."""
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/", include_in_schema=False)
async def index_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")
