/**
 * One request's state inside the engine (nano-vllm's Sequence): its tokens, how many have KV, its block
 * table, its status, and the text side (incremental detokenizer + stop checks) that turns sampled tokens
 * into RequestOutput deltas.
 */
import { randomInt } from "node:crypto";
import type { SequenceConstraint } from "../structured/sequence-constraint.js";
import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import type { BlockOwner } from "./block-manager.js";
import type { ResolvedSamplingParams } from "./sampling-params.js";
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
  /** Per prompt token (null for the first), when the request asked for prompt logprobs. */
  readonly promptLogprobs: (TokenLogprob | null)[] | null;

  private readonly detokenizer: IncrementalDetokenizer;
  private readonly matcher: StopStringMatcher;
  private pendingText = "";
  private pendingTokenIds: number[] = [];
  private pendingLogprobs: TokenLogprob[] = [];
  private promptLogprobsSent = false;

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

  get isFinished(): boolean {
    return this.status === "finished";
  }

  /** The output text so far (stop strings cut). */
  get text(): string {
    return this.matcher.fullText;
  }

  /** Adds a sampled token, runs the stop checks, and finishes the sequence when one fires. */
  appendToken(tokenId: number, logprob: TokenLogprob | null): void {
    this.tokenIds.push(tokenId);
    this.outputTokenIds.push(tokenId);
    this.pendingTokenIds.push(tokenId);
    if (logprob !== null) this.pendingLogprobs.push(logprob);
    const count = this.outputTokenIds.length;
    const decision = this.stopChecker.checkToken(tokenId, count);
    // A stop token's own text stays out unless asked for (vLLM v1).
    const hideToken =
      decision?.finishReason === "stop" &&
      !this.params.includeStopStrInOutput &&
      this.stopChecker.isStopToken(tokenId);
    const delta = hideToken ? "" : this.detokenizer.push(tokenId);
    const { emit, stop } = this.matcher.push(delta, this.stopChecker.stopStringsActive(count));
    this.pendingText += emit;
    if (stop !== null) this.markFinished({ finishReason: "stop", stopReason: stop }, false);
    else if (decision !== null) this.markFinished(decision, true);
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
    return this.pendingTokenIds.length > 0 || this.pendingText.length > 0 || this.isFinished;
  }

  /** The delta since the last call, as the front end sees it. */
  takeOutput(): RequestOutput {
    const output: RequestOutput = {
      requestId: this.requestId,
      textDelta: this.pendingText,
      tokenIdsDelta: this.pendingTokenIds,
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
    this.pendingTokenIds = [];
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
    if (flush) {
      // An unfinished UTF-8 character at the end becomes U+FFFD; a stop string may still complete in it.
      const { emit, stop } = this.matcher.push(
        this.detokenizer.flush(),
        this.stopChecker.stopStringsActive(this.numOutputTokens),
      );
      this.pendingText += emit;
      if (stop !== null && decision.finishReason !== "abort" && decision.finishReason !== "error") {
        this.finishReason = "stop";
        this.stopReason = stop;
      }
    }
    this.pendingText += this.matcher.finish();
  }
}

/** Folds any integer seed (vLLM accepts 64-bit ones) into the 32 bits the RNG takes. */
export function seedToUint32(seed: number): number {
  const wide = BigInt.asUintN(64, BigInt(seed));
  return Number(BigInt.asUintN(32, wide ^ (wide >> 32n)));
}
