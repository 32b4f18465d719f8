#!/usr/bin/env node
// A model, not a measurement: concurrency-16 serving (512-token prompts + BOS, 128 output tokens, ignore_eos, 64
// prompts, 16 closed-loop clients) under the engine's token-budget scheduler (src/engine/scheduler.ts: running
// sequences first, one decode token each or their next prefill chunk, then waiting ones, all under the budget).
// Step times: a decode-only step of b rows takes decode1 + perRow * b ms; a step with prompt tokens takes
// lone + perToken * (prompt tokens + decode rows) ms, i.e. decode rows ride in a prefill step at a prompt token's
// cost (the prefill GEMMs already stream the weights: the optimistic case). A client sends its next request
// `turnaround` ms after its last one ends. Prints output tokens/s, TPOT p50 and TTFT p50, as `awq bench serve` does.
// Defaults are the H200's (2026-12-07, sixth session: ITL p50 5.7 ms at batch 16 with FP8 KV, prefill ~20k tokens/s):
//   node scripts/c16-model.mjs [--budget 8192] [--decode1 3.46] [--per-row 0.14] [--per-token 0.05] [--lone 1]
//     [--turnaround 3] [--prompts 64] [--concurrency 16]
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: Object.fromEntries(
    ["budget", "decode1", "per-row", "per-token", "lone", "turnaround", "prompts", "concurrency"].map((k) => [
      k,
      { type: "string" },
    ]),
  ),
});
const num = (k, d) => (values[k] === undefined ? d : Number(values[k]));
const budget = num("budget", 8192);
const decode1 = num("decode1", 3.46);
const perRow = num("per-row", 0.14);
const perToken = num("per-token", 0.05);
const lone = num("lone", 1);
const turnaround = num("turnaround", 3);
const prompts = num("prompts", 64);
const conc = num("concurrency", 16);
const PROMPT = 513;
const OUTPUT = 128;

let t = 0;
let issued = 0;
const waiting = [];
const running = [];
const finished = [];
const arrivals = [];
const arrive = (at) => {
  waiting.push({ arrived: at, computed: 0, out: 0, first: 0, end: 0 });
  issued++;
};
for (let i = 0; i < conc; i++) arrive(0);
while (finished.length < prompts) {
  arrivals.sort((a, b) => a - b);
  while (arrivals.length > 0 && arrivals[0] <= t) arrive(arrivals.shift());
  let left = budget;
  const step = [];
  for (const s of running) {
    if (left <= 0) break;
    const n = s.computed < PROMPT ? Math.min(PROMPT - s.computed, left) : 1;
    step.push([s, n]);
    left -= n;
  }
  while (left > 0 && waiting.length > 0 && running.length < conc) {
    const s = waiting.shift();
    running.push(s);
    const n = Math.min(PROMPT, left);
    step.push([s, n]);
    left -= n;
  }
  if (step.length === 0) {
    t = arrivals[0];
    continue;
  }
  let promptTokens = 0;
  let decodeRows = 0;
  for (const [s, n] of step) {
    if (s.computed < PROMPT) promptTokens += n;
    else decodeRows++;
  }
  t += promptTokens === 0 ? decode1 + perRow * decodeRows : lone + perToken * (promptTokens + decodeRows);
  for (const [s, n] of step) {
    if (s.computed < PROMPT) {
      s.computed += n;
      if (s.computed === PROMPT) {
        s.out = 1;
        s.first = t;
      }
    } else s.out++;
    if (s.out === OUTPUT) {
      s.end = t;
      finished.push(s);
      running.splice(running.indexOf(s), 1);
      if (issued + arrivals.length < prompts) arrivals.push(t + turnaround);
    }
  }
}
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tpot = median(finished.map((s) => (s.end - s.first) / (OUTPUT - 1)));
const ttft = median(finished.map((s) => s.first - s.arrived));
console.log(
  `budget ${budget}, decode step at ${conc} rows ${(decode1 + perRow * conc).toFixed(2)} ms: ` +
    `${((prompts * OUTPUT) / (t / 1000)).toFixed(0)} output tokens/s, TPOT p50 ${tpot.toFixed(2)} ms, TTFT p50 ${ttft.toFixed(0)} ms`,
);
