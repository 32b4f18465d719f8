/** The fused-linear layout: widths, placements, the parts of each fused linear, the tensors a load reads. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FUSED_LINEAR_NAMES,
  fusedInFeatures,
  fusedOutFeatures,
  fusedParts,
  fusedPlacement,
  loadedTensorNames,
} from "./fused-layout.js";
import { describeWeights } from "./weights.js";

// A GQA layer: 4 query heads, 2 KV heads of 8, hidden 32, intermediate 48.
const dims = {
  hiddenSize: 32,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  intermediateSize: 48,
  rmsNormEps: 1e-6,
};

test("fused widths: q|k|v and gate|up side by side", () => {
  assert.deepEqual(FUSED_LINEAR_NAMES, ["qkv", "o", "gateUp", "down"]);
  assert.deepEqual(
    FUSED_LINEAR_NAMES.map((w) => [fusedInFeatures(dims, w), fusedOutFeatures(dims, w)]),
    [
      [32, 64],
      [32, 32],
      [32, 96],
      [48, 32],
    ],
  );
});

test("each Llama linear's first column in its fused matrix", () => {
  assert.deepEqual(fusedPlacement(dims), {
    q_proj: ["qkv", 0],
    k_proj: ["qkv", 32],
    v_proj: ["qkv", 48],
    o_proj: ["o", 0],
    gate_proj: ["gateUp", 0],
    up_proj: ["gateUp", 48],
    down_proj: ["down", 0],
  });
});

test("fusedParts and loadedTensorNames follow describeWeights", () => {
  const config = {
    ...dims,
    numLayers: 2,
    vocabSize: 100,
    tieWordEmbeddings: true,
    quantization: { groupSize: 16, modulesToNotConvert: ["mlp.down_proj"] },
  } as unknown as Parameters<typeof describeWeights>[0];
  const names = describeWeights(config);
  const layer = names.layers[1]!;
  assert.deepEqual(
    fusedParts(layer, "qkv").map((p) => p.module),
    ["q_proj", "k_proj", "v_proj"].map((m) => `model.layers.1.self_attn.${m}`),
  );
  assert.deepEqual(
    fusedParts(layer, "gateUp").map((p) => p.outFeatures),
    [48, 48],
  );
  const loaded = loadedTensorNames(names);
  // Tied lm_head: the embedding once; per layer 2 norms, 6 AWQ linears x 3 tensors, down_proj dense (1).
  assert.equal(loaded.length, 2 + 2 * (2 + 6 * 3 + 1));
  assert.equal(new Set(loaded).size, loaded.length);
  assert.ok(loaded.includes("model.layers.0.mlp.down_proj.weight"));
  assert.ok(!loaded.includes("lm_head.weight"));
});
