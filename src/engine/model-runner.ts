/**
 * Turns the sequences of one step into the flat arrays a backend runs (nano-vllm's ModelRunner.prepare_*),
 * and the backend's answer back into per-sequence tokens and logprobs. `buildStepBatch` is the one step
 * builder: the engine, the perplexity evaluator and the conformance suite's StepBuilder all call it.
 */
import type { StepBatch, StepResult } from "../backend/backend.js";
import { buildSamplingArrays, type SequenceSampling } from "../backend/sampler-arrays.js";
import type { ScheduledSequence } from "./scheduler.js";
import type { TokenLogprob } from "./types.js";

/** One sequence of a step as the builder sees it: what it knows, what is in KV, what runs now. */
export interface StepSequence {
  /** Every token known so far (prompt then output); the step runs [numComputedTokens, +numNewTokens). */
  tokenIds: ArrayLike<number>;
  /** Tokens whose K/V are already in the cache. */
  numComputedTokens: number;
  numNewTokens: number;
  /** Physical KV blocks, covering at least numComputedTokens + numNewTokens positions. */
  blockTable: ArrayLike<number>;
  /** Whether the step's last token of this sequence is sampled. */
  sample: boolean;
  sampling: SequenceSampling;
  /** Whether the step must return the logprob of each next token (prompt logprobs, perplexity). */
  tokenLogprobs?: boolean;
  /** With tokenLogprobs: how many alternatives (and the rank) each of those positions needs (prompt_logprobs N). */
  tokenTopLogprobs?: number;
}

export function buildStepBatch(seqs: readonly StepSequence[], blockSize: number): StepBatch {
  const numSeqs = seqs.length;
  let numTokens = 0;
  let maxBlocksPerSeq = 1;
  let wantTokenLogprobs = false;
  let tokenTopLogprobs = 0;
  for (const s of seqs) {
    const end = s.numComputedTokens + s.numNewTokens;
    if (end > s.tokenIds.length) {
      throw new Error(`step batch: a sequence of ${s.tokenIds.length} tokens was asked to run to ${end}`);
    }
    if (end > s.blockTable.length * blockSize) {
      throw new Error(
        `step batch: ${s.blockTable.length} KV blocks of ${blockSize} cannot hold ${end} positions`,
      );
    }
    numTokens += s.numNewTokens;
    maxBlocksPerSeq = Math.max(maxBlocksPerSeq, s.blockTable.length);
    if (s.tokenLogprobs) {
      wantTokenLogprobs = true;
      tokenTopLogprobs = Math.max(tokenTopLogprobs, s.tokenTopLogprobs ?? 0);
    }
  }

  const tokenIds = new Int32Array(numTokens); // (numTokens)
  const positions = new Int32Array(numTokens); // (numTokens)
  const slotMapping = new Int32Array(numTokens); // (numTokens)
  const queryStarts = new Int32Array(numSeqs + 1); // (numSeqs + 1)
  const contextLens = new Int32Array(numSeqs); // (numSeqs)
  const blockTables = new Int32Array(numSeqs * maxBlocksPerSeq).fill(-1); // (numSeqs, maxBlocksPerSeq)
  const sample = new Uint8Array(numSeqs); // (numSeqs)

  let t = 0;
  seqs.forEach((s, i) => {
    queryStarts[i] = t;
    const start = s.numComputedTokens;
    for (let k = 0; k < s.numNewTokens; k++, t++) {
      const position = start + k;
      tokenIds[t] = s.tokenIds[position]!;
      positions[t] = position;
      slotMapping[t] = s.blockTable[Math.floor(position / blockSize)]! * blockSize + (position % blockSize);
    }
    contextLens[i] = start + s.numNewTokens;
    blockTables.set(s.blockTable, i * maxBlocksPerSeq);
    sample[i] = s.sample ? 1 : 0;
  });
  queryStarts[numSeqs] = t;

  const batch: StepBatch = {
    numSeqs,
    tokenIds,
    positions,
    queryStarts,
    contextLens,
    maxBlocksPerSeq,
    blockTables,
    slotMapping,
    sample,
    sampling: buildSamplingArrays(seqs.map((s) => s.sampling)),
  };
  if (wantTokenLogprobs) batch.tokenLogprobs = true;
  if (tokenTopLogprobs > 0) batch.tokenTopLogprobs = tokenTopLogprobs;
  return batch;
}

/** An engine sequence scheduled this step, as the step builder takes it. */
export function scheduledStepSequence({ seq, numNewTokens, sample }: ScheduledSequence): StepSequence {
  const p = seq.params;
  // The stop checker's bans (min_tokens) and the constraint's (bad_words) win over a logit bias of the same id.
  const banned = new Set(seq.stopChecker.bannedTokenIds(seq.numOutputTokens));
  for (const id of seq.constraint?.bannedTokenIds(seq.outputTokenIds) ?? []) banned.add(id);
  const logitBias = new Map<number, number>();
  for (const [id, bias] of p.logitBias) if (!banned.has(id)) logitBias.set(id, bias);
  for (const id of banned) logitBias.set(id, Number.NEGATIVE_INFINITY);
  return {
    tokenIds: seq.tokenIds,
    numComputedTokens: seq.numComputedTokens,
    numNewTokens,
    blockTable: seq.blockTable,
    sample,
    tokenLogprobs: seq.promptLogprobs !== null && seq.numComputedTokens < seq.numPromptTokens,
    tokenTopLogprobs: p.promptLogprobs ?? 0,
    sampling: {
      temperature: p.temperature,
      topP: p.topP,
      topK: p.topK,
      minP: p.minP,
      repetitionPenalty: p.repetitionPenalty,
      presencePenalty: p.presencePenalty,
      frequencyPenalty: p.frequencyPenalty,
      seed: seq.seed,
      outputIndex: seq.numOutputTokens,
      logprobs: p.logprobs ?? -1,
      promptTokens: seq.promptTokenIds,
      outputTokens: seq.outputTokenIds,
      logitBias,
    },
  };
}

/** The chosen token's logprob entry for sequence `i` of a step, or null when it did not ask. */
export function sampledLogprob(
  result: StepResult,
  i: number,
  tokenId: number,
  wanted: number | null,
): TokenLogprob | null {
  if (wanted === null) return null;
  const top: TokenLogprob["top"] = [];
  const alternatives = result.topLogprobs[i];
  if (alternatives) {
    for (let k = 0; k < alternatives.tokenIds.length; k++) {
      top.push({ tokenId: alternatives.tokenIds[k]!, logprob: alternatives.logprobs[k]! });
    }
  }
  return { tokenId, logprob: result.logprobs[i]!, top };
}
