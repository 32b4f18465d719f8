/**
 * The FP8 KV cache case of the conformance suite (--kv-cache-dtype fp8_e4m3, per-tensor scale 1.0): a backend
 * with an FP8 cache must give the greedy tokens and the logits of the reference backend with an FP8 cache (the
 * CPU backend emulates the same E4M3 rounding), and its logits must move away from the fp16-KV ones (the cache
 * really is FP8) while staying close to them. Greedy tokens may part only at a near tie of the reference: a K
 * value that the two backends' arithmetic puts on either side of an E4M3 rounding boundary moves by a whole
 * E4M3 step (up to 6.25%), which can flip a choice whose top two logprobs are within NEAR_TIE_NATS.
 */
import assert from "node:assert/strict";
import type { StepBatch } from "../../src/backend/backend.js";
import { maxRelativeError } from "./relative-error.js";
import { type DrivenSequence, StepBuilder } from "./step-builder.js";

/** What one backend + cache dtype gives on the probe prompts. */
export interface Fp8Probe {
  /** (prompts) greedy continuations, all prompts batched. */
  tokens: number[][];
  /** (prompts, tokens) top-1 minus top-2 logprob of each greedy choice, nats. */
  gaps: number[][];
  /** (vocab) logits after prompt 0's prefill (prefill attention over the cache). */
  prefill: Float32Array;
  /** (vocab) logits of the decode step after it, on prompt 0 + its greedy token (decode attention). */
  decode: Float32Array;
}

interface ProbeTarget {
  backend: {
    step(batch: StepBatch): Promise<{
      tokenIds: Int32Array;
      logits?: Float32Array;
      topLogprobs?: ({ tokenIds: Int32Array; logprobs: Float32Array } | null)[];
    }>;
  };
  layout: { numBlocks: number };
}

/** Greedy continuations of all prompts batched, with the top-2 gap of every choice. */
async function greedyWithGaps(
  loaded: ProbeTarget,
  prompts: number[][],
  maxNew: number,
  blockSize: number,
): Promise<{ tokens: number[][]; gaps: number[][] }> {
  const builder = new StepBuilder(blockSize, loaded.layout.numBlocks);
  const seqs = prompts.map((p) => builder.addSequence(p));
  const tokens = prompts.map(() => [] as number[]);
  const gaps = prompts.map(() => [] as number[]);
  for (let step = 0; step < maxNew; step++) {
    const result = await loaded.backend.step(
      builder.build(seqs.map((seq) => ({ seq, sampling: { logprobs: 2 } }))),
    );
    seqs.forEach((seq, i) => {
      const id = result.tokenIds[i];
      assert.ok(id >= 0, `sequence ${i} sampled no token`);
      const top = result.topLogprobs?.[i];
      assert.ok(top && top.logprobs.length >= 2, "logprobs: 2 gave no top-2 alternatives");
      seq.tokens.push(id);
      tokens[i].push(id);
      gaps[i].push(top.logprobs[0] - top.logprobs[1]);
    });
  }
  for (const seq of seqs) builder.release(seq);
  return { tokens, gaps };
}

export async function probeFp8(
  loaded: ProbeTarget,
  prompts: number[][],
  maxNew: number,
  blockSize: number,
): Promise<Fp8Probe> {
  const { tokens, gaps } = await greedyWithGaps(loaded, prompts, maxNew, blockSize);
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
  return { tokens, gaps, prefill, decode };
}

/** A reference choice whose top two logprobs are closer than this may come out the other way. */
export const NEAR_TIE_NATS = 0.05;

/**
 * Greedy tokens of `got` against `want`: each prompt equal, or equal up to a position where `want` chose between
 * a near tie (compared no further: the texts continue from different tokens). Returns where they parted.
 */
export function compareGreedy(model: string, got: Fp8Probe, want: Fp8Probe): string[] {
  const parted: string[] = [];
  want.tokens.forEach((ref, i) => {
    const k = ref.findIndex((id, j) => id !== got.tokens[i][j]);
    if (k < 0) return;
    const gap = want.gaps[i][k];
    assert.ok(
      gap < NEAR_TIE_NATS,
      `${model} prompt ${i}: greedy token ${k} is ${got.tokens[i][k]}, the reference's ${ref[k]}, whose top-2 ` +
        `gap of ${gap.toFixed(4)} nats is no near tie`,
    );
    parted.push(`prompt ${i} at token ${k} (reference gap ${gap.toFixed(4)} nats)`);
  });
  return parted;
}

/** Tolerances: CUDA vs CPU with the same FP8 cache (fp16 vs f32 arithmetic, a rounding boundary now and then). */
export const FP8_VS_REFERENCE = 2e-2;
/** FP8 vs fp16 KV on one backend: the logits must change (above) and stay near (below). */
export const FP8_MOVES_AT_LEAST = 1e-4;
export const FP8_STAYS_WITHIN = 0.15;

/**
 * The checks on one model; `reference` is the reference backend's FP8 probe (absent on the CPU itself). Returns
 * where the greedy tokens parted from the reference's at a near tie.
 */
export function checkFp8Probe(
  model: string,
  fp8: Fp8Probe,
  fp16Kv: Fp8Probe,
  reference?: Fp8Probe,
): string[] {
  for (const [what, got, auto] of [
    ["prefill", fp8.prefill, fp16Kv.prefill],
    ["decode", fp8.decode, fp16Kv.decode],
  ] as const) {
    const moved = maxRelativeError(got, auto);
    assert.ok(
      moved >= FP8_MOVES_AT_LEAST,
      `${model} ${what}: fp8 logits equal the fp16-KV ones (relative ${moved}): the cache is not FP8`,
    );
    assert.ok(moved <= FP8_STAYS_WITHIN, `${model} ${what}: fp8 vs fp16 KV logits: relative ${moved}`);
  }
  if (reference === undefined) return [];
  const parted = compareGreedy(model, fp8, reference);
  const prefillErr = maxRelativeError(fp8.prefill, reference.prefill);
  const decodeErr = maxRelativeError(fp8.decode, reference.decode);
  assert.ok(prefillErr <= FP8_VS_REFERENCE, `${model} prefill logits vs the reference (fp8): ${prefillErr}`);
  assert.ok(decodeErr <= FP8_VS_REFERENCE, `${model} decode logits vs the reference (fp8): ${decodeErr}`);
  return parted;
}
