/**
 * The library API, in the spirit of vLLM's `LLM` and node-llama-cpp: one object that owns a model, its
 * tokenizer, a backend and an engine.
 *
 *   const llm = await LLM.load({ model: "models/tiny-chat-awq", backend: "cpu" });
 *   const [result] = await llm.generate("In the beginning", { maxTokens: 32, temperature: 0 });
 *   for await (const chunk of llm.stream({ messages }, { maxTokens: 64 })) process.stdout.write(chunk.textDelta);
 *   await llm.dispose();
 */

import type { Backend } from "./backend/backend.js";
import { type BackendChoice, createReplicaBackends } from "./backend/create.js";
import type { KvCacheDtype } from "./backend/kv-cache-dtype.js";
import type { UsageContext } from "./engine/batch-defaults.js";
import { type BeamSearchParams, type BeamSearchResult, beamSearch } from "./engine/beam-search.js";
import { Engine } from "./engine/engine.js";
import { ReplicaRouter } from "./engine/replica-router.js";
import { choiceParams, InvalidParamError, resolveSamplingParams } from "./engine/sampling-params.js";
import type { FinishReason, RequestOutput, SamplingParams, TokenLogprob } from "./engine/types.js";
import { resolveModelPath } from "./hub/resolve.js";
import { openModel } from "./model/load.js";
import type { ModelConfig, ModelSource } from "./model/types.js";
import { GrammarError } from "./structured/grammar-engine.js";
import {
  constraintFromOptions,
  type StructuredCallOptions,
  type ToolCallOptions,
  toolPlanFromOptions,
} from "./structured/library-options.js";
import type { FieldConstraint } from "./structured/request-constraint.js";
import type { ToolFunction } from "./structured/tool-format.js";
import { type ParsedToolCall, parseToolCalls } from "./structured/tool-format.js";
import { ChatFormatter, type ChatMessage } from "./tokenizer/chat-template.js";
import { assertTokenizerFitsModel } from "./tokenizer/model-fit.js";
import { Tokenizer } from "./tokenizer/tokenizer.js";

export interface LLMLoadOptions {
  /** A model folder, or a hub id (`org/name`, `org/name@rev`). */
  model: string;
  revision?: string;
  /** Default "auto": CUDA when available, else the CPU. A Backend instance (not loaded yet) also works. */
  backend?: BackendChoice | Backend;
  maxModelLen?: number;
  maxNumSeqs?: number;
  /** Default: engine/batch-defaults.ts (vLLM's 8192 for the server on a GPU of >= 70 GiB, else max(2048, maxNumSeqs)). */
  maxNumBatchedTokens?: number;
  /** What the engine serves (vLLM's usage context): "offline" (default) or "server" (`awq serve`). */
  usageContext?: UsageContext;
  /** Decode tokens of KV room each sequence keeps when new ones are admitted (default 256; 0: as vLLM). */
  kvReserveTokens?: number;
  enablePrefixCaching?: boolean;
  /**
   * vLLM's --async-scheduling: steady decode steps are launched before the step they continue has returned, so
   * the GPU never waits for the host between them (default: on where the backend takes chained steps, unless the
   * environment has AWQ_ENGINE_ASYNC=0). The outputs are the same either way.
   */
  asyncScheduling?: boolean;
  numBlocks?: number;
  kvCacheBytes?: number;
  gpuMemoryUtilization?: number;
  /** vLLM's --kv-cache-dtype: auto (default) or fp8 / fp8_e4m3 (CUDA: 1-byte E4M3 cache; CPU backend: E4M3 rounding). */
  kvCacheDtype?: KvCacheDtype;
  /**
   * Ranks each matrix is split over (vLLM's tensor_parallel_size, default 1): on the CPU backend the reference
   * of the sharding math; CUDA needs the NCCL build for more than 1.
   */
  tensorParallelSize?: number;
  /**
   * Engine replicas, each with its own backend and KV cache, behind `engine` (vLLM's data_parallel_size,
   * default 1): requests routed by prefix-cache affinity and load (engine/replica-router.ts).
   */
  dataParallelSize?: number;
  /** A built-in chat format ("openchat", "openchat-gpt4"), a Jinja file, or inline Jinja. */
  chatTemplate?: string;
  onLoadProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Told why `auto` fell back to the CPU (default: a line on stderr). */
  onBackendFallback?: (reason: string) => void;
  /**
   * Cancels the load (node-llama-cpp's loadSignal): passed to the hub download, checked between the load's
   * stages and between tensors; load() then rejects with the signal's reason and leaves nothing open.
   */
  loadSignal?: AbortSignal;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Prompt tokens served from the prefix cache. */
  cachedTokens: number;
}

export interface GenerateResult {
  text: string;
  /** The generated ids (not the prompt's). */
  tokenIds: number[];
  promptTokenIds: number[];
  finishReason: FinishReason;
  stopReason: string | number | null;
  usage: Usage;
  /** Present when params.logprobs was set. */
  logprobs?: TokenLogprob[];
  promptLogprobs?: (TokenLogprob | null)[];
  /** With finishReason "error". */
  error?: string;
  /** chat() with tools: the calls in the reply (then `text` is the reply without them). */
  toolCalls?: ParsedToolCall[];
}

/** Sampling parameters plus the output constraint (responseFormat / structuredOutputs; see library-options.ts). */
export type GenerateParams = SamplingParams & StructuredCallOptions;
/** chat() and stream() of a conversation also take tools. */
export type ChatParams = GenerateParams & ToolCallOptions;

/** What stream() takes: raw text, token ids, or a conversation. */
export type StreamInput = string | number[] | { messages: ChatMessage[] };

/** InvalidParamError for a library option (the `fail` of library-options.ts). */
function invalid(message: string, param: string): never {
  throw new InvalidParamError(param, message);
}

export class LLM implements AsyncDisposable {
  private disposed = false;

  private constructor(
    /** The engine, or with dataParallelSize > 1 the router over its replicas. */
    readonly engine: Engine | ReplicaRouter,
    readonly tokenizer: Tokenizer,
    readonly chatFormatter: ChatFormatter | null,
    readonly model: ModelSource,
    readonly modelPath: string,
  ) {}

  get config(): ModelConfig {
    return this.model.config;
  }

  static async load(opts: LLMLoadOptions): Promise<LLM> {
    const signal = opts.loadSignal;
    signal?.throwIfAborted();
    const modelPath = await resolveModelPath(opts.model, { revision: opts.revision, signal });
    signal?.throwIfAborted();
    const tokenizer = await Tokenizer.load(modelPath);
    // A model without any chat format can still generate; chat() then says why it cannot.
    const chatFormatter = await ChatFormatter.create(tokenizer, { template: opts.chatTemplate }).catch(
      (err) => {
        if (opts.chatTemplate !== undefined) throw err;
        return null;
      },
    );
    signal?.throwIfAborted();
    const model = await openModel(modelPath);
    // From here on a failure closes the checkpoint (and frees the backend once there is one).
    let backends: Backend[] = [];
    try {
      assertTokenizerFitsModel(tokenizer, model.config, chatFormatter?.name ?? null);
      signal?.throwIfAborted();
      const choice = opts.backend ?? "auto";
      const replicas = opts.dataParallelSize ?? 1;
      if (typeof choice !== "string" && replicas !== 1)
        throw new Error(
          `dataParallelSize ${replicas} needs a backend name: one Backend instance serves one replica`,
        );
      if (typeof choice !== "string" && (opts.tensorParallelSize ?? 1) !== 1)
        throw new Error(
          `tensorParallelSize ${opts.tensorParallelSize} needs a backend name; a Backend instance is already ` +
            "built (new CpuBackend({ tensorParallelSize }) takes it)",
        );
      backends =
        typeof choice === "string"
          ? await createReplicaBackends(choice, replicas, {
              onFallback: opts.onBackendFallback,
              tensorParallelSize: opts.tensorParallelSize,
              chainedSteps: opts.asyncScheduling,
            })
          : [choice];
      signal?.throwIfAborted();
      const engines: Engine[] = [];
      for (const backend of backends) engines.push(await LLM.createEngine(model, backend, tokenizer, opts));
      const engine = engines.length === 1 ? engines[0] : new ReplicaRouter(engines);
      return new LLM(engine, tokenizer, chatFormatter, model, modelPath);
    } catch (err) {
      for (const backend of backends) await backend.dispose().catch(() => {});
      await model.checkpoint.close().catch(() => {});
      throw err;
    }
  }

  private static createEngine(
    model: ModelSource,
    backend: Backend,
    tokenizer: Tokenizer,
    opts: LLMLoadOptions,
  ): Promise<Engine> {
    return Engine.create({
      model,
      backend,
      tokenizer,
      maxModelLen: opts.maxModelLen,
      maxNumSeqs: opts.maxNumSeqs,
      maxNumBatchedTokens: opts.maxNumBatchedTokens,
      usageContext: opts.usageContext,
      kvReserveTokens: opts.kvReserveTokens,
      enablePrefixCaching: opts.enablePrefixCaching,
      asyncScheduling: opts.asyncScheduling,
      numBlocks: opts.numBlocks,
      kvCacheBytes: opts.kvCacheBytes,
      gpuMemoryUtilization: opts.gpuMemoryUtilization,
      kvCacheDtype: opts.kvCacheDtype,
      onLoadProgress: opts.onLoadProgress,
      loadSignal: opts.loadSignal,
    });
  }

  /** Raw text -> ids: special tokens written in the text are parsed, one BOS is added. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** A conversation -> prompt ids, through the chat template. */
  applyChatTemplate(messages: ChatMessage[], tools?: ToolFunction[]): number[] {
    if (this.chatFormatter === null) {
      throw new InvalidParamError(
        "messages",
        `the model in ${this.modelPath} has no chat format; pass chatTemplate`,
      );
    }
    return this.chatFormatter.apply(messages, { addGenerationPrompt: true, tools }).tokenIds;
  }

  /**
   * Generates for one prompt or several (text, or token ids), all batched together. With params.n > 1 each
   * prompt gets n completions, back to back in the result.
   */
  async generate(
    prompts: string | string[] | number[] | number[][],
    options: GenerateParams = {},
    opts: CallOptions = {},
  ): Promise<GenerateResult[]> {
    this.checkOpen();
    const constraint = constraintFromOptions(options, invalid);
    // Only a constrained request waits (for its compile) before it is queued.
    if (constraint !== null) await this.compile(constraint);
    const params = engineParams(options, constraint);
    const list = normalizePrompts(prompts).map((p) => (typeof p === "string" ? this.encode(p) : p));
    const { n } = resolveSamplingParams(params, { vocabSize: this.tokenizer.vocabSize });
    // One signal for the whole batch: if one prompt is rejected, the others already queued stop too.
    const batch = new AbortController();
    const onAbort = () => batch.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) batch.abort();
    const runs: Promise<GenerateResult>[] = [];
    try {
      for (const promptTokenIds of list) {
        for (let i = 0; i < n; i++) {
          runs.push(this.run(promptTokenIds, choiceParams(params, i), { signal: batch.signal }));
        }
      }
      return await Promise.all(runs);
    } catch (err) {
      batch.abort();
      await Promise.allSettled(runs);
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Replies to one conversation. */
  async chat(
    messages: ChatMessage[],
    options: ChatParams = {},
    opts: CallOptions = {},
  ): Promise<GenerateResult> {
    const { promptTokenIds, params, parseTools, constraint } = this.chatRequest(messages, options);
    if (constraint !== null) await this.compile(constraint);
    const result = await this.run(promptTokenIds, { ...params, n: 1 }, opts);
    if (!parseTools) return result;
    const { content, calls } = parseToolCalls(result.text);
    return calls.length > 0 ? { ...result, text: content, toolCalls: calls } : result;
  }

  /** Streams the outputs of one request as steps produce them; breaking out of the loop aborts it. */
  async *stream(
    input: StreamInput,
    options: ChatParams = {},
    opts: CallOptions = {},
  ): AsyncGenerator<RequestOutput> {
    this.checkOpen();
    // With tools, the text streams as the model writes it: calls appear in their <tool_call> envelope
    // (parseToolCalls / ToolCallStream of structured/tool-format.ts split them out).
    const { promptTokenIds, params, constraint } =
      typeof input === "object" && !Array.isArray(input)
        ? this.chatRequest(input.messages, options)
        : this.plainRequest(input, options);
    if (constraint !== null) await this.compile(constraint);
    yield* this.engine.generate({ promptTokenIds, params: { ...params, n: 1 }, signal: opts.signal });
  }

  /** A conversation with its tools -> prompt ids, params, and the constraint to compile first. */
  private chatRequest(messages: ChatMessage[], options: ChatParams) {
    const plan = toolPlanFromOptions(options, invalid);
    const format = constraintFromOptions(options, invalid);
    if (plan?.constraint && format !== null) {
      invalid("responseFormat / structuredOutputs cannot be combined with tools", "responseFormat");
    }
    const constraint = plan?.constraint ?? format;
    const promptTokenIds = this.applyChatTemplate(messages, plan?.tools);
    return {
      promptTokenIds,
      params: engineParams(options, constraint),
      parseTools: plan?.parse ?? false,
      constraint,
    };
  }

  private plainRequest(input: string | number[], options: ChatParams) {
    const constraint = constraintFromOptions(options, invalid);
    return {
      promptTokenIds: this.inputTokenIds(input),
      params: engineParams(options, constraint),
      constraint,
    };
  }

  /** Compiles a constraint (cached) before its request is queued: InvalidParamError when it cannot be. */
  private async compile(c: FieldConstraint): Promise<void> {
    try {
      await this.engine.compileStructuredOutput(c.spec);
    } catch (err) {
      if (err instanceof GrammarError) invalid(`invalid ${c.param}: ${err.message}`, c.param);
      throw err;
    }
  }

  /**
   * Beam search for one prompt (vLLM's use_beam_search): beamWidth sequences, best first. EOS is the
   * engine's stop set (tokenizer stop ids and config eos ids) unless params.eosTokenIds says otherwise.
   */
  async beamSearch(
    input: StreamInput,
    params: Omit<BeamSearchParams, "eosTokenIds"> & { eosTokenIds?: readonly number[] },
    opts: CallOptions = {},
  ): Promise<BeamSearchResult> {
    this.checkOpen();
    const promptTokenIds = this.inputTokenIds(input);
    if (promptTokenIds.length + params.maxTokens > this.engine.maxModelLen) {
      throw new InvalidParamError(
        "max_tokens",
        `the prompt (${promptTokenIds.length} tokens) plus max_tokens (${params.maxTokens}) exceeds the ` +
          `model's context of ${this.engine.maxModelLen} tokens (max-model-len)`,
      );
    }
    const eosTokenIds = params.eosTokenIds ?? this.engine.eosTokenIds;
    return beamSearch(this.engine, this.tokenizer, promptTokenIds, { ...params, eosTokenIds }, opts.signal);
  }

  /** Aborts whatever runs, frees the backend (weights, KV cache) and closes the checkpoint. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.engine.shutdown({ graceMs: 0 });
    const replicas = this.engine instanceof ReplicaRouter ? this.engine.replicas : [this.engine];
    for (const replica of replicas) await replica.backend.dispose();
    await this.model.checkpoint.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  private inputTokenIds(input: StreamInput): number[] {
    if (typeof input === "string") return this.encode(input);
    if (Array.isArray(input)) return input;
    return this.applyChatTemplate(input.messages);
  }

  private async run(
    promptTokenIds: number[],
    params: SamplingParams,
    opts: CallOptions,
  ): Promise<GenerateResult> {
    this.checkOpen();
    let text = "";
    const tokenIds: number[] = [];
    const logprobs: TokenLogprob[] = [];
    let promptLogprobs: (TokenLogprob | null)[] | undefined;
    for await (const out of this.engine.generate({ promptTokenIds, params, signal: opts.signal })) {
      text += out.textDelta;
      tokenIds.push(...out.tokenIdsDelta);
      logprobs.push(...out.logprobsDelta);
      if (out.promptLogprobs) promptLogprobs = out.promptLogprobs;
      if (!out.finished) continue;
      const result: GenerateResult = {
        text,
        tokenIds,
        promptTokenIds,
        finishReason: out.finishReason ?? "error",
        stopReason: out.stopReason,
        usage: {
          promptTokens: out.promptTokens,
          completionTokens: out.completionTokens,
          totalTokens: out.promptTokens + out.completionTokens,
          cachedTokens: out.cachedTokens,
        },
      };
      if (params.logprobs !== undefined && params.logprobs !== null) result.logprobs = logprobs;
      if (promptLogprobs) result.promptLogprobs = promptLogprobs;
      if (out.error !== undefined) result.error = out.error;
      return result;
    }
    throw new Error("the engine ended a request without a final output");
  }

  private checkOpen(): void {
    if (this.disposed) throw new Error("this LLM was disposed");
  }
}

function normalizePrompts(prompts: string | string[] | number[] | number[][]): (string | number[])[] {
  if (typeof prompts === "string") return [prompts];
  if (!Array.isArray(prompts) || prompts.length === 0) {
    throw new InvalidParamError("prompt", "prompts must be a string, a list of strings, or token id lists");
  }
  if (prompts.every((p) => typeof p === "number")) return [prompts as number[]];
  return prompts as (string | number[])[];
}

/** The engine's params: the library-only fields dropped, the constraint set. */
function engineParams(options: ChatParams, c: FieldConstraint | null): SamplingParams {
  const { responseFormat, structuredOutputs, tools, toolChoice, parallelToolCalls, ...params } = options;
  void [responseFormat, structuredOutputs, tools, toolChoice, parallelToolCalls];
  return c === null ? params : { ...params, structuredOutput: c.spec };
}
