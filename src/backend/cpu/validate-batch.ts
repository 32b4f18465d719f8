/**
 * Cheap checks of a StepBatch against the CPU backend's cache, so an engine bug gives an error naming the
 * field instead of silently reading or corrupting another sequence's KV.
 */
import type { StepBatch } from "../backend.js";
import type { KvCache } from "./cpu-model.js";

function fail(message: string): never {
  throw new Error(`CPU backend: invalid StepBatch: ${message}`);
}

export function validateStepBatch(batch: StepBatch, kv: KvCache, vocabSize: number): void {
  const {
    numSeqs,
    tokenIds,
    positions,
    queryStarts,
    contextLens,
    blockTables,
    slotMapping,
    maxBlocksPerSeq,
  } = batch;
  const numTokens = tokenIds.length;
  if (queryStarts.length !== numSeqs + 1)
    fail(`queryStarts has ${queryStarts.length} entries, expected numSeqs + 1 = ${numSeqs + 1}`);
  if (queryStarts[0] !== 0 || queryStarts[numSeqs] !== numTokens) {
    fail(
      `queryStarts must run from 0 to numTokens (${numTokens}), got ${queryStarts[0]}..${queryStarts[numSeqs]}`,
    );
  }
  if (positions.length !== numTokens)
    fail(`positions has ${positions.length} entries, expected ${numTokens}`);
  if (slotMapping.length !== numTokens)
    fail(`slotMapping has ${slotMapping.length} entries, expected ${numTokens}`);
  if (contextLens.length < numSeqs || batch.sample.length < numSeqs)
    fail("contextLens and sample need numSeqs entries");
  if (blockTables.length < numSeqs * maxBlocksPerSeq) {
    fail(
      `blockTables has ${blockTables.length} entries, expected numSeqs x maxBlocksPerSeq = ${numSeqs * maxBlocksPerSeq}`,
    );
  }
  const numSlots = kv.numBlocks * kv.blockSize;
  for (let s = 0; s < numSeqs; s++) {
    const first = queryStarts[s];
    const end = queryStarts[s + 1];
    if (end < first) fail(`queryStarts decreases at sequence ${s}`);
    const len = contextLens[s];
    const blocks = Math.ceil(len / kv.blockSize);
    if (blocks > maxBlocksPerSeq)
      fail(`sequence ${s}: contextLen ${len} needs ${blocks} blocks > maxBlocksPerSeq ${maxBlocksPerSeq}`);
    for (let b = 0; b < blocks; b++) {
      const block = blockTables[s * maxBlocksPerSeq + b];
      if (!(block >= 0 && block < kv.numBlocks))
        fail(`sequence ${s}: blockTables entry ${b} = ${block}, expected 0..${kv.numBlocks - 1}`);
    }
    for (let t = first; t < end; t++) {
      const p = positions[t];
      if (!(p >= 0 && p < len))
        fail(`token ${t} (sequence ${s}): position ${p} is outside its context 0..${len - 1}`);
      const slot = slotMapping[t];
      const expected =
        blockTables[s * maxBlocksPerSeq + Math.floor(p / kv.blockSize)] * kv.blockSize + (p % kv.blockSize);
      if (slot !== expected)
        fail(`token ${t} (sequence ${s}, position ${p}): slotMapping ${slot}, block table says ${expected}`);
      if (slot >= numSlots) fail(`token ${t}: slot ${slot} past the cache (${numSlots} slots)`);
      const id = tokenIds[t];
      if (!(id >= 0 && id < vocabSize))
        fail(`token ${t}: id ${id} outside the vocabulary 0..${vocabSize - 1}`);
    }
  }
}
