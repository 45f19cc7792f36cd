"""Out-of-fold predictions: gather them, choose thresholds on them, apply thresholds later."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from imet_kit.atomic import atomic_save_npy, atomic_write_csv, atomic_write_json
from imet_kit.config import TrainConfig
from imet_kit.data.folder import ImetDataset
from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)

THRESHOLD_MODES = ("global", "group", "class")


def gather_oof(run: RunDir, folds: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, C) with NaN rows for untrained folds, bool mask of filled rows)."""
    oof = np.full((len(folds), n_classes), np.nan, np.float32)
    for k in run.trained_folds():
        p = run.fold_dir(k) / "oof.npy"
        if p.is_file():
            oof[folds == k] = np.load(p)
    return oof, ~np.isnan(oof).any(1)


def choose_thresholds(probs: np.ndarray, y: np.ndarray, space: LabelSpace, *, min_labels: int = 1,
                      max_labels: int = 10, per_class: bool = True) -> dict:
    """Global, per-group and (optionally) per-class thresholds with their F2 on ``probs``."""
    from imet_kit.multilabel.threshold_search import search_per_class, search_per_group
    from imet_kit.multilabel.thresholds import sweep_thresholds

    glob = sweep_thresholds(probs, y, min_labels=min_labels, max_labels=max_labels)
    out = {"min_labels": min_labels, "max_labels": max_labels, "n_images": int(len(y)),
           "global": {"threshold": float(glob.best_threshold), "f2": float(glob.best_score),
                      "curve": {"thresholds": [float(t) for t in glob.thresholds],
                                "f2": [float(s) for s in glob.scores]}}}
    kmin, kmax = group_limits(y, space, min_labels, max_labels)
    grp = search_per_group(probs, y, space.group_index, min_labels=kmin, max_labels=kmax)
    out["group"] = {"thresholds": {g: float(t) for g, t in zip(space.group_names, grp.thresholds)},
                    "min_labels": dict(zip(space.group_names, kmin)),
                    "max_labels": dict(zip(space.group_names, kmax)), "f2": float(grp.score)}
    if per_class:
        cls = search_per_class(probs, y, start=glob.best_threshold, min_labels=min_labels,
                               max_labels=max_labels)
        out["class"] = {"thresholds": [float(t) for t in cls.thresholds], "f2": float(cls.score)}
    # per-class thresholds fit the OOF images themselves: keep the robust global one by default
    out["mode"] = "global"
    return out


def group_limits(y: np.ndarray, space: LabelSpace, min_labels: int,
                 max_labels: int) -> tuple[list[int], list[int]]:
    """Per-group label-count limits: the group most images carry (iMet: tag) keeps the
    "at least ``min_labels``" rule, the others may be empty (iMet's winner: culture 0-3,
    tag 1-8); each group is capped by the most labels of it one image carries, at most
    ``max_labels``."""
    y = np.asarray(y)
    cover = [float((y[:, space.group_mask(g)].sum(1) > 0).mean()) for g in space.group_names]
    main = int(np.argmax(cover))
    kmin = [min_labels if i == main else 0 for i in range(len(cover))]
    kmax = [int(max(kmin[i], min(max_labels, y[:, space.group_mask(g)].sum(1).max())))
            for i, g in enumerate(space.group_names)]
    return kmin, kmax


def apply_thresholds(probs: np.ndarray, thresholds: dict, space: LabelSpace,
                     mode: str | None = None) -> np.ndarray:
    """Binary (n, C) labels from probabilities with the run's ``mode`` thresholds and limits."""
    from imet_kit.multilabel.thresholds import binarize, binarize_groups

    mode = mode or thresholds.get("mode", "global")
    if mode not in THRESHOLD_MODES or mode not in thresholds:
        have = [m for m in THRESHOLD_MODES if m in thresholds]
        raise InputError(f"Threshold mode '{mode}' is not in this run. Expected one of: {', '.join(have)}.")
    kmin, kmax = thresholds["min_labels"], thresholds["max_labels"]
    if mode == "global":
        return binarize(probs, thresholds["global"]["threshold"], kmin, kmax)
    if mode == "class":
        return binarize(probs, np.asarray(thresholds["class"]["thresholds"]), kmin, kmax)
    g = thresholds["group"]
    names = space.group_names
    return binarize_groups(probs, space.group_index, [g["thresholds"][n] for n in names],
                           [g["min_labels"][n] for n in names], [g["max_labels"][n] for n in names])


def finish_run(run: RunDir, ds: ImetDataset, folds: np.ndarray, config: TrainConfig) -> dict:
    """Gather OOF, choose thresholds, write oof.npy, thresholds.json, plots; return the summary."""
    y = np.asarray(ds.train.y)
    oof, filled = gather_oof(run, folds, ds.space.n_classes)
    fold_states = {k: run.fold_state(k) for k in range(config.folds)}
    summary = {"run": str(run.path), "folds": {str(k): {kk: s.get(kk) for kk in
                                                        ("best_f2", "best_threshold", "best_epoch", "epochs")}
                                               for k, s in fold_states.items() if s.get("done")},
               "oof_images": int(filled.sum()), "train_images": int(len(y))}
    if not filled.any():
        return summary
    atomic_save_npy(oof, run.path / "oof.npy")
    atomic_write_csv(pd.DataFrame({"id": ds.train.ids, "fold": folds}), run.path / "oof_ids.csv")
    th = choose_thresholds(oof[filled], y[filled], ds.space, min_labels=config.min_labels,
                           max_labels=config.max_labels)
    atomic_write_json(th, run.thresholds_path)
    summary["oof_f2"] = {m: th[m]["f2"] for m in THRESHOLD_MODES if m in th}
    summary["threshold"] = th["global"]["threshold"]
    try:
        from imet_kit.plots.training import plot_history, plot_threshold_curve

        run.plots_dir.mkdir(exist_ok=True)
        summary["plots"] = [
            plot_history({k: run.read_history(k) for k in run.trained_folds()},
                         run.plots_dir / "history.png"),
            plot_threshold_curve(th, run.plots_dir / "oof_threshold.png"),
        ]
    except Exception as exc:  # noqa: BLE001 - a plot must never lose a finished run
        log.warning("could not draw run plots: %s", exc)
    return summary


def load_thresholds(run: RunDir) -> dict:
    if not run.thresholds_path.is_file():
        raise InputError(
            f"Run '{run.path}' has no thresholds.json (no fold finished yet). Finish training, "
            f"or pass --threshold."
        )
    return json.loads(run.thresholds_path.read_text())
