/**
 * QuantMath on the GPU (awq quantize --backend cuda): every tensor lives in the addon's QuantContext
 * (native/quant/), handles are small objects holding its integer id and shape. The layer forward is the CUDA
 * engine's own layer (fp32 residual, fp16 activations and weights), so it matches the CPU reference within fp16
 * rounding; the weight math reproduces the CPU's rounding decisions (quant_kernels.h).
 *
 * Ops that only enqueue GPU work return at once, in call order on one stream; the others await the GPU off the
 * JS thread. Handles must be released (GPU memory); dispose() frees everything at once.
 */

import { nativeDims } from "../backend/cuda/load-weights.js";
import {
  loadQuantContextClass,
  type NativeQuantContext,
  type NativeQuantDims,
} from "../backend/cuda/native-addon.js";
import type { GroupQuantized } from "../model/awq.js";
import type { LayerDims } from "../model/fused-layout.js";
import { layerDims } from "../model/fused-layout.js";
import type { ModelConfig } from "../model/types.js";
import { GPTQ_MAX_IN_FEATURES } from "./gptq-round.js";
import {
  activationBlocks,
  checkBlockList,
  checkCapture,
  checkColumnRange,
  checkGptqWidth,
  checkSameBlocks,
  type FusedLinear,
  fusedInFeatures,
  fusedOutFeatures,
  type InputStats,
  type LayerNorms,
  type LayerPart,
  type QuantMath,
  type WeightErrorInput,
  weightShape,
} from "./quant-math.js";

/** A weight matrix (in, out) f32 on the GPU. */
export interface CudaWeight {
  readonly kind: "weight";
  readonly id: number;
  readonly inF: number;
  readonly outF: number;
}

/** A group-quantized matrix on the GPU: q (in, out), scales / zeros (in / groupSize, out). */
export interface CudaQuantized {
  readonly kind: "quantized";
  readonly id: number;
  readonly inF: number;
  readonly outF: number;
  readonly groupSize: number;
}

/** Calibration activations (blocks * seqlen, hidden) f32 on the GPU. */
export interface CudaActivations {
  readonly kind: "activations";
  readonly id: number;
  readonly blocks: number;
}

/** A linear's input Gram matrix (n, n) f32 on the GPU. */
export interface CudaGram {
  readonly kind: "gram";
  readonly id: number;
  readonly n: number;
}

/** A per-(group, column) matrix (groups, out) f32 on the GPU: clip bounds or clip ratios. */
export interface CudaGroupMatrix {
  readonly kind: "groups";
  readonly id: number;
  readonly groups: number;
  readonly outF: number;
}

type CudaHandle = CudaWeight | CudaQuantized | CudaActivations | CudaGram | CudaGroupMatrix;

const LINEAR_INDEX: Record<FusedLinear, number> = { qkv: 0, o: 1, gateUp: 2, down: 3 };
const PART_INDEX: Record<LayerPart, number> = { layer: 0, attention: 1, mlp: 2 };

/** Tokens per forward chunk: bounds the activation and KV buffers whatever the number of calibration blocks. */
const CHUNK_TOKENS = 8192;

/** The one column range a kernel takes (the AWQ search passes at most one); [0, 0) for none. */
function singleRange(ranges: readonly [number, number][], what: string): [number, number] {
  if (ranges.length === 0) return [0, 0];
  if (ranges.length > 1) {
    throw new Error(
      `quantizer (cuda): ${what} takes at most one column range, got ${ranges.length} (${JSON.stringify(ranges)})`,
    );
  }
  return ranges[0];
}

export class CudaQuantMath
  implements QuantMath<CudaWeight, CudaQuantized, CudaActivations, CudaGram, CudaGroupMatrix>
{
  readonly name = "cuda";
  /** As the CPU: the same linears get GPTQ rounding on either backend. */
  readonly gptqMaxInFeatures = GPTQ_MAX_IN_FEATURES;
  readonly dims: LayerDims;
  private disposed = false;

  private constructor(
    private readonly ctx: NativeQuantContext,
    readonly seqlen: number,
    dims: LayerDims,
    /** The GPU's name, for logs. */
    readonly deviceName: string,
  ) {
    this.dims = dims;
  }

  /**
   * Loads the addon and sets up the GPU side; BackendUnavailableError when CUDA cannot run here.
   * opts.chunkTokens: tokens per forward chunk (default 8192; tests use small chunks to cover chunking).
   */
  static async create(
    config: ModelConfig,
    seqlen: number,
    opts: { chunkTokens?: number } = {},
  ): Promise<CudaQuantMath> {
    if (!(Number.isInteger(seqlen) && seqlen > 0))
      throw new Error(`quantizer: seqlen must be a positive integer, got ${seqlen}`);
    const QuantContext = await loadQuantContextClass();
    // The CUDA backend's view of the config (the context reads the layer and RoPE fields of it).
    const dims: NativeQuantDims = nativeDims(config);
    const ctx = new QuantContext();
    const chunkBlocks = Math.max(1, Math.floor((opts.chunkTokens ?? CHUNK_TOKENS) / seqlen));
    const { deviceName } = await ctx.init(dims, seqlen, chunkBlocks, 0);
    return new CudaQuantMath(ctx, seqlen, layerDims(config), deviceName);
  }

  outFeatures(which: FusedLinear): number {
    return fusedOutFeatures(this.dims, which);
  }

  inFeatures(which: FusedLinear): number {
    return fusedInFeatures(this.dims, which);
  }

  /** Live tensors and the GPU memory pool (tests: alloc/release cycles must not grow it). */
  memoryStats(): ReturnType<NativeQuantContext["memoryStats"]> {
    return this.native.memoryStats();
  }

  deviceMemory(): { peakBytes: number; totalBytes: number } {
    const m = this.native.memoryStats();
    // Outside the pool (CUDA context, the context's fixed buffers, other processes) + the pool's peak.
    const outsidePool = Math.max(0, m.deviceUsedBytes - m.poolReservedBytes);
    return { peakBytes: outsidePool + m.poolReservedPeakBytes, totalBytes: m.deviceTotalBytes };
  }

  /** A Gram matrix (n, n) from the host, rounded to f32 (tests: the same Gram matrix on both backends). */
  uploadGram(gram: Float64Array | Float32Array, n: number): CudaGram {
    if (gram.length !== n * n)
      throw new Error(`quantizer: a Gram matrix must be (${n}, ${n}), got ${gram.length} values`);
    return { kind: "gram", id: this.native.uploadF32(Float32Array.from(gram), n, n), n };
  }

  /** Any f32 matrix handle (weights, a Gram matrix, clip bounds) back on the host, row-major (tests, debugging). */
  downloadMatrix(m: CudaWeight | CudaGram | CudaGroupMatrix): Promise<Float32Array> {
    return this.native.download(m.id);
  }

  private get native(): NativeQuantContext {
    if (this.disposed) throw new Error("quantizer (cuda): used after dispose()");
    return this.ctx;
  }

  // --- activations ---

  async uploadActivations(x: Float32Array): Promise<CudaActivations> {
    const blocks = activationBlocks(this.dims, this.seqlen, x);
    const id = await this.native.uploadF32Async(x, blocks * this.seqlen, this.dims.hiddenSize);
    return { kind: "activations", id, blocks };
  }

  downloadActivations(a: CudaActivations): Promise<Float32Array> {
    return this.native.download(a.id);
  }

  blockCount(a: CudaActivations): number {
    return a.blocks;
  }

  cloneActivations(a: CudaActivations, blocks?: readonly number[]): CudaActivations {
    if (blocks !== undefined) checkBlockList(blocks, a.blocks);
    const id = this.native.cloneRows(a.id, blocks === undefined ? null : Int32Array.from(blocks));
    return { kind: "activations", id, blocks: blocks?.length ?? a.blocks };
  }

  copyActivations(dst: CudaActivations, src: CudaActivations): void {
    checkSameBlocks("copy", dst.blocks, src.blocks);
    this.native.copy(dst.id, src.id);
  }

  meanSquaredError(a: CudaActivations, b: CudaActivations): Promise<number> {
    checkSameBlocks("meanSquaredError", a.blocks, b.blocks);
    return this.native.meanSquaredError(a.id, b.id);
  }

  // --- the layer ---

  async uploadWeight(which: FusedLinear, w: Float32Array): Promise<CudaWeight> {
    const { inF, outF } = weightShape(this.dims, which, w);
    // The copy waits off the JS thread (a 13B gate/up matrix is 566 MB).
    return { kind: "weight", id: await this.native.uploadF32Async(w, inF, outF), inF, outF };
  }

  setLinear(which: FusedLinear, w: CudaWeight): void {
    this.native.setLinear(LINEAR_INDEX[which], w.id);
  }

  async forward(
    h: CudaActivations,
    norms: LayerNorms,
    part: LayerPart,
    capture?: FusedLinear,
  ): Promise<InputStats<CudaGram> | undefined> {
    checkCapture(part, capture);
    const pending = this.native.forward(
      h.id,
      part === "mlp" ? null : norms.inputNorm,
      part === "attention" ? null : norms.postAttentionNorm,
      PART_INDEX[part],
      capture === undefined ? -1 : LINEAR_INDEX[capture],
    );
    if (pending === undefined) return undefined;
    const r = await pending;
    return {
      inFeatures: r.inFeatures,
      tokens: r.tokens,
      absMean: r.absMean,
      gram: { kind: "gram", id: r.gram, n: r.inFeatures },
    };
  }

  // --- weight math ---

  weightSalience(w: CudaWeight, groupSize: number): Promise<Float64Array> {
    return this.native.weightSalience(w.id, groupSize);
  }

  scaleRows(w: CudaWeight, s: Float32Array, divide = false): CudaWeight {
    return { ...w, id: this.native.scaleRows(w.id, s, divide) };
  }

  groupQuantize(w: CudaWeight, groupSize: number, clip?: CudaGroupMatrix): CudaQuantized {
    const id = this.native.groupQuantize(w.id, groupSize, clip === undefined ? -1 : clip.id);
    return { kind: "quantized", id, inF: w.inF, outF: w.outF, groupSize };
  }

  dequantize(q: CudaQuantized): CudaWeight {
    return { kind: "weight", id: this.native.dequantize(q.id), inF: q.inF, outF: q.outF };
  }

  pseudoQuantizeScaled(w: CudaWeight, s: Float32Array | null, groupSize: number): CudaWeight {
    return { ...w, id: this.native.pseudoQuantizeScaled(w.id, s, groupSize) };
  }

  searchClip(
    input: WeightErrorInput<CudaWeight, CudaGram>,
    noClipColumns: readonly [number, number][],
  ): CudaGroupMatrix {
    const { w, groupSize } = input;
    const [start, end] = singleRange(noClipColumns, "searchClip's noClipColumns");
    const id = this.native.searchClip(w.id, groupSize, input.gram.id, input.rowScale, start, end);
    return { kind: "groups", id, groups: w.inF / groupSize, outF: w.outF };
  }

  divideQuantizedColumns(q: CudaQuantized, s: Float32Array, start: number): void {
    checkColumnRange(start, s.length, q.outF);
    this.native.divideQuantizedColumns(q.id, s, start);
  }

  downloadQuantized(q: CudaQuantized): Promise<GroupQuantized> {
    return this.native.downloadQuantized(q.id);
  }

  // --- GPTQ rounding ---

  gptqQuantize(input: WeightErrorInput<CudaWeight, CudaGram>, clipRatio?: CudaGroupMatrix): CudaQuantized {
    const { w, groupSize } = input;
    checkGptqWidth(w.inF, this.gptqMaxInFeatures);
    const id = this.native.gptqQuantize(
      w.id,
      groupSize,
      input.gram.id,
      input.rowScale,
      clipRatio === undefined ? -1 : clipRatio.id,
    );
    return { kind: "quantized", id, inF: w.inF, outF: w.outF, groupSize };
  }

  clipRatios(w: CudaWeight, clip: CudaGroupMatrix, groupSize: number): CudaGroupMatrix {
    const id = this.native.clipRatios(w.id, clip.id, groupSize);
    return { kind: "groups", id, groups: clip.groups, outF: clip.outF };
  }

  async chooseColumns(
    input: WeightErrorInput<CudaWeight, CudaGram>,
    base: CudaQuantized,
    candidate: CudaQuantized,
    keepBase: readonly [number, number][],
  ): Promise<{ mixed: CudaQuantized; taken: number }> {
    const { w, groupSize } = input;
    const [keepStart, keepEnd] = singleRange(keepBase, "chooseColumns' keepBase");
    const r = await this.native.chooseColumns(
      w.id,
      groupSize,
      input.gram.id,
      input.rowScale,
      base.id,
      candidate.id,
      keepStart,
      keepEnd,
    );
    return { mixed: { ...base, id: r.mixed }, taken: r.taken };
  }

  // --- lifetime ---

  release(...handles: unknown[]): void {
    if (this.disposed) return;
    const ids: number[] = [];
    for (const h of handles) {
      if (h === null || h === undefined) continue;
      const id = (h as Partial<CudaHandle>).id;
      if (typeof id !== "number")
        throw new Error("quantizer (cuda): release() of something that is not a handle");
      ids.push(id);
    }
    if (ids.length > 0) this.ctx.release(...ids);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.ctx.dispose();
  }
}
