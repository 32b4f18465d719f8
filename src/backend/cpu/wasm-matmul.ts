/**
 * The f32 matmul kernel of the CPU backend, assembled as WebAssembly SIMD (f32x4):
 *
 *   matmul(x, w, y, M, K, N):  y (M, N) = x (M, K) @ W (K, N)
 *
 * x and y are row-major; W is "panel packed": (N / 8, K, 8), i.e. for every group of 8 output columns the K x 8
 * slice is contiguous, so the inner loop streams one panel (8 KiB for K = 256) that stays in L1 while all row
 * tiles of x pass over it. N must be a multiple of 8 (callers pad). Register tile: TILE_ROWS rows x 8 columns
 * (2 x f32x4 accumulators per row), then rows one at a time for the remainder.
 * All pointers are byte offsets into the module's imported memory. Every address is 4-byte aligned at least.
 */

import { emitModule, type FunctionDef, I32, op, V128, type ValType } from "./wasm-emitter.js";
import { maxSumExpFunction } from "./wasm-softmax.js";

/** Rows per register tile: 4 rows x 2 vectors = 8 accumulators + 2 weight vectors + 1 splat fit the 16 xmm. */
export const TILE_ROWS = 4;
/** Columns of one packed panel. */
export const PANEL = 8;

function matmulFunction(tileRows: number): FunctionDef {
  const [x, w, y, M, K, N] = [0, 1, 2, 3, 4, 5];
  let next = 6;
  const nb = next++;
  const wp = next++;
  const m = next++;
  const rowK = next++;
  const rowN = next++;
  const wq = next++;
  const kEnd = next++;
  const yp = next++;
  const xr = Array.from({ length: tileRows }, () => next++); // row pointers of the tile
  const numI32 = next - 6;
  const acc = Array.from({ length: tileRows * 2 }, () => next++);
  const w0 = next++;
  const w1 = next++;
  const s = next++;
  const locals: ValType[] = [
    ...new Array<ValType>(numI32).fill(I32),
    ...new Array<ValType>(tileRows * 2 + 3).fill(V128),
  ];

  /** Body of a tile of `rows` rows starting at row m (rows <= tileRows). */
  const tile = (rows: number): number[] => {
    const b: number[] = [];
    // xr[0] = x + m * rowK; xr[r] = xr[r-1] + rowK
    b.push(...op.get(x), ...op.get(m), ...op.get(rowK), ...op.i32Mul(), ...op.i32Add(), ...op.set(xr[0]));
    for (let r = 1; r < rows; r++)
      b.push(...op.get(xr[r - 1]), ...op.get(rowK), ...op.i32Add(), ...op.set(xr[r]));
    for (let i = 0; i < rows * 2; i++) b.push(...op.v128Zero(), ...op.set(acc[i]));
    b.push(...op.get(wp), ...op.set(wq));
    b.push(...op.get(xr[0]), ...op.get(rowK), ...op.i32Add(), ...op.set(kEnd));
    b.push(...op.loop());
    b.push(...op.get(wq), ...op.v128Load(0), ...op.set(w0));
    b.push(...op.get(wq), ...op.v128Load(16), ...op.set(w1));
    for (let r = 0; r < rows; r++) {
      b.push(...op.get(xr[r]), ...op.f32Load(0), ...op.f32x4Splat(), ...op.set(s));
      b.push(
        ...op.get(acc[2 * r]),
        ...op.get(s),
        ...op.get(w0),
        ...op.f32x4Mul(),
        ...op.f32x4Add(),
        ...op.set(acc[2 * r]),
      );
      b.push(...op.get(acc[2 * r + 1]), ...op.get(s), ...op.get(w1), ...op.f32x4Mul(), ...op.f32x4Add());
      b.push(...op.set(acc[2 * r + 1]));
      b.push(...op.get(xr[r]), ...op.i32Const(4), ...op.i32Add(), ...op.set(xr[r]));
    }
    b.push(...op.get(wq), ...op.i32Const(32), ...op.i32Add(), ...op.set(wq));
    b.push(...op.get(xr[0]), ...op.get(kEnd), ...op.i32LtU(), ...op.brIf(0));
    b.push(...op.end());
    // yp = y + m * rowN + nb * 4
    b.push(...op.get(y), ...op.get(m), ...op.get(rowN), ...op.i32Mul(), ...op.i32Add());
    b.push(...op.get(nb), ...op.i32Const(2), ...op.i32Shl(), ...op.i32Add(), ...op.set(yp));
    for (let r = 0; r < rows; r++) {
      b.push(...op.get(yp), ...op.get(acc[2 * r]), ...op.v128Store(0));
      b.push(...op.get(yp), ...op.get(acc[2 * r + 1]), ...op.v128Store(16));
      if (r + 1 < rows) b.push(...op.get(yp), ...op.get(rowN), ...op.i32Add(), ...op.set(yp));
    }
    b.push(...op.get(m), ...op.i32Const(rows), ...op.i32Add(), ...op.set(m));
    return b;
  };

  const body: number[] = [];
  body.push(...op.get(K), ...op.i32Const(2), ...op.i32Shl(), ...op.set(rowK));
  body.push(...op.get(N), ...op.i32Const(2), ...op.i32Shl(), ...op.set(rowN));
  body.push(...op.i32Const(0), ...op.set(nb), ...op.get(w), ...op.set(wp));
  body.push(...op.block(), ...op.loop()); // over panels
  body.push(...op.get(nb), ...op.get(N), ...op.i32GeS(), ...op.brIf(1));
  body.push(...op.i32Const(0), ...op.set(m));
  // Full tiles while M - m >= tileRows.
  body.push(...op.block(), ...op.loop());
  body.push(
    ...op.get(M),
    ...op.get(m),
    ...op.i32Sub(),
    ...op.i32Const(tileRows),
    ...op.i32LtS(),
    ...op.brIf(1),
  );
  body.push(...tile(tileRows), ...op.br(0));
  body.push(...op.end(), ...op.end());
  // Remaining rows one by one.
  body.push(...op.block(), ...op.loop());
  body.push(...op.get(m), ...op.get(M), ...op.i32GeS(), ...op.brIf(1));
  body.push(...tile(1), ...op.br(0));
  body.push(...op.end(), ...op.end());
  body.push(...op.get(nb), ...op.i32Const(PANEL), ...op.i32Add(), ...op.set(nb));
  body.push(...op.get(wp), ...op.get(rowK), ...op.i32Const(3), ...op.i32Shl(), ...op.i32Add(), ...op.set(wp));
  body.push(...op.br(0), ...op.end(), ...op.end());
  return { name: "matmul", params: [I32, I32, I32, I32, I32, I32], locals, body };
}

/** The kernel module's bytes (imports env.memory). */
export function kernelModuleBytes(memory: { shared: boolean; maxPages: number }): Uint8Array<ArrayBuffer> {
  return emitModule([matmulFunction(TILE_ROWS), maxSumExpFunction()], memory);
}

export interface KernelExports {
  matmul(x: number, w: number, y: number, M: number, K: number, N: number): void;
  /** out[0] = max of x[0..n), out[1] = sum of exp(x - max); n a multiple of 4 (wasm-softmax.ts). */
  maxSumExp(x: number, n: number, out: number): void;
}

/** Packs W given as (K, N) row-major (the "in x out" orientation) into panels (ceil(N/8), K, 8), zero padded. */
export function packPanelsFromKN(src: Float32Array, K: number, N: number, dst: Float32Array): void {
  const panels = Math.ceil(N / PANEL);
  for (let p = 0; p < panels; p++) {
    const base = p * K * PANEL;
    const cols = Math.min(PANEL, N - p * PANEL);
    for (let k = 0; k < K; k++) {
      const s = k * N + p * PANEL;
      const d = base + k * PANEL;
      for (let j = 0; j < cols; j++) dst[d + j] = src[s + j];
      for (let j = cols; j < PANEL; j++) dst[d + j] = 0;
    }
  }
}

/** Packs W given as (N, K) row-major (PyTorch Linear weight: out x in) into panels (ceil(N/8), K, 8). */
export function packPanelsFromNK(src: Float32Array, N: number, K: number, dst: Float32Array): void {
  const panels = Math.ceil(N / PANEL);
  for (let p = 0; p < panels; p++) {
    const base = p * K * PANEL;
    for (let j = 0; j < PANEL; j++) {
      const n = p * PANEL + j;
      if (n >= N) {
        for (let k = 0; k < K; k++) dst[base + k * PANEL + j] = 0;
        continue;
      }
      const s = n * K;
      for (let k = 0; k < K; k++) dst[base + k * PANEL + j] = src[s + k];
    }
  }
}

/**
 * Dequantizes an AutoAWQ GEMM linear (see model/awq.ts) straight into panels (out / 8, in, 8): packed int32
 * column c of qweight holds exactly the 8 output columns of panel c, so one pass over the packed words writes
 * each panel row without an (in, out) f32 intermediate. Equals packPanelsFromKN(dequantizeAwq(...)).
 */
export function dequantizeAwqToPanels(
  qweight: Int32Array, // (in, out / 8)
  qzeros: Int32Array, // (in / groupSize, out / 8)
  scales: Float32Array, // (in / groupSize, out)
  inFeatures: number,
  outFeatures: number,
  groupSize: number,
  nibbleColumn: readonly number[], // output column (within 8) held by nibble i: AWQ_ORDER
  dst: Float32Array, // (out / 8, in, 8)
): void {
  const packs = outFeatures / PANEL;
  for (let p = 0; p < packs; p++) {
    const panelBase = p * inFeatures * PANEL;
    for (let k = 0; k < inFeatures; k++) {
      const g = Math.floor(k / groupSize);
      const word = qweight[k * packs + p];
      const zword = qzeros[g * packs + p];
      const scaleBase = g * outFeatures + p * PANEL;
      const d = panelBase + k * PANEL;
      for (let i = 0; i < 8; i++) {
        const col = nibbleColumn[i];
        const shift = 4 * i;
        dst[d + col] = (((word >>> shift) & 15) - ((zword >>> shift) & 15)) * scales[scaleBase + col];
      }
    }
  }
}
