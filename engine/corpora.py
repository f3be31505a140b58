"""Indexes of whole data sets, built once and cached, for training, calibration, tuning and benchmarks."""

from __future__ import annotations

import hashlib

from earlyrank.engine.cache_dir import cache_root
from earlyrank.engine.datasets import Dataset
from earlyrank.indexes.store import IndexStoreError, LoadedIndex, build_index, load_index


def corpus_fingerprint(dataset: Dataset) -> str:
    """12 hex digits of the SHA-256 of every document's id, title and text, in corpus order: the cached index of
    `dataset` is named by it, so an edited corpus never reuses a stale index."""
    digest = hashlib.sha256()
    for d in dataset.corpus:
        digest.update(f"{d.id}\t{d.title}\t{d.text}\n".encode())
    return digest.hexdigest()[:12]


def dataset_index(dataset: Dataset, progress: bool = True) -> LoadedIndex:
    """A BM25 + dense index of `dataset`'s corpus, loaded from the cache or built into it. Its documents are never
    split into passages: the data set's judgements are of its own passages, so every figure measures those."""
    path = cache_root() / "indexes" / f"{dataset.name}-{corpus_fingerprint(dataset)}"
    try:
        return load_index(path)
    except IndexStoreError:
        build_index(dataset.corpus, path, progress=progress, corpus_name=dataset.name, passages=None)
        return load_index(path)
