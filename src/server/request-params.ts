/**
 * Request bodies (snake_case, validated by schemas.ts) -> the engine's SamplingParams, with the checks
 * that need the model: the context length, token ids within the vocabulary (through the engine's own
 * validation, whose errors already name the field).
 */
import { randomUUID } from "node:crypto";
import type { TObject } from "@sinclair/typebox";
import { choiceParams, InvalidParamError, resolveSamplingParams } from "../engine/sampling-params.js";
import type { SamplingParams, TokenLogprob } from "../engine/types.js";
import type { ServerContext } from "./context.js";
import { badRequest } from "./errors.js";
import type { SamplingBody } from "./schemas.js";

/** Snake_case sampling fields -> SamplingParams (logprobs and max_tokens are set by the caller). */
export function samplingFromBody(body: SamplingBody): SamplingParams {
  const params: SamplingParams = {};
  const set = <K extends keyof SamplingParams>(key: K, value: SamplingParams[K] | null | undefined) => {
    if (value !== null && value !== undefined) params[key] = value;
  };
  set("temperature", body.temperature);
  set("topP", body.top_p);
  set("topK", body.top_k);
  set("minP", body.min_p);
  set("repetitionPenalty", body.repetition_penalty);
  set("presencePenalty", body.presence_penalty);
  set("frequencyPenalty", body.frequency_penalty);
  set("seed", body.seed);
  set("minTokens", body.min_tokens);
  set("stop", typeof body.stop === "string" ? [body.stop] : body.stop);
  set("stopTokenIds", body.stop_token_ids);
  set("ignoreEos", body.ignore_eos);
  set("skipSpecialTokens", body.skip_special_tokens);
  set("includeStopStrInOutput", body.include_stop_str_in_output);
  // Keys stay as sent so the engine's check can quote a bad one ("abc" is not a token id).
  if (body.logit_bias) params.logitBias = { ...body.logit_bias } as Record<number, number>;
  return params;
}

/**
 * Settles max_tokens against the context: 400 naming the prompt when it alone fills the context, or naming
 * `maxTokensParam` when prompt + max_tokens exceeds it; absent max_tokens = the rest of the context.
 */
export function fitMaxTokens(
  ctx: ServerContext,
  promptLength: number,
  requested: number | null | undefined,
  promptParam: string,
  maxTokensParam: string,
): number {
  if (promptLength >= ctx.maxModelLen) {
    throw badRequest(
      `This model's maximum context length is ${ctx.maxModelLen} tokens, but the ${promptParam} has ` +
        `${promptLength} tokens, leaving no room for a completion. Please shorten the ${promptParam}.`,
      promptParam,
    );
  }
  if (requested === null || requested === undefined) return ctx.maxModelLen - promptLength;
  if (promptLength + requested > ctx.maxModelLen) {
    throw badRequest(
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, you requested ` +
        `${promptLength + requested} tokens (${promptLength} in the ${promptParam}, ${requested} for the ` +
        `completion). Please reduce ${maxTokensParam} to at most ${ctx.maxModelLen - promptLength} or shorten the ${promptParam}.`,
      maxTokensParam,
    );
  }
  return requested;
}

/** Runs the engine's own validation now, so a bad value is a 400 before anything is queued. */
export function checkSampling(
  ctx: ServerContext,
  params: SamplingParams,
  maxTokensParam = "max_tokens",
): void {
  try {
    resolveSamplingParams(params, { vocabSize: ctx.tokenizer.vocabSize });
  } catch (err) {
    if (err instanceof InvalidParamError) {
      const param = err.param === "max_tokens" ? maxTokensParam : err.param;
      throw badRequest(err.message, param);
    }
    throw err;
  }
}

/**
 * The params of choice `index` out of `n`: with n > 1 each choice gets its own seed derived from the
 * request's, so seeded requests stay reproducible and the choices differ.
 */
export function paramsForChoice(params: SamplingParams, index: number, n: number): SamplingParams {
  return n === 1 ? params : choiceParams(params, index);
}

/** Token ids must be inside the vocabulary (prompts given as ids). */
export function checkTokenIds(ctx: ServerContext, ids: readonly number[], param: string): void {
  const vocabSize = ctx.tokenizer.vocabSize;
  const bad = ids.findIndex((id) => id >= vocabSize);
  if (bad >= 0) {
    throw badRequest(`${param}[${bad}] = ${ids[bad]} is outside the vocabulary (0..${vocabSize - 1})`, param);
  }
}

/** As vLLM: stream_options only means something for a streamed response. */
export function checkStreamOptions(body: { stream?: boolean | null; stream_options?: unknown }): void {
  if (body.stream_options != null && !body.stream) {
    throw badRequest("stream_options can only be set when stream is true", "stream_options");
  }
}

/** best_of: the n choices are all returned, so only best_of = n (or absent) is honoured. */
export function checkBestOf(body: { best_of?: number | null }, n: number): void {
  if (body.best_of != null && body.best_of !== n) {
    throw badRequest(
      `best_of other than n is not supported (got best_of ${body.best_of}, n ${n}): every sampled choice is returned`,
      "best_of",
    );
  }
}

/** vLLM's truncate_prompt_tokens: keep the last N prompt tokens (-1: the last max-model-len). */
export function truncatePrompt(ctx: ServerContext, ids: number[], keep: number | null | undefined): number[] {
  if (keep === null || keep === undefined) return ids;
  if (keep === 0) {
    throw badRequest(
      "truncate_prompt_tokens must be -1 (the context length) or at least 1",
      "truncate_prompt_tokens",
    );
  }
  const n = keep === -1 ? ctx.maxModelLen : keep;
  return ids.length > n ? ids.slice(ids.length - n) : ids;
}

/**
 * vLLM's prompt_logprobs -> params.promptLogprobs: each prompt token's logprob and rank, and the top N
 * alternatives at its position. Refused with stream, as vLLM does.
 */
export function applyPromptLogprobs(
  ctx: ServerContext,
  params: SamplingParams,
  body: { prompt_logprobs?: number | null; stream?: boolean | null },
): void {
  if (body.prompt_logprobs === null || body.prompt_logprobs === undefined) return;
  if (body.stream) {
    throw badRequest("prompt_logprobs is not available when stream is true (as in vLLM)", "prompt_logprobs");
  }
  askPromptLogprobs(ctx, params, body.prompt_logprobs, "prompt_logprobs");
}

/**
 * Asks the engine for N alternatives at prompt positions (prompt_logprobs, or completions' echo with logprobs),
 * keeping the larger of two asks; 400 naming `param` where the engine's backend cannot give N.
 */
export function askPromptLogprobs(
  ctx: ServerContext,
  params: SamplingParams,
  n: number,
  param: string,
): void {
  const most = ctx.engine.maxPromptLogprobs ?? 0;
  if (n > most) {
    throw badRequest(
      `${param} ${n} needs the top alternatives at prompt positions, which this server's backend does not ` +
        `compute (it gives at most ${most}: each prompt token's own logprob); the CPU backend computes them`,
      param,
    );
  }
  params.promptLogprobs = Math.max(params.promptLogprobs ?? 0, n);
}

/** One vLLM Logprob: the token's logprob, its 1-based rank (null where unknown) and its text. */
interface VllmLogprob {
  logprob: number;
  rank: number | null;
  decoded_token: string;
}

/**
 * vLLM's prompt_logprobs list: null for the first token, else { [token id]: VllmLogprob } holding the prompt
 * token (with its rank) and the top `topN` alternatives (ranks 1..topN; a prompt token among them appears once).
 */
export function promptLogprobsEntries(
  texts: { decode(ids: readonly number[]): string },
  ids: readonly number[],
  entries: readonly (TokenLogprob | null)[] | undefined,
  topN: number,
): (Record<string, VllmLogprob> | null)[] {
  const logprobOf = (value: number) => (Number.isFinite(value) ? value : -9999);
  return ids.map((id, i) => {
    const entry = entries?.[i] ?? null;
    if (entry === null) return null;
    const dict: Record<string, VllmLogprob> = {
      [String(id)]: {
        logprob: logprobOf(entry.logprob),
        rank: entry.rank ?? null,
        decoded_token: texts.decode([id]),
      },
    };
    entry.top.slice(0, topN).forEach((alt, k) => {
      if (alt.tokenId === id) return;
      dict[String(alt.tokenId)] = {
        logprob: logprobOf(alt.logprob),
        rank: k + 1,
        decoded_token: texts.decode([alt.tokenId]),
      };
    });
    return dict;
  });
}

/**
 * Fields of OpenAI's and vLLM's request schemas that this server does not implement. The schemas let unknown
 * fields through (clients send many), so these are refused by name when they ask for anything beyond the
 * default, rather than silently ignored. `value` is what was sent (not null).
 */
const UNSUPPORTED: Record<string, (value: unknown) => string | null> = {
  functions: () => "the functions API is replaced by tools",
  function_call: () => "the functions API is replaced by tools / tool_choice",
  audio: () => "this server produces text only",
  modalities: (v) =>
    Array.isArray(v) && v.every((m) => m === "text") ? null : "this server produces text only",
  prediction: () => "predicted outputs are not supported",
  reasoning_effort: () => "the model has no reasoning mode",
  web_search_options: () => "there is no web search",
  store: (v) => (v === false ? null : "completions are not stored"),
  service_tier: (v) => (v === "auto" || v === "default" ? null : "there is one service tier"),
  chat_template: () => "the chat template is chosen at startup (--chat-template)",
  chat_template_kwargs: () => "the chat template takes no extra arguments here",
  documents: () => "the chat template gets no documents here",
  mm_processor_kwargs: () => "the model is text only",
  prompt_embeds: () => "prompts are text or token ids",
  priority: (v) => (v === 0 ? null : "requests are scheduled first come, first served"),
  logits_processors: () => "custom logits processors are not supported",
  return_tokens_as_token_ids: (v) => (v === false ? null : "logprobs tokens are always text"),
  spaces_between_special_tokens: (v) => (v === true ? null : "special tokens are always decoded as written"),
  cache_salt: () => "the prefix cache is shared by all requests",
  prompt_cache_key: () => "the prefix cache is shared by all requests and needs no key",
  kv_transfer_params: () => "there is no KV transfer",
  vllm_xargs: () => "there are no extension arguments",
  include_reasoning: (v) => (v === true ? null : "the model has no reasoning mode"),
  structural_tag: () => "structural tags are not supported",
  verbosity: (v) => (v === "medium" ? null : "the model has no verbosity setting"),
  metadata: () => "completions are not stored (metadata is kept with stored completions)",
  max_tool_calls: () => "no tools run on this server",
};

/** The names of the OpenAI / vLLM fields refused by refuseUnsupportedFields (docs/api-fields.md lists them). */
export const UNSUPPORTED_FIELDS: readonly string[] = Object.keys(UNSUPPORTED);

/**
 * 400 naming the first field of UNSUPPORTED the body sets to a non-default value; `own` names fields the
 * route implements itself (the Responses API's metadata).
 */
export function refuseUnsupportedFields(body: object, own: readonly string[] = []): void {
  for (const [name, value] of Object.entries(body)) {
    if (own.includes(name)) continue;
    const why = value === null || value === undefined ? null : (UNSUPPORTED[name]?.(value) ?? null);
    if (why !== null) throw badRequest(`${name} is not supported by this server: ${why}`, name);
  }
}

/**
 * For the vLLM routes (/generate, /tokenize, /detokenize), whose fields no OpenAI client adds to: a field the
 * route's schema does not have is a 400 naming it (vLLM's /generate fails on one too), never ignored.
 */
export function refuseUnknownFields(body: unknown, schema: TObject, route: string): void {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return;
  const known = Object.keys(schema.properties);
  const unknown = Object.keys(body).find((name) => !known.includes(name));
  if (unknown !== undefined) {
    throw badRequest(`${unknown} is not a field of ${route} (its fields: ${known.join(", ")})`, unknown);
  }
}

/** The response's id: `prefix` and the body's request_id (vLLM), or a random one. */
export function responseId(prefix: string, body: { request_id?: string | null }): string {
  return `${prefix}${body.request_id ?? randomUUID().replaceAll("-", "")}`;
}
