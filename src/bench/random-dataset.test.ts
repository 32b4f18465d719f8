import assert from "node:assert/strict";
import { test } from "node:test";
import { DEMO_MODEL } from "../demo-model.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { lengthRange, randomDataset } from "./random-dataset.js";

const tokenizer = await Tokenizer.load(DEMO_MODEL);

test("random prompts encode to exactly the drawn token count (no BOS), for many lengths", async () => {
  for (const inputLen of [1, 7, 64, 512]) {
    const specs = await randomDataset(tokenizer, {
      numPrompts: 12,
      inputLen,
      outputLen: 16,
      rangeRatio: 0,
      seed: inputLen,
    });
    for (const spec of specs) {
      assert.equal(spec.promptLen, inputLen);
      assert.equal(
        tokenizer.encode(spec.prompt, { addBos: false }).length,
        inputLen,
        JSON.stringify(spec.prompt),
      );
      assert.equal(spec.outputLen, 16);
    }
  }
});

test("--random-range-ratio draws input and output lengths from [n(1-r), n(1+r)], each exact", async () => {
  const specs = await randomDataset(tokenizer, {
    numPrompts: 40,
    inputLen: 100,
    outputLen: 20,
    rangeRatio: 0.5,
    seed: 3,
  });
  const [lo, hi] = lengthRange(100, 0.5);
  assert.deepEqual([lo, hi], [50, 150]);
  for (const spec of specs) {
    assert.ok(spec.promptLen >= 50 && spec.promptLen <= 150, String(spec.promptLen));
    assert.ok(spec.outputLen >= 10 && spec.outputLen <= 30, String(spec.outputLen));
    assert.equal(tokenizer.encode(spec.prompt, { addBos: false }).length, spec.promptLen);
  }
  assert.ok(new Set(specs.map((s) => s.promptLen)).size > 5, "lengths vary");
});

test("the same seed gives the same prompts; another seed other prompts; no special tokens inside", async () => {
  const opts = { numPrompts: 5, inputLen: 32, outputLen: 8, rangeRatio: 0, seed: 11 };
  const a = await randomDataset(tokenizer, opts);
  assert.deepEqual(await randomDataset(tokenizer, opts), a);
  assert.notDeepEqual(await randomDataset(tokenizer, { ...opts, seed: 12 }), a);
  for (const spec of a) {
    for (const id of tokenizer.encode(spec.prompt, { addBos: false })) assert.ok(!tokenizer.isSpecial(id));
  }
});

test("a range ratio outside [0, 1) is refused by name", async () => {
  await assert.rejects(
    () => randomDataset(tokenizer, { numPrompts: 1, inputLen: 8, outputLen: 8, rangeRatio: 1, seed: 0 }),
    /--random-range-ratio must be in \[0, 1\)/,
  );
});

test("building hundreds of prompts leaves the event loop turning (a blocked client loses its keep-alive socket)", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    const specs = await randomDataset(tokenizer, {
      numPrompts: 48,
      inputLen: 256,
      outputLen: 8,
      rangeRatio: 0,
      seed: 5,
    });
    assert.equal(specs.length, 48);
  } finally {
    clearInterval(timer);
  }
  // 48 prompts = 12 turns of the loop: a timer due every millisecond runs in (nearly) each of them.
  assert.ok(ticks >= 6, `the interval ran ${ticks} times while the prompts were built`);
});
