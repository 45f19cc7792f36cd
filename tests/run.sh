#!/usr/bin/env bash
# The test command: set up .venv, lint, run the whole suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow" -k folds`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../examples/setup_env.sh"
echo "[lint] ruff check"
ruff check imet_kit tests benchmarks examples
echo "[test] pytest"
python -m pytest -q -p no:cacheprovider --durations=10 "$@"
