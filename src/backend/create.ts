/** Picks a backend by name: `auto` tries CUDA and falls back to the CPU with one clear message. */
import { type Backend, BackendUnavailableError } from "./backend.js";

export type BackendChoice = "cpu" | "cuda" | "auto";

export interface CreateBackendOptions {
  /** Told why CUDA was skipped under `auto` (default: one line on stderr). */
  onFallback?: (reason: string) => void;
}

export async function createBackend(
  choice: BackendChoice,
  opts: CreateBackendOptions = {},
): Promise<Backend> {
  if (choice === "cpu") return newCpuBackend();
  try {
    const { CudaBackend } = await import("./cuda/cuda-backend.js");
    return await CudaBackend.create();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (choice === "cuda") {
      throw err instanceof BackendUnavailableError ? err : new BackendUnavailableError(reason);
    }
    (
      opts.onFallback ??
      ((r: string) => process.stderr.write(`awq: CUDA backend unavailable (${r}); using the CPU backend\n`))
    )(reason);
    return newCpuBackend();
  }
}

async function newCpuBackend(): Promise<Backend> {
  const { CpuBackend } = await import("./cpu/cpu-backend.js");
  return new CpuBackend();
}
