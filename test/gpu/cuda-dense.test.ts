/**
 * Unquantized checkpoints on CUDA against the CPU reference, on small random Llama models that reach the paths
 * the AWQ demo model does not: fp16 / bf16 / f32 weights (converted to fp16 at load), the dense fp16 matmul for
 * every linear, GQA, head_dim 64, tied and untied lm_head, linear and dynamic-NTK RoPE scaling; prefill then
 * decode logits within 1e-2 relative error of the CPU f32 backend, and identical greedy tokens.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Backend } from "../../src/backend/backend.js";
import { CpuBackend } from "../../src/backend/cpu/cpu-backend.js";
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
import { f32ToBf16, f32ToF16 } from "../../src/model/half.js";
import { openModel } from "../../src/model/load.js";
import { type TensorToWrite, writeSafetensors } from "../../src/model/safetensors-writer.js";
import type { TensorData } from "../../src/model/types.js";
import { maxRelativeError } from "../conformance/relative-error.js";
import { StepBuilder } from "../conformance/step-builder.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();

interface Variant {
  name: string;
  dtype: "F16" | "BF16" | "F32";
  tied: boolean;
  ropeScaling: Record<string, unknown> | null;
  maxPositions: number;
}

export const VARIANTS: Variant[] = [
  { name: "fp16, tied lm_head, plain RoPE", dtype: "F16", tied: true, ropeScaling: null, maxPositions: 256 },
  {
    name: "bf16, linear RoPE x2",
    dtype: "BF16",
    tied: false,
    ropeScaling: { type: "linear", factor: 2 },
    maxPositions: 256,
  },
  {
    name: "f32, dynamic NTK past 16",
    dtype: "F32",
    tied: false,
    ropeScaling: { type: "dynamic", factor: 2 },
    maxPositions: 16,
  },
];

const SHAPE = { hidden: 256, heads: 4, kvHeads: 2, headDim: 64, inter: 512, vocab: 1000, layers: 2 };

export async function writeDenseModel(dir: string, v: Variant, seed: number): Promise<void> {
  let state = seed >>> 0;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 31 - 1;
  };
  const values = (count: number, center: number, spread: number): TensorData => {
    if (v.dtype === "F32") return Float32Array.from({ length: count }, () => center + spread * next());
    const encode = v.dtype === "F16" ? f32ToF16 : f32ToBf16;
    return Uint16Array.from({ length: count }, () => encode(center + spread * next()));
  };
  const { hidden, heads, kvHeads, headDim, inter, vocab, layers } = SHAPE;
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: hidden,
      intermediate_size: inter,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      max_position_embeddings: v.maxPositions,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      rope_scaling: v.ropeScaling,
      vocab_size: vocab,
      tie_word_embeddings: v.tied,
      torch_dtype: { F16: "float16", BF16: "bfloat16", F32: "float32" }[v.dtype],
      bos_token_id: 1,
      eos_token_id: 2,
      hidden_act: "silu",
    }),
  );
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], center: number, spread: number) =>
    tensors.push({
      name,
      dtype: v.dtype,
      shape,
      data: () => values(shape[0] * (shape[1] ?? 1), center, spread),
    });
  const linear = (name: string, inF: number, outF: number) =>
    add(`${name}.weight`, [outF, inF], 0, Math.sqrt(3 / inF));
  add("model.embed_tokens.weight", [vocab, hidden], 0, 1);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [hidden], 1, 0.1);
    add(`${p}.post_attention_layernorm.weight`, [hidden], 1, 0.1);
    linear(`${p}.self_attn.q_proj`, hidden, heads * headDim);
    linear(`${p}.self_attn.k_proj`, hidden, kvHeads * headDim);
    linear(`${p}.self_attn.v_proj`, hidden, kvHeads * headDim);
    linear(`${p}.self_attn.o_proj`, heads * headDim, hidden);
    linear(`${p}.mlp.gate_proj`, hidden, inter);
    linear(`${p}.mlp.up_proj`, hidden, inter);
    linear(`${p}.mlp.down_proj`, inter, hidden);
  }
  add("model.norm.weight", [hidden], 1, 0.1);
  if (!v.tied) linear("lm_head", hidden, vocab);
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
}

/**
 * Prefill of a 24-token prompt, then 8 greedy decode steps: each step's raw logits and sampled token. With
 * `forced`, those tokens are fed back instead of the sampled ones (both backends then see the same sequence).
 */
export async function runSteps(
  make: () => Promise<Backend>,
  dir: string,
  forced?: number[],
): Promise<{ logits: Float32Array[]; tokens: number[] }> {
  const model = await openModel(dir);
  const backend = await make();
  try {
    const layout = await backend.load(model, {
      maxModelLen: 64,
      maxNumSeqs: 8,
      maxNumBatchedTokens: 256,
      blockSize: 16,
      numBlocks: 16,
    });
    const builder = new StepBuilder(16, layout.numBlocks);
    const seq = builder.addSequence(Array.from({ length: 24 }, (_, i) => 3 + ((i * 37) % 990)));
    const logits: Float32Array[] = [];
    const tokens: number[] = [];
    for (let s = 0; s < 9; s++) {
      const batch = builder.build([{ seq }]);
      batch.returnLogits = true;
      const r = await backend.step(batch);
      logits.push(r.logits!);
      tokens.push(r.tokenIds[0]);
      seq.tokens.push(forced?.[s] ?? r.tokenIds[0]);
    }
    return { logits, tokens };
  } finally {
    await backend.dispose();
    await model.checkpoint.close();
  }
}

describe("unquantized models on CUDA = the CPU reference", { skip: unavailable ?? false }, () => {
  for (const [k, v] of VARIANTS.entries()) {
    test(v.name, async () => {
      const dir = await mkdtemp(join(tmpdir(), "awq-dense-"));
      try {
        await writeDenseModel(dir, v, 4242 + k);
        const cpu = await runSteps(async () => new CpuBackend(), dir);
        const cuda = await runSteps(() => CudaBackend.create(), dir, cpu.tokens);
        for (let s = 0; s < cpu.logits.length; s++) {
          const err = maxRelativeError(cuda.logits[s], cpu.logits[s]);
          assert.ok(err <= 1e-2, `step ${s}: logits relative error ${err}`);
          // Greedy picks agree wherever the reference's best two logits are not a near-tie.
          const sorted = Float32Array.from(cpu.logits[s]).sort();
          if (sorted[sorted.length - 1] - sorted[sorted.length - 2] > 0.05) {
            assert.equal(cuda.tokens[s], cpu.tokens[s], `step ${s}: greedy token`);
          }
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
