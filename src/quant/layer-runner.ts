/**
 * Runs ONE decoder layer of the model on blocks of calibration tokens, through the CPU backend's own layer
 * code (runAttentionBlock + runMlpBlock = runDecoderLayer, the single Llama layer implementation shared with
 * the engine and `awq ppl`), with its dense causal attention over each block (dense-forward.ts). The quantizer swaps weights in and out (fp16, candidate
 * pseudo-quantized, final) and reads the inputs each linear sees through the layer's observer hook.
 *
 * The wasm arena is allocated once for the layer shape and reused for every layer and candidate: its bump
 * allocator never frees, so packing every candidate into fresh memory would grow without bound.
 */
import { layerDims } from "../backend/cpu/cpu-model.js";
import {
  type AttentionFn,
  type DecoderLayerWeights,
  type LayerDims,
  type LinearInputObserver,
  type PackedLinear,
  runAttentionBlock,
  runMlpBlock,
  type TokenRope,
} from "../backend/cpu/decoder-layer.js";
import { denseContext } from "../backend/cpu/dense-forward.js";
import { Scratch } from "../backend/cpu/scratch.js";
import { WasmArena } from "../backend/cpu/wasm-arena.js";
import { PANEL, packPanelsFromKN } from "../backend/cpu/wasm-matmul.js";
import type { ModelConfig } from "../model/types.js";

import { type FusedLinear, fusedOutFeatures } from "./quant-math.js";

export type { FusedLinear };

/** A layer's weights in f32, linears as (in, out) (the AWQ orientation), fused parts side by side. */
export interface DenseLayer {
  inputNorm: Float32Array; // (hidden)
  postAttentionNorm: Float32Array; // (hidden)
  qkv: Float32Array; // (hidden, (numHeads + 2 * numKvHeads) * headDim)
  o: Float32Array; // (numHeads * headDim, hidden)
  gateUp: Float32Array; // (hidden, 2 * intermediate)
  down: Float32Array; // (intermediate, hidden)
}

export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class LayerRunner {
  readonly dims: LayerDims;
  private readonly arena = new WasmArena();
  private readonly scratch = new Scratch(this.arena);
  private readonly packed: Record<FusedLinear, PackedLinear>;
  private readonly rope: TokenRope;
  private readonly attention: AttentionFn;

  constructor(
    config: ModelConfig,
    readonly seqlen: number,
  ) {
    this.dims = layerDims(config);
    const { hiddenSize: hd, numHeads, numKvHeads, headDim, intermediateSize: inter } = this.dims;
    const alloc = (inFeatures: number, outFeatures: number, what: string): PackedLinear => {
      const padded = Math.ceil(outFeatures / PANEL) * PANEL;
      return { ptr: this.arena.allocF32(padded * inFeatures, what), inFeatures, outFeatures: padded };
    };
    this.packed = {
      qkv: alloc(hd, (numHeads + 2 * numKvHeads) * headDim, "quantizer qkv"),
      o: alloc(numHeads * headDim, hd, "quantizer o_proj"),
      gateUp: alloc(hd, 2 * inter, "quantizer gate/up"),
      down: alloc(inter, hd, "quantizer down_proj"),
    };
    const dense = denseContext(config, seqlen);
    this.rope = dense.rope;
    this.attention = dense.attention;
  }

  /** Width of a fused linear's output as the layer sees it. */
  outFeatures(which: FusedLinear): number {
    return fusedOutFeatures(this.dims, which);
  }

  /** Loads one fused linear (in, out) into the arena. */
  setLinear(which: FusedLinear, w: Float32Array): void {
    const p = this.packed[which];
    const out = this.outFeatures(which);
    if (w.length !== p.inFeatures * out) {
      throw new Error(
        `quantizer: ${which} weights must be (${p.inFeatures}, ${out}), got ${w.length} values`,
      );
    }
    packPanelsFromKN(w, p.inFeatures, out, this.arena.f32(p.ptr, p.outFeatures * p.inFeatures));
  }

  setLayer(layer: DenseLayer): void {
    for (const which of ["qkv", "o", "gateUp", "down"] as const) this.setLinear(which, layer[which]);
  }

  /**
   * Applies the layer (norms from `norms`, linears as last set) in place to the given blocks of `hidden`
   * ((numBlocks * seqlen, hidden)); `observe` sees each linear's input block by block. `part` runs only the
   * attention half (hidden += attention block) or only the MLP half (hidden += MLP block) of the layer.
   */
  async forward(
    hidden: Float32Array, // (numBlocks * seqlen, hidden), updated in place
    norms: { inputNorm: Float32Array; postAttentionNorm: Float32Array },
    blocks: readonly number[],
    observe?: LinearInputObserver,
    part: "layer" | "attention" | "mlp" = "layer",
  ): Promise<void> {
    const hd = this.dims.hiddenSize;
    const weights: DecoderLayerWeights = {
      ...this.packed,
      inputNorm: norms.inputNorm,
      postAttentionNorm: norms.postAttentionNorm,
    };
    const span = this.seqlen * hd;
    for (const b of blocks) {
      const block = hidden.subarray(b * span, (b + 1) * span); // (seqlen, hidden)
      if (part !== "mlp") {
        runAttentionBlock(
          this.scratch,
          this.dims,
          weights,
          block,
          this.seqlen,
          this.rope,
          this.attention,
          observe,
        );
      }
      if (part !== "attention") runMlpBlock(this.scratch, this.dims, weights, block, this.seqlen, observe);
      await yieldToEventLoop();
    }
  }

  /**
   * Makes room for matmul(M, K, N). Call it before a layer forward whose observer multiplies: growing the arena
   * mid-layer would detach the layer's views.
   */
  reserveMatmul(M: number, K: number, N: number): { a: number; b: number; c: number } {
    const padded = Math.ceil(N / PANEL) * PANEL;
    return {
      a: this.scratch.reserve("quant.mm.a", M * K),
      b: this.scratch.reserve("quant.mm.b", padded * K),
      c: this.scratch.reserve("quant.mm.c", M * padded),
    };
  }

  /** C (M, N) = A (M, K) @ B (K, N) on the arena's SIMD matmul (Gram matrices, clip-search errors). */
  matmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float32Array {
    const ptr = this.reserveMatmul(M, K, N);
    const padded = Math.ceil(N / PANEL) * PANEL;
    this.arena.f32(ptr.a, M * K).set(a.subarray(0, M * K));
    packPanelsFromKN(b, K, N, this.arena.f32(ptr.b, padded * K));
    this.arena.matmul(ptr.a, ptr.b, ptr.c, M, K, padded);
    const c = this.arena.f32(ptr.c, M * padded); // (M, padded)
    if (padded === N) return c.slice();
    const out = new Float32Array(M * N); // (M, N)
    for (let m = 0; m < M; m++) out.set(c.subarray(m * padded, m * padded + N), m * N);
    return out;
  }

  /** Stops the arena's helper thread. */
  async dispose(): Promise<void> {
    await this.arena.dispose();
  }
}
