/**
 * The engine's side of output constraints: validating the request fields, building each sequence's
 * SequenceConstraint (grammar + allowed_token_ids + bad_words), and the per-step bitmask rows shipped in
 * SamplingArrays. The engine calls these few functions; the grammar engine stays behind them.
 */
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import type { ConstraintSpec } from "./constraint-spec.js";
import { type CompiledGrammar, GrammarEngine, vocabInfoFor } from "./grammar-engine.js";
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

/** One per engine: the grammar engine (made on first use: ~0.5 s) and the bad-word tokenizations. */
export class ConstraintFactory {
  private grammar: Promise<GrammarEngine> | null = null;

  constructor(
    private readonly tokenizer: Tokenizer,
    /** Rows of the logits (config.json vocab_size). */
    readonly vocabSize: number,
  ) {}

  get maskWords(): number {
    return Math.ceil(this.vocabSize / 32);
  }

  private engine(): Promise<GrammarEngine> {
    if (this.grammar === null) {
      this.grammar = vocabInfoFor(this.tokenizer, this.vocabSize).then((v) => GrammarEngine.create(v));
      this.grammar.catch(() => {
        this.grammar = null;
      });
    }
    return this.grammar;
  }

  /** Compiles (cached) a structured output; throws GrammarError when it cannot be compiled. */
  async compile(spec: ConstraintSpec): Promise<CompiledGrammar> {
    return (await this.engine()).compile(spec);
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
    );
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
  tokenMask: Int32Array; // (numRows, maskWords)
  maskBeforeLogprobs: Uint8Array; // (numSeqs)
}

/** Mask time per masked sequence and step, in ms (the benchmark reads it). */
export const maskTimings: number[] = [];
let recordTimings = false;
export function recordMaskTimings(on: boolean): void {
  recordTimings = on;
  maskTimings.length = 0;
}

/**
 * The bitmask rows of a step: one per sequence that samples this step and has a mask. null when none has.
 * One after the other: the grammar engine is one single-threaded WebAssembly instance.
 */
export async function buildStepMasks(
  seqs: readonly { constraint: SequenceConstraint | null; sample: boolean }[],
  maskWords: number,
): Promise<StepMasks | null> {
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
  const tokenMask = new Int32Array(rows * maskWords); // (numRows, maskWords)
  for (const [i, s] of seqs.entries()) {
    const row = maskRow[i]!;
    if (row < 0) continue;
    const t0 = recordTimings ? performance.now() : 0;
    await s.constraint!.fillMask(tokenMask.subarray(row * maskWords, (row + 1) * maskWords));
    if (recordTimings) maskTimings.push(performance.now() - t0);
  }
  return { maskWords, maskRow, tokenMask, maskBeforeLogprobs };
}
