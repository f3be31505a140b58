"""Recall backends (BM25, dense, hybrid) and their on-disk format. Importing this loads no torch or faiss."""

from indexes.bm25 import BM25Index, BM25Params, RankBM25Index
from indexes.dense import DenseIndex, DenseParams
from indexes.hybrid import FusionParams, HybridRetriever, rrf
from indexes.store import IndexStoreError, LoadedIndex, build_index, load_index
from indexes.tokenize import Tokenizer, tokenize

__all__ = [
    "BM25Index", "BM25Params", "DenseIndex", "DenseParams", "FusionParams", "HybridRetriever",
    "IndexStoreError", "LoadedIndex", "RankBM25Index", "Tokenizer", "build_index", "load_index", "rrf",
    "tokenize",
]
