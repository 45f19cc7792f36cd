"""Input-pipeline throughput: notebook generator vs ImageDataset vs tf.data vs decode limit.

Run by hand (not a test)::

    python benchmarks/bench_pipeline.py --n 2000 --repeats 3
    python benchmarks/bench_pipeline.py --n 256 --rows b,e,e2 --fit tiny_cnn  # train --pipeline


Images shaped like iMet: PNG, shorter side 300 px, aspect 1-2.3 either way, cut from
real photographs shipped with scikit-image (plus mild sensor-like noise, so PNG sizes
resemble iMet's ~200-350 KiB). Input 288 px, batch 32, augmentation = the notebook
preset (flip, shift-scale-rotate, random crop). Rows:

(a)  the 2019 notebook's generator, reimplemented: a new albumentations Compose per
     image (today's names), float64 batch filled image by image, one worker;
(a2) the same with 2 worker threads (for reference);
(b)  ImageDataset, 2 worker threads, iterated as ``fit()`` does (PyDatasetAdapter);
(b2) ImageDataset, 2 worker processes;
(c)  make_tf_dataset on JPEG TFRecords (q95), notebook preset, in-graph;
(c2) the same, eval transform (resize + centre crop);
(d)  decode limit: cv2.imread + resize to 288x288 on one thread (OpenCV single-threaded),
     times the number of cores; (d2) the same measured on 2 threads at once;
(e)  what `imet-kit train --pipeline tfdata` feeds fit: the PNG files decoded in-graph, notebook
     preset (imet_kit.data.tfdata_train.train_data over ImageFiles); (e2) the same from the JPEG
     TFRecords (`--tfrecords`). (b) is what `--pipeline pydataset --workers 2` feeds fit.

``--fit BACKBONE`` adds rows (f), (f2), (f3): one epoch of ``model.fit`` (weights=None, warmed
up first) fed by (b), (e) and (e2): the train-time images/s a user sees, model and input
pipeline sharing the cores. ``--rows`` picks rows by letter (default all).

Every row iterates whole epochs; the table shows the best of ``--repeats`` runs (the
machine may be shared) and the median, and CPU ms per image (all threads; worker
processes counted once reaped), which load from other programs disturbs less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

SIZE, BATCH = 288, 32


def make_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    """Write ``n`` iMet-shaped PNGs into ``folder`` (reused when already there)."""
    import skimage

    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(folder / f"{i:05d}.png") for i in range(n)]
    if all(os.path.exists(p) for p in paths):
        return paths
    src = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "color.png", "horse.png"]
    bases = [cv2.imread(str(src / nm), cv2.IMREAD_COLOR) for nm in names]
    bases = [b for b in bases if b is not None and min(b.shape[:2]) >= 200]
    rng = np.random.default_rng(seed)
    for p in paths:
        base = bases[rng.integers(len(bases))]
        h, w = base.shape[:2]
        aspect = rng.uniform(1.0, 2.3)
        ch = int(rng.uniform(0.5, 1.0) * min(h, w / aspect))
        cw = int(ch * aspect)
        if rng.random() < 0.4:  # portrait
            ch, cw = min(cw, h), ch
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = base[y0 : y0 + ch, x0 : x0 + cw]
        scale = 300 / min(crop.shape[:2])
        img = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                         interpolation=cv2.INTER_CUBIC)
        img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(p, img)
    return paths


def notebook_generator(paths, y, workers):
    """The 2019 notebook's generator, with today's albumentations names."""
    import albumentations as A
    import keras

    class NotebookGenerator(keras.utils.Sequence):
        def __init__(self, **kw):
            super().__init__(**kw)

        def __len__(self):
            return int(np.ceil(len(paths) / BATCH))

        def augment(self, img):
            aug = A.Compose([  # built for every image, as in the notebook
                A.HorizontalFlip(p=0.5),
                A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-15, 15),
                         border_mode=cv2.BORDER_REFLECT_101, p=0.5),
                A.RandomCrop(SIZE, SIZE, pad_if_needed=True),
            ])
            return aug(image=img)["image"]

        def __getitem__(self, idx):
            rows = range(idx * BATCH, min(len(paths), (idx + 1) * BATCH))
            batch_x = np.zeros((len(rows), SIZE, SIZE, 3))  # float64
            batch_y = np.zeros((len(rows), y.shape[1]))
            for i, r in enumerate(rows):
                img = cv2.cvtColor(cv2.imread(paths[r]), cv2.COLOR_BGR2RGB)
                batch_x[i] = self.augment(img)
                batch_y[i] = y[r]
            return batch_x, batch_y

    return NotebookGenerator(workers=workers)


def _clock():
    t = os.times()  # CPU of this process (all threads) and of reaped worker processes
    return time.perf_counter(), t.user + t.system + t.children_user + t.children_system


def _rate(start, n):
    wall, cpu = _clock()
    return n / (wall - start[0]), (cpu - start[1]) / n * 1e3


def time_pydataset(ds):
    """(images/s, CPU ms/image) over one epoch, iterated as ``fit()`` iterates a PyDataset."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(ds)
    adapter.on_epoch_begin()
    start, n = _clock(), 0
    for batch in adapter.get_numpy_iterator():
        n += len(batch[0])
    adapter.on_epoch_end()
    return _rate(start, n)


def time_tf(ds):
    start, n = _clock(), 0
    for x, _ in ds:
        n += int(x.shape[0])
    return _rate(start, n)


def time_fit(model, data):
    """(images/s, CPU ms/image) of one ``model.fit`` epoch (already traced) on ``data``."""
    n = data.n_rows if hasattr(data, "n_rows") else len(data.kept_indices)
    start = _clock()
    model.fit(data, epochs=1, verbose=0)
    return _rate(start, n)


def _decode_resize(p):
    return cv2.resize(cv2.imread(p), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)


def time_decode_limit(paths, threads: int = 1):
    """imread + resize with OpenCV single-threaded inside, on ``threads`` Python threads."""
    from concurrent.futures import ThreadPoolExecutor

    saved = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = _clock()
        if threads == 1:
            for p in paths:
                _decode_resize(p)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(_decode_resize, paths))
        return _rate(start, len(paths))
    finally:
        cv2.setNumThreads(saved)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="epochs timed per row (default 3)")
    ap.add_argument("--data-dir", default="/tmp/imet_bench", help="image cache folder")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="cores for the limit (d)")
    ap.add_argument("--rows", default="", help="comma-separated row letters, e.g. b,e,e2 (default all)")
    ap.add_argument("--fit", metavar="BACKBONE", help="also time model.fit epochs, e.g. tiny_cnn")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from imet_kit.data.dataset import ImageDataset
    from imet_kit.data.tfdata import make_tf_dataset, write_tfrecords
    from imet_kit.data.tfdata_train import ImageFiles, RecordFolder, train_data

    data = Path(args.data_dir)
    t0 = time.perf_counter()
    paths = make_images(data / "png", args.n)
    sizes = [os.path.getsize(p) for p in paths]
    shapes = [cv2.imread(p).shape[:2] for p in paths[:200]]
    print(f"{len(paths)} PNGs, mean {np.mean(sizes) / 1024:.0f} KiB, shorter side "
          f"{min(min(s) for s in shapes)}-{max(min(s) for s in shapes)}, longer side "
          f"{min(max(s) for s in shapes)}-{max(max(s) for s in shapes)} "
          f"(ready in {time.perf_counter() - t0:.0f} s); cores {args.cores}, "
          f"load average {os.getloadavg()[0]:.1f}")
    y = (np.random.default_rng(0).random((len(paths), 1103)) < 0.004).astype(np.float32)
    rec = data / "jpeg_records"
    if not (rec / "tfrecords.json").exists():
        t0 = time.perf_counter()
        write_tfrecords(paths, rec, y=y, image_format="jpeg", quality=95, shard_size=256, workers=2)
        print(f"JPEG TFRecords written in {time.perf_counter() - t0:.0f} s "
              f"({sum(f.stat().st_size for f in rec.glob('*.tfrecord')) / len(paths) / 1024:.0f} KiB/image)")

    t0 = time.perf_counter()
    files = ImageFiles(paths)
    print(f"--pipeline tfdata header scan: {(time.perf_counter() - t0) / len(paths) * 1e3:.2f} ms/image")
    records = RecordFolder(rec, [Path(p).stem for p in paths])

    def pydataset():
        return ImageDataset(paths, y, size=SIZE, batch_size=BATCH, augment="notebook", workers=2)

    def tfdata(source):
        return train_data(source, y, np.arange(len(paths)), size=SIZE, batch_size=BATCH,
                          augment="notebook")

    rows = {
        "(a) notebook generator, 1 worker": lambda: time_pydataset(notebook_generator(paths, y, 1)),
        "(a2) notebook generator, 2 threads": lambda: time_pydataset(notebook_generator(paths, y, 2)),
        "(b) ImageDataset, 2 threads": lambda: time_pydataset(pydataset()),
        "(b2) ImageDataset, 2 processes": lambda: time_pydataset(ImageDataset(
            paths, y, size=SIZE, batch_size=BATCH, augment="notebook", workers=2,
            use_multiprocessing=True)),
        "(c) tf.data, JPEG TFRecords, notebook": lambda: time_tf(make_tf_dataset(
            rec, size=SIZE, batch_size=BATCH, augment="notebook")),
        "(c2) tf.data, JPEG TFRecords, eval": lambda: time_tf(make_tf_dataset(
            rec, size=SIZE, batch_size=BATCH)),
        "(d1) decode limit, 1 core": lambda: time_decode_limit(paths),
        "(d2) decode limit, 2 threads measured": lambda: time_decode_limit(paths, threads=2),
        "(e) tfdata train, PNG files in-graph": lambda: time_tf(tfdata(files).get_tf_dataset()),
        "(e2) tfdata train, JPEG TFRecords": lambda: time_tf(tfdata(records).get_tf_dataset()),
    }
    if args.fit:
        from imet_kit.models.classifier import build_classifier

        model = build_classifier(args.fit, y.shape[1], input_size=SIZE, weights=None)
        model.compile("adam", "binary_crossentropy")
        t0 = time.perf_counter()
        model.fit(tfdata(files).get_tf_dataset().take(2), epochs=1, verbose=0, shuffle=False)  # trace
        print(f"{args.fit}: traced in {time.perf_counter() - t0:.0f} s")
        rows.update({
            f"(f) fit {args.fit}, pydataset 2 threads": lambda: time_fit(model, pydataset()),
            f"(f2) fit {args.fit}, tfdata PNG files": lambda: time_fit(model, tfdata(files)),
            f"(f3) fit {args.fit}, tfdata TFRecords": lambda: time_fit(model, tfdata(records)),
        })
    wanted = {w.strip() for w in args.rows.split(",") if w.strip()}
    if wanted:
        wanted |= {"a", "d1"} | ({"f", "f2", "f3"} if args.fit else set())  # the references
        rows = {k: v for k, v in rows.items() if k[1:].split(")")[0] in wanted}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
    cv2_threads = cv2.getNumThreads()
    for rep in range(args.repeats):  # interleave rows so load changes hit all of them
        for name, fn in rows.items():
            cv2.setNumThreads(cv2_threads)  # ImageDataset sets 1 for its workers: undo
            results[name].append(fn())
            rate, cpu = results[name][-1]
            print(f"  run {rep + 1}: {name}: {rate:.0f} img/s, {cpu:.2f} CPU ms/img "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    best = {k: max(r for r, _ in v) for k, v in results.items()}
    med = {k: statistics.median(r for r, _ in v) for k, v in results.items()}
    cpu = {k: min(c for _, c in v) for k, v in results.items()}
    d = best["(d1) decode limit, 1 core"] * args.cores
    dm = med["(d1) decode limit, 1 core"] * args.cores
    a = best["(a) notebook generator, 1 worker"]
    b = best.get("(b) ImageDataset, 2 threads")
    print("\n| row | best img/s | median img/s | CPU ms/img | vs (a) | vs (b) | vs (d) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in rows:
        if k.startswith("(d1)"):
            continue
        vs_b = f"{best[k] / b:.2f}x" if b else "-"
        print(f"| {k} | {best[k]:.0f} | {med[k]:.0f} | {cpu[k]:.2f} | {best[k] / a:.2f}x | {vs_b} | "
              f"{best[k] / d:.0%} |")
    print(f"| (d) decode limit, 1 core x {args.cores} | {d:.0f} | {dm:.0f} | "
          f"{cpu['(d1) decode limit, 1 core']:.2f} | {d / a:.2f}x | - | 100% |")
    if b:
        print(f"\nTargets: (b) >= 2x (a): {b / a:.2f}x {'MET' if b >= 2 * a else 'NOT MET'}; "
              f"(b) >= 80% of (d): {b / d:.0%} {'MET' if b >= 0.8 * d else 'NOT MET'}")
    c = best.get("(c) tf.data, JPEG TFRecords, notebook")
    if c:
        print(f"(c) >= (d): {c / d:.0%} {'MET' if c >= d else 'NOT MET'}")
    for k in [k for k in rows if k.startswith(("(e", "(f"))]:
        ref = "(b) ImageDataset, 2 threads" if k.startswith("(e") else next(
            r for r in rows if r.startswith("(f)"))
        if ref in best and k != ref:
            print(f"{k}: {best[k] / best[ref]:.2f}x {ref} (same run, same preset)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
