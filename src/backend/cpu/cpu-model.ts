/**
 * The CPU model: embeddings -> decoder layers over the paged KV cache -> final norm -> lm_head, on f32.
 * The forward pass yields to the event loop between layers and between lm_head chunks, so a server beside it
 * stays responsive; logits are handed out chunk by chunk (a full-vocab row per requested token) instead of
 * being materialized for a whole step.
 */
import { layerDims } from "../../model/fused-layout.js";
import type { ModelConfig } from "../../model/types.js";
import type { StepBatch } from "../backend.js";
import { attendSequence, pagedKvSource, reserveAttention } from "./attention.js";
import {
  type AttentionFn,
  type LayerDims,
  runAttentionBlock,
  runLinear,
  runMlpBlock,
  type TokenRope,
} from "./decoder-layer.js";
import { roundE4m3InPlace } from "./fp8-e4m3.js";
import type { CpuWeights } from "./load-weights.js";
import { type RopeSpec, rmsNorm, ropeFrequenciesFor } from "./ops.js";
import type { Scratch } from "./scratch.js";

/** Rows of the lm_head computed per chunk: bounds both the scratch size and the time between yields. */
const LOGIT_CHUNK_ROWS = 64;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface KvCache {
  blockSize: number;
  numBlocks: number;
  keys: Float32Array[]; // per layer (numBlocks, blockSize, numKvHeads, headDim)
  values: Float32Array[]; // per layer (numBlocks, blockSize, numKvHeads, headDim)
  /**
   * --kv-cache-dtype fp8: K and V are rounded to E4M3 at these per-tensor scales as they are written (float32
   * storage; the values are exactly those an FP8 cache would hold). Absent: stored as computed.
   */
  fp8?: { kScale: number; vScale: number };
}

/** Receives logits rows: `rows[i]` is the token index of row i of `logits` (count rows, row stride `stride`). */
export type LogitsConsumer = (rows: Int32Array, logits: Float32Array, stride: number) => void;

export { layerDims };

export function ropeSpec(config: ModelConfig): RopeSpec {
  return { headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling };
}

export class CpuModel {
  readonly dims: LayerDims;
  private readonly rope: RopeSpec;
  private readonly plainFreqs: Float32Array; // (headDim / 2)

  constructor(
    readonly config: ModelConfig,
    readonly weights: CpuWeights,
    readonly scratch: Scratch,
    readonly kv: KvCache,
  ) {
    this.dims = layerDims(config);
    this.rope = ropeSpec(config);
    this.plainFreqs = ropeFrequenciesFor(this.rope, 0);
  }

  /** Embedding rows of `tokenIds` (a fresh JS array: the residual stream lives outside the arena). */
  embed(tokenIds: Int32Array): Float32Array {
    const hd = this.config.hiddenSize;
    const hidden = new Float32Array(tokenIds.length * hd); // (numTokens, hidden)
    for (let t = 0; t < tokenIds.length; t++) {
      const id = tokenIds[t];
      if (!(id >= 0 && id < this.config.vocabSize)) {
        throw new Error(
          `CPU backend: token id ${id} at index ${t} is outside the vocabulary (0..${this.config.vocabSize - 1})`,
        );
      }
      hidden.set(this.weights.embedding.subarray(id * hd, (id + 1) * hd), t * hd);
    }
    return hidden;
  }

  /** RoPE inputs of every row of the step (shared by tensor-parallel ranks). */
  tokenRope(batch: StepBatch): TokenRope {
    const scaling = this.config.ropeScaling;
    const perSeq: Float32Array[] = [];
    const seqOfRow = new Int32Array(batch.tokenIds.length); // (numTokens)
    for (let s = 0; s < batch.numSeqs; s++) {
      perSeq.push(
        scaling?.type === "dynamic" ? ropeFrequenciesFor(this.rope, batch.contextLens[s]) : this.plainFreqs,
      );
      seqOfRow.fill(s, batch.queryStarts[s], batch.queryStarts[s + 1]);
    }
    return {
      positions: batch.positions,
      invFreq: (row) => perSeq[seqOfRow[row]],
      linearFactor: scaling?.type === "linear" ? scaling.factor : 1,
    };
  }

  /** Attention over the paged cache for layer `layer`: writes this step's K/V at the slot mapping first. */
  pagedAttention(batch: StepBatch, layer: number): AttentionFn {
    const { numHeads, numKvHeads, headDim } = this.dims;
    const kvDim = numKvHeads * headDim;
    const keys = this.kv.keys[layer];
    const values = this.kv.values[layer];
    const fp8 = this.kv.fp8;
    let maxRows = 0;
    let maxContext = 0;
    for (let s = 0; s < batch.numSeqs; s++) {
      maxRows = Math.max(maxRows, batch.queryStarts[s + 1] - batch.queryStarts[s]);
      maxContext = Math.max(maxContext, batch.contextLens[s]);
    }
    const reserve = (scratch: Scratch) => reserveAttention(scratch, this.dims, maxRows, maxContext);
    const run = (scratch: Scratch, qkv: Float32Array, qkvWidth: number, out: Float32Array) => {
      const kCol = numHeads * headDim;
      const vCol = kCol + kvDim;
      for (let t = 0; t < batch.tokenIds.length; t++) {
        const slot = batch.slotMapping[t];
        const src = t * qkvWidth;
        keys.set(qkv.subarray(src + kCol, src + kCol + kvDim), slot * kvDim);
        values.set(qkv.subarray(src + vCol, src + vCol + kvDim), slot * kvDim);
        if (fp8 !== undefined) {
          roundE4m3InPlace(keys, slot * kvDim, kvDim, fp8.kScale);
          roundE4m3InPlace(values, slot * kvDim, kvDim, fp8.vScale);
        }
      }
      for (let s = 0; s < batch.numSeqs; s++) {
        const first = batch.queryStarts[s];
        const source = pagedKvSource(
          keys,
          values,
          batch.blockTables,
          s * batch.maxBlocksPerSeq,
          this.kv.blockSize,
          this.dims,
        );
        attendSequence(
          scratch,
          this.dims,
          {
            q: qkv,
            qStride: qkvWidth,
            qColumn: 0,
            firstRow: first,
            numRows: batch.queryStarts[s + 1] - first,
            positions: batch.positions,
            contextLen: batch.contextLens[s],
            out,
            outStride: numHeads * headDim,
            keyColumn: 0,
            valueColumn: 0,
          },
          source,
        );
      }
    };
    return { reserve, run };
  }

  /**
   * Runs the step's tokens through every layer (filling the KV cache), then the lm_head for the token
   * indices `logitRows`, handing the logits to `consume` chunk by chunk.
   */
  async forward(
    batch: StepBatch,
    logitRows: Int32Array,
    consume: LogitsConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    const numTokens = batch.tokenIds.length;
    const hidden = this.embed(batch.tokenIds);
    const rope = this.tokenRope(batch);
    for (let l = 0; l < this.weights.layers.length; l++) {
      // runDecoderLayer in its two halves, yielding after each (the event loop waits at most half a layer).
      const layer = this.weights.layers[l];
      runAttentionBlock(
        this.scratch,
        this.dims,
        layer,
        hidden,
        numTokens,
        rope,
        this.pagedAttention(batch, l),
      );
      await yieldToEventLoop();
      runMlpBlock(this.scratch, this.dims, layer, hidden, numTokens);
      await yieldToEventLoop();
      signal?.throwIfAborted();
    }
    await this.logits(hidden, logitRows, consume, signal);
  }

  /** Final norm + lm_head for the chosen rows of `hidden`, LOGIT_CHUNK_ROWS at a time. */
  async logits(
    hidden: Float32Array,
    rows: Int32Array,
    consume: LogitsConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    const hd = this.config.hiddenSize;
    const head = this.weights.lmHead;
    for (let start = 0; start < rows.length; start += LOGIT_CHUNK_ROWS) {
      const chunk = rows.subarray(start, Math.min(rows.length, start + LOGIT_CHUNK_ROWS));
      const n = chunk.length;
      this.scratch.reserve("final.normed", n * hd);
      this.scratch.reserve("final.logits", n * head.outFeatures);
      const picked = new Float32Array(n * hd); // (n, hidden)
      for (let i = 0; i < n; i++) picked.set(hidden.subarray(chunk[i] * hd, (chunk[i] + 1) * hd), i * hd);
      rmsNorm(
        picked,
        this.weights.finalNorm,
        this.config.rmsNormEps,
        n,
        this.scratch.view("final.normed", n * hd),
      );
      runLinear(this.scratch, head, "final.normed", "final.logits", n);
      consume(chunk, this.scratch.view("final.logits", n * head.outFeatures), head.outFeatures);
      if (start + LOGIT_CHUNK_ROWS < rows.length) {
        await yieldToEventLoop();
        signal?.throwIfAborted();
      }
    }
  }
}
