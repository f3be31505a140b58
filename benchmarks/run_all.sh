#!/usr/bin/env bash
# Reproduce the README's benchmark section from scratch: rerank/early stopping on SciFact and XQuAD test
# (operating points chosen on dev by `earlyrank tune`) with the default backend and, for the quality gate,
# torch-fp32; recall; inference speed; load; Ray scaling; then rewrite the README's bench tables.
# About 2.5 hours on 2 cores (the torch-fp32 SciFact rerank alone takes ~40 minutes, the training ablations ~50).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
earlyrank bench --data ../shared/datasets/scifact --depth 100 --out results
earlyrank bench --data ../shared/datasets/xquad-en --depth 30 --out results
earlyrank bench --data ../shared/datasets/scifact --depth 100 --backend torch-fp32 --no-peers --out results
python benchmarks/recall.py
python benchmarks/recall.py --sparse-only --datasets scifact --out results/recall-sparse.json
python benchmarks/recall.py --sparse-only --datasets scifact --k 10 --out results/recall-sparse-k10.json
earlyrank export-onnx
python benchmarks/speed.py
python benchmarks/load.py --seconds 8 --levels 1 8 32 --workers 2
python benchmarks/ray_scaling.py
python benchmarks/explain.py --pairs 15
python benchmarks/lengths.py
python benchmarks/ablations.py --steps 60
python benchmarks/report.py results/scifact-test.json results/scifact-test-torch-fp32.json results/xquad-en-test.json \
  --readme README.md
