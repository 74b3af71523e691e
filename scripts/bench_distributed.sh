#!/usr/bin/env bash
# Data-parallel scaling on this machine: trajectories per second of 1 and 2 processes at equal
# per-process batch (gfn train, then gfn launch -n 2 with twice the batch, through shared memory
# and through Gloo), and the gradient all-reduce's share of an iteration (with, over shared
# memory, the exchange alone), for the Box 2-D (batch 128 per rank, MLP 4x128) and hypergrid 4-D
# H=8 (batch 16 per rank, MLP 2x256). Training time only: evaluations are off until the end
# (rank 0's), and the figures are gfn's own "training ms/iteration".
#   scripts/bench_distributed.sh [ITERATIONS] [REPEATS] [CASE]   (CASE: box2d or hypergrid4d; both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
G=build/bin/gfn
iters=${1:-300}
repeats=${2:-3}
only=${3:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name, config, per-rank batch, extra --set
cases=(
  "box2d|configs/box.toml|128|--set eval.is_samples=256 --set eval.grid=0"
  "hypergrid4d|configs/hypergrid.toml|16|--set env.ndim=4 --set train.tabular=off"
)
printf '%-12s %-7s %6s %9s %9s %8s  %s\n' case n batch "ms/iter" "traj/s" "speedup" "all-reduce (share; exchange alone)"
for c in "${cases[@]}"; do
  IFS='|' read -r name config batch extra <<< "$c"
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  for r in $(seq "$repeats"); do
    one=
    for n in 1 2 2-gloo; do
      dir="$out/$name-$n-$r"
      p=${n%-gloo}
      common=(--set train.iterations="$iters" --set eval.every=0 --set eval.samples=0
              --set train.batch_size=$((batch * p)) --out "$dir")
      # shellcheck disable=SC2086
      if [ "$n" = 1 ]; then $G train "$config" "${common[@]}" $extra > "$dir.txt" 2>&1
      elif [ "$n" = 2 ]; then $G launch -n 2 "$config" "${common[@]}" $extra > "$dir.txt" 2>&1
      else $G launch -n 2 "$config" "${common[@]}" --set distributed.transport=gloo $extra > "$dir.txt" 2>&1; fi
      ms=$(sed -n 's/.*training \([0-9.]*\) ms\/iteration.*/\1/p' "$dir.txt")
      ar=$(sed -n 's/.*gradient all-reduce \([0-9.]*\) ms\/iteration (\([0-9.]*\)%.*/\1 ms (\2%)/p' "$dir.txt")
      ex=$(sed -n 's/.*: \([0-9.]*\) ms (\([0-9.]*\)%) exchanging.*/; \1 ms (\2%)/p' "$dir.txt")
      tps=$(awk -v b=$((batch * p)) -v ms="$ms" 'BEGIN { printf "%.0f", 1000 * b / ms }')
      [ "$n" = 1 ] && one=$tps
      up=$(awk -v a="$tps" -v b="$one" 'BEGIN { printf "%.2fx", a / b }')
      printf '%-12s %-7s %6s %9s %9s %8s  %s\n' "$name" "$n" $((batch * p)) "$ms" "$tps" "$up" "${ar:--}${ex}"
    done
  done
done
