/** AWQ's weight salience and scale families (the pure parts of scale-search.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { scaleFamilies, weightSalience } from "./scale-search.js";

test("weight salience: |w| / group max, averaged over every column of every linear", () => {
  // in = 4 (two groups of 2), one linear of 1 column and one of 2.
  const a = { w: Float32Array.of(1, -2, 4, 0), outF: 1 }; // (in, 1)
  const b = { w: Float32Array.of(1, 1, 1, 1, 2, -2, 0, 4), outF: 2 }; // (in, 2)
  const s = weightSalience([a, b], 4, 2);
  const e = 1e-6;
  const expected = [
    (1 / (2 + e) + 1 / (1 + e) + 1 / (1 + e)) / 3,
    (2 / (2 + e) + 1 / (1 + e) + 1 / (1 + e)) / 3,
    (4 / (4 + e) + 2 / (2 + e) + 2 / (4 + e)) / 3,
    (0 + 0 + 4 / (4 + e)) / 3,
  ];
  for (let k = 0; k < 4; k++) assert.ok(Math.abs(s[k]! - expected[k]!) < 1e-12, `channel ${k}: ${s[k]}`);
});

test("scale families: a = 0 is all ones; scales are normalized to max * min = 1", () => {
  const xMean = Float64Array.of(0.5, 2, 8);
  const wMean = Float64Array.of(1, 0.5, 0.25);
  const [plain, duo] = scaleFamilies(xMean, wMean);
  assert.deepEqual([plain!.name, duo!.name], ["x^a", "x^a/w^(1-a)"]);
  assert.deepEqual([...plain!.scales(0)], [1, 1, 1]);
  for (const family of [plain!, duo!]) {
    for (const a of [0.25, 0.5, 1]) {
      const s = family.scales(a);
      const max = Math.max(...s);
      const min = Math.min(...s);
      assert.ok(Math.abs(max * min - 1) < 1e-5, `${family.name} a=${a}: max * min = ${max * min}`);
    }
  }
  // x^1: proportional to x_mean.
  const s = plain!.scales(1);
  assert.ok(Math.abs(s[1]! / s[0]! - 4) < 1e-5 && Math.abs(s[2]! / s[1]! - 4) < 1e-5);
});
