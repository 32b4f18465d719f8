#!/usr/bin/env bash
# Builds the CUPTI kernel tracer (kernel_trace.cpp; no GPU needed to build):
#   native/kernel-trace/build.sh  ->  native/build/kernel-trace/libawq-kernel-trace.so (+ a copy of libcupti beside it)
# The copy of libcupti travels with the build (scripts/gpu-pack.sh), so the GPU machine needs no CUPTI of its own;
# the library finds it through its RPATH ($ORIGIN).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../build/kernel-trace"
cuda=${CUDA_HOME:-/usr/local/cuda}
lib=$(ls -d "$cuda"/lib64 "$cuda"/lib "$cuda"/targets/x86_64-linux/lib 2>/dev/null | while read -r d; do
  [[ -e $d/libcupti.so ]] && echo "$d" && break; done || true)
[[ -n $lib ]] || { echo "kernel-trace: libcupti.so not found under $cuda (set CUDA_HOME)" >&2; exit 1; }
mkdir -p "$out"
g++ -std=c++17 -O2 -shared -fPIC -I"$cuda/include" "$here/kernel_trace.cpp" -L"$lib" -lcupti \
  -Wl,-rpath,'$ORIGIN' -o "$out/libawq-kernel-trace.so"
cp -L "$lib/libcupti.so" "$out/$(readlink "$lib/libcupti.so" || echo libcupti.so)"
echo "built $out/libawq-kernel-trace.so"
