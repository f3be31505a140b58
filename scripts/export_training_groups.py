"""Write a distillation training set to one gzipped JSON file, for training on a machine without the engine.

The groups are those `earlyrank train --distill N --distill-weight W --dev-split query` builds (labelled groups of
each data set's train split minus its dev part, with the bi-encoder teacher's scores, plus label-free groups per
corpus), and the dev candidates it selects on. Passage texts are stored once and referenced by number.
scripts/train_on_gpu.py reads the file.

    python scripts/export_training_groups.py --data ../shared/datasets/scifact --distill 8000 \\
        --data ../shared/datasets/xquad-en --distill 1500 --out gpu-run/groups.json.gz

Never give an evaluation-only data set here: its corpus would become training data.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.distillation import add_teacher
from earlyrank.engine.training import TrainParams
from earlyrank.engine.training_data import build_training_set

EVALUATION_ONLY = ("trec-dl", "noveleval")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="a training data set (repeat)")
    parser.add_argument("--distill", type=int, action="append", required=True,
                        help="label-free groups for the --data at the same place (repeat)")
    parser.add_argument("--size", type=int, default=16, help="passages in a label-free group")
    parser.add_argument("--keywords", type=float, default=0.5,
                        help="chance that a sentence question is cut to a keyword query")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.distill) != len(args.data):
        parser.error("give one --distill for each --data")
    if any(tag in d.name for d in args.data for tag in EVALUATION_ONLY):
        parser.error("an evaluation-only data set cannot be training data")
    params = TrainParams(dev_split="query", distill=1, distill_weight=1.0)
    datasets = [(ds, dataset_index(ds, True)) for ds in map(load_dataset, args.data)]
    groups, dev = build_training_set(
        datasets, dev_queries=params.dev_queries, dev_depth=params.dev_depth, negatives=params.negatives,
        random_negatives=params.random_negatives, mining_depth=params.mining_depth, self_supervised=0,
        seed=params.seed, dev_split=params.dev_split)
    groups = add_teacher(groups, [index for _, index in datasets], args.distill, dev_docs=dev.documents(),
                         size=args.size, depth=params.mining_depth, seed=params.seed, keywords=args.keywords)
    passages: dict[str, int] = {}

    def number(text: str) -> int:
        return passages.setdefault(text, len(passages))

    rows = [{"q": g.query, "p": [number(p) for p in (g.positive, *g.negatives)], "t": g.teacher,
             "l": g.labelled, "s": g.source} for g in groups]
    dev_items = [[qid, text, [[doc_id, number(t)] for doc_id, t in candidates]] for qid, text, candidates in dev.items]
    record = {"params": {**asdict(params), "distill": args.distill, "size": args.size, "keywords": args.keywords,
                         "data": [str(d) for d in args.data]},
              "passages": list(passages), "groups": rows, "dev": {"items": dev_items, "qrels": dev.qrels}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8") as f:
        json.dump(record, f)
    sources = Counter(g.source for g in groups)
    print(f"{args.out}: {len(groups)} groups {dict(sources)}, {len(passages)} passages, {len(dev.items)} dev queries")


if __name__ == "__main__":
    main()
