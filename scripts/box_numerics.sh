#!/usr/bin/env bash
# The Box 2-D at the paper's concentration floor (README "Numerics"; bench/RESULTS.md 2026-12-03):
# configs/box.toml for its full budget (10,000 iterations, decay every 2,500) with P_B uniform
# (the shipped config), learned through the loss, and TLM, backward Betas bounded below by 0.1,
# three seeds each, evaluated every 1,000 iterations. Logs go to
# runs/box_numerics/<backward>_s<seed>/log.h5; the tables print the grid JSD, the grid mass, the
# ELBO and |log Z_IS - log Z| at every evaluation's best and final rows.
#
#   scripts/box_numerics.sh [ITERATIONS]    (default 10000)
# Runs already logged are skipped; JOBS runs at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
IT=${1:-10000}
OUT=${OUT:-runs/box_numerics}
for seed in 0 1 2; do
  for backward in uniform learned tlm; do
    echo "$OUT/${backward}_s$seed configs/box.toml --set train.iterations=$IT --set name=box_$backward" \
      "--set seed=$seed --set policy.backward=$backward --set policy.backward_min_concentration=0.1" \
      "--set log.trajectories_every=0 --set eval.samples=0"
  done
done | scripts/run_jobs.sh
${PYTHON:-/usr/bin/python3} scripts/comparison_table.py "$OUT" grid_jsd grid_mass log_z_is_error elbo
