#!/usr/bin/env node
// Summarizes an AWQ_TRACE_STEPS trace (src/engine/step-trace.ts):  node scripts/read-step-trace.mjs TRACE.jsonl
// - bursts of admissions (a gap of more than 50 ms starts a new one): size and spread;
// - every step that holds prompt tokens: when, how many sequences, prompt and decode tokens, how long it ran, and
//   their means in one line;
// - decode-only steps: how many, by batch size, and their mean time (launch of the step, or the return of the step
//   before when it was chained behind it, to its return).
import { readFileSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node scripts/read-step-trace.mjs TRACE.jsonl");
  process.exit(2);
}
const events = readFileSync(path, "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l, i) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`${path}:${i + 1}: not a JSON line`);
    }
  });
const steps = new Map();
const doneOrder = [];
const adds = [];
for (const e of events) {
  if (e.ev === "add") adds.push(e.t);
  else if (e.ev === "step") steps.set(e.n, { ...e, start: e.t });
  else if (e.ev === "done") {
    const s = steps.get(e.n);
    if (s) {
      s.end = e.t;
      doneOrder.push(s);
    }
  }
}
// A step's own time: from its launch, or from the previous return when it was queued behind that step.
let prevEnd = -Infinity;
for (const s of doneOrder) {
  s.ms = s.end - Math.max(s.start, prevEnd);
  prevEnd = s.end;
}

const bursts = [];
for (const t of adds) {
  const last = bursts.at(-1);
  if (last && t - last.end <= 50) {
    last.end = t;
    last.n++;
  } else bursts.push({ start: t, end: t, n: 1 });
}
console.log(`${adds.length} admissions in ${bursts.length} bursts (a gap > 50 ms starts one):`);
for (const b of bursts)
  console.log(`  t=${b.start.toFixed(1)} ms: ${b.n} requests over ${(b.end - b.start).toFixed(1)} ms`);

const fmt = (v) => (v === undefined ? "-" : v.toFixed(1));
console.log("\nsteps with prompt tokens (t ms, sequences, prompt + decode tokens, ms):");
for (const s of doneOrder.filter((x) => x.prefill > 0))
  console.log(
    `  t=${s.start.toFixed(1)} seqs=${s.seqs} prompt=${s.prefill} decode=${s.decode} waiting=${s.waiting} ${fmt(s.ms)} ms`,
  );

// Steps with prompt tokens in one line: how many, their mean time, prompt tokens and decode rows, and the time a
// prompt token (decode rows counted as tokens), the figure bench/scheduler-sim.ts takes as --prefill-ms.
const withPrompt = doneOrder.filter((x) => x.prefill > 0 && x.ms !== undefined);
if (withPrompt.length > 0) {
  const sum = (f) => withPrompt.reduce((n, s) => n + f(s), 0);
  const ms = sum((s) => s.ms);
  const tokens = sum((s) => s.prefill + s.decode);
  console.log(
    `  ${withPrompt.length} steps with prompt tokens: mean ${(ms / withPrompt.length).toFixed(1)} ms, ${(sum((s) => s.prefill) / withPrompt.length).toFixed(0)} prompt + ${(sum((s) => s.decode) / withPrompt.length).toFixed(1)} decode tokens, ${(ms / tokens).toFixed(4)} ms a token`,
  );
}

const decodeOnly = doneOrder.filter((x) => x.prefill === 0);
const bySeqs = new Map();
for (const s of decodeOnly) {
  const e = bySeqs.get(s.seqs) ?? { n: 0, ms: 0 };
  e.n++;
  e.ms += s.ms;
  bySeqs.set(s.seqs, e);
}
console.log(
  `\ndecode-only steps: ${decodeOnly.length} (${decodeOnly.filter((s) => s.chained).length} chained)`,
);
for (const [seqs, e] of [...bySeqs].sort((a, b) => a[0] - b[0]))
  console.log(`  batch ${seqs}: ${e.n} steps, mean ${(e.ms / e.n).toFixed(2)} ms`);
const prefillMs = doneOrder.filter((x) => x.prefill > 0).reduce((n, s) => n + s.ms, 0);
const decodeMs = decodeOnly.reduce((n, s) => n + s.ms, 0);
const span = doneOrder.length > 0 ? doneOrder.at(-1).end - doneOrder[0].start : 0;
console.log(
  `\nbusy ${(prefillMs + decodeMs).toFixed(0)} ms of ${span.toFixed(0)} ms (steps with prompts ${prefillMs.toFixed(0)}, decode-only ${decodeMs.toFixed(0)})`,
);
