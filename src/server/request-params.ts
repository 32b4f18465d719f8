/**
 * Request bodies (snake_case, validated by schemas.ts) -> the engine's SamplingParams, with the checks
 * that need the model: the context length, token ids within the vocabulary (through the engine's own
 * validation, whose errors already name the field).
 */
import { choiceParams, InvalidParamError, resolveSamplingParams } from "../engine/sampling-params.js";
import type { SamplingParams } from "../engine/types.js";
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
