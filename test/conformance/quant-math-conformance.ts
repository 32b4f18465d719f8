/**
 * The conformance suite every QuantMath implementation passes (hono-style: one file, run per implementation):
 * test/quant-math-conformance-cpu.test.ts runs it on CpuQuantMath in `npm test`, test/gpu/quant-cuda.test.ts
 * on CudaQuantMath. One layer of the demo model's shape (hidden 256, 4 heads of 64, 2 KV heads, intermediate
 * 768, groups of 128; the CUDA kernels' smallest supported shape) on three calibration blocks of 64 tokens.
 *
 * Every implementation is held to references that do not go through QuantMath: the CPU backend's layer code
 * (LayerRunner) with an InputStatsAccumulator for the forward and its statistics, model/awq.ts for rounding,
 * plain arithmetic for activations and scaling, and the invariants of the search ops. An implementation that
 * is not the CPU one is also compared op by op with CpuQuantMath (`compareWithCpu`).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { groupQuantize } from "../../src/model/awq.js";
import { type CpuQuantized, CpuQuantMath } from "../../src/quant/cpu-quant-math.js";
import { dequantizeGroups, roundF16 } from "../../src/quant/group-math.js";
import { InputStatsAccumulator } from "../../src/quant/input-stats.js";
import { LayerRunner } from "../../src/quant/layer-runner.js";
import type { FusedLinear, LayerPart, QuantMath } from "../../src/quant/quant-math.js";
import { rand } from "../../src/quant/random.test-helper.js";
import { tinyConfig } from "../../src/quant/tiny-config.test-helper.js";

export const QUANT_CONFORMANCE_CONFIG = tinyConfig({
  hiddenSize: 256,
  intermediateSize: 768,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 64,
  vocabSize: 32,
  maxPositionEmbeddings: 2048,
});
export const QUANT_CONFORMANCE_SEQLEN = 64;
const SEQLEN = QUANT_CONFORMANCE_SEQLEN;
const BLOCKS = 3;
const GROUP = 128;
const HIDDEN = QUANT_CONFORMANCE_CONFIG.hiddenSize;
const LINEARS: readonly FusedLinear[] = ["qkv", "o", "gateUp", "down"];
/** (in, out) of each fused linear at this shape. */
const SHAPES: Record<FusedLinear, [number, number]> = {
  qkv: [256, 512],
  o: [256, 256],
  gateUp: [256, 1536],
  down: [768, 256],
};

/** An implementation under test and the few ways to see inside its handles that the interface leaves out. */
export interface QuantMathSubject<W, Q, A, G, C> {
  readonly math: QuantMath<W, Q, A, G, C>;
  /** A weight-shaped handle (weights, dequantized or scaled weights) or a C (clip bounds, ratios), row-major. */
  readMatrix(m: W | C): Promise<Float32Array>;
  /** A captured Gram matrix, (n, n) row-major. */
  readGram(g: G): Promise<ArrayLike<number>>;
  /** A Gram matrix handle holding host values (both sides then search on the same statistics). */
  gramOf(data: Float64Array, n: number): G;
}

export interface QuantMathConformanceOptions {
  /**
   * Relative error allowed against the f32 CPU layer in the forward's residual update and its captured
   * statistics (0: bit for bit, the CPU implementation itself; the CUDA layer computes in fp16).
   */
  forwardTolerance: { residual: number; absMean: number; gram: number };
  /** Also compare op by op with CpuQuantMath (omit when testing the CPU implementation itself). */
  compareWithCpu?: boolean;
  /** A reason to skip every test (no GPU). */
  skip?: string;
}

/** ||a - b|| / ||b||. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function shareEqual(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

/** Bit for bit when tolerance is 0, else within `tolerance` relative error. */
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tolerance: number, what: string): void {
  if (tolerance === 0) {
    assert.deepEqual(Array.from(got), Array.from(want), what);
    return;
  }
  const e = relError(got, want);
  assert.ok(e <= tolerance, `${what}: relative error ${e} above ${tolerance}`);
}

/** The layer's data: f16-exact weights and norms (the GPU layer keeps fp16 weights), random activations. */
export function conformanceLayer(seed: number) {
  const r = rand(seed);
  const weights = Object.fromEntries(
    LINEARS.map((w) => {
      const [inF, outF] = SHAPES[w];
      return [w, Float32Array.from({ length: inF * outF }, () => roundF16(r() * 0.15))]; // (in, out)
    }),
  ) as Record<FusedLinear, Float32Array>;
  const norms = {
    inputNorm: Float32Array.from({ length: HIDDEN }, () => roundF16(1 + r() * 0.2)), // (hidden)
    postAttentionNorm: Float32Array.from({ length: HIDDEN }, () => roundF16(1 + r() * 0.2)), // (hidden)
  };
  const x = Float32Array.from({ length: BLOCKS * SEQLEN * HIDDEN }, () => r()); // (blocks * seqlen, hidden)
  return { weights, norms, x, r };
}

export function runQuantMathConformance<W, Q, A, G, C>(
  name: string,
  create: () => Promise<QuantMathSubject<W, Q, A, G, C>>,
  opts: QuantMathConformanceOptions,
): void {
  describe(`QuantMath conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    let subject: QuantMathSubject<W, Q, A, G, C>;
    let math: QuantMath<W, Q, A, G, C>;
    let runner: LayerRunner;
    let cpu: CpuQuantMath;
    const { weights, norms, x, r } = conformanceLayer(11);

    before(async () => {
      subject = await create();
      math = subject.math;
      for (const w of LINEARS) {
        const handle = await math.uploadWeight(w, weights[w]);
        math.setLinear(w, handle);
        math.release(handle);
      }
      runner = new LayerRunner(QUANT_CONFORMANCE_CONFIG, SEQLEN);
      runner.setLayer({ ...norms, ...weights });
      cpu = new CpuQuantMath(QUANT_CONFORMANCE_CONFIG, SEQLEN);
      for (const w of LINEARS) cpu.setLinear(w, await cpu.uploadWeight(w, weights[w]));
    });
    after(async () => {
      await math?.dispose();
      await runner?.dispose();
      await cpu?.dispose();
    });

    test("fused linear shapes, and arguments of the wrong size are refused naming them", async () => {
      for (const w of LINEARS) assert.deepEqual([math.inFeatures(w), math.outFeatures(w)], SHAPES[w], w);
      assert.ok(math.gptqMaxInFeatures >= SHAPES.down[0], `GPTQ bound ${math.gptqMaxInFeatures}`);
      await assert.rejects(math.uploadWeight("o", new Float32Array(10)), /o weights must be \(256, 256\)/);
      const w = await math.uploadWeight("o", weights.o);
      assert.throws(() => math.scaleRows(w, new Float32Array(3)), /s has 3 values, expected 256/);
      const q = math.groupQuantize(w, GROUP);
      assert.throws(() => math.divideQuantizedColumns(q, new Float32Array(200), 100), /outside 256 columns/);
      math.release(w, q);
      math.release(w); // twice: harmless
    });

    test("activations: upload, block count, clone of chosen blocks, copy, mean squared error", async () => {
      const a = await math.uploadActivations(x);
      assert.equal(math.blockCount(a), BLOCKS);
      const picked = math.cloneActivations(a, [2, 0]);
      const back = await math.downloadActivations(picked);
      const span = SEQLEN * HIDDEN;
      assert.deepEqual(back.subarray(0, span), x.subarray(2 * span, 3 * span));
      assert.deepEqual(back.subarray(span), x.subarray(0, span));
      const y = x.map((v, i) => v + (i % 7) * 0.01);
      const b = await math.uploadActivations(y);
      const want = y.reduce((sum, v, i) => sum + (v - x[i]) ** 2, 0) / x.length;
      const got = await math.meanSquaredError(a, b);
      assert.ok(Math.abs(got - want) <= 1e-6 * want, `mse ${got} vs ${want}`);
      const whole = math.cloneActivations(a);
      math.copyActivations(whole, b);
      assert.equal(await math.meanSquaredError(whole, b), 0);
      assert.deepEqual(await math.downloadActivations(a), x, "the source of a clone is untouched");
      assert.throws(() => math.cloneActivations(a, [3]), /block 3 out of range \(3 blocks\)/);
      assert.throws(() => math.cloneActivations(a, []), /empty block list/);
      assert.throws(() => math.copyActivations(a, picked), /copy of 2 blocks into 3 blocks/);
      await assert.rejects(async () => math.meanSquaredError(a, picked), /3 blocks against 2 blocks/);
      await assert.rejects(
        math.uploadActivations(new Float32Array(5)),
        /activations must be \(blocks \* 64, 256\)/,
      );
      math.release(a, picked, b, whole);
    });

    const cases: [LayerPart, FusedLinear | undefined][] = [
      ["layer", undefined],
      ["layer", "qkv"],
      ["layer", "o"],
      ["layer", "gateUp"],
      ["layer", "down"],
      ["attention", "o"],
      ["mlp", "gateUp"],
    ];
    for (const [part, capture] of cases) {
      test(`forward ${part}${capture ? ` capturing ${capture}` : ""} equals the CPU layer and its input statistics`, async () => {
        const tol = opts.forwardTolerance;
        const h = await math.uploadActivations(x);
        const stats = await math.forward(h, norms, part, capture);
        const got = await math.downloadActivations(h);
        math.release(h);

        const want = x.slice(); // (blocks * seqlen, hidden)
        const acc =
          capture === undefined ? null : new InputStatsAccumulator(runner, SHAPES[capture][0], SEQLEN);
        await runner.forward(
          want,
          norms,
          [0, 1, 2],
          (linear, input) => {
            if (linear === capture) acc?.add(input);
          },
          part,
        );
        // The update of the residual stream (h - x): the part of h the layer computed.
        const update = (out: Float32Array) => out.map((v, i) => v - x[i]);
        assertClose(
          tol.residual === 0 ? got : update(got),
          tol.residual === 0 ? want : update(want),
          tol.residual,
          "h",
        );
        if (acc === null) {
          assert.equal(stats, undefined);
          return;
        }
        assert.ok(stats !== undefined);
        const ref = acc.finish();
        assert.equal(stats.inFeatures, ref.inFeatures);
        assert.equal(stats.tokens, BLOCKS * SEQLEN);
        assert.equal(stats.tokens, ref.tokens);
        assertClose(stats.absMean, ref.absMean, tol.absMean, "absMean");
        assertClose(await subject.readGram(stats.gram), ref.gram, tol.gram, "gram");
        math.release(stats.gram);
      });
    }

    test("a capture outside the part run is refused", async () => {
      const h = await math.uploadActivations(x);
      await assert.rejects(
        async () => math.forward(h, norms, "mlp", "qkv"),
        /capture qkv is not part of the mlp half/,
      );
      await assert.rejects(
        async () => math.forward(h, norms, "attention", "down"),
        /capture down is not part/,
      );
      math.release(h);
    });

    test("rounding: group quantization and dequantization as model/awq.ts, pseudo-quantization, row scaling, column division", async () => {
      const [inF, outF] = SHAPES.gateUp;
      const w = await math.uploadWeight("gateUp", weights.gateUp);
      const q = math.groupQuantize(w, GROUP);
      const want = groupQuantize(weights.gateUp, inF, outF, GROUP);
      const got = await math.downloadQuantized(q);
      assert.deepEqual(got.q, want.q);
      assert.deepEqual(got.scales, want.scales);
      assert.deepEqual(got.zeros, want.zeros);
      const deq = math.dequantize(q);
      const deqWant = dequantizeGroups(want, inF, outF, GROUP);
      assert.deepEqual(await subject.readMatrix(deq), deqWant);
      const pseudo = math.pseudoQuantizeScaled(w, null, GROUP);
      assert.deepEqual(await subject.readMatrix(pseudo), deqWant);

      const s = Float32Array.from({ length: inF }, (_, k) => 1 + (k % 5) * 0.25); // (in)
      const scaled = math.scaleRows(w, s);
      const back = math.scaleRows(scaled, s, true);
      const scaledHost = await subject.readMatrix(scaled);
      const backHost = await subject.readMatrix(back);
      for (let i = 0; i < backHost.length; i++) {
        const k = Math.floor(i / outF);
        assert.equal(scaledHost[i], Math.fround(weights.gateUp[i] * s[k]));
        assert.ok(Math.abs(backHost[i] - weights.gateUp[i]) <= 1e-6 * Math.abs(weights.gateUp[i]) + 1e-12);
      }

      const divisors = Float32Array.from({ length: 100 }, (_, j) => 0.5 + (j % 9) * 0.25); // (100) columns 700..799
      math.divideQuantizedColumns(q, divisors, 700);
      const divided = await math.downloadQuantized(q);
      assert.deepEqual(divided.q, want.q);
      for (let i = 0; i < want.scales.length; i++) {
        const n = i % outF;
        const expected = n >= 700 && n < 800 ? want.scales[i] / divisors[n - 700] : want.scales[i];
        assert.ok(Math.abs(divided.scales[i] - expected) <= 1e-3 * Math.abs(expected), `scale ${i}`);
      }
      math.release(w, q, deq, pseudo, scaled, back);
    });

    test("search ops keep their invariants: clip bounds and ratios, GPTQ, the column choice, weight salience", async () => {
      const [inF, outF] = SHAPES.down;
      const h = await math.uploadActivations(x);
      const stats = await math.forward(h, norms, "layer", "down");
      assert.ok(stats !== undefined);
      const w = await math.uploadWeight("down", weights.down);
      const input = { w, groupSize: GROUP, gram: stats.gram, rowScale: null };
      const clip = math.searchClip(input, [[0, 8]]);
      assert.equal((await subject.readMatrix(clip)).length, (inF / GROUP) * outF);
      const ratios = await subject.readMatrix(math.clipRatios(w, clip, GROUP));
      for (let i = 0; i < ratios.length; i++) {
        assert.ok(ratios[i] > 0 && ratios[i] <= 1, `ratio ${i}: ${ratios[i]}`);
        if (i % outF < 8) assert.equal(ratios[i], 1, `column ${i % outF} must stay unclipped`);
      }
      const rtn = math.groupQuantize(w, GROUP);
      const refined = math.gptqQuantize(input);
      const { mixed, taken } = await math.chooseColumns(input, rtn, refined, [[0, 4]]);
      assert.ok(taken > 0 && taken <= outF - 4, `taken ${taken}`);
      const got = await math.downloadQuantized(mixed);
      const base = await math.downloadQuantized(rtn);
      for (let k = 0; k < inF; k++) {
        for (let n = 0; n < 4; n++) assert.equal(got.q[k * outF + n], base.q[k * outF + n]);
      }
      const salience = await math.weightSalience(w, GROUP);
      assert.equal(salience.length, inF);
      for (const v of salience) assert.ok(v > 0 && v <= 1);
      math.release(h, stats.gram, w, clip, rtn, refined, mixed);
    });

    test("op by op against CpuQuantMath: salience, scaling, rounding, clip search, GPTQ, column choice", async (t) => {
      if (!opts.compareWithCpu) return t.skip("this implementation is the CPU reference itself");
      const which: FusedLinear = "gateUp";
      const wc = await cpu.uploadWeight(which, weights[which]);
      const wg = await math.uploadWeight(which, weights[which]);
      const s = Float32Array.from({ length: 256 }, () => 0.5 + Math.abs(r()) * 2); // (in)
      assert.ok(relError(await math.weightSalience(wg, GROUP), await cpu.weightSalience(wc, GROUP)) < 1e-9);
      for (const divide of [false, true]) {
        const g = math.scaleRows(wg, s, divide);
        assert.deepEqual(
          await subject.readMatrix(g),
          cpu.scaleRows(wc, s, divide).data,
          `scaleRows divide=${divide}`,
        );
        math.release(g);
      }
      const pg = math.pseudoQuantizeScaled(wg, s, GROUP);
      assert.deepEqual(await subject.readMatrix(pg), cpu.pseudoQuantizeScaled(wc, s, GROUP).data);
      const qc = cpu.groupQuantize(wc, GROUP);
      const qg = math.groupQuantize(wg, GROUP);
      const cols = Float32Array.from({ length: 100 }, () => 0.5 + Math.abs(r()));
      cpu.divideQuantizedColumns(qc, cols, 700);
      math.divideQuantizedColumns(qg, cols, 700);
      assert.deepEqual((await math.downloadQuantized(qg)).scales, qc.gq.scales);
      math.release(wg, pg, qg);

      for (const linear of ["qkv", "down"] as const) {
        // The CPU's Gram matrix on both sides (the captured ones differ by the forward's tolerance, checked above).
        const hc = await cpu.uploadActivations(x);
        const sc = await cpu.forward(hc, norms, "layer", linear);
        assert.ok(sc);
        const gram = subject.gramOf(sc.gram.data, sc.inFeatures);
        const wcl = await cpu.uploadWeight(linear, weights[linear]);
        const wgl = await math.uploadWeight(linear, weights[linear]);
        const { inF, outF } = wcl;
        const rowScale = Float32Array.from({ length: inF }, () => 0.5 + Math.abs(r()) * 2); // (in)
        const scaledC = cpu.scaleRows(wcl, rowScale);
        const scaledG = math.scaleRows(wgl, rowScale);
        const noClip: [number, number][] = linear === "qkv" ? [[0, 384]] : [];
        const bc = cpu.searchClip({ w: scaledC, groupSize: GROUP, gram: sc.gram, rowScale }, noClip);
        const bg = math.searchClip({ w: scaledG, groupSize: GROUP, gram, rowScale }, noClip);
        const boundsG = await subject.readMatrix(bg);
        const same = shareEqual(boundsG, bc.data);
        assert.ok(same > 0.98, `${linear}: ${same} of the clip bounds identical`);
        // The same bounds in: the clipped rounding and the ratios are exact.
        const cpuOnSameBounds = { data: boundsG, groups: bc.groups, outF: bc.outF };
        const qcl = cpu.groupQuantize(scaledC, GROUP, cpuOnSameBounds);
        const qgl = math.groupQuantize(scaledG, GROUP, bg);
        const dq = await math.downloadQuantized(qgl);
        assert.deepEqual(dq.q, qcl.gq.q);
        assert.deepEqual(dq.scales, qcl.gq.scales);
        const rg = math.clipRatios(scaledG, bg, GROUP);
        const rc = cpu.clipRatios(scaledC, cpuOnSameBounds, GROUP);
        assert.deepEqual(await subject.readMatrix(rg), rc.data);

        // GPTQ (clipped by the ratios) close to the CPU's, then the column choice against plain rounding.
        const gc = cpu.gptqQuantize({ w: scaledC, groupSize: GROUP, gram: sc.gram, rowScale }, rc);
        const gg = math.gptqQuantize({ w: scaledG, groupSize: GROUP, gram, rowScale }, rg);
        const dgg = await math.downloadQuantized(gg);
        const qSame = shareEqual(dgg.q, gc.gq.q);
        assert.ok(qSame > 0.9, `${linear}: ${qSame} of the GPTQ q values identical`);
        const deqG = math.dequantize(gg);
        const deqErr = relError(await subject.readMatrix(deqG), cpu.dequantize(gc).data);
        assert.ok(deqErr < 0.05, `${linear}: GPTQ dequantized relative difference ${deqErr}`);

        // chooseColumns on identical roundings (the subject's), the same Gram matrix: the same choice mostly.
        const asCpu = (g: { q: Uint8Array; scales: Float32Array; zeros: Uint8Array }): CpuQuantized => ({
          gq: g,
          inF,
          outF,
          groupSize: GROUP,
        });
        const keep: [number, number][] = linear === "qkv" ? [[0, 384]] : [];
        const mc = await cpu.chooseColumns(
          { w: scaledC, groupSize: GROUP, gram: sc.gram, rowScale },
          asCpu(dq),
          asCpu(dgg),
          keep,
        );
        const mg = await math.chooseColumns({ w: scaledG, groupSize: GROUP, gram, rowScale }, qgl, gg, keep);
        assert.ok(
          Math.abs(mg.taken - mc.taken) <= Math.max(3, 0.05 * outF),
          `${linear}: taken ${mg.taken} vs ${mc.taken}`,
        );
        const mixed = await math.downloadQuantized(mg.mixed);
        assert.ok(shareEqual(mixed.q, mc.mixed.gq.q) > 0.95, `${linear}: mixed q mostly identical`);
        if (linear === "qkv") {
          for (let k = 0; k < inF; k++) {
            for (let n = 0; n < 384; n++) assert.equal(mixed.q[k * outF + n], dq.q[k * outF + n]);
          }
        }
        math.release(gram, wgl, scaledG, bg, qgl, rg, gg, deqG, mg.mixed);
      }
    });
  });
}
