"""Service settings, read from ``EARLYRANK_*`` environment variables (e.g. ``EARLYRANK_PORT=9000``).

Nothing is built at import time: ``Settings()`` reads the environment when it is called, and the API's
``create_app(settings)`` takes the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from earlyrank.engine.backend_probe import BackendName
from earlyrank.indexes.types import RecallMode


class Settings(BaseSettings):
    """Where the index and model are, how the service answers, and the limits that protect it."""

    # EARLYRANK_THRESHOLD=none (or EARLYRANK_MODEL_PATH=none) sets None.
    model_config = SettingsConfigDict(env_prefix="EARLYRANK_", env_parse_none_str="none", frozen=True,
                                      extra="forbid")

    index_path: Path = Field(Path("indexes-data") / "default", description="Index directory (or link).")
    model_path: Path | None = Field(None, description="Cross-encoder directory; None means the bundled one.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="Server processes sharing the port, each with its own copy of the "
                         "index and model and cores // workers torch threads.")

    backend: Literal["auto"] | BackendName = Field(
        "auto", description="Cross-encoder backend; auto is torch-bf16 on a CPU with bf16 instructions, else fp32.")
    mode: RecallMode = Field(RecallMode.HYBRID, description="Default recall mode.")
    depth: int = Field(100, ge=1, description="Default number of recalled candidates offered to the reranker.")
    top_k: int = Field(10, ge=1, description="Default number of hits returned.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Default early-stopping confidence (Threshold policy); None uses the "
        "pipeline's own policy: the operating point `earlyrank tune` stored with the model, or full rerank.")
    chunk: int = Field(16, ge=1, description="Candidates scored per step under a threshold policy.")

    max_body_bytes: int = Field(1 << 20, ge=1, description="Largest request body accepted (413 above).")
    max_documents: int = Field(1000, ge=1, description="Most documents (or candidates) one request may rerank.")
    max_query_chars: int = Field(2000, ge=1)
    max_document_chars: int = Field(20000, ge=1)

    max_concurrent: int = Field(4, ge=1, description="Requests doing work at once; more get 429.")
    retry_after_seconds: int = Field(1, ge=0, description="Retry-After sent with a 429 or 503.")
    shutdown_grace_seconds: float = Field(
        25.0, gt=0, description="After SIGTERM, how long requests already running may take; any still running then "
        "is answered 503 shutting_down. Give the supervisor's kill timeout a few seconds more (the default fits "
        "Kubernetes' 30 s).")
    keep_alive_seconds: int = Field(
        75, ge=1, description="How long an idle client connection stays open: longer than clients' and proxies' own "
        "idle limits (httpx's 5 s, a load balancer's 60 s; 75 s is nginx's default), so the client closes an idle "
        "connection first and never sends a request on one the server is closing. uvicorn's 5 s, the same as "
        "httpx's, reset about one request in 70,000 under load (benchmarks/load.py --soak).")
    batching: bool = Field(False, description="Score pairs of concurrent requests together (micro-batching); "
                           "off by default: on 2 cores it cost throughput (benchmarks/load.py).")
    batch_wait_ms: float = Field(5.0, ge=0, description="How long the micro-batcher waits for company.")
    max_batch_pairs: int = Field(64, ge=1, description="Most pairs the micro-batcher sends to the model at once.")

    @model_validator(mode="after")
    def _depth_within_limit(self) -> Settings:
        if self.depth > self.max_documents:
            raise ValueError(f"depth ({self.depth}) is above max_documents ({self.max_documents}); a request "
                             f"using the default depth would be refused")
        return self
