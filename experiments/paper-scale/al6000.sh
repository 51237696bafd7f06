#!/usr/bin/env bash
# The frozen-network active-learning histories of the paper's scale: 1,800 + 6,000 picks from each seed's
# 7,195-material pool, seeds 0-3 of entropy and random on the shipped default (~90 s each on 2 cores). Each run
# extends the shipped 1,500-pick history of its seed (a shorter run is a prefix of a longer one) in $CFGP_HOME,
# never in data/default; the default ships the results gzipped (gzip -n -9) in data/default/al/ in place of the
# 1,500-pick files (then data/default/manifest.json lists their new hashes).
set -euo pipefail
cd "$(dirname "$0")/../.."
export TF_CPP_MIN_LOG_LEVEL=3 CFGP_HOME="${CFGP_HOME:-/tmp/cfgp-al6000}"
for s in random entropy; do
  .venv/bin/cfgp al --run data/default --strategy "$s" --cycles 6000 --seed 0 --seeds 4 --quiet
done
echo "written to $CFGP_HOME/runs/default/al/"
