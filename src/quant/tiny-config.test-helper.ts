/** A one-layer Llama config for the quantizer's unit tests (a LayerRunner needs one; mostly its matmul is used). */
import type { ModelConfig } from "../model/types.js";

export function tinyConfig(dims: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: "LlamaForCausalLM",
    hiddenSize: 64,
    intermediateSize: 64,
    numLayers: 1,
    numHeads: 1,
    numKvHeads: 1,
    headDim: 64,
    vocabSize: 10,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: true,
    dtype: "float16",
    bosTokenId: null,
    eosTokenIds: [],
    quantization: null,
    ...dims,
  };
}
