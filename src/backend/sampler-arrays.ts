/**
 * Builds the flat SamplingArrays of a step from per-sequence settings (the engine's model runner, tests,
 * benchmarks). Defaults are "off": greedy unless a temperature is given.
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
  /** token id -> additive bias. */
  logitBias?: ReadonlyMap<number, number>;
}

function ranges(lists: ArrayLike<number>[]): { starts: Int32Array; values: Int32Array } {
  const starts = new Int32Array(lists.length + 1); // (numSeqs + 1)
  for (let i = 0; i < lists.length; i++) starts[i + 1] = starts[i] + lists[i].length;
  const values = new Int32Array(starts[lists.length]);
  for (let i = 0; i < lists.length; i++) values.set(Array.from(lists[i]), starts[i]);
  return { starts, values };
}

export function buildSamplingArrays(seqs: SequenceSampling[]): SamplingArrays {
  const penalized = (s: SequenceSampling) =>
    (s.repetitionPenalty ?? 1) !== 1 || (s.presencePenalty ?? 0) !== 0 || (s.frequencyPenalty ?? 0) !== 0;
  const prompt = ranges(seqs.map((s) => (penalized(s) ? (s.promptTokens ?? []) : [])));
  const output = ranges(seqs.map((s) => (penalized(s) ? (s.outputTokens ?? []) : [])));
  const biasEntries = seqs.map((s) => [...(s.logitBias ?? new Map<number, number>())]);
  const bias = ranges(biasEntries.map((e) => e.map(([t]) => t)));
  const biasValues = new Float32Array(bias.values.length); // (numBiases)
  biasEntries.flat().forEach(([, v], i) => {
    biasValues[i] = v;
  });
  return {
    temperature: Float32Array.from(seqs, (s) => s.temperature ?? 0),
    topP: Float32Array.from(seqs, (s) => s.topP ?? 1),
    topK: Int32Array.from(seqs, (s) => s.topK ?? 0),
    minP: Float32Array.from(seqs, (s) => s.minP ?? 0),
    repetitionPenalty: Float32Array.from(seqs, (s) => s.repetitionPenalty ?? 1),
    presencePenalty: Float32Array.from(seqs, (s) => s.presencePenalty ?? 0),
    frequencyPenalty: Float32Array.from(seqs, (s) => s.frequencyPenalty ?? 0),
    seed: Uint32Array.from(seqs, (s) => (s.seed ?? 0) >>> 0),
    outputIndex: Int32Array.from(seqs, (s) => s.outputIndex ?? 0),
    logprobs: Int32Array.from(seqs, (s) => s.logprobs ?? -1),
    promptStarts: prompt.starts,
    promptTokens: prompt.values,
    outputStarts: output.starts,
    outputTokens: output.values,
    biasStarts: bias.starts,
    biasTokens: bias.values,
    biasValues,
  };
}
