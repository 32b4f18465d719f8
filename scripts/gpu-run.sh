#!/usr/bin/env bash
# Everything the GPU machine checks, in one device call (see ../shared/docs/gpu.md for the recipe):
#   bash .gpu/run.sh bash scripts/gpu-run.sh [steps...]
# steps (default: all but the quantizer's): kernels conformance sampler mask dense serve bench peer peerbf16 peerint4
#   quant native-args quantize quantize13b structured serve-bench verify-checks verify-gemm verify-ws-next verify-attn-prefill verify-gemv verify-engine-host verify-structured verify-kv verify-decode-gemm verify-attn-fp8 verify-ws-pair verify-chained verify-gqa verify-fp8-wide verify-gemv-narrow verify-c16 verify-narrow-gemv kernel-trace verify-ws-tail verify-attn-splits verify-attn-balanced ncu-decode verify-c16-budget suites. suites: every GPU test file (npm run test:gpu) in one step. peerbf16 / peerint4: peer_batched.py (dense bf16 through cuBLAS, or PyTorch's
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

# GPU_RUN_DEADLINE (seconds from the start of this script, e.g. 560 under a 600 s device call): no step starts
# past it and none runs beyond it, so steps.log and the summary still come back when a call's limit is near.
deadline=${GPU_RUN_DEADLINE:-0}
run_step() { # name timeout_s command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  if ((deadline > 0)); then
    local left=$((deadline - SECONDS))
    if ((left < 15)); then
      summary+=("$(printf '%-12s %-14s %5ss' "$name" "SKIPPED(deadline)" 0)")
      echo "== $name: SKIPPED (GPU_RUN_DEADLINE=${deadline}s reached)"
      return 125
    fi
    ((limit > left)) && limit=$left
  fi
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  local secs=$((SECONDS - t0))
  local status=PASS
  [[ $rc -eq 124 ]] && status="TIMEOUT(${limit}s)" || { [[ $rc -ne 0 ]] && status="FAIL(rc=$rc)"; }
  summary+=("$(printf '%-12s %-14s %5ss' "$name" "$status" "$secs")")
  echo "== $name: $status in ${secs}s"
  { echo "===== $name.log"; cat "$out/$name.log"; } >> "$final/steps-partial.log"
  if [[ $status != PASS ]]; then tail -n 40 "$out/$name.log"; fi
  return $rc
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
    native-args) run_step native-args 60 node --test dist/test/gpu/native-args-cuda.test.js ;;
    verify-gemv) run_step verify-gemv 580 bash scripts/verify-gemv.sh ;;  # issue 13 decode GEMV options (see the file)
    verify-engine-host) run_step verify-engine-host 420 bash scripts/verify-engine-host.sh ;;  # issue 14 item 3 (see the file)
    verify-checks) run_step verify-checks 590 bash scripts/verify-checks.sh; grep -E "^== |rc=|FAIL|not ok|^# (pass|fail)" "$out/verify-checks.log" ;;  # run first: every unverified path's checks
    verify-structured) run_step verify-structured 600 bash scripts/verify-structured.sh ;;  # issue 16 split step (see the file)
    verify-decode-gemm) run_step verify-decode-gemm 300 bash scripts/verify-decode-gemm.sh ;;  # linears of batches 64 / 128 (see the file)
    verify-ws-pair) run_step verify-ws-pair 420 bash scripts/verify-ws-pair.sh ;;  # decode tiles, a pair of chunks a stage
    verify-chained) run_step verify-chained 560 bash scripts/verify-chained.sh ;;  # chained decode steps (see the file)
    verify-gqa) run_step verify-gqa 560 bash scripts/verify-gqa.sh ;;  # grouped-query decode defaults (see the file)
    verify-fp8-wide) run_step verify-fp8-wide 480 bash scripts/verify-wide-kv.sh fp8 ;;  # FP8 decode reads, 16 a lane (see the file)
    verify-gemv-narrow) run_step verify-gemv-narrow 300 bash scripts/verify-gemv-narrow.sh ;;  # evict-first o / down GEMVs (see the file)
    verify-narrow-gemv) run_step verify-narrow-gemv 420 bash scripts/verify-narrow-gemv.sh ;;  # o at 9..16 / 9..32 rows on the GEMV against the WS tiles (see the file)
    verify-ws-tail) run_step verify-ws-tail 560 bash scripts/verify-ws-tail.sh ;;  # prefill rows past the last 256-row tile (see the file)
    kernel-trace) run_step kernel-trace 420 env OUT="$final" bash scripts/kernel-trace.sh ;;  # the decode graphs' kernels, traced (see the file)
    verify-attn-splits) run_step verify-attn-splits 420 bash scripts/verify-attn-splits.sh ;;  # FP8 decode attention, more splits at batch 16 (see the file)
    verify-attn-balanced) run_step verify-attn-balanced 560 bash scripts/verify-attn-balanced.sh ;;  # decode attention on a balanced grid, AWQ_ATTN_BALANCED (see the file)
    ncu-decode) run_step ncu-decode 360 env OUT="$final" bash scripts/ncu-decode.sh ;;  # Nsight Compute on the decode kernels (see the file)
    verify-c16) run_step verify-c16 300 bash scripts/verify-serve-c16.sh ;;  # concurrency 16, the library's encoder against ours (see the file)
    verify-c16-budget) run_step verify-c16-budget 420 bash scripts/verify-c16-budget.sh ;;  # concurrency 16 by token budget (see the file)
    verify-attn-fp8) run_step verify-attn-fp8 300 bash scripts/verify-attn-fp8.sh ;;  # FP8 prefill attention on the producer warpgroup
    verify-kv) run_step verify-kv 580 bash scripts/verify-kv.sh ;;  # issue 14 FP8 KV cache + issue 13 decode attention (see the file)
    quantize)
      # The demo quantized on the GPU (same settings as the CPU row of docs/benchmarks.md), then its perplexity.
      run_step quantize 330 node dist/bench/quantize-demo.js --backend cuda --samples 512 --methods awq \
        --out "$out/quantize-demo" ;;
    quantize13b)
      run_step quantize13b 270 node dist/bench/quantize-layers.js --backend cuda --layers ${QUANT_LAYERS:-3}
      grep '^{' "$out/quantize13b.log" | tail -n 1 > "$out/quantize13b.json" ;;
    suites) run_step suites 540 node scripts/run-tests.mjs --gpu; grep -E '^# (tests|pass|fail|skipped)|^not ok' "$out/suites.log" ;;  # npm run test:gpu
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
    verify-gemm)
      # Issue 14 item 1: the warp-specialized persistent prefill GEMM (native/kernels/gemm_sm90_ws.cu, off by default,
      # AWQ_GEMM_WS=1 turns it on for m > 64). Never run on a GPU before this step. Each variant is checked in its own
      # process (a hang prints "HANG" with its case after 20 s and ends only that process), then the prologue A/B
      # (AWQ_GEMM_WS_PF=0). Pass = every gemm-check-* step PASS and no FAIL line. Then TFLOP/s per shape and m of the
      # current path beside each variant that passed (same process, same card); the engine runs (13B prefill tokens/s
      # old vs new, the conformance suite with AWQ_GEMM_WS=1) only when the variants awq_linear picks (1: m > 128,
      # 3: m <= 128) passed, so a broken kernel cannot hang them for their whole limits.
      kt=native/build/kernel-tests/kernel-tests
      wsok=""
      for v in 1 2 3 4 5; do
        run_step gemm-check-v$v 120 env AWQ_WS_VARIANTS=$v "$kt" --gemm-ws --no-bench && wsok+=$v
      done
      [[ $wsok == *1* && $wsok == *3* ]] &&
        run_step gemm-check-nopf 120 env AWQ_WS_VARIANTS=13 AWQ_GEMM_WS_PF=0 "$kt" --gemm-ws --no-bench
      grep -h "FAIL" "$out"/gemm-check*.log | head -n 20
      echo "verify-gemm: variants whose checks passed: ${wsok:-none}"
      if [[ -n $wsok ]]; then
        run_step gemm-bench 240 env AWQ_WS_VARIANTS=$wsok "$kt" --gemm-ws --bench-only
        cat "$out/gemm-bench.log"
      fi
      if [[ $wsok == *1* && $wsok == *3* ]]; then
        lat="node dist/src/cli/main.js bench latency --prefill 512,2048,4096 --batches 1 --steps 8"
        run_step gemm-prefill-old 300 env AWQ_GEMM_WS=0 $lat
        run_step gemm-prefill-new 300 env AWQ_GEMM_WS=1 $lat
        grep -h "prefill" "$out/gemm-prefill-old.log" "$out/gemm-prefill-new.log"
        # The engine end to end with it (prompts longer than 64 tokens take the new GEMM in prefill).
        run_step gemm-conformance 420 env AWQ_GEMM_WS=1 node --test dist/test/gpu/conformance-cuda.test.js
      else
        echo "verify-gemm: engine runs skipped (variant 1 or 3 failed its checks)"
      fi ;;
    verify-ws-next)
      # (1) AWQ_GEMM_WS_TMAW=2, the WS GEMM's packed words landing 128-byte swizzled so its consumers read them without
      # bank conflicts; (2) its 8-row tile v9 for the GEMV's sizes (AWQ_GEMM_WS_MIN_ROWS=1). Run on 2026-12-06b (H100):
      # both pass their checks; (1) ties the default, (2) loses at batch 1 / 8; both stay off. Checks first, each in its own process (pass = both PASS, no FAIL line),
      # then the kernel bench (columns S = swizzled and v9 beside T = the default and the current path), then whole
      # steps in alternating processes: default / swizzled / v9 twice. Make one the default only where it wins in
      # both passes, then run `kernels conformance` on that build.
      kt=native/build/kernel-tests/kernel-tests
      run_step ws-swz-check 150 env AWQ_GEMM_WS_TMAW=2 AWQ_WS_VARIANTS=123678 "$kt" --gemm-ws --no-bench
      run_step ws-v9-check 90 env AWQ_WS_VARIANTS=9 "$kt" --gemm-ws --no-bench
      grep -h "FAIL" "$out/ws-swz-check.log" "$out/ws-v9-check.log" | head -n 20
      run_step ws-next-bench 240 env AWQ_WS_VARIANTS=236789 "$kt" --gemm-ws --bench-only
      cat "$out/ws-next-bench.log"
      ab="node dist/src/cli/main.js bench latency --batches 1,8,16,64,128 --context 512 --prefill 512,4096 --steps 32"
      for pass in 1 2; do
        run_step "ws-ab-default-$pass" 120 $ab --repeats 3
        run_step "ws-ab-swz-$pass" 120 env AWQ_GEMM_WS_TMAW=2 $ab --repeats 3
        run_step "ws-ab-v9-$pass" 120 env AWQ_GEMM_WS_MIN_ROWS=1 $ab --repeats 3
      done
      grep -H -E "^(prefill|decode batch)" "$out"/ws-ab-*.log ;;
    verify-attn-prefill)
      # The mma.sync prefill attention (the path off Hopper, or with AWQ_ATTN_PREFILL_WGMMA=0) with 128 queries a block
      # (AWQ_ATTN_PREFILL_BQ=128: half the K/V shared-memory fills a FLOP) and without the per-element causal test on
      # tiles every query of the block sees whole (AWQ_ATTN_PREFILL_MASKSKIP=1); since 2026-12-06b the FP8 cache's
      # default (see attention.cu). Run it with AWQ_ATTN_PREFILL_WGMMA=0 to time that kernel on Hopper. Each setting runs every kernel check
      # (fp16 and FP8 caches; pass = "correctness: ALL PASSED"), then prefill tokens/s in alternating processes. Make a
      # setting the default only where it passed and won both passes, then run `conformance` on that build.
      kt=native/build/kernel-tests/kernel-tests
      for cfg in "64 1" "128 0" "128 1"; do
        read -r bq skip <<< "$cfg"
        run_step "attn-check-bq$bq-skip$skip" 150 env AWQ_ATTN_PREFILL_BQ="$bq" AWQ_ATTN_PREFILL_MASKSKIP="$skip" "$kt" --no-bench
        grep -h -E "correctness|FAIL" "$out/attn-check-bq$bq-skip$skip.log" | head -n 5
      done
      ab="node dist/src/cli/main.js bench latency --prefill 2048,4096 --batches 1 --context 128 --steps 4 --repeats 3"
      for pass in 1 2; do
        for cfg in "64 0" "64 1" "128 0" "128 1"; do
          read -r bq skip <<< "$cfg"
          run_step "attn-ab-bq$bq-skip$skip-$pass" 90 env AWQ_ATTN_PREFILL_BQ="$bq" AWQ_ATTN_PREFILL_MASKSKIP="$skip" $ab --profile
        done
      done
      grep -H -E "^prefill|attention_prefill" "$out"/attn-ab-*.log ;;
    serve-bench)
      # Issue 14: `awq serve --backend cuda` on a synthetic Llama-2-13B AWQ checkpoint written to local disk
      # (7.25 GB, 4 shards; kept in SERVE_BENCH_DIR for the next call on a warm machine), then `awq bench serve`
      # at each max concurrency, 512 in / 128 out / ignore_eos. Prompts per row are modest so the whole step fits
      # one device call (~2 min of benchmark at the 2026-12-02 speeds, plus the write and the load):
      # SERVE_BENCH_PROMPTS (16 64 192 384 512 for 1 16 64 128 256; each row >= 2 waves except c=256).
      # Extra server flags (e.g. --kv-cache-dtype fp8) in SERVE_BENCH_SERVE_FLAGS. Prints the table; $OUT gets
      # serve-bench.json (one summary per row, vLLM's field names). SERVE_BENCH_BACKEND=cpu with a tiny checkpoint
      # in SERVE_BENCH_DIR (and SERVE_BENCH_SERVE_FLAGS=--max-model-len 1024: the CPU's KV budget) dry-runs the step on a
      # machine without a GPU. SERVE_BENCH_SHAPE=llama-3-8b writes and serves
      # a grouped-query model (32 query heads on 8 KV heads) instead of the 13B.
      sb_shape=${SERVE_BENCH_SHAPE:-llama-2-13b}
      sb_dir=${SERVE_BENCH_DIR:-/tmp/awq-synthetic-${sb_shape#llama-2-}}
      sb_url=http://127.0.0.1:${SERVE_BENCH_PORT:-8321}
      read -ra sb_conc <<< "${SERVE_BENCH_CONCURRENCY:-1 16 64 128 256}"
      read -ra sb_prompts <<< "${SERVE_BENCH_PROMPTS:-16 64 192 384 512}"
      if [[ ! -s $sb_dir/config.json ]]; then  # written after the weights: without it the folder holds no checkpoint
        run_step serve-bench-write 240 node dist/src/cli/main.js bench synthetic-checkpoint --shape "$sb_shape" \
          --out "$sb_dir" --quiet
        tail -n 1 "$out/serve-bench-write.log"
      fi
      # shellcheck disable=SC2086
      node dist/src/cli/main.js serve "$sb_dir" --backend "${SERVE_BENCH_BACKEND:-cuda}" --port "${sb_url##*:}" --log-level warn \
        ${SERVE_BENCH_SERVE_FLAGS:-} >"$out/serve-bench-server.log" 2>&1 &
      sb_pid=$!
      sb_t0=$SECONDS
      sb_up=1
      until node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
        "$sb_url/health"; do
        if ! kill -0 "$sb_pid" 2>/dev/null || ((SECONDS - sb_t0 > 180)); then
          echo "== serve-bench: the server did not come up"; tail -n 40 "$out/serve-bench-server.log"; sb_up=0; break
        fi
        sleep 1
      done
      ((sb_up)) && echo "== serve-bench: server healthy after $((SECONDS - sb_t0))s"
      # The cache the rows ran on (its size explains preemptions), from vLLM's cache_config_info in /metrics.
      ((sb_up)) && node -e '
        fetch(process.argv[1] + "/metrics").then((r) => r.text()).then((t) => {
          const line = t.split("\n").find((l) => l.startsWith("vllm:cache_config_info{"));
          const label = (k) => (line?.match(new RegExp(k + "=\"([^\"]*)\"")) ?? [])[1];
          const blocks = Number(label("num_gpu_blocks")), size = Number(label("block_size"));
          console.log(`== serve-bench: KV cache ${blocks} blocks of ${size} = ${blocks * size} tokens (${label("cache_dtype")}); server flags: ${process.argv[2] || "(defaults)"}`);
        }, (e) => console.log(`== serve-bench: /metrics unreadable: ${e.message}`));
      ' "$sb_url" "${SERVE_BENCH_SERVE_FLAGS:-}" | tee "$out/serve-bench-cache.txt"
      for i in "${!sb_conc[@]}"; do
        c=${sb_conc[$i]}
        if ((!sb_up)); then
          summary+=("$(printf '%-12s %-14s %5ss' "serve-bench-c$c" "SKIPPED(server)" 0)")
          echo "== serve-bench-c$c: SKIPPED (no server)"
          continue
        fi
        run_step "serve-bench-c$c" 180 node dist/src/cli/main.js bench serve --base-url "$sb_url" \
          --tokenizer "$sb_dir" --dataset-name random --random-input-len 512 --random-output-len 128 --ignore-eos \
          --num-prompts "${sb_prompts[$i]:-$((2 * c))}" --max-concurrency "$c" --seed "$c" --disable-tqdm \
          --save-result --result-dir "$out" --result-filename "serve-bench-c$c.json"
      done
      kill "$sb_pid" 2>/dev/null; wait "$sb_pid" 2>/dev/null
      SB_JSON="$final/serve-bench.json" SB_SHAPE="$sb_shape" node -e '
        const fs = require("fs");
        const rows = process.argv.slice(1).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
        const drop = new Set(["input_lens", "output_lens", "server_prompt_tokens", "ttfts", "itls", "generated_texts", "errors"]);
        const slim = rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !drop.has(k))));
        fs.writeFileSync(process.env.SB_JSON, JSON.stringify(slim, null, 2) + "\n");
        const ms = (v) => (v === null || v === undefined ? "-" : v < 100 ? v.toFixed(1) : v.toFixed(0));
        console.log(`\n== serve-bench: synthetic ${process.env.SB_SHAPE} AWQ, 512 in / 128 out, ignore_eos`);
        console.log("| max concurrency | prompts | output tokens/s | req/s | TPOT p50 | ITL p50 | TTFT p50 / p99 | E2EL p50 | errors | preemptions |");
        console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (const r of rows) {
          const firstError = r.errors.find((e) => e !== "");
          console.log(`| ${r.max_concurrency} | ${r.num_prompts} | ${r.output_throughput.toFixed(0)} | ${r.request_throughput.toFixed(2)} | ${ms(r.median_tpot_ms)} ms | ${ms(r.median_itl_ms)} ms | ${ms(r.median_ttft_ms)} / ${ms(r.p99_ttft_ms)} ms | ${ms(r.median_e2el_ms)} ms | ${r.failed} | ${r.num_preemptions ?? "n/a"} |` + (firstError ? `  first error: ${firstError}` : ""));
        }
      ' $(for c in "${sb_conc[@]}"; do echo "$out/serve-bench-c$c.json"; done) ;;
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
rm -f "$final/steps-partial.log"  # written step by step in case the call is cut off before this point
for f in bench.json peer.json quantize13b.json; do [[ -s $out/$f ]] && cp "$out/$f" "$final/"; done
cat "$out"/peerbf16.jsonl "$out"/peerint4.jsonl > "$final/peers.jsonl" 2>/dev/null || true
[[ -s $out/kernels.log ]] && cp "$out/kernels.log" "$final/kernels.log"
{ cat "$out/gpu.txt"; cat "$out/probe.json"; printf '%s\n' "${summary[@]}"; } > "$final/summary.txt" 2>/dev/null
