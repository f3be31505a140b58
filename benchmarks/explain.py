"""Explanation benchmark on SciFact: cost and faithfulness of `engine.explain`, and agreement with `lime`.

    python benchmarks/explain.py [--pairs 20] [--samples 150]

For the first N SciFact test claims, the passage judged relevant is explained. Faithfulness: removing the
k = 3 words with the largest positive weights must lower the confidence more than removing 3 random words
(mean of 10 draws); the table reports both drops and their difference. If the `lime` package is installed,
LimeTextExplainer (same number of samples, bag of words) explains the same pairs and the overlap of the two
top-5 word sets is reported. Writes results/explain.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from earlyrank.engine.bench_record import git_commit, machine
from earlyrank.engine.cross_encoder import CrossEncoder
from earlyrank.engine.datasets import load_dataset
from earlyrank.engine.explain import explain, faithfulness
from earlyrank.engine.model_files import DEFAULT_MODEL

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def lime_top_words(scorer, query: str, passage: str, samples: int, features: int) -> tuple[set[str], float]:
    from lime.lime_text import LimeTextExplainer

    def classifier(texts):
        p = scorer.score(query, list(texts)).confidences
        return np.column_stack([1 - p, p])

    started = time.perf_counter()
    explanation = LimeTextExplainer(class_names=["other", "relevant"], bow=True, random_state=0).explain_instance(
        passage, classifier, num_features=features, num_samples=samples)
    words = {w for w, weight in explanation.as_list() if weight != 0}
    return words, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("results/explain.json"))
    args = parser.parse_args()
    scorer = CrossEncoder.load(args.model)
    ds = load_dataset(SHARED / "scifact")
    docs = {d.id: d for d in ds.corpus}
    queries, qrels = ds.split("test")
    try:
        import lime  # noqa: F401

        have_lime = True
    except ImportError:
        have_lime = False
    rows = []
    for query in queries[: args.pairs]:
        passage = docs[next(iter(qrels[query.id]))].full_text
        result = explain(scorer, query.text, passage, num_samples=args.samples, num_features=10, seed=0)
        check = faithfulness(scorer, query.text, passage, result, k=3)
        row = {"query": query.id, "words": len(set(passage.split())), "seconds": result.seconds, "r2": result.r2,
               "confidence": result.confidence, **check}
        if have_lime:
            lime_words, lime_seconds = lime_top_words(scorer, query.text, passage, args.samples, 5)
            ours = {w.word for w in result.weights[:5]}
            row.update({"lime_seconds": lime_seconds, "top5_overlap_with_lime": len(ours & lime_words) / 5})
        rows.append(row)
        print(f"{query.id:>5} {row['seconds']:6.1f} s  R2 {row['r2']:.2f}  top-3 drop {row['top_drop']:+.3f}  "
              f"random-3 drop {row['random_drop']:+.3f}" + (f"  lime overlap {row['top5_overlap_with_lime']:.1f}"
                                                             if have_lime else ""), flush=True)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("query",)}
    summary["margin"] = summary["top_drop"] - summary["random_drop"]
    summary["pairs_where_top_beats_random"] = sum(r["top_drop"] > r["random_drop"] for r in rows) / len(rows)
    print("mean:", json.dumps({k: round(v, 4) for k, v in summary.items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"git_commit": git_commit(), "machine": machine(), "samples": args.samples,
                                    "model": str(args.model), "summary": summary, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
