"""Risk against coverage of the answer confidence, on answerable test questions and their unanswerable twins.

    python benchmarks/risk_coverage.py --model MODEL_DIR [--gate FILE] [--depth 30]

The gate is FILE, or the one stored in MODEL_DIR (`earlyrank fit-abstention`). For SciFact and XQuAD test, each
question and its twin (its judged passages removed from the candidates) is answered by the model's stored
stopping rule over the hybrid top-`depth` candidates (cached cross-encoder scores). Reports AURC, accuracy at 80%
and 90% coverage, and what the gate's threshold does (share of answerable questions answered, precision of the
answers), for the gate's answer confidence, the top logit alone (the first gate's confidence, a monotone map of
it) and, as the baseline, the top passage's recall score, with the 90% paired-bootstrap interval of each AURC's
gap to the baseline's (questions resampled with their twins; an interval wholly below 0 is a significant gain).
Prints a table and writes results/risk_coverage.json (with the curves) and results/risk_coverage.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from earlyrank.engine.abstention import AnswerGate
from earlyrank.engine.abstention_fit import at_threshold, aurc_gap_interval, outcomes, risk_coverage
from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.corpora import dataset_index
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.operating_point import load_operating_point
from earlyrank.engine.tuning import scored_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--gate", type=Path, help="an answer gate file (default: the model's answer_gate.json)")
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("results/risk_coverage.json"))
    args = parser.parse_args()
    gate = AnswerGate.read(args.gate) if args.gate else AnswerGate.load(args.model)
    if gate is None:
        raise SystemExit(f"{args.model}: no answer gate; run earlyrank fit-abstention --model {args.model} first")
    scorer = CrossEncoder.load(args.model)
    policy, blend = load_operating_point(args.model, args.depth)
    calibration = scorer.calibration
    record: dict = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
                    "gate": gate.as_dict(), "gate_file": str(args.gate or args.model / "answer_gate.json"),
                    "depth": args.depth, "sets": {}}
    print("| set | confidence | AURC | gap to baseline (90%) | accuracy at 80% coverage | at 90% | answerable answered "
          "| precision |")
    print("|---|---|---|---|---|---|---|---|")
    curves = {}
    for name in ("scifact", "xquad-en"):
        data = scored_split(SHARED / name, "test", scorer, args.model, "hybrid", args.depth, progress=False)
        index = dataset_index(load_dataset(SHARED / name, check_judged=False), progress=False)
        o = outcomes(data.scored, data.qrels, policy, calibration, blend, index)
        confidences = {"answer confidence": gate.confidences(o.gate_input(gate)),
                       "top logit (first gate)": o.top_logit, "recall score (baseline)": o.top_recall}
        rows = {label: risk_coverage(c, o.right) for label, c in confidences.items()}
        for label, c in confidences.items():
            if label != "recall score (baseline)":
                rows[label]["aurc_gap_to_baseline_90"] = aurc_gap_interval(c, o.top_recall, o)
        gated = at_threshold(gate, o)
        record["sets"][name] = {"questions": len(o.right), "answerable": int(o.answerable.sum()),
                                "right_at_full_coverage": float(o.right.mean()), "rows": rows, "threshold": gated}
        for label, r in rows.items():
            gated_cells = (f"{gated['answerable_answered']:.1%} | {gated['precision']:.1%}"
                           if label == "answer confidence" else " | ")
            gap = r.get("aurc_gap_to_baseline_90")
            interval = f"[{gap[0]:+.3f}, {gap[1]:+.3f}]" if gap else ""
            print(f"| {name} | {label} | {r['aurc']:.3f} | {interval} | {r['accuracy_at_80']:.1%} | "
                  f"{r['accuracy_at_90']:.1%} | {gated_cells} |")
            curves[f"{name}: {label}"] = r["curve"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        ax.plot([c for c, _ in curve], [a for _, a in curve], marker=".", label=label)
    ax.set(xlabel="coverage (share of questions answered)", ylabel="accuracy of the answers", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
