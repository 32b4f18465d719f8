/**
 * Opens a model folder: config.json (+ quant_config.json), the safetensors checkpoint, and a check
 * that the two agree, so a backend never meets a missing or misshapen tensor mid-load.
 */
import { resolve } from "node:path";
import { SafetensorsCheckpoint } from "./checkpoint.js";
import { loadModelConfig } from "./config.js";
import type { Checkpoint, ModelSource } from "./types.js";
import { countParameters, type ModelWeightNames, validateWeights } from "./weights.js";

/** A validated model: config, open checkpoint (close it when done) and the weight names per layer. */
export interface OpenedModel extends ModelSource {
  weights: ModelWeightNames;
}

export async function openModel(dir: string): Promise<OpenedModel> {
  const absDir = resolve(dir);
  const config = await loadModelConfig(absDir);
  const checkpoint = await SafetensorsCheckpoint.open(absDir);
  try {
    const weights = validateWeights(config, checkpoint);
    return { dir: absDir, config, checkpoint, weights };
  } catch (err) {
    await checkpoint.close();
    throw err;
  }
}

/** Parameter count of an opened model (AWQ linears count as in x out). */
export function modelParameterCount(model: OpenedModel): number {
  return countParameters(model.config, model.weights);
}

/** Bytes of every tensor the model uses (what loading its weights reads), from the checkpoint headers. */
export function modelWeightBytes(model: { checkpoint: Checkpoint; weights: ModelWeightNames }): number {
  const used = new Set<string>([model.weights.embedTokens, model.weights.norm, model.weights.lmHead]);
  for (const layer of model.weights.layers) {
    used.add(layer.inputLayernorm);
    used.add(layer.postAttentionLayernorm);
    for (const linear of Object.values(layer.linears)) {
      if (linear.kind === "dense") used.add(linear.weight);
      else for (const name of [linear.qweight, linear.qzeros, linear.scales]) used.add(name);
    }
  }
  let bytes = 0;
  for (const name of used) bytes += model.checkpoint.info(name).byteLength;
  return bytes;
}

export { countParameters };
