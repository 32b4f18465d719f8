/**
 * What constrains one sequence's next token, in the engine's terms: a grammar matcher (structured outputs),
 * vLLM's `allowed_token_ids` (a fixed set) and `bad_words` (token sequences whose last token is banned when the
 * output ends with the rest). The engine asks for a bitmask row per step, bans per step, and reports every
 * sampled token back; it never sees the grammar engine.
 *
 * The matcher lives on a grammar worker (grammar-pool.ts). A sampled token is checked here against the row
 * the step used (the backend applied it, so it must be allowed), queued, and sent to the worker with the
 * sequence's next fill; the grammar is terminated exactly when an allowed stop token was sampled (XGrammar's
 * matcher ends on its stop token and allows one only where the grammar is complete).
 */
import type { FillJob, GrammarPool, GrammarWorker, RemoteGrammar, RemoteMatcher } from "./grammar-pool.js";

export interface ConstraintOptions {
  grammar?: RemoteGrammar;
  allowedTokenIds?: readonly number[];
  /** Token ids of each bad word (every tokenization of it). */
  badWords?: readonly (readonly number[])[];
}

/** A copy of the matcher being made on another worker: null until made; `upTo` history tokens it accepted. */
interface PendingMove {
  copy: RemoteMatcher | null;
  upTo: number;
}

export class SequenceConstraint {
  /** Tokens accepted here and not yet sent to the matcher's worker. */
  private pendingAccepts: number[] = [];
  /** Every token the grammar accepted (to rebuild the matcher on another worker). */
  private readonly history: number[] = [];
  /** The row the last step sampled with (a view into that step's mask), until a token is accepted. */
  private lastRow: Int32Array | null = null;
  private ended = false;
  private failed: string | null = null;
  private disposed = false;
  /** A move to another worker under way (moveTo). */
  private move: PendingMove | null = null;

  private constructor(
    private readonly pool: GrammarPool | null,
    private matcher: RemoteMatcher | null,
    private readonly allowed: Int32Array | null, // (maskWords) fixed allowed-token bits
    private readonly badWords: readonly (readonly number[])[],
    readonly maskWords: number,
  ) {}

  static async create(
    opts: ConstraintOptions,
    maskWords: number,
    pool: GrammarPool | null,
  ): Promise<SequenceConstraint> {
    let allowed: Int32Array | null = null;
    if (opts.allowedTokenIds !== undefined) {
      allowed = new Int32Array(maskWords); // (maskWords)
      for (const id of opts.allowedTokenIds) allowed[id >> 5] |= 1 << (id & 31);
    }
    let matcher: RemoteMatcher | null = null;
    if (opts.grammar !== undefined) {
      if (pool === null) throw new Error("a grammar constraint needs the grammar pool");
      matcher = pool.newMatcher(opts.grammar);
    }
    return new SequenceConstraint(
      pool,
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

  /** Whether the row comes from a grammar worker (else fillFixedRow writes it). */
  get hasGrammar(): boolean {
    return this.matcher !== null;
  }

  /**
   * Whether the mask applies before logprobs are taken (vLLM: a grammar masks the logits the sampler sees, so
   * logprobs are of the constrained distribution; allowed_token_ids is applied inside the sampler, after the
   * raw logprobs).
   */
  get maskBeforeLogprobs(): boolean {
    return this.matcher !== null;
  }

  /** The grammar matcher (on its worker), null without a grammar. */
  get remoteMatcher(): RemoteMatcher | null {
    return this.matcher;
  }

  /**
   * Starts moving the matcher to another worker holding its grammar (GrammarPool.balance): a copy is made
   * there in the background while this one keeps filling the rows; the first fill after the copy is ready
   * uses it. Nothing while a move is under way.
   */
  moveTo(dest: GrammarWorker): void {
    const pool = this.pool;
    if (this.matcher === null || pool === null || this.disposed || this.move !== null) return;
    const move: PendingMove = { copy: null, upTo: this.history.length };
    this.move = move;
    pool.cloneMatcher(this.matcher, dest, this.history).then(
      (copy) => {
        if (this.move === move) move.copy = copy;
        else pool.disposeMatcher(copy); // disposed meanwhile
      },
      () => {
        if (this.move === move) this.move = null; // stays where it is
      },
    );
  }

  /** The worker job that fills this step's row (grammar constraints); the row is remembered for accept(). */
  fillJob(row: number, mask: Int32Array): FillJob {
    this.finishMove();
    const matcher = this.matcher;
    if (matcher === null) throw new Error("fillJob() without a grammar");
    this.lastRow = mask.subarray(row * this.maskWords, (row + 1) * this.maskWords);
    const accepts = this.pendingAccepts;
    this.pendingAccepts = [];
    return { matcher, row, accepts };
  }

  /** Writes the allowed tokens of a constraint without grammar into its row (allowed_token_ids). */
  fillFixedRow(row: Int32Array): void {
    row.fill(-1);
    this.applyAllowed(row);
    this.lastRow = row;
  }

  /** ANDs allowed_token_ids into a row the grammar worker wrote. */
  applyAllowed(row: Int32Array): void {
    if (this.allowed !== null) for (let w = 0; w < row.length; w++) row[w] &= this.allowed[w]!;
  }

  /** The grammar worker could not advance the matcher (or died): the sequence must end with this error. */
  markFailed(reason: string): void {
    this.failed ??= reason;
  }

  get failure(): string | null {
    return this.failed;
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

  /** Takes a sampled token; false when the step's mask did not allow it (the backend did not apply it). */
  accept(tokenId: number): boolean {
    if (this.failed !== null) return false;
    const row = this.lastRow;
    this.lastRow = null;
    if (!this.hasMask) return true;
    if (row === null || !maskAllows(row, tokenId)) return false;
    if (this.matcher !== null) {
      this.pendingAccepts.push(tokenId);
      this.history.push(tokenId);
      if (this.pool?.stopTokenIds.includes(tokenId)) this.ended = true;
    }
    return true;
  }

  /** The grammar is complete and its stop token was accepted: the sequence ends with "stop". */
  get terminated(): boolean {
    return this.ended;
  }

  /** Switches to the copy a finished move made; it gets the tokens accepted since its history. */
  private finishMove(): void {
    const copy = this.move?.copy;
    if (copy === null || copy === undefined || this.matcher === null) return;
    if (copy.worker.dead !== null) {
      // The copy's worker hung or died after making it: the original (on its own worker) goes on.
      this.pool?.disposeMatcher(copy);
      this.move = null;
      return;
    }
    this.pool?.disposeMatcher(this.matcher);
    this.matcher = copy;
    this.pendingAccepts = this.history.slice(this.move!.upTo);
    this.move = null;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.move?.copy) this.pool?.disposeMatcher(this.move.copy);
    this.move = null;
    if (this.matcher !== null) this.pool?.disposeMatcher(this.matcher);
    this.pendingAccepts = [];
    this.lastRow = null;
  }
}

/** Whether token t is set in a bitmask row. */
export function maskAllows(row: Int32Array, tokenId: number): boolean {
  return ((row[tokenId >> 5]! >>> (tokenId & 31)) & 1) === 1;
}
