"""Is submission B really better than A? A paired bootstrap of the per-image F2 on the same images.

    python benchmarks/paired_f2.py DATA RUN/sub_tta1.csv RUN/sub_tta4.csv

Both submissions are scored image by image against ``DATA/holdout/test_labels.csv`` (the iMet
F2 is the mean of these). It prints the mean of each, the mean of B - A, the 95 % interval of that
mean over 10,000 resamples of the images (the same images for A and B in each resample, so what
both get right or wrong together cancels), and how many images B scores higher, lower or the
same. A gain whose interval excludes 0 is measurable on this test set; one whose interval spans
0 is not, whatever its sign.

``--labels N`` also lists the N labels where B differs most from A: per label, the test images
that have it, and each submission's true and false positives (sorted by B's change in true
positives, losses first). That is where a loss lives: "B misses digit_1 on 82 of 94 images".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imet_kit.data.labels import read_annotations, read_labels
from imet_kit.multilabel.evaluate import default_truth, submission_rows
from imet_kit.multilabel.metrics import fbeta_per_sample


def load(data: str, submission: str):
    """``(space, truth, pred)``: the label space and boolean ``(n, C)`` truth and predictions, the
    submission's rows aligned with the truth file by id."""
    space = read_labels(Path(data) / "labels.csv")
    truth = read_annotations(default_truth(data), space)
    pred = submission_rows(submission, truth.ids, space, truth=default_truth(data))
    return space, np.asarray(truth.y).astype(bool), np.asarray(pred).astype(bool)


def per_image_f2(data: str, submission: str) -> np.ndarray:
    _, y, pred = load(data, submission)
    return fbeta_per_sample(y, pred, 2.0)


def label_changes(space, y: np.ndarray, pa: np.ndarray, pb: np.ndarray, top: int) -> list[dict]:
    """The ``top`` labels whose true positives change most from A to B (losses first), each with
    its positives in the truth and A's and B's true / false positives."""
    tp_a, tp_b = (pa & y).sum(0), (pb & y).sum(0)
    fp_a, fp_b = (pa & ~y).sum(0), (pb & ~y).sum(0)
    change = np.abs(tp_b - tp_a) + np.abs(fp_b - fp_a)
    order = sorted(np.flatnonzero(change), key=lambda c: (tp_b[c] - tp_a[c], -change[c]))[:top]
    return [{"label": space.names[c], "positives": int(y[:, c].sum()), "tp_a": int(tp_a[c]),
             "tp_b": int(tp_b[c]), "fp_a": int(fp_a[c]), "fp_b": int(fp_b[c])} for c in order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="dataset folder with labels.csv and holdout/test_labels.csv")
    ap.add_argument("a", help="submission A (the reference)")
    ap.add_argument("b", help="submission B")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", type=int, default=0, metavar="N",
                    help="also list the N labels where B's true / false positives differ most from A's")
    args = ap.parse_args()
    space, y, pa = load(args.data, args.a)
    pb = load(args.data, args.b)[2]
    fa, fb = fbeta_per_sample(y, pa, 2.0), fbeta_per_sample(y, pb, 2.0)
    d = fb - fa
    rng = np.random.default_rng(args.seed)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(args.resamples)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    verdict = "B > A" if lo > 0 else "B < A" if hi < 0 else "no measurable difference"
    print(f"{len(d)} images: F2 A {fa.mean():.4f}, B {fb.mean():.4f}; B - A {d.mean():+.4f} "
          f"(95 % interval {lo:+.4f} .. {hi:+.4f}: {verdict}); B higher on {(d > 0).sum()}, "
          f"lower on {(d < 0).sum()}, same on {(d == 0).sum()}")
    if args.labels > 0:
        print(f"{'label':<36} {'images':>6} {'TP A':>6} {'TP B':>6} {'FP A':>6} {'FP B':>6}")
        for r in label_changes(space, y, pa, pb, args.labels):
            print(f"{r['label']:<36} {r['positives']:>6} {r['tp_a']:>6} {r['tp_b']:>6} {r['fp_a']:>6} "
                  f"{r['fp_b']:>6}")


if __name__ == "__main__":
    main()
