/**
 * A synthetic AWQ checkpoint of a real Llama shape, written to disk with no download: AutoAWQ's GEMM layout
 * (qweight / qzeros int32, scales f16, group size 128), random weights scaled so activations stay finite,
 * the demo model's tokenizer (Llama-2 vocabulary + 2 chat tokens: 32002 rows), config.json, and sharded
 * safetensors with model.safetensors.index.json as Hugging Face writes them. Each tensor is generated when
 * its turn to be written comes, so a 13B checkpoint (7.25 GB) never sits in memory: at most one tensor does
 * (the 327 MB embedding).
 */
import { copyFile, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { DEMO_MODEL } from "../demo-model.js";
import { f32ToF16 } from "./half.js";
import { type TensorToWrite, writeSafetensors } from "./safetensors-writer.js";
import { DTYPE_BYTES } from "./types.js";

export interface SyntheticShape {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  maxPositionEmbeddings: number;
}

export const SYNTHETIC_SHAPES: Record<string, SyntheticShape> = {
  "llama-2-13b": {
    hiddenSize: 5120,
    intermediateSize: 13824,
    numLayers: 40,
    numHeads: 40,
    numKvHeads: 40,
    maxPositionEmbeddings: 4096,
  },
  "llama-2-7b": {
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 32,
    maxPositionEmbeddings: 4096,
  },
  /**
   * Llama-3-8B's layer shapes (32 query heads on 8 KV heads) with the demo tokenizer's 32,002-row vocabulary, not
   * its 128,256: serving benchmarks of a grouped-query model with no download.
   */
  "llama-3-8b": {
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    maxPositionEmbeddings: 8192,
  },
  /** The demo model's width with 2 layers: seconds to write, for tests. */
  tiny: {
    hiddenSize: 256,
    intermediateSize: 768,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxPositionEmbeddings: 2048,
  },
};

/** The shape called `name`, or an error that names it and the shapes there are (the --shape flags' message). */
export function syntheticShape(name: string): SyntheticShape {
  const shape = SYNTHETIC_SHAPES[name];
  if (shape === undefined) {
    throw new Error(`--shape ${name} is not known: use ${Object.keys(SYNTHETIC_SHAPES).join(", ")}`);
  }
  return shape;
}

const GROUP_SIZE = 128;
/** The demo tokenizer's rows (Llama-2's 32000 + <|end_of_turn|> + <|pad_0|>). */
const VOCAB_SIZE = 32002;
const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
];
/** Shards of at most about this many bytes when --shards is not given (Hugging Face's default is 5 GB; 2 GB
 * gives the 13B four shards, as the measurement had). */
const DEFAULT_SHARD_BYTES = 2e9;

export interface SyntheticCheckpointOptions {
  shape: string;
  out: string;
  /** Number of safetensors files; default: as many as keeps each under ~2 GB. */
  shards?: number;
  seed?: number;
  /**
   * Write into a folder that already holds a model (its weights, index and config are replaced, stale shards
   * removed). Without it such a folder is refused, so a mistyped --out never overwrites a real model.
   */
  overwrite?: boolean;
  /** Called after each tensor is written, with bytes written so far and in all. */
  onProgress?: (written: number, total: number) => void;
}

export interface SyntheticCheckpointResult {
  dir: string;
  totalBytes: number;
  files: string[];
  tensors: number;
}

/** xorshift32: fast random 32-bit words for filling hundreds of MB. */
class WordSource {
  constructor(private state: number) {
    this.state = state >>> 0 || 0x9e3779b9;
  }

  fill(out: Uint32Array): void {
    let x = this.state;
    for (let i = 0; i < out.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x >>> 0;
    }
    this.state = x;
  }
}

/** 4096 f16 bit patterns uniform in [lo, hi): random 12-bit indices into it give random f16 tensors quickly. */
function f16Table(lo: number, hi: number): Uint16Array {
  const table = new Uint16Array(4096);
  for (let i = 0; i < table.length; i++) table[i] = f32ToF16(lo + ((hi - lo) * (i + 0.5)) / table.length);
  return table;
}

function randomF16(words: WordSource, count: number, table: Uint16Array): Uint16Array {
  const raw = new Uint32Array(Math.ceil(count / 2));
  words.fill(raw);
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = table[(raw[i >> 1]! >>> ((i & 1) * 16)) & 4095]!;
  return out;
}

/** Every tensor of the checkpoint, in Hugging Face's order, each generated when written. */
export function syntheticTensors(shape: SyntheticShape, seed = 0): TensorToWrite[] {
  const h = shape.hiddenSize;
  const headDim = h / shape.numHeads;
  const kvDim = headDim * shape.numKvHeads;
  const words = new WordSource(seed * 2654435761 + 1);
  const ones = () => new Uint16Array(h).fill(0x3c00); // f16 1.0
  const embedTable = f16Table(-0.05, 0.05);
  const tensors: TensorToWrite[] = [
    {
      name: "model.embed_tokens.weight",
      dtype: "F16",
      shape: [VOCAB_SIZE, h],
      data: () => randomF16(words, VOCAB_SIZE * h, embedTable),
    },
  ];
  const linear = (name: string, inF: number, outF: number) => {
    // W = (q - z) * s with q uniform in 0..15 and z in 6..9: |q - z| averages ~4, so s ~ 0.5 / (4 sqrt(in))
    // keeps each output's spread near the input's (the residual stream neither dies nor explodes).
    const s = 0.5 / (4 * Math.sqrt(inF));
    const scaleTable = f16Table(0.5 * s, 1.5 * s);
    tensors.push(
      {
        name: `${name}.qweight`,
        dtype: "I32",
        shape: [inF, outF / 8], // int32 (in, out/8): eight 4-bit values per word
        data: () => {
          const q = new Int32Array((inF * outF) / 8);
          words.fill(new Uint32Array(q.buffer));
          return q;
        },
      },
      {
        name: `${name}.qzeros`,
        dtype: "I32",
        shape: [inF / GROUP_SIZE, outF / 8], // int32 (in/g, out/8)
        data: () => {
          const z = new Int32Array((inF / GROUP_SIZE) * (outF / 8));
          const raw = new Uint32Array(z.length);
          words.fill(raw);
          // Each nibble 6 + (2 random bits): zero points in 6..9.
          for (let i = 0; i < z.length; i++) z[i] = ((raw[i]! & 0x33333333) + 0x66666666) | 0;
          return z;
        },
      },
      {
        name: `${name}.scales`,
        dtype: "F16",
        shape: [inF / GROUP_SIZE, outF], // f16 (in/g, out)
        data: () => randomF16(words, (inF / GROUP_SIZE) * outF, scaleTable),
      },
    );
  };
  for (let l = 0; l < shape.numLayers; l++) {
    const p = `model.layers.${l}`;
    tensors.push({ name: `${p}.input_layernorm.weight`, dtype: "F16", shape: [h], data: ones });
    linear(`${p}.self_attn.q_proj`, h, h);
    linear(`${p}.self_attn.k_proj`, h, kvDim);
    linear(`${p}.self_attn.v_proj`, h, kvDim);
    linear(`${p}.self_attn.o_proj`, h, h);
    tensors.push({ name: `${p}.post_attention_layernorm.weight`, dtype: "F16", shape: [h], data: ones });
    linear(`${p}.mlp.gate_proj`, h, shape.intermediateSize);
    linear(`${p}.mlp.up_proj`, h, shape.intermediateSize);
    linear(`${p}.mlp.down_proj`, shape.intermediateSize, h);
  }
  tensors.push({ name: "model.norm.weight", dtype: "F16", shape: [h], data: ones });
  tensors.push({
    name: "lm_head.weight",
    dtype: "F16",
    shape: [VOCAB_SIZE, h],
    data: () => randomF16(words, VOCAB_SIZE * h, embedTable),
  });
  return tensors;
}

export function tensorBytes(t: TensorToWrite): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
}

/** Splits tensors, in order, into `count` runs of roughly equal bytes (none empty). */
export function splitIntoShards(tensors: readonly TensorToWrite[], count: number): TensorToWrite[][] {
  if (count > tensors.length)
    throw new Error(`--shards ${count}: the checkpoint has only ${tensors.length} tensors`);
  const total = tensors.reduce((n, t) => n + tensorBytes(t), 0);
  const shards: TensorToWrite[][] = [[]];
  let done = 0;
  tensors.forEach((t, i) => {
    const left = tensors.length - i;
    const shardsToOpen = count - shards.length;
    const current = shards.at(-1)!;
    // Open the next shard once this one holds its share, or when each remaining shard needs a tensor.
    if (
      current.length > 0 &&
      shardsToOpen > 0 &&
      (done >= (total * shards.length) / count || left <= shardsToOpen)
    ) {
      shards.push([]);
    }
    shards.at(-1)!.push(t);
    done += tensorBytes(t);
  });
  return shards;
}

function configJson(shape: SyntheticShape): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    torch_dtype: "float16",
    vocab_size: VOCAB_SIZE,
    hidden_size: shape.hiddenSize,
    intermediate_size: shape.intermediateSize,
    num_hidden_layers: shape.numLayers,
    num_attention_heads: shape.numHeads,
    num_key_value_heads: shape.numKvHeads,
    max_position_embeddings: shape.maxPositionEmbeddings,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    tie_word_embeddings: false,
    hidden_act: "silu",
    bos_token_id: 1,
    eos_token_id: 32000,
    pad_token_id: 32001,
    quantization_config: {
      quant_method: "awq",
      bits: 4,
      group_size: GROUP_SIZE,
      zero_point: true,
      version: "gemm",
      modules_to_not_convert: null,
    },
  };
}

/** A checkpoint's weights: safetensors shards and their index. */
const isWeightFile = (name: string): boolean =>
  name.endsWith(".safetensors") || name === "model.safetensors.index.json";

/** The files of `dir` that make it a model folder (none when it is missing or empty of them). */
async function modelFilesIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names.filter((n) => n === "config.json" || isWeightFile(n)).sort();
}

export async function writeSyntheticCheckpoint(
  opts: SyntheticCheckpointOptions,
): Promise<SyntheticCheckpointResult> {
  const shape = syntheticShape(opts.shape);
  const tensors = syntheticTensors(shape, opts.seed ?? 0);
  const totalBytes = tensors.reduce((n, t) => n + tensorBytes(t), 0);
  const count = opts.shards ?? Math.max(1, Math.ceil(totalBytes / DEFAULT_SHARD_BYTES));
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`--shards needs a positive integer, got ${count}`);
  const shards = splitIntoShards(tensors, count);
  const existing = await modelFilesIn(opts.out);
  if (existing.length > 0 && !opts.overwrite)
    throw new Error(
      `--out ${opts.out} already holds a model (${existing.join(", ")}): choose an empty folder, or pass --force to replace it`,
    );
  await mkdir(opts.out, { recursive: true });
  // Replacing: weight files of an earlier write with another shard count would sit beside the new ones.
  for (const file of existing.filter(isWeightFile)) await rm(path.join(opts.out, file));
  const files =
    count === 1
      ? ["model.safetensors"]
      : shards.map(
          (_, i) =>
            `model-${String(i + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`,
        );
  let written = 0;
  for (let s = 0; s < shards.length; s++) {
    // Count progress per tensor as it is produced (the writer calls data() in order).
    const withProgress = shards[s]!.map((t) => ({
      ...t,
      data: async () => {
        const data = typeof t.data === "function" ? await t.data() : t.data;
        written += tensorBytes(t);
        opts.onProgress?.(written, totalBytes);
        return data;
      },
    }));
    await writeSafetensors(path.join(opts.out, files[s]!), withProgress, { format: "pt" });
  }
  if (count > 1) {
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, s) => {
      for (const t of shard) weightMap[t.name] = files[s]!;
    });
    await writeFile(
      path.join(opts.out, "model.safetensors.index.json"),
      `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2)}\n`,
    );
  }
  await writeFile(path.join(opts.out, "config.json"), `${JSON.stringify(configJson(shape), null, 2)}\n`);
  await writeFile(
    path.join(opts.out, "quant_config.json"),
    `${JSON.stringify({ zero_point: true, q_group_size: GROUP_SIZE, w_bit: 4, version: "GEMM" }, null, 2)}\n`,
  );
  await writeFile(
    path.join(opts.out, "generation_config.json"),
    `${JSON.stringify({ bos_token_id: 1, eos_token_id: 32000, pad_token_id: 32001 }, null, 2)}\n`,
  );
  for (const file of TOKENIZER_FILES) await copyFile(path.join(DEMO_MODEL, file), path.join(opts.out, file));
  return { dir: opts.out, totalBytes, files, tensors: tensors.length };
}
