"""Commands that fit what is stored beside a trained model: the learned fusion and the answer gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from earlyrank.cli.common import Backend, Data, DevDepth, DevLimit, ModelDir, app, fail
from earlyrank.cli.lab_commands import dev_scores
from earlyrank.engine.model_files import DEFAULT_MODEL


@app.command("fit-fusion")
def fit_fusion(
    data: Data,
    model: ModelDir = DEFAULT_MODEL,
    depth: DevDepth = 100,
    limit: DevLimit = None,
    backend: Backend = None,
) -> None:
    """Learn the final score from every signal (logit, dense cosine, BM25, recall rank) on the dev splits of
    DATA, pooled; store it with its stopping setting and a per-signal report in MODEL/fusion.json."""
    import numpy as np

    from earlyrank.engine.corpora import dataset_index
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.engine.fusion import FEATURES
    from earlyrank.engine.fusion_training import (
        choose_stopping,
        cross_validated,
        fit,
        kept_features,
        ndcg_per_query,
        query_features,
        signal_report,
        write_fusion,
    )
    from earlyrank.engine.operating_point import load_operating_point

    dev = dev_scores(data, model, depth, limit, backend)
    sets = [query_features(dataset_index(load_dataset(d, check_judged=False)), s.scored, s.qrels)
            for d, s in zip(data, dev, strict=True)]
    qrels = [s.qrels for s in dev]
    calibration = load_calibration(model)
    names = [s.name for s in dev]
    report = signal_report(sets, qrels, names, calibration, load_operating_point(model)[1])
    keep = kept_features(report, names)
    if "logit" not in keep:
        fail(f"on these dev sets the logit does not help the fusion (kept: {', '.join(keep) or 'nothing'}); "
             f"nothing written")
    if keep != FEATURES:
        report["fusion, kept features (cross-validated)"] = {
            n: float(np.mean(list(ndcg_per_query(queries, judged, scores).values())))
            for n, queries, judged, scores in zip(names, sets, qrels, cross_validated(sets, keep), strict=True)}
    report["kept features"] = dict.fromkeys(keep, 1.0)
    fusion = fit(sets, keep)
    stopping = choose_stopping(fusion, sets, qrels, calibration)
    path = write_fusion(model, fusion, stopping, report, names)
    for name, values in report.items():
        typer.echo(f"{name:<32} " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    typer.echo(f"stopping: k {stopping['k']}, margin {stopping['margin']}, first chunk {stopping['first_chunk']}: "
               f"{stopping['dev_pairs_per_query']:.1f} pairs/query, dev nDCG@10 {stopping['dev_ndcg@10']:.4f} "
               f"(full {stopping['full']['dev_ndcg@10']:.4f}); wrote {path}")


@app.command("fit-abstention")
def fit_abstention(
    data: Data,
    model: ModelDir = DEFAULT_MODEL,
    depth: DevDepth = 100,
    precision: Annotated[float, typer.Option(min=0.5, max=1.0, help=(
        "Target precision of the answers given: the threshold is the lowest that reaches it on dev."))] = 0.9,
    limit: DevLimit = None,
    backend: Backend = None,
) -> None:
    """Fit the answer confidence and the threshold below which no answer is given, on the dev questions of DATA
    and their unanswerable twins (judged passages removed); store them in MODEL/answer_gate.json."""
    import json

    from earlyrank.engine.abstention_fit import at_threshold, fit_gate, outcomes
    from earlyrank.engine.model_files import ANSWER_GATE
    from earlyrank.engine.operating_point import load_operating_point

    dev = dev_scores(data, model, depth, limit, backend)
    policy, blend = load_operating_point(model, depth)
    calibration = load_calibration(model)
    results = [outcomes(d.scored, d.qrels, policy, calibration, blend) for d in dev]
    gate = fit_gate(results, precision)
    (model / ANSWER_GATE).write_text(json.dumps(gate.as_dict(), indent=1))
    for d, o in zip(dev, results, strict=True):
        r = at_threshold(gate, o)
        typer.echo(f"{d.name} dev: answers {r['answerable_answered']:.1%} of the answerable questions, "
                   f"{r['precision']:.1%} of its {r['answered']} answers right ({r['questions']} questions with twins)")
    typer.echo(f"threshold {gate.threshold:.3f} on the answer confidence; wrote {model / ANSWER_GATE}")


def load_calibration(model: Path):
    from earlyrank.engine.calibration import Calibration
    from earlyrank.engine.model_files import CALIBRATION

    return Calibration.load(model / CALIBRATION)
