/**
 * vLLM's `--dataset-name random` prompts: each prompt is a run of consecutive token ids from a random offset
 * in the vocabulary, decoded to text, with a length drawn uniformly from
 * [inputLen * (1 - rangeRatio), inputLen * (1 + rangeRatio)]. Decoding and re-encoding a token run does not
 * always give back the same count, so the text is adjusted (tokens cut or appended, re-decoded) until the
 * tokenizer encodes it to exactly the drawn length (special tokens, such as BOS, not counted: the server adds
 * its BOS on top, as with vLLM).
 */
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { SeededRandom } from "./seeded-random.js";

/** Prompts built per turn of the event loop (a 512-token prompt takes ~3 ms with the fast encoder, ~40 with the library). */
const PROMPTS_PER_TURN = 4;

export interface RandomDatasetOptions {
  numPrompts: number;
  inputLen: number;
  outputLen: number;
  rangeRatio: number;
  seed: number;
}

export interface BenchRequestSpec {
  prompt: string;
  /** Tokens of `prompt` for the bench's tokenizer, without BOS. */
  promptLen: number;
  /** max_tokens of this request. */
  outputLen: number;
}

/** The length range vLLM draws from: floor(n(1-r)) .. ceil(n(1+r)), inclusive. */
export function lengthRange(n: number, ratio: number): [number, number] {
  return [Math.max(1, Math.floor(n * (1 - ratio))), Math.ceil(n * (1 + ratio))];
}

/** Ids a random prompt may use: every id that is not special (BOS, EOS, pad, chat markers). */
function ordinaryIds(tokenizer: Tokenizer): number[] {
  const ids: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    if (tokenizer.isSpecial(id)) continue;
    const token = tokenizer.idToToken(id);
    // Byte-fallback pieces (<0x0A>) decode to partial UTF-8 on their own: leave them out, as they make the
    // decoded text's length unstable.
    if (token === undefined || /^<0x[0-9A-Fa-f]{2}>$/.test(token)) continue;
    ids.push(id);
  }
  return ids;
}

/** Text that `tokenizer` encodes to exactly `target` tokens (no BOS), built from `seedIds`. */
export function textOfExactLength(
  tokenizer: Tokenizer,
  seedIds: readonly number[],
  target: number,
  fill: () => number,
): string {
  let ids = seedIds.slice(0, target);
  for (let attempt = 0; attempt < 64; attempt++) {
    const text = tokenizer.decode(ids, { skipSpecialTokens: true });
    const encoded = tokenizer.encode(text, { addBos: false });
    if (encoded.length === target) return text;
    // Work from the re-encoded ids: cut the surplus, or append fresh ids for the shortfall.
    ids = encoded.length > target ? encoded.slice(0, target) : [...encoded];
    while (ids.length < target) ids.push(fill());
  }
  throw new Error(`could not build a prompt of exactly ${target} tokens for this tokenizer`);
}

/**
 * The prompts, built a few at a time between turns of the event loop: hundreds of 512-token prompts take
 * seconds of tokenizer work, and a client that blocks that long finds its pooled keep-alive connection to the
 * server closed under it (the server's keep-alive timeout, 5 s for `awq serve`) by the time it sends the test
 * request. Same prompts for the same options.
 */
export async function randomDataset(
  tokenizer: Tokenizer,
  opts: RandomDatasetOptions,
): Promise<BenchRequestSpec[]> {
  if (!(opts.rangeRatio >= 0 && opts.rangeRatio < 1)) {
    throw new Error(`--random-range-ratio must be in [0, 1), got ${opts.rangeRatio}`);
  }
  const rng = new SeededRandom(opts.seed);
  const vocab = ordinaryIds(tokenizer);
  const [inLo, inHi] = lengthRange(opts.inputLen, opts.rangeRatio);
  const [outLo, outHi] = lengthRange(opts.outputLen, opts.rangeRatio);
  const specs: BenchRequestSpec[] = [];
  for (let i = 0; i < opts.numPrompts; i++) {
    if (i % PROMPTS_PER_TURN === PROMPTS_PER_TURN - 1)
      await new Promise<void>((resolve) => setImmediate(resolve));
    const promptLen = rng.intInclusive(inLo, inHi);
    const outputLen = rng.intInclusive(outLo, outHi);
    const offset = rng.intInclusive(0, vocab.length - 1);
    const run = Array.from({ length: promptLen }, (_, k) => vocab[(offset + i + k) % vocab.length]!);
    const fill = () => vocab[rng.intInclusive(0, vocab.length - 1)]!;
    specs.push({ prompt: textOfExactLength(tokenizer, run, promptLen, fill), promptLen, outputLen });
  }
  return specs;
}
