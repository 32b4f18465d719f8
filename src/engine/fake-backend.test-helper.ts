/**
 * A deterministic stand-in backend for scheduler and block-manager unit tests only (end-to-end tests use
 * the real CPU backend). Its "KV cache" stores token ids in their slots, and the next token is a hash of the
 * context read back through the block table: a wrong slot mapping, block table, prefix-cache hit or
 * recompute after preemption changes the output, or throws on an unwritten slot. A step that reads, as KV
 * already computed, a slot that this same step writes (KV still in flight: a race on a real GPU) throws too.
 */
import type { Backend, BackendOptions, KvLayout, StepBatch, StepResult } from "../backend/backend.js";
import { StepChain } from "../backend/step-chain.js";
import { noTensorCheckpoint } from "../model/no-tensor-checkpoint.js";
import type { ModelConfig, ModelSource } from "../model/types.js";

export class FakeBackend implements Backend {
  readonly name = "cpu" as const;
  private kv = new Int32Array(0); // (numBlocks * blockSize) token id held in each slot, -1 = never written
  private blockSize = 16;
  /** Every batch seen (a copy: the engine reuses its arrays), for assertions; off with recordBatches. */
  readonly batches: StepBatch[] = [];
  recordBatches = true;
  /** When set, step() throws while it returns true for the batch. */
  failWhen: ((batch: StepBatch) => boolean) | null = null;
  /** Milliseconds each step takes (0: one event-loop turn). */
  stepDelayMs = 0;
  /** Whether step() takes chained steps (StepBatch.prevTokenRows), as the real backends do. */
  chainedSteps = true;
  private readonly chain = new StepChain();
  /** The most steps that were in flight at once (called and not yet returned). */
  maxInFlight = 0;
  private inFlight = 0;

  constructor(private readonly vocabSize = 32000) {}

  async load(_model: ModelSource, opts: BackendOptions): Promise<KvLayout> {
    this.blockSize = opts.blockSize;
    const numBlocks = opts.numBlocks ?? Math.ceil(opts.maxModelLen / opts.blockSize) * opts.maxNumSeqs;
    this.kv = new Int32Array(numBlocks * opts.blockSize).fill(-1);
    return { blockSize: opts.blockSize, numBlocks };
  }

  async step(batch: StepBatch): Promise<StepResult> {
    if (batch.prevTokenRows !== undefined && !this.chainedSteps) {
      throw new Error("a chained step was sent to a backend without chainedSteps");
    }
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      return await this.chain.run(batch, (b) => this.stepNow(b));
    } finally {
      this.inFlight--;
    }
  }

  private async stepNow(batch: StepBatch): Promise<StepResult> {
    if (this.recordBatches) this.batches.push(copyBatch(batch));
    await new Promise((resolve) =>
      this.stepDelayMs > 0 ? setTimeout(resolve, this.stepDelayMs) : setImmediate(resolve),
    );
    if (this.failWhen?.(batch)) throw new Error("injected backend failure");
    this.checkNoReadOfThisStepsWrites(batch);
    for (let t = 0; t < batch.tokenIds.length; t++) this.kv[batch.slotMapping[t]!] = batch.tokenIds[t]!;
    const tokenIds = new Int32Array(batch.numSeqs).fill(-1); // (numSeqs)
    for (let i = 0; i < batch.numSeqs; i++) {
      if (!batch.sample[i]) continue;
      let hash = 2166136261;
      for (let p = 0; p < batch.contextLens[i]!; p++) {
        const block = batch.blockTables[i * batch.maxBlocksPerSeq + Math.floor(p / this.blockSize)]!;
        const id = this.kv[block * this.blockSize + (p % this.blockSize)]!;
        if (block < 0 || id < 0) throw new Error(`sequence ${i} reads unwritten KV at position ${p}`);
        hash = Math.imul(hash ^ id, 16777619) >>> 0;
      }
      // Seeded sampling stand-in: the seed and output index shift the choice when temperature > 0.
      if (batch.sampling.temperature[i]! > 0) {
        hash =
          Math.imul(hash ^ batch.sampling.seed[i]! ^ (batch.sampling.outputIndex[i]! << 16), 2654435761) >>>
          0;
      }
      let token = 100 + (hash % (this.vocabSize - 1000));
      for (let b = batch.sampling.biasStarts[i]!; b < batch.sampling.biasStarts[i + 1]!; b++) {
        if (
          batch.sampling.biasValues[b] === Number.NEGATIVE_INFINITY &&
          batch.sampling.biasTokens[b] === token
        )
          token++;
      }
      tokenIds[i] = token;
    }
    const result: StepResult = {
      tokenIds,
      logprobs: new Float32Array(batch.numSeqs).fill(Number.NaN),
      topLogprobs: [],
    };
    // Prompt logprobs: a stand-in value per token (NaN at each sequence's last, as the real backends).
    if (batch.tokenLogprobs) {
      result.tokenLogprobs = new Float32Array(batch.tokenIds.length).fill(-1); // (numTokens)
      for (let i = 1; i <= batch.numSeqs; i++) result.tokenLogprobs[batch.queryStarts[i]! - 1] = Number.NaN;
    }
    return result;
  }

  /** Throws when a sequence's already-computed positions include a slot this step writes. */
  private checkNoReadOfThisStepsWrites(batch: StepBatch): void {
    const written = new Set(batch.slotMapping);
    for (let i = 0; i < batch.numSeqs; i++) {
      const computed = batch.contextLens[i]! - (batch.queryStarts[i + 1]! - batch.queryStarts[i]!);
      for (let p = 0; p < computed; p++) {
        const block = batch.blockTables[i * batch.maxBlocksPerSeq + Math.floor(p / this.blockSize)]!;
        if (written.has(block * this.blockSize + (p % this.blockSize))) {
          throw new Error(`sequence ${i} reads position ${p} from a slot this same step writes`);
        }
      }
    }
  }

  async dispose(): Promise<void> {}
}

function copyBatch(batch: StepBatch): StepBatch {
  const sampling = { ...batch.sampling };
  for (const [key, value] of Object.entries(sampling)) {
    if (ArrayBuffer.isView(value)) Object.assign(sampling, { [key]: (value as Int32Array).slice() });
  }
  const copy: StepBatch = {
    ...batch,
    tokenIds: batch.tokenIds.slice(),
    positions: batch.positions.slice(),
    queryStarts: batch.queryStarts.slice(),
    contextLens: batch.contextLens.slice(),
    blockTables: batch.blockTables.slice(),
    slotMapping: batch.slotMapping.slice(),
    sample: batch.sample.slice(),
    sampling,
  };
  if (batch.prevTokenRows !== undefined) copy.prevTokenRows = batch.prevTokenRows.slice();
  return copy;
}

/** A ModelSource whose only real part is what the engine reads (the fake backend reads nothing). */
export function fakeModel(maxPositionEmbeddings = 2048): ModelSource {
  const config = { maxPositionEmbeddings, eosTokenIds: [] as number[] } as unknown as ModelConfig;
  return {
    dir: "fake",
    config,
    checkpoint: noTensorCheckpoint("fake", "the fake model"),
  };
}
