/**
 * Picks the QuantMath implementation the quantizer runs on. The CUDA one is imported only when asked for (or
 * tried by `auto`), so CPU-only use never loads the native addon.
 */
import { BackendUnavailableError } from "../backend/backend.js";
import type { ModelConfig } from "../model/types.js";
import { CpuQuantMath } from "./cpu-quant-math.js";
import type { AnyQuantMath } from "./quant-math.js";

export type QuantBackendChoice = "cpu" | "cuda" | "auto";

export const QUANT_BACKENDS: readonly QuantBackendChoice[] = ["cpu", "cuda", "auto"];

export interface CreateQuantMathOptions {
  /** Told why CUDA was skipped under `auto` (default: nothing). */
  onFallback?: (reason: string) => void;
}

/**
 * `cpu`: CpuQuantMath. `cuda`: CudaQuantMath, or a BackendUnavailableError saying why not (no addon, no GPU).
 * `auto`: CUDA when the addon loads and a GPU is there, else the CPU.
 */
export async function createQuantMath(
  kind: QuantBackendChoice,
  config: ModelConfig,
  seqlen: number,
  opts: CreateQuantMathOptions = {},
): Promise<AnyQuantMath> {
  if (!QUANT_BACKENDS.includes(kind))
    throw new BackendUnavailableError(`--backend must be cpu, cuda or auto, got "${kind}"`);
  if (kind === "cpu") return new CpuQuantMath(config, seqlen);
  try {
    // The addon check first: on a machine without a GPU, the CUDA quantizer module is never loaded.
    const { loadNativeAddon } = await import("../backend/cuda/native-addon.js");
    await loadNativeAddon();
    const { CudaQuantMath } = await import("./cuda-quant-math.js");
    return await CudaQuantMath.create(config, seqlen);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (kind === "cuda") {
      throw new BackendUnavailableError(
        `--backend cuda: cannot quantize on the GPU: ${reason}; pass --backend cpu (or auto to fall back to the CPU)`,
      );
    }
    opts.onFallback?.(reason);
    return new CpuQuantMath(config, seqlen);
  }
}
