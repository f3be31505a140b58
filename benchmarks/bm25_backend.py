"""The BM25 part's own costs, whatever backend the checked-out commit has: building it (time, peak memory),
loading it back (time, resident memory), its queries (latency, nDCG@10) and its top 10 per query, so that two
commits' records can be compared score for score.

    python benchmarks/bm25_backend.py [--dataset scifact] [--synthetic N] [--compare OLD.json] [--out PATH]

Each step runs in a fresh Python process, so its memory is its own: ``build`` tokenizes the corpus, computes
the index and saves it (`BM25Index.build` and `save`); ``query`` loads it (`BM25Index.load`, as `load_index`
does) and runs the data set's test questions, top 100 each, one at a time, three times over: a question's
latency is the fastest of its three (the machine is shared; the slower ones measure the neighbours). Resident
memory is read from /proc/self/status: ``anon`` is the process's own memory, ``file`` the pages it maps from
files (a memory-mapped index is there: shared between processes and given back under pressure).
``--synthetic N`` indexes N passages of 3-6 SciFact sentences instead (SciFact's questions, no judgements).
``--compare`` reads an earlier record of the same corpus and reports how many questions have the same top 10
and the largest score difference.
Prints a table and writes JSON with the commit, machine, command and load average.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from earlyrank.engine.bench_record import git_commit, machine, percentiles

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def memory() -> dict[str, float]:
    """This process's resident memory now (anon, file) and its high-water mark (peak), in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {name: int(fields[key].split()[0]) for name, key in (("anon", "RssAnon"), ("file", "RssFile"))}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**{k: v / 1024 for k, v in kib.items()}, "peak": peak / 1024}


def corpus(dataset: str, synthetic: int, texts: bool = True):
    """(ids, texts, test queries, qrels) of the data set, or of `synthetic` passages with SciFact's questions;
    without `texts`, texts is None (the query step needs none: making a million takes memory that is not the
    index's)."""
    from earlyrank.engine.datasets import load_dataset

    ds = load_dataset(SHARED / dataset)
    queries, qrels = ds.split("test")
    if not synthetic:
        return [d.id for d in ds.corpus], [d.full_text for d in ds.corpus] if texts else None, queries, qrels
    from recall import synthetic as passages  # benchmarks/recall.py: 3-6 random SciFact sentences a passage

    return [f"s{i}" for i in range(synthetic)], passages(synthetic) if texts else None, queries, {}


def build_step(work: Path, dataset: str, synthetic: int) -> dict:
    from earlyrank.indexes.bm25 import BM25Index

    ids, texts, _, _ = corpus(dataset, synthetic)
    before = memory()
    started = time.perf_counter()
    index = BM25Index.build(ids, texts)
    built = time.perf_counter()
    index.save(work)
    saved = time.perf_counter()
    files = {f.name: f.stat().st_size for f in sorted(work.iterdir())}
    return {"build_s": built - started, "save_s": saved - built, "memory_before_mib": before,
            "memory_after_mib": memory(), "files": files, "vocabulary": len(index.vocab)}


def query_step(work: Path, dataset: str, synthetic: int) -> dict:
    from earlyrank.engine.evaluation import evaluate_run, run_from_hits
    from earlyrank.indexes.bm25 import BM25Index, BM25Params

    ids, _, queries, qrels = corpus(dataset, synthetic, texts=False)
    before = memory()
    started = time.perf_counter()
    index = BM25Index.load(work, ids, BM25Params())
    load_s = time.perf_counter() - started
    loaded = memory()
    index.search("warm up", 1)
    results, latency = {}, {}
    for _ in range(3):
        for q in queries:
            started = time.perf_counter()
            results[q.id] = index.search(q.text, 100)
            ms = (time.perf_counter() - started) * 1000
            latency[q.id] = min(ms, latency.get(q.id, ms))
    record = {"load_s": load_s, "memory_before_load_mib": before, "memory_after_load_mib": loaded,
              "memory_after_queries_mib": memory(), "queries": len(queries),
              "latency_ms": percentiles(list(latency.values())),
              "top10": {q: " ".join(f"{h.doc_id} {h.score:.6f}" for h in hits[:10]) for q, hits in results.items()}}
    ranked = "\n".join(f"{q} {' '.join(h.doc_id for h in hits)}" for q, hits in sorted(results.items()))
    record["top100_sha256"] = hashlib.sha256(ranked.encode()).hexdigest()
    if qrels:
        record["metrics"] = evaluate_run(qrels, run_from_hits(results), ("nDCG@10", "RR@10", "R@100"))
    return record


def in_process(step: str, args: argparse.Namespace, work: Path) -> dict:
    """A step in a fresh Python process (this script, with --step), so that its memory is its own."""
    command = [sys.executable, __file__, "--step", step, "--work", str(work), "--dataset", args.dataset,
               "--synthetic", str(args.synthetic)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(old: dict, new: dict) -> dict:
    """How far `new`'s top 10s are from `old`'s: questions with the same ids in the same order, largest score
    difference over the documents both have in a question's top 10."""
    def pairs(line: str) -> list[tuple[str, float]]:  # "doc score doc score ..."
        words = line.split()
        return [(d, float(s)) for d, s in zip(words[::2], words[1::2], strict=True)]

    same, worst = 0, 0.0
    for q, line in new["top10"].items():
        before, hits = pairs(old["top10"].get(q, "")), pairs(line)
        same += [d for d, _ in before] == [d for d, _ in hits]
        scores = dict(before)
        worst = max([worst] + [abs(s - scores[d]) for d, s in hits if d in scores])
    return {"commit": old["git_commit"], "same_top10": same, "queries": len(new["top10"]),
            "max_abs_score_diff": worst, "same_top100": old["top100_sha256"] == new["top100_sha256"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--synthetic", type=int, default=0, help="index N synthetic passages instead")
    parser.add_argument("--compare", type=Path, help="an earlier record of the same corpus")
    parser.add_argument("--out", type=Path, default=Path("results/bm25-backend.json"))
    parser.add_argument("--step", choices=("build", "query"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step = build_step if args.step == "build" else query_step
        print(json.dumps(step(args.work, args.dataset, args.synthetic)))
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bm25-backend-") as tmp:
        build = in_process("build", args, Path(tmp))
        query = in_process("query", args, Path(tmp))
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "bm25s": md.version("bm25s"), "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "corpus": f"synthetic: {args.synthetic} passages" if args.synthetic else args.dataset,
              "build": build, **query}
    if args.compare:
        record["compared"] = compare(json.loads(args.compare.read_text()), record)
    show(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


def show(r: dict) -> None:
    b, mib = r["build"], lambda m: f"{m['anon']:.0f} + {m['file']:.0f}"
    print(f"commit {r['git_commit'][:8]}, {r['corpus']}, index files {sum(b['files'].values()) / 2**20:.1f} MiB")
    print("| build s | build peak MiB | load s | RSS after load MiB (anon + file) | after queries | p50 ms | p95 ms "
          "| nDCG@10 | R@100 |")
    print("|---|---|---|---|---|---|---|---|---|")
    m = r.get("metrics", {})
    print(f"| {b['build_s']:.2f} | {b['memory_after_mib']['peak']:.0f} | {r['load_s']:.3f} | "
          f"{mib(r['memory_after_load_mib'])} | {mib(r['memory_after_queries_mib'])} | {r['latency_ms']['p50']:.3f} | "
          f"{r['latency_ms']['p95']:.3f} | {m.get('nDCG@10', float('nan')):.4f} | {m.get('R@100', float('nan')):.4f} |")
    if "compared" in r:
        c = r["compared"]
        print(f"against {c['commit'][:8]}: same top 10 for {c['same_top10']}/{c['queries']} questions, same top 100 "
              f"lists: {c['same_top100']}, largest score difference {c['max_abs_score_diff']:.2e}")


if __name__ == "__main__":
    main()
