"""An iMet-format demo dataset made on the fly from real material shipped with packages.

Every image is a crop of a real photograph from scikit-image's sample data (or
matplotlib's Grace Hopper portrait) carrying:

* ``tag::<scene>`` for the photograph (and for a second photo inset, sometimes),
* ``tag::digit_<k>`` for each real handwritten digit pasted on it (scikit-learn's
  UCI digits, 0-4 per image),
* ``culture::<font>`` for each text card set in a real font: matplotlib's bundled
  TrueType faces (DejaVu, STIX, Computer Modern) and OpenCV's Hershey fonts
  (0-2 per image). Telling fonts apart is the fine-grained, "culture"-like style task.

Label frequencies are Zipf-shaped, so the tail holds labels with under 10 images,
as iMet's does. The same seed gives byte-identical files.

Example:
    >>> from imet_kit.data.demo import make_demo_dataset
    >>> info = make_demo_dataset("demo_data", size="small", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from imet_kit.atomic import atomic_write_csv
from imet_kit.data.demo_hard import hard_material, render_hard
from imet_kit.data.demo_material import (  # noqa: F401  (SCENES & co. were defined here: re-exported)
    HERSHEY_FONTS,
    LETTERS,
    SCENES,
    TTF_FONTS,
    Material,
    crop_resize,
    digit_sticker,
    load_material,
    place,
    text_card,
    zipf,
)
from imet_kit.data.labels import write_annotations, write_labels
from imet_kit.errors import InputError

log = logging.getLogger(__name__)

SIZES = {"small": (160, 40), "medium": (1200, 300), "full": (3000, 600)}
VARIANTS = ("default", "hard")

def _render(mat: Material, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    h, w = (int(v) for v in rng.integers(128, 301, size=2))
    scene_p, culture_p, digit_p = zipf(mat.n_scene, 1.2), zipf(mat.n_culture, 1.7), zipf(10, 1.0)
    scene = int(rng.choice(mat.n_scene, p=scene_p))
    img = crop_resize(mat.photos[scene], h, w, rng)
    labels = {mat.n_culture + scene}
    boxes: list = []
    if rng.random() < 0.15:  # a second photograph as an inset
        other = int(rng.choice(mat.n_scene, p=scene_p))
        ih, iw = int(h * rng.uniform(0.3, 0.45)), int(w * rng.uniform(0.3, 0.45))
        pos = place(h, w, ih + 4, iw + 4, boxes, rng)
        if pos is not None:
            img[pos[0] : pos[0] + ih + 4, pos[1] : pos[1] + iw + 4] = 255
            img[pos[0] + 2 : pos[0] + ih + 2, pos[1] + 2 : pos[1] + iw + 2] = crop_resize(
                mat.photos[other], ih, iw, rng)
            labels.add(mat.n_culture + other)
    n_cards = int(rng.choice(3, p=[0.15, 0.72, 0.13]))
    fonts = rng.choice(mat.n_culture, size=n_cards, replace=False, p=culture_p)
    for f in fonts:
        text = "".join(rng.choice(list(LETTERS), size=int(rng.integers(3, 6))))
        card = text_card(mat.fonts[int(f)], text, int(rng.integers(22, 34)), rng)
        pos = place(h, w, card.shape[0], card.shape[1], boxes, rng)
        if pos is not None:
            img[pos[0] : pos[0] + card.shape[0], pos[1] : pos[1] + card.shape[1]] = card
            labels.add(int(f))
    for _ in range(int(rng.choice(5, p=[0.25, 0.35, 0.2, 0.12, 0.08]))):
        k = int(rng.choice(10, p=digit_p))
        size = int(rng.integers(28, 52))
        pos = place(h, w, size, size, boxes, rng)
        if pos is None:
            continue
        samples = mat.digits[k]
        ink, alpha = digit_sticker(samples[int(rng.integers(len(samples)))], size, rng)
        patch = img[pos[0] : pos[0] + size, pos[1] : pos[1] + size].astype(np.float32)
        paper = np.float32(235)
        patch = patch * 0.25 + paper * 0.75  # a pale sticker so the digit reads on any photo
        img[pos[0] : pos[0] + size, pos[1] : pos[1] + size] = (patch * (1 - alpha) + ink * alpha).astype(np.uint8)
        labels.add(mat.n_culture + mat.n_scene + k)
    return img, sorted(labels)


def make_demo_dataset(
    path: str | os.PathLike, size: str = "small", seed: int = 0, *, n_train: int | None = None,
    n_test: int | None = None, variant: str = "default",
) -> dict:
    """Write an iMet-format demo dataset to ``path``.

    Layout: ``labels.csv``, ``train.csv``, ``train/<id>.png``, ``sample_submission.csv``,
    ``test/<id>.png`` and ``holdout/test_labels.csv`` (the test split's true labels,
    kept apart for scoring), plus ``demo_info.json``.

    Args:
        path: output folder (created; existing demo files are overwritten).
        size: ``"small"`` (160 + 40 images), ``"medium"`` (1,200 + 300) or ``"full"`` (3,000 + 600).
        seed: the same seed gives identical files.
        n_train, n_test: override the size's image counts.
        variant: ``"default"`` (49 labels, 128-300 px sides), or ``"hard"``
            (:mod:`imet_kit.data.demo_hard`: 98 labels, small objects on wide photographs).

    Returns:
        A dict with the counts and the folder.
    """
    if size not in SIZES:
        raise InputError(f"Unknown demo size '{size}'. Expected one of: {', '.join(SIZES)}.")
    if variant not in VARIANTS:
        raise InputError(f"Unknown demo variant '{variant}'. Expected one of: {', '.join(VARIANTS)}.")
    n_tr, n_te = SIZES[size]
    n_tr = n_tr if n_train is None else int(n_train)
    n_te = n_te if n_test is None else int(n_test)
    if n_tr < 1 or n_te < 0:
        raise InputError(f"n_train must be >= 1 and n_test >= 0; received {n_tr}, {n_te}.")
    root = Path(path)
    mat = load_material()
    render = _render
    if variant == "hard":
        mat, render = hard_material(mat), render_hard
    ids = [f"{v:016x}" for v in np.random.default_rng([seed, 7]).integers(0, 2**63, n_tr + n_te)]
    from tqdm.auto import tqdm

    splits = {"train": range(n_tr), "test": range(n_tr, n_tr + n_te)}
    label_rows: dict[str, list[list[int]]] = {"train": [], "test": []}
    for split, rows in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in tqdm(rows, desc=f"demo {split}", unit="img", disable=None, leave=False):
            img, labels = render(mat, np.random.default_rng([seed, i]))
            ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            tmp = root / split / f".{ids[i]}.png.tmp"
            buf.tofile(tmp)
            os.replace(tmp, root / split / f"{ids[i]}.png")
            label_rows[split].append(labels)
    write_labels(mat.space, root / "labels.csv")
    c = mat.space.n_classes
    for split, name in (("train", "train.csv"), ("test", "holdout/test_labels.csv")):
        rows = label_rows[split]
        y = np.zeros((len(rows), c), np.uint8)
        for r, labels in enumerate(rows):
            y[r, labels] = 1
        write_annotations(root / name, ids[: n_tr] if split == "train" else ids[n_tr:], y)
    import pandas as pd

    atomic_write_csv(pd.DataFrame({"id": ids[n_tr:], "attribute_ids": [""] * n_te}),
                     root / "sample_submission.csv")
    info = {"size": size, "seed": seed, "n_train": n_tr, "n_test": n_te, "n_classes": c,
            "groups": {g: int(mat.space.group_mask(g).sum()) for g in mat.space.group_names},
            "material": "scikit-image / matplotlib sample photos, scikit-learn digits, "
                        "matplotlib TrueType and OpenCV Hershey fonts"}
    if variant != "default":  # the default variant's files stay byte-identical to before variants
        info["variant"] = variant
    (root / "demo_info.json").write_text(json.dumps(info, indent=2))
    log.info("demo dataset written to %s", root)
    return {**info, "path": str(root)}


def write_identity_csv(root: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """Turn a demo dataset into an identity dataset for ``imet-kit train --task embedding``.

    The identity of a train image is its background scene (``tag::cat`` -> ``cat``);
    images with a second, inset scene are left out, so each kept image has one label.
    Writes ``OUT/train.csv`` (``id,label``) and ``OUT/train/<id>.png`` (hard links where
    the file system allows, else copies; no symlinks).

    Args:
        root: a folder written by :func:`make_demo_dataset`.
        out_dir: the identity dataset folder; default ``ROOT/identities``.

    Returns:
        ``OUT``, a folder to pass as ``--data``.

    Example:
        >>> data = write_identity_csv("demo_data")  # doctest: +SKIP
        >>> # imet-kit train --task embedding --data demo_data/identities ...
    """
    import shutil

    import pandas as pd

    from imet_kit.data.folder import find_images
    from imet_kit.data.labels import read_annotations, read_labels

    root = Path(root)
    out = root / "identities" if out_dir is None else Path(out_dir)
    space = read_labels(root / "labels.csv")
    train = read_annotations(root / "train.csv", space)
    cols = [i for i, n in enumerate(space.names) if n.startswith("tag::") and n[5:] in SCENES]
    scenes = np.asarray(train.y)[:, cols]
    keep = np.flatnonzero(scenes.sum(1) == 1)
    ids = [train.ids[i] for i in keep]
    labels = [space.names[cols[j]][5:] for j in scenes[keep].argmax(1)]
    (out / "train").mkdir(parents=True, exist_ok=True)
    for src in find_images(root / "train", ids, what="train images"):
        dst = out / "train" / Path(src).name
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # another file system, or no hard links there
            shutil.copy2(src, dst)
    atomic_write_csv(pd.DataFrame({"id": ids, "label": labels}), out / "train.csv")
    log.info("identity dataset: %d of %d images, %d scenes, in %s", len(ids), len(train.ids),
             len(set(labels)), out)
    return out
