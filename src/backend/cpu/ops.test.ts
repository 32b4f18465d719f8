import assert from "node:assert/strict";
import { test } from "node:test";
import { applyRope, inverseFrequencies, rmsNorm, ropeFrequenciesFor } from "./ops.js";

test("RoPE rotates pairs (i, i + d/2) by position * theta^(-2i/d); linear scaling divides the position", () => {
  const d = 8;
  const vec = Float32Array.from({ length: 2 * d }, (_, i) => i + 1); // two heads
  const orig = Float32Array.from(vec);
  const freqs = inverseFrequencies(d, 10000);
  applyRope(vec, 0, 2, d, 6, freqs, new Float32Array(d), 2); // position 6 / factor 2 = 3
  for (let h = 0; h < 2; h++) {
    for (let i = 0; i < d / 2; i++) {
      const angle = 3 / 10000 ** ((2 * i) / d);
      const a = orig[h * d + i];
      const b = orig[h * d + d / 2 + i];
      assert.ok(Math.abs(vec[h * d + i] - (a * Math.cos(angle) - b * Math.sin(angle))) < 1e-5);
      assert.ok(Math.abs(vec[h * d + d / 2 + i] - (b * Math.cos(angle) + a * Math.sin(angle))) < 1e-5);
    }
  }
});

test("dynamic NTK raises the base only past the original context, as HF computes it", () => {
  const spec = {
    headDim: 128,
    theta: 10000,
    scaling: { type: "dynamic" as const, factor: 2, originalMaxPositionEmbeddings: 4096 },
  };
  assert.deepEqual(ropeFrequenciesFor(spec, 4096), inverseFrequencies(128, 10000));
  const base = 10000 * ((2 * 6000) / 4096 - 1) ** (128 / 126);
  assert.deepEqual(ropeFrequenciesFor(spec, 6000), inverseFrequencies(128, base));
  assert.ok(ropeFrequenciesFor(spec, 6000)[10] < inverseFrequencies(128, 10000)[10]);
});

test("RMSNorm: x / sqrt(mean(x^2) + eps) * w", () => {
  const x = Float32Array.of(1, 2, 3, 4);
  const out = new Float32Array(4);
  rmsNorm(x, Float32Array.of(1, 1, 2, 0.5), 1e-5, 1, out);
  const inv = 1 / Math.sqrt(30 / 4 + 1e-5);
  assert.deepEqual(
    [...out].map((v) => v.toFixed(5)),
    [inv, 2 * inv, 6 * inv, 2 * inv].map((v) => v.toFixed(5)),
  );
});
