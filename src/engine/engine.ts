/**
 * The engine core (nano-vllm's LLMEngine, vLLM v1's EngineCore behind EngineClient): requests in, a step
 * loop (schedule -> backend.step -> update sequences) that runs while there is work, and per-request streams
 * of RequestOutput deltas out. A step's text and stream outputs are produced while the next step runs, and a
 * steady decode step is launched before the one it follows has returned (chained steps, see runLoop).
 */

import { randomUUID } from "node:crypto";
import type { Backend, StepBatch, StepResult } from "../backend/backend.js";
import { checkKvCacheDtypeSupported, type KvCacheDtype } from "../backend/kv-cache-dtype.js";
import { penaltyLists, type SequenceSampling } from "../backend/sampler-arrays.js";
import { chainedStepsFromEnvironment } from "../backend/step-chain.js";
import type { ModelSource } from "../model/types.js";
import type { ConstraintSpec } from "../structured/constraint-spec.js";
import {
  ConstraintFactory,
  needsConstraint,
  type PendingStepMasks,
} from "../structured/engine-constraints.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { defaultMaxNumBatchedTokens, type UsageContext } from "./batch-defaults.js";
import { BlockManager } from "./block-manager.js";
import {
  type ContinuedSequence,
  StepPacker,
  type StepSequence,
  sampledLogprob,
  scheduledStepSequence,
} from "./model-runner.js";
import { OutputStream } from "./output-stream.js";
import { MAX_LOGPROBS, resolveSamplingParams } from "./sampling-params.js";
import { DEFAULT_KV_RESERVE_TOKENS, type ScheduledSequence, Scheduler } from "./scheduler.js";
import { Sequence } from "./sequence.js";
import { type StepCounts, stepTraceFromEnvironment } from "./step-trace.js";
import {
  type EngineClient,
  EngineClosedError,
  type EngineRequest,
  type EngineStats,
  InvalidParamError,
  type RequestOutput,
} from "./types.js";

export interface EngineOptions {
  model: ModelSource;
  /** A backend that is not loaded yet: create() loads the model into it. */
  backend: Backend;
  tokenizer: Tokenizer;
  /** Longest prompt + output (default: the model's max_position_embeddings). */
  maxModelLen?: number;
  maxNumSeqs?: number; // default 256
  /** Default (batch-defaults.ts): vLLM's 8192 for the server on a GPU of >= 70 GiB, else max(2048, maxNumSeqs). */
  maxNumBatchedTokens?: number;
  /** What the engine serves (vLLM's usage context; default offline): picks the default token budget. */
  usageContext?: UsageContext;
  /**
   * Decode tokens of KV room each sequence keeps when new ones are admitted, capped by its max_tokens left (default
   * scheduler.ts's DEFAULT_KV_RESERVE_TOKENS); 0 admits while the prompt fits, as vLLM.
   */
  kvReserveTokens?: number;
  enablePrefixCaching?: boolean; // default true
  blockSize?: number; // default 16
  /** Exact KV cache size in blocks (default: the backend sizes it). */
  numBlocks?: number;
  gpuMemoryUtilization?: number;
  kvCacheBytes?: number;
  /** vLLM's --kv-cache-dtype (default auto); a backend that cannot honour it is refused before loading. */
  kvCacheDtype?: KvCacheDtype;
  onLoadProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Cancels the load (checked between tensors). */
  loadSignal?: AbortSignal;
  /**
   * Whether a step's outputs (text, stop strings, streams) are produced after the next step is launched, while
   * the backend runs it (default; stop strings are then seen one step late), or before it is scheduled, as the
   * step loop did first. Default: true unless the environment has AWQ_ENGINE_OVERLAP=0 (for A/B runs).
   */
  overlapOutputs?: boolean;
  /**
   * Whether a decode step that only continues the step on the backend is launched before that step returns
   * (vLLM v1's async scheduling; the backend takes each token from the previous step's result), so the GPU
   * never waits for the host between two such steps. Needs overlapOutputs and a backend with chainedSteps.
   * Default: true unless the environment has AWQ_ENGINE_ASYNC=0 (for A/B runs).
   */
  asyncScheduling?: boolean;
}

export { EngineClosedError } from "./types.js";

/** A step handed to the backend: what it runs and the promise of its result (null: it failed). */
interface LaunchedStep {
  scheduled: ScheduledSequence[];
  batch: StepBatch;
  /** Which of the engine's packers holds the batch's arrays (not reused before this step is applied). */
  packer: number;
  result: Promise<StepResult | null>;
  /** Its number in the AWQ_TRACE_STEPS trace, when one is written. */
  traceId?: number;
}

const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

interface ActiveRequest {
  seq: Sequence;
  stream: OutputStream;
  /** Aborted while its step was running on the backend: handled when the step returns. */
  abortRequested: boolean;
  detachSignal: () => void;
  /**
   * Its row in the last step's result while the logprob entry of the token it got there is not pushed yet
   * (deliverPending, or an earlier end: finishRequest); -1: none.
   */
  pendingRow: number;
}

export class Engine implements EngineClient {
  readonly maxModelLen: number;
  readonly blockSize: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  /** Decode tokens of KV room each sequence keeps when new ones are admitted (SchedulerConfig.kvReserveTokens). */
  readonly kvReserveTokens: number;
  readonly numBlocks: number;
  /** The KV cache's dtype as asked for (vLLM's --kv-cache-dtype; "auto" = the model's). */
  readonly kvCacheDtype: KvCacheDtype;
  /** The largest promptLogprobs taken: MAX_LOGPROBS where the backend returns prompt alternatives, else 0. */
  readonly maxPromptLogprobs: number;
  private readonly scheduler: Scheduler;
  /** AWQ_TRACE_STEPS (step-trace.ts): null unless set. */
  private readonly trace = stepTraceFromEnvironment();
  private readonly requests = new Map<string, ActiveRequest>();
  /**
   * The model's end-of-sequence ids: the tokenizer's stop ids and config.json's eos ids. The one set every
   * front end uses (sequences' stop checks, beam search).
   */
  readonly eosTokenIds: readonly number[];
  private loop: Promise<void> | null = null;
  /** Whether the step loop runs (set before `loop` is: see ensureLoop). */
  private loopActive = false;
  private closed = false;
  /**
   * Id of the newest step whose backend call has ended (steps end in launch order); a sequence with a larger
   * lastStepId is in a step the backend still runs (an abort waits for it: a mask row may be in the works).
   */
  private settledStepId = 0;
  private lastStepId = 0;
  /** Steps on the backend, oldest first: one, or two while a chained step follows the first (runLoop). */
  private readonly inFlight: LaunchedStep[] = [];
  /** Finished by a stop string while their step ran: their constraints are disposed when it returns. */
  private readonly retiring: Sequence[] = [];
  /**
   * The last step's work left for after the next launch (besides the block hashing the scheduler defers):
   * requests that got a token (with its row) whose text and outputs are not out yet. A reused array, with a count.
   */
  private readonly deliveries: (ActiveRequest | undefined)[] = [];
  private numDeliveries = 0;
  private deliveryResult: StepResult | null = null;
  private readonly visitUpdate = (seq: Sequence, index: number, tokenId: number | null) =>
    this.applyToken(seq, index, tokenId);
  /** A throw while handling one sequence of a step (its hashing, prompt logprobs, token): it alone fails. */
  private readonly failSeq = (seq: Sequence, err: unknown) => {
    const active = this.requests.get(seq.requestId);
    if (active !== undefined) this.failRequest(active, err);
    else this.releaseQuietly(seq);
  };
  /** Two packers: a batch is written by the one no step on the backend holds (at most one is, when packing). */
  private readonly packers = [new StepPacker(), new StepPacker()];
  private packerTurn = 0;
  private readonly stepSeqs: StepSequence[] = [];
  private readonly constraints: ConstraintFactory;
  /** Whether a step's outputs are handled while the next step runs (EngineOptions.overlapOutputs). */
  readonly overlapOutputs: boolean;
  /** Whether steady decode steps are chained (EngineOptions.asyncScheduling, and what it needs). */
  readonly chainsSteps: boolean;

  private constructor(
    readonly backend: Backend,
    readonly tokenizer: Tokenizer,
    readonly blockManager: BlockManager,
    opts: {
      maxModelLen: number;
      maxNumSeqs: number;
      maxNumBatchedTokens: number;
      kvReserveTokens?: number;
      kvCacheDtype?: KvCacheDtype;
      eosTokenIds: number[];
      vocabSize: number;
      overlapOutputs: boolean;
      asyncScheduling: boolean;
    },
  ) {
    this.overlapOutputs = opts.overlapOutputs;
    this.chainsSteps = opts.asyncScheduling && opts.overlapOutputs && backend.chainedSteps === true;
    this.constraints = new ConstraintFactory(tokenizer, opts.vocabSize);
    this.maxModelLen = opts.maxModelLen;
    this.blockSize = blockManager.blockSize;
    this.maxNumSeqs = opts.maxNumSeqs;
    this.maxNumBatchedTokens = opts.maxNumBatchedTokens;
    this.numBlocks = blockManager.numBlocks;
    this.kvCacheDtype = opts.kvCacheDtype ?? "auto";
    this.maxPromptLogprobs = backend.promptTopLogprobs ? MAX_LOGPROBS : 0;
    this.eosTokenIds = opts.eosTokenIds;
    this.kvReserveTokens = opts.kvReserveTokens ?? DEFAULT_KV_RESERVE_TOKENS;
    this.scheduler = new Scheduler(blockManager, {
      maxNumSeqs: opts.maxNumSeqs,
      maxNumBatchedTokens: opts.maxNumBatchedTokens,
      kvReserveTokens: this.kvReserveTokens,
    });
  }

  /** Loads the model into the backend and builds the engine around the KV cache it allocated. */
  static async create(opts: EngineOptions): Promise<Engine> {
    const config = opts.model.config;
    const maxModelLen = opts.maxModelLen ?? config.maxPositionEmbeddings;
    const maxNumSeqs = opts.maxNumSeqs ?? 256;
    const maxNumBatchedTokens =
      opts.maxNumBatchedTokens ??
      defaultMaxNumBatchedTokens(opts.backend.gpu, opts.usageContext ?? "offline", maxNumSeqs);
    const blockSize = opts.blockSize ?? 16;
    positiveInt("maxModelLen", maxModelLen);
    // As vLLM: the model's trained context (times its RoPE scaling factor) bounds max-model-len; beyond it the
    // positions were never seen in training and the output silently degrades.
    const longest = Math.floor(config.maxPositionEmbeddings * (config.ropeScaling?.factor ?? 1));
    if (maxModelLen > longest) {
      throw new Error(
        `max-model-len ${maxModelLen} is longer than the model's context of ${longest} tokens ` +
          `(max_position_embeddings${config.ropeScaling ? " x rope_scaling.factor" : ""} in config.json); ` +
          `use at most ${longest}`,
      );
    }
    positiveInt("maxNumSeqs", maxNumSeqs);
    positiveInt("maxNumBatchedTokens", maxNumBatchedTokens);
    positiveInt("blockSize", blockSize);
    if (opts.kvReserveTokens !== undefined) nonNegativeInt("kvReserveTokens", opts.kvReserveTokens);
    if (opts.numBlocks !== undefined) positiveInt("numBlocks", opts.numBlocks);
    checkKvCacheDtypeSupported(opts.backend.name, opts.kvCacheDtype, opts.model.checkpoint.names());
    const overlapOutputs = opts.overlapOutputs ?? overlapFromEnvironment(); // refused before any weight is read
    const asyncScheduling = opts.asyncScheduling ?? chainedStepsFromEnvironment();
    const layout = await opts.backend.load(opts.model, {
      maxModelLen,
      maxNumSeqs,
      maxNumBatchedTokens,
      blockSize,
      numBlocks: opts.numBlocks,
      gpuMemoryUtilization: opts.gpuMemoryUtilization,
      kvCacheBytes: opts.kvCacheBytes,
      kvCacheDtype: opts.kvCacheDtype,
      onLoadProgress: opts.onLoadProgress,
      signal: opts.loadSignal,
    });
    const blockManager = new BlockManager(
      layout.numBlocks,
      layout.blockSize,
      opts.enablePrefixCaching ?? true,
    );
    const eosTokenIds = [...new Set([...opts.tokenizer.stopTokenIds, ...config.eosTokenIds])];
    return new Engine(opts.backend, opts.tokenizer, blockManager, {
      maxModelLen,
      maxNumSeqs,
      maxNumBatchedTokens,
      kvReserveTokens: opts.kvReserveTokens,
      kvCacheDtype: opts.kvCacheDtype,
      eosTokenIds,
      vocabSize: config.vocabSize,
      overlapOutputs,
      asyncScheduling,
    });
  }

  /**
   * Queues a request. Invalid parameters or a prompt that does not fit max-model-len throw
   * InvalidParamError right here (before any output), so a server can answer 400.
   */
  generate(req: EngineRequest): AsyncIterable<RequestOutput> {
    if (this.closed) throw new EngineClosedError("the engine is shutting down and takes no new requests");
    const prompt = req.promptTokenIds;
    this.checkPrompt(prompt);
    const params = resolveSamplingParams(req.params, { vocabSize: this.tokenizer.vocabSize });
    if (params.n !== 1) {
      throw new InvalidParamError(
        "n",
        `the engine runs one sequence per request, got n = ${params.n}; fan the choices out as requests ` +
          "of choiceParams(params, i) (LLM.generate and the server do)",
      );
    }
    if (params.promptLogprobs !== null && params.promptLogprobs > this.maxPromptLogprobs) {
      throw new InvalidParamError(
        "prompt_logprobs",
        `prompt_logprobs ${params.promptLogprobs}: the ${this.backend.name} backend returns no alternatives at ` +
          `prompt positions, so at most ${this.maxPromptLogprobs} (each prompt token's own logprob)`,
      );
    }
    if (params.maxTokens !== null && prompt.length + params.maxTokens > this.maxModelLen) {
      throw new InvalidParamError(
        "max_tokens",
        `the prompt (${prompt.length} tokens) plus max_tokens (${params.maxTokens}) exceeds the model's ` +
          `context of ${this.maxModelLen} tokens (max-model-len)`,
      );
    }
    const requestId = req.requestId ?? randomUUID();
    if (this.requests.has(requestId)) {
      throw new InvalidParamError("request_id", `request id ${requestId} is already in use`);
    }
    const seq = new Sequence({
      requestId,
      promptTokenIds: [...prompt],
      params,
      tokenizer: this.tokenizer,
      eosTokenIds: this.eosTokenIds,
      maxModelLen: this.maxModelLen,
    });
    const stream = new OutputStream(() => this.abort(requestId));
    const active: ActiveRequest = {
      seq,
      stream,
      abortRequested: false,
      detachSignal: () => {},
      pendingRow: -1,
    };
    this.requests.set(requestId, active);
    this.trace?.add(requestId, prompt.length);
    if (needsConstraint(params)) this.addConstrained(active);
    else this.scheduler.add(seq);
    const signal = req.signal;
    if (signal) {
      const onAbort = () => this.abort(requestId);
      if (signal.aborted) queueMicrotask(onAbort);
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        active.detachSignal = () => signal.removeEventListener("abort", onAbort);
      }
    }
    this.ensureLoop();
    return stream;
  }

  /**
   * Compiles a structured output (cached: the request that uses it then starts at once). Throws the grammar
   * engine's GrammarError, whose message says what is wrong; front ends call it first to answer 400.
   */
  async compileStructuredOutput(spec: ConstraintSpec): Promise<void> {
    await this.constraints.compile(spec);
  }

  /** Queues a constrained sequence once its constraint (grammar matcher) is built. */
  private addConstrained(active: ActiveRequest): void {
    const { seq } = active;
    this.constraints.create(seq.params).then(
      (constraint) => {
        if (this.requests.get(seq.requestId) !== active || seq.isFinished) {
          disposeQuietly(constraint); // ended meanwhile: nobody is left to tell if this throws
          return;
        }
        seq.constraint = constraint;
        this.scheduler.add(seq);
        this.ensureLoop();
      },
      (err: unknown) => {
        if (this.requests.get(seq.requestId) !== active) return;
        const message = err instanceof Error ? err.message : String(err);
        this.finishRequest(active, "error", `structured output: ${message}`);
      },
    );
  }

  abort(requestId: string): void {
    const active = this.requests.get(requestId);
    if (active === undefined) return;
    if (this.isInFlight(active.seq)) active.abortRequested = true;
    else this.finishRequest(active, "abort");
  }

  stats(): EngineStats {
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      kvCacheUsage: this.blockManager.usage,
      numBlocks: this.blockManager.numBlocks,
      freeBlocks: this.blockManager.numFreeBlocks,
      numPreemptions: this.scheduler.numPreemptions,
      prefixCacheQueries: this.scheduler.prefixCacheQueries,
      prefixCacheHits: this.scheduler.prefixCacheHits,
      enablePrefixCaching: this.blockManager.enablePrefixCaching,
    };
  }

  onIteration(listener: (numTokens: number) => void): () => void {
    this.scheduler.iterationListeners.add(listener);
    return () => this.scheduler.iterationListeners.delete(listener);
  }

  /** Resolves when the step loop has no work left. */
  async idle(): Promise<void> {
    while (this.loop !== null) await this.loop;
  }

  async shutdown(opts: { graceMs?: number } = {}): Promise<void> {
    this.closed = true;
    const graceMs = opts.graceMs ?? 0;
    if (graceMs > 0 && this.loop !== null) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    for (const id of [...this.requests.keys()]) this.abort(id);
    await this.idle();
    await this.constraints.close();
    this.trace?.close();
  }

  private checkPrompt(prompt: readonly number[]): void {
    if (!Array.isArray(prompt) || prompt.length === 0) {
      throw new InvalidParamError("prompt", "the prompt must hold at least one token");
    }
    const vocabSize = this.tokenizer.vocabSize;
    for (const id of prompt) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new InvalidParamError(
          "prompt",
          `prompt token id ${id} is outside the vocabulary (0..${vocabSize - 1})`,
        );
      }
    }
    if (prompt.length >= this.maxModelLen) {
      throw new InvalidParamError(
        "prompt",
        `the prompt has ${prompt.length} tokens but the model's context (max-model-len) is ${this.maxModelLen}, ` +
          "which leaves no room to generate",
      );
    }
  }

  private ensureLoop(): void {
    // Set before runLoop starts: its first step runs synchronously in here, and a generate() from inside it (a
    // backend's step() or an iteration listener calling back) must not start a second loop beside it.
    if (this.loopActive) return;
    this.loopActive = true;
    this.loop = this.runLoop().finally(() => {
      this.loopActive = false;
      this.loop = null;
      // Work added in the last moment of the loop (after its final check) starts a new one.
      if (this.scheduler.hasWork()) this.ensureLoop();
    });
  }

  /**
   * The step loop (vLLM v1's EngineCore busy loop, with the output processing of a step overlapped with the
   * next). Between two backend steps, the critical path is only: the sampled tokens appended with the stop
   * checks that need no text (eos, stop ids, max_tokens), scheduling and packing the next batch, and launching
   * it. Everything else of a step (logprob entries, detokenizing, stop strings, stream outputs, and the
   * consumers that run on them) runs after that launch, while the backend works. A stop string is therefore
   * seen one step late: the sequence already sits in the step just launched, whose token for it is dropped.
   *
   * Chained steps (chainsSteps): while a step runs, its continuation (every sequence's next decode token, taken by
   * the backend from the running step's result) is launched beside it when nothing else waits (launchContinuation),
   * so the backend starts it as soon as the first returns. A sequence that the first step's token ends (eos, a
   * stop string, an abort) has its row of the continuation dropped, as a stop string's is above. Anything else
   * (admissions, prefill chunks, preemption) waits for a step scheduled from scratch once nothing is in flight.
   */
  private async runLoop(): Promise<void> {
    while (
      this.scheduler.hasWork() ||
      this.numDeliveries > 0 ||
      this.scheduler.hasDeferredHashing ||
      this.inFlight.length > 0
    ) {
      try {
        let launched = false;
        if (this.inFlight.length === 0) {
          const step = this.launchStep();
          if (step !== null) {
            this.inFlight.push(step);
            launched = true;
          }
        }
        if (this.chainsSteps && this.inFlight.length === 1) {
          const next = this.launchContinuation(this.inFlight[0]!);
          if (next !== null) {
            this.inFlight.push(next);
            launched = true;
          }
        }
        // One macrotask lets the backend hand the step over before the host work below (what a backend or the
        // grammar workers do in microtasks after step() returns); I/O (new requests, aborts) runs here too.
        if (launched && this.overlapOutputs) await nextMacrotask();
        this.deliverPending();
        const step = this.inFlight[0];
        if (step === undefined) {
          await nextMacrotask();
          continue;
        }
        const result = await step.result;
        if (step.traceId !== undefined) this.trace?.done(step.traceId);
        this.inFlight.shift();
        this.applyStep(step, result);
        if (!this.overlapOutputs) {
          // Outputs first, then one event-loop turn (consumers, I/O), then the next schedule.
          this.deliverPending();
          await nextMacrotask();
        }
      } catch (err) {
        // A bug of ours, not of one request (per-request failures end that request where they happen): end
        // every request with the error rather than hang them.
        for (const step of this.inFlight) await step.result.catch(() => null);
        this.inFlight.length = 0;
        const message = `engine error: ${err instanceof Error ? err.message : String(err)}`;
        this.settledStepId = this.lastStepId;
        this.deliveries.fill(undefined, 0, this.numDeliveries);
        this.numDeliveries = 0;
        this.scheduler.dropDeferredHashing();
        this.retireFinished();
        for (const active of [...this.requests.values()]) this.finishRequest(active, "error", message);
        this.deliveryResult = null;
        for (const seq of [...this.scheduler.running, ...this.scheduler.waiting]) this.releaseQuietly(seq);
      }
    }
  }

  /** The packer no step on the backend holds (the engine packs with at most one step in flight). */
  private freePacker(): number {
    const held = this.inFlight[0]?.packer;
    if (held === undefined) this.packerTurn ^= 1;
    else this.packerTurn = held ^ 1;
    return this.packerTurn;
  }

  /** Schedules and packs the next step and starts it on the backend; null when nothing can run. */
  private launchStep(): LaunchedStep | null {
    const { scheduled, unfittable } = this.scheduler.schedule();
    for (const { seq, reason } of unfittable) this.finishSeq(seq, "error", reason);
    const stepSeqs = this.stepSeqs;
    stepSeqs.length = 0;
    for (let i = 0; i < scheduled.length; i++) {
      try {
        stepSeqs.push(scheduledStepSequence(scheduled[i]!));
      } catch (err) {
        this.failSeq(scheduled[i]!.seq, err); // its sampling view (bans, bias) threw: it alone leaves the step
        scheduled.splice(i--, 1);
      }
    }
    if (scheduled.length === 0) return null;
    const packerIndex = this.freePacker();
    const packer = this.packers[packerIndex]!;
    let batch: StepBatch;
    try {
      batch = packer.pack(stepSeqs, this.blockSize);
    } catch (err) {
      // Off the normal path: each sequence packed alone tells whose part of the step throws (its tokens, block
      // table, sampling settings); those leave the step with the error. A failure none explains is the engine's.
      const probe = new StepPacker();
      let removed = 0;
      for (let i = 0; i < scheduled.length; i++) {
        try {
          probe.pack([stepSeqs[i]!], this.blockSize);
        } catch (own) {
          this.failSeq(scheduled[i]!.seq, own);
          scheduled.splice(i, 1);
          stepSeqs.splice(i--, 1);
          removed++;
        }
      }
      if (removed === 0) throw err;
      if (scheduled.length === 0) return null;
      batch = packer.pack(stepSeqs, this.blockSize);
    }
    const traceId = this.trace?.step(false, this.stepCounts(scheduled));
    return { scheduled, batch, packer: packerIndex, result: this.runBackend(scheduled, batch), traceId };
  }

  /**
   * The next decode step of `prev` (the one step on the backend), launched before prev returns: each of its live
   * sequences runs the token prev samples for it, which the backend takes from prev's result (prevTokenRows).
   * A sequence known to end with prev's token (max_tokens, the context's end, an abort) is left out. Null, so that
   * the next step is scheduled from scratch once prev is applied, when that step could differ: a request waits for
   * admission, a running sequence is not in prev or still prefills, one's next step depends on the token prev
   * gives it (a grammar, penalties over its output, bans that lift with its length), or the cache cannot grow.
   */
  private launchContinuation(prev: LaunchedStep): LaunchedStep | null {
    if (this.scheduler.waiting.length > 0 || prev.batch.tokenLogprobs) return null;
    const next: ScheduledSequence[] = [];
    const rows: ContinuedSequence[] = [];
    let live = 0;
    for (let i = 0; i < prev.scheduled.length; i++) {
      const { seq, numNewTokens, sample } = prev.scheduled[i]!;
      if (seq.isFinished) continue;
      live++;
      if (!sample) return null;
      const active = this.requests.get(seq.requestId);
      if (active === undefined || active.abortRequested) continue;
      const outputs = seq.numOutputTokens + 1; // after prev's token
      if (outputs >= seq.stopChecker.maxOutputTokens) continue;
      let sampling: SequenceSampling | null;
      try {
        sampling = continuedSampling(seq, outputs);
      } catch {
        return null; // as a failed pack below
      }
      if (sampling === null) return null;
      rows.push({
        prevRow: i,
        position: seq.numComputedTokens + numNewTokens,
        blockTable: seq.blockTable,
        sampling,
      });
      next.push({ seq, numNewTokens: 1, sample: true });
    }
    if (rows.length === 0 || live !== this.scheduler.running.length) return null;
    for (let i = 0; i < rows.length; i++) {
      if (!this.scheduler.growTo(next[i]!.seq, rows[i]!.position + 1)) return null;
    }
    const packerIndex = this.freePacker();
    let batch: StepBatch;
    try {
      batch = this.packers[packerIndex]!.packContinuation(rows, this.blockSize);
    } catch {
      return null; // the step scheduled from scratch finds whose part throws and ends that request alone
    }
    this.scheduler.noteIteration(rows.length);
    // Every row of a continuation is one decode token (the step before may have been a prompt's last chunk).
    const traceId = this.trace?.step(true, {
      seqs: next.length,
      prefill: 0,
      decode: next.length,
      waiting: 0,
    });
    return { scheduled: next, batch, packer: packerIndex, result: this.runBackend(next, batch), traceId };
  }

  /** What a step holds, for the trace: prompt tokens (prefill, recompute) against one-token decodes. */
  private stepCounts(scheduled: readonly ScheduledSequence[]): StepCounts {
    let prefill = 0;
    let decode = 0;
    for (const { seq, numNewTokens } of scheduled) {
      if (seq.numComputedTokens < seq.numPromptTokens) prefill += numNewTokens;
      else decode += numNewTokens;
    }
    return { seqs: scheduled.length, prefill, decode, waiting: this.scheduler.waiting.length };
  }

  /**
   * Runs the step on the backend (with the constrained sequences' masks). A failure ends the step's requests
   * with the error (null); everyone else keeps going. The backend's step() is called before this returns.
   */
  private async runBackend(
    scheduled: readonly ScheduledSequence[],
    batch: StepBatch,
  ): Promise<StepResult | null> {
    const stepId = ++this.lastStepId;
    for (const s of scheduled) s.seq.lastStepId = stepId;
    let pending: PendingStepMasks | null = null;
    try {
      // Bitmask rows of the constrained sequences, written by the grammar workers while the backend runs the
      // step; it awaits them right before sampling (an abort meanwhile waits for the step: they are in flight).
      if (scheduled.some((s) => s.seq.constraint !== null)) pending = this.startStepMasks(scheduled);
      if (pending !== null) {
        Object.assign(batch.sampling, pending.masks);
        batch.masksReady = pending.masksReady;
      }
      const result = await this.backend.step(batch);
      await pending?.done;
      if (result.tokenIds.length !== scheduled.length) {
        throw new Error(
          `the backend returned ${result.tokenIds.length} tokens for ${scheduled.length} sequences`,
        );
      }
      return result;
    } catch (err) {
      await pending?.done; // the workers are done with the mask memory before the next step reuses it
      this.settledStepId = stepId;
      this.retireFinished();
      const message = `backend error: ${err instanceof Error ? err.message : String(err)}`;
      for (const { seq } of scheduled) this.finishSeq(seq, "error", message);
      return null;
    } finally {
      this.settledStepId = Math.max(this.settledStepId, stepId);
    }
  }

  /**
   * The step's mask rows (see runBackend). A sequence whose own constraint throws while its row is made (a
   * fixed row: allowed_token_ids) fails alone: it stays in the packed step with no row (its token is dropped,
   * its blocks are free once the step returns) and the rows are made again without it.
   */
  private startStepMasks(scheduled: readonly ScheduledSequence[]): PendingStepMasks | null {
    const rows = () =>
      scheduled.map((s) => ({ constraint: s.seq.isFinished ? null : s.seq.constraint, sample: s.sample }));
    try {
      return this.constraints.startStepMasks(rows());
    } catch (err) {
      const scratch = new Int32Array(this.constraints.maskWords); // (maskWords)
      let failed = 0;
      for (const { seq, sample } of scheduled) {
        const constraint = seq.constraint;
        if (!sample || constraint === null || seq.isFinished) continue;
        try {
          if (constraint.hasMask && !constraint.hasGrammar) constraint.fillFixedRow(scratch);
        } catch (own) {
          this.failSeq(seq, own);
          failed++;
        }
      }
      if (failed === 0) throw err;
      return this.constraints.startStepMasks(rows());
    }
  }

  /**
   * The critical part of a step's output: KV and prompt-logprob bookkeeping, then per sequence a pending abort,
   * the sampled token with the stop checks that need no text; a sequence they finish gives its blocks back now,
   * so the next schedule can use them. The rest waits in `deliveries` for deliverPending().
   */
  private applyStep(step: LaunchedStep, result: StepResult | null): void {
    this.retireFinished();
    if (result === null) return;
    this.deliveryResult = result;
    this.scheduler.applyOutput(step.scheduled, step.batch, result, this.visitUpdate, false, this.failSeq);
  }

  /**
   * One sequence's part of applyStep. A throw here (its constraint, stop checks, hashing, constraint dispose)
   * reaches failSeq through the scheduler's applyOutput: that request alone fails.
   */
  private applyToken(seq: Sequence, index: number, tokenId: number | null): void {
    const active = this.requests.get(seq.requestId);
    if (active === undefined) return;
    if (active.abortRequested) {
      this.finishRequest(active, "abort");
      return;
    }
    if (tokenId !== null) {
      if (!Number.isInteger(tokenId) || tokenId < 0 || tokenId >= this.tokenizer.vocabSize) {
        this.finishSeq(seq, "error", `backend error: sampled token id ${tokenId} is outside the vocabulary`);
        return;
      }
      if (seq.constraint !== null && !seq.constraint.accept(tokenId)) {
        const message =
          seq.constraint.failure ??
          `backend error: sampled token ${tokenId} is outside the output constraint's mask`;
        this.finishSeq(seq, "error", message);
        return;
      }
      seq.appendToken(tokenId, null);
      if (!seq.isFinished && seq.constraint?.terminated) seq.finishByGrammar();
      this.deliveries[this.numDeliveries++] = active;
      active.pendingRow = index;
    }
    if (seq.isFinished) {
      this.scheduler.cacheFullBlocks(seq);
      this.releaseSeq(seq);
    } else {
      this.scheduler.deferHashing(seq);
    }
  }

  /**
   * The off-critical-path part of the last step's output, run while the next step is on the backend: the
   * prefix cache's block hashes, logprob entries, detokenizing and stop strings, stream outputs. A sequence a
   * stop string ends here is in the step on the backend: its output ends now, and the token that step
   * computes for it is dropped.
   */
  private deliverPending(): void {
    this.scheduler.hashDeferred(this.failSeq);
    for (let i = 0; i < this.numDeliveries; i++) {
      const active = this.deliveries[i]!;
      if (this.requests.get(active.seq.requestId) !== active) continue; // ended meanwhile (abort, error)
      try {
        this.deliver(active);
      } catch (err) {
        this.failRequest(active, err); // its logprob entry, text or stop strings threw: it alone fails
      }
    }
    this.deliveries.fill(undefined, 0, this.numDeliveries);
    this.numDeliveries = 0;
    this.deliveryResult = null;
  }

  /**
   * One request's part of deliverPending: its logprob entry, text and stop strings, and its output. A throw
   * (its text side, its constraint's dispose) leaves the output untaken: failRequest ends it.
   */
  private deliver(active: ActiveRequest): void {
    const { seq } = active;
    this.pushPendingLogprob(active);
    const wasFinished = seq.isFinished;
    seq.settleText();
    if (!seq.isFinished) {
      active.stream.push(seq.takeOutput());
      return;
    }
    if (!wasFinished) this.retire(seq);
    const output = seq.takeOutput();
    this.requests.delete(seq.requestId);
    active.detachSignal();
    active.stream.push(output);
  }

  /**
   * Takes a sequence ended by its text side (a stop string, a failure) out of the scheduler. Its blocks can go
   * now: the step on the backend only writes the slot of a token that gets dropped, and no later step starts
   * before that one returns. Its matcher may be filling a mask row of that step: disposed when the step returns.
   */
  private retire(seq: Sequence): void {
    this.scheduler.remove(seq);
    if (this.isInFlight(seq)) this.retiring.push(seq);
    else this.releaseSeq(seq);
  }

  /**
   * Ends a request whose own handling threw (its detokenizer, constraint or its dispose, stop checks, logprob
   * entries, block hashing, step view): it alone ends, with the error, its blocks and constraint given back.
   * Its text side is not trusted again: the final output carries no new text or tokens, and its usage counts
   * the tokens sent before.
   */
  private failRequest(active: ActiveRequest, err: unknown): void {
    const { seq } = active;
    if (this.requests.get(seq.requestId) !== active) return;
    this.requests.delete(seq.requestId);
    active.detachSignal();
    active.pendingRow = -1;
    const message = err instanceof Error ? err.message : String(err);
    const error = message.startsWith("engine error: ") ? message : `engine error: ${message}`;
    seq.status = "finished";
    seq.finishReason = "error";
    seq.stopReason = null;
    seq.error = error;
    try {
      this.retire(seq);
    } catch {
      // Its constraint's dispose threw (again, or first here): released all the same, the error is out below.
    }
    const output: RequestOutput = {
      requestId: seq.requestId,
      textDelta: "",
      tokenIdsDelta: [],
      logprobsDelta: [],
      finished: true,
      finishReason: "error",
      stopReason: null,
      promptTokens: seq.numPromptTokens,
      cachedTokens: seq.numCachedTokens,
      completionTokens: seq.numOutputTokensSent,
      error,
    };
    if (seq.scheduledAt !== null) output.scheduledAt = seq.scheduledAt;
    active.stream.push(output);
  }

  /** The logprob entry of the token the request got in the last step, if it asked and it is not out yet. */
  private pushPendingLogprob(active: ActiveRequest): void {
    const row = active.pendingRow;
    if (row < 0) return;
    active.pendingRow = -1;
    const result = this.deliveryResult;
    const wanted = active.seq.params.logprobs;
    if (result !== null && wanted !== null) {
      active.seq.pushLogprob(sampledLogprob(result, row, result.tokenIds[row]!, wanted)!);
    }
  }

  /** Whether a step on the backend runs `seq`. */
  private isInFlight(seq: Sequence): boolean {
    return seq.lastStepId > this.settledStepId;
  }

  /** Disposes the constraints of sequences a stop string ended while their step ran (their output is out). */
  private retireFinished(): void {
    for (const seq of this.retiring) this.releaseQuietly(seq);
    this.retiring.length = 0;
  }

  /**
   * Takes a finished sequence out of the scheduler: its blocks back to the pool, its constraint disposed, each
   * once: the constraint is let go before its dispose() runs, so a dispose that throws (the throw goes on to the
   * caller, to end the request with it) is never run again.
   */
  private releaseSeq(seq: Sequence): void {
    this.scheduler.remove(seq);
    const constraint = seq.constraint;
    seq.constraint = null;
    constraint?.dispose();
  }

  /** Hashes the sequence's full blocks into the prefix cache; a failure only means they are not cached. */
  private cacheQuietly(seq: Sequence): void {
    try {
      this.scheduler.cacheFullBlocks(seq);
    } catch {
      // Its prefix caching failed: the request is ending anyway, its blocks simply stay out of the cache.
    }
  }

  /** releaseSeq for a sequence whose request has ended (its final output is out, or it has none to send). */
  private releaseQuietly(seq: Sequence): void {
    try {
      this.releaseSeq(seq);
    } catch (err) {
      releaseWarning(seq, err);
    }
  }

  private finishSeq(seq: Sequence, reason: "abort" | "error", error?: string): void {
    const active = this.requests.get(seq.requestId);
    if (active !== undefined) this.finishRequest(active, reason, error);
    else this.scheduler.remove(seq);
  }

  /**
   * Ends a request (abort, error): blocks back, last output out. Never throws: a throw of its own (its
   * constraint's dispose, its text side) ends it with that error instead (failRequest).
   */
  private finishRequest(active: ActiveRequest, reason: "abort" | "error", error?: string): void {
    const { seq } = active;
    let output: RequestOutput;
    try {
      // An aborted request's KV is sound: the blocks its last step filled (their hashing was deferred past this
      // point) go into the prefix cache, as a finished request's do, so a retry of the same conversation finds them.
      if (reason === "abort") this.cacheQuietly(seq);
      this.releaseSeq(seq);
      // Ended before deliverPending reached it (an abort or error while the next step runs): its last token's
      // logprob entry goes out with it.
      this.pushPendingLogprob(active);
      // A stop string its last token reached (not seen yet: outputs overlap the next step) ended it first, as
      // it would have with AWQ_ENGINE_OVERLAP=0: the abort or the next step's error then changes nothing.
      seq.settleText();
      seq.finish(reason, error);
      output = seq.takeOutput();
    } catch (err) {
      this.failRequest(active, err);
      return;
    }
    this.requests.delete(seq.requestId);
    active.detachSignal();
    active.stream.push(output);
  }
}

/** Disposes a constraint no request is left to hear about (see releaseWarning). */
function disposeQuietly(constraint: { dispose(): void }): void {
  try {
    constraint.dispose();
  } catch (err) {
    process.emitWarning(`an output constraint's dispose() threw: ${errorText(err)}`, "AwqEngineWarning");
  }
}

/**
 * A release that threw after its request's final output was out (a stop string ended it while its step ran):
 * nobody is left to tell but the process log; its blocks are back and the constraint is not disposed again.
 */
function releaseWarning(seq: Sequence, err: unknown): void {
  process.emitWarning(
    `request ${seq.requestId}: releasing it after its end threw: ${errorText(err)}`,
    "AwqEngineWarning",
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** AWQ_ENGINE_OVERLAP: 0 (outputs before the next schedule) or 1; unset or empty: 1. Anything else is refused. */
function overlapFromEnvironment(): boolean {
  const value = process.env.AWQ_ENGINE_OVERLAP;
  if (value === undefined || value === "" || value === "1") return true;
  if (value === "0") return false;
  throw new Error(`AWQ_ENGINE_OVERLAP must be 0 or 1 (or unset), got ${JSON.stringify(value)}`);
}

/**
 * A sequence's sampling settings for a chained step, in which it samples its output token number `outputs` + 1,
 * or null when they depend on the token the running step gives it (they are then only known once it returns): a
 * grammar, penalties over its tokens, or bans (min_tokens) at that length.
 */
function continuedSampling(seq: Sequence, outputs: number): SequenceSampling | null {
  const p = seq.params;
  const view = seq.stepView;
  if (view === null || seq.constraint !== null) return null;
  if (penaltyLists(view.sampling).output) return null; // the sampler reads its output tokens, prev's one included
  if (seq.stopChecker.bannedTokenIds(outputs).length > 0) return null;
  // The view's object is the sequence's own: rewritten here, and by its next scheduled step, neither of which
  // runs before the packer has copied it.
  view.sampling.outputIndex = outputs;
  view.sampling.logitBias = p.logitBias;
  return view.sampling;
}

function positiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer, got ${value}`);
}

function nonNegativeInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`${name} must be a non-negative integer, got ${value}`);
}
