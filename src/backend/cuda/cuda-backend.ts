/**
 * The CUDA backend: a thin TypeScript wrapper over the awq_native addon. Weights, the paged KV cache, the forward
 * and sampling all live on the GPU; every call returns a promise settled from the addon's worker threads, so the
 * event loop never waits on the GPU.
 *
 * Environment: AWQ_NATIVE_ADDON (another addon file), AWQ_CUDA_SYNC=1 (synchronize after every kernel so an
 * asynchronous fault names its kernel; slow), AWQ_CUDA_GRAPHS=0 (no CUDA graphs for decode steps),
 * AWQ_CUDA_SPLIT_STEP=0 (see splitStepEnabled); every switch the addon reads is checked by name and value
 * (native-switches.ts).
 */
import type { GpuInfo } from "../../engine/batch-defaults.js";
import type { ModelConfig, ModelSource } from "../../model/types.js";
import {
  awaitStepMasks,
  type Backend,
  type BackendOptions,
  type KvLayout,
  type StepBatch,
  type StepResult,
} from "../backend.js";
import { nativeDims, uploadCheckpoint } from "./load-weights.js";
import {
  loadNativeAddon,
  type NativeAddon,
  type NativeEngine,
  type NativeMemoryReport,
  type NativeRuntimeOptions,
  type NativeStepOutput,
  type ProbeResult,
} from "./native-addon.js";
import { checkNativeSwitches } from "./native-switches.js";

/**
 * The forward/sample split (on unless AWQ_CUDA_SPLIT_STEP=0): a step whose structured-output masks the grammar
 * workers are still writing runs as the addon's forward() then sample() (stepBesideMasks), so the masks are filled
 * while the GPU runs the forward pass instead of before it. H100, 2026-12-05 (docs/benchmarks.md): constrained
 * decoding 2.1% slower than free at batch 64 with it, 12.1% without. Off, such a step awaits its masks and makes
 * the one step() call.
 */
export function splitStepEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AWQ_CUDA_SPLIT_STEP !== "0";
}

/**
 * Whether the backend takes chained steps (StepBatch.prevTokenRows) from the engine, where the addon has them: on
 * by default since the GPU runs of 2026-12-07 (faster at every batch size, the same outputs); AWQ_CUDA_CHAINED=0
 * turns them off.
 */
export function chainedStepsEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AWQ_CUDA_CHAINED !== "0";
}

export interface CudaBackendOptions {
  /**
   * Whether to take chained steps where the addon can (`--async-scheduling` by name sets it either way);
   * default: chainedStepsEnabled().
   */
  chainedSteps?: boolean;
}

/** Defaults for `--gpu-memory-utilization` (vLLM's). */
export const DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;

export class CudaBackend implements Backend {
  readonly name = "cuda" as const;
  readonly promptTopLogprobs = true;
  private engine: NativeEngine | null = null;
  private report: NativeMemoryReport | null = null;
  private deviceLabel = "";
  /** GPU time of the last step (upload to download), for benchmarks. */
  lastStepGpuMs = Number.NaN;
  /** Host phases of the last step (microseconds), for benchmarks. */
  lastStepHostTiming: NativeStepOutput["hostTiming"] | null = null;

  /** Whether masked steps use the forward/sample split (splitStepEnabled when the backend was created). */
  readonly splitStep: boolean;
  /**
   * step() may be called before the previous one returns, with batch.prevTokenRows: the addon queues it on the
   * stream right behind that step and gathers its tokens on the device from what that step sampled, so the GPU
   * goes from one step to the next without waiting for the host.
   */
  readonly chainedSteps: boolean;
  private readonly addonOrder = new AddonCallOrder();

  private constructor(
    private readonly addon: NativeAddon,
    /** What the driver reported when the backend was created. */
    readonly probe: ProbeResult,
    options: CudaBackendOptions,
  ) {
    this.splitStep = splitStepEnabled();
    this.chainedSteps = addon.chainedSteps === true && (options.chainedSteps ?? chainedStepsEnabled());
    const engine = addon.Engine.prototype as Partial<NativeEngine>;
    if (this.splitStep && (typeof engine.forward !== "function" || typeof engine.sample !== "function")) {
      throw new Error(
        "this CUDA addon has no forward()/sample() for the structured-output step split (built before them); rebuild it with npm run build:native, or set AWQ_CUDA_SPLIT_STEP=0",
      );
    }
  }

  /** Loads the addon and checks for a GPU; throws BackendUnavailableError (one clear message) when it cannot run. */
  static async create(options: CudaBackendOptions = {}): Promise<CudaBackend> {
    const { addon, probe } = await loadNativeAddon();
    checkNativeSwitches(); // only once CUDA is really the backend (auto falls back to the CPU before this)
    return new CudaBackend(addon, probe, options);
  }

  /** Device 0 (the one the engine runs on) as the driver probe reported it. */
  get gpu(): GpuInfo | undefined {
    const device = this.probe.devices?.[0];
    return device === undefined ? undefined : { name: device.name, totalMemoryBytes: device.totalMemory };
  }

  /** The GPU's name, e.g. "NVIDIA H100 80GB HBM3". */
  get deviceName(): string {
    return this.deviceLabel || (this.probe.devices?.[0]?.name ?? "unknown GPU");
  }

  /** Memory the engine took (weights, workspace, KV cache); null before load. */
  get memory(): NativeMemoryReport | null {
    return this.report;
  }

  async load(source: ModelSource, opts: BackendOptions): Promise<KvLayout> {
    const engine = await this.initEngine(source.config);
    try {
      await uploadCheckpoint(engine, source, opts.onLoadProgress, opts.signal);
      return await this.finish(engine, opts);
    } catch (err) {
      await this.dispose();
      throw err;
    }
  }

  /**
   * Builds a model of `config`'s shape with random weights generated on the GPU (no file): AWQ when
   * config.quantization is set. For benchmarks.
   */
  async loadSynthetic(config: ModelConfig, opts: BackendOptions, seed = 1): Promise<KvLayout> {
    const engine = await this.initEngine(config);
    try {
      await engine.initRandomWeights(seed);
      return await this.finish(engine, opts);
    } catch (err) {
      await this.dispose();
      throw err;
    }
  }

  async step(batch: StepBatch): Promise<StepResult> {
    const engine = this.engine;
    if (engine === null || this.report === null) throw new Error("CUDA backend: step() before load()");
    if (batch.prevTokenRows !== undefined && !this.chainedSteps) {
      throw new Error(
        "CUDA backend: this addon takes no chained steps (prevTokenRows); rebuild it (npm run build:native)",
      );
    }
    const out = await runAddonStep(engine, batch, this.splitStep, this.addonOrder);
    this.lastStepGpuMs = out.gpuMs;
    this.lastStepHostTiming = out.hostTiming;
    const topLogprobs: StepResult["topLogprobs"] = [];
    for (let i = 0; i < batch.numSeqs; i++) {
      if (batch.sample[i] === 1 && batch.sampling.logprobs[i] > 0) {
        const start = i * out.maxTop;
        const end = start + out.topCounts[i];
        topLogprobs.push({
          tokenIds: out.topIds.slice(start, end),
          logprobs: out.topLogprobs.slice(start, end),
        });
      } else {
        topLogprobs.push(null);
      }
    }
    const result: StepResult = { tokenIds: out.tokenIds, logprobs: out.logprobs, topLogprobs };
    if (batch.tokenLogprobs) result.tokenLogprobs = out.tokenLogprobs;
    if (batch.tokenLogprobs && (batch.tokenTopLogprobs ?? 0) > 0) {
      if (out.tokenTop === undefined)
        throw new Error("CUDA backend: the addon returned no prompt top logprobs");
      result.tokenTop = out.tokenTop;
    }
    if (batch.returnLogits) result.logits = out.logits ?? new Float32Array(0);
    return result;
  }

  async dispose(): Promise<void> {
    const engine = this.engine;
    this.engine = null;
    this.report = null;
    if (engine !== null) await engine.dispose();
  }

  /** Diagnostics: run steps eagerly with per-operation GPU timing; takeProfile() returns the sums since. */
  setProfiling(on: boolean): void {
    this.requireEngine().setProfiling(on);
  }

  takeProfile(): { op: string; ms: number; count: number }[] {
    return this.requireEngine().takeProfile();
  }

  private requireEngine(): NativeEngine {
    if (this.engine === null) throw new Error("CUDA backend: not loaded");
    return this.engine;
  }

  private async initEngine(config: ModelConfig): Promise<NativeEngine> {
    if (this.engine !== null)
      throw new Error("CUDA backend: load() called twice; create a new backend per model");
    const engine = new this.addon.Engine();
    const { deviceName } = await engine.init(nativeDims(config), 0);
    this.deviceLabel = deviceName;
    this.engine = engine;
    return engine;
  }

  private async finish(engine: NativeEngine, opts: BackendOptions): Promise<KvLayout> {
    const utilization = opts.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION;
    if (!(utilization > 0 && utilization <= 1)) {
      throw new Error(`--gpu-memory-utilization must be in (0, 1], got ${utilization}`);
    }
    const runtime: NativeRuntimeOptions = {
      maxNumSeqs: opts.maxNumSeqs,
      maxNumBatchedTokens: opts.maxNumBatchedTokens,
      maxModelLen: opts.maxModelLen,
      blockSize: opts.blockSize,
      numBlocks: opts.numBlocks ?? -1,
      gpuMemoryUtilization: utilization,
      kvCacheDtype: opts.kvCacheDtype ?? "auto",
    };
    this.report = await engine.finalize(runtime);
    if (runtime.kvCacheDtype !== "auto" && this.report.kvElementBytes !== 1) {
      throw new Error(
        `--kv-cache-dtype ${runtime.kvCacheDtype}: the CUDA addon was built without the FP8 KV cache ` +
          "(it allocated fp16 K/V); rebuild it (npm run build:native) or use --kv-cache-dtype auto",
      );
    }
    return { blockSize: this.report.blockSize, numBlocks: this.report.numBlocks };
  }
}

/**
 * A step whose masks the grammar workers are still writing: the forward pass is enqueued first and runs on the
 * GPU while they finish; sampling, which reads the masks (in place, shared memory included), is enqueued once
 * they are written. A launch that fails needs no sample(); one that succeeded always gets it, even when the
 * masks failed, so the engine is free for the next step.
 */
/**
 * The addon runs steps in the order they reach it, and a chained step (prevTokenRows) continues the one that
 * reached it last: each step() takes a turn here, and a chained one goes to the addon only once the step called
 * before it has (which may first have awaited its masks).
 */
export class AddonCallOrder {
  /** Resolves once the last step that took a turn has reached the addon (or failed before). */
  private last: Promise<void> = Promise.resolve();

  /** This step's turn: `before` to await first (a chained step), `reached` to call once it is in the addon. */
  take(chained: boolean): { before: Promise<void>; reached: () => void } {
    const previous = this.last;
    let reached = () => {};
    this.last = new Promise<void>((resolve) => (reached = resolve));
    return { before: chained ? previous : Promise.resolve(), reached };
  }
}

/**
 * One step through the addon, in `order`: beside its masks (the forward/sample split) when they are still being
 * written and `splitStep`, else the one-call step once they are there.
 */
export async function runAddonStep(
  engine: NativeEngine,
  batch: StepBatch,
  splitStep: boolean,
  order: AddonCallOrder,
): Promise<NativeStepOutput> {
  const turn = order.take(batch.prevTokenRows !== undefined);
  try {
    await turn.before;
    const masksReady = batch.masksReady;
    if (masksReady !== undefined && splitStep) {
      const pending = stepBesideMasks(engine, batch, masksReady); // calls forward() before its first await
      turn.reached();
      return await pending;
    }
    // The one-call step (forward and sampling): masks still being written must be there before it.
    await awaitStepMasks(batch, { unshared: true });
    const pending = engine.step(batch);
    turn.reached();
    return await pending;
  } finally {
    turn.reached();
  }
}

export async function stepBesideMasks(
  engine: NativeEngine,
  batch: StepBatch,
  masksReady: () => Promise<void>,
): Promise<NativeStepOutput> {
  const [launch, masks] = await Promise.allSettled([engine.forward(batch), masksReady()]);
  if (launch.status === "rejected") throw launch.reason;
  const out = await engine.sample(batch);
  if (masks.status === "rejected") throw masks.reason;
  return out;
}
