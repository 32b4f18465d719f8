/**
 * Drives a Backend directly through StepBatch for tests and benchmarks: a minimal block allocator plus
 * per-sequence bookkeeping (tokens known, tokens already in KV, block table), in vLLM's vocabulary.
 * It is the smallest faithful stand-in for the engine's scheduler: no preemption, no prefix cache. The batch
 * itself comes from the engine's own builder (engine/model-runner.ts buildStepBatch).
 */
import type { StepBatch } from "../../src/backend/backend.js";
import type { SequenceSampling } from "../../src/backend/sampler-arrays.js";
import { buildStepBatch, type StepSequence } from "../../src/engine/model-runner.js";

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
    const steps: StepSequence[] = entries.map((e) => {
      const seq = e.seq;
      const numNewTokens = e.count ?? seq.tokens.length - seq.computed;
      const len = seq.computed + numNewTokens;
      while (seq.blocks.length * this.blockSize < len) {
        const block = this.freeBlocks.pop();
        if (block === undefined) throw new Error("step-builder: out of KV blocks");
        seq.blocks.push(block);
      }
      return {
        tokenIds: seq.tokens,
        numComputedTokens: seq.computed,
        numNewTokens,
        blockTable: seq.blocks,
        sample: len === seq.tokens.length,
        tokenLogprobs: options.tokenLogprobs,
        sampling: {
          outputIndex: seq.tokens.length - seq.promptLength,
          promptTokens: seq.tokens.slice(0, seq.promptLength),
          outputTokens: seq.tokens.slice(seq.promptLength),
          ...e.sampling,
        },
      };
    });
    // The builder production uses (the engine's model runner): the suite exercises it on every backend.
    const batch = buildStepBatch(steps, this.blockSize);
    entries.forEach((e, i) => {
      e.seq.computed += steps[i]!.numNewTokens;
    });
    return batch;
  }
}
