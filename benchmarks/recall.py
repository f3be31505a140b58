"""Recall benchmark: BM25 (bm25s, as the index builds it; rank-bm25 as the peer), dense and hybrid on real data,
and a scaling run.

    python benchmarks/recall.py                      # SciFact and XQuAD test, every backend
    python benchmarks/recall.py --scaling 10000 100000 1000000 --dense-scaling 10000

Prints a table and writes results/recall.json (git commit, parameters, machine, metrics, timings).
Peak memory is the process's resident high-water mark after each step (ru_maxrss), so it only grows.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

from earlyrank.engine.bench_record import git_commit, machine, percentiles
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.evaluation import evaluate_run, run_from_hits
from earlyrank.indexes.bm25 import BM25Index, BM25Params, RankBM25Index
from earlyrank.indexes.dense import DenseIndex, DenseParams
from earlyrank.indexes.hybrid import HybridRetriever

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DEPTH = 100  # hits per query; --k changes it (R@100 needs 100)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_build(make):
    started = time.perf_counter()
    built = make()
    return built, time.perf_counter() - started


def evaluate(name, retriever, queries, qrels, build_s, rows, dataset):
    retriever.search("warm up", 1)
    results, latency = {}, []
    for q in queries:
        started = time.perf_counter()
        results[q.id] = retriever.search(q.text, DEPTH)
        latency.append((time.perf_counter() - started) * 1000)
    metrics = evaluate_run(qrels, run_from_hits(results), ("nDCG@10", "RR@10", "R@100"))
    rows.append({"dataset": dataset, "backend": name, **metrics, "build_s": build_s,
                 "latency_ms": percentiles(latency), "peak_rss_mb": peak_mb()})
    return results


def real_data(names: list[str], dense: bool = True) -> tuple[list[dict], dict]:
    rows, parity = [], {}
    for name in names:
        ds = load_dataset(SHARED / name)
        queries, qrels = ds.split("test")
        ids, texts = [d.id for d in ds.corpus], [d.full_text for d in ds.corpus]
        bm25, t_bm25 = timed_build(lambda: BM25Index.build(ids, texts))
        evaluate("bm25 (bm25s, lucene)", bm25, queries, qrels, t_bm25, rows, name)
        okapi, t_okapi = timed_build(lambda: BM25Index.build(ids, texts, BM25Params(idf="okapi")))
        ours_okapi = evaluate("bm25 (bm25s, okapi)", okapi, queries, qrels, t_okapi, rows, name)
        reference, t_ref = timed_build(lambda: RankBM25Index(ids, texts, BM25Params(idf="okapi")))
        theirs = evaluate("rank-bm25 BM25Okapi", reference, queries, qrels, t_ref, rows, name)
        same = sum([h.doc_id for h in ours_okapi[q][:10]] == [h.doc_id for h in theirs[q][:10]] for q in theirs)
        parity[name] = {"same_top10_queries": same, "queries": len(theirs),
                        "latency_ratio_p50": rows[-1]["latency_ms"]["p50"] / rows[-2]["latency_ms"]["p50"]}
        if not dense:
            continue
        dense, t_dense = timed_build(lambda: DenseIndex.build(ids, texts, DenseParams(), progress=True))
        evaluate("dense (MiniLM, flat)", dense, queries, qrels, t_dense, rows, name)
        evaluate("hybrid (RRF k=60, depth 100)", HybridRetriever([bm25, dense]), queries, qrels, t_bm25 + t_dense,
                 rows, name)
    return rows, parity


def synthetic(n: int, seed: int = 7) -> list[str]:
    """n passages of 3-6 SciFact sentences drawn at random (with replacement)."""
    ds = load_dataset(SHARED / "scifact")
    sentences = [s.strip() for d in ds.corpus for s in d.text.split(". ") if len(s) > 20]
    rng = random.Random(seed)
    return [". ".join(rng.choices(sentences, k=rng.randint(3, 6))) for _ in range(n)]


def scaling(sizes: list[int], dense_sizes: list[int]) -> list[dict]:
    rows = []
    queries = [q.text for q in list(load_dataset(SHARED / "scifact").queries.values())[:200]]
    for n in sorted(set(sizes) | set(dense_sizes)):
        texts = synthetic(n)
        ids = [f"s{i}" for i in range(n)]
        backends = []
        if n in sizes:
            backends.append(("bm25 (bm25s)", lambda: BM25Index.build(ids, texts, progress=True)))
        if n in dense_sizes:
            backends.append(("dense flat", lambda: DenseIndex.build(ids, texts, DenseParams(), progress=True)))
        for name, make in backends:
            index, build_s = timed_build(make)
            index.search("warm up", 1)
            latency = []
            for q in queries:
                started = time.perf_counter()
                index.search(q, 100)
                latency.append((time.perf_counter() - started) * 1000)
            rows.append({"passages": n, "backend": name, "build_s": build_s, "latency_ms": percentiles(latency),
                         "peak_rss_mb": peak_mb()})
            print(f"  {n:>8} {name:<12} build {build_s:8.1f} s  p50 {rows[-1]['latency_ms']['p50']:8.2f} ms  "
                  f"peak {rows[-1]['peak_rss_mb']:8.0f} MB", flush=True)
            del index
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=["scifact", "xquad-en"])
    parser.add_argument("--scaling", nargs="*", type=int, default=[])
    parser.add_argument("--dense-scaling", nargs="*", type=int, default=[])
    parser.add_argument("--sparse-only", action="store_true", help="BM25 backends only (no dense, no hybrid)")
    parser.add_argument("--k", type=int, default=100, help="hits per query (R@100 is only meaningful at 100)")
    parser.add_argument("--out", type=Path, default=Path("results/recall.json"))
    args = parser.parse_args()
    global DEPTH
    DEPTH = args.k
    rows, parity = real_data(args.datasets, not args.sparse_only) if args.datasets else ([], {})
    print(f"{'dataset':<10} {'backend':<30} {'nDCG@10':>8} {'RR@10':>7} {'R@100':>7} {'build s':>8} "
          f"{'p50 ms':>8} {'p95 ms':>8}")
    for r in rows:
        print(f"{r['dataset']:<10} {r['backend']:<30} {r['nDCG@10']:>8.4f} {r['RR@10']:>7.4f} {r['R@100']:>7.4f} "
              f"{r['build_s']:>8.2f} {r['latency_ms']['p50']:>8.2f} {r['latency_ms']['p95']:>8.2f}")
    for name, p in parity.items():
        print(f"{name}: ours (okapi) vs rank-bm25: same top-10 for {p['same_top10_queries']}/{p['queries']} queries; "
              f"rank-bm25 p50 latency is {p['latency_ratio_p50']:.0f}x ours")
    scale = scaling(args.scaling, args.dense_scaling) if args.scaling or args.dense_scaling else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"git_commit": git_commit(), "machine": machine(), "rows": rows,
                                    "parity": parity, "scaling": scale,
                                    "params": {"bm25": vars(BM25Params()), "k": args.k}}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
