# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: the one configuration of build-sanitize/
# both use (so that neither rebuilds what the other built) and the sanitizers' run-time options.
#
# build-sanitize/: clang-14 (with libstdc++, as LibTorch and the other Debian libraries were
# built with gcc), every gfn target (library, apps, tests, fuzzers) instrumented with
# AddressSanitizer and UndefinedBehaviorSanitizer and libFuzzer's coverage (GFN_BUILD_FUZZERS),
# -O1 with line tables for symbolised reports, assertions on (no NDEBUG), no benchmarks.
# LibTorch, OpenBLAS, HDF5 and the rest stay uninstrumented: ASan still checks every access
# our code makes and every allocation it frees, whoever allocated it.

GFN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GFN_SANITIZE_BUILD=${GFN_SANITIZE_BUILD:-$GFN_ROOT/build-sanitize}
GFN_SANITIZE_SUPP=$GFN_ROOT/scripts/sanitize

# Configures build-sanitize/ (once; later calls only check that it is this configuration).
gfn_sanitize_configure() {
  for tool in clang-14 clang++-14 cmake ninja; do
    command -v "$tool" >/dev/null || { echo "sanitize: $tool not found (Debian: scripts/setup.sh installs it)" >&2; return 1; }
  done
  local fuzzer_lib
  fuzzer_lib=$(clang++-14 -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
  [ -f "$fuzzer_lib" ] || fuzzer_lib=$(find /usr/lib/llvm-14 -name 'libclang_rt.fuzzer-x86_64.a' 2>/dev/null | head -1)
  if [ ! -f "$fuzzer_lib" ]; then
    echo "sanitize: clang-14's libFuzzer runtime is missing (Debian: libclang-rt-14-dev; scripts/setup.sh installs it)" >&2
    return 1
  fi
  cmake -S "$GFN_ROOT" -B "$GFN_SANITIZE_BUILD" -G Ninja \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=Sanitize \
    -DCMAKE_C_FLAGS_SANITIZE="-O1 -gline-tables-only" \
    -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -gline-tables-only" \
    -DGFN_SANITIZE=address,undefined -DGFN_BUILD_FUZZERS=ON \
    -DGFN_BUILD_BENCHMARKS=OFF -DGFN_BUILD_TESTS=ON >/dev/null
}

# The sanitizers' options for every process the tests or fuzzers start (children included: the
# CLI tests run bin/gfn). With a directory $1, each report goes to a file there instead of
# stderr, so that reports of child processes whose stderr a test swallows are still counted.
gfn_sanitize_env() {
  local log_dir=${1:-} asan_log= ubsan_log=
  if [ -n "$log_dir" ]; then
    mkdir -p "$log_dir"
    asan_log=":log_path=$log_dir/asan"
    ubsan_log=":log_path=$log_dir/ubsan"
  fi
  # symbolized reports without the unversioned llvm package
  export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}
  # ASan: leaks checked at exit (LeakSanitizer; third-party leaks in lsan.supp), the order of
  # static initialisers across translation units checked, stack use after return caught; the
  # first report ends the process (a failed test, a fuzzer's finding)
  local asan=detect_leaks=1:check_initialization_order=1:strict_init_order=1
  asan=$asan:detect_stack_use_after_return=1:halt_on_error=1
  export ASAN_OPTIONS="$asan$asan_log:suppressions=$GFN_SANITIZE_SUPP/asan.supp"
  export LSAN_OPTIONS="suppressions=$GFN_SANITIZE_SUPP/lsan.supp:print_suppressions=0"
  # UBSan: each report with its stack, and fatal (-fno-sanitize-recover=all makes it so too)
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1$ubsan_log:suppressions=$GFN_SANITIZE_SUPP/ubsan.supp"
}
