"""What makes the cross-encoder generalise? Short fine-tunes that differ in one thing, scored on the dev split.

    python benchmarks/ablations.py                       # every one-budget variant, 100 optimizer steps each
    python benchmarks/ablations.py --steps 200 --only mix --only scifact

Every variant gets the same number of optimizer steps (4 groups a step) with a schedule that ends at that
step, the same seed, and the same base model; only its training groups differ. Each trained model then ranks
the same dev candidates (the held-out part of each data set's train split, never test; hybrid top 20) and is
compared per query with the first variant (paired t-test). Short runs show what helps early on a fixed budget
of CPU, not where each recipe ends up after a full schedule; the shipped model's own dev trajectory is added
for that. Resumable: finished variants are read back from the JSON, a crashed one resumes from its
checkpoint. Prints a table and writes results/ablations.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cache_dir import cache_root
from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.evaluation import evaluate_run
from earlyrank.engine.model_files import CARD
from earlyrank.engine.training import TrainParams, train
from earlyrank.engine.training_data import DevCandidates, Group, labelled_groups, self_supervised_groups, split_dev
from earlyrank.indexes.dense import default_model_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("nDCG@10", "RR@10", "P@1")
GROUPS_PER_STEP = 4  # TrainParams' groups_per_batch x accumulation


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    labelled: tuple[str, ...] = ("scifact",)  # data sets whose train qrels give groups
    unlabelled: tuple[str, ...] = ()  # corpora that give self-supervised (title -> text) groups
    negatives: int = 7
    random_negatives: int = 1
    self_supervised: int = 800  # groups per unlabelled corpus (fewer if it has fewer titled documents)
    step_factor: int = 1


VARIANTS = (
    Variant("scifact", "SciFact labels; 6 hard + 1 random negative per positive (the reference)"),
    Variant("mix", "SciFact + XQuAD labels", labelled=("scifact", "xquad-en")),
    Variant("self-only", "no labels: self-supervised groups from both corpora",
            labelled=(), unlabelled=("scifact", "xquad-en")),
    Variant("scifact+self", "SciFact labels + 800 self-supervised SciFact groups", unlabelled=("scifact",)),
    Variant("random-negatives", "SciFact labels; 7 random negatives, none mined", random_negatives=7),
    Variant("fewer-negatives", "SciFact labels; 2 hard + 1 random negative", negatives=3),
    Variant("mix-2x", "SciFact + XQuAD labels, twice the steps", labelled=("scifact", "xquad-en"), step_factor=2),
)


def build_groups(variant: Variant, data: dict, seed: int) -> list[Group]:
    """The variant's training groups; the dev part of every train split is always held out."""
    rng = random.Random(seed)
    groups: list[Group] = []
    for name in variant.labelled:
        dataset, index, train_queries, _ = data[name]
        groups += labelled_groups(dataset, index, train_queries, dataset.split("train")[1],
                                  negatives=variant.negatives, random_negatives=variant.random_negatives,
                                  depth=30, rng=rng)
    for name in variant.unlabelled:
        _, index, _, dev_docs = data[name]
        groups += self_supervised_groups(index, variant.self_supervised, negatives=variant.negatives, depth=30,
                                         rng=rng, exclude=dev_docs)
    rng.shuffle(groups)
    return groups


def dev_sets(data: dict, depth: int) -> dict[str, DevCandidates]:
    """Each data set's held-out train queries with their hybrid top `depth` (the recall order is kept)."""
    sets = {}
    for name, (dataset, index, _, _) in data.items():
        queries, qrels = dataset.split("train")
        dev = DevCandidates()
        retriever = index.retriever("hybrid")
        for query in split_dev(queries, qrels, 100, 13)[1]:
            hits = retriever.search(query.text, depth)
            dev.items.append((query.id, query.text, [(h.doc_id, index.doc(h.doc_id).full_text) for h in hits]))
            dev.qrels[query.id] = qrels[query.id]
        sets[name] = dev
    return sets


def per_query(dev: DevCandidates, scores: list[np.ndarray]) -> dict[str, dict[str, float]]:
    run = {qid: {doc_id: float(s) for (doc_id, _), s in zip(cands, sc, strict=True)}
           for (qid, _, cands), sc in zip(dev.items, scores, strict=True)}
    return evaluate_run(dev.qrels, run, MEASURES, per_query=True)


def score_dev(model_dir: Path, devs: dict[str, DevCandidates]) -> dict:
    from earlyrank.engine.cross_encoder import CrossEncoder

    scorer = CrossEncoder.load(model_dir, max_length=192)
    return {name: per_query(dev, [scorer.logits([text] * len(c), [t for _, t in c]) for _, text, c in dev.items])
            for name, dev in devs.items()}


def recall_order(devs: dict[str, DevCandidates]) -> dict:
    return {name: per_query(dev, [-np.arange(len(c), dtype=float) for _, _, c in dev.items])
            for name, dev in devs.items()}


def summary(values: dict, reference: dict | None) -> dict:
    """Mean of each measure per data set, and nDCG@10's paired t-test against the reference variant."""
    from scipy.stats import ttest_rel

    out = {}
    for name, measures in values.items():
        row = {m: float(np.mean(list(v.values()))) for m, v in measures.items()}
        if reference is not None:
            qids = sorted(measures["nDCG@10"])
            x = np.array([reference[name]["nDCG@10"][q] for q in qids])
            y = np.array([measures["nDCG@10"][q] for q in qids])
            row["vs_reference"] = float((y - x).mean())
            row["p_value"] = 1.0 if np.allclose(x, y) else float(ttest_rel(y, x).pvalue)
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per variant (x its step factor)")
    parser.add_argument("--only", action="append", default=[], help="run only these variants (repeatable)")
    parser.add_argument("--depth", type=int, default=20, help="dev candidates per question")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "ablations.json")
    parser.add_argument("--shipped", type=Path, default=ROOT / "engine" / "models" / "earlyrank-minilm-ce")
    args = parser.parse_args()
    unknown = set(args.only) - {v.name for v in VARIANTS}
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; choose from {[v.name for v in VARIANTS]}")

    data = {}
    for name in ("scifact", "xquad-en"):
        dataset = load_dataset(SHARED / name)
        queries, qrels = dataset.split("train")
        train_queries, dev_queries = split_dev(queries, qrels, 100, args.seed)
        dev_docs = frozenset(d for q in dev_queries for d in qrels[q.id])  # no dev answer as a self-supervised group
        data[name] = (dataset, dataset_index(dataset), train_queries, dev_docs)
    devs = dev_sets(data, args.depth)

    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if record.get("steps") != args.steps or record.get("depth") != args.depth:
        record = {"steps": args.steps, "depth": args.depth, "variants": {}}
    record.update({"benchmark": "ablations", "git_commit": git_commit(), "machine": machine(), "seed": args.seed,
                   "dev_queries": {n: len(d.items) for n, d in devs.items()},
                   "recall": summary(recall_order(devs), None)})
    work = cache_root() / "ablations"
    reference = None
    for variant in VARIANTS:
        done = record["variants"].get(variant.name)
        wanted = variant.name in args.only if args.only else variant.step_factor == 1
        if done is None and not wanted:
            continue
        out = work / variant.name
        if done is None:
            groups = build_groups(variant, data, args.seed)
            steps = args.steps * variant.step_factor
            params = TrainParams(negatives=variant.negatives, random_negatives=variant.random_negatives,
                                 epochs=(steps * GROUPS_PER_STEP + 0.5) / len(groups), eval_every=steps,
                                 seed=args.seed, base_model=str(default_model_path()))
            print(f"{variant.name}: {len(groups)} groups, {steps} steps", flush=True)
            started = time.time()
            card = train(groups, DevCandidates(), out, params)
            shutil.rmtree(out.parent / f".{out.name}.checkpoint", ignore_errors=True)
            done = {"what": variant.what, "groups": len(groups), "groups_by_source": card["groups_by_source"],
                    "steps": card["steps"], "train_minutes": (time.time() - started) / 60,
                    "per_query": score_dev(out, devs)}
        if variant is VARIANTS[0]:
            reference = done["per_query"]
        done["dev"] = summary(done["per_query"], reference)
        record["variants"][variant.name] = done
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))  # after every variant: nothing lost on a crash

    if args.shipped.is_dir():
        card = json.loads((args.shipped / CARD).read_text())
        stages = []  # first stage first; a second stage's card keeps the first's as "previous_stage"
        while card:
            stages.insert(0, {"steps": card["steps"], "minutes": card["history"][-1]["minutes"],
                              "groups_by_source": card["groups_by_source"], "history": card["history"]})
            card = card.get("previous_stage")
        record["shipped"] = {"stages": stages, "dev": summary(score_dev(args.shipped, devs), reference)}
    args.out.write_text(json.dumps(record, indent=2))
    print(markdown_table(record))


def markdown_table(record: dict) -> str:
    lines = [f"Dev split (held-out train queries: SciFact {record['dev_queries']['scifact']}, XQuAD "
             f"{record['dev_queries']['xquad-en']}; hybrid top {record['depth']}), {record['steps']} optimizer steps "
             f"of 4 groups each unless noted. Δ (p): nDCG@10 minus the `scifact` variant's, paired t-test "
             "over dev queries.",
             "",
             "| variant | groups | steps | train min | SciFact nDCG@10 | Δ (p) | XQuAD nDCG@10 | Δ (p) | XQuAD P@1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    recall = record["recall"]
    lines.append(f"| hybrid recall order | – | – | – | {recall['scifact']['nDCG@10']:.4f} | – | "
                 f"{recall['xquad-en']['nDCG@10']:.4f} | – | {recall['xquad-en']['P@1']:.3f} |")
    rows = [(name, v) for name, v in record["variants"].items()]
    if "shipped" in record:
        stages = record["shipped"]["stages"]
        rows.append((f"shipped model ({len(stages)} stage{'s' * (len(stages) > 1)}: "
                     + "; then ".join(" + ".join(st["groups_by_source"]) for st in stages) + ")",
                     {"groups": " + ".join(str(sum(st["groups_by_source"].values())) for st in stages),
                      "steps": " + ".join(str(st["steps"]) for st in stages),
                      "train_minutes": sum(st["minutes"] for st in stages), "dev": record["shipped"]["dev"]}))
    for name, v in rows:
        s, x = v["dev"]["scifact"], v["dev"]["xquad-en"]
        delta = (f"{s['vs_reference']:+.4f} ({s['p_value']:.2f})" if "vs_reference" in s else "–")
        xdelta = (f"{x['vs_reference']:+.4f} ({x['p_value']:.2f})" if "vs_reference" in x else "–")
        lines.append(f"| {name} | {v['groups']} | {v['steps']} | {v['train_minutes']:.1f} | {s['nDCG@10']:.4f} | "
                     f"{delta} | {x['nDCG@10']:.4f} | {xdelta} | {x['P@1']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
