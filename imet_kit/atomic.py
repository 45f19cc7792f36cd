"""Atomic writers, one per format: write to a temporary name beside the target, then rename.

A reader never sees a half-written file, and a writer that fails (a full disk, an exception,
Ctrl-C) removes its temporary. Temporaries are named ``.NAME.tmpPID[.EXT]`` so that
:func:`remove_temporaries` can clear the ones a ``kill -9`` left behind when a run resumes.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = atomic_write_json({"a": 1}, os.path.join(d, "x.json"))
    >>> p.read_text().replace(" ", "").replace("\\n", "")
    '{"a":1}'
    >>> sorted(os.listdir(d))
    ['x.json']
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp"


def _tmp_name(path: Path, keep_suffix: bool) -> Path:
    suffix = path.suffix if keep_suffix else ""
    stem = path.stem if keep_suffix else path.name
    return path.with_name(f".{stem}{TMP_MARK}{os.getpid()}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    ``keep_suffix`` keeps the file extension on the temporary name, for writers that choose the
    format from it (``.npy``, ``.keras``, ``.png``). On any exception the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path, keep_suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically. Returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(obj: Any, path: str | os.PathLike, *, indent: int | None = 2) -> Path:
    """Write JSON to a temporary file, then rename it over ``path``. Returns the path."""
    return atomic_write_text(json.dumps(obj, indent=indent, default=str), path)


def atomic_write_csv(df, path: str | os.PathLike) -> Path:
    """Write a pandas DataFrame as CSV (no index) atomically. Returns the path."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def atomic_save_npy(array, path: str | os.PathLike) -> Path:
    """``np.save`` atomically. Returns the path."""
    import numpy as np

    with atomic_path(path, keep_suffix=True) as tmp:
        np.save(tmp, array)
    return Path(path)


def atomic_save_model(model, path: str | os.PathLike) -> Path:
    """``model.save`` to a temporary ``.keras`` file, then rename: never a half-written model."""
    with atomic_path(path, keep_suffix=True) as tmp:
        model.save(tmp)
    return Path(path)


def remove_temporaries(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Delete the temporaries that killed writers left in ``folder``. Returns what was removed.

    Only names of this module's pattern (``.NAME.tmpPID[.EXT]``) are touched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".*{TMP_MARK}*"
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    removed = []
    for p in found:
        rest = p.name.split(TMP_MARK)[-1]
        if p.is_file() and rest.split(".")[0].isdigit():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
