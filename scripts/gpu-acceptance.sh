#!/usr/bin/env bash
# Issues 13 and 14's acceptance set in one device call (about 6-8 minutes on an H100, estimated from the times of
# these steps in call 3 of 2026-12-06h), on whatever card came:
#   bash scripts/gpu-unpack.sh && bash .gpu/run.sh bash scripts/gpu-acceptance.sh
# 1. `awq bench latency` at batch 1 / 16 / 64 / 128 (context 512) and prefill 512 / 2048 / 4096, fp16 KV (with the
#    per-op profile) and FP8 KV;
# 2. the three peers of the same call: the dense bf16 model on cuBLAS (peer_batched.py bf16), PyTorch's int4 kernel
#    batched (peer_batched.py int4) and compiled at batch 1 (peer_pytorch.py int4);
# 3. serve-bench (synthetic 13B from disk, 512 in / 128 out, ignore_eos) at concurrency 16 / 128 / 256 with FP8 KV,
#    then fp16 KV, with the server's default flags.
# Logs go to $OUT (or ./gpu-logs); ACCEPT_DEADLINE (seconds, default 570) stops starting steps past it. Peers are
# read from .gpu/ (gpu-prep.sh copies them there).
set -u
T0=$SECONDS
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
limit=${ACCEPT_DEADLINE:-570}
left() { echo $((limit - (SECONDS - T0))); }
step() { # name seconds command...
  local name=$1 secs=$2; shift 2
  local l; l=$(left)
  ((l < 20)) && { echo "== $name: SKIPPED (deadline)"; return 125; }
  ((secs > l - 5)) && secs=$((l - 5))
  local t=$SECONDS
  timeout "$secs" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - t))s"
  return $rc
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
bf=(--batches 1,16,64,128 --context 512 --prefill 512,2048,4096 --steps 32 --repeats 3)
step bench-fp16 120 node dist/src/cli/main.js bench latency "${bf[@]}" --profile
grep -E "^(prefill|decode batch|profile)" "$out/bench-fp16.log" | cut -c1-400
step bench-fp8 100 node dist/src/cli/main.js bench latency "${bf[@]}" --kv-cache-dtype fp8
grep -E "^(prefill|decode batch)" "$out/bench-fp8.log"
export PYTHONUNBUFFERED=1
step peer-bf16 120 python3 .gpu/peer_batched.py bf16 40 512 1,16,64,128 4096
grep '^{' "$out/peer-bf16.log"
step peer-int4-compiled 90 python3 .gpu/peer_pytorch.py int4 40
grep '^{' "$out/peer-int4-compiled.log" | tail -1
step peer-int4 100 python3 .gpu/peer_batched.py int4 40 512 1,16,64,128 4096
grep '^{' "$out/peer-int4.log"
for kv in fp8 fp16; do
  flags=""
  [[ $kv == fp8 ]] && flags="--kv-cache-dtype fp8"
  export GPU_RUN_DEADLINE=$(left)
  ((GPU_RUN_DEADLINE < 60)) && { echo "== serve-$kv: SKIPPED (deadline)"; continue; }
  SERVE_BENCH_CONCURRENCY="16 128 256" SERVE_BENCH_PROMPTS="64 384 512" SERVE_BENCH_SERVE_FLAGS="$flags" \
    OUT="$out/serve-$kv" bash scripts/gpu-run.sh serve-bench >"$out/serve-$kv.log" 2>&1
  echo "== serve-$kv ($flags)"
  grep -E "^\| (max|[0-9])" "$out/serve-$kv.log" | head -5
done
echo "total $((SECONDS - T0))s"
