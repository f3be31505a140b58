"""Where earlyrank keeps what it can rebuild: data-set indexes, score caches and the backend probe's verdict."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$EARLYRANK_CACHE``, else ``~/.cache/earlyrank``."""
    return Path(os.environ.get("EARLYRANK_CACHE", Path.home() / ".cache" / "earlyrank"))
