/** buildSamplingArrays: defaults, flat ranges, and which penalty lists go to the backend. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildSamplingArrays, penaltyLists } from "./sampler-arrays.js";

test("defaults are off: greedy, no top-p/k/min-p, no penalties, no logprobs", () => {
  const s = buildSamplingArrays([{}]);
  assert.deepEqual(
    [s.temperature[0], s.topP[0], s.topK[0], s.minP[0], s.repetitionPenalty[0], s.presencePenalty[0]],
    [0, 1, 0, 0, 1, 0],
  );
  assert.deepEqual([s.frequencyPenalty[0], s.seed[0], s.outputIndex[0], s.logprobs[0]], [0, 0, 0, -1]);
  assert.deepEqual([...s.promptStarts, ...s.outputStarts, ...s.biasStarts], [0, 0, 0, 0, 0, 0]);
});

test("penalty lists: prompt ids only for the repetition penalty, output ids for any penalty", () => {
  assert.deepEqual(penaltyLists({}), { prompt: false, output: false });
  assert.deepEqual(penaltyLists({ repetitionPenalty: 1.1 }), { prompt: true, output: true });
  assert.deepEqual(penaltyLists({ presencePenalty: 0.5 }), { prompt: false, output: true });
  assert.deepEqual(penaltyLists({ frequencyPenalty: -0.5 }), { prompt: false, output: true });
  const lists = { promptTokens: [1, 2], outputTokens: [3] };
  const s = buildSamplingArrays([
    { ...lists },
    { ...lists, repetitionPenalty: 2 },
    { ...lists, frequencyPenalty: 1 },
  ]);
  assert.deepEqual([...s.promptStarts], [0, 0, 2, 2]);
  assert.deepEqual([...s.promptTokens], [1, 2]);
  assert.deepEqual([...s.outputStarts], [0, 0, 1, 2]);
  assert.deepEqual([...s.outputTokens], [3, 3]);
});

test("logit bias entries keep their order per sequence; seeds fold to 32 bits", () => {
  const s = buildSamplingArrays([
    { logitBias: new Map([[9, 1]]) },
    { seed: 2 ** 32 + 5 },
    {
      logitBias: new Map([
        [4, -2],
        [1, Number.NEGATIVE_INFINITY],
      ]),
    },
  ]);
  assert.deepEqual([...s.biasStarts], [0, 1, 1, 3]);
  assert.deepEqual([...s.biasTokens], [9, 4, 1]);
  assert.deepEqual([...s.biasValues], [1, -2, Number.NEGATIVE_INFINITY]);
  assert.equal(s.seed[1], 5);
});
