"""Indexes of whole data sets, built once and cached, for training, calibration, tuning and benchmarks."""

from __future__ import annotations

import hashlib

from earlyrank.engine.cache_dir import cache_root
from earlyrank.engine.datasets import Dataset
from earlyrank.engine.model_files import DEFAULT_MODEL
from earlyrank.indexes.passages import PassageParams, Splitter
from earlyrank.indexes.store import IndexStoreError, LoadedIndex, build_index, load_index


def corpus_fingerprint(dataset: Dataset) -> str:
    """12 hex digits of the SHA-256 of every document's id, title and text, in corpus order: the cached index of
    `dataset` is named by it, so an edited corpus never reuses a stale index."""
    digest = hashlib.sha256()
    for d in dataset.corpus:
        digest.update(f"{d.id}\t{d.title}\t{d.text}\n".encode())
    return digest.hexdigest()[:12]


def index_splitter(params: PassageParams | None = None) -> Splitter:
    """The splitter `earlyrank index` cuts documents with: `params` (default 150 word pieces, one sentence of
    overlap) measured in the word pieces of the bundled cross-encoder's tokenizer."""
    return Splitter(params or PassageParams(), DEFAULT_MODEL / "tokenizer.json")


def split_tag(passages: Splitter | None) -> str:
    """What names a split index, and its scores, apart from the whole-passage ones: "" or
    "-passages150-overlap1"."""
    return "" if passages is None else f"-passages{passages.params.tokens}-overlap{passages.params.overlap}"


def dataset_index(dataset: Dataset, progress: bool = True, passages: Splitter | None = None) -> LoadedIndex:
    """A BM25 + dense index of `dataset`'s corpus, loaded from the cache or built into it. By default its documents
    are never split into passages: the data set's judgements are of its own passages, so every figure measures
    those. With a `passages` splitter, a long document is cut as `earlyrank index` cuts it (`passage_qrels` then
    carries the judgements over to the passages), cached apart under the splitter's settings."""
    path = cache_root() / "indexes" / f"{dataset.name}-{corpus_fingerprint(dataset)}{split_tag(passages)}"
    try:
        return load_index(path)
    except IndexStoreError:
        build_index(dataset.corpus, path, progress=progress, corpus_name=dataset.name, passages=passages)
        return load_index(path)


def passage_qrels(qrels: dict[str, dict[str, int]], index: LoadedIndex) -> dict[str, dict[str, int]]:
    """`qrels` (query -> judged document -> grade) over `index`'s passages: every passage of a judged document gets
    the document's grade, so a passage is relevant where its document is. A judged document the index lacks keeps
    its own id (a relevant passage recall cannot return, as trec_eval counts it)."""
    rows: dict[str, list[str]] = {}
    for unit, source in zip(index.docs, index.passages.sources, strict=True):
        rows.setdefault(source.doc_id, []).append(unit.id)
    return {q: {unit: grade for doc, grade in judged.items() for unit in rows.get(doc, [doc])}
            for q, judged in qrels.items()}
