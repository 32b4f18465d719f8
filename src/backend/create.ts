/** Picks a backend by name: `auto` tries CUDA and falls back to the CPU with one clear message. */
import { TensorParallelError } from "../model/tensor-parallel-plan.js";
import { type Backend, BackendUnavailableError } from "./backend.js";

export type BackendChoice = "cpu" | "cuda" | "auto";

export interface CreateBackendOptions {
  /** Told why CUDA was skipped under `auto` (default: one line on stderr). */
  onFallback?: (reason: string) => void;
  /**
   * Ranks every matrix is split over (--tensor-parallel-size; default 1). The CPU backend runs them as the
   * reference of the sharding math; CUDA needs the NCCL build for more than 1.
   */
  tensorParallelSize?: number;
  /**
   * Chained steps asked for by name (--async-scheduling / --no-async-scheduling): true makes the backend take them
   * where it can (the CPU backend, which hides no host time with them, only then; CUDA also with
   * AWQ_CUDA_CHAINED=0), false refuses them; undefined: each backend's default.
   */
  chainedSteps?: boolean;
}

/** A --data-parallel-size this machine cannot run; `param` names the flag. */
export class DataParallelError extends Error {
  override name = "DataParallelError";
  readonly param = "data-parallel-size";
}

function cudaTensorParallelError(size: number): TensorParallelError {
  return new TensorParallelError(
    `--tensor-parallel-size ${size}: tensor parallelism on the CUDA backend needs the NCCL build (one rank per ` +
      "GPU, all-reduces over NCCL), which is not available yet; use --tensor-parallel-size 1 on CUDA, or " +
      "--backend cpu for the CPU reference of the same sharding",
  );
}

export async function createBackend(
  choice: BackendChoice,
  opts: CreateBackendOptions = {},
): Promise<Backend> {
  const tensorParallelSize = opts.tensorParallelSize ?? 1;
  if (!Number.isInteger(tensorParallelSize) || tensorParallelSize < 1)
    throw new TensorParallelError(
      `tensor-parallel-size must be a positive integer, got ${tensorParallelSize}`,
    );
  if (choice === "cpu") return newCpuBackend(tensorParallelSize, opts.chainedSteps);
  if (choice === "cuda" && tensorParallelSize > 1) throw cudaTensorParallelError(tensorParallelSize);
  let cuda: Backend;
  try {
    const { CudaBackend } = await import("./cuda/cuda-backend.js");
    cuda = await CudaBackend.create({ chainedSteps: opts.chainedSteps });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (choice === "cuda") {
      throw err instanceof BackendUnavailableError ? err : new BackendUnavailableError(reason);
    }
    (
      opts.onFallback ??
      ((r: string) => process.stderr.write(`awq: CUDA backend unavailable (${r}); using the CPU backend\n`))
    )(reason);
    return newCpuBackend(tensorParallelSize, opts.chainedSteps);
  }
  // `auto` found a GPU: running the ranks on the CPU instead would be a silent 100x slowdown.
  if (tensorParallelSize > 1) {
    await cuda.dispose();
    throw cudaTensorParallelError(tensorParallelSize);
  }
  return cuda;
}

/**
 * One unloaded backend per data-parallel replica (--data-parallel-size): on the CPU, separate engines each with
 * its own weights and KV cache; on CUDA one GPU each, refused where the GPUs are too few or the per-replica
 * device choice is missing.
 */
export async function createReplicaBackends(
  choice: BackendChoice,
  replicas: number,
  opts: CreateBackendOptions = {},
): Promise<Backend[]> {
  if (!Number.isInteger(replicas) || replicas < 1)
    throw new DataParallelError(`data-parallel-size must be a positive integer, got ${replicas}`);
  const first = await createBackend(choice, opts);
  if (replicas === 1) return [first];
  if (first.name === "cuda") {
    await first.dispose();
    const { loadNativeAddon } = await import("./cuda/native-addon.js");
    const { probe } = await loadNativeAddon();
    const visible = process.env.CUDA_VISIBLE_DEVICES;
    if (replicas > probe.deviceCount) {
      throw new DataParallelError(
        `--data-parallel-size ${replicas} needs one GPU per replica, and ${probe.deviceCount} ` +
          `${probe.deviceCount === 1 ? "GPU is" : "GPUs are"} visible` +
          `${visible !== undefined ? ` (CUDA_VISIBLE_DEVICES=${visible})` : ""}; use at most ${probe.deviceCount}`,
      );
    }
    throw new DataParallelError(
      `--data-parallel-size ${replicas} on CUDA: placing each replica on its own GPU needs the multi-GPU build, ` +
        "not available yet; run one `awq serve` per GPU (CUDA_VISIBLE_DEVICES=i, its own --port) behind a load " +
        "balancer, or use --backend cpu",
    );
  }
  const rest: Backend[] = [];
  for (let i = 1; i < replicas; i++) rest.push(await createBackend("cpu", opts));
  return [first, ...rest];
}

async function newCpuBackend(tensorParallelSize: number, chainedSteps?: boolean): Promise<Backend> {
  const { CpuBackend } = await import("./cpu/cpu-backend.js");
  return new CpuBackend({ tensorParallelSize, chainedSteps });
}
