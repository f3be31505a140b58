"""The recall interface: anything with ``search(query, k) -> list[Hit]``; a retriever that can recall from part
of the corpus (for a metadata filter) also takes the positions it may return: ``search(query, k, allowed)``."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from earlyrank.indexes.types import Hit


class Retriever(Protocol):
    """First-stage recall: ``search(query, k)`` returns up to `k` hits, best first, ranked from 1."""

    def search(self, query: str, k: int) -> list[Hit]:
        """Up to `k` hits for `query`, best first; ValueError if `k` is not a positive integer."""


class FilteredRetriever(Protocol):
    """A retriever that can recall from part of the corpus: only the documents at the corpus positions
    `allowed` (sorted, no repeats; None for all), and still up to `k` of them."""

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """Up to `k` hits for `query` among `allowed`, best first; ValueError if `k` is not a positive integer."""


def search_within(retriever: FilteredRetriever, query: str, k: int, allowed: np.ndarray | None) -> list[Hit]:
    """`retriever.search(query, k)`, from the positions `allowed` when there are any: a retriever that cannot
    filter still serves unfiltered searches, and fails loudly (TypeError) on a filtered one."""
    if allowed is None:
        return retriever.search(query, k)
    return retriever.search(query, k, allowed)


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k highest scores, best first; ties broken by lower index, so results are stable. With
    `allowed` (sorted indices), only among those."""
    if allowed is not None:
        return allowed[top_k(scores[allowed], k)]
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < scores.shape[0]:
        # Take every index tied with the k-th score, so the tie-break below sees all of them.
        kth = np.partition(scores, -k)[-k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(scores.shape[0])
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def check_k(k: int, name: str = "k") -> None:
    """ValueError unless `k` (called `name` in the message) is a positive integer (a float such as 5.0, a bool or
    a string is refused too)."""
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
