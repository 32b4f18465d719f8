#!/usr/bin/env bash
# Issue 13 decode GEMV options (written and compiled, never yet run on a GPU: no device in the session of
# 2026-12-05 evening). One step that checks them and times them against the default, for the call that decides
# whether to turn them on:  bash scripts/gpu-run.sh verify-gemv   (or run this file from the repo root).
#   AWQ_GEMV_ADDNORM=1   o / down GEMV adds into the residual and writes the next RMSNorm (no add_rmsnorm), m <= 8
#   AWQ_GEMV_PF=N        L2 prefetch N 64-k chunks ahead of the GEMV's loads (AWQ_GEMV_PF_MODE 1 = bulk, 2 = lines)
#   AWQ_GEMV_VARIANT=16/17/18  register variants 3 / 2 and bulk variant 12 with evict-first weight loads
# Pass: (1) ends "decode GEMV options: ok" and exits 0; (2) prints "greedy: fused == unfused" (and the CPU line
# for reference); (4) the conformance suite passes with every option on (skipped with VERIFY_GEMV_CONFORMANCE=0).
# (3) is the A/B: tokens/s per config. ~6-8 minutes in all.
set -u
kt=native/build/kernel-tests/kernel-tests
echo "== (1) kernel-tests --gemv: checks of the fused kernels and prefetch builds, then the sweep"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 120 "$kt" --gemv; rc1=$?
echo "kernel-tests --gemv rc=$rc1"

echo "== (2) greedy tokens of the demo model: CPU / CUDA default / CUDA with every option on"
gen=(node dist/src/cli/main.js generate demo --prompt "The capital of France is" --max-tokens 48 --temperature 0 --quiet)
timeout 60 "${gen[@]}" --backend cpu >/tmp/verify-gemv-cpu.txt 2>&1
AWQ_GEMV_ADDNORM=0 timeout 60 "${gen[@]}" --backend cuda >/tmp/verify-gemv-off.txt 2>&1
AWQ_GEMV_ADDNORM=1 AWQ_GEMV_PF=16 timeout 60 "${gen[@]}" --backend cuda >/tmp/verify-gemv-on.txt 2>&1
for f in cpu off on; do echo "-- $f"; tail -n 4 /tmp/verify-gemv-$f.txt; done
if cmp -s /tmp/verify-gemv-off.txt /tmp/verify-gemv-on.txt; then echo "greedy: fused == unfused"; else echo "greedy: fused DIFFERS from unfused"; fi

echo "== (3) decode A/B, batch 1 and 8, context 512 (tokens/s; each config its own process)"
bench=(node dist/src/cli/main.js bench latency --batches 1,8 --context 512 --prefill 128 --steps 64 --repeats 1)
ab() { # label env...
  local label=$1; shift
  echo "-- $label"
  env "$@" timeout 120 "${bench[@]}" 2>/dev/null | grep -E "decode batch|^\|" | grep -v prefill
}
ab "default (all off)" AWQ_GEMV_ADDNORM=0 AWQ_GEMV_PF=0
ab "ADDNORM" AWQ_GEMV_ADDNORM=1
for pf in 8 16 32; do ab "ADDNORM + PF=$pf (bulk)" AWQ_GEMV_ADDNORM=1 AWQ_GEMV_PF=$pf; done
ab "ADDNORM + PF=16 (lines)" AWQ_GEMV_ADDNORM=1 AWQ_GEMV_PF=16 AWQ_GEMV_PF_MODE=2
echo "-- per-op profile, default then every option on (PF=16), batch 1"
AWQ_GEMV_ADDNORM=0 timeout 120 node dist/src/cli/main.js bench latency --batches 1 --context 512 --prefill 128 --steps 32 --repeats 1 --profile 2>/dev/null | grep -iE "profile|decode batch"
AWQ_GEMV_ADDNORM=1 AWQ_GEMV_PF=16 timeout 120 node dist/src/cli/main.js bench latency --batches 1 --context 512 --prefill 128 --steps 32 --repeats 1 --profile 2>/dev/null | grep -iE "profile|decode batch"
if [[ ${VERIFY_GEMV_CONFORMANCE:-1} != 0 ]]; then
echo "== (4) conformance (CUDA vs the CPU reference) with every option on"
AWQ_GEMV_ADDNORM=1 AWQ_GEMV_PF=16 timeout 300 node --test dist/test/gpu/conformance-cuda.test.js 2>&1 | tail -n 25
echo "conformance with every option on: rc=${PIPESTATUS[0]}"
fi

[[ $rc1 -eq 0 ]]
