import assert from "node:assert/strict";
import { test } from "node:test";
import { AWQ_ORDER, dequantizeAwq } from "../../model/awq.js";
import { f16ToF32Array, f32ToF16 } from "../../model/half.js";
import { WasmArena } from "./wasm-arena.js";
import { dequantizeAwqToPanels, PANEL, packPanelsFromKN, packPanelsFromNK } from "./wasm-matmul.js";

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

test("matmul equals a naive fp64 product for tile remainders and padded columns", () => {
  const arena = new WasmArena();
  for (const [M, K, N] of [
    [1, 1, 8],
    [3, 5, 13],
    [4, 16, 8],
    [9, 33, 70],
    [17, 64, 32002 % 97],
  ]) {
    const Np = Math.ceil(N / PANEL) * PANEL;
    const x = random(M * K, M + K);
    const wOutIn = random(N * K, N); // (N, K)
    const xp = arena.allocF32(M * K);
    const wp = arena.allocF32(Np * K);
    const wp2 = arena.allocF32(Np * K);
    const yp = arena.allocF32(M * Np);
    arena.f32(xp, M * K).set(x);
    packPanelsFromNK(wOutIn, N, K, arena.f32(wp, Np * K));
    const wInOut = new Float32Array(K * N); // (K, N)
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wInOut[k * N + n] = wOutIn[n * K + k];
    packPanelsFromKN(wInOut, K, N, arena.f32(wp2, Np * K));
    assert.deepEqual(arena.f32(wp, Np * K), arena.f32(wp2, Np * K), "both packings agree");
    arena.kernels.matmul(xp, wp, yp, M, K, Np);
    const y = arena.f32(yp, M * Np);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < Np; n++) {
        let s = 0;
        if (n < N) for (let k = 0; k < K; k++) s += x[m * K + k] * wOutIn[n * K + k];
        assert.ok(
          Math.abs(y[m * Np + n] - s) < 1e-5 * (1 + Math.abs(s)),
          `M${M} K${K} N${N} at (${m}, ${n})`,
        );
      }
    }
  }
});

test("logSumExp in wasm matches fp64 (including -Infinity and a scalar tail)", () => {
  const arena = new WasmArena();
  for (const n of [4, 7, 1001, 32002]) {
    const ptr = arena.allocF32(n);
    const row = arena.f32(ptr, n);
    row.set(random(n, n).map((v) => v * 20));
    row[0] = -Infinity;
    row[n - 1] = 25;
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const want = max + Math.log(sum);
    assert.ok(Math.abs(arena.logSumExp(row) - want) < 1e-5, `n = ${n}`);
  }
});

test("matmul split between this thread and the helper worker equals the single-thread result", async () => {
  const split = new WasmArena(1 << 20, 2);
  const single = new WasmArena(1 << 20, 1);
  const started = Date.now();
  while (!split.helperReady) {
    assert.ok(Date.now() - started < 20000, "the helper worker did not start");
    await new Promise((r) => setTimeout(r, 10));
  }
  const [M, K, N] = [67, 256, 512];
  const x = random(M * K, 7);
  const w = random(N * K, 8);
  const results = [split, single].map((arena) => {
    const xp = arena.allocF32(M * K);
    const wp = arena.allocF32(N * K);
    const yp = arena.allocF32(M * N);
    arena.f32(xp, M * K).set(x);
    packPanelsFromNK(w, N, K, arena.f32(wp, N * K));
    arena.matmul(xp, wp, yp, M, K, N);
    return arena.f32(yp, M * N);
  });
  assert.deepEqual(results[0], results[1]);
  await split.dispose();
  await single.dispose();
});

test("AWQ straight to panels equals dequantizeAwq (model/awq.ts) then packing", () => {
  const [inF, outF, g] = [256, 48, 128];
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  };
  const qweight = Int32Array.from({ length: (inF * outF) / 8 }, () => next() | 0);
  const qzeros = Int32Array.from({ length: ((inF / g) * outF) / 8 }, () => next() | 0);
  const scaleBits = Uint16Array.from({ length: (inF / g) * outF }, () =>
    f32ToF16(0.001 + (next() % 1000) / 1e5),
  );
  const expected = new Float32Array(inF * outF);
  packPanelsFromKN(dequantizeAwq({ qweight, qzeros, scales: scaleBits }, inF, outF, g), inF, outF, expected);
  const got = new Float32Array(inF * outF);
  dequantizeAwqToPanels(qweight, qzeros, f16ToF32Array(scaleBits), inF, outF, g, AWQ_ORDER, got);
  assert.deepEqual(got, expected);
});
