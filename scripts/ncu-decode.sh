#!/usr/bin/env bash
# Issue 13: where the decode step's kernels stall, read by Nsight Compute on the GPU machine (its image has `ncu`;
# on Firecracker it reads the hardware counters, KINDS.md). The kernel trace (kernel-trace.sh) says how long each
# kernel takes inside the graph; this says why: for each kernel its speed of light (DRAM / L2 / SM throughput against
# the card's peak), warp states (which stall holds the warps), occupancy, launch shape and memory traffic.
#   bash scripts/gpu-run.sh ncu-decode    or: bash scripts/ncu-decode.sh   from the repo root (~2 minutes)
# Runs `awq bench latency` (synthetic 13B, context 512) under ncu twice: batch 1 with fp16 KV (the GEMVs and the
# decode attention) and batch 16 with FP8 KV (the WS 16-row tiles, `o` on the two-tile GEMV, the FP8 attention).
# ncu serializes the kernels (no PDL overlap) and profiles each one alone: compare shapes and stall reasons, not
# times, with the graph's. Kernels matched by NCU_KERNELS (a regex on the kernel name), NCU_SKIP of them skipped (the
# weight generation, the prefill and the first decode steps), then NCU_COUNT profiled: about one layer and a half.
# NCU_RUNS picks the runs (default "b1 b16fp8"). Writes ncu-b1.txt and ncu-b16fp8.txt (ncu's details page) under $OUT (or ./gpu-logs) and prints one line per run.
set -u
T0=$SECONDS
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
if [[ -z $ncu ]]; then
  echo "== ncu-decode: no ncu on this machine; skipped"
  exit 0
fi
echo "== ncu-decode: $ncu"
profile() { # label, then bench latency args
  local label=$1
  shift
  timeout "${NCU_TIMEOUT:-150}" "$ncu" --clock-control none -k "regex:${NCU_KERNELS:-gemv|decode|addRmsNorm|ropeKv|gemm|silu}" \
    --launch-skip "${NCU_SKIP:-3000}" --launch-count "${NCU_COUNT:-24}" --section SpeedOfLight --section WarpStateStats \
    --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
    node dist/src/cli/main.js bench latency --prefill 8 --repeats 1 --steps 16 --context 512 "$@" \
    >"$out/ncu-$label.txt" 2>&1
  local rc=$?
  echo "== ncu-decode $label: rc=$rc, $(grep -c 'Section: GPU Speed Of Light' "$out/ncu-$label.txt") kernels profiled, $((SECONDS - T0))s"
  # One line a kernel: its name, duration, DRAM and compute throughput (% of peak).
  awk '/^  [A-Za-z_].*\([0-9, ]*\)x\([0-9, ]*\)/ {
         name = "?"; if (match($0, /[A-Za-z_0-9]*[Kk]ernel(<[^>]*>)?/)) name = substr($0, RSTART, RLENGTH)
         grid = ""; if (match($0, /\([0-9, ]*\)x\([0-9, ]*\)/)) grid = substr($0, RSTART, RLENGTH); gsub(/ /, "", grid) }
       /Duration/ { d = $NF } /DRAM Throughput/ { dr = $NF }
       /Compute \(SM\) Throughput/ { print "   ", name, grid, "us", d, "dram%", dr, "sm%", $NF }' "$out/ncu-$label.txt" |
    head -n 40
}
for run in ${NCU_RUNS:-b1 b16fp8}; do
  case $run in
    b1) profile b1 --batches 1 ;;
    b16fp8) profile b16fp8 --batches 16 --kv-cache-dtype fp8 ;;
    *) echo "== ncu-decode: unknown run $run (b1, b16fp8)" ;;
  esac
done
echo "total $((SECONDS - T0))s"
