import assert from "node:assert/strict";
import { test } from "node:test";
import { applyMinP, applyPenalties, applyTopK, applyTopP, logSumExp, sampleToken } from "./sampler.js";
import { buildSamplingArrays, type SequenceSampling } from "./sampler-arrays.js";

/** Deterministic pseudo-random logits (an LCG), so failures reproduce. */
function randomLogits(n: number, seed: number, scale = 4): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 2 ** 32 - 0.5) * scale;
  }
  return out;
}

function sample(logits: Float32Array, params: SequenceSampling) {
  return sampleToken(Float32Array.from(logits), buildSamplingArrays([params]), 0);
}

function softmax(logits: Float32Array): Float64Array {
  const lse = logSumExp(logits);
  return Float64Array.from(logits, (l) => Math.exp(l - lse));
}

test("greedy (temperature 0) is the argmax, lowest id on ties", () => {
  const logits = randomLogits(1000, 1);
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  assert.equal(sample(logits, { temperature: 0 }).tokenId, best);
  const tied = new Float32Array([1, 5, 5, 2]);
  assert.equal(sample(tied, {}).tokenId, 1);
});

test("top-k never leaves the k most likely tokens", () => {
  const logits = randomLogits(500, 2, 2);
  const top5 = new Set([...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 5));
  const seen = new Set<number>();
  for (let seed = 0; seed < 400; seed++) {
    const t = sample(logits, { temperature: 1.5, topK: 5, seed }).tokenId;
    assert.ok(top5.has(t), `token ${t} is outside the top 5`);
    seen.add(t);
  }
  assert.equal(seen.size, 5, "all five should be drawn at temperature 1.5 over 400 seeds");
});

test("top-p keeps the smallest set of most likely tokens whose mass reaches p", () => {
  const logits = randomLogits(200, 3, 6);
  const probs = softmax(logits);
  const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]);
  for (const p of [0.1, 0.5, 0.9, 0.99]) {
    let mass = 0;
    const expected = new Set<number>();
    for (const i of order) {
      expected.add(i);
      mass += probs[i];
      if (mass >= p) break;
    }
    const masked = Float32Array.from(logits);
    applyTopP(masked, p);
    const kept = new Set([...masked.keys()].filter((i) => masked[i] !== -Infinity));
    assert.deepEqual(
      [...kept].sort((a, b) => a - b),
      [...expected].sort((a, b) => a - b),
      `top-p ${p}`,
    );
  }
});

test("min-p drops exactly the tokens below minP * max probability", () => {
  const logits = randomLogits(300, 4, 8);
  const probs = softmax(logits);
  const maxP = Math.max(...probs);
  const masked = Float32Array.from(logits);
  applyMinP(masked, 0.2);
  for (let i = 0; i < logits.length; i++) {
    if (Math.abs(probs[i] - 0.2 * maxP) < 1e-9) continue; // boundary rounding
    assert.equal(masked[i] !== -Infinity, probs[i] >= 0.2 * maxP, `token ${i}`);
  }
});

test("top-k with ties keeps every tied token and no others", () => {
  const logits = new Float32Array([1, 3, 3, 2, 0]);
  applyTopK(logits, 2);
  assert.deepEqual([...logits], [-Infinity, 3, 3, -Infinity, -Infinity]);
});

test("the same seed gives the same tokens, another seed different ones", () => {
  const logits = randomLogits(1000, 5, 3);
  const run = (seed: number) =>
    Array.from({ length: 20 }, (_, i) => sample(logits, { temperature: 1, seed, outputIndex: i }).tokenId);
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});

test("repetition penalty divides positive and multiplies negative logits of prompt and output tokens", () => {
  const logits = new Float32Array([2, -2, 4, -4, 1]);
  const s = buildSamplingArrays([{ repetitionPenalty: 2, promptTokens: [0, 1, 1], outputTokens: [2, 3] }]);
  applyPenalties(logits, s, 0);
  assert.deepEqual([...logits], [1, -4, 2, -8, 1]);
});

test("presence and frequency penalties subtract per output-token count, ignoring the prompt", () => {
  const logits = new Float32Array([1, 1, 1, 1]);
  const s = buildSamplingArrays([
    { presencePenalty: 0.5, frequencyPenalty: 0.25, promptTokens: [3, 3], outputTokens: [0, 1, 1, 1] },
  ]);
  applyPenalties(logits, s, 0);
  assert.deepEqual([...logits], [1 - 0.5 - 0.25, 1 - 0.5 - 0.75, 1, 1]);
});

test("logit bias is additive and -Infinity bans a token even under greedy", () => {
  const logits = new Float32Array([5, 1, 0]);
  const banned = sample(logits, { logitBias: new Map([[0, -Infinity]]) });
  assert.equal(banned.tokenId, 1);
  const boosted = sample(logits, { logitBias: new Map([[2, 5.5]]) });
  assert.equal(boosted.tokenId, 2);
});

test("logprobs are log_softmax of the raw logits: normalized, chosen token and sorted top N", () => {
  const logits = randomLogits(100, 6, 5);
  const r = sample(logits, { temperature: 0, logprobs: 5, repetitionPenalty: 3, promptTokens: [0, 1, 2] });
  const lse = logSumExp(logits);
  assert.ok(Math.abs(r.logprob - (logits[r.tokenId] - lse)) < 1e-5);
  assert.ok(r.top !== null);
  const top = r.top;
  assert.equal(top.tokenIds.length, 5);
  for (let i = 1; i < 5; i++) assert.ok(top.logprobs[i - 1] >= top.logprobs[i]);
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a]);
  assert.deepEqual([...top.tokenIds], order.slice(0, 5));
  const total = [...logits].reduce((s, l) => s + Math.exp(l - lse), 0);
  assert.ok(Math.abs(total - 1) < 1e-6);
  assert.ok(Number.isNaN(sample(logits, { temperature: 0 }).logprob), "no logprob unless asked");
});

test("sampling statistics match softmax(logits / T) over many seeds", () => {
  const logits = new Float32Array([2, 1.5, 1, 0.2, -1, -3]);
  const temperature = 0.8;
  const scaled = Float32Array.from(logits, (l) => l / temperature);
  const probs = softmax(scaled);
  const n = 20000;
  const counts = new Array(logits.length).fill(0);
  for (let seed = 0; seed < n; seed++) counts[sample(logits, { temperature, seed }).tokenId]++;
  for (let i = 0; i < logits.length; i++) {
    const sd = Math.sqrt((probs[i] * (1 - probs[i])) / n);
    assert.ok(
      Math.abs(counts[i] / n - probs[i]) < 5 * sd + 1e-4,
      `token ${i}: ${counts[i] / n} vs ${probs[i]}`,
    );
  }
});
