// Hopper decode GEMV (AWQ, m <= 32): the packed weights and their zero/scale pairs are streamed
// global -> shared by the bulk-copy engine (cp.async.bulk completing on an mbarrier), R stages deep
// per warp, so that ~128 KB per SM are in flight without holding them in registers (the register
// bursts of gemv.cu top out near 64 KB per SM, ~2.3 TB/s). Same math, layout and k order as
// gemv.cu's awq_gemv_kernel: each warp owns a K range of NPW 16-output tiles, lane 0 issues the
// copies, the warp's lanes read their 16-byte fragments from shared memory (conflict-free), and the
// warps of a block reduce through shared memory. The weight copies of the first R stages are issued
// before pdl_wait (weights never depend on the previous kernel).
#include <algorithm>

#include "common.cuh"
#include "gemv_tile.cuh"
#include "internal.h"
#include "kernels.h"
#include "launch.h"

namespace awqk {
namespace {

using detail::mma16816;
using detail::smem_addr;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define AWQ_BULK_GEMV 1
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void bulk_g2s_hint(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                              uint64_t pol) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], "
      "%4;\n" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(pol)
      : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
#endif

using detail::word_of;

constexpr int kMaxWarps = 8;

// EF: evict-first copies; PF: L2 prefetch pf chunks ahead of the copies; EPI: the AddNormEpilogue (internal.h).
template <int MT, int NPW, int U, int R, bool EF = false, bool PF = false, bool EPI = false>
__global__ void __launch_bounds__(kMaxWarps * 32) awq_gemv_bulk_kernel(
    const __half* __restrict__ x, int m, const uint4* __restrict__ wq, const uint2* __restrict__ zs, int in,
    int out, int cpg, int nTiles, int chunksPerWarp, __half* __restrict__ y, int pf, AddNormEpilogue epi) {
#ifdef AWQ_BULK_GEMV
  constexpr int kWBytes = NPW * U * 512;  // weights of one stage: NPW tiles x U chunks x 32 lanes x 16 B
  constexpr int kZBytes = NPW * U * 64;   // zero/scale pairs of one stage (at most U groups per tile)
  constexpr int kStage = kWBytes + kZBytes;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ uint64_t bars[kMaxWarps][R];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int kChunks = in >> 6;
  const int groups = kChunks / cpg;
  const int tile0 = blockIdx.x * NPW;
  const int cBegin = warp * chunksPerWarp;
  const int cEnd = min(cBegin + chunksPerWarp, kChunks);
  const int nSteps = cEnd > cBegin ? (cEnd - cBegin + U - 1) / U : 0;
  unsigned char* ring = smem + warp * R * kStage;
  float* red = reinterpret_cast<float*>(smem + nw * R * kStage);
  int nValid = 0;
#pragma unroll
  for (int p = 0; p < NPW; ++p) nValid += tile0 + p < nTiles ? 1 : 0;

  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) mbar_init(&bars[warp][r], 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncwarp();
  const uint64_t pol = EF ? detail::evict_first_policy() : 0;
  // L2 prefetch of chunks [c0, c1) of the block's tiles (lane 0), pf chunks ahead of the copies.
  auto prefetch = [&](int c0, int c1) {
    c1 = min(c1, cEnd);
    if (c1 <= c0) return;
    const int g0 = c0 / cpg, g1 = (c1 - 1) / cpg + 1;
#pragma unroll
    for (int p = 0; p < NPW; ++p) {
      if (tile0 + p >= nTiles) continue;
      const size_t tile = tile0 + p;
      detail::prefetch_l2_bulk(wq + (tile * kChunks + c0) * 32, (uint32_t)(c1 - c0) * 512);
      detail::prefetch_l2_bulk(zs + (tile * groups + g0) * 8, (uint32_t)(g1 - g0) * 64);
    }
  };
  auto issue = [&](int step) {  // lane 0
    const int slot = step % R;
    const int c0 = cBegin + step * U, c1 = min(c0 + U, cEnd);
    const int g0 = c0 / cpg, g1 = (c1 - 1) / cpg + 1;
    unsigned char* st = ring + slot * kStage;
    mbar_arrive_expect_tx(&bars[warp][slot], (uint32_t)nValid * ((c1 - c0) * 512 + (g1 - g0) * 64));
#pragma unroll
    for (int p = 0; p < NPW; ++p) {
      if (tile0 + p >= nTiles) continue;
      const size_t tile = tile0 + p;
      if (EF)
        bulk_g2s_hint(st + p * U * 512, wq + (tile * kChunks + c0) * 32, (c1 - c0) * 512, &bars[warp][slot], pol);
      else
        bulk_g2s(st + p * U * 512, wq + (tile * kChunks + c0) * 32, (c1 - c0) * 512, &bars[warp][slot]);
      bulk_g2s(st + kWBytes + p * U * 64, zs + (tile * groups + g0) * 8, (g1 - g0) * 64, &bars[warp][slot]);
    }
    if (PF) prefetch(c0 + pf, c1 + pf);
  };
  if (lane == 0) {
    if (PF && pf > R * U) prefetch(cBegin + R * U, cBegin + pf);
    for (int s = 0; s < R && s < nSteps; ++s) issue(s);
  }
  detail::pdl_wait();
  detail::pdl_launch();

  const __half* xrow[MT];
  bool xok[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int token = mt * 8 + g;
    xok[mt] = token < m;
    xrow[mt] = x + (size_t)(xok[mt] ? token : 0) * in + 16 * t;
  }
  float acc[NPW][MT][4] = {};
  for (int step = 0; step < nSteps; ++step) {
    const int slot = step % R;
    mbar_wait(&bars[warp][slot], (step / R) & 1);
    const unsigned char* st = ring + slot * kStage;
    const int c0 = cBegin + step * U, c1 = min(c0 + U, cEnd);
    const int g0 = c0 / cpg;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= c1) break;
      uint4 xv[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if (xok[mt]) {
          const uint4* px = reinterpret_cast<const uint4*>(xrow[mt] + 64 * c);
          xv[mt][0] = __ldg(px);
          xv[mt][1] = __ldg(px + 1);
        } else {
          xv[mt][0] = make_uint4(0, 0, 0, 0);
          xv[mt][1] = make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int p = 0; p < NPW; ++p) {
        const uint4 w = reinterpret_cast<const uint4*>(st + p * U * 512)[u * 32 + lane];
        const uint2 z = reinterpret_cast<const uint2*>(st + kWBytes + p * U * 64)[(c / cpg - g0) * 8 + g];
        __half2 zLo, nzHi;
        detail::zero_operands(z.x, z.y, zLo, nzHi);
        uint32_t d[4][4];
        detail::dequant_qz(w.x, zLo, nzHi, d[0]);
        detail::dequant_qz(w.y, zLo, nzHi, d[1]);
        detail::dequant_qz(w.z, zLo, nzHi, d[2]);
        detail::dequant_qz(w.w, zLo, nzHi, d[3]);
        float cc[MT][4] = {};
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const uint32_t b[2] = {word_of(xv[mt][j >> 1], 2 * (j & 1)), word_of(xv[mt][j >> 1], 2 * (j & 1) + 1)};
            mma16816(cc[mt], d[j], b);
          }
        const float sLo = __high2float(detail::u32_as_h2(z.x));
        const float sHi = __high2float(detail::u32_as_h2(z.y));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          acc[p][mt][0] = fmaf(cc[mt][0], sLo, acc[p][mt][0]);
          acc[p][mt][1] = fmaf(cc[mt][1], sLo, acc[p][mt][1]);
          acc[p][mt][2] = fmaf(cc[mt][2], sHi, acc[p][mt][2]);
          acc[p][mt][3] = fmaf(cc[mt][3], sHi, acc[p][mt][3]);
        }
      }
    }
    // The stage is consumed: order the lanes' shared reads before the copy engine overwrites it.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncwarp();
    if (lane == 0 && step + R < nSteps) issue(step + R);
  }

  if constexpr (EPI) {
    __shared__ float sq[NPW * 8 * 16];
    detail::stage_partials<NPW, MT>(red, acc);
    detail::add_norm_store<NPW, MT>(red, sq, tile0, nTiles, m, out, y, epi);
  } else {
    detail::reduce_store<NPW, MT>(red, acc, tile0, m, out, y);
  }
#endif
}

// Persistent variant: gridDim.x blocks (a few per SM) each own the 16-output tiles blockIdx.x,
// blockIdx.x + gridDim.x, ...; every warp streams its K range of one tile after the other through
// its ring, so the copies of the next tile are in flight while the block reduces the last one (no
// waves of short blocks). Every warp runs the same number of steps per tile (empty ones where its
// K range is short), so the block-wide reductions line up.
template <int MT, int U, int R>
__global__ void __launch_bounds__(kMaxWarps * 32) awq_gemv_persist_kernel(
    const __half* __restrict__ x, int m, const uint4* __restrict__ wq, const uint2* __restrict__ zs, int in,
    int out, int cpg, int nTiles, int chunksPerWarp, __half* __restrict__ y) {
#ifdef AWQ_BULK_GEMV
  constexpr int kWBytes = U * 512;
  constexpr int kZBytes = U * 64;
  constexpr int kStage = kWBytes + kZBytes;
  constexpr int RED = MT * 4;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ uint64_t bars[kMaxWarps][R];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int kChunks = in >> 6;
  const int groups = kChunks / cpg;
  const int cBegin = warp * chunksPerWarp;
  const int cEnd = min(cBegin + chunksPerWarp, kChunks);
  const int stepsPerTile = (chunksPerWarp + U - 1) / U;
  const int nJobs = blockIdx.x < nTiles ? (nTiles - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const int totalSteps = nJobs * stepsPerTile;
  unsigned char* ring = smem + warp * R * kStage;
  float* red = reinterpret_cast<float*>(smem + nw * R * kStage);

  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) mbar_init(&bars[warp][r], 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncwarp();
  auto issue = [&](int q) {  // lane 0
    const int slot = q % R;
    const int job = q / stepsPerTile, s = q - job * stepsPerTile;
    const size_t tile = blockIdx.x + (size_t)job * gridDim.x;
    const int c0 = cBegin + s * U, c1 = min(c0 + U, cEnd);
    unsigned char* st = ring + slot * kStage;
    if (c1 <= c0) {
      mbar_arrive_expect_tx(&bars[warp][slot], 0);
      return;
    }
    const int g0 = c0 / cpg, g1 = (c1 - 1) / cpg + 1;
    mbar_arrive_expect_tx(&bars[warp][slot], (uint32_t)((c1 - c0) * 512 + (g1 - g0) * 64));
    bulk_g2s(st, wq + (tile * kChunks + c0) * 32, (c1 - c0) * 512, &bars[warp][slot]);
    bulk_g2s(st + kWBytes, zs + (tile * groups + g0) * 8, (g1 - g0) * 64, &bars[warp][slot]);
  };
  if (lane == 0)
    for (int q = 0; q < R && q < totalSteps; ++q) issue(q);
  detail::pdl_wait();
  detail::pdl_launch();

  const __half* xrow[MT];
  bool xok[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int token = mt * 8 + g;
    xok[mt] = token < m;
    xrow[mt] = x + (size_t)(xok[mt] ? token : 0) * in + 16 * t;
  }
  float acc[MT][4] = {};
  for (int q = 0; q < totalSteps; ++q) {
    const int slot = q % R;
    const int job = q / stepsPerTile, s = q - job * stepsPerTile;
    mbar_wait(&bars[warp][slot], (q / R) & 1);
    const unsigned char* st = ring + slot * kStage;
    const int c0 = cBegin + s * U, c1 = min(c0 + U, cEnd);
    const int g0 = c0 / cpg;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u;
      if (c >= c1) break;
      uint4 xv[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if (xok[mt]) {
          const uint4* px = reinterpret_cast<const uint4*>(xrow[mt] + 64 * c);
          xv[mt][0] = __ldg(px);
          xv[mt][1] = __ldg(px + 1);
        } else {
          xv[mt][0] = make_uint4(0, 0, 0, 0);
          xv[mt][1] = make_uint4(0, 0, 0, 0);
        }
      }
      const uint4 w = reinterpret_cast<const uint4*>(st)[u * 32 + lane];
      const uint2 z = reinterpret_cast<const uint2*>(st + kWBytes)[(c / cpg - g0) * 8 + g];
      __half2 zLo, nzHi;
      detail::zero_operands(z.x, z.y, zLo, nzHi);
      uint32_t d[4][4];
      detail::dequant_qz(w.x, zLo, nzHi, d[0]);
      detail::dequant_qz(w.y, zLo, nzHi, d[1]);
      detail::dequant_qz(w.z, zLo, nzHi, d[2]);
      detail::dequant_qz(w.w, zLo, nzHi, d[3]);
      float cc[MT][4] = {};
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint32_t b[2] = {word_of(xv[mt][j >> 1], 2 * (j & 1)), word_of(xv[mt][j >> 1], 2 * (j & 1) + 1)};
          mma16816(cc[mt], d[j], b);
        }
      const float sLo = __high2float(detail::u32_as_h2(z.x));
      const float sHi = __high2float(detail::u32_as_h2(z.y));
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        acc[mt][0] = fmaf(cc[mt][0], sLo, acc[mt][0]);
        acc[mt][1] = fmaf(cc[mt][1], sLo, acc[mt][1]);
        acc[mt][2] = fmaf(cc[mt][2], sHi, acc[mt][2]);
        acc[mt][3] = fmaf(cc[mt][3], sHi, acc[mt][3]);
      }
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncwarp();
    if (lane == 0 && q + R < totalSteps) issue(q + R);
    if (s == stepsPerTile - 1) {  // the tile's K is done in every warp: reduce and store it
      const int tile = blockIdx.x + job * gridDim.x;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          red[(warp * RED + mt * 4 + r) * 32 + lane] = acc[mt][r];
          acc[mt][r] = 0.f;
        }
      __syncthreads();
      for (int idx = threadIdx.x; idx < RED * 32; idx += blockDim.x) {
        float sum = 0.f;
        for (int w2 = 0; w2 < nw; ++w2) sum += red[w2 * RED * 32 + idx];
        detail::store_out<MT>(idx, sum, tile, m, out, y);
      }
      __syncthreads();
    }
  }
#endif
}

template <int MT, int U, int R>
cudaError_t launch_persist(const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                           cudaStream_t stream) {
  constexpr int kStage = U * (512 + 64);
  const int nTiles = detail::ceil_div(out, 16);
  const int kChunks = in / 64;
  int nw = kMaxWarps;
  while (nw > 1 && kChunks / nw < U) nw /= 2;
  const int cpw = detail::ceil_div(kChunks, nw);
  const size_t smem = (size_t)nw * R * kStage + (size_t)nw * MT * 4 * 32 * sizeof(float);
  static int occ[64][kMaxWarps + 1] = {};  // blocks per SM, per device and warp count
  static int sms[64] = {};
  int dev = 0;
  cudaGetDevice(&dev);
  int& o = occ[dev & 63][nw];
  if (o == 0) {
    const int maxSmem = kMaxWarps * R * kStage + kMaxWarps * MT * 4 * 32 * (int)sizeof(float);
    cudaError_t e = cudaFuncSetAttribute(awq_gemv_persist_kernel<MT, U, R>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, maxSmem);
    if (e != cudaSuccess) return e;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, awq_gemv_persist_kernel<MT, U, R>, nw * 32, smem);
    if (e != cudaSuccess) return e;
    if (o <= 0) o = 1;
    cudaDeviceGetAttribute(&sms[dev & 63], cudaDevAttrMultiProcessorCount, dev);
  }
  // As many blocks as fit, then fewer so that every block owns the same number of tiles.
  int grid = std::min(nTiles, o * std::max(1, sms[dev & 63]));
  const int jobs = detail::ceil_div(nTiles, grid);
  grid = detail::ceil_div(nTiles, jobs);
  const uint4* wq = static_cast<const uint4*>(packed);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(packed) + awq_weight_bytes(in, out));
  return pdl_launch_kernel(awq_gemv_persist_kernel<MT, U, R>, dim3(grid), dim3(nw * 32), smem, stream, x, m, wq, zs,
                           in, out, group / 64, nTiles, cpw, y);
}

template <int MT, int NPW, int U, int R, bool EF, bool PF, bool EPI>
cudaError_t launch_bulk_k(const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                          cudaStream_t stream, int pf, const AddNormEpilogue& epi) {
  constexpr int kStage = NPW * U * (512 + 64);
  const int nTiles = detail::ceil_div(out, 16);
  const int kChunks = in / 64;
  int nw = kMaxWarps;
  while (nw > 1 && kChunks / nw < U) nw /= 2;
  const int cpw = detail::ceil_div(kChunks, nw);
  const size_t smem = (size_t)nw * R * kStage + (size_t)nw * NPW * MT * 4 * 32 * sizeof(float);
  static unsigned long long configured = 0;  // one bit per device: the attribute is per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  if (!(configured & bit)) {
    const int maxSmem = kMaxWarps * R * kStage + kMaxWarps * NPW * MT * 4 * 32 * (int)sizeof(float);
    cudaError_t e = cudaFuncSetAttribute(awq_gemv_bulk_kernel<MT, NPW, U, R, EF, PF, EPI>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, maxSmem);
    if (e != cudaSuccess) return e;
    configured |= bit;
  }
  const uint4* wq = static_cast<const uint4*>(packed);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(packed) + awq_weight_bytes(in, out));
  return pdl_launch_kernel(awq_gemv_bulk_kernel<MT, NPW, U, R, EF, PF, EPI>, dim3(detail::ceil_div(nTiles, NPW)),
                           dim3(nw * 32), smem, stream, x, m, wq, zs, in, out, group / 64, nTiles, cpw,
                           y, pf, epi);
}

// The kernel build for the prefetch distance in effect and the epilogue (each build configures its own smem).
template <int MT, int NPW, int U, int R, bool EF = false>
cudaError_t launch_bulk(const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                        cudaStream_t stream, const AddNormEpilogue& epi = AddNormEpilogue{}) {
  const int pf = gemv_prefetch().dist;
  if (epi.on) {  // one token tile only (awq_gemv_bulk refuses m > 8 with the epilogue)
    if constexpr (MT == 1) {
      if (pf > 0) return launch_bulk_k<MT, NPW, U, R, EF, true, true>(x, m, packed, in, out, group, y, stream, pf, epi);
      return launch_bulk_k<MT, NPW, U, R, EF, false, true>(x, m, packed, in, out, group, y, stream, 0, epi);
    } else {
      return cudaErrorNotSupported;
    }
  }
  if (pf > 0) return launch_bulk_k<MT, NPW, U, R, EF, true, false>(x, m, packed, in, out, group, y, stream, pf, epi);
  return launch_bulk_k<MT, NPW, U, R, EF, false, false>(x, m, packed, in, out, group, y, stream, 0, epi);
}

// Variants 19..21: NPW = 2 / 4 tiles a block, so each block's read of x (m x in halves, from L1 / L2) feeds 2-4x the
// weights of the one-tile default (at m = 16 / 32 that read is 4x / 8x the block's weight bytes).
template <int MT>
cudaError_t launch_wide(int variant, const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                        cudaStream_t stream, const AddNormEpilogue& epi = AddNormEpilogue{}) {
  if (variant == 19) return launch_bulk<MT, 2, 2, 4>(x, m, packed, in, out, group, y, stream, epi);
  if (variant == 20) return launch_bulk<MT, 4, 2, 3>(x, m, packed, in, out, group, y, stream, epi);
  return launch_bulk<MT, 4, 1, 6>(x, m, packed, in, out, group, y, stream, epi);
}

}  // namespace

bool gemv_bulk_available() {
  static int major[64] = {};
  int dev = 0;
  cudaGetDevice(&dev);
  if (major[dev & 63] == 0) cudaDeviceGetAttribute(&major[dev & 63], cudaDevAttrComputeCapabilityMajor, dev);
  return major[dev & 63] >= 9;
}

cudaError_t awq_gemv_bulk(int variant, const __half* x, int m, const void* packed, int in, int out, int group,
                          __half* y, cudaStream_t stream, const AddNormEpilogue& epi) {
  if (epi.on && (m > 8 || (variant >= 13 && variant <= 15))) return cudaErrorNotSupported;
  if (m <= 8) {
    switch (variant) {
      case 10: return launch_bulk<1, 2, 2, 4>(x, m, packed, in, out, group, y, stream, epi);
      case 11: return launch_bulk<1, 1, 2, 8>(x, m, packed, in, out, group, y, stream, epi);
      case 12: return launch_bulk<1, 1, 4, 3>(x, m, packed, in, out, group, y, stream, epi);
      case 18: return launch_bulk<1, 1, 4, 3, true>(x, m, packed, in, out, group, y, stream, epi);
      case 13: return launch_persist<1, 2, 6>(x, m, packed, in, out, group, y, stream);
      case 14: return launch_persist<1, 4, 4>(x, m, packed, in, out, group, y, stream);
      case 15: return launch_persist<1, 2, 8>(x, m, packed, in, out, group, y, stream);
      case 19:
      case 20:
      case 21: return launch_wide<1>(variant, x, m, packed, in, out, group, y, stream, epi);
      default: return launch_bulk<1, 1, 4, 4>(x, m, packed, in, out, group, y, stream, epi);
    }
  }
  if (variant >= 19 && variant <= 21) {
    if (m <= 16) return launch_wide<2>(variant, x, m, packed, in, out, group, y, stream);
    if (m <= 32) return launch_wide<4>(variant, x, m, packed, in, out, group, y, stream);
  }
  if (variant >= 13 && variant <= 15) {
    if (m <= 16) return launch_persist<2, 2, 6>(x, m, packed, in, out, group, y, stream);
    if (m <= 32) return launch_persist<4, 2, 6>(x, m, packed, in, out, group, y, stream);
  }
  if (m <= 16) return launch_bulk<2, 1, 4, 4>(x, m, packed, in, out, group, y, stream);
  if (m <= 32) return launch_bulk<4, 1, 4, 4>(x, m, packed, in, out, group, y, stream);
  return cudaErrorInvalidValue;
}

}  // namespace awqk
