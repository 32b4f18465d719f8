#!/usr/bin/env bash
# Issue 13 item 1: the narrow decode GEMVs (o, down: fewer than 900 16-output tiles, m <= 8) with an evict-first L2
# policy on their weights (auto_variant in native/kernels/gemv.cu picks variant 18 instead of 12; the default since
# 2026-12-07, AWQ_GEMV_NARROW_EF=0 turns it off), about 2 minutes:
#   bash scripts/gpu-run.sh verify-gemv-narrow    or: bash scripts/verify-gemv-narrow.sh   from the repo root
# (1) `kernel-tests --gemv --no-bench` with it on (every GEMV variant against the reference; must be 0 FAIL);
# (2) whole decode steps of the synthetic 13B at batch 1 / 2 / 4 / 8 (context 512), both ways, alternating, three
# passes; (3) the conformance suite with it on.
# Pass: 0 FAIL, conformance passes, and faster at every batch in the median of the passes: then it stays the
# default (auto_variant); else it goes. The sweep that proposed it and the H100 run that made it the default:
# docs/benchmarks.md, sixth session of 2026-12-07.
set -u
source "$(dirname "$0")/decode-ab.sh"
T0=$SECONDS
AWQ_GEMV_NARROW_EF=1 timeout 120 native/build/kernel-tests/kernel-tests --gemv --no-bench > /tmp/narrow-checks.log 2>&1
echo "== (1) gemv checks (AWQ_GEMV_NARROW_EF=1) rc=$? ok=$(grep -c ' ok$' /tmp/narrow-checks.log) FAIL=$(grep -c FAIL /tmp/narrow-checks.log) $((SECONDS - T0))s"
grep -E "FAIL|HANG|PASSED" /tmp/narrow-checks.log | head -6
echo "== (2) decode, tokens/s"
decode_ab AWQ_GEMV_NARROW_EF 3 90 -- --batches 1,2,4,8 --context 512 --prefill 512 --steps 32 --repeats 1
AWQ_GEMV_NARROW_EF=1 timeout 150 node --test dist/test/gpu/conformance-cuda.test.js > /tmp/narrow-conf.log 2>&1
echo "== (3) conformance rc=$? $(grep -E '^# (pass|fail|skipped)' /tmp/narrow-conf.log | tr '\n' ' ') $((SECONDS - T0))s"
echo "total $((SECONDS - T0))s"
