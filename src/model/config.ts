/**
 * config.json (and a legacy AutoAWQ quant_config.json) -> ModelConfig, for every Llama-family style
 * found on the hub: classic Llama-2 (`rope_theta`, `torch_dtype`, `rope_scaling: {type}`), newer
 * transformers (`rope_parameters`, `dtype`, explicit `head_dim`, `rope_scaling: {rope_type}`), GQA,
 * tied embeddings, Mistral. Anything awq-ts cannot run exactly is refused, saying what is supported.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { AwqQuantization, ModelConfig, ModelDType, RopeScaling } from "./types.js";

export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM"] as const;
const SUPPORTED_QUANT =
  'AWQ GEMM (quant_method "awq", version "gemm", 4 bits, zero_point true) or no quantization';

type Json = Record<string, unknown>;

export interface ParseConfigOptions {
  /** The parsed quant_config.json, when the folder has one (old AutoAWQ checkpoints). */
  legacyQuantConfig?: unknown;
  /** The config.json path (or a label), named in every error. */
  source: string;
  /** The quant_config.json path, named in its errors. */
  legacyQuantSource?: string;
}

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Upper bounds on the sizes a config may claim, far above any real model (Llama-3-405B: hidden 16384,
 * 126 layers, intermediate 53248, vocab 128256), checked before anything is sized from them: a hostile
 * `num_hidden_layers: 1e9` must fail here, not after allocating a billion layers' tensor names.
 */
export const CONFIG_LIMITS: Readonly<Record<string, number>> = {
  hidden_size: 65_536,
  intermediate_size: 262_144,
  num_hidden_layers: 1_024,
  num_attention_heads: 1_024,
  num_key_value_heads: 1_024,
  head_dim: 1_024,
  vocab_size: 4_194_304,
  max_position_embeddings: 16_777_216,
  max_sequence_length: 16_777_216,
};

/** Reads a field that must be a positive integer (or absent, when a fallback is given). */
function positiveInt(json: Json, field: string, source: string, fallback?: number): number {
  const value = json[field];
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw new Error(`${source}: missing required field "${field}"`);
  }
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    const got =
      typeof value === "number" && !Number.isFinite(value)
        ? `${value} (not a finite number)`
        : JSON.stringify(value);
    throw new Error(`${source}: "${field}" must be a positive integer, got ${got}`);
  }
  const limit = CONFIG_LIMITS[field];
  if (limit !== undefined && value > limit) {
    throw new Error(`${source}: "${field}" is ${value}, more than any supported model (at most ${limit})`);
  }
  return value;
}

function positiveNumber(value: unknown, field: string, source: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new Error(`${source}: "${field}" must be a positive number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function parseArchitecture(json: Json, source: string): ModelConfig["architecture"] {
  const list = json.architectures;
  let name: unknown;
  if (Array.isArray(list) && list.length > 0) name = list[0];
  else if (json.model_type === "llama") name = "LlamaForCausalLM";
  else if (json.model_type === "mistral") name = "MistralForCausalLM";
  else if (list === undefined && json.model_type === undefined) {
    throw new Error(`${source}: missing required field "architectures" (or "model_type")`);
  } else name = json.model_type;
  if (!(SUPPORTED_ARCHITECTURES as readonly unknown[]).includes(name)) {
    throw new Error(
      `${source}: unsupported architecture ${JSON.stringify(name)}; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  return name as ModelConfig["architecture"];
}

function parseDType(json: Json, source: string): ModelDType {
  const raw = json.dtype ?? json.torch_dtype;
  if (raw === undefined || raw === null) return "float16"; // what AWQ checkpoints and their kernels use
  const aliases: Record<string, ModelDType> = {
    float16: "float16",
    half: "float16",
    bfloat16: "bfloat16",
    float32: "float32",
    float: "float32",
  };
  const dtype = typeof raw === "string" ? aliases[raw.replace(/^torch\./, "")] : undefined;
  if (dtype === undefined) {
    throw new Error(
      `${source}: unsupported dtype ${JSON.stringify(raw)}; supported: float16, bfloat16, float32`,
    );
  }
  return dtype;
}

/** `rope_scaling` (old `type` or new `rope_type` key) or `rope_parameters`; null for plain RoPE. */
function parseRopeScaling(json: Json, maxPositionEmbeddings: number, source: string): RopeScaling | null {
  const params = isObject(json.rope_parameters) ? json.rope_parameters : undefined;
  const scaling = json.rope_scaling ?? params;
  if (scaling === undefined || scaling === null) return null;
  const field =
    json.rope_scaling !== undefined && json.rope_scaling !== null ? "rope_scaling" : "rope_parameters";
  if (!isObject(scaling)) throw new Error(`${source}: "${field}" must be an object or null`);
  const kind = scaling.rope_type ?? scaling.type ?? "default";
  if (kind === "default") return null;
  if (kind !== "linear" && kind !== "dynamic") {
    throw new Error(
      `${source}: unsupported rope scaling ${JSON.stringify(kind)}; supported: linear, dynamic`,
    );
  }
  const factor = positiveNumber(scaling.factor, `${field}.factor`, source);
  const original = scaling.original_max_position_embeddings;
  return {
    type: kind,
    factor,
    originalMaxPositionEmbeddings:
      original === undefined || original === null
        ? maxPositionEmbeddings
        : positiveNumber(original, `${field}.original_max_position_embeddings`, source),
  };
}

function parseEosIds(value: unknown, source: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      throw new Error(
        `${source}: "eos_token_id" must be a token id or a list of them, got ${JSON.stringify(value)}`,
      );
    }
  }
  return [...new Set(list as number[])];
}

/**
 * The quantization settings (config.json's `quantization_config` wins over a legacy quant_config.json),
 * accepting both key spellings (`bits`/`w_bit`, `group_size`/`q_group_size`).
 */
function parseQuantization(json: Json, options: ParseConfigOptions): AwqQuantization | null {
  let raw: unknown = json.quantization_config;
  let source = `${options.source} quantization_config`;
  if (raw === undefined || raw === null) {
    raw = options.legacyQuantConfig;
    source = options.legacyQuantSource ?? "quant_config.json";
  }
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new Error(`${source}: must be an object`);
  // A legacy quant_config.json has no quant_method: AutoAWQ wrote it, so it is AWQ.
  const method = String(raw.quant_method ?? "awq").toLowerCase();
  if (method !== "awq") {
    throw new Error(
      `${source}: quantization method "${method}" is not supported; supported: ${SUPPORTED_QUANT}`,
    );
  }
  const version = String(raw.version ?? "gemm").toLowerCase();
  if (version !== "gemm") {
    throw new Error(
      `${source}: AWQ version "${version}" (its packed layout) is not supported; supported: ${SUPPORTED_QUANT}`,
    );
  }
  const bits = raw.bits ?? raw.w_bit;
  if (bits === undefined) throw new Error(`${source}: missing required field "bits" (or "w_bit")`);
  if (bits !== 4)
    throw new Error(
      `${source}: ${JSON.stringify(bits)}-bit AWQ is not supported; supported: ${SUPPORTED_QUANT}`,
    );
  const zeroPoint = raw.zero_point ?? true; // AutoAWQ's default
  if (zeroPoint !== true) {
    throw new Error(
      `${source}: AWQ without a zero point (zero_point false) is not supported; supported: ${SUPPORTED_QUANT}`,
    );
  }
  const groupSize = raw.group_size ?? raw.q_group_size;
  if (groupSize === undefined)
    throw new Error(`${source}: missing required field "group_size" (or "q_group_size")`);
  if (
    typeof groupSize !== "number" ||
    !Number.isInteger(groupSize) ||
    groupSize <= 0 ||
    groupSize % 8 !== 0
  ) {
    throw new Error(
      `${source}: group size ${JSON.stringify(groupSize)} is not supported; supported: a positive multiple of 8 (usually 128)`,
    );
  }
  const skip = raw.modules_to_not_convert;
  if (
    skip !== undefined &&
    skip !== null &&
    !(Array.isArray(skip) && skip.every((s) => typeof s === "string"))
  ) {
    throw new Error(`${source}: "modules_to_not_convert" must be a list of module names or null`);
  }
  return {
    method: "awq",
    bits: 4,
    groupSize,
    zeroPoint: true,
    version: "gemm",
    modulesToNotConvert: (skip as string[] | null | undefined) ?? [],
  };
}

/** Normalizes a parsed config.json. Pure: no I/O; `options.source` names the file in errors. */
export function parseModelConfig(configJson: unknown, options: ParseConfigOptions): ModelConfig {
  const { source } = options;
  if (!isObject(configJson)) throw new Error(`${source}: expected a JSON object`);
  const json = configJson;
  const architecture = parseArchitecture(json, source);
  const hiddenSize = positiveInt(json, "hidden_size", source);
  const intermediateSize = positiveInt(json, "intermediate_size", source);
  const numLayers = positiveInt(json, "num_hidden_layers", source);
  const numHeads = positiveInt(json, "num_attention_heads", source);
  const numKvHeads = positiveInt(json, "num_key_value_heads", source, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new Error(
      `${source}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  const defaultHeadDim = hiddenSize / numHeads;
  const headDim = positiveInt(
    json,
    "head_dim",
    source,
    Number.isInteger(defaultHeadDim) ? defaultHeadDim : undefined,
  );
  const vocabSize = positiveInt(json, "vocab_size", source);
  // Very old Llama conversions call it max_sequence_length.
  let maxPositionEmbeddings =
    json.max_position_embeddings === undefined && json.max_sequence_length !== undefined
      ? positiveInt(json, "max_sequence_length", source)
      : positiveInt(json, "max_position_embeddings", source);
  // Mistral's sliding window equals full attention for contexts no longer than the window,
  // so capping the context there keeps the Llama graph exact.
  if (architecture === "MistralForCausalLM" && typeof json.sliding_window === "number") {
    maxPositionEmbeddings = Math.min(maxPositionEmbeddings, json.sliding_window);
  }
  const act = json.hidden_act ?? json.hidden_activation ?? "silu";
  if (act !== "silu")
    throw new Error(`${source}: hidden_act ${JSON.stringify(act)} is not supported; supported: silu`);
  for (const biasField of ["attention_bias", "mlp_bias"]) {
    if (json[biasField] === true) {
      throw new Error(
        `${source}: ${biasField} true is not supported; Llama-family models have no linear biases`,
      );
    }
  }
  const ropeParams = isObject(json.rope_parameters) ? json.rope_parameters : {};
  const ropeThetaRaw = json.rope_theta ?? ropeParams.rope_theta ?? 10000;
  const rmsNormEps = json.rms_norm_eps ?? 1e-6; // transformers' LlamaConfig default
  const bos = json.bos_token_id;
  if (bos !== undefined && bos !== null && (typeof bos !== "number" || !Number.isInteger(bos) || bos < 0)) {
    throw new Error(`${source}: "bos_token_id" must be a token id or null, got ${JSON.stringify(bos)}`);
  }
  const tie = json.tie_word_embeddings ?? false;
  if (typeof tie !== "boolean") throw new Error(`${source}: "tie_word_embeddings" must be true or false`);
  return {
    architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps: positiveNumber(rmsNormEps, "rms_norm_eps", source),
    ropeTheta: positiveNumber(ropeThetaRaw, "rope_theta", source),
    ropeScaling: parseRopeScaling(json, maxPositionEmbeddings, source),
    maxPositionEmbeddings,
    tieWordEmbeddings: tie,
    dtype: parseDType(json, source),
    bosTokenId: typeof bos === "number" ? bos : null,
    eosTokenIds: parseEosIds(json.eos_token_id, source),
    quantization: parseQuantization(json, options),
  };
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: malformed JSON (${(err as Error).message})`);
  }
}

/** Reads `config.json` (and `quant_config.json` when present) from a model folder. */
export async function loadModelConfig(dir: string): Promise<ModelConfig> {
  const configPath = join(resolve(dir), "config.json");
  let configJson: unknown;
  try {
    configJson = await readJson(configPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(`${configPath} not found: a model folder needs its config.json`);
    }
    throw err;
  }
  const legacyPath = join(resolve(dir), "quant_config.json");
  let legacyQuantConfig: unknown;
  try {
    legacyQuantConfig = await readJson(legacyPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return parseModelConfig(configJson, {
    source: configPath,
    legacyQuantConfig,
    legacyQuantSource: legacyPath,
  });
}
