"""Incremental index updates: passages/s to build, seconds to add 100 passages to a large index and to delete
them, and each step's peak memory.

    python benchmarks/index_updates.py [--passages 100000] [--dense-passages 5000] [--batch 100]

Corpus: synthetic passages, each 2 to 4 sentences drawn at random (seed 0) from the SciFact and TREC DL 2019
passages under ../shared/datasets (about 70 words a passage, as MS MARCO's); the batch added is `--batch` more
passages made the same way. Two indexes, each with the BM25 and the dense part (flat):

- ``real``: `--dense-passages` passages, every vector computed by the bundled MiniLM on this machine's CPU;
- ``large``: `--passages` passages, BM25 built from their texts, but the stored vectors of the passages built
  into it are random unit vectors, since encoding 100,000 passages with MiniLM on two busy cores takes hours.
  The added passages are encoded by the real MiniLM, and an update's other work (loading and verifying the
  index, reusing the stored vectors, recomputing every BM25 weight, writing and swapping the new version)
  does not depend on what the stored vectors are.

Each step runs in its own process, so its peak RSS is its own; a step that encodes loads MiniLM before it is
timed, as a running server has (``rss_before_bytes`` is the process's size then, torch and the model included).
Prints a table and writes results/index_updates.json with the commit, machine, command and the machine's load
average (a training job may share the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.indexes.corpus import load_corpus
from earlyrank.indexes.dense import encode
from earlyrank.indexes.store import build_index, write_docs
from earlyrank.indexes.types import Document
from earlyrank.indexes.update import update_index

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SOURCES = ("scifact", "trec-dl-2019-passage")


def synthetic_corpus(n: int, prefix: str, seed: int) -> list[Document]:
    """`n` passages of 2 to 4 sentences drawn at random from the source corpora, ids ``{prefix}{i}``."""
    sentences = [s for name in SOURCES for d in load_corpus(SHARED / name / "corpus.jsonl")
                 for s in re.split(r"(?<=[.!?])\s+", d.text) if len(s.split()) >= 5]
    rng = random.Random(seed)
    return [Document(f"{prefix}{i}", " ".join(rng.sample(sentences, rng.randint(2, 4)))) for i in range(n)]


class TimedEncoder:
    """The real encoder, counting the seconds spent in it."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, texts, params, model_path=None, progress=False) -> np.ndarray:
        started = time.perf_counter()
        vectors = encode(texts, params, model_path, progress)
        self.seconds += time.perf_counter() - started
        return vectors


def stand_in_vectors(texts, params, model_path=None, progress=False) -> np.ndarray:
    """Random unit vectors of MiniLM's dimension, one per text, in place of encoding the large index's corpus."""
    vectors = np.random.default_rng(0).standard_normal((len(texts), 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run_step(step: str, work: Path, count: int, batch: int) -> dict:
    """One timed step, in this process: build-real, build-large, add-real, add-large, delete-real, delete-large."""
    action, which = step.split("-")
    index = work / which
    encoder = TimedEncoder()
    from earlyrank.indexes.dense import DenseParams

    record: dict = {"step": step, "model_load_seconds": 0.0}
    if step in ("build-real", "add-real", "add-large"):  # the steps that encode: load MiniLM first, as a server has
        warm = time.perf_counter()
        encode(["warm the encoder up"], DenseParams())
        record["model_load_seconds"] = time.perf_counter() - warm
    record["rss_before_bytes"] = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    started = time.perf_counter()
    if action == "build":
        docs = load_corpus(work / "corpus.jsonl")[:count]
        build_index(docs, index, progress=False, encoder=encoder if which == "real" else stand_in_vectors)
        record["passages"] = len(docs)
    elif action == "add":
        result = update_index(index, add=load_corpus(work / "batch.jsonl")[:batch], encoder=encoder)
        record["passages"] = len(result.added)
        record["documents_after"] = len(result.index.docs)
    else:
        result = update_index(index, delete=[d.id for d in load_corpus(work / "batch.jsonl")[:batch]])
        record["passages"] = len(result.deleted)
        record["documents_after"] = len(result.index.docs)
    record["seconds"] = time.perf_counter() - started
    record["encode_seconds"] = encoder.seconds
    record["passages_per_second"] = record["passages"] / record["seconds"]
    record["index_bytes"] = sum(f.stat().st_size for f in index.resolve().iterdir())
    record["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return record


def in_process(step: str, work: Path, count: int, batch: int) -> dict:
    """`run_step` in a fresh Python process, so that its peak RSS is the step's alone."""
    command = [sys.executable, __file__, "--step", step, "--work", str(work), "--count", str(count),
               "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=100_000, help="Size of the large index.")
    parser.add_argument("--dense-passages", type=int, default=5_000, help="Size of the index encoded by MiniLM.")
    parser.add_argument("--batch", type=int, default=100, help="Passages added, then deleted.")
    parser.add_argument("--out", type=Path, default=Path("results/index_updates.json"))
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.work, args.count, args.batch)))
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="index-updates-") as tmp:
        work = Path(tmp)
        write_docs(work / "corpus.jsonl", synthetic_corpus(max(args.passages, args.dense_passages), "s", 0))
        write_docs(work / "batch.jsonl", synthetic_corpus(args.batch, "new", 1))
        steps = []
        for which, count in (("real", args.dense_passages), ("large", args.passages)):
            for action in ("build", "add", "delete"):
                steps.append({"index": which, **in_process(f"{action}-{which}", work, count, args.batch)})
                print(f"done: {action} {which} ({steps[-1]['seconds']:.1f} s)", file=sys.stderr)
    record = {
        "command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "corpus": f"synthetic: 2-4 random sentences (seed 0) from {', '.join(SOURCES)} passages",
        "indexes": {"real": f"{args.dense_passages} passages, every vector encoded by MiniLM",
                    "large": f"{args.passages} passages; BM25 from the texts, stored vectors random unit vectors "
                             f"(not encoded); added passages encoded by MiniLM"},
        "batch": args.batch, "steps": steps,
    }
    print("| index | step | passages | seconds | of which encoding | passages/s | documents after | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for s in steps:
        print(f"| {s['index']} | {s['step'].split('-')[0]} | {s['passages']} | {s['seconds']:.2f} | "
              f"{s['encode_seconds']:.2f} | {s['passages_per_second']:.0f} | "
              f"{s.get('documents_after', s['passages'])} | {s['peak_rss_bytes'] / 2**20:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
