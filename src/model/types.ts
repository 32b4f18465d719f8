/**
 * Types shared by the model loader, the backends, the quantizer and the CLI.
 * The parsers that produce them live in config.ts (ModelConfig) and checkpoint.ts (Checkpoint).
 */

/** Element types a safetensors file may hold (the subset awq-ts reads). */
export type DType = "F16" | "BF16" | "F32" | "I32" | "I8" | "U8";

/** Bytes per element of each DType. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = { F16: 2, BF16: 2, F32: 4, I32: 4, I8: 1, U8: 1 };

/** The numeric type of non-quantized weights and activations, from `torch_dtype` / `dtype`. */
export type ModelDType = "float16" | "bfloat16" | "float32";

/** RoPE scaling (`rope_scaling` or `rope_parameters.rope_type`). `null` = plain RoPE. */
export interface RopeScaling {
  type: "linear" | "dynamic";
  factor: number;
  /** The context the model was trained on, for dynamic NTK (defaults to max_position_embeddings). */
  originalMaxPositionEmbeddings: number;
}

/** AutoAWQ GEMM quantization (the only kind awq-ts runs). */
export interface AwqQuantization {
  method: "awq";
  bits: 4;
  groupSize: number;
  zeroPoint: true;
  version: "gemm";
  /** Module name fragments left unquantized (`modules_to_not_convert`), [] when none. */
  modulesToNotConvert: string[];
}

/** A Llama-family model's hyper-parameters, normalized from every config.json style. */
export interface ModelConfig {
  architecture: "LlamaForCausalLM" | "MistralForCausalLM";
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  dtype: ModelDType;
  bosTokenId: number | null;
  /** Every eos id named by config.json (generation_config and the tokenizer add more; see tokenizer/). */
  eosTokenIds: number[];
  quantization: AwqQuantization | null;
}

/** Metadata of one tensor in a checkpoint. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** The file that holds it (absolute path). */
  file: string;
  /** Byte length of its data. */
  byteLength: number;
}

/** Raw bytes of one tensor, in a typed array of its dtype (F16/BF16 come as Uint16Array bit patterns). */
export type TensorData = Float32Array | Uint16Array | Int32Array | Int8Array | Uint8Array;

/**
 * A (possibly sharded) checkpoint: tensors by name, read one at a time so no file is ever held whole.
 * Implemented by `SafetensorsCheckpoint` in checkpoint.ts.
 */
export interface Checkpoint {
  /** Absolute folder path. */
  readonly dir: string;
  names(): string[];
  has(name: string): boolean;
  /** Throws an error naming the tensor and the checkpoint when absent. */
  info(name: string): TensorInfo;
  /** Reads one tensor's data (a fresh array the caller owns). */
  read(name: string): Promise<TensorData>;
  close(): Promise<void>;
}

/** What a backend needs to build a model: hyper-parameters and a tensor source. */
export interface ModelSource {
  dir: string;
  config: ModelConfig;
  checkpoint: Checkpoint;
}
