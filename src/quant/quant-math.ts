/**
 * The compute the AWQ search needs, behind one interface with two implementations: the CPU one
 * (cpu-quant-math.ts, plain TypeScript + the CPU backend's WASM layer code, the numerical reference) and the
 * CUDA one (cuda-quant-math.ts, our addon's kernels, tensors resident on the GPU). awq-search.ts runs the
 * same algorithm on either: it only ever holds handles (W, Q, A, G, C below) and small host vectors (scales,
 * norms, per-channel means).
 *
 * Handles are owned by the caller: every handle an op returns must be given to `release` once no longer
 * needed (the CPU implementation ignores it; the CUDA one frees GPU memory). Ops that only enqueue work return
 * at once; those that hand a value back to the host return a Promise.
 *
 * Shapes: a weight handle W is (in, out) f32 (AWQ orientation, fused linears side by side); Q is a
 * group-quantized (in, out) matrix (q, scales, zeros as awq.ts's GroupQuantized); A is (blocks * seqlen,
 * hidden) f32 calibration activations (the residual stream); G is a linear's input Gram matrix (in, in);
 * C is a per-(group, column) f32 matrix (in / groupSize, out) (clip bounds, clip ratios).
 */

import type { GroupQuantized } from "../model/awq.js";
import {
  type FusedLinear,
  fusedInFeatures,
  fusedOutFeatures,
  type LayerDims,
} from "../model/fused-layout.js";

// The layout is model/fused-layout.ts's; the quantizer's interface speaks in it.
export { type FusedLinear, fusedInFeatures, fusedOutFeatures };

/** Blocks of seqlen tokens in x (blocks * seqlen, hidden); throws naming the expected shape. */
export function activationBlocks(dims: LayerDims, seqlen: number, x: Float32Array): number {
  const span = seqlen * dims.hiddenSize;
  if (x.length === 0 || x.length % span !== 0) {
    throw new Error(
      `quantizer: activations must be (blocks * ${seqlen}, ${dims.hiddenSize}), got ${x.length} values`,
    );
  }
  return x.length / span;
}

/** Checks w is `which`'s (in, out) matrix; returns its shape. */
export function weightShape(
  dims: LayerDims,
  which: FusedLinear,
  w: Float32Array,
): { inF: number; outF: number } {
  const inF = fusedInFeatures(dims, which);
  const outF = fusedOutFeatures(dims, which);
  if (w.length !== inF * outF)
    throw new Error(`quantizer: ${which} weights must be (${inF}, ${outF}), got ${w.length} values`);
  return { inF, outF };
}

// The argument checks both implementations make, so that they refuse the same inputs with the same words.

/** A list of blocks to clone: each an index into `count` blocks, and at least one. */
export function checkBlockList(blocks: readonly number[], count: number): void {
  for (const b of blocks) {
    if (!(Number.isInteger(b) && b >= 0 && b < count))
      throw new Error(`quantizer: block ${b} out of range (${count} blocks)`);
  }
  if (blocks.length === 0) throw new Error("quantizer: cloneActivations of an empty block list");
}

/** Two activations an op pairs element by element (copy, mean squared error) hold the same number of blocks. */
export function checkSameBlocks(op: "copy" | "meanSquaredError", a: number, b: number): void {
  if (a === b) return;
  throw new Error(
    op === "copy"
      ? `quantizer: copy of ${b} blocks into ${a} blocks`
      : `quantizer: mean squared error of ${a} blocks against ${b} blocks`,
  );
}

/** A per-input-row vector (AWQ scales) of a weight with inF rows. */
export function checkRowVector(name: string, s: Float32Array, inF: number): void {
  if (s.length !== inF) throw new Error(`quantizer: ${name} has ${s.length} values, expected ${inF}`);
}

/** Columns [start, start + width) inside a matrix of outF columns. */
export function checkColumnRange(start: number, width: number, outF: number): void {
  if (!(Number.isInteger(start) && start >= 0 && start + width <= outF))
    throw new Error(`quantizer: columns [${start}, ${start + width}) outside ${outF} columns`);
}

/** GPTQ's bound on a weight's input width. */
export function checkGptqWidth(inF: number, max: number): void {
  if (inF > max) throw new Error(`quantizer: GPTQ rounds inputs up to ${max} wide, not ${inF}`);
}

/** The linear a forward captures must be one the part runs (q|k|v and o: attention; gate|up and down: mlp). */
export function checkCapture(part: LayerPart, capture: FusedLinear | undefined): void {
  if (capture === undefined || part === "layer") return;
  const half = capture === "qkv" || capture === "o" ? "attention" : "mlp";
  if (half !== part) throw new Error(`quantizer: capture ${capture} is not part of the ${part} half`);
}

/** Which half of a decoder layer a forward runs. */
export type LayerPart = "layer" | "attention" | "mlp";

export interface LayerNorms {
  inputNorm: Float32Array; // (hidden) f16-exact values
  postAttentionNorm: Float32Array; // (hidden) f16-exact values
}

/** Statistics of the inputs one linear saw during a forward (input-stats.ts). */
export interface InputStats<G> {
  inFeatures: number;
  tokens: number;
  absMean: Float64Array; // (in) mean |x| per input channel, on the host
  gram: G; // (in, in) sum over tokens of x x^T
}

/** A weight matrix with what error measures need: the inputs' Gram matrix and the AWQ row scale applied. */
export interface WeightErrorInput<W, G> {
  w: W; // (in, out) the weights (row scale already applied)
  groupSize: number;
  gram: G; // (in, in) of the UNscaled inputs
  rowScale: Float32Array | null; // (in) AWQ scale applied to w's rows (the scaled linear sees x / s)
}

export interface QuantMath<W, Q, A, G, C> {
  /** "cpu" or "cuda", for logs. */
  readonly name: string;
  readonly dims: LayerDims;
  readonly seqlen: number;
  /** Width of a fused linear's output. */
  outFeatures(which: FusedLinear): number;
  /** Width of a fused linear's input. */
  inFeatures(which: FusedLinear): number;

  // --- activations ---
  /** x (blocks * seqlen, hidden) f32 from the host (the embeddings of the calibration blocks). */
  uploadActivations(x: Float32Array): Promise<A>;
  /** Back to the host (tests, debugging). */
  downloadActivations(a: A): Promise<Float32Array>;
  /** Number of seqlen-token blocks in `a`. */
  blockCount(a: A): number;
  /** A copy of every block of `a`, or of the listed blocks (in that order). */
  cloneActivations(a: A, blocks?: readonly number[]): A;
  /** dst = src (same block count). */
  copyActivations(dst: A, src: A): void;
  /** sum of squared differences / element count, over every element of a and b (same shape). */
  meanSquaredError(a: A, b: A): Promise<number>;

  // --- the layer ---
  /** Uploads a (in, out) f32 weight matrix of `which`'s shape (`w` must stay untouched until it resolves). */
  uploadWeight(which: FusedLinear, w: Float32Array): Promise<W>;
  /** The weights the next forwards use for `which` (the handle stays the caller's; it is copied or read). */
  setLinear(which: FusedLinear, w: W): void;
  /**
   * Runs `part` of the decoder layer (norms given, linears as last set) on every block of `h`, in place
   * (h += attention block and/or h += MLP block, dense causal attention within each block). With `capture`,
   * returns the statistics of that linear's inputs over every token of `h`.
   */
  forward(
    h: A,
    norms: LayerNorms,
    part: LayerPart,
    capture?: FusedLinear,
  ): Promise<InputStats<G> | undefined>;

  // --- weight math (group-math.ts, awq.ts, scale-search.ts, clip-search.ts, rounding-choice.ts) ---
  /** AutoAWQ's weight salience of one (in, out) linear: (in), on the host. */
  weightSalience(w: W, groupSize: number): Promise<Float64Array>;
  /** Rows multiplied by s (or divided). A new handle. */
  scaleRows(w: W, s: Float32Array, divide?: boolean): W;
  /** awq.ts groupQuantize, optionally clipped to bounds (in/g, out). */
  groupQuantize(w: W, groupSize: number, clip?: C): Q;
  /** (q - z) * scale, (in, out). */
  dequantize(q: Q): W;
  /** Q(diag(s) W) / diag(s) (group-math.ts pseudoQuantizeScaled); s null = plain rounding. */
  pseudoQuantizeScaled(w: W, s: Float32Array | null, groupSize: number): W;
  /** Clip search: bounds (in/g, out); columns in noClipColumns stay unclipped. */
  searchClip(input: WeightErrorInput<W, G>, noClipColumns: readonly [number, number][]): C;
  /** Output columns [start, start + s.length) of q divided by s (folds the next linear's AWQ scale), in place. */
  divideQuantizedColumns(q: Q, s: Float32Array, start: number): void;
  /** The quantized matrix on the host (for the checkpoint writer). */
  downloadQuantized(q: Q): Promise<GroupQuantized>;

  // --- GPTQ rounding (gptq-round.ts, rounding-choice.ts) ---
  /** Widest input the implementation rounds by GPTQ (wider linears keep the clipped rounding). */
  readonly gptqMaxInFeatures: number;
  /** GPTQ rounding of input.w against the damped Gram matrix (clipped to clipRatio * max when given). */
  gptqQuantize(input: WeightErrorInput<W, G>, clipRatio?: C): Q;
  /** Per (group, column) clip bound as a share of the group's max |w| (1 = unclipped). */
  clipRatios(w: W, clip: C, groupSize: number): C;
  /**
   * `base` with the columns where `candidate` has the lower calibration error replaced by the candidate's,
   * except in keepBase column ranges. A new Q; `taken` counts the columns taken from the candidate.
   */
  chooseColumns(
    input: WeightErrorInput<W, G>,
    base: Q,
    candidate: Q,
    keepBase: readonly [number, number][],
  ): Promise<{ mixed: Q; taken: number }>;

  /**
   * Device memory (GPU implementations): the peak so far (the pool's high-water mark plus what lives outside it:
   * the CUDA context, fixed buffers) and the card's total. Absent on the CPU.
   */
  deviceMemory?(): { peakBytes: number; totalBytes: number };

  // --- lifetime ---
  /** Frees handles (any kind; null/undefined ignored). */
  release(...handles: unknown[]): void;
  /** Frees everything (the implementation cannot be used afterwards). */
  dispose(): Promise<void>;
}

/** Any implementation, as the quantizer driver holds it. */
// biome-ignore lint/suspicious/noExplicitAny: the handle types are each implementation's own.
export type AnyQuantMath = QuantMath<any, any, any, any, any>;
