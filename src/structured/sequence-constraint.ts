/**
 * What constrains one sequence's next token, in the engine's terms: a grammar matcher (structured outputs),
 * vLLM's `allowed_token_ids` (a fixed set) and `bad_words` (token sequences whose last token is banned when the
 * output ends with the rest). The engine asks for a bitmask row per step, bans per step, and reports every
 * sampled token back; it never sees the grammar engine.
 */
import type { CompiledGrammar, GrammarMatcher } from "./grammar-engine.js";

export interface ConstraintOptions {
  grammar?: CompiledGrammar;
  allowedTokenIds?: readonly number[];
  /** Token ids of each bad word (every tokenization of it). */
  badWords?: readonly (readonly number[])[];
}

export class SequenceConstraint {
  private constructor(
    private readonly matcher: GrammarMatcher | null,
    private readonly allowed: Int32Array | null, // (maskWords) fixed allowed-token bits
    private readonly badWords: readonly (readonly number[])[],
    readonly maskWords: number,
  ) {}

  static async create(opts: ConstraintOptions, maskWords: number): Promise<SequenceConstraint> {
    let allowed: Int32Array | null = null;
    if (opts.allowedTokenIds !== undefined) {
      allowed = new Int32Array(maskWords); // (maskWords)
      for (const id of opts.allowedTokenIds) allowed[id >> 5] |= 1 << (id & 31);
    }
    const matcher = opts.grammar !== undefined ? await opts.grammar.newMatcher() : null;
    return new SequenceConstraint(
      matcher,
      allowed,
      (opts.badWords ?? []).filter((w) => w.length > 0),
      maskWords,
    );
  }

  /** Whether a bitmask row is needed for this sequence's steps. */
  get hasMask(): boolean {
    return this.matcher !== null || this.allowed !== null;
  }

  /**
   * Whether the mask applies before logprobs are taken (vLLM: a grammar masks the logits the sampler sees, so
   * logprobs are of the constrained distribution; allowed_token_ids is applied inside the sampler, after the
   * raw logprobs).
   */
  get maskBeforeLogprobs(): boolean {
    return this.matcher !== null;
  }

  /** Writes the allowed tokens of the next step into row (maskWords): bit t of word t >> 5. */
  async fillMask(row: Int32Array): Promise<void> {
    if (this.matcher !== null) await this.matcher.fillNextTokenBitmask(row);
    else row.fill(-1);
    if (this.allowed !== null) for (let w = 0; w < row.length; w++) row[w] &= this.allowed[w];
  }

  /** Tokens banned at the next step given the output so far (bad words). */
  bannedTokenIds(output: readonly number[]): number[] {
    const banned: number[] = [];
    for (const word of this.badWords) {
      const prefix = word.length - 1;
      if (prefix > output.length) continue;
      let match = true;
      for (let k = 0; k < prefix && match; k++) match = output[output.length - prefix + k] === word[k];
      if (match && !banned.includes(word[prefix]!)) banned.push(word[prefix]!);
    }
    return banned;
  }

  /** Advances the grammar by a sampled token; false when the grammar rejects it (the mask was not applied). */
  accept(tokenId: number): boolean {
    return this.matcher === null || this.matcher.acceptToken(tokenId);
  }

  /** The grammar is complete and its stop token was accepted: the sequence ends with "stop". */
  get terminated(): boolean {
    return this.matcher?.isTerminated() ?? false;
  }

  rollback(n: number): void {
    this.matcher?.rollback(n);
  }

  dispose(): void {
    this.matcher?.dispose();
  }
}

/** Whether token t is set in a bitmask row. */
export function maskAllows(row: Int32Array, tokenId: number): boolean {
  return ((row[tokenId >> 5]! >>> (tokenId & 31)) & 1) === 1;
}
