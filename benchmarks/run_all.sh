#!/usr/bin/env bash
# Reproduce the README's benchmark section from scratch: recall, rerank/early stopping on SciFact and XQuAD
# test (operating points chosen on dev by `earlyrank tune`), inference speed; then rewrite the README tables.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
earlyrank bench --data ../shared/datasets/scifact --depth 100 --out results
earlyrank bench --data ../shared/datasets/xquad-en --depth 30 --out results
python benchmarks/recall.py
python benchmarks/report.py results/scifact-test.json results/xquad-en-test.json --readme README.md
