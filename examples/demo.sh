#!/usr/bin/env bash
# The main job on the embedded demo data, set-up included (.venv, install): make the data,
# train K folds, predict the test split with TTA 1 and 4, print the test F2 table.
# Rerunning continues where it stopped (the run resumes; finished folds are kept).
# Override with DEMO_DIR (default demo_data), DEMO_RUN (default demo_run), DEMO_SIZE (full),
# DEMO_FOLDS (3), DEMO_EPOCHS (10).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
DATA="${DEMO_DIR:-demo_data}"
RUN="${DEMO_RUN:-demo_run}"
SIZE="${DEMO_SIZE:-full}"
FOLDS="${DEMO_FOLDS:-3}"
EPOCHS="${DEMO_EPOCHS:-10}"
START=$(date +%s)

echo "== 1/4 demo dataset ($SIZE) in $DATA"
imet-kit demo-data "$DATA" --size "$SIZE" --seed 0

echo "== 2/4 train $FOLDS folds x $EPOCHS epochs into $RUN (small_cnn from scratch, 128 px)"
imet-kit train --data "$DATA" --out "$RUN" --resume --folds "$FOLDS" --epochs "$EPOCHS" \
  --backbone small_cnn --weights none --image-size 128 --batch-size 32 \
  --lr 3e-3 --lr-schedule cosine --warmup-epochs 0.5 --augment none --workers 2 --seed 0

echo "== 3/4 predict the test split: every fold model, TTA 1 and TTA 4"
imet-kit predict --run "$RUN" --data "$DATA" --tta 1 --out "$RUN/submission_tta1.csv" --no-gallery
imet-kit predict --run "$RUN" --data "$DATA" --tta 4 --out "$RUN/submission.csv"

echo "== 4/4 test F2 against the held-back labels ($DATA/holdout/test_labels.csv)"
imet-kit evaluate --data "$DATA" --baseline \
  --submission "$RUN/submission_tta1.csv" --submission "$RUN/submission.csv"
echo "plots: $RUN/plots/history.png $RUN/plots/oof_threshold.png $RUN/submission_gallery.png"
echo "done in $(( $(date +%s) - START )) s"
