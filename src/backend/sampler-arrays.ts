/**
 * Builds the flat SamplingArrays of a step from per-sequence settings. The one builder: the engine's model
 * runner, the perplexity evaluator, the conformance suite's step builder, tests and benchmarks all use it.
 * Defaults are "off": greedy unless a temperature is given. The engine packs every step through one
 * SamplingArraysPacker, whose typed arrays grow once and are reused (views of them go to the backend), so a
 * step allocates no per-token storage.
 */
import type { SamplingArrays } from "./backend.js";

export interface SequenceSampling {
  temperature?: number; // default 0 (greedy)
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  /** Index of the token being sampled among the sequence's outputs. */
  outputIndex?: number;
  /** -1 = none, 0 = chosen only, N = chosen + top N. */
  logprobs?: number;
  promptTokens?: ArrayLike<number>;
  outputTokens?: ArrayLike<number>;
  /** token id -> additive bias (-Infinity bans the token); entries go to the backend in the map's order. */
  logitBias?: ReadonlyMap<number, number>;
}

/**
 * Which token lists a sequence's penalties read, so only those are sent (the lists can be long): the
 * repetition penalty reads prompt and output tokens, presence and frequency penalties only output tokens.
 * Both samplers (CPU and CUDA) read nothing else, so an empty range for an unused list changes nothing.
 */
export function penaltyLists(s: SequenceSampling): { prompt: boolean; output: boolean } {
  return { prompt: readsPromptTokens(s), output: readsOutputTokens(s) };
}

function readsPromptTokens(s: SequenceSampling): boolean {
  return (s.repetitionPenalty ?? 1) !== 1;
}

function readsOutputTokens(s: SequenceSampling): boolean {
  return (
    (s.repetitionPenalty ?? 1) !== 1 || (s.presencePenalty ?? 0) !== 0 || (s.frequencyPenalty ?? 0) !== 0
  );
}

interface ViewableArray<T> {
  readonly length: number;
  subarray(begin: number, end: number): T;
}

/** Grow-only storage of one typed array: view(n) is its first n elements (old contents, to be overwritten). */
export class GrowableArray<T extends ViewableArray<T>> {
  private data: T;

  constructor(private readonly make: (length: number) => T) {
    this.data = make(0);
  }

  view(length: number): T {
    if (this.data.length < length) this.data = this.make(Math.max(length, this.data.length * 2, 64));
    return this.data.subarray(0, length);
  }
}

export const int32Array = () => new GrowableArray((n) => new Int32Array(n));
export const uint32Array = () => new GrowableArray((n) => new Uint32Array(n));
export const float32Array = () => new GrowableArray((n) => new Float32Array(n));
export const uint8Array = () => new GrowableArray((n) => new Uint8Array(n));

/**
 * Packs SamplingArrays into storage it keeps: each pack() returns views of the same buffers, so the arrays of
 * one pack are valid until the next pack() of this packer (the engine alternates two packers).
 */
export class SamplingArraysPacker {
  private readonly temperature = float32Array();
  private readonly topP = float32Array();
  private readonly topK = int32Array();
  private readonly minP = float32Array();
  private readonly repetitionPenalty = float32Array();
  private readonly presencePenalty = float32Array();
  private readonly frequencyPenalty = float32Array();
  private readonly seed = uint32Array();
  private readonly outputIndex = int32Array();
  private readonly logprobs = int32Array();
  private readonly promptStarts = int32Array();
  private readonly promptTokens = int32Array();
  private readonly outputStarts = int32Array();
  private readonly outputTokens = int32Array();
  private readonly biasStarts = int32Array();
  private readonly biasTokens = int32Array();
  private readonly biasValues = float32Array();

  /** The arrays of `items` (pick(item) is its settings). */
  pack<T>(items: readonly T[], pick: (item: T) => SequenceSampling): SamplingArrays {
    const numSeqs = items.length;
    let promptTotal = 0;
    let outputTotal = 0;
    let biasTotal = 0;
    for (let i = 0; i < numSeqs; i++) {
      const s = pick(items[i]!);
      if (readsPromptTokens(s)) promptTotal += s.promptTokens?.length ?? 0;
      if (readsOutputTokens(s)) outputTotal += s.outputTokens?.length ?? 0;
      biasTotal += s.logitBias?.size ?? 0;
    }
    const out: SamplingArrays = {
      temperature: this.temperature.view(numSeqs), // (numSeqs)
      topP: this.topP.view(numSeqs), // (numSeqs)
      topK: this.topK.view(numSeqs), // (numSeqs)
      minP: this.minP.view(numSeqs), // (numSeqs)
      repetitionPenalty: this.repetitionPenalty.view(numSeqs), // (numSeqs)
      presencePenalty: this.presencePenalty.view(numSeqs), // (numSeqs)
      frequencyPenalty: this.frequencyPenalty.view(numSeqs), // (numSeqs)
      seed: this.seed.view(numSeqs), // (numSeqs)
      outputIndex: this.outputIndex.view(numSeqs), // (numSeqs)
      logprobs: this.logprobs.view(numSeqs), // (numSeqs)
      promptStarts: this.promptStarts.view(numSeqs + 1), // (numSeqs + 1)
      promptTokens: this.promptTokens.view(promptTotal), // (promptStarts[numSeqs])
      outputStarts: this.outputStarts.view(numSeqs + 1), // (numSeqs + 1)
      outputTokens: this.outputTokens.view(outputTotal), // (outputStarts[numSeqs])
      biasStarts: this.biasStarts.view(numSeqs + 1), // (numSeqs + 1)
      biasTokens: this.biasTokens.view(biasTotal), // (biasStarts[numSeqs])
      biasValues: this.biasValues.view(biasTotal), // (biasStarts[numSeqs])
    };
    let prompt = 0;
    let output = 0;
    let bias = 0;
    for (let i = 0; i < numSeqs; i++) {
      const s = pick(items[i]!);
      out.temperature[i] = s.temperature ?? 0;
      out.topP[i] = s.topP ?? 1;
      out.topK[i] = s.topK ?? 0;
      out.minP[i] = s.minP ?? 0;
      out.repetitionPenalty[i] = s.repetitionPenalty ?? 1;
      out.presencePenalty[i] = s.presencePenalty ?? 0;
      out.frequencyPenalty[i] = s.frequencyPenalty ?? 0;
      out.seed[i] = (s.seed ?? 0) >>> 0;
      out.outputIndex[i] = s.outputIndex ?? 0;
      out.logprobs[i] = s.logprobs ?? -1;
      out.promptStarts[i] = prompt;
      if (readsPromptTokens(s) && s.promptTokens !== undefined) {
        out.promptTokens.set(s.promptTokens, prompt);
        prompt += s.promptTokens.length;
      }
      out.outputStarts[i] = output;
      if (readsOutputTokens(s) && s.outputTokens !== undefined) {
        out.outputTokens.set(s.outputTokens, output);
        output += s.outputTokens.length;
      }
      out.biasStarts[i] = bias;
      if (s.logitBias !== undefined && s.logitBias.size > 0) {
        for (const [tokenId, value] of s.logitBias) {
          out.biasTokens[bias] = tokenId;
          out.biasValues[bias] = value;
          bias++;
        }
      }
    }
    out.promptStarts[numSeqs] = prompt;
    out.outputStarts[numSeqs] = output;
    out.biasStarts[numSeqs] = bias;
    return out;
  }
}

const identity = (s: SequenceSampling) => s;

/** The arrays of a one-off batch, in storage of their own. */
export function buildSamplingArrays(seqs: readonly SequenceSampling[]): SamplingArrays {
  return new SamplingArraysPacker().pack(seqs, identity);
}
