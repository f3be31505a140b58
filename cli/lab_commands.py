"""Commands that make and measure a model: train, calibrate, tune, bench, export-onnx."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from earlyrank.cli.common import (
    Backend,
    Data,
    DevDepth,
    DevLimit,
    ModelDir,
    RayAddress,
    RayWorkers,
    app,
    check_data,
    check_ray,
    dev_limits,
    fail,
    ray_context,
)
from earlyrank.engine.model_files import DEFAULT_MODEL


def dev_scores(data: list[Path], model: Path, depth: int, limit: list[int] | None, backend: str | None,
               passages=None) -> list:
    """Every data set's dev queries with their hybrid candidates scored by `model` (cached); with `passages` (a
    `Splitter`), over each corpus cut into passages as `earlyrank index` cuts it."""
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.model_files import ModelLoadError
    from earlyrank.engine.tuning import scored_split

    check_data(data)
    try:
        scorer = CrossEncoder.load(model, backend=backend)
    except (ModelLoadError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    from earlyrank.engine.datasets import DatasetError

    try:
        return [scored_split(d, "dev", scorer, model, "hybrid", depth, n, passages=passages)
                for d, n in dev_limits(data, limit)]
    except DatasetError as e:  # e.g. a data set without a train split: it has no dev part
        fail(f"{e}; dev queries come from a data set's train split")
    except ModelLoadError as e:  # no training card: no known dev split
        fail(str(e))


@app.command()
def calibrate(
    data: Data,
    model: ModelDir = DEFAULT_MODEL,
    depth: DevDepth = 100,
    limit: DevLimit = None,
    backend: Backend = None,
) -> None:
    """Fit Platt scaling on dev-split recall candidates; report ECE (15 bins) and Brier before and after."""
    from earlyrank.engine.tuning import calibrate as fit

    report = fit(model, dev_scores(data, model, depth, limit, backend))
    typer.echo(f"{report['pairs']} dev pairs ({report['positives']} relevant); "
               f"ECE {report['before']['ece']:.4f} -> {report['after']['ece']:.4f}, "
               f"Brier {report['before']['brier']:.4f} -> {report['after']['brier']:.4f}; "
               f"wrote {model / 'calibration.json'} and {model / 'reliability.png'}")


@app.command()
def tune(
    data: Data,
    model: ModelDir = DEFAULT_MODEL,
    max_loss: Annotated[float, typer.Option(help="Allowed relative loss of nDCG@10 and RR@10 vs full rerank.")] = 0.01,
    depth: Annotated[int, typer.Option(help="Recall candidates per query.")] = 100,
    limit: DevLimit = None,
    backend: Backend = None,
) -> None:
    """Sweep every stopping policy on the dev split; store the cheapest point within --max-loss of full rerank."""
    from earlyrank.engine.tuning import tune as sweep

    point = sweep(model, dev_scores(data, model, depth, limit, backend), max_loss, depth)
    chosen, full = point["chosen"], point["full_rerank"]
    typer.echo(f"blend {point['blend']}; full rerank nDCG@10 {full['nDCG@10']:.4f} at {full['pairs_per_query']:.1f} "
               f"pairs; chosen {chosen['policy']} {json.dumps({k: v for k, v in chosen.items() if k not in full})} "
               f"nDCG@10 {chosen['nDCG@10']:.4f} at {chosen['pairs_per_query']:.1f} pairs/query")


@app.command()
def bench(
    data: Annotated[list[Path] | None, typer.Option("--data", "-d", metavar="DIR",
                                                    help="BEIR directory; repeatable.")] = None,
    suite: Annotated[bool, typer.Option("--suite", help=(
        "Run the whole suite (scifact, xquad-en and the evaluation-only trec-dl-2019/2021-passage and "
        "noveleval-2306 under --datasets) and print one table."))] = False,
    datasets: Annotated[Path, typer.Option("--datasets", help="Where the suite's data sets are.")] = Path(
        "../shared/datasets"),
    only: Annotated[list[str] | None, typer.Option("--only", metavar="SET", help=(
        "With --suite: only this set of the suite; repeatable."))] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help=(
        "With --suite: the candidate lists to rerank, 'run' (a set's own first-stage run, where it has one) "
        "and/or 'hybrid'; repeatable (default: both)."))] = None,
    run: Annotated[Path | None, typer.Option("--run", help=(
        "Rerank this first-stage run (TREC format; relative to --data or absolute) instead of hybrid recall, "
        "as a search backend would."))] = None,
    relevance_level: Annotated[int, typer.Option(min=1, help=(
        "Binary measures (RR, P, R, AP) count grade >= this as relevant (2 for TREC DL); nDCG uses the grades. "
        "The suite uses each set's own."))] = 1,
    fusion: Annotated[Path | None, typer.Option("--fusion", help=(
        "With --suite or --run: also report the fusion stored in this model directory (fit-fusion's output), "
        "beside MODEL's own configuration."))] = None,
    model: ModelDir = DEFAULT_MODEL,
    split: Annotated[str, typer.Option(help="Split to report on (test; dev is qrels/dev.tsv, or else the part of "
                                            "train the model held out).")] = "test",
    depth: Annotated[int | None, typer.Option(min=1, help=(
        "Candidates the reranker may score (default 100; with --suite each set's own: 30 for scifact and "
        "xquad-en, 100 for the others; given, it applies to every set)."))] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for run files, JSON, tables, plots.")] = Path(
        "results"),
    limit: Annotated[int, typer.Option(min=0, help="Only the first N queries (0: all).")] = 0,
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
    """Quality against cost on DATA's SPLIT: recall modes, full reranks, every stopping policy, peers; or, with
    --suite, every data set of the suite in one table."""
    from earlyrank.engine.bench import run_bench
    from earlyrank.engine.bench_tables import markdown_table
    from earlyrank.engine.model_files import ModelLoadError
    from earlyrank.indexes.corpus import DatasetError

    if suite:
        from earlyrank.engine.suite import SUITE, run_suite

        if relevance_level != 1:
            fail("--relevance-level: not used with --suite, which counts each set's own (2 for TREC DL); leave it out")

        sets = tuple(s if depth is None else dataclasses.replace(s, depth=depth)
                     for s in SUITE if not only or s.name in only)
        unknown = sorted(set(only or ()) - {s.name for s in SUITE})
        if unknown:
            fail(f"--only {', '.join(unknown)}: not in the suite; choose from {', '.join(s.name for s in SUITE)}")
        sources = tuple(source or ("run", "hybrid"))
        if bad := sorted(set(sources) - {"run", "hybrid"}):
            fail(f"--source {', '.join(bad)}: choose 'run' or 'hybrid'")
        check_data([datasets / s.name for s in sets])
        stem = "suite" if sets == SUITE and len(sources) == 2 else "suite-" + "-".join(s.name for s in sets)
        stem += "" if depth is None else f"-depth{depth}"
        try:
            record = run_suite(datasets, model, out, backend, sets, sources, stem, fusion_model=fusion)
        except (DatasetError, ModelLoadError, ValueError) as e:  # a data set, run or model that cannot be read
            fail(str(e))
        typer.echo((out / f"{stem}.md").read_text())
        typer.echo(f"wrote {out / f'{stem}.json'} in {record['seconds']:.0f} s")
        return
    if not data:
        fail("give --data DIR (repeatable) or --suite")
    dirs = list(data)
    check_data(dirs)
    if run is not None:
        from earlyrank.engine.suite import SuiteSet, run_suite

        if len(dirs) != 1 or not (dirs[0] / run).is_file():
            where = "" if len(dirs) != 1 else f" ({dirs[0] / run} is not a file)"
            fail(f"--run {run}: give one --data and a run file inside it (or an absolute path){where}")
        ignored = [name for name, given in (("--limit", limit), ("--split", split != "test"),
                                            ("--max-length", max_length), ("--windows", windows)) if given]
        if ignored:
            fail(f"{', '.join(ignored)}: not used with --run, which reranks the run's list of every test query "
                 f"with the model's own settings; leave them out")
        folder = dirs[0].resolve()  # "--data ." is named by the folder it means
        spec = SuiteSet(folder.name, depth=depth or 100, run=str(run), relevance_level=relevance_level)
        stem = f"{folder.name}-{run.stem}"
        try:
            run_suite(folder.parent, model, out, backend, (spec,), ("run",), stem, fusion, write_runs=True)
        except (DatasetError, ModelLoadError, ValueError) as e:
            fail(str(e))
        typer.echo((out / f"{stem}.md").read_text())
        typer.echo(f"wrote {out / f'{stem}.json'} and each reranked run in {out / f'{stem}-runs'}")
        return
    check_ray(ray, ray_workers)
    with ray_context(ray):  # one cluster for every data set
        for d in dirs:
            try:
                record = run_bench(d, model, out, split, depth or 100, limit, peers=not no_peers, backend=backend,
                                   ray_address=ray, ray_workers=ray_workers, max_length=max_length,
                                   windows=windows, relevance_level=relevance_level)
            except (DatasetError, ModelLoadError, ValueError) as e:  # one line, as every command's bad input
                fail(str(e))
            typer.echo(markdown_table(record))


@app.command("export-onnx")
def export_onnx(model: ModelDir = DEFAULT_MODEL) -> None:
    """Export the cross-encoder to ONNX (fp32, graph-optimized) and int8 for the onnx-* backends."""
    from earlyrank.engine.model_files import ModelLoadError, check_model_dir
    from earlyrank.engine.onnx_backend import export

    try:
        check_model_dir(model)
    except ModelLoadError as e:
        fail(str(e))
    for path in export(model):
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def interrupted(out: Path) -> NoReturn:
    """Ctrl+C during training: say where the run can pick up (the last checkpoint beside OUT, saved every two
    minutes or so) and exit with status 130, as a shell does for an interrupt."""
    from earlyrank.engine.training import last_checkpoint

    checkpoint = out.parent / f".{out.name}.checkpoint"
    last = last_checkpoint(checkpoint)
    if last is None:
        typer.echo("interrupted before the first checkpoint; nothing to resume from", err=True)
    else:
        typer.echo(f"interrupted; run the same command again to continue from {Path(last).name} "
                   f"(in {checkpoint})", err=True)
    raise typer.Exit(130)


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", "-d", metavar="DIR",
                                             help="BEIR directory with qrels/train.tsv; repeatable.")],
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
    distill: Annotated[int, typer.Option(min=0, help="Label-free groups per corpus scored by the bi-encoder "
                                                     "teacher (needs --distill-weight).")] = 0,
    distill_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the teacher's ranking (KL to the "
                                                                "bi-encoder's softmax) on every group; 0: "
                                                                "off.")] = 0.0,
    selection: Annotated[str, typer.Option(help="'dev': keep the best model by dev nDCG@10; 'last': keep the "
                                                "last.")] = "dev",
) -> None:
    """Fine-tune the cross-encoder on the train splits of DATA (a dev part is held out for selection).

    Resumable: run the same command again and it continues from the checkpoint beside OUT.
    """
    from earlyrank.engine.training import TrainParams, run_training

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
                             base_model=str(init) if init else "", dev_split=dev_split, windows=windows,
                             distill=distill, distill_weight=distill_weight, selection=selection)
    except ValueError as e:
        fail(str(e))
    try:
        card = run_training(list(data), out, params)
    except ValueError as e:  # no training groups, or a checkpoint of a run with other settings
        fail(str(e))
    except KeyboardInterrupt:
        interrupted(out)
    typer.echo(f"trained {card['steps']} steps in {card['minutes']:.1f} min; "
               f"best dev nDCG@10 {card['best_dev_ndcg@10']:.4f}; model in {out}")


@app.command()
def adapt(
    index: Annotated[Path, typer.Option("--index", "-i", help="An index of your corpus (earlyrank index), with "
                                                              "both BM25 and dense parts.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the adapted model.")],
    model: ModelDir = DEFAULT_MODEL,
    distill: Annotated[int, typer.Option(min=0, help="Groups ranked by the bi-encoder teacher.")] = 1200,
    sentence: Annotated[int, typer.Option(min=0, help="Inverse-cloze groups (a sentence asks for its "
                                                      "passage).")] = 400,
    max_minutes: Annotated[float, typer.Option(help="Stop training after this long (0: no limit).")] = 0.0,
    recalibrate: Annotated[bool, typer.Option(help="Refit the calibration on held-out inverse-cloze groups of "
                                                   "the corpus (else keep MODEL's).")] = True,
) -> None:
    """Adapt the cross-encoder to the corpus of INDEX without labels: train on pairs made from the corpus itself
    (the bi-encoder's ranking of its passages, and sentences asking for their passage), then refit calibration.

    Resumable: run the same command again and it continues from the checkpoint beside OUT. Serve the result with
    --model OUT.
    """
    from earlyrank.engine.adaptation import AdaptParams
    from earlyrank.engine.adaptation import adapt as run_adapt
    from earlyrank.engine.model_files import ANSWER_GATE, ModelLoadError, check_model_dir
    from earlyrank.indexes.store import IndexStoreError

    try:
        check_model_dir(model)
        params = AdaptParams(distill=distill, sentence=sentence, max_minutes=max_minutes, recalibrate=recalibrate)
    except (ModelLoadError, ValueError) as e:
        fail(str(e))
    if out.resolve() == model.resolve():
        fail(f"--out is the base model's directory ({out}); write the adapted model somewhere else")
    try:
        record = run_adapt(index, model, out, params)
    except (IndexStoreError, ValueError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        interrupted(out)
    line = f"adapted in {record['steps']} steps ({record['minutes']:.1f} min) on {record['groups']}"
    if "calibration" in record:
        c = record["calibration"]
        line += f"; calibration refit on {c['pairs']} held-out pairs, pseudo-label ECE {c['pseudo_ece_before']:.3f}"
        line += f" -> {c['pseudo_ece_after']:.3f}"
    typer.echo(f"{line}; model in {out}")
    if "calibration_skipped" in record:
        typer.echo(f"note: calibration not refitted: {record['calibration_skipped']}")
    if (model / ANSWER_GATE).is_file():
        typer.echo(f"note: {model.name}'s answer gate is not carried over: it was fitted to that model's scores, so "
                   f"the adapted model answers every question; fit one with `earlyrank fit-abstention` if you have "
                   f"labelled questions")
