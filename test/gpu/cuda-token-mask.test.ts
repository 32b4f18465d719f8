/**
 * Token masks on the GPU (structured outputs, allowed_token_ids): the CUDA sampler with bitmask rows against the
 * reference sampler on the same raw logits (masks before and after the logprobs, with bias, temperature,
 * top-k/p and logprobs); masks written late into shared memory, through the one-call step and the forward/sample
 * split (prefill, graph capture and replay); then structured outputs end to end through the library on the CUDA
 * backend (through the split unless AWQ_CUDA_SPLIT_STEP=0 is in the environment), validated with ajv.
 * Skips without a GPU.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { Ajv } from "ajv";
import type { KvLayout } from "../../src/backend/backend.js";
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
import { sampleToken } from "../../src/backend/sampler.js";
import type { SequenceSampling } from "../../src/backend/sampler-arrays.js";
import { LLM } from "../../src/llm.js";
import { openModel } from "../../src/model/load.js";
import { StepBuilder } from "../conformance/step-builder.js";
import { modelDir, repoRoot } from "../server-harness.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();
const fixture = JSON.parse(readFileSync(`${repoRoot}test/fixtures/reference.json`, "utf8")) as {
  models: Record<string, { prompt_ids: number[] }[]>;
};

const SETTINGS: SequenceSampling[] = [
  { temperature: 0 },
  { temperature: 0, logprobs: 5 },
  { temperature: 0.8, logprobs: 3 },
  { temperature: 1, topK: 5, logprobs: 0 },
  { temperature: 1.2, topP: 0.8, minP: 0.02 },
];

/** Loads the demo model into `cuda` with the cache both suites use (64 sequences, 512 blocks of 16). */
async function loadDemo(cuda: CudaBackend): Promise<KvLayout> {
  const model = await openModel(modelDir);
  try {
    return await cuda.load(model, {
      maxModelLen: 256,
      maxNumSeqs: 64,
      maxNumBatchedTokens: 4096,
      blockSize: 16,
      numBlocks: 512,
    });
  } finally {
    await model.checkpoint.close();
  }
}

describe("CUDA sampler with token masks = reference sampler", { skip: unavailable ?? false }, () => {
  let cuda: CudaBackend;
  let layout: KvLayout;
  before(async () => {
    cuda = await CudaBackend.create();
    layout = await loadDemo(cuda);
  });
  after(async () => {
    await cuda?.dispose();
  });

  test("masked rows (before / after logprobs, sparse and dense, one all-banned) and unmasked rows", async () => {
    const builder = new StepBuilder(16, layout.numBlocks);
    const prompts = fixture.models["tiny-chat-awq"].map((r) => r.prompt_ids);
    const entries = [];
    for (const [k, setting] of SETTINGS.entries()) {
      for (let s = 0; s < 6; s++) {
        const prompt = prompts[(k + s) % prompts.length]!;
        const bias = new Map<number, number>([[29889, Number.NEGATIVE_INFINITY]]);
        entries.push({
          seq: builder.addSequence(prompt),
          sampling: { ...setting, seed: 77 * k + s, logitBias: bias },
        });
      }
    }
    const batch = builder.build(entries);
    batch.returnLogits = true;
    const vocab = 32002;
    const words = Math.ceil(vocab / 32);
    const n = batch.numSeqs;
    // Rows: s % 3 == 0 unmasked; 1: a sparse mask (12 ids), before logprobs; 2: a dense mask (every other id),
    // after logprobs. The last masked row allows only the banned token 29889 (the mask wins).
    const maskRow = new Int32Array(n).fill(-1);
    const maskBeforeLogprobs = new Uint8Array(n);
    const rows: Int32Array[] = [];
    for (let i = 0; i < n; i++) {
      const kind = i % 3;
      if (kind === 0) continue;
      const row = new Int32Array(words);
      if (i === n - 1) row[29889 >> 5] |= 1 << (29889 & 31);
      else if (kind === 1)
        for (let j = 0; j < 12; j++)
          row[((i * 997 + j * 2741) % vocab) >> 5] |= 1 << (((i * 997 + j * 2741) % vocab) & 31);
      else for (let t = i % 2; t < vocab; t += 2) row[t >> 5] |= 1 << (t & 31);
      maskRow[i] = rows.length;
      maskBeforeLogprobs[i] = kind === 1 ? 1 : 0;
      rows.push(row);
    }
    const tokenMask = new Int32Array(rows.length * words);
    for (const [j, r] of rows.entries()) tokenMask.set(r, j * words);
    Object.assign(batch.sampling, { maskWords: words, maskRow, tokenMask, maskBeforeLogprobs });
    const result = await cuda.step(batch);
    assert.ok(result.logits !== undefined);
    for (let i = 0; i < n; i++) {
      const want = sampleToken(result.logits.slice(i * vocab, (i + 1) * vocab), batch.sampling, i);
      const label = `sequence ${i} (mask row ${maskRow[i]}, before ${maskBeforeLogprobs[i]})`;
      assert.equal(result.tokenIds[i], want.tokenId, `${label}: token`);
      if (Number.isNaN(want.logprob)) assert.ok(Number.isNaN(result.logprobs[i]), `${label}: NaN logprob`);
      else if (want.logprob === Number.NEGATIVE_INFINITY)
        assert.equal(result.logprobs[i], want.logprob, label);
      else assert.ok(Math.abs(result.logprobs[i]! - want.logprob) < 1e-4, `${label}: logprob`);
      if (want.top !== null) {
        const got = result.topLogprobs[i];
        assert.ok(got !== null && got !== undefined, `${label}: top`);
        assert.deepEqual(Array.from(got.tokenIds), Array.from(want.top.tokenIds), `${label}: top ids`);
      }
    }
  });
});

// Both ways a backend takes masks still being written: the one-call step (awaits them first; the default) and
// the forward/sample split (the default; AWQ_CUDA_SPLIT_STEP=0 turns it off: the forward is launched before they are written).
for (const split of [false, true]) {
  describe(`CUDA step with masks written while the forward runs (${split ? "forward/sample split" : "one-call step"})`, {
    skip: unavailable ?? false,
  }, () => {
    let cuda: CudaBackend;
    let layout: KvLayout;
    before(async () => {
      const saved = process.env.AWQ_CUDA_SPLIT_STEP;
      process.env.AWQ_CUDA_SPLIT_STEP = split ? "1" : "0";
      try {
        cuda = await CudaBackend.create();
      } finally {
        if (saved === undefined) delete process.env.AWQ_CUDA_SPLIT_STEP;
        else process.env.AWQ_CUDA_SPLIT_STEP = saved;
      }
      assert.equal(cuda.splitStep, split);
      layout = await loadDemo(cuda);
    });
    after(async () => {
      await cuda?.dispose();
    });

    test("forward, then sample once the shared mask is written: a prefill and decode steps (graph capture and replay)", async () => {
      const vocab = 32002;
      const words = Math.ceil(vocab / 32);
      const builder = new StepBuilder(16, layout.numBlocks);
      const prompts = fixture.models["tiny-chat-awq"].map((r) => r.prompt_ids);
      const seqs = Array.from({ length: 12 }, (_, i) => builder.addSequence(prompts[i % prompts.length]!));
      const settings = (i: number): SequenceSampling => ({ ...SETTINGS[i % SETTINGS.length]!, seed: 31 + i });
      for (let step = 0; step < 4; step++) {
        const batch = builder.build(
          seqs.map((seq, i) => ({ seq, count: step === 0 ? undefined : 1, sampling: settings(i) })),
        );
        batch.returnLogits = true;
        const n = batch.numSeqs;
        // Every row but each fourth is masked: a window of 2,000 ids that moves with the step, before the
        // logprobs on odd rows. The rows are written only after the backend has launched the forward.
        const maskRow = new Int32Array(n).fill(-1);
        const maskBeforeLogprobs = new Uint8Array(n);
        let rows = 0;
        for (let i = 0; i < n; i++) {
          if (i % 4 === 3) continue;
          maskRow[i] = rows++;
          maskBeforeLogprobs[i] = i % 2;
        }
        const tokenMask = new Int32Array(new SharedArrayBuffer(rows * words * 4)); // (rows, maskWords)
        Object.assign(batch.sampling, { maskWords: words, maskRow, tokenMask, maskBeforeLogprobs });
        batch.masksReady = async () => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          for (let i = 0; i < n; i++) {
            const r = maskRow[i]!;
            if (r < 0) continue;
            const start = (i * 2741 + step * 4001) % (vocab - 2000);
            for (let t = start; t < start + 2000; t++) tokenMask[r * words + (t >> 5)]! |= 1 << (t & 31);
          }
        };
        const result = await cuda.step(batch);
        assert.ok(result.logits !== undefined);
        for (let i = 0; i < n; i++) {
          const want = sampleToken(result.logits.slice(i * vocab, (i + 1) * vocab), batch.sampling, i);
          const label = `step ${step}, sequence ${i} (mask row ${maskRow[i]})`;
          assert.equal(result.tokenIds[i], want.tokenId, `${label}: token`);
          if (Number.isNaN(want.logprob))
            assert.ok(Number.isNaN(result.logprobs[i]), `${label}: NaN logprob`);
          else if (want.logprob === Number.NEGATIVE_INFINITY)
            assert.equal(result.logprobs[i], want.logprob, label);
          else assert.ok(Math.abs(result.logprobs[i]! - want.logprob) < 1e-4, `${label}: logprob`);
          seqs[i]!.tokens.push(result.tokenIds[i]!);
        }
      }
    });

    test("a mask promise that rejects still finishes the step; the next step runs", async () => {
      const builder = new StepBuilder(16, layout.numBlocks);
      const prompts = fixture.models["tiny-chat-awq"].map((r) => r.prompt_ids);
      const seq = builder.addSequence(prompts[0]!);
      const words = Math.ceil(32002 / 32);
      const batch = builder.build([{ seq, sampling: { temperature: 0 } }]);
      Object.assign(batch.sampling, {
        maskWords: words,
        maskRow: Int32Array.of(0),
        tokenMask: new Int32Array(words).fill(-1),
        maskBeforeLogprobs: Uint8Array.of(1),
      });
      batch.masksReady = () => Promise.reject(new Error("grammar worker gone"));
      await assert.rejects(cuda.step(batch), /grammar worker gone/);
      const again = builder.build([{ seq: builder.addSequence(prompts[1]!), sampling: { temperature: 0 } }]);
      const result = await cuda.step(again);
      assert.ok(result.tokenIds[0]! >= 0);
    });
  });
}

describe("structured outputs on the CUDA backend", { skip: unavailable ?? false }, () => {
  test("json schema, regex and a required tool call through the library; seeded runs repeat", async () => {
    const llm = await LLM.load({ model: modelDir, backend: "cuda", maxModelLen: 512, numBlocks: 256 });
    try {
      const schema = {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 10 },
          tags: { type: "array", items: { enum: ["a", "b"] }, maxItems: 3 },
          n: { type: "integer", minimum: 0, maximum: 99 },
        },
        required: ["name", "tags", "n"],
        additionalProperties: false,
      };
      const prompts = Array.from({ length: 16 }, (_, i) => `User: JSON number ${i}<|end_of_turn|>Assistant:`);
      const outs = await llm.generate(prompts, {
        responseFormat: { type: "json_schema", json_schema: { name: "x", schema } },
        temperature: 1,
        seed: 4,
        maxTokens: 200,
      });
      const ajv = new Ajv();
      for (const o of outs) {
        assert.equal(o.finishReason, "stop", o.text);
        assert.ok(ajv.validate(schema, JSON.parse(o.text)), o.text);
      }
      const again = await llm.generate(prompts[0]!, {
        responseFormat: { type: "json_schema", json_schema: { name: "x", schema } },
        temperature: 1,
        seed: 4,
        maxTokens: 200,
      });
      assert.equal(again[0]!.text, outs[0]!.text);
      const [code] = await llm.generate("Code:", {
        structuredOutputs: { regex: "[A-Z]{3}[0-9]{2}" },
        seed: 1,
      });
      assert.match(code!.text, /^[A-Z]{3}[0-9]{2}$/);
      const call = await llm.chat([{ role: "user", content: "pick" }], {
        tools: [
          {
            name: "pick",
            parameters: { type: "object", properties: { k: { enum: [1, 2] } }, required: ["k"] },
          },
        ],
        toolChoice: "required",
        seed: 2,
      });
      assert.equal(call.toolCalls?.[0]?.name, "pick");
    } finally {
      await llm.dispose();
    }
  });
});
