/**
 * Named, growable scratch buffers inside a WasmArena. A buffer is reallocated (at the next power of two) only
 * when a call needs more than it holds, so steady-state steps allocate nothing. Because growing the arena
 * detaches views, callers reserve every buffer they need first (`reserve`) and take views (`view`) after.
 */
import type { WasmArena } from "./wasm-arena.js";

export class Scratch {
  private readonly buffers = new Map<string, { ptr: number; capacity: number }>();

  constructor(readonly arena: WasmArena) {}

  /** Makes buffer `name` hold at least `count` f32 values; returns its byte offset. */
  reserve(name: string, count: number): number {
    const have = this.buffers.get(name);
    if (have !== undefined && have.capacity >= count) return have.ptr;
    const capacity = 2 ** Math.ceil(Math.log2(Math.max(count, 1024)));
    const ptr = this.arena.allocF32(capacity, `scratch buffer ${name}`);
    this.buffers.set(name, { ptr, capacity });
    return ptr;
  }

  /** Byte offset of a reserved buffer. */
  ptr(name: string): number {
    const have = this.buffers.get(name);
    if (have === undefined) throw new Error(`CPU backend: scratch buffer ${name} used before reserve()`);
    return have.ptr;
  }

  /** A fresh view of the first `count` values of a reserved buffer (which must hold them). */
  view(name: string, count: number): Float32Array {
    const have = this.buffers.get(name);
    if (have === undefined || have.capacity < count) {
      throw new Error(
        `CPU backend: scratch buffer ${name} viewed for ${count} values before reserve() made room`,
      );
    }
    return this.arena.f32(have.ptr, count);
  }
}
