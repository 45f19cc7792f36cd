"""Figures of a run: training curves per fold, OOF F2 against threshold, a prediction gallery.

Every figure is written to a temporary file and renamed, so a kill never leaves half a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .plots import _figure_module as _plt
from .plots import save_figure


def _save(fig, path: str | os.PathLike) -> str:
    return str(save_figure(fig, path, dpi=110))


def plot_history(histories: dict[int, list[dict]], path: str | os.PathLike) -> str:
    """Loss (train) and validation F2 per epoch, one line per fold."""
    plt = _plt()
    fig, (ax_loss, ax_f2) = plt.subplots(1, 2, figsize=(10, 4))
    for k, rows in sorted(histories.items()):
        if not rows:
            continue
        ep = [r["epoch"] + 1 for r in rows]
        ax_loss.plot(ep, [r.get("loss", np.nan) for r in rows], marker="o", label=f"fold {k}")
        f2 = [(r["epoch"] + 1, r["val_f2"]) for r in rows if "val_f2" in r]
        if f2:
            x, y = zip(*f2)
            line = ax_f2.plot(x, y, marker="o", label=f"fold {k}")[0]
            b = int(np.argmax(y))
            ax_f2.scatter([x[b]], [y[b]], s=120, facecolors="none", edgecolors=line.get_color())
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    ax_f2.set(title="validation F2 (best threshold; circle = kept model)", xlabel="epoch",
              ylabel="F2")
    for ax in (ax_loss, ax_f2):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return _save(fig, path)


def plot_threshold_curve(thresholds: dict, path: str | os.PathLike) -> str:
    """Out-of-fold F2 against the global threshold, with the chosen point and group / class scores."""
    plt = _plt()
    curve = thresholds["global"]["curve"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(curve["thresholds"], curve["f2"], label="global threshold")
    t, f = thresholds["global"]["threshold"], thresholds["global"]["f2"]
    ax.scatter([t], [f], color="C3", zorder=3, label=f"best {t:.2f}: F2 {f:.4f}")
    for i, mode in enumerate(("group", "class")):
        if mode in thresholds:
            ax.axhline(thresholds[mode]["f2"], color=f"C{i + 1}", ls="--", lw=1,
                       label=f"per-{mode} thresholds: F2 {thresholds[mode]['f2']:.4f}")
    ax.set(xlabel="threshold", ylabel="out-of-fold F2",
           title=f"OOF F2 vs threshold ({thresholds['n_images']} images, "
                 f"{thresholds['min_labels']}-{thresholds['max_labels']} labels per image)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_gallery(paths: list[str], pred: np.ndarray, names: tuple[str, ...], path: str | os.PathLike,
                 truth: np.ndarray | None = None, n: int = 12, cols: int = 4) -> str:
    """Test images with their predicted labels under each, like the 2019 notebook's last cell.

    With ``truth``: correct predictions green, wrong ones red, true labels that were
    missed grey with a leading ``missed``.
    """
    from .images import read_image

    plt = _plt()
    n = min(n, len(paths))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.3, rows * 5.2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(read_image(paths[i]))
        ax.set_title(Path(paths[i]).stem, fontsize=7)
        lines = []
        for c in np.flatnonzero(pred[i]):
            ok = truth is None or bool(truth[i, c])
            lines.append((names[c], "black" if truth is None else "green" if ok else "red"))
        if truth is not None:
            lines += [(f"missed {names[c]}", "grey")
                      for c in np.flatnonzero(truth[i] & ~np.asarray(pred[i], bool))]
        for j, (text, colour) in enumerate(lines[:14]):
            ax.annotate(text, xy=(0, 0), xycoords="axes fraction", xytext=(0, -4 - 9 * j),
                        textcoords="offset points", fontsize=7, color=colour, va="top", ha="left")
    title = ("predicted labels: green correct, red wrong, grey missed" if truth is not None
             else "predicted labels")
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 1.0 / (rows * 5.2), bottom=2.0 / (rows * 5.2),
                        hspace=1.25, wspace=0.15)
    return _save(fig, path)
