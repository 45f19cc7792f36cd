"""Training in phases (``init_from``): fold k of a new run starts from fold k of an earlier run.

Progressive resizing: train at 128 px, then ``--init-from RUN1 --image-size 256 --lr 1e-4`` and
fewer epochs. Fold k's model never saw fold k's validation images in either phase, because the
new run must have the same folds (same ``folds``, ``fold_method``, ``seed`` and training images,
checked before anything is written, and again here from the earlier run's ``folds.csv``). A
refit (``RUN/full``) starts from the earlier run's ``full/best.keras``.

The weights are copied tensor by tensor (convolutions do not depend on the image size); the
optimizer starts fresh with this run's learning rate and schedule.

Example:
    >>> cfg = TrainConfig(data="d", out="runs/p2", init_from="runs/p1", image_size=256)  # doctest: +SKIP
"""

from __future__ import annotations

import logging

import numpy as np

from imet_kit.errors import InputError
from imet_kit.training.rundir import RunDir

log = logging.getLogger(__name__)


def load_init_folds(config, data) -> np.ndarray:
    """The earlier run's fold of every training image (refuses another dataset)."""
    prev = RunDir(config.init_from)
    prev.check_same_train_ids(data.ids, config.data)
    return prev.load_folds()["fold"].to_numpy()


def source_model(config, data, tr) -> str:
    """The earlier run's model that the model trained on rows ``tr`` starts from."""
    prev = RunDir(config.init_from)
    held_out = np.setdiff1d(np.arange(len(data.ids)), np.asarray(tr))
    if not len(held_out):
        return str(prev.path / "full" / "best.keras")
    ks = np.unique(np.asarray(data.extra["init_folds"])[held_out])
    if len(ks) != 1:
        raise InputError(
            f"init_from: this fold's validation images lie in folds {ks.tolist()} of "
            f"'{prev.path}', so no single earlier fold model is free of them. Use the earlier "
            f"run's folds, fold_method and seed."
        )
    return str(prev.fold_dir(int(ks[0])) / "best.keras")


def init_weights(model, config, data, tr) -> str:
    """Copy the weights of :func:`source_model` into ``model``; returns the source path."""
    from imet_kit.models.loading import load_model

    path = source_model(config, data, tr)
    src = load_model(path, compile=False)
    mine, theirs = model.weights, src.weights
    bad = [(a.path, tuple(a.shape), tuple(b.shape)) for a, b in zip(mine, theirs)
           if tuple(a.shape) != tuple(b.shape)]
    if len(mine) != len(theirs) or bad:
        raise InputError(
            f"init_from: '{path}' does not fit this model ({len(theirs)} vs {len(mine)} weight "
            f"tensors{'; first mismatch ' + str(bad[0]) if bad else ''}). Use the same backbone, "
            f"pooling, embedding_dim and labels as the earlier run."
        )
    model.set_weights(src.get_weights())
    del src
    log.info("init_from: weights of %s", path)
    return path
