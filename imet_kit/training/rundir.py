"""The run folder: everything a training run produces, written atomically.

::

    RUN/config.json            resolved TrainConfig, written before training starts
    RUN/labels.csv             the run's attribute vocabulary (predict refuses another)
    RUN/folds.csv              id,fold
    RUN/fold{k}/best.keras     best model by val_f2
    RUN/fold{k}/last-e{N}.keras model + optimizer after N finished epochs (resume; state names it)
    RUN/fold{k}/state.json     last finished epoch, best val_f2 so far, done flag
    RUN/fold{k}/history.jsonl  one JSON line per epoch (loss, val_f2, lr, ...)
    RUN/fold{k}/oof.npy        validation probabilities of the best model
    RUN/oof.npy, oof_ids.csv   out-of-fold probabilities of every train image
    RUN/thresholds.json        thresholds chosen on OOF (global, per group, per class)
    RUN/summary.json           per-fold and OOF scores
    RUN/plots/*.png
    RUN/tensorboard/fold{k}/   TensorBoard events per fold (train: loss, learning_rate, one
                               augmented batch; validation: f2, threshold); full/ for --refit
    RUN/full/                  the refit model (train --refit), laid out like a fold
    RUN/stack/                 the second-level model (imet-kit stack)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imet_kit.atomic import atomic_write_csv, atomic_write_json
from imet_kit.config import TrainConfig
from imet_kit.data.labels import LabelSpace, read_labels, write_labels
from imet_kit.errors import InputError


class RunDir:
    """Paths and state of one run folder.

    Example:
        >>> run = RunDir("runs/demo")
        >>> run.fold_dir(0).name
        'fold0'
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    labels_path = property(lambda self: self.path / "labels.csv")
    folds_path = property(lambda self: self.path / "folds.csv")
    thresholds_path = property(lambda self: self.path / "thresholds.json")
    summary_path = property(lambda self: self.path / "summary.json")
    plots_dir = property(lambda self: self.path / "plots")

    def fold_dir(self, k: int) -> Path:
        return self.path / f"fold{k}"

    def exists(self) -> bool:
        return self.config_path.is_file()

    # --- creation and checks -------------------------------------------------------------
    def create(self, config: TrainConfig, space: LabelSpace, ids: list[str], folds: np.ndarray) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config.to_dict(), self.config_path)
        write_labels(space, self.labels_path)
        atomic_write_csv(pd.DataFrame({"id": ids, "fold": folds.astype(int)}), self.folds_path)

    def require(self) -> None:
        if not self.exists():
            raise InputError(
                f"'{self.path}' is not a run folder (no config.json). Expected the --out folder "
                f"of `imet-kit train`."
            )

    def load_config(self) -> TrainConfig:
        self.require()
        return TrainConfig.from_dict(json.loads(self.config_path.read_text()),
                                     source=str(self.config_path))

    def load_space(self) -> LabelSpace:
        self.require()
        return read_labels(self.labels_path)

    def load_folds(self) -> pd.DataFrame:
        return pd.read_csv(self.folds_path, dtype={"id": str, "fold": int})

    def check_same_labels(self, space: LabelSpace, data: str | os.PathLike) -> None:
        """Refuse data whose labels.csv differs from the run's."""
        mine = self.load_space()
        if mine.names != space.names:
            diff = next((i for i, (a, b) in enumerate(zip(mine.names, space.names)) if a != b),
                        min(len(mine.names), len(space.names)))
            raise InputError(
                f"labels.csv in '{data}' differs from the run's ({self.labels_path}): "
                f"{space.n_classes} vs {mine.n_classes} attributes, first difference at id {diff}. "
                f"Use the dataset the run was trained on, or train a new run."
            )

    def check_same_train_ids(self, ids: list[str], data: str | os.PathLike) -> None:
        folds = self.load_folds()
        if folds["id"].tolist() != list(ids):
            raise InputError(
                f"The run '{self.path}' was made on another dataset: its folds.csv lists "
                f"{len(folds)} images, '{data}/train.csv' {len(ids)} (or in another order). "
                f"Resume with the original --data, or start a new --out."
            )

    # --- per-fold state ------------------------------------------------------------------
    def fold_state(self, k: int) -> dict[str, Any]:
        p = self.fold_dir(k) / "state.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def write_fold_state(self, k: int, state: dict[str, Any]) -> None:
        atomic_write_json(state, self.fold_dir(k) / "state.json")

    def fold_done(self, k: int) -> bool:
        return bool(self.fold_state(k).get("done")) and (self.fold_dir(k) / "best.keras").is_file()

    def trained_folds(self) -> list[int]:
        return sorted(int(p.name[4:]) for p in self.path.glob("fold*")
                      if p.name[4:].isdigit() and (p / "best.keras").is_file())

    def read_history(self, k: int) -> list[dict[str, Any]]:
        p = self.fold_dir(k) / "history.jsonl"
        if not p.is_file():
            return []
        rows = []
        for line in p.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: drop it
                continue
        return rows

    def append_history(self, k: int, row: dict[str, Any]) -> None:
        """Rewrite history.jsonl with the new row, keeping only epochs before it (resume-safe)."""
        rows = [r for r in self.read_history(k) if r.get("epoch", -1) < row["epoch"]] + [row]
        p = self.fold_dir(k) / "history.jsonl"
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))
        os.replace(tmp, p)


