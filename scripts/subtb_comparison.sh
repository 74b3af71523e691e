#!/usr/bin/env bash
# The SubTB paper's hypergrid comparison (Madan et al., ICML 2023; shared/REFERENCES.md), at the
# budget this machine allows: TB vs DB vs SubTB(0.9) vs FM on hypergrid 4-D H=12 with
# R0 = 1e-3 and 1e-4, and 2-D H=12 with R0 = 1e-3, three seeds each, at equal numbers of
# trajectories (batch 16, constant learning rates: policy 1e-3, log Z 0.1, flow head 1e-3; MLP
# 2x256 with the flow head on the policy trunk, uniform P_B). Every run logs exact TV and the
# papers' L1 against trajectories seen to runs/subtb_comparison/<grid>/<objective>_s<seed>/log.h5;
# scripts/comparison_table.py turns the logs into the table of bench/RESULTS.md.
#
#   scripts/subtb_comparison.sh [ITERATIONS_4D] [ITERATIONS_2D]     (defaults 3000 and 3000)
#   OUT=runs/subtb_comparison_long GRIDS=4d_h12_r1e-3 EVAL_EVERY=1000 scripts/subtb_comparison.sh 10000
# (the second is the longer 4-D run of bench/RESULTS.md). Runs already logged are skipped; JOBS
# runs at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
IT4=${1:-3000}
IT2=${2:-3000}
OUT=${OUT:-runs/subtb_comparison}
GRIDS=${GRIDS:-"2d_h12_r1e-3 4d_h12_r1e-3 4d_h12_r1e-4"}
EVAL_EVERY=${EVAL_EVERY:-250}

declare -A GRID_ARGS=(
  [2d_h12_r1e-3]="--set env.ndim=2 --set env.height=12 --set env.r0=1e-3 --set train.iterations=$IT2"
  [4d_h12_r1e-3]="--set env.ndim=4 --set env.height=12 --set env.r0=1e-3 --set train.iterations=$IT4"
  [4d_h12_r1e-4]="--set env.ndim=4 --set env.height=12 --set env.r0=1e-4 --set train.iterations=$IT4"
)
for seed in 0 1 2; do
  for obj in tb db subtb fm; do
    for grid in $GRIDS; do
      extra=""
      if [ "$obj" = subtb ]; then extra="--set objective.lambda=0.9"; fi
      echo "$OUT/$grid/${obj}_s$seed configs/hypergrid.toml --set name=${grid}_$obj --set seed=$seed" \
        "--set objective.kind=$obj $extra ${GRID_ARGS[$grid]} --set train.lr_decay_every=0" \
        "--set eval.every=$EVAL_EVERY --set log.trajectories_every=0 --set eval.samples=0"
    done
  done
done | scripts/run_jobs.sh
${PYTHON:-/usr/bin/python3} scripts/comparison_table.py "$OUT" tv l1 log_z_error
