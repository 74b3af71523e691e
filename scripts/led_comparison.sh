#!/usr/bin/env bash
# The LED paper's set-generation comparison (Jang et al., ICLR 2024; shared/REFERENCES.md), at the
# budget this machine allows: SubTB(0.9) vs forward-looking SubTB (the env's exact energies as
# credits) vs LED-SubTB (learned credits) on sets (|U|, |S|) = (30, 20), (80, 60), (100, 80),
# three seeds each (configs/sets_led.toml with objective.credit = none / fl / led). Logs go to
# runs/led_comparison/<size>/<variant>_s<seed>/log.h5; scripts/comparison_table.py prints the
# tables of bench/RESULTS.md: the mean reward of the top-100 distinct sets found, the error of
# the policy's inclusion frequencies against the exact probabilities, |log Z_IS - log Z|.
#
#   scripts/led_comparison.sh [ITERATIONS]       (default 1000)
# Runs already logged are skipped; JOBS runs at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
IT=${1:-1000}
OUT=${OUT:-runs/led_comparison}
SIZES=${SIZES:-"30_20 80_60 100_80"}
EVAL_EVERY=${EVAL_EVERY:-250}

for seed in 0 1 2; do
  for size in $SIZES; do
    for credit in none fl led; do
      case $credit in none) variant=subtb ;; fl) variant=fl_subtb ;; led) variant=led_subtb ;; esac
      echo "$OUT/sets_$size/${variant}_s$seed configs/sets_led.toml --set name=sets_${size}_$variant" \
        "--set seed=$seed --set env.universe=${size%_*} --set env.size=${size#*_} --set objective.credit=$credit" \
        "--set train.iterations=$IT --set eval.every=$EVAL_EVERY --set log.trajectories_every=0 --set eval.samples=0"
    done
  done
done | scripts/run_jobs.sh
${PYTHON:-/usr/bin/python3} scripts/comparison_table.py "$OUT" top_k_mean_reward inclusion_error log_z_is_error
