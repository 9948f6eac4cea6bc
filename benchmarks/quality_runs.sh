#!/usr/bin/env bash
# Real-data quality runs of docs/results.md: pretrained all-MiniLM-L6-v2 on
# Reuters-21578 R90 and GoEmotions (this loss against sigmoid BCE, same
# budget), WebNLG* and WebNLG relation extraction, and the LIC2019 sample
# with a randomly initialised Chinese encoder.
#
#     bash benchmarks/quality_runs.sh [QUEUE...]     # QUEUE: a, b, c, d (default all, side by side)
#
# Each run writes runs/quality/<name>/ (resolved config.yaml, metrics.json,
# history.csv, plots/, report.txt, best/) and logs to runs/quality/<name>.log.
# Run the same command again after an interruption: finished runs (those with
# a metrics.json) are skipped and an interrupted one resumes from its last
# completed epoch (--resume). The budgets below are what two shared CPU cores
# allow in an afternoon; the shipped configs hold the full budgets.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${QUALITY_DIR:-runs/quality}
mkdir -p "$out"
# Queues side by side, one compute thread each, so that on a shared machine
# they take their share of the cores without their thread pools fighting.
export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-1} TF_NUM_INTEROP_THREADS=${TF_NUM_INTEROP_THREADS:-2}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

run() {  # run NAME CONFIG [--set KEY=VALUE ...]
  local name=$1 config=$2
  shift 2
  if [[ -f "$out/$name/metrics.json" ]]; then
    echo "$(date +%T) $name: done already ($out/$name/metrics.json)"
    return 0
  fi
  # Another queue (or another call of this script) may be training it now.
  if [[ -f "$out/$name.pid" ]] && kill -0 "$(cat "$out/$name.pid")" 2>/dev/null; then
    echo "$(date +%T) $name: being trained by process $(cat "$out/$name.pid"); skipped"
    return 0
  fi
  echo "$(date +%T) $name: training (log: $out/$name.log)"
  python -m toolkit train "$config" --resume --set output.dir="$PWD/$out/$name" "$@" >>"$out/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$out/$name.pid"
  wait "$pid"
  local status=$?
  rm -f "$out/$name.pid"
  echo "$(date +%T) $name: exit $status"
  return $status
}

# The relation configs average the weights (ema: 0.999) for their full 30
# epochs (4,700 steps). At 4 epochs (628 steps) that average would still weigh
# the untrained heads at 0.999^628 = 53%, so it is turned off here.
relations=(--set training.epochs=4 --set training.ema=null)

# Same budget for both losses: 3 epochs, maxlen 128 (the config has 10 and 256).
reuters=(--set training.epochs=3 --set model.maxlen=128)

queue_a() {
  run reuters_zlpr configs/reuters.yaml "${reuters[@]}"
  run webnlg configs/webnlg.yaml "${relations[@]}"
}

queue_c() {
  run reuters_bce configs/reuters.yaml "${reuters[@]}" --set loss.name=binary_crossentropy
}

queue_d() {
  # 1 epoch of 43,410 comments each (the config has 4).
  run goemotions_zlpr configs/goemotions.yaml --set training.epochs=1
  run goemotions_bce configs/goemotions.yaml --set training.epochs=1 --set loss.name=binary_crossentropy
}

queue_b() {
  run webnlg_star configs/webnlg_star.yaml "${relations[@]}"
  run lic2019_sample_random configs/lic2019_sample.yaml --set training.epochs=4
}

queues=("${@:-a b c d}")
pids=()
for queue in ${queues[@]}; do
  "queue_$queue" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
