/**
 * Backend creation with --tensor-parallel-size / --data-parallel-size: what is refused before anything loads,
 * and the CPU replicas' backends being separate objects. (CUDA's GPU-count check runs on the GPU machine.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TensorParallelError } from "../model/tensor-parallel-plan.js";
import type { Backend } from "./backend.js";
import { CpuBackend } from "./cpu/cpu-backend.js";
import { createBackend, createReplicaBackends, DataParallelError } from "./create.js";

test("tensor parallelism on CUDA is refused, naming the NCCL build, before the addon is touched", async () => {
  await assert.rejects(createBackend("cuda", { tensorParallelSize: 2 }), (err: Error) => {
    assert.ok(err instanceof TensorParallelError);
    assert.equal(err.param, "tensor-parallel-size");
    assert.match(
      err.message,
      /--tensor-parallel-size 2: tensor parallelism on the CUDA backend needs the NCCL build/,
    );
    return true;
  });
});

test("bad sizes are refused by name", async () => {
  await assert.rejects(
    createBackend("cpu", { tensorParallelSize: 0 }),
    /tensor-parallel-size must be a positive integer, got 0/,
  );
  await assert.rejects(createReplicaBackends("cpu", 1.5), (err: Error) => {
    assert.ok(err instanceof DataParallelError);
    assert.match(err.message, /data-parallel-size must be a positive integer, got 1.5/);
    return true;
  });
});

test("CPU replicas: one separate backend each, with the tensor-parallel size passed on", async () => {
  const backends = await createReplicaBackends("cpu", 3, { tensorParallelSize: 2 });
  assert.equal(backends.length, 3);
  assert.equal(new Set(backends).size, 3);
  for (const b of backends) assert.ok(b instanceof CpuBackend);
});

test("chained steps asked for by name reach every CPU replica; by default the CPU backend takes none", async () => {
  for (const b of await createReplicaBackends("cpu", 2, { chainedSteps: true }))
    assert.equal(b.chainedSteps, true);
  for (const b of await createReplicaBackends("cpu", 2)) assert.equal(b.chainedSteps, false);
  assert.equal((await createBackend("cpu", { chainedSteps: false })).chainedSteps, false);
});

test("auto without a usable GPU falls back once and builds CPU replicas", async (t) => {
  const reasons: string[] = [];
  let backends: Backend[];
  try {
    backends = await createReplicaBackends("auto", 2, { onFallback: (r) => reasons.push(r) });
  } catch (err) {
    // A GPU machine: two replicas on CUDA are refused by name (GPU count, or the multi-GPU build).
    if (err instanceof DataParallelError) return t.skip(err.message);
    throw err;
  }
  try {
    assert.equal(reasons.length, 1);
    assert.deepEqual(
      backends.map((b) => b.name),
      ["cpu", "cpu"],
    );
  } finally {
    for (const b of backends) await b.dispose();
  }
});
