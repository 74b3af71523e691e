#!/usr/bin/env bash
# Installs the Debian 12 packages gfn needs to build, test and run, and nothing else.
# Idempotent: packages already installed are left alone; apt runs only when one is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread       # LibTorch 1.13 (CPU) on OpenBLAS, not the reference BLAS
  libgloo-dev                             # Gloo's headers: LibTorch's c10d process group (multi-process training)
  libhdf5-dev hdf5-tools                  # HDF5 logs (h5dump for inspection)
  libeigen3-dev libboost-math-dev         # exact solutions, quadrature, special functions
  libgtest-dev libgmock-dev               # tests
  libtomlplusplus-dev libcli11-dev libfmt-dev   # config and command line
  nlohmann-json3-dev                      # `gfn analyse --json` writes its object through nlohmann-json
  python3-h5py                            # the README's h5py snippet is tested against real logs
  gnuplot-nox                             # `gfn analyse --plot` draws its PNGs through gnuplot
  clang-14 libclang-rt-14-dev llvm-14     # scripts/sanitize.sh, scripts/fuzz.sh: ASan, UBSan, libFuzzer, symbolizer
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
