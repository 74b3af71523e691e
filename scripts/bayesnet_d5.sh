#!/usr/bin/env bash
# The Bayesian-network targets of issue 19 over three seeds: configs/bayesnet_d5.toml (d = 5,
# n = 100, every DAG enumerated) at its shipped budget, seeds 0-2 (the data stay those of
# env.data_seed = 0), then `gfn analyse` of the three logs: the group's mean ± std of graph_jsd,
# edge_marginal_error and log_z_is_error at the last evaluation, and the edge-marginal plots.
#   scripts/bayesnet_d5.sh [ITERATIONS]      (default: the config's)
# Runs already logged are skipped; JOBS run at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bayesnet_d5}
extra=""
if [ $# -ge 1 ]; then extra=" --set train.iterations=$1"; fi
for seed in 0 1 2; do
  echo "$OUT/s$seed configs/bayesnet_d5.toml --set seed=$seed$extra"  # no trailing blank: xargs -L would join lines
done | scripts/run_jobs.sh
build/bin/gfn analyse "$OUT"/s0 "$OUT"/s1 "$OUT"/s2 --plot "$OUT/plots"
