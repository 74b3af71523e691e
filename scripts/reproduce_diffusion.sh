#!/usr/bin/env bash
# The diffusion-sampler comparison of Sendera et al. (NeurIPS 2024, "Improved off-policy training
# of diffusion samplers"; shared/REFERENCES.md) at the budget this machine allows: TB, TB +
# exploration, VarGrad + exploration, FL-SubTB, and TB + exploration + local search (replay with
# rank prioritisation, MALA every 100 iterations), on 25GMM, Funnel and Manywell with the paper's
# settings (T = 100, batch 300, sigma^2 = 5 for 25GMM and 1 otherwise, lr 1e-3, log Z lr 0.1 for
# TB and 0.01 for SubTB), three seeds each. Exploration decays linearly over the first half of the
# budget (the paper's text). Every run logs Delta log Z (elbo_error), Delta log Z^RW
# (log_z_is_error) and W2^2 (w2_squared) from K = 2,000 trajectories and exact samples at the end
# to runs/diffusion/<target>/<method>_s<seed>/log.h5; scripts/diffusion_table.py makes the table
# of bench/RESULTS.md.
#
#   scripts/reproduce_diffusion.sh [ITERATIONS]     (default 400; the paper: 25,000)
#   TARGETS="25gmm" JOBS=1 scripts/reproduce_diffusion.sh 2000
# Runs already logged are skipped; JOBS run at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
IT=${1:-400}
OUT=${OUT:-runs/diffusion}
TARGETS=${TARGETS:-"25gmm funnel manywell"}
HALF=$(( IT / 2 > 0 ? IT / 2 : 1 ))
declare -A EXPLORE=([25gmm]=0.2 [funnel]=0.1 [manywell]=0.1)
for seed in 0 1 2; do
  for target in $TARGETS; do
    common="--set seed=$seed --set train.iterations=$IT --set eval.every=$IT --set eval.grid=0 --set log.trajectories_every=0"
    expl="--set explore.noise=${EXPLORE[$target]} --set explore.decay=$HALF"
    cfg=configs/diffusion_$target.toml
    echo "$OUT/$target/tb_s$seed $cfg $common"
    echo "$OUT/$target/tb_expl_s$seed $cfg $common $expl"
    echo "$OUT/$target/vargrad_expl_s$seed $cfg $common $expl --set objective.kind=\"vargrad\""
    echo "$OUT/$target/fl_subtb_s$seed $cfg $common --set objective.kind=\"subtb\" --set objective.lambda=2.0 --set objective.credit=\"fl\" --set train.lr_logz=0.01"
    echo "$OUT/$target/tb_expl_ls_s$seed $cfg $common $expl --set replay.capacity=600000 --set local_search.every=100"
  done
done | scripts/run_jobs.sh
