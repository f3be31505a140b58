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


@pytest.mark.slow
def test_two_threads_can_load_pipelines_at_once(tmp_path):
    """In a fresh process two threads calling load_pipeline together failed with "cannot import name
    'AutoTokenizer' from 'transformers'" (a lazy import seen half done); loads are now one at a time. A fresh
    process, since this test process has long imported transformers."""
    import subprocess
    import sys

    from conftest import TINY

    from earlyrank.engine.datasets import load_corpus
    from earlyrank.indexes.store import build_index

    index = build_index(load_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", dense=False, progress=False)
    script = f"""
import threading
from earlyrank.engine.pipeline import load_pipeline
errors = []
def load():
    try:
        load_pipeline({str(index)!r}, mode="bm25")
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=load) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
print("errors:", errors)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "errors: []" in done.stdout, done.stdout


def test_a_model_whose_weights_are_cut_is_a_model_load_error_naming_it(tmp_path):
    """A truncated model.safetensors raised safetensors' own error, a traceback in `ask` and in the server log."""
    import json
    import shutil

    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.model_files import ModelLoadError

    broken = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100_000])
    with pytest.raises(ModelLoadError, match=f"{broken}: its files could not be read .*omit --model"):
        CrossEncoder.load(broken, backend="torch-fp32")
    (broken / "model.safetensors").unlink()
    shutil.copy(DEFAULT_MODEL / "model.safetensors", broken)
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="its files could not be read"):
        CrossEncoder.load(broken, backend="torch-fp32")
    shutil.copy(DEFAULT_MODEL / "tokenizer.json", broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "vocab_size": 1000}))  # weights of another shape
    with pytest.raises(ModelLoadError, match="its files could not be read .RuntimeError"):
        CrossEncoder.load(broken, backend="torch-fp32")
    with pytest.raises(ValueError, match="unknown backend"):  # a wrong option is not a broken model
        CrossEncoder.load(DEFAULT_MODEL, backend="tpu")
