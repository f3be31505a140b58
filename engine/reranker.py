"""The cross-encoder: a BERT-family sequence classifier that turns (question, passage) pairs into logits.

This module is the only torch code on the scoring path: it produces raw logits. Turning logits into
calibrated confidences is `engine.calibration`; deciding when to stop is `engine.stopping`.

Scoring sorts pairs by length, batches them with dynamic padding (no batch is padded beyond its longest
pair), truncates question and passage together (``longest_first``) and runs under ``torch.inference_mode``.
A passage longer than the pair's room can be read in several overlapping windows, the pair keeping its best
window's logit (``windows``, MaxP as in Dai & Callan, SIGIR 2019); the number is measured on dev and stored in
the model's inference.json (`benchmarks/lengths.py`).

Backends (``CrossEncoder.load(backend=...)``, ``EARLYRANK_BACKEND``): torch-fp32, torch-bf16, onnx-fp32 and
onnx-int8. The default, ``auto``, is measured, not guessed: on a CPU with bf16 instructions (AVX-512 BF16 or
AMX) it times two MiniLM-shaped BERT layers in both precisions once, caches the verdict per CPU and torch
version, and takes torch-bf16 only if it is clearly faster; elsewhere torch-fp32. The flag alone misleads: on
one 2-core Xeon bf16 scored 2.1x as many pairs a second as fp32 with the same SciFact quality, on another
(same flags, different host) 0.7x (`benchmarks/speed.py`, `earlyrank bench --backend`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from engine.calibration import Calibration

CARD = "training_card.json"
CALIBRATION = "calibration.json"
INFERENCE = "inference.json"  # settings measured for inference, e.g. {"max_length": 256} (benchmarks/lengths.py)
DEFAULT_MODEL = Path(__file__).parent / "models" / "earlyrank-minilm-ce"
MAX_POSITIONS = 512  # BERT's longest input; no pair keeps more of a text than this
TOKEN_CACHE_TEXTS = 50_000  # texts whose ids CrossEncoder keeps (about 50 MB at SciFact's lengths)
BackendName = Literal["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(BackendName)


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

    from engine.corpora import cache_root

    info = cpu_info()
    cpu = f"{info.get('model name', platform.processor())}|{info.get('flags', '')}"
    key = hashlib.sha256(f"{cpu}|{torch.__version__}|{torch.get_num_threads()}".encode()).hexdigest()[:16]
    path = cache_root() / "backend-probe.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # One probe at a time per cache: processes started together (`serve --workers N`, a test run) would
    # otherwise time each other's load, and a verdict taken under contention is cached for good. A measured
    # 1.25 was stored that way on a host where bf16 runs at 0.73x; the others wait and read its verdict.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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


class ModelLoadError(RuntimeError):
    """A model directory is missing files or is not a cross-encoder."""


@dataclass(frozen=True)
class ScoredPairs:
    """Raw logits and calibrated confidences for a list of pairs, in the order given."""

    logits: np.ndarray
    confidences: np.ndarray


def model_max_length(path: Path) -> int:
    """Tokens per pair at inference: inference.json's choice, else the training length, else 256."""
    for name, keys in ((INFERENCE, ("max_length",)), (CARD, ("params", "max_length"))):
        if (path / name).is_file():
            value = json.loads((path / name).read_text())
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, int):
                return value
    return 256


def model_windows(path: Path) -> int:
    """Passage windows per pair at inference: inference.json's choice, else 1 (the head of the passage only)."""
    settings = json.loads((path / INFERENCE).read_text()) if (path / INFERENCE).is_file() else {}
    value = settings.get("windows") if isinstance(settings, dict) else None
    return value if isinstance(value, int) and value >= 1 else 1


def check_model_dir(path: Path) -> dict:
    """Raise `ModelLoadError` unless `path` holds a single-logit sequence-classification model."""
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such model directory; train one with `earlyrank train` "
                             f"or omit --model to use the bundled one")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{path}: no config.json; not a transformers model directory")
    config = json.loads(config_path.read_text())
    if not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        raise ModelLoadError(f"{path}: architectures {config.get('architectures')} is not a cross-encoder "
                             f"(expected *ForSequenceClassification with one label)")
    if len(config.get("id2label") or {"0": ""}) != 1:
        raise ModelLoadError(f"{path}: the classifier has {len(config['id2label'])} labels; expected 1")
    if not any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise ModelLoadError(f"{path}: no weights file (model.safetensors)")
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise ModelLoadError(f"{path}: no tokenizer files (tokenizer.json or vocab.txt)")
    return config


class TorchBackend:
    """PyTorch forward pass, in fp32 or bf16 (bf16 uses AVX-512 BF16 / AMX where the CPU has them)."""

    tensors = "pt"

    def __init__(self, model, dtype: str = "fp32"):
        import torch

        if dtype not in ("fp32", "bf16"):
            raise ValueError(f"torch backend dtype must be fp32 or bf16, got {dtype!r}")
        self.model = model.to(torch.bfloat16) if dtype == "bf16" else model
        self.name = f"torch-{dtype}"

    def forward(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(**batch).logits[:, 0].float().numpy()


def window_starts(length: int, width: int, windows: int) -> list[int]:
    """Where each of up to `windows` slices of `width` tokens starts in a passage of `length` tokens: the first
    at 0, each next one a quarter of a width before the previous one ends, the last one ending at the passage's
    end; fewer slices when fewer cover the passage."""
    starts = [0]
    stride = max(1, width - width // 4)
    while len(starts) < windows and starts[-1] + width < length:
        starts.append(min(starts[-1] + stride, length - width))
    return starts


class CrossEncoder:
    """A local cross-encoder. ``CrossEncoder.load(path).score(query, passages)``."""

    def __init__(self, backend, tokenizer, calibration: Calibration, max_length: int = 256,
                 batch_size: int = 16, path: Path | None = None, windows: int = 1):
        if windows < 1:
            raise ValueError(f"windows must be at least 1, got {windows}")
        self.backend = backend
        self.tokenizer = tokenizer
        self.calibration = calibration
        self.max_length = max_length
        self.windows = windows
        self.batch_size = batch_size
        self.path = path
        self._ids: dict[str, list[int]] = {}

    @classmethod
    def load(cls, path: str | Path | None = None, max_length: int | None = None, batch_size: int = 16,
             backend: str | None = None, windows: int | None = None) -> CrossEncoder:
        """Load from a local directory; `backend` is auto (the default), torch-fp32, torch-bf16, onnx-fp32 or
        onnx-int8 (see the module docstring). `max_length` and `windows` default to the model's inference.json."""
        from engine.runtime import configure_torch

        path = Path(path) if path else DEFAULT_MODEL
        check_model_dir(path)
        configure_torch()
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        length = max_length or model_max_length(path)
        return cls(load_backend(path, resolve_backend(backend)), tokenizer, Calibration.load(path / CALIBRATION),
                   length, batch_size, path, windows or model_windows(path))

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each text (no special tokens), from a cache: a passage offered to many questions,
        or a question with a hundred candidates, is tokenized once."""
        cache = self._ids
        missing = list({t for t in texts if t not in cache})
        if missing:
            if len(cache) + len(missing) > TOKEN_CACHE_TEXTS:
                cache.clear()
            ids = self.tokenizer(missing, add_special_tokens=False, verbose=False)["input_ids"]
            cache.update(zip(missing, (i[:MAX_POSITIONS] for i in ids), strict=True))
        return [cache[t] for t in texts]

    def pair_ids(self, queries: Sequence[str], passages: Sequence[str]) -> list[tuple[list[int], int]]:
        """``[CLS] question [SEP] passage [SEP]`` ids with the position where the passage starts, cut to
        `max_length` exactly as the tokenizer's ``longest_first`` cuts a pair: the shorter side keeps up to
        half the room, the longer side the rest."""
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        room = self.max_length - 3
        pairs = []
        for q, p in zip(self.token_ids(queries), self.token_ids(passages), strict=True):
            if len(q) + len(p) > room:
                if len(q) > len(p):
                    short = min(len(p), room // 2)
                    q, p = q[:room - short], p[:short]
                else:
                    short = min(len(q), room // 2)
                    q, p = q[:short], p[:room - short]
            pairs.append(([cls_id, *q, sep_id, *p, sep_id], len(q) + 2))
        return pairs

    def window_ids(self, queries: Sequence[str], passages: Sequence[str]) -> tuple[list[tuple[list[int], int]],
                                                                                  np.ndarray]:
        """`pair_ids`, plus up to ``windows - 1`` more windows of each passage the cut left unread: the same
        question with a later, equally long slice of the passage, a quarter of each slice overlapping the one
        before and the last slice ending at the passage's end. Returns (pairs, owner): ``owner[j]`` is the
        input pair that window j belongs to; a pair's logit is its best window's (MaxP)."""
        first = self.pair_ids(queries, passages)
        if self.windows == 1:
            return first, np.arange(len(first))
        sep_id = self.tokenizer.sep_token_id
        pairs, owner = [], []
        for i, ((ids, start), p) in enumerate(zip(first, self.token_ids(passages), strict=True)):
            pairs.append((ids, start))
            owner.append(i)
            width = len(ids) - start - 1  # passage tokens the first window kept
            if width <= 0 or width >= len(p):
                continue
            head = ids[:start]
            for offset in window_starts(len(p), width, self.windows)[1:]:
                pairs.append(([*head, *p[offset:offset + width], sep_id], start))
                owner.append(i)
        return pairs, np.asarray(owner)

    def batch(self, pairs: Sequence[tuple[list[int], int]]):
        """Model inputs for pairs from `pair_ids`, padded to the longest pair of this batch only."""
        width = max(len(ids) for ids, _ in pairs)
        ids = np.full((len(pairs), width), self.tokenizer.pad_token_id, dtype=np.int64)
        types = np.zeros((len(pairs), width), dtype=np.int64)
        mask = np.zeros((len(pairs), width), dtype=np.int64)
        for row, (pair, passage_start) in enumerate(pairs):
            ids[row, :len(pair)] = pair
            types[row, passage_start:len(pair)] = 1
            mask[row, :len(pair)] = 1
        arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        if self.backend.tensors == "pt":
            import torch

            return {k: torch.from_numpy(v) for k, v in arrays.items()}
        return arrays

    def encode(self, queries: Sequence[str], passages: Sequence[str]):
        """Model inputs for (query, passage) pairs, the same as the tokenizer's own pair encoding."""
        return self.batch(self.pair_ids(queries, passages))

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """One raw logit per (query, passage) pair, in input order."""
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries for {len(passages)} passages; pass one query per pair")
        if not passages:
            return np.zeros(0, dtype=np.float32)
        pairs, owner = self.window_ids(queries, passages)
        # Batches of pairs sorted by token length: no batch is padded beyond its own longest pair.
        order = np.argsort([-len(ids) for ids, _ in pairs], kind="stable")
        each = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            each[idx] = self.backend.forward(self.batch([pairs[i] for i in idx]))
        if len(pairs) == len(passages):
            return each
        out = np.full(len(passages), -np.inf, dtype=np.float32)
        np.maximum.at(out, owner, each)
        return out

    def score(self, query: str, passages: Sequence[str]) -> ScoredPairs:
        """Logits and calibrated confidences of `passages` for one `query`."""
        logits = self.logits([query] * len(passages), passages)
        return ScoredPairs(logits, self.calibration.confidence(logits))

    def identity(self) -> dict:
        card_path = self.path / CARD if self.path else None
        card = json.loads(card_path.read_text()) if card_path and card_path.is_file() else {}
        return {"path": str(self.path), "name": card.get("name", self.path.name if self.path else "?"),
                "backend": self.backend.name, "max_length": self.max_length, "windows": self.windows,
                "calibration": self.calibration.as_dict()}


def load_backend(path: Path, backend: str):
    """The forward pass for `backend`, loaded from files in `path` only."""
    if backend.startswith("onnx-"):
        from engine.onnx_backend import OnnxBackend

        return OnnxBackend.load(path, backend.removeprefix("onnx-"))
    if backend not in ("torch-fp32", "torch-bf16"):
        raise ValueError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    model.eval()
    return TorchBackend(model, backend.removeprefix("torch-"))
