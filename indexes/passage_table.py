"""The documents of an index and the passages it indexes: one passage per row of the BM25 and dense parts.

A document indexed whole is its own passage, under its own id, so an index of short documents has the same
rows and ids as before passages existed. Passage N of a document ``D`` split at index time is the row
``D#pN``: the slice ``text[start:end]`` of D's text, under D's title and metadata. A document's passages are
consecutive rows, in document order. On disk, ``docs.jsonl`` keeps the documents whole, ``passages.npy`` (only
when some document is split) one row (document position, start, end) per passage, and an index built with a
splitter keeps its tokenizer (``passage_tokenizer.json``) and settings (the manifest's "passages").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from earlyrank.indexes.passages import Span, Splitter
from earlyrank.indexes.types import Document, Hit, Passage

PASSAGES = "passages.npy"


def passage_id(doc_id: str, number: int) -> str:
    """The row id of passage `number` of the split document `doc_id`: ``DOCID#pN``."""
    return f"{doc_id}#p{number}"


PASSAGE_ID = re.compile(r"#p\d+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_document_id(doc_id: str) -> str:
    """`doc_id`, if it can name a document: ValueError if it is blank, holds a control character (a newline or a
    tab: such an id could be added but not named again in a URL or on a command line), or ends in ``#pN``, the
    form of a passage's id (a long document "a" is indexed as "a#p0", "a#p1", ...), which would clash with one
    as soon as such a document came."""
    if not doc_id.strip():
        raise ValueError(f"document id {doc_id!r} is blank; give an id with at least one visible character")
    if CONTROL.search(doc_id):
        raise ValueError(f"document id {doc_id!r} holds a control character (a newline, tab or the like); an id "
                         f"must be one line of printable text")
    if PASSAGE_ID.search(doc_id):
        raise ValueError(f"document id {doc_id!r} ends in '#p' and a number, the form of a passage's id "
                         f"(a long document X is indexed as X#p0, X#p1, ...); rename it, e.g. to "
                         f"{PASSAGE_ID.sub(lambda m: m.group().replace('#', '-'), doc_id)!r}")
    return doc_id


class PassageTable:
    """`documents`, and the passages of each (`spans[i]`: document i's (start, end) offsets; None: each whole).
    ValueError if a passage's id is also another document's."""

    def __init__(self, documents: Sequence[Document], spans: Sequence[Sequence[Span]] | None = None):
        self.documents = list(documents)
        self.spans = [[(0, len(d.text))] for d in self.documents] if spans is None else [list(s) for s in spans]
        if len(self.spans) != len(self.documents):
            raise ValueError(f"{len(self.spans)} passage lists for {len(self.documents)} documents")
        self.units: list[Document] = []  # the indexed passages, in row order
        self.sources: list[Passage] = []
        for d, spans_of in zip(self.documents, self.spans, strict=True):
            whole = len(spans_of) == 1
            for n, (a, b) in enumerate(spans_of):
                if not 0 <= a <= b <= len(d.text):
                    raise ValueError(f"document {d.id!r}: passage {n} at [{a}, {b}) is outside its text")
                self.units.append(d if whole else Document(passage_id(d.id, n), d.text[a:b], d.title, d.metadata))
                self.sources.append(Passage(d.id, n, a, b))
        if len(self.source_by_id) < len(self.units):
            counts = Counter(u.id for u in self.units)
            clash = next(u.id for u in self.units if counts[u.id] > 1)
            raise ValueError(f"two indexed passages have the id {clash!r}: a long document's passages are named "
                             f"DOCID#pN, and document ids must be unique; rename the document")

    @classmethod
    def build(cls, documents: Sequence[Document], splitter: Splitter | None) -> PassageTable:
        """The table of `documents`, each split by `splitter` (None: each indexed whole); ValueError for an id of
        the passage form (`check_document_id`). Only new documents are checked: an index built before the check
        still loads."""
        for d in documents:
            check_document_id(d.id)
        return cls(documents, None if splitter is None else splitter.split([d.text for d in documents]))

    @property
    def split(self) -> bool:
        """True if some document is indexed as several passages."""
        return len(self.units) > len(self.documents)

    @cached_property
    def source_by_id(self) -> dict[str, Passage]:
        return {u.id: s for u, s in zip(self.units, self.sources, strict=True)}

    @cached_property
    def document_by_id(self) -> dict[str, Document]:
        return {d.id: d for d in self.documents}

    def source(self, unit_id: str) -> Passage:
        """Where the indexed passage `unit_id` lies in its document; KeyError if the index has none."""
        return self.source_by_id[unit_id]

    def rows_of(self, doc_ids: Collection[str]) -> list[int]:
        """The rows of every passage of the documents `doc_ids`, in row order."""
        return [i for i, s in enumerate(self.sources) if s.doc_id in doc_ids]

    def updated(self, delete: Collection[str], add: Sequence[Document], splitter: Splitter | None) -> PassageTable:
        """The documents not in `delete`, keeping their passages, then `add`, split by `splitter`."""
        kept = [i for i, d in enumerate(self.documents) if d.id not in delete]
        new = PassageTable.build(add, splitter)
        return PassageTable([self.documents[i] for i in kept] + new.documents,
                            [self.spans[i] for i in kept] + new.spans)

    def save(self, directory: Path) -> list[Path]:
        """Write `PASSAGES` into `directory` if some document is split (else nothing: each row is a document)."""
        if not self.split:
            return []
        rows = [(i, a, b) for i, spans in enumerate(self.spans) for a, b in spans]
        np.save(directory / PASSAGES, np.asarray(rows, dtype=np.int64))
        return [directory / PASSAGES]

    @classmethod
    def load(cls, directory: Path, documents: Sequence[Document]) -> PassageTable:
        """The table `save` wrote in `directory` for `documents`; each document whole if it wrote none. ValueError
        for rows that are not each document's passages in order."""
        path = directory / PASSAGES
        if not path.is_file():
            return cls(documents)
        rows = np.load(path, allow_pickle=False)
        owners = rows[:, 0] if rows.ndim == 2 and rows.shape[1] == 3 else np.zeros(0)
        if owners.size == 0 or np.any(np.diff(owners) < 0) or not np.array_equal(np.unique(owners),
                                                                                 np.arange(len(documents))):
            raise ValueError(f"{path}: not one or more passages per document, in document order")
        spans: list[list[Span]] = [[] for _ in documents]
        for i, a, b in rows.tolist():
            spans[i].append((a, b))
        return cls(documents, spans)


def located(where: Passage | None, doc: Document) -> Passage:
    """Where the passage `doc` lies in its document: `where`, or if nobody said, the whole of `doc`."""
    return where or Passage(doc.id, 0, 0, len(doc.text))


def by_document(hits: Iterable[Hit], source, k: int) -> list[Hit]:
    """The first (best) hit of each document among `hits` (best first), at most `k`, ranked from 1, each with its
    `Passage` (`source(hit.doc_id)`)."""
    best: list[Hit] = []
    seen: set[str] = set()
    for hit in hits:
        where = source(hit.doc_id)
        if where.doc_id not in seen:
            seen.add(where.doc_id)
            best.append(Hit(hit.doc_id, hit.score, len(best) + 1, hit.stage_scores, where))
            if len(best) == k:
                break
    return best


def with_passages(hits: Iterable[Hit], source) -> list[Hit]:
    """`hits` as they are, each with its `Passage` (`source(hit.doc_id)`)."""
    return [Hit(h.doc_id, h.score, h.rank, h.stage_scores, source(h.doc_id)) for h in hits]
