"""Load data sets in BEIR layout: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

Every malformed line raises `DatasetError` naming the file, the line number and what was wrong; nothing
half-loaded is ever returned.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from earlyrank.indexes.corpus import DatasetError, json_lines, load_corpus, string_field
from earlyrank.indexes.types import Document, Query

DEFAULT_CORPUS = Path(__file__).parent / "data" / "xquad-en"

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Dataset:
    """A corpus with its queries and relevance judgements per split (e.g. ``qrels["test"]``)."""

    name: str
    corpus: list[Document]
    queries: dict[str, Query]
    qrels: dict[str, Qrels]

    def split(self, name: str) -> tuple[list[Query], Qrels]:
        """The queries that have judgements in split `name`, in file order, with those judgements."""
        if name not in self.qrels:
            raise DatasetError(
                f"{self.name}: no split {name!r}; available: {', '.join(sorted(self.qrels)) or 'none'}"
            )
        qrels = self.qrels[name]
        return [q for q in self.queries.values() if q.id in qrels], qrels


def load_queries(path: str | Path) -> dict[str, Query]:
    """Read queries.jsonl (`_id`, `text`, optional `metadata`)."""
    path = Path(path)
    queries: dict[str, Query] = {}
    for number, record in json_lines(path):
        query_id = string_field(path, number, record, "_id")
        if query_id in queries:
            raise DatasetError(f"{path}:{number}: duplicate query id {query_id!r}")
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DatasetError(f"{path}:{number}: field 'metadata' must be an object, got {metadata!r}")
        queries[query_id] = Query(id=query_id, text=string_field(path, number, record, "text"), metadata=metadata)
    return queries


def load_qrels(path: str | Path) -> Qrels:
    """Read a TREC-style qrels TSV with a header: query-id, corpus-id, score (an integer)."""
    path = Path(path)
    qrels: Qrels = {}
    with path.open(encoding="utf-8-sig", newline="") as f:  # a byte-order mark is not part of the header
        rows = csv.reader(f, delimiter="\t")
        for number, row in enumerate(rows, 1):
            if number == 1 and row and row[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise DatasetError(f"{path}:{number}: expected 3 tab-separated columns, got {len(row)}")
            try:
                score = int(row[2])
            except ValueError:
                raise DatasetError(f"{path}:{number}: score {row[2]!r} is not an integer") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_dataset(directory: str | Path, check_judged: bool = True) -> Dataset:
    """Load a BEIR-layout directory. Every judged query must be in queries.jsonl (a judged query without a text
    can be neither asked nor scored, and was scored 0 by one path and dropped by another); with `check_judged`,
    every judged document must be in corpus.jsonl too (without, it counts as trec_eval counts it)."""
    root = Path(directory)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected a BEIR layout: corpus.jsonl, queries.jsonl)")
    corpus = load_corpus(root / "corpus.jsonl")
    queries = load_queries(root / "queries.jsonl")
    qrels = {p.stem: load_qrels(p) for p in sorted((root / "qrels").glob("*.tsv"))}
    doc_ids = {d.id for d in corpus}
    for split, judgements in qrels.items():
        for query_id, docs in judgements.items():
            if query_id not in queries:
                raise DatasetError(f"{root}/qrels/{split}.tsv: query id {query_id!r} not in queries.jsonl")
            missing = next((d for d in docs if d not in doc_ids), None) if check_judged else None
            if missing is not None:
                raise DatasetError(f"{root}/qrels/{split}.tsv: document id {missing!r} not in corpus.jsonl")
    return Dataset(name=root.resolve().name, corpus=corpus, queries=queries, qrels=qrels)
