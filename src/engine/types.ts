/**
 * The narrow request/output API between front ends (library API, HTTP server, CLI) and the engine core,
 * as in vLLM v1: front ends never reach into scheduler state.
 */
import type { KvCacheDtype } from "../backend/kv-cache-dtype.js";
import type { ConstraintSpec } from "../structured/constraint-spec.js";

/** User-facing sampling parameters (vLLM's SamplingParams, camelCase). Validated by sampling-params.ts. */
export interface SamplingParams {
  /** Number of completions (the server fans out n requests; the engine itself runs one sequence each). */
  n?: number;
  temperature?: number; // default 1; 0 = greedy
  topP?: number; // default 1
  topK?: number; // default 0 / -1 = off
  minP?: number; // default 0
  repetitionPenalty?: number; // default 1
  presencePenalty?: number; // default 0
  frequencyPenalty?: number; // default 0
  /** token id -> additive bias, clamped to [-100, 100] like OpenAI. */
  logitBias?: Record<number, number>;
  seed?: number;
  maxTokens?: number; // default: until max-model-len
  minTokens?: number; // default 0
  stop?: string[];
  stopTokenIds?: number[];
  includeStopStrInOutput?: boolean;
  ignoreEos?: boolean;
  /** Top-N logprobs per generated token (0 = only the chosen token's). */
  logprobs?: number;
  /** Logprobs of the prompt tokens (top-N as for logprobs). */
  promptLogprobs?: number;
  skipSpecialTokens?: boolean; // default true
  /** Constrains the output (JSON schema, regex, choice, grammar; see structured/constraint-spec.ts). */
  structuredOutput?: ConstraintSpec | null;
  /** vLLM's allowed_token_ids: only these ids may be sampled. */
  allowedTokenIds?: number[] | null;
  /** vLLM's bad_words: words whose tokens may not be generated. */
  badWords?: string[] | null;
}

export type FinishReason = "stop" | "length" | "abort" | "error";

/** One entry of a logprobs list: the chosen token and its alternatives. */
export interface TokenLogprob {
  tokenId: number;
  logprob: number;
  top: { tokenId: number; logprob: number }[];
  /** Prompt logprobs: the token's 1-based rank in the distribution (vLLM's), where the backend computes it. */
  rank?: number;
}

/** Sent to the front end after every step that touched the request (streaming deltas). */
export interface RequestOutput {
  requestId: string;
  /** Text added by this step (UTF-8 safe, stop strings already cut). */
  textDelta: string;
  /** Token ids added by this step. */
  tokenIdsDelta: number[];
  logprobsDelta: TokenLogprob[];
  finished: boolean;
  finishReason: FinishReason | null;
  /** The stop string or stop token id that ended it, when finishReason = "stop". */
  stopReason: string | number | null;
  promptTokens: number;
  /** Prompt tokens whose KV came from the prefix cache. */
  cachedTokens: number;
  completionTokens: number;
  /** Set with finishReason "error": what went wrong. */
  error?: string;
  /**
   * Only on the first output of a request that asked for promptLogprobs: one entry per prompt token, null
   * for the first token (nothing predicts it) and where the engine could not compute one.
   */
  promptLogprobs?: (TokenLogprob | null)[];
  /** When the request was first scheduled (performance.now() ms), once it has been: ends its queue time. */
  scheduledAt?: number;
  /** Behind a replica router (data parallelism): the replica running the request, vLLM's `engine` label. */
  engineIndex?: number;
}

export interface EngineRequest {
  requestId?: string;
  promptTokenIds: number[];
  params: SamplingParams;
  signal?: AbortSignal;
}

export interface EngineStats {
  running: number;
  waiting: number;
  /** Fraction of KV blocks in use, 0..1. */
  kvCacheUsage: number;
  numBlocks: number;
  freeBlocks: number;
  /** Sequences preempted (blocks freed, recomputed later) since the engine started. */
  numPreemptions?: number;
  /** Prompt tokens looked up in the prefix cache at admission, since the engine started (vLLM's queries). */
  prefixCacheQueries?: number;
  /** Of those, tokens whose KV came from the cache (vLLM's hits). */
  prefixCacheHits?: number;
  /** Whether full KV blocks are kept for reuse by later prompts. */
  enablePrefixCaching?: boolean;
}

/**
 * What front ends hold: the engine core behind a request/output API. Implemented by engine/engine.ts.
 */
export interface EngineClient {
  /** Longest prompt + output, in tokens (for metrics' buckets; absent on test doubles). */
  readonly maxModelLen?: number;
  /** Tokens per KV block. */
  readonly blockSize?: number;
  /** The scheduler's limits: sequences and tokens a step (absent on test doubles). */
  readonly maxNumSeqs?: number;
  readonly maxNumBatchedTokens?: number;
  /** Decode tokens of KV room each request keeps at admission (absent on test doubles). */
  readonly kvReserveTokens?: number;
  /** The KV cache's dtype as asked for (--kv-cache-dtype; absent on test doubles = "auto"). */
  readonly kvCacheDtype?: KvCacheDtype;
  /** The largest promptLogprobs generate() takes (0: the prompt tokens' own logprobs only); absent = 0. */
  readonly maxPromptLogprobs?: number;
  /** The model's end-of-sequence ids (Engine: tokenizer stop ids + config eos ids; absent on test doubles). */
  readonly eosTokenIds?: readonly number[];
  /** Queues a request and yields its outputs as steps produce them; the last one has finished = true. */
  generate(req: EngineRequest): AsyncIterable<RequestOutput>;
  /** Aborts a queued or running request (its blocks go back to the pool); unknown ids are ignored. */
  abort(requestId: string): void;
  stats(): EngineStats;
  /**
   * Data parallelism: each replica's stats, the index being vLLM's `engine` label (engine/replica-router.ts).
   * Absent: one engine, whose stats() is engine 0's.
   */
  engineStats?(): EngineStats[];
  /**
   * Calls `listener` with the tokens of every engine step (vLLM's iteration tokens) and, behind a replica
   * router, the replica that ran it (absent: engine 0); returns the unsubscribe.
   */
  onIteration?(listener: (numTokens: number, engineIndex?: number) => void): () => void;
  /**
   * Compiles a structured output ahead of generate() (cached), throwing the grammar engine's GrammarError when
   * it cannot be compiled, so a server can answer 400. Absent: generate() reports such errors in the stream.
   */
  compileStructuredOutput?(spec: ConstraintSpec): Promise<void>;
  /** Stops taking requests; lets running ones finish for graceMs, then aborts the rest. */
  shutdown(opts?: { graceMs?: number }): Promise<void>;
}

/** An invalid request value: `param` is the API field name (snake_case), e.g. `top_p`. Servers answer 400. */
export class InvalidParamError extends Error {
  override name = "InvalidParamError";
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

/** generate() after shutdown() began. Servers answer 503. */
export class EngineClosedError extends Error {
  override name = "EngineClosedError";
}
