"""The cpu recipe's training speed with 1 and 2 loader threads, against the model alone (by hand).

    python benchmarks/bench_recipe_workers.py DATA [--n 960]

DATA is an iMet-format folder (``imet-kit demo-data D --size medium --variant hard``). Rows, all
in images per second of one training epoch of the recipe's network (``plain_cnn`` 96 px, avg+max
head, batch 64, Adam), warmed up first:

* model alone: ``fit`` on images already in memory (the ceiling: no decoding at all);
* workers 1: ``fit`` on the recipe's ``ImageDataset`` (squash, light augmentation, no flips),
  which Keras then loads on the training thread, between steps;
* workers 2: the same with two loader threads, so that loading overlaps the model's step.

It prints the ratio of workers 2 to workers 1, the reason the recipe sets ``"workers": 2``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imet_kit.config import TrainConfig
from imet_kit.data.dataset import ImageDataset
from imet_kit.data.folder import load_dataset
from imet_kit.models.classifier import build_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--n", type=int, default=960, help="training images per epoch (default 960)")
    args = p.parse_args()
    cfg = TrainConfig.from_recipe("cpu")
    ds = load_dataset(args.data)
    paths = list(ds.train_paths)[: args.n]
    y = np.asarray(ds.train.y)[: len(paths)].astype("float32")
    model = build_classifier(cfg.backbone, y.shape[1], input_size=cfg.image_size, weights=None,
                             pooling=cfg.pooling, embedding_dim=cfg.embedding_dim, dropout=cfg.dropout)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.random.default_rng(0).integers(0, 255, (len(paths), cfg.image_size, cfg.image_size, 3))
    x = x.astype("float32")
    model.fit(x[:128], y[:128], batch_size=cfg.batch_size, epochs=1, verbose=0)  # warm-up

    def timed(fit) -> float:
        t = time.perf_counter()
        fit()
        return len(paths) / (time.perf_counter() - t)

    rates = {"model alone": timed(lambda: model.fit(x, y, batch_size=cfg.batch_size, epochs=1,
                                                     verbose=0))}
    for workers in (1, 2):
        loader = ImageDataset(paths, y, size=cfg.image_size, batch_size=cfg.batch_size,
                              augment=cfg.augment, resize=cfg.resize, flip=cfg.flip, workers=workers)
        rates[f"workers {workers}"] = timed(lambda loader=loader: model.fit(loader, epochs=1, verbose=0))
    for name, rate in rates.items():
        print(f"{name:12s} {rate:7.1f} img/s")
    print(f"workers 2 / workers 1: {rates['workers 2'] / rates['workers 1']:.2f}x")


if __name__ == "__main__":
    main()
