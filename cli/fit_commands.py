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
    candidate: Annotated[Path | None, typer.Option(help=(
        "Where to write the gate when it is not adopted (see the rule in the command's help)."))] = None,
    limit: DevLimit = None,
    backend: Backend = None,
    split_too: Annotated[bool, typer.Option(help=(
        "Also fit on the dev questions over each corpus cut into passages as `earlyrank index` cuts it "
        "(a passage is right where its document is judged), so the gate serves split indexes too."))] = False,
) -> None:
    """Fit the answer confidence (a logistic regression over the top passage's features) and the threshold below
    which no answer is given, on the dev questions of DATA and their unanswerable twins (judged passages removed).
    Stored in MODEL/answer_gate.json only if its cross-validated dev AURC, averaged over the sets, is below the
    recall score's, and on no set is it significantly worse (paired bootstrap over questions, p < 0.05)."""
    import json

    from earlyrank.engine.abstention_fit import at_threshold, fit_answer_gate, kinds_hold, outcomes, pooled
    from earlyrank.engine.corpora import dataset_index, index_splitter
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.engine.model_files import ANSWER_GATE
    from earlyrank.engine.operating_point import load_operating_point

    splitter = index_splitter() if split_too else None
    datasets = [load_dataset(d, check_judged=False) for d in data]
    clash = sorted({ds.name for ds in datasets if [x.name for x in datasets].count(ds.name) > 1})
    if clash:
        fail(f"--data: two data sets are named {clash[0]!r}; the gate's report names its dev sets by data set, "
             f"so give each a distinct folder name")
    current = current_gate(model)  # read before a new gate may replace it, to compare with
    dev = dev_scores(data, model, depth, limit, backend)
    policy, blend = load_operating_point(model, depth)
    calibration = load_calibration(model)
    results = [outcomes(s.scored, s.qrels, policy, calibration, blend, dataset_index(ds, progress=False))
               for ds, s in zip(datasets, dev, strict=True)]
    names = [s.name for s in dev]
    split = [False] * len(dev)
    if splitter is not None:
        split_dev = dev_scores(data, model, depth, limit, backend, passages=splitter)
        indexes = [dataset_index(ds, False, splitter) for ds in datasets]
        results += [outcomes(s.scored, s.qrels, policy, calibration, blend, index)
                    for index, s in zip(indexes, split_dev, strict=True)]
        names += [f"{s.name} (split)" for s in split_dev]
        # As the pipeline decides: an index is split if some document was cut (a corpus of short documents is not).
        split += [index.passages.split for index in indexes]
    groups = [name.removesuffix(" (split)") for name in names]  # one data set's questions share their folds
    gate = fit_answer_gate(results, names, "hybrid", precision, groups=groups, split=split)
    report = gate.report or {}
    typer.echo("feature weights (standardized): " + ", ".join(
        f"{name} {w:+.3f}" for name, w in report["standardized_weights"].items()))
    for name, r in report["sets"].items():
        t = r["at_threshold_cross_validated"]
        typer.echo(f"{name} dev, {report['folds']}-fold cross-validated: AURC {r['aurc_cross_validated']:.3f} "
                   f"(recall score {r['aurc_recall_score']:.3f}, top logit {r['aurc_top_logit']:.3f}); at the "
                   f"threshold answers {t['answerable_answered']:.1%} of the answerable questions, "
                   f"{t['precision']:.1%} of its {t['answered']} answers right ({t['questions']} with twins); "
                   f"gap to the recall score >= {r['aurc_gap_lower_bound']:+.3f} (95%, bootstrap)"
                   + (": significantly worse" if r["significantly_worse"] else ""))
    typer.echo(f"mean dev AURC {report['mean_aurc_cross_validated']:.3f} (recall score "
               f"{report['mean_aurc_recall_score']:.3f})")
    comparable = current is not None and current.reads("hybrid")
    new_by_kind, now_by_kind = {}, {}
    for kind in sorted(set(split)):
        label = "split" if kind else "whole-passage"
        new = new_by_kind[kind] = pooled([r["at_threshold_cross_validated"]
                                          for r, k in zip(report["sets"].values(), split, strict=True) if k == kind])
        line = (f"{label} dev sets pooled, threshold {gate.threshold_for(kind):.3f}: answers "
                f"{new['answerable_answered']:.1%} of the answerable questions, {new['precision']:.1%} of "
                f"{new['answered']} answers right")
        if comparable:
            assert current is not None
            now = now_by_kind[kind] = pooled([at_threshold(current, o, kind)
                                              for o, k in zip(results, split, strict=True) if k == kind])
            line += (f"; the gate MODEL has now: {now['answerable_answered']:.1%}, {now['precision']:.1%} of "
                     f"{now['answered']}")
        typer.echo(line)
    adopted = report["adopted"]
    if adopted and any(split):
        # The sixth attempt's parts 2 and 3 (docs/experiments/abstention.md), against the gate MODEL has now.
        adopted = kinds_hold(new_by_kind, now_by_kind if comparable else None, precision)
        report["adopted"] = adopted
    path = model / ANSWER_GATE if adopted else candidate
    if path is not None:
        path.write_text(json.dumps(gate.as_dict(), indent=1))
    verdict = "adopted" if adopted else (
        "not adopted: its mean dev AURC is not below the recall score's, it is significantly worse on a set, or "
        "(with split indexes) it answers less than the current gate or below the target precision on a kind")
    thresholds = f"threshold {gate.threshold:.3f}" + (
        f" (split indexes: {gate.split_threshold:.3f})" if gate.split_threshold is not None else "")
    typer.echo(f"{thresholds} on the answer confidence; {verdict}"
               + (f"; wrote {path}" if path is not None else "; nothing written"))


def current_gate(model: Path):
    """The answer gate stored with `model`, or None: none stored, or one that cannot be read (a warning says so,
    since the new fit replaces it anyway)."""
    from earlyrank.engine.abstention import AnswerGate

    try:
        return AnswerGate.load(model)
    except ValueError as e:
        typer.echo(f"warning: {e}; fitting a new one without comparing", err=True)
        return None


def load_calibration(model: Path):
    from earlyrank.engine.calibration import Calibration
    from earlyrank.engine.model_files import CALIBRATION

    return Calibration.load(model / CALIBRATION)
