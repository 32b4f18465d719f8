/** The one step builder (buildStepBatch), its engine adapter, and sampledLogprob. */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { StepResult } from "../backend/backend.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { buildStepBatch, sampledLogprob, scheduledStepSequence } from "./model-runner.js";
import type { Sequence } from "./sequence.js";
import { testSequence } from "./sequence.test-helper.js";
import type { SamplingParams } from "./types.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let tokenizer: Tokenizer;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
});

function sequence(prompt: number[], params: SamplingParams = {}): Sequence {
  return testSequence(tokenizer, prompt, params);
}

test("a prefill chunk and a decode: tokens, positions, slots through the block table, -1 padded tables", () => {
  const batch = buildStepBatch(
    [
      // 20 known tokens, 4 in KV, 6 run now: positions 4..9 in block 7 (table [7, 3]).
      {
        tokenIds: Array.from({ length: 20 }, (_, i) => 100 + i),
        numComputedTokens: 4,
        numNewTokens: 6,
        blockTable: [7, 3],
        sample: false,
        sampling: {},
      },
      // A decode at position 17 (second block, offset 1).
      {
        tokenIds: Array.from({ length: 18 }, (_, i) => 200 + i),
        numComputedTokens: 17,
        numNewTokens: 1,
        blockTable: [5, 9],
        sample: true,
        sampling: { temperature: 0.7, seed: 3, outputIndex: 2 },
      },
      // A one-block sequence: its table row is padded with -1.
      {
        tokenIds: [1, 2],
        numComputedTokens: 0,
        numNewTokens: 2,
        blockTable: [4],
        sample: true,
        sampling: {},
      },
    ],
    16,
  );
  assert.equal(batch.numSeqs, 3);
  assert.deepEqual([...batch.tokenIds], [104, 105, 106, 107, 108, 109, 217, 1, 2]);
  assert.deepEqual([...batch.positions], [4, 5, 6, 7, 8, 9, 17, 0, 1]);
  assert.deepEqual([...batch.slotMapping], [116, 117, 118, 119, 120, 121, 9 * 16 + 1, 64, 65]);
  assert.deepEqual([...batch.queryStarts], [0, 6, 7, 9]);
  assert.deepEqual([...batch.contextLens], [10, 18, 2]);
  assert.equal(batch.maxBlocksPerSeq, 2);
  assert.deepEqual([...batch.blockTables], [7, 3, 5, 9, 4, -1]);
  assert.deepEqual([...batch.sample], [0, 1, 1]);
  assert.equal(batch.tokenLogprobs, undefined);
  assert.deepEqual([...batch.sampling.temperature], [0, Math.fround(0.7), 0]);
  assert.deepEqual([...batch.sampling.seed], [0, 3, 0]);
  assert.deepEqual([...batch.sampling.outputIndex], [0, 2, 0]);
});

test("token logprobs are asked for when any sequence wants them", () => {
  const one = { tokenIds: [1, 2, 3], numComputedTokens: 0, numNewTokens: 3, blockTable: [0], sample: true };
  assert.equal(buildStepBatch([{ ...one, sampling: {} }], 16).tokenLogprobs, undefined);
  const both = buildStepBatch(
    [
      { ...one, sampling: {} },
      { ...one, blockTable: [1], sampling: {}, tokenLogprobs: true },
    ],
    16,
  );
  assert.equal(both.tokenLogprobs, true);
});

test("a step past the known tokens or the block table is refused, naming the numbers", () => {
  const base = { tokenIds: [1, 2, 3], numComputedTokens: 1, blockTable: [0], sample: true, sampling: {} };
  assert.throws(() => buildStepBatch([{ ...base, numNewTokens: 3 }], 16), /sequence of 3 tokens .* run to 4/);
  assert.throws(() => buildStepBatch([{ ...base, numNewTokens: 2 }], 2), /1 KV blocks of 2 cannot hold 3/);
});

test("an engine sequence: penalty lists only where a penalty reads them, bans after the logit bias", () => {
  const plain = sequence([5, 6, 7], { temperature: 0.5, seed: 9, logitBias: { 11: 2 } });
  const repetition = sequence([5, 6, 7], { repetitionPenalty: 1.3 });
  const presence = sequence([5, 6, 7], { presencePenalty: 0.5 });
  // min_tokens bans the stop ids (eos 2, stop id 11) until it is reached: the ban wins over logit_bias 11.
  const banned = sequence([5, 6, 7], { minTokens: 2, stopTokenIds: [11], logitBias: { 11: 2, 12: -1 } });
  for (const s of [plain, repetition, presence, banned]) {
    s.blockTable = [0];
    s.appendToken(8, null);
  }
  const batch = buildStepBatch(
    [plain, repetition, presence, banned].map((seq) =>
      scheduledStepSequence({ seq, numNewTokens: 4, sample: true }),
    ),
    16,
  );
  const s = batch.sampling;
  assert.deepEqual([...s.promptStarts], [0, 0, 3, 3, 3]);
  assert.deepEqual([...s.promptTokens], [5, 6, 7]);
  assert.deepEqual([...s.outputStarts], [0, 0, 1, 2, 2]);
  assert.deepEqual([...s.outputTokens], [8, 8]);
  assert.equal(s.seed[0], 9);
  assert.deepEqual([...s.outputIndex], [1, 1, 1, 1]);
  assert.deepEqual([...s.biasStarts], [0, 1, 1, 1, 4]);
  assert.deepEqual([...s.biasTokens], [11, 12, 2, 11]);
  assert.deepEqual([...s.biasValues], [2, -1, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  assert.equal(s.repetitionPenalty[1], Math.fround(1.3));
  assert.equal(batch.tokenLogprobs, undefined);
});

test("an engine sequence that wants prompt logprobs asks for token logprobs until its prompt is computed", () => {
  const seq = sequence([5, 6, 7, 8], { promptLogprobs: 0 });
  seq.blockTable = [0];
  const prefill = buildStepBatch([scheduledStepSequence({ seq, numNewTokens: 4, sample: true })], 16);
  assert.equal(prefill.tokenLogprobs, true);
  seq.numComputedTokens = 4;
  seq.appendToken(9, null);
  const decode = buildStepBatch([scheduledStepSequence({ seq, numNewTokens: 1, sample: true })], 16);
  assert.equal(decode.tokenLogprobs, undefined);
});

test("prompt_logprobs N: the batch asks for the most alternatives any prompt still being computed wants", () => {
  const three = sequence([5, 6, 7, 8], { promptLogprobs: 3 });
  const five = sequence([5, 6, 7], { promptLogprobs: 5 });
  const own = sequence([5, 6], { promptLogprobs: 0 });
  for (const s of [three, five, own]) s.blockTable = [0];
  const step = (seqs: Sequence[]) =>
    buildStepBatch(
      seqs.map((seq) => scheduledStepSequence({ seq, numNewTokens: seq.numTokens, sample: true })),
      16,
    );
  assert.equal(step([three, five, own]).tokenTopLogprobs, 5);
  assert.equal(step([three, own]).tokenTopLogprobs, 3);
  const ownOnly = step([own]);
  assert.equal(ownOnly.tokenLogprobs, true);
  assert.equal(ownOnly.tokenTopLogprobs, undefined);
});

test("sampledLogprob: null when not asked, else the chosen token with its alternatives", () => {
  const result: StepResult = {
    tokenIds: Int32Array.of(4, 7),
    logprobs: Float32Array.of(-0.5, -1.5),
    topLogprobs: [null, { tokenIds: Int32Array.of(7, 3), logprobs: Float32Array.of(-1.5, -2) }],
  };
  assert.equal(sampledLogprob(result, 0, 4, null), null);
  assert.deepEqual(sampledLogprob(result, 0, 4, 0), { tokenId: 4, logprob: -0.5, top: [] });
  assert.deepEqual(sampledLogprob(result, 1, 7, 2), {
    tokenId: 7,
    logprob: -1.5,
    top: [
      { tokenId: 7, logprob: -1.5 },
      { tokenId: 3, logprob: -2 },
    ],
  });
});
