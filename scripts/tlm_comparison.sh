#!/usr/bin/env bash
# The TLM paper's hypergrid comparison (Gritsaev et al., ICLR 2025; shared/REFERENCES.md), at the
# budget this machine allows: P_B uniform vs naive (a head trained through the loss) vs
# max-entropy vs TLM, SubTB(0.9) forward loss, on hypergrid 4-D H=20 with the standard and the
# hard reward, three seeds each (configs/hypergrid_tlm.toml); and TLM vs uniform vs naive P_B on
# the Box 2-D (configs/box.toml, trajectory balance; the learned backward Betas' concentrations
# bounded below by the paper's 0.1, which float64 chart coordinates allow: README "Numerics"). Logs go to
# runs/tlm_comparison/<setting>/<backward>_s<seed>/log.h5; scripts/comparison_table.py prints the
# tables of bench/RESULTS.md (exact TV, the papers' L1 and |log Z - log Z_hat| for the grids; the
# grid JSD of the importance-sampled density, |log Z_IS - log Z| and the ELBO for the Box).
#
#   scripts/tlm_comparison.sh [ITERATIONS_GRID] [ITERATIONS_BOX]    (defaults 3000 and 1500)
# Runs already logged are skipped; JOBS runs at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
IT=${1:-3000}
ITB=${2:-1500}
OUT=${OUT:-runs/tlm_comparison}
SETTINGS=${SETTINGS:-"4d_h20_standard 4d_h20_hard box2d"}
EVAL_EVERY=${EVAL_EVERY:-500}

declare -A ARGS=(
  [4d_h20_standard]="configs/hypergrid_tlm.toml --set train.iterations=$IT"
  [4d_h20_hard]="configs/hypergrid_tlm.toml --set env.r0=1e-4 --set env.r1=1.0 --set env.r2=3.0 --set train.iterations=$IT"
  [box2d]="configs/box.toml --set train.iterations=$ITB --set train.lr_decay_every=0 --set policy.backward_min_concentration=0.1"
)
for seed in 0 1 2; do
  for setting in $SETTINGS; do
    for backward in uniform learned maxent tlm; do
      if [ "$setting" = box2d ] && [ "$backward" = maxent ]; then continue; fi  # no path counts
      echo "$OUT/$setting/${backward}_s$seed ${ARGS[$setting]} --set name=${setting}_$backward --set seed=$seed" \
        "--set policy.backward=$backward --set eval.every=$EVAL_EVERY --set log.trajectories_every=0" \
        "--set eval.samples=0"
    done
  done
done | scripts/run_jobs.sh
for setting in $SETTINGS; do
  if [ "$setting" = box2d ]; then metrics="grid_jsd log_z_is_error elbo"; else metrics="tv l1 log_z_error"; fi
  ${PYTHON:-/usr/bin/python3} scripts/comparison_table.py "$OUT/$setting" $metrics
done
