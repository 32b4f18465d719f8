import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveSamplingParams } from "./sampling-params.js";
import { StopChecker, StopStringMatcher } from "./stop-checker.js";

function checker(params: Parameters<typeof resolveSamplingParams>[0], promptLen = 4) {
  return new StopChecker({
    params: resolveSamplingParams(params),
    eosTokenIds: [2],
    maxModelLen: 20,
    promptLen,
  });
}

test("eos stops unless ignore_eos; stop_token_ids report the id", () => {
  assert.deepEqual(checker({}).checkToken(2, 1), { finishReason: "stop", stopReason: null });
  assert.equal(checker({ ignoreEos: true }).checkToken(2, 1), null);
  assert.deepEqual(checker({ stopTokenIds: [9] }).checkToken(9, 3), { finishReason: "stop", stopReason: 9 });
  assert.equal(checker({}).checkToken(9, 3), null);
});

test("max_tokens and max-model-len end with length", () => {
  assert.deepEqual(checker({ maxTokens: 3 }).checkToken(5, 3), { finishReason: "length", stopReason: null });
  assert.equal(checker({ maxTokens: 3 }).checkToken(5, 2), null);
  // Prompt 4 of a 20-token context: 16 tokens at most.
  assert.equal(checker({}).maxOutputTokens, 16);
  assert.deepEqual(checker({}).checkToken(5, 16), { finishReason: "length", stopReason: null });
});

test("min_tokens bans stop ids through the bias and holds stops back", () => {
  const c = checker({ minTokens: 2, stopTokenIds: [9] });
  assert.deepEqual(c.bannedTokenIds(0), [2, 9]);
  assert.deepEqual(c.bannedTokenIds(1), [2, 9]);
  assert.deepEqual(c.bannedTokenIds(2), []);
  assert.equal(c.checkToken(2, 2), null);
  assert.deepEqual(c.checkToken(2, 3), { finishReason: "stop", stopReason: null });
  assert.deepEqual(checker({ minTokens: 2, ignoreEos: true }).bannedTokenIds(0), []);
});

test("a stop string split over several pushes is found and cut, and never streamed", () => {
  const m = new StopStringMatcher(["STOP"], false);
  let streamed = "";
  for (const piece of ["Hello S", "T", "O"]) {
    const { emit, stop } = m.push(piece, true);
    assert.equal(stop, null);
    streamed += emit;
  }
  assert.equal(streamed, "Hello ");
  const end = m.push("P and more", true);
  assert.equal(end.stop, "STOP");
  streamed += end.emit;
  assert.equal(streamed, "Hello ");
  assert.equal(m.fullText, "Hello ");
});

test("include_stop_str_in_output keeps the stop string; held text is released when it is not a stop", () => {
  const m = new StopStringMatcher(["\n\n"], true);
  assert.deepEqual(m.push("a\n", true), { emit: "a", stop: null });
  assert.deepEqual(m.push("b\n", true), { emit: "\nb", stop: null });
  assert.deepEqual(m.push("\nc", true), { emit: "\n\n", stop: "\n\n" });
  assert.equal(m.fullText, "a\nb\n\n");
});

test("the earliest of several stop strings wins; inactive pushes look for none", () => {
  const m = new StopStringMatcher(["world", "lo"], false);
  assert.deepEqual(m.push("hello world", true), { emit: "hel", stop: "lo" });
  const quiet = new StopStringMatcher(["x"], false);
  assert.equal(quiet.push("axb", false).stop, null);
  assert.equal(quiet.push("c", true).stop, null);
  assert.equal(quiet.finish(), "");
  assert.equal(quiet.fullText, "axbc");
});
