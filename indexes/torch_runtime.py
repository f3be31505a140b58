"""Process-wide runtime settings for the torch code, applied once, lazily."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache


@lru_cache(maxsize=1)
def configure_torch() -> None:
    """Use every core for intra-op work and never touch the network for models."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(int(os.environ.get("EARLYRANK_THREADS", os.cpu_count() or 1)))


@contextmanager
def quiet_model_loading() -> Iterator[None]:
    """transformers' "Loading weights" progress bar off while a model loads, then as it was.

    That bar counts tensors and prints on every load, even one of milliseconds, so a short command such as
    ``earlyrank ask`` printed two bars before its answer. Progress bars of long work (encoding, scoring) are ours
    and stay on.
    """
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
