// Internal device helpers shared by the kernels: tensor-core mma, cp.async, ldmatrix, and the
// int4 -> fp16 dequantization used by the AWQ kernels. Not part of the engine's API.
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace awqk {
namespace detail {

// D(16x8, f32) += A(16x16, f16, row) * B(16x8, f16, col). Fragment layout (lane = 4*g + t):
//   a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
//   b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; when !pred the destination is zero-filled.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  int size = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(size));
}
__device__ __forceinline__ void cp_async8(void* smem, const void* gmem, bool pred) {
  int size = pred ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(size));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem)));
}

// Streaming 16-byte load that does not pollute L1 (weights are read exactly once).
__device__ __forceinline__ uint4 ld_stream16(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ uint32_t h2_as_u32(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }
__device__ __forceinline__ __half2 u32_as_h2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t mask, uint32_t orv) {
  uint32_t r;
  // (a & mask) | orv
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(mask), "r"(orv));
  return r;
}

// Dequantize one packed AWQ word (our layout, see awq_repack.cu) into the four fp16x2 registers
// of an mma A fragment of W^T (rows = outputs g / g+8, cols = k):
//   d[0] = rows g,   k+0..1    d[1] = rows g+8, k+0..1
//   d[2] = rows g,   k+2..3    d[3] = rows g+8, k+2..3
// zsLo = {1024+z, s} of output row g, zsHi = that of row g+8. The bias trick: OR-ing a nibble into
// the mantissa of fp16 1024.0 gives exactly 1024+q; subtracting 1024+z is exact, then one rounding
// in the scale multiply.
__device__ __forceinline__ void dequant_word(uint32_t q, uint32_t zsLo, uint32_t zsHi, uint32_t* d) {
  const __half2 zs0 = u32_as_h2(zsLo), zs1 = u32_as_h2(zsHi);
  const __half2 z0 = __low2half2(zs0), s0 = __high2half2(zs0);
  const __half2 z1 = __low2half2(zs1), s1 = __high2half2(zs1);
  const uint32_t mask = 0x000f000fu, magic = 0x64006400u;
  __half2 v0 = u32_as_h2(lop3_and_or(q, mask, magic));
  __half2 v1 = u32_as_h2(lop3_and_or(q >> 4, mask, magic));
  __half2 v2 = u32_as_h2(lop3_and_or(q >> 8, mask, magic));
  __half2 v3 = u32_as_h2(lop3_and_or(q >> 12, mask, magic));
  d[0] = h2_as_u32(__hmul2(__hsub2(v0, z0), s0));
  d[1] = h2_as_u32(__hmul2(__hsub2(v1, z1), s1));
  d[2] = h2_as_u32(__hmul2(__hsub2(v2, z0), s0));
  d[3] = h2_as_u32(__hmul2(__hsub2(v3, z1), s1));
}

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace detail
}  // namespace awqk
