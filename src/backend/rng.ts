/**
 * Counter-based random numbers for sampling: the uniform draw of a sample is a pure function of the request's
 * seed and the index of the token being sampled, so a seeded request gives the same tokens whatever else shares
 * its batch, after preemption and recompute, and on any backend. The CUDA sampler ports this bit-exactly.
 *
 * Algorithm (all arithmetic on unsigned 32-bit integers, wrapping mod 2^32; `imul` = low 32 bits of the product;
 * `>>` = logical shift right; `^` = xor):
 *
 *   mix(x):  x ^= x >> 16;  x = imul(x, 0x7feb352d);  x ^= x >> 15;  x = imul(x, 0x846ca68b);  x ^= x >> 16
 *            (the "lowbias32" integer hash by Chris Wellons: a bijection on u32 with full avalanche)
 *
 *   bits(seed, index) = mix( mix(seed ^ 0x243f6a88) ^ mix(index + 0x85a308d3) )
 *   uniform01(seed, index) = (bits >> 8) * 2^-24        // 24 random bits: exact in f32, in [0, 1)
 *
 * In CUDA: `uint32_t` and plain `*`, `^`, `>>`, `+`; the final value is `(float)(bits >> 8) * 0x1p-24f`.
 */

function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The 32 random bits for (seed, index); both taken mod 2^32. */
export function randomBits(seed: number, index: number): number {
  return mix(mix((seed ^ 0x243f6a88) >>> 0) ^ mix(((index >>> 0) + 0x85a308d3) >>> 0));
}

/** A uniform draw in [0, 1) with 24 bits of resolution, a pure function of (seed u32, outputIndex). */
export function uniform01(seed: number, outputIndex: number): number {
  return (randomBits(seed, outputIndex) >>> 8) * 2 ** -24;
}
