/** The shared backend conformance suite on the CPU backend (the CUDA backend runs the same file from test/gpu/). */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { runBackendConformance } from "./conformance/backend-conformance.js";

// dist/test/conformance-cpu.test.js -> the project root two levels up.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

runBackendConformance("cpu", async () => new CpuBackend(), { repoRoot });
