/**
 * The seam between the engine (scheduler, block manager: TypeScript) and a backend (weights, KV cache,
 * math: the CPU reference in cpu/, the CUDA addon in cuda/). A backend sees only flat typed arrays.
 * vLLM / nano-vllm vocabulary: query starts = cu_seqlens_q, slot mapping, block tables.
 */

import type { GpuInfo } from "../engine/batch-defaults.js";
import type { ModelSource } from "../model/types.js";
import type { KvCacheDtype } from "./kv-cache-dtype.js";

export type BackendName = "cpu" | "cuda";

export interface BackendOptions {
  /** Longest sequence (prompt + output) the engine will schedule. */
  maxModelLen: number;
  /** Most sequences in one step. */
  maxNumSeqs: number;
  /** Most tokens in one step (sum of all query lengths). */
  maxNumBatchedTokens: number;
  /** Tokens per KV block (16). */
  blockSize: number;
  /** Exact number of KV blocks to allocate; when absent the backend sizes the cache itself. */
  numBlocks?: number;
  /** CUDA: fraction of GPU memory for weights + workspace + KV (vLLM's --gpu-memory-utilization). */
  gpuMemoryUtilization?: number;
  /** CPU: byte budget for the KV cache when numBlocks is absent. */
  kvCacheBytes?: number;
  /** vLLM's --kv-cache-dtype: auto (default) or fp8 / fp8_e4m3 (CPU: E4M3 rounding of K and V, scale 1.0). */
  kvCacheDtype?: KvCacheDtype;
  /** Progress of weight loading, in bytes. */
  onLoadProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Cancels the load: checked between tensors; load() then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What the backend allocated; the engine's block manager is built from it. */
export interface KvLayout {
  blockSize: number;
  numBlocks: number;
}

/**
 * Per-sequence sampling parameters of one step, index = sequence index in the batch (numSeqs entries).
 * Semantics are vLLM's; see engine/sampling-params.ts for the user-facing object.
 */
export interface SamplingArrays {
  /** 0 = greedy (argmax). */
  temperature: Float32Array; // (numSeqs)
  /** 1 = off. */
  topP: Float32Array; // (numSeqs)
  /** <= 0 = off. */
  topK: Int32Array; // (numSeqs)
  /** 0 = off. */
  minP: Float32Array; // (numSeqs)
  /** HF repetition penalty over prompt + output tokens; 1 = off. */
  repetitionPenalty: Float32Array; // (numSeqs)
  /** OpenAI presence penalty over output tokens; 0 = off. */
  presencePenalty: Float32Array; // (numSeqs)
  /** OpenAI frequency penalty over output tokens; 0 = off. */
  frequencyPenalty: Float32Array; // (numSeqs)
  /**
   * Counter-based RNG: the uniform draw for a sample is a pure function of (seed, outputIndex), so a seeded
   * request is reproducible whatever else is in the batch, and CPU and CUDA can share the generator.
   */
  seed: Uint32Array; // (numSeqs)
  /** Index of the token being sampled among the sequence's outputs (0 for the first generated token). */
  outputIndex: Int32Array; // (numSeqs)
  /** Top-N logprobs wanted: -1 = none, 0 = only the chosen token's, N = chosen + top N. */
  logprobs: Int32Array; // (numSeqs)
  /**
   * Token ids the penalties count, for sequences with any penalty on (others have empty ranges):
   * prompt ids of sequence i are promptTokens[promptStarts[i] .. promptStarts[i+1]], outputs likewise.
   */
  promptStarts: Int32Array; // (numSeqs + 1)
  promptTokens: Int32Array; // (promptStarts[numSeqs])
  outputStarts: Int32Array; // (numSeqs + 1)
  outputTokens: Int32Array; // (outputStarts[numSeqs])
  /**
   * Additive logit bias (OpenAI logit_bias; -Infinity bans a token, which is how min_tokens bans stop ids):
   * entries of sequence i are biasStarts[i] .. biasStarts[i+1].
   */
  biasStarts: Int32Array; // (numSeqs + 1)
  biasTokens: Int32Array; // (biasStarts[numSeqs])
  biasValues: Float32Array; // (biasStarts[numSeqs])
  /**
   * Allowed-token bitmasks (structured outputs, allowed_token_ids), absent when no sequence of the step has one:
   * sequence i may sample token t only if bit (t & 31) of tokenMask[maskRow[i] * maskWords + (t >> 5)] is set;
   * maskRow[i] = -1: no mask. maskBeforeLogprobs[i] = 1: the mask applies before the logprobs are taken (a
   * grammar: logprobs of the constrained distribution), 0: with the logit bias, after them (allowed_token_ids).
   * A backend that cannot apply masks must refuse a batch that has them.
   */
  maskWords?: number; // ceil(vocabSize / 32)
  maskRow?: Int32Array; // (numSeqs)
  tokenMask?: Int32Array; // (numMaskRows, maskWords)
  maskBeforeLogprobs?: Uint8Array; // (numSeqs)
}

/** One engine step: every scheduled token of every scheduled sequence, back to back. */
export interface StepBatch {
  numSeqs: number;
  tokenIds: Int32Array; // (numTokens)
  positions: Int32Array; // (numTokens) position of each token in its sequence
  queryStarts: Int32Array; // (numSeqs + 1) offsets into tokenIds (cu_seqlens_q)
  contextLens: Int32Array; // (numSeqs) tokens in KV for each sequence after this step
  maxBlocksPerSeq: number;
  blockTables: Int32Array; // (numSeqs, maxBlocksPerSeq) physical block ids, -1 padded
  slotMapping: Int32Array; // (numTokens) KV slot (block * blockSize + offset) each token is written to
  /** 1 where the sequence's last token this step must be sampled (0 for a prefill chunk that is not the last). */
  sample: Uint8Array; // (numSeqs)
  sampling: SamplingArrays;
  /**
   * When set, also return for each scheduled token t (but the last of its sequence in this step) the
   * log-probability of tokenIds[t + 1] given the tokens up to t: prompt logprobs, and perplexity.
   */
  tokenLogprobs?: boolean;
  /**
   * With tokenLogprobs, N > 0: also return, at each such token, the top-N alternatives for the next token and
   * the rank of tokenIds[t + 1] (prompt_logprobs: N). Only a backend with promptTopLogprobs gets it.
   */
  tokenTopLogprobs?: number;
  /**
   * When set, also return the raw logits (before any sampling processing) of every sampled sequence:
   * conformance tests compare backends on them.
   */
  returnLogits?: boolean;
  /**
   * When set, sampling.tokenMask is still being written (by the grammar workers, often into a
   * SharedArrayBuffer, while the backend runs the forward pass): the backend awaits this right before it reads
   * the mask, i.e. before sampling, and reads the array in place after that (no copy is needed).
   */
  masksReady?: () => Promise<void>;
  /**
   * A step launched before the one it continues has returned (the engine's chained decode steps, vLLM v1's async
   * scheduling): for each token, -1 where tokenIds[t] holds its id, or r >= 0 where its id is the token sampled
   * for sequence r of the step called just before this one (that step's StepResult.tokenIds[r]), which the
   * backend fills in (tokenIds[t] is a placeholder). Only sent to a backend with chainedSteps; when the step it
   * continues failed, this one fails too.
   */
  prevTokenRows?: Int32Array; // (numTokens)
}

export interface StepResult {
  /** Sampled token per sequence; -1 where sample[i] = 0. */
  tokenIds: Int32Array; // (numSeqs)
  /** log p(chosen token) from log_softmax of the raw logits (vLLM v1 default); NaN where not requested. */
  logprobs: Float32Array; // (numSeqs)
  /** Top-N alternatives for sequences that asked (logprobs[i] > 0): ids and logprobs, best first. */
  topLogprobs: ({ tokenIds: Int32Array; logprobs: Float32Array } | null)[]; // (numSeqs)
  /** Present when batch.tokenLogprobs: NaN at the last token of each sequence. */
  tokenLogprobs?: Float32Array; // (numTokens)
  /**
   * Present when batch.tokenTopLogprobs = N > 0, rows as for tokenLogprobs: the top-N alternatives (log_softmax
   * of the raw logits, best first, lowest id first on ties) and the 1-based rank of the next token (-1 at the
   * last token of each sequence).
   */
  tokenTop?: {
    ids: Int32Array; // (numTokens, N)
    logprobs: Float32Array; // (numTokens, N)
    ranks: Int32Array; // (numTokens)
  };
  /** Present when batch.returnLogits: raw logits of sequence i at row i (NaN rows where sample[i] = 0). */
  logits?: Float32Array; // (numSeqs, vocabSize)
}

export interface Backend {
  readonly name: BackendName;
  /** Whether step() honours batch.tokenTopLogprobs (alternatives at prompt positions); absent = no. */
  readonly promptTopLogprobs?: boolean;
  /** The GPU it runs on (name, total memory), where it runs on one; the engine's defaults depend on it. */
  readonly gpu?: GpuInfo;
  /** Loads weights and allocates the KV cache. */
  load(model: ModelSource, opts: BackendOptions): Promise<KvLayout>;
  /**
   * Whether step() may be called again before the previous step's promise settles, with batch.prevTokenRows: steps
   * run in the order they were called, each after the previous one ended. Absent = no (one step at a time).
   */
  readonly chainedSteps?: boolean;
  /** Runs one step. Never blocks the event loop for long (CPU: yields / workers; CUDA: AsyncWorker). */
  step(batch: StepBatch): Promise<StepResult>;
  dispose(): Promise<void>;
}

/** Thrown by a backend that cannot run here (no addon, no driver, no GPU); `--backend auto` falls back. */
export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
}

/**
 * Awaits a batch's masks (see StepBatch.masksReady); at once when they were there from the start. `unshared`:
 * also gives sampling.tokenMask a copy of its own (the CUDA backend's one-call step does, as it always has; its
 * forward/sample split reads the shared memory in place).
 */
export async function awaitStepMasks(batch: StepBatch, opts: { unshared?: boolean } = {}): Promise<void> {
  if (batch.masksReady !== undefined) await batch.masksReady();
  const mask = batch.sampling.tokenMask;
  if (opts.unshared && mask !== undefined && mask.buffer instanceof SharedArrayBuffer) {
    batch.sampling.tokenMask = mask.slice(); // (numMaskRows, maskWords)
  }
}
