"""Which inference backend to use: the names, and the measured choice behind ``auto``.

On a CPU with bf16 instructions (AVX-512 BF16 or AMX) ``auto`` times two MiniLM-shaped BERT layers in fp32 and
bf16 once, caches the verdict per CPU, torch version and thread count, and takes torch-bf16 only if it is
clearly faster; elsewhere torch-fp32. The flag alone misleads: two hosts with the same flags ran bf16 at 2.1x
and at 0.7x of fp32.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, get_args

import numpy as np

BackendName = Literal["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(BackendName)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` across processes: fcntl on POSIX, msvcrt on Windows."""
    with open(lock_path, "a+") as lock:
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt

            msvcrt.locking(lock.fileno(), msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
            try:
                yield
            finally:
                msvcrt.locking(lock.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cpu_info() -> dict[str, str]:
    """The first CPU's fields from /proc/cpuinfo ("model name", "flags", ...); empty where there is none."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    return fields


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    flags = cpu_info().get("flags", "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def probe_bf16_speedup(rounds: int = 5) -> float:
    """fp32 time over bf16 time for two MiniLM-shaped BERT layers on 16 pairs of 192 tokens (> 1: bf16 wins).

    Random weights: only the kernels matter, and these are the ones the real model runs. The two precisions
    run in alternation and the median of the per-round ratios is returned, so a burst of load elsewhere on
    the machine slows both sides of a ratio instead of deciding it. About two seconds."""
    import copy

    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=1000, hidden_size=384, num_hidden_layers=2, num_attention_heads=12,
                        intermediate_size=1536)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (16, 192), generator=generator)
    fp32 = BertModel(config).eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)

    def seconds(model) -> float:
        started = time.perf_counter()
        model(input_ids=ids)
        return time.perf_counter() - started

    with torch.inference_mode():
        for model in (fp32, bf16):  # warm-up: kernel selection and allocation
            seconds(model)
        return float(np.median([seconds(fp32) / seconds(bf16) for _ in range(rounds)]))


BF16_MARGIN = 1.1  # bf16 must be this much faster to be chosen: fp32 is exact, and the probe is noisy


def bf16_speedup() -> float:
    """`probe_bf16_speedup`, measured once per CPU model and flags, torch version and thread count, then read
    from the cache."""
    import platform

    import torch

    from earlyrank.engine.cache_dir import cache_root

    info = cpu_info()
    cpu = f"{info.get('model name', platform.processor())}|{info.get('flags', '')}"
    key = hashlib.sha256(f"{cpu}|{torch.__version__}|{torch.get_num_threads()}".encode()).hexdigest()[:16]
    path = cache_root() / "backend-probe.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # One probe at a time per cache: processes started together (`serve --workers N`, a test run) would
    # otherwise time each other's load, and a verdict taken under contention is cached for good. A measured
    # 1.25 was stored that way on a host where bf16 runs at 0.73x; the others wait and read its verdict.
    with _exclusive(path.with_suffix(".lock")):
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        if key not in known:
            known[key] = {"bf16_speedup": probe_bf16_speedup(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(known, indent=1))
            tmp.replace(path)
    return float(known[key]["bf16_speedup"])


def resolve_backend(backend: str | None = None) -> str:
    """`backend`, or EARLYRANK_BACKEND, or ``auto``: torch-bf16 where the CPU has bf16 instructions and a
    measured probe finds it at least `BF16_MARGIN` times as fast as fp32, else torch-fp32."""
    import os

    chosen = backend or os.environ.get("EARLYRANK_BACKEND") or "auto"
    if chosen == "auto":
        return "torch-bf16" if cpu_has_bf16() and bf16_speedup() >= BF16_MARGIN else "torch-fp32"
    if chosen not in BACKENDS:
        raise ValueError(f"unknown backend {chosen!r}; choose auto, {', '.join(BACKENDS)}")
    return chosen
