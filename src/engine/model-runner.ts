/**
 * Turns the sequences of one step into the flat arrays a backend runs (nano-vllm's ModelRunner.prepare_*),
 * and the backend's answer back into per-sequence tokens and logprobs. `buildStepBatch` is the one step
 * builder: the engine, the perplexity evaluator and the conformance suite's StepBuilder all call it.
 */
import type { StepBatch, StepResult } from "../backend/backend.js";
import {
  int32Array,
  SamplingArraysPacker,
  type SequenceSampling,
  uint8Array,
} from "../backend/sampler-arrays.js";
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

/**
 * Packs steps into typed arrays it keeps (grown once, then reused): a pack's arrays are views that stay valid
 * until this packer's next pack(). The engine alternates two packers, so the batch a backend may still hold
 * is never the one being written.
 */
export class StepPacker {
  private readonly sampling = new SamplingArraysPacker();
  private readonly tokenIds = int32Array();
  private readonly positions = int32Array();
  private readonly slotMapping = int32Array();
  private readonly queryStarts = int32Array();
  private readonly contextLens = int32Array();
  private readonly blockTables = int32Array();
  private readonly sample = uint8Array();
  private readonly prevTokenRows = int32Array();

  pack(seqs: readonly StepSequence[], blockSize: number): StepBatch {
    const numSeqs = seqs.length;
    let numTokens = 0;
    let maxBlocksPerSeq = 1;
    let wantTokenLogprobs = false;
    let tokenTopLogprobs = 0;
    for (let i = 0; i < numSeqs; i++) {
      const s = seqs[i]!;
      const end = s.numComputedTokens + s.numNewTokens;
      if (end > s.tokenIds.length) {
        throw new Error(`step batch: a sequence of ${s.tokenIds.length} tokens was asked to run to ${end}`);
      }
      checkTableHolds(s.blockTable, end, blockSize);
      numTokens += s.numNewTokens;
      if (s.blockTable.length > maxBlocksPerSeq) maxBlocksPerSeq = s.blockTable.length;
      if (s.tokenLogprobs) {
        wantTokenLogprobs = true;
        tokenTopLogprobs = Math.max(tokenTopLogprobs, s.tokenTopLogprobs ?? 0);
      }
    }

    const views = this.views(numTokens, numSeqs, maxBlocksPerSeq);
    const { tokenIds, positions, slotMapping, queryStarts, contextLens, blockTables, sample } = views;

    let t = 0;
    for (let i = 0; i < numSeqs; i++) {
      const s = seqs[i]!;
      queryStarts[i] = t;
      const start = s.numComputedTokens;
      const table = s.blockTable;
      for (let k = 0; k < s.numNewTokens; k++, t++) {
        const position = start + k;
        tokenIds[t] = s.tokenIds[position]!;
        positions[t] = position;
        slotMapping[t] = slotOf(table, position, blockSize);
      }
      contextLens[i] = start + s.numNewTokens;
      writeTableRow(blockTables, i, maxBlocksPerSeq, table);
      sample[i] = s.sample ? 1 : 0;
    }
    queryStarts[numSeqs] = t;

    const batch: StepBatch = {
      numSeqs,
      ...views,
      maxBlocksPerSeq,
      sampling: this.sampling.pack(seqs, samplingOf),
    };
    if (wantTokenLogprobs) batch.tokenLogprobs = true;
    if (tokenTopLogprobs > 0) batch.tokenTopLogprobs = tokenTopLogprobs;
    return batch;
  }

  /**
   * A chained decode step: one token per sequence, each a placeholder (0) the backend replaces with the token the
   * previous step sampled for row prevRow (StepBatch.prevTokenRows). Same views and lifetime as pack().
   */
  packContinuation(seqs: readonly ContinuedSequence[], blockSize: number): StepBatch {
    const numSeqs = seqs.length;
    let maxBlocksPerSeq = 1;
    for (const s of seqs) {
      checkTableHolds(s.blockTable, s.position + 1, blockSize);
      if (s.blockTable.length > maxBlocksPerSeq) maxBlocksPerSeq = s.blockTable.length;
    }
    const views = this.views(numSeqs, numSeqs, maxBlocksPerSeq); // one token a sequence
    const { tokenIds, positions, slotMapping, queryStarts, contextLens, blockTables, sample } = views;
    const prevTokenRows = this.prevTokenRows.view(numSeqs); // (numTokens)
    for (let i = 0; i < numSeqs; i++) {
      const s = seqs[i]!;
      const table = s.blockTable;
      tokenIds[i] = 0;
      prevTokenRows[i] = s.prevRow;
      positions[i] = s.position;
      slotMapping[i] = slotOf(table, s.position, blockSize);
      queryStarts[i] = i;
      contextLens[i] = s.position + 1;
      writeTableRow(blockTables, i, maxBlocksPerSeq, table);
      sample[i] = 1;
    }
    queryStarts[numSeqs] = numSeqs;
    return {
      numSeqs,
      ...views,
      maxBlocksPerSeq,
      sampling: this.sampling.pack(seqs, samplingOf),
      prevTokenRows,
    };
  }

  /** The step arrays of this size: views of the packer's storage, valid until its next pack. */
  private views(numTokens: number, numSeqs: number, maxBlocksPerSeq: number) {
    return {
      tokenIds: this.tokenIds.view(numTokens), // (numTokens)
      positions: this.positions.view(numTokens), // (numTokens)
      slotMapping: this.slotMapping.view(numTokens), // (numTokens)
      queryStarts: this.queryStarts.view(numSeqs + 1), // (numSeqs + 1)
      contextLens: this.contextLens.view(numSeqs), // (numSeqs)
      blockTables: this.blockTables.view(numSeqs * maxBlocksPerSeq), // (numSeqs, maxBlocksPerSeq)
      sample: this.sample.view(numSeqs), // (numSeqs)
    };
  }
}

/** Throws when a sequence's blocks cannot hold `positions` positions. */
function checkTableHolds(table: ArrayLike<number>, positions: number, blockSize: number): void {
  if (positions > table.length * blockSize) {
    throw new Error(
      `step batch: ${table.length} KV blocks of ${blockSize} cannot hold ${positions} positions`,
    );
  }
}

/** The KV slot (block * blockSize + offset) of `position` in a sequence with these blocks. */
function slotOf(table: ArrayLike<number>, position: number, blockSize: number): number {
  return table[Math.floor(position / blockSize)]! * blockSize + (position % blockSize);
}

/** Row `i` of the (numSeqs, maxBlocksPerSeq) block tables: the sequence's blocks, then -1. */
function writeTableRow(
  blockTables: Int32Array,
  i: number,
  maxBlocksPerSeq: number,
  table: ArrayLike<number>,
): void {
  const row = i * maxBlocksPerSeq;
  for (let b = 0; b < table.length; b++) blockTables[row + b] = table[b]!;
  blockTables.fill(-1, row + table.length, row + maxBlocksPerSeq);
}

const samplingOf = (s: { sampling: SequenceSampling }) => s.sampling;

/**
 * One sequence of a chained decode step (StepBatch.prevTokenRows): it runs the token the step before samples for
 * it, at `position`, which the backend takes from that step's result (row `prevRow`).
 */
export interface ContinuedSequence {
  prevRow: number;
  position: number;
  /** Physical KV blocks, covering at least position + 1 positions. */
  blockTable: ArrayLike<number>;
  /** Its sampling settings, outputIndex being the output tokens it has before the one this step samples. */
  sampling: SequenceSampling;
}

/** A one-off step (perplexity, conformance, tests), in arrays of its own. */
export function buildStepBatch(seqs: readonly StepSequence[], blockSize: number): StepBatch {
  return new StepPacker().pack(seqs, blockSize);
}

const NO_BANS: readonly number[] = [];

/**
 * An engine sequence scheduled this step, as the step builder takes it. The object is the sequence's own and
 * is rewritten by its next call (the packer copies what it reads), so a step allocates nothing per sequence
 * unless the sequence's bans change its logit bias (min_tokens, bad_words).
 */
export function scheduledStepSequence({ seq, numNewTokens, sample }: ScheduledSequence): StepSequence {
  const p = seq.params;
  let view = seq.stepView;
  if (view === null) {
    view = {
      tokenIds: seq.tokenIds,
      numComputedTokens: 0,
      numNewTokens: 0,
      blockTable: seq.blockTable,
      sample: false,
      tokenLogprobs: false,
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
        outputIndex: 0,
        logprobs: p.logprobs ?? -1,
        promptTokens: seq.promptTokenIds,
        outputTokens: seq.outputTokenIds,
        logitBias: p.logitBias,
      },
    };
    seq.stepView = view;
  }
  view.numComputedTokens = seq.numComputedTokens;
  view.numNewTokens = numNewTokens;
  view.blockTable = seq.blockTable;
  view.sample = sample;
  view.tokenLogprobs = seq.promptLogprobs !== null && seq.numComputedTokens < seq.numPromptTokens;
  view.sampling.outputIndex = seq.numOutputTokens;
  view.sampling.logitBias = logitBiasWithBans(seq);
  return view;
}

/**
 * The request's logit bias with the stop checker's bans (min_tokens) and the constraint's (bad_words) added as
 * -Infinity; a ban wins over a bias of the same id. Without bans: the request's own map.
 */
function logitBiasWithBans(seq: ScheduledSequence["seq"]): ReadonlyMap<number, number> {
  const stopBans = seq.stopChecker.bannedTokenIds(seq.numOutputTokens);
  const constraintBans = seq.constraint?.bannedTokenIds(seq.outputTokenIds) ?? NO_BANS;
  if (stopBans.length === 0 && constraintBans.length === 0) return seq.params.logitBias;
  const banned = new Set(stopBans);
  for (const id of constraintBans) banned.add(id);
  const logitBias = new Map<number, number>();
  for (const [id, bias] of seq.params.logitBias) if (!banned.has(id)) logitBias.set(id, bias);
  for (const id of banned) logitBias.set(id, Number.NEGATIVE_INFINITY);
  return logitBias;
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
