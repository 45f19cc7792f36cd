#!/usr/bin/env bash
# The issue-12 comparison at the kept-back set's size, by hand: 6,000 train / 1,500 test images of
# the demo generator (hard variant seed 3: 98 labels, small glyphs on wide photos; default variant
# seed 5: 49 labels), then on each
#   * the cpu recipe: `imet-kit train --recipe cpu` and `imet-kit predict --tta 4` (each timed), `--tta 1`;
#   * the hand-written reference CNN (benchmarks/bench_reference_cnn.py), same data;
#   * paired bootstraps (benchmarks/paired_f2.py): TTA 4 against TTA 1, the recipe against the CNN
#     (with the 6 labels where they differ most).
# Appends "data  recipe F2 TTA 1  TTA 4  reference F2  train s  predict s" to OUT/results.tsv and
# the paired bootstraps to OUT/paired.txt.
# Usage: bash benchmarks/recipe_6k.sh [OUT] (default recipe_6k/). About 25 min per recipe run
# and 20 per reference run alone on 2 CPU cores (run one at a time for the times); rerunning
# skips finished steps. SMOKE=1 checks the plumbing in a minute (40 / 20 images, one epoch).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../examples/setup_env.sh"
OUT="$(mkdir -p "${1:-recipe_6k}" && cd "${1:-recipe_6k}" && pwd)"
mkdir -p "$OUT/logs"
N_TRAIN=6000 N_TEST=1500 EPOCHS=()
[ "${SMOKE:-0}" = 1 ] && N_TRAIN=40 N_TEST=20 EPOCHS=(--epochs 1)
one() {
  name=$1 seed=$2 variant=$3
  D="$OUT/$name" R="$OUT/runs/$name"
  [ -f "$D/holdout/test_labels.csv" ] || python -c "import sys; from imet_kit.data.demo import make_demo_dataset as m; \
m(sys.argv[1], 'medium', int(sys.argv[2]), n_train=int(sys.argv[4]), n_test=int(sys.argv[5]), variant=sys.argv[3])" \
    "$D" "$seed" "$variant" "$N_TRAIN" "$N_TEST"
  if [ ! -f "$R/done" ]; then
    rm -rf "$R"
    t0=$(date +%s)
    imet-kit train --recipe cpu --data "$D" --out "$R" --seed 0 "${EPOCHS[@]}" > "$OUT/logs/$name.log" 2>&1 || { echo "$name FAILED" >> "$OUT/results.tsv"; return; }
    t1=$(date +%s)
    imet-kit predict --run "$R" --data "$D" --tta 4 --out "$R/sub_tta4.csv" >> "$OUT/logs/$name.log" 2>&1
    t2=$(date +%s)
    imet-kit predict --run "$R" --data "$D" --tta 1 --out "$R/sub_tta1.csv" --no-gallery >> "$OUT/logs/$name.log" 2>&1
    echo "$((t1 - t0)) $((t2 - t1))" > "$R/done"
  fi
  [ -f "$R/ref.json" ] || python "$HERE/bench_reference_cnn.py" "$D" "${EPOCHS[@]}" --json --submission "$R/ref_sub.csv" > "$R/ref.json" 2> "$OUT/logs/$name.ref.log"
  f=()
  for tta in 1 4; do
    f+=("$(imet-kit evaluate --data "$D" --submission "$R/sub_tta$tta.csv" 2>/dev/null | awk '$1=="all"{print $3}')")
  done
  ref=$(python -c "import json, sys; print(round(json.load(open(sys.argv[1]))['test_f2'], 4))" "$R/ref.json")
  read -r train_s predict_s < "$R/done"
  printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$name" "${f[0]}" "${f[1]}" "$ref" "$train_s" "$predict_s" >> "$OUT/results.tsv"
  echo "$name TTA 4 vs 1: $(python "$HERE/paired_f2.py" "$D" "$R/sub_tta1.csv" "$R/sub_tta4.csv")" >> "$OUT/paired.txt"
  { echo "$name recipe TTA 4 vs reference (A: the CNN, B: the recipe):"
    python "$HERE/paired_f2.py" "$D" "$R/ref_sub.csv" "$R/sub_tta4.csv" --labels 6; } >> "$OUT/paired.txt"
}
one hard3_6k 3 hard
one demo5_6k 5 default
(echo -e "data\trecipe TTA 1\tTTA 4\treference CNN\ttrain s\tpredict --tta 4 s"; cat "$OUT/results.tsv") | column -t -s $'\t'
cat "$OUT/paired.txt"
