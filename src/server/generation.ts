/**
 * One HTTP request's engine work: n choices (n per prompt) submitted to the engine at once, their outputs
 * merged into one stream of events in arrival order, timings and token counts kept for usage, metrics and
 * the request log. abort() (client gone, shutdown) aborts every choice so its KV blocks go back at once.
 */
import { setMaxListeners } from "node:events";
import type { EngineClient, FinishReason, RequestOutput, SamplingParams } from "../engine/types.js";
import type { FinishedRequestSample } from "./metrics.js";

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

type QueueItem = ChoiceEvent | { index: number; error: unknown };

/** Per-choice bookkeeping. */
interface ChoiceState {
  requestId: string;
  promptIndex: number;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  firstTokenAt: number | null;
  finishReason: FinishReason | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export class GenerationJob {
  private readonly controller = new AbortController();
  private readonly queue: QueueItem[] = [];
  private wake: (() => void) | null = null;
  private running: number;
  private readonly choices: ChoiceState[];
  private readonly startedAt = performance.now();

  constructor(
    private readonly engine: EngineClient,
    requestId: string,
    requests: ChoiceRequest[],
    private readonly onChoiceFinished: (sample: FinishedRequestSample) => void,
  ) {
    // Every choice listens on the one signal; many choices are normal, not a leak.
    setMaxListeners(0, this.controller.signal);
    this.running = requests.length;
    this.choices = requests.map((req, index) => ({
      requestId: requests.length === 1 ? requestId : `${requestId}-${index}`,
      promptIndex: req.promptIndex,
      promptTokens: req.promptTokenIds.length,
      cachedTokens: 0,
      completionTokens: 0,
      firstTokenAt: null,
      finishReason: null,
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
      this.wake?.();
    }
  }

  private record(state: ChoiceState, output: RequestOutput | null): void {
    const now = performance.now();
    if (output) {
      state.promptTokens = output.promptTokens;
      state.cachedTokens = output.cachedTokens;
      state.completionTokens = output.completionTokens;
      if (state.firstTokenAt === null && output.tokenIdsDelta.length > 0) state.firstTokenAt = now;
      if (!output.finished) return;
    }
    state.finishReason = output?.finishReason ?? (this.controller.signal.aborted ? "abort" : "error");
    this.onChoiceFinished({
      promptTokens: state.promptTokens,
      completionTokens: state.completionTokens,
      finishReason: state.finishReason,
      timeToFirstToken: state.firstTokenAt === null ? null : (state.firstTokenAt - this.startedAt) / 1000,
      e2eLatency: (now - this.startedAt) / 1000,
    });
  }

  private push(item: QueueItem): void {
    this.queue.push(item);
    this.wake?.();
  }

  /** Outputs of every choice in the order the engine produced them. Throws the first engine error. */
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

  /** Fields for the request's log line. */
  logFields(): Record<string, unknown> {
    const firstTokens = this.choices.map((c) => c.firstTokenAt).filter((t): t is number => t !== null);
    const usage = this.usage();
    return {
      engineRequestIds: this.choices.map((c) => c.requestId),
      promptTokens: usage.prompt_tokens,
      cachedTokens: usage.prompt_tokens_details.cached_tokens,
      completionTokens: usage.completion_tokens,
      ttftMs: firstTokens.length ? Math.round(Math.min(...firstTokens) - this.startedAt) : null,
      finishReasons: this.choices.map((c) => c.finishReason),
    };
  }
}
