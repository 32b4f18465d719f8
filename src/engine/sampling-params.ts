/**
 * Validation and defaults of the user-facing SamplingParams, with vLLM's defaults and ranges.
 * Every invalid value throws InvalidParamError naming the field (in the API's snake_case) and its range,
 * which the HTTP server turns into a 400.
 */
import { type ResolvedConstraintParams, resolveConstraintParams } from "../structured/engine-constraints.js";
import { InvalidParamError, type SamplingParams } from "./types.js";

// Defined in the seam file (types.ts); re-exported for the validators' many callers.
export { InvalidParamError } from "./types.js";

/** Below this temperature sampling is greedy (vLLM's _SAMPLING_EPS). */
const GREEDY_TEMPERATURE_EPS = 1e-5;
/** OpenAI clamps logit_bias values to this magnitude. */
const MAX_LOGIT_BIAS = 100;
/** The largest top-N logprobs a request may ask for (vLLM's default max_logprobs). */
export const MAX_LOGPROBS = 20;

/** SamplingParams with every default filled in; what the engine works with. */
export interface ResolvedSamplingParams extends ResolvedConstraintParams {
  n: number;
  temperature: number;
  topP: number;
  topK: number; // 0 = off
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: Map<number, number>;
  /** null: the engine picks a random seed per request. */
  seed: number | null;
  /** null: until max-model-len. */
  maxTokens: number | null;
  minTokens: number;
  stop: string[];
  stopTokenIds: number[];
  includeStopStrInOutput: boolean;
  ignoreEos: boolean;
  /** null = none; 0 = only the chosen token's; N = chosen + top N. */
  logprobs: number | null;
  promptLogprobs: number | null;
  skipSpecialTokens: boolean;
}

export interface ResolveContext {
  /** Token ids (logit_bias, stop_token_ids) must be below this. */
  vocabSize?: number;
}

/** Validates `params` and fills in vLLM's defaults. Throws InvalidParamError on the first bad field. */
export function resolveSamplingParams(
  params: SamplingParams = {},
  ctx: ResolveContext = {},
): ResolvedSamplingParams {
  const p = params ?? {};
  const n = intParam("n", p.n, 1, 1, Number.MAX_SAFE_INTEGER);
  let temperature = numParam("temperature", p.temperature, 1, 0, Number.POSITIVE_INFINITY);
  let topP = numParam("top_p", p.topP, 1, 0, 1, { minExclusive: true });
  let topK = intParam("top_k", p.topK, 0, -1, Number.MAX_SAFE_INTEGER);
  if (topK === -1) topK = 0;
  let minP = numParam("min_p", p.minP, 0, 0, 1);
  const repetitionPenalty = numParam(
    "repetition_penalty",
    p.repetitionPenalty,
    1,
    0,
    Number.POSITIVE_INFINITY,
    {
      minExclusive: true,
    },
  );
  const presencePenalty = numParam("presence_penalty", p.presencePenalty, 0, -2, 2);
  const frequencyPenalty = numParam("frequency_penalty", p.frequencyPenalty, 0, -2, 2);
  const seed =
    p.seed === undefined || p.seed === null ? null : intParam("seed", p.seed, 0, -(2 ** 63), 2 ** 64);
  const maxTokens =
    p.maxTokens === undefined || p.maxTokens === null
      ? null
      : intParam("max_tokens", p.maxTokens, 16, 1, Number.MAX_SAFE_INTEGER);
  const minTokens = intParam("min_tokens", p.minTokens, 0, 0, Number.MAX_SAFE_INTEGER);
  if (maxTokens !== null && minTokens > maxTokens) {
    throw new InvalidParamError(
      "min_tokens",
      `min_tokens must be at most max_tokens (${maxTokens}), got ${minTokens}`,
    );
  }
  const stop = stopStrings(p.stop);
  const stopTokenIds = tokenIdList("stop_token_ids", p.stopTokenIds, ctx.vocabSize);
  const logitBias = logitBiasMap(p.logitBias, ctx.vocabSize);
  const logprobs =
    p.logprobs === undefined || p.logprobs === null
      ? null
      : intParam("logprobs", p.logprobs, 0, 0, MAX_LOGPROBS);
  const promptLogprobs =
    p.promptLogprobs === undefined || p.promptLogprobs === null
      ? null
      : intParam("prompt_logprobs", p.promptLogprobs, 0, 0, MAX_LOGPROBS);
  const includeStopStrInOutput = boolParam("include_stop_str_in_output", p.includeStopStrInOutput, false);
  const ignoreEos = boolParam("ignore_eos", p.ignoreEos, false);
  const skipSpecialTokens = boolParam("skip_special_tokens", p.skipSpecialTokens, true);
  const constraints = resolveConstraintParams(p, ctx.vocabSize, (param, message) => {
    throw new InvalidParamError(param, message);
  });

  if (temperature < GREEDY_TEMPERATURE_EPS) {
    // Greedy: the truncation parameters cannot change argmax; turn them off as vLLM does.
    temperature = 0;
    topP = 1;
    topK = 0;
    minP = 0;
  }
  return {
    n,
    temperature,
    topP,
    topK,
    minP,
    repetitionPenalty,
    presencePenalty,
    frequencyPenalty,
    logitBias,
    seed,
    maxTokens,
    minTokens,
    stop,
    stopTokenIds,
    includeStopStrInOutput,
    ignoreEos,
    logprobs,
    promptLogprobs,
    skipSpecialTokens,
    ...constraints,
  };
}

function numParam(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
  opts: { minExclusive?: boolean } = {},
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new InvalidParamError(name, `${name} must be a number, got ${describe(value)}`);
  }
  const tooLow = opts.minExclusive ? value <= min : value < min;
  if (tooLow || value > max) {
    const lower = opts.minExclusive ? `greater than ${min}` : `at least ${min}`;
    const upper = Number.isFinite(max) ? ` and at most ${max}` : "";
    throw new InvalidParamError(name, `${name} must be ${lower}${upper}, got ${value}`);
  }
  return value;
}

function intParam(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new InvalidParamError(name, `${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    const upper = max < Number.MAX_SAFE_INTEGER ? ` and at most ${max}` : "";
    throw new InvalidParamError(name, `${name} must be at least ${min}${upper}, got ${value}`);
  }
  return value;
}

function boolParam(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean")
    throw new InvalidParamError(name, `${name} must be a boolean, got ${describe(value)}`);
  return value;
}

function stopStrings(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
    throw new InvalidParamError("stop", `stop must be a string or a list of strings, got ${describe(value)}`);
  }
  if (list.some((s) => s.length === 0)) throw new InvalidParamError("stop", "stop strings must not be empty");
  return [...new Set(list as string[])];
}

function tokenIdList(name: string, value: unknown, vocabSize: number | undefined): number[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidParamError(name, `${name} must be a list of token ids`);
  for (const id of value) checkTokenId(name, id, vocabSize);
  return [...new Set(value as number[])];
}

function logitBiasMap(value: unknown, vocabSize: number | undefined): Map<number, number> {
  const map = new Map<number, number>();
  if (value === undefined || value === null) return map;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidParamError("logit_bias", "logit_bias must be an object mapping token ids to biases");
  }
  for (const [key, bias] of Object.entries(value as Record<string, unknown>)) {
    const id = /^\d+$/.test(key) ? Number(key) : Number.NaN;
    checkTokenId("logit_bias", id, vocabSize, key);
    if (typeof bias !== "number" || Number.isNaN(bias)) {
      throw new InvalidParamError("logit_bias", `logit_bias[${key}] must be a number, got ${describe(bias)}`);
    }
    map.set(id, Math.max(-MAX_LOGIT_BIAS, Math.min(MAX_LOGIT_BIAS, bias)));
  }
  return map;
}

function checkTokenId(name: string, id: unknown, vocabSize: number | undefined, shown: unknown = id): void {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
    throw new InvalidParamError(
      name,
      `${name}: ${describe(shown)} is not a token id (a non-negative integer)`,
    );
  }
  if (vocabSize !== undefined && id >= vocabSize) {
    throw new InvalidParamError(
      name,
      `${name}: token id ${id} is outside the vocabulary (0..${vocabSize - 1})`,
    );
  }
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  return typeof value === "object" ? "an object" : String(value);
}

/**
 * The params of choice `i` of an `n > 1` request, as one sequence (n = 1). The one rule for every front end
 * (LLM.generate, the HTTP server): choice 0 keeps the request's seed, choice i of a seeded request gets
 * (seed + i * 0x9e3779b1) mod 2^53 (a golden-ratio stride, so neighbouring seeds' choices do not overlap),
 * so seeded choices differ from each other and reproduce; unseeded choices each draw their own random seed.
 */
export function choiceParams(params: SamplingParams, i: number): SamplingParams {
  if (!Number.isInteger(i) || i < 0) throw new RangeError(`choice index must be an integer >= 0, got ${i}`);
  if (params.seed === undefined || params.seed === null) return { ...params, n: 1 };
  return { ...params, n: 1, seed: (params.seed + i * CHOICE_SEED_STRIDE) % 2 ** 53 };
}

/** 2^32 / golden ratio. */
const CHOICE_SEED_STRIDE = 0x9e3779b1;
