"""Matplotlib figures written as PNG files (Agg backend, atomic writes)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _figure_module():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Write ``fig`` to a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix or '.png'}")
    try:
        fig.savefig(tmp, dpi=dpi, format=(path.suffix.lstrip(".") or "png"))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
        _figure_module().close(fig)
    return path






