#!/usr/bin/env bash
# Issues 13 and 14's acceptance set in one device call (about 6-8 minutes on an H100, estimated from the times of
# these steps in call 3 of 2026-12-06h), on whatever card came, as gpu-run.sh steps:
#   bash scripts/gpu-unpack.sh && bash .gpu/run.sh bash scripts/gpu-acceptance.sh
# 1. `bench peerbf16 peer peerint4`: `awq bench latency` at batch 1 / 16 / 64 / 128 (context 512) and prefill 512 /
#    2048 / 4096 with fp16 KV and the per-op profile, beside the three peers of the same call (dense bf16 on cuBLAS,
#    PyTorch's int4 kernel batched and compiled);
# 2. `bench` again with FP8 KV;
# 3. `serve-bench` (synthetic 13B from disk, 512 in / 128 out, ignore_eos) at concurrency 16 / 128 / 256 with FP8 KV,
#    then fp16 KV, with the server's default flags.
# The device call brings back only a few files, so the parts write to a scratch folder and $OUT (or ./gpu-logs) gets
# three: acceptance.txt (every part's printed output: the tables, the peers side by side, the serving table),
# results.jsonl (each part's bench.json / peer.json / peers / serve-bench.json, one JSON value a line, tagged with its
# part and file) and steps.log (every step's log). ACCEPT_DEADLINE (seconds, default 570) is passed on as
# GPU_RUN_DEADLINE, so no step starts or runs past it; what finished is folded into the three files either way.
set -u
T0=$SECONDS
out=${OUT:-$PWD/gpu-logs}
limit=${ACCEPT_DEADLINE:-570}
scratch=$(mktemp -d)
mkdir -p "$out"
parts=()
bf="--batches 1,16,64,128 --context 512 --prefill 512,2048,4096 --steps 32 --repeats 3"
part() { # folder, then env assignments and the command
  local sub=$1 left=$((limit - (SECONDS - T0)))
  shift
  ((left < 60)) && { echo "== $sub: SKIPPED (deadline)"; return; }
  echo "== $sub"
  parts+=("$sub")
  mkdir -p "$scratch/$sub"
  env GPU_RUN_DEADLINE="$left" OUT="$scratch/$sub" "$@" 2>&1 | tee "$scratch/$sub/printed.txt"
  fold  # after every part, so a call cut short still returns what finished
}
# The parts' files folded into acceptance.txt, results.jsonl and steps.log under $out.
fold() {
  local sub f
  : > "$out/acceptance.txt"; : > "$out/results.jsonl"; : > "$out/steps.log"
  for sub in "${parts[@]}"; do
    { echo "===== $sub"; cat "$scratch/$sub/printed.txt" 2>/dev/null; } >> "$out/acceptance.txt"
    [[ -f $scratch/$sub/steps.log ]] && { echo "===== $sub"; cat "$scratch/$sub/steps.log"; } >> "$out/steps.log"
    for f in bench.json peer.json serve-bench.json peers.jsonl; do
      [[ -s $scratch/$sub/$f ]] || continue
      node -e '
        const fs = require("fs");
        const [part, file, path] = process.argv.slice(1);
        const text = fs.readFileSync(path, "utf8");
        const values = file.endsWith(".jsonl") ? text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)) : [JSON.parse(text)];
        for (const value of values) console.log(JSON.stringify({ part, file, value }));
      ' "$sub" "$f" "$scratch/$sub/$f" >> "$out/results.jsonl" 2>/dev/null ||
        echo "{\"part\":\"$sub\",\"file\":\"$f\",\"error\":\"not JSON\"}" >> "$out/results.jsonl"
    done
  done
}
part table BENCH_FLAGS="$bf --profile" bash scripts/gpu-run.sh bench peerbf16 peer peerint4
part table-fp8 BENCH_FLAGS="$bf --kv-cache-dtype fp8" bash scripts/gpu-run.sh bench
serve=(SERVE_BENCH_CONCURRENCY="16 128 256" SERVE_BENCH_PROMPTS="64 384 512")
part serve-fp8 "${serve[@]}" SERVE_BENCH_SERVE_FLAGS="--kv-cache-dtype fp8" bash scripts/gpu-run.sh serve-bench
part serve-fp16 "${serve[@]}" bash scripts/gpu-run.sh serve-bench
echo "total $((SECONDS - T0))s"
