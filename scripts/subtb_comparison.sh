#!/usr/bin/env bash
# The SubTB paper's hypergrid comparison (Madan et al., ICML 2023; shared/REFERENCES.md), at the
# budget this machine allows: TB vs DB vs SubTB(0.9) vs FM on hypergrid 4-D H=12 with
# R0 = 1e-3 and 1e-4, and 2-D H=12 with R0 = 1e-3, three seeds each, at equal numbers of
# trajectories (batch 16, constant learning rates: policy 1e-3, log Z 0.1, flow head 1e-3; MLP
# 2x256 with the flow head on the policy trunk, uniform P_B). Every run logs exact TV and the
# papers' L1 against trajectories seen to runs/subtb_comparison/<grid>/<objective>_s<seed>/log.h5;
# scripts/subtb_comparison.py turns the logs into the table of bench/RESULTS.md.
#
#   scripts/subtb_comparison.sh [ITERATIONS_4D] [ITERATIONS_2D]     (defaults 3000 and 3000)
#   OUT=runs/subtb_comparison_long GRIDS=4d_h12_r1e-3 EVAL_EVERY=1000 scripts/subtb_comparison.sh 10000
# (the second is the longer 4-D run of bench/RESULTS.md). Runs already logged are skipped, so
# two instances may share the work.
set -euo pipefail
cd "$(dirname "$0")/.."
GFN=${GFN:-build/bin/gfn}
IT4=${1:-3000}
IT2=${2:-3000}
OUT=${OUT:-runs/subtb_comparison}
GRIDS=${GRIDS:-"2d_h12_r1e-3 4d_h12_r1e-3 4d_h12_r1e-4"}
EVAL_EVERY=${EVAL_EVERY:-250}

run() {  # grid-name iterations objective seed --set ...
  local grid=$1 iters=$2 obj=$3 seed=$4
  shift 4
  case " $GRIDS " in *" $grid "*) ;; *) return ;; esac
  local dir=$OUT/$grid/${obj}_s${seed}
  if [ -f "$dir/log.h5" ]; then echo "skip $dir (done)"; return; fi
  rm -rf "$dir"
  local kind=$obj extra=()
  if [ "$obj" = subtb ]; then extra=(--set objective.lambda=0.9); fi
  "$GFN" train configs/hypergrid.toml --out "$dir" \
    --set name=\""${grid}_${obj}"\" --set seed="$seed" --set objective.kind=\""$kind"\" "${extra[@]}" \
    --set train.iterations="$iters" --set train.lr_decay_every=0 --set eval.every="$EVAL_EVERY" \
    --set log.trajectories_every=0 --set eval.samples=0 "$@" > /dev/null
  echo "done $dir"
}

for seed in 0 1 2; do
  for obj in tb db subtb fm; do
    run 2d_h12_r1e-3 "$IT2" "$obj" "$seed" --set env.ndim=2 --set env.height=12 --set env.r0=1e-3
    run 4d_h12_r1e-3 "$IT4" "$obj" "$seed" --set env.ndim=4 --set env.height=12 --set env.r0=1e-3
    run 4d_h12_r1e-4 "$IT4" "$obj" "$seed" --set env.ndim=4 --set env.height=12 --set env.r0=1e-4
  done
done
${PYTHON:-/usr/bin/python3} scripts/subtb_comparison.py "$OUT"
