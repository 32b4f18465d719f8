/**
 * Host time per engine step at N running sequences (issue 14 item 3): the engine drives a backend that returns
 * at once (FakeBackend: tokens are a hash of the context, its own time is excluded), N requests decode together,
 * each stream consumed as a server would (for await, text deltas dropped). The host time of a step is the gap
 * between the end of one backend.step() and the start of the next: scheduling, packing the StepBatch, updating
 * sequences, stop checks, detokenizing, delivering, and the event-loop turn. With a synchronous step loop this
 * is the time a GPU would sit idle between steps.
 *
 * With --step-ms N the fake step takes N ms (a timer, as a GPU step would): the host work the engine overlaps
 * with the step then leaves the gap, which is only the critical path. With 0 (default) the step returns at
 * once, so the gap is all the host work of a step, overlapped or not.
 *
 * --backend cuda|cpu --model DIR runs a real backend on a real model instead (the gap is then the time the
 * device waits for the host, plus the backend's own host work around its step); --model synthetic-13b (CUDA):
 * Llama-2-13B-shaped random AWQ weights made on the GPU, with the demo tokenizer. A first round of the same
 * requests warms the JIT up and is not counted (--warmup 0 counts from a cold start).
 *
 *   node dist/bench/engine-host-step.js [--seqs 256] [--tokens 128] [--prompt 64] [--step-ms 0]
 *     [--prefix-caching on|off]   (on, as awq serve: full blocks are hashed as they fill)
 *     [--warmup 1] [--backend fake|cuda|cpu] [--model DIR]
 *     [--overlap on|off]   (off: each step's outputs before the next schedule, the loop as it was first)
 */
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/backend.js";
import { createBackend } from "../src/backend/create.js";
import { DEMO_MODEL } from "../src/demo-model.js";
import { Engine } from "../src/engine/engine.js";
import { FakeBackend, fakeModel } from "../src/engine/fake-backend.test-helper.js";
import { openModel } from "../src/model/load.js";
import type { ModelSource } from "../src/model/types.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";

const { values } = parseArgs({
  options: {
    seqs: { type: "string", default: "256" },
    tokens: { type: "string", default: "128" },
    prompt: { type: "string", default: "64" },
    "step-ms": { type: "string", default: "0" },
    "prefix-caching": { type: "string", default: "on" },
    warmup: { type: "string", default: "1" },
    backend: { type: "string", default: "fake" },
    model: { type: "string" },
    overlap: { type: "string", default: "on" },
  },
});
const numSeqs = Number(values.seqs);
const maxTokens = Number(values.tokens);
const promptLen = Number(values.prompt);
const stepMs = Number(values["step-ms"]);

const warmupRounds = Number(values.warmup);
const backendName = values.backend;
if (backendName !== "fake" && backendName !== "cuda" && backendName !== "cpu") {
  throw new Error(`--backend must be fake, cuda or cpu, got ${backendName}`);
}

const synthetic = values.model === "synthetic-13b";
if (synthetic && backendName !== "cuda") throw new Error("--model synthetic-13b needs --backend cuda");
const modelDir = values.model === undefined || synthetic ? DEMO_MODEL : values.model;
const tokenizer = await Tokenizer.load(modelDir);
let backend: Backend;
let model: ModelSource;
if (backendName === "fake") {
  const fake = new FakeBackend(tokenizer.vocabSize);
  fake.recordBatches = false;
  fake.stepDelayMs = stepMs;
  backend = fake;
  model = fakeModel(4096);
} else if (synthetic) {
  const { CudaBackend } = await import("../src/backend/cuda/cuda-backend.js");
  const { llama2_13bAwqConfig } = await import("../src/backend/cuda/latency-bench.js");
  const { noTensorCheckpoint } = await import("../src/model/no-tensor-checkpoint.js");
  const config = llama2_13bAwqConfig();
  const cuda = await CudaBackend.create();
  // Backend.load builds the random weights on the GPU instead of reading a checkpoint.
  backend = {
    name: "cuda",
    load: (_source, opts) => cuda.loadSynthetic(config, opts),
    step: (batch) => cuda.step(batch),
    dispose: () => cuda.dispose(),
  };
  model = { dir: modelDir, config, checkpoint: noTensorCheckpoint(modelDir, "synthetic-13b") };
} else {
  backend = await createBackend(backendName);
  model = await openModel(modelDir);
}
// Wall time, and the process's CPU time (user + system, all threads: GC helpers too), at each step's start
// and end. On a loaded machine the wall gap also holds time the thread waited for a core; the CPU gap does not.
const steps: {
  start: number;
  end: number;
  cpuStart: number;
  cpuEnd: number;
  numSeqs: number;
  numTokens: number;
}[] = [];
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const step = backend.step.bind(backend);
backend.step = async (batch) => {
  const start = performance.now();
  const cpuStart = cpuMs();
  const result = await step(batch);
  const cpuEnd = cpuMs();
  steps.push({
    start,
    end: performance.now(),
    cpuStart,
    cpuEnd,
    numSeqs: batch.numSeqs,
    numTokens: batch.tokenIds.length,
  });
  return result;
};
const engine = await Engine.create({
  model,
  backend,
  tokenizer,
  maxModelLen: promptLen + maxTokens + 16,
  maxNumSeqs: numSeqs,
  maxNumBatchedTokens: Math.max(8192, numSeqs * promptLen),
  enablePrefixCaching: values["prefix-caching"] !== "off",
  overlapOutputs: values.overlap !== "off",
});

/** Requests that did not end with max_tokens tokens (an error, a lost token): the run then fails. */
const failures: string[] = [];
async function round(): Promise<number> {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: numSeqs }, async (_, i) => {
      const promptTokenIds = Array.from(
        { length: promptLen },
        (_, k) => 1000 + ((i * 131 + k * 17) % (tokenizer.vocabSize - 1000)),
      );
      let tokens = 0;
      for await (const out of engine.generate({
        promptTokenIds,
        params: { maxTokens, temperature: 0, ignoreEos: true },
      })) {
        // a server would write the delta here
        tokens += out.tokenIdsDelta.length;
        if (out.finished && (out.finishReason !== "length" || tokens !== maxTokens)) {
          failures.push(`request ${i}: ${out.finishReason} after ${tokens} tokens ${out.error ?? ""}`);
        }
      }
    }),
  );
  return performance.now() - started;
}
for (let r = 0; r < warmupRounds; r++) {
  await round();
  // The next round's prompts would be prefix-cache hits: forget them (and this round's steps).
  engine.blockManager.resetPrefixCache();
}
steps.length = 0;
const wallMs = await round();
await engine.shutdown();
await backend.dispose();

// Gaps before full decode steps (every sequence running, one token each). A chained step (called before the one
// it continues returned: the engine's asyncScheduling) starts on the backend when that one ends: no gap.
const gaps: number[] = [];
const cpuGaps: number[] = [];
let chained = 0;
for (let i = 1; i < steps.length; i++) {
  const s = steps[i]!;
  const before = steps[i - 1]!;
  if (s.start < before.end) chained++;
  if (s.numSeqs === numSeqs && s.numTokens === numSeqs) {
    gaps.push(Math.max(0, s.start - before.end));
    cpuGaps.push(Math.max(0, s.cpuStart - before.cpuEnd));
  }
}
gaps.sort((a, b) => a - b);
cpuGaps.sort((a, b) => a - b);
const pick = (list: number[], p: number) =>
  list[Math.min(list.length - 1, Math.floor((p / 100) * list.length))]!;
const at = (p: number) => pick(gaps, p);
const cpuAt = (p: number) => Number(pick(cpuGaps, p).toFixed(3));
// Backend time: each step from when it could start (its call, or the end of the step before) to its end.
const backendMs = steps.reduce((n, s, i) => n + s.end - Math.max(s.start, steps[i - 1]?.end ?? s.start), 0);
console.log(
  JSON.stringify({
    runningSeqs: numSeqs,
    backend: backendName,
    ...(backendName === "fake" ? { stepMs } : { model: values.model ?? modelDir }),
    warmupRounds,
    overlapOutputs: values.overlap !== "off",
    prefixCaching: values["prefix-caching"] !== "off",
    chainedSteps: chained,
    decodeSteps: gaps.length,
    hostMsPerStep: {
      mean: Number((gaps.reduce((a, b) => a + b, 0) / gaps.length).toFixed(3)),
      p50: Number(at(50).toFixed(3)),
      p90: Number(at(90).toFixed(3)),
      p99: Number(at(99).toFixed(3)),
    },
    hostCpuMsPerStep: { p50: cpuAt(50), p90: cpuAt(90), p99: cpuAt(99) },
    steps: steps.length,
    wallMs: Math.round(wallMs),
    backendMs: Math.round(backendMs),
    failures: failures.length,
  }),
);
if (failures.length > 0) {
  console.error(failures.slice(0, 5).join("\n"));
  process.exitCode = 1;
}
