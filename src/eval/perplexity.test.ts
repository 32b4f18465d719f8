import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Backend, StepBatch, StepResult } from "../backend/backend.js";
import { CpuBackend } from "../backend/cpu/cpu-backend.js";
import { openModel } from "../model/load.js";
import { computePerplexity } from "./perplexity.js";

// dist/... -> the project root
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * A deterministic fake: log p(next = x | ..., position p) = -(x mod 7 + 1) / 10, independent of context,
 * so the protocol (windows, positions, tail dropped, mean of window means) can be checked exactly.
 */
class FakeBackend implements Backend {
  readonly name = "cpu" as const;
  steps: StepBatch[] = [];
  async load(): Promise<never> {
    throw new Error("not used");
  }
  async step(batch: StepBatch): Promise<StepResult> {
    this.steps.push(batch);
    const n = batch.tokenIds.length;
    const lp = new Float32Array(n).fill(Number.NaN);
    for (let t = 0; t < n - 1; t++) lp[t] = -((batch.tokenIds[t + 1] % 7) + 1) / 10;
    return {
      tokenIds: Int32Array.of(-1),
      logprobs: Float32Array.of(Number.NaN),
      topLogprobs: [null],
      tokenLogprobs: lp,
    };
  }
  async dispose(): Promise<void> {}
}

function expectedPerplexity(ids: number[], ctx: number): number {
  const windows = Math.floor(ids.length / ctx);
  let sum = 0;
  for (let w = 0; w < windows; w++) {
    let loss = 0;
    for (let p = 1; p < ctx; p++) loss += Math.fround(((ids[w * ctx + p] % 7) + 1) / 10);
    sum += loss / (ctx - 1);
  }
  return Math.exp(sum / windows);
}

test("windows of ctx tokens, tail dropped, positions 1..ctx-1, mean over windows", async () => {
  const ids = Array.from({ length: 1000 }, (_, i) => (i * 37 + 11) % 101);
  const fake = new FakeBackend();
  const r = await computePerplexity(fake, ids, { ctx: 64 });
  assert.equal(r.windows, 15);
  assert.equal(r.tokens, 15 * 64);
  assert.ok(Math.abs(r.perplexity - expectedPerplexity(ids, 64)) < 1e-9);
  assert.deepEqual([...fake.steps[1].tokenIds.slice(0, 3)], ids.slice(64, 67));
  assert.deepEqual([...fake.steps[1].positions.slice(0, 3)], [0, 1, 2], "every window starts at position 0");
});

test("a window run in chunks gives the same perplexity (chunks overlap by one token)", async () => {
  const ids = Array.from({ length: 300 }, (_, i) => (i * 13 + 5) % 97);
  const whole = await computePerplexity(new FakeBackend(), ids, { ctx: 100 });
  const fake = new FakeBackend();
  const chunked = await computePerplexity(fake, ids, { ctx: 100, maxTokensPerStep: 30 });
  assert.ok(Math.abs(whole.perplexity - chunked.perplexity) < 1e-9);
  assert.ok(fake.steps.length > 3);
  assert.equal(fake.steps[1].positions[0], 29, "the next chunk reruns the previous chunk's last token");
});

test("maxWindows limits the windows; too short a text is an error", async () => {
  const ids = Array.from({ length: 500 }, (_, i) => i % 50);
  assert.equal((await computePerplexity(new FakeBackend(), ids, { ctx: 100, maxWindows: 2 })).windows, 2);
  await assert.rejects(
    computePerplexity(new FakeBackend(), ids.slice(0, 50), { ctx: 100 }),
    /fewer than one window/,
  );
});

test("CPU backend on tiny-chat-awq: chunked and whole windows agree", async () => {
  const model = await openModel(join(repoRoot, "models/tiny-chat-awq"));
  const backend = new CpuBackend();
  const layout = await backend.load(model, {
    maxModelLen: 128,
    maxNumSeqs: 1,
    maxNumBatchedTokens: 128,
    blockSize: 16,
  });
  await model.checkpoint.close();
  // Arbitrary ids (the protocol does not care what they spell).
  const ids = [
    1, 512, 278, 6763, 4177, 2825, 278, 18356, 322, 278, 8437, 29889, 1126, 278, 8437, 471, 1728, 883,
  ];
  const repeated = Array.from({ length: 8 }, () => ids).flat();
  const whole = await computePerplexity(backend, repeated, { ctx: 64, kvLayout: layout });
  const chunked = await computePerplexity(backend, repeated, {
    ctx: 64,
    kvLayout: layout,
    maxTokensPerStep: 20,
  });
  assert.equal(whole.windows, 2);
  assert.ok(Math.abs(whole.perplexity - chunked.perplexity) / whole.perplexity < 1e-4);
  assert.ok(Number.isFinite(whole.perplexity) && whole.perplexity > 1, `perplexity ${whole.perplexity}`);
  await backend.dispose();
});
