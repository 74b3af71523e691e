#!/usr/bin/env bash
# The out-of-tree extension path, end to end: install the build tree to a prefix inside it,
# configure and build examples/custom_env against that prefix with find_package(gfn), run the
# example's command line (cli_main over a registry with its Ring environment) through every
# command: check-env, train, a refused reuse of the run directory, train --resume, eval, sample,
# keys and analyse; and check what each printed.
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

# every command of the example's own command line, on its own environment
mkdir -p "$work"
cd "$work"
cmd() {  # cmd NAME ARGS...: runs custom_env ARGS, output in NAME.out / NAME.err, exit code in rc
  local name=$1
  shift
  set +e
  "$example_build/custom_env" "$@" >"$name.out" 2>"$name.err"
  rc=$?
  set -e
  cat "$name.out"
}
expect() {  # expect FILE PATTERN...: every pattern matches a line of FILE
  local file=$1
  shift
  for pattern in "$@"; do grep -Eq -- "$pattern" "$file" || fail "$file has no line matching '$pattern'"; done
}

cmd check check-env ring
[[ $rc -eq 0 ]] || { cat check.err >&2; fail "check-env ring exited with $rc"; }
expect check.out '^PASS inverse' '^PASS jacobian' '^PASS normalisation' '^PASS partition: .* vs exact 3\.652' \
  '^PASS termination' '^ring: passed 5 of 5 checks'

cmd train train "$source/examples/custom_env/ring.toml" --out runs/ring
[[ $rc -eq 0 ]] || { cat train.err >&2; fail "train exited with $rc"; }
expect train.out '^run runs/ring: 400 iterations, 25600 trajectories' '^  importance-sampled log Z ' \
  '^  log: runs/ring/log.h5'
[[ -s runs/ring/log.h5 && -s runs/ring/model.pt && -s runs/ring/config.toml && -s runs/ring/checkpoint.pt ]] ||
  fail "the run directory is incomplete"

# a reused directory is refused, and the advice names this program's resume
cmd again train "$source/examples/custom_env/ring.toml" --out runs/ring
[[ $rc -eq 2 ]] || fail "training into a used directory exited with $rc, not 2"
expect again.err 'continue it with custom_env train --resume runs/ring'

cmd resume train --resume runs/ring --set train.iterations=450
[[ $rc -eq 0 ]] || { cat resume.err >&2; fail "train --resume exited with $rc"; }
expect resume.out '^run runs/ring: 450 iterations, 28800 trajectories'

cmd eval eval runs/ring --json
[[ $rc -eq 0 ]] || { cat eval.err >&2; fail "eval exited with $rc"; }
expect eval.out '"iteration": 450, "env": "ring"' '"log_z_is": '

cmd sample sample runs/ring -n 64
[[ $rc -eq 0 ]] || { cat sample.err >&2; fail "sample exited with $rc"; }
expect sample.out '^64 terminal samples of the policy at iteration 450'
[[ -s runs/ring/samples.h5 ]] || fail "no samples.h5"

cmd keys keys
[[ $rc -eq 0 ]] || fail "keys exited with $rc"
expect keys.out '^env.kind = "hypergrid" .*"ring"' '^# \[env\] for env.kind = "ring"' '^env.inner_radius = 1.0 '

cmd analyse analyse runs/ring
[[ $rc -eq 0 ]] || { cat analyse.err >&2; fail "analyse exited with $rc"; }
expect analyse.out 'ring'
# the diffusion sampler of the example's own density: a short training run
cmd diffusion train "$source/examples/custom_env/ring_diffusion.toml" --out runs/ring_diffusion \
  --set env.steps=10 --set train.iterations=20 --set eval.every=0 --set eval.grid=20 --set eval.is_samples=200
[[ $rc -eq 0 ]] || { cat diffusion.err >&2; fail "train ring_diffusion exited with $rc"; }
expect diffusion.out '^run runs/ring_diffusion: 20 iterations' '^  importance-sampled log Z ' '^  terminating density on 400'
echo "custom_env: installed, built, checked, trained, resumed, evaluated, sampled and analysed"
