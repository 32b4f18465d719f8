#!/usr/bin/env bash
# Issue 13 item 2 / issue 14 item 2: the by-KV-head decode kernel reading the KV cache 16 elements a lane (8 lanes a
# key; decode_grouped_kernel's WIDE in attention_decode_grouped.cu, one query head a KV head) against 8 a lane, for one
# cache dtype, about 4 minutes:
#   bash scripts/gpu-run.sh verify-fp8-wide    (fp8: one 16-byte load a lane, on by default, AWQ_ATTN_FP8_WIDE=0 off)
#   or: bash scripts/verify-wide-kv.sh fp8   from the repo root
# (fp16, two 16-byte loads a lane, was verified with this script on an H200 on 2026-12-07 and removed: slower at every
# batch from 16, docs/benchmarks.md, sixth session.)
# (1) `kernel-tests --kv --no-bench` with it on (every decode case of that dtype against the reference; must be 0
# FAIL); (2) whole decode steps of the synthetic 13B at batch 1 / 16 / 64 / 128, context 512 and 2048, both ways,
# alternating, two passes; (3) the conformance suite with it on (the demo has two query heads a KV head, so for it
# this only checks that nothing else moved); (4) `kernel-tests --kv --bench-only` both ways (us and GB/s of K+V).
# Pass: 0 FAIL, conformance passes, and at least as fast in whole steps at every batch in both passes: then it is (or
# stays the default (wide_fp8_loads in attention_decode_grouped.cu); else its default goes to off. The fp8 run of 2026-12-07 (H100): docs/benchmarks.md, fifth session, call 3.
set -u
source "$(dirname "$0")/decode-ab.sh"
dtype=${1:-}
case $dtype in
  fp8) var=AWQ_ATTN_FP8_WIDE; kvFlag=(--kv-cache-dtype fp8); col=11 ;;  # v2 fp8 column of the kv bench
  *) echo "usage: $0 fp8" >&2; exit 2 ;;
esac
T0=$SECONDS
env "$var=1" timeout 120 native/build/kernel-tests/kernel-tests --kv --no-bench > "/tmp/wide-$dtype-kv.log" 2>&1
echo "== (1) kv checks ($var=1) rc=$? ok=$(grep -c ' ok$' "/tmp/wide-$dtype-kv.log") FAIL=$(grep -c FAIL "/tmp/wide-$dtype-kv.log") $((SECONDS - T0))s"
grep -E "FAIL|HANG" "/tmp/wide-$dtype-kv.log" | head -6
echo "== (2) $dtype decode, tokens/s"
decode_ab "$var" 2 150 -- --batches 1,16,64,128 --context 512,2048 --prefill 512 --steps 32 --repeats 1 "${kvFlag[@]}"
env "$var=1" timeout 150 node --test dist/test/gpu/conformance-cuda.test.js > "/tmp/wide-$dtype-conf.log" 2>&1
echo "== (3) conformance rc=$? $(grep -E '^# (pass|fail|skipped)' "/tmp/wide-$dtype-conf.log" | tr '\n' ' ') $((SECONDS - T0))s"
for w in 0 1; do
  env "$var=$w" timeout 90 native/build/kernel-tests/kernel-tests --kv --bench-only > "/tmp/wide-$dtype-bench-$w.log" 2>&1
done
echo "== (4) case | by KV head $dtype, 8 a lane: us GB/s | 16 a lane"
paste -d' ' <(grep -E "^batch=" "/tmp/wide-$dtype-bench-0.log") <(grep -E "^batch=" "/tmp/wide-$dtype-bench-1.log") |
  awk -v c="$col" '{ printf "%s %s %s %s | %s %s | %s %s\n", $1, $2, $3, $4, $c, $(c + 1), $(c + 14), $(c + 15) }'
echo "total $((SECONDS - T0))s"
