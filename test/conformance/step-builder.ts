/**
 * Drives a Backend directly through StepBatch for tests and benchmarks: a minimal block allocator plus
 * per-sequence bookkeeping (tokens known, tokens already in KV, block table), in vLLM's vocabulary.
 * It is the smallest faithful stand-in for the engine's scheduler: no preemption, no prefix cache.
 */
import type { StepBatch } from "../../src/backend/backend.js";
import { buildSamplingArrays, type SequenceSampling } from "../../src/backend/sampler-arrays.js";

export interface DrivenSequence {
  /** Prompt then generated tokens. */
  tokens: number[];
  promptLength: number;
  /** Tokens whose K/V are in the cache. */
  computed: number;
  blocks: number[];
}

export interface StepEntry {
  seq: DrivenSequence;
  /** New tokens to run this step (default: all not yet computed). */
  count?: number;
  sampling?: SequenceSampling;
}

export class StepBuilder {
  private readonly freeBlocks: number[];

  constructor(
    readonly blockSize: number,
    numBlocks: number,
  ) {
    this.freeBlocks = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  addSequence(promptIds: ArrayLike<number>): DrivenSequence {
    return { tokens: Array.from(promptIds), promptLength: promptIds.length, computed: 0, blocks: [] };
  }

  release(seq: DrivenSequence): void {
    this.freeBlocks.push(...seq.blocks.reverse());
    seq.blocks = [];
  }

  /** One step over `entries`; a sequence samples when this step reaches the end of its known tokens. */
  build(entries: StepEntry[], options: { tokenLogprobs?: boolean } = {}): StepBatch {
    const counts = entries.map((e) => e.count ?? e.seq.tokens.length - e.seq.computed);
    const numTokens = counts.reduce((a, b) => a + b, 0);
    const tokenIds = new Int32Array(numTokens); // (numTokens)
    const positions = new Int32Array(numTokens); // (numTokens)
    const slotMapping = new Int32Array(numTokens); // (numTokens)
    const queryStarts = new Int32Array(entries.length + 1); // (numSeqs + 1)
    const contextLens = new Int32Array(entries.length); // (numSeqs)
    const sample = new Uint8Array(entries.length); // (numSeqs)
    let maxBlocksPerSeq = 1;
    entries.forEach((e, i) => {
      const len = e.seq.computed + counts[i];
      if (len > e.seq.tokens.length)
        throw new Error(`step-builder: sequence has ${e.seq.tokens.length} tokens, asked to run to ${len}`);
      while (e.seq.blocks.length * this.blockSize < len) {
        const block = this.freeBlocks.pop();
        if (block === undefined) throw new Error("step-builder: out of KV blocks");
        e.seq.blocks.push(block);
      }
      maxBlocksPerSeq = Math.max(maxBlocksPerSeq, e.seq.blocks.length);
    });
    const blockTables = new Int32Array(entries.length * maxBlocksPerSeq).fill(-1); // (numSeqs, maxBlocksPerSeq)
    let t = 0;
    entries.forEach((e, i) => {
      const seq = e.seq;
      queryStarts[i] = t;
      blockTables.set(seq.blocks, i * maxBlocksPerSeq);
      for (let p = seq.computed; p < seq.computed + counts[i]; p++, t++) {
        tokenIds[t] = seq.tokens[p];
        positions[t] = p;
        slotMapping[t] = seq.blocks[Math.floor(p / this.blockSize)] * this.blockSize + (p % this.blockSize);
      }
      seq.computed += counts[i];
      contextLens[i] = seq.computed;
      sample[i] = seq.computed === seq.tokens.length ? 1 : 0;
    });
    queryStarts[entries.length] = t;
    const sampling = buildSamplingArrays(
      entries.map((e) => ({
        outputIndex: e.seq.tokens.length - e.seq.promptLength,
        promptTokens: e.seq.tokens.slice(0, e.seq.promptLength),
        outputTokens: e.seq.tokens.slice(e.seq.promptLength),
        ...e.sampling,
      })),
    );
    return {
      numSeqs: entries.length,
      tokenIds,
      positions,
      queryStarts,
      contextLens,
      maxBlocksPerSeq,
      blockTables,
      slotMapping,
      sample,
      sampling,
      tokenLogprobs: options.tokenLogprobs,
    };
  }
}
