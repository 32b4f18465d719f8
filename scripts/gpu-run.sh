#!/usr/bin/env bash
# Everything the GPU machine checks, in one device call (see ../shared/docs/gpu.md for the recipe):
#   bash .gpu/run.sh bash scripts/gpu-run.sh [steps...]
# steps (default: all but the quantizer's): kernels conformance sampler mask dense serve bench peer peerbf16 peerint4
#   quant quantize quantize13b. peerbf16 / peerint4: peer_batched.py (dense bf16 through cuBLAS, or PyTorch's
#   int4 kernel) at PEER_CTX (512) context, batches PEER_BATCHES (1,16,64,128), prefill 4096.
# Each step's log goes to a scratch folder; $OUT (or ./gpu-logs) receives at most 8 files, as the device tool
# returns: steps.log (every log, concatenated), bench.json, peer.json, summary.txt. A short table is printed last.
set -u
final=${OUT:-$PWD/gpu-logs}
out=$(mktemp -d)
mkdir -p "$final"
steps=${*:-kernels conformance sampler mask dense serve bench peer peerbf16 peerint4}
export NODE_OPTIONS=${NODE_OPTIONS:-}
summary=()

run_step() { # name timeout_s command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  local secs=$((SECONDS - t0))
  local status=PASS
  [[ $rc -eq 124 ]] && status="TIMEOUT(${limit}s)" || { [[ $rc -ne 0 ]] && status="FAIL(rc=$rc)"; }
  summary+=("$(printf '%-12s %-14s %5ss' "$name" "$status" "$secs")")
  echo "== $name: $status in ${secs}s"
  if [[ $status != PASS ]]; then tail -n 40 "$out/$name.log"; fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
node -e 'require("./native/build/awq_native.node").probe().then((p) => console.log(JSON.stringify(p)))' | tee "$out/probe.json"

for step in $steps; do
  case $step in
    kernels)
      # Built by native/kernel-tests/build.sh (the kernels' own correctness checks and timings).
      if [[ -x native/build/kernel-tests/kernel-tests ]]; then run_step kernels 240 native/build/kernel-tests/kernel-tests ${KERNEL_TEST_FLAGS:-}
      else echo "== kernels: native/build/kernel-tests/kernel-tests is not built; skipped"; fi ;;
    conformance) run_step conformance 420 node --test dist/test/gpu/conformance-cuda.test.js ;;
    quant) run_step quant 150 node --test dist/test/gpu/quant-cuda.test.js ;;
    quantize)
      # The demo quantized on the GPU (same settings as the CPU row of docs/benchmarks.md), then its perplexity.
      run_step quantize 330 node dist/bench/quantize-demo.js --backend cuda --samples 512 --methods awq \
        --out "$out/quantize-demo" ;;
    quantize13b)
      run_step quantize13b 270 node dist/bench/quantize-layers.js --backend cuda --layers ${QUANT_LAYERS:-3}
      grep '^{' "$out/quantize13b.log" | tail -n 1 > "$out/quantize13b.json" ;;
    sampler) run_step sampler 180 node --test dist/test/gpu/cuda-sampler.test.js ;;
    mask) run_step mask 180 node --test dist/test/gpu/cuda-token-mask.test.js ;;
    structured) run_step structured 420 node dist/bench/structured-bench.js --backend cuda --batches 1,64 --model ${STRUCTURED_MODELS:-synthetic-7b,demo}; sed -n '/^{/,$p' "$out/structured.log" | tee "$final/structured.json" ;;
    dense) run_step dense 180 node --test dist/test/gpu/cuda-dense.test.js ;;
    serve) run_step serve 240 node --test dist/test/gpu/serve-openai-cuda.test.js ;;
    bench)
      run_step bench 420 node dist/src/cli/main.js bench latency --json ${BENCH_FLAGS:-}
      tail -n 1 "$out/bench.log" > "$out/bench.json" ;;
    peer)
      PYTHONUNBUFFERED=1 run_step peer 400 python3 .gpu/peer_pytorch.py int4 40
      grep '^{' "$out/peer.log" | tail -n 1 > "$out/peer.json" ;;
    peerbf16|peerint4)
      mode=${step#peer}
      PYTHONUNBUFFERED=1 run_step "$step" 500 python3 .gpu/peer_batched.py "$mode" 40 "${PEER_CTX:-512}" \
        "${PEER_BATCHES:-1,16,64,128}" 4096
      grep '^{' "$out/$step.log" > "$out/$step.jsonl" ;;
    *) echo "unknown step $step" ;;
  esac
done

echo
echo "== summary ($(cat "$out/gpu.txt"))"
printf '%s\n' "${summary[@]}"
if [[ -s "$out/bench.json" ]]; then
  node -e '
    const fs = require("fs");
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    let peer = null;
    try { peer = JSON.parse(fs.readFileSync(process.argv[2], "utf8")); } catch {}
    for (const p of r.prefill) {
      console.log(`prefill ${p.tokens}: ${p.tokensPerSecond.toFixed(0)} tok/s (${p.ms.toFixed(1)} ms)`);
      if (p.profile) console.log("  " + Object.entries(p.profile).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", "));
    }
    for (const d of r.decode) {
      const h = d.hostUs ?? {};
      console.log(`decode bs${d.batch} ctx${d.context}: ${d.tokensPerSecond.toFixed(1)} tok/s (${d.msPerStep.toFixed(2)} ms/step, GPU ${d.gpuMsPerStep.toFixed(2)} ms, ${d.gbPerSecond?.toFixed(0)} GB/s; host us: convert ${h.convert?.toFixed(0)} queue ${h.queue?.toFixed(0)} execute ${h.execute?.toFixed(0)} return ${h.return?.toFixed(0)})`);
      const gbs = d.profileGBs ?? {};
      if (d.profile) console.log("  " + Object.entries(d.profile).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(3)}` + (gbs[k] ? ` (${gbs[k].toFixed(0)} GB/s)` : "")).join(", "));
    }
    if (peer) console.log(`peer ${peer.peer} bs1: ${peer.decode_tok_s_bs1.toFixed(1)} tok/s (${peer.ms_per_token.toFixed(2)} ms/token)`);
  ' "$out/bench.json" "$out/peer.json" 2>/dev/null || true
fi
for f in "$out"/peerbf16.jsonl "$out"/peerint4.jsonl; do
  [[ -s $f ]] && { echo "== $(basename "$f" .jsonl)"; cat "$f"; }
done
# Side by side: our decode tokens/s at the context nearest the peers' (PEER_CTX + 1) against each peer's, per batch.
if [[ -s "$out/bench.json" ]]; then
  node -e '
    const fs = require("fs");
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const peers = {};
    for (const f of process.argv.slice(2)) {
      if (!fs.existsSync(f)) continue;
      for (const line of fs.readFileSync(f, "utf8").split("\n")) {
        if (!line.startsWith("{")) continue;
        const p = JSON.parse(line);
        if (p.what === "decode") (peers[p.peer] ??= {})[p.batch] = p;
      }
    }
    const names = Object.keys(peers);
    if (names.length === 0) process.exit(0);
    const ctx = Number(process.env.PEER_CTX ?? 512) + 1;
    console.log(`\n== decode tokens/s, awq-ts (context nearest ${ctx}) vs peers (context ${ctx})`);
    console.log(["batch", "awq-ts", ...names].join(" | "));
    for (const b of [...new Set(r.decode.map((d) => d.batch))].sort((a, b) => a - b)) {
      const ours = r.decode.filter((d) => d.batch === b).sort((x, y) => Math.abs(x.context - ctx) - Math.abs(y.context - ctx))[0];
      const cells = names.map((n) => (peers[n][b] ? peers[n][b].tok_s.toFixed(0) : "-"));
      console.log([b, `${ours.tokensPerSecond.toFixed(0)} (ctx ${ours.context})`, ...cells].join(" | "));
    }
  ' "$out/bench.json" "$out/peerbf16.jsonl" "$out/peerint4.jsonl" 2>/dev/null || true
fi

for f in "$out"/*.log; do [[ -f $f ]] && { echo "===== $(basename "$f")"; cat "$f"; }; done > "$final/steps.log"
for f in bench.json peer.json quantize13b.json; do [[ -s $out/$f ]] && cp "$out/$f" "$final/"; done
cat "$out"/peerbf16.jsonl "$out"/peerint4.jsonl > "$final/peers.jsonl" 2>/dev/null || true
[[ -s $out/kernels.log ]] && cp "$out/kernels.log" "$final/kernels.log"
{ cat "$out/gpu.txt"; cat "$out/probe.json"; printf '%s\n' "${summary[@]}"; } > "$final/summary.txt" 2>/dev/null
