import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { groupQuantize } from "../model/awq.js";
import { CpuQuantMath } from "./cpu-quant-math.js";
import { dequantizeGroups } from "./group-math.js";
import { InputStatsAccumulator } from "./input-stats.js";
import { LayerRunner } from "./layer-runner.js";
import type { FusedLinear } from "./quant-math.js";
import { rand } from "./random.test-helper.js";
import { tinyConfig } from "./tiny-config.test-helper.js";

/** A small GQA layer: q 2 heads, k/v 1 head of 32. */
const config = tinyConfig({ intermediateSize: 128, numHeads: 2, headDim: 32 });
const SEQLEN = 8;
const GROUP = 32;
const LINEARS: readonly FusedLinear[] = ["qkv", "o", "gateUp", "down"];

describe("CpuQuantMath", () => {
  const math = new CpuQuantMath(config, SEQLEN);
  const runner = new LayerRunner(config, SEQLEN);
  after(async () => {
    await math.dispose();
    await runner.dispose();
  });
  const r = rand(5);
  const weights = Object.fromEntries(
    LINEARS.map((w) => [
      w,
      Float32Array.from({ length: math.inFeatures(w) * math.outFeatures(w) }, () => r() * 0.2),
    ]),
  ) as Record<FusedLinear, Float32Array>;
  const norms = {
    inputNorm: Float32Array.from({ length: 64 }, () => 1 + r() * 0.2), // (hidden)
    postAttentionNorm: Float32Array.from({ length: 64 }, () => 1 + r() * 0.2), // (hidden)
  };
  const x = Float32Array.from({ length: 3 * SEQLEN * 64 }, () => r()); // (3 * seqlen, hidden)

  test("fused linear shapes, and a weight of the wrong size is refused", async () => {
    assert.deepEqual(
      LINEARS.map((w) => [math.inFeatures(w), math.outFeatures(w)]),
      [
        [64, 128],
        [64, 64],
        [64, 256],
        [128, 64],
      ],
    );
    await assert.rejects(math.uploadWeight("o", new Float32Array(10)), /o weights must be \(64, 64\)/);
  });

  test("activations: upload, block count, clone of chosen blocks, copy, mean squared error", async () => {
    const a = await math.uploadActivations(x);
    assert.equal(math.blockCount(a), 3);
    const picked = math.cloneActivations(a, [2, 0]);
    const back = await math.downloadActivations(picked);
    const span = SEQLEN * 64;
    assert.deepEqual(back.subarray(0, span), x.subarray(2 * span, 3 * span));
    assert.deepEqual(back.subarray(span), x.subarray(0, span));
    const other = math.cloneActivations(a, [0, 1]);
    const expected = back.reduce((sum, v, i) => sum + (v - x[i]) ** 2, 0) / back.length;
    assert.ok(Math.abs((await math.meanSquaredError(picked, other)) - expected) < 1e-12 * (1 + expected));
    math.copyActivations(other, picked);
    assert.equal(await math.meanSquaredError(picked, other), 0);
    assert.throws(() => math.copyActivations(a, picked), /copy of 2 blocks into 3 blocks/);
    await assert.rejects(
      math.uploadActivations(new Float32Array(5)),
      /activations must be \(blocks \* 8, 64\)/,
    );
  });

  test("forward with capture equals the layer runner with an input-stats accumulator", async () => {
    for (const w of LINEARS) math.setLinear(w, await math.uploadWeight(w, weights[w]));
    const a = await math.uploadActivations(x);
    const stats = await math.forward(a, norms, "layer", "gateUp");
    assert.ok(stats !== undefined);

    runner.setLayer({ ...norms, ...weights });
    const ref = x.slice(); // (3 * seqlen, hidden)
    const acc = new InputStatsAccumulator(runner, 64, SEQLEN);
    await runner.forward(ref, norms, [0, 1, 2], (linear, input) => {
      if (linear === "gateUp") acc.add(input);
    });
    const want = acc.finish();
    assert.deepEqual(await math.downloadActivations(a), ref);
    assert.equal(stats.tokens, 3 * SEQLEN);
    assert.deepEqual(stats.absMean, want.absMean);
    assert.deepEqual(stats.gram.data, want.gram);
    assert.equal(await math.forward(a, norms, "mlp"), undefined);
  });

  test("rounding ops: quantize / dequantize, pseudo-quantization, row scaling, column division", async () => {
    const w = await math.uploadWeight("gateUp", weights.gateUp);
    const q = math.groupQuantize(w, GROUP);
    const deq = math.dequantize(q).data;
    assert.deepEqual(deq, dequantizeGroups(groupQuantize(weights.gateUp, 64, 256, GROUP), 64, 256, GROUP));
    assert.deepEqual(math.pseudoQuantizeScaled(w, null, GROUP).data, deq);
    const s = Float32Array.from({ length: 64 }, (_, k) => 1 + (k % 5) * 0.25); // (in)
    const back = math.scaleRows(math.scaleRows(w, s), s, true).data;
    for (let i = 0; i < back.length; i++) assert.ok(Math.abs(back[i] - weights.gateUp[i]) < 1e-6);

    const before = await math.downloadQuantized(math.groupQuantize(w, GROUP));
    const scales = before.scales.slice(); // (in/g, out)
    const divided = math.groupQuantize(w, GROUP);
    math.divideQuantizedColumns(divided, new Float32Array(128).fill(2), 128);
    const after = await math.downloadQuantized(divided);
    for (let i = 0; i < scales.length; i++) {
      const n = i % 256;
      if (n < 128) assert.equal(after.scales[i], scales[i]);
      else assert.ok(Math.abs(after.scales[i] - scales[i] / 2) <= 1e-3 * scales[i]);
    }
    assert.throws(
      () => math.divideQuantizedColumns(divided, new Float32Array(200), 128),
      /outside 256 columns/,
    );
  });

  test("clip search, clip ratios, GPTQ, the column choice and weight salience keep their invariants", async () => {
    for (const w of LINEARS) math.setLinear(w, await math.uploadWeight(w, weights[w]));
    const a = await math.uploadActivations(x);
    const stats = await math.forward(a, norms, "layer", "down");
    assert.ok(stats !== undefined);
    const w = await math.uploadWeight("down", weights.down);
    const input = { w, groupSize: GROUP, gram: stats.gram, rowScale: null };
    const clip = math.searchClip(input, [[0, 8]]);
    assert.equal(clip.data.length, (128 / GROUP) * 64);
    const ratio = math.clipRatios(w, clip, GROUP);
    for (let i = 0; i < ratio.data.length; i++) {
      assert.ok(ratio.data[i] > 0 && ratio.data[i] <= 1);
      if (i % 64 < 8) assert.equal(ratio.data[i], 1);
    }
    const rtn = math.groupQuantize(w, GROUP);
    const refined = math.gptqQuantize(input);
    const { mixed, taken } = await math.chooseColumns(input, rtn, refined, [[0, 4]]);
    assert.ok(taken > 0 && taken <= 60, `taken ${taken}`);
    const got = await math.downloadQuantized(mixed);
    const base = await math.downloadQuantized(rtn);
    for (let k = 0; k < 128; k++)
      for (let n = 0; n < 4; n++) assert.equal(got.q[k * 64 + n], base.q[k * 64 + n]);
    assert.equal(math.gptqMaxInFeatures >= 128, true);
    const salience = await math.weightSalience(w, GROUP);
    assert.equal(salience.length, 128);
    for (const v of salience) assert.ok(v > 0 && v <= 1);
  });
});
