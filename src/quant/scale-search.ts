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
 *   - both families are tried, x_mean^a / w_mean^(1-a) (AutoAWQ's "duo" scaling) and x_mean^a (original AWQ),
 *     a in [0, 1] by a coarse grid refined around the best (a step of 1/16 in about 9 tries per family);
 *   - the error is measured on the whole decoder layer's output (the residual stream the next layer reads),
 *     with the linears already processed in their final quantized form, not on one module alone.
 */

/**
 * AutoAWQ's weight salience: |w| / max|w| of its quantization group, averaged per input channel over every
 * output column of every linear in the group.
 */
export function weightSalience(
  weights: readonly { w: Float32Array; outF: number }[],
  inF: number,
  groupSize: number,
): Float64Array {
  const sum = new Float64Array(inF); // (in)
  let cols = 0;
  for (const { w, outF } of weights) {
    for (let g = 0; g < inF / groupSize; g++) {
      for (let n = 0; n < outF; n++) {
        let max = 0;
        for (let k = g * groupSize; k < (g + 1) * groupSize; k++)
          max = Math.max(max, Math.abs(w[k * outF + n]));
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

/** A one-parameter family of scale vectors, a in [0, 1]. */
export interface ScaleFamily {
  name: string;
  scales(a: number): Float32Array; // (in)
}

/** AWQ's two families: x_mean^a (original AWQ) and x_mean^a / w_mean^(1-a) (AutoAWQ's duo scaling). */
export function scaleFamilies(xMean: Float64Array, wMean: Float64Array): ScaleFamily[] {
  return [
    { name: "x^a", scales: (a) => normalized(Float64Array.from(xMean, (x) => x ** a)) },
    {
      name: "x^a/w^(1-a)",
      scales: (a) => normalized(Float64Array.from(xMean, (x, k) => x ** a / (wMean[k] ** (1 - a) + 1e-4))),
    },
  ];
}

export interface ScaleSearchResult {
  label: string;
  /** null when plain rounding (s = 1) won. */
  scales: Float32Array | null;
  loss: number;
  /** The loss of plain rounding (s = 1), for the log. */
  identityLoss: number;
  evaluations: number;
}

/** Coarse grid of a, then REFINE_LEVELS halvings of the step around the best a, per family. */
export const COARSE_ALPHAS: readonly number[] = [0, 0.25, 0.5, 0.75, 1];
export const REFINE_LEVELS = 2;

/**
 * Searches each family for the a with the lowest `lossOf` (coarse grid, then finer steps around the best:
 * about 9 evaluations per family instead of AutoAWQ's 20, reaching a step of 1/16), and compares with s = 1.
 */
export async function searchScales(
  families: readonly ScaleFamily[],
  inFeatures: number,
  lossOf: (scales: Float32Array) => Promise<number>,
): Promise<ScaleSearchResult> {
  const identityLoss = await lossOf(new Float32Array(inFeatures).fill(1));
  let result: ScaleSearchResult = {
    label: "s=1",
    scales: null,
    loss: identityLoss,
    identityLoss,
    evaluations: 1,
  };
  for (const family of families) {
    const tried = new Map<number, number>();
    const evaluate = async (a: number): Promise<void> => {
      if (tried.has(a) || a < 0 || a > 1) return;
      const scales = family.scales(a);
      const loss = await lossOf(scales);
      tried.set(a, loss);
      result.evaluations++;
      if (loss < result.loss) result = { ...result, label: `${family.name} a=${a}`, scales, loss };
    };
    for (const a of COARSE_ALPHAS) await evaluate(a);
    let step = COARSE_ALPHAS[1] - COARSE_ALPHAS[0];
    for (let level = 0; level < REFINE_LEVELS; level++) {
      step /= 2;
      let bestA = 0;
      let bestLoss = Infinity;
      for (const [a, loss] of tried) {
        if (loss < bestLoss) {
          bestLoss = loss;
          bestA = a;
        }
      }
      await evaluate(bestA - step);
      await evaluate(bestA + step);
    }
  }
  return result;
}
