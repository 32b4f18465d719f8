/**
 * FP8 E4M3 (OCP "e4m3fn": bias 7, 3 mantissa bits, no infinities, max 448, smallest subnormal 2^-9) rounding
 * of float32 values in place, as the CUDA conversion with saturation (__NV_SATFINITE) does: round to nearest,
 * ties to even; beyond +-448 saturates to +-448; NaN stays NaN. With a per-tensor scale s the stored value is
 * e4m3(x / s) and it reads back as that times s (vLLM's k_scale / v_scale; 1.0 when the checkpoint has none).
 */

export const E4M3_MAX = 448;
/** Float32 exponent field of 2^-6, the smallest normal E4M3 value. */
const MIN_NORMAL_EXP_FIELD = 127 - 6;

const f32 = new Float32Array(1);
const bits = new Int32Array(f32.buffer);

/** One value rounded to the nearest E4M3 value (saturating). */
export function roundE4m3(x: number): number {
  if (Number.isNaN(x)) return x;
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return x < 0 ? -E4M3_MAX : E4M3_MAX;
  f32[0] = a;
  let b = bits[0]!;
  if (b >>> 23 >= MIN_NORMAL_EXP_FIELD) {
    // Keep 3 of the 23 mantissa bits, rounding half to even (a carry moves into the exponent as it should).
    b = (b + 0x7ffff + ((b >>> 20) & 1)) & ~0xfffff;
    bits[0] = b;
  } else {
    // Subnormal: multiples of 2^-9.
    const q = f32[0]! * 512;
    let r = Math.floor(q);
    const frac = q - r;
    if (frac > 0.5 || (frac === 0.5 && (r & 1) === 1)) r += 1;
    f32[0] = r / 512;
  }
  return x < 0 || Object.is(x, -0) ? -f32[0]! : f32[0]!;
}

/** Rounds `data[start .. start + length)` to E4M3 at `scale`, in place. */
export function roundE4m3InPlace(data: Float32Array, start: number, length: number, scale = 1): void {
  if (scale === 1) {
    for (let i = start; i < start + length; i++) data[i] = roundE4m3(data[i]!);
  } else {
    const inv = 1 / scale;
    for (let i = start; i < start + length; i++) data[i] = roundE4m3(data[i]! * inv) * scale;
  }
}

/** The value of E4M3 byte `code` (for tests and for a byte-stored cache). */
export function decodeE4m3(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const exp = (code >>> 3) & 0xf;
  const man = code & 7;
  if (exp === 0xf && man === 7) return Number.NaN;
  if (exp === 0) return sign * man * 2 ** -9;
  return sign * (1 + man / 8) * 2 ** (exp - 7);
}
