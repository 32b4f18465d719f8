/**
 * Who runs this step (nano-vllm's Scheduler, vLLM v1's unified token budget): running sequences first
 * (decodes, and prefills that are still being chunked), then waiting ones, under maxNumBatchedTokens and
 * maxNumSeqs. A prompt longer than the budget left is prefilled in chunks over several steps. When KV blocks
 * run out, the NEWEST running sequence is preempted: its blocks are freed and it goes back to the front of
 * the waiting queue, to be recomputed (prompt + output so far) later.
 *
 * Admission keeps room to grow (kvReserveTokens): a waiting sequence starts only while the free blocks cover its
 * own prompt and, for it and every running sequence, min(its max_tokens left, kvReserveTokens) more tokens. vLLM
 * admits while the prompt fits; when the cache is the limit (many long requests) its running sequences then run out
 * of blocks as they decode and the newest are preempted and recomputed, again and again (H200, 13B, fp16 KV, 256
 * clients of 512 + 128 tokens: 33 preemptions and 2,571 output tokens/s under vLLM's rule, 0 and 2,634 with room for
 * 256 tokens; docs/benchmarks.md, 2026-12-06i). 0 restores vLLM's rule.
 */
import type { StepBatch, StepResult } from "../backend/backend.js";
import type { BlockManager } from "./block-manager.js";
import type { Sequence } from "./sequence.js";
import type { TokenLogprob } from "./types.js";

export interface SchedulerConfig {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /**
   * Decode tokens of room each sequence keeps when new ones are admitted (capped by its max_tokens left); 0: admit
   * while the prompt fits, as vLLM. Default DEFAULT_KV_RESERVE_TOKENS.
   */
  kvReserveTokens?: number;
}

/** Default kvReserveTokens: a typical answer's length; any max_tokens up to it is reserved exactly. */
export const DEFAULT_KV_RESERVE_TOKENS = 256;

export interface ScheduledSequence {
  seq: Sequence;
  /** Tokens of the sequence computed this step (1 for a decode). */
  numNewTokens: number;
  /** Whether this step reaches the sequence's last token, whose logits are sampled. */
  sample: boolean;
}

export interface SchedulerOutput {
  scheduled: ScheduledSequence[];
  /**
   * Sequences taken out of the queues (their blocks freed) that the engine finishes with an error: ones that
   * cannot fit the KV cache, the head of the waiting queue when nothing could be scheduled with nothing
   * running, and ones whose own prefix-cache hashing threw (that request alone fails).
   */
  unfittable: { seq: Sequence; reason: string }[];
  /** How many sequences were preempted this step. */
  numPreempted: number;
}

/** A scheduled sequence that is still live after its step: what the engine delivers to the request. */
export interface SequenceUpdate {
  seq: Sequence;
  /** Its index in the step (into StepResult's per-sequence arrays). */
  index: number;
  /** The token sampled for it; null for a prefill chunk that does not reach the end. */
  tokenId: number | null;
}

export class Scheduler {
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];
  /** Total preemptions since start (for stats and tests). */
  numPreemptions = 0;
  /** Prompt tokens looked up in the prefix cache at first admission, and those found (vLLM's queries / hits). */
  prefixCacheQueries = 0;
  prefixCacheHits = 0;
  /** Told the scheduled token count of every step that runs (metrics' iteration tokens). */
  readonly iterationListeners = new Set<(numTokens: number) => void>();
  /** Listeners that threw once (warned about; still called: a metric that fails once may work again). */
  private readonly failedListeners = new WeakSet<(numTokens: number) => void>();
  /**
   * Sequences whose last step filled blocks not hashed into the prefix cache yet (deferHashing): the engine
   * hashes them after its next launch (hashDeferred), or schedule() does first when a waiting sequence may look
   * them up. A reused array, with a count.
   */
  private readonly unhashed: (Sequence | undefined)[] = [];
  private numUnhashed = 0;

  private readonly kvReserveTokens: number;

  constructor(
    private readonly blockManager: BlockManager,
    private readonly config: SchedulerConfig,
  ) {
    const reserve = config.kvReserveTokens ?? DEFAULT_KV_RESERVE_TOKENS;
    if (!Number.isInteger(reserve) || reserve < 0)
      throw new Error(`kvReserveTokens must be a non-negative integer, got ${reserve}`);
    this.kvReserveTokens = reserve;
  }

  /** Blocks `seq` needs in all to hold its tokens and grow by min(its max_tokens left, kvReserveTokens). */
  private blocksWithRoom(seq: Sequence): number {
    const left = Math.max(0, seq.stopChecker.maxOutputTokens - seq.numOutputTokens);
    return this.blockManager.blocksFor(seq.numTokens + Math.min(this.kvReserveTokens, left));
  }

  /** Blocks `seq` will still take from the free pool to grow by its reserve (see kvReserveTokens). */
  private growthBlocks(seq: Sequence): number {
    return Math.max(0, this.blocksWithRoom(seq) - seq.blockTable.length);
  }

  add(seq: Sequence): void {
    seq.status = "waiting";
    this.waiting.push(seq);
  }

  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** Takes a sequence out of the queues and gives its blocks back (finish, abort, error). */
  remove(seq: Sequence): void {
    removeFrom(this.running, seq) || removeFrom(this.waiting, seq);
    if (seq.blockTable.length > 0) this.blockManager.free(seq);
  }

  /** Whether sequences wait for deferHashing's hashing. */
  get hasDeferredHashing(): boolean {
    return this.numUnhashed > 0;
  }

  /** Leaves the hashing of a sequence's newly full blocks for hashDeferred (off the caller's critical path). */
  deferHashing(seq: Sequence): void {
    this.unhashed[this.numUnhashed++] = seq;
  }

  /**
   * Hashes the full blocks of the sequences deferHashing left, into the prefix cache. A sequence whose hashing
   * throws is handed to onError with an Error saying so (it alone fails; its blocks are not cached), the others
   * are hashed. A sequence freed meanwhile has nothing left to hash.
   */
  hashDeferred(onError: (seq: Sequence, err: unknown) => void): void {
    const count = this.numUnhashed;
    this.numUnhashed = 0;
    for (let i = 0; i < count; i++) {
      const seq = this.unhashed[i]!;
      this.unhashed[i] = undefined;
      try {
        this.cacheFullBlocks(seq);
      } catch (err) {
        onError(seq, err);
      }
    }
  }

  /** Forgets the deferred hashing (the engine failed every request). */
  dropDeferredHashing(): void {
    this.unhashed.fill(undefined, 0, this.numUnhashed);
    this.numUnhashed = 0;
  }

  schedule(): SchedulerOutput {
    const bm = this.blockManager;
    let budget = this.config.maxNumBatchedTokens;
    const scheduled: ScheduledSequence[] = [];
    const unfittable: SchedulerOutput["unfittable"] = [];
    let numPreempted = 0;

    if (this.numUnhashed > 0 && this.waiting.length > 0 && bm.enablePrefixCaching) {
      // A waiting sequence may share the blocks the last step filled (a prefix still being prefilled in chunks):
      // hashed now, before it looks, so it reuses every full block. Their KV is written: that step returned. A
      // step's tokens count in numComputedTokens only once it returns, so a block it writes is never cached
      // (nor reused) before then. Without a waiting sequence the hashing stays after the next launch.
      this.hashDeferred((seq, err) => {
        this.remove(seq);
        unfittable.push({ seq, reason: (err as Error).message });
      });
    }

    let index = 0;
    while (index < this.running.length && budget > 0) {
      const seq = this.running[index]!;
      if (budget >= 2 && seq.missesPromptLogprobAt(seq.numComputedTokens)) {
        // The previous chunk's last token had no successor in its step, so its prompt logprob is missing:
        // run that token again (rewriting identical KV into the same slot) at the head of this chunk.
        seq.numComputedTokens--;
      }
      const numNewTokens = Math.min(seq.numTokens - seq.numComputedTokens, budget);
      const blocksNeeded = bm.blocksFor(seq.numComputedTokens + numNewTokens);
      if (blocksNeeded > bm.numBlocks) {
        this.running.splice(index, 1);
        bm.free(seq); // now, so the sequences after it can use the blocks this step
        unfittable.push({ seq, reason: cacheTooSmall(seq.numComputedTokens + numNewTokens, bm) });
        continue;
      }
      let fits = bm.allocate(seq, numNewTokens);
      while (!fits) {
        // Free the newest running sequence (possibly this one) and try again.
        const victim = this.running.pop()!;
        const failure = this.preempt(victim);
        if (failure !== null) unfittable.push({ seq: victim, reason: failure });
        numPreempted++;
        if (victim === seq) break;
        fits = bm.allocate(seq, numNewTokens);
      }
      if (!fits) continue; // seq itself went back to waiting; index now points past the end
      scheduled.push(entryOf(seq, numNewTokens));
      budget -= numNewTokens;
      index++;
    }

    // New work only when nothing had to make room (vLLM does the same: admitting now would thrash), and only while
    // the free blocks keep every admitted sequence's room to grow (kvReserveTokens; none needed with nothing running).
    const reserving = this.kvReserveTokens > 0 && numPreempted === 0 && this.waiting.length > 0;
    let reserved = 0; // blocks the running sequences will still take to grow by their reserve
    if (reserving) for (const seq of this.running) reserved += this.growthBlocks(seq);
    while (
      numPreempted === 0 &&
      budget > 0 &&
      this.waiting.length > 0 &&
      this.running.length < this.config.maxNumSeqs
    ) {
      const seq = this.waiting[0]!;
      if (bm.blocksFor(seq.numTokens) > bm.numBlocks) {
        this.waiting.shift();
        unfittable.push({ seq, reason: cacheTooSmall(seq.numTokens, bm) });
        continue;
      }
      // Prompt logprobs need every prompt token computed, so those requests skip the prefix cache.
      let cached: number[];
      try {
        cached = seq.promptLogprobs === null ? bm.findCachedPrefix(seq) : [];
      } catch (err) {
        this.waiting.shift(); // its own lookup (hashing its prompt) threw: it alone fails
        unfittable.push({ seq, reason: prefixCacheFailure(err) });
        continue;
      }
      const computed = cached.length > 0 ? cached.length * bm.blockSize : seq.numComputedTokens;
      const numNewTokens = Math.min(seq.numTokens - computed, budget);
      if (reserving && this.running.length > 0) {
        // Its whole prompt and reserve, less the cached blocks other sequences hold, on top of the running ones'.
        if (bm.numFreeBlocks - (this.blocksWithRoom(seq) - bm.numHeld(cached)) < reserved) break;
      }
      if (!bm.allocate(seq, numNewTokens, cached)) break;
      if (reserving) reserved += this.growthBlocks(seq);
      if (!seq.admitted) {
        seq.admitted = true;
        seq.scheduledAt = performance.now();
        seq.numCachedTokens = Math.min(computed, seq.numPromptTokens);
        if (seq.promptLogprobs === null) {
          this.prefixCacheQueries += seq.numPromptTokens;
          this.prefixCacheHits += seq.numCachedTokens;
        }
      }
      this.waiting.shift();
      seq.status = "running";
      this.running.push(seq);
      scheduled.push(entryOf(seq, numNewTokens));
      budget -= numNewTokens;
    }
    if (scheduled.length > 0 && this.iterationListeners.size > 0) {
      let numTokens = 0;
      for (const s of scheduled) numTokens += s.numNewTokens;
      for (const listener of this.iterationListeners) this.callIterationListener(listener, numTokens);
    }
    if (scheduled.length === 0 && this.running.length === 0 && this.waiting.length > 0) {
      // Nothing could be scheduled with nothing running: the head of the queue can never run.
      const seq = this.waiting.shift()!;
      unfittable.push({ seq, reason: "the request could not be scheduled (KV cache too small)" });
    }
    return { scheduled, unfittable, numPreempted };
  }

  /**
   * Blocks for a running sequence to hold `numTokens` positions, for a chained decode step launched before its
   * last step returned (the engine's launchContinuation); never preempts. False when the free pool is short.
   */
  growTo(seq: Sequence, numTokens: number): boolean {
    return this.blockManager.allocate(seq, Math.max(0, numTokens - seq.numComputedTokens));
  }

  /** Tells the iteration listeners of a step scheduled outside schedule() (a chained decode step). */
  noteIteration(numTokens: number): void {
    for (const listener of this.iterationListeners) this.callIterationListener(listener, numTokens);
  }

  /**
   * An iteration listener (metrics) runs inside schedule(), after the queues have changed: one that throws must not
   * abort the step and with it every running request. Its error becomes a process warning, once per listener.
   */
  private callIterationListener(listener: (numTokens: number) => void, numTokens: number): void {
    try {
      listener(numTokens);
    } catch (err) {
      if (this.failedListeners.has(listener)) return;
      this.failedListeners.add(listener);
      const text = err instanceof Error ? err.message : String(err);
      process.emitWarning(
        `an engine iteration listener threw (later errors of it are not reported): ${text}`,
        {
          type: "AwqEngineWarning",
        },
      );
    }
  }

  /**
   * The post-step update (vLLM v1's update_from_output, nano-vllm's postprocess): the scheduled tokens now
   * have KV (full blocks enter the prefix cache), prompt logprobs are recorded. Sequences finished while the
   * step ran are skipped; the live ones come back with their sampled token for the engine to deliver.
   */
  updateFromOutput(
    scheduled: readonly ScheduledSequence[],
    batch: StepBatch,
    result: StepResult,
  ): SequenceUpdate[] {
    const updates: SequenceUpdate[] = [];
    this.applyOutput(scheduled, batch, result, (seq, index, tokenId) =>
      updates.push({ seq, index, tokenId }),
    );
    return updates;
  }

  /**
   * updateFromOutput without the update objects: visit(seq, index, tokenId) for each live sequence, in step
   * order. With cacheBlocks false the full blocks are not hashed here: the caller calls cacheFullBlocks(seq) or
   * deferHashing(seq) (hashed off its critical path), before the sequence's blocks are freed. With onError, a
   * throw while handling one sequence (its prompt logprob entries, hashing, visit) goes there, for that
   * sequence alone to fail, and the others are still visited.
   */
  applyOutput(
    scheduled: readonly ScheduledSequence[],
    batch: StepBatch,
    result: StepResult,
    visit: (seq: Sequence, index: number, tokenId: number | null) => void,
    cacheBlocks = true,
    onError?: (seq: Sequence, err: unknown) => void,
  ): void {
    for (let index = 0; index < scheduled.length; index++) {
      const { seq, numNewTokens, sample } = scheduled[index]!;
      if (seq.isFinished) continue;
      try {
        const start = seq.numComputedTokens;
        seq.numComputedTokens += numNewTokens;
        if (cacheBlocks) this.blockManager.cacheFullBlocks(seq);
        if (seq.promptLogprobs !== null && result.tokenLogprobs !== undefined) {
          // Token t's entry is the logprob of token t + 1; the last token of the step has none.
          const firstToken = batch.queryStarts[index]!;
          for (let k = 0; k + 1 < numNewTokens && start + k + 1 < seq.numPromptTokens; k++) {
            const position = start + k + 1;
            seq.setPromptLogprob(
              position,
              promptEntry(seq.tokenIds[position]!, result, firstToken + k, seq.params.promptLogprobs ?? 0),
            );
          }
        }
        visit(seq, index, sample ? result.tokenIds[index]! : null);
      } catch (err) {
        if (onError === undefined) throw err;
        onError(seq, err);
      }
    }
  }

  /**
   * Hashes the sequence's blocks that are full, into the prefix cache (see applyOutput). A throw says it is this
   * request's prefix caching that failed.
   */
  cacheFullBlocks(seq: Sequence): void {
    try {
      this.blockManager.cacheFullBlocks(seq);
    } catch (err) {
      throw new Error(prefixCacheFailure(err));
    }
  }

  /**
   * Frees a running sequence's blocks and puts it back at the head of the queue; when hashing its blocks throws,
   * it is freed but not queued again: returns why it must fail (null: preempted).
   */
  private preempt(seq: Sequence): string | null {
    let failure: string | null = null;
    try {
      // Its last step's full blocks may not be hashed yet (the engine hashes after the next launch): hashed
      // now, so its recompute (or another request) finds them in the prefix cache.
      this.cacheFullBlocks(seq);
    } catch (err) {
      failure = (err as Error).message;
    }
    this.blockManager.free(seq);
    this.numPreemptions++;
    if (failure !== null) return failure;
    seq.status = "waiting";
    this.waiting.unshift(seq);
    return null;
  }
}

/** The error of a request whose prefix-cache hashing threw. */
function prefixCacheFailure(err: unknown): string {
  return `engine error: prefix caching failed for this request: ${err instanceof Error ? err.message : String(err)}`;
}

/**
 * The sequence's schedule entry for this step. One object per sequence, rewritten by its next schedule: an
 * entry is read until its step's output is applied, which comes before the next schedule.
 */
function entryOf(seq: Sequence, numNewTokens: number): ScheduledSequence {
  const sample = seq.numComputedTokens + numNewTokens === seq.numTokens;
  const entry = seq.scheduledEntry;
  if (entry === null) {
    seq.scheduledEntry = { seq, numNewTokens, sample };
    return seq.scheduledEntry;
  }
  entry.numNewTokens = numNewTokens;
  entry.sample = sample;
  return entry;
}

function removeFrom(list: Sequence[], seq: Sequence): boolean {
  const index = list.indexOf(seq);
  if (index === -1) return false;
  list.splice(index, 1);
  return true;
}

function cacheTooSmall(numTokens: number, bm: BlockManager): string {
  return (
    `the request needs ${bm.blocksFor(numTokens)} KV blocks for ${numTokens} tokens but the whole cache has ` +
    `${bm.numBlocks} blocks of ${bm.blockSize} tokens; use a shorter prompt or max_tokens, or a larger cache`
  );
}

/**
 * The prompt logprob entry of the token after step row `row`: its logprob, and where the backend returned
 * them (result.tokenTop) its rank and the top `wanted` alternatives.
 */
function promptEntry(tokenId: number, result: StepResult, row: number, wanted: number): TokenLogprob {
  const entry: TokenLogprob = { tokenId, logprob: result.tokenLogprobs![row]!, top: [] };
  const tokenTop = result.tokenTop;
  if (tokenTop === undefined) return entry;
  const stride = tokenTop.ids.length / result.tokenLogprobs!.length;
  for (let k = 0; k < Math.min(wanted, stride); k++) {
    const id = tokenTop.ids[row * stride + k]!;
    if (id < 0) break;
    entry.top.push({ tokenId: id, logprob: tokenTop.logprobs[row * stride + k]! });
  }
  const rank = tokenTop.ranks[row]!;
  if (rank > 0) entry.rank = rank;
  return entry;
}
