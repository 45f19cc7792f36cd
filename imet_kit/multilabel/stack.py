"""Second-level model (stacking): each label learned from the out-of-fold probabilities of ALL
labels, since labels are correlated (a tag implies a culture; one label is the AND of two).

Features are the standardised logits of the run's out-of-fold probabilities (``RUN/oof.npy``).
Methods (scikit-learn):

* ``logreg``: one ``LogisticRegression`` per label on all C features (a label without both
  classes in the training rows predicts its base rate);
* ``mlp``: one ``MLPClassifier`` with C sigmoid outputs (one hidden ReLU layer).

The stacker is cross-validated on the run's own folds, which gives it out-of-fold predictions
of its own: thresholds are chosen on those (:func:`imet_kit.multilabel.oof.choose_thresholds`),
and its OOF F2 is compared with the base model's. The final model is fitted on every OOF row.

``RUN/stack/`` holds ``model.npz`` (plain arrays: standardisation and layer weights, loaded with
``allow_pickle=False``, so no code runs on load, unlike joblib/pickle), ``thresholds.json``,
``oof.npy`` and ``summary.json``. ``imet-kit predict`` applies it to the test probabilities when
it exists (``--no-stack`` skips it).

Example:
    >>> summary = stack_run("runs/demo")  # doctest: +SKIP
    >>> summary["stack_oof_f2"]["global"] > summary["base_oof_f2"]["global"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imet_kit.atomic import atomic_path, atomic_save_npy, atomic_write_json
from imet_kit.data.labels import read_annotations
from imet_kit.errors import InputError, describe_choices
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)

STACK_METHODS = ("logreg", "mlp")
STACK_DIR = "stack"
_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass
class StackModel:
    """A fitted stacker: standardise logits, then dense layers (ReLU between, sigmoid out)."""

    method: str
    mean: np.ndarray
    std: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """Stacked probabilities ``(n, C)`` from base probabilities ``(n, C)``."""
        x = (_logit(probs) - self.mean) / self.std
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {"mean": self.mean, "std": self.std, "method": np.array(self.method)}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        with atomic_path(path, keep_suffix=True) as tmp:
            np.savez(tmp, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> StackModel:
        with np.load(path, allow_pickle=False) as z:
            n = sum(1 for k in z.files if k.startswith("w"))
            return cls(str(z["method"]), z["mean"], z["std"], [z[f"w{i}"] for i in range(n)],
                       [z[f"b{i}"] for i in range(n)])


def _fit(x: np.ndarray, y: np.ndarray, method: str, c: float, hidden: int, seed: int):
    """(weights, biases) of one stacker fitted on standardised features ``x``."""
    n_classes = y.shape[1]
    if method == "mlp":
        from sklearn.neural_network import MLPClassifier

        mlp = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1.0 / c, max_iter=500,
                            random_state=seed)
        mlp.fit(x, y)
        return [w.astype(np.float64) for w in mlp.coefs_], [b for b in mlp.intercepts_]
    from sklearn.linear_model import LogisticRegression

    w, b = np.zeros((x.shape[1], n_classes)), np.zeros(n_classes)
    for j in range(n_classes):
        col = y[:, j]
        if col.min() == col.max():  # one class only: its base rate
            b[j] = _logit(np.array([col.mean()]))[0]
            continue
        lr = LogisticRegression(C=c, max_iter=1000).fit(x, col)
        w[:, j], b[j] = lr.coef_[0], lr.intercept_[0]
    return [w], [b]


def fit_stack(oof: np.ndarray, y: np.ndarray, folds: np.ndarray, *, method: str = "logreg",
              c: float = 1.0, hidden: int = 64, seed: int = 0) -> tuple[StackModel, np.ndarray]:
    """Cross-validate a stacker on ``folds`` and fit the final one on all rows.

    Args:
        oof: base out-of-fold probabilities ``(n, C)``.
        y: multi-hot truth ``(n, C)``.
        folds: fold of each row; the stacker's own OOF for fold k comes from a stacker fitted
            on the other folds.
        method: ``"logreg"`` or ``"mlp"``.
        c: inverse regularisation strength (``C`` of LogisticRegression; ``alpha = 1 / c``
            for the MLP).
        hidden: MLP hidden units.
        seed: MLP initialisation.

    Returns:
        ``(final model, stacked out-of-fold probabilities (n, C))``.
    """
    if method not in STACK_METHODS:
        raise InputError(f"Unknown stack method {method!r}. Expected one of: "
                         f"{describe_choices(STACK_METHODS)}.")
    if not c > 0 or hidden < 1:
        raise InputError(f"Stacking needs c > 0 and hidden >= 1; received c={c}, hidden={hidden}.")
    y = np.asarray(y, np.float64)
    folds = np.asarray(folds)
    if len(np.unique(folds)) < 2:
        raise InputError("Stacking needs out-of-fold predictions of at least two folds.")
    feats = _logit(oof)

    def fit_on(rows):
        mean, std = feats[rows].mean(0), feats[rows].std(0) + 1e-6
        ws, bs = _fit((feats[rows] - mean) / std, y[rows], method, c, hidden, seed)
        return StackModel(method, mean, std, ws, bs)

    stacked = np.zeros(oof.shape, np.float32)
    for k in np.unique(folds):
        stacked[folds == k] = fit_on(folds != k).predict(oof[folds == k])
    return fit_on(np.ones(len(folds), bool)), stacked


def stack_dir(run: str | os.PathLike | RunDir) -> Path:
    return Path(run.path if isinstance(run, RunDir) else run) / STACK_DIR


def load_stack(run: str | os.PathLike | RunDir) -> tuple[StackModel, dict] | None:
    """(model, thresholds) of ``RUN/stack``, or None when the run has no stacker."""
    d = stack_dir(run)
    if not (d / "model.npz").is_file() or not (d / "thresholds.json").is_file():
        return None
    return StackModel.load(d / "model.npz"), json.loads((d / "thresholds.json").read_text())


def stack_run(run: str | os.PathLike, data: str | os.PathLike | None = None, *,
              method: str = "logreg", c: float = 1.0, hidden: int = 64, seed: int = 0) -> dict:
    """Fit the stacker of a finished run and write ``RUN/stack/``; returns its summary.

    Args:
        run: a run folder with ``oof.npy`` (every fold trained).
        data: dataset folder with the run's train.csv (default: the run's ``data``).
        method, c, hidden, seed: see :func:`fit_stack`.
    """
    from imet_kit.multilabel.oof import THRESHOLD_MODES, choose_thresholds, load_thresholds

    run_dir = RunDir(run)
    config = run_dir.load_config()
    space = run_dir.load_space()
    if not (run_dir.path / "oof.npy").is_file():
        raise InputError(f"Run '{run_dir.path}' has no oof.npy; finish training it first.")
    oof = np.load(run_dir.path / "oof.npy")
    folds_df = run_dir.load_folds()
    data = Path(data or config.data)
    ann = read_annotations(data / "train.csv", space)
    if ann.ids != folds_df["id"].tolist():
        raise InputError(f"'{data}/train.csv' does not list the run's training images in its "
                         f"order; pass the --data the run was trained on.")
    filled = ~np.isnan(oof).any(1)
    if filled.sum() < len(oof):
        log.warning("stack: %d of %d images have no OOF prediction (untrained folds); left out",
                    int((~filled).sum()), len(oof))
    y = np.asarray(ann.y)[filled]
    model, stacked = fit_stack(oof[filled], y, folds_df["fold"].to_numpy()[filled], method=method,
                               c=c, hidden=hidden, seed=seed)
    th = choose_thresholds(stacked, y, space, min_labels=config.min_labels,
                           max_labels=config.max_labels)
    base = load_thresholds(run_dir)
    out = stack_dir(run_dir)
    model.save(out / "model.npz")
    atomic_write_json(th, out / "thresholds.json")
    full = np.full(oof.shape, np.nan, np.float32)
    full[filled] = stacked
    atomic_save_npy(full, out / "oof.npy")
    summary = {"run": str(run_dir.path), "method": method, "c": c,
               "hidden": hidden if method == "mlp" else None, "n_images": int(filled.sum()),
               "base_oof_f2": {m: base[m]["f2"] for m in THRESHOLD_MODES if m in base},
               "stack_oof_f2": {m: th[m]["f2"] for m in THRESHOLD_MODES if m in th},
               "model": str(out / "model.npz"), "format": "npz arrays (allow_pickle=False)"}
    atomic_write_json(summary, out / "summary.json")
    return summary
