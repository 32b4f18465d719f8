/**
 * The CPU backend: the TypeScript/WebAssembly reference every other backend is checked against.
 * f32 weights and activations (AWQ dequantized at load), matmuls in WebAssembly SIMD split over two threads
 * (wasm-arena.ts), the paged KV cache in JS arrays, sampling by ../sampler.ts. step() yields to the event loop
 * after each half layer and each 64-row chunk of the lm_head.
 */

import { planTensorParallel } from "../../model/tensor-parallel-plan.js";
import type { ModelSource } from "../../model/types.js";
import {
  awaitStepMasks,
  type Backend,
  type BackendOptions,
  type KvLayout,
  type StepBatch,
  type StepResult,
} from "../backend.js";
import { isFp8KvCache } from "../kv-cache-dtype.js";
import { sampleToken, topLogprobs } from "../sampler.js";
import { StepChain } from "../step-chain.js";
import { CpuModel, type KvCache } from "./cpu-model.js";
import { loadCpuWeights } from "./load-weights.js";
import { Scratch } from "./scratch.js";
import { loadTensorParallelCpuModel, type TensorParallelCpuModel } from "./tensor-parallel-model.js";
import { validateStepBatch } from "./validate-batch.js";
import { WasmArena } from "./wasm-arena.js";

/** Default KV budget when neither numBlocks nor kvCacheBytes is given: what the limits need, at most 2 GiB. */
const DEFAULT_MAX_KV_BYTES = 2 * 2 ** 30;

export interface CpuBackendOptions {
  /**
   * Ranks to shard every matrix over (vLLM's --tensor-parallel-size), run in turn on this thread as the
   * reference of the GPU ranks' math (tensor-parallel-model.ts); 1 (default) = unsharded.
   */
  tensorParallelSize?: number;
  /**
   * Whether the engine may send chained steps (Backend.chainedSteps; they queue in call order). Default false: the
   * CPU computes on this process's threads, so a step launched early hides no host time, and a request that
   * arrives meanwhile would only wait one step longer for admission. Tests turn it on to check the chain.
   */
  chainedSteps?: boolean;
}

export class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly promptTopLogprobs = true;
  /** With options.chainedSteps: step() may be called before the previous one returns (they queue, StepChain). */
  readonly chainedSteps: boolean;
  private model: CpuModel | TensorParallelCpuModel | null = null;
  /** A step shares scratch buffers and the KV cache: steps must not overlap (the chain runs them in turn). */
  private stepping = false;
  private readonly chain = new StepChain();

  constructor(private readonly options: CpuBackendOptions = {}) {
    this.chainedSteps = options.chainedSteps ?? false;
  }

  /** Bytes of one KV block over all layers (K and V). */
  static kvBytesPerBlock(source: ModelSource, blockSize: number): number {
    const c = source.config;
    return 2 * c.numLayers * blockSize * c.numKvHeads * c.headDim * 4;
  }

  async load(source: ModelSource, opts: BackendOptions): Promise<KvLayout> {
    if (this.model !== null)
      throw new Error("CPU backend: load() called twice; create a new backend per model");
    const config = source.config;
    const tensorParallelSize = this.options.tensorParallelSize ?? 1;
    // Checked before anything is read: a size the model cannot take is refused at once.
    const plan = planTensorParallel(config, tensorParallelSize);
    const perBlock = CpuBackend.kvBytesPerBlock(source, opts.blockSize);
    let numBlocks = opts.numBlocks;
    if (numBlocks === undefined) {
      const needed = opts.maxNumSeqs * Math.ceil(opts.maxModelLen / opts.blockSize) * perBlock;
      const budget = opts.kvCacheBytes ?? Math.min(DEFAULT_MAX_KV_BYTES, needed);
      numBlocks = Math.floor(budget / perBlock);
    }
    const minBlocks = Math.ceil(opts.maxModelLen / opts.blockSize);
    if (!(numBlocks >= minBlocks)) {
      throw new Error(
        `CPU backend: ${numBlocks} KV blocks of ${opts.blockSize} tokens cannot hold one sequence of max-model-len ` +
          `${opts.maxModelLen} (needs ${minBlocks}, ${((minBlocks * perBlock) / 2 ** 20).toFixed(1)} MiB); ` +
          "raise the KV cache budget or lower max-model-len",
      );
    }
    // vLLM's convention when the checkpoint carries no k_scale / v_scale: both 1.0.
    const fp8 = isFp8KvCache(opts.kvCacheDtype) ? { kScale: 1, vScale: 1 } : undefined;
    if (plan.size > 1) {
      this.model = await loadTensorParallelCpuModel(
        source,
        plan,
        { numBlocks, blockSize: opts.blockSize, fp8 },
        opts.onLoadProgress,
        opts.signal,
      );
      return { blockSize: opts.blockSize, numBlocks };
    }
    const arena = new WasmArena();
    let weights: Awaited<ReturnType<typeof loadCpuWeights>>;
    try {
      weights = await loadCpuWeights(source, arena, opts.onLoadProgress, opts.signal);
    } catch (err) {
      await arena.dispose();
      throw err;
    }
    const kvDim = config.numKvHeads * config.headDim;
    const kv: KvCache = { blockSize: opts.blockSize, numBlocks, keys: [], values: [], fp8 };
    for (let l = 0; l < config.numLayers; l++) {
      kv.keys.push(new Float32Array(numBlocks * opts.blockSize * kvDim));
      kv.values.push(new Float32Array(numBlocks * opts.blockSize * kvDim));
    }
    this.model = new CpuModel(config, weights, new Scratch(arena), kv);
    return { blockSize: opts.blockSize, numBlocks };
  }

  step(batch: StepBatch): Promise<StepResult> {
    return this.chain.run(batch, (b) => this.stepNow(b));
  }

  private async stepNow(batch: StepBatch): Promise<StepResult> {
    const model = this.model;
    if (model === null) throw new Error("CPU backend: step() before load()");
    if (this.stepping) throw new Error("CPU backend: step() called while the previous step is still running");
    this.stepping = true;
    try {
      return await this.runStep(model, batch);
    } finally {
      this.stepping = false;
    }
  }

  private async runStep(model: CpuModel | TensorParallelCpuModel, batch: StepBatch): Promise<StepResult> {
    validateStepBatch(batch, model.kv, model.config.vocabSize);
    const numSeqs = batch.numSeqs;
    const numTokens = batch.tokenIds.length;
    const vocab = model.config.vocabSize;
    const result: StepResult = {
      tokenIds: new Int32Array(numSeqs).fill(-1),
      logprobs: new Float32Array(numSeqs).fill(Number.NaN),
      topLogprobs: new Array(numSeqs).fill(null),
    };
    const logits = batch.returnLogits ? new Float32Array(numSeqs * vocab).fill(Number.NaN) : null; // (numSeqs, vocab)
    const tokenLogprobs = batch.tokenLogprobs ? new Float32Array(numTokens).fill(Number.NaN) : null; // (numTokens)
    const topN = tokenLogprobs !== null ? (batch.tokenTopLogprobs ?? 0) : 0;
    const tokenTop =
      topN > 0
        ? {
            ids: new Int32Array(numTokens * topN).fill(-1), // (numTokens, topN)
            logprobs: new Float32Array(numTokens * topN).fill(Number.NaN), // (numTokens, topN)
            ranks: new Int32Array(numTokens).fill(-1), // (numTokens)
          }
        : null;
    // Which sequence samples at which token (the last of its rows), and the rows needing logits.
    const sampleSeqOfToken = new Int32Array(numTokens).fill(-1); // (numTokens)
    const isLast = new Uint8Array(numTokens); // (numTokens)
    const rows: number[] = [];
    for (let s = 0; s < numSeqs; s++) {
      const last = batch.queryStarts[s + 1] - 1;
      if (last < batch.queryStarts[s]) continue;
      isLast[last] = 1;
      if (batch.sample[s] === 1) sampleSeqOfToken[last] = s;
      if (tokenLogprobs !== null) for (let t = batch.queryStarts[s]; t < last; t++) rows.push(t);
      if (batch.sample[s] === 1) rows.push(last);
    }
    const sample = (s: number, row: Float32Array) => {
      const sampled = sampleToken(row, batch.sampling, s);
      result.tokenIds[s] = sampled.tokenId;
      result.logprobs[s] = sampled.logprob;
      result.topLogprobs[s] = sampled.top;
    };
    const masked = batch.masksReady !== undefined;
    const deferred: { s: number; row: Float32Array }[] = []; // logits (vocab) of each masked sampler
    await model.forward(batch, Int32Array.from(rows), (chunk, chunkLogits, stride) => {
      for (let i = 0; i < chunk.length; i++) {
        const t = chunk[i];
        const row = chunkLogits.subarray(i * stride, i * stride + vocab);
        if (tokenLogprobs !== null && isLast[t] === 0) {
          const lse = model.scratch.arena.logSumExp(row);
          const next = batch.tokenIds[t + 1];
          tokenLogprobs[t] = row[next] - lse;
          if (tokenTop !== null) {
            const top = topLogprobs(row, lse, topN);
            tokenTop.ids.set(top.tokenIds, t * topN);
            tokenTop.logprobs.set(top.logprobs, t * topN);
            tokenTop.ranks[t] = rankOf(row, next);
          }
        }
        const s = sampleSeqOfToken[t];
        if (s >= 0) {
          logits?.set(row, s * vocab);
          // A sequence with a mask row samples after the forward pass, once the grammar workers wrote it.
          if (masked && (batch.sampling.maskRow?.[s] ?? -1) >= 0)
            deferred.push({ s, row: Float32Array.from(row) });
          else sample(s, Float32Array.from(row));
        }
      }
    });
    await awaitStepMasks(batch);
    for (const { s, row } of deferred) sample(s, row);
    if (tokenLogprobs !== null) result.tokenLogprobs = tokenLogprobs;
    if (tokenTop !== null) result.tokenTop = tokenTop;
    if (logits !== null) result.logits = logits;
    return result;
  }

  async dispose(): Promise<void> {
    const model = this.model;
    this.model = null;
    if (model instanceof CpuModel) await model.scratch.arena.dispose();
    else await model?.dispose();
  }

  /** The loaded model (for the AWQ quantizer and tests that reuse the layer code). */
  get loadedModel(): CpuModel | null {
    return this.model instanceof CpuModel ? this.model : null;
  }
}

/** 1-based rank of `id` among the logits: the number of tokens at least as likely, itself included (vLLM's count). */
function rankOf(row: Float32Array, id: number): number {
  const value = row[id];
  let atLeast = 0;
  for (let i = 0; i < row.length; i++) if (row[i] >= value) atLeast++;
  return atLeast;
}
