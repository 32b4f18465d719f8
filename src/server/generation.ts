/**
 * One HTTP request's engine work: n choices (n per prompt) submitted to the engine at once, their outputs
 * merged into one stream of events in arrival order, timings and token counts kept for usage, metrics and
 * the request log. abort() (client gone, shutdown) aborts every choice so its KV blocks go back at once.
 */
import { setMaxListeners } from "node:events";
import type { EngineClient, FinishReason, RequestOutput, SamplingParams } from "../engine/types.js";
import type { FinishedRequestSample, RequestGroupSample } from "./metrics.js";

export interface ChoiceRequest {
  promptTokenIds: number[];
  params: SamplingParams;
  /** Which prompt this choice answers (usage counts each prompt once however many choices it has). */
  promptIndex: number;
}

export interface ChoiceEvent {
  index: number;
  output: RequestOutput;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/**
 * What the response builders read, whether the choices come from sampling (GenerationJob) or a beam search
 * (BeamSearchJob): outputs by choice index, the usage, an abort.
 */
export interface ChoiceSource {
  /** Outputs of every choice, in the order they were produced. Throws the first engine error. */
  events(): AsyncGenerator<ChoiceEvent>;
  usage(): Usage;
  abort(): void;
  /** Fields for the request's log line. */
  logFields(): Record<string, unknown>;
}

/** Where a job's measurements go (the server's metrics). */
export interface JobObserver {
  choiceFinished(sample: FinishedRequestSample): void;
  /** `engine`: the replica that produced the tokens (data parallelism; default 0). */
  tokenInterval(seconds: number, tokens: number, engine?: number): void;
  groupFinished(sample: RequestGroupSample): void;
}

type QueueItem = ChoiceEvent | { index: number; error: unknown };

/** Per-choice bookkeeping; times are performance.now() milliseconds. */
interface ChoiceState {
  requestId: string;
  promptIndex: number;
  maxTokens: number | null;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  submittedAt: number;
  scheduledAt: number | null;
  firstTokenAt: number | null;
  lastTokenAt: number | null;
  finishReason: FinishReason | null;
  /** The replica running it (RequestOutput.engineIndex; 0 with one engine). */
  engineIndex: number;
}

export class GenerationJob implements ChoiceSource {
  private readonly controller = new AbortController();
  private readonly queue: QueueItem[] = [];
  private wake: (() => void) | null = null;
  private running: number;
  private readonly choices: ChoiceState[];

  /** `arrivedAt`: performance.now() of the HTTP request's arrival (time to first token counts from it). */
  constructor(
    private readonly engine: EngineClient,
    requestId: string,
    requests: ChoiceRequest[],
    private readonly observer: JobObserver,
    private readonly arrivedAt: number = performance.now(),
  ) {
    // Every choice listens on the one signal; many choices are normal, not a leak.
    setMaxListeners(0, this.controller.signal);
    this.running = requests.length;
    const submittedAt = performance.now();
    this.choices = requests.map((req, index) => ({
      requestId: requests.length === 1 ? requestId : `${requestId}-${index}`,
      promptIndex: req.promptIndex,
      maxTokens: req.params.maxTokens ?? null,
      promptTokens: req.promptTokenIds.length,
      cachedTokens: 0,
      completionTokens: 0,
      submittedAt,
      scheduledAt: null,
      firstTokenAt: null,
      lastTokenAt: null,
      finishReason: null,
      engineIndex: 0,
    }));
    // Submit every choice now, synchronously, so the engine's queue counts them at once and a refusal
    // (invalid params, engine closed) is thrown to the route before any response has started.
    const streams: AsyncIterable<RequestOutput>[] = [];
    try {
      requests.forEach((req, index) => {
        streams.push(
          engine.generate({
            requestId: this.choices[index]!.requestId,
            promptTokenIds: req.promptTokenIds,
            params: req.params,
            signal: this.controller.signal,
          }),
        );
      });
    } catch (err) {
      this.controller.abort();
      for (let i = 0; i < streams.length; i++) engine.abort(this.choices[i]!.requestId);
      throw err;
    }
    streams.forEach((stream, index) => {
      void this.pump(index, stream);
    });
  }

  private async pump(index: number, outputs: AsyncIterable<RequestOutput>): Promise<void> {
    const state = this.choices[index]!;
    try {
      for await (const output of outputs) {
        this.record(state, output);
        this.push({ index, output });
      }
    } catch (error) {
      this.push({ index, error });
    } finally {
      if (state.finishReason === null) this.record(state, null);
      this.running--;
      if (this.running === 0) this.observeGroups();
      this.wake?.();
    }
  }

  private record(state: ChoiceState, output: RequestOutput | null): void {
    const now = performance.now();
    if (output) {
      state.promptTokens = output.promptTokens;
      state.cachedTokens = output.cachedTokens;
      state.completionTokens = output.completionTokens;
      if (output.scheduledAt !== undefined) state.scheduledAt = output.scheduledAt;
      if (output.engineIndex !== undefined) state.engineIndex = output.engineIndex;
      const tokens = output.tokenIdsDelta.length;
      if (tokens > 0) {
        if (state.lastTokenAt !== null)
          this.observer.tokenInterval((now - state.lastTokenAt) / 1000, tokens, state.engineIndex);
        state.firstTokenAt ??= now;
        state.lastTokenAt = now;
      }
      if (!output.finished) return;
    }
    state.finishReason = output?.finishReason ?? (this.controller.signal.aborted ? "abort" : "error");
    this.observer.choiceFinished(finishedSample(state, this.arrivedAt, now));
  }

  /** Once every choice is done: each prompt's n, max_tokens and longest output (vLLM's request params). */
  private observeGroups(): void {
    const groups = new Map<number, RequestGroupSample>();
    for (const choice of this.choices) {
      const group = groups.get(choice.promptIndex);
      if (group === undefined) {
        groups.set(choice.promptIndex, {
          n: 1,
          maxTokens: choice.maxTokens,
          maxGenerationTokens: choice.completionTokens,
          engine: choice.engineIndex,
        });
      } else {
        group.n++;
        group.maxGenerationTokens = Math.max(group.maxGenerationTokens, choice.completionTokens);
      }
    }
    for (const group of groups.values()) this.observer.groupFinished(group);
  }

  private push(item: QueueItem): void {
    this.queue.push(item);
    this.wake?.();
  }

  async *events(): AsyncGenerator<ChoiceEvent> {
    try {
      while (true) {
        const item = this.queue.shift();
        if (item) {
          if ("error" in item) throw item.error;
          yield item;
          continue;
        }
        if (this.running === 0) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
      }
    } finally {
      // The reader stopped early (error, disconnect): nothing may keep running for it.
      if (this.running > 0) this.abort();
    }
  }

  abort(): void {
    if (!this.controller.signal.aborted) this.controller.abort();
    for (const choice of this.choices) if (choice.finishReason === null) this.engine.abort(choice.requestId);
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  usage(): Usage {
    const promptSeen = new Set<number>();
    let promptTokens = 0;
    let cachedTokens = 0;
    let completionTokens = 0;
    for (const choice of this.choices) {
      completionTokens += choice.completionTokens;
      if (promptSeen.has(choice.promptIndex)) continue;
      promptSeen.add(choice.promptIndex);
      promptTokens += choice.promptTokens;
      cachedTokens += choice.cachedTokens;
    }
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: cachedTokens },
    };
  }

  logFields(): Record<string, unknown> {
    const firstTokens = this.choices.map((c) => c.firstTokenAt).filter((t): t is number => t !== null);
    const usage = this.usage();
    return {
      engineRequestIds: this.choices.map((c) => c.requestId),
      promptTokens: usage.prompt_tokens,
      cachedTokens: usage.prompt_tokens_details.cached_tokens,
      completionTokens: usage.completion_tokens,
      ttftMs: firstTokens.length ? Math.round(Math.min(...firstTokens) - this.arrivedAt) : null,
      finishReasons: this.choices.map((c) => c.finishReason),
    };
  }
}

/** A finished choice's metrics sample (seconds). */
function finishedSample(state: ChoiceState, arrivedAt: number, now: number): FinishedRequestSample {
  const seconds = (from: number | null, to: number | null) =>
    from === null || to === null ? null : Math.max(0, to - from) / 1000;
  return {
    promptTokens: state.promptTokens,
    completionTokens: state.completionTokens,
    finishReason: state.finishReason ?? "error",
    timeToFirstToken: seconds(arrivedAt, state.firstTokenAt),
    e2eLatency: (now - arrivedAt) / 1000,
    queueTime: seconds(state.submittedAt, state.scheduledAt),
    prefillTime: seconds(state.scheduledAt, state.firstTokenAt),
    decodeTime: seconds(state.firstTokenAt, state.lastTokenAt),
    inferenceTime: seconds(state.scheduledAt, state.lastTokenAt),
    engine: state.engineIndex,
  };
}
