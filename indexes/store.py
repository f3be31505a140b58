"""The index on disk: a directory with a manifest, written crash-safely and verified on load.

Layout of an index at ``PATH``: ``PATH`` is a symbolic link to a sibling ``PATH.v-<id>`` directory that
holds ``manifest.json``, ``docs.jsonl`` and each part's files. A build writes a fresh ``.tmp`` directory,
fsyncs every file and the directory, renames it to its ``.v-<id>`` name, then atomically replaces the link
(``rename(2)``). A crash at any moment leaves either the old or the new index behind ``PATH``, both whole.
Loading checks every file's size and SHA-256 against the manifest and refuses anything that differs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from earlyrank.indexes.bm25 import BM25Index, BM25Params
from earlyrank.indexes.dense import DenseIndex, DenseParams, default_model_path, encode, model_identity
from earlyrank.indexes.filters import MetadataIndex
from earlyrank.indexes.hybrid import FusionParams, HybridRetriever
from earlyrank.indexes.manifest import (
    DOCS,
    FORMAT_VERSION,
    MANIFEST,
    IndexStoreError,
    read_manifest,
    rebuild_hint,
    sha256_file,
    verify_files,
)
from earlyrank.indexes.types import Document, RecallMode

# How a build turns passages into dense vectors: `indexes.dense.encode` or anything with its signature and
# result (one normalized float32 row per text, in order), e.g. `indexes.ray_build.RayDenseEncoder`.
Encoder = Callable[[Sequence[str], DenseParams, str | None, bool], np.ndarray]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _crash_point(name: str) -> None:
    """Test hook: die here, as a kill would, when EARLYRANK_CRASH_AT names this point."""
    if os.environ.get("EARLYRANK_CRASH_AT") == name:
        os._exit(137)


@dataclass(frozen=True)
class LoadedIndex:
    """An index read back from disk: the documents and whichever recall parts were built."""

    path: Path
    manifest: dict
    docs: list[Document]
    bm25: BM25Index | None
    dense: DenseIndex | None
    fusion: FusionParams

    def doc(self, doc_id: str) -> Document:
        """The document with id `doc_id`; KeyError if the index has none."""
        return self._by_id[doc_id]

    def position(self, doc_id: str) -> int:
        """Where `doc_id` sits in corpus order (the row of its vectors and weights); KeyError if absent."""
        return self._positions[doc_id]

    @cached_property
    def metadata(self) -> MetadataIndex:
        """Where each metadata value occurs, for filtered recall (`indexes.filters`); built field by field."""
        return MetadataIndex(self.docs)

    @cached_property
    def _by_id(self) -> dict[str, Document]:
        return {d.id: d for d in self.docs}

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {d.id: i for i, d in enumerate(self.docs)}

    def retriever(self, mode: str):
        """The retriever for `mode` (bm25, dense or hybrid), or a clear error if that part was not built."""
        parts = {"bm25": self.bm25, "dense": self.dense}
        if mode in parts:
            if parts[mode] is None:
                detail = f"this index has no {mode} part; build it with --{mode}"
                raise IndexStoreError(f"{self.path}: {detail}", detail)
            return parts[mode]
        if mode == "hybrid":
            if self.bm25 is None or self.dense is None:
                detail = "hybrid mode needs both parts; build with --bm25 --dense"
                raise IndexStoreError(f"{self.path}: {detail}", detail)
            return HybridRetriever([self.bm25, self.dense], self.fusion)
        RecallMode.parse(mode)  # raises, naming the choices
        raise AssertionError(f"unhandled recall mode {mode!r}")


def write_docs(path: Path, docs: Sequence[Document]) -> None:
    """One JSON line per document; "metadata" only where there is some, so an index of documents without any
    is written byte for byte as before metadata existed (and keeps its checksum)."""
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            row = {"_id": d.id, "title": d.title, "text": d.text} | ({"metadata": d.metadata} if d.metadata else {})
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_index(docs: Sequence[Document], out: str | Path, *, bm25: bool = True, dense: bool = True,
                bm25_params: BM25Params | None = None, dense_params: DenseParams | None = None,
                fusion: FusionParams | None = None, model_path: str | None = None,
                progress: bool = True, corpus_name: str = "", encoder: Encoder = encode) -> Path:
    """Build the requested parts for `docs` and swap them in at `out` atomically; returns `out`.

    `encoder` computes the dense vectors (default: `indexes.dense.encode`, in this process); whichever computes
    them, the parts, manifest and swap are written by this one path.
    """
    if not (bm25 or dense):
        raise ValueError("nothing to build: ask for bm25, dense or both")
    if not docs:
        raise ValueError("cannot index an empty corpus")
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_symlink():
        raise IndexStoreError(f"{out} exists and is not an earlyrank index link; choose another --out or remove it")
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = _write_parts(tmp, docs, bm25, dense, bm25_params or BM25Params(),
                                dense_params or DenseParams(), fusion or FusionParams(), model_path, progress,
                                encoder)
        manifest["corpus"]["name"] = corpus_name
        _crash_point("parts")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            _fsync_path(f)
        _fsync_path(tmp)
        final = out.parent / f"{out.name}.v-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        _crash_point("synced")
        os.rename(tmp, final)
        _crash_point("renamed")
        link_tmp = out.parent / f".{out.name}.link-{uuid.uuid4().hex[:8]}"
        os.symlink(final.name, link_tmp)
        previous = out.resolve() if out.is_symlink() else None
        _crash_point("linked")
        os.replace(link_tmp, out)  # the one atomic step: readers see the old index or the new one
        _fsync_path(out.parent)
        _crash_point("swapped")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if previous is not None and previous != final and previous.is_dir():
        os.utime(previous)  # its mtime now says when it was superseded: readers may still be opening it
    _remove_leftovers(out)
    return out


# A superseded version stays this long after its swap: a reader that resolved the link just before the swap
# is still opening its files (loading takes seconds; once loaded, an index no longer reads them).
SUPERSEDED_GRACE_SECONDS = 600.0


def _remove_leftovers(out: Path, grace: float | None = None) -> None:
    """Delete temporary directories of interrupted builds beside `out`, and versions superseded more than
    `grace` seconds ago (default `SUPERSEDED_GRACE_SECONDS`; a version's mtime is set when it is superseded)."""
    live = out.resolve()
    cutoff = time.time() - (SUPERSEDED_GRACE_SECONDS if grace is None else grace)
    for sibling in out.parent.glob(f"*{out.name}.*"):
        superseded = sibling.name.startswith(f"{out.name}.v-") and sibling != live
        stale = sibling.name.startswith((f".{out.name}.tmp-", f".{out.name}.link-")) or (
            superseded and sibling.lstat().st_mtime < cutoff)
        if stale:
            if sibling.is_symlink() or sibling.is_file():
                sibling.unlink(missing_ok=True)
            else:
                shutil.rmtree(sibling, ignore_errors=True)


def _write_parts(tmp: Path, docs: Sequence[Document], bm25: bool, dense: bool, bm25_params: BM25Params,
                 dense_params: DenseParams, fusion: FusionParams, model_path: str | None,
                 progress: bool, encoder: Encoder) -> dict:
    doc_ids = [d.id for d in docs]
    texts = [d.full_text for d in docs]
    write_docs(tmp / DOCS, docs)
    parts: dict[str, dict] = {}
    if bm25:
        index = BM25Index.build(doc_ids, texts, bm25_params, progress=progress)
        index.save(tmp)
        parts["bm25"] = {"params": asdict(bm25_params), "vocabulary": len(index.vocab)}
    if dense:
        path = Path(model_path) if model_path else default_model_path()
        vectors = encoder(texts, dense_params, model_path, progress)
        if vectors.shape[0] != len(docs):
            raise ValueError(f"the encoder returned {vectors.shape[0]} vectors for {len(docs)} documents")
        index_d = DenseIndex.from_vectors(doc_ids, vectors, dense_params, model_path)
        index_d.save(tmp)
        parts["dense"] = {"params": asdict(dense_params), "model": model_identity(path),
                          "dimension": index_d.index.d}
    files = {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(tmp.iterdir())}
    return {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": {"documents": len(docs), "sha256": files[DOCS]["sha256"]},
        "parts": parts,
        "fusion": asdict(fusion),
        "files": files,
    }


def _params(cls, values: dict, where: str, root: Path, path: Path):
    """`cls(**values)`, or an IndexStoreError naming the manifest when a parameter is unknown or invalid."""
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise IndexStoreError(f"{root / MANIFEST}: {where} parameters are invalid ({e}); "
                              f"{rebuild_hint(path)}") from None


def load_index(path: str | Path, model_path: str | None = None, verify: bool = True) -> LoadedIndex:
    """Load and verify an index built by `build_index`. Dense queries use `model_path` (default: bundled)."""
    from earlyrank.indexes.corpus import DatasetError, load_corpus

    root, manifest = read_manifest(path)
    if verify:
        verify_files(Path(path), root, manifest)
    try:
        docs = load_corpus(root / DOCS)
    except DatasetError as e:
        raise IndexStoreError(f"{e}; {rebuild_hint(Path(path))}") from None
    doc_ids = [d.id for d in docs]
    parts = manifest["parts"]
    fusion = _params(FusionParams, manifest["fusion"], "fusion", root, Path(path))
    bm25 = None
    if "bm25" in parts:
        bm25 = BM25Index.load(root, doc_ids, _params(BM25Params, parts["bm25"]["params"], "bm25", root, Path(path)))
    dense = None
    if "dense" in parts:
        params = _params(DenseParams, parts["dense"]["params"], "dense", root, Path(path))
        expected = parts["dense"]["model"]
        actual = model_identity(Path(model_path) if model_path else default_model_path())
        if actual["sha256"] != expected["sha256"]:
            raise IndexStoreError(f"{root}: dense part was built with model {expected.get('name')} "
                              f"({expected['sha256'][:12]}), but the encoder here is {actual['sha256'][:12]}; "
                              f"{rebuild_hint(Path(path))}")
        dense = DenseIndex.load(root, doc_ids, params, model_path)
    return LoadedIndex(Path(path), manifest, docs, bm25, dense, fusion)
