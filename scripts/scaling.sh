#!/usr/bin/env bash
# How time per iteration grows with the batch size: bench_train on one case at batch 16 to
# 65,536 (iterations scaled so that each size takes seconds, not minutes), one line per size,
# and the ratio to the batch-512 figure (issue 7's scaling target on the GPU: <= 20x at 65,536).
#   [TRAJECTORIES=200000] [BENCH_FLAGS="--device cuda --graph on"] scripts/scaling.sh ["hypergrid 2-D H=8"] [MAX_BATCH] [BUILD_DIR]
# TRAJECTORIES: the trajectories each size samples (iterations = TRAJECTORIES / batch, 3 to 500).
# BENCH_FLAGS: further bench_train flags (the device, CUDA graphs, the objective).
set -euo pipefail
case_name=${1:-"hypergrid 2-D H=8"}
max_batch=${2:-65536}
build=${3:-build}
bench="$build/bin/bench_train"
[ -x "$bench" ] || { echo "scaling.sh: $bench not built" >&2; exit 2; }
echo "| batch | ms / iteration | trajectories / s | × batch 512 |"
echo "|---|---|---|---|"
ref=""
for b in 16 64 256 512 1024 4096 16384 65536; do
  [ "$b" -le "$max_batch" ] || break
  iters=$(( ${TRAJECTORIES:-200000} / b )); [ "$iters" -gt 500 ] && iters=500; [ "$iters" -lt 3 ] && iters=3
  warm=$(( iters / 10 )); [ "$warm" -lt 1 ] && warm=1
  # shellcheck disable=SC2086
  line=$("$bench" --only "$case_name" --batch "$b" --iters "$iters" --warmup "$warm" ${BENCH_FLAGS:-} | grep "ms/iter")
  ms=$(sed -E 's/.* ([0-9.]+) ms\/iter.*/\1/' <<<"$line")
  tps=$(sed -E 's/.* ([0-9]+) traj\/s.*/\1/' <<<"$line")
  [ "$b" -eq 512 ] && ref=$ms
  ratio=$([ -n "$ref" ] && awk -v a="$ms" -v r="$ref" 'BEGIN { printf "%.1f", a / r }' || echo "")
  echo "| $b | $ms | $tps | $ratio |"
done
