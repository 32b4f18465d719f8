import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadModelConfig, parseModelConfig } from "./config.js";

const repoRoot = resolve(fileURLToPath(import.meta.url), "../../../..");
const src = { source: "config.json" };

/** TheBloke/OpenOrcaxOpenChat-Preview2-13B-AWQ's config.json, trimmed: classic Llama-2 style. */
const classic = {
  architectures: ["LlamaForCausalLM"],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: 5120,
  initializer_range: 0.02,
  intermediate_size: 13824,
  max_position_embeddings: 4096,
  model_type: "llama",
  num_attention_heads: 40,
  num_hidden_layers: 40,
  num_key_value_heads: 40,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  torch_dtype: "float16",
  transformers_version: "4.32.0.dev0",
  use_cache: true,
  vocab_size: 32002,
};

test("classic Llama-2 config (rope_theta absent, torch_dtype)", () => {
  const config = parseModelConfig(classic, src);
  assert.deepEqual(config, {
    architecture: "LlamaForCausalLM",
    hiddenSize: 5120,
    intermediateSize: 13824,
    numLayers: 40,
    numHeads: 40,
    numKvHeads: 40,
    headDim: 128,
    vocabSize: 32002,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    dtype: "float16",
    bosTokenId: 1,
    eosTokenIds: [2],
    quantization: null,
  });
  assert.equal(
    parseModelConfig({ ...classic, rope_theta: 500000, torch_dtype: "bfloat16" }, src).ropeTheta,
    500000,
  );
  assert.equal(parseModelConfig({ ...classic, torch_dtype: "bfloat16" }, src).dtype, "bfloat16");
  assert.deepEqual(
    parseModelConfig({ ...classic, eos_token_id: [2, 32000, 2] }, src).eosTokenIds,
    [2, 32000],
  );
  const noKv: Record<string, unknown> = { ...classic };
  delete noKv.num_key_value_heads;
  assert.equal(parseModelConfig(noKv, src).numKvHeads, 40);
});

test("newer transformers config of AutoAWQ's demo checkpoint (rope_parameters, dtype, head_dim, GQA, tied)", async () => {
  // A copy of ../shared/models/tiny-chat-awq/config.json (transformers 5 style), kept so the test runs anywhere.
  const config = await loadModelConfig(join(repoRoot, "test/fixtures/model/newer-transformers"));
  assert.equal(config.architecture, "LlamaForCausalLM");
  assert.equal(config.hiddenSize, 256);
  assert.equal(config.numHeads, 4);
  assert.equal(config.numKvHeads, 2);
  assert.equal(config.headDim, 64);
  assert.equal(config.ropeTheta, 10000);
  assert.equal(config.ropeScaling, null);
  assert.equal(config.tieWordEmbeddings, true);
  assert.equal(config.dtype, "float16");
  assert.deepEqual(config.eosTokenIds, [32000]);
  assert.deepEqual(config.quantization, {
    method: "awq",
    bits: 4,
    groupSize: 128,
    zeroPoint: true,
    version: "gemm",
    modulesToNotConvert: [],
  });
  // head_dim wins over hidden / heads when the two differ.
  assert.equal(parseModelConfig({ ...classic, head_dim: 64 }, src).headDim, 64);
});

test("the unquantized demo model's classic config", async (t) => {
  const dir = resolve(repoRoot, "../shared/models/tiny-chat");
  const config = await loadModelConfig(dir).catch(() => undefined);
  if (config === undefined) return t.skip("needs ../shared/models/tiny-chat");
  assert.equal(config.quantization, null);
  assert.equal(config.numKvHeads, 2);
  assert.equal(config.headDim, 64);
});

test("rope scaling: linear and dynamic in old (type) and new (rope_type, rope_parameters) keys", () => {
  assert.deepEqual(
    parseModelConfig({ ...classic, rope_scaling: { type: "linear", factor: 2 } }, src).ropeScaling,
    {
      type: "linear",
      factor: 2,
      originalMaxPositionEmbeddings: 4096,
    },
  );
  assert.deepEqual(
    parseModelConfig(
      {
        ...classic,
        rope_scaling: { rope_type: "dynamic", factor: 4, original_max_position_embeddings: 2048 },
      },
      src,
    ).ropeScaling,
    { type: "dynamic", factor: 4, originalMaxPositionEmbeddings: 2048 },
  );
  const newStyle = parseModelConfig(
    { ...classic, rope_parameters: { rope_type: "linear", factor: 8, rope_theta: 1e6 } },
    src,
  );
  assert.deepEqual(newStyle.ropeScaling, { type: "linear", factor: 8, originalMaxPositionEmbeddings: 4096 });
  assert.equal(newStyle.ropeTheta, 1e6);
  assert.throws(() => parseModelConfig({ ...classic, rope_scaling: { rope_type: "yarn", factor: 4 } }, src), {
    message: 'config.json: unsupported rope scaling "yarn"; supported: linear, dynamic',
  });
  assert.throws(
    () => parseModelConfig({ ...classic, rope_parameters: { rope_type: "llama3", factor: 8 } }, src),
    {
      message: 'config.json: unsupported rope scaling "llama3"; supported: linear, dynamic',
    },
  );
  assert.throws(() => parseModelConfig({ ...classic, rope_scaling: { type: "linear" } }, src), {
    message: 'config.json: "rope_scaling.factor" must be a positive number, got undefined',
  });
});

test("Mistral is the Llama graph; its sliding window caps the context", () => {
  const config = parseModelConfig(
    {
      ...classic,
      architectures: ["MistralForCausalLM"],
      max_position_embeddings: 32768,
      sliding_window: 4096,
    },
    src,
  );
  assert.equal(config.architecture, "MistralForCausalLM");
  assert.equal(config.maxPositionEmbeddings, 4096);
});

test("AWQ in config.json quantization_config and in a legacy quant_config.json", async () => {
  const awq = {
    quant_method: "awq",
    bits: 4,
    group_size: 64,
    zero_point: true,
    version: "gemm",
    modules_to_not_convert: ["lm_head"],
  };
  assert.deepEqual(parseModelConfig({ ...classic, quantization_config: awq }, src).quantization, {
    method: "awq",
    bits: 4,
    groupSize: 64,
    zeroPoint: true,
    version: "gemm",
    modulesToNotConvert: ["lm_head"],
  });
  const dir = await mkdtemp(join(tmpdir(), "awq-config-"));
  try {
    await writeFile(join(dir, "config.json"), JSON.stringify(classic));
    await writeFile(
      join(dir, "quant_config.json"),
      JSON.stringify({ zero_point: true, q_group_size: 128, w_bit: 4, version: "GEMM" }),
    );
    const legacy = await loadModelConfig(dir);
    assert.equal(legacy.quantization?.groupSize, 128);
    assert.equal(legacy.quantization?.version, "gemm");
    await writeFile(
      join(dir, "quant_config.json"),
      JSON.stringify({ zero_point: true, q_group_size: 128, w_bit: 4, version: "GEMV" }),
    );
    await assert.rejects(loadModelConfig(dir), {
      message: `${join(dir, "quant_config.json")}: AWQ version "gemv" (its packed layout) is not supported; supported: AWQ GEMM (quant_method "awq", version "gemm", 4 bits, zero_point true) or no quantization`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("refusals say what is supported", () => {
  const supported =
    'supported: AWQ GEMM (quant_method "awq", version "gemm", 4 bits, zero_point true) or no quantization';
  const q = (quantization_config: unknown) => () =>
    parseModelConfig({ ...classic, quantization_config }, src);
  assert.throws(q({ quant_method: "gptq", bits: 4, group_size: 128 }), {
    message: `config.json quantization_config: quantization method "gptq" is not supported; ${supported}`,
  });
  for (const version of ["gemv", "marlin", "exllama", "gemv_fast"]) {
    assert.throws(q({ quant_method: "awq", bits: 4, group_size: 128, version }), {
      message: `config.json quantization_config: AWQ version "${version}" (its packed layout) is not supported; ${supported}`,
    });
  }
  assert.throws(q({ quant_method: "awq", bits: 8, group_size: 128, version: "gemm" }), {
    message: `config.json quantization_config: 8-bit AWQ is not supported; ${supported}`,
  });
  assert.throws(q({ quant_method: "awq", bits: 4, group_size: 128, zero_point: false }), {
    message: `config.json quantization_config: AWQ without a zero point (zero_point false) is not supported; ${supported}`,
  });
  assert.throws(q({ quant_method: "awq", bits: 4, group_size: -1 }), {
    message:
      "config.json quantization_config: group size -1 is not supported; supported: a positive multiple of 8 (usually 128)",
  });
  assert.throws(q({ quant_method: "awq", group_size: 128 }), {
    message: 'config.json quantization_config: missing required field "bits" (or "w_bit")',
  });
  assert.throws(() => parseModelConfig({ ...classic, architectures: ["GPTNeoXForCausalLM"] }, src), {
    message:
      'config.json: unsupported architecture "GPTNeoXForCausalLM"; supported: LlamaForCausalLM, MistralForCausalLM',
  });
  assert.throws(() => parseModelConfig({ ...classic, torch_dtype: "float8_e4m3fn" }, src), {
    message: 'config.json: unsupported dtype "float8_e4m3fn"; supported: float16, bfloat16, float32',
  });
  assert.throws(() => parseModelConfig({ ...classic, hidden_act: "gelu" }, src), {
    message: 'config.json: hidden_act "gelu" is not supported; supported: silu',
  });
  assert.throws(() => parseModelConfig({ ...classic, num_key_value_heads: 3 }, src), {
    message: "config.json: num_attention_heads (40) must be a multiple of num_key_value_heads (3)",
  });
});

test("missing required fields name the field and the file", async () => {
  for (const field of [
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "max_position_embeddings",
  ]) {
    const json: Record<string, unknown> = { ...classic };
    delete json[field];
    assert.throws(() => parseModelConfig(json, { source: "/m/config.json" }), {
      message: `/m/config.json: missing required field "${field}"`,
    });
  }
  const noArch: Record<string, unknown> = { ...classic };
  delete noArch.architectures;
  assert.equal(parseModelConfig(noArch, src).architecture, "LlamaForCausalLM"); // from model_type
  delete noArch.model_type;
  assert.throws(() => parseModelConfig(noArch, src), {
    message: 'config.json: missing required field "architectures" (or "model_type")',
  });
  assert.throws(() => parseModelConfig({ ...classic, hidden_size: "5120" }, src), {
    message: 'config.json: "hidden_size" must be a positive integer, got "5120"',
  });
  const dir = await mkdtemp(join(tmpdir(), "awq-config-"));
  try {
    await assert.rejects(loadModelConfig(dir), {
      message: `${join(dir, "config.json")} not found: a model folder needs its config.json`,
    });
    await writeFile(join(dir, "config.json"), "{ nope");
    await assert.rejects(loadModelConfig(dir), (err: Error) =>
      err.message.startsWith(`${join(dir, "config.json")}: malformed JSON`),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("absurd sizes (num_hidden_layers 1e9, ...) are refused at once, naming the field and the bound", () => {
  const t0 = performance.now();
  for (const [field, value, limit] of [
    ["num_hidden_layers", 1e9, 1024],
    ["hidden_size", 2 ** 40, 65536],
    ["intermediate_size", 1e7, 262144],
    ["num_attention_heads", 1e6, 1024],
    ["vocab_size", 1e12, 4194304],
    ["max_position_embeddings", 2 ** 31, 16777216],
  ] as const) {
    assert.throws(() => parseModelConfig({ ...classic, [field]: value }, src), {
      message: `config.json: "${field}" is ${value}, more than any supported model (at most ${limit})`,
    });
  }
  assert.throws(
    () => parseModelConfig({ ...classic, num_hidden_layers: Number.POSITIVE_INFINITY }, src),
    /"num_hidden_layers" must be a positive integer, got Infinity \(not a finite number\)/,
  );
  assert.ok(performance.now() - t0 < 100, "refused before anything is sized from the values");
});
