// Eight consecutive KV-cache elements of one lane, as both decode attention kernels read them (the per-head
// kernel in attention_decode.cu, the by-KV-head one in attention_decode_grouped.cu): loaded raw (streaming, or
// coherent for the position the previous kernel just wrote) and widened to eight halves. KV = __half (16-byte
// loads, used in place) or uint8_t (FP8 E4M3, 8-byte loads widened in registers).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "common.cuh"
#include "fp8_e4m3.cuh"

namespace awqk {
namespace detail {

template <typename KV>
struct KvIo;

template <>
struct KvIo<__half> {
  using Raw = uint4;
  static __device__ __forceinline__ Raw zero() { return make_uint4(0, 0, 0, 0); }
  static __device__ __forceinline__ Raw stream(const __half* p) { return ld_stream16(p); }
  static __device__ __forceinline__ Raw coherent(const __half* p) { return __ldcg(reinterpret_cast<const uint4*>(p)); }
  // The eight halves of r: fp16 reads the registers in place (the code of the kernel before FP8).
  static __device__ __forceinline__ const __half2* as_half2(const Raw& r, uint4&) {
    return reinterpret_cast<const __half2*>(&r);
  }
  static constexpr int kElems = 8;
  static __device__ __forceinline__ void widen(const Raw& r, uint4 (&h)[1]) { h[0] = r; }
};

template <>
struct KvIo<uint8_t> {
  using Raw = uint2;
  static __device__ __forceinline__ Raw zero() { return make_uint2(0, 0); }
  static __device__ __forceinline__ Raw stream(const uint8_t* p) {
    uint2 v;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "l"(p));
    return v;
  }
  static __device__ __forceinline__ Raw coherent(const uint8_t* p) { return __ldcg(reinterpret_cast<const uint2*>(p)); }
  static __device__ __forceinline__ const __half2* as_half2(const Raw& r, uint4& wide) {
    wide = e4m3x8_to_half8(r);
    return reinterpret_cast<const __half2*>(&wide);
  }
  static constexpr int kElems = 8;
  static __device__ __forceinline__ void widen(const Raw& r, uint4 (&h)[1]) { h[0] = e4m3x8_to_half8(r); }
};

// Sixteen consecutive FP8 E4M3 elements of one lane (16-byte loads): the by-KV-head decode kernel's FP8 reads for
// one query head a KV head, so that each lane's instructions (dot product, shuffles, softmax) are amortized over as
// many bytes as the fp16 cache's 8 elements are.
struct KvIoFp8x16 {
  using Raw = uint4;
  static __device__ __forceinline__ Raw zero() { return make_uint4(0, 0, 0, 0); }
  static __device__ __forceinline__ Raw stream(const uint8_t* p) { return ld_stream16(p); }
  static __device__ __forceinline__ Raw coherent(const uint8_t* p) { return __ldcg(reinterpret_cast<const uint4*>(p)); }
  static constexpr int kElems = 16;
  static __device__ __forceinline__ void widen(const Raw& r, uint4 (&h)[2]) {
    h[0] = e4m3x8_to_half8(make_uint2(r.x, r.y));
    h[1] = e4m3x8_to_half8(make_uint2(r.z, r.w));
  }
};

}  // namespace detail
}  // namespace awqk
