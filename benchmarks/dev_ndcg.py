"""Dev nDCG@10 of cross-encoders on the dev candidates training selects on: the held-out part of the SciFact and
XQuAD train splits (dev split by query, seed 13, 60 questions a set), hybrid top 20, reranked by the model's
logit alone (192 tokens, one window, torch fp32). Rule 1 of docs/experiments/distillation.md.

    python benchmarks/dev_ndcg.py MODEL_DIR [MODEL_DIR ...] [--out results/dev_ndcg.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.training import dev_ndcg
from earlyrank.engine.training_data import DevCandidates, split_dev

SETS = ("scifact", "xquad-en")


def dev_candidates(root: Path, name: str, seed: int = 13, dev_size: int = 100, used: int = 60) -> DevCandidates:
    """The dev candidates `earlyrank train --dev-split query` builds for data set `name`."""
    dataset = load_dataset(root / name)
    index = dataset_index(dataset, False)
    queries, qrels = dataset.split("train")
    _, dev_part = split_dev(queries, qrels, dev_size, seed, None)
    dev = DevCandidates()
    hybrid = index.retriever("hybrid")
    for query in dev_part[:used]:
        hits = hybrid.search(query.text, 20)
        dev.items.append((query.id, query.text, [(h.doc_id, index.doc(h.doc_id).full_text) for h in hits]))
        dev.qrels[query.id] = qrels[query.id]
    return dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("results/dev_ndcg.json"))
    args = parser.parse_args()
    devs = {name: dev_candidates(args.datasets, name) for name in SETS}
    rows = []
    print("| model | " + " | ".join(SETS) + " | mean |\n|---|" + "---|" * (len(SETS) + 1))
    for model in args.models:
        scorer = CrossEncoder.load(model, max_length=192, windows=1, backend="torch-fp32")
        scores = {name: dev_ndcg(scorer, dev) for name, dev in devs.items()}
        scores["mean"] = sum(scores.values()) / len(SETS)
        rows.append({"model": str(model), **scores})
        print(f"| {model} | " + " | ".join(f"{scores[k]:.4f}" for k in (*SETS, "mean")) + " |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
