import type { Checkpoint } from "./types.js";

/**
 * The checkpoint of a model whose weights a backend makes up (CudaBackend.loadSynthetic): no tensors. An engine
 * around such a model may list and probe names (the FP8 KV check looks for scales); reading one is an error
 * naming the synthetic model, never an undefined checkpoint failing later with a bare TypeError.
 */
export function noTensorCheckpoint(dir: string, what = "a synthetic model"): Checkpoint {
  const none = (name: string): never => {
    throw new Error(
      `${what} has no checkpoint: its weights are made on the device, there is no tensor ${name}`,
    );
  };
  return {
    dir,
    names: () => [],
    has: () => false,
    info: none,
    read: async (name) => none(name),
    close: async () => {},
  };
}
