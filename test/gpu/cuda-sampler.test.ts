/**
 * The GPU sampler against the reference sampler (src/backend/sampler.ts) on the same raw logits: for every
 * sampling setting (greedy, temperature, top-k, top-p, min-p, penalties, logit bias, logprobs) and several seeds,
 * the CUDA backend's token and logprobs must be what the reference computes from the logits the GPU returned.
 * Also: token logprobs (prompt logprobs / perplexity) against the CPU backend.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import type { Backend, KvLayout } from "../../src/backend/backend.js";
import { CpuBackend } from "../../src/backend/cpu/cpu-backend.js";
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
import { sampleToken } from "../../src/backend/sampler.js";
import type { SequenceSampling } from "../../src/backend/sampler-arrays.js";
import { openModel } from "../../src/model/load.js";
import { StepBuilder } from "../conformance/step-builder.js";
import { modelDir, repoRoot } from "../server-harness.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();
const fixture = JSON.parse(readFileSync(`${repoRoot}test/fixtures/reference.json`, "utf8")) as {
  models: Record<string, { prompt_ids: number[] }[]>;
};

async function load(backend: Backend): Promise<KvLayout> {
  const model = await openModel(modelDir);
  try {
    return await backend.load(model, {
      maxModelLen: 256,
      maxNumSeqs: 128,
      maxNumBatchedTokens: 4096,
      blockSize: 16,
      numBlocks: 1024,
    });
  } finally {
    await model.checkpoint.close();
  }
}

const SETTINGS: SequenceSampling[] = [
  { temperature: 0 },
  { temperature: 0, logprobs: 5 },
  { temperature: 0.7 },
  { temperature: 1, topK: 5, logprobs: 0 },
  { temperature: 1.3, topP: 0.8 },
  { temperature: 1, minP: 0.05 },
  { temperature: 0.9, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.3 },
  { temperature: 0, repetitionPenalty: 1.5 },
  { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.02, logprobs: 3 },
  { temperature: 1, topK: 1 },
];

describe("CUDA sampler = reference sampler on the same logits", { skip: unavailable ?? false }, () => {
  let cuda: CudaBackend;
  let layout: KvLayout;
  before(async () => {
    cuda = await CudaBackend.create();
    layout = await load(cuda);
  });
  after(async () => {
    await cuda?.dispose();
  });

  test("every setting, 6 seeds each, with output tokens for the penalties", async () => {
    const builder = new StepBuilder(16, layout.numBlocks);
    const prompts = fixture.models["tiny-chat-awq"].map((r) => r.prompt_ids);
    const entries = [];
    for (const [k, setting] of SETTINGS.entries()) {
      for (let s = 0; s < 6; s++) {
        const prompt = prompts[(k + s) % prompts.length];
        // A few "generated" tokens so the output-token penalties have something to count (repeats included).
        const seq = builder.addSequence(prompt);
        seq.tokens.push(prompt[1], prompt[2], prompt[1], 29889);
        const bias = new Map<number, number>([
          [prompt[prompt.length - 1], 3.5],
          [29889, Number.NEGATIVE_INFINITY],
        ]);
        entries.push({
          seq,
          sampling: { ...setting, seed: 1000 * k + s, logitBias: s % 2 === 0 ? bias : undefined },
        });
      }
    }
    const batch = builder.build(entries);
    batch.returnLogits = true;
    const result = await cuda.step(batch);
    assert.ok(result.logits !== undefined);
    const vocab = result.logits.length / batch.numSeqs;
    for (let i = 0; i < batch.numSeqs; i++) {
      const row = result.logits.slice(i * vocab, (i + 1) * vocab);
      const want = sampleToken(row, batch.sampling, i);
      const label = `sequence ${i} (${JSON.stringify(SETTINGS[Math.floor(i / 6)])}, seed ${batch.sampling.seed[i]})`;
      assert.equal(result.tokenIds[i], want.tokenId, `${label}: token`);
      if (Number.isNaN(want.logprob))
        assert.ok(Number.isNaN(result.logprobs[i]), `${label}: logprob should be NaN`);
      else assert.ok(Math.abs(result.logprobs[i] - want.logprob) < 1e-4, `${label}: logprob`);
      if (want.top === null) {
        assert.equal(result.topLogprobs[i], null, `${label}: no top logprobs`);
      } else {
        const got = result.topLogprobs[i];
        assert.ok(got !== null, `${label}: top logprobs`);
        assert.deepEqual(Array.from(got.tokenIds), Array.from(want.top.tokenIds), `${label}: top ids`);
        for (const [j, v] of got.logprobs.entries()) {
          assert.ok(Math.abs(v - want.top.logprobs[j]) < 1e-4, `${label}: top ${j}`);
        }
      }
    }
  });

  test("token logprobs (prompt logprobs) agree with the CPU backend", async () => {
    const cpu = new CpuBackend();
    const cpuLayout = await load(cpu);
    try {
      const prompts = fixture.models["tiny-chat-awq"].map((r) => r.prompt_ids);
      const run = async (backend: Backend, numBlocks: number) => {
        const builder = new StepBuilder(16, numBlocks);
        const batch = builder.build(
          prompts.map((p) => ({ seq: builder.addSequence(p) })),
          { tokenLogprobs: true },
        );
        const r = await backend.step(batch);
        assert.ok(r.tokenLogprobs !== undefined);
        return { r, batch };
      };
      const got = await run(cuda, layout.numBlocks);
      const want = await run(cpu, cpuLayout.numBlocks);
      const a = got.r.tokenLogprobs!;
      const b = want.r.tokenLogprobs!;
      assert.equal(a.length, b.length);
      for (let t = 0; t < a.length; t++) {
        if (Number.isNaN(b[t]))
          assert.ok(Number.isNaN(a[t]), `token ${t}: NaN expected (last of its sequence)`);
        else assert.ok(Math.abs(a[t] - b[t]) < 0.05, `token ${t}: ${a[t]} vs CPU ${b[t]}`);
      }
      assert.deepEqual(Array.from(got.r.tokenIds), Array.from(want.r.tokenIds), "greedy tokens");
    } finally {
      await cpu.dispose();
    }
  });
});
