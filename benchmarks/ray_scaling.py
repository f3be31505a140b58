"""Dense index building on Ray: passages/s with 1 and 2 workers here, and a projection to 1M passages.

    python benchmarks/ray_scaling.py [--data ../shared/datasets/scifact] [--passages 2000] [--workers 1 2]
                                     [--address ADDRESS] [--machines 1 4 16 64]

Measures, on the first PASSAGES passages of DATA: the in-process encoder (`indexes.dense.encode`, every core)
as the baseline; BM25 building on one core (to show whether distributing it would pay); and for each worker
count the Ray Data pipeline (`indexes.ray_build.RayDenseEncoder`, one CPU per worker): end-to-end seconds,
the fixed cost of a run (actors start and load the model) and the steady rate after it, plus the largest
difference from the baseline's vectors. Then prints a PROJECTION, not a measurement, for 1M passages on N
machines of this machine's core count, from the measured per-worker rate and 1->2 worker efficiency.
Writes results/ray_scaling.json (git commit, machine, parameters, timings, projection and its assumptions).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.datasets import load_corpus
from earlyrank.indexes.bm25 import BM25Index, BM25Params
from earlyrank.indexes.dense import DenseParams, encode, load_encoder
from earlyrank.indexes.ray_build import RayDenseEncoder
from earlyrank.indexes.ray_session import ray_session

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TARGET = 1_000_000


def timed(run):
    started = time.perf_counter()
    value = run()
    return value, time.perf_counter() - started


def local_baseline(texts: list[str], params: DenseParams) -> tuple[dict, np.ndarray]:
    _, load_s = timed(lambda: load_encoder(None, params.max_seq_length))
    vectors, seconds = timed(lambda: encode(texts, params))
    return {"threads": os.cpu_count(), "load_s": load_s, "encode_s": seconds,
            "passages_per_s": len(texts) / seconds}, vectors


def bm25_baseline(ids: list[str], texts: list[str]) -> dict:
    _, seconds = timed(lambda: BM25Index.build(ids, texts, BM25Params(), progress=False))
    return {"build_s": seconds, "passages_per_s": len(texts) / seconds}


def ray_run(texts: list[str], params: DenseParams, workers: int, rows: int, reference: np.ndarray) -> dict:
    """One end-to-end Ray encoding of `texts`, and a run of one passage per worker for its fixed cost."""
    _, fixed_s = timed(lambda: RayDenseEncoder(workers, rows_per_block=1)(texts[:workers], params))
    vectors, total_s = timed(lambda: RayDenseEncoder(workers, rows_per_block=rows)(texts, params))
    steady_s = max(total_s - fixed_s, 1e-9)
    return {"workers": workers, "total_s": total_s, "fixed_s": fixed_s, "passages_per_s": len(texts) / total_s,
            "steady_passages_per_s": len(texts) / steady_s,
            "max_abs_diff_vs_local": float(np.max(np.abs(vectors - reference)))}


def projection(runs: list[dict], machines: list[int], cores: int) -> dict:
    """Hours for TARGET passages on N machines, assuming per-worker rate and efficiency carry over unchanged."""
    by_workers = {r["workers"]: r for r in runs}
    per_worker = by_workers[min(by_workers)]["steady_passages_per_s"] / min(by_workers)
    biggest = by_workers[max(by_workers)]
    efficiency = min(1.0, biggest["steady_passages_per_s"] / (per_worker * biggest["workers"]))
    rows = [{"machines": n, "workers": n * cores,
             "hours": (biggest["fixed_s"] + TARGET / (per_worker * n * cores * efficiency)) / 3600}
            for n in machines]
    return {"kind": "projection, not measured", "passages": TARGET, "cores_per_machine": cores,
            "per_worker_passages_per_s": per_worker, "efficiency": efficiency, "rows": rows,
            "assumptions": ["one 1-CPU worker per core on every machine, each as fast as a worker here",
                            "the measured efficiency of the largest worker count here holds for any count",
                            "not modelled: moving passages and vectors through the driver and the network, "
                            "faiss building on the driver, stragglers, autoscaling"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "scifact")
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows-per-block", type=int, default=256)
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: a local one)")
    parser.add_argument("--machines", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--out", type=Path, default=Path("results") / "ray_scaling.json")
    args = parser.parse_args()

    docs = load_corpus(args.data / "corpus.jsonl")[: args.passages]
    texts, params = [d.full_text for d in docs], DenseParams()
    local, reference = local_baseline(texts, params)
    bm25 = bm25_baseline([d.id for d in docs], texts)
    print(f"{len(texts)} passages of {args.data.name}; in-process encoder ({local['threads']} threads): "
          f"{local['passages_per_s']:.1f} passages/s; BM25 build (1 core): {bm25['passages_per_s']:.0f} passages/s")
    started = time.perf_counter()
    with ray_session(args.address) as ray:
        session_s = time.perf_counter() - started
        _, warm_s = timed(lambda: RayDenseEncoder(1, rows_per_block=1)(texts[:1], params))  # Ray Data's first run
        runs = [ray_run(texts, params, w, args.rows_per_block, reference) for w in args.workers]
        cluster = ray.cluster_resources()
    print(f"{'workers':>7} {'total s':>8} {'fixed s':>8} {'passages/s':>10} {'steady/s':>9} {'max |diff|':>10}")
    for r in runs:
        print(f"{r['workers']:>7} {r['total_s']:>8.1f} {r['fixed_s']:>8.1f} {r['passages_per_s']:>10.1f} "
              f"{r['steady_passages_per_s']:>9.1f} {r['max_abs_diff_vs_local']:>10.2e}")
    cores = os.cpu_count() or 1
    plan = projection(runs, args.machines, cores)
    print(f"\nPROJECTION (not measured) for {TARGET:,} passages, {cores} one-CPU workers per machine, "
          f"{plan['per_worker_passages_per_s']:.1f} passages/s per worker, efficiency {plan['efficiency']:.2f}:")
    for row in plan["rows"]:
        print(f"  {row['machines']:>3} machines ({row['workers']:>4} workers): ~{row['hours']:.2f} h")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "git_commit": git_commit(), "machine": machine(), "ray_version": ray.__version__,
        "cluster_resources": cluster, "parameters": {
            "data": args.data.name, "passages": len(texts), "workers": args.workers, "cpus_per_worker": 1,
            "rows_per_block": args.rows_per_block, "address": args.address or "local",
            "dense": asdict(params)},
        "local": local, "bm25": bm25, "ray_session_start_s": session_s, "first_ray_run_s": warm_s, "ray": runs,
        "projection": plan,
    }, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
