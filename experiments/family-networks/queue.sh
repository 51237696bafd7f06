#!/usr/bin/env bash
# Chemical families held out of MEGNet's training too (issue: σ on chemistry the network never trained): for each
# family, `cfgp family-network` trains the network from fresh weights without the family's training materials by
# the base network's stopping rule, re-featurises and scores the family as new chemistry. One job after another;
# each resumes from its checkpoint (<family>/training/), so the queue can be stopped at any time and started again.
# Run from the repository root (families as arguments, default all six in this order):
#   nohup nice -n 19 experiments/family-networks/queue.sh >> experiments/family-networks/queue.log 2>&1 &
# A second queue may run beside it, e.g. the other way round (each family is locked while trained, so two queues
# never train the same one; a queue skips a family another one holds):
#   nohup nice -n 19 experiments/family-networks/queue.sh s_oxides halogen_oxides 4d_metals p_oxides actinides \
#     lanthanides >> experiments/family-networks/queue.log 2>&1 &
# Pause / resume the training process (not this shell) with kill -STOP / -CONT "$(pgrep -f 'cfgp family-network')".
set -uo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
# one TensorFlow thread per job: the queues run several jobs on the 2 cores, and TF's default pools (a thread per
# core per process) oversubscribe them; 4 trainings at once took 14.95 s per epoch with one thread each against
# 20.5 s with the default (benchmarks/epoch_cost.py --configs 5A-b32 5A-b32-1thread --concurrent 4 --n 300 --epochs 4)
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
OUT=experiments/family-networks
families=("$@")
[ ${#families[@]} -eq 0 ] && families=(lanthanides actinides p_oxides 4d_metals halogen_oxides s_oxides)
mkdir -p "$OUT/logs"
# a checkout without the venv would otherwise "run" every job in a second and log it as ended
[ -x .venv/bin/cfgp ] || { echo "$(date -u +%FT%TZ) no .venv/bin/cfgp: install first (README)"; exit 1; }
for family in "${families[@]}"; do
  (
    flock -n 9 || { echo "$(date -u +%FT%TZ) skip $family (another queue trains it)"; exit 0; }
    echo "$(date -u +%FT%TZ) start $family"
    # the JSON record is replaced only by a run that succeeded; rc is read before $(date) resets $?
    .venv/bin/cfgp family-network --run data/default --family "$family" --out "$OUT/$family" --json \
      > "$OUT/logs/$family.json.part" 2>> "$OUT/logs/$family.err"
    rc=$?
    [ $rc -eq 0 ] && mv "$OUT/logs/$family.json.part" "$OUT/logs/$family.json" || rm -f "$OUT/logs/$family.json.part"
    echo "$(date -u +%FT%TZ) end $family rc=$rc"
  ) 9> "$OUT/logs/$family.lock"
done
