import assert from "node:assert/strict";
import { test } from "node:test";
import type { StepBatch, StepResult } from "./backend.js";
import { chainedStepsFromEnvironment, fillChainedTokens, StepChain } from "./step-chain.js";

/** The parts of a batch the chain reads: tokens and where they come from. */
function batch(tokenIds: number[], prevTokenRows?: number[]): StepBatch {
  const b = { tokenIds: Int32Array.from(tokenIds) } as StepBatch;
  if (prevTokenRows !== undefined) b.prevTokenRows = Int32Array.from(prevTokenRows);
  return b;
}

function result(tokenIds: number[]): StepResult {
  return {
    tokenIds: Int32Array.from(tokenIds),
    logprobs: new Float32Array(tokenIds.length),
    topLogprobs: [],
  };
}

test("a chained step runs after the step before it, its tokens taken from that step's result", async () => {
  const chain = new StepChain();
  const order: string[] = [];
  let release = () => {};
  const first = chain.run(batch([5, 6]), async () => {
    order.push("first starts");
    await new Promise<void>((resolve) => (release = resolve));
    order.push("first ends");
    return result([41, -1, 43]);
  });
  const seen: number[][] = [];
  const second = chain.run(batch([0, 7, 0], [2, -1, 0]), async (b) => {
    order.push("second starts");
    seen.push([...b.tokenIds]);
    return result([1, 2, 3]);
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ["first starts"]);
  release();
  await Promise.all([first, second]);
  assert.deepEqual(order, ["first starts", "first ends", "second starts"]);
  assert.deepEqual(seen, [[43, 7, 41]]);
});

test("a chained step after a failed step fails, saying so; a plain step after it runs", async () => {
  const chain = new StepChain();
  const failed = chain.run(batch([1]), async () => {
    throw new Error("boom");
  });
  const chained = chain.run(batch([0], [0]), async () => result([9]));
  const plain = chain.run(batch([3]), async () => result([4]));
  await assert.rejects(failed, /boom/);
  await assert.rejects(chained, /continues a step that failed or never ran/);
  assert.deepEqual([...(await plain).tokenIds], [4]);
});

test("a row the previous step did not sample, or outside it, is refused naming the entry", () => {
  assert.throws(
    () => fillChainedTokens(batch([0, 0], [-1, 1]), result([5, -1])),
    /prevTokenRows\[1\] = 1: the previous step \(2 sequences\) sampled no token there/,
  );
  assert.throws(
    () => fillChainedTokens(batch([0], [3]), result([5])),
    /prevTokenRows\[0\] = 3: the previous step \(1 sequences\) sampled no token there/,
  );
  assert.throws(
    () => fillChainedTokens(batch([0, 0], [0]), result([5])),
    /prevTokenRows has 1 entries for a step of 2 tokens/,
  );
});

test("AWQ_ENGINE_ASYNC: 0 or 1, unset or empty is on, anything else refused by name", () => {
  assert.equal(chainedStepsFromEnvironment({}), true);
  assert.equal(chainedStepsFromEnvironment({ AWQ_ENGINE_ASYNC: "" }), true);
  assert.equal(chainedStepsFromEnvironment({ AWQ_ENGINE_ASYNC: "1" }), true);
  assert.equal(chainedStepsFromEnvironment({ AWQ_ENGINE_ASYNC: "0" }), false);
  assert.throws(
    () => chainedStepsFromEnvironment({ AWQ_ENGINE_ASYNC: "off" }),
    /AWQ_ENGINE_ASYNC must be 0 or 1/,
  );
});
