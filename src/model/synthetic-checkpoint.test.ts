import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { LLM } from "../llm.js";
import { SafetensorsFile } from "./safetensors.js";
import {
  SYNTHETIC_SHAPES,
  splitIntoShards,
  syntheticTensors,
  tensorBytes,
  writeSyntheticCheckpoint,
} from "./synthetic-checkpoint.js";

test("a synthetic tiny checkpoint in 3 shards loads on the CPU backend and generates finite, varied tokens", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "synthetic-"));
  try {
    const progress: number[] = [];
    const result = await writeSyntheticCheckpoint({
      shape: "tiny",
      out: dir,
      shards: 3,
      onProgress: (written) => progress.push(written),
    });
    assert.equal(progress.at(-1), result.totalBytes);
    const files = (await readdir(dir)).sort();
    for (const f of [
      "config.json",
      "model.safetensors.index.json",
      "tokenizer.json",
      "model-00003-of-00003.safetensors",
    ]) {
      assert.ok(files.includes(f), f);
    }
    const index = JSON.parse(await readFile(path.join(dir, "model.safetensors.index.json"), "utf8"));
    assert.equal(index.metadata.total_size, result.totalBytes);
    assert.equal(new Set(Object.values(index.weight_map)).size, 3);
    assert.equal(index.weight_map["model.embed_tokens.weight"], "model-00001-of-00003.safetensors");
    assert.equal(
      index.weight_map["model.layers.0.self_attn.q_proj.qweight"],
      "model-00002-of-00003.safetensors",
    );
    assert.equal(index.weight_map["lm_head.weight"], "model-00003-of-00003.safetensors");

    const llm = await LLM.load({ model: dir, backend: "cpu", maxModelLen: 128, numBlocks: 32 });
    try {
      const [out] = await llm.generate("In the beginning", {
        maxTokens: 12,
        temperature: 0,
        ignoreEos: true,
      });
      assert.equal(out!.tokenIds.length, 12);
      assert.ok(new Set(out!.tokenIds).size > 1, `varied tokens: ${out!.tokenIds}`);
      const [again] = await llm.generate("In the beginning", {
        maxTokens: 12,
        temperature: 0,
        ignoreEos: true,
      });
      assert.deepEqual(again!.tokenIds, out!.tokenIds);
    } finally {
      await llm.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the 13B shape is Llama-2-13B's AutoAWQ layout: 7.25 GB, tensor shapes as AutoAWQ writes them", () => {
  const tensors = syntheticTensors(SYNTHETIC_SHAPES["llama-2-13b"]!);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  assert.equal(tensors.length, 3 + 40 * (2 + 7 * 3));
  assert.deepEqual(byName.get("model.layers.39.mlp.down_proj.qweight")!.shape, [13824, 640]);
  assert.deepEqual(byName.get("model.layers.0.mlp.gate_proj.qzeros")!.shape, [40, 1728]);
  assert.deepEqual(byName.get("model.layers.0.self_attn.k_proj.scales")!.shape, [40, 5120]);
  assert.deepEqual(byName.get("lm_head.weight")!.shape, [32002, 5120]);
  const total = tensors.reduce((n, t) => n + tensorBytes(t), 0);
  assert.ok(Math.abs(total / 1e9 - 7.25) < 0.01, String(total));
  // Written a tensor at a time: the largest single tensor is the 327 MB embedding.
  assert.equal(Math.max(...tensors.map(tensorBytes)), 32002 * 5120 * 2);
});

test("shards split in order with balanced bytes and none empty", () => {
  const tensors = syntheticTensors(SYNTHETIC_SHAPES["llama-2-13b"]!);
  const shards = splitIntoShards(tensors, 4);
  assert.equal(shards.length, 4);
  assert.deepEqual(shards.flat(), tensors);
  const sizes = shards.map((s) => s.reduce((n, t) => n + tensorBytes(t), 0));
  for (const size of sizes) assert.ok(size > 1.5e9 && size < 2.1e9, String(sizes));
  assert.throws(
    () => splitIntoShards(tensors.slice(0, 2), 3),
    /--shards 3: the checkpoint has only 2 tensors/,
  );
});

test("an unknown shape is refused by name", async () => {
  await assert.rejects(
    writeSyntheticCheckpoint({ shape: "llama-3-70b", out: path.join(tmpdir(), "never") }),
    /--shape llama-3-70b is not known: use llama-2-13b, llama-2-7b, llama-3-8b, tiny/,
  );
});

test("a folder that holds a model is refused by name unless overwrite is set, and stale shards are removed", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "synthetic-"));
  try {
    await writeSyntheticCheckpoint({ shape: "tiny", out: dir, shards: 2 });
    const before = await readFile(path.join(dir, "model-00001-of-00002.safetensors"));
    await assert.rejects(
      writeSyntheticCheckpoint({ shape: "tiny", out: dir, seed: 1 }),
      (err: Error) =>
        err.message.includes(
          `--out ${dir} already holds a model (config.json, model-00001-of-00002.safetensors`,
        ) && err.message.includes("pass --force"),
    );
    assert.deepEqual(await readFile(path.join(dir, "model-00001-of-00002.safetensors")), before);
    await writeSyntheticCheckpoint({ shape: "tiny", out: dir, seed: 1, overwrite: true });
    const files = (await readdir(dir)).filter((f) => f.endsWith(".safetensors") || f.endsWith(".index.json"));
    assert.deepEqual(files, ["model.safetensors"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("written tensors carry the dtype and shape of the header", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "synthetic-"));
  try {
    await writeSyntheticCheckpoint({ shape: "tiny", out: dir });
    const file = await SafetensorsFile.open(path.join(dir, "model.safetensors"));
    try {
      assert.equal(file.entry("model.layers.1.mlp.up_proj.qweight").dtype, "I32");
      assert.deepEqual(file.entry("model.layers.1.mlp.up_proj.qweight").shape, [256, 96]);
      const zeros = (await file.read("model.layers.1.mlp.up_proj.qzeros")) as Int32Array;
      for (const word of zeros)
        for (let i = 0; i < 8; i++)
          assert.ok(((word >>> (4 * i)) & 15) >= 6 && ((word >>> (4 * i)) & 15) <= 9);
    } finally {
      await file.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
