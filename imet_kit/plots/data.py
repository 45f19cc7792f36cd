"""Figures of the data: label frequency and a grid of (augmented) images with their labels."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imet_kit.errors import InputError
from imet_kit.plots import _figure_module, save_figure

log = logging.getLogger(__name__)


def plot_label_frequency(y: np.ndarray, space, path: str | os.PathLike) -> str:
    """Bar chart of images per label, sorted, one colour per attribute group (log scale)."""
    from imet_kit.plots import _figure_module, save_figure

    plt = _figure_module()
    counts = np.asarray(y.sum(0)).ravel().astype(np.int64)
    order = np.argsort(-counts, kind="stable")
    groups = np.array(space.groups)[order]
    colours = {g: f"C{i}" for i, g in enumerate(space.group_names)}
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(counts)), 4))
    ax.bar(np.arange(len(counts)), counts[order], color=[colours[g] for g in groups])
    ax.set_yscale("log")
    ax.axhline(10, color="grey", lw=0.8, ls="--")
    ax.text(len(counts) - 0.5, 10.5, "10 images", ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_xticks(np.arange(len(counts)))
    ax.set_xticklabels([space.short_name(i) for i in order], rotation=90, fontsize=7)
    ax.set_ylabel("train images (log)")
    ax.set_title(f"Label frequency: {len(counts)} attributes, {y.shape[0]} images")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=g) for g, c in colours.items()])
    fig.tight_layout()
    return str(save_figure(fig, path, dpi=110))


def _as_display_images(x: np.ndarray) -> np.ndarray:
    """A batch in 0-255 (any dtype) or 0-1 float -> uint8 for display."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise InputError(f"Expected a batch of images (B, H, W, 3); received shape {x.shape}.")
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
    if lo < 0.0 or hi <= 1.0:  # normalised input: stretch to the visible range
        x = (x - lo) / max(hi - lo, 1e-6) * 255.0
    return np.clip(x, 0, 255).round().astype(np.uint8)


def _caption(row: np.ndarray | None, names: Sequence[str], max_names: int, head: str) -> str:
    lines = [head] if head else []
    if row is not None:
        on = np.flatnonzero(np.asarray(row) > 0.5)
        shown = [str(names[i]) if i < len(names) else str(i) for i in on[:max_names]]
        lines += [textwrap.shorten(s, 30, placeholder="...") for s in shown] or ["(no labels)"]
        if len(on) > max_names:
            lines[-1] += f" +{len(on) - max_names} more"
    return "\n".join(lines)


def plot_batch_grid(
    dataset_or_batch: Any,
    label_names: Sequence[str] | Any,
    path: str | os.PathLike,
    *,
    index: int = 0,
    max_images: int = 16,
    ncols: int = 4,
    max_names: int = 3,
    title: str | None = None,
) -> Path:
    """Draw augmented samples with their label names, to check augmentation by eye.

    Args:
        dataset_or_batch: an :class:`~imet_kit.data.dataset.ImageDataset` (batch ``index`` is
            drawn before preprocessing), a tuple ``(x, y)``, or ``x`` alone. ``x`` is
            ``(B, H, W, 3)`` uint8 / 0-255 floats (normalised input is rescaled).
        label_names: a name per class id, or a ``LabelSpace`` (its ``names``).
        path: the PNG to write (atomically).
        index: which batch of a dataset.
        max_images, ncols: grid size.
        max_names: label names listed per image (under the file name for a dataset).
        title: figure title; default names the batch.

    Returns:
        The written path.
    """
    names = list(getattr(label_names, "names", label_names) or [])
    heads: list[str] = []
    if hasattr(dataset_or_batch, "load_batch"):
        x, y, rows = dataset_or_batch.load_batch(index)
        heads = [Path(dataset_or_batch.paths[r]).stem for r in rows]
        what = getattr(dataset_or_batch, "augment", None) or "eval"
        title = title or f"batch {index}, augment={what}, epoch {dataset_or_batch.epoch}"
    elif isinstance(dataset_or_batch, tuple | list):
        x, y = dataset_or_batch[0], dataset_or_batch[1] if len(dataset_or_batch) > 1 else None
    else:
        x, y = dataset_or_batch, None
    x = _as_display_images(x)[:max_images]
    y = None if y is None else np.asarray(y)[: len(x)]
    n = len(x)
    if n == 0:
        raise InputError("plot_batch_grid got an empty batch; expected at least one image.")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    plt = _figure_module()
    row_height = 3.0 + 0.17 * (max_names + 2)  # room for the caption lines
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, row_height * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(x[k] if x.shape[-1] == 3 else x[k, ..., 0], cmap=None if x.shape[-1] == 3 else "gray")
        head = heads[k] if k < len(heads) else ""
        caption = _caption(None if y is None else y[k], names, max_names, head)
        ax.set_title(caption, fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = save_figure(fig, path)
    log.info("Wrote batch grid of %d images to %s", n, out)
    return out
