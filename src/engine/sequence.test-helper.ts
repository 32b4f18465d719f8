/** A Sequence for the engine's unit tests: resolved params, eos 2, a roomy context unless told otherwise. */
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { resolveSamplingParams } from "./sampling-params.js";
import { Sequence } from "./sequence.js";
import type { SamplingParams } from "./types.js";

export function testSequence(
  tokenizer: Tokenizer,
  prompt: number[],
  params: SamplingParams = {},
  opts: { requestId?: string; maxModelLen?: number } = {},
): Sequence {
  return new Sequence({
    requestId: opts.requestId ?? "r",
    promptTokenIds: prompt,
    params: resolveSamplingParams(params),
    tokenizer,
    eosTokenIds: [2],
    maxModelLen: opts.maxModelLen ?? 1024,
  });
}
