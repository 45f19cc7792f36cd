"""Serving helpers: the images an export takes, and binarising with the files beside it (no
model needed; the round trip through each runtime is in test_export.py)."""

import json

import cv2
import numpy as np
import pytest

from imet_kit.data.augment import build_eval_transform
from imet_kit.data.images import read_image
from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError
from imet_kit.multilabel.export import labels_payload, thresholds_payload
from imet_kit.multilabel.oof import apply_thresholds
from imet_kit.multilabel.serving import binarize_exported, run_artefact, serving_images


@pytest.mark.parametrize("resize", ["crop", "squash", "pad"])
def test_serving_images_are_the_eval_transform_in_rgb(tmp_path, resize):
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(33, 31), (20, 48)]):  # odd sizes catch height/width swaps
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    x = serving_images(paths, 16, resize)
    assert x.dtype == np.uint8 and x.shape == (2, 16, 16, 3)
    t = build_eval_transform(16, resize=resize)
    for got, p in zip(x, paths):
        np.testing.assert_array_equal(got, t(image=read_image(p))["image"])


def _export_folder(tmp_path, space, thresholds):
    (tmp_path / "labels.json").write_text(json.dumps(labels_payload(space)))
    (tmp_path / "thresholds.json").write_text(json.dumps(thresholds_payload(thresholds)))
    return tmp_path


def test_binarize_exported_applies_the_runs_rule_in_every_mode(tmp_path):
    # the groups interleave, so a rule that ignored labels.json's group order would differ
    space = LabelSpace.from_names(["tag::a", "culture::x", "tag::b", "culture::y", "tag::c", "tag::d"])
    thresholds = {
        "mode": "class", "min_labels": 1, "max_labels": 3,
        "global": {"threshold": 0.3, "f2": 0.5, "curve": {"thresholds": [0.3], "f2": [0.5]}},
        "class": {"thresholds": [0.1, 0.5, 0.2, 0.6, 0.3, 0.4], "f2": 0.5},
        "group": {"thresholds": {"tag": 0.25, "culture": 0.45}, "min_labels": {"tag": 1, "culture": 0},
                  "max_labels": {"tag": 2, "culture": 1}, "f2": 0.5},
    }
    folder = _export_folder(tmp_path, space, thresholds)
    assert "curve" not in json.loads((folder / "thresholds.json").read_text())["global"]
    probs = np.random.default_rng(1).integers(0, 8, (60, 6)) / 8  # ties at every rank
    for mode in (None, "global", "class", "group"):
        np.testing.assert_array_equal(binarize_exported(probs, folder, mode),
                                      apply_thresholds(probs, thresholds, space, mode))
    with pytest.raises(InputError, match="Threshold mode 'best' is not in"):
        binarize_exported(probs, folder, "best")


def test_run_artefact_refuses_an_unknown_format(tmp_path):
    with pytest.raises(InputError, match="Unknown export format 'pt'"):
        run_artefact(tmp_path / "m.pt", "pt", np.zeros((1, 8, 8, 3), np.uint8))
