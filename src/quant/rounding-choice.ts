/**
 * Picks, output column by output column, the better of two roundings of the same weights by their error on
 * the calibration inputs: err_n = d_n^T G d_n with d_n = w_n - deq(q)_n and G the inputs' Gram matrix. Output
 * columns of a linear are independent (each has its own groups, scales and zeros), so mixing is exact.
 */
import type { GroupQuantized } from "../model/awq.js";
import { dequantizeGroups } from "./group-math.js";
import type { LayerRunner } from "./layer-runner.js";

export interface RoundingChoiceInput {
  w: Float32Array; // (in, out) the weights both roundings approximate
  inF: number;
  outF: number;
  groupSize: number;
  gram: Float64Array; // (in, in) of the unscaled inputs
  rowScale: ArrayLike<number> | null; // (in) AWQ scale applied to w's rows (inputs are x / s)
}

/** Per output column calibration error of a rounding: (out). */
export function columnErrors(
  runner: LayerRunner,
  input: RoundingChoiceInput,
  gq: GroupQuantized,
): Float64Array {
  const { w, inF, outF, groupSize } = input;
  const deq = dequantizeGroups(gq, inF, outF, groupSize); // (in, out)
  const delta = new Float32Array(inF * outF); // (in, out)
  for (let i = 0; i < delta.length; i++) delta[i] = w[i] - deq[i];
  const g = new Float32Array(inF * inF); // (in, in) Gram of the scaled linear's inputs
  for (let a = 0; a < inF; a++) {
    const sa = input.rowScale === null ? 1 : input.rowScale[a];
    for (let b = 0; b < inF; b++) {
      const sb = input.rowScale === null ? 1 : input.rowScale[b];
      g[a * inF + b] = input.gram[a * inF + b] / (sa * sb);
    }
  }
  const gd = runner.matmul(g, delta, inF, inF, outF); // (in, out)
  const err = new Float64Array(outF); // (out)
  for (let k = 0; k < inF; k++)
    for (let n = 0; n < outF; n++) err[n] += delta[k * outF + n] * gd[k * outF + n];
  return err;
}

/**
 * `base` with the columns where `candidate` has the lower calibration error replaced by the candidate's
 * (except in `keepBase` column ranges). Returns the mix and how many columns came from the candidate.
 */
export function chooseColumns(
  runner: LayerRunner,
  input: RoundingChoiceInput,
  base: GroupQuantized,
  candidate: GroupQuantized,
  keepBase: readonly [number, number][] = [],
): { mixed: GroupQuantized; taken: number } {
  const { inF, outF, groupSize } = input;
  const errBase = columnErrors(runner, input, base);
  const errCand = columnErrors(runner, input, candidate);
  const mixed: GroupQuantized = { q: base.q.slice(), scales: base.scales.slice(), zeros: base.zeros.slice() };
  let taken = 0;
  for (let n = 0; n < outF; n++) {
    if (keepBase.some(([start, end]) => n >= start && n < end) || !(errCand[n] < errBase[n])) continue;
    taken++;
    for (let k = 0; k < inF; k++) mixed.q[k * outF + n] = candidate.q[k * outF + n];
    for (let g = 0; g < inF / groupSize; g++) {
      mixed.scales[g * outF + n] = candidate.scales[g * outF + n];
      mixed.zeros[g * outF + n] = candidate.zeros[g * outF + n];
    }
  }
  return { mixed, taken };
}
