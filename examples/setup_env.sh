# Sourced by examples/demo.sh and tests/run.sh: make .venv (once) and install imet_kit into it.
# Re-installs only when setup.cfg changes. Set IMET_KIT_PYTHON to choose the interpreter.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${IMET_KIT_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
STAMP=".venv/.imet_kit-installed-$(cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
  echo "[setup] installing imet_kit and its dependencies into .venv (first run: about a minute)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
  rm -f .venv/.imet_kit-installed-*
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2 MPLBACKEND=Agg
