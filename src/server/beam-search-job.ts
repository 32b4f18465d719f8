/**
 * One HTTP request's beam searches (`use_beam_search: true`, vLLM's extra parameter): one search per prompt,
 * all running at once on the engine, each returning n sequences best first. Seen by the routes like a
 * GenerationJob whose choices each finish in one output (index = prompt * n + rank), so the completions and
 * chat response builders serve both. Beam search answers only at the end, as in vLLM.
 */
import {
  type BeamSearchParams,
  type BeamSearchResult,
  beamSearch,
  checkBeamSearchParams,
} from "../engine/beam-search.js";
import { InvalidParamError } from "../engine/sampling-params.js";
import type { RequestOutput } from "../engine/types.js";
import type { ServerContext } from "./context.js";
import { badRequest } from "./errors.js";
import type { ChoiceEvent, ChoiceSource, Usage } from "./generation.js";

/** The beam search fields of a request body (beyond n, max_tokens and the usual flags). */
export interface BeamSearchBody {
  use_beam_search?: boolean | null;
  length_penalty?: number | null;
  temperature?: number | null;
  ignore_eos?: boolean | null;
  include_stop_str_in_output?: boolean | null;
  skip_special_tokens?: boolean | null;
}

export interface BeamSearchPrompt {
  promptTokenIds: number[];
  /** Steps at most for this prompt (max_tokens settled against the context). */
  maxTokens: number;
}

/**
 * The search params of one prompt, checked now so a bad value is a 400 naming the field before any work.
 * `logprobs`: top-N alternatives per token to report (null: none).
 */
export function beamSearchParams(
  ctx: ServerContext,
  body: BeamSearchBody,
  n: number,
  maxTokens: number,
  logprobs: number | null,
): BeamSearchParams {
  const params: BeamSearchParams = {
    beamWidth: n,
    maxTokens,
    lengthPenalty: body.length_penalty ?? 1,
    eosTokenIds: ctx.engine.eosTokenIds ?? ctx.tokenizer.stopTokenIds,
    ignoreEos: body.ignore_eos ?? false,
    includeStopStrInOutput: body.include_stop_str_in_output ?? false,
    temperature: body.temperature ?? 1,
    skipSpecialTokens: body.skip_special_tokens ?? true,
  };
  if (logprobs !== null) params.logprobs = logprobs;
  try {
    checkBeamSearchParams(params);
  } catch (err) {
    if (err instanceof InvalidParamError) throw badRequest(err.message, err.param);
    throw err;
  }
  return params;
}

export class BeamSearchJob implements ChoiceSource {
  private readonly controller = new AbortController();
  private readonly results: Promise<BeamSearchResult[]>;
  private settled: BeamSearchResult[] | null = null;
  private readonly startedAt = performance.now();

  /** `arrivedAt`: performance.now() of the HTTP request's arrival (latencies count from it). */
  constructor(
    private readonly ctx: ServerContext,
    prompts: readonly BeamSearchPrompt[],
    private readonly params: Omit<BeamSearchParams, "maxTokens">,
    private readonly arrivedAt: number = performance.now(),
  ) {
    this.results = Promise.all(
      prompts.map((prompt) =>
        beamSearch(
          ctx.engine,
          ctx.tokenizer,
          prompt.promptTokenIds,
          { ...params, maxTokens: prompt.maxTokens },
          this.controller.signal,
        ),
      ),
    ).then((results) => {
      this.settled = results;
      this.observe(results, prompts);
      return results;
    });
    // Read through events(); this only keeps an abandoned job from an unhandled rejection.
    this.results.catch(() => {});
  }

  /** Every choice's one finished output, prompt by prompt, best first within a prompt. */
  async *events(): AsyncGenerator<ChoiceEvent> {
    const results = await this.results;
    const width = this.params.beamWidth;
    for (const [promptIndex, result] of results.entries()) {
      for (const [rank, sequence] of result.sequences.entries()) {
        const output: RequestOutput = {
          requestId: `beam-${promptIndex}-${rank}`,
          textDelta: sequence.text,
          tokenIdsDelta: sequence.tokenIds,
          logprobsDelta: sequence.logprobs ?? [],
          finished: true,
          finishReason: sequence.finishReason,
          stopReason: sequence.stopReason,
          promptTokens: result.promptTokens,
          cachedTokens: result.cachedTokens,
          completionTokens: sequence.tokenIds.length,
        };
        yield { index: promptIndex * width + rank, output };
      }
    }
  }

  abort(): void {
    this.controller.abort();
  }

  /** As vLLM: each prompt once, the tokens of every returned sequence. */
  usage(): Usage {
    let promptTokens = 0;
    let cachedTokens = 0;
    let completionTokens = 0;
    for (const result of this.settled ?? []) {
      promptTokens += result.promptTokens;
      cachedTokens += result.cachedTokens;
      for (const sequence of result.sequences) completionTokens += sequence.tokenIds.length;
    }
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: cachedTokens },
    };
  }

  /** Each returned sequence as one finished choice; the whole search is its inference time (vLLM answers at the end). */
  private observe(results: BeamSearchResult[], prompts: readonly BeamSearchPrompt[]): void {
    const now = performance.now();
    const sinceArrival = (now - this.arrivedAt) / 1000;
    const searching = (now - this.startedAt) / 1000;
    results.forEach((result, promptIndex) => {
      for (const sequence of result.sequences) {
        this.ctx.metrics.choiceFinished({
          promptTokens: result.promptTokens,
          completionTokens: sequence.tokenIds.length,
          finishReason: sequence.finishReason,
          timeToFirstToken: sinceArrival,
          e2eLatency: sinceArrival,
          queueTime: null,
          prefillTime: null,
          decodeTime: null,
          inferenceTime: searching,
        });
      }
      this.ctx.metrics.groupFinished({
        n: this.params.beamWidth,
        maxTokens: prompts[promptIndex]?.maxTokens ?? null,
        maxGenerationTokens: Math.max(0, ...result.sequences.map((s) => s.tokenIds.length)),
      });
    });
  }

  logFields(): Record<string, unknown> {
    const usage = this.usage();
    return {
      beamSearch: true,
      promptTokens: usage.prompt_tokens,
      cachedTokens: usage.prompt_tokens_details.cached_tokens,
      completionTokens: usage.completion_tokens,
      finishReasons: this.settled?.flatMap((r) => r.sequences.map((s) => s.finishReason)) ?? null,
    };
  }
}
