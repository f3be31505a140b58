"""Process-wide runtime settings for the torch code, applied once, lazily."""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def configure_torch() -> None:
    """Use every core for intra-op work and never touch the network for models."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(int(os.environ.get("EARLYRANK_THREADS", os.cpu_count() or 1)))
