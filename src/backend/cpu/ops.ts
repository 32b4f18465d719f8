/**
 * Element-wise and per-row f32 operations of the Llama forward (the matmuls are in wasm-matmul.ts).
 * They work on any Float32Array, in place where the name says so.
 */
import type { RopeScaling } from "../../model/types.js";

/** out[r] = x[r] / rms(x[r]) * weight, row by row (HF LlamaRMSNorm, computed in f32). */
export function rmsNorm(
  x: Float32Array, // (rows, dim)
  weight: Float32Array, // (dim)
  eps: number,
  rows: number,
  out: Float32Array, // (rows, dim); may alias x
): void {
  const dim = weight.length;
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let sumSq = 0;
    for (let i = 0; i < dim; i++) sumSq += x[base + i] * x[base + i];
    const inv = 1 / Math.sqrt(sumSq / dim + eps);
    for (let i = 0; i < dim; i++) out[base + i] = x[base + i] * inv * weight[i];
  }
}

/** a += b over the first `count` values. */
export function addInPlace(a: Float32Array, b: Float32Array, count: number): void {
  for (let i = 0; i < count; i++) a[i] += b[i];
}

/** gate[i] = silu(gate[i]) * up[i] over the first `count` values (SwiGLU). */
export function siluMulInPlace(gate: Float32Array, up: Float32Array, count: number): void {
  for (let i = 0; i < count; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** RoPE parameters of a model (HF LlamaRotaryEmbedding and its linear / dynamic-NTK variants). */
export interface RopeSpec {
  headDim: number;
  theta: number;
  scaling: RopeScaling | null;
}

/** inv_freq[i] = 1 / base^(2i / headDim), rounded to f32 as HF computes it. */
export function inverseFrequencies(headDim: number, base: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half); // (headDim / 2)
  for (let i = 0; i < half; i++) out[i] = 1 / base ** ((2 * i) / headDim);
  return out;
}

/**
 * The inverse frequencies for a sequence of `seqLen` tokens. Dynamic NTK (HF `_compute_dynamic_ntk_parameters`):
 * past the original context, base = theta * (factor * seqLen / original - (factor - 1)) ^ (d / (d - 2)).
 */
export function ropeFrequenciesFor(spec: RopeSpec, seqLen: number): Float32Array {
  const s = spec.scaling;
  if (s?.type === "dynamic" && seqLen > s.originalMaxPositionEmbeddings) {
    const d = spec.headDim;
    const base =
      spec.theta * ((s.factor * seqLen) / s.originalMaxPositionEmbeddings - (s.factor - 1)) ** (d / (d - 2));
    return inverseFrequencies(d, base);
  }
  return inverseFrequencies(spec.headDim, spec.theta);
}

/**
 * Rotates `numHeads` heads of one token in place (HF rotate-half: pairs (i, i + d/2)).
 * Linear scaling divides the position by the factor.
 */
export function applyRope(
  vec: Float32Array, // (numHeads * headDim) of one token, starting at `offset`
  offset: number,
  numHeads: number,
  headDim: number,
  position: number,
  invFreq: Float32Array, // (headDim / 2)
  cosSin: Float32Array, // (headDim) scratch: cos then sin
  linearFactor: number,
): void {
  const half = headDim / 2;
  const pos = Math.fround(position / linearFactor);
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(pos * invFreq[i]);
    cosSin[i] = Math.cos(angle);
    cosSin[half + i] = Math.sin(angle);
  }
  for (let h = 0; h < numHeads; h++) {
    const base = offset + h * headDim;
    for (let i = 0; i < half; i++) {
      const x1 = vec[base + i];
      const x2 = vec[base + half + i];
      const c = cosSin[i];
      const sn = cosSin[half + i];
      vec[base + i] = x1 * c - x2 * sn;
      vec[base + half + i] = x2 * c + x1 * sn;
    }
  }
}

/** Softmax of `values[start .. start+count)` in place, with everything past `validCount` set to 0. */
export function softmaxRowInPlace(
  values: Float32Array,
  start: number,
  validCount: number,
  count: number,
): void {
  let max = -Infinity;
  for (let j = 0; j < validCount; j++) if (values[start + j] > max) max = values[start + j];
  let sum = 0;
  for (let j = 0; j < validCount; j++) {
    const e = Math.exp(values[start + j] - max);
    values[start + j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < validCount; j++) values[start + j] *= inv;
  for (let j = validCount; j < count; j++) values[start + j] = 0;
}
