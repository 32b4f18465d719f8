/**
 * `--kv-cache-dtype` as vLLM spells it: `auto` (the model's dtype; the CPU backend keeps float32), `fp8` and
 * `fp8_e4m3` (the same thing: OCP FP8 E4M3, 1 byte per element, per-tensor scales k_scale = v_scale = 1.0, as vLLM
 * uses when the checkpoint has none). The CUDA backend stores 1-byte E4M3 K and V (twice the tokens of fp16 in the
 * same memory); the CPU backend emulates the same rounding on its float32 cache. A checkpoint that carries its own
 * KV scales is refused with fp8 (they are not read, and using 1.0 instead would silently change the model).
 * The CUDA FP8 cache was checked on an H200 and an H100 (2026-12-05: the kernel checks and the conformance
 * suite's FP8 cases, CUDA against the CPU emulation) and is off unless asked for, as in vLLM.
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
 * The startup log's KV note for fp8: on CUDA the cache holds 1-byte E4M3 elements (twice the tokens of fp16); on
 * the CPU backend (float32 storage, rounded values), the tokens the same memory would hold as 1-byte elements;
 * "" otherwise.
 */
export function fp8CapacityNote(
  backend: string,
  dtype: KvCacheDtype | undefined,
  kvCacheTokens: number,
): string {
  if (!isFp8KvCache(dtype)) return "";
  if (backend === "cuda") {
    return `; KV cache dtype ${dtype}: 1-byte E4M3 K and V (scale 1.0), twice the tokens of an fp16 cache`;
  }
  if (backend !== "cpu") return "";
  return (
    `; KV cache dtype ${dtype}: K and V rounded to E4M3 (scale 1.0) and stored as float32, ` +
    `so the same memory as a 1-byte FP8 cache would hold ${4 * kvCacheTokens} tokens (4x)`
  );
}

/** Tensor names of KV-cache quantization scales as vLLM reads them (per layer, on self_attn or k_proj/v_proj). */
const KV_SCALE_NAME = /\.(k_scale|v_scale|kv_scale)$|\.(k_proj|v_proj)\.output_scale$/;

/**
 * Throws, before any weight is read, when `dtype` cannot be honoured: a name outside auto / fp8 / fp8_e4m3 (an
 * untyped caller's, e.g. "fp8_e5m2"), or fp8 with a
 * checkpoint that carries its own KV scales (`checkpointNames` lists its tensors), since both backends use
 * k_scale = v_scale = 1.0.
 */
export function checkKvCacheDtypeSupported(
  backend: string,
  dtype: KvCacheDtype | undefined,
  checkpointNames: Iterable<string> = [],
): void {
  if (dtype !== undefined) parseKvCacheDtype(dtype); // a JS caller's value, checked as the flag is
  if (!isFp8KvCache(dtype)) return;
  for (const name of checkpointNames) {
    if (KV_SCALE_NAME.test(name)) {
      throw new Error(
        `--kv-cache-dtype ${dtype}: the checkpoint carries KV cache scales (${name}), which the ${backend} backend ` +
          "does not read (its FP8 cache uses k_scale = v_scale = 1.0); use --kv-cache-dtype auto with this model",
      );
    }
  }
}
