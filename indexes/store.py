"""The index on disk: a directory with a manifest, written crash-safely and verified on load.

Layout of an index at ``PATH``: ``PATH`` is a symbolic link to a sibling ``PATH.v-<id>`` directory that
holds ``manifest.json``, ``docs.jsonl`` and each part's files. A build (or an update, `indexes.update`)
writes a whole new version and swaps it in atomically (`indexes.versions`): a crash at any moment leaves
either the old or the new index behind ``PATH``, both whole. Loading checks every file's size and SHA-256
against the manifest and refuses anything that differs.
"""

from __future__ import annotations

import json
import shutil
import time
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
    TOKENIZER,
    IndexStoreError,
    read_manifest,
    rebuild_hint,
    sha256_file,
    verify_files,
)
from earlyrank.indexes.passage_table import PassageTable
from earlyrank.indexes.passages import PassageParams, Splitter
from earlyrank.indexes.types import Document, Passage, RecallMode
from earlyrank.indexes.versions import commit_version, index_link, writer_lock

# How a build turns passages into dense vectors: `indexes.dense.encode` or anything with its signature and
# result (one normalized float32 row per text, in order), e.g. `indexes.ray_build.RayDenseEncoder`.
Encoder = Callable[[Sequence[str], DenseParams, str | None, bool], np.ndarray]


@dataclass(frozen=True)
class LoadedIndex:
    """An index read back from disk: the documents, the passages indexed from them (`indexes.passage_table`)
    and whichever recall parts were built.

    `docs` are the indexed passages, one per row of each part, as `Document`s (a document indexed whole is its
    own passage); `documents` are the documents themselves. `doc`, `position` and every hit's `doc_id` name a
    passage; `passage` says which document it comes from and where.
    """

    path: Path
    manifest: dict
    passages: PassageTable
    bm25: BM25Index | None
    dense: DenseIndex | None
    fusion: FusionParams

    @property
    def docs(self) -> list[Document]:
        """The indexed passages, in row order."""
        return self.passages.units

    @property
    def documents(self) -> list[Document]:
        """The documents, whole, in corpus order."""
        return self.passages.documents

    def doc(self, doc_id: str) -> Document:
        """The indexed passage with id `doc_id`; KeyError if the index has none."""
        return self._by_id[doc_id]

    def missing_passage(self, doc_id: str) -> str:
        """Why `doc_id` names no indexed passage, for an error message: when it is a split document's id, the ids of
        its passages (``DOCID#pN``: a hit's ``passage_id``), so the caller can pick one."""
        rows = self.passages.rows_of({doc_id})
        if not rows or doc_id in self._by_id:
            return f"no passage {doc_id!r} in the index"
        names = [self.docs[i].id for i in rows]
        shown = ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]}, ..., {names[-1]}"
        return (f"{doc_id!r} is a document indexed as {len(names)} passages ({shown}); give one of their ids "
                f"(a hit's passage_id; an answer's passage N is {doc_id}#pN)")

    def passage(self, doc_id: str) -> Passage:
        """Where the indexed passage `doc_id` lies: its document, its number and its offsets; KeyError if absent."""
        return self.passages.source(doc_id)

    def document(self, doc_id: str) -> Document:
        """The whole document with id `doc_id` (a document's id, not a passage's); KeyError if absent."""
        return self.passages.document_by_id[doc_id]

    def position(self, doc_id: str) -> int:
        """Where the passage `doc_id` sits in row order (the row of its vectors and weights); KeyError if absent."""
        return self._positions[doc_id]

    def splitter(self) -> Splitter | None:
        """How this index splits the documents added to it (as its build did), or None if it keeps them whole."""
        entry = self.manifest.get("passages")
        if not entry:
            return None
        return Splitter(PassageParams(**entry["params"]), self.path.resolve() / TOKENIZER,
                        entry["tokenizer"].get("name"))

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
                progress: bool = True, corpus_name: str = "", encoder: Encoder = encode,
                passages: Splitter | None = None, corpus_source: dict | None = None) -> Path:
    """Build the requested parts for `docs` and swap them in at `out` atomically, after any build or update of
    `out` already running; returns `out`.

    With a `passages` splitter, a long document is indexed as several passages (`indexes.passages`), and the
    index keeps the splitter's settings and tokenizer to split the documents later added the same way.

    `encoder` computes the dense vectors (default: `indexes.dense.encode`, in this process); whichever computes
    them, the parts, manifest and swap are written by this one path. `corpus_source` (what the documents were read
    from: ``{"path": ..., "fields": {...}}``) is kept in the manifest's "corpus", so that `earlyrank add` reads
    later files the same way.
    """
    if not (bm25 or dense):
        raise ValueError("nothing to build: ask for bm25, dense or both")
    if not docs:
        raise ValueError("cannot index an empty corpus")
    out = index_link(out)

    table = PassageTable.build(docs, passages)
    units = table.units

    def write(tmp: Path) -> dict:
        texts = [d.full_text for d in units]
        index = BM25Index.build([d.id for d in units], texts, bm25_params, progress=progress) if bm25 else None
        index_d = None
        if dense:
            vectors = encoder(texts, dense_params or DenseParams(), model_path, progress)
            index_d = dense_from_vectors(units, vectors, dense_params or DenseParams(), model_path)
        model = model_identity(Path(model_path) if model_path else default_model_path()) if dense else None
        corpus = {"name": corpus_name, **({"source": corpus_source} if corpus_source else {})}
        return save_version(tmp, table, index, index_d, model, fusion or FusionParams(), corpus, passages)

    with writer_lock(out):
        return commit_version(out, write)


def dense_from_vectors(docs: Sequence[Document], vectors: np.ndarray, params: DenseParams,
                       model_path: str | None) -> DenseIndex:
    """The dense part over an encoder's `vectors` for `docs` (the indexed passages); ValueError if there is not one
    row per passage."""
    if vectors.shape[0] != len(docs):
        raise ValueError(f"the encoder returned {vectors.shape[0]} vectors for {len(docs)} passages")
    return DenseIndex.from_vectors([d.id for d in docs], vectors, params, model_path)


def save_version(tmp: Path, table: PassageTable, bm25: BM25Index | None, dense: DenseIndex | None,
                 dense_model: dict | None, fusion: FusionParams, corpus: dict, splitter: Splitter | None) -> dict:
    """Write the documents, their passages and the parts into the new version's directory `tmp`; returns its
    manifest, listing every file's size and checksum. `dense_model` is the encoder's `model_identity`; `corpus`
    goes into the manifest's "corpus" (its name, and for an update what it changed); `splitter`'s settings and
    tokenizer are kept for the documents added later (none: documents are kept whole)."""
    write_docs(tmp / DOCS, table.documents)
    table.save(tmp)
    split: dict[str, dict] = {}
    if splitter is not None:
        shutil.copyfile(splitter.tokenizer, tmp / TOKENIZER)
        split = {"passages": {"params": asdict(splitter.params), "tokenizer": splitter.identity()}}
    parts: dict[str, dict] = {}
    if bm25 is not None:
        bm25.save(tmp)
        parts["bm25"] = {"params": asdict(bm25.params), "vocabulary": len(bm25.vocab)}
    if dense is not None:
        dense.save(tmp)
        parts["dense"] = {"params": asdict(dense.params), "model": dense_model, "dimension": dense.index.d}
    files = {f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(tmp.iterdir())}
    return {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": {**corpus, "documents": len(table.documents), "passages": len(table.units),
                   "sha256": files[DOCS]["sha256"]},
        "parts": parts,
        "fusion": asdict(fusion),
        "files": files,
        **split,
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
        table = PassageTable.load(root, load_corpus(root / DOCS, check=False))  # written by us, maybe before a check
    except (DatasetError, ValueError) as e:
        raise IndexStoreError(f"{e}; {rebuild_hint(Path(path))}") from None
    if "passages" in manifest:
        _params(PassageParams, manifest["passages"]["params"], "passages", root, Path(path))
    doc_ids = [d.id for d in table.units]
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
    return LoadedIndex(Path(path), manifest, table, bm25, dense, fusion)
