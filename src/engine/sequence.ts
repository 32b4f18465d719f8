/**
 * One request's state inside the engine (nano-vllm's Sequence): its tokens, how many have KV, its block
 * table, its status, and the text side (incremental detokenizer + stop checks) that turns sampled tokens
 * into RequestOutput deltas. The token side (appendToken: ids and the stop checks that need no text) is what
 * the engine's step loop waits for; the text side (settleText) runs while the next step is on the backend.
 */
import { randomInt } from "node:crypto";
import type { SequenceConstraint } from "../structured/sequence-constraint.js";
import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import type { BlockOwner } from "./block-manager.js";
import type { StepSequence } from "./model-runner.js";
import type { ResolvedSamplingParams } from "./sampling-params.js";
import type { ScheduledSequence } from "./scheduler.js";
import { StopChecker, type StopDecision, StopStringMatcher } from "./stop-checker.js";
import type { FinishReason, RequestOutput, TokenLogprob } from "./types.js";

export type SequenceStatus = "waiting" | "running" | "finished";

export interface SequenceOptions {
  requestId: string;
  promptTokenIds: readonly number[];
  params: ResolvedSamplingParams;
  tokenizer: Tokenizer;
  /** The model's end-of-sequence ids (the tokenizer's stop ids). */
  eosTokenIds: readonly number[];
  maxModelLen: number;
}

export class Sequence implements BlockOwner {
  readonly requestId: string;
  readonly promptTokenIds: readonly number[];
  readonly outputTokenIds: number[] = [];
  /** Prompt then output ids. */
  readonly tokenIds: number[];
  readonly params: ResolvedSamplingParams;
  /** The request's seed (its own, or a random one), as the backend's counter-based RNG takes it. */
  readonly seed: number;
  readonly stopChecker: StopChecker;
  status: SequenceStatus = "waiting";
  blockTable: number[] = [];
  blockHashes: string[] = [];
  numComputedTokens = 0;
  /** Prompt tokens whose KV came from the prefix cache at the first admission. */
  numCachedTokens = 0;
  /** Whether the prefix cache was already consulted (only the first admission counts as cached tokens). */
  admitted = false;
  /** performance.now() ms of the first admission (the end of its queue time); null while waiting. */
  scheduledAt: number | null = null;
  finishReason: FinishReason | null = null;
  stopReason: string | number | null = null;
  error: string | undefined;
  /** Output constraint (structured output, allowed_token_ids, bad_words), set by the engine; null = none. */
  constraint: SequenceConstraint | null = null;
  /** The step builder's view of this sequence (model-runner.ts's scheduledStepSequence rewrites it each step). */
  stepView: StepSequence | null = null;
  /** Its entry in the scheduler's output (scheduler.ts rewrites it each step it is scheduled). */
  scheduledEntry: ScheduledSequence | null = null;
  /** The engine's id of the last step that ran it. */
  lastStepId = 0;
  /** Per prompt token (null for the first), when the request asked for prompt logprobs. */
  readonly promptLogprobs: (TokenLogprob | null)[] | null;

  private readonly detokenizer: IncrementalDetokenizer;
  private readonly matcher: StopStringMatcher;
  private pendingText = "";
  /** Output tokens already sent in a takeOutput() delta. */
  private numTokensSent = 0;
  private pendingLogprobs: TokenLogprob[] = [];
  private promptLogprobsSent = false;
  /** Output tokens already turned into text (settleText). */
  private numTextTokens = 0;
  /** The token-level stop decision that finished the sequence at its last token, for the text side. */
  private tokenDecision: StopDecision | null = null;
  /** Whether finishing flushes the detokenizer (not after a stop string, whose text is final). */
  private flushOnFinish = true;
  private textFinished = false;

  constructor(opts: SequenceOptions) {
    this.requestId = opts.requestId;
    this.promptTokenIds = opts.promptTokenIds;
    this.tokenIds = [...opts.promptTokenIds];
    this.params = opts.params;
    this.seed = opts.params.seed === null ? randomInt(0, 2 ** 32 - 1) : seedToUint32(opts.params.seed);
    this.stopChecker = new StopChecker({
      params: opts.params,
      eosTokenIds: opts.eosTokenIds,
      maxModelLen: opts.maxModelLen,
      promptLen: opts.promptTokenIds.length,
    });
    this.detokenizer = new IncrementalDetokenizer(opts.tokenizer, {
      skipSpecialTokens: opts.params.skipSpecialTokens,
      promptTokenIds: opts.promptTokenIds,
    });
    this.matcher = new StopStringMatcher(opts.params.stop, opts.params.includeStopStrInOutput);
    this.promptLogprobs =
      opts.params.promptLogprobs === null
        ? null
        : Array.from({ length: opts.promptTokenIds.length }, () => null);
  }

  get numTokens(): number {
    return this.tokenIds.length;
  }

  get numPromptTokens(): number {
    return this.promptTokenIds.length;
  }

  get numOutputTokens(): number {
    return this.outputTokenIds.length;
  }

  /** Output tokens already sent in takeOutput() deltas (what the request's usage counts once it fails). */
  get numOutputTokensSent(): number {
    return this.numTokensSent;
  }

  get isFinished(): boolean {
    return this.status === "finished";
  }

  /** The output text so far (stop strings cut). */
  get text(): string {
    this.settleText();
    return this.matcher.fullText;
  }

  /**
   * Adds a sampled token and runs the token-level stop checks (eos, stop token ids, max tokens, max-model-len),
   * finishing the sequence when one fires: all the engine needs before it schedules the next step. The text
   * side (detokenizing, stop strings) waits for settleText().
   */
  appendToken(tokenId: number, logprob: TokenLogprob | null): void {
    this.tokenIds.push(tokenId);
    this.outputTokenIds.push(tokenId);
    if (logprob !== null) this.pendingLogprobs.push(logprob);
    const decision = this.stopChecker.checkToken(tokenId, this.outputTokenIds.length);
    if (decision !== null) {
      this.tokenDecision = decision;
      this.markFinished(decision, true);
    }
  }

  /** Adds the logprob entry of an appended token (the engine builds them off the critical path). */
  pushLogprob(entry: TokenLogprob): void {
    this.pendingLogprobs.push(entry);
  }

  /**
   * Detokenizes the tokens appended since the last call and looks for stop strings in their text. A stop
   * string found here ends the sequence at the token that completed it; tokens appended after that one (the
   * engine has already scheduled one more step when it gets here, as vLLM does) are dropped, never shown.
   * Once the sequence is finished, the text is completed (an unfinished UTF-8 character is flushed).
   */
  settleText(): void {
    const output = this.outputTokenIds;
    while (this.numTextTokens < output.length) {
      const count = ++this.numTextTokens;
      const tokenId = output[count - 1]!;
      const decision = count === output.length ? this.tokenDecision : null;
      // A stop token's own text stays out unless asked for (vLLM v1).
      const hideToken =
        decision?.finishReason === "stop" &&
        !this.params.includeStopStrInOutput &&
        this.stopChecker.isStopToken(tokenId);
      const delta = hideToken ? "" : this.detokenizer.push(tokenId);
      const { emit, stop } = this.matcher.push(delta, this.stopChecker.stopStringsActive(count));
      this.pendingText += emit;
      if (stop !== null) {
        this.dropTokensAfter(count);
        this.status = "finished";
        if (this.finishReason !== "abort" && this.finishReason !== "error") {
          this.finishReason = "stop";
          this.stopReason = stop;
        }
        this.flushOnFinish = false;
      }
    }
    if (this.isFinished && !this.textFinished) {
      this.textFinished = true;
      if (this.flushOnFinish) {
        // An unfinished UTF-8 character at the end becomes U+FFFD; a stop string may still complete in it.
        const { emit, stop } = this.matcher.push(
          this.detokenizer.flush(),
          this.stopChecker.stopStringsActive(this.numOutputTokens),
        );
        this.pendingText += emit;
        if (stop !== null && this.finishReason !== "abort" && this.finishReason !== "error") {
          this.finishReason = "stop";
          this.stopReason = stop;
        }
      }
      this.pendingText += this.matcher.finish();
    }
  }

  /** Ends the sequence because its grammar is complete (its last token was the grammar's stop token). */
  finishByGrammar(): void {
    if (this.isFinished) return;
    this.markFinished({ finishReason: "stop", stopReason: null }, true);
  }

  /** Ends the sequence for a reason from outside the stop checks (abort, error). */
  finish(reason: "abort" | "error", error?: string): void {
    if (this.isFinished) return;
    this.error = error;
    this.markFinished({ finishReason: reason, stopReason: null }, true);
  }

  /** Records a prompt token's logprob (index = position of the token in the prompt). */
  setPromptLogprob(index: number, entry: TokenLogprob): void {
    if (this.promptLogprobs !== null && index > 0 && index < this.promptLogprobs.length) {
      this.promptLogprobs[index] = entry;
    }
  }

  /** Whether prompt token `position` still lacks the prompt logprob the request asked for. */
  missesPromptLogprobAt(position: number): boolean {
    return (
      this.promptLogprobs !== null &&
      position > 0 &&
      position < this.numPromptTokens &&
      this.promptLogprobs[position] === null
    );
  }

  /** Whether anything new is waiting to be sent. */
  get hasPendingOutput(): boolean {
    return this.numTokensSent < this.numOutputTokens || this.pendingText.length > 0 || this.isFinished;
  }

  /** The delta since the last call, as the front end sees it. */
  takeOutput(): RequestOutput {
    this.settleText();
    const output: RequestOutput = {
      requestId: this.requestId,
      textDelta: this.pendingText,
      tokenIdsDelta: this.outputTokenIds.slice(this.numTokensSent),
      logprobsDelta: this.pendingLogprobs,
      finished: this.isFinished,
      finishReason: this.finishReason,
      stopReason: this.stopReason,
      promptTokens: this.numPromptTokens,
      cachedTokens: this.numCachedTokens,
      completionTokens: this.numOutputTokens,
    };
    if (this.error !== undefined) output.error = this.error;
    if (this.scheduledAt !== null) output.scheduledAt = this.scheduledAt;
    if (this.promptLogprobs !== null && !this.promptLogprobsSent) {
      output.promptLogprobs = this.promptLogprobs;
      this.promptLogprobsSent = true;
    }
    this.pendingText = "";
    this.numTokensSent = this.numOutputTokens;
    this.pendingLogprobs = [];
    return output;
  }

  private markFinished(
    decision: StopDecision | { finishReason: FinishReason; stopReason: null },
    flush: boolean,
  ) {
    this.status = "finished";
    this.finishReason = decision.finishReason;
    this.stopReason = decision.stopReason;
    this.flushOnFinish = flush;
  }

  /** Forgets the output tokens after the first `count` (a stop string ended the sequence before them). */
  private dropTokensAfter(count: number): void {
    const drop = this.outputTokenIds.length - count;
    if (drop <= 0) return;
    this.outputTokenIds.length = count;
    this.tokenIds.length = this.numPromptTokens + count;
    const unsent = Math.max(0, count - this.numTokensSent);
    if (this.pendingLogprobs.length > unsent) this.pendingLogprobs.length = unsent;
    this.numTextTokens = count;
  }
}

/** Folds any integer seed (vLLM accepts 64-bit ones) into the 32 bits the RNG takes. */
export function seedToUint32(seed: number): number {
  const wide = BigInt.asUintN(64, BigInt(seed));
  return Number(BigInt.asUintN(32, wide ^ (wide >> 32n)));
}
