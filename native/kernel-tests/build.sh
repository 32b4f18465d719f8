#!/usr/bin/env bash
# Builds the standalone kernel test/benchmark binary (no GPU needed to build):
#   native/kernel-tests/build.sh  ->  native/build/kernel-tests/kernel-tests
# Objects are cached: only .cu files newer than their object (or any header) are recompiled.
# Run it on the GPU machine: native/build/kernel-tests/kernel-tests [--quick] [--no-bench]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kern="$here/../kernels"
out="$here/../build/kernel-tests"
mkdir -p "$out/obj"
# KT_GENCODE="-gencode=arch=compute_90a,code=sm_90a" limits the targets (quicker builds while iterating).
read -r -a gencode <<<"${KT_GENCODE:--gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_80,code=compute_80}"
flags=(-std=c++17 -O3 -lineinfo "${gencode[@]}" -I"$kern")
newest_header=$(ls -t "$kern"/*.h "$kern"/*.cuh "$here"/*.h | head -1)
objs=()
for src in "$kern"/*.cu "$here"/*.cu; do
  obj="$out/obj/$(basename "$(dirname "$src")")_$(basename "$src" .cu).o"
  objs+=("$obj")
  if [[ ! -f "$obj" || "$src" -nt "$obj" || "$newest_header" -nt "$obj" ]]; then
    echo "nvcc $(basename "$src")"
    nvcc "${flags[@]}" -c "$src" -o "$obj"
  fi
done
nvcc "${flags[@]}" "${objs[@]}" -o "$out/kernel-tests"
echo "built $out/kernel-tests"
