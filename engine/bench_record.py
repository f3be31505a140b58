"""What every benchmark record carries: the commit, the machine, latency percentiles, and TREC run files."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np


def git_commit() -> str:
    """The commit this code runs from (``git rev-parse HEAD`` beside the package), or "unknown" outside a git checkout;
    every benchmark record names it."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    """The machine a benchmark ran on: cores, platform, Python and the versions of the packages that shape its results
    (None for one not installed)."""
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for package in ("torch", "transformers", "sentence-transformers", "faiss-cpu", "ir-measures", "rank-bm25"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions}


def write_run(run: dict[str, dict[str, float]], path: Path, tag: str) -> None:
    """Write `run` ({query id: {document id: score}}) to `path` as a TREC run, each query's documents by score,
    highest first (equal scores in the run's order). The score column is made from the rank (``len - rank + 1``), so
    tools that sort by score, such as trec_eval, keep the ranking exactly as given."""
    with path.open("w") as f:
        for qid, scores in run.items():
            ranked = sorted(scores, key=lambda d: -scores[d])
            for rank, doc in enumerate(ranked, 1):
                f.write(f"{qid} Q0 {doc} {rank} {len(ranked) - rank + 1} {tag}\n")


def percentiles(values, qs=(50, 95)) -> dict[str, float]:
    """The `qs` percentiles of `values` in their own unit (seconds, milliseconds, pair counts), keyed "p50", "p95",
    ...; {} for no values."""
    values = np.asarray(values, dtype=np.float64)
    return {f"p{q}": float(np.percentile(values, q)) for q in qs} if values.size else {}


def relevant_missing(qrels: dict[str, dict[str, int]], doc_ids: set[str], relevance_level: int = 1) -> int:
    """How many (query, document) judgements of `qrels` with a grade >= `relevance_level` (and above 0) name a
    document not in `doc_ids`."""
    level = max(relevance_level, 1)
    return sum(grade >= level and d not in doc_ids for judged in qrels.values() for d, grade in judged.items())


def file_name(text: str) -> str:
    """`text` with every character but letters, digits and ``-=.`` made ``_``: a file name on any system."""
    return "".join(ch if ch.isalnum() or ch in "-=." else "_" for ch in text)
