/**
 * `awq bench latency`: prefill and decode throughput of the CUDA backend on a synthetic model (random weights
 * generated on the GPU, no file), driven through the Backend interface exactly as the engine drives it, so every
 * number includes the host side of a step (packing the batch, the addon call, the download of the tokens).
 */

import { syntheticShape } from "../../model/synthetic-checkpoint.js";
import type { ModelConfig } from "../../model/types.js";
import type { StepBatch } from "../backend.js";
import { isFp8KvCache, type KvCacheDtype } from "../kv-cache-dtype.js";
import { buildSamplingArrays } from "../sampler-arrays.js";
import { chainedStepsFromEnvironment } from "../step-chain.js";
import { CudaBackend } from "./cuda-backend.js";

/** Llama-2-13B, AWQ 4-bit g128 (the seed model's shape); `layers` may be lowered for quick runs. */
export function llama2_13bAwqConfig(layers = 40): ModelConfig {
  return syntheticAwqConfig("llama-2-13b", layers);
}

/**
 * A synthetic model of one of the checkpoint writer's shapes (SYNTHETIC_SHAPES: llama-2-13b, llama-3-8b, ...), AWQ 4-bit
 * g128, the demo vocabulary; `layers` (default: the shape's) may be lowered for quick runs.
 */
export function syntheticAwqConfig(shapeName: string, layers?: number): ModelConfig {
  const shape = syntheticShape(shapeName);
  return {
    architecture: "LlamaForCausalLM",
    hiddenSize: shape.hiddenSize,
    intermediateSize: shape.intermediateSize,
    numLayers: layers ?? shape.numLayers,
    numHeads: shape.numHeads,
    numKvHeads: shape.numKvHeads,
    headDim: shape.hiddenSize / shape.numHeads,
    vocabSize: 32002,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: shape.maxPositionEmbeddings,
    tieWordEmbeddings: false,
    dtype: "float16",
    bosTokenId: 1,
    eosTokenIds: [2],
    quantization: {
      method: "awq",
      bits: 4,
      groupSize: 128,
      zeroPoint: true,
      version: "gemm",
      modulesToNotConvert: [],
    },
  };
}

export interface LatencyBenchOptions {
  /** A synthetic shape (SYNTHETIC_SHAPES); default llama-2-13b. */
  shape?: string;
  /** Decoder layers; default: the shape's. */
  layers?: number;
  prefillLengths: number[];
  decodeBatches: number[];
  /** Prompt tokens of each sequence before the timed decode steps; every batch is timed at each. */
  decodeContexts: number[];
  decodeSteps: number;
  repeats: number;
  gpuMemoryUtilization: number;
  /** --kv-cache-dtype (auto = fp16 K/V; fp8 = 1-byte E4M3). */
  kvCacheDtype?: KvCacheDtype;
  /** Also time each operation of a few eager decode steps per batch size. */
  profile?: boolean;
  /**
   * Whether the timed decode steps are chained as the engine chains them (each launched before the one it continues
   * has returned); default: as the engine (AWQ_ENGINE_ASYNC, on), where the addon takes chained steps.
   */
  chainedSteps?: boolean;
  onProgress?: (line: string) => void;
}

export interface LatencyBenchResult {
  device: string;
  model: string;
  weightBytes: number;
  numBlocks: number;
  prefill: {
    tokens: number;
    ms: number;
    tokensPerSecond: number;
    /** With `profile`: GPU ms of each operation in one prefill. */
    profile?: Record<string, number>;
  }[];
  decode: {
    batch: number;
    context: number;
    msPerStep: number;
    /** GPU time per step (upload to download), without the host side. */
    gpuMsPerStep: number;
    /** Mean host phases per step in microseconds (see NativeStepOutput.hostTiming). */
    hostUs: { convert: number; queue: number; execute: number; return: number };
    tokensPerSecond: number;
    /** Weights + the KV cache read per step over the GPU time of a step, GB/s. */
    gbPerSecond: number;
    /** With `profile`: GPU ms per step of each operation (eager launches, so a little slower than graphs). */
    profile?: Record<string, number>;
    /** With `profile`: GB/s of the operations that stream known bytes (the four projections, attention). */
    profileGBs?: Record<string, number>;
  }[];
}

/**
 * Bytes a decode step must read per operation (all layers): the int4 weights + their zero/scale pairs (4 bytes per
 * group and output) of each projection, the KV cache for attention. numbers are per step of `batch` sequences.
 */
export function decodeOpBytes(
  c: ModelConfig,
  batch: number,
  context: number,
  kvElementBytes = 2,
): Record<string, number> {
  const g = c.quantization?.groupSize ?? 128;
  const awq = (inF: number, outF: number) => c.numLayers * ((inF * outF) / 2 + (inF / g) * outF * 4);
  const h = c.hiddenSize;
  const kv = c.numKvHeads * c.headDim;
  return {
    qkv_proj: awq(h, c.numHeads * c.headDim + 2 * kv),
    o_proj: awq(c.numHeads * c.headDim, h),
    gate_up_proj: awq(h, 2 * c.intermediateSize),
    down_proj: awq(c.intermediateSize, h),
    attention_decode: c.numLayers * batch * context * kv * 2 * kvElementBytes,
  };
}

/** Sequences laid out on consecutive KV blocks; each step is one StepBatch (greedy sampling). */
class SyntheticBatches {
  constructor(private readonly blockSize: number) {}

  /** Prefill of `lengths[i]` tokens per sequence, starting at `starts[i]` of its context, blocks from `firstBlock`. */
  build(
    lengths: number[],
    starts: number[],
    blocksPerSeq: number,
    firstBlock: number,
    vocab: number,
  ): StepBatch {
    const numSeqs = lengths.length;
    const numTokens = lengths.reduce((a, b) => a + b, 0);
    const tokenIds = new Int32Array(numTokens); // (numTokens)
    const positions = new Int32Array(numTokens); // (numTokens)
    const slotMapping = new Int32Array(numTokens); // (numTokens)
    const queryStarts = new Int32Array(numSeqs + 1); // (numSeqs + 1)
    const contextLens = new Int32Array(numSeqs); // (numSeqs)
    const blockTables = new Int32Array(numSeqs * blocksPerSeq); // (numSeqs, blocksPerSeq)
    let t = 0;
    for (let i = 0; i < numSeqs; i++) {
      queryStarts[i] = t;
      const base = firstBlock + i * blocksPerSeq;
      for (let b = 0; b < blocksPerSeq; b++) blockTables[i * blocksPerSeq + b] = base + b;
      for (let p = starts[i]; p < starts[i] + lengths[i]; p++, t++) {
        tokenIds[t] = 3 + ((p * 7919 + i * 104729) % (vocab - 3));
        positions[t] = p;
        slotMapping[t] = (base + Math.floor(p / this.blockSize)) * this.blockSize + (p % this.blockSize);
      }
      contextLens[i] = starts[i] + lengths[i];
    }
    queryStarts[numSeqs] = t;
    return {
      numSeqs,
      tokenIds,
      positions,
      queryStarts,
      contextLens,
      maxBlocksPerSeq: blocksPerSeq,
      blockTables,
      slotMapping,
      sample: new Uint8Array(numSeqs).fill(1),
      sampling: buildSamplingArrays(lengths.map(() => ({ temperature: 0 }))),
    };
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function runLatencyBench(o: LatencyBenchOptions): Promise<LatencyBenchResult> {
  const log = o.onProgress ?? (() => {});
  const shapeName = o.shape ?? "llama-2-13b";
  const config = syntheticAwqConfig(shapeName, o.layers);
  const layers = config.numLayers;
  const blockSize = 16;
  const maxPrefill = Math.max(...o.prefillLengths, 1);
  const maxBatch = Math.max(...o.decodeBatches, 1);
  const decodeLen = Math.max(...o.decodeContexts, 1) + o.decodeSteps + 8;
  const maxModelLen = Math.max(maxPrefill, decodeLen);
  const backend = await CudaBackend.create();
  const chainSteps = (o.chainedSteps ?? chainedStepsFromEnvironment()) && backend.chainedSteps;
  try {
    log(`generating a random ${layers}-layer ${shapeName} AWQ model on ${backend.deviceName}`);
    const layout = await backend.loadSynthetic(config, {
      maxModelLen,
      maxNumSeqs: maxBatch,
      maxNumBatchedTokens: Math.max(maxPrefill, 2048),
      blockSize,
      gpuMemoryUtilization: o.gpuMemoryUtilization,
      kvCacheDtype: o.kvCacheDtype,
    });
    const memory = backend.memory!;
    log(`weights ${(memory.weightBytes / 2 ** 30).toFixed(2)} GiB, ${layout.numBlocks} KV blocks`);
    const batches = new SyntheticBatches(blockSize);
    const vocab = config.vocabSize;
    const result: LatencyBenchResult = {
      device: backend.deviceName,
      model: `${shapeName} shape (${config.numHeads} / ${config.numKvHeads} heads), AWQ int4 g128, ${layers} layers (random weights), KV ${isFp8KvCache(o.kvCacheDtype) ? "fp8_e4m3" : "fp16"}, decode steps ${chainSteps ? "chained" : "one after the other"}`,
      weightBytes: memory.weightBytes,
      numBlocks: layout.numBlocks,
      prefill: [],
      decode: [],
    };

    for (const tokens of o.prefillLengths) {
      const blocks = Math.ceil(tokens / blockSize);
      const run = async () => {
        const t0 = performance.now();
        await backend.step(batches.build([tokens], [0], blocks, 0, vocab));
        return performance.now() - t0;
      };
      await run(); // warm-up
      const times: number[] = [];
      for (let r = 0; r < o.repeats; r++) times.push(await run());
      const ms = median(times);
      const entry: LatencyBenchResult["prefill"][number] = {
        tokens,
        ms,
        tokensPerSecond: (tokens / ms) * 1000,
      };
      if (o.profile) {
        backend.setProfiling(true);
        await run();
        entry.profile = {};
        for (const p of backend.takeProfile()) entry.profile[p.op] = p.ms;
        backend.setProfiling(false);
      }
      result.prefill.push(entry);
      log(`prefill ${tokens} tokens: ${ms.toFixed(1)} ms, ${((tokens / ms) * 1000).toFixed(0)} tokens/s`);
    }

    for (const decodeContext of o.decodeContexts)
      for (const batch of o.decodeBatches) {
        // Blocks for this context only (the model length covers the longest): short contexts fit large batches.
        const blocksPerSeq = Math.ceil((decodeContext + o.decodeSteps + 8) / blockSize);
        if (batch * blocksPerSeq > layout.numBlocks) {
          log(`decode batch ${batch}: skipped (needs ${batch * blocksPerSeq} KV blocks)`);
          continue;
        }
        // Prefill every sequence's context in chunks the workspace takes.
        const perChunk = Math.max(1, Math.floor(2048 / decodeContext));
        for (let s = 0; s < batch; s += perChunk) {
          const n = Math.min(perChunk, batch - s);
          const b = batches.build(
            new Array(n).fill(decodeContext),
            new Array(n).fill(0),
            blocksPerSeq,
            s * blocksPerSeq,
            vocab,
          );
          await backend.step(b);
        }
        const ones = new Array(batch).fill(1);
        const previousRows = Int32Array.from({ length: batch }, (_, i) => i); // (batch) row i takes row i's token
        let context = decodeContext;
        let gpuMs = 0;
        const host = { convert: 0, queue: 0, execute: 0, return: 0 };
        const nextBatch = (chained: boolean) => {
          const b = batches.build(ones, new Array(batch).fill(context), blocksPerSeq, 0, vocab);
          if (chained) b.prevTokenRows = previousRows;
          context++;
          return b;
        };
        const account = () => {
          gpuMs += backend.lastStepGpuMs;
          const h = backend.lastStepHostTiming;
          if (h !== null) {
            host.convert += h.convertUs;
            host.queue += h.queueUs;
            host.execute += h.executeUs;
            host.return += h.returnUs;
          }
        };
        // `steps` decode steps, as the engine runs them: chained (each launched before the one it continues has
        // returned, its tokens that step's) or one after the other.
        const decodeSteps = async (steps: number, chained: boolean) => {
          let running = backend.step(nextBatch(false));
          for (let s = 1; s < steps; s++) {
            const next = chained ? backend.step(nextBatch(true)) : null;
            await running;
            account();
            running = next ?? backend.step(nextBatch(false));
          }
          await running;
          account();
        };
        await decodeSteps(4, false); // warm-up (captures the CUDA graphs)
        const startContext = context;
        gpuMs = 0;
        for (const k of Object.keys(host) as (keyof typeof host)[]) host[k] = 0;
        const t0 = performance.now();
        await decodeSteps(o.decodeSteps, chainSteps);
        const ms = (performance.now() - t0) / o.decodeSteps;
        const tokensPerSecond = (batch / ms) * 1000;
        const meanContext = startContext + (o.decodeSteps - 1) / 2;
        const opBytes = decodeOpBytes(config, batch, meanContext, isFp8KvCache(o.kvCacheDtype) ? 1 : 2);
        const stepBytes = memory.weightBytes + opBytes.attention_decode;
        const entry: LatencyBenchResult["decode"][number] = {
          batch,
          context: startContext,
          msPerStep: ms,
          gpuMsPerStep: gpuMs / o.decodeSteps,
          hostUs: {
            convert: host.convert / o.decodeSteps,
            queue: host.queue / o.decodeSteps,
            execute: host.execute / o.decodeSteps,
            return: host.return / o.decodeSteps,
          },
          tokensPerSecond,
          gbPerSecond: stepBytes / (gpuMs / o.decodeSteps) / 1e6,
        };
        if (o.profile) {
          const profiled = 8;
          backend.setProfiling(true);
          await decodeSteps(profiled, false);
          entry.profile = {};
          for (const p of backend.takeProfile()) entry.profile[p.op] = p.ms / profiled;
          backend.setProfiling(false);
          entry.profileGBs = {};
          for (const [op, bytes] of Object.entries(opBytes)) {
            const opMs = entry.profile[op];
            if (opMs !== undefined && opMs > 0) entry.profileGBs[op] = bytes / opMs / 1e6;
          }
        }
        result.decode.push(entry);
        log(
          `decode batch ${batch} context ${startContext}: ${ms.toFixed(2)} ms/step (GPU ${entry.gpuMsPerStep.toFixed(2)}), ${tokensPerSecond.toFixed(1)} tokens/s`,
        );
      }
    return result;
  } finally {
    await backend.dispose();
  }
}
