#!/usr/bin/env bash
# Builds gfn (library, command line, tests; the fuzzers too, sharing the build) with
# AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer into build-sanitize/
# (clang-14 with libstdc++; scripts/sanitize/common.sh) and runs the tests under them. Every
# sanitizer report is fatal (the test fails) and is also written to
# build-sanitize/sanitizer-logs/, so that reports of child processes (the CLI tests run
# bin/gfn) count even when a test swallows their stderr. The run is clean when every test
# passes and that directory stays empty.
#
# What runs: `ctest -LE 'learning|install' -E "$excluded"`, every test but
#   - the learning tests (label learning), and those of core/condition_test.cc
#     (Seeds/ConditionalLearning.*, three training runs of ~150 s each under ASan, unlabelled
#     because the file also holds unit tests): training runs exercise no code the unit tests do
#     not;
#   - the install test (label install: it builds examples/custom_env with the system's gcc
#     against this sanitized library, which cannot link without the sanitizer runtimes);
#   - the env checker swept over every builtin env and every shipped config
#     (CheckerTest.EveryBuiltinEnvPasses, CheckerTest.EveryShippedConfigPasses: 10 and more
#     than 20 minutes under ASan); the checker's per-env tests and each env's own run that code;
#   - Hardening.KilledAtTwentyMomentsResumesToTheSameEnd: 20 runs killed and resumed (~4 min
#     under ASan); the other kill-and-resume tests (Signals.*, Hardening.*) take the same paths.
# Third-party reports are suppressed in scripts/sanitize/{asan,lsan,ubsan}.supp, each with its
# reason.
#
# Usage: scripts/sanitize.sh [extra ctest arguments, e.g. -R hdf5]
#   GFN_JOBS (default 2): ninja's and ctest's parallelism.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sanitize/common.sh"
jobs=${GFN_JOBS:-2}

start=$(date +%s)
gfn_sanitize_configure
ninja -C "$GFN_SANITIZE_BUILD" -j "$jobs"
built=$(date +%s)

log_dir=$GFN_SANITIZE_BUILD/sanitizer-logs
rm -rf "$log_dir"
gfn_sanitize_env "$log_dir"
set +e
excluded='ConditionalLearning|CheckerTest\.EveryBuiltinEnvPasses|CheckerTest\.EveryShippedConfigPasses'
excluded="$excluded|Hardening\.KilledAtTwentyMomentsResumesToTheSameEnd"
ctest --test-dir "$GFN_SANITIZE_BUILD" -LE 'learning|install' -E "$excluded" -j "$jobs" --timeout 1200 \
  --output-on-failure "$@" \
  2>&1 | tee "$GFN_SANITIZE_BUILD/sanitize-ctest.log"
status=${PIPESTATUS[0]}
set -e
done_at=$(date +%s)

reports=$(find "$log_dir" -type f | wc -l)
summary=$(grep -E '^[0-9]+% tests passed' "$GFN_SANITIZE_BUILD/sanitize-ctest.log" | tail -1 || true)
echo
echo "sanitize: build $((built - start)) s, tests $((done_at - built)) s; ${summary:-no ctest summary}"
echo "sanitize: $reports sanitizer report file(s) in $log_dir"
if [ "$reports" -gt 0 ]; then
  for f in "$log_dir"/*; do
    echo "--- $f"
    head -40 "$f"
  done
  exit 1
fi
exit "$status"
