// Device helpers of the decode GEMVs (gemv.cu's register-burst kernels and gemv_bulk.cu's
// bulk-copy kernels): the lane's x fragments and the block reduction of the per-warp partials. All
// __forceinline__, and checked to compile (sm_90a) to the same SASS as when these bodies were
// written out in each kernel. The dequant + mma body of one chunk is NOT shared: as a helper it
// reorders the hot loop's instructions (same count, different schedule), so each kernel keeps its
// own copy. k order and fragment layout are described at the top of gemv.cu.
#pragma once

#include "common.cuh"

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

}  // namespace detail
}  // namespace awqk
