"""Markdown tables of a benchmark record, shared by `earlyrank bench` and benchmarks/report.py."""

from __future__ import annotations

COLUMNS = ("configuration", "nDCG@10", "RR@10", "R@100", "P@1", "MAP@3", "pairs/query", "share scored",
           "passes/query", "p50 ms", "p95 ms")


def row_cells(row: dict, latency: str = ".1f") -> list[str]:
    """One bench row as the table cells under `COLUMNS`, shared by the per-run tables and the README's."""
    lat = row.get("latency_ms", {})
    return [row["config"], *(f"{row[m]:.4f}" for m in ("nDCG@10", "RR@10", "R@100", "P@1", "AP@3")),
            f"{row['pairs_mean']:.1f}", f"{row.get('fraction_scored', 0.0):.1%}",
            f"{row.get('passes_mean', row['pairs_mean']):.1f}", f"{lat.get('p50', 0):{latency}}",
            f"{lat.get('p95', 0):{latency}}"]


SIGNIFICANCE = "vs full (paired t-test p)"


def significance_cell(row: dict) -> str:
    """A row's paired t-test against the deepest full rerank, as a cell: ``-0.0058 (p=0.38)``; "" for none."""
    sig = row.get("significance_vs_full")
    return f"{sig['mean_diff']:+.4f} (p={sig['p_value']:.2f})" if sig else ""


def scorer_line(record: dict) -> str:
    """The cross-encoder's speed while scoring the split, its forward passes a pair and the ECE of its calibrated
    confidence on the split's candidates, as one sentence."""
    return (f"Cross-encoder: {1 / record['seconds_per_pair']:.1f} pairs/s while scoring this split"
            + (f", {record['passes_per_pair']:.2f} forward passes a pair" if "passes_per_pair" in record else "")
            + f"; ECE (15 bins) of its candidates {record['calibration_on_split']['ece_15']:.4f}.")


def missing_note(count: int) -> str:
    """The sentence saying that `count` relevant judgements name documents the corpus lacks, and how they count."""
    return (f"{count} relevant judgement{'s name' if count != 1 else ' names'} a document the corpus lacks; counted "
            f"as relevant and never retrieved, as trec_eval counts them.")


def markdown_row(cells: list[str]) -> str:
    """`cells` as one Markdown table row: ``| a | b |``."""
    return "| " + " | ".join(cells) + " |"


def markdown_header(columns: list[str]) -> str:
    """A table's header row and the rule under it."""
    return markdown_row(columns) + "\n|" + "---|" * len(columns)


def markdown_table(record: dict) -> str:
    """A benchmark record as Markdown: a heading naming the data set, split, query count, command and commit; one
    row per configuration under `COLUMNS` with its paired test against the full rerank; then lines on relevant
    judgements naming documents the corpus lacks (if any), on the operating points' origin, on the token cap and
    forward passes a scored pair (when the model reads long passages in windows), and on the scorer's speed and
    ECE."""
    level = record.get("relevance_level", 1)
    graded = f"; RR, R, P and AP count grade >= {level} as relevant" if level > 1 else ""
    made = (f"Command: `{record['command']}` (commit `{str(record.get('git_commit', ''))[:8]}`, "
            f"{record.get('machine', {}).get('cores', '?')} cores).\n\n") if record.get("command") else ""
    head = (f"### {record['dataset']} ({record['split']}, {record['queries']} queries{graded})\n\n" + made
            + markdown_header([*COLUMNS, SIGNIFICANCE]) + "\n")
    lines = [markdown_row([*row_cells(r), significance_cell(r)]) for r in record["rows"]]
    model = record.get("model", {})
    missing = record.get("relevant_missing_from_corpus", 0)
    note = f"\n{missing_note(missing)}\n" if missing else ""
    windows = (f"\nPairs keep {model['max_length']} tokens; a passage longer than that is read in up to "
               f"{model['windows']} windows, {record['passes_per_pair']:.2f} forward passes a scored pair on "
               f"average.\n") if "windows" in model and "passes_per_pair" in record else ""
    tuned = ("\nRows \"... on dev\" and the operating point replay settings stored with the model, chosen by "
             "`earlyrank tune` on the dev questions of the data sets it was tuned on, not on this one.\n"
             ) if record.get("operating_point_source", "").startswith("the model's") else ""
    scoring = f"\n{scorer_line(record)}\n" if "seconds_per_pair" in record and "calibration_on_split" in record else ""
    foot = note + tuned + windows + scoring
    return head + "\n".join(lines) + "\n" + foot
