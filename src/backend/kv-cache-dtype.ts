/**
 * `--kv-cache-dtype` as vLLM spells it: `auto` (the model's dtype; the CPU backend keeps float32), `fp8` and
 * `fp8_e4m3` (the same thing: OCP FP8 E4M3, 1 byte per element, per-tensor scales k_scale = v_scale = 1.0 when the
 * checkpoint has none, as vLLM does). The CPU backend emulates the rounding; the CUDA FP8 cache is not built yet,
 * so CUDA refuses fp8 rather than ignore it.
 */
export type KvCacheDtype = "auto" | "fp8" | "fp8_e4m3";

export const KV_CACHE_DTYPES: readonly KvCacheDtype[] = ["auto", "fp8", "fp8_e4m3"];

/** Parses the flag / option value; anything else (fp8_e5m2 included) is refused by name. */
export function parseKvCacheDtype(value: string): KvCacheDtype {
  if ((KV_CACHE_DTYPES as readonly string[]).includes(value)) return value as KvCacheDtype;
  const hint = value === "fp8_e5m2" ? " (fp8_e5m2 is not supported: use fp8 / fp8_e4m3)" : "";
  throw new Error(`--kv-cache-dtype must be auto, fp8 or fp8_e4m3, got "${value}"${hint}`);
}

export function isFp8KvCache(dtype: KvCacheDtype | undefined): boolean {
  return dtype === "fp8" || dtype === "fp8_e4m3";
}

/**
 * The startup log's KV note: with fp8 on the CPU backend (float32 storage, rounded values), the tokens the same
 * memory would hold as 1-byte E4M3 elements; "" otherwise.
 */
export function fp8CapacityNote(
  backend: string,
  dtype: KvCacheDtype | undefined,
  kvCacheTokens: number,
): string {
  if (!isFp8KvCache(dtype) || backend !== "cpu") return "";
  return (
    `; KV cache dtype ${dtype}: K and V rounded to E4M3 (scale 1.0) and stored as float32, ` +
    `so the same memory as a 1-byte FP8 cache would hold ${4 * kvCacheTokens} tokens (4x)`
  );
}

/** Throws when `backend` cannot honour `dtype` (CUDA and fp8 for now), before any weight is read. */
export function checkKvCacheDtypeSupported(backend: string, dtype: KvCacheDtype | undefined): void {
  if (backend === "cuda" && isFp8KvCache(dtype)) {
    throw new Error(
      `--kv-cache-dtype ${dtype}: the CUDA backend's FP8 KV cache is not built yet; use --kv-cache-dtype auto ` +
        "(fp16 KV) on CUDA, or --backend cpu, which emulates the FP8 E4M3 rounding",
    );
  }
}
