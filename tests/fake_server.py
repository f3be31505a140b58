"""A real server for the shutdown tests: uvicorn, through `api.server.serve`, over a built index and a slow fake
scorer, so no model is loaded.

    python tests/fake_server.py INDEX PORT CONTROL_DIR GRACE_SECONDS [fail]

The load waits for the file CONTROL_DIR/release (a test watches /ready meanwhile), or with ``fail`` raises
FileNotFoundError; each scoring call touches CONTROL_DIR/scoring and takes 0.2 s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from conftest import FakeScorer

from earlyrank.api.app import create_app
from earlyrank.api.server import serve
from earlyrank.engine.pipeline import Pipeline
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.settings import Settings
from earlyrank.indexes.store import load_index


class SlowScorer(FakeScorer):
    def __init__(self, control: Path):
        super().__init__()
        self.control = control

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        (self.control / "scoring").touch()
        time.sleep(0.2)
        return super().score(query, passages)


def main(index: str, port: str, control_dir: str, grace: str, mode: str = "load") -> None:
    control = Path(control_dir)

    def factory(settings: Settings) -> Pipeline:
        if mode == "fail":
            raise FileNotFoundError(f"{index}: no index here")
        while not (control / "release").exists():
            time.sleep(0.02)
        return Pipeline(load_index(index), SlowScorer(control), mode="bm25")

    settings = Settings(mode="bm25", port=int(port), shutdown_grace_seconds=float(grace), retry_after_seconds=2,
                        max_batch_pairs=1)
    serve(settings, create_app(settings, factory))


if __name__ == "__main__":
    main(*sys.argv[1:])
