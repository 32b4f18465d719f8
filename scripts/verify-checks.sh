#!/usr/bin/env bash
# The FIRST thing to run on a GPU after the session of 2026-12-05 evening (no device was lent then): every
# correctness check of the paths written that evening and never run, in one short step (~4-5 min), before any
# timing. `bash scripts/gpu-run.sh verify-checks` (or this file from the repo root).
#   (1) kernel-tests --no-bench: every kernel check, the new ones included (fused GEMVs, FP8 encode/widen, attention
#       over FP8 caches, the by-KV-head decode kernel); (2) the warp-specialized GEMM's checks (kernel-tests
#       --gemm-ws, variants 1-3, then the cluster variants 4-5 apart: a hang there must not hide the rest);
#   (3) the conformance suite with EVERY new path on at once (FP8 KV, grouped decode attention, the new GEMM, both
#       GEMV fusions, the split step): CUDA = CPU reference;
#   (4) the mask suite with the forward/sample split on.
# Pass: no "FAIL" / "not ok" line, every "rc=0". If (3) fails, the per-feature steps (verify-kv, verify-gemm,
# verify-gemv, verify-structured) run each path alone and say which one broke; they also time old vs new.
set -u
kt=native/build/kernel-tests/kernel-tests
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
echo "== (1) kernel-tests --no-bench"
timeout 150 "$kt" --no-bench 2>&1 | grep -v " ok$" | tail -n 40
echo "(1) rc=${PIPESTATUS[0]}"
echo "== (2) kernel-tests --gemm-ws --no-bench (variants 1-3, then 4-5)"
AWQ_WS_VARIANTS=123 timeout 120 "$kt" --gemm-ws --no-bench 2>&1 | grep -v " ok$" | tail -n 30
ws_rc=${PIPESTATUS[0]}
echo "(2a) rc=$ws_rc"
# The engine takes the new GEMM (variants 1 and 3) only if its own checks passed; else (3) runs without it.
if [[ $ws_rc -eq 0 ]]; then gemm_ws=1; else gemm_ws=0; echo "(3) will run with AWQ_GEMM_WS=0: (2a) failed"; fi
AWQ_WS_VARIANTS=45 timeout 60 "$kt" --gemm-ws --no-bench 2>&1 | grep -v " ok$" | tail -n 20
echo "(2b) rc=${PIPESTATUS[0]}"
echo "== (3) conformance with every new path on"
AWQ_ATTN_DECODE=grouped AWQ_GEMM_WS=$gemm_ws AWQ_GEMV_ADDNORM=1 \
  AWQ_CUDA_SPLIT_STEP=1 timeout 300 node --test dist/test/gpu/conformance-cuda.test.js 2>&1 |
  grep -E "^# (tests|pass|fail|skipped)|not ok|Error" | head -n 30
echo "(3) rc=${PIPESTATUS[0]}"
echo "== (4) mask suite, split step on"
AWQ_CUDA_SPLIT_STEP=1 timeout 150 node --test dist/test/gpu/cuda-token-mask.test.js 2>&1 |
  grep -E "^# (tests|pass|fail|skipped)|not ok|error:" | head -n 30
echo "(4) rc=${PIPESTATUS[0]}"
