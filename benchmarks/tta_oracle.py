"""Is a TTA gain hidden by the threshold? Score test probabilities at their own best threshold.

    python benchmarks/tta_oracle.py DATA RUN/sub_tta1_probs.npy RUN/sub_tta4_probs.npy ...

Each ``*_probs.npy`` was written by ``imet-kit predict --tta N --out RUN/sub_ttaN.csv`` (its rows
follow the submission beside it). For each file this prints the test F2 at the global threshold
``predict`` used (chosen on the out-of-fold predictions, read from the submission itself) and the
F2 at the global threshold that is best on the test labels (an oracle: not a result, a ceiling).
If TTA N beats TTA 1 only under the oracle, the threshold chosen on TTA-1 OOF hides the gain; if
neither moves, the views add no information to the model's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from imet_kit.data.labels import read_annotations, read_labels
from imet_kit.multilabel.evaluate import default_truth, evaluate
from imet_kit.multilabel.thresholds import sweep_thresholds

GRID = np.round(np.arange(0.02, 0.8, 0.01), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="dataset folder with labels.csv and holdout/test_labels.csv")
    ap.add_argument("probs", nargs="+", help="RUN/sub_ttaN_probs.npy files")
    args = ap.parse_args()
    space = read_labels(Path(args.data) / "labels.csv")
    truth = read_annotations(default_truth(args.data), space)
    y = np.asarray(truth.y).astype(bool)
    print(f"{'probabilities':<40} {'F2 as predicted':>16} {'oracle F2':>10} {'at':>6}")
    for path in args.probs:
        sub = path[: -len("_probs.npy")] + ".csv"
        as_predicted = evaluate(default_truth(args.data), Path(args.data) / "labels.csv",
                                submission=sub)["f2"]
        ids = pd.read_csv(sub, dtype=str, keep_default_na=False)["id"].tolist()
        order = {i: r for r, i in enumerate(ids)}
        probs = np.load(path)[[order[i] for i in truth.ids]]
        best = sweep_thresholds(probs, y, GRID, 1, 10, 2.0)
        print(f"{path:<40} {as_predicted:>16.4f} {best.best_score:>10.4f} {best.best_threshold:>6.2f}")


if __name__ == "__main__":
    main()
