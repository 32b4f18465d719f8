/**
 * Tensor names -> layers for the Llama graph, and a check that a checkpoint holds every tensor
 * the config implies, with the right shape and dtype. Backends build their layers from
 * `describeWeights(config)` rather than spelling names themselves.
 */
import type { Checkpoint, DType, ModelConfig } from "./types.js";

export const LINEAR_NAMES = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

const FLOAT_DTYPES: readonly DType[] = ["F16", "BF16", "F32"];

/** A linear layer stored unquantized, as torch stores nn.Linear: `weight` (out, in). */
export interface DenseLinearNames {
  kind: "dense";
  module: string;
  weight: string; // (out, in)
  inFeatures: number;
  outFeatures: number;
}

/** A linear layer in AutoAWQ GEMM layout (see awq.ts). */
export interface AwqLinearNames {
  kind: "awq";
  module: string;
  qweight: string; // (in, out/8) I32
  qzeros: string; // (in/g, out/8) I32
  scales: string; // (in/g, out) F16
  inFeatures: number;
  outFeatures: number;
  groupSize: number;
}

export type LinearWeightNames = DenseLinearNames | AwqLinearNames;

/** The tensors of one decoder layer. Norm weights are (hidden). */
export interface LayerWeightNames {
  index: number;
  inputLayernorm: string; // (hidden)
  postAttentionLayernorm: string; // (hidden)
  linears: Record<LinearName, LinearWeightNames>;
}

export interface ModelWeightNames {
  embedTokens: string; // (vocab, hidden)
  layers: LayerWeightNames[];
  norm: string; // (hidden)
  /** `lm_head.weight` (vocab, hidden), or the embedding's name when tied. */
  lmHead: string;
  lmHeadTied: boolean;
}

/** One tensor the config implies: its name, allowed dtypes and exact shape. */
export interface ExpectedTensor {
  name: string;
  dtypes: readonly DType[];
  shape: number[];
}

function linearShape(config: ModelConfig, name: LinearName): { inFeatures: number; outFeatures: number } {
  const { hiddenSize, intermediateSize, numHeads, numKvHeads, headDim } = config;
  switch (name) {
    case "q_proj":
      return { inFeatures: hiddenSize, outFeatures: numHeads * headDim };
    case "k_proj":
    case "v_proj":
      return { inFeatures: hiddenSize, outFeatures: numKvHeads * headDim };
    case "o_proj":
      return { inFeatures: numHeads * headDim, outFeatures: hiddenSize };
    case "gate_proj":
    case "up_proj":
      return { inFeatures: hiddenSize, outFeatures: intermediateSize };
    case "down_proj":
      return { inFeatures: intermediateSize, outFeatures: hiddenSize };
  }
}

/** The tensor names of every layer, for this config (AWQ linears unless listed in modules_to_not_convert). */
export function describeWeights(config: ModelConfig): ModelWeightNames {
  const quant = config.quantization;
  const layers: LayerWeightNames[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const prefix = `model.layers.${i}`;
    const linears = {} as Record<LinearName, LinearWeightNames>;
    for (const name of LINEAR_NAMES) {
      const parent = ["gate_proj", "up_proj", "down_proj"].includes(name) ? "mlp" : "self_attn";
      const full = `${prefix}.${parent}.${name}`;
      const shape = linearShape(config, name);
      const quantized = quant !== null && !quant.modulesToNotConvert.some((skip) => full.includes(skip));
      linears[name] = quantized
        ? {
            kind: "awq",
            module: full,
            qweight: `${full}.qweight`,
            qzeros: `${full}.qzeros`,
            scales: `${full}.scales`,
            groupSize: quant.groupSize,
            ...shape,
          }
        : { kind: "dense", module: full, weight: `${full}.weight`, ...shape };
    }
    layers.push({
      index: i,
      inputLayernorm: `${prefix}.input_layernorm.weight`,
      postAttentionLayernorm: `${prefix}.post_attention_layernorm.weight`,
      linears,
    });
  }
  return {
    embedTokens: "model.embed_tokens.weight",
    layers,
    norm: "model.norm.weight",
    lmHead: config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight",
    lmHeadTied: config.tieWordEmbeddings,
  };
}

/** Every tensor the config implies, with its dtype(s) and shape. */
export function expectedTensors(config: ModelConfig, names = describeWeights(config)): ExpectedTensor[] {
  const { hiddenSize, vocabSize } = config;
  const out: ExpectedTensor[] = [
    { name: names.embedTokens, dtypes: FLOAT_DTYPES, shape: [vocabSize, hiddenSize] },
  ];
  for (const layer of names.layers) {
    out.push({ name: layer.inputLayernorm, dtypes: FLOAT_DTYPES, shape: [hiddenSize] });
    out.push({ name: layer.postAttentionLayernorm, dtypes: FLOAT_DTYPES, shape: [hiddenSize] });
    for (const linear of Object.values(layer.linears)) {
      const { inFeatures: inF, outFeatures: outF } = linear;
      if (linear.kind === "dense") {
        out.push({ name: linear.weight, dtypes: FLOAT_DTYPES, shape: [outF, inF] });
      } else {
        const groups = inF / linear.groupSize;
        out.push({ name: linear.qweight, dtypes: ["I32"], shape: [inF, outF / 8] });
        out.push({ name: linear.qzeros, dtypes: ["I32"], shape: [groups, outF / 8] });
        out.push({ name: linear.scales, dtypes: ["F16"], shape: [groups, outF] });
      }
    }
  }
  out.push({ name: names.norm, dtypes: FLOAT_DTYPES, shape: [hiddenSize] });
  if (!names.lmHeadTied)
    out.push({ name: names.lmHead, dtypes: FLOAT_DTYPES, shape: [vocabSize, hiddenSize] });
  return out;
}

function formatShape(shape: readonly number[]): string {
  return `(${shape.join(", ")})`;
}

/**
 * Checks that the checkpoint holds every tensor the config implies, with the expected dtype and shape.
 * Throws one error listing the problems (each names the tensor, what was expected and what was found).
 */
export function validateWeights(config: ModelConfig, checkpoint: Checkpoint): ModelWeightNames {
  const names = describeWeights(config);
  const problems: string[] = [];
  const quant = config.quantization;
  if (quant !== null) {
    for (const name of LINEAR_NAMES) {
      const linear = linearShape(config, name);
      if (linear.inFeatures % quant.groupSize !== 0 || linear.outFeatures % 8 !== 0) {
        problems.push(
          `${name}: AWQ needs in_features (${linear.inFeatures}) divisible by the group size ` +
            `(${quant.groupSize}) and out_features (${linear.outFeatures}) divisible by 8`,
        );
      }
    }
  }
  if (problems.length === 0) {
    for (const expected of expectedTensors(config, names)) {
      const want = `${expected.dtypes.join(" or ")} ${formatShape(expected.shape)}`;
      if (!checkpoint.has(expected.name)) {
        problems.push(
          `tensor "${expected.name}": expected ${want}, found nothing (missing from the checkpoint)`,
        );
        continue;
      }
      const info = checkpoint.info(expected.name);
      const shapeOk =
        info.shape.length === expected.shape.length && info.shape.every((d, i) => d === expected.shape[i]);
      if (!shapeOk || !expected.dtypes.includes(info.dtype)) {
        problems.push(
          `tensor "${expected.name}" in ${info.file}: expected ${want}, found ${info.dtype} ${formatShape(info.shape)}`,
        );
      }
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8);
    if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
    throw new Error(`checkpoint ${checkpoint.dir} does not match its config.json:\n  ${shown.join("\n  ")}`);
  }
  return names;
}

/**
 * Logical parameter count: every weight element a dense model would have (an AWQ linear counts
 * in x out, not its packed int32s, scales or zeros), so a model and its AWQ copy count the same.
 */
export function countParameters(config: ModelConfig, names = describeWeights(config)): number {
  const { hiddenSize, vocabSize } = config;
  let total = vocabSize * hiddenSize + hiddenSize; // embedding + final norm
  if (!names.lmHeadTied) total += vocabSize * hiddenSize;
  for (const layer of names.layers) {
    total += 2 * hiddenSize;
    for (const linear of Object.values(layer.linears)) total += linear.inFeatures * linear.outFeatures;
  }
  return total;
}
