/**
 * Streaming detokenization, the way vLLM does it: each new token is decoded together with a few tokens
 * before it (from the prefix offset), and only the text past what those earlier tokens gave (the read
 * offset) is emitted. Decoding in context gets SentencePiece's leading space right ("▁I" after
 * "Assistant:" gives " I", not "I"), and text that ends in U+FFFD (a UTF-8 character whose byte-fallback
 * tokens have not all arrived) is held back until the character is complete.
 */
import type { Tokenizer } from "./tokenizer.js";

export interface IncrementalDetokenizerOptions {
  /** Leave special tokens out of the text. Default false. */
  skipSpecialTokens?: boolean;
  /** The prompt's ids: the first generated token is decoded in their context. */
  promptTokenIds?: readonly number[];
}

/** How many prompt tokens the first generated token is decoded with (vLLM uses the same 5). */
const INITIAL_CONTEXT_TOKENS = 5;
const REPLACEMENT_CHARACTER = "\uFFFD";
/**
 * A UTF-8 character has at most 4 bytes, so at most 3 tokens of it can be waiting for the rest. Text that
 * still ends in U+FFFD after more tokens than that holds genuinely invalid bytes: emit it rather than
 * hold (and re-decode) an ever-growing window.
 */
const MAX_TOKENS_OF_PARTIAL_CHARACTER = 3;

export class IncrementalDetokenizer {
  private readonly tokenIds: number[]; // (promptTokens + outputTokens)
  private readonly skipSpecialTokens: boolean;
  /** Start of the window whose text is already known (and emitted, or part of the prompt). */
  private prefixOffset: number;
  /** End of that window: tokens from here on have not been emitted yet. */
  private readOffset: number;
  private emitted = "";

  constructor(
    private readonly tokenizer: Tokenizer,
    opts: IncrementalDetokenizerOptions = {},
  ) {
    this.skipSpecialTokens = opts.skipSpecialTokens ?? false;
    this.tokenIds = [...(opts.promptTokenIds ?? [])];
    this.readOffset = this.tokenIds.length;
    this.prefixOffset = Math.max(this.readOffset - INITIAL_CONTEXT_TOKENS, 0);
    // A context of nothing but skipped special tokens decodes to "", which would lose the first
    // token's leading space: reach back to the nearest token that gives text.
    if (this.skipSpecialTokens) {
      while (this.prefixOffset > 0 && !this.windowHasText()) this.prefixOffset--;
    }
  }

  /** All text emitted so far. */
  get text(): string {
    return this.emitted;
  }

  /** Adds one generated token; returns the text it completes (often "", e.g. mid UTF-8 character). */
  push(tokenId: number): string {
    this.tokenIds.push(tokenId);
    return this.emit(false);
  }

  /** Emits whatever is held back (an unfinished UTF-8 character becomes U+FFFD); call at the end. */
  flush(): string {
    return this.emit(true);
  }

  private emit(force: boolean): string {
    if (this.readOffset >= this.tokenIds.length) return "";
    const decodeOpts = { skipSpecialTokens: this.skipSpecialTokens };
    const prefixText = this.tokenizer.decode(
      this.tokenIds.slice(this.prefixOffset, this.readOffset),
      decodeOpts,
    );
    const fullText = this.tokenizer.decode(this.tokenIds.slice(this.prefixOffset), decodeOpts);
    if (fullText.length <= prefixText.length && !force) return "";
    if (
      fullText.endsWith(REPLACEMENT_CHARACTER) &&
      !force &&
      this.pendingTextTokens() <= MAX_TOKENS_OF_PARTIAL_CHARACTER
    ) {
      return "";
    }
    const delta = fullText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.tokenIds.length;
    this.emitted += delta;
    return delta;
  }

  /** Tokens not yet emitted that can carry text (skipped special tokens carry none). */
  private pendingTextTokens(): number {
    let count = 0;
    for (let i = this.readOffset; i < this.tokenIds.length; i++) {
      if (!this.skipSpecialTokens || !this.tokenizer.isSpecial(this.tokenIds[i]!)) count++;
    }
    return count;
  }

  private windowHasText(): boolean {
    for (let i = this.prefixOffset; i < this.readOffset; i++) {
      if (!this.tokenizer.isSpecial(this.tokenIds[i]!)) return true;
    }
    return false;
  }
}
