#!/usr/bin/env bash
# The converged retrains of the paper-scale comparison, one after another (each resumes from its checkpoint).
# Run from the repository root:  nohup nice -n 19 experiments/paper-scale/queue.sh >> experiments/paper-scale/queue.log 2>&1 &
# A second queue may run beside it on the other core: each job is locked while trained (logs/<job>.lock), so two
# queues never train the same one; a queue skips a job another one holds and goes on to the next.
# Pause / resume the training process (not this shell) with kill -STOP / -CONT "$(pgrep -f 'cfgp retrain')".
set -uo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
# one TensorFlow thread per job: the queues run several jobs on the 2 cores, and TF's default pools (a thread per
# core per process) oversubscribe them; 4 trainings at once took 14.95 s per epoch with one thread each against
# 20.5 s with the default (benchmarks/epoch_cost.py --configs 5A-b32 5A-b32-1thread --concurrent 4 --n 300 --epochs 4)
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
CFGP=.venv/bin/cfgp
# a checkout without the venv would otherwise "run" every job in a second and log it as ended
[ -x "$CFGP" ] || { echo "$(date -u +%FT%TZ) no $CFGP: install first (README)"; exit 1; }
OUT=experiments/paper-scale
AL=data/default/al
job() {  # job NAME HISTORY PICKS SEED [--warm-start]
  local name=$1 hist=$2 picks=$3 seed=$4; shift 4
  mkdir -p "$OUT/logs"
  local log="$OUT/logs/${name//\//_}"
  (
    flock -n 9 || { echo "$(date -u +%FT%TZ) skip $name (another queue trains it)"; exit 0; }
    echo "$(date -u +%FT%TZ) start $name"
    # the job's JSON record is replaced only by a run that succeeded; rc is read before $(date) resets $?
    $CFGP retrain --run data/default --history "$hist" --out "$OUT/$name" --picks "$picks" --seed "$seed" "$@" \
      --json > "$log.json.part" 2>> "$log.err"
    rc=$?
    [ $rc -eq 0 ] && mv "$log.json.part" "$log.json" || rm -f "$log.json.part"
    echo "$(date -u +%FT%TZ) end $name rc=$rc"
  ) 9> "$log.lock"
}
# warm start against scratch on one pair, at convergence (issue: ship the cheaper at equal accuracy)
job p1500/entropy-s0-warm "$AL/entropy-b1-pool7195-s0.jsonl.gz" 1500 0 --warm-start
job p1500/random-s0-warm "$AL/random-b1-pool7195-s0.jsonl.gz" 1500 0 --warm-start
job p1500/entropy-s0-scratch "$AL/entropy-b1-pool7195-s0.jsonl.gz" 1500 0 --from-scratch
# random-s0-scratch is not run: scratch already took longer than the warm start's whole run at a worse validation
# MAE, so warm is cheaper whatever scratch converges to unless it ends clearly better (see README.md).
# seeds 1 and 2 at 1,500 picks, warm start
for seed in 1 2; do
  job "p1500/entropy-s$seed-warm" "$AL/entropy-b1-pool7195-s$seed.jsonl.gz" 1500 "$seed" --warm-start
  job "p1500/random-s$seed-warm" "$AL/random-b1-pool7195-s$seed.jsonl.gz" 1500 "$seed" --warm-start
done
# the paper's scale: 1,800 + 6,000 picks, seeds 0 and 1, warm start
for seed in 0 1; do
  job "p6000/entropy-s$seed-warm" "$AL/entropy-b1-pool7195-s$seed.jsonl.gz" 6000 "$seed" --warm-start
  job "p6000/random-s$seed-warm" "$AL/random-b1-pool7195-s$seed.jsonl.gz" 6000 "$seed" --warm-start
done
