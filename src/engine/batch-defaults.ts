/**
 * The default token budget of an engine step (--max-num-batched-tokens). The server's is vLLM's
 * (EngineArgs.get_batch_defaults for the OpenAI server): 8192 on a GPU of 70 GiB or more that is not an A100, else
 * 2048 (here max(2048, maxNumSeqs), so that every running sequence's decode token fits). A larger budget packs more
 * prompt tokens into a step, so the GEMMs of prefill run at larger m (measured on the H100, 2026-12-06h: 128
 * concurrent 512-token requests 2,724 -> 2,857 output tokens/s with the FP8 cache), at the price of a longer
 * first-token wait for requests that arrive together. Offline use keeps max(2048, maxNumSeqs) everywhere: vLLM gives
 * its LLM class 16384 on those GPUs (8192 elsewhere), not timed here yet.
 */

/** What the engine is built for (vLLM's UsageContext): the OpenAI server, or the library's offline use. */
export type UsageContext = "server" | "offline";

/** The GPU a backend runs on, as the driver reports it. */
export interface GpuInfo {
  name: string;
  totalMemoryBytes: number;
}

const LARGE_GPU_BYTES = 70 * 1024 ** 3;

export function defaultMaxNumBatchedTokens(
  gpu: GpuInfo | undefined,
  usage: UsageContext,
  maxNumSeqs: number,
): number {
  const small = Math.max(2048, maxNumSeqs);
  if (gpu === undefined || usage !== "server") return small;
  const large = gpu.totalMemoryBytes >= LARGE_GPU_BYTES && !gpu.name.toLowerCase().includes("a100");
  return large ? Math.max(8192, maxNumSeqs) : small;
}
