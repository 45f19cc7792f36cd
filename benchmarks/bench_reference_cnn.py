"""The hand-written reference CNN of issue 12, to compare the toolkit's recipe with (run by hand).

    python benchmarks/bench_reference_cnn.py DATA                 # 30 epochs at 96 px
    python benchmarks/bench_reference_cnn.py DATA --epochs 3      # smoke run

DATA is an iMet-format folder with ``holdout/test_labels.csv`` (``imet-kit demo-data DATA
--variant hard``). The model is the 60-line Keras CNN the toolkit was measured against: the
WHOLE image resized to a square (no crop), random translation and zoom (no flips), four blocks
of two 3x3 conv + BatchNorm + ReLU and a 2x2 max-pool (24 / 48 / 96 / 160 channels), a 3x3 conv
of 256, global max-pool concatenated with global average-pool, dropout 0.2, sigmoid; Adam with
cosine decay from 2e-3, batch 64. One global threshold is chosen on a 20 % split of train
(``sweep_thresholds`` under the 1..10 labels rule), the test split is predicted and scored with
``score_labels``. It prints the test F2 and the time; ``--json`` prints them as JSON;
``--submission PATH`` also writes the test predictions (for ``benchmarks/paired_f2.py``).

The toolkit's counterpart (same geometry, network, head and schedule) is ``--recipe cpu``::

    imet-kit train --data DATA --backbone plain_cnn --weights none --image-size 96 --resize squash \\
        --no-flip --augment light --pooling avgmax --embedding-dim 0 --lr 2e-3 --lr-schedule cosine \\
        --batch-size 64 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import keras
import numpy as np

from imet_kit.data.folder import load_dataset
from imet_kit.data.images import read_image
from imet_kit.data.labels import read_annotations
from imet_kit.multilabel.evaluate import score_labels
from imet_kit.multilabel.predict import write_submission
from imet_kit.multilabel.thresholds import binarize, sweep_thresholds


def load_images(paths, size: int) -> np.ndarray:
    """Every image, whole, resized to ``size x size`` (area averaging when shrinking)."""
    return np.stack([cv2.resize(read_image(p), (size, size), interpolation=cv2.INTER_AREA) for p in paths])


def reference_cnn(size: int, n_classes: int, bn_momentum: float = 0.99) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.RandomTranslation(0.1, 0.1)(x)
    x = keras.layers.RandomZoom(0.1)(x)
    for filters in (24, 48, 96, 160):
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(256, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=bn_momentum)(x))
    x = keras.layers.Concatenate()([keras.layers.GlobalMaxPooling2D()(x),
                                    keras.layers.GlobalAveragePooling2D()(x)])
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="sigmoid")(x))


def run(data: str, epochs: int = 30, size: int = 96, batch_size: int = 64, lr: float = 2e-3,
        seed: int = 0, bn_momentum: float = 0.99, verbose: int = 2, submission: str | None = None) -> dict:
    t0 = time.time()
    keras.utils.set_random_seed(seed)
    ds = load_dataset(data)
    y = np.asarray(ds.train.y, np.float32)
    x = load_images(ds.train_paths, size)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, len(y) // 5)
    va, tr = order[:n_val], order[n_val:]
    model = reference_cnn(size, ds.space.n_classes, bn_momentum)
    steps = epochs * int(np.ceil(len(tr) / batch_size))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps)),
                  "binary_crossentropy")
    t_fit = time.time()
    model.fit(x[tr], y[tr], batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    fit_s = time.time() - t_fit
    sweep = sweep_thresholds(model.predict(x[va], verbose=0), y[va], min_labels=1, max_labels=10)
    truth = read_annotations(Path(data) / "holdout" / "test_labels.csv", ds.space)
    probs = model.predict(load_images(ds.test_paths(truth.ids), size), verbose=0)
    pred = binarize(probs, sweep.best_threshold, min_labels=1, max_labels=10)
    if submission:
        write_submission(submission, truth.ids, pred, ds.space)
    scores = score_labels(np.asarray(truth.y), pred, ds.space)
    return {"test_f2": scores["f2"], "val_f2": sweep.best_score, "threshold": sweep.best_threshold,
            "groups": {g: v["f2"] for g, v in scores["groups"].items()},
            "labels_per_image": float(pred.sum(1).mean()), "n_train": int(len(tr)), "n_val": int(n_val),
            "n_test": int(len(probs)), "epochs": epochs, "size": size, "bn_momentum": bn_momentum,
            "fit_seconds": round(fit_s, 1),
            "seconds": round(time.time() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="iMet-format folder with holdout/test_labels.csv")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn-momentum", type=float, default=0.99,
                   help="BatchNorm momentum (default Keras' 0.99, as hand-written; on a short run of "
                        "a few hundred steps use 0.9, or the moving statistics lag and it collapses)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--submission", help="also write the test predictions here (id,attribute_ids), e.g. "
                                        "for benchmarks/paired_f2.py")
    args = p.parse_args()
    out = run(args.data, args.epochs, args.size, args.batch_size, args.lr, args.seed,
              args.bn_momentum, verbose=0 if args.json else 2, submission=args.submission)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"reference CNN: test F2 {out['test_f2']:.4f} (val F2 {out['val_f2']:.4f} at threshold "
          f"{out['threshold']:.2f}, {out['labels_per_image']:.1f} labels / image), "
          f"groups {', '.join(f'{g} {v:.4f}' for g, v in out['groups'].items())}; "
          f"{out['epochs']} epochs at {out['size']} px, train {out['fit_seconds']:.0f} s, "
          f"total {out['seconds']:.0f} s")


if __name__ == "__main__":
    main()
