/**
 * Small matrix helpers of the AWQ search on (in, out) weights: row scaling (the per-input-channel AWQ scale),
 * dequantizing a group-quantized matrix, pseudo-quantization (quantize then dequantize), and column slicing of
 * fused matrices. The quantizer itself is awq.ts's `groupQuantize` (AutoAWQ's asymmetric min/max rounding).
 */
import { type GroupQuantized, groupQuantize } from "../model/awq.js";
import { f16ToF32, f32ToF16 } from "../model/half.js";

/** Rounds to the nearest f16 value (what a tensor stored as F16 will hold). */
export function roundF16(x: number): number {
  return f16ToF32(f32ToF16(x));
}

/** W (in, out) with row k multiplied by s[k] (or divided, when `divide`). A fresh array. */
export function scaleRows(
  w: Float32Array,
  s: ArrayLike<number>,
  inF: number,
  outF: number,
  divide = false,
): Float32Array {
  const out = new Float32Array(w.length); // (in, out)
  for (let k = 0; k < inF; k++) {
    const f = divide ? 1 / s[k] : s[k];
    const row = k * outF;
    for (let n = 0; n < outF; n++) out[row + n] = w[row + n] * f;
  }
  return out;
}

/** An RMSNorm weight with an AWQ scale folded in: norm / s, stored as F16 (the next linear's rows get * s). */
export function foldIntoNorm(norm: Float32Array, s: ArrayLike<number>): Float32Array {
  return Float32Array.from(norm, (v, k) => roundF16(v / s[k])); // (hidden)
}

/** W[k][n] = (q[k][n] - z[k/g][n]) * s[k/g][n] in f32, from unpacked values. */
export function dequantizeGroups(
  gq: GroupQuantized,
  inF: number,
  outF: number,
  groupSize: number,
): Float32Array {
  const w = new Float32Array(inF * outF); // (in, out)
  for (let k = 0; k < inF; k++) {
    const gRow = Math.floor(k / groupSize) * outF;
    const row = k * outF;
    for (let n = 0; n < outF; n++) w[row + n] = (gq.q[row + n] - gq.zeros[gRow + n]) * gq.scales[gRow + n];
  }
  return w;
}

/**
 * What the model computes after quantizing W scaled by s (rows) and folding 1/s into the op before:
 * Q(diag(s) W) / diag(s), which equals the folded layer up to the f16 rounding of the folded op.
 */
export function pseudoQuantizeScaled(
  w: Float32Array, // (in, out)
  s: ArrayLike<number> | null, // (in)
  inF: number,
  outF: number,
  groupSize: number,
): Float32Array {
  const scaled = s === null ? w : scaleRows(w, s, inF, outF);
  const deq = dequantizeGroups(groupQuantize(scaled, inF, outF, groupSize), inF, outF, groupSize);
  return s === null ? deq : scaleRows(deq, s, inF, outF, true);
}

/**
 * Divides output columns [start, start + s.length) of a quantized matrix by s: (q - z) * (scale / s), exact
 * but for the f16 rounding of the new scale. This folds an AWQ scale of the next linear into this one.
 */
export function divideQuantizedColumns(
  gq: GroupQuantized,
  s: ArrayLike<number>,
  start: number,
  outF: number,
): void {
  const groups = gq.scales.length / outF;
  for (let g = 0; g < groups; g++) {
    for (let j = 0; j < s.length; j++) {
      const i = g * outF + start + j;
      gq.scales[i] = roundF16(gq.scales[i] / s[j]);
    }
  }
}

/** Columns [start, start + width) of a (rows, cols) matrix, as a fresh (rows, width) one. */
export function sliceColumns<T extends Float32Array | Uint8Array>(
  m: T,
  rows: number,
  cols: number,
  start: number,
  width: number,
): T {
  const out = new (m.constructor as new (n: number) => T)(rows * width); // (rows, width)
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * cols + start, r * cols + start + width), r * width);
  return out;
}
