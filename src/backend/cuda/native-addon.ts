/**
 * Typed view of the awq_native addon (native/addon/addon.cpp) and its guarded loading: a missing file, a failed
 * dlopen, no driver or no GPU all become one BackendUnavailableError with a message a user can act on.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
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

export interface NativeModelDims {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** 0 none, 1 linear, 2 dynamic NTK. */
  ropeScalingType: number;
  ropeFactor: number;
  ropeOriginalMaxPositions: number;
  tieWordEmbeddings: boolean;
  /** AWQ group size; 0 for fp16 models. */
  groupSize: number;
}

export interface NativeRuntimeOptions {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  blockSize: number;
  /** -1: size the cache from gpuMemoryUtilization. */
  numBlocks: number;
  gpuMemoryUtilization: number;
}

/** What the engine allocated, in bytes. */
export interface NativeMemoryReport {
  numBlocks: number;
  blockSize: number;
  weightBytes: number;
  workspaceBytes: number;
  kvBytes: number;
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
}

/** Where the addon is looked for: $AWQ_NATIVE_ADDON, else native/build/awq_native.node of this package. */
export function addonPath(): string {
  const fromEnv = process.env.AWQ_NATIVE_ADDON;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  // dist/src/backend/cuda/ -> package root
  return fileURLToPath(new URL("../../../../native/build/awq_native.node", import.meta.url));
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
