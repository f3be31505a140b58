"""The `earlyrank` command line. Each command is thin: parse, call the engine, print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.datasets import DEFAULT_CORPUS

app = typer.Typer(help="earlyrank: retrieve-then-rerank question answering with early stopping.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

DEFAULT_INDEX = Path("indexes-data") / "default"
Mode = Annotated[str, typer.Option("--mode", "-m", help="Recall mode: bm25, dense or hybrid.")]
RayAddress = Annotated[str | None, typer.Option("--ray", metavar="ADDRESS", help=(
    "Run on Ray (the 'ray' extra): 'local' for a cluster on this machine, or a cluster's address."))]
RayWorkers = Annotated[int, typer.Option("--ray-workers", help="Ray actors, one CPU each.")]
Backend = Annotated[str | None, typer.Option(
    help="Cross-encoder backend: auto (torch-bf16 on a CPU with bf16, else torch-fp32), torch-fp32, torch-bf16, "
         "onnx-fp32 or onnx-int8. Default: EARLYRANK_BACKEND, else auto.")]


def fail(message: str) -> None:
    """One line on stderr and exit status 2: no traceback for a user's mistake."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_k(k: int) -> None:
    if k <= 0:
        fail(f"-k must be a positive integer, got {k}")


def _check_ray(address: str | None, workers: int) -> None:
    """Fail in one line, before any work, if --ray was asked for but Ray is not installed."""
    if address is None:
        return
    from engine.ray_session import require_ray

    try:
        require_ray()
    except ImportError as e:
        fail(str(e))
    if workers < 1:
        fail(f"--ray-workers must be at least 1, got {workers}")


def _ray_context(address: str | None):
    """A Ray session for --ray, with per-worker scoring costs logged to stderr; no-op without --ray."""
    import contextlib
    import logging

    if address is None:
        return contextlib.nullcontext()
    from engine.ray_session import ray_session

    costs = logging.getLogger("engine.ray_scoring")
    costs.setLevel(logging.INFO)
    if not costs.handlers:
        costs.addHandler(logging.StreamHandler())
    return ray_session(address)


def _check_mode(mode: str) -> None:
    if mode not in ("bm25", "dense", "hybrid"):
        fail(f"unknown mode {mode!r}; choose bm25, dense or hybrid")


def _check_request(query: str, k: int, mode: str) -> None:
    _check_k(k)
    _check_mode(mode)
    if not query.strip():
        fail("the query is empty")


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help="A BEIR-layout directory (corpus.jsonl).")] = DEFAULT_CORPUS,
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to create or replace.")] = DEFAULT_INDEX,
    bm25: Annotated[bool, typer.Option("--bm25", help="Build the BM25 part.")] = False,
    dense: Annotated[bool, typer.Option("--dense", help="Build the dense part.")] = False,
    hnsw: Annotated[bool, typer.Option("--hnsw", help="Approximate (HNSW) dense index instead of exact.")] = False,
    ray: RayAddress = None,
    ray_workers: RayWorkers = 2,
) -> None:
    """Build an index of CORPUS (both parts unless --bm25 or --dense picks one), replacing OUT atomically."""
    from engine.datasets import DatasetError, load_corpus
    from indexes.dense import DenseParams, encode
    from indexes.store import IndexStoreError, build_index

    if not corpus.is_dir():
        fail(f"{corpus}: no such corpus directory")
    _check_ray(ray, ray_workers)
    if ray is not None:
        from indexes.ray_build import RayDenseEncoder
    try:
        docs = load_corpus(corpus / "corpus.jsonl")
        both = not (bm25 or dense)
        build_index(docs, out, bm25=bm25 or both, dense=dense or both, corpus_name=corpus.name,
                    dense_params=DenseParams(index="hnsw" if hnsw else "flat"),
                    encoder=encode if ray is None else RayDenseEncoder(ray_workers, ray))
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
    _check_request(query, k, mode)
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
def ask(
    query: Annotated[str, typer.Argument(help="The question.")],
    index_dir: Annotated[Path, typer.Option("--index", "-i", help="Index directory.")] = DEFAULT_INDEX,
    model: Annotated[Path | None, typer.Option("--model", help="Cross-encoder directory (default: bundled).")] = None,
    mode: Mode = "hybrid",
    k: Annotated[int, typer.Option("-k", help="How many ranked hits to show.")] = 5,
    depth: Annotated[int, typer.Option(help="Recall candidates the reranker may score.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Answer QUERY: recall, rerank with early stopping, and print the answer, its confidence and the cost."""
    from engine.pipeline import load_pipeline
    from engine.reranker import ModelLoadError
    from indexes.store import IndexStoreError

    _check_request(query, k, mode)
    if depth <= 0:
        fail(f"--depth must be positive, got {depth}")
    try:
        pipeline = load_pipeline(index_dir, model, mode, depth)
        answer = pipeline.ask(query, k)
    except (IndexStoreError, ModelLoadError, ValueError) as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps({
            "query": answer.query, "answer": answer.answer and {"id": answer.answer.id, "title": answer.answer.title,
                                                                "text": answer.answer.text},
            "confidence": answer.confidence, "scored": answer.scored, "candidates": answer.candidates,
            "stopped_early": answer.stopped_early, "reason": answer.reason, "seconds": answer.seconds,
            "hits": [_hit_json(h, pipeline.index.doc(h.doc_id)) for h in answer.hits]}, ensure_ascii=False, indent=2))
        return
    if answer.answer is None:
        typer.echo("no passage matched the question")
        return
    typer.echo(f"answer: [{answer.answer.id}] {answer.answer.full_text}")
    typer.echo(f"confidence {answer.confidence:.3f}; scored {answer.scored} of {answer.candidates} candidates "
               f"({answer.reason}); {answer.seconds * 1000:.0f} ms\n")
    typer.echo(_hits_table(answer.hits, pipeline.index.doc))


Data = Annotated[list[Path], typer.Option("--data", "-d", help="BEIR directory; repeatable.")]
ModelDir = Annotated[Path, typer.Option("--model", help="Cross-encoder directory.")]


DevLimit = Annotated[list[int] | None, typer.Option(
    "--limit", help="Dev queries to use from each --data, in order (0: all); default all.")]


def _limits(data: list[Path], limit: list[int] | None) -> list[tuple[Path, int]]:
    limits = limit or [0] * len(data)
    if len(limits) != len(data):
        fail(f"give one --limit per --data ({len(data)}), or none; got {len(limits)}")
    return list(zip(data, limits, strict=True))


def _check_data(data: list[Path]) -> None:
    for d in data:
        if not (d / "corpus.jsonl").is_file():
            fail(f"{d}: not a BEIR data set (no corpus.jsonl)")


def _dev_scores(data: list[Path], model: Path, depth: int, limit: list[int] | None, backend: str | None) -> list:
    """Every data set's dev queries with their hybrid candidates scored by `model` (cached)."""
    from engine.reranker import CrossEncoder, ModelLoadError
    from engine.tuning import scored_split

    _check_data(data)
    try:
        scorer = CrossEncoder.load(model, backend=backend)
    except (ModelLoadError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    return [scored_split(d, "dev", scorer, model, "hybrid", depth, n) for d, n in _limits(data, limit)]


@app.command()
def calibrate(
    data: Data,
    model: ModelDir = Path("engine/models/earlyrank-minilm-ce"),
    depth: Annotated[int, typer.Option(help="Candidates per dev query, as inference draws them.")] = 100,
    limit: DevLimit = None,
    backend: Backend = None,
) -> None:
    """Fit Platt scaling on dev-split recall candidates; report ECE (15 bins) and Brier before and after."""
    from engine.tuning import calibrate as fit

    report = fit(model, _dev_scores(data, model, depth, limit, backend))
    typer.echo(f"{report['pairs']} dev pairs ({report['positives']} relevant); "
               f"ECE {report['before']['ece']:.4f} -> {report['after']['ece']:.4f}, "
               f"Brier {report['before']['brier']:.4f} -> {report['after']['brier']:.4f}; "
               f"wrote {model / 'calibration.json'} and {model / 'reliability.png'}")


@app.command()
def tune(
    data: Data,
    model: ModelDir = Path("engine/models/earlyrank-minilm-ce"),
    max_loss: Annotated[float, typer.Option(help="Allowed relative loss of nDCG@10 and RR@10 vs full rerank.")] = 0.01,
    depth: Annotated[int, typer.Option(help="Recall candidates per query.")] = 100,
    limit: DevLimit = None,
    backend: Backend = None,
) -> None:
    """Sweep every stopping policy on the dev split; store the cheapest point within --max-loss of full rerank."""
    from engine.tuning import tune as sweep

    point = sweep(model, _dev_scores(data, model, depth, limit, backend), max_loss, depth)
    chosen, full = point["chosen"], point["full_rerank"]
    typer.echo(f"blend {point['blend']}; full rerank nDCG@10 {full['nDCG@10']:.4f} at {full['pairs_per_query']:.1f} "
               f"pairs; chosen {chosen['policy']} {json.dumps({k: v for k, v in chosen.items() if k not in full})} "
               f"nDCG@10 {chosen['nDCG@10']:.4f} at {chosen['pairs_per_query']:.1f} pairs/query")


@app.command()
def bench(
    data: Data,
    model: ModelDir = Path("engine/models/earlyrank-minilm-ce"),
    split: Annotated[str, typer.Option(help="Split to report on (test; dev is the held-out part of train).")] = "test",
    depth: Annotated[int, typer.Option(help="Hybrid candidates the reranker may score.")] = 100,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for run files, JSON, tables, plots.")] = Path(
        "results"),
    limit: Annotated[int, typer.Option(help="Only the first N queries (0: all).")] = 0,
    no_peers: Annotated[bool, typer.Option("--no-peers", help="Skip rank-bm25 and sentence-transformers.")] = False,
    backend: Backend = None,
    ray: RayAddress = None,
    ray_workers: RayWorkers = 2,
    max_length: Annotated[int | None, typer.Option(
        help="Tokens per pair (default: the model's inference.json); results get a -<N>tok suffix.")] = None,
    windows: Annotated[int | None, typer.Option(
        min=1, help="Windows a long passage is read in (default: the model's inference.json); results get a "
                    "-<N>win suffix.")] = None,
) -> None:
    """Quality against cost on DATA's SPLIT: recall modes, full reranks, every stopping policy, peers."""
    from engine.bench import markdown_table, run_bench

    _check_data(data)
    _check_ray(ray, ray_workers)
    with _ray_context(ray):  # one cluster for every data set
        for d in data:
            record = run_bench(d, model, out, split, depth, limit, peers=not no_peers, backend=backend,
                               ray_address=ray, ray_workers=ray_workers, max_length=max_length,
                               windows=windows)
            typer.echo(markdown_table(record))


@app.command("export-onnx")
def export_onnx(model: ModelDir = Path("engine/models/earlyrank-minilm-ce")) -> None:
    """Export the cross-encoder to ONNX (fp32, graph-optimized) and int8 for the onnx-* backends."""
    from engine.onnx_backend import export
    from engine.reranker import ModelLoadError, check_model_dir

    try:
        check_model_dir(model)
    except ModelLoadError as e:
        fail(str(e))
    for path in export(model):
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@app.command()
def explain(
    query: Annotated[str, typer.Argument(help="The question.")],
    doc: Annotated[str, typer.Option("--doc", help="Id of the passage to explain.")],
    index_dir: Annotated[Path, typer.Option("--index", "-i", help="Index directory.")] = DEFAULT_INDEX,
    model: Annotated[Path | None, typer.Option("--model", help="Cross-encoder directory (default: bundled).")] = None,
    samples: Annotated[int, typer.Option(help="Perturbed passages to score.")] = 500,
    features: Annotated[int, typer.Option(help="Words to list.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Why does passage DOC get its confidence for QUERY? Word weights from a LIME-style local model."""
    from engine.explain import explain as run
    from engine.reranker import CrossEncoder, ModelLoadError

    if not query.strip():
        fail("the query is empty")
    loaded = _load_index(index_dir)
    try:
        document = loaded.doc(doc)
    except KeyError:
        fail(f"no document {doc!r} in {index_dir}")
    try:
        result = run(CrossEncoder.load(model), query, document.full_text, samples, features, seed)
    except (ModelLoadError, ValueError) as e:
        fail(str(e))
    strong = {w.word: w.weight for w in result.weights}
    colour = {True: "\x1b[1;32m", False: "\x1b[1;31m"}
    words = [f"{colour[strong[t] > 0]}{t}\x1b[0m" if t in strong else t
             for t in __import__("re").findall(r"\w+|\W+", document.full_text)]
    typer.echo("".join(words) + "\n")
    typer.echo(f"confidence {result.confidence:.3f}; local fit R^2 {result.r2:.3f}; "
               f"{result.samples} samples in {result.seconds:.1f} s")
    for w in result.weights:
        typer.echo(f"{w.weight:+.4f}  {w.word}")


@app.command()
def serve(
    index_dir: Annotated[Path | None, typer.Option("--index", "-i", help="Index directory.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Cross-encoder directory (default: bundled).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes sharing the port (default 1).")] = None,
) -> None:
    """Run the HTTP service. Options override EARLYRANK_* environment variables, which override defaults.

    With no index built yet at the default path, the bundled demo corpus (XQuAD) is indexed first. With
    --workers N, uvicorn runs N processes on one port, each with cores // N torch threads.
    """
    import uvicorn
    from pydantic import ValidationError

    from api.app import create_app
    from engine.settings import Settings

    overrides: dict[str, Any] = {k: v for k, v in {"index_path": index_dir, "model_path": model, "host": host,
                                   "port": port, "workers": workers}.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        fail("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()))
    if not settings.index_path.exists() and settings.index_path == DEFAULT_INDEX:
        typer.echo(f"no index at {DEFAULT_INDEX}; building the bundled demo corpus ({DEFAULT_CORPUS.name}) first")
        index(DEFAULT_CORPUS, DEFAULT_INDEX, bm25=False, dense=False, hnsw=False)
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"earlyrank serving {settings.index_path} at {base}/  (docs: {base}/docs)\n"
               f"try: curl -s {base}/v1/answer -H 'content-type: application/json' "
               f"-d '{{\"query\": \"How many points did the Panthers defense surrender?\"}}'")
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, timeout_graceful_shutdown=30)
        return
    # Worker processes rebuild the settings from the environment, so hand the command-line options down.
    for key, value in overrides.items():
        os.environ[f"EARLYRANK_{key.upper()}"] = str(value)
    os.environ.setdefault("EARLYRANK_THREADS", str(max(1, (os.cpu_count() or 1) // settings.workers)))
    uvicorn.run("api.app:app_from_env", factory=True, workers=settings.workers, host=settings.host,
                port=settings.port, timeout_graceful_shutdown=30)


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", "-d", help="BEIR directory with qrels/train.tsv; repeatable.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the model.")],
    loss: Annotated[str, typer.Option(help="listwise, pointwise or mixed.")] = "mixed",
    epochs: Annotated[float, typer.Option(help="Passes over the training groups.")] = 1.0,
    max_length: Annotated[int, typer.Option(help="Tokens per (question, passage) pair.")] = 192,
    negatives: Annotated[int, typer.Option(help="Negatives per positive (hard + random).")] = 7,
    self_supervised: Annotated[int, typer.Option(help="Self-supervised groups per corpus (no labels needed).")] = 0,
    self_supervised_kind: Annotated[str, typer.Option(help="'title': a passage's title is the question for its "
                                                           "text; 'sentence': one of its sentences is the "
                                                           "question for the rest (inverse cloze).")] = "title",
    max_minutes: Annotated[float, typer.Option(help="Stop after this long (0: no limit).")] = 0.0,
    max_steps: Annotated[int, typer.Option(help="Stop after N optimizer steps; the LR schedule still spans all "
                                                "epochs (0: no limit).")] = 0,
    eval_every: Annotated[int, typer.Option(help="Optimizer steps between dev evaluations.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    init: Annotated[Path | None, typer.Option(help="Start from this trained cross-encoder instead of the base "
                                                   "model (a second stage of training).")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the encoder body (the head gets 25x).")] = 4e-5,
    dev_split: Annotated[str, typer.Option(help="How dev is carved from train: 'title' holds out whole articles "
                                                "(passage titles), as the test split does; 'query' any "
                                                "questions.")] = "title",
    windows: Annotated[int, typer.Option(min=1, help="Train a long passage on its best of this many inference "
                                                     "windows, by words shared with the question (1: its "
                                                     "head).")] = 1,
) -> None:
    """Fine-tune the cross-encoder on the train splits of DATA (a dev part is held out for selection).

    Resumable: run the same command again and it continues from the checkpoint beside OUT.
    """
    from engine.training import TrainParams, run_training

    for d in data:
        if not (d / "qrels" / "train.tsv").is_file():
            fail(f"{d}: no qrels/train.tsv; training needs judged train queries")
    if init is not None and not (init / "config.json").is_file():
        fail(f"--init {init}: no config.json there; give the directory of a trained cross-encoder")
    if init is not None and init.resolve() == out.resolve():
        fail(f"--init and --out are the same directory ({out}); write the second stage somewhere else")
    try:
        params = TrainParams(loss=loss, epochs=epochs, max_length=max_length, negatives=negatives,
                             self_supervised=self_supervised, self_supervised_kind=self_supervised_kind,
                             max_minutes=max_minutes, eval_every=eval_every,
                             seed=seed, max_steps=max_steps, lr_body=lr, lr_head=lr * 25,
                             base_model=str(init) if init else "", dev_split=dev_split, windows=windows)
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


if __name__ == "__main__":
    main()
