"""Recall backends (BM25, dense, hybrid) and their on-disk format. Importing this loads no torch or faiss."""

from earlyrank.indexes.bm25 import BM25Index, BM25Params, RankBM25Index
from earlyrank.indexes.dense import DenseIndex, DenseParams
from earlyrank.indexes.hybrid import FusionParams, HybridRetriever, rrf
from earlyrank.indexes.store import IndexStoreError, LoadedIndex, build_index, load_index
from earlyrank.indexes.tokenize import Tokenizer, tokenize

__all__ = [
    "BM25Index", "BM25Params", "DenseIndex", "DenseParams", "FusionParams", "HybridRetriever",
    "IndexStoreError", "LoadedIndex", "RankBM25Index", "Tokenizer", "build_index", "load_index", "rrf",
    "tokenize",
]
