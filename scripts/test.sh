#!/usr/bin/env bash
# Set everything up, then lint (ruff; the import contracts and mypy over the installed layout) and run the tests.
#   ./scripts/test.sh           the whole suite, slow tests with the real models included (a few minutes)
#   ./scripts/test.sh --fast    lint and the tests not marked slow: the edit loop (under a minute)
# Other arguments go to pytest, e.g. ./scripts/test.sh --fast tests/test_stopping.py
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
fast=()
if [ "${1:-}" = "--fast" ]; then
  shift
  fast=(-m "not slow")
fi
ruff check .
python scripts/check_packages.py
python -m pytest -q "${fast[@]}" "$@"
