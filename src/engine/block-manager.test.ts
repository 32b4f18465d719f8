import assert from "node:assert/strict";
import { test } from "node:test";
import { BlockManager, type BlockOwner } from "./block-manager.js";

function owner(tokenIds: number[]): BlockOwner {
  return { tokenIds, blockTable: [], blockHashes: [], numComputedTokens: 0 };
}

/** Allocates a fresh sequence (with prefix hits), "computes" all of it, and registers its full blocks. */
function admitAndCompute(bm: BlockManager, seq: BlockOwner): number {
  const hits = bm.findCachedPrefix(seq);
  const computed = hits.length * bm.blockSize;
  assert.ok(bm.allocate(seq, seq.tokenIds.length - computed, hits));
  seq.numComputedTokens = seq.tokenIds.length;
  bm.cacheFullBlocks(seq);
  return hits.length;
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

test("allocation is all or nothing and every block comes back", () => {
  const bm = new BlockManager(4, 4);
  const a = owner(range(10));
  assert.ok(bm.allocate(a, 10));
  assert.equal(a.blockTable.length, 3);
  assert.equal(bm.numFreeBlocks, 1);
  assert.equal(bm.usage, 0.75);
  const b = owner(range(8, 100));
  assert.equal(bm.allocate(b, 8), false);
  assert.deepEqual(b.blockTable, []);
  assert.equal(bm.numFreeBlocks, 1);
  bm.free(a);
  assert.equal(bm.numFreeBlocks, 4);
  assert.equal(bm.usage, 0);
  assert.throws(() => bm.free({ ...a, blockTable: [0] }), /freed twice/);
});

test("growing one token at a time takes a new block only at block boundaries", () => {
  const bm = new BlockManager(8, 4);
  const a = owner(range(4));
  assert.ok(bm.allocate(a, 4));
  a.numComputedTokens = 4;
  assert.ok(bm.allocate(a, 1));
  assert.equal(a.blockTable.length, 2);
  a.numComputedTokens = 5;
  assert.ok(bm.allocate(a, 1));
  assert.equal(a.blockTable.length, 2);
});

test("prefix hits share full blocks with reference counts; the last token is always computed", () => {
  const bm = new BlockManager(16, 4);
  const first = owner(range(10));
  assert.equal(admitAndCompute(bm, first), 0);
  const second = owner([...range(8), 50, 51, 52]);
  assert.equal(admitAndCompute(bm, second), 2);
  assert.deepEqual(second.blockTable.slice(0, 2), first.blockTable.slice(0, 2));
  // Exactly 8 tokens, all in full cached blocks: only the first block may be reused.
  const exact = owner(range(8));
  assert.equal(admitAndCompute(bm, exact), 1);
  bm.free(first);
  // The shared blocks 0 and 1 are still held by the others; only first's own tail came back.
  assert.equal(bm.numFreeBlocks, 16 - 2 - 1 - 1);
  bm.free(second);
  bm.free(exact);
  assert.equal(bm.numFreeBlocks, 16);
  // Freed but cached: a new sequence with the prefix still hits.
  assert.equal(admitAndCompute(bm, owner([...range(8), 7])), 2);
});

test("a different earlier block breaks the chain (hashes are chained)", () => {
  const bm = new BlockManager(16, 4);
  admitAndCompute(bm, owner(range(9)));
  assert.equal(admitAndCompute(bm, owner([99, 1, 2, 3, 4, 5, 6, 7, 8])), 0);
});

test("free cached blocks are evicted least recently freed first", () => {
  const bm = new BlockManager(4, 4);
  const a = owner(range(5)); // 1 full block + 1 partial
  admitAndCompute(bm, a);
  bm.free(a);
  const b = owner(range(5, 100));
  admitAndCompute(bm, b);
  bm.free(b);
  // 4 free blocks, 2 of them cached (a's and b's first blocks); taking 3 evicts the oldest free ones.
  const c = owner(range(12, 200));
  admitAndCompute(bm, c);
  bm.free(c);
  assert.equal(admitAndCompute(bm, owner(range(5))), 0, "a's block was evicted first");
  const bm2 = new BlockManager(4, 4);
  const d = owner(range(5));
  admitAndCompute(bm2, d);
  bm2.free(d);
  const e = owner(range(9, 300)); // takes 3 blocks: the never-used one and d's tail before d's head
  admitAndCompute(bm2, e);
  bm2.free(e);
  assert.equal(admitAndCompute(bm2, owner(range(5))), 1, "d's head block outlived its tail");
});

test("prefix caching off: no hits", () => {
  const bm = new BlockManager(16, 4, false);
  admitAndCompute(bm, owner(range(10)));
  assert.equal(admitAndCompute(bm, owner(range(10))), 0);
});
