"""Cheap checks of command-line arguments, run before anything slow starts (TensorFlow, a model,
a scan of the images) and before anything is written. Each raises
:class:`~imet_kit.errors.InputError` with one line naming the flag, what it got and the fix.

No TensorFlow here: ``imet-kit predict --tta 99`` fails in about a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from imet_kit.errors import DataFileError, InputError


def at_least(flag: str, value: int | float | None, minimum: int = 1) -> None:
    """``value`` (when given) must be >= ``minimum``."""
    if value is not None and value < minimum:
        raise InputError(f"{flag} must be >= {minimum}; received {value}.")


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a folder created later goes there)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def writable_folder(folder: str | os.PathLike, flag: str) -> None:
    """``folder`` can be created (if missing) and written to; tried with a probe file, since
    permission bits say nothing for root, and /sys or a read-only mount refuse writes anyway."""
    target = Path(folder)
    base = _first_existing(target)
    if not base.is_dir():
        raise InputError(f"{flag} '{target}' cannot be created: '{base}' is a file, not a folder. "
                         f"Choose another path.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".imet-kit-write-test-", dir=base)
    except OSError as exc:
        raise InputError(f"{flag} '{target}' cannot be written: '{base}' refuses new files "
                         f"({exc.strerror or exc}). Choose a folder you can write to.") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def output_file(path: str | os.PathLike, flag: str = "--out", *,
                beside: Sequence[str | os.PathLike] = ()) -> Path:
    """An output file path: not a folder, its folder writable, and none of the files written
    ``beside`` it (a report, the probabilities) a folder either."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag} '{path}' is a folder; expected a file name, for example "
                         f"'{path / 'out.csv'}'.")
    for extra in map(Path, beside):
        if extra.is_dir():
            raise InputError(f"'{extra}' (written beside {flag}) is a folder; choose another {flag}.")
    writable_folder(path.parent, flag)
    return path


def output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """An output folder: a folder (or nothing yet) that can be written to, not a file."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise InputError(f"{flag} '{path}' is a file; expected a folder (created if missing). "
                         f"Choose another path, or remove the file.")
    writable_folder(path, flag)
    return path


def input_file(path: str | os.PathLike, flag: str, what: str) -> Path:
    """An existing, regular input file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag} '{path}' is a folder; expected {what}.")
    if not path.is_file():
        raise DataFileError(f"{flag} '{path}' does not exist; expected {what}.")
    return path


def input_folder(path: str | os.PathLike, flag: str, what: str) -> Path:
    """An existing input folder."""
    path = Path(path)
    if path.is_file():
        raise InputError(f"{flag} '{path}' is a file; expected {what}.")
    if not path.is_dir():
        raise DataFileError(f"{flag} '{path}' does not exist; expected {what}.")
    return path


def read_json(path: str | os.PathLike, what: str, fix: str):
    """Parse a JSON file the program wrote; a damaged one is an InputError saying ``fix``."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} '{path}' is damaged (not valid JSON: {exc}). {fix}") from None


def npy_file(path: str | os.PathLike, flag: str, what: str) -> Path:
    """An existing ``.npy`` file that opens (memory-mapped: only its header is read)."""
    import numpy as np

    path = input_file(path, flag, what)
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise InputError(f"{flag} '{path}' is not a NumPy .npy file; expected {what}.")
    try:
        np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{flag} '{path}' is not a whole NumPy .npy file ({exc}); expected "
                         f"{what}.") from None
    return path


def run_folder(path: str | os.PathLike, *, thresholds: bool = False):
    """A run folder of `imet-kit train` whose config.json (and, with ``thresholds``,
    thresholds.json) reads back. Returns its :class:`~imet_kit.training.rundir.RunDir`."""
    from imet_kit.config import TrainConfig
    from imet_kit.training.rundir import RunDir

    input_folder(path, "--run", "the run folder of `imet-kit train`")
    run = RunDir(path)
    run.require()
    fix = "Restore it, or train the run again into a new --out."
    config = read_json(run.config_path, "The run's config", fix)
    if not isinstance(config, dict):
        raise InputError(f"The run's config '{run.config_path}' is damaged (not a JSON object). {fix}")
    TrainConfig.from_dict(config, source=str(run.config_path))
    if thresholds and run.thresholds_path.is_file():
        read_json(run.thresholds_path, "The run's thresholds", "Restore it, or pass --threshold.")
    return run
