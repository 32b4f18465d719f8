import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { dequantizeAwq, packAwq } from "./awq.js";
import { f32ToF16 } from "./half.js";
import {
  collectiveAfter,
  LAYER_COLLECTIVES,
  linearShard,
  type PlanModel,
  planTensorParallel,
  TensorParallelError,
  validTensorParallelSizes,
  vocabRange,
} from "./tensor-parallel-plan.js";
import { sliceAwqLinear, sliceDenseLinear, sliceMatrix } from "./tensor-parallel-shard.js";
import { LINEAR_NAMES } from "./weights.js";

const AWQ = {
  method: "awq",
  bits: 4,
  groupSize: 128,
  zeroPoint: true,
  version: "gemm",
  modulesToNotConvert: [],
} as const;

/** models/tiny-chat-awq's shape. */
const DEMO: PlanModel = {
  hiddenSize: 256,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 64,
  intermediateSize: 768,
  rmsNormEps: 1e-5,
  vocabSize: 32002,
  quantization: { ...AWQ, modulesToNotConvert: [] },
};

/** Llama-2-13B's shape (the seed model). */
const LLAMA2_13B: PlanModel = {
  hiddenSize: 5120,
  numHeads: 40,
  numKvHeads: 40,
  headDim: 128,
  intermediateSize: 13824,
  rmsNormEps: 1e-5,
  vocabSize: 32002,
  quantization: { ...AWQ, modulesToNotConvert: [] },
};

describe("tensor-parallel plan", () => {
  test("the demo model over 2 ranks: heads, KV heads, MLP columns and vocabulary split without overlap", () => {
    const plan = planTensorParallel(DEMO, 2);
    assert.equal(plan.size, 2);
    assert.deepEqual(
      plan.ranks.map((r) => [r.heads, r.kvHeads, r.intermediate, r.vocab]),
      [
        [
          { start: 0, end: 2 },
          { start: 0, end: 1 },
          { start: 0, end: 384 },
          { start: 0, end: 16064 },
        ],
        [
          { start: 2, end: 4 },
          { start: 1, end: 2 },
          { start: 384, end: 768 },
          { start: 16064, end: 32002 },
        ],
      ],
    );
    assert.deepEqual(plan.ranks[1].dims, { ...plan.dims, numHeads: 2, numKvHeads: 1, intermediateSize: 384 });
    const rank1 = plan.ranks[1];
    assert.deepEqual(linearShard(plan, rank1, "q_proj"), {
      split: "column",
      range: { start: 128, end: 256 },
    });
    assert.deepEqual(linearShard(plan, rank1, "k_proj"), { split: "column", range: { start: 64, end: 128 } });
    assert.deepEqual(linearShard(plan, rank1, "o_proj"), { split: "row", range: { start: 128, end: 256 } });
    assert.deepEqual(linearShard(plan, rank1, "up_proj"), {
      split: "column",
      range: { start: 384, end: 768 },
    });
    assert.deepEqual(linearShard(plan, rank1, "down_proj"), {
      split: "row",
      range: { start: 384, end: 768 },
    });
  });

  test("an all-reduce follows exactly the row-parallel linears", () => {
    assert.deepEqual(
      LAYER_COLLECTIVES.map((c) => c.after),
      ["o_proj", "down_proj"],
    );
    const plan = planTensorParallel(DEMO, 2);
    for (const linear of LINEAR_NAMES) {
      const row = linearShard(plan, plan.ranks[0], linear).split === "row";
      assert.equal(collectiveAfter(linear)?.op ?? null, row ? "all-reduce" : null, linear);
    }
  });

  test("size 1 is the whole model", () => {
    const [only] = planTensorParallel(LLAMA2_13B, 1).ranks;
    assert.deepEqual(only.dims, planTensorParallel(LLAMA2_13B, 1).dims);
    assert.deepEqual(only.vocab, { start: 0, end: 32002 });
  });

  test("vocabulary ranges: vLLM's padding to 64 per rank, contiguous, covering every id once", () => {
    for (const size of [1, 2, 3, 4, 8]) {
      let next = 0;
      for (let r = 0; r < size; r++) {
        const range = vocabRange(32002, size, r);
        assert.equal(range.start, next);
        if (r < size - 1) assert.equal((range.end - range.start) % 64, 0);
        next = range.end;
      }
      assert.equal(next, 32002);
    }
  });

  test("invalid sizes name the value and what it fails", () => {
    const refuse = (model: PlanModel, size: number, message: RegExp) =>
      assert.throws(
        () => planTensorParallel(model, size),
        (err: Error) => err instanceof TensorParallelError && message.test(err.message),
      );
    refuse(DEMO, 0, /tensor-parallel-size must be a positive integer, got 0$/);
    refuse(DEMO, 1.5, /tensor-parallel-size must be a positive integer, got 1.5$/);
    refuse(DEMO, 3, /tensor-parallel-size 3 does not divide the model's 4 attention heads .*takes 1, 2$/);
    refuse(DEMO, 4, /tensor-parallel-size 4 does not divide the model's 2 KV heads \(num_key_value_heads\)/);
    // 13B: 8 ranks give down_proj 1728 input rows each = 13.5 groups of 128.
    refuse(
      LLAMA2_13B,
      8,
      /down_proj is row-parallel and each rank would own 1728 of its input rows, not a whole number of AWQ groups of 128; this model takes 1, 2, 4$/,
    );
    // Without AWQ the same split is fine.
    assert.equal(planTensorParallel({ ...LLAMA2_13B, quantization: null }, 8).size, 8);
    assert.deepEqual(validTensorParallelSizes(LLAMA2_13B), [1, 2, 4]);
  });
});

/** A random AWQ linear: q values, zeros, f16 scales, packed. */
function randomAwq(inFeatures: number, outFeatures: number, groupSize: number) {
  let state = 12345;
  const next = () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state >>> 8;
  };
  const groups = inFeatures / groupSize;
  const q = Uint8Array.from({ length: inFeatures * outFeatures }, () => next() & 15);
  const zeros = Uint8Array.from({ length: groups * outFeatures }, () => next() & 15);
  const scales = Uint16Array.from({ length: groups * outFeatures }, () =>
    f32ToF16(((next() % 1000) + 1) / 4096),
  );
  return {
    qweight: packAwq(q, inFeatures, outFeatures),
    qzeros: packAwq(zeros, groups, outFeatures),
    scales,
  };
}

describe("tensor-parallel shards", () => {
  test("AWQ column and row shards dequantize to the matching block of the whole matrix", () => {
    const [inF, outF, g] = [256, 48, 128];
    const tensors = randomAwq(inF, outF, g);
    const whole = dequantizeAwq(tensors, inF, outF, g); // (in, out)
    const cols = { start: 16, end: 40 };
    const c = sliceAwqLinear(tensors, inF, outF, g, "column", cols);
    assert.deepEqual(
      dequantizeAwq(c, c.inFeatures, c.outFeatures, g),
      sliceMatrix(whole, inF, outF, { start: 0, end: inF }, cols),
    );
    const rows = { start: 128, end: 256 };
    const r = sliceAwqLinear(tensors, inF, outF, g, "row", rows);
    assert.equal(r.inFeatures, 128);
    assert.deepEqual(
      dequantizeAwq(r, r.inFeatures, r.outFeatures, g),
      sliceMatrix(whole, inF, outF, rows, { start: 0, end: outF }),
    );
  });

  test("AWQ shards that would cut a packed word or a group are refused, naming the linear", () => {
    const tensors = randomAwq(256, 48, 128);
    assert.throws(
      () => sliceAwqLinear(tensors, 256, 48, 128, "column", { start: 4, end: 24 }, "q_proj"),
      /q_proj: AWQ columns 4\.\.24 cut a packed word of 8 columns/,
    );
    assert.throws(
      () => sliceAwqLinear(tensors, 256, 48, 128, "row", { start: 64, end: 192 }, "down_proj"),
      /down_proj: AWQ input rows 64\.\.192 cut a quantization group of 128 rows/,
    );
  });

  test("dense shards: column-parallel keeps output rows of (out, in), row-parallel input columns", () => {
    const w = Float32Array.from({ length: 6 * 4 }, (_, i) => i); // (out 6, in 4)
    const col = sliceDenseLinear(w, 4, 6, "column", { start: 2, end: 4 });
    assert.deepEqual([...col.weight], [8, 9, 10, 11, 12, 13, 14, 15]);
    assert.equal(col.outFeatures, 2);
    const row = sliceDenseLinear(w, 4, 6, "row", { start: 1, end: 3 });
    assert.deepEqual([...row.weight], [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    assert.equal(row.inFeatures, 2);
  });
});
