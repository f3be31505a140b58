"""Relevance metrics from ir-measures (pytrec_eval underneath); no hand-rolled metric code."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from earlyrank.indexes.types import Hit

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100", "P@1", "AP@3")


def evaluate_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                 measures: tuple[str, ...] = DEFAULT_MEASURES, per_query: bool = False, relevance_level: int = 1):
    """Mean of each measure over the judged queries (a query missing from the run scores 0).

    With `relevance_level` above 1, the binary measures (those taking ir-measures' ``rel=``: P, R, RR, AP, Rprec;
    not nDCG or ERR, which use the grades) count grade >= that level as relevant (TREC DL's convention is 2); the
    results keep the names asked.
    With `per_query`, returns ``{measure: {query_id: value}}`` instead, for significance tests.
    """
    import ir_measures

    parsed = {}
    for name in measures:
        measure = ir_measures.parse_measure(name)
        if relevance_level != 1 and "rel" in measure.SUPPORTED_PARAMS and "rel" not in measure.params:
            measure = measure(rel=relevance_level)  # binary measures only: nDCG and ERR read the grades
        parsed[measure] = name
    judged = {q: dict(d) for q, d in qrels.items()}
    full_run = {q: dict(run.get(q, {})) for q in judged}
    if per_query:
        values: dict[str, dict[str, float]] = {m: dict.fromkeys(judged, 0.0) for m in measures}
        for metric in ir_measures.iter_calc(list(parsed), judged, full_run):
            values[parsed[metric.measure]][metric.query_id] = float(metric.value)
        return values
    aggregate = ir_measures.calc_aggregate(list(parsed), judged, full_run)
    return {name: float(aggregate.get(m, 0.0)) for m, name in parsed.items()}


def run_from_hits(results: Mapping[str, list[Hit]]) -> dict[str, dict[str, float]]:
    """A run (query -> document -> score) whose scores reproduce the hits' ranks exactly, ties included. Judgements
    are of documents: several passages of one document (`Hit.document_id`) score as its best, the first."""
    run: dict[str, dict[str, float]] = {}
    for q, hits in results.items():
        run[q] = {}
        for i, h in enumerate(hits):
            run[q].setdefault(h.document_id, float(len(hits) - i))
    return run


def paired_test(a: dict[str, float], b: dict[str, float]) -> dict:
    """Paired two-sided t-test of per-query values `b` against `a` (over a's queries), with the mean
    difference b - a."""
    from scipy.stats import ttest_rel

    missing = set(a) - set(b)
    if missing:
        raise ValueError(f"{len(missing)} queries have no value in the second run, e.g. {sorted(missing)[0]!r}")
    x = np.array([a[q] for q in a])
    y = np.array([b[q] for q in a])
    if np.allclose(x, y):
        return {"test": "paired t-test", "mean_diff": 0.0, "p_value": 1.0}
    result = ttest_rel(y, x)
    return {"test": "paired t-test", "mean_diff": float((y - x).mean()), "p_value": float(result.pvalue)}


def with_tail(reranked: dict[str, dict[str, float]], source: dict[str, dict[str, float]]
              ) -> dict[str, dict[str, float]]:
    """Each query's reranked candidates, then the rest of its `source` list (the list the candidates were cut from)
    in the source's order, all below them: reranking a list's top N leaves the rest of the list where it was, as
    a search backend's list keeps it. Without this, reranking the top 5 scored as a list of 5."""
    out = {}
    for qid in reranked.keys() | source.keys():
        scores = reranked.get(qid, {})
        floor = min(scores.values(), default=0.0)
        rest = [d for d, _ in sorted(source.get(qid, {}).items(), key=lambda kv: -kv[1]) if d not in scores]
        out[qid] = {**scores, **{d: floor - 1.0 - i for i, d in enumerate(rest)}}
    return out
