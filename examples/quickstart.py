"""imet_kit from Python, as a notebook user would: data -> folds -> train -> predict -> score.

Run: `.venv/bin/python examples/quickstart.py [WORKDIR]` (about a minute on 2 CPU cores).
Each step is one call; the same steps exist as `imet-kit` subcommands.
"""

import sys
from pathlib import Path

from imet_kit import TrainConfig, evaluate, format_scores, make_demo_dataset, predict, train

work = Path(sys.argv[1] if len(sys.argv) > 1 else "quickstart")

# 1. An iMet-format dataset (here the small embedded demo; point `data` at your own folder).
data = work / "data"
make_demo_dataset(data, size="small", seed=0)

# 2. Train 2 folds. Real runs: backbone="efficientnet_b3", weights="imagenet", image_size=288.
config = TrainConfig(data=str(data), out=str(work / "run"), folds=2, epochs=2,
                     backbone="tiny_cnn", weights=None, image_size=64, batch_size=16,
                     augment="light", lr=3e-3)
summary = train(config, resume=True, report=print)  # resume=True: rerunning continues the run
print("OOF F2:", summary["oof_f2"])

# 3. Predict the test split with both fold models and 2 TTA views; write submission.csv.
pred = predict(config.out, data, tta=2, out=work / "submission.csv")
print(f"{len(pred.ids)} test images, first: {pred.ids[0]} -> {pred.labels[0].nonzero()[0].tolist()}")

# 4. Score it against the held-back labels.
print(format_scores(evaluate(data / "holdout" / "test_labels.csv", data / "labels.csv",
                             submission=work / "submission.csv"), "test F2"))
