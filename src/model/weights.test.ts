import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { SafetensorsCheckpoint } from "./checkpoint.js";
import { modelParameterCount, modelWeightBytes, openModel } from "./load.js";
import { type TensorToWrite, writeSafetensors } from "./safetensors-writer.js";
import type { ModelConfig } from "./types.js";
import { countParameters, describeWeights, expectedTensors } from "./weights.js";

const repoRoot = resolve(fileURLToPath(import.meta.url), "../../../..");

const tiny: ModelConfig = {
  architecture: "LlamaForCausalLM",
  hiddenSize: 16,
  intermediateSize: 32,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 4,
  vocabSize: 10,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: false,
  dtype: "float16",
  bosTokenId: 1,
  eosTokenIds: [2],
  quantization: null,
};

test("describeWeights names every layer's tensors; AWQ linears get qweight/qzeros/scales", () => {
  const dense = describeWeights(tiny);
  assert.equal(dense.layers.length, 2);
  assert.deepEqual(dense.layers[1].linears.k_proj, {
    kind: "dense",
    module: "model.layers.1.self_attn.k_proj",
    weight: "model.layers.1.self_attn.k_proj.weight",
    inFeatures: 16,
    outFeatures: 8,
  });
  assert.equal(dense.layers[0].linears.down_proj.module, "model.layers.0.mlp.down_proj");
  assert.equal(dense.lmHead, "lm_head.weight");
  const quant = {
    method: "awq",
    bits: 4,
    groupSize: 16,
    zeroPoint: true,
    version: "gemm",
    modulesToNotConvert: ["down_proj"],
  } as const;
  const awq = describeWeights({
    ...tiny,
    tieWordEmbeddings: true,
    quantization: { ...quant, modulesToNotConvert: [...quant.modulesToNotConvert] },
  });
  assert.equal(awq.lmHead, "model.embed_tokens.weight");
  assert.deepEqual(awq.layers[0].linears.q_proj, {
    kind: "awq",
    module: "model.layers.0.self_attn.q_proj",
    qweight: "model.layers.0.self_attn.q_proj.qweight",
    qzeros: "model.layers.0.self_attn.q_proj.qzeros",
    scales: "model.layers.0.self_attn.q_proj.scales",
    groupSize: 16,
    inFeatures: 16,
    outFeatures: 16,
  });
  assert.equal(awq.layers[0].linears.down_proj.kind, "dense"); // modules_to_not_convert
  // Parameters: embed 160 + lm_head 160 + norm 16 + per layer (2*16 + 16*16 + 2*16*8 + 16*16 + 3*16*32).
  assert.equal(countParameters(tiny), 160 + 160 + 16 + 2 * (32 + 256 + 256 + 256 + 1536));
});

async function writeCheckpoint(
  dir: string,
  config: ModelConfig,
  tamper?: (t: TensorToWrite[]) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors: TensorToWrite[] = expectedTensors(config).map((e) => {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const dtype = e.dtypes[0];
    return {
      name: e.name,
      dtype,
      shape: e.shape,
      data: dtype === "I32" ? new Int32Array(n) : new Uint16Array(n),
    };
  });
  tamper?.(tensors);
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      hidden_size: config.hiddenSize,
      intermediate_size: config.intermediateSize,
      num_hidden_layers: config.numLayers,
      num_attention_heads: config.numHeads,
      num_key_value_heads: config.numKvHeads,
      head_dim: config.headDim,
      vocab_size: config.vocabSize,
      max_position_embeddings: config.maxPositionEmbeddings,
      tie_word_embeddings: config.tieWordEmbeddings,
      quantization_config: config.quantization && {
        quant_method: "awq",
        bits: 4,
        group_size: config.quantization.groupSize,
        version: "gemm",
        zero_point: true,
      },
    }),
  );
}

test("openModel validates: a missing tensor and a misshapen one are named with expected and found", async () => {
  const root = await mkdtemp(join(tmpdir(), "awq-weights-"));
  try {
    const good = join(root, "good");
    await writeCheckpoint(good, tiny);
    const model = await openModel(good);
    assert.equal(modelParameterCount(model), countParameters(tiny));
    await model.checkpoint.close();

    const missing = join(root, "missing");
    await writeCheckpoint(missing, tiny, (t) =>
      t.splice(
        t.findIndex((x) => x.name === "lm_head.weight"),
        1,
      ),
    );
    await assert.rejects(openModel(missing), {
      message:
        `checkpoint ${missing} does not match its config.json:\n` +
        '  tensor "lm_head.weight": expected F16 or BF16 or F32 (10, 16), found nothing (missing from the checkpoint)',
    });

    const awqConfig: ModelConfig = {
      ...tiny,
      quantization: {
        method: "awq",
        bits: 4,
        groupSize: 8,
        zeroPoint: true,
        version: "gemm",
        modulesToNotConvert: [],
      },
    };
    const misshapen = join(root, "misshapen");
    await writeCheckpoint(misshapen, awqConfig, (t) => {
      const scales = t.find((x) => x.name === "model.layers.1.mlp.up_proj.scales")!;
      scales.dtype = "F32";
      scales.shape = [2, 16];
      scales.data = new Float32Array(32);
    });
    await assert.rejects(openModel(misshapen), {
      message:
        `checkpoint ${misshapen} does not match its config.json:\n` +
        `  tensor "model.layers.1.mlp.up_proj.scales" in ${join(misshapen, "model.safetensors")}: expected F16 (2, 32), found F32 (2, 16)`,
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("the demo AWQ model opens and validates", async () => {
  const model = await openModel(join(repoRoot, "models/tiny-chat-awq"));
  try {
    // 6 layers x (2*256 norms + 256*256*2 (q, o) + 256*128*2 (k, v) + 3*256*768) + 32002*256 + 256.
    assert.equal(modelParameterCount(model), 6 * (512 + 131072 + 65536 + 589824) + 32002 * 256 + 256);
    assert.equal(modelWeightBytes(model), (model.checkpoint as SafetensorsCheckpoint).totalBytes());
    assert.equal(model.weights.layers[5].linears.o_proj.kind, "awq");
  } finally {
    await model.checkpoint.close();
  }
});

test("the fp16 demo model opens with the same parameter count as its AWQ copy", async (t) => {
  const dir = resolve(repoRoot, "../shared/models/tiny-chat");
  const model = await openModel(dir).catch(() => undefined);
  if (model === undefined) return t.skip("needs ../shared/models/tiny-chat");
  try {
    assert.equal(model.weights.layers[0].linears.q_proj.kind, "dense");
    assert.equal(modelParameterCount(model), 6 * (512 + 131072 + 65536 + 589824) + 32002 * 256 + 256); // 12.9M
  } finally {
    await model.checkpoint.close();
  }
});
