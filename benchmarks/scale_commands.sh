#!/usr/bin/env bash
# The README's Scale commands on one machine: one device (TensorFlow and JAX), every device of
# the box (JAX data-parallel over the CPU split in 2 devices), two processes joined as one job
# (JAX, localhost), and the folds as Ray tasks. Medium demo data, small_cnn 64 px, 3 epochs;
# fold 0 of 2 (Ray: both folds). Prints each command's wall time and best validation F2.
# They show that the commands run; on a 2-core CPU they are not faster than one device.
#
#   bash benchmarks/scale_commands.sh [WORKDIR]   (default /tmp/imet_scale; needs the jax and ray extras)
set -euo pipefail
WORK=${1:-/tmp/imet_scale}
rm -rf "$WORK" && mkdir -p "$WORK/logs" && cd "$WORK"
export TF_CPP_MIN_LOG_LEVEL=3
imet-kit demo-data data --size medium > logs/data.log
COMMON=(--data data --backbone small_cnn --weights none --image-size 64 --batch-size 32 --epochs 3
        --folds 2 --no-tensorboard)
now() { python -c 'import time; print(time.time())'; }
report() { python -c "import json, sys; s = json.load(open('runs/$1/summary.json'));
print(f'$1: {float(sys.argv[1]) - float(sys.argv[2]):.0f} s, best val F2 per fold',
      {k: round(v['best_f2'], 4) for k, v in s['folds'].items()})" "$(now)" "$2"; }
timed() { local name=$1; shift; local start; start=$(now); "$@" > "logs/$name.log" 2>&1; report "$name" "$start"; }

timed one imet-kit train "${COMMON[@]}" --fold 0 --out runs/one
timed jax_one env KERAS_BACKEND=jax imet-kit train "${COMMON[@]}" --fold 0 --out runs/jax_one
timed jax_data_parallel env KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    imet-kit train "${COMMON[@]}" --fold 0 --out runs/jax_data_parallel --distribution data-parallel
start=$(now)
for i in 0 1; do
  KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=localhost:12355 KERAS_DISTRIBUTION_NUM_PROCESSES=2 \
    KERAS_DISTRIBUTION_PROCESS_ID=$i imet-kit train "${COMMON[@]}" --fold 0 --out runs/two_processes \
    > "logs/two_processes$i.log" 2>&1 &
done
wait
report two_processes "$start"
timed ray imet-kit train "${COMMON[@]}" --out runs/ray --executor ray
