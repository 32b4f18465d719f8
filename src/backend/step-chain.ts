/**
 * Chained steps for the TypeScript backends (Backend.chainedSteps): steps run one after another in the order
 * step() was called, and a chained step's placeholder tokens (StepBatch.prevTokenRows) are filled from the result
 * of the step before it once that one has returned. The CUDA addon does the same natively.
 */
import type { StepBatch, StepResult } from "./backend.js";

/**
 * AWQ_ENGINE_ASYNC: whether steady decode steps are chained (the engine's asyncScheduling, and `awq bench
 * latency`'s decode loop): 0 or 1; unset or empty: 1. Anything else is refused, naming it (an A/B run must never
 * measure the default twice).
 */
export function chainedStepsFromEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.AWQ_ENGINE_ASYNC;
  if (value === undefined || value === "" || value === "1") return true;
  if (value === "0") return false;
  throw new Error(`AWQ_ENGINE_ASYNC must be 0 or 1 (or unset), got ${JSON.stringify(value)}`);
}

export class StepChain {
  /** The last step called: its result, or null when it failed (or none ran yet). Never rejects. */
  private tail: Promise<StepResult | null> = Promise.resolve(null);

  /** Runs `exec(batch)` after every step called before it has ended, its chained tokens filled in first. */
  run(batch: StepBatch, exec: (batch: StepBatch) => Promise<StepResult>): Promise<StepResult> {
    const started = this.tail.then((previous) => {
      if (batch.prevTokenRows !== undefined) fillChainedTokens(batch, previous);
      return exec(batch);
    });
    this.tail = started.catch(() => null);
    return started;
  }
}

/**
 * Writes into batch.tokenIds the tokens its prevTokenRows take from `previous` (the result of the step called
 * just before it; null when that step failed or there was none). Throws, naming the entry, when a row points at a
 * sequence the previous step did not sample.
 */
export function fillChainedTokens(batch: StepBatch, previous: StepResult | null): void {
  const rows = batch.prevTokenRows;
  if (rows === undefined) return;
  const tokenIds = batch.tokenIds; // (numTokens)
  if (rows.length !== tokenIds.length) {
    throw new Error(`prevTokenRows has ${rows.length} entries for a step of ${tokenIds.length} tokens`);
  }
  if (previous === null) {
    throw new Error("a chained step (prevTokenRows) continues a step that failed or never ran");
  }
  const sampled = previous.tokenIds; // (numSeqs of the previous step)
  for (let t = 0; t < rows.length; t++) {
    const row = rows[t]!;
    if (row < 0) continue;
    const id = row < sampled.length ? sampled[row]! : -1;
    if (id < 0) {
      throw new Error(
        `prevTokenRows[${t}] = ${row}: the previous step (${sampled.length} sequences) sampled no token there`,
      );
    }
    tokenIds[t] = id;
  }
}
