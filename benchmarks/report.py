"""Turn benchmark JSON records into the tables of docs/benchmarks.md.

    python benchmarks/report.py results/suite.json results/scifact-test.json results/xquad-en-test.json

Rewrites the text between `<!-- bench:start -->` and `<!-- bench:end -->` with one table per data set (the
headline rows; every row is in the JSON and the per-run markdown file), and, from a suite record
(`earlyrank bench --suite`), the text between `<!-- suite:start -->` and `<!-- suite:end -->`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from earlyrank.engine.bench_tables import (
    COLUMNS,
    SIGNIFICANCE,
    markdown_header,
    markdown_row,
    row_cells,
    scorer_line,
    significance_cell,
)
from earlyrank.engine.suite import suite_table

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SUITE_START, SUITE_END = "<!-- suite:start -->", "<!-- suite:end -->"
HEADLINE = ("recall: bm25", "recall: dense", "recall: hybrid", "full rerank top-20", "full rerank top-50",
            "full rerank top-100", "operating point (chosen on dev)", "published rule, best on dev",
            "residual risk (ours), best on dev", "full rerank, shallowest cap within the loss on dev")


def table(record: dict) -> str:
    rows = [r for r in record["rows"] if r["config"] in HEADLINE or r["config"].startswith("full rerank")
            or r["config"].startswith("recall: rank-bm25")]
    peer = record.get("peer_cross_encoder", {})
    model = record.get("model", {})
    backend, length, windows = model.get("backend", "torch-fp32"), model.get("max_length"), model.get("windows", 1)
    setting = f"{length} tokens" + (f" x {windows} windows" if windows > 1 else "")
    lines = [f"**{record['dataset']} {record['split']}, {backend}, {setting}** ({record['queries']} queries, "
             f"hybrid top-{record['depth']} candidates, blend {record['blend']}, {record['machine']['cores']} cores, "
             f"commit `{record['git_commit'][:8]}`; command: `earlyrank bench "
             f"--data ../shared/datasets/{record['dataset']} --depth {record['depth']} --backend {backend} "
             f"--max-length {length} --windows {windows}`)", "",
             markdown_header([*COLUMNS, SIGNIFICANCE])]
    for r in rows:
        lines.append(markdown_row([*row_cells(r, latency=".0f"), significance_cell(r)]))
    lines.append("")
    lines.append(scorer_line(record))
    if peer:
        lines.append(f"Peer on the same weights and pairs: sentence-transformers CrossEncoder "
                     f"{peer['sentence_transformers_pairs_per_s']:.1f} pairs/s vs ours {peer['ours_pairs_per_s']:.1f} "
                     f"pairs/s; largest logit difference {peer['max_abs_diff']:.2e}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"),
                        help="the markdown file whose marked sections are rewritten")
    args = parser.parse_args()
    records = [json.loads(p.read_text()) for p in args.records]
    text = args.doc.read_text()
    section = "\n".join(table(r) for r in records if "rows" in r and "split" in r)
    if section:
        text = replace_between(text, START, END, section, args.doc)
    suites = [r for r in records if "sets" in r]
    for suite in suites:
        text = replace_between(text, SUITE_START, SUITE_END, suite_caption(suite) + suite_table(suite), args.doc)
    args.doc.write_text(text)
    print(section + "".join(suite_table(s) for s in suites))


def suite_caption(record: dict) -> str:
    return (f"Command: `{record['command']}` (commit `{record['git_commit'][:8]}`, {record['machine']['cores']} "
            f"cores, {record['seconds'] / 60:.0f} min, peak RSS {record['peak_rss_mb']:.0f} MB).\n\n")


def replace_between(text: str, start: str, end: str, section: str, path: Path) -> str:
    if start not in text or end not in text:
        raise SystemExit(f"{path}: no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    return head + start + "\n" + section + end + rest.split(end, 1)[1]


if __name__ == "__main__":
    main()
