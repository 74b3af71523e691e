#!/usr/bin/env bash
# What a GPU session runs, in one go (issue 7): build against the LibTorch inside PyTorch, run the
# CUDA tests and the fixed-shape tests, then time issue 7's configurations eagerly, as CUDA graphs
# and without the fused kernels, and the batch and length scaling tables. The output is what
# bench/RESULTS.md records (with the machine named).
#   scripts/gpu_check.sh [BUILD_DIR]        (default build-cuda; an existing build is reused)
# Environment: DEVICE (cuda), ITERS (200), SKIP_BUILD=1 to use BUILD_DIR as it is,
# SKIP_TESTS=1, SKIP_SCALING=1. DEVICE=cpu runs the same script against a CPU build (a dry run).
# Needs cmake, a C++17 compiler, nvcc, and the Debian packages' headers and libraries (HDF5, fmt,
# toml++, CLI11, Eigen, Boost.Math, GoogleTest) on the compiler's paths.
set -euo pipefail
build=${1:-build-cuda}
device=${DEVICE:-cuda}
iters=${ITERS:-200}
say() { printf '\n== %s\n' "$*"; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "configure and build ($build)"
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGFN_BUILD_BENCHMARKS=ON -DCMAKE_PREFIX_PATH="$prefix"
  cmake --build "$build" --target gfn_cli bench_train fixed_shape_test kernels_test \
    $( [ "$device" = cpu ] || echo cuda_test )
fi
bench="$build/bin/bench_train"

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  say "tests"
  [ "$device" = cpu ] || "$build/bin/cuda_test"
  "$build/bin/fixed_shape_test"
  "$build/bin/kernels_test"
fi

say "issue 7's configurations, TB, $iters iterations ($device)"
modes=("")
[ "$device" = cpu ] || modes=("" "--graph on" "--kernels off" "--graph on --kernels off")
for only in "hypergrid 2-D H=8 batch 16" "4-D H=16 batch 512" "4-D H=32 batch 512"; do
  for mode in "${modes[@]}"; do
    # shellcheck disable=SC2086
    "$bench" --device "$device" --only "$only" --iters "$iters" --warmup 20 --tabular off $mode | grep ms/iter |
      sed "s/\$/   [$mode]/"
  done
done
for b in 128 4096; do
  for mode in "${modes[@]}"; do
    # shellcheck disable=SC2086
    "$bench" --device "$device" --only "box 2-D polar" --batch "$b" --iters "$iters" --warmup 20 $mode |
      grep ms/iter | sed "s/\$/   [$mode]/"
  done
done
# shellcheck disable=SC2086
"$bench" --device "$device" --only "line 100 steps" --objective subtb --iters 50 --warmup 5 | grep ms/iter
[ "$device" = cpu ] || "$bench" --device "$device" --graph on --only "line 100 steps" --objective subtb --iters 50 \
  --warmup 5 | grep ms/iter

if [ "${SKIP_SCALING:-0}" != 1 ]; then
  flags="--device $device"
  [ "$device" = cpu ] || flags="$flags --graph on"
  say "batch scaling, hypergrid 4-D H=16 ($flags)"
  BENCH_FLAGS="$flags --tabular off" TRAJECTORIES=${TRAJECTORIES:-2000000} scripts/scaling.sh "4-D H=16 batch 512" 65536 "$build"
  say "length scaling, SubTB ($flags)"
  BENCH_FLAGS="$flags" OBJECTIVE=subtb scripts/length_scaling.sh "$build"
fi
