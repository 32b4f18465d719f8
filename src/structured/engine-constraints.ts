/**
 * The engine's side of output constraints: validating the request fields, building each sequence's
 * SequenceConstraint (grammar + allowed_token_ids + bad_words), and the per-step bitmask rows shipped in
 * SamplingArrays. The engine calls these few functions; the grammar engine stays behind them.
 */
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { type ConstraintSpec, specKey } from "./constraint-spec.js";
import { validateSpec, vocabInfoFor } from "./grammar-engine.js";
import { type FillJob, GrammarPool, type GrammarPoolOptions, type RemoteGrammar } from "./grammar-pool.js";
import { SequenceConstraint } from "./sequence-constraint.js";

/** The constraint fields of a request, validated (see resolveConstraintParams). */
export interface ResolvedConstraintParams {
  /** Structured output (response_format, structured_outputs, guided_*, tools): null = none. */
  structuredOutput: ConstraintSpec | null;
  /** vLLM's allowed_token_ids: null = all. */
  allowedTokenIds: number[] | null;
  /** vLLM's bad_words. */
  badWords: string[];
}

/** The request-side fields (camelCase, as in SamplingParams). */
export interface ConstraintParams {
  structuredOutput?: ConstraintSpec | null;
  allowedTokenIds?: number[] | null;
  badWords?: string[] | null;
}

/** Validates the constraint fields; `fail(param, message)` throws the caller's InvalidParamError. */
export function resolveConstraintParams(
  p: ConstraintParams,
  vocabSize: number | undefined,
  fail: (param: string, message: string) => never,
): ResolvedConstraintParams {
  let allowedTokenIds: number[] | null = null;
  if (p.allowedTokenIds !== undefined && p.allowedTokenIds !== null) {
    if (!Array.isArray(p.allowedTokenIds) || p.allowedTokenIds.length === 0) {
      fail("allowed_token_ids", "allowed_token_ids must be a non-empty list of token ids");
    }
    for (const id of p.allowedTokenIds) {
      if (
        typeof id !== "number" ||
        !Number.isInteger(id) ||
        id < 0 ||
        (vocabSize !== undefined && id >= vocabSize)
      ) {
        fail(
          "allowed_token_ids",
          `allowed_token_ids: ${JSON.stringify(id)} is not a token id of the vocabulary (0..${(vocabSize ?? 0) - 1})`,
        );
      }
    }
    allowedTokenIds = [...new Set(p.allowedTokenIds)];
  }
  let badWords: string[] = [];
  if (p.badWords !== undefined && p.badWords !== null) {
    if (
      !Array.isArray(p.badWords) ||
      p.badWords.some((w) => typeof w !== "string" || w.trim().length === 0)
    ) {
      fail("bad_words", "bad_words must be a list of non-empty strings");
    }
    badWords = [...new Set(p.badWords)];
  }
  const spec = p.structuredOutput ?? null;
  if (spec !== null && (typeof spec !== "object" || typeof (spec as { type?: unknown }).type !== "string")) {
    fail("structured_outputs", "structured output must be a constraint object");
  }
  return { structuredOutput: spec, allowedTokenIds, badWords };
}

/** Whether a sequence with these params needs a SequenceConstraint. */
export function needsConstraint(p: ResolvedConstraintParams): boolean {
  return p.structuredOutput !== null || p.allowedTokenIds !== null || p.badWords.length > 0;
}

/** One per engine: the grammar workers (started on first use: ~0.5 s) and the bad-word tokenizations. */
export class ConstraintFactory {
  private pool: Promise<GrammarPool> | null = null;
  /** The pool once made (every sequence with a grammar implies it). */
  private poolReady: GrammarPool | null = null;
  /** The step masks' memory, shared with the grammar workers; grown as needed, reused step after step. */
  private maskBuffer = new SharedArrayBuffer(0);
  /** Specs already validated, with their cache keys. */
  private readonly specKeys = new WeakMap<ConstraintSpec, string>();

  constructor(
    private readonly tokenizer: Tokenizer,
    /** Rows of the logits (config.json vocab_size). */
    readonly vocabSize: number,
    private readonly poolOptions: GrammarPoolOptions = {},
  ) {}

  get maskWords(): number {
    return Math.ceil(this.vocabSize / 32);
  }

  private grammarPool(): Promise<GrammarPool> {
    if (this.pool === null) {
      this.pool = vocabInfoFor(this.tokenizer, this.vocabSize).then((v) => {
        this.poolReady = new GrammarPool(v, this.poolOptions);
        return this.poolReady;
      });
      this.pool.catch(() => {
        this.pool = null;
      });
    }
    return this.pool;
  }

  /**
   * Compiles (cached) a structured output on a worker; throws GrammarError when it cannot be compiled. A spec
   * object is checked and keyed once (a batch of requests shares one: ~0.2 ms each on the event loop saved);
   * a spec is not changed once submitted.
   */
  async compile(spec: ConstraintSpec): Promise<RemoteGrammar> {
    let key = this.specKeys.get(spec);
    if (key === undefined) {
      validateSpec(spec);
      key = specKey(spec);
      this.specKeys.set(spec, key);
    }
    return (await this.grammarPool()).compile(spec, key);
  }

  async create(p: ResolvedConstraintParams): Promise<SequenceConstraint> {
    const grammar = p.structuredOutput !== null ? await this.compile(p.structuredOutput) : undefined;
    return SequenceConstraint.create(
      {
        grammar,
        allowedTokenIds: p.allowedTokenIds ?? undefined,
        badWords: p.badWords.flatMap((w) => badWordTokenizations(this.tokenizer, w)),
      },
      this.maskWords,
      grammar !== undefined ? await this.grammarPool() : null,
    );
  }

  /**
   * Starts the bitmask rows of a step: one per sequence that samples this step and has a mask; null when none
   * has. The grammar rows are written by the workers while the caller goes on (the backend runs the step);
   * `masksReady` resolves once every row is written.
   */
  startStepMasks(
    seqs: readonly { constraint: SequenceConstraint | null; sample: boolean }[],
  ): PendingStepMasks | null {
    const maskWords = this.maskWords;
    const maskRow = new Int32Array(seqs.length).fill(-1); // (numSeqs)
    const maskBeforeLogprobs = new Uint8Array(seqs.length); // (numSeqs)
    let rows = 0;
    seqs.forEach((s, i) => {
      if (s.sample && s.constraint?.hasMask) {
        maskRow[i] = rows++;
        maskBeforeLogprobs[i] = s.constraint.maskBeforeLogprobs ? 1 : 0;
      }
    });
    if (rows === 0) return null;
    const bytes = rows * maskWords * 4;
    if (this.maskBuffer.byteLength < bytes) this.maskBuffer = new SharedArrayBuffer(bytes * 2);
    const tokenMask = new Int32Array(this.maskBuffer, 0, rows * maskWords); // (numRows, maskWords)
    let grammarRows = 0;
    for (const [i, s] of seqs.entries()) {
      const row = maskRow[i]!;
      if (row < 0) continue;
      if (s.constraint!.hasGrammar) grammarRows++;
      else s.constraint!.fillFixedRow(tokenMask.subarray(row * maskWords, (row + 1) * maskWords));
    }
    const masks: StepMasks = { maskWords, maskRow, tokenMask, maskBeforeLogprobs };
    if (grammarRows === 0) return { masks, done: Promise.resolve(), masksReady: () => Promise.resolve() };
    // The grammar rows go to the workers in a microtask: after the caller's synchronous code, so that a backend
    // launching its forward pass at once (CUDA) does so before this work, which then overlaps it.
    const buffer = this.maskBuffer;
    const done = Promise.resolve().then(() => this.fillGrammarRows(seqs, maskRow, tokenMask, buffer));
    const masksReady = async () => {
      const t0 = recordTimings ? performance.now() : 0;
      await done;
      if (recordTimings) maskWaits.push(performance.now() - t0);
    };
    return { masks, done, masksReady };
  }

  /** Has the workers write the grammar rows of a step; resolves (never rejects) once every row is written. */
  private async fillGrammarRows(
    seqs: readonly { constraint: SequenceConstraint | null }[],
    maskRow: Int32Array, // (numSeqs)
    tokenMask: Int32Array, // (numRows, maskWords)
    buffer: SharedArrayBuffer,
  ): Promise<void> {
    const maskWords = this.maskWords;
    const withGrammar: SequenceConstraint[] = [];
    for (const [i, s] of seqs.entries())
      if (maskRow[i]! >= 0 && s.constraint!.hasGrammar) withGrammar.push(s.constraint!);
    const jobs: FillJob[] = [];
    try {
      // Spread the rows of each grammar over the workers holding it (one worker fills its rows in turn).
      if (this.poolReady !== null && withGrammar.length > 1) {
        const moves = this.poolReady.balance(withGrammar.map((c) => c.remoteMatcher!));
        moves.forEach((dest, k) => {
          if (dest !== null) withGrammar[k]!.moveTo(dest);
        });
      }
      for (const [i, s] of seqs.entries()) {
        if (maskRow[i]! >= 0 && s.constraint!.hasGrammar)
          jobs.push(s.constraint!.fillJob(maskRow[i]!, tokenMask));
      }
      const result = await (await this.grammarPool()).fill(buffer, jobs);
      // A hung worker may write its (failed) rows until its thread stops: later steps get fresh memory.
      if (result.workerLost && this.maskBuffer === buffer) this.maskBuffer = new SharedArrayBuffer(0);
      jobs.forEach((job, k) => {
        const c = withGrammar[k]!;
        if (result.rejected.has(job.matcher.id)) {
          const why =
            job.matcher.error?.message ?? "the grammar engine could not advance this sequence's grammar";
          c.markFailed(`structured output: ${why}`);
        } else {
          c.applyAllowed(tokenMask.subarray(job.row * maskWords, (job.row + 1) * maskWords));
        }
      });
      if (recordTimings) maskTimings.push(...result.fillMs);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      for (const [i, s] of seqs.entries()) {
        const row = maskRow[i]!;
        if (row >= 0 && s.constraint!.hasGrammar) tokenMask.fill(-1, row * maskWords, (row + 1) * maskWords);
      }
      for (const c of withGrammar) c.markFailed(`structured output: ${why}`);
    }
  }

  /** Stops the grammar workers. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.poolReady = null;
    await (await pool?.catch(() => null))?.close();
  }
}

/**
 * vLLM's bad_words tokenization: the word (left-stripped) alone, and with a leading space when that is another
 * tokenization of the same length (the word in the middle of a text).
 */
export function badWordTokenizations(tokenizer: Tokenizer, word: string): number[][] {
  const bare = tokenizer.encode(word.trimStart(), { addBos: false });
  const spaced = tokenizer.encode(` ${word.trimStart()}`, { addBos: false });
  const out = [bare];
  if (spaced.length === bare.length && spaced[0] !== bare[0]) out.push(spaced);
  return out;
}

/** The mask fields of one step's SamplingArrays (see backend.ts). */
export interface StepMasks {
  maskWords: number;
  maskRow: Int32Array; // (numSeqs) row of tokenMask, -1 = unmasked
  tokenMask: Int32Array; // (numRows, maskWords), on a SharedArrayBuffer the grammar workers write
  maskBeforeLogprobs: Uint8Array; // (numSeqs)
}

/** A step's masks while the grammar workers write them. */
export interface PendingStepMasks {
  masks: StepMasks;
  /** Resolves (never rejects) once every row is written; a failed row marks its constraint failed. */
  done: Promise<void>;
  /** What the backend awaits right before sampling (StepBatch.masksReady); records the wait for benchmarks. */
  masksReady: () => Promise<void>;
}

/** Fill time per masked sequence and step on its grammar worker, in ms (the benchmark reads it). */
export const maskTimings: number[] = [];
/** Per step: how long the backend waited for the masks when it was ready to sample, in ms. */
export const maskWaits: number[] = [];
let recordTimings = false;
export function recordMaskTimings(on: boolean): void {
  recordTimings = on;
  maskTimings.length = 0;
  maskWaits.length = 0;
}
