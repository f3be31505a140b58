"""The per-run bench table and the README's table print the same cells for a row."""

from __future__ import annotations

from earlyrank.engine.bench_tables import markdown_table
from tests.conftest import load_program

ROW = {"config": "operating point (chosen on dev)", "nDCG@10": 0.73104, "RR@10": 0.70081, "R@100": 0.955,
       "P@1": 0.59, "AP@3": 0.651, "pairs_mean": 5.24, "fraction_scored": 0.0524, "passes_mean": 10.1,
       "latency_ms": {"p50": 312.44, "p95": 1500.6}, "significance_vs_full": {"mean_diff": -0.0059, "p_value": 0.38}}
RECORD = {"dataset": "scifact", "split": "test", "queries": 300, "depth": 100, "blend": 0.1, "rows": [ROW],
          "machine": {"cores": 2}, "git_commit": "0123456789abcdef", "seconds_per_pair": 0.1,
          "passes_per_pair": 1.95, "calibration_on_split": {"ece_15": 0.0063},
          "model": {"backend": "torch-fp32", "max_length": 192, "windows": 2}}


def report_module():
    return load_program("benchmarks/report.py")


def test_both_tables_print_the_same_row():
    run_table = markdown_table(RECORD)
    assert ("| operating point (chosen on dev) | 0.7310 | 0.7008 | 0.9550 | 0.5900 | 0.6510 | 5.2 | 5.2% | 10.1 | "
            "312.4 | 1500.6 |") in run_table
    assert "up to 2 windows, 1.95 forward passes" in run_table
    readme = report_module().table(RECORD)
    assert ("| operating point (chosen on dev) | 0.7310 | 0.7008 | 0.9550 | 0.5900 | 0.6510 | 5.2 | 5.2% | 10.1 | "
            "312 | 1501 | -0.0059 (p=0.38) |") in readme
    assert "192 tokens x 2 windows" in readme and "--windows 2" in readme
    header, rule = readme.splitlines()[2:4]
    assert header.count("|") == rule.count("|")  # the rule spans every column, the p-value's included
