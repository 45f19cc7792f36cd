"""`predict` at TTA 4 x 3 folds: one decode per image (today) vs one per (model, view) (before).

Run by hand (not a test)::

    python benchmarks/bench_predict_decode.py                  # 300 demo test images, 64 px
    python benchmarks/bench_predict_decode.py --n-test 600 --image-size 128 --pipeline tfdata

Builds a demo dataset (PNG, sides 128-300 px, as ``imet-kit demo-data`` writes), trains a
3-fold ``tiny_cnn`` run for one epoch (the weights do not matter for timing), then times
``predict_probs`` on the test split at TTA ``--tta`` x 3 folds:

(ref) the old loop, copied here as it was: for each fold model, for each view, a fresh
      ``ImageDataset`` (or tf.data ``eval_dataset``) decoding every file again: TTA x folds
      decodes per image;
(new) :func:`imet_kit.multilabel.predict.predict_probs`: every image decoded once
      (:mod:`imet_kit.data.views`), all views and all models fed from that decode, chunk by chunk
      (pydataset: decoded in threads, the next chunk while the models predict this one).

Both routes use the same models, batch size and pipeline; the table shows the best of
``--repeats`` runs (the machine may be shared), the ratio ref / new, and the largest
difference between the two routes' probabilities (they must agree within 1e-5).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402


def old_mean_probs(run, models, paths, tta, batch_size, pipeline):
    """imet_kit.multilabel.predict._mean_probs / _view_maker before one-decode (commit ffd2d59)."""
    import keras

    from imet_kit.data.augment import tta_views
    from imet_kit.models.loading import load_model
    from imet_kit.training.engine import resolve_size

    config = run.load_config()
    views = tta_views(tta, flip=config.flip, resize=config.resize)
    size = resolve_size(config)
    batch = batch_size or config.batch_size
    if pipeline == "tfdata":
        from imet_kit.data.tfdata_train import ImageFiles, eval_dataset

        source = ImageFiles(paths)

        def views_of(view):
            return eval_dataset(source, size=size, batch_size=batch, tta_view=view)
    else:
        from imet_kit.data.dataset import ImageDataset

        def views_of(view):
            return ImageDataset(paths, None, size=size, batch_size=batch, augment=None,
                                shuffle=False, tta_view=view, resize=config.resize)
    out = []
    for path in models:
        model = load_model(path, compile=False)
        total = None
        for view in views:
            p = model.predict(views_of(view), verbose=0).astype(np.float64)
            total = p if total is None else total + p
        out.append(total / len(views))
        del model
        keras.backend.clear_session()
    return np.mean(out, axis=0).astype(np.float32)


def build(root: Path, n_train: int, n_test: int, image_size: int, batch: int) -> None:
    """Demo data in ROOT/data + a 3-fold tiny_cnn run of one epoch in ROOT/run."""
    from imet_kit.cli.main import main
    from imet_kit.data.demo import make_demo_dataset

    data, run = root / "data", root / "run"
    make_demo_dataset(data, n_train=n_train, n_test=n_test, seed=0)
    code = main(["train", "--data", str(data), "--out", str(run), "--folds", "3", "--epochs", "1",
                 "--backbone", "tiny_cnn", "--weights", "none", "--image-size", str(image_size),
                 "--batch-size", str(batch)])
    if code:
        raise SystemExit(f"training the benchmark run failed (exit {code})")


def test_paths(data: Path) -> list[str]:
    """The test images in sample-submission order, as ``predict`` finds them."""
    from imet_kit.data.folder import find_images
    from imet_kit.data.labels import read_annotations, read_labels

    space = read_labels(data / "labels.csv")
    ids = read_annotations(data / "sample_submission.csv", space, allow_empty=True).ids
    return [str(p) for p in find_images(data / "test", ids, what="test images")]


def best_of(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=90)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--tta", type=int, default=4)
    ap.add_argument("--pipeline", choices=["pydataset", "tfdata"], default="pydataset")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", help="build (or reuse) the data and run in this folder")
    args = ap.parse_args()

    from imet_kit.multilabel.predict import predict_probs
    from imet_kit.training.rundir import RunDir

    root = Path(args.keep or tempfile.mkdtemp(prefix="bench_predict_"))
    if not (root / "run" / "fold2" / "best.keras").is_file():
        build(root, args.n_train, args.n_test, args.image_size, args.batch_size)
    run, paths = RunDir(root / "run"), test_paths(root / "data")
    folds = run.trained_folds()
    models = [run.fold_dir(k) / "best.keras" for k in folds]
    t_ref, p_ref = best_of(lambda: old_mean_probs(run, models, paths, args.tta, args.batch_size,
                                                  args.pipeline), args.repeats)
    t_new, (p_new, _) = best_of(lambda: predict_probs(run, paths, tta=args.tta, folds=folds,
                                                      batch_size=args.batch_size, progress=False,
                                                      pipeline=args.pipeline), args.repeats)
    n, dec_ref = len(paths), args.tta * len(folds)
    print(f"predict {n} demo test PNGs, {args.image_size} px, TTA {args.tta} x {len(folds)} folds, "
          f"tiny_cnn, batch {args.batch_size}, pipeline {args.pipeline}, {os.cpu_count()} cores "
          f"(best of {args.repeats})")
    print(f"  (ref) old loop, {dec_ref} decodes per image: {t_ref:7.2f} s  {n / t_ref:7.1f} img/s")
    print(f"  (new) predict_probs, 1 decode per image:  {t_new:7.2f} s  {n / t_new:7.1f} img/s")
    print(f"  ratio ref / new: {t_ref / t_new:.2f}x   max |p_new - p_ref| = "
          f"{float(np.abs(p_new - p_ref).max()):.2e}")


if __name__ == "__main__":
    main()
