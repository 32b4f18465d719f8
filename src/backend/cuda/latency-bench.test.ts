import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeOpBytes, llama2_13bAwqConfig, syntheticAwqConfig } from "./latency-bench.js";

test("decodeOpBytes: the 13B projections' int4 weights + zero/scale pairs, and the KV read by attention", () => {
  const c = llama2_13bAwqConfig(40);
  const b = decodeOpBytes(c, 2, 512);
  // qkv 5120 x 15360: 39.3 MB of nibbles + 40 groups x 15360 x 4 bytes, per layer.
  assert.equal(b.qkv_proj, 40 * ((5120 * 15360) / 2 + 40 * 15360 * 4));
  assert.equal(b.down_proj, 40 * ((13824 * 5120) / 2 + 108 * 5120 * 4));
  // K and V, fp16, 40 heads x 128, for 2 x 512 tokens, every layer.
  assert.equal(b.attention_decode, 40 * 2 * 512 * 5120 * 2 * 2);
  const weights = b.qkv_proj + b.o_proj + b.gate_up_proj + b.down_proj;
  assert.ok(weights > 6.7e9 && weights < 6.8e9, `AWQ weights ${weights}`);
});

test("syntheticAwqConfig: the checkpoint writer's shapes, grouped-query heads included; an unknown shape refused by name", () => {
  const c = syntheticAwqConfig("llama-3-8b");
  assert.equal(c.numLayers, 32);
  assert.equal(c.numHeads, 32);
  assert.equal(c.numKvHeads, 8);
  assert.equal(c.headDim, 128);
  assert.equal(c.intermediateSize, 14336);
  assert.equal(syntheticAwqConfig("llama-3-8b", 2).numLayers, 2);
  assert.deepEqual(syntheticAwqConfig("llama-2-13b", 40), llama2_13bAwqConfig(40));
  // 8 KV heads of 128: the attention reads a quarter of the query heads' width.
  assert.equal(decodeOpBytes(c, 1, 1024).attention_decode, 32 * 1024 * 1024 * 2 * 2);
  assert.throws(
    () => syntheticAwqConfig("llama-3-70b"),
    /--shape llama-3-70b is not known: use llama-2-13b, llama-2-7b, llama-3-8b, tiny/,
  );
});
