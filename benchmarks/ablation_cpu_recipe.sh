#!/usr/bin/env bash
# The README's ablation table, by hand: the cpu recipe at 15 epochs on demo seed 0 medium, one
# change per run, same seed; appends "name  F2(TTA 1)  F2(TTA 4)  train seconds  flags" to
# OUT/results.tsv. Usage: bash benchmarks/ablation_cpu_recipe.sh [OUT] (default ablation/).
# About 5 minutes per run alone on 2 CPU cores; rerunning skips finished runs.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../examples/setup_env.sh"
OUT="$(mkdir -p "${1:-ablation}" && cd "${1:-ablation}" && pwd)"
D="$OUT/demo0_medium"
[ -d "$D" ] || imet-kit demo-data "$D" --size medium --seed 0 > "$OUT/data.log"
mkdir -p "$OUT/runs" "$OUT/logs"
run() {
  name=$1; shift
  R="$OUT/runs/$name"
  [ -f "$R/done" ] && return
  rm -rf "$R"
  t0=$(date +%s)
  imet-kit train --recipe cpu --data "$D" --out "$R" --epochs 15 --seed 0 "$@" > "$OUT/logs/$name.log" 2>&1 \
    || { echo "$name FAILED" >> "$OUT/results.tsv"; return; }
  t1=$(date +%s)
  f=()
  for tta in 1 4; do
    imet-kit predict --run "$R" --data "$D" --tta $tta --out "$R/sub_tta$tta.csv" --no-gallery >> "$OUT/logs/$name.log" 2>&1
    f+=("$(imet-kit evaluate --data "$D" --submission "$R/sub_tta$tta.csv" 2>/dev/null | awk '$1=="all"{print $3}')")
  done
  printf "%s\t%s\t%s\t%s\t%s\n" "$name" "${f[0]}" "${f[1]}" "$((t1 - t0))" "$*" >> "$OUT/results.tsv"
  touch "$R/done"
}
run base
run resize_crop --resize crop
run flip_on --flip true
run augment_none --augment none
run pooling_avg --pooling avg
run small_cnn --backbone small_cnn
run mixup --mixup 0.2
run ema --ema 0.99
run label_smoothing --label-smoothing 0.1
run sampling_logfreq --sampling logfreq
run randaugment --augment randaugment
run class_weight --class-weight inverse_log
cat "$OUT/results.tsv"
