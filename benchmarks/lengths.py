"""How many tokens should a (question, passage) pair keep? Dev-split quality and cost per truncation length.

    python benchmarks/lengths.py                          # 192 256 320 384 on SciFact and XQuAD dev
    python benchmarks/lengths.py --choose                 # ... and store the choice with the model
    python benchmarks/lengths.py --lengths 256 256x2 256x4  # 256 tokens, then up to 2 or 4 passage windows
    python benchmarks/lengths.py --model M --against other.json  # ... and M against another model's record

The model ranks each data set's dev queries (the held-out part of train its training card names; never test)
over their hybrid top 30 at every length. ``NxW`` reads a passage longer than N tokens in up to W windows of
N tokens and keeps the best window's logit (MaxP; `CrossEncoder.window_ids`). With --choose, the cheapest
setting (fewest windows, then shortest length) whose nDCG@10 over all dev questions is within --tolerance of
the best is written to the model's inference.json, which
`CrossEncoder.load` reads (calibration and operating point must then be refitted at that length:
`earlyrank calibrate`, `earlyrank tune`). Scores are cached per length. Prints a table and writes
results/lengths.json. With --against (another model's lengths.json on the same dev split), every setting both
records hold is compared per data set: the mean nDCG@10 difference and its paired t-test p.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.evaluation import evaluate_run, paired_test
from earlyrank.engine.model_files import DEFAULT_MODEL, INFERENCE
from earlyrank.engine.tuning import scored_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("nDCG@10", "RR@10", "P@1")


def parse_setting(text: str) -> tuple[int, int]:
    """"256" -> (256, 1); "256x4" -> (256, 4)."""
    length, _, windows = text.partition("x")
    try:
        parsed = int(length), int(windows or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TOKENS or TOKENSxWINDOWS, e.g. 256 or 256x4") from None
    if parsed[0] < 16 or parsed[1] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need at least 16 tokens and 1 window")
    return parsed


def setting_name(length: int, windows: int) -> str:
    return str(length) if windows == 1 else f"{length}x{windows}"


def measure(model: Path, setting: tuple[int, int], datasets: list[str], depth: int) -> dict:
    length, windows = setting
    scorer = CrossEncoder.load(model, max_length=length, windows=windows)
    rows = {}
    for name in datasets:
        started = time.time()
        dev = scored_split(SHARED / name, "dev", scorer, model, depth=depth, progress=False)
        run = {s.query_id: {h.doc_id: float(x) for h, x in zip(s.candidates, s.logits, strict=True)}
               for s in dev.scored}
        values = evaluate_run(dev.qrels, run, MEASURES, per_query=True)
        pairs = sum(len(s.candidates) for s in dev.scored)
        scoring = sum(s.seconds for s in dev.scored)
        rows[name] = {**{m: float(np.mean(list(v.values()))) for m, v in values.items()},
                      "per_query_ndcg": values["nDCG@10"], "pairs": pairs, "windows": windows,
                      "pairs_per_second": pairs / scoring if scoring else None,
                      "wall_seconds": time.time() - started}
    return rows


def recall_only(model: Path, datasets: list[str], depth: int) -> dict:
    scorer = CrossEncoder.load(model)
    rows = {}
    for name in datasets:
        dev = scored_split(SHARED / name, "dev", scorer, model, depth=depth, progress=False)
        run = {s.query_id: {h.doc_id: -float(h.rank) for h in s.candidates} for s in dev.scored}
        rows[name] = evaluate_run(dev.qrels, run, MEASURES)
    return rows


def pooled_ndcg(rows: dict) -> float:
    values = [v for r in rows.values() for v in r["per_query_ndcg"].values()]
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=parse_setting, nargs="+",
                        default=[(n, 1) for n in (192, 256, 320, 384)] + [(n, w) for n in (192, 256) for w in (2, 4)],
                        help="TOKENS or TOKENSxWINDOWS settings to compare (default: the README's table)")
    parser.add_argument("--datasets", nargs="+", default=["scifact", "xquad-en"])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--choose", action="store_true", help="write the chosen length to MODEL/inference.json")
    parser.add_argument("--tolerance", type=float, default=0.005, help="nDCG@10 a shorter length may give up")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "lengths.json")
    parser.add_argument("--against", type=Path, help="another model's lengths.json to compare with, setting by "
                                                     "setting (same dev split)")
    args = parser.parse_args()
    against = json.loads(args.against.read_text()) if args.against else None

    by_length = {}
    for setting in args.lengths:
        name = setting_name(*setting)
        by_length[name] = measure(args.model, setting, args.datasets, args.depth)
        row = by_length[name]
        print(f"{name:>6} tokens: " + "; ".join(
            f"{n} nDCG@10 {r['nDCG@10']:.4f} P@1 {r['P@1']:.3f} {r['pairs_per_second'] or 0:.1f} pairs/s"
            for n, r in row.items()), flush=True)
    pooled = {name: pooled_ndcg(rows) for name, rows in by_length.items()}
    best = max(pooled.values())
    chosen = min((name for name, v in pooled.items() if v >= best - args.tolerance),
                 key=lambda name: parse_setting(name)[::-1])
    record = {"benchmark": "lengths", "git_commit": git_commit(), "machine": machine(),
              "model": str(args.model), "depth": args.depth, "tolerance": args.tolerance,
              "recall": recall_only(args.model, args.datasets, args.depth),
              "lengths": by_length, "pooled_ndcg@10": pooled, "chosen": chosen}
    if against is not None:
        record["against"] = {"model": against["model"], "by_setting": compare(against, record)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(markdown_table(record))
    if against is not None:
        for name, rows in record["against"]["by_setting"].items():
            print(f"{name:>6} vs {against['model']}: " + "; ".join(
                f"{n} nDCG@10 {r['mean_diff']:+.4f} (p {r['p_value']:.3f})" for n, r in rows.items()))
    if args.choose:
        length, windows = parse_setting(chosen)
        (args.model / INFERENCE).write_text(json.dumps(
            {"max_length": length, "windows": windows, "chosen_by": "benchmarks/lengths.py --choose",
             "rule": f"fewest windows, then shortest length, within {args.tolerance} of the best dev nDCG@10 "
                     f"(all dev questions)",
             "pooled_dev_ndcg@10": record["pooled_ndcg@10"]}, indent=2) + "\n")
        print(f"wrote {args.model / INFERENCE}: max_length {length}, windows {windows}; "
              f"now rerun earlyrank calibrate and tune")


def compare(reference: dict, record: dict) -> dict:
    """Per setting both records hold and per data set: record's per-query nDCG@10 against reference's."""
    out = {}
    for name, rows in record["lengths"].items():
        if name in reference["lengths"]:
            out[name] = {n: paired_test(reference["lengths"][name][n]["per_query_ndcg"], r["per_query_ndcg"])
                         for n, r in rows.items() if n in reference["lengths"][name]}
    return out


def markdown_table(record: dict) -> str:
    names = list(record["recall"])
    head = " | ".join(f"{n} nDCG@10 | {n} P@1 | {n} pairs/s" for n in names)
    lines = [f"| tokens | {head} | all dev nDCG@10 |", "|---" * (2 + 3 * len(names)) + "|"]
    recall = " | ".join(f"{record['recall'][n]['nDCG@10']:.4f} | {record['recall'][n]['P@1']:.3f} | –"
                        for n in names)
    lines.append(f"| hybrid recall order | {recall} | – |")
    for length, rows in record["lengths"].items():
        cells = " | ".join(f"{rows[n]['nDCG@10']:.4f} | {rows[n]['P@1']:.3f} | {rows[n]['pairs_per_second']:.1f}"
                           for n in names)
        mark = " (chosen)" if length == record["chosen"] else ""
        lines.append(f"| {length}{mark} | {cells} | {record['pooled_ndcg@10'][length]:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
