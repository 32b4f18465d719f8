#!/usr/bin/env bash
# Issue 13 / 14: the linears of decode batches 64 and 128 (in the H100 table of 2026-12-06h they take 6.9 / 9.0 ms
# of a step at 235 / 362 TFLOP/s, against ~570 at m = 512; at batch 128 with the FP8 cache that is half the step).
# One step that measures the tiles and dispatches there, for the call that picks the default:
#   bash scripts/gpu-run.sh verify-decode-gemm   (or run this file from the repo root).
# (1) the WS GEMM's tiles at m = 64 and 128 on the four 13B projections (kernel-tests --gemm-ws, TFLOP/s; the
#     "current" column is awq_linear's own dispatch: register-A for 65..128 rows on all but gate|up, WS v6 at 64);
# (2) whole decode steps at batch 64 and 128, each dispatch in its own process, two passes (tokens/s, GPU ms):
#     the default, AWQ_GEMM_RS128=0 (the WS GEMM's own tile choice at 65..128 rows), and that with the WS tile forced
#     to v1 (256 outputs x 128 rows), v3 (128 x 128) or v2 (128 x 256). A forced tile applies to every m >= 9, so
#     only these two batch sizes are read. ~2-3 minutes in all.
set -u
kt=native/build/kernel-tests/kernel-tests
echo "== (1) WS GEMM tiles at m = 64, 128"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AWQ_WS_MS=64,128 AWQ_WS_VARIANTS=1236 timeout 90 "$kt" --gemm-ws --bench-only
echo "kernel-tests --gemm-ws rc=$?"

echo "== (2) decode steps at batch 64 and 128, context 512"
bench=(node dist/src/cli/main.js bench latency --batches 64,128 --context 512 --prefill 512 --steps 32 --repeats 3)
for pass in 1 2; do
  for cfg in "default:" "rs128-off:AWQ_GEMM_RS128=0" "ws-v1:AWQ_GEMM_RS128=0 AWQ_GEMM_WS_VARIANT=1" \
    "ws-v3:AWQ_GEMM_RS128=0 AWQ_GEMM_WS_VARIANT=3" "ws-v2:AWQ_GEMM_RS128=0 AWQ_GEMM_WS_VARIANT=2"; do
    label=${cfg%%:*}
    read -ra vars <<< "${cfg#*:}"
    line=$(env "${vars[@]}" timeout 60 "${bench[@]}" 2>&1 | grep -E '^decode batch' |
      sed -E 's/decode batch ([0-9]+) context [0-9]+: .*\(GPU ([0-9.]+)\), ([0-9.]+) tokens.*/b\1 \3 (GPU \2 ms)/' | tr '\n' ' ')
    echo "pass $pass $label: $line"
  done
done
