/**
 * The addon refuses bad arguments naming the argument or field and the bad value (native/addon/args.h, the
 * engine's and the quantizer's dimension checks): model dimensions, layer indices, non-integers, missing fields.
 * Run on a GPU machine (`npm run test:gpu`); skipped with the reason elsewhere.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { nativeDims } from "../../src/backend/cuda/load-weights.js";
import {
  loadNativeAddon,
  type NativeAddon,
  type NativeEngine,
  type NativeModelDims,
  type NativeTensor,
} from "../../src/backend/cuda/native-addon.js";
import { tinyConfig } from "../../src/quant/tiny-config.test-helper.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();

/** Two layers, 4 heads of 64, 2 KV heads: a shape the kernels support. */
const DIMS: NativeModelDims = nativeDims(
  tinyConfig({
    hiddenSize: 256,
    intermediateSize: 768,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 64,
  }),
);

describe("the addon names bad arguments and values", { skip: unavailable ?? false }, () => {
  let addon: NativeAddon;
  const engines: NativeEngine[] = [];
  const initWith = async (dims: Record<string, unknown>): Promise<NativeEngine> => {
    const engine = new addon.Engine();
    engines.push(engine);
    await engine.init(dims as unknown as NativeModelDims, 0);
    return engine;
  };

  before(async () => {
    addon = (await loadNativeAddon()).addon;
  });
  after(async () => {
    for (const engine of engines) await engine.dispose();
  });

  test("engine model dimensions: the field and its value", async () => {
    await assert.rejects(
      initWith({ ...DIMS, numLayers: 0 }),
      /invalid model dimensions for the CUDA engine: numLayers is 0 \(must be positive\)/,
    );
    await assert.rejects(
      initWith({ ...DIMS, numKvHeads: 3 }),
      /numHeads 4 is not a multiple of numKvHeads 3/,
    );
    await assert.rejects(initWith({ ...DIMS, headDim: 96 }), /head_dim 64 or 128, got 96/);
    await assert.rejects(initWith({ ...DIMS, hiddenSize: 1.5 }), /hiddenSize must be an integer, got 1\.5/);
    await assert.rejects(initWith({ ...DIMS, vocabSize: "32" }), /vocabSize must be a number, got a string/);
    const { groupSize: _, ...noGroup } = DIMS;
    await assert.rejects(initWith(noGroup), /missing field groupSize/);
  });

  test("a layer index out of range names the index and the range", async () => {
    const engine = await initWith({ ...DIMS });
    const norm: NativeTensor = { name: "norm", dtype: "F16", shape: [256], data: new Uint16Array(256) };
    await assert.rejects(
      async () => engine.uploadVector("inputNorm", 7, norm),
      /weight slot inputNorm: layer index 7 out of range 0\.\.1/,
    );
    await assert.rejects(
      async () => engine.uploadVector("postNorm", "1" as unknown as number, norm),
      /layer must be a number, got a string/,
    );
  });

  test("quantizer layer dimensions and sizes: the value", async (t) => {
    if (addon.QuantContext === undefined) return t.skip("this addon has no QuantContext");
    const ctx = new addon.QuantContext();
    await assert.rejects(
      async () => ctx.init({ ...DIMS, numKvHeads: 0 }, 64, 2, 0),
      /quantizer layer dims: numKvHeads is 0 \(must be positive\)/,
    );
    await assert.rejects(
      async () => ctx.init({ ...DIMS }, 0, 2, 0),
      /seqlen 0 and chunkBlocks 2 must be positive/,
    );
  });
});
