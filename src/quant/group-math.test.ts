import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { groupQuantize } from "../model/awq.js";
import type { ModelConfig } from "../model/types.js";
import {
  dequantizeGroups,
  divideQuantizedColumns,
  foldIntoNorm,
  pseudoQuantizeScaled,
  scaleRows,
} from "./group-math.js";
import { type DenseLayer, LayerRunner } from "./layer-runner.js";
import { rand } from "./random.test-helper.js";

/** A one-layer Llama shape without GQA, so the v_proj -> o_proj fold applies. */
const config: ModelConfig = {
  architecture: "LlamaForCausalLM",
  hiddenSize: 128,
  intermediateSize: 256,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 2,
  headDim: 64,
  vocabSize: 100,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 256,
  tieWordEmbeddings: true,
  dtype: "float16",
  bosTokenId: 1,
  eosTokenIds: [2],
  quantization: null,
};
const SEQ = 16;
const G = 64;

function randomArray(n: number, r: () => number, scale: number, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, () => offset + r() * scale);
}

function randomLayer(r: () => number): DenseLayer {
  const hd = config.hiddenSize;
  const inter = config.intermediateSize;
  return {
    inputNorm: randomArray(hd, r, 0.5, 1),
    postAttentionNorm: randomArray(hd, r, 0.5, 1),
    qkv: randomArray(hd * 3 * hd, r, 0.3),
    o: randomArray(hd * hd, r, 0.3),
    gateUp: randomArray(hd * 2 * inter, r, 0.3),
    down: randomArray(inter * hd, r, 0.3),
  };
}

/** Positive scales spanning two orders of magnitude, like AWQ's. */
function randomScales(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => 10 ** (2 * r()));
}

function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe("AWQ scale folding keeps the layer's function", () => {
  const runner = new LayerRunner(config, SEQ);
  after(() => runner.dispose());
  const r = rand(7);
  const input = randomArray(SEQ * config.hiddenSize, r, 2); // (SEQ, hidden)
  const run = async (layer: DenseLayer): Promise<Float32Array> => {
    runner.setLayer(layer);
    const h = input.slice();
    await runner.forward(h, layer, [0]);
    return h;
  };

  test("into the RMSNorm weights (q/k/v and gate/up rows scaled)", async () => {
    const layer = randomLayer(r);
    const reference = await run(layer);
    const s1 = randomScales(config.hiddenSize, r);
    const s2 = randomScales(config.hiddenSize, r);
    const folded: DenseLayer = {
      ...layer,
      inputNorm: foldIntoNorm(layer.inputNorm, s1),
      qkv: scaleRows(layer.qkv, s1, 128, 384),
      postAttentionNorm: foldIntoNorm(layer.postAttentionNorm, s2),
      gateUp: scaleRows(layer.gateUp, s2, 128, 512),
    };
    const err = relativeError(await run(folded), reference);
    assert.ok(err < 2e-3, `relative error ${err}`); // only the f16 rounding of the folded norms
    assert.ok(err > 0 || s1.every((v) => v === 1));
  });

  test("into quantized v_proj / up_proj output columns (o_proj / down_proj rows scaled)", async () => {
    const layer = randomLayer(r);
    const qkvQ = groupQuantize(layer.qkv, 128, 384, G);
    const gateUpQ = groupQuantize(layer.gateUp, 128, 512, G);
    const quantized: DenseLayer = {
      ...layer,
      qkv: dequantizeGroups(qkvQ, 128, 384, G),
      gateUp: dequantizeGroups(gateUpQ, 128, 512, G),
    };
    const reference = await run(quantized);
    const sO = randomScales(128, r);
    const sDown = randomScales(256, r);
    divideQuantizedColumns(qkvQ, sO, 256, 384); // v is columns 256..383 of q|k|v
    divideQuantizedColumns(gateUpQ, sDown, 256, 512); // up is columns 256..511 of gate|up
    const folded: DenseLayer = {
      ...layer,
      qkv: dequantizeGroups(qkvQ, 128, 384, G),
      o: scaleRows(layer.o, sO, 128, 128),
      gateUp: dequantizeGroups(gateUpQ, 128, 512, G),
      down: scaleRows(layer.down, sDown, 256, 128),
    };
    const err = relativeError(await run(folded), reference);
    assert.ok(err < 2e-3, `relative error ${err}`); // only the f16 rounding of the divided scales
  });

  test("pseudo-quantization with scales is Q(diag(s) W) / diag(s), and s = null is plain rounding", () => {
    const w = randomArray(128 * 16, r, 1); // (128, 16)
    const s = randomScales(128, r);
    const plain = dequantizeGroups(groupQuantize(w, 128, 16, G), 128, 16, G);
    assert.deepEqual(pseudoQuantizeScaled(w, null, 128, 16, G), plain);
    const withScales = pseudoQuantizeScaled(w, s, 128, 16, G);
    const manual = scaleRows(
      dequantizeGroups(groupQuantize(scaleRows(w, s, 128, 16), 128, 16, G), 128, 16, G),
      s,
      128,
      16,
      true,
    );
    assert.deepEqual(withScales, manual);
    assert.notDeepEqual(withScales, plain);
  });
});
