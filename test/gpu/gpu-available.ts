/** Why the CUDA backend cannot run here (null when it can): GPU suites skip with this reason. */
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";

export async function cudaUnavailableReason(): Promise<string | null> {
  try {
    await CudaBackend.create();
    return null;
  } catch (err) {
    return `CUDA backend unavailable: ${(err as Error).message}`;
  }
}
