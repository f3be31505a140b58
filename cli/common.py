"""What every `earlyrank` command shares: the typer app, option types, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from earlyrank.indexes.types import RecallMode

app = typer.Typer(help="earlyrank: retrieve-then-rerank question answering with early stopping.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  rich_markup_mode=None)

DEFAULT_INDEX = Path("indexes-data") / "default"
Mode = Annotated[str, typer.Option("--mode", "-m", help="Recall mode: bm25, dense or hybrid.")]
RayAddress = Annotated[str | None, typer.Option("--ray", metavar="ADDRESS", help=(
    "Run on Ray (the 'ray' extra): 'local' for a cluster on this machine, or a cluster's address."))]
RayWorkers = Annotated[int, typer.Option("--ray-workers", help="Ray actors, one CPU each.")]
TextField = Annotated[str, typer.Option("--text-field", help="JSON or CSV input: the field holding the text.")]
IdField = Annotated[str | None, typer.Option("--id-field", help=(
    "JSON or CSV input: the field holding the id (default: _id, else id). Rows without one get an id made "
    "from their text, the same on every run."))]
TitleField = Annotated[str | None, typer.Option("--title-field", help=(
    "JSON or CSV input: the field holding the title (default: title, if there is one)."))]
Backend = Annotated[str | None, typer.Option(
    help="Cross-encoder backend: auto (torch-bf16 on a CPU with bf16, else torch-fp32), torch-fp32, torch-bf16, "
         "onnx-fp32 or onnx-int8. Default: EARLYRANK_BACKEND, else auto.")]


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: no traceback for a user's mistake."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def check_k(k: int) -> None:
    """Exit with a one-line error (status 2) unless `k` is positive."""
    if k <= 0:
        fail(f"-k must be a positive integer, got {k}")


def check_ray(address: str | None, workers: int) -> None:
    """Fail in one line, before any work, if --ray was asked for but Ray is not installed."""
    if address is None:
        return
    from earlyrank.indexes.ray_session import require_ray

    try:
        require_ray()
    except ImportError as e:
        fail(str(e))
    if workers < 1:
        fail(f"--ray-workers must be at least 1, got {workers}")


def ray_context(address: str | None):
    """A Ray session for --ray, with per-worker scoring costs logged to stderr; no-op without --ray."""
    import contextlib
    import logging

    if address is None:
        return contextlib.nullcontext()
    from earlyrank.indexes.ray_session import ray_session

    costs = logging.getLogger("earlyrank.engine.ray_scoring")
    costs.setLevel(logging.INFO)
    if not costs.handlers:
        costs.addHandler(logging.StreamHandler())
    return ray_session(address)


def check_mode(mode: str) -> None:
    """Exit with a one-line error unless `mode` is a recall mode (bm25, dense or hybrid)."""
    try:
        RecallMode.parse(mode)
    except ValueError as e:
        fail(str(e))


def check_text(name: str, text: str) -> None:
    """Fail in one line if an argument is not UTF-8 text: bytes that are not arrive as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        byte = text[e.start].encode("utf-8", "surrogateescape")
        fail(f"the {name} is not UTF-8 text (byte 0x{byte.hex() if len(byte) == 1 else '??'} at character "
             f"{e.start}); check the terminal's encoding")


def check_query(query: str) -> None:
    """One line if the query is not UTF-8 text or has no letter or digit (nothing to search or rerank for)."""
    from earlyrank.engine.rerank import has_content

    check_text("query", query)
    if not query.strip():
        fail("the query is empty")
    if not has_content(query):
        fail(f"the query {query!r} has no letter or digit; ask a question with words")


def check_request(query: str, k: int, mode: str) -> None:
    """Check a search's `k`, `mode` and query, in that order; a one-line error at the first bad one."""
    check_k(k)
    check_mode(mode)
    check_query(query)


Data = Annotated[list[Path], typer.Option("--data", "-d", metavar="DIR", help="BEIR directory; repeatable.")]
ModelDir = Annotated[Path, typer.Option("--model", help="Cross-encoder directory.")]


DevDepth = Annotated[int, typer.Option(help="Candidates per dev query, as inference draws them.")]
DevLimit = Annotated[list[int] | None, typer.Option(
    "--limit", help="Dev queries to use from each --data, in order (0: all); default all.")]


def dev_limits(data: list[Path], limit: list[int] | None) -> list[tuple[Path, int]]:
    """Each --data directory with its --limit (0, all queries, when none is given); a one-line error unless there are as
    many limits as directories."""
    limits = limit or [0] * len(data)
    if len(limits) != len(data):
        fail(f"give one --limit per --data ({len(data)}), or none; got {len(limits)}")
    return list(zip(data, limits, strict=True))


def check_data(data: list[Path]) -> None:
    """A one-line error naming the first --data directory that is not a BEIR data set (no corpus.jsonl)."""
    for d in data:
        if not (d / "corpus.jsonl").is_file():
            fail(f"{d}: not a BEIR data set (no corpus.jsonl)")


def load_index_or_fail(path: Path):
    """The index at `path`, or a one-line error saying what is wrong with it."""
    from earlyrank.indexes.store import IndexStoreError, load_index

    try:
        return load_index(path)
    except IndexStoreError as e:
        fail(str(e))


def hits_table(hits, docs_of, width: int = 90) -> str:
    """Hits as a plain-text table: rank, score, passage id (the document's id, with ``#pN`` for passage N of a
    long one; never cut, so two passages of one document stay apart) and the passage cut to `width` characters;
    `docs_of(doc_id)` gives each hit's passage."""
    column = max([24, *(len(h.doc_id) for h in hits)])
    lines = [f"{'rank':>4}  {'score':>10}  {'doc':<{column}}  passage"]
    from earlyrank.engine.rerank import NO_CONTENT_LOGIT

    notes: dict[str, str] = {}
    for h in hits:
        doc = docs_of(h.doc_id)
        text = " ".join(doc.full_text.split())  # a carriage return or tab would scramble the row in a terminal
        text = text if len(text) <= width else text[: width - 1] + "…"
        # A reranked list's passages that were not scored sort by a stand-in score (-1: the early stop left them;
        # -2: no letter or digit, never sent to the model); printed as a number it reads as a (very low) relevance.
        cell = f"{h.score:.4f}"
        if "recall_rank" in h.stage_scores and h.logit is None:
            cell = "not scored"
            notes[cell] = "the reranker stopped before it, so it keeps its recall order"
        elif h.logit is not None and h.logit <= NO_CONTENT_LOGIT:
            cell = "no text"
            notes[cell] = "no letter or digit, so it was not scored and comes last"
        lines.append(f"{h.rank:>4}  {cell:>10}  {h.doc_id:<{column}}  {text}")
    lines += [f"({cell}: {why})" for cell, why in notes.items()]
    return "\n".join(lines)


def count(n: int, noun: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def note_unread(path) -> None:
    """Tell the user which files a folder's reading passed over: files of rows (.jsonl, .json, .csv, .tsv) in a
    folder read one document a file (each such file is indexed or added by giving its own path), linked folders
    (not followed), and any document file beside a corpus.jsonl (the folder is then read as a BEIR data set)."""
    from earlyrank.indexes.document_files import files_beside_corpus, linked_folders, rows_in_folder

    for skipped, why in ((rows_in_folder(path), " (files of rows of documents; index or add each by giving its path)"),
                         (linked_folders(path), " (linked folders are not followed; index or add each by giving its "
                                                "own path)"),
                         (files_beside_corpus(path), ": this folder holds corpus.jsonl, so it was read as a BEIR data "
                                                     "set, from corpus.jsonl alone; index the other files from a "
                                                     "folder of their own")):
        if skipped:
            more = " ..." if len(skipped) > 5 else ""
            typer.echo(f"note: not read: {', '.join(skipped[:5])}{more}{why}", err=True)
