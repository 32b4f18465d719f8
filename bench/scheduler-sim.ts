/**
 * Closed-loop serving simulation of the real Scheduler and BlockManager (no backend, no model): `--concurrency`
 * clients each send a request of `--input-len` distinct prompt tokens `--turnaround-ms` after their previous one
 * ends, until `--prompts` are done, as `awq bench serve --max-concurrency` does. Every request produces
 * `--output-len` tokens (ignore_eos, or an answer that ends there) under a max_tokens of `--max-tokens` (default: the
 * output length). Each step's time comes from a cost model, not a device:
 *
 *   step ms = base + perDecode x decodes + perContextToken x (context tokens the step reads) + perPrefill x prefill tokens
 *
 * or, with `--prefill-base-ms`, for a step that holds prompt tokens (its decode rows ride in the prefill's GEMMs at a
 * prompt token's cost: the optimistic case for chunked prefill):
 *
 *   step ms = prefillBase + perPrefill x (prefill tokens + decodes) + perContextToken x (context tokens)
 *
 * The defaults are fitted to 13B AWQ on an H100 with the fp16 KV cache (docs/benchmarks.md, 2026-12-06h: decode
 * steps of 4.2 / 6.9 / 15.9 / 27.8 ms at batch 1 / 16 / 64 / 128 and context 516, prefill at ~20,000 tokens/s). A
 * model, so its tokens/s are for comparing scheduling policies on the same cache, never a device's speed: the
 * serving rows of docs/benchmarks.md come from `serve-bench` on a GPU. One row per `--max-num-batched-tokens` and
 * `--kv-reserve-tokens` value (both take comma lists), with the TPOT and TTFT medians as `awq bench serve` gives them.
 *
 *   node dist/bench/scheduler-sim.js --concurrency 256 --prompts 512 --blocks 5070 --kv-reserve-tokens 0,256
 *     [--input-len 512] [--output-len 128] [--max-tokens N] [--block-size 16] [--max-num-seqs 256]
 *     [--max-num-batched-tokens 8192] [--base-ms 3.9] [--decode-ms 0.043] [--context-ms 0.00028] [--prefill-ms 0.05]
 *     [--prefill-base-ms MS] [--turnaround-ms 0]
 */
import { parseArgs } from "node:util";
import { DEMO_MODEL } from "../src/demo-model.js";
import { BlockManager } from "../src/engine/block-manager.js";
import { resolveSamplingParams } from "../src/engine/sampling-params.js";
import { Scheduler } from "../src/engine/scheduler.js";
import { Sequence } from "../src/engine/sequence.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";

const { values } = parseArgs({
  options: {
    concurrency: { type: "string", default: "256" },
    prompts: { type: "string", default: "512" },
    "input-len": { type: "string", default: "512" },
    "output-len": { type: "string", default: "128" },
    "max-tokens": { type: "string" },
    blocks: { type: "string", default: "5070" },
    "block-size": { type: "string", default: "16" },
    "max-num-seqs": { type: "string", default: "256" },
    "max-num-batched-tokens": { type: "string", default: "8192" },
    "kv-reserve-tokens": { type: "string", default: "0,256" },
    "base-ms": { type: "string", default: "3.9" },
    "decode-ms": { type: "string", default: "0.043" },
    "context-ms": { type: "string", default: "0.00028" },
    "prefill-ms": { type: "string", default: "0.05" },
    "prefill-base-ms": { type: "string" },
    "turnaround-ms": { type: "string", default: "0" },
  },
});

function int(name: keyof typeof values, min: number): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`--${name} must be an integer >= ${min}, got ${values[name]}`);
  return v;
}
function num(name: keyof typeof values): number {
  const v = Number(values[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number >= 0, got ${values[name]}`);
  return v;
}

const concurrency = int("concurrency", 1);
const numPrompts = int("prompts", 1);
const inputLen = int("input-len", 1);
const outputLen = int("output-len", 1);
const maxTokens = values["max-tokens"] === undefined ? outputLen : int("max-tokens", outputLen);
const numBlocks = int("blocks", 1);
const blockSize = int("block-size", 1);
const cost = {
  base: num("base-ms"),
  decode: num("decode-ms"),
  context: num("context-ms"),
  prefill: num("prefill-ms"),
  prefillBase: values["prefill-base-ms"] === undefined ? null : num("prefill-base-ms"),
};
const turnaroundMs = num("turnaround-ms");
function intList(name: "kv-reserve-tokens" | "max-num-batched-tokens", min: number): number[] {
  return values[name]!.split(",").map((s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} takes integers >= ${min}, got ${s}`);
    return v;
  });
}
const reserves = intList("kv-reserve-tokens", 0);
const budgets = intList("max-num-batched-tokens", 1);
const tokenizer = await Tokenizer.load(DEMO_MODEL);
const params = resolveSamplingParams({ maxTokens, ignoreEos: true });

interface SimResult {
  seconds: number;
  /** Medians over the requests, ms: time per output token after the first, and to the first. */
  tpotMs: number;
  ttftMs: number;
  steps: number;
  preemptions: number;
  computedTokens: number;
  mostRunning: number;
}

const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function simulate(maxNumBatchedTokens: number, kvReserveTokens: number): SimResult {
  const bm = new BlockManager(numBlocks, blockSize);
  const scheduler = new Scheduler(bm, {
    maxNumSeqs: int("max-num-seqs", 1),
    maxNumBatchedTokens,
    kvReserveTokens,
  });
  const sentAt = new Map<Sequence, number>();
  const firstAt = new Map<Sequence, number>();
  const tpots: number[] = [];
  const ttfts: number[] = [];
  const pending: number[] = []; // times at which a client sends its next request
  let sent = 0;
  let done = 0;
  let ms = 0;
  let steps = 0;
  let computedTokens = 0;
  let mostRunning = 0;
  const send = () => {
    const id = sent++;
    // Distinct prompts (no prefix-cache hits between requests), as the random dataset.
    const prompt = Array.from({ length: inputLen }, (_, i) => 3 + ((id * 7919 + i * 31) % 30000));
    const seq = new Sequence({
      requestId: String(id),
      promptTokenIds: prompt,
      params,
      tokenizer,
      eosTokenIds: [2],
      maxModelLen: inputLen + maxTokens,
    });
    sentAt.set(seq, ms);
    scheduler.add(seq);
  };
  for (let i = 0; i < Math.min(concurrency, numPrompts); i++) send();
  while (done < numPrompts) {
    while (pending.length > 0 && pending[0]! <= ms) {
      pending.shift();
      send();
    }
    const out = scheduler.schedule();
    if (out.unfittable.length > 0) throw new Error(`a request cannot fit: ${out.unfittable[0]!.reason}`);
    if (out.scheduled.length === 0) {
      if (pending.length === 0) throw new Error("nothing to schedule and no request coming");
      ms = pending[0]!; // idle until the next client sends
      continue;
    }
    let decodes = 0;
    let prefill = 0;
    let context = 0;
    for (const { seq, numNewTokens } of out.scheduled) {
      if (seq.numComputedTokens >= seq.numPromptTokens) decodes++;
      else prefill += numNewTokens;
      context += seq.numComputedTokens + numNewTokens;
    }
    ms +=
      prefill > 0 && cost.prefillBase !== null
        ? cost.prefillBase + cost.prefill * (prefill + decodes) + cost.context * context
        : cost.base + cost.decode * decodes + cost.context * context + cost.prefill * prefill;
    steps++;
    for (const { seq, numNewTokens, sample } of out.scheduled) {
      seq.numComputedTokens += numNewTokens;
      computedTokens += numNewTokens;
      if (sample) {
        seq.appendToken(5, null);
        if (!firstAt.has(seq)) firstAt.set(seq, ms);
      }
      if (seq.numOutputTokens >= outputLen) {
        scheduler.remove(seq);
        seq.status = "finished";
        done++;
        const first = firstAt.get(seq)!;
        ttfts.push(first - sentAt.get(seq)!);
        if (outputLen > 1) tpots.push((ms - first) / (outputLen - 1));
        if (sent + pending.length < numPrompts) pending.push(ms + turnaroundMs);
      }
    }
    mostRunning = Math.max(mostRunning, scheduler.running.length);
  }
  return {
    seconds: ms / 1000,
    tpotMs: median(tpots),
    ttftMs: median(ttfts),
    steps,
    preemptions: scheduler.numPreemptions,
    computedTokens,
    mostRunning,
  };
}

console.log(
  `closed loop: ${concurrency} clients (turnaround ${turnaroundMs} ms), ${numPrompts} requests of ${inputLen} in / ` +
    `${outputLen} out (max_tokens ${maxTokens}), cache ${numBlocks} blocks of ${blockSize} = ${numBlocks * blockSize} ` +
    `tokens; cost model ${cost.base} + ${cost.decode} x decodes + ${cost.context} x context + ${cost.prefill} x ` +
    `prefill tokens (ms)` +
    (cost.prefillBase === null
      ? ""
      : `, a step with prompt tokens ${cost.prefillBase} + ${cost.prefill} x (prefill tokens + decodes) + ${cost.context} x context`),
);
console.log(
  "| --max-num-batched-tokens | --kv-reserve-tokens | output tok/s (model) | steps | preemptions | tokens computed | most running | TPOT p50 | TTFT p50 |",
);
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const budget of budgets)
  for (const reserve of reserves) {
    const r = simulate(budget, reserve);
    const tps = Math.round((numPrompts * outputLen) / r.seconds);
    console.log(
      `| ${budget} | ${reserve} | ${tps.toLocaleString("en-US")} | ${r.steps} | ${r.preemptions} | ` +
        `${r.computedTokens.toLocaleString("en-US")} | ${r.mostRunning} | ${r.tpotMs.toFixed(2)} ms | ` +
        `${r.ttftMs.toFixed(0)} ms |`,
    );
  }
