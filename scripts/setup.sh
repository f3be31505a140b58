#!/usr/bin/env bash
# Create .venv and install earlyrank with its test tools. torch==2.13.0 goes first: it is the CPU build
# on this machine's disk; a bare "torch" (or any package asking for it first) would pull a multi-GB CUDA build.
# Skips pip when nothing it reads has changed since the last successful setup (the stamp holds their hash);
# EARLYRANK_FORCE_SETUP=1 reinstalls anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.earlyrank-setup
wanted=$( (cat pyproject.toml; python3 --version) | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && [ -z "${EARLYRANK_FORCE_SETUP:-}" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
log=.venv/setup.log
install() { python -m pip install -q "$@" >>"$log" 2>&1 || { cat "$log" >&2; echo "setup failed: pip install $*" >&2; exit 1; }; }
: >"$log"
install --upgrade pip
install "torch==2.13.0"
install -e ".[dev]"
python -c "import torch, earlyrank.engine; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
  || { echo "setup failed: torch 2.13.0 (CPU) or earlyrank is not importable" >&2; exit 1; }
echo "$wanted" > "$stamp"
