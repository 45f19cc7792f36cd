"""Shared test set-up: quiet, offline-safe environment before any heavy import, and the
checkout's own package first on sys.path (so a second worktree tests its own code even when the
virtual environment's editable install points elsewhere)."""

import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``tf_only`` (setup.cfg) under another Keras backend, saying why."""
    backend = os.environ["KERAS_BACKEND"]  # set above, so it wins over ~/.keras/keras.json
    if backend == "tensorflow":
        return
    import pytest

    for item in items:
        marker = item.get_closest_marker("tf_only")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "TensorFlow only")
            item.add_marker(pytest.mark.skip(reason=f"KERAS_BACKEND={backend}: {why}"))
