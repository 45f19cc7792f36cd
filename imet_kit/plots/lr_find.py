"""The learning-rate range test's figure: loss against learning rate on a log axis."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imet_kit.plots import save_figure


def plot_lr_find(lrs, losses, smoothed, suggestions: dict[str, float], chosen: str,
                 path: str | os.PathLike, *, stop_curve=None) -> Path:
    """Raw and smoothed loss per learning rate (log x axis), each suggestion marked.

    Args:
        lrs, losses, smoothed: one value per step of the range test; ``smoothed`` is the curve
            the suggestions were read from.
        stop_curve: optionally, the moving average of the stop rule (drawn dotted).
        suggestions: learning rate by method name (``{"min10": ..., "steepest": ...}``).
        chosen: the method whose suggestion is printed (drawn solid, the others dashed).
        path: output PNG.

    Returns:
        The written path.

    Example:
        >>> import tempfile, os
        >>> lrs = np.geomspace(1e-5, 1, 50)
        >>> loss = 1 + (np.log10(lrs) + 2) ** 2 / 10
        >>> out = plot_lr_find(lrs, loss, loss, {"min10": 1e-3}, "min10",
        ...                    os.path.join(tempfile.mkdtemp(), "lr.png"))
        >>> out.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    lrs = np.asarray(lrs, np.float64)
    smoothed = np.asarray(smoothed, np.float64)
    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, np.asarray(losses, np.float64), color="0.75", lw=1, label="loss per batch")
    if stop_curve is not None:
        ax.plot(lrs, np.asarray(stop_curve, np.float64), color="0.4", lw=1, ls=":",
                label="moving average (stop rule)")
    ax.plot(lrs, smoothed, lw=2, label="smoothed loss")
    for i, (name, lr) in enumerate(sorted(suggestions.items())):
        y = float(np.interp(np.log(lr), np.log(lrs), smoothed)) if len(lrs) > 1 else smoothed[0]
        ax.axvline(lr, color=f"C{i + 1}", ls="-" if name == chosen else "--", lw=1)
        ax.scatter([lr], [y], color=f"C{i + 1}", zorder=3,
                   label=f"{name}: {lr:.2g}{' (suggested)' if name == chosen else ''}")
    ax.set_xscale("log")
    finite = smoothed[np.isfinite(smoothed)]
    raw = np.asarray(losses, np.float64)
    if len(finite):  # the divergence at the end would flatten everything else
        lo = float(min(finite.min(), np.nanmin(np.where(np.isfinite(raw), raw, np.inf))))
        hi, first = float(finite.max()), float(finite[0])
        top = min(hi, first + max(first - lo, 0.1 * (hi - lo), 1e-9))
        pad = 0.05 * (top - lo) + 1e-9
        ax.set_ylim(lo - pad, top + pad)
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title="learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=100)
