/**
 * Worker thread of the matmul pool (matmul-pool.ts): instantiates the kernel module on the arena's shared
 * memory and runs the row ranges the main thread hands it through a control block of Int32s in that memory:
 *   [state, x, w, y, M, K, N]   state: READY (waiting), JOB (args written), DONE (result written)
 * Pointers above 2^31 travel as their Int32 bit patterns, which is what the kernel's i32 parameters take.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { KernelExports } from "./wasm-matmul.js";

export const STATE_READY = 0;
export const STATE_JOB = 1;
export const STATE_DONE = 2;
export const STATE_STOP = 3;
/** Int32 slots of the control block. */
export const CONTROL_SLOTS = 8;

interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  controlPtr: number;
}

function run(init: WorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const kernels = instance.exports as unknown as KernelExports;
  const control = new Int32Array(init.memory.buffer, init.controlPtr, CONTROL_SLOTS);
  Atomics.store(control, 0, STATE_READY);
  Atomics.notify(control, 0);
  for (;;) {
    Atomics.wait(control, 0, STATE_READY);
    const state = Atomics.load(control, 0);
    if (state === STATE_STOP) return;
    if (state !== STATE_JOB) continue;
    kernels.matmul(control[1], control[2], control[3], control[4], control[5], control[6]);
    Atomics.store(control, 0, STATE_DONE);
    Atomics.notify(control, 0);
    // wait until the main thread has taken the result and set READY again
    while (Atomics.load(control, 0) === STATE_DONE) Atomics.wait(control, 0, STATE_DONE);
  }
}

if (parentPort !== null && workerData !== undefined) run(workerData as WorkerInit);
