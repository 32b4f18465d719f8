/**
 * The shared backend conformance suite (test/conformance/backend-conformance.ts, the same file the CPU runs in
 * `npm test`) against the CUDA backend, with the CPU backend as the reference on the random 13B-shape weights.
 * Run on a GPU machine: `npm run test:gpu`. Without a usable GPU every test is skipped with the reason.
 */
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../../src/backend/cpu/cpu-backend.js";
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
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
}
