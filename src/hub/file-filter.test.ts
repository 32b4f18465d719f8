import assert from "node:assert/strict";
import { test } from "node:test";
import { selectNeededFiles } from "./file-filter.js";

test("keeps config, tokenizer files and safetensors shards with their index; drops the rest", () => {
  const files = [
    ".gitattributes",
    "README.md",
    "config.json",
    "generation_config.json",
    "quant_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "flax_model.msgpack",
    "tf_model.h5",
    "onnx/model.onnx",
    "original/consolidated.safetensors",
  ];
  assert.deepEqual(selectNeededFiles("org/m", files), [
    "config.json",
    "generation_config.json",
    "quant_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
  ]);
});

test("a repo with only .bin weights is refused with what to do", () => {
  assert.throws(
    () => selectNeededFiles("org/old", ["config.json", "pytorch_model.bin", "tokenizer.json"]),
    /org\/old has no safetensors weights, only pytorch_model\.bin.*AWQ repo that ships safetensors.*safe_serialization=True/,
  );
  assert.throws(
    () => selectNeededFiles("org/empty", ["README.md"]),
    /org\/empty has no \.safetensors weights/,
  );
  assert.throws(() => selectNeededFiles("org/nocfg", ["model.safetensors"]), /no config\.json/);
});
