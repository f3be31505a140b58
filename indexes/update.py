"""Add, replace and delete documents of a built index: a new version, swapped in exactly as a build is.

``update_index(path, add=docs, delete=ids)`` takes the index's writer lock, loads and verifies the current
version, and writes a whole new version beside it (`indexes.versions`): a crash at any moment leaves the old
or the new version whole, a reader never sees a half-written one, and two writers at once both land.

- BM25: every weight depends on N, avgdl and df, so all are recomputed, from the stored term frequencies of
  the documents kept and those of the new documents (the only ones tokenized). Scores equal a fresh build's.
- Dense: only the new documents are encoded; the others' stored vectors are reused.
- Passages: an index built with a splitter splits the added documents as its build did, with the settings and
  tokenizer it keeps (`indexes.passages`); deleting or replacing a document removes all of its passages.

What an update means: a document added with an id the index holds replaces that document (upsert; the new
one goes last in corpus order). Deleting an id the index does not hold is an `UnknownDocumentError` and
changes nothing. Ids within one update must be unique, and an update may not leave the index empty.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.indexes.bm25 import BM25Index, count_terms
from earlyrank.indexes.dense import DenseIndex, encode
from earlyrank.indexes.manifest import read_manifest
from earlyrank.indexes.store import Encoder, LoadedIndex, load_index, save_version
from earlyrank.indexes.types import Document
from earlyrank.indexes.versions import commit_version, crash_point, index_link, writer_lock


class UnknownDocumentError(ValueError):
    """Ids to delete that the index does not hold (`ids`); the message names the first few."""

    def __init__(self, ids: Sequence[str]):
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5])
        if len(self.ids) > 5:
            shown += f" and {len(self.ids) - 5} more"
        super().__init__(f"no document {shown} in the index; nothing was changed")


@dataclass(frozen=True)
class UpdateResult:
    """What an update did: the new version (loaded), the ids it added anew, replaced and deleted, its time."""

    index: LoadedIndex
    added: tuple[str, ...]
    replaced: tuple[str, ...]
    deleted: tuple[str, ...]
    seconds: float


def check_batch(add: Sequence[Document], delete: Sequence[str]) -> None:
    """ValueError for an update that changes nothing, an empty or repeated id, or an id both added and deleted."""
    if not add and not delete:
        raise ValueError("nothing to update: give documents to add or ids to delete")
    for what, ids in (("to add", [d.id for d in add]), ("to delete", list(delete))):
        first: dict[str, int] = {}
        for i, doc_id in enumerate(ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(f"document {i + 1} {what}: the id must be a non-empty string, got {doc_id!r}")
            if doc_id in first:
                raise ValueError(f"document id {doc_id!r} is given twice {what} (items {first[doc_id] + 1} and "
                                 f"{i + 1}); ids in one update must be unique")
            first[doc_id] = i
    both = sorted({d.id for d in add} & set(delete))
    if both:
        raise ValueError(f"document id {both[0]!r} is both added and deleted in one update")


def update_index(path: str | Path, add: Sequence[Document] = (), delete: Sequence[str] = (), *,
                 model_path: str | None = None, encoder: Encoder = encode, progress: bool = False) -> UpdateResult:
    """Add (or replace) the documents `add` and delete the ids `delete` in the index at `path`, which keeps its
    parts and parameters; returns the new version. Waits for any build or update of `path` already running.

    `encoder` computes the new documents' vectors (as for `build_index`); `model_path` is the dense model, which
    must be the one the index was built with. ValueError (`UnknownDocumentError` for unknown ids) for a bad
    update, IndexStoreError for a missing or broken index; either way the index is unchanged.
    """
    check_batch(add, delete)
    started = time.perf_counter()
    out = index_link(path)
    with writer_lock(out):
        current = load_index(out, model_path)
        crash_point("loaded")
        held = {d.id for d in current.documents}
        missing = [doc_id for doc_id in delete if doc_id not in held]
        if missing:
            raise UnknownDocumentError(missing)
        replaced = tuple(d.id for d in add if d.id in held)
        removed = set(delete) | set(replaced)
        if not add and removed == held:
            raise ValueError(f"an index needs at least one document; this update would delete all {len(held)}")
        splitter = current.splitter()
        table = current.passages.updated(removed, add, splitter)
        keep = np.asarray(current.passages.rows_of(held - removed), dtype=np.int64)
        new = table.units[len(keep):]
        bm25 = updated_bm25(current, keep, new, progress) if current.bm25 is not None else None
        dense = updated_dense(current, keep, new, encoder, progress) if current.dense is not None else None
        dense_model = current.manifest["parts"].get("dense", {}).get("model")
        change = {"added": len(add) - len(replaced), "replaced": len(replaced), "deleted": len(delete)}
        corpus = {"name": current.manifest["corpus"].get("name", ""), "last_update": change,
                  **{k: v for k, v in current.manifest["corpus"].items() if k == "source"}}
        commit_version(out, lambda tmp: save_version(tmp, table, bm25, dense, dense_model, current.fusion, corpus,
                                                     splitter))
        root, manifest = read_manifest(out)
        if bm25 is not None:  # served memory-mapped from the new version, as `load_index` would, and without the
            bm25 = BM25Index.load(root, bm25.doc_ids, bm25.params)  # term frequencies: the next update reads them
    added = tuple(d.id for d in add if d.id not in held)
    return UpdateResult(LoadedIndex(Path(path), manifest, table, bm25, dense, current.fusion), added, replaced,
                        tuple(delete), time.perf_counter() - started)


def updated_bm25(current: LoadedIndex, keep: np.ndarray, add: Sequence[Document], progress: bool) -> BM25Index:
    """The BM25 part of the passages at rows `keep` followed by the new passages `add`: the stored term
    frequencies of the kept ones (counted again for an index built before they were stored), the new ones
    counted, every weight computed anew."""
    from scipy import sparse

    assert current.bm25 is not None  # checked by the caller
    params = current.bm25.params
    vocab = dict(current.bm25.vocab)
    stored = BM25Index.load_term_frequencies(current.path.resolve(), (len(vocab), len(current.bm25.doc_ids)))
    if stored is None:
        vocab = {}
        kept = count_terms([current.docs[i].full_text for i in keep], params.tokenizer(), vocab, progress).tocsc()
    else:
        kept = stored.tocsc()[:, keep]
    new = count_terms([d.full_text for d in add], params.tokenizer(), vocab)
    kept.resize((len(vocab), kept.shape[1]))  # the terms first seen in `add` occur in no kept document
    tf = sparse.hstack([kept, new], format="csr")
    live = np.flatnonzero(tf.getnnz(axis=1))
    if len(live) < len(vocab):  # drop the terms only deleted documents had, which a fresh build would not know
        terms = sorted(vocab, key=vocab.__getitem__)
        vocab = {terms[t]: i for i, t in enumerate(live)}
        tf = tf[live]
    doc_ids = [current.docs[i].id for i in keep] + [d.id for d in add]
    return BM25Index.from_term_frequencies(doc_ids, vocab, tf, params)


def updated_dense(current: LoadedIndex, keep: np.ndarray, add: Sequence[Document], encoder: Encoder,
                  progress: bool) -> DenseIndex:
    """The dense part of the passages at rows `keep` followed by the new passages `add`: only `add` is encoded.
    With nothing removed the loaded faiss index is extended (an HNSW graph grows in place); else it is rebuilt
    from the kept passages' stored vectors and the new ones."""
    old = current.dense
    assert old is not None  # checked by the caller
    vectors = np.empty((0, old.index.d), dtype=np.float32)
    if add:
        vectors = encoder([d.full_text for d in add], old.params, old.model_path, progress)
        if vectors.shape != (len(add), old.index.d):
            raise ValueError(f"the encoder returned vectors of shape {vectors.shape} for {len(add)} passages "
                             f"of an index of dimension {old.index.d}")
    doc_ids = [current.docs[i].id for i in keep] + [d.id for d in add]
    if len(keep) == old.index.ntotal:
        old.index.add(vectors)
        return DenseIndex(doc_ids, old.index, old.params, old.model_path)
    return DenseIndex.from_vectors(doc_ids, np.vstack([old.vectors(keep), vectors]), old.params, old.model_path)
