/**
 * Reads one fp16/bf16/f32 decoder layer from a checkpoint into the quantizer's f32 layout (layer-runner.ts's
 * DenseLayer): linears transposed from torch's (out, in) to (in, out) and fused side by side (q|k|v, gate|up).
 */
import { bf16ToF32Array, f16ToF32Array } from "../model/half.js";
import type { Checkpoint, ModelConfig } from "../model/types.js";
import type { LayerWeightNames, LinearWeightNames } from "../model/weights.js";
import type { DenseLayer } from "./layer-runner.js";

/** A float tensor as f32, checking its element count. */
export async function readFloatTensor(ckpt: Checkpoint, name: string, count: number): Promise<Float32Array> {
  const info = ckpt.info(name);
  const data = await ckpt.read(name);
  let out: Float32Array;
  if (info.dtype === "F16") out = f16ToF32Array(data as Uint16Array);
  else if (info.dtype === "BF16") out = bf16ToF32Array(data as Uint16Array);
  else if (info.dtype === "F32") out = data as Float32Array;
  else throw new Error(`${ckpt.dir}: tensor ${name} has dtype ${info.dtype}; expected F16, BF16 or F32`);
  if (out.length !== count) {
    throw new Error(
      `${ckpt.dir}: tensor ${name} has ${out.length} elements (shape [${info.shape}]), expected ${count}`,
    );
  }
  return out;
}

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
  const l = names.linears;
  const hd = config.hiddenSize;
  return {
    inputNorm: await readFloatTensor(ckpt, names.inputLayernorm, hd),
    postAttentionNorm: await readFloatTensor(ckpt, names.postAttentionLayernorm, hd),
    qkv: await readFused(ckpt, [l.q_proj, l.k_proj, l.v_proj]),
    o: await readFused(ckpt, [l.o_proj]),
    gateUp: await readFused(ckpt, [l.gate_proj, l.up_proj]),
    down: await readFused(ckpt, [l.down_proj]),
  };
}
