#!/usr/bin/env bash
# Issue 13 item 2 / issue 14 item 2: the by-KV-head decode kernel reading the FP8 cache 16 elements a lane (16-byte
# loads, 8 lanes a key; decode_grouped_kernel's WIDE in attention_decode_grouped.cu, one query head a KV head, on by
# default) against 8 a lane (AWQ_ATTN_FP8_WIDE=0, the kernel before), about 4 minutes:
#   bash scripts/gpu-run.sh verify-fp8-wide   (or run this file from the repo root)
# (1) `kernel-tests --kv --no-bench` (every FP8 decode case against the reference; must be 0 FAIL); (2) whole FP8
# decode steps of the synthetic 13B at batch 1 / 16 / 64 / 128, context 512 and 2048, both ways, alternating, two
# passes; (3) the conformance suite; (4) `kernel-tests --kv --bench-only` both ways (us and GB/s of K+V per case).
# Pass: 0 FAIL, conformance passes, and the wide reads are at least as fast in whole steps at every batch in both
# passes (else AWQ_ATTN_FP8_WIDE's default goes back to 0).
set -u
T0=$SECONDS
timeout 120 native/build/kernel-tests/kernel-tests --kv --no-bench > /tmp/fp8w-kv.log 2>&1
echo "== (1) kv checks rc=$? ok=$(grep -c ' ok$' /tmp/fp8w-kv.log) FAIL=$(grep -c FAIL /tmp/fp8w-kv.log) $((SECONDS - T0))s"
grep -E "FAIL|HANG" /tmp/fp8w-kv.log | head -6
echo "== (2) FP8 decode, tokens/s"
for pass in 1 2; do
  for w in 1 0; do
    line=$(AWQ_ATTN_FP8_WIDE=$w timeout 150 node dist/src/cli/main.js bench latency --batches 1,16,64,128 --context 512,2048 \
      --prefill 512 --steps 32 --repeats 1 --kv-cache-dtype fp8 2>&1 | grep -E '^\| decode batch' |
      awk -F'|' '{ gsub(/ /, "", $2); gsub(/ /, "", $3); printf "%s@%s %s | ", $2, $3, $4 }')
    echo "pass $pass wide=$w: $line $((SECONDS - T0))s"
  done
done
timeout 150 node --test dist/test/gpu/conformance-cuda.test.js > /tmp/fp8w-conf.log 2>&1
echo "== (3) conformance rc=$? $(grep -E '^# (pass|fail|skipped)' /tmp/fp8w-conf.log | tr '\n' ' ') $((SECONDS - T0))s"
for w in 0 1; do
  AWQ_ATTN_FP8_WIDE=$w timeout 90 native/build/kernel-tests/kernel-tests --kv --bench-only > "/tmp/fp8w-bench-$w.log" 2>&1
done
echo "== (4) case | by KV head FP8, 8 a lane: us GB/s | 16 a lane | by KV head fp16 | tensor cores FP8"
paste -d' ' <(grep -E "^batch=" /tmp/fp8w-bench-0.log) <(grep -E "^batch=" /tmp/fp8w-bench-1.log) |
  awk '{ printf "%s %s %s %s | %s %s | %s %s | %s %s | %s %s\n", $1, $2, $3, $4, $11, $12, $25, $26, $7, $8, $13, $14 }'
echo "total $((SECONDS - T0))s"
