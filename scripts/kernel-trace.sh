#!/usr/bin/env bash
# Issue 13, "what limits each row": the decode step's kernels as they run inside their CUDA graph (CUPTI through
# native/kernel-trace, built by native/kernel-trace/build.sh and packed by scripts/gpu-pack.sh). About 2 minutes:
#   bash scripts/gpu-run.sh kernel-trace    or: bash scripts/kernel-trace.sh   from the repo root
# (1) `awq bench latency` at TRACE_BATCHES (default 1,16,64,128), context 512, 32 steps, without the tracer, then
# with it (the tracer's own cost is the difference); (2) scripts/read-kernel-trace.mjs on the trace: for each decode
# graph (one per batch bucket), the step's span and each kernel's share of it. TRACE_FLAGS adds bench flags (e.g.
# "--kv-cache-dtype fp8"); TRACE_ENV adds environment settings to both runs. Results: $OUT (or ./gpu-logs)
# kernel-trace.txt (both runs' tables and the summary) and kernel-trace.jsonl.xz (the raw trace).
set -u
T0=$SECONDS
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
lib=$PWD/native/build/kernel-trace/libawq-kernel-trace.so
[[ -f $lib ]] || { echo "kernel-trace: $lib is not built (native/kernel-trace/build.sh)"; exit 1; }
args=(--batches "${TRACE_BATCHES:-1,16,64,128}" --context 512 --prefill 512 --steps 32 --repeats 1 ${TRACE_FLAGS:-})
envs=(${TRACE_ENV:-})
trace=$(mktemp -d)/kernel-trace.jsonl
{
  echo "== (1a) without the tracer: ${args[*]} ${envs[*]}"
  env "${envs[@]}" timeout 150 node dist/src/cli/main.js bench latency "${args[@]}" 2>&1 | tail -n 25
  echo "== (1b) with the tracer"
  env "${envs[@]}" CUDA_INJECTION64_PATH="$lib" AWQ_KERNEL_TRACE="$trace" timeout 200 \
    node dist/src/cli/main.js bench latency "${args[@]}" 2>&1 | tail -n 25
  echo "== (2) kernels inside the decode graphs ($(wc -l < "$trace") records)"
  node scripts/read-kernel-trace.mjs "$trace" --min-launches 8 --top ${TRACE_TOP:-30}
  echo "total $((SECONDS - T0))s"
} 2>&1 | tee "$out/kernel-trace.txt"
xz -T4 -6 -c "$trace" > "$out/kernel-trace.jsonl.xz"
