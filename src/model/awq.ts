/**
 * AutoAWQ's GEMM layout as pure functions (gpt-fast style: quantize, pack, unpack, dequantize).
 *
 * A linear layer of `inFeatures` -> `outFeatures` is stored as
 *   qweight int32 (in, out/8), qzeros int32 (in/g, out/8), scales f16 (in/g, out), g = group size;
 * nibble i (bits 4i..4i+3) of packed column c holds output column 8c + AWQ_ORDER[i], and
 *   W[k][n] = (q[k][n] - z[k/g][n]) * s[k/g][n].
 * Quantization is asymmetric 4-bit with a zero point, as AutoAWQ computes it:
 *   scale = max(max - min, 1e-5) / 15, zero = clamp(round(-min / scale), 0, 15),
 *   q = clamp(round(w / scale) + zero, 0, 15), rounding half to even like torch.round.
 */
import { f16ToF32, f16ToF32Array, f32ToF16 } from "./half.js";

/** Output column (within a pack of 8) held by nibble i. */
export const AWQ_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];
/** Which nibble holds output column j (the inverse permutation). */
export const AWQ_REVERSE_ORDER: readonly number[] = [0, 4, 1, 5, 2, 6, 3, 7];

export const AWQ_MAX_Q = 15;

function checkCols(cols: number): void {
  if (cols % 8 !== 0) throw new Error(`AWQ packing needs a column count divisible by 8, got ${cols}`);
}

/** Packed int32 (rows, cols/8) -> 4-bit values (rows, cols). */
export function unpackAwq(packed: Int32Array, rows: number, cols: number): Uint8Array {
  checkCols(cols);
  const packedCols = cols / 8;
  if (packed.length !== rows * packedCols) {
    throw new Error(`unpackAwq: expected ${rows} x ${packedCols} int32 values, got ${packed.length}`);
  }
  const values = new Uint8Array(rows * cols); // (rows, cols)
  for (let p = 0; p < packed.length; p++) {
    const word = packed[p];
    const base = p * 8; // row r, pack c: (r * packedCols + c) * 8 = r * cols + 8c
    for (let i = 0; i < 8; i++) values[base + AWQ_ORDER[i]] = (word >>> (4 * i)) & 0xf;
  }
  return values;
}

/** 4-bit values (rows, cols) -> packed int32 (rows, cols/8); the exact inverse of unpackAwq. */
export function packAwq(values: Uint8Array, rows: number, cols: number): Int32Array {
  checkCols(cols);
  if (values.length !== rows * cols)
    throw new Error(`packAwq: expected ${rows} x ${cols} values, got ${values.length}`);
  const packed = new Int32Array((rows * cols) / 8); // (rows, cols/8)
  for (let p = 0; p < packed.length; p++) {
    const base = p * 8;
    let word = 0;
    for (let i = 0; i < 8; i++) {
      const v = values[base + AWQ_ORDER[i]];
      if (v > AWQ_MAX_Q)
        throw new Error(`packAwq: value ${v} at index ${base + AWQ_ORDER[i]} does not fit in 4 bits`);
      word |= v << (4 * i);
    }
    packed[p] = word;
  }
  return packed;
}

/** The tensors of one AWQ GEMM linear, as read from a checkpoint. */
export interface AwqLinearTensors {
  qweight: Int32Array; // (in, out/8)
  qzeros: Int32Array; // (in/g, out/8)
  scales: Uint16Array; // (in/g, out) f16 bit patterns
}

function checkShapes(t: AwqLinearTensors, inFeatures: number, outFeatures: number, groupSize: number): void {
  checkCols(outFeatures);
  if (inFeatures % groupSize !== 0) {
    throw new Error(`AWQ: in_features ${inFeatures} is not a multiple of the group size ${groupSize}`);
  }
  const groups = inFeatures / groupSize;
  const expect = (what: string, got: number, want: number, shape: string) => {
    if (got !== want) throw new Error(`AWQ: ${what} has ${got} elements, expected ${shape} = ${want}`);
  };
  expect("qweight", t.qweight.length, (inFeatures * outFeatures) / 8, `(${inFeatures}, ${outFeatures / 8})`);
  expect("qzeros", t.qzeros.length, (groups * outFeatures) / 8, `(${groups}, ${outFeatures / 8})`);
  expect("scales", t.scales.length, groups * outFeatures, `(${groups}, ${outFeatures})`);
}

/** W (in, out) in f32: (q - z) * s. Exact: the product of a small integer and an f16 fits in f32. */
export function dequantizeAwq(
  tensors: AwqLinearTensors,
  inFeatures: number,
  outFeatures: number,
  groupSize: number,
): Float32Array {
  checkShapes(tensors, inFeatures, outFeatures, groupSize);
  const q = unpackAwq(tensors.qweight, inFeatures, outFeatures); // (in, out)
  const zeros = unpackAwq(tensors.qzeros, inFeatures / groupSize, outFeatures); // (in/g, out)
  const scales = f16ToF32Array(tensors.scales); // (in/g, out)
  const w = new Float32Array(inFeatures * outFeatures); // (in, out)
  for (let k = 0; k < inFeatures; k++) {
    const groupRow = Math.floor(k / groupSize) * outFeatures;
    const row = k * outFeatures;
    for (let n = 0; n < outFeatures; n++) {
      w[row + n] = (q[row + n] - zeros[groupRow + n]) * scales[groupRow + n];
    }
  }
  return w;
}

/** torch.round: to nearest, halves to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // halves go up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function clampQ(v: number): number {
  return Math.min(Math.max(v, 0), AWQ_MAX_Q);
}

/**
 * q = clamp(round(w / s) + z, 0, 15) with given per-group scales and zeros.
 * @param w (in, out) weights; scales (in/g, out); zeros (in/g, out).
 * @returns (in, out) 4-bit values.
 */
export function quantizeWithParams(
  w: Float32Array,
  scales: Float32Array,
  zeros: Uint8Array,
  inFeatures: number,
  outFeatures: number,
  groupSize: number,
): Uint8Array {
  const q = new Uint8Array(inFeatures * outFeatures); // (in, out)
  for (let k = 0; k < inFeatures; k++) {
    const groupRow = Math.floor(k / groupSize) * outFeatures;
    const row = k * outFeatures;
    for (let n = 0; n < outFeatures; n++) {
      const v = roundHalfEven(w[row + n] / scales[groupRow + n]) + zeros[groupRow + n];
      q[row + n] = clampQ(v);
    }
  }
  return q;
}

export interface GroupQuantized {
  q: Uint8Array; // (in, out) 4-bit values
  scales: Float32Array; // (in/g, out), each exactly an f16 value (it will be stored as f16)
  zeros: Uint8Array; // (in/g, out) 4-bit zero points
}

export interface GroupQuantizeOptions {
  /** Per-group clipping bound from AWQ's clip search: w is clamped to [-clip, clip] first. (in/g, out) */
  clip?: Float32Array;
}

/** Asymmetric 4-bit group quantization of W (in, out), groups of `groupSize` input rows per output column. */
export function groupQuantize(
  w: Float32Array,
  inFeatures: number,
  outFeatures: number,
  groupSize: number,
  options: GroupQuantizeOptions = {},
): GroupQuantized {
  if (inFeatures % groupSize !== 0) {
    throw new Error(
      `groupQuantize: in_features ${inFeatures} is not a multiple of the group size ${groupSize}`,
    );
  }
  if (w.length !== inFeatures * outFeatures) {
    throw new Error(`groupQuantize: expected ${inFeatures} x ${outFeatures} weights, got ${w.length}`);
  }
  const groups = inFeatures / groupSize;
  const { clip } = options;
  if (clip !== undefined && clip.length !== groups * outFeatures) {
    throw new Error(`groupQuantize: clip must be (${groups}, ${outFeatures}), got ${clip.length} values`);
  }
  const scales = new Float32Array(groups * outFeatures); // (in/g, out)
  const zeros = new Uint8Array(groups * outFeatures); // (in/g, out)
  const clamped = clip === undefined ? w : new Float32Array(w); // (in, out)
  for (let g = 0; g < groups; g++) {
    for (let n = 0; n < outFeatures; n++) {
      const bound = clip?.[g * outFeatures + n];
      let min = Infinity;
      let max = -Infinity;
      for (let k = g * groupSize; k < (g + 1) * groupSize; k++) {
        let v = w[k * outFeatures + n];
        if (bound !== undefined) {
          v = Math.min(Math.max(v, -bound), bound);
          clamped[k * outFeatures + n] = v;
        }
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const scale = f16ToF32(f32ToF16(Math.max(max - min, 1e-5) / AWQ_MAX_Q)); // stored as f16
      const zero = roundHalfEven(-min / scale);
      scales[g * outFeatures + n] = scale;
      zeros[g * outFeatures + n] = clampQ(zero);
    }
  }
  const q = quantizeWithParams(clamped, scales, zeros, inFeatures, outFeatures, groupSize);
  return { q, scales, zeros };
}
