/**
 * Statistics of the inputs a linear sees on the calibration tokens: the mean |x| per input channel (AWQ's
 * activation salience) and the Gram matrix X^T X (the exact quadratic form of the linear's output error,
 * used by the clip search so every calibration token counts without a per-candidate pass over them).
 */
import type { LayerRunner } from "./layer-runner.js";

export interface InputStats {
  inFeatures: number;
  tokens: number;
  absMean: Float64Array; // (in) mean |x| per channel
  gram: Float64Array; // (in, in) sum over tokens of x x^T
}

/** Accumulates InputStats block by block (each block (rows, in), as the layer observer hands them out). */
export class InputStatsAccumulator {
  private readonly absSum: Float64Array; // (in)
  private readonly gram: Float64Array; // (in, in)
  private tokens = 0;
  private readonly transposed: Float32Array; // (in, rows) scratch

  constructor(
    private readonly runner: LayerRunner,
    readonly inFeatures: number,
    private readonly rows: number,
  ) {
    this.absSum = new Float64Array(inFeatures);
    this.gram = new Float64Array(inFeatures * inFeatures);
    this.transposed = new Float32Array(inFeatures * rows);
    // Reserve the matmul's scratch now: growing the arena inside the layer's observer would detach its views.
    runner.reserveMatmul(inFeatures, rows, inFeatures);
  }

  add(x: Float32Array): void {
    const n = this.inFeatures;
    const rows = this.rows;
    if (x.length !== rows * n)
      throw new Error(`input stats: expected (${rows}, ${n}) inputs, got ${x.length} values`);
    const t = this.transposed;
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      for (let i = 0; i < n; i++) {
        const v = x[base + i];
        this.absSum[i] += v < 0 ? -v : v;
        t[i * rows + r] = v;
      }
    }
    const g = this.runner.matmul(t, x, n, rows, n); // (in, in)
    for (let i = 0; i < g.length; i++) this.gram[i] += g[i];
    this.tokens += rows;
  }

  finish(): InputStats {
    const absMean = new Float64Array(this.inFeatures); // (in)
    for (let i = 0; i < absMean.length; i++) absMean[i] = this.absSum[i] / Math.max(this.tokens, 1);
    return { inFeatures: this.inFeatures, tokens: this.tokens, absMean, gram: this.gram };
  }
}
