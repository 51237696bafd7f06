#!/usr/bin/env bash
# The frozen-network active-learning histories of the paper's scale (1,800 + 6,000 picks from the 7,195-material
# pool), seeds 0-2 of entropy and random on the shipped default; written to experiments/paper-scale/al/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL=3 CFGP_HOME=experiments/paper-scale/home
for s in random entropy; do
  .venv/bin/cfgp al --run data/default --strategy $s --cycles 6000 --seed 0 --seeds 3 --quiet
done
mkdir -p experiments/paper-scale/al
mv experiments/paper-scale/home/runs/default/al/*-b1-pool7195-s*.jsonl experiments/paper-scale/al/
