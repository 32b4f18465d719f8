#!/usr/bin/env bash
# Builds the standalone kernel test/benchmark binary (no GPU needed to build):
#   native/kernel-tests/build.sh  ->  native/build/kernel-tests/kernel-tests
# Run it on the GPU machine: native/build/kernel-tests/kernel-tests [--quick] [--no-bench]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../build/kernel-tests"
mkdir -p "$out"
nvcc -std=c++17 -O3 -lineinfo \
  -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=sm_80 \
  -gencode=arch=compute_80,code=compute_80 \
  -I"$here/../kernels" "$here"/../kernels/*.cu "$here"/*.cu -o "$out/kernel-tests" "$@"
echo "built $out/kernel-tests"
