/**
 * Typed view of the awq_native addon (native/addon/addon.cpp) and its guarded loading: a missing file, a failed
 * dlopen, no driver or no GPU all become one BackendUnavailableError with a message a user can act on.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../../model/types.js";
import { BackendUnavailableError } from "../backend.js";

/** A host tensor handed to the addon; `data` must stay untouched until the upload promise settles. */
export interface NativeTensor {
  name: string;
  dtype: "F16" | "BF16" | "F32" | "I32";
  shape: number[];
  data: ArrayBufferView;
}

export type NativeLinearPart =
  | { qweight: NativeTensor; qzeros: NativeTensor; scales: NativeTensor }
  | { weight: NativeTensor };

export type NativeWeightSlot =
  | "embed"
  | "finalNorm"
  | "lmHead"
  | "inputNorm"
  | "postNorm"
  | "qkv"
  | "o"
  | "gateUp"
  | "down";

/** The model as the addon's init() reads it: ModelConfig's sizes, the RoPE variant as numbers, the AWQ group size. */
export type NativeModelDims = Pick<
  ModelConfig,
  | "hiddenSize"
  | "intermediateSize"
  | "numLayers"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "vocabSize"
  | "rmsNormEps"
  | "ropeTheta"
  | "tieWordEmbeddings"
> & {
  /** 0 none, 1 linear, 2 dynamic NTK. */
  ropeScalingType: number;
  ropeFactor: number;
  ropeOriginalMaxPositions: number;
  /** AWQ group size; 0 for fp16 models. */
  groupSize: number;
};

export interface NativeRuntimeOptions {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  blockSize: number;
  /** -1: size the cache from gpuMemoryUtilization. */
  numBlocks: number;
  gpuMemoryUtilization: number;
  /** vLLM's --kv-cache-dtype: auto (fp16) or fp8 / fp8_e4m3 (1-byte E4M3, scale 1.0); absent = auto. */
  kvCacheDtype?: "auto" | "fp8" | "fp8_e4m3";
}

/** What the engine allocated, in bytes. */
export interface NativeMemoryReport {
  numBlocks: number;
  blockSize: number;
  weightBytes: number;
  workspaceBytes: number;
  kvBytes: number;
  /** Bytes of one cached K or V element: 2 (fp16) or 1 (FP8 E4M3); absent from addons built before FP8 KV. */
  kvElementBytes?: number;
  totalBytes: number;
  freeBytesAfter: number;
}

export interface NativeStepOutput {
  tokenIds: Int32Array; // (numSeqs)
  logprobs: Float32Array; // (numSeqs)
  topCounts: Int32Array; // (numSeqs)
  topIds: Int32Array; // (numSeqs, maxTop)
  topLogprobs: Float32Array; // (numSeqs, maxTop)
  maxTop: number;
  /** GPU time of the step, from the input upload to the result download. */
  gpuMs: number;
  /** Host phases in microseconds: JS -> C++ conversion, thread-pool wait, the engine's step, back to JS. */
  hostTiming: { convertUs: number; queueUs: number; executeUs: number; returnUs: number };
  tokenLogprobs?: Float32Array; // (numTokens)
  /** With batch.tokenTopLogprobs = N > 0 (StepResult.tokenTop's layout). */
  tokenTop?: { ids: Int32Array; logprobs: Float32Array; ranks: Int32Array }; // (numTokens, N), (numTokens, N), (numTokens)
  /** With batch.returnLogits: raw logits, row i for sequence i (NaN rows where not sampled). */
  logits?: Float32Array; // (numSeqs, vocab)
}

export interface NativeEngine {
  init(dims: NativeModelDims, device: number): Promise<{ deviceName: string }>;
  uploadVector(slot: NativeWeightSlot, layer: number, tensor: NativeTensor): Promise<void>;
  uploadLinear(slot: NativeWeightSlot, layer: number, parts: NativeLinearPart[]): Promise<void>;
  initRandomWeights(seed: number): Promise<void>;
  finalize(options: NativeRuntimeOptions): Promise<NativeMemoryReport>;
  step(batch: object): Promise<NativeStepOutput>;
  /**
   * A step in two halves, for a batch whose sampling.tokenMask is still being written: forward() uploads the
   * rest and enqueues the forward pass, resolving without waiting for the GPU; sample(batch), with the same
   * batch once its masks are written, uploads them, runs the sampler and resolves with the results. Every
   * forward() that resolved needs its sample() before the next step.
   */
  forward(batch: object): Promise<void>;
  sample(batch: object): Promise<NativeStepOutput>;
  dispose(): Promise<void>;
  /** Diagnostics: eager steps with per-operation GPU timing. */
  setProfiling(on: boolean): void;
  takeProfile(): { op: string; ms: number; count: number }[];
}

export interface ProbeResult {
  driverVersion: number;
  runtimeVersion: number;
  deviceCount: number;
  error?: string;
  devices?: { name: string; totalMemory: number; major: number; minor: number; multiProcessors: number }[];
}

export interface NativeAddon {
  probe(): Promise<ProbeResult>;
  Engine: new () => NativeEngine;
  /** The quantizer's device side (native/addon/quant_wrap.cpp); absent from addons built before it existed. */
  QuantContext?: new () => NativeQuantContext;
  /** Whether Engine.step() takes chained steps (StepBatch.prevTokenRows); absent from addons built before them. */
  chainedSteps?: boolean;
}

/** What the quantizer's context reads of the model: one layer's shape and RoPE (native/addon/args.h layerDimsFields). */
export type NativeQuantDims = Pick<
  NativeModelDims,
  | "hiddenSize"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "intermediateSize"
  | "rmsNormEps"
  | "ropeTheta"
  | "ropeScalingType"
  | "ropeFactor"
  | "ropeOriginalMaxPositions"
>;

/**
 * awqq::QuantContext: device tensors by integer id (f32 (rows, cols) matrices and group-quantized (in, out)
 * matrices). Methods returning an id or void only enqueue GPU work; those returning a Promise wait for the GPU
 * off the JS thread. Linears: 0 qkv, 1 o, 2 gateUp, 3 down (-1 none); parts: 0 layer, 1 attention, 2 mlp.
 */
export interface NativeQuantContext {
  init(
    dims: NativeQuantDims,
    seqlen: number,
    chunkBlocks: number,
    device: number,
  ): Promise<{ deviceName: string }>;
  /** Copies now (waits for this copy only, never for queued GPU work). */
  uploadF32(data: Float32Array, rows: number, cols: number): number;
  /** `data` must stay untouched until the promise settles. */
  uploadF32Async(data: Float32Array, rows: number, cols: number): Promise<number>;
  download(id: number): Promise<Float32Array>;
  cloneRows(id: number, blocks: Int32Array | null): number;
  copy(dst: number, src: number): void;
  meanSquaredError(a: number, b: number): Promise<number>;
  setLinear(which: number, id: number): void;
  forward(
    h: number,
    inputNorm: Float32Array | null,
    postNorm: Float32Array | null,
    part: number,
    capture: number,
  ): Promise<{ absMean: Float64Array; gram: number; tokens: number; inFeatures: number }> | undefined;
  weightSalience(w: number, groupSize: number): Promise<Float64Array>;
  scaleRows(w: number, s: Float32Array, divide: boolean): number;
  /** clip: an id of a (in/g, out) bounds matrix or -1. */
  groupQuantize(w: number, groupSize: number, clip: number): number;
  dequantize(q: number): number;
  pseudoQuantizeScaled(w: number, s: Float32Array | null, groupSize: number): number;
  searchClip(
    w: number,
    groupSize: number,
    gram: number,
    rowScale: Float32Array | null,
    noClipStart: number,
    noClipEnd: number,
  ): number;
  divideQuantizedColumns(q: number, s: Float32Array, start: number): void;
  downloadQuantized(q: number): Promise<{ q: Uint8Array; scales: Float32Array; zeros: Uint8Array }>;
  /** A GPTQ failure (not positive definite) rejects the next chooseColumns / downloadQuantized of the result. */
  gptqQuantize(
    w: number,
    groupSize: number,
    gram: number,
    rowScale: Float32Array | null,
    clipRatio: number,
  ): number;
  clipRatios(w: number, clip: number, groupSize: number): number;
  chooseColumns(
    w: number,
    groupSize: number,
    gram: number,
    rowScale: Float32Array | null,
    base: number,
    candidate: number,
    keepStart: number,
    keepEnd: number,
  ): Promise<{ mixed: number; taken: number }>;
  /** Unknown (already released) ids are ignored. */
  release(...ids: number[]): void;
  memoryStats(): {
    tensors: number;
    tensorBytes: number;
    poolReservedBytes: number;
    poolUsedBytes: number;
    /** High-water marks of the context's memory pool. */
    poolReservedPeakBytes: number;
    poolUsedPeakBytes: number;
    /** cudaMemGetInfo: total - free on the device, and its total. */
    deviceUsedBytes: number;
    deviceTotalBytes: number;
  };
  dispose(): Promise<void>;
}

/**
 * Where the addon is looked for: $AWQ_NATIVE_ADDON, else native/build/awq_native.node of this package (built from
 * source, or the prebuilt one the postinstall copied there), else the package's prebuilds/<platform>-<arch>/ (when
 * npm skipped the install script, the prebuilt addon was never copied). The first candidate that exists wins; with
 * none, the build folder's path (the error names it).
 */
export function addonPath(
  env: NodeJS.ProcessEnv = process.env,
  packageRoot = fileURLToPath(new URL("../../../../", import.meta.url)), // dist/src/backend/cuda/ -> package root
  exists: (path: string) => boolean = existsSync,
): string {
  const fromEnv = env.AWQ_NATIVE_ADDON;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const built = join(packageRoot, "native", "build", "awq_native.node");
  const prebuilt = join(packageRoot, "prebuilds", `${process.platform}-${process.arch}`, "awq_native.node");
  return [built, prebuilt].find(exists) ?? built;
}

let cached: { addon: NativeAddon; probe: ProbeResult } | null = null;

/** Loads the addon and checks for a usable GPU; throws BackendUnavailableError with one clear reason. */
export async function loadNativeAddon(): Promise<{ addon: NativeAddon; probe: ProbeResult }> {
  if (cached !== null) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    throw new BackendUnavailableError(
      `the CUDA addon is not built (${path} is missing; install the CUDA toolkit so nvcc is found, then run npm run build:native)`,
    );
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new BackendUnavailableError(`the CUDA addon ${path} failed to load: ${(err as Error).message}`);
  }
  if (typeof addon?.probe !== "function" || typeof addon.Engine !== "function") {
    throw new BackendUnavailableError(`${path} is not the awq_native addon (no probe / Engine exports)`);
  }
  let probe: ProbeResult;
  try {
    probe = await addon.probe();
  } catch (err) {
    throw new BackendUnavailableError(
      `the CUDA addon ${path} could not query the driver: ${(err as Error).message}`,
    );
  }
  if (probe.deviceCount <= 0) {
    const why = probe.error ?? "no CUDA device found";
    const driver =
      probe.driverVersion === 0 ? "no NVIDIA driver" : `driver ${formatCudaVersion(probe.driverVersion)}`;
    throw new BackendUnavailableError(`no usable CUDA GPU (${driver}; ${why})`);
  }
  const device = probe.devices?.[0];
  if (device !== undefined && device.major < 8) {
    throw new BackendUnavailableError(
      `the CUDA backend needs compute capability 8.0 or newer; ${device.name} is ${device.major}.${device.minor}`,
    );
  }
  cached = { addon, probe };
  return cached;
}

/** 12080 -> "12.8". */
export function formatCudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

/** The addon's QuantContext class, or a BackendUnavailableError (no addon, no GPU, or an addon built without it). */
export async function loadQuantContextClass(): Promise<new () => NativeQuantContext> {
  const { addon } = await loadNativeAddon();
  if (typeof addon.QuantContext !== "function") {
    throw new BackendUnavailableError(
      `the CUDA addon ${addonPath()} has no quantizer (built before it existed); rebuild it with npm run build:native`,
    );
  }
  return addon.QuantContext;
}
