import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bf16ToF32,
  bf16ToF32Array,
  f16ToF32,
  f16ToF32Array,
  f32ToBf16,
  f32ToBf16Array,
  f32ToF16,
  f32ToF16Array,
} from "./half.js";

/** Decodes an f16 bit pattern from the IEEE definition, independently of half.ts. */
function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

test("every f16 bit pattern decodes to its IEEE value and round-trips exactly", () => {
  const all = new Uint16Array(65536); // (65536)
  for (let h = 0; h < 65536; h++) all[h] = h;
  const asF32 = f16ToF32Array(all); // (65536)
  const back = f32ToF16Array(asF32); // (65536)
  for (let h = 0; h < 65536; h++) {
    const expected = decodeF16(h);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(asF32[h]), `0x${h.toString(16)} should be NaN`);
    else assert.equal(asF32[h], Math.fround(expected), `f16 0x${h.toString(16)}`);
    assert.equal(f16ToF32(h), asF32[h]);
    assert.equal(back[h], h, `round trip of 0x${h.toString(16)}`);
    if (!Number.isNaN(expected)) assert.equal(f32ToF16(asF32[h]), h);
  }
  assert.ok(Object.is(f16ToF32(0x8000), -0));
});

test("f32 -> f16 rounds to nearest, ties to even, across normals and subnormals", () => {
  // For every pair of adjacent finite positive f16 values, the midpoint goes to the even pattern,
  // and a nudge either way goes to the nearer one.
  for (let h = 0; h < 0x7bff; h++) {
    const lo = decodeF16(h);
    const hi = decodeF16(h + 1);
    const mid = (lo + hi) / 2; // exact in f64 and in f32 (one more significand bit)
    assert.equal(Math.fround(mid), mid);
    const even = h % 2 === 0 ? h : h + 1;
    assert.equal(f32ToF16(mid), even, `midpoint after 0x${h.toString(16)}`);
    assert.equal(f32ToF16(-mid), even | 0x8000);
    const step = (hi - lo) / 8;
    assert.equal(f32ToF16(mid - step), h);
    assert.equal(f32ToF16(mid + step), h + 1);
  }
});

test("f16 overflow, underflow, infinities and NaN", () => {
  assert.equal(f32ToF16(65504), 0x7bff); // largest finite
  assert.equal(f32ToF16(65519.99), 0x7bff); // below the midpoint to 2^16
  assert.equal(f32ToF16(65520), 0x7c00); // midpoint ties to even = Inf
  assert.equal(f32ToF16(1e9), 0x7c00);
  assert.equal(f32ToF16(-1e9), 0xfc00);
  assert.equal(f32ToF16(Infinity), 0x7c00);
  assert.equal(f32ToF16(-Infinity), 0xfc00);
  const nan = f32ToF16(Number.NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  assert.equal(f32ToF16(2 ** -25), 0x0000); // exactly half the smallest subnormal: tie to even (0)
  assert.equal(f32ToF16(2 ** -25 * 1.0001), 0x0001);
  assert.equal(f32ToF16(2 ** -26), 0x0000);
  assert.equal(f32ToF16(-(2 ** -30)), 0x8000);
  assert.equal(f32ToF16(2 ** -14), 0x0400); // smallest normal
  assert.equal(f32ToF16(2 ** -14 - 2 ** -26), 0x0400); // rounds up out of the subnormals
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(-2), 0xc000);
});

test("bf16 <-> f32: every bit pattern round-trips; rounding ties to even", () => {
  const all = new Uint16Array(65536); // (65536)
  for (let h = 0; h < 65536; h++) all[h] = h;
  const asF32 = bf16ToF32Array(all); // (65536)
  const back = f32ToBf16Array(asF32); // (65536)
  for (let h = 0; h < 65536; h++) {
    const isNanPattern = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    if (isNanPattern) {
      assert.ok(Number.isNaN(asF32[h]));
      assert.ok((back[h] & 0x7f80) === 0x7f80 && (back[h] & 0x7f) !== 0);
    } else {
      assert.equal(back[h], h, `bf16 0x${h.toString(16)}`);
      assert.equal(f32ToBf16(bf16ToF32(h)), h);
    }
  }
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie, 0x3f80 is even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie, rounds up to even
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80); // max f32 rounds to Inf
  assert.equal(f32ToBf16(-Infinity), 0xff80);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN))));
});

test("array conversions respect a view's byteOffset", () => {
  const backing = new Float32Array([9, 1.5, -2.25, 7]);
  const view = backing.subarray(1, 3); // (2)
  assert.deepEqual([...f32ToF16Array(view)], [f32ToF16(1.5), f32ToF16(-2.25)]);
  assert.deepEqual([...f32ToBf16Array(view)], [f32ToBf16(1.5), f32ToBf16(-2.25)]);
  assert.deepEqual([...f16ToF32Array(f32ToF16Array(view))], [1.5, -2.25]);
  assert.deepEqual([...bf16ToF32Array(f32ToBf16Array(view))], [1.5, -2.25]);
});
