// Decode-path linears (m <= 32): stream the weights once at full bandwidth. "Swap AB": the weight
// tile W^T (16 outputs x 16 k) is the mma A operand and x^T (16 k x 8 tokens) the B operand, so
// m <= 8 tokens fill one n8 mma tile. Each warp covers 16*NPW outputs over a slice of K; the warps
// of a block split K and reduce through shared memory (no workspace, no second kernel).
//
// k order: inside every 64-k chunk, mma k-index (tile j, 2t+h) maps to k = 16t + 4j + h and
// (2t+8+h) to 16t + 4j + 2 + h, so one lane's x (and dense W) values are 16 contiguous halves.

#include <algorithm>
#include <cstdlib>

#include "common.cuh"
#include "gemv_tile.cuh"
#include "internal.h"
#include "kernels.h"
#include "launch.h"

namespace awqk {
namespace {

using detail::load_x;
using detail::mma16816;
using detail::reduce_store;
using detail::store_out;
using detail::word_of;
using detail::x_rows;

// One block = NPW 16-output tiles; its warps split K. Each warp streams its chunk range in
// register bursts of U chunks; with DB two bursts alternate (loads of one in flight while the
// other is computed). The mma runs on exact (q - z) values; the group scale is applied to the fp32
// partial of each chunk. Measured on the H100 at m = 1 (13B shapes): 2 tiles per warp, 2-chunk
// double-buffered bursts and 8 warps (variant 2, the default) beat single-buffered bursts of
// 4..16 chunks, 1 tile per warp, a cp.async shared-memory ring and a cluster split-K variant.
//
// GLU: the matrix is gate|up interleaved by 8 (kernels.h, awq_linear_silu), so outputs 0..7 of a 16-output tile are
// gate and 8..15 the matching up: the block writes act (m, out / 2) = silu(gate) * up instead of y.
template <int MT, int NPW, int U, bool DB, int MINB, bool EF = false, bool PF = false, bool GLU = false>
__global__ void __launch_bounds__(256, MINB) awq_gemv_kernel(const __half* __restrict__ x, int m,
                                                      const uint4* __restrict__ wq,
                                                      const uint2* __restrict__ zs, int in, int out,
                                                      int chunksPerGroup, int groupShift, int nTiles,
                                                      int chunksPerWarp, __half* __restrict__ y, int pf,
                                                      int pfMode) {
  const int groups = (in >> 6) / chunksPerGroup;
  extern __shared__ float red[];
  constexpr int R = NPW * MT * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int kChunks = in >> 6;
  const int tile0 = blockIdx.x * NPW;
  const int cBegin = warp * chunksPerWarp;
  const int cEnd = min(cBegin + chunksPerWarp, kChunks);
  float acc[NPW][MT][4] = {};
  const __half* xrow[MT];
  bool xok[MT];
  x_rows<MT>(x, m, in, g, t, xrow, xok);
  const uint4* wbase[NPW];
  const uint2* zbase[NPW];
  const uint4* wtile[NPW];
  const uint2* ztile[NPW];
  bool tileOk[NPW];
#pragma unroll
  for (int p = 0; p < NPW; ++p) {
    tileOk[p] = tile0 + p < nTiles;
    const int tl = tileOk[p] ? tile0 + p : 0;
    wtile[p] = wq + (size_t)tl * kChunks * 32;
    ztile[p] = zs + (size_t)tl * groups * 8;  // zero/scale pairs are tile-major
    wbase[p] = wtile[p] + lane;
    zbase[p] = ztile[p] + g;
  }
  const uint64_t pol = EF ? detail::evict_first_policy() : 0;  // EF: weights leave L2 first
  // L2 prefetch pf chunks ahead of the loads (issued with each burst's loads; the first pf chunks now).
  if (PF)
    detail::prefetch_chunks<NPW>(wtile, ztile, tileOk, cBegin, cBegin + pf, cEnd, chunksPerGroup, pfMode, lane);

  auto load = [&](uint4 (&w)[U][NPW], uint2 (&z)[U][NPW], int c0) {
    if (PF)
      detail::prefetch_chunks<NPW>(wtile, ztile, tileOk, c0 + pf, c0 + pf + U, cEnd, chunksPerGroup, pfMode, lane);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      const int grp = groupShift >= 0 ? c >> groupShift : c / chunksPerGroup;
#pragma unroll
      for (int p = 0; p < NPW; ++p) {
        if (c < cEnd && tileOk[p]) {
          w[u][p] = EF ? detail::ld_stream16_hint(wbase[p] + (size_t)c * 32, pol)
                       : detail::ld_stream16(wbase[p] + (size_t)c * 32);
          z[u][p] = __ldg(zbase[p] + grp * 8);
        } else {
          w[u][p] = make_uint4(0, 0, 0, 0);
          z[u][p] = make_uint2(0x64006400u, 0x64006400u);
        }
      }
    }
  };
  auto compute = [&](const uint4 (&w)[U][NPW], const uint2 (&z)[U][NPW], int c0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= cEnd) break;
      uint4 xv[MT][2];
      load_x<MT>(xrow, xok, c, true, xv);
#pragma unroll
      for (int p = 0; p < NPW; ++p) {
        __half2 zLo, nzHi;
        detail::zero_operands(z[u][p].x, z[u][p].y, zLo, nzHi);
        uint32_t d[4][4];
        detail::dequant_qz(w[u][p].x, zLo, nzHi, d[0]);
        detail::dequant_qz(w[u][p].y, zLo, nzHi, d[1]);
        detail::dequant_qz(w[u][p].z, zLo, nzHi, d[2]);
        detail::dequant_qz(w[u][p].w, zLo, nzHi, d[3]);
        float cc[MT][4] = {};
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const uint32_t b[2] = {word_of(xv[mt], 2 * j), word_of(xv[mt], 2 * j + 1)};
            mma16816(cc[mt], d[j], b);
          }
        const float sLo = __high2float(detail::u32_as_h2(z[u][p].x));
        const float sHi = __high2float(detail::u32_as_h2(z[u][p].y));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          acc[p][mt][0] = fmaf(cc[mt][0], sLo, acc[p][mt][0]);
          acc[p][mt][1] = fmaf(cc[mt][1], sLo, acc[p][mt][1]);
          acc[p][mt][2] = fmaf(cc[mt][2], sHi, acc[p][mt][2]);
          acc[p][mt][3] = fmaf(cc[mt][3], sHi, acc[p][mt][3]);
        }
      }
    }
  };

  if constexpr (DB) {
    uint4 wA[U][NPW], wB[U][NPW];
    uint2 zA[U][NPW], zB[U][NPW];
    // Weights only: both bursts are issued before the previous kernel has finished (PDL).
    load(wA, zA, cBegin);
    load(wB, zB, cBegin + U);
    detail::pdl_wait();
    detail::pdl_launch();
    for (int c0 = cBegin; c0 < cEnd; c0 += 2 * U) {
      compute(wA, zA, c0);
      load(wA, zA, c0 + 2 * U);
      compute(wB, zB, c0 + U);
      load(wB, zB, c0 + 3 * U);
    }
  } else {
    detail::pdl_wait();
    detail::pdl_launch();
    for (int c0 = cBegin; c0 < cEnd; c0 += U) {
      uint4 wA[U][NPW];
      uint2 zA[U][NPW];
      load(wA, zA, c0);
      compute(wA, zA, c0);
    }
  }

  detail::stage_partials<NPW, MT>(red, acc);
  if constexpr (GLU) {
    // red entry idx = ((p MT + mt) 4 + r) 32 + lane: r = 0, 1 are row g of the tile (gate output g), r = 2, 3 (idx
    // + 64) row g + 8 (the matching up output), for tokens 8 mt + 2 t + (r & 1).
    const int actCols = out / 2;
    for (int idx = threadIdx.x; idx < R * 32; idx += blockDim.x) {
      const int l = idx & 31, e = idx >> 5, r = e & 3;
      if (r >= 2) continue;
      float gs = 0.f, us = 0.f;
      for (int w = 0; w < nw; ++w) {
        gs += red[w * R * 32 + idx];
        us += red[w * R * 32 + idx + 64];
      }
      const int pm = e >> 2, mt = pm % MT, p = pm / MT;
      const int n = 8 * (tile0 + p) + (l >> 2);
      const int token = 8 * mt + 2 * (l & 3) + (r & 1);
      if (n < actCols && token < m) y[(size_t)token * actCols + n] = __float2half(detail::silu_product(gs, us));
    }
  } else {
    for (int idx = threadIdx.x; idx < R * 32; idx += blockDim.x) {
      float sum = 0.f;
      for (int w = 0; w < nw; ++w) sum += red[w * R * 32 + idx];
      store_out<MT>(idx & (MT * 128 - 1), sum, tile0 + idx / (MT * 128), m, out, y);
    }
  }
}

// Dense W (out, in): lane reads W[n][64c + 16t .. +15] for rows n = 16*tile + g and + 8.
template <int MT, int U>
__global__ void __launch_bounds__(512) dense_gemv_kernel(const __half* __restrict__ x, int m,
                                                        const __half* __restrict__ w, int in,
                                                        int out, int chunksPerWarp,
                                                        __half* __restrict__ y) {
  extern __shared__ float red[];
  detail::pdl_wait();
  detail::pdl_launch();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int kChunks = in >> 6;
  const int tile0 = blockIdx.x;
  const int cBegin = warp * chunksPerWarp;
  const int cEnd = min(cBegin + chunksPerWarp, kChunks);
  float acc[1][MT][4] = {};
  const __half* xrow[MT];
  bool xok[MT];
  x_rows<MT>(x, m, in, g, t, xrow, xok);
  const int n0 = 16 * tile0 + g, n1 = n0 + 8;
  const bool ok0 = n0 < out, ok1 = n1 < out;
  const __half* w0 = w + (size_t)(ok0 ? n0 : 0) * in + 16 * t;
  const __half* w1 = w + (size_t)(ok1 ? n1 : 0) * in + 16 * t;
  for (int c0 = cBegin; c0 < cEnd; c0 += U) {
    uint4 wa[U][2], wb[U][2];
    uint4 xv[U][MT][2];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      const bool ok = c < cEnd;
      const uint4 zero = make_uint4(0, 0, 0, 0);
      wa[u][0] = ok && ok0 ? detail::ld_stream16(w0 + 64 * c) : zero;
      wa[u][1] = ok && ok0 ? detail::ld_stream16(w0 + 64 * c + 8) : zero;
      wb[u][0] = ok && ok1 ? detail::ld_stream16(w1 + 64 * c) : zero;
      wb[u][1] = ok && ok1 ? detail::ld_stream16(w1 + 64 * c + 8) : zero;
      load_x<MT>(xrow, xok, c, ok, xv[u]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (c0 + u >= cEnd) break;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t a[4] = {word_of(wa[u], 2 * j), word_of(wb[u], 2 * j), word_of(wa[u], 2 * j + 1),
                               word_of(wb[u], 2 * j + 1)};
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint32_t b[2] = {word_of(xv[u][mt], 2 * j), word_of(xv[u][mt], 2 * j + 1)};
          mma16816(acc[0][mt], a, b);
        }
      }
    }
  }
  reduce_store<1, MT>(red, acc, tile0, m, out, y);
}

int g_sms[64] = {};
int num_sms() {
  int dev = 0;
  cudaGetDevice(&dev);
  int& n = g_sms[dev & 63];
  if (n == 0) {
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    if (n <= 0) n = 132;
  }
  return n;
}

// Warps per block: enough warps in total to keep ~16 per SM streaming, and >= 2 chunks each.
int pick_warps(int blocks, int kChunks) {
  int nw = 16;
  while (nw > 4 && (long)blocks * nw >= 2L * num_sms() * 16) nw /= 2;
  while (nw > 1 && kChunks / nw < 2) nw /= 2;
  return nw;
}

template <int MT, int NPW, int U, bool DB, int MINB = (MT == 1 && NPW == 1 && DB && U <= 2) ? 3 : 1,
          bool EF = false, bool GLU = false>
cudaError_t launch_awq_npw(const __half* x, int m, const uint4* wq, const uint2* zs, int in, int out,
                           int group, int nTiles, int maxWarps, __half* y, cudaStream_t stream) {
  const int kChunks = in / 64;
  int nw = maxWarps;
  while (nw > 1 && kChunks / nw < 2 * U) nw /= 2;
  const int cpw = detail::ceil_div(kChunks, nw);
  const size_t smem = (size_t)nw * NPW * MT * 4 * 32 * sizeof(float);
  const int cpg = group / 64;
  const int groupShift = (cpg & (cpg - 1)) == 0 ? __builtin_ctz(cpg) : -1;
  const GemvPrefetch pf = gemv_prefetch();
  const dim3 grid(detail::ceil_div(nTiles, NPW));
  if (pf.dist > 0)  // the prefetching build of the kernel only where it is asked for (it holds more registers)
    return pdl_launch_kernel(awq_gemv_kernel<MT, NPW, U, DB, MINB, EF, true, GLU>, grid, dim3(nw * 32), smem, stream, x,
                             m, wq, zs, in, out, cpg, groupShift, nTiles, cpw, y, pf.dist, pf.mode);
  return pdl_launch_kernel(awq_gemv_kernel<MT, NPW, U, DB, MINB, EF, false, GLU>, grid, dim3(nw * 32), smem, stream, x,
                           m, wq, zs, in, out, cpg, groupShift, nTiles, cpw, y, 0, 1);
}

GemvConfig g_override;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// GEMV variant: the benchmark override, else AWQ_GEMV_VARIANT in the environment, else 0 (auto).
int default_variant() {
  static int v = -1;
  if (v < 0) {
    const char* env = std::getenv("AWQ_GEMV_VARIANT");
    v = env != nullptr ? std::max(0, std::atoi(env)) : 0;
  }
  return g_override.variant != 0 ? g_override.variant : v;
}

// Auto choice, from the H200 sweep of kernel-tests (13B shapes, m <= 8): wide matrices (>= 900
// 16-output tiles) on the register kernel with 2 tiles x 4-chunk bursts per warp in 4-warp blocks
// (one resident wave), narrow ones on the bulk-copy ring with 3 blocks per SM; m > 8 on the
// bulk-copy ring (the register kernel needs twice the registers per token tile).
int auto_variant(int m, int nTiles, int in, int out) {
  if (!gemv_bulk_available()) return 2;
  if (m > 8) return narrow_gemv_path(m, in, out) && gemv_bulk_variant(narrow_gemv_variant()) ? narrow_gemv_variant() : 9;
  if (nTiles >= 900) return 3;
  // Narrow matrices (o, down): the bulk-copy ring with an evict-first policy on the weights (variant 18; the kernel
  // sweep of 2026-12-07 on an H200: down 17.2 -> 16.2 us at m = 1, 20.2 -> 18.5 at m = 8; o 7.0 -> 6.9, 7.6 -> 7.4;
  // whole steps on an H100 +0.4..+2.0 % at batch 1 / 4 / 8). AWQ_GEMV_NARROW_EF=0: without the policy (variant 12).
  static const bool narrowEf = env_flag("AWQ_GEMV_NARROW_EF", true);
  return narrowEf ? 18 : 12;
}

template <int MT>
cudaError_t launch_awq(const __half* x, int m, const void* packed, int in, int out, int group,
                       __half* y, cudaStream_t stream) {
  const int nTiles = detail::ceil_div(out, 16);
  const uint4* wq = static_cast<const uint4*>(packed);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(packed) +
                                                   awq_weight_bytes(in, out));
  if constexpr (MT == 1) {
    int v = default_variant();
    if (v == 0) v = auto_variant(m, nTiles, in, out);
    switch (v) {
      case 1: return launch_awq_npw<1, 1, 4, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
      case 3: return launch_awq_npw<1, 2, 4, false>(x, m, wq, zs, in, out, group, nTiles, 4, y, stream);
      case 4: return launch_awq_npw<1, 1, 8, false>(x, m, wq, zs, in, out, group, nTiles, 4, y, stream);
      case 5: return launch_awq_npw<1, 1, 8, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
      case 6: return launch_awq_npw<1, 2, 4, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
      case 7: return launch_awq_npw<1, 1, 4, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
      case 8: return launch_awq_npw<1, 4, 2, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
      case 16: return launch_awq_npw<1, 2, 4, false, 1, true>(x, m, wq, zs, in, out, group, nTiles, 4, y, stream);
      case 17: return launch_awq_npw<1, 2, 2, true, 1, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
      default: return launch_awq_npw<1, 2, 2, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
    }
  }
  return launch_awq_npw<MT, 1, 4, true>(x, m, wq, zs, in, out, group, nTiles, 8, y, stream);
}

template <int MT, int U>
cudaError_t launch_dense(const __half* x, int m, const __half* w, int in, int out, __half* y,
                         cudaStream_t stream) {
  const int nTiles = detail::ceil_div(out, 16);
  const int kChunks = in / 64;
  const int nw = pick_warps(nTiles, kChunks);
  const int cpw = detail::ceil_div(kChunks, nw);
  const size_t smem = (size_t)nw * MT * 4 * 32 * sizeof(float);
  return pdl_launch_kernel(dense_gemv_kernel<MT, U>, dim3(nTiles), dim3(nw * 32), smem, stream, x, m, w, in, out,
                           cpw, y);
}

}  // namespace

void awq_gemv_override(GemvConfig c) { g_override = c; }

// Prefetch distance (chunks) and mode: the override, else AWQ_GEMV_PF / AWQ_GEMV_PF_MODE, else off.
GemvPrefetch gemv_prefetch() {
  static const int envDist = env_int("AWQ_GEMV_PF", 0);
  static const int envMode = env_int("AWQ_GEMV_PF_MODE", 1);
  GemvPrefetch p{g_override.pf >= 0 ? g_override.pf : envDist, g_override.pfMode > 0 ? g_override.pfMode : envMode};
  if (p.mode != 2) p.mode = 1;
  if (p.dist < 0) p.dist = 0;
  return p;
}

cudaError_t awq_gemv(const __half* x, int m, const void* packed, int in, int out, int group,
                     __half* y, cudaStream_t stream) {
  int variant = default_variant();
  if (variant == 0) variant = auto_variant(m, detail::ceil_div(out, 16), in, out);
  if (gemv_bulk_variant(variant) && gemv_bulk_available())
    return awq_gemv_bulk(variant, x, m, packed, in, out, group, y, stream);
  if (m <= 8) return launch_awq<1>(x, m, packed, in, out, group, y, stream);
  if (m <= 16) return launch_awq<2>(x, m, packed, in, out, group, y, stream);
  if (m <= 32) return launch_awq<4>(x, m, packed, in, out, group, y, stream);
  return cudaErrorInvalidValue;
}

// The gate|up linear + SiLU product at m <= 8 (awq_linear_silu): the register kernel in variant 3's shape (2 tiles x
// 4-chunk bursts a warp, 4-warp blocks; the auto choice for matrices as wide as gate|up), or variant 2's where forced.
cudaError_t awq_gemv_glu(const __half* x, int m, const void* packed, int in, int out, int group, __half* act,
                         cudaStream_t stream) {
  if (m < 1 || m > 8 || out % 16 != 0) return cudaErrorNotSupported;
  const int nTiles = out / 16;
  const uint4* wq = static_cast<const uint4*>(packed);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(packed) + awq_weight_bytes(in, out));
  if (default_variant() == 2)
    return launch_awq_npw<1, 2, 2, true, 1, false, true>(x, m, wq, zs, in, out, group, nTiles, 8, act, stream);
  return launch_awq_npw<1, 2, 4, false, 1, false, true>(x, m, wq, zs, in, out, group, nTiles, 4, act, stream);
}

cudaError_t awq_linear_add_rmsnorm(const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                                   float* residual, const __half* normWeight, float eps, __half* normed,
                                   void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  static const bool enabled = env_int("AWQ_GEMV_ADDNORM", 0) != 0;
  if (!enabled) return cudaErrorNotSupported;
  if (m < 0 || !awq_shape_ok(in, out, group)) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  if (!x || !packed || !y || !residual || !normWeight || !normed) return cudaErrorInvalidValue;
  const int nTiles = detail::ceil_div(out, 16);
  const size_t need = kLinearCounters * sizeof(int) + (size_t)m * nTiles * sizeof(float);
  if (m > 8 || workspace == nullptr || workspaceBytes < need || !gemv_bulk_available()) return cudaErrorNotSupported;
  int v = default_variant();
  if (v == 0) v = auto_variant(m, nTiles, in, out);
  if (!gemv_bulk_variant(v)) return cudaErrorNotSupported;
  AddNormEpilogue epi;
  epi.on = true;
  epi.residual = residual;
  epi.weight = normWeight;
  epi.normed = normed;
  epi.counter = static_cast<int*>(workspace) + kLinearCounters - 1;
  epi.partial = reinterpret_cast<float*>(static_cast<int*>(workspace) + kLinearCounters);
  epi.eps = eps;
  return awq_gemv_bulk(v, x, m, packed, in, out, group, y, stream, epi);
}

cudaError_t dense_gemv(const __half* x, int m, const __half* w, int in, int out, __half* y,
                       cudaStream_t stream) {
  if (m <= 8) return launch_dense<1, 4>(x, m, w, in, out, y, stream);
  if (m <= 16) return launch_dense<2, 2>(x, m, w, in, out, y, stream);
  if (m <= 32) return launch_dense<4, 1>(x, m, w, in, out, y, stream);
  return cudaErrorInvalidValue;
}

}  // namespace awqk
