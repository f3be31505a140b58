"""The cross-encoder: a BERT-family sequence classifier that turns (question, passage) pairs into logits.

This module is the only torch code on the scoring path: it produces raw logits. Turning logits into
calibrated confidences is `engine.calibration`; deciding when to stop is `engine.stopping`.

Scoring sorts pairs by length, batches them with dynamic padding (a batch is padded to its longest pair, rounded
up to a multiple of 16 tokens, and holds a power-of-two number of pairs unless full, so the model sees few
shapes), truncates question and passage together (``longest_first``) and runs under ``torch.inference_mode``.
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

import json
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from earlyrank.engine.backend_probe import BACKENDS, resolve_backend
from earlyrank.engine.calibration import Calibration
from earlyrank.engine.model_files import (
    CALIBRATION,
    CARD,
    DEFAULT_MODEL,
    ModelLoadError,
    check_model_dir,
    model_max_length,
    model_windows,
)
from earlyrank.engine.scoring import ScoredPairs
from earlyrank.engine.token_cache import TokenCache

MAX_POSITIONS = 512  # BERT's longest input; no pair keeps more of a text than this
# Forward passes see few distinct shapes: torch keeps kernels and buffers for each (rows, width) it meets, a few
# MB each, so a server fed every width and row count grew by hundreds of MB (benchmarks/load.py --soak).
WIDTH_STEP = 16


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
        """Raw logits of one tokenized batch (torch tensors), shape (pairs,), float32: the classifier's first output,
        computed under ``torch.inference_mode``."""
        import torch

        with torch.inference_mode():
            return self.model(**batch).logits[:, 0].float().numpy()


def row_counts(pairs: int, batch_size: int) -> list[int]:
    """Rows of each forward pass over `pairs` pairs: full batches of `batch_size`, then the rest in powers of two
    (13 -> 8, 4, 1), so at most log2(batch_size) + 2 row counts ever reach the model and no row is padding."""
    counts = [batch_size] * (pairs // batch_size)
    rest = pairs % batch_size
    return counts + [1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1]


def padded_width(longest: int, step: int, limit: int) -> int:
    """`longest` rounded up to a multiple of `step`, but not past `limit` (nor below `longest`): the width a batch
    is padded to, one of about limit / step."""
    return max(longest, min(-(-longest // step) * step, limit))


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
        self.token_cache = TokenCache()

    @classmethod
    def load(cls, path: str | Path | None = None, max_length: int | None = None, batch_size: int = 16,
             backend: str | None = None, windows: int | None = None) -> CrossEncoder:
        """Load from a local directory; `backend` is auto (the default), torch-fp32, torch-bf16, onnx-fp32 or
        onnx-int8 (see the module docstring). `max_length` and `windows` default to the model's inference.json.
        ModelLoadError naming the directory if it is not a cross-encoder or its files cannot be read; ValueError
        for an unknown backend."""
        from earlyrank.indexes.torch_runtime import configure_torch, quiet_model_loading

        path = Path(path) if path else DEFAULT_MODEL
        check_model_dir(path)
        configure_torch()
        chosen = resolve_backend(backend)
        try:
            with quiet_model_loading():  # one load at a time: see MODEL_LOADING
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                forward = load_backend(path, chosen)
            length = max_length or model_max_length(path)
            calibration = Calibration.load(path / CALIBRATION)
        except (ModelLoadError, ImportError, FileNotFoundError):  # a missing runtime or ONNX export says so itself
            raise
        except MemoryError:  # not the files' fault; anything else names its type and message below
            raise
        except Exception as error:  # a cut or corrupt weights file, a broken tokenizer.json or JSON file, a config
            # that does not fit its weights (transformers raises RuntimeError)
            raise ModelLoadError(f"{path}: its files could not be read ({type(error).__name__}: {error}); copy or "
                                 f"train the model again, or omit --model to use the bundled one") from error
        return cls(forward, tokenizer, calibration, length, batch_size, path, windows or model_windows(path))

    def token_ids(self, texts: Sequence[str]) -> list[array]:
        """Word-piece ids of each text (no special tokens, at most 512), through a shared `TokenCache`: a
        passage offered to many questions, or a question with a hundred candidates, is tokenized once."""
        def tokenize(missing: list[str]) -> list[list[int]]:
            ids = self.tokenizer(missing, add_special_tokens=False, verbose=False)["input_ids"]
            return [i[:MAX_POSITIONS] for i in ids]

        return self.token_cache.get_many(texts, tokenize)

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

    def batch(self, pairs: Sequence[tuple[list[int], int]], step: int = 1):
        """Model inputs for pairs from `pair_ids`, padded to the longest pair of this batch rounded up to a multiple
        of `step` (at most `max_length`)."""
        width = padded_width(max(len(ids) for ids, _ in pairs), step, self.max_length)
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
        # Batches of pairs sorted by token length, each padded to its longest pair's width bucket (`WIDTH_STEP`).
        order = np.argsort([-len(ids) for ids, _ in pairs], kind="stable")
        each = np.empty(len(pairs), dtype=np.float32)
        start = 0
        for rows in row_counts(len(order), self.batch_size):
            idx = order[start:start + rows]
            each[idx] = self.backend.forward(self.batch([pairs[i] for i in idx], WIDTH_STEP))
            start += rows
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
        """What this scorer is, for /info and benchmark records: model path and name (from the training card, else the
        directory's name), backend, pair length in tokens, windows and calibration."""
        card_path = self.path / CARD if self.path else None
        card = json.loads(card_path.read_text()) if card_path and card_path.is_file() else {}
        return {"path": str(self.path), "name": card.get("name", self.path.name if self.path else "?"),
                "backend": self.backend.name, "max_length": self.max_length, "windows": self.windows,
                "calibration": self.calibration.as_dict()}


def load_backend(path: Path, backend: str):
    """The forward pass for `backend`, loaded from files in `path` only."""
    if backend.startswith("onnx-"):
        from earlyrank.engine.onnx_backend import OnnxBackend

        return OnnxBackend.load(path, backend.removeprefix("onnx-"))
    if backend not in ("torch-fp32", "torch-bf16"):
        raise ValueError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    import torch

    from earlyrank.indexes.torch_runtime import quiet_model_loading

    with quiet_model_loading():
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True,
                                                                   dtype=torch.float32)
    model.eval()
    return TorchBackend(model, backend.removeprefix("torch-"))
