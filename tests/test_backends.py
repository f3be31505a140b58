"""Choosing the cross-encoder backend: auto, the environment, and clear errors."""

from __future__ import annotations

import pytest

from engine import reranker
from engine.reranker import resolve_backend


def test_auto_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    monkeypatch.delenv("EARLYRANK_BACKEND", raising=False)
    monkeypatch.setattr(reranker, "cpu_has_bf16", lambda: True)
    assert resolve_backend() == resolve_backend("auto") == "torch-bf16"
    monkeypatch.setattr(reranker, "cpu_has_bf16", lambda: False)
    assert resolve_backend() == "torch-fp32"


def test_an_explicit_backend_beats_the_environment_which_beats_auto(monkeypatch):
    monkeypatch.setattr(reranker, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv("EARLYRANK_BACKEND", "onnx-int8")
    assert resolve_backend() == "onnx-int8"
    assert resolve_backend("torch-fp32") == "torch-fp32"


def test_an_unknown_backend_names_the_choices(monkeypatch):
    monkeypatch.setenv("EARLYRANK_BACKEND", "torch-fp8")
    with pytest.raises(ValueError, match="torch-fp8.*torch-fp32, torch-bf16, onnx-fp32, onnx-int8"):
        resolve_backend()
