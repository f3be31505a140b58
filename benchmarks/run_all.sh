#!/usr/bin/env bash
# Reproduce the README's benchmark section from scratch: rerank/early stopping on SciFact and XQuAD test
# (operating points chosen on dev by `earlyrank tune`) with the default backend and with each torch precision
# (one of the two repeats the default: `auto` picks by measuring this host); recall; inference speed; load;
# Ray scaling; truncation lengths; training ablations; then rewrite the README's bench tables.
# About 5 hours on 2 cores: each SciFact rerank takes 15-40 minutes depending on host and precision, the six
# 100-step training ablations ~75, the two 200-step ones ~50.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
earlyrank bench --data ../shared/datasets/scifact --depth 100 --out results
earlyrank bench --data ../shared/datasets/xquad-en --depth 30 --out results
earlyrank bench --data ../shared/datasets/scifact --depth 100 --backend torch-bf16 --no-peers --out results
earlyrank bench --data ../shared/datasets/scifact --depth 100 --backend torch-fp32 --no-peers --out results
python benchmarks/recall.py
python benchmarks/recall.py --sparse-only --datasets scifact --out results/recall-sparse.json
python benchmarks/recall.py --sparse-only --datasets scifact --k 10 --out results/recall-sparse-k10.json
earlyrank export-onnx
python benchmarks/speed.py
python benchmarks/load.py --seconds 8 --levels 1 8 32 --workers 2
python benchmarks/load.py --batching on --workers 1 --seconds 20 --soak 600 --port 18765 --out results/load-soak.json
python benchmarks/ray_scaling.py
python benchmarks/explain.py --pairs 15
python benchmarks/lengths.py
python benchmarks/ablations.py
python benchmarks/ablations.py --steps 200 --only scifact --only random-negatives --out results/ablations-200.json
python benchmarks/report.py results/scifact-test.json results/xquad-en-test.json
