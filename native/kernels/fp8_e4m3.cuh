// FP8 E4M3 ("e4m3fn": bias 7, 3 mantissa bits, no infinities, max 448) for the KV cache: one byte per element,
// per-tensor scale 1.0 (vLLM's k_scale = v_scale = 1.0 when the checkpoint has none). Encoding rounds to nearest,
// ties to even, and saturates at +-448 (cvt.rn.satfinite, as src/backend/cpu/fp8-e4m3.ts emulates bit for bit);
// every E4M3 value is exact in fp16, so decoding loses nothing. sm_89+ convert in one instruction per pair; older
// cubins use cuda_fp8.h's software path, which rounds the same way.
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace awqk {
namespace detail {

// Two floats -> two E4M3 bytes, a in the low byte.
__device__ __forceinline__ uint16_t e4m3x2_from_float2(float a, float b) {
  return static_cast<uint16_t>(__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3));
}

// Two E4M3 bytes (low byte first) -> half2 (exact).
__device__ __forceinline__ __half2 e4m3x2_to_half2(uint16_t pair) {
  const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), __NV_E4M3);
  return __half2(raw);
}

// Four E4M3 bytes of a word -> two half2 words (elements 0,1 and 2,3).
__device__ __forceinline__ void e4m3x4_to_half2x2(uint32_t word, uint32_t* out) {
  const __half2 lo = e4m3x2_to_half2(static_cast<uint16_t>(word & 0xffffu));
  const __half2 hi = e4m3x2_to_half2(static_cast<uint16_t>(word >> 16));
  out[0] = *reinterpret_cast<const uint32_t*>(&lo);
  out[1] = *reinterpret_cast<const uint32_t*>(&hi);
}

// Eight E4M3 bytes -> eight halves (the 16-byte layout of eight fp16 elements).
__device__ __forceinline__ uint4 e4m3x8_to_half8(uint2 raw) {
  uint4 r;
  e4m3x4_to_half2x2(raw.x, &r.x);
  e4m3x4_to_half2x2(raw.y, &r.z);
  return r;
}

}  // namespace detail
}  // namespace awqk
