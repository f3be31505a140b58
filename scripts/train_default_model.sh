#!/usr/bin/env bash
# Reproduce the shipped cross-encoder (engine/models/earlyrank-minilm-ce): fine-tune, calibrate, tune.
# About 75 minutes of training on 2 CPU cores (600 of the 825 scheduled steps: the shipped model was stopped
# there to leave the session time for benchmarks), then ~10 minutes of dev scoring. Resumable: rerun after a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
DATA=(--data ../shared/datasets/scifact --data ../shared/datasets/xquad-en)
MODEL=engine/models/earlyrank-minilm-ce
earlyrank train "${DATA[@]}" --out "$MODEL" --max-length 192 --epochs 1.5 --self-supervised 800 \
  --eval-every 200 --max-steps 600
earlyrank calibrate "${DATA[@]}" --model "$MODEL" --depth 100 --limit 100 --limit 50
earlyrank tune "${DATA[@]}" --model "$MODEL" --depth 100 --limit 100 --limit 50 --max-loss 0.01
