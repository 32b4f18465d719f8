/**
 * QuantMath on the CPU: the numerical reference. Every op is the quantizer's own TypeScript (group-math.ts,
 * awq.ts, clip-search.ts, gptq-round.ts, rounding-choice.ts, scale-search.ts) and the CPU backend's layer code
 * through LayerRunner, so the AWQ search through this class gives bit-for-bit the checkpoint the quantizer
 * wrote before QuantMath existed. Handles are plain host arrays that carry their shapes; `release` has nothing
 * to free (the garbage collector does it once the caller drops them).
 */

import { type GroupQuantized, groupQuantize } from "../model/awq.js";
import type { LayerDims } from "../model/fused-layout.js";
import type { ModelConfig } from "../model/types.js";
import { searchClip } from "./clip-search.js";
import { dampedGram, GPTQ_MAX_IN_FEATURES, gptqQuantize } from "./gptq-round.js";
import { dequantizeGroups, divideQuantizedColumns, pseudoQuantizeScaled, scaleRows } from "./group-math.js";
import { InputStatsAccumulator } from "./input-stats.js";
import { LayerRunner } from "./layer-runner.js";
import {
  activationBlocks,
  checkBlockList,
  checkCapture,
  checkColumnRange,
  checkGptqWidth,
  checkRowVector,
  checkSameBlocks,
  type FusedLinear,
  fusedInFeatures,
  type InputStats,
  type LayerNorms,
  type LayerPart,
  type QuantMath,
  type WeightErrorInput,
  weightShape,
} from "./quant-math.js";
import { chooseColumns } from "./rounding-choice.js";
import { weightSalience } from "./scale-search.js";

/** A weight matrix on the host. */
export interface CpuWeight {
  data: Float32Array; // (inF, outF)
  inF: number;
  outF: number;
}

/** A group-quantized matrix on the host. */
export interface CpuQuantized {
  gq: GroupQuantized; // q (inF, outF), scales / zeros (inF / groupSize, outF)
  inF: number;
  outF: number;
  groupSize: number;
}

/** Calibration activations on the host. */
export interface CpuActivations {
  data: Float32Array; // (blocks * seqlen, hidden)
  blocks: number;
}

/** A linear's input Gram matrix. */
export interface CpuGram {
  data: Float64Array; // (n, n)
  n: number;
}

/** A per-(group, column) matrix: clip bounds or clip ratios. */
export interface CpuGroupMatrix {
  data: Float32Array; // (groups, outF)
  groups: number;
  outF: number;
}

export class CpuQuantMath
  implements QuantMath<CpuWeight, CpuQuantized, CpuActivations, CpuGram, CpuGroupMatrix>
{
  readonly name = "cpu";
  readonly gptqMaxInFeatures = GPTQ_MAX_IN_FEATURES;
  readonly dims: LayerDims;
  private readonly runner: LayerRunner;

  constructor(
    config: ModelConfig,
    readonly seqlen: number,
  ) {
    this.runner = new LayerRunner(config, seqlen);
    this.dims = this.runner.dims;
  }

  outFeatures(which: FusedLinear): number {
    return this.runner.outFeatures(which);
  }

  inFeatures(which: FusedLinear): number {
    return fusedInFeatures(this.dims, which);
  }

  // --- activations ---

  private get span(): number {
    return this.seqlen * this.dims.hiddenSize;
  }

  async uploadActivations(x: Float32Array): Promise<CpuActivations> {
    return { data: x.slice(), blocks: activationBlocks(this.dims, this.seqlen, x) };
  }

  async downloadActivations(a: CpuActivations): Promise<Float32Array> {
    return a.data.slice();
  }

  blockCount(a: CpuActivations): number {
    return a.blocks;
  }

  cloneActivations(a: CpuActivations, blocks?: readonly number[]): CpuActivations {
    if (blocks === undefined) return { data: a.data.slice(), blocks: a.blocks };
    checkBlockList(blocks, a.blocks);
    const span = this.span;
    const out = new Float32Array(blocks.length * span); // (blocks.length * seqlen, hidden)
    for (const [i, b] of blocks.entries()) out.set(a.data.subarray(b * span, (b + 1) * span), i * span);
    return { data: out, blocks: blocks.length };
  }

  copyActivations(dst: CpuActivations, src: CpuActivations): void {
    checkSameBlocks("copy", dst.blocks, src.blocks);
    dst.data.set(src.data);
  }

  async meanSquaredError(a: CpuActivations, b: CpuActivations): Promise<number> {
    checkSameBlocks("meanSquaredError", a.blocks, b.blocks);
    const x = a.data;
    const y = b.data;
    let sum = 0;
    for (let i = 0; i < x.length; i++) {
      const d = x[i] - y[i];
      sum += d * d;
    }
    return sum / x.length;
  }

  // --- the layer ---

  async uploadWeight(which: FusedLinear, w: Float32Array): Promise<CpuWeight> {
    return { data: w, ...weightShape(this.dims, which, w) };
  }

  setLinear(which: FusedLinear, w: CpuWeight): void {
    this.runner.setLinear(which, w.data);
  }

  async forward(
    h: CpuActivations,
    norms: LayerNorms,
    part: LayerPart,
    capture?: FusedLinear,
  ): Promise<InputStats<CpuGram> | undefined> {
    checkCapture(part, capture);
    const blocks = Array.from({ length: h.blocks }, (_, i) => i);
    // Constructed before the forward: it reserves its matmul scratch, which must not grow mid-layer.
    const acc =
      capture === undefined
        ? null
        : new InputStatsAccumulator(this.runner, this.inFeatures(capture), this.seqlen);
    await this.runner.forward(
      h.data,
      norms,
      blocks,
      acc === null
        ? undefined
        : (linear, input) => {
            if (linear === capture) acc.add(input);
          },
      part,
    );
    if (acc === null) return undefined;
    const stats = acc.finish();
    return {
      inFeatures: stats.inFeatures,
      tokens: stats.tokens,
      absMean: stats.absMean,
      gram: { data: stats.gram, n: stats.inFeatures },
    };
  }

  // --- weight math ---

  async weightSalience(w: CpuWeight, groupSize: number): Promise<Float64Array> {
    return weightSalience([{ w: w.data, outF: w.outF }], w.inF, groupSize);
  }

  scaleRows(w: CpuWeight, s: Float32Array, divide = false): CpuWeight {
    checkRowVector("s", s, w.inF);
    return { data: scaleRows(w.data, s, w.inF, w.outF, divide), inF: w.inF, outF: w.outF };
  }

  groupQuantize(w: CpuWeight, groupSize: number, clip?: CpuGroupMatrix): CpuQuantized {
    const gq = groupQuantize(w.data, w.inF, w.outF, groupSize, clip === undefined ? {} : { clip: clip.data });
    return { gq, inF: w.inF, outF: w.outF, groupSize };
  }

  dequantize(q: CpuQuantized): CpuWeight {
    return { data: dequantizeGroups(q.gq, q.inF, q.outF, q.groupSize), inF: q.inF, outF: q.outF };
  }

  pseudoQuantizeScaled(w: CpuWeight, s: Float32Array | null, groupSize: number): CpuWeight {
    if (s !== null) checkRowVector("s", s, w.inF);
    return { data: pseudoQuantizeScaled(w.data, s, w.inF, w.outF, groupSize), inF: w.inF, outF: w.outF };
  }

  searchClip(
    input: WeightErrorInput<CpuWeight, CpuGram>,
    noClipColumns: readonly [number, number][],
  ): CpuGroupMatrix {
    const { w, groupSize } = input;
    const data = searchClip(this.runner, { ...hostErrorInput(input), noClipColumns });
    return { data, groups: w.inF / groupSize, outF: w.outF };
  }

  divideQuantizedColumns(q: CpuQuantized, s: Float32Array, start: number): void {
    checkColumnRange(start, s.length, q.outF);
    divideQuantizedColumns(q.gq, s, start, q.outF);
  }

  async downloadQuantized(q: CpuQuantized): Promise<GroupQuantized> {
    return q.gq;
  }

  // --- GPTQ rounding ---

  gptqQuantize(input: WeightErrorInput<CpuWeight, CpuGram>, clipRatio?: CpuGroupMatrix): CpuQuantized {
    const { w, groupSize } = input;
    checkGptqWidth(w.inF, this.gptqMaxInFeatures);
    const h = dampedGram(input.gram.data, w.inF, input.rowScale);
    const gq = gptqQuantize(w.data, w.inF, w.outF, groupSize, h, clipRatio?.data);
    return { gq, inF: w.inF, outF: w.outF, groupSize };
  }

  clipRatios(w: CpuWeight, clip: CpuGroupMatrix, groupSize: number): CpuGroupMatrix {
    const { inF, outF, data } = w;
    const ratio = new Float32Array(clip.data.length); // (in/g, out)
    for (let gi = 0; gi < inF / groupSize; gi++) {
      for (let n = 0; n < outF; n++) {
        let max = 0;
        for (let k = gi * groupSize; k < (gi + 1) * groupSize; k++)
          max = Math.max(max, Math.abs(data[k * outF + n]));
        const bound = clip.data[gi * outF + n];
        ratio[gi * outF + n] = max > 0 ? Math.min(1, bound / max) : 1;
      }
    }
    return { data: ratio, groups: clip.groups, outF };
  }

  async chooseColumns(
    input: WeightErrorInput<CpuWeight, CpuGram>,
    base: CpuQuantized,
    candidate: CpuQuantized,
    keepBase: readonly [number, number][],
  ): Promise<{ mixed: CpuQuantized; taken: number }> {
    const { w, groupSize } = input;
    const choice = hostErrorInput(input);
    const { mixed, taken } = chooseColumns(this.runner, choice, base.gq, candidate.gq, keepBase);
    return { mixed: { gq: mixed, inF: w.inF, outF: w.outF, groupSize }, taken };
  }

  // --- lifetime ---

  release(..._handles: unknown[]): void {
    // Host arrays: nothing to free; the caller dropping its references is enough.
  }

  async dispose(): Promise<void> {
    await this.runner.dispose();
  }
}

/** A weight-error input as the host searches (clip-search.ts, rounding-choice.ts) take it: flat arrays. */
function hostErrorInput(input: WeightErrorInput<CpuWeight, CpuGram>) {
  const { w, groupSize } = input;
  return { w: w.data, inF: w.inF, outF: w.outF, groupSize, gram: input.gram.data, rowScale: input.rowScale };
}
