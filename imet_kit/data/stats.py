"""Dataset statistics: label counts per group, the long tail, image sizes, a baseline."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imet_kit.data.folder import load_dataset
from imet_kit.data.images import check_images, read_image
from imet_kit.data.labels import LabelSpace
from imet_kit.plots.data import plot_label_frequency


def _image_sizes(paths: list[str]) -> list[tuple[int, int]]:
    from PIL import Image

    sizes = []
    for p in paths:
        try:
            with Image.open(p) as im:  # reads the header only
                sizes.append((im.height, im.width))
        except (OSError, SyntaxError, ValueError):  # a format only OpenCV reads
            sizes.append(read_image(p).shape[:2])
    return sizes


def dataset_report(root: str | os.PathLike, *, plot: bool = True,
                   workers: int | None = None) -> dict:
    """Validate an iMet folder and summarise it.

    Checks the CSVs (:func:`imet_kit.data.folder.load_dataset`), that every listed train and
    test image exists and that every one of them decodes (``workers`` threads; about 2 ms per
    image per thread), raising one :class:`~imet_kit.errors.ImageReadError` that names the
    unreadable files.

    Returns a dict with the train statistics (:func:`imet_kit.data.demo.describe`), the
    test image count (:func:`imet_kit.multilabel.evaluate.holdout_baseline` adds the "most
    frequent labels" baseline when the test labels are known). With ``plot``
    a label-frequency figure is written to ``ROOT/label_frequency.png``.
    """
    ds = load_dataset(root)
    sub = Path(root) / "sample_submission.csv"
    test_paths = ds.test_paths(ds.test_ids()) if sub.is_file() else None
    check_images(list(ds.train_paths) + (test_paths or []), decode=True, workers=workers)
    y = np.asarray(ds.train.y)
    report = {"path": str(root), "train": describe(y, ds.space, _image_sizes(ds.train_paths))}
    if test_paths is not None:
        report["test_images"] = len(test_paths)
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
