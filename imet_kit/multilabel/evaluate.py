"""Scoring a submission or probabilities against true labels: F2, precision, recall, per group."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imet_kit.data.labels import LabelSpace, read_annotations, read_labels
from imet_kit.errors import InputError


def score_labels(y_true: np.ndarray, y_pred: np.ndarray, space: LabelSpace, beta: float = 2.0) -> dict:
    """Sample-averaged F-beta / precision / recall overall and per attribute group.

    Example:
        >>> space = LabelSpace.from_names(["a::x", "b::y"])
        >>> score_labels(np.array([[1, 0]]), np.array([[1, 1]]), space)["f2"]
        0.8333333333333334
    """
    from imet_kit.multilabel.metrics import fbeta_samples, precision_recall_samples

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise InputError(f"Truth has shape {y_true.shape}, prediction {y_pred.shape}; expected equal.")
    p, r = precision_recall_samples(y_true, y_pred)
    out = {"images": int(len(y_true)), "f2": float(fbeta_samples(y_true, y_pred, beta=beta)),
           "precision": float(p), "recall": float(r), "groups": {}}
    for g in space.group_names:
        m = space.group_mask(g)
        rows = y_true[:, m].sum(1) > 0  # per group: images that have an attribute of the group
        if rows.any():
            gp, gr = precision_recall_samples(y_true[rows][:, m], y_pred[rows][:, m])
            out["groups"][g] = {"images": int(rows.sum()),
                                "f2": float(fbeta_samples(y_true[rows][:, m], y_pred[rows][:, m], beta=beta)),
                                "precision": float(gp), "recall": float(gr)}
    return out


def evaluate(truth: str | os.PathLike, labels_csv: str | os.PathLike, *,
             submission: str | os.PathLike | None = None, probs: str | os.PathLike | None = None,
             threshold: float = 0.2, min_labels: int = 1, max_labels: int = 10) -> dict:
    """Score ``submission.csv`` (or a ``*_probs.npy`` with a threshold) against ``truth`` CSV.

    Rows are matched by id; a submission missing ids of the truth file is an error.
    A ``<name>_probs.npy`` written by `imet-kit predict` takes its row ids from the
    ``<name>.csv`` beside it; any other ``.npy`` must follow the truth file's order.
    """
    space = read_labels(labels_csv)
    true = read_annotations(truth, space)
    if (submission is None) == (probs is None):
        raise InputError("Give exactly one of --submission or --probs.")
    if submission is not None:
        pred = submission_rows(submission, true.ids, space, truth=truth)
    else:
        from imet_kit.multilabel.thresholds import binarize

        arr = np.load(probs)
        ids = _probs_ids(probs)
        if ids is not None:  # written by `imet-kit predict`: rows follow its submission.csv
            index = {i: r for r, i in enumerate(ids)}
            missing = [i for i in true.ids if i not in index]
            if missing or len(ids) != len(arr):
                raise InputError(f"Probabilities '{probs}' do not cover the ids in '{truth}' "
                                 f"(first missing: {', '.join(missing[:3]) or '-'}).")
            arr = arr[[index[i] for i in true.ids]]
        if arr.shape != (len(true.ids), space.n_classes):
            raise InputError(f"Probabilities '{probs}' have shape {arr.shape}; expected "
                             f"{(len(true.ids), space.n_classes)} in the truth file's id order.")
        pred = binarize(arr, threshold, min_labels=min_labels, max_labels=max_labels)
    return score_labels(np.asarray(true.y), pred, space)


def submission_rows(submission: str | os.PathLike, ids: list[str], space: LabelSpace, *,
                    truth: str | os.PathLike = "the truth file") -> np.ndarray:
    """The multi-hot rows of ``submission.csv`` for ``ids``, in that order (any row order on disk);
    an id it lacks is an error."""
    sub = read_annotations(submission, space, allow_empty=True)
    index = {i: r for r, i in enumerate(sub.ids)}
    missing = [i for i in ids if i not in index]
    if missing:
        raise InputError(f"Submission '{submission}' lacks {len(missing)} of the {len(ids)} "
                         f"ids in '{truth}' (first: {', '.join(missing[:3])}).")
    return np.asarray(sub.y)[[index[i] for i in ids]]


def _probs_ids(probs: str | os.PathLike) -> list[str] | None:
    """Ids of a ``<name>_probs.npy`` from the ``<name>.csv`` submission written beside it."""
    p = Path(probs)
    if not p.name.endswith("_probs.npy"):
        return None
    sub = p.with_name(p.name[: -len("_probs.npy")] + ".csv")
    if not sub.is_file():
        return None
    import pandas as pd

    return pd.read_csv(sub, dtype=str, keep_default_na=False)["id"].tolist()


def format_scores(scores: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'':10s} {'images':>7s} {'F2':>7s} {'prec':>7s} {'recall':>7s}")
    lines.append(f"{'all':10s} {scores['images']:7d} {scores['f2']:7.4f} {scores['precision']:7.4f} "
                 f"{scores['recall']:7.4f}")
    for g, s in scores["groups"].items():
        lines.append(f"{g:10s} {s['images']:7d} {s['f2']:7.4f} {s['precision']:7.4f} {s['recall']:7.4f}")
    return "\n".join(lines)


def default_truth(data: str | os.PathLike) -> Path:
    return Path(data) / "holdout" / "test_labels.csv"


def format_table(rows: dict[str, dict], *, baseline: bool = False) -> str:
    """One line per scored source: F2, precision, recall, per-group F2 and (optionally) the
    gain over the first row, the baseline."""
    groups = sorted({g for r in rows.values() for g in r.get("groups", {})})
    width = max(len(n) for n in rows) + 2
    head = f"{'':{width}s}{'F2':>8s}{'prec':>8s}{'recall':>8s}" + "".join(f"{g + ' F2':>12s}" for g in groups)
    head += f"{'vs base':>9s}" if baseline else ""
    lines = [head]
    base = next(iter(rows.values()))["f2"] if baseline else None
    for name, r in rows.items():
        cell = lambda v: f"{v:8.4f}" if v is not None else f"{'-':>8s}"  # noqa: E731
        line = f"{name:{width}s}{cell(r['f2'])}{cell(r.get('precision'))}{cell(r.get('recall'))}"
        line += "".join(f"{r['groups'][g]['f2']:12.4f}" if g in r.get("groups", {}) else f"{'-':>12s}"
                        for g in groups)
        if baseline:
            line += f"{r['f2'] - base:+9.4f}" if r is not next(iter(rows.values())) else f"{'':9s}"
        lines.append(line)
    return "\n".join(lines)


def most_frequent_baseline(y_train: np.ndarray, y_test: np.ndarray, beta: float = 2.0) -> tuple[int, float]:
    """The "predict the k most frequent labels" baseline: k chosen on train, F-beta on test.

    Returns:
        (k, sample-averaged F-beta on ``y_test``).
    """
    from imet_kit.multilabel.metrics import fbeta_samples

    order = np.argsort(-np.asarray(y_train).sum(0).astype(np.int64), kind="stable")
    best_k, best = 1, -1.0
    for k in range(1, min(10, y_train.shape[1]) + 1):
        pred = np.zeros_like(y_train)
        pred[:, order[:k]] = 1
        score = fbeta_samples(y_train, pred, beta=beta)
        if score > best:
            best_k, best = k, score
    pred = np.zeros_like(y_test)
    pred[:, order[:best_k]] = 1
    return best_k, float(fbeta_samples(y_test, pred, beta=beta))


def holdout_baseline(root: str | os.PathLike) -> dict | None:
    """The "most frequent labels" baseline on ``ROOT/holdout/test_labels.csv`` (None without it)."""
    from imet_kit.data.labels import read_annotations, read_labels

    root = Path(root)
    holdout = root / "holdout" / "test_labels.csv"
    if not holdout.is_file():
        return None
    space = read_labels(root / "labels.csv")
    y_train = np.asarray(read_annotations(root / "train.csv", space).y)
    k, f2 = most_frequent_baseline(y_train, np.asarray(read_annotations(holdout, space).y))
    return {"method": f"predict the {k} most frequent train labels", "test_f2": round(f2, 4)}
