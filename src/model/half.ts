/**
 * IEEE half (f16) and bfloat16 (bf16) <-> f32 conversion, scalar and whole-array.
 * Half values travel as their 16-bit patterns (`Uint16Array`), the way safetensors stores them.
 * f32 -> 16-bit conversions round to nearest, ties to even (what PyTorch's `.half()` / `.bfloat16()` do).
 */

const scratchF32 = new Float32Array(1);
// Int32 views throughout: V8 keeps int32 values unboxed, while uint32 values >= 2^31 become heap numbers.
const scratchI32 = new Int32Array(scratchF32.buffer);

/** f16 bits -> f32 bits (as an int32). Exact: every f16 value (subnormals, infinities, NaN payloads) is an f32 value. */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return sign | 0x7f800000 | (mant << 13); // Inf / NaN (payload kept)
  if (exp !== 0) return sign | ((exp + 112) << 23) | (mant << 13);
  if (mant === 0) return sign; // +-0
  // Subnormal: normalize so the leading 1 becomes the implicit bit.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return sign | (e << 23) | ((mant & 0x3ff) << 13);
}

/** f32 bits (int32) -> f16 bits, round to nearest even; overflow -> Inf, NaN stays NaN (payload kept when it fits). */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant === 0 ? 0 : mant >>> 13 || 0x200);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e > 0) {
    const h = sign | (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent (and 0x7bff + 1 = Inf).
    return rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1) ? h + 1 : h;
  }
  if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
  // Subnormal result: f16 value m * 2^-24 with m = (1.mant) * 2^(e - 14), i.e. the 24-bit significand >> (14 - e).
  const full = mant | 0x800000;
  const shift = 14 - e; // 14..24
  const m = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (rest > half || (rest === half && (m & 1) === 1) ? m + 1 : m);
}

/** f32 bits (int32) -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  // As int32, every non-NaN x + bias stays on its side of zero, so >>> sees the right 32 bits.
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

let f16Table: Int32Array | null = null; // (65536) f32 bit pattern of each f16 bit pattern

function getF16Table(): Int32Array {
  if (f16Table === null) {
    f16Table = new Int32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/** One f16 bit pattern -> its number value. */
export function f16ToF32(bits: number): number {
  scratchI32[0] = getF16Table()[bits & 0xffff];
  return scratchF32[0];
}

/** A number -> the f16 bit pattern nearest to it (ties to even). */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16Bits(scratchI32[0]);
}

/** One bf16 bit pattern -> its number value. */
export function bf16ToF32(bits: number): number {
  scratchI32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** A number -> the bf16 bit pattern nearest to it (ties to even). */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToBf16Bits(scratchI32[0]);
}

/** f16 bit patterns -> f32 values (a fresh array, same length). */
export function f16ToF32Array(src: Uint16Array): Float32Array {
  const table = getF16Table();
  const out = new Float32Array(src.length);
  const outBits = new Int32Array(out.buffer); // bit copies keep NaN payloads intact
  for (let i = 0; i < src.length; i++) outBits[i] = table[src[i]];
  return out;
}

/** f32 values -> f16 bit patterns (a fresh array, same length). */
export function f32ToF16Array(src: Float32Array): Uint16Array {
  const bits = new Int32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** bf16 bit patterns -> f32 values (a fresh array, same length). */
export function bf16ToF32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const outBits = new Int32Array(out.buffer);
  for (let i = 0; i < src.length; i++) outBits[i] = src[i] << 16;
  return out;
}

/** f32 values -> bf16 bit patterns (a fresh array, same length). */
export function f32ToBf16Array(src: Float32Array): Uint16Array {
  const bits = new Int32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}
