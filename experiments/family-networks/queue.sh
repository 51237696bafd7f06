#!/usr/bin/env bash
# Chemical families held out of MEGNet's training too (issue: σ on chemistry the network never trained): for each
# family, `cfgp family-network` trains the network from fresh weights without the family's training materials by
# the base network's stopping rule, re-featurises and scores the family as new chemistry. One job after another;
# each resumes from its checkpoint (<family>/training/), so the queue can be stopped at any time and started again.
# Run from the repository root:
#   nohup nice -n 19 experiments/family-networks/queue.sh >> experiments/family-networks/queue.log 2>&1 &
# Pause / resume the training process (not this shell) with kill -STOP / -CONT "$(pgrep -f 'cfgp family-network')".
set -uo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
OUT=experiments/family-networks
for family in lanthanides actinides p_oxides 4d_metals halogen_oxides s_oxides; do
  mkdir -p "$OUT/logs"
  echo "$(date -u +%FT%TZ) start $family"
  .venv/bin/cfgp family-network --run data/default --family "$family" --out "$OUT/$family" --json \
    > "$OUT/logs/$family.json" 2>> "$OUT/logs/$family.err"
  echo "$(date -u +%FT%TZ) end $family rc=$?"
done
