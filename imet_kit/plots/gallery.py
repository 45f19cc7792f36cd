"""The prediction gallery: test images with correct, wrong and missed labels."""

from __future__ import annotations

import os

import numpy as np

from imet_kit.plots import _figure_module as _plt
from imet_kit.plots import save_figure


def plot_gallery(images: list[np.ndarray], ids: list[str], pred: np.ndarray, names: tuple[str, ...], path: str | os.PathLike,
                 truth: np.ndarray | None = None, n: int = 12, cols: int = 4) -> str:
    """Test images (RGB uint8) with their predicted labels under each, as the 2019 notebook showed.

    With ``truth``: correct predictions green, wrong ones red, true labels that were
    missed grey with a leading ``missed``.
    """
    plt = _plt()
    n = min(n, len(images))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.3, rows * 5.2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(images[i])
        ax.set_title(str(ids[i]), fontsize=7)
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
    return str(save_figure(fig, path))
