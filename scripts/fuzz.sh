#!/usr/bin/env bash
# Builds the four libFuzzer targets (fuzz/targets.h: config, overrides, log, checkpoint) in
# build-sanitize/ (clang-14, ASan + UBSan + libFuzzer's coverage; scripts/sanitize/common.sh)
# and runs each for SECONDS, two at a time, then prints per fuzzer its executions, corpus size
# and findings. Each fuzzer starts from its seeds and kept findings in tests/fuzz/<target>/ and
# grows its working corpus in build-sanitize/fuzz/corpus/<target>/ (kept between runs). It runs
# in libFuzzer's fork mode (one worker process at a time) and goes on after a finding: a
# crashing, leaking, hanging (-timeout=10 s) or memory-hungry (over 6 GB resident) input is
# written to build-sanitize/fuzz/artifacts/<target>/ and fuzzing continues, so that one run
# finds every bug within reach rather than the first. Each finding's report is in the
# fuzzer's log; `build-sanitize/bin/fuzz_<target> ARTIFACT` replays it. A finding, once fixed,
# goes to tests/fuzz/<target>/ (named after what it found), where tests/io/fuzz_replay_test.cc
# replays it in every build.
#
# The config and overrides fuzzers get a dictionary of every config key and choice, made from
# `gfn keys` (build-sanitize/fuzz/config.dict).
#
# Usage: scripts/fuzz.sh [SECONDS [TARGET...]]   (default 600 s, every target)
#   GFN_JOBS (default 2): ninja's parallelism, and how many fuzzers run at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sanitize/common.sh"
seconds=${1:-600}
jobs=${GFN_JOBS:-2}
targets=(config overrides log checkpoint)
if [ $# -gt 1 ]; then
  shift
  for t in "$@"; do
    case " ${targets[*]} " in *" $t "*) ;; *) echo "fuzz.sh: unknown target '$t' (expected one of: ${targets[*]})" >&2; exit 2 ;; esac
  done
  targets=("$@")
fi

gfn_sanitize_configure
ninja -C "$GFN_SANITIZE_BUILD" -j "$jobs" gfn_cli "${targets[@]/#/fuzz_}"

work=$GFN_SANITIZE_BUILD/fuzz
mkdir -p "$work"
# the tests' run-time options, each sanitizer report in full in build-sanitize/fuzz/reports/
# (fork mode keeps only its first line in the fuzzer's log; ASan's one-line warnings for the
# allocations the cap below refuses land there too)
rm -rf "$work/reports"
gfn_sanitize_env "$work/reports"
# A failed allocation throws std::bad_alloc as in a release build (fuzz/fuzzer_main.cc), which
# the readers report as a damaged file, and one allocation over 256 MB fails: no input of these
# targets (no larger than the largest seed, 390 KB) needs one. (LibTorch's unpickler allocates
# what an archive declares: 20 GB asked by a 36 KB checkpoint behind a forged checksum, before
# core/archive_check.h checked those sizes against the file. Under ASan such an allocation
# ended the process whatever allocator_may_return_null said, and one of 1-2 GB took 12 s to
# zero-fill.) A process over 6 GB resident is still a finding.
export ASAN_OPTIONS="$ASAN_OPTIONS:allocator_may_return_null=1:max_allocation_size_mb=256"

# the dictionary: "key" and "[section]" for every key, "value" for every choice
"$GFN_SANITIZE_BUILD/bin/gfn" keys | python3 -c '
import re, sys
words = set()
for line in sys.stdin:
    m = re.match(r"([a-z_0-9.]+) = ", line)
    if m:
        key = m.group(1)
        words.add(key)
        words.update(key.split("."))
        if "." in key:
            words.add("[" + key.rsplit(".", 1)[0] + "]")
    for choice in re.findall(r"\"([a-z_0-9.]+)\"", line):
        words.add("\"" + choice + "\"")
for w in sorted(words):
    print("\"%s\"" % w.replace("\\", "\\\\").replace("\"", "\\\""))
' > "$work/config.dict"

# seeds from a real run (not kept in git: its log is ~300 KB, each dataset holding at least one
# whole chunk): its log.h5 and its checkpoint.pt, of the run the checkpoint target reads into
# (fuzz/targets.h: checkpoint_run_overrides); no stored trajectories (nine N-D datasets of
# 64 KB chunks would triple the log, and so each execution's time)
seed_run=$work/seed-run
if [ ! -f "$seed_run/checkpoint.pt" ]; then
  rm -rf "$seed_run"
  (cd "$GFN_ROOT" && "$GFN_SANITIZE_BUILD/bin/gfn" train configs/hypergrid.toml --out "$seed_run" \
     --set train.iterations=20 --set eval.every=10 --set log.every=5 --set log.trajectories_every=0 \
     --set eval.samples=8 --set policy.hidden=16 --set policy.layers=1) >/dev/null
fi
mkdir -p "$work/corpus/log" "$work/corpus/checkpoint"
cp "$seed_run/log.h5" "$work/corpus/log/seed-run-log.h5"
cp "$seed_run/checkpoint.pt" "$work/corpus/checkpoint/seed-run-checkpoint.pt"

run_one() {
  local t=$1
  local corpus=$work/corpus/$t artifacts=$work/artifacts/$t/
  mkdir -p "$corpus" "$artifacts"
  local dict=()
  if [ "$t" = config ] || [ "$t" = overrides ]; then dict=(-dict="$work/config.dict"); fi
  # from the repository root: the targets read configs/
  (cd "$GFN_ROOT" && "$GFN_SANITIZE_BUILD/bin/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=6144 -malloc_limit_mb=8192 -timeout=10 \
      -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
      -artifact_prefix="$artifacts" "${dict[@]}" "$corpus" "tests/fuzz/$t") \
    >"$work/$t.log" 2>&1 || true
}

# two at a time
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  for t in "${targets[@]:i:jobs}"; do
    echo "fuzz: $t for $seconds s"
    run_one "$t" &
  done
  wait
done

# the figures: fork mode's last status line, "#<executions>: cov: .. ft: .. corp: <units> exec/s
# <rate> oom/timeout/crash: a/b/c time: <s>s ..." (a missing field is printed as ?)
printf '\n%-11s %12s %8s %8s %8s %s\n' fuzzer executions exec/s corpus seconds 'findings (oom/timeout/crash)'
found=0
for t in "${targets[@]}"; do
  status=$(grep -E '^#[0-9]+: cov:' "$work/$t.log" | tail -1 || true)
  execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$status")
  rate=$(grep -oE 'exec/s:? [0-9]+' <<<"$status" | awk '{print $2}' || true)
  time_s=$(grep -oE 'time: [0-9]+s' <<<"$status" | grep -oE '[0-9]+' || true)
  kinds=$(grep -oE 'oom/timeout/crash: [0-9]+/[0-9]+/[0-9]+' <<<"$status" | awk '{print $2}' || true)
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  artifacts=$(find "$work/artifacts/$t" -type f 2>/dev/null | wc -l)
  found=$((found + artifacts))
  printf '%-11s %12s %8s %8s %8s %s (%s artifacts)\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "${time_s:-?}" \
    "${kinds:-?}" "$artifacts"
done
echo "fuzz: logs in $work/<target>.log, findings in $work/artifacts/<target>/"
[ "$found" -eq 0 ]
