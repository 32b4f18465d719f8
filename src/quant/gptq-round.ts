/**
 * Error-compensating rounding (GPTQ, Frantar et al. 2022) in AutoAWQ's group layout: input channels are
 * rounded one at a time, and each one's rounding error is pushed onto the channels not yet rounded through the
 * inverse of the calibration inputs' Gram matrix H = X^T X, so the linear's OUTPUT error on the calibration
 * tokens is what gets minimized, not each weight's. A group's scale and zero are fixed (by awq.ts's min/max
 * rule) when its first channel is reached, from the weights as updated so far. The result is ordinary 4-bit
 * values + f16 scales + zeros: the same checkpoint format, read by every AWQ GEMM kernel.
 *
 * The quantizer uses it after AWQ's scale search, column by column only where it beats the clipped rounding on
 * the calibration error (awq-search.ts), so it never makes a linear worse on that measure.
 */
import { AWQ_MAX_Q, type GroupQuantized, groupQuantize, roundHalfEven } from "../model/awq.js";

/**
 * Widest input GPTQ rounds: its Cholesky factorizations are O(in^3) in plain TypeScript (seconds at 768, hours
 * at Llama-13B's 13824); wider linears keep the clipped rounding.
 */
export const GPTQ_MAX_IN_FEATURES = 8192;

/** Relative dampening added to H's diagonal (GPTQ's percdamp), for a well-conditioned inverse. */
export const GPTQ_DAMP = 0.01;

/** Lower Cholesky factor of a symmetric positive definite (n, n) matrix, in place. Throws if not SPD. */
function choleskyLower(a: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) throw new Error(`GPTQ: Gram matrix not positive definite at channel ${j}`);
    const ljj = Math.sqrt(d);
    a[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / ljj;
    }
    for (let k = j + 1; k < n; k++) a[j * n + k] = 0;
  }
}

/** U, the upper Cholesky factor of H^-1 (what GPTQ's updates use), for H (n, n) SPD. */
export function inverseCholeskyUpper(h: Float64Array, n: number): Float64Array {
  const l = Float64Array.from(h); // (n, n) -> L, H = L L^T
  choleskyLower(l, n);
  // Linv = L^-1 (lower), by forward substitution column by column.
  const linv = new Float64Array(n * n); // (n, n)
  for (let c = 0; c < n; c++) {
    linv[c * n + c] = 1 / l[c * n + c];
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s -= l[i * n + k] * linv[k * n + c];
      linv[i * n + c] = s / l[i * n + i];
    }
  }
  // H^-1 = Linv^T Linv; U = upper Cholesky factor of it (H^-1 = U^T U).
  const hinv = new Float64Array(n * n); // (n, n)
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = j; k < n; k++) s += linv[k * n + i] * linv[k * n + j];
      hinv[i * n + j] = s;
      hinv[j * n + i] = s;
    }
  }
  choleskyLower(hinv, n); // L' with H^-1 = L' L'^T, so U = L'^T
  const u = new Float64Array(n * n); // (n, n)
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = hinv[i * n + j];
  return u;
}

/** H = gram / (s s^T) + damp * mean(diag) * I, with dead channels (no signal) given a unit diagonal. */
export function dampedGram(gram: Float64Array, n: number, rowScale: ArrayLike<number> | null): Float64Array {
  const h = new Float64Array(n * n); // (n, n)
  let diagSum = 0;
  for (let i = 0; i < n; i++) {
    const si = rowScale === null ? 1 : rowScale[i];
    for (let j = 0; j < n; j++) {
      const sj = rowScale === null ? 1 : rowScale[j];
      h[i * n + j] = gram[i * n + j] / (si * sj);
    }
    diagSum += h[i * n + i];
  }
  const damp = (GPTQ_DAMP * diagSum) / n;
  for (let i = 0; i < n; i++) h[i * n + i] = h[i * n + i] > 0 ? h[i * n + i] + damp : 1;
  return h;
}

/** GPTQ rounding of W (in, out) against the damped Gram matrix `h` (in, in) of its inputs. */
export function gptqQuantize(
  w: Float32Array, // (in, out)
  inF: number,
  outF: number,
  groupSize: number,
  h: Float64Array, // (in, in)
  /** Per (group, column) share of the group's max |w| to clip to (clip search's bound / max), as AWQ clips. */
  clipRatio?: Float32Array, // (in/g, out)
): GroupQuantized {
  const u = inverseCholeskyUpper(h, inF); // (in, in)
  const work = Float64Array.from(w); // (in, out) weights as updated by the errors pushed forward
  const groups = inF / groupSize;
  const q = new Uint8Array(inF * outF); // (in, out)
  const scales = new Float32Array(groups * outF); // (in/g, out)
  const zeros = new Uint8Array(groups * outF); // (in/g, out)
  const err = new Float64Array(outF); // (out)
  for (let k = 0; k < inF; k++) {
    const g = Math.floor(k / groupSize);
    if (k % groupSize === 0) {
      const block = Float32Array.from(work.subarray(k * outF, (k + groupSize) * outF)); // (g, out)
      let clip: Float32Array | undefined; // (1, out)
      if (clipRatio !== undefined) {
        clip = new Float32Array(outF);
        for (let i = 0; i < block.length; i++) clip[i % outF] = Math.max(clip[i % outF], Math.abs(block[i]));
        for (let n = 0; n < outF; n++) clip[n] *= clipRatio[g * outF + n];
      }
      const params = groupQuantize(block, groupSize, outF, groupSize, { clip });
      scales.set(params.scales, g * outF);
      zeros.set(params.zeros, g * outF);
    }
    const dkk = u[k * inF + k];
    for (let n = 0; n < outF; n++) {
      const s = scales[g * outF + n];
      const z = zeros[g * outF + n];
      const v = roundHalfEven(work[k * outF + n] / s) + z;
      const qv = Math.max(0, Math.min(AWQ_MAX_Q, v));
      q[k * outF + n] = qv;
      err[n] = (work[k * outF + n] - (qv - z) * s) / dkk;
    }
    for (let j = k + 1; j < inF; j++) {
      const ukj = u[k * inF + j];
      if (ukj === 0) continue;
      const row = j * outF;
      for (let n = 0; n < outF; n++) work[row + n] -= err[n] * ukj;
    }
  }
  return { q, scales, zeros };
}
