/**
 * Structured-output cost: `node dist/bench/structured-bench.js [--backend cpu|cuda] [--batches 1,64]
 * [--tokens N] [--model demo,synthetic-7b,synthetic-13b]` (one or several models, one after the other).
 *
 * For each batch size B: B prompts run constrained by a JSON schema, then the same prompts unconstrained
 * (ignore_eos) with each sequence's max_tokens set to the length its constrained run had, so both runs
 * generate the same tokens per sequence and batch occupancy matches step for step. Each batch runs that pair twice:
 * the first (reported as `cold`) captures CUDA graphs, compiles grammar replicas and fills the prefix cache; the
 * second is the steady state the main figures come from. Printed per batch:
 * tokens/s of both and the slowdown; the mask fill time per constrained sequence and step on its grammar
 * worker (p50 / p99; the masks are filled while the backend runs the step); and the time the backend waited
 * for the masks when it was ready to sample (per step, p50 / p99: the part of mask work on the critical path).
 * Also the compile time of the schema (first, with the grammar workers' start; then a second schema).
 *
 * --model demo: models/tiny-chat-awq (its steps are tiny, so mask work weighs more than on a real model);
 * synthetic-7b / synthetic-13b (CUDA only): random AWQ weights of Llama-2-7B / 13B shape with the demo model's
 * tokenizer (the Llama-2 vocabulary, 32002 rows), for the cost on a real model's step times.
 * Prints one JSON object; docs/benchmarks.md records the numbers.
 */
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/backend.js";
import { CudaBackend } from "../src/backend/cuda/cuda-backend.js";
import { llama2_13bAwqConfig } from "../src/backend/cuda/latency-bench.js";
import { Engine } from "../src/engine/engine.js";
import type { SamplingParams } from "../src/engine/types.js";
import { LLM } from "../src/llm.js";
import { noTensorCheckpoint } from "../src/model/no-tensor-checkpoint.js";
import type { ModelConfig } from "../src/model/types.js";
import type { ConstraintSpec } from "../src/structured/constraint-spec.js";
import { maskTimings, maskWaits, recordMaskTimings } from "../src/structured/engine-constraints.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";
import { benchSpec, schema } from "./bench-schema.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const demoDir = `${repoRoot}/models/tiny-chat-awq`;
const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "cpu" },
    tokens: { type: "string", default: "128" },
    batches: { type: "string" },
    model: { type: "string", default: "demo" },
  },
});
const backendName = values.backend === "cuda" ? "cuda" : "cpu";
const models = values.model!.split(",");
const maxTokens = Number(values.tokens);
const batches = (values.batches ?? (backendName === "cuda" ? "1,64" : "1,16")).split(",").map(Number);
for (const model of models) {
  if (!["demo", "synthetic-7b", "synthetic-13b"].includes(model))
    throw new Error(`--model ${model}: use demo, synthetic-7b or synthetic-13b (comma-separated)`);
  if (model !== "demo" && backendName !== "cuda")
    throw new Error(`--model ${model}: synthetic models need --backend cuda`);
}

const spec: ConstraintSpec = benchSpec;

/** Llama-2-7B shape (AWQ 4-bit g128), with the demo tokenizer's 32002 rows. */
function llama2_7bAwqConfig(): ModelConfig {
  return {
    ...llama2_13bAwqConfig(32),
    hiddenSize: 4096,
    intermediateSize: 11008,
    numHeads: 32,
    numKvHeads: 32,
    eosTokenIds: [32000],
  };
}

/**
 * Per backend step of the synthetic models: the wall time of Backend.step (launch to results) and the GPU time
 * of the step (input upload to result download; with masks, includes any wait for them between the forward and
 * the sampler).
 */
const stepTimes: { wallMs: number; gpuMs: number }[] = [];

/** p50 / p99 of the step times recorded in [from, to). */
function stepSummary(from: number, to: number) {
  const steps = stepTimes.slice(from, to);
  if (steps.length === 0) return null;
  const wall = steps.map((t) => t.wallMs).sort((a, b) => a - b);
  const gpu = steps.map((t) => t.gpuMs).sort((a, b) => a - b);
  return { wallMsP50: quantile(wall, 0.5), wallMsP99: quantile(wall, 0.99), gpuMsP50: quantile(gpu, 0.5) };
}

/** What the bench drives: an Engine, or whatever LLM.load built around engines. */
type BenchEngine = Pick<Engine, "generate" | "compileStructuredOutput">;

async function openEngine(which: string): Promise<{
  engine: BenchEngine;
  tokenizer: Tokenizer;
  close: () => Promise<void>;
  model: string;
}> {
  if (which === "demo") {
    const llm = await LLM.load({ model: demoDir, backend: backendName, maxModelLen: 512 });
    return {
      engine: llm.engine,
      tokenizer: llm.tokenizer,
      close: () => llm.dispose(),
      model: "tiny-chat-awq",
    };
  }
  const config =
    which === "synthetic-7b" ? llama2_7bAwqConfig() : { ...llama2_13bAwqConfig(), eosTokenIds: [32000] };
  const tokenizer = await Tokenizer.load(demoDir);
  const cuda = await CudaBackend.create();
  // The engine loads its model through Backend.load: here that builds random weights on the GPU.
  const backend: Backend = {
    name: "cuda",
    load: (_source, opts) => cuda.loadSynthetic(config, opts),
    step: async (batch) => {
      const t0 = performance.now();
      const result = await cuda.step(batch);
      stepTimes.push({ wallMs: performance.now() - t0, gpuMs: cuda.lastStepGpuMs });
      return result;
    },
    dispose: () => cuda.dispose(),
  };
  const engine = await Engine.create({
    model: { dir: demoDir, config, checkpoint: noTensorCheckpoint(demoDir, which) },
    backend,
    tokenizer,
    maxModelLen: 1024,
    gpuMemoryUtilization: 0.85,
  });
  return {
    engine,
    tokenizer,
    close: async () => {
      await engine.shutdown();
      await backend.dispose();
    },
    model: `${which} (random AWQ weights, ${config.numLayers} layers, hidden ${config.hiddenSize})`,
  };
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Runs one request to its end; returns its generated token count. */
async function runOne(engine: BenchEngine, prompt: number[], params: SamplingParams): Promise<number> {
  let tokens = 0;
  for await (const out of engine.generate({ promptTokenIds: prompt, params })) {
    tokens += out.tokenIdsDelta.length;
    if (out.finishReason === "error") throw new Error(out.error ?? "request failed");
  }
  return tokens;
}

async function benchModel(which: string): Promise<unknown> {
  const { engine, tokenizer, close, model } = await openEngine(which);
  try {
    const prompts = (n: number) =>
      Array.from({ length: n }, (_, i) =>
        tokenizer.encode(`User: List ${i} things as JSON.<|end_of_turn|>Assistant:`),
      );
    let t = performance.now();
    await engine.compileStructuredOutput(spec);
    const compileMsFirst = performance.now() - t;
    t = performance.now();
    await engine.compileStructuredOutput({ type: "json_schema", schema: { ...schema, title: "other" } });
    const compileMsSecond = performance.now() - t;

    /** One constrained run of the prompts, then the same tokens unconstrained. */
    const measure = async (ps: number[][]) => {
      const base = { temperature: 1, seed: 5 };
      recordMaskTimings(true);
      const constrainedSteps = stepTimes.length;
      let start = performance.now();
      const lengths = await Promise.all(
        ps.map((p, i) => runOne(engine, p, { ...base, seed: 5 + i, maxTokens, structuredOutput: spec })),
      );
      const constrainedSeconds = (performance.now() - start) / 1000;
      const fills = [...maskTimings].sort((a, b) => a - b);
      const waits = [...maskWaits].sort((a, b) => a - b);
      recordMaskTimings(false);
      const freeSteps = stepTimes.length;
      start = performance.now();
      const free = await Promise.all(
        ps.map((p, i) =>
          runOne(engine, p, { ...base, seed: 5 + i, maxTokens: lengths[i]!, ignoreEos: true }),
        ),
      );
      const freeSeconds = (performance.now() - start) / 1000;
      const tokens = lengths.reduce((a, b) => a + b, 0);
      const freeTokens = free.reduce((a, b) => a + b, 0);
      return {
        batch: ps.length,
        tokens,
        tokensPerSecondConstrained: tokens / constrainedSeconds,
        tokensPerSecondFree: freeTokens / freeSeconds,
        /** Constrained vs unconstrained wall time for the same tokens, in percent. */
        slowdownPercent: ((constrainedSeconds / freeSeconds) * (freeTokens / tokens) - 1) * 100,
        maskFillMsP50: quantile(fills, 0.5),
        maskFillMsP99: quantile(fills, 0.99),
        maskFills: fills.length,
        /** Per step: from the backend's launch of the forward to every row written (overlaps the forward). */
        maskWaitMsP50: quantile(waits, 0.5),
        maskWaitMsP99: quantile(waits, 0.99),
        maskWaitMsTotal: waits.reduce((a, b) => a + b, 0),
        steps: waits.length,
        /** Synthetic models: Backend.step wall and GPU time per step, constrained and free runs. */
        stepTimesConstrained: stepSummary(constrainedSteps, freeSteps),
        stepTimesFree: stepSummary(freeSteps, stepTimes.length),
      };
    };
    /**
     * A batch twice: the first (cold) pair captures the CUDA graphs of its shapes, compiles the grammar's
     * replicas on more workers and fills the prefix cache; the second (warm, the steady state) is the result.
     * Both pairs' constrained runs come first, so the cold free run also found graphs and cached prompts.
     */
    const runBatch = async (n: number) => {
      const ps = prompts(n);
      await runOne(engine, ps[0]!, { temperature: 1, seed: 5, maxTokens: 4, structuredOutput: spec });
      const cold = await measure(ps);
      const warm = await measure(ps);
      return {
        ...warm,
        cold: {
          tokensPerSecondConstrained: cold.tokensPerSecondConstrained,
          tokensPerSecondFree: cold.tokensPerSecondFree,
          slowdownPercent: cold.slowdownPercent,
          maskWaitMsP99: cold.maskWaitMsP99,
        },
      };
    };
    const runs = [];
    for (const n of batches) runs.push(await runBatch(n));
    return { model, compileMsFirst, compileMsSecond, runs };
  } finally {
    await close();
  }
}

const results = [];
for (const m of models) results.push(await benchModel(m));
const out = { backend: backendName, loadavg: loadavg()[0], maxTokens, models: results };
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
