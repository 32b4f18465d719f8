#!/usr/bin/env bash
# Issues 13 / 14: the WS GEMM's mma.sync decode tiles (9..32 rows) with a pair of chunks a stage (AWQ_GEMM_WS_MMA=2,
# PAIR in gemm_sm90_ws.cu; written without a GPU in the 2026-12-07 session). On the H100 (2026-12-07) the 16-row tile
# took the same time at m = 12 as at m = 16 and hiding its operand latency changed nothing: it waits for its weights,
# each stage 16 separate 512-byte pieces. A pair puts each tile's two chunks in one 1 KB piece. (2026-12-06f's first
# pair patch sped the kernel up 12 % alone, slowed whole batch-16 steps 3-5 % and failed checks with v7 forced onto
# large m; this is a new implementation.)
#   bash scripts/gpu-run.sh verify-ws-pair   (or run this file from the repo root; ~4 minutes)
# Pass: (1) 0 FAIL lines and rc=0 (each case also checks that a second call gives the same output); make it the
# default only where (3) wins at batch 12 and 16 in both passes.
set -u
kt=native/build/kernel-tests/kernel-tests
echo "== (1) WS GEMM checks (v7, v8, v9) with AWQ_GEMM_WS_MMA=2"
AWQ_GEMM_WS_MMA=2 AWQ_WS_VARIANTS=789 timeout 200 "$kt" --gemm-ws --no-bench > /tmp/ws-pair-checks.log 2>&1
echo "rc=$? ok lines: $(grep -c ' ok' /tmp/ws-pair-checks.log), FAIL lines: $(grep -c FAIL /tmp/ws-pair-checks.log)"
grep -E "FAIL|HANG" /tmp/ws-pair-checks.log | head -n 6
echo "== (2) kernel bench, v7 / v8 with stream-K at m = 12 / 16 / 32 (TFLOP/s; the linears of 40 layers in tokens/s)"
for mode in 1 2 1 2; do
  echo "-- AWQ_GEMM_WS_MMA=$mode"
  AWQ_GEMM_WS_MMA=$mode AWQ_WS_MS=12,16,32 AWQ_WS_VARIANTS=78 timeout 60 "$kt" --gemm-ws --bench-only 2>&1 |
    awk '/^(qkv|o |gate_up|down)/ { printf "%s m%s v7 %s v8 %s | ", $1, $3, $16, $17 } /^linears/ { printf "linears m%s v7 %s v8 %s | ", $2, $15, $16 } END { print "" }'
done
echo "== (3) whole decode steps at batch 12 / 16 / 32, context 512, alternating processes"
bench=(node dist/src/cli/main.js bench latency --batches 12,16,32 --context 512 --prefill 512 --steps 32 --repeats 3)
for pass in 1 2; do
  for cfg in "one-fp16:auto:1" "pair-fp16:auto:2" "one-fp8:fp8:1" "pair-fp8:fp8:2"; do
    IFS=: read -r label dtype mode <<< "$cfg"
    [[ $pass == 2 && $dtype == fp8 ]] && continue
    line=$(AWQ_GEMM_WS_MMA=$mode timeout 60 "${bench[@]}" --kv-cache-dtype "$dtype" 2>&1 | grep -E '^decode batch' |
      sed -E 's/decode batch ([0-9]+) context [0-9]+: .*\(GPU ([0-9.]+)\), ([0-9.]+) tokens.*/b\1 \3 (GPU \2 ms)/' | tr '\n' ' ')
    echo "pass $pass $label: $line"
  done
done
echo "== (4) conformance with AWQ_GEMM_WS_MMA=2"
AWQ_GEMM_WS_MMA=2 timeout 200 node --test dist/test/gpu/conformance-cuda.test.js 2>&1 | grep -E "^# (pass|fail|skipped)|^not ok"
