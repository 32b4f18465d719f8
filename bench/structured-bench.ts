/**
 * Structured-output cost on the CPU (`node dist/bench/structured-bench.js [--backend cpu|cuda] [--tokens N]`):
 * the grammar engine's bitmask time per constrained sequence and step (p50 / p99, what the engine waits for
 * before each step), the compile time of a schema, and generation tokens/s constrained vs unconstrained at
 * batch 1 and batch B (same prompts, seeds, lengths: ignore_eos-free runs are cut at N tokens by max_tokens).
 * Prints one JSON object; docs/benchmarks.md records the numbers.
 */
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { BackendChoice } from "../src/backend/create.js";
import { LLM } from "../src/llm.js";
import { maskTimings, recordMaskTimings } from "../src/structured/engine-constraints.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "cpu" },
    tokens: { type: "string", default: "96" },
    batch: { type: "string", default: "16" },
  },
});
const maxTokens = Number(values.tokens);
const batch = Number(values.batch);

// A schema that keeps a small model busy for many tokens: free strings (bounded) and arrays of objects.
const schema = {
  type: "object",
  properties: {
    title: { type: "string", maxLength: 40 },
    items: {
      type: "array",
      items: {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 20 },
          qty: { type: "integer", minimum: 0, maximum: 999 },
        },
        required: ["name", "qty"],
        additionalProperties: false,
      },
      maxItems: 8,
    },
  },
  required: ["title", "items"],
  additionalProperties: false,
};

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const llm = await LLM.load({
  model: `${repoRoot}/models/tiny-chat-awq`,
  backend: values.backend as BackendChoice,
  maxModelLen: 512,
  numBlocks: 1024,
});
try {
  let t = performance.now();
  await llm.engine.compileStructuredOutput({ type: "json_schema", schema });
  const compileMs = performance.now() - t; // includes the grammar engine's start (vocabulary, WASM instances)
  t = performance.now();
  await llm.engine.compileStructuredOutput({ type: "json_schema", schema: { ...schema, title: "other" } });
  const compileWarmMs = performance.now() - t;

  const prompts = (n: number) =>
    Array.from({ length: n }, (_, i) => `User: List ${i} things as JSON.<|end_of_turn|>Assistant:`);
  const run = async (n: number, constrained: boolean) => {
    const params = {
      temperature: 1,
      seed: 5,
      maxTokens,
      // Unconstrained runs go on to max_tokens (the tiny model often ends at once otherwise).
      ignoreEos: !constrained,
      ...(constrained
        ? { responseFormat: { type: "json_schema" as const, json_schema: { name: "list", schema } } }
        : {}),
    };
    await llm.generate(prompts(n).slice(0, 1), { ...params, maxTokens: 4 }); // warm
    recordMaskTimings(constrained);
    const start = performance.now();
    const outs = await llm.generate(prompts(n), params);
    const seconds = (performance.now() - start) / 1000;
    const tokens = outs.reduce((s, o) => s + o.tokenIds.length, 0);
    const masks = [...maskTimings].sort((a, b) => a - b);
    recordMaskTimings(false);
    return {
      tokens,
      tokensPerSecond: tokens / seconds,
      maskMsP50: constrained ? quantile(masks, 0.5) : undefined,
      maskMsP99: constrained ? quantile(masks, 0.99) : undefined,
      masks: constrained ? masks.length : undefined,
      /** Share of the run's wall time spent computing masks (the engine waits for them before each step). */
      maskShare: constrained ? masks.reduce((a, b) => a + b, 0) / 1000 / seconds : undefined,
    };
  };
  const result = {
    backend: llm.engine.backend.name,
    loadavg: loadavg()[0],
    compileMsFirst: compileMs,
    compileMsWarm: compileWarmMs,
    batch1: { free: await run(1, false), constrained: await run(1, true) },
    [`batch${batch}`]: { free: await run(batch, false), constrained: await run(batch, true) },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await llm.dispose();
}
