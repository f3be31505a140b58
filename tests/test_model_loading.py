"""Loading a model prints nothing of its own: no per-tensor progress bar before a short command's output."""

from __future__ import annotations

import pytest
from transformers.utils import logging as hf_logging

from earlyrank.engine.cross_encoder import load_backend
from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.indexes.dense import load_encoder
from earlyrank.indexes.torch_runtime import quiet_model_loading


def test_quiet_model_loading_restores_the_bar_even_on_error():
    assert hf_logging.is_progress_bar_enabled()
    with pytest.raises(RuntimeError), quiet_model_loading():
        assert not hf_logging.is_progress_bar_enabled()
        raise RuntimeError("load failed")
    assert hf_logging.is_progress_bar_enabled()


def test_quiet_model_loading_leaves_a_bar_turned_off_by_the_caller_off():
    hf_logging.disable_progress_bar()
    try:
        with quiet_model_loading():
            pass
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()


@pytest.mark.slow
def test_loading_the_cross_encoder_and_the_encoder_prints_no_progress_bar(capfd):
    load_backend(DEFAULT_MODEL, "torch-fp32")
    load_encoder.__wrapped__()  # past the per-process cache, so the load really happens here
    printed = capfd.readouterr()
    assert "Loading weights" not in printed.err + printed.out
    assert hf_logging.is_progress_bar_enabled()
