/**
 * AWQ's activation-aware scale search for one group of linears sharing an input.
 *
 * A per-input-channel scale s multiplies the weights' rows before 4-bit rounding and is folded back into the
 * op before (RMSNorm weight, or the previous linear's output columns), so salient channels (large mean |x|)
 * are rounded more finely. AutoAWQ tries s = x_mean^a / w_mean^(1-a) for a = 0, 0.05 .. 0.95 and keeps the one
 * with the smallest output error of one module. What we change, and why (on the demo model AutoAWQ's pick was
 * worse than plain rounding):
 *   - the identity s = 1 (plain rounding) is a candidate: AutoAWQ's a = 0 is s = 1 / w_mean, not s = 1, so its
 *     search could never fall back to rounding and always applied some scaling;
 *   - both families are tried: x_mean^a / w_mean^(1-a) (AutoAWQ's "duo" scaling) and x_mean^a (original AWQ),
 *     a = 0.05 .. 1;
 *   - the error is measured on the whole decoder layer's output (the residual stream the next layer reads),
 *     with the linears already processed in their final quantized form, not on one module alone.
 */

export interface ScaleCandidate {
  label: string;
  scales: Float32Array; // (in)
}

export const ALPHA_STEPS = 20;

/**
 * AutoAWQ's weight salience: |w| / max|w| of its quantization group, averaged per input channel over every
 * output column of every linear in the group.
 */
export function weightSalience(weights: readonly { w: Float32Array; outF: number }[], inF: number, groupSize: number): Float64Array {
  const sum = new Float64Array(inF); // (in)
  let cols = 0;
  for (const { w, outF } of weights) {
    for (let g = 0; g < inF / groupSize; g++) {
      for (let n = 0; n < outF; n++) {
        let max = 0;
        for (let k = g * groupSize; k < (g + 1) * groupSize; k++) max = Math.max(max, Math.abs(w[k * outF + n]));
        const inv = 1 / (max + 1e-6);
        for (let k = g * groupSize; k < (g + 1) * groupSize; k++) sum[k] += Math.abs(w[k * outF + n]) * inv;
      }
    }
    cols += outF;
  }
  for (let k = 0; k < inF; k++) sum[k] /= cols;
  return sum;
}

/** Scales normalized so that max * min = 1 (AutoAWQ), with non-finite entries set to 1. */
function normalized(raw: Float64Array): Float32Array {
  let max = 0;
  let min = Infinity;
  for (let i = 0; i < raw.length; i++) {
    if (!Number.isFinite(raw[i])) raw[i] = 1;
    raw[i] = Math.max(raw[i], 1e-4);
    max = Math.max(max, raw[i]);
    min = Math.min(min, raw[i]);
  }
  const norm = Math.sqrt(max * min);
  return Float32Array.from(raw, (v) => v / norm);
}

/** Every candidate scale vector of the search (identity first, so ties keep plain rounding). */
export function scaleCandidates(xMean: Float64Array, wMean: Float64Array): ScaleCandidate[] {
  const n = xMean.length;
  const out: ScaleCandidate[] = [{ label: "s=1", scales: new Float32Array(n).fill(1) }];
  for (let i = 1; i <= ALPHA_STEPS; i++) {
    const a = i / ALPHA_STEPS;
    out.push({ label: `x^${a.toFixed(2)}`, scales: normalized(Float64Array.from(xMean, (x) => x ** a)) });
  }
  for (let i = 0; i < ALPHA_STEPS; i++) {
    const a = i / ALPHA_STEPS;
    const raw = new Float64Array(n);
    for (let k = 0; k < n; k++) raw[k] = xMean[k] ** a / (wMean[k] ** (1 - a) + 1e-4);
    out.push({ label: `x^${a.toFixed(2)}/w^${(1 - a).toFixed(2)}`, scales: normalized(raw) });
  }
  return out;
}

export interface ScaleSearchResult {
  best: ScaleCandidate;
  loss: number;
  /** The loss of plain rounding (s = 1), for the log. */
  identityLoss: number;
}

/** Tries each candidate with `lossOf` (lower is better) and returns the best. */
export async function searchScales(
  candidates: readonly ScaleCandidate[],
  lossOf: (scales: Float32Array) => Promise<number>,
): Promise<ScaleSearchResult> {
  let best = candidates[0];
  let bestLoss = Infinity;
  let identityLoss = Number.NaN;
  for (const candidate of candidates) {
    const loss = await lossOf(candidate.scales);
    if (candidate === candidates[0]) identityLoss = loss;
    if (loss < bestLoss) {
      bestLoss = loss;
      best = candidate;
    }
  }
  return { best, loss: bestLoss, identityLoss };
}
