import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SafetensorsCheckpoint } from "./checkpoint.js";
import { firstNonFinite } from "./finite-check.js";
import { writeSafetensors } from "./safetensors-writer.js";

const bytesOf = (a: Uint16Array | Float32Array | Int32Array) =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test("firstNonFinite finds NaN and Inf in f16, bf16 and f32 at any position, and never in integers", () => {
  for (const length of [1, 2, 3, 7, 64, 1001]) {
    for (const at of [0, 1, length - 1, length >> 1]) {
      if (at >= length) continue;
      for (const [dtype, bits] of [
        ["F16", 0x7c00], // +Inf
        ["F16", 0xfe01], // NaN, sign set
        ["BF16", 0x7f80],
        ["BF16", 0xffc1],
      ] as const) {
        const data = new Uint16Array(length).fill(0x3c00); // 1.0 in f16 (a finite bf16 too)
        data[at] = bits;
        assert.equal(firstNonFinite(dtype, bytesOf(data)), at, `${dtype} length ${length} at ${at}`);
        data[at] = 0x7bff; // the largest finite f16 (a finite bf16 as well)
        assert.equal(firstNonFinite(dtype, bytesOf(data)), -1);
      }
      const f32 = new Float32Array(length).fill(0.5);
      f32[at] = Number.NaN;
      assert.equal(firstNonFinite("F32", bytesOf(f32)), at);
    }
  }
  // An odd byte offset (no 32-bit view possible) takes the element-by-element path.
  const buffer = new Uint16Array([0x3c00, 0x3c00, 0x7c00, 0x3c00]);
  assert.equal(firstNonFinite("F16", new Uint8Array(buffer.buffer, 2, 6)), 1);
  assert.equal(firstNonFinite("I32", bytesOf(new Int32Array([0x7fc00000, -1]))), -1);
});

test("a checkpoint tensor holding a NaN fails its read, naming the tensor, the file and the element", async () => {
  const dir = await mkdtemp(join(tmpdir(), "awq-nan-"));
  try {
    const norm = new Uint16Array(8).fill(0x3c00);
    norm[5] = 0x7e00; // NaN
    await writeSafetensors(join(dir, "model.safetensors"), [
      { name: "model.norm.weight", dtype: "F16", shape: [8], data: norm },
      { name: "ok.weight", dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0x4000]) },
      { name: "ids", dtype: "I32", shape: [1], data: new Int32Array([0x7fc00000]) },
    ]);
    const ckpt = await SafetensorsCheckpoint.open(dir);
    try {
      await assert.rejects(ckpt.read("model.norm.weight"), {
        message: `tensor "model.norm.weight" in ${join(dir, "model.safetensors")} holds a NaN or infinite value (element 5 of shape [8], F16): the checkpoint is corrupt or was converted wrongly`,
      });
      assert.deepEqual([...((await ckpt.read("ok.weight")) as Uint16Array)], [0x3c00, 0x4000]);
      assert.equal((await ckpt.read("ids")).length, 1);
    } finally {
      await ckpt.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
