"""Process-wide runtime settings for the torch code, applied once, lazily."""

from __future__ import annotations

import os
import threading
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


# One model load at a time in a process: transformers imports its classes lazily, and two threads importing one
# at once can see a half-initialised module ("cannot import name 'AutoTokenizer' from 'transformers'").
MODEL_LOADING = threading.RLock()


@contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Hold `MODEL_LOADING`, and turn transformers' "Loading weights" progress bar off while a model loads, then
    back as it was. Put the imports of transformers classes inside the block too.

    That bar counts tensors and prints on every load, even one of milliseconds, so a short command such as
    ``earlyrank ask`` printed two bars before its answer. Progress bars of long work (encoding, scoring) are ours
    and stay on.
    """
    with MODEL_LOADING:
        from transformers.utils import logging as hf_logging

        was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if was_on:
                hf_logging.enable_progress_bar()
