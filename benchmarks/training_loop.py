"""Seconds per optimizer step, and a short run's loss and dev nDCG@10, of `earlyrank train`'s loop
(sentence-transformers' CrossEncoderTrainer) against the hand-written loop it replaced (engine/training.py at
--old-commit): the same groups, dev candidates, settings and seed, one after the other in one process, alternating,
on this machine's CPU.

A step's time is the gap between two optimizer steps (a global torch hook), so model loading, the first step's
warm-up and evaluation are left out; it is taken in wall-clock seconds and in this process's CPU seconds, which
other jobs on a shared machine disturb less. Issue 22's rule: the trainer is adopted if its median step takes at most
1.25x the old loop's (here in both measures) and its short run ends within 0.01 of the old loop's dev nDCG@10,
read with dropout off (see `summarize`).

    python benchmarks/training_loop.py [--data ../shared/datasets/scifact] [--out results/training_loop.json]
    python benchmarks/training_loop.py --summary   # the table and verdict of a record again
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.training import TrainParams, train
from earlyrank.engine.training_data import DevCandidates, build_training_set
from earlyrank.indexes.dense import default_model_path

RULE_RATIO, RULE_NDCG = 1.25, 0.01


def old_loop(commit: str):
    """engine/training.py as it was at `commit`, imported as a module of its own."""
    source = subprocess.run(["git", "show", f"{commit}:engine/training.py"], capture_output=True, text=True,
                            check=True).stdout
    path = Path(tempfile.mkdtemp()) / "training_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("training_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(loop: str, module, groups, dev: DevCandidates, settings: dict, stamps: list[tuple[float, float]]) -> dict:
    """One training run in a fresh folder; the step gaps (wall and CPU seconds) and the card's history."""
    stamps.clear()
    params = (TrainParams if loop == "trainer" else module.TrainParams)(**settings)
    with tempfile.TemporaryDirectory() as folder:
        card = (train if loop == "trainer" else module.train)(groups, dev, Path(folder) / "model", params, False)
    gaps = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False)]
    history = [{k: h[k] for k in ("step", "loss", "dev_ndcg@10")} for h in card["history"]]
    # The old loop logs the mean loss of the last 200 micro-batches, the trainer the mean since its previous log:
    # both give the mean over the whole run (evaluations at equal intervals, under 200 micro-batches in all).
    run_loss = history[-1]["loss"] if loop == "old" else statistics.fmean(h["loss"] for h in history)
    return {"loop": loop, "steps": card["steps"], "step_seconds": gaps, "step_cpu_seconds": cpu, "history": history,
            "run_loss": run_loss}


def without_dropout(model: Path, folder: Path) -> Path:
    """A copy of `model` whose config turns dropout off: the one random draw the two loops cannot share (each seeds
    torch at its own point), so with it off the same seed must give the same run."""
    copy = folder / model.name
    shutil.copytree(model, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def summarize(path: Path) -> None:
    """Print the table and the verdict of the record at `path` and write them into it. The rule's dev check is
    read on the runs with dropout off, where the same seed means the same draws in both loops; with dropout on,
    each loop seeds torch at its own point, so the two runs differ by their dropout masks alone (also shown)."""
    record = json.loads(path.read_text())
    loops = ("old", "trainer")
    median = {loop: statistics.median(s for r in record["timed"] if r["loop"] == loop for s in r["step_seconds"])
              for loop in loops}
    cpu = {loop: statistics.median(s for r in record["timed"] if r["loop"] == loop for s in r["step_cpu_seconds"])
           for loop in loops}
    final = {name: {r["loop"]: r["history"][-1]["dev_ndcg@10"] for r in record[name]}
             for name in ("parity", "no_dropout")}
    gap = {name: final[name]["trainer"] - final[name]["old"] for name in final}
    ratio, cpu_ratio = median["trainer"] / median["old"], cpu["trainer"] / cpu["old"]
    adopt = max(ratio, cpu_ratio) <= RULE_RATIO and abs(gap["no_dropout"]) <= RULE_NDCG
    print("| loop | median s/step (wall) | (CPU) | dropout on: mean loss, dev nDCG@10 | dropout off: mean loss, "
          "dev nDCG@10 |\n|---|---|---|---|---|")
    for i, loop in enumerate(loops):
        on, off = record["parity"][i], record["no_dropout"][i]
        print(f"| {loop} | {median[loop]:.2f} | {cpu[loop]:.2f} | {on['run_loss']:.4f}, {final['parity'][loop]:.4f} "
              f"| {off['run_loss']:.4f}, {final['no_dropout'][loop]:.4f} |")
    print(f"trainer/old step time {ratio:.2f} wall, {cpu_ratio:.2f} CPU (rule <= {RULE_RATIO}); dev nDCG@10 "
          f"difference {gap['no_dropout']:+.4f} with dropout off (rule within {RULE_NDCG}), {gap['parity']:+.4f} "
          f"with it on; adopt: {adopt}")
    record.pop("dropout_noise", None)  # an earlier version's run that did not move the draws: a copy of "parity"
    record.update(median_step_seconds=median, median_step_cpu_seconds=cpu, ratio=ratio, cpu_ratio=cpu_ratio,
                  final_dev_ndcg=final, adopt=adopt)
    path.write_text(json.dumps(record, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--old-commit", default="8932631")
    parser.add_argument("--groups", type=int, default=200, help="training groups used (the first of the shuffle)")
    parser.add_argument("--timed-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parity-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("results/training_loop.json"))
    parser.add_argument("--summary", action="store_true", help="only summarize the record at --out again")
    args = parser.parse_args()
    if args.summary:
        summarize(args.out)
        return

    from torch.optim.optimizer import register_optimizer_step_post_hook

    load_before = os.getloadavg()
    stamps: list[tuple[float, float]] = []
    register_optimizer_step_post_hook(lambda *_: stamps.append((time.perf_counter(), time.process_time())))
    old = old_loop(args.old_commit)
    base = {"base_model": str(default_model_path()), "seed": args.seed}
    defaults = TrainParams(**base)
    dataset = load_dataset(args.data)
    groups, dev = build_training_set(
        [(dataset, dataset_index(dataset, False))], dev_queries=defaults.dev_queries, dev_depth=defaults.dev_depth,
        negatives=defaults.negatives, random_negatives=defaults.random_negatives,
        mining_depth=defaults.mining_depth, self_supervised=0, seed=args.seed, dev_split=defaults.dev_split)
    groups = groups[:args.groups]
    few = DevCandidates(dev.items[:4], {q: dev.qrels[q] for q, _, _ in dev.items[:4]})
    timed = []
    for _ in range(args.repeats):
        for loop in ("old", "trainer"):
            result = run(loop, old, groups, few, {**base, "max_steps": args.timed_steps, "eval_every": 10**6}, stamps)
            timed.append(result)
            print(f"{loop}: {' '.join(f'{s:.1f}' for s in result['step_seconds'])} s, CPU "
                  f"{' '.join(f'{s:.1f}' for s in result['step_cpu_seconds'])} s", flush=True)
    short = {**base, "max_steps": args.parity_steps, "eval_every": args.parity_steps}
    parity = [run(loop, old, groups, dev, short, stamps) for loop in ("old", "trainer")]
    quiet = without_dropout(default_model_path(), Path(tempfile.mkdtemp()))
    no_dropout = [run(loop, old, groups, dev, {**short, "base_model": str(quiet)}, stamps)
                  for loop in ("old", "trainer")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": " ".join(sys.argv), "git_commit": git_commit(), "old_commit": args.old_commit,
        "machine": machine(), "load_average": {"start": load_before, "end": os.getloadavg()},
        "data": str(args.data), "groups": len(groups), "dev_queries": len(dev.items),
        "settings": {**base, "timed_steps": args.timed_steps, "parity_steps": args.parity_steps,
                     "repeats": args.repeats, **{k: getattr(defaults, k) for k in (
                         "max_length", "negatives", "groups_per_batch", "accumulation", "lr_body", "lr_head")}},
        "timed": timed, "parity": parity, "no_dropout": no_dropout}, indent=1))
    summarize(args.out)


if __name__ == "__main__":
    main()
