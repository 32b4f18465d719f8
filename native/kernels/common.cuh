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
// 32-bit word w (0..3) of a 16-byte register value.
__device__ __forceinline__ uint32_t word_of(const uint4& q, int w) {
  return w == 0 ? q.x : w == 1 ? q.y : w == 2 ? q.z : q.w;
}
__device__ __forceinline__ __half2 u32_as_h2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t mask, uint32_t orv) {
  uint32_t r;
  // (a & mask) | orv
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(mask), "r"(orv));
  return r;
}

// Dequantize one packed AWQ word (our layout, see awq_repack.cu) into the four fp16x2 registers
// of an mma A fragment of W^T (rows = outputs g / g+8, cols = k), WITHOUT the scale:
//   d[0] = rows g,   k+0..1    d[1] = rows g+8, k+0..1
//   d[2] = rows g,   k+2..3    d[3] = rows g+8, k+2..3      (values q - z, exact)
// Low nibbles OR-ed into the mantissa of fp16 1024.0 give exactly 1024+q, minus zLo = 1024+z_g;
// high nibbles give 1024+16q, and q - z = v/16 + nzHi with nzHi = -(64+z_{g+8}): one op each.
__device__ __forceinline__ void dequant_qz(uint32_t q, __half2 zLo, __half2 nzHi, uint32_t* d) {
  const uint32_t magic = 0x64006400u;
  const uint32_t q8 = q >> 8;
  const __half2 sixteenth = __float2half2_rn(0.0625f);
  d[0] = h2_as_u32(__hsub2(u32_as_h2(lop3_and_or(q, 0x000f000fu, magic)), zLo));
  d[1] = h2_as_u32(__hfma2(u32_as_h2(lop3_and_or(q, 0x00f000f0u, magic)), sixteenth, nzHi));
  d[2] = h2_as_u32(__hsub2(u32_as_h2(lop3_and_or(q8, 0x000f000fu, magic)), zLo));
  d[3] = h2_as_u32(__hfma2(u32_as_h2(lop3_and_or(q8, 0x00f000f0u, magic)), sixteenth, nzHi));
}

// The zero operands of dequant_qz from the packed {1024+z, s} pairs of rows g and g+8.
__device__ __forceinline__ void zero_operands(uint32_t zsLo, uint32_t zsHi, __half2& zLo, __half2& nzHi) {
  zLo = __low2half2(u32_as_h2(zsLo));
  nzHi = __hsub2(__float2half2_rn(960.f), __low2half2(u32_as_h2(zsHi)));  // 960-(1024+z) = -(64+z)
}

// Full dequantization (q - z) * s into fp16, for the GEMM's B fragments.
__device__ __forceinline__ void dequant_word(uint32_t q, uint32_t zsLo, uint32_t zsHi, uint32_t* d) {
  __half2 zLo, nzHi;
  zero_operands(zsLo, zsHi, zLo, nzHi);
  const __half2 s0 = __high2half2(u32_as_h2(zsLo)), s1 = __high2half2(u32_as_h2(zsHi));
  dequant_qz(q, zLo, nzHi, d);
  d[0] = h2_as_u32(__hmul2(u32_as_h2(d[0]), s0));
  d[1] = h2_as_u32(__hmul2(u32_as_h2(d[1]), s1));
  d[2] = h2_as_u32(__hmul2(u32_as_h2(d[2]), s0));
  d[3] = h2_as_u32(__hmul2(u32_as_h2(d[3]), s1));
}

// Programmatic dependent launch (sm_90+; no-ops elsewhere and when the kernel was launched without
// the attribute). pdl_wait: block until the previous kernel in the stream has completed and its
// writes are visible; everything before it may only read data no earlier kernel of the step writes
// (weights). pdl_launch: let the next kernel's blocks start (they run up to their own pdl_wait).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// silu(gate) * up of two fp32 sums, each rounded to fp16 first (what the unfused linear writes), silu with an accurate
// exp as the engine's SiLU kernel (launchSiluMul): the fused gate|up epilogues give the unfused path's values.
__device__ __forceinline__ float silu_product(float gate, float up) {
  const float g = __half2float(__float2half_rn(gate)), u = __half2float(__float2half_rn(up));
  return g / (1.f + expf(-g)) * u;
}

}  // namespace detail
}  // namespace awqk
