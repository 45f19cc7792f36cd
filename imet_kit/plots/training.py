"""Figures of a run: training curves per fold, OOF F2 against threshold, a prediction gallery.

Every figure is written to a temporary file and renamed, so a kill never leaves half a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imet_kit.plots import _figure_module as _plt
from imet_kit.plots import save_figure


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




def plot_lr_schedule(values, path: str | os.PathLike, *,
                     steps_per_epoch: int | None = None, title: str | None = None) -> Path:
    """Draw a learning rate per optimizer step into a PNG.

    Args:
        values: the rate at each step, e.g. ``imet_kit.training.schedules.lr_values(s, steps)``.
        path: output PNG.
        steps_per_epoch: if given, the x axis is in epochs.
        title: figure title (default: the peak and last rate).

    Returns:
        The written path.

    Example:
        >>> import tempfile, os
        >>> import numpy as np
        >>> out = plot_lr_schedule(np.linspace(1e-3, 0, 120), os.path.join(tempfile.mkdtemp(), "lr.png"))
        >>> out.stat().st_size > 0
        True
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    y = np.asarray(values, dtype=np.float64).reshape(-1)
    x = np.arange(len(y), dtype=np.float64)
    xlabel = "step"
    if steps_per_epoch:
        x, xlabel = x / steps_per_epoch, "epoch"
    fig = Figure(figsize=(7, 3.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, y, lw=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    ax.set_xlim(x[0], x[-1] if len(x) > 1 else 1)
    ax.set_ylim(bottom=0)
    ax.set_title(title or f"learning rate: peak {y.max():.3g}, last {y[-1]:.3g}")
    return save_figure(fig, path, dpi=100)
