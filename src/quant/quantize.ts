/**
 * `awq quantize` as a library call: fp16 Llama-family folder -> AutoAWQ GEMM folder (4-bit, zero point).
 *
 * Everything that can be wrong with the input (architecture, already quantized, shapes vs the group size,
 * calibration data) is checked before any layer is touched. Then the calibration blocks are embedded and the
 * decoder layers are processed one at a time: a layer's fp16 tensors are read from the checkpoint when the
 * safetensors writer reaches that layer's first tensor, quantized (awq-search.ts), written, and dropped, so
 * only one layer's weights (plus the calibration activations) are ever in memory.
 *
 * The search runs on a QuantMath implementation (create-quant-math.ts: CPU, or CUDA with `backend` cuda /
 * auto). The calibration activations are handed to it once (layer 0's embeddings) and stay there from layer to
 * layer; only the quantized linears come back to the host for the writer.
 */
import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BackendUnavailableError } from "../backend/backend.js";
import { readFloatTensor } from "../model/fused-layout.js";
import { f32ToF16Array } from "../model/half.js";
import { openModel } from "../model/load.js";
import { type TensorToWrite, writeSafetensors } from "../model/safetensors-writer.js";
import type { Checkpoint, ModelConfig, TensorData } from "../model/types.js";
import type { ModelWeightNames } from "../model/weights.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import {
  DEFAULT_LAYER_QUANT_OPTIONS,
  type LayerQuantOptions,
  type QuantizedLayer,
  type QuantMethod,
  quantizeLayerAwq,
  quantizeLayerRtn,
  uploadLayer,
} from "./awq-search.js";
import { buildCalibrationBlocks, readCalibrationTexts } from "./calibration.js";
import { createQuantMath, QUANT_BACKENDS, type QuantBackendChoice } from "./create-quant-math.js";
import { readDenseLayer } from "./dense-layer.js";
import { copyModelFiles, layerTensors, writeConfigFiles } from "./output-files.js";
import type { AnyQuantMath } from "./quant-math.js";

export interface QuantizeOptions {
  modelDir: string;
  outDir: string;
  /**
   * Calibration file (.txt / .jsonl / .parquet) for AWQ; default DEFAULT_CALIB_FILE (the shipped KJV sample).
   * Unused for RTN and with calibrationBlocks.
   */
  calibFile?: string;
  /**
   * Library only (benchmarks): pre-tokenized calibration blocks, each `seqlen` token ids, instead of calibFile
   * (samples is then ignored).
   */
  calibrationBlocks?: Int32Array[];
  textField?: string;
  samples?: number;
  seqlen?: number;
  groupSize?: number;
  method?: QuantMethod;
  /** Where the search runs: cpu, cuda, or auto (cuda when the addon loads and a GPU is there; default). */
  backend?: QuantBackendChoice;
  /** Fine-tuning of the search (defaults in awq-search.ts). */
  search?: Partial<Omit<LayerQuantOptions, "groupSize" | "method">>;
  onProgress?: (event: QuantizeProgress) => void;
  /** After each decoder layer is quantized: its index and the seconds it took (reading to quantized). */
  onLayerDone?: (layer: number, seconds: number) => void;
  /** Free-form log lines (calibration summary, chosen scales per layer). */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface QuantizeProgress {
  layer: number;
  numLayers: number;
  stage: string;
}

export interface QuantizeSummary {
  outDir: string;
  numLayers: number;
  calibrationBlocks: number;
  calibrationTokens: number;
  seconds: number;
  /** The QuantMath implementation that ran the search: "cpu" or "cuda". */
  backend: string;
  /** Seconds per decoder layer, in layer order. */
  layerSeconds: number[];
  /** GPU backends: peak device memory over the run (sampled after each layer; the pool's high-water mark). */
  deviceMemory?: { peakBytes: number; totalBytes: number };
}

/** A problem with the input the user can fix (the CLI prints its message without a stack). */
export class QuantizeInputError extends Error {
  override name = "QuantizeInputError";
}

export const QUANTIZE_DEFAULTS = { samples: 128, seqlen: 512, groupSize: 128, textField: "text" } as const;

/**
 * The calibration text used when none is given: 604 paragraphs (244 KB) from 75 chapters spread over the King
 * James Bible, public domain (data/calib/README.md says where it comes from and how to remake it).
 */
// dist/src/quant/quantize.js -> the package root's data/
export const DEFAULT_CALIB_FILE: string = fileURLToPath(
  new URL("../../../data/calib/kjv-sample.txt", import.meta.url),
);

/** Every shape check against the group size and the GEMM packing, naming the first offending linear. */
export function checkGroupShapes(weights: ModelWeightNames, groupSize: number): void {
  if (!(Number.isInteger(groupSize) && groupSize > 0 && groupSize % 8 === 0)) {
    throw new QuantizeInputError(
      `--group-size must be a positive multiple of 8 (AutoAWQ uses 128), got ${groupSize}`,
    );
  }
  for (const layer of weights.layers) {
    for (const linear of Object.values(layer.linears)) {
      if (linear.inFeatures % groupSize !== 0) {
        throw new QuantizeInputError(
          `${linear.module}: in_features ${linear.inFeatures} is not divisible by the group size ${groupSize}; ` +
            "pass a --group-size that divides every layer's input width",
        );
      }
      if (linear.outFeatures % 8 !== 0) {
        throw new QuantizeInputError(
          `${linear.module}: out_features ${linear.outFeatures} is not divisible by 8, which AutoAWQ's GEMM packing needs`,
        );
      }
    }
  }
}

function checkConfig(config: ModelConfig, dir: string): void {
  if (config.architecture !== "LlamaForCausalLM" && config.architecture !== "MistralForCausalLM") {
    throw new QuantizeInputError(
      `${dir}: awq quantize supports Llama-family models, not ${config.architecture}`,
    );
  }
  if (config.quantization !== null) {
    throw new QuantizeInputError(
      `${dir} is already quantized (quant_method awq, group size ${config.quantization.groupSize}); ` +
        "pass the fp16 (or bf16) model to --model",
    );
  }
}

/** The calibration blocks' embeddings: (numBlocks * seqlen, hidden) f32. */
async function embedBlocks(
  ckpt: Checkpoint,
  name: string,
  config: ModelConfig,
  blocks: Int32Array[],
): Promise<Float32Array> {
  const table = await readFloatTensor(ckpt, name, config.vocabSize * config.hiddenSize); // (vocab, hidden)
  const hd = config.hiddenSize;
  const seqlen = blocks[0].length;
  const x = new Float32Array(blocks.length * seqlen * hd); // (numBlocks * seqlen, hidden)
  for (const [b, block] of blocks.entries()) {
    for (const [t, id] of block.entries())
      x.set(table.subarray(id * hd, (id + 1) * hd), (b * seqlen + t) * hd);
  }
  return x;
}

/** Pre-tokenized calibration blocks: at least one, each `seqlen` ids inside the vocabulary. */
function checkCalibrationBlocks(blocks: Int32Array[], seqlen: number, vocabSize: number): Int32Array[] {
  if (blocks.length === 0) throw new QuantizeInputError("calibrationBlocks: no blocks given");
  for (const [b, block] of blocks.entries()) {
    if (block.length !== seqlen) {
      throw new QuantizeInputError(
        `calibrationBlocks[${b}] has ${block.length} tokens; every block must have seqlen = ${seqlen}`,
      );
    }
    for (const id of block) {
      if (!(id >= 0 && id < vocabSize))
        throw new QuantizeInputError(
          `calibrationBlocks[${b}]: token id ${id} outside the vocabulary (${vocabSize})`,
        );
    }
  }
  return blocks;
}

/** A float tensor stored as F16 (bit-exact when it already is). */
async function asF16(ckpt: Checkpoint, name: string, count: number): Promise<TensorData> {
  if (ckpt.info(name).dtype === "F16") return ckpt.read(name);
  return f32ToF16Array(await readFloatTensor(ckpt, name, count));
}

export async function quantizeModel(opts: QuantizeOptions): Promise<QuantizeSummary> {
  const started = performance.now();
  const method = opts.method ?? "awq";
  const groupSize = opts.groupSize ?? QUANTIZE_DEFAULTS.groupSize;
  const seqlen = opts.seqlen ?? QUANTIZE_DEFAULTS.seqlen;
  const samples = opts.samples ?? QUANTIZE_DEFAULTS.samples;
  const log = opts.onLog ?? (() => {});
  const modelDir = resolve(opts.modelDir);
  const outDir = resolve(opts.outDir);
  if (outDir === modelDir) throw new QuantizeInputError("--out must be a different folder than --model");

  // 1. Everything that can be wrong, before any work.
  let model: Awaited<ReturnType<typeof openModel>>;
  try {
    model = await openModel(modelDir);
  } catch (err) {
    throw new QuantizeInputError(`cannot quantize ${modelDir}: ${(err as Error).message}`);
  }
  const { config, checkpoint: ckpt, weights } = model;
  let math: AnyQuantMath | null = null;
  try {
    checkConfig(config, modelDir);
    checkGroupShapes(weights, groupSize);
    const backend = opts.backend ?? "auto";
    if (!QUANT_BACKENDS.includes(backend))
      throw new QuantizeInputError(`--backend must be cpu, cuda or auto, got "${backend}"`);
    let blocks: Int32Array[] = [];
    if (method === "awq" && opts.calibrationBlocks !== undefined) {
      blocks = checkCalibrationBlocks(opts.calibrationBlocks, seqlen, config.vocabSize);
      log(`calibration: ${blocks.length} given blocks of ${seqlen} tokens`);
    } else if (method === "awq") {
      const calibFile = opts.calibFile ?? DEFAULT_CALIB_FILE;
      if (opts.calibFile === undefined) log(`calibration: the built-in text ${DEFAULT_CALIB_FILE}`);
      const texts = await readCalibrationTexts(calibFile, { textField: opts.textField });
      const tokenizer = await Tokenizer.load(modelDir);
      const calib = buildCalibrationBlocks(texts, tokenizer, { samples, seqlen }, calibFile);
      blocks = calib.blocks;
      log(
        `calibration: ${calib.textsUsed} texts (${calib.textsTooLong} longer than ${seqlen} tokens skipped) -> ` +
          `${blocks.length} blocks of ${seqlen} tokens`,
      );
    }
    try {
      math = await createQuantMath(backend, config, seqlen, {
        onFallback: (reason) => log(`CUDA unavailable (${reason}); quantizing on the CPU`),
      });
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw new QuantizeInputError(err.message);
      throw err;
    }
    const qm: AnyQuantMath = math;
    log(`backend: ${qm.name}`);
    await mkdir(outDir, { recursive: true });

    // 2. Layer by layer, driven by the writer.
    const layerOpts: LayerQuantOptions = {
      ...DEFAULT_LAYER_QUANT_OPTIONS,
      ...opts.search,
      groupSize,
      method,
    };
    // (numBlocks * seqlen, hidden) the current layer's calibration inputs, held by the implementation
    let x: unknown = null;
    let current: { index: number; result: Promise<QuantizedLayer> } | null = null;
    const numLayers = config.numLayers;
    const layerSeconds: number[] = [];
    let devicePeakBytes: number | undefined;
    let deviceTotalBytes: number | undefined;
    const layerResult = (index: number): Promise<QuantizedLayer> => {
      if (current?.index === index) return current.result;
      const run = async (): Promise<QuantizedLayer> => {
        opts.signal?.throwIfAborted();
        const layerStarted = performance.now();
        const progress = (stage: string) => opts.onProgress?.({ layer: index, numLayers, stage });
        progress("reading");
        const fp = await uploadLayer(qm, await readDenseLayer(ckpt, config, weights.layers[index]));
        let result: QuantizedLayer;
        if (method === "rtn") {
          result = await quantizeLayerRtn(qm, fp, groupSize);
        } else {
          x ??= await qm.uploadActivations(await embedBlocks(ckpt, weights.embedTokens, config, blocks));
          result = await quantizeLayerAwq(qm, fp, x, layerOpts, progress);
          log(`layer ${index}: ${result.notes.join("; ")}`);
        }
        const seconds = (performance.now() - layerStarted) / 1000;
        layerSeconds[index] = seconds;
        const memory = qm.deviceMemory?.();
        if (memory !== undefined) {
          devicePeakBytes = Math.max(devicePeakBytes ?? 0, memory.peakBytes);
          deviceTotalBytes = memory.totalBytes;
        }
        opts.onLayerDone?.(index, seconds);
        return result;
      };
      current = { index, result: run() };
      return current.result;
    };

    const hd = config.hiddenSize;
    const tensors: TensorToWrite[] = [
      {
        name: weights.embedTokens,
        dtype: "F16",
        shape: [config.vocabSize, hd],
        data: () => asF16(ckpt, weights.embedTokens, config.vocabSize * hd),
      },
    ];
    for (const layer of weights.layers)
      tensors.push(...layerTensors(config, layer, groupSize, () => layerResult(layer.index)));
    tensors.push({
      name: weights.norm,
      dtype: "F16",
      shape: [hd],
      data: () => asF16(ckpt, weights.norm, hd),
    });
    if (!weights.lmHeadTied) {
      tensors.push({
        name: weights.lmHead,
        dtype: "F16",
        shape: [config.vocabSize, hd],
        data: () => asF16(ckpt, weights.lmHead, config.vocabSize * hd),
      });
    }
    await writeSafetensors(`${outDir}/model.safetensors`, tensors, { format: "pt", quantized_by: "awq-ts" });
    qm.release(x);
    opts.onProgress?.({ layer: numLayers, numLayers, stage: "done" });
    await writeConfigFiles(modelDir, outDir, groupSize);
    await copyModelFiles(modelDir, outDir);
    return {
      outDir,
      numLayers,
      calibrationBlocks: blocks.length,
      calibrationTokens: blocks.length * seqlen,
      seconds: (performance.now() - started) / 1000,
      backend: qm.name,
      layerSeconds,
      deviceMemory:
        devicePeakBytes === undefined || deviceTotalBytes === undefined
          ? undefined
          : { peakBytes: devicePeakBytes, totalBytes: deviceTotalBytes },
    };
  } finally {
    await math?.dispose();
    await ckpt.close();
  }
}
