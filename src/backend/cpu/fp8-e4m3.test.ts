import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeE4m3, E4M3_MAX, roundE4m3, roundE4m3InPlace } from "./fp8-e4m3.js";

const allValues = Array.from({ length: 256 }, (_, c) => decodeE4m3(c)).filter((v) => !Number.isNaN(v));

test("every E4M3 value rounds to itself; the extremes are 448 and 2^-9", () => {
  for (const v of allValues) assert.equal(roundE4m3(v), v, String(v));
  assert.equal(Math.max(...allValues), E4M3_MAX);
  assert.equal(decodeE4m3(1), 2 ** -9);
});

test("values round to the nearest E4M3 value, ties to even; beyond 448 saturates; NaN stays NaN", () => {
  assert.equal(roundE4m3(0.1), 0.1015625);
  assert.equal(roundE4m3(-0.1), -0.1015625);
  assert.equal(roundE4m3(1.0625), 1); // halfway between 1 and 1.125: even mantissa (1)
  assert.equal(roundE4m3(1.1875), 1.25); // halfway between 1.125 and 1.25: even (1.25)
  assert.equal(roundE4m3(2 ** -10), 0); // half the smallest subnormal: ties to 0
  assert.equal(roundE4m3(3 * 2 ** -10), 2 * 2 ** -9); // 1.5 subnormal steps: even (2)
  assert.equal(roundE4m3(500), 448);
  assert.equal(roundE4m3(-1e9), -448);
  assert.equal(roundE4m3(Number.POSITIVE_INFINITY), 448);
  assert.ok(Number.isNaN(roundE4m3(Number.NaN)));
  assert.ok(Object.is(roundE4m3(-0), -0));
});

test("random values land on the nearest representable value (brute force over the 253 finite values)", () => {
  const sorted = [...new Set(allValues)].sort((a, b) => a - b);
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let i = 0; i < 20000; i++) {
    const x = Math.fround((rand() - 0.5) * 2 ** (rand() * 24 - 12));
    const got = roundE4m3(x);
    const best = Math.min(...sorted.map((v) => Math.abs(v - x)));
    assert.equal(Math.abs(got - x), best, `x=${x} got ${got}`);
  }
});

test("in place over a range, with a per-tensor scale", () => {
  const data = Float32Array.from([0.1, 0.1, 0.1, 0.1]);
  roundE4m3InPlace(data, 1, 2);
  assert.deepEqual([...data], [Math.fround(0.1), 0.1015625, 0.1015625, Math.fround(0.1)]);
  const scaled = Float32Array.from([1000]);
  roundE4m3InPlace(scaled, 0, 1, 4); // 1000 / 4 = 250 -> 256 (nearest of 240, 256), x 4
  assert.equal(scaled[0], 1024);
});
