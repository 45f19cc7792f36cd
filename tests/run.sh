#!/usr/bin/env bash
# The test command: set up .venv, lint, run the whole suite (slow tests included) under the
# TensorFlow backend, then the backend-neutral core again under JAX (training engine, models,
# losses, XBM, devices and the TensorFlow-only refusals; ~2.5 min on 2 cores).
# Extra arguments go to pytest instead and skip the JAX pass, e.g. `bash tests/run.sh -m "not slow" -k folds`;
# `KERAS_BACKEND=jax bash tests/run.sh tests/models` runs them under JAX.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../examples/setup_env.sh"
echo "[lint] ruff check"
ruff check imet_kit tests benchmarks examples
echo "[test] pytest (KERAS_BACKEND=${KERAS_BACKEND:-tensorflow})"
python -m pytest -q -p no:cacheprovider --durations=10 "$@"
if [ "$#" -eq 0 ]; then
  JAX_TESTS=(
    tests/training/test_engine.py tests/training/test_checkpoint.py tests/training/test_devices.py
    tests/training/test_precision.py tests/training/test_validate.py
    tests/models/test_losses.py tests/models/test_xbm.py tests/models/test_heads.py
    tests/models/test_classifier.py tests/models/test_margins.py
    tests/models/test_backbones.py::test_efn_backbones_need_tensorflow_and_say_so_in_one_line
    tests/multilabel/test_export.py::test_onnx_and_tflite_are_refused_in_one_line_under_another_backend
  )
  echo "[test] pytest (KERAS_BACKEND=jax: the backend-neutral core)"
  # "mistyped choice": 7 CLI runs checking flag validation, which is the same on every backend
  KERAS_BACKEND=jax python -m pytest -q -p no:cacheprovider -m "not slow" -k "not mistyped" \
    "${JAX_TESTS[@]}"
fi
