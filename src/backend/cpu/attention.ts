/**
 * Causal attention with GQA for one sequence's query tokens against its keys/values, on the wasm matmul:
 * per KV head, the keys are gathered into packed panels (K^T), the group's query heads are stacked into one
 * matrix, S = Q K^T / sqrt(d) is masked (key c is visible to a query at position p iff c <= p), softmaxed,
 * and multiplied by V. The keys come either from the paged KV cache (the backend) or from dense K/V rows of
 * one block of tokens (the AWQ quantizer), through a `KvSource`.
 */
import { softmaxRowInPlace } from "./ops.js";
import type { Scratch } from "./scratch.js";
import { PANEL } from "./wasm-matmul.js";

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/** Where the keys/values of context positions 0..L-1 live. */
export interface KvSource {
  /** Element offset of the key (and value) vector of context position c, KV head g, in `keys` / `values`. */
  offset(c: number, g: number): number;
  keys: Float32Array;
  values: Float32Array;
}

/** Paged cache (numBlocks, blockSize, numKvHeads, headDim) read through one block-table row. */
export function pagedKvSource(
  keys: Float32Array, // (numBlocks, blockSize, numKvHeads, headDim)
  values: Float32Array, // (numBlocks, blockSize, numKvHeads, headDim)
  blockTables: Int32Array, // (numSeqs, maxBlocksPerSeq)
  rowStart: number,
  blockSize: number,
  shape: AttentionShape,
): KvSource {
  const kvDim = shape.numKvHeads * shape.headDim;
  return {
    keys,
    values,
    offset: (c, g) => {
      const block = blockTables[rowStart + Math.floor(c / blockSize)];
      return (block * blockSize + (c % blockSize)) * kvDim + g * shape.headDim;
    },
  };
}

/** Dense rows: position c of the sequence is row `firstRow + c` of keys / values (row stride `stride`). */
export function denseKvSource(
  keys: Float32Array, // (rows, stride)
  values: Float32Array, // (rows, stride)
  firstRow: number,
  stride: number,
  headDim: number,
): KvSource {
  return { keys, values, offset: (c, g) => (firstRow + c) * stride + g * headDim };
}

export interface AttentionQuery {
  q: Float32Array; // (tokens, qStride) rotated queries; heads at qColumn + h * headDim
  qStride: number;
  qColumn: number;
  /** Rows of this sequence in q / out. */
  firstRow: number;
  numRows: number;
  positions: Int32Array; // (tokens) position of each row
  /** Keys/values visible: context positions 0..contextLen-1. */
  contextLen: number;
  out: Float32Array; // (tokens, outStride) attention output, heads at h * headDim
  outStride: number;
  /** Added to offsets into kv.keys / kv.values (the column of K and V in a fused buffer). */
  keyColumn: number;
  valueColumn: number;
}

/**
 * Makes room for attention of up to `maxRows` query rows of one sequence over up to `maxContext` keys. Call it
 * before taking any view of the arena that must stay valid across attendSequence (growth detaches views).
 */
export function reserveAttention(
  scratch: Scratch,
  shape: AttentionShape,
  maxRows: number,
  maxContext: number,
): void {
  const d = shape.headDim;
  const Lpad = Math.ceil(maxContext / PANEL) * PANEL;
  const qRows = (shape.numHeads / shape.numKvHeads) * maxRows;
  scratch.reserve("attn.kt", Lpad * d);
  scratch.reserve("attn.v", Lpad * d);
  scratch.reserve("attn.q", qRows * d);
  scratch.reserve("attn.s", qRows * Lpad);
  scratch.reserve("attn.o", qRows * d);
}

/** Runs attention of one sequence's rows on scratch buffers made by reserveAttention (which it never grows). */
export function attendSequence(
  scratch: Scratch,
  shape: AttentionShape,
  query: AttentionQuery,
  kv: KvSource,
): void {
  const { numHeads, numKvHeads, headDim: d } = shape;
  const group = numHeads / numKvHeads;
  const n = query.numRows;
  const L = query.contextLen;
  const Lpad = Math.ceil(L / PANEL) * PANEL;
  const qRows = group * n;
  const kt = scratch.view("attn.kt", Lpad * d); // (Lpad / 8, d, 8) packed K^T
  const vp = scratch.view("attn.v", Lpad * d); // (d / 8, Lpad, 8) packed V
  const qs = scratch.view("attn.q", qRows * d); // (group * n, d) stacked query heads
  const s = scratch.view("attn.s", qRows * Lpad); // (group * n, Lpad) scores, then probabilities
  const o = scratch.view("attn.o", qRows * d); // (group * n, d)
  const arena = scratch.arena;
  const matmul = (x: number, w: number, y: number, M: number, K: number, N: number) =>
    arena.matmul(x, w, y, M, K, N);
  const scale = 1 / Math.sqrt(d);
  const { keys, values } = kv;
  kt.fill(0);
  vp.fill(0);
  for (let g = 0; g < numKvHeads; g++) {
    for (let c = 0; c < L; c++) {
      const off = kv.offset(c, g);
      const kOff = off + query.keyColumn;
      const vOff = off + query.valueColumn;
      const ktBase = Math.floor(c / PANEL) * d * PANEL + (c % PANEL);
      for (let i = 0; i < d; i++) kt[ktBase + i * PANEL] = keys[kOff + i];
      for (let p = 0; p < d / PANEL; p++) {
        const vBase = (p * Lpad + c) * PANEL;
        for (let j = 0; j < PANEL; j++) vp[vBase + j] = values[vOff + p * PANEL + j];
      }
    }
    for (let gi = 0; gi < group; gi++) {
      const head = g * group + gi;
      for (let t = 0; t < n; t++) {
        const src = (query.firstRow + t) * query.qStride + query.qColumn + head * d;
        const dst = (gi * n + t) * d;
        for (let i = 0; i < d; i++) qs[dst + i] = query.q[src + i] * scale;
      }
    }
    matmul(scratch.ptr("attn.q"), scratch.ptr("attn.kt"), scratch.ptr("attn.s"), qRows, d, Lpad);
    for (let gi = 0; gi < group; gi++) {
      for (let t = 0; t < n; t++) {
        const visible = Math.min(query.positions[query.firstRow + t] + 1, L);
        softmaxRowInPlace(s, (gi * n + t) * Lpad, visible, Lpad);
      }
    }
    matmul(scratch.ptr("attn.s"), scratch.ptr("attn.v"), scratch.ptr("attn.o"), qRows, Lpad, d);
    for (let gi = 0; gi < group; gi++) {
      const head = g * group + gi;
      for (let t = 0; t < n; t++) {
        const src = (gi * n + t) * d;
        const dst = (query.firstRow + t) * query.outStride + head * d;
        for (let i = 0; i < d; i++) query.out[dst + i] = o[src + i];
      }
    }
  }
}
