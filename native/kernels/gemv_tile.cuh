// Device helpers of the decode GEMVs (gemv.cu's register-burst kernels and gemv_bulk.cu's
// bulk-copy kernels): the lane's x fragments and the block reduction of the per-warp partials. All
// __forceinline__, and checked to compile (sm_90a) to the same SASS as when these bodies were
// written out in each kernel. The dequant + mma body of one chunk is NOT shared: as a helper it
// reorders the hot loop's instructions (same count, different schedule), so each kernel keeps its
// own copy. k order and fragment layout are described at the top of gemv.cu.
#pragma once

#include "common.cuh"
#include "internal.h"

namespace awqk {
namespace detail {

// 32-bit word w (0..7) of a lane's 16 halves held as two uint4.
__device__ __forceinline__ uint32_t word_of(const uint4* v, int w) {
  const uint4 q = v[w >> 2];
  switch (w & 3) {
    case 0: return q.x;
    case 1: return q.y;
    case 2: return q.z;
    default: return q.w;
  }
}

// The lane's x row per token tile (token 8*mt + g, 16 halves at 16t), and whether the token exists.
template <int MT>
__device__ __forceinline__ void x_rows(const __half* __restrict__ x, int m, int in, int g, int t,
                                       const __half* (&xrow)[MT], bool (&xok)[MT]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int token = mt * 8 + g;
    xok[mt] = token < m;
    xrow[mt] = x + (size_t)(xok[mt] ? token : 0) * in + 16 * t;
  }
}

// Loads one lane's x values of a 64-k chunk for each token tile: 16 halves at 16t.
template <int MT>
__device__ __forceinline__ void load_x(const __half* const (&xrow)[MT], const bool (&xok)[MT], int c,
                                       bool ok, uint4 (&xv)[MT][2]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    if (ok && xok[mt]) {
      const uint4* px = reinterpret_cast<const uint4*>(xrow[mt] + 64 * c);
      xv[mt][0] = __ldg(px);
      xv[mt][1] = __ldg(px + 1);
    } else {
      xv[mt][0] = make_uint4(0, 0, 0, 0);
      xv[mt][1] = make_uint4(0, 0, 0, 0);
    }
  }
}

// Stores reduced element idx (= (mt*4 + r)*32 + lane) of a 16-output tile.
template <int MT>
__device__ __forceinline__ void store_out(int idx, float s, int tile, int m, int out,
                                          __half* __restrict__ y) {
  const int l = idx & 31, e = idx >> 5;
  const int r = e & 3, mt = e >> 2;
  const int n = 16 * tile + (l >> 2) + 8 * (r >> 1);
  const int token = 8 * mt + 2 * (l & 3) + (r & 1);
  if (n < out && token < m) y[(size_t)token * out + n] = __float2half(s);
}

// Writes each warp's accumulators of NT tiles to red ([warps][NT*MT*4][32] floats), then syncs the block.
template <int NT, int MT>
__device__ __forceinline__ void stage_partials(float* red, const float (&acc)[NT][MT][4]) {
  constexpr int R = NT * MT * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int p = 0; p < NT; ++p)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 4; ++r) red[(warp * R + (p * MT + mt) * 4 + r) * 32 + lane] = acc[p][mt][r];
  __syncthreads();
}

// Writes the block-reduced accumulators: red holds [warps][R][32] floats, R = tiles*MT*4.
template <int NT, int MT>
__device__ __forceinline__ void reduce_store(float* red, const float (&acc)[NT][MT][4], int tile0,
                                             int m, int out, __half* __restrict__ y) {
  constexpr int R = NT * MT * 4;
  const int nw = blockDim.x >> 5;
  stage_partials<NT, MT>(red, acc);
  for (int idx = threadIdx.x; idx < R * 32; idx += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < nw; ++w) s += red[w * R * 32 + idx];
    const int l = idx & 31, e = idx >> 5;
    const int r = e & 3, pm = e >> 2;
    const int mt = pm % MT, p = pm / MT;
    const int n = 16 * (tile0 + p) + (l >> 2) + 8 * (r >> 1);
    const int token = 8 * mt + 2 * (l & 3) + (r & 1);
    if (n < out && token < m) y[(size_t)token * out + n] = __float2half(s);
  }
}

// AddNormEpilogue (internal.h) after the block's K partials are staged in red ([warps][NT*MT*4][32] floats, see
// stage_partials): each output is rounded to fp16 (y, the unfused delta) and added to the residual, the block
// writes its tiles' sums of squares, and the last block to finish normalizes every row. sq: NT*8*16 floats of
// shared memory (each output's square, then summed in a fixed order: the result must not depend on which thread
// gets there first, or the same request gives different tokens from run to run, which the unfused path does not).
template <int NT, int MT>
__device__ __forceinline__ void add_norm_store(const float* red, float* sq, int tile0, int nTiles, int m, int out,
                                               __half* __restrict__ y, const AddNormEpilogue& e) {
  static_assert(MT == 1, "the epilogue's shared sums and inv[] hold one token tile (m <= 8)");
  constexpr int R = NT * MT * 4;
  const int nw = blockDim.x >> 5;
  for (int i = threadIdx.x; i < NT * 128; i += blockDim.x) sq[i] = 0.f;  // [NT][8 tokens][16 columns]
  __syncthreads();
  for (int idx = threadIdx.x; idx < R * 32; idx += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < nw; ++w) s += red[w * R * 32 + idx];
    const int l = idx & 31, el = idx >> 5;
    const int r = el & 3, pm = el >> 2;
    const int mt = pm % MT, p = pm / MT;
    const int n = 16 * (tile0 + p) + (l >> 2) + 8 * (r >> 1);
    const int token = 8 * mt + 2 * (l & 3) + (r & 1);
    if (n < out && token < m) {
      const __half h = __float2half(s);
      y[(size_t)token * out + n] = h;
      float* res = e.residual + (size_t)token * out + n;
      const float v = *res + __half2float(h);
      *res = v;
      sq[(p * 8 + token) * 16 + (l >> 2) + 8 * (r >> 1)] = v * v;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < NT * m; i += blockDim.x) {
    const int p = i / m, token = i % m;
    const float* cols = sq + (p * 8 + token) * 16;
    float s = 0.f;
#pragma unroll
    for (int c = 0; c < 16; ++c) s += cols[c];
    if (tile0 + p < nTiles) e.partial[(size_t)token * nTiles + tile0 + p] = s;
  }
  __threadfence();
  __syncthreads();
  __shared__ int last;
  if (threadIdx.x == 0) last = atomicAdd(e.counter, 1) == (int)gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  __shared__ float inv[8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int token = warp; token < m; token += nw) {  // a warp per row: its tiles' partial sums
    float t = 0.f;
    float* pp = e.partial + (size_t)token * nTiles;
#pragma unroll 4
    for (int i = lane; i < nTiles; i += 32) {
      t += __ldcg(pp + i);
      pp[i] = 0.f;  // left zero for the next call
    }
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (lane == 0) inv[token] = rsqrtf(t / out + e.eps);
  }
  if (threadIdx.x == 0) *e.counter = 0;
  __syncthreads();
  // normed = residual * inv * weight, 4 columns a thread, up to 8 loads of each kind in flight before any store.
  const int nv = out >> 2;
  for (int token = 0; token < m; ++token) {
    const float iv = inv[token];
    const float4* __restrict__ res4 = reinterpret_cast<const float4*>(e.residual + (size_t)token * out);
    const uint2* __restrict__ w4 = reinterpret_cast<const uint2*>(e.weight);
    uint2* __restrict__ dst4 = reinterpret_cast<uint2*>(e.normed + (size_t)token * out);
    for (int v0 = threadIdx.x; v0 < nv; v0 += 8 * blockDim.x) {
      float4 r[8];
      uint2 wv[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int v = v0 + k * blockDim.x;
        if (v < nv) {
          r[k] = __ldcg(res4 + v);
          wv[k] = __ldg(w4 + v);
        }
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int v = v0 + k * blockDim.x;
        if (v < nv) {
          const float2 wa = __half22float2(u32_as_h2(wv[k].x)), wb = __half22float2(u32_as_h2(wv[k].y));
          const __half2 a = __floats2half2_rn(r[k].x * iv * wa.x, r[k].y * iv * wa.y);
          const __half2 b = __floats2half2_rn(r[k].z * iv * wb.x, r[k].w * iv * wb.y);
          dst4[v] = make_uint2(h2_as_u32(a), h2_as_u32(b));
        }
      }
    }
    for (int i = nv * 4 + threadIdx.x; i < out; i += blockDim.x)  // out % 4 columns
      e.normed[(size_t)token * out + i] =
          __float2half(__ldcg(e.residual + (size_t)token * out + i) * iv * __half2float(e.weight[i]));
  }
}

// An L2 evict-first access policy (for weights read exactly once: they leave L2 before anything else does).
__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t pol;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
  return pol;
}

// ld_stream16 (common.cuh) with an L2 cache policy.
__device__ __forceinline__ uint4 ld_stream16_hint(const void* p, uint64_t pol) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p), "l"(pol));
  return v;
}

// L2 prefetch of `bytes` (a multiple of 16, 16-byte aligned) at p, by one thread: one bulk prefetch on sm_90
// (tracked by the copy engine, not by the SM's load slots), nothing elsewhere.
__device__ __forceinline__ void prefetch_l2_bulk(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
#endif
}

// L2 prefetch of one 128-byte line (any architecture; fire and forget).
__device__ __forceinline__ void prefetch_l2_line(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

// Prefetch of chunks [c0, c1) of NPW tiles (weights at w[p] + 32 c uint4, zero/scale pairs at z[p] + 8 grp) into
// L2, by the calling warp. mode 1: lane p issues tile p's two bulk prefetches; mode 2: the lanes split the 128-byte
// lines. Chunks outside [.., cEnd) are skipped.
template <int NPW>
__device__ __forceinline__ void prefetch_chunks(const uint4* const (&w)[NPW], const uint2* const (&z)[NPW],
                                                const bool (&ok)[NPW], int c0, int c1, int cEnd, int cpg, int mode,
                                                int lane) {
  c1 = min(c1, cEnd);
  if (c1 <= c0) return;
  const int g0 = c0 / cpg, g1 = (c1 - 1) / cpg + 1;
  if (mode == 1) {
#pragma unroll
    for (int p = 0; p < NPW; ++p) {
      if (lane == p && ok[p]) {
        prefetch_l2_bulk(w[p] + (size_t)c0 * 32, (uint32_t)(c1 - c0) * 512);
        prefetch_l2_bulk(z[p] + (size_t)g0 * 8, (uint32_t)(g1 - g0) * 64);
      }
    }
  } else {
    const int wLines = (c1 - c0) * 4;  // 512 B a chunk
#pragma unroll
    for (int p = 0; p < NPW; ++p) {
      if (!ok[p]) continue;
      const char* wb = reinterpret_cast<const char*>(w[p] + (size_t)c0 * 32);
      for (int i = lane; i < wLines; i += 32) prefetch_l2_line(wb + 128 * i);
      const char* zb = reinterpret_cast<const char*>(z[p] + (size_t)g0 * 8);
      for (int i = lane; i * 128 < (g1 - g0) * 64; i += 32) prefetch_l2_line(zb + 128 * i);
    }
  }
}

}  // namespace detail
}  // namespace awqk
