/**
 * One Llama decoder layer on f32 activations, the single implementation shared by the CPU backend (over the
 * paged KV cache) and the AWQ quantizer (dense causal attention over one block of tokens):
 *
 *   h = x + o_proj(attention(rope(q), rope(k), v))      q, k, v = split(qkv_proj(rmsnorm(x)))
 *   y = h + down_proj(silu(gate_proj(n)) * up_proj(n))   n = rmsnorm(h)
 *
 * q/k/v and gate/up are fused into one packed matrix each at load (one matmul instead of three / two).
 */
import type { LayerDims } from "../../model/fused-layout.js";
import { addInPlace, applyRope, rmsNorm, siluMulInPlace } from "./ops.js";
import type { Scratch } from "./scratch.js";

/** A linear layer's weight, panel packed in the arena (see wasm-matmul.ts): y = x W with W (in, out). */
export interface PackedLinear {
  ptr: number; // byte offset of (out / 8, in, 8) f32 panels
  inFeatures: number;
  /** A multiple of 8 (padded with zero columns when the true width is not). */
  outFeatures: number;
}

export type { LayerDims };

export interface DecoderLayerWeights {
  inputNorm: Float32Array; // (hidden)
  qkv: PackedLinear; // (hidden) -> ((numHeads + 2 * numKvHeads) * headDim): q, then k, then v
  o: PackedLinear; // (numHeads * headDim) -> (hidden)
  postAttentionNorm: Float32Array; // (hidden)
  gateUp: PackedLinear; // (hidden) -> (2 * intermediate): gate, then up
  down: PackedLinear; // (intermediate) -> (hidden)
}

/** Per-row RoPE inputs. */
export interface TokenRope {
  positions: Int32Array; // (rows)
  /** Inverse frequencies for row r (depends on its sequence's length under dynamic NTK scaling). */
  invFreq(row: number): Float32Array;
  /** Linear RoPE scaling factor (1 = none). */
  linearFactor: number;
}

/** The attention of a layer call: paged (the backend) or dense causal over one block (the quantizer). */
export interface AttentionFn {
  /** Reserves its scratch (see reserveAttention) before the layer takes views of the arena. */
  reserve(scratch: Scratch): void;
  /**
   * Fills `out` (rows, numHeads * headDim) with attention outputs, given the rotated fused `qkv`
   * (rows, qkvWidth); the paged variant also writes k / v into the cache.
   */
  run(scratch: Scratch, qkv: Float32Array, qkvWidth: number, out: Float32Array): void;
}

/** Sees the input of each linear (for AWQ calibration): (rows, in) views valid only during the call. */
export type LinearInputObserver = (linear: "qkv" | "o" | "gateUp" | "down", input: Float32Array) => void;

/**
 * Takes a half layer's o_proj / down_proj output (rows, hidden), a view valid only during the call, instead of
 * adding it to `hidden`: a tensor-parallel rank's partial sum, added once all ranks' are reduced.
 */
export type ProjectionSink = (projection: Float32Array) => void;

/** Runs y = x W for `rows` rows: scratch buffer `input` (rows, in) -> scratch buffer `output` (rows, out). */
export function runLinear(
  scratch: Scratch,
  w: PackedLinear,
  input: string,
  output: string,
  rows: number,
): void {
  scratch.arena.matmul(scratch.ptr(input), w.ptr, scratch.ptr(output), rows, w.inFeatures, w.outFeatures);
}

/** Applies one decoder layer to `hidden` (rows, hidden) in place. */
export function runDecoderLayer(
  scratch: Scratch,
  dims: LayerDims,
  layer: DecoderLayerWeights,
  hidden: Float32Array, // (rows, hidden), updated in place; must not live in the arena (it may grow)
  rows: number,
  rope: TokenRope,
  attention: AttentionFn,
  observe?: LinearInputObserver,
): void {
  runAttentionBlock(scratch, dims, layer, hidden, rows, rope, attention, observe);
  runMlpBlock(scratch, dims, layer, hidden, rows, observe);
}

/** The first half of a layer: hidden += o_proj(attention(rope(qkv_proj(rmsnorm(hidden))))). */
export function runAttentionBlock(
  scratch: Scratch,
  dims: LayerDims,
  layer: DecoderLayerWeights,
  hidden: Float32Array, // (rows, hidden), updated in place
  rows: number,
  rope: TokenRope,
  attention: AttentionFn,
  observe?: LinearInputObserver,
  projected?: ProjectionSink,
): void {
  const { hiddenSize: hd, numHeads, numKvHeads, headDim } = dims;
  const qDim = numHeads * headDim;
  const qkvWidth = layer.qkv.outFeatures;
  scratch.reserve("layer.normed", rows * hd);
  scratch.reserve("layer.qkv", rows * qkvWidth);
  scratch.reserve("layer.attn", rows * qDim);
  scratch.reserve("layer.proj", rows * hd);
  attention.reserve(scratch);

  rmsNorm(hidden, layer.inputNorm, dims.rmsNormEps, rows, scratch.view("layer.normed", rows * hd));
  observe?.("qkv", scratch.view("layer.normed", rows * hd));
  runLinear(scratch, layer.qkv, "layer.normed", "layer.qkv", rows);
  const qkv = scratch.view("layer.qkv", rows * qkvWidth); // (rows, qkvWidth)
  const cosSin = new Float32Array(headDim); // (headDim)
  for (let r = 0; r < rows; r++) {
    const freqs = rope.invFreq(r);
    const pos = rope.positions[r];
    applyRope(qkv, r * qkvWidth, numHeads, headDim, pos, freqs, cosSin, rope.linearFactor);
    applyRope(qkv, r * qkvWidth + qDim, numKvHeads, headDim, pos, freqs, cosSin, rope.linearFactor);
  }
  attention.run(scratch, qkv, qkvWidth, scratch.view("layer.attn", rows * qDim));
  observe?.("o", scratch.view("layer.attn", rows * qDim));
  runLinear(scratch, layer.o, "layer.attn", "layer.proj", rows);
  if (projected !== undefined) projected(scratch.view("layer.proj", rows * hd));
  else addInPlace(hidden, scratch.view("layer.proj", rows * hd), rows * hd);
}

/** The second half of a layer: hidden += down_proj(silu(gate_proj(n)) * up_proj(n)), n = rmsnorm(hidden). */
export function runMlpBlock(
  scratch: Scratch,
  dims: LayerDims,
  layer: DecoderLayerWeights,
  hidden: Float32Array, // (rows, hidden), updated in place
  rows: number,
  observe?: LinearInputObserver,
  projected?: ProjectionSink,
): void {
  const { hiddenSize: hd, intermediateSize: inter } = dims;
  scratch.reserve("layer.normed", rows * hd);
  scratch.reserve("layer.proj", rows * hd);
  scratch.reserve("layer.gateUp", rows * 2 * inter);
  scratch.reserve("layer.act", rows * inter);
  rmsNorm(hidden, layer.postAttentionNorm, dims.rmsNormEps, rows, scratch.view("layer.normed", rows * hd));
  observe?.("gateUp", scratch.view("layer.normed", rows * hd));
  runLinear(scratch, layer.gateUp, "layer.normed", "layer.gateUp", rows);
  const gateUp = scratch.view("layer.gateUp", rows * 2 * inter); // (rows, 2 * inter)
  const act = scratch.view("layer.act", rows * inter); // (rows, inter)
  for (let r = 0; r < rows; r++) {
    const gate = gateUp.subarray(r * 2 * inter, r * 2 * inter + inter);
    const up = gateUp.subarray(r * 2 * inter + inter, (r + 1) * 2 * inter);
    const a = act.subarray(r * inter, (r + 1) * inter);
    a.set(gate);
    siluMulInPlace(a, up, inter);
  }
  observe?.("down", act);
  runLinear(scratch, layer.down, "layer.act", "layer.proj", rows);
  if (projected !== undefined) projected(scratch.view("layer.proj", rows * hd));
  else addInPlace(hidden, scratch.view("layer.proj", rows * hd), rows * hd);
}
