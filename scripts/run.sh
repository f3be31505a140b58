#!/usr/bin/env bash
# Set everything up, build the bundled demo index if it is missing, and start the service.
# Settings come from EARLYRANK_* variables (e.g. EARLYRANK_PORT=9000) or options passed through: ./scripts/run.sh --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
exec earlyrank serve "$@"
