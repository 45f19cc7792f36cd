"""The fold-quality figure: per-fold label counts against the ideal share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imet_kit.plots import save_figure


def plot_fold_report(counts: np.ndarray, sizes: np.ndarray, path: str | os.PathLike, *,
                     label_names: Sequence[str] | None = None, n_rare: int = 30,
                     title: str = "") -> Path:
    """Save a PNG: fold sizes, label share spread by label size, rarest labels per fold.

    Args:
        counts: ``(n_folds, n_labels)`` positives of each label in each validation fold
            (:func:`imet_kit.folds.report.fold_label_counts`).
        sizes: rows in each fold.
        path: output ``.png``.
        label_names: optional names for the heat-map's columns.
        n_rare: how many of the rarest labels (with ``>= n_folds`` positives) to show.
        title: figure title.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sizes = np.asarray(sizes)
    counts = np.asarray(counts)
    n_folds, n_labels = counts.shape
    n_pos = counts.sum(axis=0)
    fig = Figure(figsize=(15, 9.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1.15])
    ax = fig.add_subplot(grid[0, 0])
    bars = ax.bar(np.arange(n_folds), sizes, color="#4c72b0")
    ax.axhline(sizes.sum() / n_folds, color="k", lw=1, ls="--", label="equal share")
    ax.bar_label(bars, labels=[f"{s:,}" for s in sizes], fontsize=8)
    lo, hi = sizes.min(), sizes.max()
    pad = max(1.0, (hi - lo) * 2.0)
    ax.set_ylim(max(0, lo - pad), hi + pad)
    ax.set(title=f"Rows per fold (std {sizes.std():.2f})", xlabel="fold", ylabel="rows",
           xticks=np.arange(n_folds))
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title or f"{n_folds}-fold split of {int(sizes.sum()):,} rows x {n_labels:,} labels")

    eligible = n_pos >= n_folds
    if not eligible.any():  # tiny data or many folds: no label to compare across the folds
        ax = fig.add_subplot(grid[:, 1:])
        ax.axis("off")
        ax.text(0.5, 0.5, f"No label has >= {n_folds} positives: none can be in every fold.",
                ha="center", va="center", transform=ax.transAxes)
        return save_figure(fig, path, dpi=100)

    ax = fig.add_subplot(grid[0, 1:])
    share = counts / np.maximum(n_pos, 1)[None, :]
    spread = np.abs(share - 1 / n_folds).max(axis=0) * 100
    ax.scatter(n_pos[eligible], spread[eligible], s=9, alpha=0.6, label="a label")
    grid_n = np.unique(n_pos[eligible])
    best = np.maximum(np.ceil(grid_n / n_folds) / grid_n - 1 / n_folds,
                      1 / n_folds - np.floor(grid_n / n_folds) / grid_n)
    ax.scatter(grid_n, best * 100, c="k", s=40, marker="_", lw=1,
               label="best possible with whole counts")
    ax.set_xscale("log")
    n_under = int(((n_pos > 0) & ~eligible).sum())
    ax.set(title=f"Worst fold's deviation from an equal share, per label with >= {n_folds} "
                 f"positives ({n_under} labels with fewer not shown)",
           xlabel="positives of the label (log)", ylabel=f"max |fold share - 1/{n_folds}| (pp)")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, :])
    cand = np.flatnonzero(eligible)
    cand = cand[np.lexsort((cand, n_pos[cand]))]
    pool = cand[: max(n_rare, len(cand) // 4)]  # the rarest quarter, sampled evenly
    show = pool[np.unique(np.linspace(0, len(pool) - 1, min(n_rare, len(pool))).astype(int))]
    dev = (share[:, show] - 1 / n_folds) * 100
    lim = max(1.0, float(np.abs(dev).max()))
    im = ax.imshow(dev, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for (f, j), c in np.ndenumerate(counts[:, show]):
        ax.text(j, f, str(c), ha="center", va="center", fontsize=8,
                color="white" if abs(dev[f, j]) > 0.6 * lim else "black")
    names = [str(label_names[j]) if label_names is not None else str(j) for j in show]
    ax.set_xticks(np.arange(len(show)),
                  [f"{n[:24]} ({n_pos[j]})" for n, j in zip(names, show)], rotation=60,
                  ha="right", fontsize=7)
    ax.set_yticks(np.arange(n_folds), [f"fold {f}" for f in range(n_folds)])
    ax.set_title(f"{len(show)} labels spread over the rarest quarter with >= {n_folds} positives "
                 f"(total in brackets): positives per validation fold (text) and share minus "
                 f"1/{n_folds} (colour)")
    fig.colorbar(im, ax=ax, label="share - equal share (pp)", shrink=0.8)
    return save_figure(fig, path, dpi=100)
