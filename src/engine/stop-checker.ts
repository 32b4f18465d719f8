/**
 * When a sequence stops, with vLLM's semantics: max tokens / max-model-len ("length"), eos and stop token
 * ids ("stop", unless ignore_eos for eos), stop strings ("stop", the text cut before the string unless
 * include_stop_str_in_output). min_tokens holds every stop back: stop ids are banned from sampling
 * (a -Infinity logit bias) and stop strings are not looked for until that many tokens are out.
 */
import type { ResolvedSamplingParams } from "./sampling-params.js";
import type { FinishReason } from "./types.js";

const NO_TOKENS: readonly number[] = Object.freeze([]);

export interface StopDecision {
  finishReason: Extract<FinishReason, "stop" | "length">;
  /** The stop string or stop token id that ended it; null for eos and for "length". */
  stopReason: string | number | null;
}

export interface StopCheckerOptions {
  params: ResolvedSamplingParams;
  /** The model's end-of-sequence ids (ignored under ignore_eos). */
  eosTokenIds: readonly number[];
  /** The sequence may hold at most this many tokens (prompt + output). */
  maxModelLen: number;
  promptLen: number;
}

export class StopChecker {
  private readonly eosTokenIds: ReadonlySet<number>;
  private readonly stopTokenIds: ReadonlySet<number>;
  private readonly minTokens: number;
  /** Most output tokens: max_tokens, or what is left of max-model-len after the prompt. */
  readonly maxOutputTokens: number;
  /** Ids banned while fewer than min_tokens are out (sorted, unique). */
  private readonly bannedWhileShort: number[];

  constructor(opts: StopCheckerOptions) {
    const { params } = opts;
    this.eosTokenIds = new Set(params.ignoreEos ? [] : opts.eosTokenIds);
    this.stopTokenIds = new Set(params.stopTokenIds);
    this.minTokens = params.minTokens;
    const room = opts.maxModelLen - opts.promptLen;
    this.maxOutputTokens = Math.max(0, params.maxTokens === null ? room : Math.min(params.maxTokens, room));
    this.bannedWhileShort = [...new Set([...this.eosTokenIds, ...this.stopTokenIds])].sort((a, b) => a - b);
  }

  /** Token ids to ban (logit -Infinity) when sampling output token number `numOutputTokens` (0-based). */
  bannedTokenIds(numOutputTokens: number): readonly number[] {
    return numOutputTokens < this.minTokens ? this.bannedWhileShort : NO_TOKENS;
  }

  /** Whether stop strings may end the sequence once it holds `numOutputTokens` tokens. */
  stopStringsActive(numOutputTokens: number): boolean {
    return numOutputTokens > this.minTokens;
  }

  /** Whether `tokenId` is a stop token (eos unless ignore_eos, or a stop_token_id). */
  isStopToken(tokenId: number): boolean {
    return this.eosTokenIds.has(tokenId) || this.stopTokenIds.has(tokenId);
  }

  /** The token-level decision after `tokenId` became output token number `numOutputTokens` (1-based count). */
  checkToken(tokenId: number, numOutputTokens: number): StopDecision | null {
    if (numOutputTokens > this.minTokens) {
      if (this.eosTokenIds.has(tokenId)) return { finishReason: "stop", stopReason: null };
      if (this.stopTokenIds.has(tokenId)) return { finishReason: "stop", stopReason: tokenId };
    }
    if (numOutputTokens >= this.maxOutputTokens) return { finishReason: "length", stopReason: null };
    return null;
  }
}

/**
 * Finds stop strings in streamed text. Text that could still turn out to be the start of a stop string is
 * held back until the next tokens settle it, so a stop string split across tokens never leaks to a stream.
 */
export class StopStringMatcher {
  private text = "";
  private emittedLength = 0;
  private readonly longestStop: number;

  constructor(
    private readonly stops: readonly string[],
    private readonly includeStopStr: boolean,
  ) {
    this.longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** All text so far (cut at a stop string once one is found). */
  get fullText(): string {
    return this.text;
  }

  /**
   * Adds decoded text. Returns the text now safe to emit, and the stop string when one was found (the
   * text is then final: cut before it, or after it with include_stop_str_in_output).
   */
  push(delta: string, lookForStops: boolean): { emit: string; stop: string | null } {
    const oldLength = this.text.length;
    this.text += delta;
    if (lookForStops && this.stops.length > 0) {
      let bestIndex = -1;
      let bestStop: string | null = null;
      for (const stop of this.stops) {
        // Only matches that end in the new text: older ones were looked for before (or min_tokens hid them).
        const index = this.text.indexOf(stop, Math.max(0, oldLength - stop.length + 1));
        if (index !== -1 && (bestIndex === -1 || index < bestIndex)) {
          bestIndex = index;
          bestStop = stop;
        }
      }
      if (bestStop !== null) {
        this.text = this.text.slice(0, bestIndex + (this.includeStopStr ? bestStop.length : 0));
        return { emit: this.takeUpTo(this.text.length), stop: bestStop };
      }
    }
    return { emit: this.takeUpTo(this.text.length - this.heldBackLength()), stop: null };
  }

  /** Everything not emitted yet (at the end of the sequence). */
  finish(): string {
    return this.takeUpTo(this.text.length);
  }

  private takeUpTo(end: number): string {
    if (end <= this.emittedLength) return "";
    const out = this.text.slice(this.emittedLength, end);
    this.emittedLength = end;
    return out;
  }

  /** Length of the longest tail of the text that is a proper prefix of some stop string. */
  private heldBackLength(): number {
    const maxTail = Math.min(this.longestStop - 1, this.text.length - this.emittedLength);
    for (let tail = maxTail; tail > 0; tail--) {
      const suffix = this.text.slice(this.text.length - tail);
      if (this.stops.some((stop) => stop.length > tail && stop.startsWith(suffix))) return tail;
    }
    return 0;
  }
}
