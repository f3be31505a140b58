#!/usr/bin/env bash
# Set everything up, then run lint and the whole test suite (slow tests with the real models included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
ruff check .
mypy engine indexes api
python -m pytest -q "$@"
