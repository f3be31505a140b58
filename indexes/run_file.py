"""An external first-stage run (TREC run format) served as a retriever, for reranking a search backend's list.

A TREC run file has one line per retrieved passage: ``query-id Q0 doc-id rank score tag`` (whitespace
separated), as trec_eval reads it. `RunRetriever.search(query_id, k)` returns the run's top `k` for the query
with that id, in the run's order; a query the run does not list gets no candidates.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Container, Mapping
from pathlib import Path

from earlyrank.indexes.base import check_k
from earlyrank.indexes.types import Hit


class RunFileError(ValueError):
    """A run file is missing or malformed; the message names the file and the line."""


def read_run(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """{query id: [(doc id, score)]} in the run's order as trec_eval reads it: by score, highest first, equal
    scores by document id, the greater first. RunFileError naming the file and line for a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"{path}: no such run file (expected TREC format: qid Q0 docid rank score tag)")
    rows: dict[str, list[tuple[int, str, float]]] = {}
    seen: dict[tuple[str, str], int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first query id
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 text (byte {e.start}); a TREC run is plain text") from None
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise RunFileError(f"{path}:{number}: expected 6 columns (qid Q0 docid rank score tag), "
                               f"got {len(parts)}")
        try:
            rank, score = int(parts[3]), float(parts[4])
        except ValueError:
            raise RunFileError(f"{path}:{number}: rank {parts[3]!r} must be an integer and score "
                               f"{parts[4]!r} a number") from None
        if not math.isfinite(score):
            raise RunFileError(f"{path}:{number}: score {parts[4]!r} must be a finite number")
        if (parts[0], parts[2]) in seen:  # trec_eval refuses a run that lists a passage twice for one query
            raise RunFileError(f"{path}:{number}: query {parts[0]!r} lists passage {parts[2]!r} again (first at "
                               f"line {seen[parts[0], parts[2]]}); a run ranks each passage once")
        seen[parts[0], parts[2]] = number
        rows.setdefault(parts[0], []).append((rank, parts[2], score))
    if not rows:
        raise RunFileError(f"{path}: no run lines (expected TREC format: qid Q0 docid rank score tag)")
    # As trec_eval orders a run: by score, highest first; equal scores by document id, the greater first (the
    # rank column is not read). Scores are kept, so the given run's figures are trec_eval's whatever the ties.
    return {q: [(d, s) for _, d, s in sorted(r, key=lambda x: (-x[2], _descending(x[1])))] for q, r in rows.items()}


def _descending(text: str) -> tuple[int, ...]:
    """A sort key that orders strings from the greatest down (by code point, as trec_eval's strcmp on UTF-8 does
    for these ids), then the longer first among prefixes."""
    return tuple(-ord(c) for c in text) + (1,)


class RunRetriever:
    """The candidates an external run gives each query, found by the query's id (two queries with one text keep
    their own lists)."""

    name = "run"

    def __init__(self, run: Mapping[str, list[tuple[str, float]]]):
        self.run = run

    def search(self, query_id: str, k: int) -> list[Hit]:
        """The run's top `k` for the query `query_id`, in run order with the run's scores; [] for a query the run
        does not list. ValueError if `k` is not a positive integer."""
        check_k(k)
        ranked = self.run.get(query_id, [])[:k]
        return [Hit(d, s, r, {"run": s}) for r, (d, s) in enumerate(ranked, 1)]

    def check_queries(self, query_ids: Collection[str], path: Path | str = "the run") -> None:
        """RunFileError if the run lists none of `query_ids` (the split's queries) but lists some query: its first
        column then holds something else (another id scheme, or columns in another order), and every query would
        have no candidates."""
        if self.run and query_ids and not any(q in self.run for q in query_ids):
            raise RunFileError(f"{path}: none of its {len(self.run)} query ids (e.g. {next(iter(self.run))!r}) is a "
                               f"query of this split (e.g. {next(iter(query_ids))!r}); its first column must be "
                               f"the query's id in queries.jsonl")

    def coverage_notes(self, query_ids: Collection[str], path: Path | str = "the run") -> list[str]:
        """What the run leaves out or adds, in words: queries of the split it lists no passage for (they score
        0, as trec_eval -c scores them) and query ids it lists that the split lacks (not scored); [] if none."""
        missing = [q for q in query_ids if q not in self.run]
        extra = [q for q in self.run if q not in set(query_ids)]
        notes = []
        if missing:
            notes.append(f"{path}: lists no passage for {len(missing)} of the {len(query_ids)} queries (e.g. "
                         f"{missing[0]!r}); they score 0, as trec_eval -c scores them")
        if extra:
            notes.append(f"{path}: {len(extra)} of its query ids are not queries of this split (e.g. {extra[0]!r}); "
                         f"their lists were not scored")
        return notes

    def check_passages(self, known: Container[str], path: Path | str = "the run",
                       query_ids: Collection[str] | None = None) -> None:
        """RunFileError naming the first passage the run ranks for `query_ids` (default: every query it lists)
        that is not in `known` (the corpus's passage ids): reranking reads each candidate's text, so a run must
        rank the data set's own passages for the queries reranked."""
        for query_id, ranked in self.run.items():
            if query_ids is not None and query_id not in query_ids:
                continue
            for doc_id, _ in ranked:
                if doc_id not in known:
                    raise RunFileError(f"{path}: query {query_id!r} ranks passage {doc_id!r}, which the corpus "
                                       f"does not hold; a run to rerank must rank the data set's own passages")
