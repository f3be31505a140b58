"""What recall knows of any candidate, without a model call: its dense cosine and its BM25 score.

The cosine comes from the vectors the index stores (the query's own vector is the one dense recall encoded);
the BM25 score from the index's weights, for every candidate whatever list it came from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from earlyrank.indexes.store import IndexStoreError, LoadedIndex


def candidate_scores(index: LoadedIndex, query: str, doc_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, bm25) of each of `doc_ids` for `query`, each of shape (len(doc_ids),).

    Raises IndexStoreError if the index lacks its dense or BM25 part, and KeyError for an id not in it.
    """
    if index.dense is None or index.bm25 is None:
        raise IndexStoreError(f"{index.path}: the learned fusion needs both the BM25 and the dense part; "
                              f"rebuild with both", "the learned fusion needs both the BM25 and the dense part")
    positions = np.asarray([index.position(d) for d in doc_ids], dtype=np.int64)
    if not positions.size:
        return np.zeros(0), np.zeros(0)
    cosine = index.dense.vectors(positions) @ index.dense.query_vector(query)
    bm25 = index.bm25.scores(query)[positions]
    return cosine.astype(np.float64), bm25.astype(np.float64)
