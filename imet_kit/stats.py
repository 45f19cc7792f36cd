"""Dataset statistics: label counts per group, the long tail, image sizes, a baseline."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .labels import LabelSpace, load_dataset, read_annotations


def _image_sizes(paths: list[str]) -> list[tuple[int, int]]:
    from PIL import Image

    sizes = []
    for p in paths:
        with Image.open(p) as im:  # reads the header only
            sizes.append((im.height, im.width))
    return sizes


def dataset_report(root: str | os.PathLike, *, plot: bool = True) -> dict:
    """Validate an iMet folder and summarise it.

    Returns a dict with the train statistics (:func:`imet_kit.demo.describe`), the
    test image count, and, when ``holdout/test_labels.csv`` exists, the "most
    frequent labels" baseline's sample-averaged F2 on the test split. With ``plot``
    a label-frequency figure is written to ``ROOT/label_frequency.png``.
    """
    ds = load_dataset(root)
    y = np.asarray(ds.train.y)
    report = {"path": str(root), "train": describe(y, ds.space, _image_sizes(ds.train_paths))}
    sub = Path(root) / "sample_submission.csv"
    if sub.is_file():
        test_ids = ds.test_ids()
        ds.test_paths(test_ids)  # fails clearly if test images are missing
        report["test_images"] = len(test_ids)
    holdout = Path(root) / "holdout" / "test_labels.csv"
    if holdout.is_file():
        y_test = np.asarray(read_annotations(holdout, ds.space).y)
        k, f2 = most_frequent_baseline(y, y_test)
        report["baseline"] = {"method": f"predict the {k} most frequent train labels",
                              "test_f2": round(f2, 4)}
    if plot:
        report["plot"] = plot_label_frequency(y, ds.space, Path(root) / "label_frequency.png")
    return report


def format_report(report: dict) -> str:
    """The report as the aligned text table the CLI prints."""
    t = report["train"]
    lines = [
        f"dataset            {report['path']}",
        f"train images       {t['images']}",
        f"test images        {report.get('test_images', '-')}",
        f"attributes         {t['labels']}  ("
        + ", ".join(f"{g}: {n}" for g, n in t["groups"].items()) + ")",
        f"images per label   min {t['label_count_min']}, median {t['label_count_median']:g}, "
        f"max {t['label_count_max']}; {t['labels_under_10_images']} labels under 10 images",
        f"labels per image   min {t['labels_per_image_min']}, mean {t['labels_per_image_mean']}, "
        f"max {t['labels_per_image_max']}",
    ]
    if "height_range" in t:
        lines.append(f"image size (HxW)   {t['height_range'][0]}-{t['height_range'][1]} x "
                     f"{t['width_range'][0]}-{t['width_range'][1]} px")
    if "baseline" in report:
        b = report["baseline"]
        lines.append(f"baseline F2 (test) {b['test_f2']:.4f}  ({b['method']})")
    if report.get("plot"):
        lines.append(f"plot               {report['plot']}")
    return "\n".join(lines)


def plot_label_frequency(y: np.ndarray, space, path: str | os.PathLike) -> str:
    """Bar chart of images per label, sorted, one colour per attribute group (log scale)."""
    from .plots import _figure_module, save_figure

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


def most_frequent_baseline(y_train: np.ndarray, y_test: np.ndarray, beta: float = 2.0) -> tuple[int, float]:
    """The "predict the k most frequent labels" baseline: k chosen on train, F-beta on test.

    Returns:
        (k, sample-averaged F-beta on ``y_test``).
    """
    from .metrics import fbeta_samples

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


def describe(y: np.ndarray, space: LabelSpace, sizes: Sequence[tuple[int, int]] = ()) -> dict:
    """Label statistics of a multi-hot matrix: per group counts, tail, labels per image."""
    counts = np.asarray(y.sum(0)).ravel().astype(np.int64)
    per_image = np.asarray(y.sum(1)).ravel()
    out = {
        "images": int(y.shape[0]), "labels": int(space.n_classes),
        "groups": {g: int(space.group_mask(g).sum()) for g in space.group_names},
        "label_count_min": int(counts.min()), "label_count_median": float(np.median(counts)),
        "label_count_max": int(counts.max()), "labels_under_10_images": int((counts < 10).sum()),
        "labels_per_image_min": int(per_image.min()), "labels_per_image_mean": round(float(per_image.mean()), 2),
        "labels_per_image_max": int(per_image.max()),
    }
    if sizes:
        hw = np.array(sizes)
        out["height_range"] = [int(hw[:, 0].min()), int(hw[:, 0].max())]
        out["width_range"] = [int(hw[:, 1].min()), int(hw[:, 1].max())]
    return out
