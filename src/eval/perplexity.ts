/**
 * Perplexity with the protocol of ../shared/models/reference.json: the whole text tokenized once (one BOS at the
 * start), cut into non-overlapping windows of `ctx` tokens (the tail shorter than ctx is dropped); for each window
 * the mean cross-entropy of tokens 1..ctx-1 given the tokens before them in the window; ppl = exp(mean over
 * windows). The backend computes log p(next token) for every position of a step (StepBatch.tokenLogprobs).
 */
import type { Backend, KvLayout } from "../backend/backend.js";
import { buildStepBatch } from "../engine/model-runner.js";

export interface PerplexityOptions {
  /** Window length in tokens (512). */
  ctx?: number;
  /** Evaluate only the first N windows. */
  maxWindows?: number;
  /** Most tokens per backend step (a window is run in chunks when it is longer); default ctx. */
  maxTokensPerStep?: number;
  /** The backend's KV layout (from load()); the window uses blocks 0..ctx/blockSize-1. Default block size 16. */
  kvLayout?: KvLayout;
  onProgress?: (doneWindows: number, totalWindows: number) => void;
  signal?: AbortSignal;
}

export interface PerplexityResult {
  perplexity: number;
  windows: number;
  /** Tokens evaluated (windows x ctx). */
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

/** One step of `ids[from .. to)` of a sequence occupying blocks 0.. of the cache (the identity block table). */
function windowStep(ids: ArrayLike<number>, from: number, to: number, table: Int32Array, blockSize: number) {
  return buildStepBatch(
    [
      {
        tokenIds: ids,
        numComputedTokens: from,
        numNewTokens: to - from,
        blockTable: table,
        sample: false,
        sampling: {},
        tokenLogprobs: true,
      },
    ],
    blockSize,
  );
}

/** Perplexity of `tokenIds` (already tokenized, BOS first) on a loaded, otherwise idle backend. */
export async function computePerplexity(
  backend: Backend,
  tokenIds: ArrayLike<number>,
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const ctx = options.ctx ?? 512;
  if (!(Number.isInteger(ctx) && ctx >= 2))
    throw new Error(`perplexity: ctx must be an integer >= 2, got ${ctx}`);
  const chunk = options.maxTokensPerStep ?? ctx;
  if (!(Number.isInteger(chunk) && chunk >= 2))
    throw new Error(`perplexity: maxTokensPerStep must be >= 2, got ${chunk}`);
  const blockSize = options.kvLayout?.blockSize ?? 16;
  const blocks = Math.ceil(ctx / blockSize);
  if (options.kvLayout !== undefined && options.kvLayout.numBlocks < blocks) {
    throw new Error(
      `perplexity: a window of ${ctx} tokens needs ${blocks} KV blocks, the backend has ${options.kvLayout.numBlocks}`,
    );
  }
  let windows = Math.floor(tokenIds.length / ctx);
  if (options.maxWindows !== undefined) windows = Math.min(windows, options.maxWindows);
  if (windows === 0)
    throw new Error(`perplexity: the text has ${tokenIds.length} tokens, fewer than one window of ${ctx}`);
  const table = Int32Array.from({ length: blocks }, (_, b) => b); // (blocks) the window's block table
  const started = performance.now();
  let sumWindowLoss = 0;
  for (let w = 0; w < windows; w++) {
    options.signal?.throwIfAborted();
    const ids = Array.prototype.slice.call(tokenIds, w * ctx, (w + 1) * ctx) as number[];
    let windowLoss = 0;
    // Chunks overlap by one token: a chunk's last token has no logprob (its successor is not in the step),
    // so it is run again first in the next chunk, rewriting identical K/V into the same slot.
    for (let from = 0; from < ctx - 1; ) {
      const to = Math.min(ctx, from + chunk);
      const result = await backend.step(windowStep(ids, from, to, table, blockSize));
      const lps = result.tokenLogprobs;
      if (lps === undefined) throw new Error(`perplexity: backend ${backend.name} returned no tokenLogprobs`);
      for (let i = 0; i < to - from - 1; i++) {
        const lp = lps[i];
        if (!Number.isFinite(lp))
          throw new Error(`perplexity: non-finite logprob ${lp} at window ${w}, position ${from + i + 1}`);
        windowLoss -= lp;
      }
      from = to - 1;
    }
    sumWindowLoss += windowLoss / (ctx - 1);
    options.onProgress?.(w + 1, windows);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    perplexity: Math.exp(sumWindowLoss / windows),
    windows,
    tokens: windows * ctx,
    seconds,
    tokensPerSecond: (windows * ctx) / seconds,
  };
}
