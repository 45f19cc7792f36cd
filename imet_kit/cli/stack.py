"""`imet-kit stack RUN`: a second-level model on the run's out-of-fold probabilities."""

from __future__ import annotations

import argparse

NAME = "stack"
ORDER = 35
HELP = "fit a per-label second-level model on the run's OOF probabilities (RUN/stack/)"
DESCRIPTION = (
    "Each label is learned from the out-of-fold probabilities of ALL labels (logreg: one "
    "LogisticRegression per label; mlp: one small MLP with a sigmoid per label), cross-validated "
    "on the run's own folds; thresholds are chosen on the stacker's own out-of-fold output. "
    "Writes RUN/stack/ (model.npz: plain arrays, no pickle). `imet-kit predict` uses it when "
    "present (--no-stack skips it)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder of imet-kit train (with oof.npy)")
    p.add_argument("--data", help="dataset folder with the run's train.csv (default: the run's)")
    p.add_argument("--method", choices=["logreg", "mlp"], default="logreg",
                   help="logreg (default: one LogisticRegression per label) or mlp")
    p.add_argument("--c", type=float, default=1.0,
                   help="inverse regularisation (LogisticRegression C; MLP alpha = 1/c); default 1")
    p.add_argument("--hidden", type=int, default=64, help="mlp hidden units (default 64)")
    p.add_argument("--seed", type=int, default=0, help="mlp initialisation seed")


def run(args: argparse.Namespace) -> int:
    from imet_kit.multilabel.stack import stack_run

    s = stack_run(args.run, args.data, method=args.method, c=args.c, hidden=args.hidden,
                  seed=args.seed)
    for mode in s["stack_oof_f2"]:
        print(f"OOF F2 ({mode} thresholds): base {s['base_oof_f2'].get(mode, float('nan')):.4f} "
              f"-> stacked {s['stack_oof_f2'][mode]:.4f}")
    print(f"wrote {s['model']} ({s['method']}, {s['n_images']} images)")
    if s["stack_oof_f2"]["global"] <= s["base_oof_f2"].get("global", float("-inf")):
        print("note: the stacker does not beat the base model's OOF F2 here; `imet-kit predict` "
              "uses RUN/stack/ when present: pass --no-stack (or delete RUN/stack/) to keep the base")
    return 0
