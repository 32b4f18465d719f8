import assert from "node:assert/strict";
import { resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { EncodePool } from "./encode-pool.js";
import { Tokenizer } from "./tokenizer.js";

const demoDir = resolve(fileURLToPath(import.meta.url), "../../../../models/tiny-chat-awq");
let tokenizer: Tokenizer;
let pool: EncodePool;

before(async () => {
  tokenizer = await Tokenizer.load(demoDir);
  pool = await EncodePool.create(tokenizer, { workers: 2, inlineMaxChars: 64 });
});
after(() => pool.close());

const texts = [
  "Hi",
  "In the beginning God created the heaven and the earth. ".repeat(40),
  "User: Tell me a fortune.<|end_of_turn|>Assistant: ".repeat(20),
  "ünïcödé 😀 \u00a0tabs\tand\nnewlines ".repeat(30),
];

test("pool results equal tokenizer.encode, in place and on workers, with and without BOS", async () => {
  const results = await Promise.all(
    texts.flatMap((t) => [pool.encode(t), pool.encode(t, { addBos: false })]),
  );
  texts.forEach((t, i) => {
    assert.deepEqual(results[2 * i], tokenizer.encode(t));
    assert.deepEqual(results[2 * i + 1], tokenizer.encode(t, { addBos: false }));
  });
});

test("minTokenCount never exceeds the real count", () => {
  for (const t of [...texts, " ".repeat(500), "\n".repeat(300), "a", ""]) {
    const real = tokenizer.encode(t, { addBos: false }).length;
    assert.ok(
      pool.minTokenCount(t) <= real,
      `${JSON.stringify(t.slice(0, 20))}: ${pool.minTokenCount(t)} > ${real}`,
    );
  }
});

test("a closed pool refuses new work", async () => {
  const other = await EncodePool.create(tokenizer, { workers: 1 });
  await other.close();
  await assert.rejects(other.encode("x"), /closed/);
});

test("a worker that dies fails only its own jobs, is replaced, and the pool keeps encoding", async () => {
  const fragile = await EncodePool.create(tokenizer, { workers: 1, inlineMaxChars: 8 });
  try {
    const long = texts[1]!;
    // A job the worker is still on when it is killed: ~200K distinct words (no word cache helps) take it seconds,
    // where a short one could be answered first (the worker then idle and unref'd, and the test's own wait on its
    // exit the only thing left in the event loop).
    const doomed = fragile.encode(Array.from({ length: 200_000 }, (_, i) => `w${i.toString(36)}`).join(" "));
    await fragile.firstWorkerForTest()!.terminate();
    await assert.rejects(doomed, /the tokenizer worker failed: exited with code/);
    // Until the replacement is up, long texts are encoded in place; then on the new worker.
    assert.deepEqual(await fragile.encode(long), tokenizer.encode(long));
    const deadline = Date.now() + 10_000;
    while (fragile.workerCount === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(fragile.workerCount, 1);
    assert.deepEqual(await fragile.encode(long), tokenizer.encode(long));
  } finally {
    await fragile.close();
  }
});
