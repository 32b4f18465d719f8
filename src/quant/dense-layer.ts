/**
 * Reads one fp16/bf16/f32 decoder layer from a checkpoint into the quantizer's f32 layout (layer-runner.ts's
 * DenseLayer): linears transposed from torch's (out, in) to (in, out) and fused side by side (q|k|v, gate|up).
 */
import { fusedParts, readFloatTensor } from "../model/fused-layout.js";
import type { Checkpoint, ModelConfig } from "../model/types.js";
import type { LayerWeightNames, LinearWeightNames } from "../model/weights.js";
import type { DenseLayer } from "./layer-runner.js";

/** Linears sharing an input, read as one (in, sum of outs) matrix. */
async function readFused(ckpt: Checkpoint, parts: LinearWeightNames[]): Promise<Float32Array> {
  const inF = parts[0].inFeatures;
  const width = parts.reduce((sum, p) => sum + p.outFeatures, 0);
  const fused = new Float32Array(inF * width); // (in, width)
  let column = 0;
  for (const part of parts) {
    if (part.kind !== "dense") throw new Error(`${ckpt.dir}: ${part.module} is already quantized`);
    const w = await readFloatTensor(ckpt, part.weight, part.outFeatures * inF); // (out, in)
    for (let n = 0; n < part.outFeatures; n++) {
      const src = n * inF;
      for (let k = 0; k < inF; k++) fused[k * width + column + n] = w[src + k];
    }
    column += part.outFeatures;
  }
  return fused;
}

export async function readDenseLayer(
  ckpt: Checkpoint,
  config: ModelConfig,
  names: LayerWeightNames,
): Promise<DenseLayer> {
  const hd = config.hiddenSize;
  return {
    inputNorm: await readFloatTensor(ckpt, names.inputLayernorm, hd),
    postAttentionNorm: await readFloatTensor(ckpt, names.postAttentionLayernorm, hd),
    qkv: await readFused(ckpt, fusedParts(names, "qkv")),
    o: await readFused(ckpt, fusedParts(names, "o")),
    gateUp: await readFused(ckpt, fusedParts(names, "gateUp")),
    down: await readFused(ckpt, fusedParts(names, "down")),
  };
}
