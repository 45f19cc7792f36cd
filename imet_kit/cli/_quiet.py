"""Keep TensorFlow's start-up log lines off the terminal, so that a one-line error stays one line.

``TF_CPP_MIN_LOG_LEVEL=2`` no longer silences everything: TensorFlow 2.20+ logs through absl,
and what its libraries log while they load, before absl is initialised, goes to stderr
whatever the level (``WARNING: All log messages before absl::InitializeLog() ...`` followed by
``I0000 ... port.cc:153] oneDNN custom operations are on ...``, twice). No environment variable
turns those off, and ``TF_ENABLE_ONEDNN_OPTS`` changes numerics, so it stays as it is.

:func:`install` adds an import hook: the first ``import tensorflow`` (directly or through
Keras) runs with file descriptor 2 sent to a temporary file; afterwards every captured line
that is not such an info / warning log line is written back to stderr, so real errors and
Python warnings still show. It also drops TensorFlow's "N out of the last M calls to <function
...> triggered tf.function retracing" warning, which predicting with several fold models
prints and a user cannot act on.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

# absl's pre-initialisation banner and its I (info) / W (warning) lines: "I0000 00:00:... file.cc:153] ..."
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$"
)


@contextlib.contextmanager
def filtered_stderr():
    """Capture file descriptor 2 (C++ and Python writes alike); replay all but absl I/W lines."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        fd = sys.stderr.fileno() if sys.stderr is not None else 2
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured): as is
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if line.strip() and not _NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Wraps TensorFlow's loader: executes the package with stderr filtered."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self._loader
        with filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, wrapping its loader in :class:`_QuietLoader`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        uninstall()
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _not_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def install() -> None:
    """Filter TensorFlow's start-up lines from stderr when it is first imported, and its
    retracing warnings (no-op for what is in place already)."""
    tf_log = logging.getLogger("tensorflow")
    if _not_retracing not in tf_log.filters:
        tf_log.addFilter(_not_retracing)
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def uninstall() -> None:
    """Remove the import hook (the log filter stays: the warning it drops is never useful)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowImport)]
