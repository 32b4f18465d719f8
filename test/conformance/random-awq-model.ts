/**
 * Writes a random AutoAWQ GEMM checkpoint (config.json + model.safetensors) of a given Llama shape, for
 * comparing backends at real layer sizes (the Llama-2-13B layer: hidden 5120, 40 heads, head_dim 128,
 * intermediate 13824) without downloading anything. Values are drawn from a seeded xorshift generator and
 * scaled so activations stay O(1) through the layers.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { f32ToF16 } from "../../src/model/half.js";
import { type TensorToWrite, writeSafetensors } from "../../src/model/safetensors-writer.js";

export interface RandomModelShape {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  numLayers: number;
  vocabSize: number;
  groupSize: number;
}

/** The Llama-2-13B layer shape with two layers and a small vocabulary. */
export const LLAMA2_13B_TWO_LAYERS: RandomModelShape = {
  hiddenSize: 5120,
  numHeads: 40,
  numKvHeads: 40,
  headDim: 128,
  intermediateSize: 13824,
  numLayers: 2,
  vocabSize: 512,
  groupSize: 128,
};

/** xorshift32: fast, seeded, good enough for test weights. */
class Xorshift {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  nextU32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** Uniform in [-1, 1). */
  nextSigned(): number {
    return this.nextU32() / 2 ** 31 - 1;
  }
}

function randomInt32(rng: Xorshift, count: number): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = rng.nextU32() | 0;
  return out;
}

/** f16 bit patterns of center + spread * U[-1, 1). */
function randomF16(rng: Xorshift, count: number, center: number, spread: number): Uint16Array {
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = f32ToF16(center + spread * rng.nextSigned());
  return out;
}

/** Writes the checkpoint into `dir` (created); returns `dir`. */
export async function writeRandomAwqModel(dir: string, shape: RandomModelShape, seed = 1): Promise<string> {
  await mkdir(dir, { recursive: true });
  const rng = new Xorshift(seed);
  const {
    hiddenSize: hd,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: inter,
    vocabSize,
    groupSize,
  } = shape;
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: hd,
    intermediate_size: inter,
    num_hidden_layers: shape.numLayers,
    num_attention_heads: numHeads,
    num_key_value_heads: numKvHeads,
    head_dim: headDim,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    vocab_size: vocabSize,
    tie_word_embeddings: false,
    torch_dtype: "float16",
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
    quantization_config: {
      quant_method: "awq",
      bits: 4,
      group_size: groupSize,
      zero_point: true,
      version: "gemm",
    },
  };
  await writeFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  const tensors: TensorToWrite[] = [];
  const awq = (name: string, inF: number, outF: number) => {
    // (q - z) is about +-15 wide (std ~6); this scale keeps each output's std near 1 for unit inputs.
    const scale = 1 / (6 * Math.sqrt(inF));
    tensors.push(
      {
        name: `${name}.qweight`,
        dtype: "I32",
        shape: [inF, outF / 8],
        data: () => randomInt32(rng, (inF * outF) / 8),
      },
      {
        name: `${name}.qzeros`,
        dtype: "I32",
        shape: [inF / groupSize, outF / 8],
        data: () => randomInt32(rng, (inF / groupSize) * (outF / 8)),
      },
      {
        name: `${name}.scales`,
        dtype: "F16",
        shape: [inF / groupSize, outF],
        data: () => randomF16(rng, (inF / groupSize) * outF, scale, scale / 2),
      },
    );
  };
  tensors.push({
    name: "model.embed_tokens.weight",
    dtype: "F16",
    shape: [vocabSize, hd],
    data: () => randomF16(rng, vocabSize * hd, 0, 1),
  });
  for (let l = 0; l < shape.numLayers; l++) {
    const p = `model.layers.${l}`;
    tensors.push({
      name: `${p}.input_layernorm.weight`,
      dtype: "F16",
      shape: [hd],
      data: () => randomF16(rng, hd, 1, 0.2),
    });
    awq(`${p}.self_attn.q_proj`, hd, numHeads * headDim);
    awq(`${p}.self_attn.k_proj`, hd, numKvHeads * headDim);
    awq(`${p}.self_attn.v_proj`, hd, numKvHeads * headDim);
    awq(`${p}.self_attn.o_proj`, numHeads * headDim, hd);
    tensors.push({
      name: `${p}.post_attention_layernorm.weight`,
      dtype: "F16",
      shape: [hd],
      data: () => randomF16(rng, hd, 1, 0.2),
    });
    awq(`${p}.mlp.gate_proj`, hd, inter);
    awq(`${p}.mlp.up_proj`, hd, inter);
    awq(`${p}.mlp.down_proj`, inter, hd);
  }
  tensors.push({
    name: "model.norm.weight",
    dtype: "F16",
    shape: [hd],
    data: () => randomF16(rng, hd, 1, 0.2),
  });
  tensors.push({
    name: "lm_head.weight",
    dtype: "F16",
    shape: [vocabSize, hd],
    data: () => randomF16(rng, vocabSize * hd, 0, 1 / Math.sqrt(hd)),
  });
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
  return dir;
}
