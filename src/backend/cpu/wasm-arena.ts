/**
 * One shared WebAssembly memory plus the kernel instance that computes on it. Everything a kernel touches
 * (weights, activations, scratch) is allocated here by a bump allocator; a model owns one arena and disposes it.
 * Callers keep byte offsets (`ptr`) and take views (`f32(ptr, len)`) when they need them.
 *
 * Large matmuls are split by rows between this thread and one helper worker (matmul-worker.ts) on the same
 * shared memory, so both cores of a small machine work on a step; AWQ_CPU_THREADS=1 turns the helper off.
 * The main thread waits for the helper's half with Atomics.wait: it holds the event loop no longer than doing
 * the whole product itself would.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { CONTROL_SLOTS, STATE_DONE, STATE_JOB, STATE_READY, STATE_STOP } from "./matmul-worker.js";
import { type KernelExports, kernelModuleBytes, TILE_ROWS } from "./wasm-matmul.js";

const PAGE = 65536;
/** wasm32 addresses at most 4 GiB. */
const MAX_PAGES = 65536;
/** Products smaller than this (multiply-adds) run on one thread: the hand-off would cost more than it saves. */
const MIN_SPLIT_WORK = 1 << 21;
/** How long to wait for the helper before checking that it is still alive (ms). */
const HELPER_WAIT_MS = 2000;

let compiled: WebAssembly.Module | null = null;

function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(kernelModuleBytes({ shared: true, maxPages: MAX_PAGES }));
  return compiled;
}

/** Threads for one arena's matmuls: AWQ_CPU_THREADS, else 2 when the machine has 2+ cores. */
function matmulThreads(): number {
  const fromEnv = Number(process.env.AWQ_CPU_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv >= 1) return Math.min(fromEnv, 2);
  return availableParallelism() >= 2 ? 2 : 1;
}

export class WasmArena {
  readonly memory: WebAssembly.Memory;
  readonly kernels: KernelExports;
  private top = 64; // keep 0 as an obviously invalid pointer
  private readonly resultPtr: number; // 2 f32 results of maxSumExp
  private readonly views = new WeakSet<ArrayBufferLike>(); // every buffer object this memory has shown
  private helper: Worker | null = null;
  private helperAlive = false;
  private control: Int32Array | null = null; // (CONTROL_SLOTS) in shared memory

  constructor(initialBytes = 1 << 20, threads = matmulThreads()) {
    this.memory = new WebAssembly.Memory({
      initial: Math.ceil(initialBytes / PAGE),
      maximum: MAX_PAGES,
      shared: true,
    });
    const instance = new WebAssembly.Instance(kernelModule(), { env: { memory: this.memory } });
    this.kernels = instance.exports as unknown as KernelExports;
    this.resultPtr = this.allocF32(2, "kernel results");
    if (threads >= 2) this.startHelper();
  }

  private startHelper(): void {
    const controlPtr = this.allocF32(CONTROL_SLOTS, "matmul control block");
    const control = new Int32Array(this.memory.buffer, controlPtr, CONTROL_SLOTS);
    Atomics.store(control, 0, -1); // the worker sets READY once instantiated
    const worker = new Worker(new URL("./matmul-worker.js", import.meta.url), {
      workerData: { module: kernelModule(), memory: this.memory, controlPtr },
    });
    worker.unref();
    const dead = () => {
      this.helperAlive = false;
    };
    worker.on("error", dead);
    worker.on("exit", dead);
    this.helper = worker;
    this.helperAlive = true;
    this.control = control;
  }

  /**
   * y (M, N) = x (M, K) @ W (packed panels), see wasm-matmul.ts; rows split with the helper when it is up
   * and the product is large.
   */
  matmul(x: number, w: number, y: number, M: number, K: number, N: number): void {
    const control = this.control;
    const split =
      control !== null &&
      this.helperAlive &&
      M >= 2 * TILE_ROWS &&
      M * K * N >= MIN_SPLIT_WORK &&
      Atomics.load(control, 0) === STATE_READY;
    if (!split) {
      this.kernels.matmul(x, w, y, M, K, N);
      return;
    }
    const mine = Math.ceil(M / 2 / TILE_ROWS) * TILE_ROWS;
    control[1] = x + mine * K * 4;
    control[2] = w;
    control[3] = y + mine * N * 4;
    control[4] = M - mine;
    control[5] = K;
    control[6] = N;
    Atomics.store(control, 0, STATE_JOB);
    Atomics.notify(control, 0);
    this.kernels.matmul(x, w, y, mine, K, N);
    while (Atomics.load(control, 0) !== STATE_DONE) {
      if (Atomics.wait(control, 0, STATE_JOB, HELPER_WAIT_MS) === "timed-out" && !this.helperAlive) {
        // The helper died mid-job: do its half here rather than hang.
        this.control = null;
        this.kernels.matmul(control[1], w, control[3], M - mine, K, N);
        return;
      }
    }
    Atomics.store(control, 0, STATE_READY);
    Atomics.notify(control, 0);
  }

  /** Whether the helper thread is up and idle (tests wait for it). */
  get helperReady(): boolean {
    return this.control !== null && this.helperAlive && Atomics.load(this.control, 0) === STATE_READY;
  }

  /** Stops the helper thread; the arena must not be used afterwards. */
  async dispose(): Promise<void> {
    const worker = this.helper;
    if (worker === null) return;
    this.helper = null;
    if (this.control !== null) {
      Atomics.store(this.control, 0, STATE_STOP);
      Atomics.notify(this.control, 0);
    }
    this.control = null;
    this.helperAlive = false;
    worker.ref(); // unref'd while it runs: ref'd until it exits, so an awaited dispose keeps the event loop alive
    await worker.terminate();
  }

  /** log(sum(exp(row))) of a row that lives in this arena (16-byte aligned), in wasm SIMD. */
  logSumExp(row: Float32Array): number {
    if (!this.owns(row) || row.byteOffset % 16 !== 0)
      throw new Error("WasmArena.logSumExp: row must be an aligned arena view");
    const n4 = row.length & ~3;
    let max = -Infinity;
    let sum = 0;
    if (n4 > 0) {
      this.kernels.maxSumExp(row.byteOffset, n4, this.resultPtr);
      const result = this.f32(this.resultPtr, 2);
      max = result[0];
      sum = result[1];
    }
    for (let i = n4; i < row.length; i++) {
      const v = row[i];
      if (v > max) {
        sum = sum * Math.exp(max - v) + 1;
        max = v;
      } else {
        sum += Math.exp(v - max);
      }
    }
    return max + Math.log(sum);
  }

  /** Bytes allocated so far. */
  get usedBytes(): number {
    return this.top;
  }

  /** Allocates `count` f32 values (64-byte aligned), growing the memory; returns the byte offset. */
  allocF32(count: number, what = "tensor"): number {
    const bytes = count * 4;
    const ptr = Math.ceil(this.top / 64) * 64; // (no bitwise ops: offsets pass 2^31)
    const end = ptr + bytes;
    if (end > MAX_PAGES * PAGE) {
      throw new Error(
        `CPU backend: ${what} needs ${(bytes / 2 ** 20).toFixed(0)} MiB more, past the 4 GiB WebAssembly memory ` +
          `limit (already ${(this.top / 2 ** 30).toFixed(2)} GiB used); use a smaller model or KV cache`,
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return ptr;
  }

  /** A view of `count` f32 values at byte offset `ptr`. */
  f32(ptr: number, count: number): Float32Array {
    const buffer = this.memory.buffer;
    this.views.add(buffer);
    return new Float32Array(buffer, ptr, count);
  }

  /** Whether `view` lies inside this arena's memory (so a kernel can read it in place). */
  owns(view: Float32Array): boolean {
    return this.views.has(view.buffer);
  }
}
