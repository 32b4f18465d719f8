import assert from "node:assert/strict";
import { test } from "node:test";
import { randomBits, uniform01 } from "./rng.js";

/** The header's algorithm re-implemented on BigInt, so the 32-bit JS version is checked against the spec text. */
function specBits(seed: number, index: number): number {
  const M = 0xffffffffn;
  const mix = (v: bigint): bigint => {
    let x = v & M;
    x ^= x >> 16n;
    x = (x * 0x7feb352dn) & M;
    x ^= x >> 15n;
    x = (x * 0x846ca68bn) & M;
    x ^= x >> 16n;
    return x;
  };
  const a = mix(BigInt(seed >>> 0) ^ 0x243f6a88n);
  const b = mix(BigInt(index >>> 0) + 0x85a308d3n);
  return Number(mix(a ^ b));
}

test("randomBits follows the documented algorithm bit for bit", () => {
  for (const seed of [0, 1, 42, 0xdeadbeef, 0xffffffff]) {
    for (const index of [0, 1, 2, 1000, 0x7fffffff])
      assert.equal(randomBits(seed, index), specBits(seed, index));
  }
});

test("uniform01 is a pure function of (seed, index), in [0, 1)", () => {
  assert.equal(uniform01(7, 3), uniform01(7, 3));
  assert.notEqual(uniform01(7, 3), uniform01(8, 3));
  assert.notEqual(uniform01(7, 3), uniform01(7, 4));
  for (let i = 0; i < 1000; i++) {
    const u = uniform01(i * 7919, i);
    assert.ok(u >= 0 && u < 1);
  }
});

test("uniform01 is uniform: chi-square over 20 bins", () => {
  const bins = new Array(20).fill(0);
  const n = 20000;
  for (let i = 0; i < n; i++) bins[Math.floor(uniform01(12345, i) * 20)]++;
  const expected = n / 20;
  const chi2 = bins.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 43.8, `chi-square ${chi2} over 19 degrees of freedom (p = 0.001 bound 43.8)`); // across indices
  const bySeed = new Array(20).fill(0);
  for (let s = 0; s < n; s++) bySeed[Math.floor(uniform01(s, 0) * 20)]++;
  const chi2Seed = bySeed.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  assert.ok(chi2Seed < 43.8, `chi-square ${chi2Seed} across seeds`);
});
