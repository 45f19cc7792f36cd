#!/usr/bin/env bash
# The main job on the embedded demo data. Set-up included (.venv, install).
# DEMO_DIR (default demo_data) and DEMO_SIZE (default full) can be overridden.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
DEMO_DIR="${DEMO_DIR:-demo_data}"
DEMO_SIZE="${DEMO_SIZE:-full}"
echo "[demo] making the demo dataset ($DEMO_SIZE) in $DEMO_DIR"
imet-kit demo-data "$DEMO_DIR" --size "$DEMO_SIZE" --seed 0
