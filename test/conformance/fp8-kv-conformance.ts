/**
 * The FP8 KV cache case of the conformance suite (--kv-cache-dtype fp8_e4m3, per-tensor scale 1.0): a backend
 * with an FP8 cache must give the greedy tokens and the logits of the reference backend with an FP8 cache (the
 * CPU backend emulates the same E4M3 rounding), and its logits must move away from the fp16-KV ones (the cache
 * really is FP8) while staying close to them.
 */
import assert from "node:assert/strict";
import type { StepBatch } from "../../src/backend/backend.js";
import { type DrivenSequence, StepBuilder } from "./step-builder.js";

/** What one backend + cache dtype gives on the probe prompts. */
export interface Fp8Probe {
  /** (prompts) greedy continuations, all prompts batched. */
  tokens: number[][];
  /** (vocab) logits after prompt 0's prefill (prefill attention over the cache). */
  prefill: Float32Array;
  /** (vocab) logits of the decode step after it, on prompt 0 + its greedy token (decode attention). */
  decode: Float32Array;
}

interface ProbeTarget {
  backend: { step(batch: StepBatch): Promise<{ tokenIds: Int32Array; logits?: Float32Array }> };
  layout: { numBlocks: number };
}

export async function probeFp8(
  loaded: ProbeTarget,
  prompts: number[][],
  maxNew: number,
  blockSize: number,
  greedy: (prompts: number[][], maxNew: number) => Promise<number[][]>,
): Promise<Fp8Probe> {
  const tokens = await greedy(prompts, maxNew);
  const builder = new StepBuilder(blockSize, loaded.layout.numBlocks);
  const seq: DrivenSequence = builder.addSequence(prompts[0]);
  const logitsOf = async (): Promise<Float32Array> => {
    const batch = builder.build([{ seq }]);
    batch.returnLogits = true;
    const result = await loaded.backend.step(batch);
    assert.ok(result.logits !== undefined, "returnLogits gave no logits");
    seq.tokens.push(result.tokenIds[0]);
    return Float32Array.from(result.logits);
  };
  const prefill = await logitsOf();
  const decode = await logitsOf();
  builder.release(seq);
  return { tokens, prefill, decode };
}

/** max |got - want| / max |want|. */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return maxDiff / maxRef;
}

/** Tolerances: CUDA vs CPU with the same FP8 cache (fp16 vs f32 arithmetic, a rounding boundary now and then). */
export const FP8_VS_REFERENCE = 2e-2;
/** FP8 vs fp16 KV on one backend: the logits must change (above) and stay near (below). */
export const FP8_MOVES_AT_LEAST = 1e-4;
export const FP8_STAYS_WITHIN = 0.15;

/** The checks on one model; `reference` is the reference backend's FP8 probe (absent on the CPU itself). */
export function checkFp8Probe(model: string, fp8: Fp8Probe, fp16Kv: Fp8Probe, reference?: Fp8Probe): void {
  for (const [what, got, auto] of [
    ["prefill", fp8.prefill, fp16Kv.prefill],
    ["decode", fp8.decode, fp16Kv.decode],
  ] as const) {
    const moved = relativeError(got, auto);
    assert.ok(
      moved >= FP8_MOVES_AT_LEAST,
      `${model} ${what}: fp8 logits equal the fp16-KV ones (relative ${moved}): the cache is not FP8`,
    );
    assert.ok(moved <= FP8_STAYS_WITHIN, `${model} ${what}: fp8 vs fp16 KV logits: relative ${moved}`);
  }
  if (reference === undefined) return;
  assert.deepEqual(fp8.tokens, reference.tokens, `${model}: greedy tokens with FP8 KV vs the reference's`);
  const prefillErr = relativeError(fp8.prefill, reference.prefill);
  const decodeErr = relativeError(fp8.decode, reference.decode);
  assert.ok(prefillErr <= FP8_VS_REFERENCE, `${model} prefill logits vs the reference (fp8): ${prefillErr}`);
  assert.ok(decodeErr <= FP8_VS_REFERENCE, `${model} decode logits vs the reference (fp8): ${decodeErr}`);
}
