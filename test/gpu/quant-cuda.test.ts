/**
 * CudaQuantMath (awq quantize --backend cuda) op by op against CpuQuantMath, the numerical reference, on small
 * random problems with the demo model's layer shape (hidden 256, 4 heads of 64, 2 KV heads, intermediate 768,
 * groups of 128): the layer forward and each linear's captured statistics within fp16 tolerance (the GPU layer
 * computes in fp16 like the CUDA engine), the rounding ops bit for bit, clip search mostly identical, GPTQ and
 * the column choice close; and many alloc/release cycles without growth of GPU memory.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ModelConfig } from "../../src/model/types.js";
import { type CpuQuantized, CpuQuantMath } from "../../src/quant/cpu-quant-math.js";
import { CudaQuantMath } from "../../src/quant/cuda-quant-math.js";
import { roundF16 } from "../../src/quant/group-math.js";
import type { FusedLinear, LayerPart } from "../../src/quant/quant-math.js";
import { rand } from "../../src/quant/random.test-helper.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();

const config: ModelConfig = {
  architecture: "LlamaForCausalLM",
  hiddenSize: 256,
  intermediateSize: 768,
  numLayers: 1,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 64,
  vocabSize: 32,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 2048,
  tieWordEmbeddings: true,
  dtype: "float16",
  bosTokenId: null,
  eosTokenIds: [],
  quantization: null,
};
const SEQLEN = 64;
const BLOCKS = 3;
const GROUP = 128;
const HIDDEN = config.hiddenSize;
const LINEARS: readonly FusedLinear[] = ["qkv", "o", "gateUp", "down"];

/** ||a - b|| / ||b||. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
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

describe("CudaQuantMath against CpuQuantMath", { skip: unavailable ?? false }, () => {
  let gpu: CudaQuantMath;
  let cpu: CpuQuantMath;
  const r = rand(11);
  // f16-exact weights and norms: both sides then start from the same values (the GPU layer keeps fp16 weights).
  const weights = Object.fromEntries(
    LINEARS.map((w) => {
      const inF = w === "o" ? 256 : w === "down" ? 768 : 256;
      const outF = { qkv: 512, o: 256, gateUp: 1536, down: 256 }[w];
      return [w, Float32Array.from({ length: inF * outF }, () => roundF16(r() * 0.15))];
    }),
  ) as Record<FusedLinear, Float32Array>;
  const norms = {
    inputNorm: Float32Array.from({ length: HIDDEN }, () => roundF16(1 + r() * 0.2)), // (hidden)
    postAttentionNorm: Float32Array.from({ length: HIDDEN }, () => roundF16(1 + r() * 0.2)), // (hidden)
  };
  const x = Float32Array.from({ length: BLOCKS * SEQLEN * HIDDEN }, () => r()); // (blocks * seqlen, hidden)

  before(async () => {
    // Two blocks per chunk: three blocks run as a full chunk and a partial one.
    gpu = await CudaQuantMath.create(config, SEQLEN, { chunkTokens: 2 * SEQLEN });
    cpu = new CpuQuantMath(config, SEQLEN);
    for (const w of LINEARS) {
      const g = await gpu.uploadWeight(w, weights[w]);
      gpu.setLinear(w, g);
      gpu.release(g);
      cpu.setLinear(w, await cpu.uploadWeight(w, weights[w]));
    }
  });
  after(async () => {
    await gpu?.dispose();
    await cpu?.dispose();
  });

  test("shapes, and arguments of the wrong size are refused naming them", async () => {
    for (const w of LINEARS) {
      assert.equal(gpu.inFeatures(w), cpu.inFeatures(w));
      assert.equal(gpu.outFeatures(w), cpu.outFeatures(w));
    }
    assert.equal(gpu.gptqMaxInFeatures, cpu.gptqMaxInFeatures);
    await assert.rejects(gpu.uploadWeight("o", new Float32Array(10)), /o weights must be \(256, 256\)/);
    const w = await gpu.uploadWeight("o", weights.o);
    assert.throws(() => gpu.scaleRows(w, new Float32Array(3)), /s has 3 values, expected 256/);
    const bounds = { kind: "groups", id: -5, groups: 2, outF: 256 } as const;
    assert.throws(() => gpu.groupQuantize(w, GROUP, bounds), /does not exist/);
    gpu.release(w);
    gpu.release(w); // twice: harmless
  });

  test("activations: upload, clone of chosen blocks, copy, mean squared error", async () => {
    const a = await gpu.uploadActivations(x);
    assert.equal(gpu.blockCount(a), BLOCKS);
    const picked = gpu.cloneActivations(a, [2, 0]);
    const back = await gpu.downloadActivations(picked);
    const span = SEQLEN * HIDDEN;
    assert.deepEqual(back.subarray(0, span), x.subarray(2 * span, 3 * span));
    assert.deepEqual(back.subarray(span), x.subarray(0, span));
    const b = gpu.cloneActivations(a);
    const y = x.map((v, i) => v + (i % 7) * 0.01);
    const c = await gpu.uploadActivations(y);
    const want = await cpu.meanSquaredError(await cpu.uploadActivations(x), await cpu.uploadActivations(y));
    const got = await gpu.meanSquaredError(b, c);
    assert.ok(Math.abs(got - want) <= 1e-6 * want, `mse ${got} vs ${want}`);
    gpu.copyActivations(b, c);
    assert.equal(await gpu.meanSquaredError(b, c), 0);
    assert.throws(() => gpu.cloneActivations(a, [3]), /block 3 out of range/);
    gpu.release(a, picked, b, c);
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
    test(`forward ${part}${capture ? ` capturing ${capture}` : ""} matches the CPU within fp16 tolerance`, async () => {
      const hg = await gpu.uploadActivations(x);
      const hc = await cpu.uploadActivations(x);
      const sg = await gpu.forward(hg, norms, part, capture);
      const sc = await cpu.forward(hc, norms, part, capture);
      const outG = await gpu.downloadActivations(hg);
      const outC = await cpu.downloadActivations(hc);
      const deltaG = outG.map((v, i) => v - x[i]);
      const deltaC = outC.map((v, i) => v - x[i]);
      const e = relError(deltaG, deltaC);
      assert.ok(e < 2e-2, `h delta relative error ${e}`);
      if (capture === undefined) {
        assert.equal(sg, undefined);
      } else {
        assert.ok(sg !== undefined && sc !== undefined);
        assert.equal(sg.inFeatures, sc.inFeatures);
        assert.equal(sg.tokens, BLOCKS * SEQLEN);
        assert.equal(sg.tokens, sc.tokens);
        const ea = relError(sg.absMean, sc.absMean);
        assert.ok(ea < 2e-2, `absMean relative error ${ea}`);
        const gram = await gpu.downloadMatrix(sg.gram);
        const eg = relError(gram, sc.gram.data);
        assert.ok(eg < 3e-2, `gram relative error ${eg}`);
        gpu.release(sg.gram);
      }
      gpu.release(hg);
    });
  }

  test("a capture outside the part run is refused", async () => {
    const h = await gpu.uploadActivations(x);
    await assert.rejects(
      async () => gpu.forward(h, norms, "mlp", "qkv"),
      /capture qkv is not part of the mlp half/,
    );
    gpu.release(h);
  });

  test("weight math: salience, scaleRows, groupQuantize, dequantize, pseudoQuantizeScaled, divideQuantizedColumns", async () => {
    const which: FusedLinear = "gateUp";
    const wc = await cpu.uploadWeight(which, weights[which]);
    const wg = await gpu.uploadWeight(which, weights[which]);
    const s = Float32Array.from({ length: 256 }, () => 0.5 + Math.abs(r()) * 2); // (in)
    const salC = await cpu.weightSalience(wc, GROUP);
    const salG = await gpu.weightSalience(wg, GROUP);
    assert.ok(relError(salG, salC) < 1e-9);

    for (const divide of [false, true]) {
      const c = cpu.scaleRows(wc, s, divide);
      const g = gpu.scaleRows(wg, s, divide);
      assert.deepEqual(await gpu.downloadMatrix(g), c.data, `scaleRows divide=${divide}`);
      gpu.release(g);
    }
    const qc = cpu.groupQuantize(wc, GROUP);
    const qg = gpu.groupQuantize(wg, GROUP);
    const dq = await gpu.downloadQuantized(qg);
    assert.deepEqual(dq.q, qc.gq.q);
    assert.deepEqual(dq.scales, qc.gq.scales);
    assert.deepEqual(dq.zeros, qc.gq.zeros);
    const deqG = gpu.dequantize(qg);
    assert.deepEqual(await gpu.downloadMatrix(deqG), cpu.dequantize(qc).data);
    for (const scale of [null, s]) {
      const pg = gpu.pseudoQuantizeScaled(wg, scale, GROUP);
      assert.deepEqual(await gpu.downloadMatrix(pg), cpu.pseudoQuantizeScaled(wc, scale, GROUP).data);
      gpu.release(pg);
    }
    const cols = Float32Array.from({ length: 100 }, () => 0.5 + Math.abs(r()));
    cpu.divideQuantizedColumns(qc, cols, 700);
    gpu.divideQuantizedColumns(qg, cols, 700);
    assert.deepEqual((await gpu.downloadQuantized(qg)).scales, qc.gq.scales);
    assert.throws(() => gpu.divideQuantizedColumns(qg, cols, 1500), /outside 1536 columns/);
    gpu.release(wg, qg, deqG);
  });

  test("clip search mostly identical, clipped rounding and clip ratios exact on the same bounds", async () => {
    for (const which of ["qkv", "down"] as const) {
      // The CPU's Gram matrix on both sides (the captured ones differ by fp16 rounding, checked above).
      const hc = await cpu.uploadActivations(x);
      const sc = await cpu.forward(hc, norms, "layer", which);
      assert.ok(sc);
      const sg = { gram: gpu.uploadGram(sc.gram.data, sc.inFeatures) };
      const wc = await cpu.uploadWeight(which, weights[which]);
      const wg = await gpu.uploadWeight(which, weights[which]);
      const inF = wc.inF;
      const rowScale = Float32Array.from({ length: inF }, () => 0.5 + Math.abs(r()) * 2); // (in)
      const scaledC = cpu.scaleRows(wc, rowScale);
      const scaledG = gpu.scaleRows(wg, rowScale);
      const noClip: [number, number][] = which === "qkv" ? [[0, 384]] : [];
      const bc = cpu.searchClip({ w: scaledC, groupSize: GROUP, gram: sc.gram, rowScale }, noClip);
      const bg = gpu.searchClip({ w: scaledG, groupSize: GROUP, gram: sg.gram, rowScale }, noClip);
      const boundsG = await gpu.downloadMatrix(bg);
      const same = shareEqual(boundsG, bc.data);
      assert.ok(same > 0.98, `${which}: ${same} of the clip bounds identical`);
      // Same bounds in: the clipped rounding and the ratios are exact.
      const cpuOnGpuBounds = { data: boundsG, groups: bc.groups, outF: bc.outF };
      const qc = cpu.groupQuantize(scaledC, GROUP, cpuOnGpuBounds);
      const qg = gpu.groupQuantize(scaledG, GROUP, bg);
      const dq = await gpu.downloadQuantized(qg);
      assert.deepEqual(dq.q, qc.gq.q);
      assert.deepEqual(dq.scales, qc.gq.scales);
      const rg = gpu.clipRatios(scaledG, bg, GROUP);
      const rc = cpu.clipRatios(scaledC, cpuOnGpuBounds, GROUP);
      assert.deepEqual(await gpu.downloadMatrix(rg), rc.data);
      assert.throws(
        () =>
          gpu.searchClip({ w: scaledG, groupSize: GROUP, gram: sg.gram, rowScale }, [
            [0, 1],
            [2, 3],
          ]),
        /at most one column range/,
      );

      // GPTQ (clipped by the ratios) close to the CPU's, then the column choice against plain rounding.
      const gc = cpu.gptqQuantize({ w: scaledC, groupSize: GROUP, gram: sc.gram, rowScale }, rc);
      const gg = gpu.gptqQuantize({ w: scaledG, groupSize: GROUP, gram: sg.gram, rowScale }, rg);
      const dgg = await gpu.downloadQuantized(gg);
      const qSame = shareEqual(dgg.q, gc.gq.q);
      assert.ok(qSame > 0.9, `${which}: ${qSame} of the GPTQ q values identical`);
      const deqG = gpu.dequantize(gg);
      const deqErr = relError(await gpu.downloadMatrix(deqG), cpu.dequantize(gc).data);
      gpu.release(deqG);
      assert.ok(deqErr < 0.05, `${which}: GPTQ dequantized relative difference ${deqErr}`);

      // chooseColumns on identical roundings (the GPU's), CPU and GPU Gram matrices: the same choice mostly.
      const asCpu = (g: { q: Uint8Array; scales: Float32Array; zeros: Uint8Array }): CpuQuantized => ({
        gq: g,
        inF,
        outF: wc.outF,
        groupSize: GROUP,
      });
      const keep: [number, number][] = which === "qkv" ? [[0, 384]] : [];
      const mc = await cpu.chooseColumns(
        { w: scaledC, groupSize: GROUP, gram: sc.gram, rowScale },
        asCpu(dq),
        asCpu(dgg),
        keep,
      );
      const mg = await gpu.chooseColumns(
        { w: scaledG, groupSize: GROUP, gram: sg.gram, rowScale },
        qg,
        gg,
        keep,
      );
      assert.ok(
        Math.abs(mg.taken - mc.taken) <= Math.max(3, 0.05 * wc.outF),
        `${which}: taken ${mg.taken} vs ${mc.taken}`,
      );
      const mixed = await gpu.downloadQuantized(mg.mixed);
      assert.ok(shareEqual(mixed.q, mc.mixed.gq.q) > 0.95, `${which}: mixed q mostly identical`);
      if (which === "qkv") {
        for (let k = 0; k < inF; k++) {
          for (let n = 0; n < 384; n++) assert.equal(mixed.q[k * wc.outF + n], dq.q[k * wc.outF + n]);
        }
      }
      gpu.release(sg.gram, wg, scaledG, bg, qg, rg, gg, mg.mixed);
    }
  });

  test("many alloc / release cycles do not grow GPU memory", async () => {
    const base = gpu.memoryStats();
    const h = await gpu.uploadActivations(x);
    const cycle = async (): Promise<void> => {
      const w = await gpu.uploadWeight("down", weights.down);
      const q = gpu.groupQuantize(w, GROUP);
      const d = gpu.dequantize(q);
      const p = gpu.pseudoQuantizeScaled(w, null, GROUP);
      const c = gpu.cloneActivations(h, [1]);
      const stats = await gpu.forward(h, norms, "mlp", "down");
      await gpu.meanSquaredError(c, c); // waits for the stream, frees included
      gpu.release(w, q, d, p, c, stats?.gram);
    };
    for (let i = 0; i < 5; i++) await cycle();
    const warm = gpu.memoryStats();
    for (let i = 0; i < 200; i++) await cycle();
    gpu.release(h);
    const h2 = await gpu.uploadActivations(x);
    await gpu.meanSquaredError(h2, h2); // every earlier free has run on the stream
    const end = gpu.memoryStats();
    gpu.release(h2);
    assert.equal(end.tensors, base.tensors + 1);
    assert.equal(end.tensorBytes, base.tensorBytes + x.length * 4);
    // A leak would hold 200 cycles of weights (hundreds of MiB); pool granularity and timing allow a little.
    const slack = 64 * 2 ** 20;
    assert.ok(
      end.poolUsedBytes <= base.poolUsedBytes + x.length * 4 + slack,
      `pool in use grew: ${base.poolUsedBytes} -> ${end.poolUsedBytes}`,
    );
    assert.ok(
      end.poolReservedBytes <= warm.poolReservedBytes + slack,
      `pool grew: ${warm.poolReservedBytes} -> ${end.poolReservedBytes}`,
    );
  });
});
