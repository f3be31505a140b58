"""The benchmark suite: every data set in one go, one table, in-domain and out-of-domain side by side.

`earlyrank bench --suite` runs, for each `SuiteSet`:
- recall in each mode over the set's corpus (and the set's own first-stage run, if it has one);
- on the candidates (hybrid top-`depth`, or the run's top `depth`): the shipped final score (calibrated
  confidence blended with the recall rank), the cross-encoder alone, the dense cosine alone, the learned
  fusion (full), and the fusion at its stored operating point (`BoundStop`);
- nDCG@10 with the graded judgements, and binary measures (RR@10, P@1) counting grade >= `relevance_level`
  as relevant, scored by ir-measures as trec_eval scores them (judged passages missing from the corpus stay
  in the qrels and count as relevant passages not retrieved);
- ECE (15 bins) of the confidences the configuration returns, and paired t-tests of per-query nDCG@10
  against the best recall mode and against the candidate list reranked (the given run, or hybrid recall);
- a list reranked to `depth` keeps the rest of its candidate list below the reranked part, in its own order.
Scores come from the same cache `earlyrank tune` and `bench` use, so a rerun only scores what is new.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import file_name, git_commit, machine, relevant_missing, write_run
from earlyrank.engine.bench_tables import missing_note
from earlyrank.engine.calibration import Calibration, expected_calibration_error
from earlyrank.engine.evaluation import evaluate_run, paired_test, run_from_hits, with_tail
from earlyrank.engine.fusion import Fusion
from earlyrank.engine.fusion_training import QueryFeatures, query_features, ranked_run, replay_fused
from earlyrank.engine.offline import replay
from earlyrank.engine.stopping import BoundStop, FullRerank
from earlyrank.indexes.types import RecallMode


@dataclass(frozen=True)
class SuiteSet:
    """One data set of the suite: where it is, what is reranked and how relevance is counted."""

    name: str
    depth: int = 100
    run: str | None = None  # a TREC run inside the set's folder, reranked as a search backend's list
    relevance_level: int = 1  # binary measures count grade >= this as relevant
    evaluation_only: bool = False


SUITE = (
    SuiteSet("scifact", depth=30),
    SuiteSet("xquad-en", depth=30),
    SuiteSet("trec-dl-2019-passage", run="runs/BM25.top100.trec", relevance_level=2, evaluation_only=True),
    SuiteSet("trec-dl-2021-passage", run="runs/BM25.top100.trec", relevance_level=2, evaluation_only=True),
    SuiteSet("noveleval-2306", evaluation_only=True),
)


def measures(level: int) -> dict[str, str]:
    """Column name -> ir-measures name, binary measures at relevance `level`."""
    rel = "" if level == 1 else f"(rel={level})"
    return {"nDCG@10": "nDCG@10", "RR@10": f"RR{rel}@10", "P@1": f"P{rel}@1"}


def metrics(qrels: dict, run: dict, level: int) -> dict[str, float]:
    names = measures(level)
    values = evaluate_run(qrels, run, tuple(names.values()))
    return {column: values[name] for column, name in names.items()}


def per_query_ndcg(qrels: dict, run: dict) -> dict[str, float]:
    return evaluate_run(qrels, run, ("nDCG@10",), per_query=True)["nDCG@10"]


def recall_runs(index, queries, run_file: Path | None, external: dict | None = None, depth: int = 100
                ) -> dict[str, dict]:
    """{row name: run} of live recall in every mode, and of the set's own run (`external`, `read_run` of
    `run_file`)."""
    runs = {}
    for mode in RecallMode:
        retriever = index.retriever(mode)
        runs[f"recall: {mode.value}"] = run_from_hits({q.id: retriever.search(q.text, depth) for q in queries})
    if run_file is not None and external is not None:
        runs[f"recall: {run_file.stem} (given run)"] = {
            q.id: {d: float(-r) for r, (d, _) in enumerate(external.get(q.id, [])[:depth])} for q in queries}
    return runs


def ece_of(queries: list[QueryFeatures], probabilities: list[np.ndarray], level: int) -> float:
    labels = np.concatenate([q.labels >= level for q in queries]).astype(float)
    return expected_calibration_error(np.concatenate(probabilities), labels)


SHIPPED_POINT = "rerank: shipped operating point"
FUSION_POINT = "fusion: operating point"


def rerank_rows(features: list[QueryFeatures], scored, calibration: Calibration, blend: float, policy,
                fusion: Fusion | None, stop: BoundStop | None) -> dict[str, dict]:
    """{row name: {"run", "pairs", "probabilities"}} of each reranking configuration on the candidates;
    `policy` is the stopping policy `earlyrank tune` stored with the model."""
    n = np.asarray([len(q.doc_ids) for q in features], dtype=float)
    rows: dict[str, dict] = {}
    full = FullRerank(depth=max(len(sq.candidates) for sq in scored), chunk=16)
    for name, weight, rule in (("rerank: shipped blend, full", blend, full),
                               ("rerank: cross-encoder alone, full", 0.0, full), (SHIPPED_POINT, blend, policy)):
        results, pairs, _ = replay(scored, rule, calibration, weight)
        rows[name] = {"run": run_from_hits(results), "pairs": pairs,
                      "probabilities": [calibration.confidence(q.logits) for q in features]
                      if rule is full else None}
    rows["dense cosine alone (no model call)"] = {"run": ranked_run(features, [q.signals.cosine for q in features]),
                                                  "pairs": np.zeros(len(features)), "probabilities": None}
    if fusion is not None:
        log_odds = [fusion.log_odds(fusion.static_log_odds(q.signals), q.logits) for q in features]
        rows["fusion: full"] = {"run": ranked_run(features, log_odds), "pairs": n,
                                "probabilities": [Fusion.probability(x) for x in log_odds]}
        if stop is not None:
            run, pairs = replay_fused(fusion, stop, features, calibration)
            rows[FUSION_POINT] = {"run": run, "pairs": pairs, "probabilities": None}
    return rows


def run_set(spec: SuiteSet, root: Path, model_dir: Path, scorer, fusion: Fusion | None, stop: BoundStop | None,
            blend: float, policy, sources: tuple[str, ...], runs_out: Path | None = None) -> dict:
    """Every row of one data set, as a JSON-ready record; with `runs_out`, each reranking row's run is also written
    there as a TREC run file (``<set>-<candidates>-<row>.trec``), so that trec_eval can check the figures."""
    from earlyrank.engine.corpora import dataset_index
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.engine.tuning import scored_split
    from earlyrank.indexes.run_file import RunRetriever, read_run

    data_dir = root / spec.name
    dataset = load_dataset(data_dir, check_judged=False)
    index = dataset_index(dataset)
    queries, qrels = dataset.split("test")
    run_file = data_dir / spec.run if spec.run else None
    rows: list[dict] = []
    external = read_run(run_file) if run_file is not None else None  # read once: rows and notes
    recalled = recall_runs(index, queries, run_file, external)
    for row, run in recalled.items():
        rows.append({"config": row, "candidates": "", **metrics(qrels, run, spec.relevance_level),
                     "pairs_mean": 0.0, "per_query": per_query_ndcg(qrels, run)})
    best_recall = max(rows, key=lambda r: float(r["nDCG@10"]))
    for source in sources:
        if source == "run" and run_file is None:
            continue
        data = scored_split(data_dir, "test", scorer, model_dir, "hybrid", spec.depth,
                            run=run_file if source == "run" else None)
        features = query_features(index, data.scored, qrels)
        given = source == "run" and run_file is not None
        label = f"{run_file.stem} top-{spec.depth}" if given and run_file else f"hybrid top-{spec.depth}"
        candidates = next(r for r in rows if r["config"] == (f"recall: {run_file.stem} (given run)" if given and
                                                             run_file else "recall: hybrid"))
        full_pairs = float(np.mean([len(q.doc_ids) for q in features]))
        for name, r in rerank_rows(features, data.scored, scorer.calibration, blend, policy, fusion, stop).items():
            run = with_tail(r["run"], recalled[candidates["config"]])
            if runs_out is not None:
                runs_out.mkdir(parents=True, exist_ok=True)
                write_run(run, runs_out / file_name(f"{spec.name}-{label}-{name}.trec"), file_name(name))
            per_query = per_query_ndcg(qrels, run)
            rows.append({
                "config": name, "candidates": label, **metrics(qrels, run, spec.relevance_level),
                "pairs_mean": float(np.mean(r["pairs"])), "share_of_full": float(np.mean(r["pairs"]) / full_pairs),
                "ece": ece_of(features, r["probabilities"], spec.relevance_level) if r["probabilities"] else None,
                "vs_best_recall": paired_test(best_recall["per_query"], per_query),
                "vs_candidates": paired_test(candidates["per_query"], per_query), "per_query": per_query})
    doc_ids = {d.id for d in index.documents}
    notes = []
    if run_file is not None and external is not None:
        notes = RunRetriever(external).coverage_notes([q.id for q in queries], spec.run or run_file)
    return {"set": asdict(spec), "queries": len(queries), "documents": len(index.documents),
            "relevant_missing_from_corpus": relevant_missing(qrels, doc_ids, spec.relevance_level), "notes": notes,
            "best_recall": best_recall["config"], "rows": rows}


def run_suite(root: Path, model_dir: Path, out: Path, backend: str | None = None,
              sets: tuple[SuiteSet, ...] = SUITE, sources: tuple[str, ...] = ("run", "hybrid"),
              stem: str = "suite", fusion_model: Path | None = None, write_runs: bool = False) -> dict:
    """Run the suite over `sets` under `root`; write ``<stem>.json`` and ``<stem>.md`` into `out`, and with
    `write_runs` every reranking row's TREC run into ``out/<stem>-runs``.

    `sources` are the candidate lists reranked: ``run`` (a set's own run, where it has one) and ``hybrid``.
    The fusion rows use the fusion stored with `fusion_model` (a model directory) if given, else the model's
    own; the default configuration is the model's own (its fusion if it has one).
    """
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.operating_point import load_operating_point
    from earlyrank.engine.pipeline import load_fusion

    started = time.time()
    scorer = CrossEncoder.load(model_dir, backend=backend)
    policy, blend = load_operating_point(model_dir)
    own_fusion = load_fusion(model_dir)[0]
    fusion, stop = load_fusion(fusion_model or model_dir)
    runs_out = out / f"{stem}-runs" if write_runs else None
    records = [run_set(spec, root, model_dir, scorer, fusion, stop, blend, policy, sources, runs_out)
               for spec in sets]
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "default": FUSION_POINT if own_fusion else SHIPPED_POINT,
              "model": scorer.identity(), "blend": blend, "fusion": fusion.as_dict() if fusion else None,
              "fusion_stop": asdict(stop) if stop else None, "sets": records, "seconds": time.time() - started,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    (out / f"{stem}.md").write_text(suite_table(record))
    return record


def suite_table(record: dict) -> str:
    """One markdown table: every set, every row; then a line for each set whose qrels name relevant documents its
    corpus lacks."""
    lines = ["| set | configuration | candidates | nDCG@10 | RR@10 | P@1 | pairs/query | share scored | ECE | "
             "Δ vs best recall (p) | Δ vs candidates (p) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in record["sets"]:
        for r in s["rows"]:
            delta, against = (f"{t['mean_diff']:+.4f} ({t['p_value']:.2g})" if t else ""
                              for t in (r.get("vs_best_recall"), r.get("vs_candidates")))
            ece = f"{r['ece']:.3f}" if r.get("ece") is not None else ""
            share = f"{r['share_of_full']:.1%}" if "share_of_full" in r else ""
            name = r["config"] + (" **(default)**" if r["config"] == record.get("default") else "")
            lines.append(f"| {s['set']['name']} | {name} | {r['candidates']} | {r['nDCG@10']:.4f} | "
                         f"{r['RR@10']:.4f} | {r['P@1']:.4f} | {r['pairs_mean']:.1f} | {share} | {ece} | {delta} | "
                         f"{against} |")
    notes = [f"{s['set']['name']}: {missing_note(count)}"
             for s in record["sets"] if (count := s.get("relevant_missing_from_corpus", 0))]
    notes += [f"{s['set']['name']}: {note}" for s in record["sets"] for note in s.get("notes", [])]
    return "\n".join(lines) + "\n" + "".join(f"\n{n}\n" for n in notes)
