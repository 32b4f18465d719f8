/**
 * Beam search on top of the engine (as vLLM's OpenAI server does it, not inside the scheduler): each step
 * every live beam becomes a one-token request asking for its top 2 * width logprobs; all of a step's requests
 * are submitted together, so they run in one continuous batch and share the prompt's KV blocks through the
 * prefix cache. Candidates are ranked by cumulative logprob; a candidate ending in EOS joins the finished
 * list, the best `width` others live on. At the end finished and live beams are ranked by
 * cum_logprob / length^length_penalty, where length counts the prompt and the output without a final EOS.
 */
import { InvalidParamError, MAX_LOGPROBS } from "./sampling-params.js";
import type { EngineClient, RequestOutput, TokenLogprob } from "./types.js";

export interface BeamSearchParams {
  /** Beams kept each step, and sequences returned (the API's `n`). */
  beamWidth: number;
  /** Steps at most (tokens generated per sequence, an EOS included). */
  maxTokens: number;
  /** Exponent of the length in the final score (default 1). */
  lengthPenalty?: number;
  /** Tokens that end a beam (the engine's EOS set: the tokenizer's stop ids and config eos ids). */
  eosTokenIds: readonly number[];
  /** EOS is then an ordinary token and ends nothing. */
  ignoreEos?: boolean;
  /** Keep the ending EOS in the sequence's tokenIds (its text never shows it). */
  includeStopStrInOutput?: boolean;
  /**
   * Accepted for vLLM compatibility (>= 0). Like vLLM v1 (raw logprobs by default), the scores use the
   * model's raw logprobs, which temperature does not change.
   */
  temperature?: number;
  /** Keep each token's logprob and its top N alternatives in the result (N = 0: the token's only). */
  logprobs?: number;
  /** Decode without special tokens (default true). */
  skipSpecialTokens?: boolean;
}

export interface BeamSequence {
  /** Generated token ids (not the prompt's). */
  tokenIds: number[];
  text: string;
  cumulativeLogprob: number;
  /** cumulativeLogprob / length^lengthPenalty: what the sequences are sorted by. */
  score: number;
  finishReason: "stop" | "length";
  /** The EOS token id that ended it, for finishReason "stop". */
  stopReason: number | null;
  /** One entry per token of tokenIds, when params.logprobs was set. */
  logprobs?: TokenLogprob[];
}

export interface BeamSearchResult {
  /** Best first; at most beamWidth. */
  sequences: BeamSequence[];
  promptTokens: number;
  /** Prompt tokens of the first step that came from the prefix cache. */
  cachedTokens: number;
}

/** Decoding ids to text (the engine's tokenizer). */
export interface BeamDecoder {
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
}

interface Beam {
  tokenIds: number[];
  cumulativeLogprob: number;
  entries: TokenLogprob[];
  finishReason: "stop" | "length";
  stopReason: number | null;
}

/** Checks the params; InvalidParamError names the API field (n is the beam width). */
export function checkBeamSearchParams(params: BeamSearchParams): void {
  const { beamWidth, maxTokens } = params;
  if (!Number.isInteger(beamWidth) || beamWidth < 1) {
    throw new InvalidParamError("n", `n (the beam width) must be a positive integer, got ${beamWidth}`);
  }
  if (2 * beamWidth > MAX_LOGPROBS) {
    throw new InvalidParamError(
      "n",
      `beam search with n = ${beamWidth} needs the top ${2 * beamWidth} logprobs per step, but at most ` +
        `${MAX_LOGPROBS} are available; use n <= ${MAX_LOGPROBS / 2}`,
    );
  }
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new InvalidParamError("max_tokens", `max_tokens must be a positive integer, got ${maxTokens}`);
  }
  const lengthPenalty = params.lengthPenalty ?? 1;
  if (typeof lengthPenalty !== "number" || !Number.isFinite(lengthPenalty)) {
    throw new InvalidParamError(
      "length_penalty",
      `length_penalty must be a finite number, got ${lengthPenalty}`,
    );
  }
  const temperature = params.temperature ?? 0;
  if (typeof temperature !== "number" || !(temperature >= 0)) {
    throw new InvalidParamError("temperature", `temperature must be at least 0, got ${temperature}`);
  }
  const logprobs = params.logprobs;
  if (logprobs !== undefined && (!Number.isInteger(logprobs) || logprobs < 0 || logprobs > MAX_LOGPROBS)) {
    throw new InvalidParamError(
      "logprobs",
      `logprobs must be an integer in 0..${MAX_LOGPROBS}, got ${logprobs}`,
    );
  }
}

/**
 * The final ranking score (vLLM's get_beam_search_score, after Hugging Face's): the length is the whole
 * sequence, prompt included, less a final EOS.
 */
export function beamScore(
  promptLength: number,
  outputTokenIds: readonly number[],
  cumulativeLogprob: number,
  eosTokenIds: ReadonlySet<number>,
  lengthPenalty: number,
  lastPromptToken: number | null = null,
): number {
  let length = promptLength + outputTokenIds.length;
  const last = outputTokenIds.length > 0 ? outputTokenIds[outputTokenIds.length - 1]! : lastPromptToken;
  if (last !== null && eosTokenIds.has(last)) length -= 1;
  return cumulativeLogprob / Math.max(length, 1) ** lengthPenalty;
}

/** An aborted beam search rejects with this (name "AbortError", as other aborted async work). */
export class BeamSearchAbortedError extends Error {
  override name = "AbortError";
}

/**
 * Runs a beam search for one prompt. Rejects with InvalidParamError for bad params (before any work),
 * BeamSearchAbortedError when `signal` aborts, and an Error when the engine fails a step.
 */
export async function beamSearch(
  engine: EngineClient,
  decoder: BeamDecoder,
  promptTokenIds: readonly number[],
  params: BeamSearchParams,
  signal?: AbortSignal,
): Promise<BeamSearchResult> {
  checkBeamSearchParams(params);
  const width = params.beamWidth;
  const eos = new Set(params.eosTokenIds);
  const ignoreEos = params.ignoreEos ?? false;
  const lengthPenalty = params.lengthPenalty ?? 1;
  const candidatesPerBeam = 2 * width;
  // Ask for enough alternatives to rank candidates and to report what the caller wants.
  const stepParams = {
    temperature: 0,
    maxTokens: 1,
    logprobs: Math.max(candidatesPerBeam, params.logprobs ?? 0),
    skipSpecialTokens: params.skipSpecialTokens ?? true,
  };
  let live: Beam[] = [
    { tokenIds: [], cumulativeLogprob: 0, entries: [], finishReason: "length", stopReason: null },
  ];
  const finished: Beam[] = [];
  let cachedTokens = 0;

  for (let step = 0; step < params.maxTokens && live.length > 0; step++) {
    if (signal?.aborted) throw new BeamSearchAbortedError("beam search aborted");
    const outputs = await runStep(engine, promptTokenIds, live, stepParams, signal);
    if (step === 0) cachedTokens = outputs[0]!.cachedTokens;
    const candidates: { beam: Beam; entry: TokenLogprob; cumulativeLogprob: number }[] = [];
    outputs.forEach((output, i) => {
      const beam = live[i]!;
      const sampled = output.logprobsDelta[0];
      if (sampled === undefined) throw new Error("beam search: the engine returned no logprobs for a step");
      for (const alternative of sampled.top.slice(0, candidatesPerBeam)) {
        const entry: TokenLogprob = {
          tokenId: alternative.tokenId,
          logprob: alternative.logprob,
          top: sampled.top,
        };
        const cumulativeLogprob = beam.cumulativeLogprob + alternative.logprob;
        if (eos.has(alternative.tokenId) && !ignoreEos) {
          const keep = params.includeStopStrInOutput ?? false;
          finished.push({
            tokenIds: keep ? [...beam.tokenIds, alternative.tokenId] : beam.tokenIds,
            entries: keep ? [...beam.entries, entry] : beam.entries,
            cumulativeLogprob,
            finishReason: "stop",
            stopReason: alternative.tokenId,
          });
        } else {
          candidates.push({ beam, entry, cumulativeLogprob });
        }
      }
    });
    // Stable sort: ties keep beam order, then the engine's (best first, lowest id first) order.
    candidates.sort((a, b) => b.cumulativeLogprob - a.cumulativeLogprob);
    live = candidates.slice(0, width).map(({ beam, entry, cumulativeLogprob }) => ({
      tokenIds: [...beam.tokenIds, entry.tokenId],
      entries: [...beam.entries, entry],
      cumulativeLogprob,
      finishReason: "length",
      stopReason: null,
    }));
  }

  const lastPromptToken = promptTokenIds[promptTokenIds.length - 1] ?? null;
  const scored = [...finished, ...live].map((beam) => ({
    beam,
    score: beamScore(
      promptTokenIds.length,
      beam.tokenIds,
      beam.cumulativeLogprob,
      eos,
      lengthPenalty,
      lastPromptToken,
    ),
  }));
  scored.sort((a, b) => b.score - a.score);
  const sequences = scored.slice(0, width).map(({ beam, score }) => {
    // A kept EOS stays in tokenIds but not in the text (as for any stop token).
    const endsWithEos =
      beam.finishReason === "stop" && beam.tokenIds.length > 0 && eos.has(beam.tokenIds.at(-1)!);
    const textIds = endsWithEos ? beam.tokenIds.slice(0, -1) : beam.tokenIds;
    const sequence: BeamSequence = {
      tokenIds: beam.tokenIds,
      text: decoder.decode(textIds, { skipSpecialTokens: params.skipSpecialTokens ?? true }),
      cumulativeLogprob: beam.cumulativeLogprob,
      score,
      finishReason: beam.finishReason,
      stopReason: beam.stopReason,
    };
    if (params.logprobs !== undefined) {
      const topN = params.logprobs;
      sequence.logprobs = beam.entries.map((e) => ({ ...e, top: e.top.slice(0, topN) }));
    }
    return sequence;
  });
  return { sequences, promptTokens: promptTokenIds.length, cachedTokens };
}

/**
 * One step: a one-token request per live beam, all submitted before any is awaited (one batch, shared
 * prefix blocks). Any failure aborts the step's other requests.
 */
async function runStep(
  engine: EngineClient,
  promptTokenIds: readonly number[],
  beams: readonly Beam[],
  params: { temperature: number; maxTokens: number; logprobs: number; skipSpecialTokens: boolean },
  signal: AbortSignal | undefined,
): Promise<RequestOutput[]> {
  const step = new AbortController();
  const onAbort = () => step.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const streams = beams.map((beam) =>
      engine.generate({
        promptTokenIds: [...promptTokenIds, ...beam.tokenIds],
        params,
        signal: step.signal,
      }),
    );
    const outputs = await Promise.all(streams.map(lastOutput));
    for (const output of outputs) {
      if (output.finishReason === "abort") throw new BeamSearchAbortedError("beam search aborted");
      if (output.finishReason === "error") {
        throw new Error(`beam search step failed: ${output.error ?? "unknown engine error"}`);
      }
    }
    return outputs;
  } catch (err) {
    step.abort();
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

async function lastOutput(stream: AsyncIterable<RequestOutput>): Promise<RequestOutput> {
  let last: RequestOutput | null = null;
  for await (const output of stream) last = output;
  if (last === null) throw new Error("beam search: the engine ended a request without output");
  return last;
}
