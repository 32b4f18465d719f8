/**
 * Why the CUDA backend cannot run here (null when it can): GPU suites skip with this reason. A bad environment switch
 * is not a reason to skip: it is thrown, so the suite fails and names it (a skipped suite reads as a pass).
 */
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
import { NativeSwitchError } from "../../src/backend/cuda/native-switches.js";

export async function cudaUnavailableReason(): Promise<string | null> {
  try {
    await CudaBackend.create();
    return null;
  } catch (err) {
    if (err instanceof NativeSwitchError) throw err;
    return `CUDA backend unavailable: ${(err as Error).message}`;
  }
}
