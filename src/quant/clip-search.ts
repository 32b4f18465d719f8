/**
 * AWQ's clipping-range search: for every (group, output column) of a linear, shrink the weight range to
 * [-b, b] with b = max|w| * (1 - shrink) before 4-bit rounding, and keep the shrink whose rounding error costs
 * the least on the calibration inputs.
 *
 * AutoAWQ measures that cost as the squared error of the group's partial output sum x_g . (w_g - q(w_g)) on
 * 512 sampled tokens, over shrinks 0 .. 0.45 in steps of 0.05. We measure the same quantity exactly on every
 * calibration token through the group's Gram matrix, err = d^T (X_g^T X_g) d with d = w_g - q(w_g), and
 * search a finer grid (0 .. 0.5 in steps of 0.025). Shrink 0 (no clipping) is always a candidate, so clipping
 * never increases the calibration error.
 */
import { groupQuantize } from "../model/awq.js";
import { dequantizeGroups } from "./group-math.js";
import type { LayerRunner } from "./layer-runner.js";

export const CLIP_SHRINKS: readonly number[] = Array.from({ length: 21 }, (_, i) => i * 0.025);

export interface ClipSearchInput {
  w: Float32Array; // (in, out) the weights to be quantized (AWQ scale already applied)
  inF: number;
  outF: number;
  groupSize: number;
  /** Gram matrix of the inputs the (unscaled) linear sees. */
  gram: Float64Array; // (in, in)
  /** The AWQ scale applied to w's rows: the scaled linear sees x / s, so its Gram is G / (s s^T). */
  rowScale: ArrayLike<number> | null; // (in)
  /** Output columns never clipped, as [start, end) ranges (AutoAWQ leaves q_proj / k_proj unclipped). */
  noClipColumns?: readonly [number, number][];
}

/** Returns the clip bound of each (group, column): (in/g, out), for groupQuantize's `clip` option. */
export function searchClip(runner: LayerRunner, input: ClipSearchInput): Float32Array {
  const { w, inF, outF, groupSize: g } = input;
  const groups = inF / g;
  const maxAbs = new Float32Array(groups * outF); // (in/g, out)
  for (let k = 0; k < inF; k++) {
    const gRow = Math.floor(k / g) * outF;
    for (let n = 0; n < outF; n++) {
      const v = Math.abs(w[k * outF + n]);
      if (v > maxAbs[gRow + n]) maxAbs[gRow + n] = v;
    }
  }
  // The scaled Gram block of each group, in f32 for the SIMD matmul.
  const gramBlocks: Float32Array[] = [];
  for (let gi = 0; gi < groups; gi++) {
    const block = new Float32Array(g * g); // (g, g)
    for (let a = 0; a < g; a++) {
      const ka = gi * g + a;
      const sa = input.rowScale === null ? 1 : input.rowScale[ka];
      for (let b = 0; b < g; b++) {
        const kb = gi * g + b;
        const sb = input.rowScale === null ? 1 : input.rowScale[kb];
        block[a * g + b] = input.gram[ka * inF + kb] / (sa * sb);
      }
    }
    gramBlocks.push(block);
  }
  const bestErr = new Float64Array(groups * outF).fill(Infinity); // (in/g, out)
  const bestBound = new Float32Array(groups * outF); // (in/g, out)
  const bound = new Float32Array(groups * outF); // (in/g, out)
  for (const shrink of CLIP_SHRINKS) {
    for (let i = 0; i < bound.length; i++) bound[i] = maxAbs[i] * (1 - shrink);
    const deq = dequantizeGroups(groupQuantize(w, inF, outF, g, { clip: bound }), inF, outF, g); // (in, out)
    for (let gi = 0; gi < groups; gi++) {
      const delta = new Float32Array(g * outF); // (g, out)
      for (let i = 0; i < delta.length; i++) delta[i] = w[gi * g * outF + i] - deq[gi * g * outF + i];
      const gd = runner.matmul(gramBlocks[gi], delta, g, g, outF); // (g, out) = G_g d
      for (let n = 0; n < outF; n++) {
        let err = 0;
        for (let a = 0; a < g; a++) err += delta[a * outF + n] * gd[a * outF + n];
        const i = gi * outF + n;
        if (err < bestErr[i]) {
          bestErr[i] = err;
          bestBound[i] = bound[i];
        }
      }
    }
  }
  for (const [start, end] of input.noClipColumns ?? []) {
    for (let gi = 0; gi < groups; gi++)
      for (let n = start; n < end; n++) bestBound[gi * outF + n] = maxAbs[gi * outF + n];
  }
  return bestBound;
}
