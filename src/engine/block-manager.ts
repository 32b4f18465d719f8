/**
 * Paged KV cache bookkeeping (nano-vllm's BlockManager, vLLM v1's KVCacheManager): fixed-size blocks,
 * a free pool, reference counts, and prefix caching by chained hashes of FULL blocks. A block whose last
 * user finished keeps its hash and stays findable until it is handed out again: free blocks are reused
 * least recently freed first, so cached prefixes survive as long as the pool allows.
 */
import { createHash } from "node:crypto";

/** What the block manager needs to know about a sequence. */
export interface BlockOwner {
  /** Every token of the sequence (prompt + output). */
  readonly tokenIds: readonly number[];
  /** Physical block ids, in order. */
  blockTable: number[];
  /** Chained hashes of the sequence's first full blocks (prefix caching on), filled as blocks fill up. */
  blockHashes: string[];
  /** Tokens whose KV is written (or came from the prefix cache). */
  numComputedTokens: number;
}

interface Block {
  readonly id: number;
  refCount: number;
  /** Chained hash of its (full) content, or null while not cached. */
  hash: string | null;
}

export class BlockManager {
  private readonly blocks: Block[]; // (numBlocks)
  /** Blocks with refCount 0, least recently freed first (Map keeps insertion order). */
  private readonly freeBlocks = new Map<number, Block>();
  /** Hash -> block holding that content (in use or free-but-cached). */
  private readonly cachedBlocks = new Map<string, Block>();

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly enablePrefixCaching = true,
  ) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new Error(`numBlocks must be a positive integer, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new Error(`blockSize must be a positive integer, got ${blockSize}`);
    this.blocks = Array.from({ length: numBlocks }, (_, id) => ({ id, refCount: 0, hash: null }));
    for (const block of this.blocks) this.freeBlocks.set(block.id, block);
  }

  /** Blocks not held by any sequence (cached-but-free ones included: they can be reused). */
  get numFreeBlocks(): number {
    return this.freeBlocks.size;
  }

  /** How many of these blocks some sequence holds (taking them costs the free pool nothing). */
  numHeld(blockIds: readonly number[]): number {
    let held = 0;
    for (const id of blockIds) if (this.blocks[id]!.refCount > 0) held++;
    return held;
  }

  /** Fraction of blocks held by sequences, 0..1. */
  get usage(): number {
    return 1 - this.freeBlocks.size / this.numBlocks;
  }

  /** Blocks needed to hold `numTokens` tokens. */
  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * For a sequence with nothing computed yet: the cached blocks that hold its longest cached prefix of full
   * blocks, leaving at least one token to compute (its logits are needed to sample).
   */
  findCachedPrefix(seq: BlockOwner): number[] {
    if (!this.enablePrefixCaching) return [];
    const hits: number[] = [];
    const maxBlocks = Math.floor((seq.tokenIds.length - 1) / this.blockSize);
    let parent = "";
    for (let i = 0; i < maxBlocks; i++) {
      const hash = seq.blockHashes[i] ?? hashBlock(parent, seq.tokenIds, i * this.blockSize, this.blockSize);
      const block = this.cachedBlocks.get(hash);
      if (block === undefined) break;
      hits.push(block.id);
      parent = hash;
    }
    return hits;
  }

  /**
   * Makes room for `numNewTokens` more tokens of `seq` (after `cachedBlockIds`, a prefix found by
   * findCachedPrefix for a sequence holding no blocks, is taken). All or nothing: returns false, changing nothing,
   * when the free pool is too small.
   */
  allocate(seq: BlockOwner, numNewTokens: number, cachedBlockIds: readonly number[] = NO_BLOCKS): boolean {
    const tableLength = seq.blockTable.length + cachedBlockIds.length;
    const computed =
      cachedBlockIds.length > 0 ? cachedBlockIds.length * this.blockSize : seq.numComputedTokens;
    const needed = Math.max(0, this.blocksFor(computed + numNewTokens) - tableLength);
    let cachedButFree = 0;
    for (const id of cachedBlockIds) if (this.blocks[id]!.refCount === 0) cachedButFree++;
    if (needed + cachedButFree > this.freeBlocks.size) return false;

    for (const id of cachedBlockIds) {
      const block = this.blocks[id]!;
      if (block.refCount === 0) this.freeBlocks.delete(id);
      block.refCount++;
      seq.blockTable.push(id);
      seq.blockHashes.push(block.hash!);
    }
    if (cachedBlockIds.length > 0) seq.numComputedTokens = cachedBlockIds.length * this.blockSize;
    for (let i = 0; i < needed; i++) seq.blockTable.push(this.takeFreeBlock().id);
    return true;
  }

  /**
   * Records the hashes of blocks that became full (all of their tokens computed), so later sequences with
   * the same prefix can share them. Call after each step with the sequence's new numComputedTokens.
   */
  cacheFullBlocks(seq: BlockOwner): void {
    if (!this.enablePrefixCaching) return;
    const numFull = Math.floor(seq.numComputedTokens / this.blockSize);
    for (let i = seq.blockHashes.length; i < numFull; i++) {
      const parent = i === 0 ? "" : seq.blockHashes[i - 1]!;
      const hash = hashBlock(parent, seq.tokenIds, i * this.blockSize, this.blockSize);
      seq.blockHashes.push(hash);
      const block = this.blocks[seq.blockTable[i]!]!;
      // The same content may already sit in another block; keep the first one findable.
      if (block.hash === null && !this.cachedBlocks.has(hash)) {
        block.hash = hash;
        this.cachedBlocks.set(hash, block);
      }
    }
  }

  /** Gives every block of `seq` back (tail first, so shared prefixes outlive the tails in the cache). */
  free(seq: BlockOwner): void {
    for (let i = seq.blockTable.length - 1; i >= 0; i--) {
      const block = this.blocks[seq.blockTable[i]!]!;
      if (block.refCount <= 0) throw new Error(`block ${block.id} freed twice`);
      block.refCount--;
      if (block.refCount === 0) this.freeBlocks.set(block.id, block);
    }
    seq.blockTable = [];
    seq.blockHashes = [];
    seq.numComputedTokens = 0;
  }

  /** Drops every cached hash (e.g. after the backend's KV cache was lost). */
  resetPrefixCache(): void {
    for (const block of this.cachedBlocks.values()) block.hash = null;
    this.cachedBlocks.clear();
  }

  private takeFreeBlock(): Block {
    const first = this.freeBlocks.values().next();
    if (first.done) throw new Error("no free KV block (allocate() checks this first)");
    const block = first.value;
    this.freeBlocks.delete(block.id);
    if (block.hash !== null) {
      // Evict: its old content is about to be overwritten.
      if (this.cachedBlocks.get(block.hash) === block) this.cachedBlocks.delete(block.hash);
      block.hash = null;
    }
    block.refCount = 1;
    return block;
  }
}

const NO_BLOCKS: readonly number[] = Object.freeze([]);

/** Chained hash of block `index`: covers its tokens and, through `parent`, every token before them. */
function hashBlock(parent: string, tokenIds: readonly number[], start: number, blockSize: number): string {
  const tokens = Int32Array.from(tokenIds.slice(start, start + blockSize)); // (blockSize)
  return createHash("sha256").update(parent).update(new Uint8Array(tokens.buffer)).digest("base64");
}
