"""A dataset folder in iMet layout: find its images, load and validate it as a whole."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imet_kit.data.labels import (
    IMAGE_EXTENSIONS,
    Annotations,
    LabelSpace,
    read_annotations,
    read_labels,
)
from imet_kit.errors import DataFileError


def find_images(
    folder: str | os.PathLike, ids: Sequence[str], *, what: str = "images"
) -> list[str]:
    """Resolve each id to ``folder/<id>.<ext>``; raise naming how many are missing.

    Example:
        >>> find_images("/nonexistent", ["a"])  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        DataFileError: Image folder '/nonexistent' does not exist...
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(
            f"Image folder '{folder}' does not exist; expected one image file per id "
            f"({'/'.join(IMAGE_EXTENSIONS)}) named <id>.png as in iMet."
        )
    by_stem: dict[str, str] = {}
    for entry in os.scandir(folder):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(stem, entry.path)
    paths, missing = [], []
    for i in ids:
        p = by_stem.get(i)
        if p is None:
            missing.append(i)
        paths.append(p)
    if missing:
        first = ", ".join(missing[:5])
        raise DataFileError(
            f"{len(missing)} of {len(ids)} {what} listed are missing from '{folder}' "
            f"(first: {first}). Expected files named <id>.png (or .jpg); copy them there or "
            f"drop those rows from the CSV."
        )
    return paths  # type: ignore[return-value]


@dataclass
class ImetDataset:
    """A dataset folder in iMet layout, validated and loaded.

    Attributes:
        root: the folder.
        space: the label vocabulary from labels.csv.
        train: train ids and multi-hot labels.
        train_paths: one image path per train id.
    """

    root: Path
    space: LabelSpace
    train: Annotations
    train_paths: list[str]

    def test_ids(self) -> list[str]:
        sub = read_annotations(self.root / "sample_submission.csv", self.space, allow_empty=True)
        return sub.ids

    def test_paths(self, ids: Sequence[str] | None = None) -> list[str]:
        ids = self.test_ids() if ids is None else ids
        return find_images(self.root / "test", ids, what="test images")


def load_dataset(root: str | os.PathLike, *, check_images: bool = True) -> ImetDataset:
    """Load and validate ``labels.csv``, ``train.csv`` and the ``train/`` images.

    Example:
        >>> ds = load_dataset("demo_data")  # doctest: +SKIP
        >>> ds.space.n_classes, ds.train.y.shape  # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFileError(
            f"Dataset folder '{root}' does not exist. Expected a folder with labels.csv, "
            f"train.csv and train/ (make one with `imet-kit demo-data {root}`)."
        )
    space = read_labels(root / "labels.csv")
    train = read_annotations(root / "train.csv", space)
    paths = find_images(root / "train", train.ids, what="train images") if check_images else []
    return ImetDataset(root=root, space=space, train=train, train_paths=paths)
