/**
 * One WebAssembly memory plus the kernel instance that computes on it. Everything a kernel touches (weights,
 * activations, scratch) is allocated here by a bump allocator; a model owns one arena and drops it on dispose.
 * Growing the memory detaches earlier ArrayBuffer views, so callers keep byte offsets (`ptr`) and ask for fresh
 * views (`f32(ptr, len)`) after allocating.
 */
import { type KernelExports, kernelModuleBytes } from "./wasm-matmul.js";

const PAGE = 65536;
/** wasm32 addresses at most 4 GiB. */
const MAX_PAGES = 65536;

let compiled: WebAssembly.Module | null = null;

function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(kernelModuleBytes({ shared: false, maxPages: MAX_PAGES }));
  return compiled;
}

export class WasmArena {
  readonly memory: WebAssembly.Memory;
  readonly kernels: KernelExports;
  private top = 64; // keep 0 as an obviously invalid pointer
  private readonly resultPtr: number; // 2 f32 results of maxSumExp

  constructor(initialBytes = 1 << 20) {
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(initialBytes / PAGE), maximum: MAX_PAGES });
    const instance = new WebAssembly.Instance(kernelModule(), { env: { memory: this.memory } });
    this.kernels = instance.exports as unknown as KernelExports;
    this.resultPtr = this.allocF32(2, "kernel results");
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

  /** A fresh view of `count` f32 values at byte offset `ptr`. */
  f32(ptr: number, count: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, count);
  }

  /** Whether `view` lies inside this arena's memory (so a kernel can read it in place). */
  owns(view: Float32Array): boolean {
    return view.buffer === this.memory.buffer;
  }
}
