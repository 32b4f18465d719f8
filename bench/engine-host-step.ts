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
 *   node dist/bench/engine-host-step.js [--seqs 256] [--tokens 128] [--prompt 64] [--step-ms 0]
 *     [--prefix-caching on|off]   (on, as awq serve: full blocks are hashed as they fill)
 */
import { parseArgs } from "node:util";
import { DEMO_MODEL } from "../src/demo-model.js";
import { Engine } from "../src/engine/engine.js";
import { FakeBackend, fakeModel } from "../src/engine/fake-backend.test-helper.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";

const { values } = parseArgs({
  options: {
    seqs: { type: "string", default: "256" },
    tokens: { type: "string", default: "128" },
    prompt: { type: "string", default: "64" },
    "step-ms": { type: "string", default: "0" },
    "prefix-caching": { type: "string", default: "on" },
  },
});
const numSeqs = Number(values.seqs);
const maxTokens = Number(values.tokens);
const promptLen = Number(values.prompt);
const stepMs = Number(values["step-ms"]);

const tokenizer = await Tokenizer.load(DEMO_MODEL);
const backend = new FakeBackend(tokenizer.vocabSize);
backend.recordBatches = false;
backend.stepDelayMs = stepMs;
const steps: { start: number; end: number; numSeqs: number; numTokens: number }[] = [];
const step = backend.step.bind(backend);
backend.step = async (batch) => {
  const start = performance.now();
  const result = await step(batch);
  steps.push({ start, end: performance.now(), numSeqs: batch.numSeqs, numTokens: batch.tokenIds.length });
  return result;
};
const engine = await Engine.create({
  model: fakeModel(4096),
  backend,
  tokenizer,
  maxModelLen: promptLen + maxTokens + 16,
  maxNumSeqs: numSeqs,
  maxNumBatchedTokens: Math.max(8192, numSeqs * promptLen),
  enablePrefixCaching: values["prefix-caching"] !== "off",
});

const started = performance.now();
await Promise.all(
  Array.from({ length: numSeqs }, async (_, i) => {
    const promptTokenIds = Array.from({ length: promptLen }, (_, k) => 1000 + ((i * 131 + k * 17) % 20000));
    for await (const _out of engine.generate({
      promptTokenIds,
      params: { maxTokens, temperature: 0, ignoreEos: true },
    })) {
      // a server would write the delta here
    }
  }),
);
const wallMs = performance.now() - started;
await engine.shutdown();

// Gaps before full decode steps (every sequence running, one token each).
const gaps: number[] = [];
for (let i = 1; i < steps.length; i++) {
  const s = steps[i]!;
  if (s.numSeqs === numSeqs && s.numTokens === numSeqs) gaps.push(s.start - steps[i - 1]!.end);
}
gaps.sort((a, b) => a - b);
const at = (p: number) => gaps[Math.min(gaps.length - 1, Math.floor((p / 100) * gaps.length))]!;
const backendMs = steps.reduce((n, s) => n + s.end - s.start, 0);
console.log(
  JSON.stringify({
    runningSeqs: numSeqs,
    stepMs,
    prefixCaching: values["prefix-caching"] !== "off",
    decodeSteps: gaps.length,
    hostMsPerStep: {
      mean: Number((gaps.reduce((a, b) => a + b, 0) / gaps.length).toFixed(3)),
      p50: Number(at(50).toFixed(3)),
      p90: Number(at(90).toFixed(3)),
      p99: Number(at(99).toFixed(3)),
    },
    steps: steps.length,
    wallMs: Math.round(wallMs),
    fakeBackendMs: Math.round(backendMs),
  }),
);
