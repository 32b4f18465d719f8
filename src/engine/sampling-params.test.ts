import assert from "node:assert/strict";
import { test } from "node:test";
import { choiceParams, InvalidParamError, resolveSamplingParams } from "./sampling-params.js";
import type { SamplingParams } from "./types.js";

test("defaults follow vLLM", () => {
  const p = resolveSamplingParams({});
  assert.equal(p.n, 1);
  assert.equal(p.temperature, 1);
  assert.equal(p.topP, 1);
  assert.equal(p.topK, 0);
  assert.equal(p.minP, 0);
  assert.equal(p.repetitionPenalty, 1);
  assert.equal(p.maxTokens, null);
  assert.equal(p.minTokens, 0);
  assert.equal(p.seed, null);
  assert.equal(p.logprobs, null);
  assert.equal(p.skipSpecialTokens, true);
  assert.equal(p.ignoreEos, false);
  assert.deepEqual(p.stop, []);
});

test("greedy turns the truncation parameters off", () => {
  const p = resolveSamplingParams({ temperature: 0, topP: 0.5, topK: 3, minP: 0.2 });
  assert.deepEqual([p.temperature, p.topP, p.topK, p.minP], [0, 1, 0, 0]);
  assert.equal(resolveSamplingParams({ topK: -1 }).topK, 0);
});

test("logit_bias is clamped to [-100, 100] and keyed by token id", () => {
  const p = resolveSamplingParams({ logitBias: { 5: 500, 7: -3 } }, { vocabSize: 10 });
  assert.deepEqual(
    [...p.logitBias],
    [
      [5, 100],
      [7, -3],
    ],
  );
});

const invalid: [SamplingParams, string][] = [
  [{ n: 0 }, "n"],
  [{ n: 1.5 }, "n"],
  [{ temperature: -1 }, "temperature"],
  [{ temperature: Number.NaN }, "temperature"],
  [{ topP: 0 }, "top_p"],
  [{ topP: 2 }, "top_p"],
  [{ topK: -2 }, "top_k"],
  [{ minP: 1.5 }, "min_p"],
  [{ repetitionPenalty: 0 }, "repetition_penalty"],
  [{ presencePenalty: 3 }, "presence_penalty"],
  [{ frequencyPenalty: -2.5 }, "frequency_penalty"],
  [{ maxTokens: 0 }, "max_tokens"],
  [{ maxTokens: -5 }, "max_tokens"],
  [{ minTokens: -1 }, "min_tokens"],
  [{ minTokens: 10, maxTokens: 5 }, "min_tokens"],
  [{ logprobs: 21 }, "logprobs"],
  [{ promptLogprobs: -1 }, "prompt_logprobs"],
  [{ stop: [""] }, "stop"],
  [{ stop: [3 as unknown as string] }, "stop"],
  [{ stopTokenIds: [-1] }, "stop_token_ids"],
  [{ stopTokenIds: [99] }, "stop_token_ids"],
  [{ logitBias: { 99: 1 } }, "logit_bias"],
  [{ logitBias: { 1: "x" as unknown as number } }, "logit_bias"],
  [{ seed: 1.5 }, "seed"],
  [{ temperature: "hot" as unknown as number }, "temperature"],
  [{ ignoreEos: 1 as unknown as boolean }, "ignore_eos"],
];

for (const [params, field] of invalid) {
  test(`rejects ${JSON.stringify(params)} naming ${field}`, () => {
    assert.throws(
      () => resolveSamplingParams(params, { vocabSize: 50 }),
      (err: unknown) =>
        err instanceof InvalidParamError && err.param === field && err.message.includes(field),
    );
  });
}

test("choiceParams: one sequence per choice; a seeded request's choices get the server's derived seeds", () => {
  assert.deepEqual(choiceParams({ n: 3, temperature: 0.7 }, 2), { n: 1, temperature: 0.7 });
  assert.deepEqual(choiceParams({ n: 3, seed: 42 }, 0), { n: 1, seed: 42 });
  assert.deepEqual(choiceParams({ n: 3, seed: 42 }, 1), { n: 1, seed: 42 + 0x9e3779b1 });
  assert.equal(choiceParams({ seed: 2 ** 53 - 1 }, 1).seed, (2 ** 53 - 1 + 0x9e3779b1) % 2 ** 53);
  assert.throws(() => choiceParams({}, -1), /choice index must be an integer >= 0, got -1/);
});
