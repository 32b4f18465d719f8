/**
 * Grammar-side costs of structured outputs on the CPU, no model: `node dist/bench/structured-fill.js
 * [--walks 8] [--seed 7] [--admit 64]`.
 *
 * 1. Mask fill time of the structured bench's JSON schema (bench/structured-bench.ts) on the demo vocabulary:
 *    XGrammar's own grammar of it (bounded strings as `[^"\\\r\n]{m,n}`) against ours (bounded-strings.ts: a chain
 *    of rules), two matchers driven in lockstep along seeded random walks (each token drawn uniformly from the
 *    allowed ones, so strings run to their bounds as a random-weight model's do); every mask is compared over the
 *    vocabulary. Reported: compile time and fill time per mask (p50 / p90 / p99 / max / sum) of each.
 * 2. Admission: --admit N sequences of one schema made at once through ConstraintFactory.create (what a batch of
 *    N requests does before its first step), timed from the first call to the last resolution, five rounds.
 * Prints one JSON object; docs/benchmarks.md (Structured outputs) records the numbers.
 */
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ConstraintSpec } from "../src/structured/constraint-spec.js";
import { ConstraintFactory } from "../src/structured/engine-constraints.js";
import { GrammarEngine, vocabInfoFor } from "../src/structured/grammar-engine.js";
import { applyNumericRules, rewriteNumericBounds } from "../src/structured/numeric-bounds.js";
import { loadXgrammar } from "../src/structured/xgrammar-runtime.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";
import { benchSpec, schema } from "./bench-schema.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = parseArgs({
  options: {
    walks: { type: "string", default: "8" },
    seed: { type: "string", default: "7" },
    admit: { type: "string", default: "64" },
  },
});
const walks = Number(values.walks);
const admit = Number(values.admit);
const VOCAB = 32002;

const spec: ConstraintSpec = benchSpec;

function summary(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.at(-1)!, sum: s.reduce((a, b) => a + b, 0) };
}

const tokenizer = await Tokenizer.load(`${repoRoot}/models/tiny-chat-awq`);
const engine = await GrammarEngine.create(await vocabInfoFor(tokenizer, VOCAB));

// XGrammar's own EBNF of the schema: our numeric bounds (as compiled), its bounded strings.
const inst = await loadXgrammar();
const bounded = rewriteNumericBounds(schema);
const xgrammarEbnf = applyNumericRules(
  await inst.api.Testings._jsonSchemaToEBNF(JSON.stringify(bounded.schema), false, -1, [", ", ": "], true),
  bounded.rules,
);
// An unrelated compile first, so that neither timed compile pays the instance's warm-up.
await engine.compile({
  type: "json_schema",
  schema: { type: "object", properties: { n: { type: "integer" } } },
});
let t = performance.now();
const reference = await engine.compile({ type: "grammar", ebnf: xgrammarEbnf });
const compileMsXgrammar = performance.now() - t;
t = performance.now();
const ours = await engine.compile(spec);
const compileMsOurs = performance.now() - t;

const want = new Int32Array(engine.maskWords);
const got = new Int32Array(engine.maskWords);
const fillXgrammar: number[] = [];
const fillOurs: number[] = [];
let differing = 0;
let rng = Number(values.seed) >>> 0;
const random = () => {
  rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
  return rng / 2 ** 32;
};
for (let w = 0; w < walks; w++) {
  const a = await reference.newMatcher();
  const b = await ours.newMatcher();
  for (let step = 0; step < 300 && !a.isTerminated(); step++) {
    let t0 = performance.now();
    await a.fillNextTokenBitmask(want);
    fillXgrammar.push(performance.now() - t0);
    t0 = performance.now();
    await b.fillNextTokenBitmask(got);
    fillOurs.push(performance.now() - t0);
    const allowed: number[] = [];
    let same = true;
    for (let id = 0; id < VOCAB; id++) {
      const bit = (want[id >> 5]! >>> (id & 31)) & 1;
      if (((got[id >> 5]! >>> (id & 31)) & 1) !== bit) same = false;
      if (bit === 1) allowed.push(id);
    }
    if (!same) differing++;
    const pick = allowed[Math.floor(random() * allowed.length)]!;
    if (!a.acceptToken(pick) || !b.acceptToken(pick)) throw new Error(`token ${pick} refused`);
  }
  a.dispose();
  b.dispose();
}

// Admission of a batch of one schema.
const factory = new ConstraintFactory(tokenizer, VOCAB);
await factory.compile(spec);
const admitMs: number[] = [];
for (let round = 0; round < 5; round++) {
  const params = { structuredOutput: spec, allowedTokenIds: null, badWords: [] };
  const t0 = performance.now();
  const made = await Promise.all(Array.from({ length: admit }, () => factory.create(params)));
  admitMs.push(performance.now() - t0);
  for (const c of made) c.dispose();
}
await factory.close();

const out = {
  loadavg: loadavg()[0],
  walks,
  masks: fillOurs.length,
  masksDiffering: differing,
  compileMsXgrammar,
  compileMsOurs,
  fillMsXgrammar: summary(fillXgrammar),
  fillMsOurs: summary(fillOurs),
  admit: { sequences: admit, ms: admitMs },
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
