import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  AWQ_REVERSE_ORDER,
  dequantizeAwq,
  groupQuantize,
  packAwq,
  quantizeWithParams,
  roundHalfEven,
  unpackAwq,
} from "./awq.js";
import { SafetensorsCheckpoint } from "./checkpoint.js";
import { loadModelConfig } from "./config.js";
import { f16ToF32Array } from "./half.js";

const repoRoot = resolve(fileURLToPath(import.meta.url), "../../../..");
const demoDir = resolve(repoRoot, "models/tiny-chat-awq");
/** AutoAWQ's own checkpoint of the demo model: the ground truth for the layout (the repo's is awq-ts's). */
const autoAwqDir = resolve(repoRoot, "../shared/models/tiny-chat-awq");

/** A small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("nibble i of a packed word holds output column [0,2,4,6,1,3,5,7][i]", () => {
  // Nibble i holds the value i, so column j shows which nibble it came from.
  const unpacked = unpackAwq(new Int32Array([0x76543210]), 1, 8);
  assert.deepEqual([...unpacked], [0, 4, 1, 5, 2, 6, 3, 7]);
  assert.deepEqual([...unpacked], AWQ_REVERSE_ORDER);
  assert.deepEqual([...packAwq(new Uint8Array([0, 4, 1, 5, 2, 6, 3, 7]), 1, 8)], [0x76543210]);
  // The top nibble makes the int32 negative; it must still unpack as 0..15.
  assert.deepEqual([...unpackAwq(new Int32Array([-1]), 1, 8)], [15, 15, 15, 15, 15, 15, 15, 15]);
});

test("pack/unpack round-trip on random data, both ways", () => {
  const random = rng(42);
  for (const [rows, cols] of [
    [1, 8],
    [3, 16],
    [17, 64],
    [128, 256],
  ]) {
    const values = new Uint8Array(rows * cols); // (rows, cols)
    for (let i = 0; i < values.length; i++) values[i] = Math.floor(random() * 16);
    const packed = packAwq(values, rows, cols); // (rows, cols/8)
    assert.equal(packed.length, (rows * cols) / 8);
    assert.deepEqual(unpackAwq(packed, rows, cols), values);
    const words = new Int32Array((rows * cols) / 8); // (rows, cols/8)
    for (let i = 0; i < words.length; i++) words[i] = Math.floor(random() * 2 ** 32) | 0;
    assert.deepEqual(packAwq(unpackAwq(words, rows, cols), rows, cols), words);
  }
  assert.throws(() => packAwq(new Uint8Array(4), 1, 4), /column count divisible by 8, got 4/);
  assert.throws(
    () => packAwq(new Uint8Array([16, 0, 0, 0, 0, 0, 0, 0]), 1, 8),
    /value 16 at index 0 does not fit/,
  );
  assert.throws(() => unpackAwq(new Int32Array(3), 2, 8), /expected 2 x 1 int32 values, got 3/);
});

test("roundHalfEven matches torch.round", () => {
  assert.deepEqual(
    [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, 2.6, -2.6].map(roundHalfEven),
    [-2, -2, -0, 0, 2, 2, 2, 3, -3],
  );
});

test("groupQuantize: scales/zeros as AutoAWQ computes them, error within half a step", () => {
  const inF = 256;
  const outF = 16;
  const g = 128;
  const random = rng(7);
  const w = new Float32Array(inF * outF); // (in, out)
  for (let i = 0; i < w.length; i++) w[i] = (random() - 0.3) * 0.2;
  const { q, scales, zeros } = groupQuantize(w, inF, outF, g);
  for (let grp = 0; grp < inF / g; grp++) {
    for (let n = 0; n < outF; n++) {
      let min = Infinity;
      let max = -Infinity;
      for (let k = grp * g; k < (grp + 1) * g; k++) {
        min = Math.min(min, w[k * outF + n]);
        max = Math.max(max, w[k * outF + n]);
      }
      const s = scales[grp * outF + n];
      assert.ok(
        Math.abs(s - (max - min) / 15) <= ((max - min) / 15) * 2 ** -10,
        "scale is (max-min)/15 rounded to f16",
      );
      assert.equal(zeros[grp * outF + n], Math.min(15, Math.max(0, roundHalfEven(-min / s))));
      for (let k = grp * g; k < (grp + 1) * g; k++) {
        const deq = (q[k * outF + n] - zeros[grp * outF + n]) * s;
        // Half a step, plus what rounding the scale to f16 can stretch 15 steps by (at the clamped ends).
        const bound = s * (0.5 + 15 * 2 ** -11) + 1e-7;
        assert.ok(Math.abs(deq - w[k * outF + n]) <= bound, `w[${k}][${n}] within half a step`);
      }
    }
  }
  // Clipping bounds the range before the scale is chosen.
  const clip = new Float32Array((inF / g) * outF).fill(0.01); // (in/g, out)
  const clipped = groupQuantize(w, inF, outF, g, { clip });
  for (const s of clipped.scales) assert.ok(Math.abs(s - 0.02 / 15) < 1e-6);
  assert.throws(() => groupQuantize(w, 250, outF, 125), /expected 250 x 16 weights/);
});

for (const [label, dir] of [
  ["AutoAWQ's demo checkpoint (../shared)", autoAwqDir],
  ["the repo's demo checkpoint (awq-ts's quantization)", demoDir],
] as const) {
  test(`${label}: dequantize, re-quantize with its scales/zeros, re-pack gives the same bytes`, async (t) => {
    if (!existsSync(resolve(dir, "config.json"))) return t.skip(`needs ${dir}`);
    await checkRepack(dir);
  });
}

async function checkRepack(dir: string): Promise<void> {
  const config = await loadModelConfig(dir);
  const groupSize = config.quantization!.groupSize;
  const ckpt = await SafetensorsCheckpoint.open(dir);
  try {
    const linears = ckpt
      .names()
      .filter((n) => n.endsWith(".qweight"))
      .map((n) => n.slice(0, -".qweight".length));
    assert.equal(linears.length, config.numLayers * 7);
    for (const linear of linears) {
      const [inF, packedOut] = ckpt.info(`${linear}.qweight`).shape;
      const outF = packedOut * 8;
      const qweight = (await ckpt.read(`${linear}.qweight`)) as Int32Array; // (in, out/8)
      const qzeros = (await ckpt.read(`${linear}.qzeros`)) as Int32Array; // (in/g, out/8)
      const scales = (await ckpt.read(`${linear}.scales`)) as Uint16Array; // (in/g, out)
      const w = dequantizeAwq({ qweight, qzeros, scales }, inF, outF, groupSize); // (in, out)
      assert.ok(
        w.some((v) => v !== 0),
        `${linear} dequantizes to something`,
      );
      const zeros = unpackAwq(qzeros, inF / groupSize, outF); // (in/g, out)
      const q = quantizeWithParams(w, f16ToF32Array(scales), zeros, inF, outF, groupSize); // (in, out)
      assert.deepEqual(packAwq(q, inF, outF), qweight, `${linear}.qweight re-packs to the same bytes`);
      assert.deepEqual(packAwq(zeros, inF / groupSize, outF), qzeros, `${linear}.qzeros`);
    }
  } finally {
    await ckpt.close();
  }
}

test("dequantizeAwq checks shapes", () => {
  const t = { qweight: new Int32Array(32), qzeros: new Int32Array(1), scales: new Uint16Array(8) };
  assert.throws(() => dequantizeAwq(t, 30, 8, 10), /AWQ: qweight has 32 elements, expected \(30, 1\) = 30/);
  assert.throws(() => dequantizeAwq(t, 32, 8, 10), /in_features 32 is not a multiple of the group size 10/);
  const w = dequantizeAwq({ ...t, scales: new Uint16Array(8).fill(0x3c00) }, 32, 8, 32); // all q = 0, z = 0
  assert.ok(w.every((v) => v === 0));
});
