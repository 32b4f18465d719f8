/**
 * The fused-linear layout every layer runner uses (CPU backend, CUDA backend, quantizer, AutoAWQ writer):
 * q|k|v, o, gate|up, down, parts side by side in that order; and the per-layer dims that size them. Also the
 * checkpoint reads the loaders share: a float tensor as f32, and which tensors a model load reads.
 */
import { bf16ToF32Array, f16ToF32Array } from "./half.js";
import type { Checkpoint, ModelConfig } from "./types.js";
import type { LayerWeightNames, LinearName, LinearWeightNames, ModelWeightNames } from "./weights.js";

/** What a decoder layer's shapes depend on (a ModelConfig is one). */
export interface LayerDims {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
}

export function layerDims(config: ModelConfig): LayerDims {
  return {
    hiddenSize: config.hiddenSize,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    intermediateSize: config.intermediateSize,
    rmsNormEps: config.rmsNormEps,
  };
}

/** The four matmuls of a layer as the layer code fuses them: q|k|v, o, gate|up, down. */
export type FusedLinear = "qkv" | "o" | "gateUp" | "down";

/** The fused linears in layer order, each with its Llama linears in column order. */
export const FUSED_LINEARS: readonly (readonly [FusedLinear, readonly LinearName[]])[] = [
  ["qkv", ["q_proj", "k_proj", "v_proj"]],
  ["o", ["o_proj"]],
  ["gateUp", ["gate_proj", "up_proj"]],
  ["down", ["down_proj"]],
];

/** The fused linears in layer order. */
export const FUSED_LINEAR_NAMES: readonly FusedLinear[] = FUSED_LINEARS.map(([which]) => which);

/** Width of a fused linear's input, from the layer's dims. */
export function fusedInFeatures(dims: LayerDims, which: FusedLinear): number {
  const { hiddenSize: hd, numHeads, headDim, intermediateSize: inter } = dims;
  return { qkv: hd, o: numHeads * headDim, gateUp: hd, down: inter }[which];
}

/** Width of a fused linear's output (q|k|v and gate|up side by side), from the layer's dims. */
export function fusedOutFeatures(dims: LayerDims, which: FusedLinear): number {
  const { hiddenSize: hd, numHeads, numKvHeads, headDim, intermediateSize: inter } = dims;
  return { qkv: (numHeads + 2 * numKvHeads) * headDim, o: hd, gateUp: 2 * inter, down: hd }[which];
}

/** Where each Llama linear sits in the fused matrices: [fused linear, first column]. */
export function fusedPlacement(dims: LayerDims): Record<LinearName, [FusedLinear, number]> {
  const qDim = dims.numHeads * dims.headDim;
  const kvDim = dims.numKvHeads * dims.headDim;
  return {
    q_proj: ["qkv", 0],
    k_proj: ["qkv", qDim],
    v_proj: ["qkv", qDim + kvDim],
    o_proj: ["o", 0],
    gate_proj: ["gateUp", 0],
    up_proj: ["gateUp", dims.intermediateSize],
    down_proj: ["down", 0],
  };
}

/** The weight names of a layer's fused linear `which`, in column order. */
export function fusedParts(layer: LayerWeightNames, which: FusedLinear): LinearWeightNames[] {
  const members = FUSED_LINEARS.find(([w]) => w === which)![1];
  return members.map((m) => layer.linears[m]);
}

/** Every tensor a model load reads (embedding, norms, every linear's tensors, an untied lm_head), once each. */
export function loadedTensorNames(names: ModelWeightNames): string[] {
  const used: string[] = [names.embedTokens, names.norm];
  if (!names.lmHeadTied) used.push(names.lmHead);
  for (const layer of names.layers) {
    used.push(layer.inputLayernorm, layer.postAttentionLayernorm);
    for (const l of Object.values(layer.linears)) {
      if (l.kind === "dense") used.push(l.weight);
      else used.push(l.qweight, l.qzeros, l.scales);
    }
  }
  return used;
}

/** Bytes of the tensors a model load reads (the total of its progress reports). */
export function loadedBytes(ckpt: Checkpoint, names: ModelWeightNames): number {
  return loadedTensorNames(names).reduce((sum, name) => sum + ckpt.info(name).byteLength, 0);
}

/** A float tensor (F16, BF16 or F32) as f32, checking its element count. */
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
