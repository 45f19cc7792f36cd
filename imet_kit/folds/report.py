"""How good a fold split is: LD, LPD, empty (fold, label) pairs, fold sizes.

Measures (lower is better for all):

* **LD**, label distribution (Sechidis et al. 2011): over labels ``j`` and folds ``i``,
  the mean of ``|S_ij / (|S_i| - S_ij) - D_j / (|D| - D_j)|``, the gap between the
  positive:negative ratio of label ``j`` in validation fold ``i`` and in the whole data.
* **LPD**, label-pair distribution (Szymanski & Kajdanowicz 2017): the same over the
  label pairs that occur together in at least one row.
* **FZ**: (fold, label) pairs whose validation fold has no positive, counted among the
  labels with at least ``n_folds`` positives (those that could be in every fold).
* **fold-size std**: standard deviation of the number of rows per fold.

Labels with fewer positives than folds are listed apart: some validation folds
cannot hold one of them, so their threshold and F2 cannot be measured there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from imet_kit.errors import InputError
from imet_kit.folds.matrix import as_label_matrix

RARE_NOTE = ("Labels with fewer positives than folds cannot be in every validation fold: "
             "their positives are spread one per fold (almost always; 'folds' lists where each "
             "label landed) and the other folds have none, so the label's threshold and F2 "
             "cannot be measured there. They are not counted in FZ.")


def _check_folds(folds, n_rows: int, n_folds: int | None) -> tuple[np.ndarray, int]:
    folds = np.asarray(folds)
    if folds.shape != (n_rows,) or not np.issubdtype(folds.dtype, np.integer):
        raise InputError(f"Expected one integer fold per row ({n_rows} rows); received an array "
                         f"of shape {folds.shape} and dtype {folds.dtype}.")
    n_folds = int(folds.max()) + 1 if n_folds is None else int(n_folds)
    if folds.min() < 0 or folds.max() >= n_folds:
        raise InputError(f"Fold numbers must be 0..{n_folds - 1}; received "
                         f"{int(folds.min())}..{int(folds.max())}.")
    return folds.astype(np.int64), n_folds


def fold_label_counts(y, folds, n_folds: int | None = None) -> np.ndarray:
    """Positives of each label in each fold.

    Args:
        y: multi-hot ``(n_rows, n_labels)`` matrix, dense or ``scipy.sparse``.
        folds: fold of each row.
        n_folds: number of folds (default: ``max(folds) + 1``).

    Returns:
        ``int64`` array ``(n_folds, n_labels)``.

    Example:
        >>> fold_label_counts([[1, 0], [1, 1]], [0, 1]).tolist()
        [[1, 0], [1, 1]]
    """
    mat = as_label_matrix(y)
    folds, n_folds = _check_folds(folds, mat.shape[0], n_folds)
    counts = np.zeros((n_folds, mat.shape[1]), dtype=np.int64)
    np.add.at(counts, (np.repeat(folds, np.diff(mat.indptr)), mat.indices), 1)
    return counts


def _distribution(per_fold: np.ndarray, sizes: np.ndarray, total: np.ndarray, n_rows: int) -> float:
    """Sechidis' LD formula for ``per_fold`` (folds x items) and item totals ``total``."""
    neg = sizes[:, None] - per_fold
    fold_ratio = np.divide(per_fold, neg, out=np.full(per_fold.shape, np.nan), where=neg > 0)
    all_neg = n_rows - total
    all_ratio = np.divide(total, all_neg, out=np.full(total.shape, np.nan), where=all_neg > 0)
    gap = np.abs(fold_ratio - all_ratio[None, :])
    return float(np.nanmean(gap)) if np.isfinite(gap).any() else 0.0


def label_pair_distribution(y, folds, n_folds: int | None = None) -> float:
    """LPD: :func:`fold_report`'s LD over the label pairs that co-occur in ``y``.

    Example:
        >>> label_pair_distribution([[1, 1], [1, 1], [1, 0], [0, 1]], [0, 1, 0, 1])
        0.0
    """
    mat = as_label_matrix(y).astype(np.int32)
    folds, n_folds = _check_folds(folds, mat.shape[0], n_folds)
    n_labels = mat.shape[1]

    def pair_counts(m):
        co = sp.triu(m.T @ m, k=1).tocoo()
        return co.row.astype(np.int64) * n_labels + co.col, co.data

    keys, total = pair_counts(mat)
    if not len(keys):
        return 0.0
    order = np.argsort(keys)
    keys, total = keys[order], total[order]
    per_fold = np.zeros((n_folds, len(keys)), dtype=np.int64)
    for f in range(n_folds):
        k, v = pair_counts(mat[folds == f])
        per_fold[f, np.searchsorted(keys, k)] = v
    sizes = np.bincount(folds, minlength=n_folds)
    return _distribution(per_fold, sizes, total.astype(np.int64), mat.shape[0])


def fold_report(y, folds, n_folds: int | None = None, *,
                label_names: Sequence[str] | None = None, **meta) -> dict:
    """Measure a fold split: LD, LPD, FZ, fold sizes and the labels under ``n_folds`` positives.

    Args:
        y: multi-hot ``(n_rows, n_labels)`` matrix, dense or ``scipy.sparse``.
        folds: fold of each row (``0..n_folds-1``).
        n_folds: number of folds (default: ``max(folds) + 1``).
        label_names: optional name per label, used in the list of rare labels.
        **meta: extra JSON-able entries copied into the report (``method``, ``seed``...).

    Returns:
        A JSON-able dict with ``ld``, ``lpd``, ``fz``, ``fold_sizes``, ``fold_size_std``,
        ``empty_pairs`` (FZ's pairs), ``labels_under_n_folds`` and the counts.

    Example:
        >>> r = fold_report([[1, 0], [1, 1], [1, 0], [0, 1]], [0, 0, 1, 1])
        >>> r["fz"], r["fold_sizes"]
        (0, [2, 2])
    """
    mat = as_label_matrix(y)
    folds, n_folds = _check_folds(folds, mat.shape[0], n_folds)
    n_rows, n_labels = mat.shape
    counts = fold_label_counts(mat, folds, n_folds)
    n_pos = counts.sum(axis=0)
    sizes = np.bincount(folds, minlength=n_folds)
    eligible = n_pos >= n_folds
    empty = np.argwhere((counts == 0) & eligible[None, :])
    name = (lambda j: str(label_names[j])) if label_names is not None else (lambda j: str(j))
    rare = np.flatnonzero(~eligible & (n_pos > 0))
    report = dict(meta)
    report.update({
        "n_rows": int(n_rows), "n_labels": int(n_labels), "n_folds": n_folds,
        "fold_sizes": sizes.tolist(), "fold_size_std": float(sizes.std()),
        "ld": _distribution(counts, sizes, n_pos, n_rows),
        "lpd": label_pair_distribution(mat, folds, n_folds),
        "fz": len(empty), "labels_eligible": int(eligible.sum()),
        "empty_pairs": [{"fold": int(f), "label": int(j), "name": name(j), "positives": int(n_pos[j])}
                        for f, j in empty],
        "labels_without_positives": int((n_pos == 0).sum()),
        "labels_under_n_folds": {
            "count": len(rare), "note": RARE_NOTE,
            "labels": [{"label": int(j), "name": name(j), "positives": int(n_pos[j]),
                        "folds": np.flatnonzero(counts[:, j]).tolist()} for j in rare],
        },
    })
    return report


def format_report(report: dict) -> str:
    """The report as a short text table (what ``imet-kit folds`` prints)."""
    k = report["n_folds"]
    sizes = report["fold_sizes"]
    head = ", ".join(f"{key} {report[key]}" for key in ("method", "seed") if key in report)
    lines = [f"{k} folds over {report['n_rows']:,} rows x {report['n_labels']:,} labels"
             + (f" ({head})" if head else ""),
             "fold   " + "".join(f"{f:>9d}" for f in range(k)),
             "rows   " + "".join(f"{s:>9,d}" for s in sizes),
             f"LD   {report['ld']:.3e}   label distribution (lower is better)",
             f"LPD  {report['lpd']:.3e}   label-pair distribution (lower is better)",
             f"FZ   {report['fz']}   (fold, label) pairs with no validation positive, among the "
             f"{report['labels_eligible']:,} labels with >= {k} positives",
             f"fold-size std {report['fold_size_std']:.2f} (min {min(sizes):,}, max {max(sizes):,})"]
    rare = report["labels_under_n_folds"]["count"]
    if rare:
        lines.append(f"{rare} label(s) have fewer than {k} positives: each is spread one positive "
                     f"per fold and its F2 cannot be measured in the folds without one "
                     f"(listed in the JSON report).")
    for pair in report["empty_pairs"][:5]:
        lines.append(f"  empty: fold {pair['fold']} has no '{pair['name']}' "
                     f"({pair['positives']} positives)")
    return "\n".join(lines)


def save_report_json(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as indented JSON, atomically. Returns the path."""
    from imet_kit.atomic import atomic_write_json

    return atomic_write_json(report, path)


