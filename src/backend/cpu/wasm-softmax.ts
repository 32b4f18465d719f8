/**
 * maxSumExp(x, n, out): out[0] = max(x[0..n)), out[1] = sum exp(x[i] - max), n a multiple of 4, in f32x4.
 * It is the log-sum-exp of a full-vocabulary logits row (perplexity, logprobs), which in plain JS costs more than
 * the lm_head matmul that produced the row. exp uses Cephes' expf scheme (accurate to ~1 ulp): with
 * d = max(x - max, -87), n = nearest(d / ln 2), r = d - n ln 2 (ln 2 split in two constants for precision),
 * exp(d) = 2^n * (1 + r + r^2 P(r)), 2^n built from its exponent bits.
 */
import { F32, type FunctionDef, I32, op, V128 } from "./wasm-emitter.js";

const LOG2E = Math.LOG2E;
const LN2_HI = 0.693359375;
const LN2_LO = -2.1219444e-4;
const POLY = [
  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
];

export function maxSumExpFunction(): FunctionDef {
  const [x, n, out] = [0, 1, 2];
  const [ptr, end] = [3, 4];
  const [vmax, acc, d, k, r, p] = [5, 6, 7, 8, 9, 10];
  const scalar = 11; // f32 horizontal result
  const b: number[] = [];
  // end = x + n * 4
  b.push(...op.get(x), ...op.get(n), ...op.i32Const(2), ...op.i32Shl(), ...op.i32Add(), ...op.set(end));
  // pass 1: vector max
  b.push(...op.f32x4Const(-Infinity), ...op.set(vmax), ...op.get(x), ...op.set(ptr));
  b.push(...op.block(), ...op.loop());
  b.push(...op.get(ptr), ...op.get(end), ...op.i32GeU(), ...op.brIf(1));
  b.push(...op.get(vmax), ...op.get(ptr), ...op.v128Load(0), ...op.f32x4Max(), ...op.set(vmax));
  b.push(...op.get(ptr), ...op.i32Const(16), ...op.i32Add(), ...op.set(ptr), ...op.br(0));
  b.push(...op.end(), ...op.end());
  // horizontal max -> scalar, splat back
  b.push(...op.get(vmax), ...op.f32x4ExtractLane(0), ...op.get(vmax), ...op.f32x4ExtractLane(1), 0x97);
  b.push(...op.get(vmax), ...op.f32x4ExtractLane(2), 0x97, ...op.get(vmax), ...op.f32x4ExtractLane(3), 0x97);
  b.push(...op.set(scalar), ...op.get(out), ...op.get(scalar), ...op.f32Store(0));
  b.push(...op.get(scalar), ...op.f32x4Splat(), ...op.set(vmax));
  // pass 2: sum of exp(x - max)
  b.push(...op.v128Zero(), ...op.set(acc), ...op.get(x), ...op.set(ptr));
  b.push(...op.block(), ...op.loop());
  b.push(...op.get(ptr), ...op.get(end), ...op.i32GeU(), ...op.brIf(1));
  b.push(...op.get(ptr), ...op.v128Load(0), ...op.get(vmax), ...op.f32x4Sub());
  b.push(...op.f32x4Const(-87), ...op.f32x4Max(), ...op.set(d));
  b.push(...op.get(d), ...op.f32x4Const(LOG2E), ...op.f32x4Mul(), ...op.f32x4Nearest(), ...op.set(k));
  b.push(...op.get(d), ...op.get(k), ...op.f32x4Const(LN2_HI), ...op.f32x4Mul(), ...op.f32x4Sub());
  b.push(...op.get(k), ...op.f32x4Const(LN2_LO), ...op.f32x4Mul(), ...op.f32x4Sub(), ...op.set(r));
  b.push(...op.f32x4Const(POLY[0]), ...op.set(p));
  for (const c of POLY.slice(1)) {
    b.push(...op.get(p), ...op.get(r), ...op.f32x4Mul(), ...op.f32x4Const(c), ...op.f32x4Add(), ...op.set(p));
  }
  // y = p * r * r + r + 1
  b.push(
    ...op.get(p),
    ...op.get(r),
    ...op.f32x4Mul(),
    ...op.get(r),
    ...op.f32x4Mul(),
    ...op.get(r),
    ...op.f32x4Add(),
  );
  b.push(...op.f32x4Const(1), ...op.f32x4Add());
  // * 2^k: bits (k + 127) << 23
  b.push(
    ...op.get(k),
    ...op.i32x4TruncSatF32x4S(),
    ...op.i32x4Const(127),
    ...op.i32x4Add(),
    ...op.i32Const(23),
  );
  b.push(...op.i32x4Shl(), ...op.f32x4Mul());
  b.push(...op.get(acc), ...op.f32x4Add(), ...op.set(acc));
  b.push(...op.get(ptr), ...op.i32Const(16), ...op.i32Add(), ...op.set(ptr), ...op.br(0));
  b.push(...op.end(), ...op.end());
  b.push(
    ...op.get(out),
    ...op.get(acc),
    ...op.f32x4ExtractLane(0),
    ...op.get(acc),
    ...op.f32x4ExtractLane(1),
  );
  b.push(...op.f32Add(), ...op.get(acc), ...op.f32x4ExtractLane(2), ...op.f32Add());
  b.push(...op.get(acc), ...op.f32x4ExtractLane(3), ...op.f32Add(), ...op.f32Store(4));
  return {
    name: "maxSumExp",
    params: [I32, I32, I32],
    locals: [I32, I32, V128, V128, V128, V128, V128, V128, F32],
    body: b,
  };
}
