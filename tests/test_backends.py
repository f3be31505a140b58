"""Choosing the cross-encoder backend: auto, the environment, and clear errors."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from earlyrank.engine import backend_probe
from earlyrank.engine.backend_probe import resolve_backend


def test_auto_is_bf16_only_where_the_cpu_has_it_and_it_measures_faster(monkeypatch):
    monkeypatch.delenv("EARLYRANK_BACKEND", raising=False)
    monkeypatch.setattr(backend_probe, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(backend_probe, "bf16_speedup", lambda: 2.1)
    assert resolve_backend() == resolve_backend("auto") == "torch-bf16"
    monkeypatch.setattr(backend_probe, "bf16_speedup", lambda: 0.7)  # the flag is there, the speed is not
    assert resolve_backend() == "torch-fp32"
    monkeypatch.setattr(backend_probe, "bf16_speedup", lambda: 1.05)  # within the probe's noise: stay exact
    assert resolve_backend() == "torch-fp32"

    def no_probe():
        raise AssertionError("probed a CPU without bf16 instructions")

    monkeypatch.setattr(backend_probe, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(backend_probe, "bf16_speedup", no_probe)
    assert resolve_backend() == "torch-fp32"


def test_the_bf16_probe_runs_once_per_machine_then_comes_from_the_cache(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path))
    monkeypatch.setattr(backend_probe, "probe_bf16_speedup", lambda: calls.append(1) or 0.7)
    assert backend_probe.bf16_speedup() == 0.7
    assert backend_probe.bf16_speedup() == 0.7
    assert len(calls) == 1
    (entry,) = json.loads((tmp_path / "backend-probe.json").read_text()).values()
    assert entry["bf16_speedup"] == 0.7


def test_processes_started_together_share_one_probe(monkeypatch, tmp_path):
    monkeypatch.setenv("EARLYRANK_CACHE", str(tmp_path))
    running, overlapped, calls = [], [], []

    def slow_probe():
        overlapped.append(bool(running))
        running.append(1)
        time.sleep(0.3)
        running.pop()
        calls.append(1)
        return 0.73

    monkeypatch.setattr(backend_probe, "probe_bf16_speedup", slow_probe)
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda _: backend_probe.bf16_speedup(), range(4)))
    # One probe, never two at once, and every caller got its verdict.
    assert verdicts == [0.73] * 4 and calls == [1] and overlapped == [False]


@pytest.mark.slow
def test_the_real_probe_times_both_precisions():
    speedup = backend_probe.probe_bf16_speedup(rounds=1)
    assert 0.05 < speedup < 20  # a ratio of two real timings, not a placeholder


def test_an_explicit_backend_beats_the_environment_which_beats_auto(monkeypatch):
    monkeypatch.setattr(backend_probe, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv("EARLYRANK_BACKEND", "onnx-int8")
    assert resolve_backend() == "onnx-int8"
    assert resolve_backend("torch-fp32") == "torch-fp32"


def test_an_unknown_backend_names_the_choices(monkeypatch):
    monkeypatch.setenv("EARLYRANK_BACKEND", "torch-fp8")
    with pytest.raises(ValueError, match="torch-fp8.*torch-fp32, torch-bf16, onnx-fp32, onnx-int8"):
        resolve_backend()


def test_cached_pair_encoding_equals_the_tokenizers_longest_first():
    from transformers import AutoTokenizer

    from earlyrank.engine.calibration import Calibration
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.model_files import DEFAULT_MODEL

    class NumpyBackend:
        tensors = "np"

    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_MODEL), local_files_only=True)
    scorer = CrossEncoder(NumpyBackend(), tokenizer, Calibration(), max_length=24)
    questions = [" ".join(["cat"] * n) for n in (1, 5, 10, 11, 12, 30)]
    passages = [" ".join(["dog"] * n) + " runs." for n in (1, 8, 10, 11, 20, 40)]
    for q in questions:  # every split of the room: question or passage longer, ties, odd and even lengths
        for p in passages:
            expected = tokenizer([q], [p], truncation="longest_first", max_length=24, return_tensors="np")
            got = scorer.encode([q], [p])
            assert all((got[k] == expected[k]).all() for k in expected), (q, p)
    expected = tokenizer(questions, passages, truncation="longest_first", max_length=24, padding=True,
                         return_tensors="np")
    got = scorer.encode(questions, passages)
    assert all((got[k] == expected[k]).all() for k in expected)  # padded to the longest pair of the batch


def test_inference_length_is_the_measured_choice_then_the_training_length(tmp_path):
    from earlyrank.engine.model_files import CARD, INFERENCE, model_max_length

    assert model_max_length(tmp_path) == 256  # nothing recorded
    (tmp_path / CARD).write_text(json.dumps({"params": {"max_length": 192}}))
    assert model_max_length(tmp_path) == 192
    (tmp_path / INFERENCE).write_text(json.dumps({"max_length": 320}))
    assert model_max_length(tmp_path) == 320
    (tmp_path / INFERENCE).write_text(json.dumps({"chosen_by": "someone"}))  # no length in it
    assert model_max_length(tmp_path) == 192


def window_scorer(windows: int, max_length: int = 24):
    """A CrossEncoder whose 'model' gives a pair the number of times the word 'needle' appears in it."""
    from transformers import AutoTokenizer

    from earlyrank.engine.calibration import Calibration
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.model_files import DEFAULT_MODEL

    tokenizer = AutoTokenizer.from_pretrained(str(DEFAULT_MODEL), local_files_only=True)
    needle = tokenizer.convert_tokens_to_ids("needle")

    class CountingBackend:
        tensors = "np"
        name = "count"
        rows = 0

        def forward(self, batch):
            self.rows += len(batch["input_ids"])
            return ((batch["input_ids"] == needle) & (batch["attention_mask"] == 1)).sum(axis=1).astype(np.float32)

    return CrossEncoder(CountingBackend(), tokenizer, Calibration(), max_length=max_length, windows=windows)


def test_windows_cover_the_whole_passage_and_overlap():
    scorer = window_scorer(windows=8)
    question, passage = "where is it", " ".join(f"w{i}" for i in range(40))
    pairs, owner = scorer.window_ids([question], [passage])
    q_ids, p_ids = (list(ids) for ids in scorer.token_ids([question, passage]))
    assert len(p_ids) > 24  # the passage does not fit one window
    seen: list[int] = []
    for ids, start in pairs:
        assert len(ids) <= 24 and ids[1:start - 1] == q_ids  # every window: the whole question, within the length
        body = ids[start:-1]
        offset = next(k for k in range(len(p_ids)) if p_ids[k:k + len(body)] == body)  # a contiguous slice
        seen.extend(range(offset, offset + len(body)))
    assert set(seen) == set(range(len(p_ids)))  # every passage token is read
    assert len(seen) > len(p_ids)  # windows overlap
    assert list(owner) == [0] * len(pairs) and len(pairs) < 8  # fewer windows than allowed: all read
    capped, _ = window_scorer(windows=2).window_ids([question], [passage])
    assert [ids for ids, _ in capped] == [ids for ids, _ in pairs[:2]]  # the cap keeps the first windows


def test_the_best_window_scores_the_pair_and_short_passages_cost_one_pass():
    filler = " ".join(["grass"] * 40)
    passages = ["needle at the start " + filler, filler + " needle at the end", "short needle", filler]
    head_only, windowed = window_scorer(windows=1), window_scorer(windows=4)
    assert head_only.logits(["q"] * 4, passages).tolist() == [1, 0, 1, 0]  # the cut hides the late needle
    assert windowed.logits(["q"] * 4, passages).tolist() == [1, 1, 1, 0]
    assert head_only.backend.rows == 4
    assert windowed.backend.rows == 3 + 3 + 1 + 3  # a short passage is read once; a long one in 3 windows


def test_window_count_is_the_measured_choice_and_caches_apart(tmp_path):
    from earlyrank.engine.model_files import INFERENCE, model_windows
    from earlyrank.engine.tuning import model_key

    assert model_windows(tmp_path) == 1
    (tmp_path / INFERENCE).write_text(json.dumps({"max_length": 256, "windows": 4}))
    assert model_windows(tmp_path) == 4
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert model_key(tmp_path, 256) != model_key(tmp_path, 256, windows=4)
    with pytest.raises(ValueError, match="windows"):
        window_scorer(windows=0)


def test_row_counts_and_widths_come_from_small_sets():
    from earlyrank.engine.cross_encoder import padded_width, row_counts

    assert row_counts(13, 16) == [8, 4, 1]
    assert row_counts(35, 16) == [16, 16, 2, 1]
    assert row_counts(32, 16) == [16, 16] and row_counts(0, 16) == []
    assert padded_width(17, 16, 192) == 32 and padded_width(32, 16, 192) == 32
    assert padded_width(185, 16, 190) == 190  # never past max_length
    assert padded_width(30, 16, 24) == 30  # nor below the longest pair


def test_the_model_sees_a_bounded_set_of_shapes_and_the_same_logits():
    # Every distinct (rows, width) costs the torch process a few MB it keeps; exact shapes grew a server by
    # hundreds of MB in a 10-minute soak (benchmarks/load.py --soak).
    scorer = window_scorer(windows=1, max_length=64)
    shapes: set[tuple[int, int]] = set()
    forward = scorer.backend.forward

    def recording(batch):
        shapes.add(batch["input_ids"].shape)
        return forward(batch)

    scorer.backend.forward = recording
    for n in range(1, 40):  # every passage length and candidate count up to 39
        passages = [" ".join(["needle"] * (k % 7) + ["hay"] * (k + n)) for k in range(n)]
        logits = scorer.logits(["where is the needle"] * n, passages)
        assert logits.tolist() == [1 + k % 7 for k in range(n)]  # the question's needle too; padding changes none
    assert {rows for rows, _ in shapes} <= {16, 8, 4, 2, 1}
    assert {width for _, width in shapes} <= {16, 32, 48, 64}
