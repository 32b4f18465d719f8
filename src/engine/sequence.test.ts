/** Sequence: token bookkeeping, stop checks, text deltas, prompt logprobs, seeds. */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { type Sequence, seedToUint32 } from "./sequence.js";
import { testSequence } from "./sequence.test-helper.js";
import type { SamplingParams } from "./types.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let tokenizer: Tokenizer;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
});

function sequence(params: SamplingParams = {}, prompt = tokenizer.encode("Hello")): Sequence {
  return testSequence(tokenizer, prompt, params, { maxModelLen: 64 });
}

test("appendToken: ids, counts and the text delta since the last takeOutput", () => {
  const seq = sequence();
  const ids = tokenizer.encode("the world", { addBos: false }).slice(-2);
  for (const id of ids) seq.appendToken(id, null);
  assert.equal(seq.numOutputTokens, ids.length);
  assert.equal(seq.numTokens, seq.numPromptTokens + ids.length);
  const out = seq.takeOutput();
  assert.deepEqual(out.tokenIdsDelta, ids);
  assert.equal(out.textDelta, seq.text);
  assert.equal(out.finished, false);
  assert.deepEqual(seq.takeOutput().tokenIdsDelta, []);
});

test("eos finishes with stop (stop_reason null, as vLLM) and its text stays out; max tokens finishes with length", () => {
  const eos = sequence();
  eos.appendToken(2, null);
  const last = eos.takeOutput();
  assert.deepEqual([last.finished, last.finishReason, last.stopReason], [true, "stop", null]);
  assert.equal(last.textDelta, "");
  const short = sequence({ maxTokens: 1 });
  short.appendToken(tokenizer.encode("a").at(-1)!, null);
  assert.equal(short.takeOutput().finishReason, "length");
});

test("a stop string ends the sequence and is cut from the text", () => {
  const seq = sequence({ stop: ["lo"] });
  for (const id of tokenizer.encode("hello there").slice(1)) {
    if (seq.isFinished) break;
    seq.appendToken(id, null);
    seq.settleText();
  }
  assert.equal(seq.isFinished, true);
  assert.equal(seq.finishReason, "stop");
  assert.equal(seq.stopReason, "lo");
  assert.equal(seq.text.includes("lo"), false);
});

test("finish(error) carries the message; prompt logprobs are sent once", () => {
  const seq = sequence({ promptLogprobs: 0 });
  assert.equal(seq.missesPromptLogprobAt(1), seq.numPromptTokens > 1);
  seq.setPromptLogprob(1, { tokenId: seq.tokenIds[1]!, logprob: -1, top: [] });
  assert.equal(seq.missesPromptLogprobAt(1), false);
  seq.finish("error", "boom");
  const out = seq.takeOutput();
  assert.deepEqual([out.finishReason, out.error], ["error", "boom"]);
  assert.equal(out.promptLogprobs?.[1]?.logprob, -1);
  assert.equal(seq.takeOutput().promptLogprobs, undefined);
});

test("seeds: a request's seed folds to 32 bits the same way every time", () => {
  assert.equal(sequence({ seed: 7 }).seed, seedToUint32(7));
  assert.equal(seedToUint32(7), 7);
  assert.equal(seedToUint32(2 ** 32 + 7), (1 ^ 7) >>> 0);
  const a = sequence().seed;
  assert.ok(Number.isInteger(a) && a >= 0 && a < 2 ** 32);
});

test("settleText: tokens after the one that completes a stop string are dropped; a stop string found at the length-finishing token wins", () => {
  const ids = tokenizer.encode("hello there friend", { addBos: false });
  const stopAt = ids.findIndex((_, k) => tokenizer.decode(ids.slice(0, k + 1)).includes("there"));
  // Tokens appended past the stop string before the text side looked (the engine runs one step ahead).
  const late = sequence({ stop: ["there"] });
  for (const id of ids) late.appendToken(id, { tokenId: id, logprob: -1, top: [] });
  assert.equal(late.isFinished, false, "the token side does not look at text");
  const out = late.takeOutput();
  assert.deepEqual([out.finished, out.finishReason, out.stopReason], [true, "stop", "there"]);
  assert.deepEqual(out.tokenIdsDelta, ids.slice(0, stopAt + 1));
  assert.equal(out.logprobsDelta.length, stopAt + 1);
  assert.equal(out.completionTokens, stopAt + 1);
  assert.equal(late.numTokens, late.numPromptTokens + stopAt + 1);
  assert.equal(out.textDelta.includes("there"), false);
  // max_tokens reached at the very token that completes the stop string: the stop string is the reason.
  const both = sequence({ stop: ["there"], maxTokens: stopAt + 1 });
  for (const id of ids.slice(0, stopAt + 1)) both.appendToken(id, null);
  assert.equal(both.finishReason, "length", "the token side alone says length");
  both.settleText();
  assert.deepEqual([both.finishReason, both.stopReason], ["stop", "there"]);
  // An abort keeps its reason even when the text it flushes holds a stop string.
  const aborted = sequence({ stop: ["there"] });
  for (const id of ids) aborted.appendToken(id, null);
  aborted.finish("abort");
  assert.equal(aborted.takeOutput().finishReason, "abort");
});
