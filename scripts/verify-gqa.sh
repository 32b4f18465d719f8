#!/usr/bin/env bash
# Issue 13 item 2 (grouped-query models read each K/V block once): the decode attention defaults of 2026-12-07 for
# grouped-query heads (per query head below 4 sequences, by KV head from 4, on tensor cores over an FP8 cache from 16K
# context tokens a batch; attention_decode.cu, decode_variant) were set from kernel timings only. This times them in
# whole steps and in serving against the old default (AWQ_ATTN_DECODE=per-head), alternating processes (~4 minutes):
#   bash scripts/gpu-run.sh verify-gqa   (or run this file from the repo root)
# (1) `awq bench latency --shape llama-3-8b` (32 query heads on 8 KV heads, random weights), decode at batch 1 / 4 /
#     16 / 64 / 128, context 512 and 2048, fp16 and FP8 KV, two passes; (2) serve-bench on the synthetic llama-3-8b
#     checkpoint, FP8 KV, concurrency 64, new against old.
# Pass: the new defaults are at least as fast at every batch in both passes (else move decode_variant's thresholds).
set -u
source "$(dirname "$0")/decode-ab.sh"
T0=$SECONDS
echo "== (1) decode, tokens/s"
for kv in auto fp8; do
  for pass in 1 2; do
    for cfg in new per-head; do
      envs=(GQA_CFG=$cfg); [[ $cfg == per-head ]] && envs+=(AWQ_ATTN_DECODE=per-head)
      line=$(env "${envs[@]}" timeout 90 node dist/src/cli/main.js bench latency --shape llama-3-8b \
        --batches 1,4,16,64,128 --context 512,2048 --prefill 512 --steps 32 --repeats 1 --kv-cache-dtype "$kv" 2>&1 |
        tee "/tmp/gqa-lat-$kv-$pass-$cfg.log" | decode_rows)
      echo "KV $kv pass $pass $cfg: $line $((SECONDS - T0))s"
    done
  done
done
grep -h -m1 "^model" /tmp/gqa-lat-auto-1-new.log
echo "== (2) serving, synthetic llama-3-8b, FP8 KV, concurrency 64"
for cfg in new per-head; do
  envs=(GQA_CFG=$cfg); [[ $cfg == per-head ]] && envs+=(AWQ_ATTN_DECODE=per-head)
  env "${envs[@]}" SERVE_BENCH_SHAPE=llama-3-8b SERVE_BENCH_CONCURRENCY="64" SERVE_BENCH_PROMPTS="128" \
    SERVE_BENCH_SERVE_FLAGS="--kv-cache-dtype fp8" OUT="/tmp/gqa-serve-$cfg" bash scripts/gpu-run.sh serve-bench \
    > "/tmp/gqa-serve-$cfg.log" 2>&1
  echo "-- $cfg"; grep -E "^\| [0-9]|did not|FAIL" "/tmp/gqa-serve-$cfg.log" | head -4
done
echo "total $((SECONDS - T0))s"
