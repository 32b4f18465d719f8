/**
 * Builds the flat SamplingArrays of a step from per-sequence settings. The one builder: the engine's model
 * runner, the perplexity evaluator, the conformance suite's step builder, tests and benchmarks all use it.
 * Defaults are "off": greedy unless a temperature is given.
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
  const repetition = (s.repetitionPenalty ?? 1) !== 1;
  const counts = (s.presencePenalty ?? 0) !== 0 || (s.frequencyPenalty ?? 0) !== 0;
  return { prompt: repetition, output: repetition || counts };
}

/** Concatenates per-sequence lists: list i is values[starts[i] .. starts[i + 1]]. */
function ranges(lists: ArrayLike<number>[]): { starts: Int32Array; values: Int32Array } {
  const starts = new Int32Array(lists.length + 1); // (numSeqs + 1)
  for (let i = 0; i < lists.length; i++) starts[i + 1] = starts[i]! + lists[i]!.length;
  const values = new Int32Array(starts[lists.length]!); // (starts[numSeqs])
  for (let i = 0; i < lists.length; i++) values.set(lists[i]!, starts[i]);
  return { starts, values };
}

export function buildSamplingArrays(seqs: readonly SequenceSampling[]): SamplingArrays {
  const used = seqs.map(penaltyLists);
  const prompt = ranges(seqs.map((s, i) => (used[i]!.prompt ? (s.promptTokens ?? []) : [])));
  const output = ranges(seqs.map((s, i) => (used[i]!.output ? (s.outputTokens ?? []) : [])));
  const biasEntries = seqs.map((s) => [...(s.logitBias ?? new Map<number, number>())]);
  const bias = ranges(biasEntries.map((e) => e.map(([t]) => t)));
  const biasValues = new Float32Array(bias.values.length); // (biasStarts[numSeqs])
  biasEntries.flat().forEach(([, v], i) => {
    biasValues[i] = v;
  });
  return {
    temperature: Float32Array.from(seqs, (s) => s.temperature ?? 0), // (numSeqs)
    topP: Float32Array.from(seqs, (s) => s.topP ?? 1), // (numSeqs)
    topK: Int32Array.from(seqs, (s) => s.topK ?? 0), // (numSeqs)
    minP: Float32Array.from(seqs, (s) => s.minP ?? 0), // (numSeqs)
    repetitionPenalty: Float32Array.from(seqs, (s) => s.repetitionPenalty ?? 1), // (numSeqs)
    presencePenalty: Float32Array.from(seqs, (s) => s.presencePenalty ?? 0), // (numSeqs)
    frequencyPenalty: Float32Array.from(seqs, (s) => s.frequencyPenalty ?? 0), // (numSeqs)
    seed: Uint32Array.from(seqs, (s) => (s.seed ?? 0) >>> 0), // (numSeqs)
    outputIndex: Int32Array.from(seqs, (s) => s.outputIndex ?? 0), // (numSeqs)
    logprobs: Int32Array.from(seqs, (s) => s.logprobs ?? -1), // (numSeqs)
    promptStarts: prompt.starts,
    promptTokens: prompt.values,
    outputStarts: output.starts,
    outputTokens: output.values,
    biasStarts: bias.starts,
    biasTokens: bias.values,
    biasValues,
  };
}
