"""Commands that build an index and answer from it: index, search, ask, explain, serve."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from earlyrank.cli.common import (
    DEFAULT_INDEX,
    IdField,
    Mode,
    RayAddress,
    RayWorkers,
    TextField,
    TitleField,
    app,
    check_query,
    check_ray,
    check_request,
    check_text,
    count,
    fail,
    hits_table,
    load_index_or_fail,
    note_unread,
)
from earlyrank.cli.filter_option import FilterOption, filter_spec
from earlyrank.engine.datasets import DEFAULT_CORPUS
from earlyrank.indexes.passages import PassageParams

MIN_PASSAGE_TOKENS = 32  # below this a passage is a fragment of a sentence
MAX_PASSAGE_TOKENS = 256  # the dense encoder's max_seq_length: it reads no further into a passage
AllPassages = Annotated[bool, typer.Option("--all-passages", help=(
    "List every passage that ranks in the top K, several of one long document among them (default: one per "
    "document, its best passage)."))]


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help=(
        "A BEIR directory (corpus.jsonl); a .jsonl, .json, .csv or .tsv file with a text field; or a folder "
        "of .txt, .md, .html and .pdf files, one document each."))] = DEFAULT_CORPUS,
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to create or replace.")] = DEFAULT_INDEX,
    bm25: Annotated[bool, typer.Option("--bm25", help="Build only the BM25 part (default: both parts).")] = False,
    dense: Annotated[bool, typer.Option("--dense", help="Build only the dense part (default: both parts).")] = False,
    hnsw: Annotated[bool, typer.Option("--hnsw", help="Approximate (HNSW) dense index instead of exact.")] = False,
    text_field: TextField = "text",
    id_field: IdField = None,
    title_field: TitleField = None,
    ray: RayAddress = None,
    ray_workers: RayWorkers = 2,
    passage_tokens: Annotated[int | None, typer.Option("--passage-tokens", help=(
        f"Split a document longer than this many word pieces of the cross-encoder into overlapping passages of "
        f"whole sentences, each at most this long: {MIN_PASSAGE_TOKENS} to {MAX_PASSAGE_TOKENS} (default "
        f"{PassageParams().tokens}); 0: never split."))] = None,
    passage_overlap: Annotated[int, typer.Option("--passage-overlap", help=(
        "Sentences each passage repeats from the end of the one before."))] = PassageParams().overlap,
    no_split: Annotated[bool, typer.Option("--no-split", help="Index every document whole (--passage-tokens 0).")
                        ] = False,
) -> None:
    """Build an index of CORPUS (both parts unless --bm25 or --dense picks one), replacing OUT atomically.

    A long document is indexed as overlapping passages (see --passage-tokens); search and ask return each
    document once, by its best passage."""
    from earlyrank.engine.corpora import index_splitter
    from earlyrank.indexes.corpus import DatasetError
    from earlyrank.indexes.dense import DenseParams, encode
    from earlyrank.indexes.document_files import Fields, read_documents
    from earlyrank.indexes.store import IndexStoreError, build_index, read_manifest

    check_ray(ray, ray_workers)
    if no_split and passage_tokens:
        fail(f"--no-split and --passage-tokens {passage_tokens} ask for opposite things; give one of them")
    tokens = 0 if no_split else PassageParams().tokens if passage_tokens is None else passage_tokens
    if tokens and not MIN_PASSAGE_TOKENS <= tokens <= MAX_PASSAGE_TOKENS:
        fail(f"--passage-tokens {tokens}: give {MIN_PASSAGE_TOKENS} to {MAX_PASSAGE_TOKENS}, or 0 to never split. "
             f"Shorter passages are fragments of sentences; longer ones are cut by the dense encoder, which reads "
             f"{MAX_PASSAGE_TOKENS} word pieces")
    try:
        params = PassageParams(tokens, passage_overlap)
    except ValueError as e:
        fail(str(e))
    # Passages are measured in the word pieces of the bundled cross-encoder, which the index keeps a copy of.
    splitter = index_splitter(params) if params.tokens else None
    if ray is not None:
        from earlyrank.indexes.ray_build import RayDenseEncoder
    try:
        docs = read_documents(corpus, Fields(text=text_field, id=id_field, title=title_field))
        note_unread(corpus)
        both = not (bm25 or dense)
        source = {"path": str(corpus.resolve()), "fields": {"text": text_field, "id": id_field, "title": title_field}}
        build_index(docs, out, bm25=bm25 or both, dense=dense or both, corpus_name=corpus.name, corpus_source=source,
                    dense_params=DenseParams(index="hnsw" if hnsw else "flat"),
                    encoder=encode if ray is None else RayDenseEncoder(ray_workers, ray), passages=splitter)
    except (DatasetError, IndexStoreError, ValueError) as e:
        fail(str(e))
    passages = read_manifest(out)[1]["corpus"]["passages"]
    typer.echo(f"indexed {count(len(docs), 'document')} ({count(passages, 'passage')}) from {corpus} into {out}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The question.")],
    index_dir: Annotated[Path, typer.Option("--index", "-i", help="Index directory.")] = DEFAULT_INDEX,
    mode: Mode = "hybrid",
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    filters: FilterOption = None,
    all_passages: AllPassages = False,
) -> None:
    """Recall only: the top K documents (each by its best passage) for QUERY from BM25, dense or hybrid search."""
    from earlyrank.engine.pipeline import Pipeline

    check_request(query, k, mode)
    spec = filter_spec(filters)
    loaded = load_index_or_fail(index_dir)
    try:
        hits = Pipeline(loaded, mode=mode).search(query, k, filter=spec, all_passages=all_passages)
    except Exception as e:  # an index without the asked part, or a broken model install
        fail(str(e))
    if as_json:
        from earlyrank.api.schemas import hit_out  # the hits /v1/search returns

        typer.echo(json.dumps([hit_out(h, loaded.doc(h.doc_id)).model_dump(mode="json") for h in hits],
                              ensure_ascii=False, indent=2))
    elif spec and not hits:  # a table of headers alone reads as a crash; say what most often went wrong
        typer.echo(no_match(spec, loaded))
    else:
        typer.echo(hits_table(hits, loaded.doc))


def no_match(spec: dict, index) -> str:
    """What to say when a search or question with a metadata filter gets no hit: either no document of `index`
    matches the filter, most often a misspelt field or value, or a number given as text (``year=2024`` where the
    documents hold the number: ``year:=2024``); or some do, and recall found none of them for this question (BM25
    shares no word with them)."""
    shown = json.dumps(spec, ensure_ascii=False)
    allowed = index.metadata.allowed(spec)
    if allowed is None or len(allowed):
        n = len(index.docs) if allowed is None else len(allowed)
        matching = f"{count(n, 'indexed passage')} match{'es' if n == 1 else ''}"
        return (f"{matching} the filter {shown}, but recall found none of them for this question (BM25 needs a "
                f"word in common; --mode hybrid or dense also finds them by meaning)")
    return (f"no document matches the filter {shown}; fields and values must equal the documents' metadata "
            f"exactly, numbers given as FIELD:=NUMBER (see `earlyrank search --json`)")


@app.command()
def ask(
    query: Annotated[str, typer.Argument(help="The question.")],
    index_dir: Annotated[Path, typer.Option("--index", "-i", help="Index directory.")] = DEFAULT_INDEX,
    model: Annotated[Path | None, typer.Option("--model", help="Cross-encoder directory (default: bundled).")] = None,
    mode: Mode = "hybrid",
    k: Annotated[int, typer.Option("-k", help="How many ranked hits to show.")] = 5,
    depth: Annotated[int, typer.Option(help="Recall candidates the reranker may score.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    filters: FilterOption = None,
    all_passages: AllPassages = False,
) -> None:
    """Answer QUERY: recall, rerank with early stopping, and print the answer, its confidence and the cost."""
    from earlyrank.engine.model_files import ModelLoadError
    from earlyrank.engine.pipeline import load_pipeline
    from earlyrank.engine.rerank import ContentGuard
    from earlyrank.indexes.store import IndexStoreError

    check_request(query, k, mode)
    if depth <= 0:
        fail(f"--depth must be positive, got {depth}")
    spec = filter_spec(filters)
    try:
        pipeline = load_pipeline(index_dir, model, mode, depth)
        if pipeline.scorer is not None:  # passages with no letter or digit never reach the model, and rank last
            pipeline.scorer = ContentGuard(pipeline.scorer)
        answer = pipeline.ask(query, k, filter=spec, all_passages=all_passages)
    except (IndexStoreError, ModelLoadError, ValueError) as e:
        fail(str(e))
    best = answer.best
    if as_json:  # the body /v1/answer returns, from the same code, so a script can move between the two
        from earlyrank.api.schemas import answer_response

        body = answer_response(answer, pipeline.index.doc, degraded=False)
        typer.echo(json.dumps(body.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    if answer.warning:
        typer.echo(f"warning: {answer.warning}", err=True)
    if answer.note:
        typer.echo(f"note: {answer.note}", err=True)
    if answer.abstained:
        confidence, threshold = answer.answer_confidence, answer.answer_threshold
        gated = answer.warning is None and confidence is not None and threshold is not None
        why = (answer.warning or "") if not gated else (
            f"answer confidence {confidence:.2%}, below the model's threshold {threshold:.2%}")
        typer.echo(f"No confident answer ({why}). The best candidates:\n")
        typer.echo(hits_table(answer.hits, pipeline.index.doc))
        return
    if best is None:
        if spec and not answer.hits:  # most often a misspelt field or value: a filter that matches nothing
            typer.echo(no_match(spec, pipeline.index))
        else:
            typer.echo("no passage matched the question")
        return
    # The sentence that answers, not the whole passage (which can run to thousands of characters).
    said = answer.sentence.text if answer.sentence else best.text
    typer.echo(f"answer: {said}\n  from [{best.id}] {best.title}".rstrip())
    # Two probabilities, named apart: the passage's relevance, and (where the model has a gate) that it answers.
    answers = ("" if answer.answer_confidence is None
               else f"; answer confidence {answer.answer_confidence:.1%} (that this passage answers the question)")
    typer.echo(f"confidence {answer.confidence:.3f} (that the passage is relevant){answers}; scored {answer.scored} "
               f"of {answer.candidates} candidates ({answer.reason}); {answer.seconds * 1000:.0f} ms\n")
    typer.echo(hits_table(answer.hits, pipeline.index.doc))


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
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.explain import explain as run
    from earlyrank.engine.model_files import ModelLoadError

    check_query(query)
    check_text("--doc id", doc)
    loaded = load_index_or_fail(index_dir)
    try:
        document = loaded.doc(doc)
    except KeyError:
        fail(f"{index_dir}: {loaded.missing_passage(doc)}")
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


def check_servable(index_dir: Path, model: Path | None) -> None:
    """Fail in one line, before the server starts, on an index (or a given model) that cannot be loaded; the
    full load and checksum pass happen in the server's startup."""
    from earlyrank.engine.model_files import ModelLoadError, check_model_dir
    from earlyrank.indexes.store import IndexStoreError, read_manifest

    try:
        read_manifest(index_dir)
        if model is not None:
            check_model_dir(model)
    except (IndexStoreError, ModelLoadError) as e:
        fail(str(e))
    except ValueError as e:  # the model's config.json is not JSON
        fail(f"{model}: unreadable config.json ({e})")


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
    --workers N, uvicorn runs N processes on one port, each with cores // N torch threads. SIGTERM drains the
    service and exits with status 0; a failed load exits with status 3.
    """
    from pydantic import ValidationError

    from earlyrank.api.server import serve as run_server
    from earlyrank.engine.settings import Settings

    overrides: dict[str, Any] = {k: v for k, v in {"index_path": index_dir, "model_path": model, "host": host,
                                   "port": port, "workers": workers}.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        fail("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()))
    if not settings.index_path.exists() and settings.index_path == DEFAULT_INDEX:
        typer.echo(f"no index at {DEFAULT_INDEX}; building the bundled demo corpus ({DEFAULT_CORPUS.name}) first")
        index(DEFAULT_CORPUS, DEFAULT_INDEX, bm25=False, dense=False, hnsw=False)
    check_servable(settings.index_path, settings.model_path)
    base = f"http://{settings.host}:{settings.port}"
    # The demo corpus's own question, or a placeholder for the user's documents.
    question = ("How many points did the Panthers defense surrender?" if settings.index_path == DEFAULT_INDEX
                else "YOUR QUESTION")
    typer.echo(f"earlyrank serving {settings.index_path} at {base}/  (docs: {base}/docs)\n"
               f"try: curl -s {base}/v1/answer -H 'content-type: application/json' "
               f"-d '{{\"query\": \"{question}\"}}'")
    if settings.workers > 1:
        # Worker processes rebuild the settings from the environment, so hand the command-line options down.
        for key, value in overrides.items():
            os.environ[f"EARLYRANK_{key.upper()}"] = str(value)
        os.environ.setdefault("EARLYRANK_THREADS", str(max(1, (os.cpu_count() or 1) // settings.workers)))
    run_server(settings)


