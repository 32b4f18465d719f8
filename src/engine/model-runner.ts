/**
 * Turns the scheduled sequences of one step into the flat arrays a backend runs (nano-vllm's
 * ModelRunner.prepare_*), and the backend's answer back into per-sequence tokens and logprobs.
 */
import type { SamplingArrays, StepBatch, StepResult } from "../backend/backend.js";
import type { ScheduledSequence } from "./scheduler.js";
import type { TokenLogprob } from "./types.js";

export function buildStepBatch(scheduled: readonly ScheduledSequence[], blockSize: number): StepBatch {
  const numSeqs = scheduled.length;
  let numTokens = 0;
  let maxBlocksPerSeq = 1;
  let wantTokenLogprobs = false;
  for (const { seq, numNewTokens } of scheduled) {
    numTokens += numNewTokens;
    maxBlocksPerSeq = Math.max(maxBlocksPerSeq, seq.blockTable.length);
    if (seq.promptLogprobs !== null && seq.numComputedTokens < seq.numPromptTokens) wantTokenLogprobs = true;
  }

  const tokenIds = new Int32Array(numTokens); // (numTokens)
  const positions = new Int32Array(numTokens); // (numTokens)
  const slotMapping = new Int32Array(numTokens); // (numTokens)
  const queryStarts = new Int32Array(numSeqs + 1); // (numSeqs + 1)
  const contextLens = new Int32Array(numSeqs); // (numSeqs)
  const blockTables = new Int32Array(numSeqs * maxBlocksPerSeq).fill(-1); // (numSeqs, maxBlocksPerSeq)
  const sample = new Uint8Array(numSeqs); // (numSeqs)

  let t = 0;
  scheduled.forEach(({ seq, numNewTokens, sample: doSample }, i) => {
    queryStarts[i] = t;
    const start = seq.numComputedTokens;
    for (let k = 0; k < numNewTokens; k++, t++) {
      const position = start + k;
      tokenIds[t] = seq.tokenIds[position]!;
      positions[t] = position;
      slotMapping[t] = seq.blockTable[Math.floor(position / blockSize)]! * blockSize + (position % blockSize);
    }
    contextLens[i] = start + numNewTokens;
    blockTables.set(seq.blockTable, i * maxBlocksPerSeq);
    sample[i] = doSample ? 1 : 0;
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
    sampling: buildSamplingArrays(scheduled),
  };
  if (wantTokenLogprobs) batch.tokenLogprobs = true;
  return batch;
}

function buildSamplingArrays(scheduled: readonly ScheduledSequence[]): SamplingArrays {
  const numSeqs = scheduled.length;
  const arrays = {
    temperature: new Float32Array(numSeqs), // (numSeqs)
    topP: new Float32Array(numSeqs), // (numSeqs)
    topK: new Int32Array(numSeqs), // (numSeqs)
    minP: new Float32Array(numSeqs), // (numSeqs)
    repetitionPenalty: new Float32Array(numSeqs), // (numSeqs)
    presencePenalty: new Float32Array(numSeqs), // (numSeqs)
    frequencyPenalty: new Float32Array(numSeqs), // (numSeqs)
    seed: new Uint32Array(numSeqs), // (numSeqs)
    outputIndex: new Int32Array(numSeqs), // (numSeqs)
    logprobs: new Int32Array(numSeqs), // (numSeqs)
    promptStarts: new Int32Array(numSeqs + 1), // (numSeqs + 1)
    outputStarts: new Int32Array(numSeqs + 1), // (numSeqs + 1)
    biasStarts: new Int32Array(numSeqs + 1), // (numSeqs + 1)
  };
  const promptTokens: number[] = [];
  const outputTokens: number[] = [];
  const biasTokens: number[] = [];
  const biasValues: number[] = [];

  scheduled.forEach(({ seq }, i) => {
    const p = seq.params;
    arrays.temperature[i] = p.temperature;
    arrays.topP[i] = p.topP;
    arrays.topK[i] = p.topK;
    arrays.minP[i] = p.minP;
    arrays.repetitionPenalty[i] = p.repetitionPenalty;
    arrays.presencePenalty[i] = p.presencePenalty;
    arrays.frequencyPenalty[i] = p.frequencyPenalty;
    arrays.seed[i] = seq.seed;
    arrays.outputIndex[i] = seq.numOutputTokens;
    arrays.logprobs[i] = p.logprobs ?? -1;

    // Penalty token lists only for sequences that use them: the lists can be long.
    arrays.promptStarts[i] = promptTokens.length;
    arrays.outputStarts[i] = outputTokens.length;
    if (p.repetitionPenalty !== 1) for (const id of seq.promptTokenIds) promptTokens.push(id);
    if (p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
      for (const id of seq.outputTokenIds) outputTokens.push(id);
    }

    arrays.biasStarts[i] = biasTokens.length;
    const banned = [...seq.stopChecker.bannedTokenIds(seq.numOutputTokens)];
    for (const id of seq.constraint?.bannedTokenIds(seq.outputTokenIds) ?? []) {
      if (!banned.includes(id)) banned.push(id);
    }
    for (const [id, bias] of p.logitBias) {
      if (banned.includes(id)) continue;
      biasTokens.push(id);
      biasValues.push(bias);
    }
    for (const id of banned) {
      biasTokens.push(id);
      biasValues.push(Number.NEGATIVE_INFINITY);
    }
  });
  arrays.promptStarts[numSeqs] = promptTokens.length;
  arrays.outputStarts[numSeqs] = outputTokens.length;
  arrays.biasStarts[numSeqs] = biasTokens.length;
  return {
    ...arrays,
    promptTokens: Int32Array.from(promptTokens), // (promptStarts[numSeqs])
    outputTokens: Int32Array.from(outputTokens), // (outputStarts[numSeqs])
    biasTokens: Int32Array.from(biasTokens), // (biasStarts[numSeqs])
    biasValues: Float32Array.from(biasValues), // (biasStarts[numSeqs])
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
