import assert from "node:assert/strict";
import { mkdtemp, open, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SafetensorsFile } from "./safetensors.js";
import { writeSafetensors } from "./safetensors-writer.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "awq-safetensors-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file from a raw header object and data bytes, for crafting corrupt cases. */
async function writeRaw(
  name: string,
  header: unknown,
  data: Uint8Array,
  lengthOverride?: bigint,
): Promise<string> {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.length);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

test("writer and reader round-trip every dtype, metadata, and empty tensors", async () => {
  const path = join(dir, "all.safetensors");
  const f32 = new Float32Array([1.5, -2, 3.25, 0, 7, 8]); // (2, 3)
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x7c00]); // (3)
  const bf16 = new Uint16Array([0x3f80, 0x4000]); // (1, 2)
  const i32 = new Int32Array([-1, 2147483647, -2147483648, 5]); // (4)
  const i8 = new Int8Array([-128, 127, 0]); // (3)
  const u8 = new Uint8Array([255, 0, 1, 2, 3]); // (5)
  await writeSafetensors(
    path,
    [
      { name: "u8", dtype: "U8", shape: [5], data: u8 }, // odd length first: later tensors start unaligned
      { name: "f32", dtype: "F32", shape: [2, 3], data: () => f32 },
      { name: "f16", dtype: "F16", shape: [3], data: f16 },
      { name: "bf16", dtype: "BF16", shape: [1, 2], data: async () => bf16 },
      { name: "i32", dtype: "I32", shape: [4], data: i32 },
      { name: "i8", dtype: "I8", shape: [3], data: i8 },
      { name: "empty", dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
    ],
    { format: "pt" },
  );
  const file = await SafetensorsFile.open(path);
  try {
    assert.deepEqual(file.metadata, { format: "pt" });
    assert.deepEqual(file.names(), ["u8", "f32", "f16", "bf16", "i32", "i8", "empty"]);
    assert.equal(file.header.dataStart % 8, 0);
    assert.deepEqual(file.entry("f32").shape, [2, 3]);
    assert.equal(file.entry("f32").byteLength, 24);
    assert.deepEqual(await file.read("u8"), u8);
    assert.deepEqual(await file.read("f32"), f32);
    assert.deepEqual(await file.read("f16"), f16);
    assert.deepEqual(await file.read("bf16"), bf16);
    assert.deepEqual(await file.read("i32"), i32);
    assert.deepEqual(await file.read("i8"), i8);
    assert.deepEqual(await file.read("empty"), new Float32Array(0));
    assert.deepEqual(await file.readBytes("i32", 4, 8), new Uint8Array(new Int32Array([2147483647]).buffer));
    await assert.rejects(file.readBytes("i32", 4, 20), /byte range \[4, 20\) is outside its 16 bytes/);
    await assert.rejects(file.read("missing"), /tensor "missing" is not in .*all\.safetensors/);
  } finally {
    await file.close();
  }
});

test("writer rejects data that does not match shape x dtype, leaving no file", async () => {
  const path = join(dir, "bad-write.safetensors");
  await assert.rejects(
    writeSafetensors(path, [{ name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array(3) }]),
    /tensor "w": shape \[2, 2\] x F32 is 16 bytes, data has 12/,
  );
  await assert.rejects(
    writeSafetensors(path, [{ name: "w", dtype: "F16", shape: [2], data: new Float32Array(2) }]),
    /tensor "w": F16 data must be a Uint16Array, got Float32Array/,
  );
  await assert.rejects(readFile(path), /ENOENT/);
  await assert.rejects(readFile(`${path}.tmp`), /ENOENT/);
});

test("corrupt: file shorter than the 8-byte header length", async () => {
  const path = join(dir, "tiny.safetensors");
  await writeFile(path, new Uint8Array([1, 2, 3]));
  await assert.rejects(SafetensorsFile.open(path), {
    message: `${path}: file is truncated (3 bytes); a safetensors file starts with an 8-byte header length`,
  });
});

test("corrupt: header length past the end of the file", async () => {
  const path = await writeRaw("hdrlen.safetensors", {}, new Uint8Array(0), 1000n);
  await assert.rejects(SafetensorsFile.open(path), {
    message: `${path}: header length 1000 runs past the end of the file (10 bytes): truncated or not a safetensors file`,
  });
});

test("corrupt: a garbage header length is printed exactly, not rounded", async () => {
  const path = await writeRaw("hdrlen-huge.safetensors", {}, new Uint8Array(0), 0x7fffffffffffffffn);
  await assert.rejects(SafetensorsFile.open(path), {
    message: `${path}: header length 9223372036854775807 runs past the end of the file (10 bytes): truncated or not a safetensors file`,
  });
});

test("corrupt: truncated file (data section cut short) names the tensor", async () => {
  const path = join(dir, "trunc.safetensors");
  await writeSafetensors(path, [
    { name: "a", dtype: "F32", shape: [4], data: new Float32Array(4) },
    { name: "b", dtype: "F32", shape: [4], data: new Float32Array(4) },
  ]);
  const size = (await readFile(path)).length;
  await truncate(path, size - 6);
  await assert.rejects(
    SafetensorsFile.open(path),
    (err: Error) =>
      err.message.startsWith(
        `tensor "b" in ${path}: data_offsets [16, 32) lie outside the data section, which holds 26 bytes`,
      ) && err.message.endsWith("the file is truncated or its header is corrupt"),
  );
});

test("corrupt: offsets outside the data", async () => {
  const header = { w: { dtype: "U8", shape: [4], data_offsets: [100, 104] } };
  const path = await writeRaw("outside.safetensors", header, new Uint8Array(4));
  await assert.rejects(
    SafetensorsFile.open(path),
    /tensor "w" in .*outside\.safetensors: data_offsets \[100, 104\) lie outside the data section, which holds 4 bytes/,
  );
  const reversed = { w: { dtype: "U8", shape: [0], data_offsets: [3, 2] } };
  const path2 = await writeRaw("reversed.safetensors", reversed, new Uint8Array(4));
  await assert.rejects(SafetensorsFile.open(path2), {
    message: `tensor "w" in ${path2}: data_offsets [3,2] must be [begin, end] with begin <= end`,
  });
});

test("corrupt: overlapping tensors", async () => {
  const header = {
    a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  };
  const path = await writeRaw("overlap.safetensors", header, new Uint8Array(12));
  await assert.rejects(SafetensorsFile.open(path), {
    message: `${path}: tensors "a" [0, 8) and "b" [4, 12) overlap in the data section`,
  });
});

test("corrupt: unknown dtype", async () => {
  const header = { x: { dtype: "F8_E4M3", shape: [2], data_offsets: [0, 2] } };
  const path = await writeRaw("dtype.safetensors", header, new Uint8Array(2));
  await assert.rejects(SafetensorsFile.open(path), {
    message: `tensor "x" in ${path}: unknown dtype "F8_E4M3"; supported: F16, BF16, F32, I32, I8, U8`,
  });
});

test("corrupt: shape x dtype does not match the byte length", async () => {
  const header = { w: { dtype: "F16", shape: [2, 3], data_offsets: [0, 8] } };
  const path = await writeRaw("shape.safetensors", header, new Uint8Array(8));
  await assert.rejects(SafetensorsFile.open(path), {
    message: `tensor "w" in ${path}: shape [2, 3] x F16 is 12 bytes but data_offsets [0, 8] span 8 bytes`,
  });
});

test("corrupt: header that is not JSON", async () => {
  const path = join(dir, "json.safetensors");
  const bytes = new Uint8Array(8 + 5);
  new DataView(bytes.buffer).setBigUint64(0, 5n, true);
  bytes.set(new TextEncoder().encode("{oops"), 8);
  await writeFile(path, bytes);
  await assert.rejects(SafetensorsFile.open(path), (err: Error) =>
    err.message.startsWith(`${path}: the safetensors header is not valid JSON`),
  );
});

test("a tensor past 4 GiB in a (sparse) file reads back", async () => {
  const hole = 5 * 2 ** 30; // bytes never written: the file system stores a hole
  const header = {
    hole: { dtype: "U8", shape: [hole], data_offsets: [0, hole] },
    w: { dtype: "F32", shape: [4], data_offsets: [hole, hole + 16] },
  };
  const path = await writeRaw("big.safetensors", header, new Uint8Array(0));
  const headerLength = new TextEncoder().encode(JSON.stringify(header)).length;
  const w = new Float32Array([1, -2, 3.5, 1e-3]); // (4)
  const handle = await open(path, "r+");
  await handle.write(new Uint8Array(w.buffer), 0, 16, 8 + headerLength + hole);
  await handle.close();
  const file = await SafetensorsFile.open(path);
  try {
    assert.equal(file.entry("w").filePosition, 8 + headerLength + hole);
    assert.deepEqual(await file.read("w"), w);
    assert.deepEqual(await file.readBytes("hole", hole - 4, hole), new Uint8Array(4));
  } finally {
    await file.close();
    await rm(path);
  }
});
