#!/usr/bin/env bash
# Issue 16 (structured outputs): the CUDA forward/sample split for steps with masks (AWQ_CUDA_SPLIT_STEP=1;
# written and compiled, never yet run on a GPU: no device in the session of 2026-12-05 evening). One step that
# checks it and times it against the default one-call step, for the call that decides whether to turn it on:
#   bash scripts/gpu-run.sh verify-structured   (or run this file from the repo root). ~4-6 minutes.
# Pass: (1) and (2) end with "# fail 0" (the mask suite: the CUDA sampler with masks against the reference
# sampler, masks written late into shared memory through both paths at prefill, graph capture and replay, a
# rejected mask promise, and structured outputs end to end through the library; (2) with the split on everywhere);
# (3) prints one JSON object per path (the structured bench, batches 1 and 64, synthetic Llama-2-7B AWQ and the
# demo model; each batch's main figures are the warm round, `cold` the first): the issue's target is
# slowdownPercent <= 5 at batch 64 on the 7B with the split on. Compare maskWaitMs (launch to masks written) and
# stepTimesConstrained / stepTimesFree (Backend.step wall and GPU time per step) between the two.
set -u
echo "== (1) mask suite, default path (one-call step for masks still being written)"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AWQ_CUDA_SPLIT_STEP=0 timeout 150 node --test dist/test/gpu/cuda-token-mask.test.js 2>&1 |
  grep -E "^# (tests|pass|fail)|not ok|^# Subtest|error:|expected:|actual:" | head -n 60

echo "== (2) mask suite with the forward/sample split on (the library suite through it too)"
AWQ_CUDA_SPLIT_STEP=1 timeout 150 node --test dist/test/gpu/cuda-token-mask.test.js 2>&1 |
  grep -E "^# (tests|pass|fail)|not ok|^# Subtest|error:|expected:|actual:" | head -n 60

echo "== (3) structured bench: default, then the split (each its own process)"
bench=(node dist/bench/structured-bench.js --backend cuda --batches 1,64 --model synthetic-7b,demo)
for split in 0 1; do
  echo "-- AWQ_CUDA_SPLIT_STEP=$split"
  AWQ_CUDA_SPLIT_STEP=$split timeout 180 "${bench[@]}" 2>&1 | sed -n '/^{/,$p'
done
