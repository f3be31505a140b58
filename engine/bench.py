"""`earlyrank bench`: quality against cost on one data set split, every configuration on the same candidates.

Recall modes are run live (timed). The cross-encoder scores the top-`depth` hybrid candidates of every query
once (cached, timed); each reranking configuration, early-stopping policies included, is then replayed over
those scores by the same `rerank` loop the service runs, counting the pairs it asks for. Rerank time per
query is pairs scored times the measured time per pair. Each reranked list is followed by the rest of the hybrid
recall list, in recall order. Operating points are read from the model's `operating_point.json`, chosen on the dev
split by `earlyrank tune`, never on this split.
"""

from __future__ import annotations

import copy
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import (
    file_name,
    git_commit,
    machine,
    percentiles,
    relevant_missing,
    write_run,
)
from earlyrank.engine.bench_tables import markdown_table
from earlyrank.engine.calibration import Calibration, expected_calibration_error
from earlyrank.engine.evaluation import DEFAULT_MEASURES, evaluate_run, paired_test, run_from_hits, with_tail
from earlyrank.engine.model_files import OPERATING_POINT
from earlyrank.engine.offline import labelled_pairs, replay
from earlyrank.engine.operating_point import policy_from
from earlyrank.engine.stopping import FullRerank, RankPrior, ResidualRisk, Threshold, TopKConfident
from earlyrank.indexes.types import RecallMode


def recall_rows(name: str, queries, qrels, index, out: Path, peers: bool, relevance_level: int = 1
                ) -> tuple[list[dict], dict[str, dict]]:
    """Live recall in every mode (and rank-bm25 as a peer): a row of metrics and per-query latency each, and
    {row name: run}."""
    from earlyrank.indexes.bm25 import BM25Params, RankBM25Index
    from earlyrank.indexes.dense import clear_query_vectors

    retrievers = {mode.value: index.retriever(mode) for mode in RecallMode}
    if peers:
        started = time.perf_counter()
        retrievers["rank-bm25 (okapi)"] = RankBM25Index([d.id for d in index.docs],
                                                        [d.full_text for d in index.docs], BM25Params(idf="okapi"))
        build = time.perf_counter() - started
    rows, runs = [], {}
    for mode, retriever in retrievers.items():
        retriever.search("warm up", 1)  # loads the dense encoder, so its load time is not a query's latency
        clear_query_vectors()  # each mode encodes its queries itself: hybrid after dense was timed without the encoder
        results, latency = {}, []
        for q in queries:
            started = time.perf_counter()
            results[q.id] = retriever.search(q.text, 100)
            latency.append(time.perf_counter() - started)
        runs[f"recall: {mode}"] = run_from_hits(results)
        write_run(runs[f"recall: {mode}"], out / f"{name}-recall-{mode.split()[0]}.trec", file_name(mode))
        row = {"config": f"recall: {mode}", "kind": "recall", **evaluate_run(qrels, runs[f"recall: {mode}"],
                                                                         relevance_level=relevance_level),
               "pairs_mean": 0.0, "latency_ms": {k: v * 1000 for k, v in percentiles(latency).items()}}
        if mode.startswith("rank-bm25"):
            row["build_seconds"] = build
        rows.append(row)
    return rows, runs


def rerank_configs(point: dict | None, prior: RankPrior | None, depth: int) -> list[tuple[str, str, object]]:
    """(name, family, policy): full reranks, the published rule's sweep, ours, and the dev-chosen points."""
    configs: list[tuple[str, str, object]] = [(f"full rerank top-{n}", "full", FullRerank(depth=n, chunk=16))
                                              for n in sorted({20, 50, depth}) if n <= depth]
    configs.append((f"full rerank top-{depth}, confidence only (no blend)", "unblended", FullRerank(depth, 16)))
    for tau in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98):
        configs.append((f"published tau={tau} c=10", "published (Ying & Huo)", Threshold(tau, 10, depth)))
        configs.append((f"top-3 confident tau={tau}", "top-k confident", TopKConfident(3, tau, 10, depth)))
    if prior is not None:
        for eps in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0):
            configs.append((f"residual risk eps={eps} k=3", "residual risk (ours)",
                            ResidualRisk(prior=prior, epsilon=eps, k=3, first_chunk=4, depth=depth,
                                         blend=point["blend"] if point else 0.0)))
    if point is not None:
        configs.append(("operating point (chosen on dev)", "chosen", policy_from(point["chosen"], prior, depth,
                                                                                  point["depth"])))
        configs.append(("published rule, best on dev", "chosen",
                        policy_from(point["best_published_rule"], prior, depth, point["depth"])))
        best = point.get("best_by_policy", {})
        for name, label in (("risk", "residual risk (ours), best on dev"), ("full", "full rerank, shallowest cap "
                                                                                      "within the loss on dev")):
            if name in best:
                configs.append((label, "chosen", policy_from(best[name], prior, depth, point["depth"])))
    return configs


def significance(qrels, reference: dict, other: dict) -> dict:
    """Paired two-sided t-test on per-query nDCG@10 of two runs (reference vs other), with the mean difference."""
    a = evaluate_run(qrels, reference, ("nDCG@10",), per_query=True)["nDCG@10"]
    b = evaluate_run(qrels, other, ("nDCG@10",), per_query=True)["nDCG@10"]
    return paired_test(a, b)


def rerank_rows(data, qrels, calibration: Calibration, blend: float, configs, seconds_per_pair: float,
                recall_ms: float, out: Path, windows: dict[str, np.ndarray] | None = None,
                tail: dict[str, dict[str, float]] | None = None, relevance_level: int = 1
                ) -> tuple[list[dict], dict]:
    """One row per configuration; with `windows` (from `window_counts`) each row also counts forward passes:
    the scored candidates are always a prefix of recall order. With `tail` (the recall run the candidates were
    cut from), each reranked list is followed by the rest of that run, in its order (`evaluation.with_tail`), so
    reranking the top N leaves ranks N+1 on where recall put them."""
    rows, results_by_name, runs = [], {}, {}
    for name, family, policy in configs:
        # A "full rerank top-N" row reranks recall's top N only; any other policy's depth caps what it scores, and
        # the candidates it leaves follow in recall order, as in the pipeline.
        depth = policy.depth if family == "full" else None
        # "unblended": the reranker's confidence alone, to show what blending with recall adds.
        results, pairs, reasons = replay(data.scored, policy, calibration, 0.0 if family == "unblended" else blend,
                                         depth)
        results_by_name[name] = results
        run = runs[name] = with_tail(run_from_hits(results), tail) if tail is not None else run_from_hits(results)
        rerank_ms = pairs * seconds_per_pair * 1000
        candidates = sum(min(len(sq.candidates), depth or len(sq.candidates)) for sq in data.scored)
        passes = np.array([windows[sq.query_id][:n].sum() for sq, n in zip(data.scored, pairs, strict=True)]
                          ) if windows else pairs
        rows.append({
            "config": name, "kind": family, **evaluate_run(qrels, run, relevance_level=relevance_level),
            "pairs_mean": float(pairs.mean()), "pairs": percentiles(pairs, (50, 90, 100)),
            "passes_mean": float(np.mean(passes)),
            "fraction_scored": float(pairs.sum() / candidates), "early_stop_rate": float(np.mean(
                [r.early for r in reasons])),
            "rerank_ms": percentiles(rerank_ms), "latency_ms": percentiles(rerank_ms + recall_ms),
            "policy": {k: v for k, v in vars(policy).items() if k != "prior"},
        })
        safe = file_name(name)
        write_run(run, out / f"{data.name}-{safe}.trec", safe)
    deepest = max((p.depth, n) for n, f, p in configs if f == "full")[1]
    for row in rows:
        if row["kind"] != "full":
            row["significance_vs_full"] = significance(qrels, runs[deepest], runs[row["config"]])
    return rows, results_by_name


def window_counts(scorer, data, passages_by_id: dict[str, str]) -> dict[str, np.ndarray]:
    """Forward passes each candidate costs, by query, in recall order: 1, or more where a passage is read in
    several windows (tokenization only; nothing is scored)."""
    counts = {}
    for sq in data.scored:
        texts = [passages_by_id[h.doc_id] for h in sq.candidates]
        owner = scorer.window_ids([sq.text] * len(texts), texts)[1] if texts else np.zeros(0, dtype=int)
        counts[sq.query_id] = np.bincount(owner, minlength=len(texts))
    return counts


def compare_with_sentence_transformers(scorer, data, passages_by_id: dict[str, str], pairs: int = 160) -> dict:
    """Score the same pairs with sentence-transformers' CrossEncoder on the same weights: agreement and speed.
    Both read the head of each passage only (sentence-transformers has no windows), one pass per pair."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    scorer = copy.copy(scorer)
    scorer.windows = 1

    sample = [(sq.text, sq) for sq in data.scored]
    queries, passages, ours_cached = [], [], []
    for text, sq in sample:
        for i, h in enumerate(sq.candidates[:8]):
            queries.append(text)
            passages.append(passages_by_id[h.doc_id])
            ours_cached.append(sq.logits[i])
        if len(queries) >= pairs:
            break
    peer = STCrossEncoder(str(scorer.path), device="cpu", max_length=scorer.max_length,
                          local_files_only=True, model_kwargs={"torch_dtype": "float32"})
    peer.model.eval()
    started = time.perf_counter()
    theirs = peer.predict(list(zip(queries, passages, strict=True)), batch_size=scorer.batch_size,
                          activation_fn=__import__("torch").nn.Identity(), convert_to_numpy=True)
    their_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours = scorer.logits(queries, passages)
    our_seconds = time.perf_counter() - started
    return {"pairs": len(queries), "max_abs_diff": float(np.max(np.abs(np.asarray(theirs) - ours))),
            "ours_pairs_per_s": len(queries) / our_seconds,
            "sentence_transformers_pairs_per_s": len(queries) / their_seconds}


def confidence_split(results: dict, qrels) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 confidence of questions whose top hit is relevant, and of those whose top hit is not."""
    right: list[float] = []
    wrong: list[float] = []
    for qid, hits in results.items():
        confidence = hits[0].confidence if hits else None
        if confidence is not None:
            relevant = qrels.get(qid, {}).get(hits[0].doc_id, 0) > 0
            (right if relevant else wrong).append(confidence)
    return np.asarray(right), np.asarray(wrong)


def run_bench(data_dir: Path, model_dir: Path, out: Path, split: str = "test", depth: int = 100,
              limit: int = 0, peers: bool = True, plots: bool = True, backend: str | None = None,
              ray_address: str | None = None, ray_workers: int = 2, max_length: int | None = None,
              windows: int | None = None, relevance_level: int = 1) -> dict:
    """Every configuration on one split; writes run files, a JSON record, a markdown table and plots. The binary
    measures count grade >= `relevance_level` as relevant (nDCG@10 uses the grades).

    `max_length` and `windows` override the model's inference settings (see `benchmarks/lengths.py`); the
    calibration and operating point stored with the model were fitted with those, so elsewhere they are only
    approximate.

    With `ray_address` the cross-encoder scores the split on `ray_workers` Ray actors (`engine.ray_scoring`).
    """
    from earlyrank.engine.backend_probe import resolve_backend
    from earlyrank.engine.corpora import dataset_index
    from earlyrank.engine.cross_encoder import CrossEncoder
    from earlyrank.engine.datasets import load_dataset
    from earlyrank.engine.model_files import model_max_length, model_windows
    from earlyrank.engine.tuning import scored_split, split_queries

    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    scorer = CrossEncoder.load(model_dir, max_length=max_length, backend=backend, windows=windows)
    # Judged documents missing from the corpus count as relevant and never retrieved, as trec_eval counts them
    # (TREC DL's qrels judge passages of the full collection); the record says how many there are.
    dataset = load_dataset(data_dir, check_judged=False)
    index = dataset_index(dataset)
    data = scored_split(data_dir, split, scorer, model_dir, "hybrid", depth, limit, ray_address=ray_address,
                        ray_workers=ray_workers)
    queries = split_queries(dataset, split, model_dir)[0][: limit or None]
    qrels = data.qrels
    point = json.loads((model_dir / OPERATING_POINT).read_text()) if (model_dir / OPERATING_POINT).is_file() else None
    prior = RankPrior.from_dict(point["prior"]) if point else None
    blend = point["blend"] if point else 0.0
    calibration = scorer.calibration
    seconds_per_pair = sum(sq.seconds for sq in data.scored) / sum(len(sq.candidates) for sq in data.scored)
    rows, recall_runs = recall_rows(dataset.name, queries, qrels, index, out, peers, relevance_level)
    hybrid_ms = rows[2]["latency_ms"]["p50"]
    configs = rerank_configs(point, prior, depth)
    texts = {d.id: d.full_text for d in index.docs}
    passes = window_counts(scorer, data, texts)
    rerank, results = rerank_rows(data, qrels, calibration, blend, configs, seconds_per_pair, hybrid_ms, out,
                                  passes, tail=recall_runs["recall: hybrid"], relevance_level=relevance_level)
    logits, labels = labelled_pairs(data.scored, qrels, relevance_level)  # the ECE counts relevance as the table
    record = {
        "dataset": data.name, "split": split, "queries": len(data.scored), "depth": depth, "blend": blend,
        "relevance_level": relevance_level, "command": " ".join(sys.argv),
        "git_commit": git_commit(), "machine": machine(), "model": scorer.identity(),
        "index": {"documents": len(index.documents), "manifest_corpus": index.manifest["corpus"]},
        "relevant_missing_from_corpus": relevant_missing(qrels, {d.id for d in index.documents}, relevance_level),
        "seconds_per_pair": seconds_per_pair, "measures": list(DEFAULT_MEASURES),
        "calibration_on_split": {"ece_15": expected_calibration_error(calibration.confidence(logits), labels),
                                 "pairs": int(labels.size)},
        "rows": rows + rerank, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "operating_point_source": ("the model's operating_point.json: earlyrank tune on the dev questions of the data "
                                   "sets it was tuned on, not on this data set") if point else "none (model not tuned)",
    }
    record["passes_per_pair"] = float(sum(w.sum() for w in passes.values()) / max(1, sum(
        len(w) for w in passes.values())))
    if peers:
        record["peer_cross_encoder"] = compare_with_sentence_transformers(scorer, data, texts)
    # The default backend at the model's own length gets the plain name; anything else says what differs.
    variant = ("" if scorer.backend.name == resolve_backend() else f"-{scorer.backend.name}") + (
        "" if scorer.max_length == model_max_length(model_dir) else f"-{scorer.max_length}tok") + (
        "" if scorer.windows == model_windows(model_dir) else f"-{scorer.windows}win")
    if plots:
        record["plots"] = write_plots(data.name + variant, rerank, results, qrels, out)
    record["seconds"] = time.time() - started
    stem = f"{data.name}-{split}{variant}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    (out / f"{stem}.md").write_text(markdown_table(record))
    return record


def write_plots(name: str, rows: list[dict], results: dict, qrels, out: Path) -> list[str]:
    """Draw one bench run's two plots into `out` and return their paths: nDCG@10 against pairs scored per query (each
    stopping policy's points, and the full rerank at each depth), and the top-1 confidences of the deepest full rerank,
    split by whether the top hit is relevant."""
    from earlyrank.engine.plots import confidence_histogram, quality_vs_cost

    full = max((r for r in rows if r["kind"] == "full"), key=lambda r: r["pairs_mean"])
    curves: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["kind"] not in ("full", "chosen", "unblended"):
            curves.setdefault(r["kind"], []).append((r["pairs_mean"], r["nDCG@10"]))
    curves["full rerank top-N"] = [(r["pairs_mean"], r["nDCG@10"]) for r in rows if r["kind"] == "full"]
    cost = quality_vs_cost(curves, full["nDCG@10"], out / f"{name}-quality-vs-pairs.png",
                           f"{name}: nDCG@10 vs pairs scored")
    right, wrong = confidence_split(results[full["config"]], qrels)
    hist = confidence_histogram(right, wrong, out / f"{name}-top1-confidence.png",
                                f"{name}: top-1 confidence after full rerank")
    return [str(cost), str(hist)]
