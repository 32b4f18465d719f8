/**
 * The shared backend conformance suite (test/conformance/backend-conformance.ts, the same file the CPU runs in
 * `npm test`) against the CUDA backend, with the CPU backend as the reference on the random 13B-shape weights
 * (and with FP8 KV on both); then the FP8 cache's capacity: twice the blocks of fp16 in the same memory.
 * Run on a GPU machine: `npm run test:gpu`. Without a usable GPU every test is skipped with the reason.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../../src/backend/cpu/cpu-backend.js";
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
import type { KvCacheDtype } from "../../src/backend/kv-cache-dtype.js";
import { openModel } from "../../src/model/load.js";
import { runBackendConformance } from "../conformance/backend-conformance.js";
import { cudaUnavailableReason } from "./gpu-available.js";

// dist/test/gpu/conformance-cuda.test.js -> the project root three levels up.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

const unavailable = await cudaUnavailableReason();
if (unavailable !== null) {
  test("backend conformance: cuda", (t) => t.skip(unavailable));
} else {
  runBackendConformance("cuda", () => CudaBackend.create(), {
    repoRoot,
    makeReference: async () => new CpuBackend(),
  });

  test("FP8 KV cache: twice the blocks of fp16 in the memory --gpu-memory-utilization leaves", async () => {
    const sizes: Record<string, { numBlocks: number; kvBytes: number; elementBytes?: number }> = {};
    for (const kvCacheDtype of ["auto", "fp8_e4m3"] as KvCacheDtype[]) {
      const model = await openModel(join(repoRoot, "models/tiny-chat-awq"));
      const backend = await CudaBackend.create();
      try {
        const layout = await backend.load(model, {
          maxModelLen: 512,
          maxNumSeqs: 8,
          maxNumBatchedTokens: 512,
          blockSize: 16,
          gpuMemoryUtilization: 0.4,
          kvCacheDtype,
        });
        const memory = backend.memory;
        assert.ok(memory !== null);
        sizes[kvCacheDtype] = {
          numBlocks: layout.numBlocks,
          kvBytes: memory.kvBytes,
          elementBytes: memory.kvElementBytes,
        };
      } finally {
        await backend.dispose();
        await model.checkpoint.close();
      }
    }
    const fp16 = sizes.auto!;
    const fp8 = sizes.fp8_e4m3!;
    assert.equal(fp16.elementBytes, 2);
    assert.equal(fp8.elementBytes, 1);
    const ratio = fp8.numBlocks / fp16.numBlocks;
    assert.ok(
      Math.abs(ratio - 2) < 0.02,
      `fp8 ${fp8.numBlocks} blocks vs fp16 ${fp16.numBlocks}: ratio ${ratio}`,
    );
    assert.ok(Math.abs(fp8.kvBytes / fp16.kvBytes - 1) < 0.01, "the same KV memory");
  });
}
