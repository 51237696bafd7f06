#!/usr/bin/env bash
# Active learning with the representation updated: MEGNet fine-tuned every 150 picks (5 epochs at learning rate 1e-4, warm; every update kept), every
# material re-featurised, the GP refitted; entropy and random, seeds 0 and 1, 1,500 picks from the seed's 7,195
# candidates (the frozen runs' pools). Each job resumes from its last saved network.
# Run from the repository root:  nohup nice -n 19 experiments/paper-scale/finetune.sh >> experiments/paper-scale/finetune.log 2>&1 &
# Pause / resume the process (not this shell) with kill -STOP / -CONT "$(pgrep -f 'cfgp al-finetune')".
set -uo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
# one TensorFlow thread per job: the queues run several jobs on the 2 cores, and TF's default pools (a thread per
# core per process) oversubscribe them; 4 trainings at once took 14.95 s per epoch with one thread each against
# 20.5 s with the default (benchmarks/epoch_cost.py --configs 5A-b32 5A-b32-1thread --concurrent 4 --n 300 --epochs 4)
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
OUT=experiments/paper-scale/finetune
mkdir -p "$OUT/logs"
for seed in 0 1; do
  for strategy in entropy random; do
    name="$strategy-s$seed"
    echo "$(date -u +%FT%TZ) start $name"
    .venv/bin/cfgp al-finetune --run data/default --strategy "$strategy" --seed "$seed" --picks 1500 --every 150 \
      --epochs 5 --lr 1e-4 --keep always --out "$OUT/$name" --json > "$OUT/logs/$name.json" 2>> "$OUT/logs/$name.err"
    echo "$(date -u +%FT%TZ) end $name rc=$?"
  done
done
