import assert from "node:assert/strict";
import { test } from "node:test";
import { checkKvCacheDtypeSupported } from "../backend/kv-cache-dtype.js";
import { noTensorCheckpoint } from "./no-tensor-checkpoint.js";

test("noTensorCheckpoint: no tensors; probing is fine, reading names the model and the tensor", async () => {
  const ckpt = noTensorCheckpoint("/tmp/x", "synthetic-7b");
  assert.deepEqual(ckpt.names(), []);
  assert.equal(ckpt.has("model.embed_tokens.weight"), false);
  assert.throws(() => ckpt.info("lm_head.weight"), /synthetic-7b has no checkpoint.*lm_head\.weight/);
  await assert.rejects(ckpt.read("lm_head.weight"), /synthetic-7b has no checkpoint.*lm_head\.weight/);
  // What the engine asks of every model before loading it (the benches' synthetic models used to pass no
  // checkpoint at all, and Engine.create failed there with a TypeError on the GPU machine).
  assert.doesNotThrow(() => checkKvCacheDtypeSupported("cpu", "fp8", ckpt.names()));
});
