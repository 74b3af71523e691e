#!/usr/bin/env bash
# How time per iteration grows with the trajectory length: bench_train's Line case (learned P_B,
# MLP 2×128, batch 300) at 5 to 100 steps (T = steps + 1 with the exit), one line per length,
# and the time per step of trajectory.
#   [OBJECTIVE=subtb] [ITERS=20] [BENCH_FLAGS="--device cuda --graph on"] scripts/length_scaling.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
bench="$build/bin/bench_train"
[ -x "$bench" ] || { echo "length_scaling.sh: $bench not built (configure with -DGFN_BUILD_BENCHMARKS=ON)" >&2; exit 2; }
objective=${OBJECTIVE:-subtb}
iters=${ITERS:-20}
echo "| steps (T) | $objective ms / iteration | trajectories / s | ms per step of T |"
echo "|---|---|---|---|"
for steps in 5 10 25 50 100; do
  # shellcheck disable=SC2086
  line=$("$bench" --only "line 100 steps" --env "steps=$steps" --objective "$objective" --iters "$iters" \
           --warmup 3 ${BENCH_FLAGS:-} | grep "ms/iter")
  ms=$(sed -E 's/.* ([0-9.]+) ms\/iter.*/\1/' <<<"$line")
  tps=$(sed -E 's/.* ([0-9]+) traj\/s.*/\1/' <<<"$line")
  per=$(awk -v a="$ms" -v t="$((steps + 1))" 'BEGIN { printf "%.3f", a / t }')
  echo "| $steps ($((steps + 1))) | $ms | $tps | $per |"
done
