#!/usr/bin/env bash
# The out-of-tree extension path, end to end: install the build tree to a prefix inside it,
# configure and build examples/custom_env against that prefix with find_package(gfn), run the
# example (environment check, then a short training run) and check what it printed.
#
#   custom_env_test.sh CMAKE BUILD_DIR SOURCE_DIR
set -euo pipefail
cmake=$1 build=$2 source=$3
prefix=$build/test-install
example_build=$build/test-custom_env
work=$build/test-custom_env-run

fail() { echo "FAIL: $*" >&2; exit 1; }

# install into a fresh prefix: only what `cmake --install` puts there is visible to the example
rm -rf "$prefix" "$example_build" "$work"
"$cmake" --install "$build" --prefix "$prefix" >/dev/null
ls "$prefix"/lib*/cmake/gfn/gfnConfig.cmake >/dev/null 2>&1 || fail "no lib/cmake/gfn/gfnConfig.cmake under $prefix"
[[ -f $prefix/include/gfn/apps/run.h && -f $prefix/include/gfn/core/env.h ]] || fail "headers not installed under $prefix/include/gfn"
[[ ! -e $prefix/include/gfn/core/internal ]] || fail "the private precompiled header was installed"

# configure and build the example against the prefix alone (ccache when there is one)
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$source
fi
"$cmake" -S "$source/examples/custom_env" -B "$example_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "${launcher[@]}" >/dev/null
grep -qF "gfn_DIR:PATH=$prefix/" "$example_build/CMakeCache.txt" || fail "find_package(gfn) did not find the test prefix"
"$cmake" --build "$example_build" >/dev/null

# run it: the check passes, training runs and reports
mkdir -p "$work"
cd "$work"
set +e
"$example_build/custom_env" "$source/examples/custom_env/ring.toml" runs/ring >out.txt 2>err.txt
rc=$?
set -e
cat out.txt
[[ $rc -eq 0 ]] || { cat err.txt >&2; fail "custom_env exited with $rc"; }
for pattern in '^PASS inverse' '^PASS jacobian' '^PASS normalisation' '^PASS partition' '^PASS termination' \
               '^ring: environment check passed \(exact log Z 3\.652' \
               '^run runs/ring: 400 iterations, 25600 trajectories' \
               '^  importance-sampled log Z ' '^  log: runs/ring/log.h5'; do
  grep -Eq "$pattern" out.txt || fail "the output has no line matching '$pattern'"
done
[[ -s runs/ring/log.h5 && -s runs/ring/model.pt && -s runs/ring/config.toml ]] || fail "the run directory is incomplete"
echo "custom_env: installed, built, checked and trained"
