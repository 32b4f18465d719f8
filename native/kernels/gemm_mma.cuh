// The mma.sync tile GEMM body (sm_80+), shared by gemm.cu's kernels and, as the fallback for
// non-sm_90a code, by gemm_sm90.cu. y(m, out) = x(m, in) @ W with 8 warps as 2 (m) x 4 (n), a
// cp.async multi-stage pipeline over 64-k chunks, and B either AWQ-packed (dequantized in
// registers) or dense W (out, in). The k order inside a chunk is the permuted one of gemv.cu, so
// each lane's A values for the 4 k sub-tiles are 16 contiguous halves (two 16-byte shared loads
// per row, conflict-free with the 72-half row pitch).
#pragma once

#include "common.cuh"

namespace awqk {
namespace detail {

constexpr int kThreads = 256;
constexpr int kPitch = 72;  // halves per smem row of a 64-k chunk (+8 padding against conflicts)

__device__ __forceinline__ uint32_t w32(const uint4& q, int w) {
  return w == 0 ? q.x : w == 1 ? q.y : w == 2 ? q.z : q.w;
}

template <int BM, int BN, bool AWQ>
struct Tile {
  static constexpr int kABytes = BM * kPitch * 2;
  static constexpr int kBBytes = AWQ ? (BN / 16) * 32 * 16 + (BN / 16) * 8 * 8 : BN * kPitch * 2;
  static constexpr int kStageBytes = kABytes + kBBytes;
};

template <int BM, int BN, int STAGES, bool AWQ>
__device__ __forceinline__ void gemm_mma_body(const __half* __restrict__ x, int m,
                                              const void* __restrict__ wptr, int in, int out,
                                              int chunksPerGroup, __half* __restrict__ y,
                                              unsigned char* smem) {
  using T = Tile<BM, BN, AWQ>;
  constexpr int WTM = BM / 2, WTN = BN / 4, MI = WTM / 16, NI = WTN / 16;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warpM = warp >> 2, warpN = warp & 3;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int kChunks = in >> 6;
  const int nTiles = (out + 15) >> 4;
  const uint4* wq = static_cast<const uint4*>(wptr);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(wptr) +
                                                   (size_t)nTiles * 16 * in / 2);
  const __half* wd = static_cast<const __half*>(wptr);

  auto load_stage = [&](int stage, int c) {
    unsigned char* base = smem + stage * T::kStageBytes;
    __half* As = reinterpret_cast<__half*>(base);
    for (int i = tid; i < BM * 8; i += kThreads) {
      const int row = i >> 3, seg = i & 7, grow = m0 + row;
      const bool ok = grow < m;
      detail::cp_async16(As + row * kPitch + seg * 8,
                         x + (size_t)(ok ? grow : 0) * in + 64 * c + seg * 8, ok);
    }
    if constexpr (AWQ) {
      uint4* Bq = reinterpret_cast<uint4*>(base + T::kABytes);
      uint2* Bz = reinterpret_cast<uint2*>(base + T::kABytes + (BN / 16) * 32 * 16);
      const int tn0 = n0 >> 4;
      for (int i = tid; i < (BN / 16) * 32; i += kThreads) {
        const int tile = tn0 + (i >> 5);
        const bool ok = tile < nTiles;
        detail::cp_async16(Bq + i, wq + ((size_t)(ok ? tile : 0) * kChunks + c) * 32 + (i & 31), ok);
      }
      for (int i = tid; i < (BN / 16) * 8; i += kThreads) {
        const int tile = tn0 + (i >> 3);
        const bool ok = tile < nTiles;
        detail::cp_async8(Bz + i, zs + ((size_t)(ok ? tile : 0) * (kChunks / chunksPerGroup) + c / chunksPerGroup) * 8 + (i & 7),
                          ok);
      }
    } else {
      __half* Bs = reinterpret_cast<__half*>(base + T::kABytes);
      for (int i = tid; i < BN * 8; i += kThreads) {
        const int row = i >> 3, seg = i & 7, n = n0 + row;
        const bool ok = n < out;
        detail::cp_async16(Bs + row * kPitch + seg * 8, wd + (size_t)(ok ? n : 0) * in + 64 * c + seg * 8,
                           ok);
      }
    }
  };

  float acc[MI][NI * 2][4] = {};

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < kChunks) load_stage(s, s);
    detail::cp_async_commit();
  }

  for (int c = 0; c < kChunks; ++c) {
    detail::cp_async_wait<STAGES - 2>();
    __syncthreads();
    const int next = c + STAGES - 1;
    if (next < kChunks) load_stage(next % STAGES, next);
    detail::cp_async_commit();

    const unsigned char* base = smem + (c % STAGES) * T::kStageBytes;
    const __half* As = reinterpret_cast<const __half*>(base);
    // Two halves of the chunk (k sub-tiles 2*half, 2*half+1); fragments of one half at a time
    // keep the register footprint small enough for 64x64 warp tiles.
    uint4 bq[NI];
    uint2 bz[NI];
    if constexpr (AWQ) {
      const uint4* Bq = reinterpret_cast<const uint4*>(base + T::kABytes);
      const uint2* Bz = reinterpret_cast<const uint2*>(base + T::kABytes + (BN / 16) * 32 * 16);
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        bq[ni] = Bq[(warpN * NI + ni) * 32 + lane];
        bz[ni] = Bz[(warpN * NI + ni) * 8 + g];
      }
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      // bfr[ni][jj][h] = {b0, b1} of n8 tile (ni, h) for k sub-tile 2*half + jj.
      uint32_t bfr[NI][2][2][2];
      if constexpr (AWQ) {
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
          for (int jj = 0; jj < 2; ++jj) {
            uint32_t d[4];
            detail::dequant_word(w32(bq[ni], 2 * half + jj), bz[ni].x, bz[ni].y, d);
            bfr[ni][jj][0][0] = d[0];
            bfr[ni][jj][0][1] = d[2];
            bfr[ni][jj][1][0] = d[1];
            bfr[ni][jj][1][1] = d[3];
          }
      } else {
        const __half* Bs = reinterpret_cast<const __half*>(base + T::kABytes);
#pragma unroll
        for (int ni = 0; ni < NI; ++ni)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = warpN * WTN + ni * 16 + h * 8 + g;
            const uint4 v = *reinterpret_cast<const uint4*>(Bs + row * kPitch + 16 * t + 8 * half);
#pragma unroll
            for (int jj = 0; jj < 2; ++jj) {
              bfr[ni][jj][h][0] = w32(v, 2 * jj);
              bfr[ni][jj][h][1] = w32(v, 2 * jj + 1);
            }
          }
      }
      uint4 ra[MI], rb[MI];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const int r0 = warpM * WTM + mi * 16 + g;
        ra[mi] = *reinterpret_cast<const uint4*>(As + r0 * kPitch + 16 * t + 8 * half);
        rb[mi] = *reinterpret_cast<const uint4*>(As + (r0 + 8) * kPitch + 16 * t + 8 * half);
      }
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
#pragma unroll
        for (int mi = 0; mi < MI; ++mi) {
          const uint32_t a[4] = {w32(ra[mi], 2 * jj), w32(rb[mi], 2 * jj), w32(ra[mi], 2 * jj + 1),
                                 w32(rb[mi], 2 * jj + 1)};
#pragma unroll
          for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int h = 0; h < 2; ++h) detail::mma16816(acc[mi][ni * 2 + h], a, bfr[ni][jj][h]);
        }
      }
    }
  }
  detail::cp_async_wait<0>();

  const bool evenOut = (out & 1) == 0;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int nj = 0; nj < NI * 2; ++nj) {
      const int col = n0 + warpN * WTN + nj * 8 + 2 * t;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int row = m0 + warpM * WTM + mi * 16 + g + 8 * hr;
        if (row >= m) continue;
        __half* dst = y + (size_t)row * out + col;
        const float v0 = acc[mi][nj][2 * hr], v1 = acc[mi][nj][2 * hr + 1];
        if (evenOut && col + 1 < out) {
          *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(v0, v1);
        } else {
          if (col < out) dst[0] = __float2half(v0);
          if (col + 1 < out) dst[1] = __float2half(v1);
        }
      }
    }
}

}  // namespace detail
}  // namespace awqk
