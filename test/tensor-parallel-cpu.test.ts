/**
 * The CPU tensor-parallel reference (issue 19 item 2): --tensor-parallel-size 2 splits every matrix as GPU
 * ranks will (model/tensor-parallel-plan.ts) and must give the unsharded logits within f32 rounding and the
 * same greedy tokens, on the demo models (awq-ts's AWQ quantization, AutoAWQ's, the fp16 original) and on a
 * random AWQ model whose 4 KV heads split over 2 ranks and whose row-parallel inputs hold several groups.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Backend, KvLayout } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { openModel } from "../src/model/load.js";
import { TensorParallelError } from "../src/model/tensor-parallel-plan.js";
import type { ModelConfig } from "../src/model/types.js";
import { generateGreedy } from "./conformance/backend-conformance.js";
import { writeRandomAwqModel } from "./conformance/random-awq-model.js";
import { maxRelativeError } from "./conformance/relative-error.js";
import { StepBuilder } from "./conformance/step-builder.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BLOCK_SIZE = 16;
/** f32 rounding of a different summation order (partials summed per rank), relative to the largest logit. */
const F32_TOLERANCE = 1e-5;

interface Loaded {
  backend: Backend;
  layout: KvLayout;
  config: ModelConfig;
}

async function load(dir: string, tensorParallelSize: number): Promise<Loaded> {
  const model = await openModel(dir);
  try {
    const backend = new CpuBackend({ tensorParallelSize });
    const layout = await backend.load(model, {
      maxModelLen: 512,
      maxNumSeqs: 16,
      maxNumBatchedTokens: 2048,
      blockSize: BLOCK_SIZE,
      numBlocks: 64,
    });
    return { backend, layout, config: model.config };
  } finally {
    await model.checkpoint.close();
  }
}

/** Raw logits of the last prompt token and prompt logprobs at every prompt position, all prompts batched. */
async function promptLogits(loaded: Loaded, prompts: number[][]) {
  const builder = new StepBuilder(BLOCK_SIZE, loaded.layout.numBlocks);
  const batch = builder.build(prompts.map((p) => ({ seq: builder.addSequence(p) })));
  batch.returnLogits = true;
  batch.tokenLogprobs = true;
  const result = await loaded.backend.step(batch);
  assert.ok(result.logits !== undefined && result.tokenLogprobs !== undefined);
  return { logits: result.logits, tokenLogprobs: result.tokenLogprobs };
}

const fixture = JSON.parse(readFileSync(join(repoRoot, "test/fixtures/reference.json"), "utf8")) as {
  models: Record<string, { prompt_ids: number[] }[]>;
};
const prompts = fixture.models["tiny-chat-awq"].map((r) => r.prompt_ids);

/** TP=2 against TP=1 on one model folder: logits, prompt logprobs, greedy tokens batched and chunked. */
async function compareShardedWithWhole(dir: string): Promise<void> {
  const whole = await load(dir, 1);
  const sharded = await load(dir, 2);
  try {
    const want = await promptLogits(whole, prompts);
    const got = await promptLogits(sharded, prompts);
    const logitsError = maxRelativeError(got.logits, want.logits);
    assert.ok(logitsError <= F32_TOLERANCE, `last-token logits: relative error ${logitsError}`);
    const logprobError = maxRelativeError(got.tokenLogprobs, want.tokenLogprobs);
    assert.ok(logprobError <= F32_TOLERANCE, `prompt logprobs: relative error ${logprobError}`);
    const greedyWhole = await generateGreedy(whole, prompts, 16, "batched");
    assert.deepEqual(await generateGreedy(sharded, prompts, 16, "batched"), greedyWhole);
    // Staggered chunked prefill mixed with decodes: every rank's KV shard is read back across steps.
    assert.deepEqual(await generateGreedy(sharded, prompts, 16, "chunked"), greedyWhole);
  } finally {
    await whole.backend.dispose();
    await sharded.backend.dispose();
  }
}

describe("CPU tensor parallelism (--tensor-parallel-size)", () => {
  const autoAwqDir = resolve(repoRoot, "../shared/models/tiny-chat-awq");
  const fp16Dir = resolve(repoRoot, "../shared/models/tiny-chat");
  let randomDir: string | null = null;
  after(async () => {
    if (randomDir !== null) await rm(randomDir, { recursive: true, force: true });
  });

  test("models/tiny-chat-awq (AWQ, group 128): TP=2 equals TP=1", async () => {
    await compareShardedWithWhole(join(repoRoot, "models/tiny-chat-awq"));
  });

  test("tiny-chat (fp16): TP=2 equals TP=1", async (t) => {
    if (!existsSync(join(fp16Dir, "config.json"))) return t.skip("needs ../shared/models/tiny-chat");
    await compareShardedWithWhole(fp16Dir);
  });

  test("tiny-chat-awq (AutoAWQ's checkpoint): TP=2 equals TP=1", async (t) => {
    if (!existsSync(join(autoAwqDir, "config.json"))) return t.skip("needs ../shared/models/tiny-chat-awq");
    await compareShardedWithWhole(autoAwqDir);
  });

  test("random AWQ model, 4 KV heads and an untied lm_head: TP=2 equals TP=1; TP=4 would cut AWQ groups and is refused", async () => {
    randomDir = await mkdtemp(join(tmpdir(), "awq-ts-tp-"));
    // o_proj inputs 4 x 64 = 256 and down_proj inputs 1024: TP=2 keeps whole groups of 128 on both.
    await writeRandomAwqModel(
      randomDir,
      {
        hiddenSize: 256,
        numHeads: 4,
        numKvHeads: 4,
        headDim: 64,
        intermediateSize: 1024,
        numLayers: 2,
        vocabSize: 1000,
        groupSize: 128,
      },
      7,
    );
    const config = JSON.parse(readFileSync(join(randomDir, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(
      config.tie_word_embeddings ?? false,
      false,
      "the random model is meant to have its own lm_head",
    );
    const randomPrompts = [
      [1, 17, 300, 42, 5, 900],
      [1, 2, 3],
    ];
    const whole = await load(randomDir, 1);
    const sharded = await load(randomDir, 2);
    try {
      const want = await promptLogits(whole, randomPrompts);
      const got = await promptLogits(sharded, randomPrompts);
      const err = maxRelativeError(got.logits, want.logits);
      assert.ok(err <= F32_TOLERANCE, `logits: relative error ${err}`);
      assert.deepEqual(
        await generateGreedy(sharded, randomPrompts, 8, "chunked"),
        await generateGreedy(whole, randomPrompts, 8, "chunked"),
      );
    } finally {
      await whole.backend.dispose();
      await sharded.backend.dispose();
    }
    // TP=4 would give o_proj 64 input rows per rank: half an AWQ group. Refused before any weight is read.
    await assert.rejects(load(randomDir, 4), (err: Error) => {
      assert.ok(err instanceof TensorParallelError);
      assert.match(err.message, /o_proj is row-parallel and each rank would own 64 of its input rows/);
      assert.match(err.message, /this model takes 1, 2$/);
      return true;
    });
  });

  test("sizes the demo model cannot split are refused by name", async () => {
    const dir = join(repoRoot, "models/tiny-chat-awq");
    await assert.rejects(
      load(dir, 3),
      /tensor-parallel-size 3 does not divide the model's 4 attention heads/,
    );
    await assert.rejects(load(dir, 4), /tensor-parallel-size 4 does not divide the model's 2 KV heads/);
    await assert.rejects(load(dir, 0), /tensor-parallel-size must be a positive integer, got 0/);
  });

  test("awq generate --tensor-parallel-size 2 --backend cpu: the same greedy text; on CUDA refused naming NCCL", async () => {
    const run = promisify(execFile);
    const cli = join(repoRoot, "dist/src/cli/main.js");
    const args = (tp: number, backend: string) => [
      cli,
      "generate",
      join(repoRoot, "models/tiny-chat-awq"),
      "--prompt",
      "User: Tell me a fortune.<|end_of_turn|>Assistant:",
      "--temperature",
      "0",
      "--max-tokens",
      "12",
      "--json",
      "--quiet",
      "--backend",
      backend,
      "--tensor-parallel-size",
      String(tp),
    ];
    const [one, two] = await Promise.all([run("node", args(1, "cpu")), run("node", args(2, "cpu"))]);
    const sharded = JSON.parse(two.stdout) as { token_ids: number[] };
    assert.equal(sharded.token_ids.length, 12);
    assert.deepEqual(sharded, JSON.parse(one.stdout));
    await assert.rejects(run("node", args(2, "cuda")), (err: Error & { stderr: string }) => {
      assert.match(
        err.stderr,
        /--tensor-parallel-size 2: tensor parallelism on the CUDA backend needs the NCCL build/,
      );
      return true;
    });
  });
});
