/**
 * Issue 19 on a GPU machine, before the NCCL build exists: --tensor-parallel-size > 1 on CUDA is refused naming
 * the NCCL build, and --data-parallel-size beyond the visible GPUs is refused naming both counts (the server
 * through LLM.load, as `awq serve` reaches it); size 1 of each still serves.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { createReplicaBackends, DataParallelError } from "../../src/backend/create.js";
import { loadNativeAddon } from "../../src/backend/cuda/native-addon.js";
import { LLM } from "../../src/llm.js";
import { TensorParallelError } from "../../src/model/tensor-parallel-plan.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();
const modelDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "models/tiny-chat-awq");

test("CUDA: more replicas than GPUs refused by count; TP > 1 refused naming NCCL", {
  skip: unavailable ?? false,
}, async () => {
  const { probe } = await loadNativeAddon();
  const gpus = probe.deviceCount;
  await assert.rejects(
    LLM.load({ model: modelDir, backend: "cuda", dataParallelSize: gpus + 1 }),
    (err: Error) => {
      assert.ok(err instanceof DataParallelError);
      assert.match(
        err.message,
        new RegExp(
          `--data-parallel-size ${gpus + 1} needs one GPU per replica, and ${gpus} GPUs? (is|are) visible`,
        ),
      );
      return true;
    },
  );
  await assert.rejects(createReplicaBackends("auto", gpus + 1), DataParallelError);
  await assert.rejects(
    LLM.load({ model: modelDir, backend: "cuda", tensorParallelSize: 2 }),
    (err: Error) => err instanceof TensorParallelError && /needs the NCCL build/.test(err.message),
  );
  const llm = await LLM.load({
    model: modelDir,
    backend: "cuda",
    tensorParallelSize: 1,
    dataParallelSize: 1,
    maxModelLen: 256,
  });
  try {
    const [out] = await llm.generate("User: Tell me a fortune.<|end_of_turn|>Assistant:", {
      temperature: 0,
      maxTokens: 8,
    });
    assert.equal(out.tokenIds.length, 8);
  } finally {
    await llm.dispose();
  }
});
