"""Relevance metrics from ir-measures (pytrec_eval underneath); no hand-rolled metric code."""

from __future__ import annotations

from collections.abc import Mapping

from earlyrank.indexes.types import Hit

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100", "P@1", "AP@3")


def evaluate_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                 measures: tuple[str, ...] = DEFAULT_MEASURES, per_query: bool = False):
    """Mean of each measure over the judged queries (a query missing from the run scores 0).

    With `per_query`, returns ``{measure: {query_id: value}}`` instead, for significance tests.
    """
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    judged = {q: dict(d) for q, d in qrels.items()}
    full_run = {q: dict(run.get(q, {})) for q in judged}
    if per_query:
        values: dict[str, dict[str, float]] = {m: dict.fromkeys(judged, 0.0) for m in measures}
        for metric in ir_measures.iter_calc(parsed, judged, full_run):
            values[str(metric.measure)][metric.query_id] = float(metric.value)
        return values
    aggregate = ir_measures.calc_aggregate(parsed, judged, full_run)
    return {str(m): float(aggregate.get(m, 0.0)) for m in parsed}


def run_from_hits(results: Mapping[str, list[Hit]]) -> dict[str, dict[str, float]]:
    """A run (query -> doc -> score) whose scores reproduce the hits' ranks exactly, ties included."""
    return {q: {h.doc_id: float(len(hits) - i) for i, h in enumerate(hits)} for q, hits in results.items()}
