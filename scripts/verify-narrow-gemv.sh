#!/usr/bin/env bash
# Issue 13, batch 16: the narrow matrices (o 5120x5120, down 13824x5120) at 9..16 rows on the decode GEMV's bulk-copy
# kernels instead of the WS GEMM's mma.sync decode tiles (AWQ_NARROW_GEMV_ROWS=16, AWQ_NARROW_GEMV_VARIANT=V; off by
# default). At batch 16 these two run at ~0.8-1.4 TB/s (o 0.68 ms, down 1.10 ms of a 5.8 ms step on the H200,
# docs/benchmarks.md sixth session), and the H200 kernel sweep of 2026-12-05 timed the persistent GEMV (v13) on `o` at
# m = 16 below the WS tiles of that day. About 4 minutes:
#   bash scripts/gpu-run.sh verify-narrow-gemv    or: bash scripts/verify-narrow-gemv.sh   from the repo root
# NARROW_MAX_K=8192 puts only `o` (K 5120) on the GEMV, not `down` (K 13824).
# (1) whole decode steps of the synthetic 13B (context 512, batches 9 / 12 / 16), the default against each variant,
# alternating processes, NARROW_PASSES passes (default 2); (2) the conformance suite with the best variant on.
# Pass: faster at every batch in every pass than the default in the same pass, and conformance passes; then it can
# become the default for these rows.
set -u
source "$(dirname "$0")/decode-ab.sh"
T0=$SECONDS
variants=${NARROW_VARIANTS:-9 13 19 20 21}
args=(--batches "${NARROW_BATCHES:-9,12,16}" --context 512 --prefill 512 --steps 32 --repeats 1)
echo "== (1) decode, tokens/s"
for ((pass = 1; pass <= ${NARROW_PASSES:-2}; pass++)); do
  for v in off $variants; do
    if [[ $v == off ]]; then envs=(AWQ_NARROW_GEMV_ROWS=0)
    else envs=(AWQ_NARROW_GEMV_ROWS=16 "AWQ_NARROW_GEMV_VARIANT=$v" "AWQ_NARROW_GEMV_MAX_K=${NARROW_MAX_K:-0}"); fi
    line=$(env "${envs[@]}" timeout 90 node dist/src/cli/main.js bench latency "${args[@]}" 2>&1 | decode_rows)
    echo "pass $pass v=$v: $line $((SECONDS - T0))s"
  done
done
best=${NARROW_CONFORMANCE_VARIANT:-13}
AWQ_NARROW_GEMV_ROWS=16 AWQ_NARROW_GEMV_VARIANT=$best AWQ_NARROW_GEMV_MAX_K=${NARROW_MAX_K:-0} timeout 150 node --test dist/test/gpu/conformance-cuda.test.js \
  > /tmp/narrow-gemv-conf.log 2>&1
echo "== (2) conformance (v$best) rc=$? $(grep -E '^# (pass|fail|skipped)' /tmp/narrow-gemv-conf.log | tr '\n' ' ') $((SECONDS - T0))s"
echo "total $((SECONDS - T0))s"
