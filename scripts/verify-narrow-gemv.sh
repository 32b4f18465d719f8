#!/usr/bin/env bash
# Issue 13, batches 9..32: the square matrices up to AWQ_NARROW_GEMV_MAX_K (default 8192: `o`, not `down`) on the
# decode GEMV's bulk-copy kernels instead of the WS GEMM's mma.sync decode tiles. The default since
# 2026-12-07 (seventh session; timed on an H100 only): `o` at 9..16 rows on the two-tile kernel (v19). About 3 minutes:
#   bash scripts/gpu-run.sh verify-narrow-gemv    or: bash scripts/verify-narrow-gemv.sh   from the repo root
# (1) whole decode steps of the synthetic 13B (context 512, batches NARROW_BATCHES, default 9 / 12 / 16 / 24 / 32),
# alternating processes, NARROW_PASSES passes (default 3), in these settings:
#   off      AWQ_NARROW_GEMV_ROWS=0 (every m >= 9 on the WS GEMM)
#   default  nothing set (`o` at 9..16 rows on v19)
#   rows32   AWQ_NARROW_GEMV_ROWS=32 (`o` at 9..32 rows on v19; the H100 kernel bench of 2026-12-07 timed `o` at m = 32
#            at 16.7 us on v19 against 19.1 on the WS tiles)
#   vN       AWQ_NARROW_GEMV_ROWS=16 AWQ_NARROW_GEMV_VARIANT=N for each N in NARROW_VARIANTS (default none; e.g. "13 20")
# NARROW_MAX_K=0 puts `down` (K 13,824) on the GEMV as well in every setting but off (slower on the H100 at every
# batch, seventh session). (2) the conformance suite with NARROW_CONFORMANCE_ENV (default AWQ_NARROW_GEMV_ROWS=32).
# Pass, for a setting to become the default: faster than the default at every batch it changes in every pass, and
# conformance passes.
set -u
source "$(dirname "$0")/decode-ab.sh"
T0=$SECONDS
settings="off default rows32"
for v in ${NARROW_VARIANTS:-}; do settings="$settings v$v"; done
args=(--batches "${NARROW_BATCHES:-9,12,16,24,32}" --context 512 --prefill 512 --steps 32 --repeats 1)
maxk=()
[[ -n ${NARROW_MAX_K:-} ]] && maxk=("AWQ_NARROW_GEMV_MAX_K=$NARROW_MAX_K")
echo "== (1) decode, tokens/s"
for ((pass = 1; pass <= ${NARROW_PASSES:-3}; pass++)); do
  for s in $settings; do
    case $s in
      off) envs=(AWQ_NARROW_GEMV_ROWS=0) ;;
      default) envs=("${maxk[@]}") ;;
      rows32) envs=(AWQ_NARROW_GEMV_ROWS=32 "${maxk[@]}") ;;
      v*) envs=(AWQ_NARROW_GEMV_ROWS=16 "AWQ_NARROW_GEMV_VARIANT=${s#v}" "${maxk[@]}") ;;
    esac
    line=$(env "${envs[@]}" timeout 90 node dist/src/cli/main.js bench latency "${args[@]}" 2>&1 | decode_rows)
    echo "pass $pass $s: $line $((SECONDS - T0))s"
  done
done
conf=${NARROW_CONFORMANCE_ENV:-AWQ_NARROW_GEMV_ROWS=32}
env $conf timeout 150 node --test dist/test/gpu/conformance-cuda.test.js > /tmp/narrow-gemv-conf.log 2>&1
echo "== (2) conformance ($conf) rc=$? $(grep -E '^# (pass|fail|skipped)' /tmp/narrow-gemv-conf.log | tr '\n' ' ') $((SECONDS - T0))s"
echo "total $((SECONDS - T0))s"
