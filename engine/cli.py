"""The `earlyrank` command line. Each command is thin: parse, call the engine, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.datasets import DEFAULT_CORPUS

app = typer.Typer(help="earlyrank: retrieve-then-rerank question answering with early stopping.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

DEFAULT_INDEX = Path("indexes-data") / "default"
Mode = Annotated[str, typer.Option("--mode", "-m", help="Recall mode: bm25, dense or hybrid.")]


def fail(message: str) -> None:
    """One line on stderr and exit status 2: no traceback for a user's mistake."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_k(k: int) -> None:
    if k <= 0:
        fail(f"-k must be a positive integer, got {k}")


def _check_mode(mode: str) -> None:
    if mode not in ("bm25", "dense", "hybrid"):
        fail(f"unknown mode {mode!r}; choose bm25, dense or hybrid")


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help="A BEIR-layout directory (corpus.jsonl).")] = DEFAULT_CORPUS,
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to create or replace.")] = DEFAULT_INDEX,
    bm25: Annotated[bool, typer.Option("--bm25", help="Build the BM25 part.")] = False,
    dense: Annotated[bool, typer.Option("--dense", help="Build the dense part.")] = False,
    hnsw: Annotated[bool, typer.Option("--hnsw", help="Approximate (HNSW) dense index instead of exact.")] = False,
) -> None:
    """Build an index of CORPUS (both parts unless --bm25 or --dense picks one), replacing OUT atomically."""
    from engine.datasets import DatasetError, load_corpus
    from indexes.dense import DenseParams
    from indexes.store import IndexStoreError, build_index

    if not corpus.is_dir():
        fail(f"{corpus}: no such corpus directory")
    try:
        docs = load_corpus(corpus / "corpus.jsonl")
        both = not (bm25 or dense)
        build_index(docs, out, bm25=bm25 or both, dense=dense or both, corpus_name=corpus.name,
                    dense_params=DenseParams(index="hnsw" if hnsw else "flat"))
    except (DatasetError, IndexStoreError, ValueError) as e:
        fail(str(e))
    typer.echo(f"indexed {len(docs)} documents from {corpus} into {out}")


def _load_index(path: Path):
    from indexes.store import IndexStoreError, load_index

    try:
        return load_index(path)
    except IndexStoreError as e:
        fail(str(e))


def _hits_table(hits, docs_of, width: int = 90) -> str:
    lines = [f"{'rank':>4}  {'score':>9}  {'doc':<24}  passage"]
    for h in hits:
        doc = docs_of(h.doc_id)
        text = doc.full_text.replace("\n", " ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        lines.append(f"{h.rank:>4}  {h.score:>9.4f}  {h.doc_id[:24]:<24}  {text}")
    return "\n".join(lines)


def _hit_json(hit, doc) -> dict:
    return {"rank": hit.rank, "doc_id": hit.doc_id, "score": hit.score, "stage_scores": hit.stage_scores,
            "title": doc.title, "text": doc.text}


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The question.")],
    index_dir: Annotated[Path, typer.Option("--index", "-i", help="Index directory.")] = DEFAULT_INDEX,
    mode: Mode = "hybrid",
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recall only: the top K passages for QUERY from BM25, dense or hybrid search."""
    _check_k(k)
    _check_mode(mode)
    if not query.strip():
        fail("the query is empty")
    loaded = _load_index(index_dir)
    try:
        hits = loaded.retriever(mode).search(query, k)
    except Exception as e:  # an index without the asked part, or a broken model install
        fail(str(e))
    if as_json:
        typer.echo(json.dumps([_hit_json(h, loaded.doc(h.doc_id)) for h in hits], ensure_ascii=False, indent=2))
    else:
        typer.echo(_hits_table(hits, loaded.doc))


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", "-d", help="BEIR directory with qrels/train.tsv; repeatable.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the model.")],
    loss: Annotated[str, typer.Option(help="listwise, pointwise or mixed.")] = "mixed",
    epochs: Annotated[float, typer.Option(help="Passes over the training groups.")] = 1.0,
    max_length: Annotated[int, typer.Option(help="Tokens per (question, passage) pair.")] = 192,
    negatives: Annotated[int, typer.Option(help="Negatives per positive (hard + random).")] = 7,
    self_supervised: Annotated[int, typer.Option(help="Title-as-question groups per corpus.")] = 0,
    max_minutes: Annotated[float, typer.Option(help="Stop after this long (0: no limit).")] = 0.0,
    eval_every: Annotated[int, typer.Option(help="Optimizer steps between dev evaluations.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
) -> None:
    """Fine-tune the cross-encoder on the train splits of DATA (a dev part is held out for selection).

    Resumable: run the same command again and it continues from the checkpoint beside OUT.
    """
    from engine.training import TrainParams, run_training

    for d in data:
        if not (d / "qrels" / "train.tsv").is_file():
            fail(f"{d}: no qrels/train.tsv; training needs judged train queries")
    try:
        params = TrainParams(loss=loss, epochs=epochs, max_length=max_length, negatives=negatives,
                             self_supervised=self_supervised, max_minutes=max_minutes, eval_every=eval_every,
                             seed=seed)
    except ValueError as e:
        fail(str(e))
    card = run_training(list(data), out, params)
    typer.echo(f"trained {card['steps']} steps in {card['minutes']:.1f} min; "
               f"best dev nDCG@10 {card['best_dev_ndcg@10']:.4f}; model in {out}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
