import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { INDEX_FILE, parseSafetensorsIndex, SafetensorsCheckpoint } from "./checkpoint.js";
import { writeSafetensors } from "./safetensors-writer.js";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "awq-checkpoint-"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const a = new Float32Array([1, 2, 3, 4]); // (2, 2)
const b = new Uint16Array([0x3c00, 0x4000]); // (2)
const c = new Int32Array([7, 8, 9]); // (3)

async function shardedDir(name: string, weightMap: Record<string, string> | string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  await writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), [
    { name: "a", dtype: "F32", shape: [2, 2], data: a },
    { name: "b", dtype: "F16", shape: [2], data: b },
  ]);
  await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), [
    { name: "c", dtype: "I32", shape: [3], data: c },
  ]);
  const index =
    typeof weightMap === "string" ? weightMap : JSON.stringify({ metadata: {}, weight_map: weightMap });
  await writeFile(join(dir, INDEX_FILE), index);
  return dir;
}

const goodMap = {
  a: "model-00001-of-00002.safetensors",
  b: "model-00001-of-00002.safetensors",
  c: "model-00002-of-00002.safetensors",
};

test("sharded checkpoint reads every tensor from its shard", async () => {
  const dir = await shardedDir("sharded", goodMap);
  const ckpt = await SafetensorsCheckpoint.open(dir);
  try {
    assert.equal(ckpt.dir, resolve(dir));
    assert.deepEqual(ckpt.names().sort(), ["a", "b", "c"]);
    assert.ok(ckpt.has("c") && !ckpt.has("d"));
    assert.deepEqual(ckpt.info("c"), {
      name: "c",
      dtype: "I32",
      shape: [3],
      file: join(resolve(dir), "model-00002-of-00002.safetensors"),
      byteLength: 12,
    });
    assert.deepEqual(await ckpt.read("a"), a);
    assert.deepEqual(await ckpt.read("b"), b);
    assert.deepEqual(await ckpt.read("c"), c);
    assert.equal(ckpt.totalBytes(), 16 + 4 + 12);
    assert.throws(() => ckpt.info("d"), /tensor "d" is not in the checkpoint/);
    await assert.rejects(ckpt.read("d"), /tensor "d" is not in the checkpoint/);
  } finally {
    await ckpt.close();
  }
});

test("index naming a tensor that its shard does not hold", async () => {
  const dir = await shardedDir("missing-tensor", { ...goodMap, ghost: "model-00002-of-00002.safetensors" });
  await assert.rejects(SafetensorsCheckpoint.open(dir), {
    message:
      `tensor "ghost": ${join(resolve(dir), INDEX_FILE)} places it in ` +
      `${join(resolve(dir), "model-00002-of-00002.safetensors")}, which does not hold it`,
  });
});

test("index naming a shard file that is absent", async () => {
  const dir = await shardedDir("missing-shard", { ...goodMap, c: "model-00003-of-00003.safetensors" });
  await assert.rejects(SafetensorsCheckpoint.open(dir), {
    message: `${join(resolve(dir), INDEX_FILE)} names shard model-00003-of-00003.safetensors, which is not in ${resolve(dir)}`,
  });
});

test("malformed index JSON", async () => {
  const dir = await shardedDir("bad-index", "{ weight_map: ");
  await assert.rejects(SafetensorsCheckpoint.open(dir), (err: Error) =>
    err.message.startsWith(`${join(resolve(dir), INDEX_FILE)}: malformed JSON`),
  );
  assert.throws(() => parseSafetensorsIndex('{"weight_map": []}', "idx.json"), {
    message: 'idx.json: expected an object with "weight_map": { tensor name: shard file name }',
  });
  assert.throws(() => parseSafetensorsIndex('{"weight_map": {"a": "../x.safetensors"}}', "idx.json"), {
    message: 'idx.json: weight_map["a"] must be a shard file name in the same folder',
  });
});

test("single-file layouts: model.safetensors, a lone *.safetensors, none, several", async () => {
  const single = join(root, "single");
  await mkdir(single);
  await writeSafetensors(join(single, "model.safetensors"), [
    { name: "c", dtype: "I32", shape: [3], data: c },
  ]);
  await writeSafetensors(join(single, "other.safetensors"), [
    { name: "a", dtype: "F32", shape: [2, 2], data: a },
  ]);
  const ckpt = await SafetensorsCheckpoint.open(single);
  assert.deepEqual(ckpt.names(), ["c"]); // model.safetensors wins
  await ckpt.close();

  const lone = join(root, "lone");
  await mkdir(lone);
  await writeSafetensors(join(lone, "gemm-4bit.safetensors"), [
    { name: "a", dtype: "F32", shape: [2, 2], data: a },
  ]);
  const loneCkpt = await SafetensorsCheckpoint.open(lone);
  assert.deepEqual(await loneCkpt.read("a"), a);
  await loneCkpt.close();

  await writeSafetensors(join(lone, "extra.safetensors"), [{ name: "c", dtype: "I32", shape: [3], data: c }]);
  await assert.rejects(
    SafetensorsCheckpoint.open(lone),
    /holds several \.safetensors files \(extra\.safetensors, gemm-4bit\.safetensors\) but no model\.safetensors\.index\.json/,
  );

  const empty = join(root, "empty");
  await mkdir(empty);
  await assert.rejects(
    SafetensorsCheckpoint.open(empty),
    /no safetensors checkpoint in .*empty: expected model\.safetensors/,
  );
  await assert.rejects(SafetensorsCheckpoint.open(join(root, "nope")), /cannot read model folder .*nope/);
});
