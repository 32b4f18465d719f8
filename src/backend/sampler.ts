/**
 * The reference sampler (vLLM v1 semantics), run on one sequence's logits at a time. The CUDA sampler implements
 * the same steps in the same order:
 *
 *   0. token mask  tokens outside the sequence's bitmask row (SamplingArrays.tokenMask) become -Infinity:
 *                  before the raw logprobs for a grammar (vLLM masks the logits the sampler sees, so logprobs are
 *                  of the constrained distribution), after them for allowed_token_ids alone (vLLM's sampler)
 *   raw logprobs   log_softmax of the RAW logits, for the chosen token and the top N (vLLM v1 default)
 *   1. logit bias  logits[t] += bias (OpenAI logit_bias; -Infinity bans t, used for min_tokens)
 *   2. penalties   repetition (HF, over prompt + output tokens: positive logits / r, others * r), then
 *                  presence and frequency (OpenAI, over output tokens: logit -= presence*(count>0) + frequency*count)
 *   3. greedy      temperature < 1e-5: argmax of the processed logits (lowest id on ties); done
 *   4. temperature logits / temperature
 *   5. min-p       drop tokens whose probability < minP * (max probability)
 *   6. top-k       keep the tokens whose logit >= the k-th largest (ties at the boundary are kept, as in vLLM)
 *   7. top-p       among those, keep the smallest set of most likely tokens whose mass >= p (ties at the
 *                  boundary probability are kept)
 *   8. draw        u = uniform01(seed, outputIndex) (rng.ts); walk the kept tokens in increasing token id,
 *                  accumulating their unnormalized probabilities exp(l - max); pick the first whose running sum
 *                  exceeds u * total (the last kept token if rounding leaves none)
 */
import type { SamplingArrays } from "./backend.js";
import { uniform01 } from "./rng.js";

/** vLLM's _SAMPLING_EPS: temperatures below it mean greedy. */
export const GREEDY_TEMPERATURE = 1e-5;

export interface SampledToken {
  tokenId: number;
  /** log p(token) under the raw logits; NaN when not requested. */
  logprob: number;
  /** Top-N alternatives under the raw logits, best first; null when not requested. */
  top: { tokenIds: Int32Array; logprobs: Float32Array } | null;
}

/** log(sum(exp(logits))), computed stably. */
export function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** Sets the logits of tokens outside sequence `seq`'s bitmask row to -Infinity; false when it has no row. */
export function applyTokenMask(logits: Float32Array, s: SamplingArrays, seq: number): boolean {
  const row = s.maskRow?.[seq] ?? -1;
  if (row < 0 || s.tokenMask === undefined || s.maskWords === undefined) return false;
  const base = row * s.maskWords;
  for (let t = 0; t < logits.length; t++) {
    if (((s.tokenMask[base + (t >> 5)] >>> (t & 31)) & 1) === 0) logits[t] = -Infinity;
  }
  return true;
}

function maskAllowsToken(s: SamplingArrays, seq: number, t: number): boolean {
  return ((s.tokenMask![s.maskRow![seq] * s.maskWords! + (t >> 5)] >>> (t & 31)) & 1) === 1;
}

/** The lowest token id allowed by sequence `seq`'s bitmask row (-1 when none is). */
function firstAllowed(s: SamplingArrays, seq: number, vocab: number): number {
  const base = s.maskRow![seq] * s.maskWords!;
  for (let t = 0; t < vocab; t++) if (((s.tokenMask![base + (t >> 5)] >>> (t & 31)) & 1) === 1) return t;
  return -1;
}

/** Adds sequence `seq`'s logit biases in place. */
export function applyLogitBias(logits: Float32Array, s: SamplingArrays, seq: number): void {
  for (let j = s.biasStarts[seq]; j < s.biasStarts[seq + 1]; j++) logits[s.biasTokens[j]] += s.biasValues[j];
}

/** Repetition, presence and frequency penalties of sequence `seq`, in place. */
export function applyPenalties(logits: Float32Array, s: SamplingArrays, seq: number): void {
  const rep = s.repetitionPenalty[seq];
  if (rep !== 1) {
    const seen = new Set<number>();
    for (let j = s.promptStarts[seq]; j < s.promptStarts[seq + 1]; j++) seen.add(s.promptTokens[j]);
    for (let j = s.outputStarts[seq]; j < s.outputStarts[seq + 1]; j++) seen.add(s.outputTokens[j]);
    for (const t of seen) logits[t] = logits[t] > 0 ? logits[t] / rep : logits[t] * rep;
  }
  const presence = s.presencePenalty[seq];
  const frequency = s.frequencyPenalty[seq];
  if (presence !== 0 || frequency !== 0) {
    const counts = new Map<number, number>();
    for (let j = s.outputStarts[seq]; j < s.outputStarts[seq + 1]; j++) {
      const t = s.outputTokens[j];
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    for (const [t, count] of counts) logits[t] -= presence + frequency * count;
  }
}

/** Index of the largest value (lowest index on ties). */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Sets logits of tokens with probability < minP * maxProbability to -Infinity. */
export function applyMinP(logits: Float32Array, minP: number): void {
  if (minP <= 0) return;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  // p_i < minP * p_max  <=>  l_i - l_max < log(minP)
  const cutoff = max + Math.log(minP);
  for (let i = 0; i < logits.length; i++) if (logits[i] < cutoff) logits[i] = -Infinity;
}

/** The k-th largest value of `values` (k >= 1). */
function kthLargest(values: Float32Array, k: number): number {
  const sorted = Float32Array.from(values).sort();
  return sorted[sorted.length - Math.min(k, sorted.length)];
}

/** Keeps the tokens whose logit is >= the k-th largest; the rest become -Infinity. */
export function applyTopK(logits: Float32Array, topK: number): void {
  if (topK <= 0 || topK >= logits.length) return;
  const threshold = kthLargest(logits, topK);
  for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
}

/** Keeps the smallest set of most likely tokens whose probability mass reaches topP; the rest become -Infinity. */
export function applyTopP(logits: Float32Array, topP: number): void {
  if (topP >= 1) return;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const probs = new Float32Array(logits.length); // (vocab) unnormalized
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    probs[i] = Math.exp(logits[i] - max);
    total += probs[i];
  }
  const sorted = Float32Array.from(probs).sort(); // ascending
  const target = topP * total;
  let mass = 0;
  let threshold = sorted[sorted.length - 1];
  for (let i = sorted.length - 1; i >= 0; i--) {
    mass += sorted[i];
    threshold = sorted[i];
    if (mass >= target) break;
  }
  for (let i = 0; i < logits.length; i++) if (probs[i] < threshold) logits[i] = -Infinity;
}

/** Inverse-CDF draw over the kept tokens in token-id order (step 8 of the header). */
export function drawToken(logits: Float32Array, u: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp(logits[i] - max);
  const target = u * total;
  let running = 0;
  let last = -1;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] === -Infinity) continue;
    running += Math.exp(logits[i] - max);
    last = i;
    if (running > target) return i;
  }
  return last;
}

/** The top-N (index, logprob) of raw logits, best first (lowest id first on ties). */
export function topLogprobs(
  raw: Float32Array,
  lse: number,
  n: number,
): { tokenIds: Int32Array; logprobs: Float32Array } {
  const count = Math.min(n, raw.length);
  const ids = new Int32Array(count);
  const lps = new Float32Array(count);
  let filled = 0;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (filled === count && v <= raw[ids[count - 1]]) continue;
    let pos = filled < count ? filled++ : count - 1;
    while (pos > 0 && raw[ids[pos - 1]] < v) {
      ids[pos] = ids[pos - 1];
      pos--;
    }
    ids[pos] = i;
  }
  for (let j = 0; j < count; j++) lps[j] = raw[ids[j]] - lse;
  return { tokenIds: ids, logprobs: lps };
}

/**
 * Samples one token for sequence `seq` from its logits (vocab); `logits` is modified in place.
 */
export function sampleToken(logits: Float32Array, s: SamplingArrays, seq: number): SampledToken {
  const wantLogprobs = s.logprobs[seq];
  let rawLse = Number.NaN;
  let raw: Float32Array | null = null;
  let top: SampledToken["top"] = null;
  const maskFirst = s.maskBeforeLogprobs?.[seq] === 1;
  const masked = maskFirst && applyTokenMask(logits, s, seq);
  if (wantLogprobs >= 0) {
    raw = Float32Array.from(logits);
    rawLse = logSumExp(raw);
    if (wantLogprobs > 0) top = topLogprobs(raw, rawLse, wantLogprobs);
  }
  const maskedAfter = !maskFirst && applyTokenMask(logits, s, seq);
  applyLogitBias(logits, s, seq);
  applyPenalties(logits, s, seq);
  let tokenId: number;
  const temperature = s.temperature[seq];
  if (temperature < GREEDY_TEMPERATURE) {
    tokenId = argmax(logits);
  } else {
    if (temperature !== 1) for (let i = 0; i < logits.length; i++) logits[i] /= temperature;
    applyMinP(logits, s.minP[seq]);
    applyTopK(logits, s.topK[seq]);
    applyTopP(logits, s.topP[seq]);
    tokenId = drawToken(logits, uniform01(s.seed[seq], s.outputIndex[seq]));
    // Every token banned (all -Infinity): fall back to the raw argmax rather than return -1.
    if (tokenId < 0) tokenId = argmax(raw ?? logits);
  }
  // A mask whose every token is also banned (a grammar that allows only a stop token under min_tokens):
  // the mask wins, so the output stays in the grammar.
  if ((masked || maskedAfter) && !maskAllowsToken(s, seq, tokenId)) {
    const allowed = firstAllowed(s, seq, logits.length);
    if (allowed >= 0) tokenId = allowed;
  }
  const logprob = raw !== null ? raw[tokenId] - rawLse : Number.NaN;
  return { tokenId, logprob, top };
}
