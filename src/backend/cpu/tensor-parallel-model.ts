/**
 * The CPU backend's tensor-parallel reference: N ranks, each a CpuModel over its own arena, its shard of every
 * matrix and its KV heads' cache, run as model/tensor-parallel-plan.ts lays out (and as GPU ranks will):
 *
 *   hidden = allReduce_r(embed_r(ids))                      vocab-parallel embedding (zeros outside vocab[r])
 *   per layer: hidden += allReduce_r(o_r(attn_r(qkv_r(norm(hidden)))))
 *              hidden += allReduce_r(down_r(silu(gate_r) * up_r))
 *   logits = allGather_r(lm_head_r(norm(hidden)))           each rank's vocabulary columns side by side
 *
 * The ranks take turns on this thread and the collectives are plain sums and copies in rank order, so the
 * result equals the unsharded model's up to f32 summation order. Every rank holds the same residual stream;
 * here it is one array, since all ranks would hold identical copies.
 */
import type { TensorParallelPlan } from "../../model/tensor-parallel-plan.js";
import type { ModelConfig, ModelSource } from "../../model/types.js";
import type { StepBatch } from "../backend.js";
import { CpuModel, type KvCache, type LogitsConsumer } from "./cpu-model.js";
import { type LayerDims, runAttentionBlock, runLinear, runMlpBlock } from "./decoder-layer.js";
import { loadRankWeights, type RankWeights } from "./load-rank-weights.js";
import { rmsNorm } from "./ops.js";
import { Scratch } from "./scratch.js";
import { WasmArena } from "./wasm-arena.js";
import { PANEL } from "./wasm-matmul.js";

/** Rows of the lm_head computed per chunk (as cpu-model.ts). */
const LOGIT_CHUNK_ROWS = 64;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One rank: its plan entry, weights and a CpuModel (its dims, scratch and KV shard) for the paged attention. */
export interface CpuRank {
  model: CpuModel;
  weights: RankWeights;
}

/** Sums the ranks' partials into `out` in rank order (NCCL's all-reduce, sum). */
export function allReduceSum(partials: readonly Float32Array[], out: Float32Array, count: number): void {
  out.set(partials[0].subarray(0, count));
  for (let r = 1; r < partials.length; r++) {
    const p = partials[r];
    for (let i = 0; i < count; i++) out[i] += p[i];
  }
}

export class TensorParallelCpuModel {
  readonly dims: LayerDims;
  /** The cache geometry the engine's block tables index (every rank's shard has the same blocks). */
  readonly kv: KvCache;
  /** Rank 0's scratch: the gathered logits live in its arena (where the sampler's logSumExp reads them). */
  readonly scratch: Scratch;
  /** Row stride of the gathered logits: the vocabulary rounded up to whole panels (keeps rows 16-byte aligned). */
  private readonly logitStride: number;

  constructor(
    readonly config: ModelConfig,
    readonly plan: TensorParallelPlan,
    readonly ranks: readonly CpuRank[],
  ) {
    this.dims = plan.dims;
    this.scratch = ranks[0].model.scratch;
    this.kv = { ...ranks[0].model.kv, keys: [], values: [] };
    this.logitStride = Math.ceil(config.vocabSize / PANEL) * PANEL;
  }

  /** The vocab-parallel embedding: each rank looks up the ids it holds (zeros elsewhere), then an all-reduce. */
  private embed(tokenIds: Int32Array): Float32Array {
    const hd = this.config.hiddenSize;
    const numTokens = tokenIds.length;
    for (let t = 0; t < numTokens; t++) {
      const id = tokenIds[t];
      if (!(id >= 0 && id < this.config.vocabSize)) {
        throw new Error(
          `CPU backend: token id ${id} at index ${t} is outside the vocabulary (0..${this.config.vocabSize - 1})`,
        );
      }
    }
    const partials = this.plan.ranks.map((shard, r) => {
      const table = this.ranks[r].weights.embedding; // (vocab[r], hidden)
      const out = new Float32Array(numTokens * hd); // (numTokens, hidden)
      for (let t = 0; t < numTokens; t++) {
        const local = tokenIds[t] - shard.vocab.start;
        if (tokenIds[t] < shard.vocab.end && local >= 0)
          out.set(table.subarray(local * hd, (local + 1) * hd), t * hd);
      }
      return out;
    });
    const hidden = new Float32Array(numTokens * hd); // (numTokens, hidden)
    allReduceSum(partials, hidden, numTokens * hd);
    return hidden;
  }

  /** Same contract as CpuModel.forward: every layer over the paged KV shards, then the gathered logits. */
  async forward(
    batch: StepBatch,
    logitRows: Int32Array,
    consume: LogitsConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    const numTokens = batch.tokenIds.length;
    const count = numTokens * this.config.hiddenSize;
    const hidden = this.embed(batch.tokenIds);
    const rope = this.ranks[0].model.tokenRope(batch);
    const partials = this.ranks.map(() => new Float32Array(count)); // per rank (numTokens, hidden)
    const reduced = new Float32Array(count); // (numTokens, hidden)
    const sinkOf = (r: number) => (projection: Float32Array) => partials[r].set(projection);
    const addReduced = () => {
      allReduceSum(partials, reduced, count);
      for (let i = 0; i < count; i++) hidden[i] += reduced[i];
    };
    for (let l = 0; l < this.config.numLayers; l++) {
      for (const [r, { model, weights }] of this.ranks.entries()) {
        const attention = model.pagedAttention(batch, l);
        runAttentionBlock(
          model.scratch,
          model.dims,
          weights.layers[l],
          hidden,
          numTokens,
          rope,
          attention,
          undefined,
          sinkOf(r),
        );
      }
      addReduced(); // after o_proj
      await yieldToEventLoop();
      for (const [r, { model, weights }] of this.ranks.entries())
        runMlpBlock(model.scratch, model.dims, weights.layers[l], hidden, numTokens, undefined, sinkOf(r));
      addReduced(); // after down_proj
      await yieldToEventLoop();
      signal?.throwIfAborted();
    }
    await this.logits(hidden, logitRows, consume, signal);
  }

  /** Final norm + each rank's vocabulary columns of the lm_head, gathered into full rows. */
  private async logits(
    hidden: Float32Array,
    rows: Int32Array,
    consume: LogitsConsumer,
    signal?: AbortSignal,
  ): Promise<void> {
    const hd = this.config.hiddenSize;
    const stride = this.logitStride;
    for (let start = 0; start < rows.length; start += LOGIT_CHUNK_ROWS) {
      const chunk = rows.subarray(start, Math.min(rows.length, start + LOGIT_CHUNK_ROWS));
      const n = chunk.length;
      const picked = new Float32Array(n * hd); // (n, hidden)
      for (let i = 0; i < n; i++) picked.set(hidden.subarray(chunk[i] * hd, (chunk[i] + 1) * hd), i * hd);
      // Every buffer of every arena is reserved before any view is taken (growing an arena detaches views).
      for (const { model, weights } of this.ranks) {
        model.scratch.reserve("final.normed", n * hd);
        model.scratch.reserve("final.logits", n * weights.lmHead.outFeatures);
      }
      this.scratch.reserve("tp.gathered", n * stride);
      const gathered = this.scratch.view("tp.gathered", n * stride); // (n, stride)
      for (const [r, { model, weights }] of this.ranks.entries()) {
        const { vocab } = this.plan.ranks[r];
        const width = weights.lmHead.outFeatures;
        rmsNorm(
          picked,
          weights.finalNorm,
          this.config.rmsNormEps,
          n,
          model.scratch.view("final.normed", n * hd),
        );
        runLinear(model.scratch, weights.lmHead, "final.normed", "final.logits", n);
        const local = model.scratch.view("final.logits", n * width); // (n, width)
        for (let i = 0; i < n; i++)
          gathered.set(
            local.subarray(i * width, i * width + vocab.end - vocab.start),
            i * stride + vocab.start,
          );
      }
      consume(chunk, gathered, stride);
      if (start + LOGIT_CHUNK_ROWS < rows.length) {
        await yieldToEventLoop();
        signal?.throwIfAborted();
      }
    }
  }

  /** Stops every rank's arena (its matmul helper thread). */
  async dispose(): Promise<void> {
    await Promise.all(this.ranks.map((rank) => rank.model.scratch.arena.dispose()));
  }
}

/**
 * Loads the ranks of `plan`: one arena each, its shard of the weights, and its KV heads' cache of `numBlocks`
 * blocks (the block tables the engine builds index every rank's shard alike).
 */
export async function loadTensorParallelCpuModel(
  source: ModelSource,
  plan: TensorParallelPlan,
  kvBlocks: Pick<KvCache, "numBlocks" | "blockSize" | "fp8">,
  onProgress?: (loaded: number, total: number) => void,
  signal?: AbortSignal,
): Promise<TensorParallelCpuModel> {
  const config = source.config;
  const arenas = plan.ranks.map(() => new WasmArena());
  try {
    const weights = await loadRankWeights(source, plan, arenas, onProgress, signal);
    const ranks = plan.ranks.map((shard, r): CpuRank => {
      const kvDim = shard.dims.numKvHeads * shard.dims.headDim;
      const slots = kvBlocks.numBlocks * kvBlocks.blockSize;
      const kv: KvCache = { ...kvBlocks, keys: [], values: [] };
      for (let l = 0; l < config.numLayers; l++) {
        kv.keys.push(new Float32Array(slots * kvDim)); // (numBlocks, blockSize, kvHeads[r], headDim)
        kv.values.push(new Float32Array(slots * kvDim)); // (numBlocks, blockSize, kvHeads[r], headDim)
      }
      const rankConfig: ModelConfig = {
        ...config,
        numHeads: shard.dims.numHeads,
        numKvHeads: shard.dims.numKvHeads,
        intermediateSize: shard.dims.intermediateSize,
      };
      return { model: new CpuModel(rankConfig, weights[r], new Scratch(arenas[r]), kv), weights: weights[r] };
    });
    return new TensorParallelCpuModel(config, plan, ranks);
  } catch (err) {
    await Promise.all(arenas.map((arena) => arena.dispose()));
    throw err;
  }
}
