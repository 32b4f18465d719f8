#!/usr/bin/env bash
# Issue 13 item 2: the by-KV-head decode kernel reading the fp16 cache 16 elements a lane (two 16-byte loads, 8 lanes
# a key; decode_grouped_kernel's WIDE with detail::KvIoFp16x16, one query head a KV head; AWQ_ATTN_FP16_WIDE=1, off
# by default: written without a GPU, 120 registers against 96, 0 spills) against 8 a lane, as the FP8 cache's 16 a
# lane was timed (scripts/verify-fp8-wide.sh: +0.3..+5 % in whole FP8 steps from batch 16), about 4 minutes:
#   bash scripts/gpu-run.sh verify-fp16-wide   (or run this file from the repo root)
# (1) `kernel-tests --kv --no-bench` with it on (every fp16 decode case against the reference; must be 0 FAIL);
# (2) whole fp16 decode steps of the synthetic 13B at batch 1 / 16 / 64 / 128, context 512 and 2048, both ways,
# alternating, two passes; (3) the conformance suite with it on (the demo has two query heads a KV head, so this only
# checks that nothing else moved); (4) `kernel-tests --kv --bench-only` both ways.
# Pass: 0 FAIL, conformance passes, and at least as fast in whole steps at every batch in both passes: then make it
# the default (fp16_wide_loads in attention_decode_grouped.cu); else remove it.
set -u
T0=$SECONDS
AWQ_ATTN_FP16_WIDE=1 timeout 120 native/build/kernel-tests/kernel-tests --kv --no-bench > /tmp/fp16w-kv.log 2>&1
echo "== (1) kv checks rc=$? ok=$(grep -c ' ok$' /tmp/fp16w-kv.log) FAIL=$(grep -c FAIL /tmp/fp16w-kv.log) $((SECONDS - T0))s"
grep -E "FAIL|HANG" /tmp/fp16w-kv.log | head -6
echo "== (2) fp16 decode, tokens/s"
for pass in 1 2; do
  for w in 1 0; do
    line=$(AWQ_ATTN_FP16_WIDE=$w timeout 150 node dist/src/cli/main.js bench latency --batches 1,16,64,128 --context 512,2048 \
      --prefill 512 --steps 32 --repeats 1 2>&1 | grep -E '^\| decode batch' |
      awk -F'|' '{ gsub(/ /, "", $2); gsub(/ /, "", $3); printf "%s@%s %s | ", $2, $3, $4 }')
    echo "pass $pass wide=$w: $line $((SECONDS - T0))s"
  done
done
AWQ_ATTN_FP16_WIDE=1 timeout 150 node --test dist/test/gpu/conformance-cuda.test.js > /tmp/fp16w-conf.log 2>&1
echo "== (3) conformance rc=$? $(grep -E '^# (pass|fail|skipped)' /tmp/fp16w-conf.log | tr '\n' ' ') $((SECONDS - T0))s"
for w in 0 1; do
  AWQ_ATTN_FP16_WIDE=$w timeout 90 native/build/kernel-tests/kernel-tests --kv --bench-only > "/tmp/fp16w-bench-$w.log" 2>&1
done
echo "== (4) case | by KV head fp16, 8 a lane: us GB/s | 16 a lane"
paste -d' ' <(grep -E "^batch=" /tmp/fp16w-bench-0.log) <(grep -E "^batch=" /tmp/fp16w-bench-1.log) |
  awk '{ printf "%s %s %s %s | %s %s | %s %s\n", $1, $2, $3, $4, $7, $8, $21, $22 }'
echo "total $((SECONDS - T0))s"
