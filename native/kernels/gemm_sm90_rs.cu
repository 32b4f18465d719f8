// sm_90a (Hopper) AWQ decode GEMM, "swap-AB" with the weights in registers: y^T = W * x^T, where the
// dequantized weights are the wgmma A operand (registers) and x^T the B operand (shared memory).
//
// Block = 2 warpgroups = 128 outputs (8 16-output tiles of the packed layout, one per warp) x N rows of x
// (the wgmma n: 8..128). Each 64-deep chunk of k arrives through cp.async in a ring of stages: x rows into a
// 128-byte-swizzled K-major tile, the packed int4 weights (one uint4 per lane and tile) and their zero/scale
// pairs as they are in memory. Every lane then builds its A fragments straight from shared memory: the packed
// layout gives lane (g, t) the k range 16t..16t+15 of outputs g and g+8, while the fragment of k-step kk wants
// k = 16kk + {2t, 2t+1, 2t+8, 2t+9}; those sit in the uint4 of lane (g, kk), two bytes of two of its words,
// which one prmt gathers into a word of the packed form that dequant_word turns into the fragment. So no
// dequantized tile is written to shared memory and no barrier separates dequantization from the tensor cores:
// each warpgroup dequantizes chunk r while its wgmmas of chunk r-1 run.
//
// Split-K over gridDim.z as in gemm_sm90.cu (the shared epilogue of wgmma.cuh). Code built for any other
// architecture traps: the launcher only runs it on cc 9.x, where the sm_90a cubin is the one loaded.
#include <algorithm>

#include "common.cuh"
#include "internal.h"
#include "launch.h"
#include "wgmma.cuh"

namespace awqk {
namespace {

constexpr int kOutPerBlock = 128;  // 2 warpgroups x 4 warps x 16 outputs

// N rows of x a block (the wgmma n), KSTEP 64-deep chunks a stage (one barrier per stage), MINB blocks an SM.
template <int N, int KSTEP, int MINB>
struct RsCfg {
  static constexpr int kW = N * 128;           // packed W after the x tile (N rows x 128 B)
  static constexpr int kZ = kW + 8 * 32 * 16;  // zero/scale pairs after the 8 tiles' packed W
  static constexpr int kSub = (kZ + 8 * 8 * 8 + 1023) / 1024 * 1024;  // one chunk
  static constexpr int kStage = KSTEP * kSub;
  // About 104 KB of stages for two blocks an SM (more bytes in flight, one block's prologue and epilogue
  // under the other's main loop), 220 KB for one.
  static constexpr int kStages = std::min(16, ((MINB == 1 ? 220 : 104) * 1024) / kStage);
  static constexpr int kDist = kStages - 2;  // prefetch distance (a stage is reused 2 iterations later)
  static constexpr int kTotal = kStages * kStage + 1024;
  static_assert(kDist >= 2, "stage ring");
};


// Grid: x = row tile (fastest, so that the row tiles of one weight tile run together and share its reads in
// L2) + rowTiles * output block, z = split.
template <int N, int KSTEP, int MINB>
__global__ void __launch_bounds__(256, MINB)
    gemm_rs_kernel(const __half* __restrict__ x, int m, const void* __restrict__ wptr, int in, int out,
                   int chunksPerGroup, int rowTiles, __half* __restrict__ y, float* __restrict__ ws,
                   int* __restrict__ counters) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
  using C = RsCfg<N, KSTEP, MINB>;
  detail::pdl_wait();
  detail::pdl_launch();
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using detail::swz;
  constexpr int kStages = C::kStages, kDist = C::kDist;
  __shared__ int sLast;
  unsigned char* smem = smemRaw + ((1024 - (detail::smem_addr(smemRaw) & 1023)) & 1023);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int b0 = (blockIdx.x % rowTiles) * N;                          // first row of x
  const int tile0 = (blockIdx.x / rowTiles) * (kOutPerBlock / 16);     // first 16-output tile
  const int kChunks = in >> 6;
  const int S = gridDim.z, z = blockIdx.z;
  const int cBase = (int)((long)kChunks * z / S);
  const int nCh = (int)((long)kChunks * (z + 1) / S) - cBase;
  const int nIt = (nCh + KSTEP - 1) / KSTEP;
  const int nTiles = (out + 15) >> 4;
  const int zGroups = kChunks / chunksPerGroup;
  const uint4* wq = static_cast<const uint4*>(wptr);
  const uint2* zs =
      reinterpret_cast<const uint2*>(static_cast<const char*>(wptr) + (size_t)nTiles * 16 * in / 2);

  auto load_stage = [&](int s, int it) {
#pragma unroll
    for (int j = 0; j < KSTEP; ++j) {
      const int cr = it * KSTEP + j;
      if (cr >= nCh) break;
      const int c = cBase + cr;
      unsigned char* base = smem + s * C::kStage + j * C::kSub;
      for (int i = tid; i < N * 8; i += 256) {
        const int row = i >> 3, ch = i & 7, grow = b0 + row;
        const bool ok = grow < m;
        detail::cp_async16(base + swz(row, ch), x + (size_t)(ok ? grow : 0) * in + 64 * c + ch * 8, ok);
      }
      {  // 8 tiles x 32 lanes: one uint4 per thread
        const int tile = tile0 + (tid >> 5);
        const bool ok = tile < nTiles;
        detail::cp_async16(base + C::kW + tid * 16, wq + ((size_t)(ok ? tile : 0) * kChunks + c) * 32 + (tid & 31),
                           ok);
      }
      if (tid < 64) {
        const int zt = tile0 + (tid >> 3);
        const bool ok = zt < nTiles;
        detail::cp_async8(base + C::kZ + tid * 8,
                          zs + ((size_t)(ok ? zt : 0) * zGroups + c / chunksPerGroup) * 8 + (tid & 7), ok);
      }
    }
  };

  // Lane (g, t) of warp `warp` (tile `warp` of the block): the bytes of lane (g, kk)'s words t/2 and 2 + t/2
  // that hold k = 16kk + 2t + {0, 1} and 16kk + 2t + 8 + {0, 1}, as a packed word (see dequant_qz's byte
  // order: bytes 0/2 = k+0/k+1, bytes 1/3 = k+2/k+3).
  const uint32_t sel = (t & 1) ? 0x7351u : 0x6240u;
  const bool hiWord = (t >> 1) != 0;
  float acc[N / 2];  // first written by the scaleD = 0 wgmma of the first chunk

#pragma unroll
  for (int s = 0; s < kDist; ++s) {
    if (s < nIt) load_stage(s, s);
    detail::cp_async_commit();
  }
  // One iteration: stage `it` -> fragments `cur` -> wgmmas; then retire the previous iteration's wgmmas (their
  // fragments `prev` stay live until then).
  auto body = [&](int it, uint32_t(&cur)[KSTEP * 16], uint32_t(&prev)[KSTEP * 16]) {
    detail::cp_async_wait<kDist - 1>();
    detail::fence_proxy_async();
    __syncthreads();  // stage `it` landed for everyone; every wgmma of iteration it-2 has completed
    if (it + kDist < nIt) load_stage((it + kDist) % kStages, it + kDist);
    detail::cp_async_commit();
    const unsigned char* st = smem + (it % kStages) * C::kStage;
#pragma unroll
    for (int j = 0; j < KSTEP; ++j) {
      const unsigned char* sub = st + j * C::kSub;
      const uint4* wl = reinterpret_cast<const uint4*>(sub + C::kW) + warp * 32 + 4 * g;
      const uint2 zz = reinterpret_cast<const uint2*>(sub + C::kZ)[warp * 8 + g];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint4 v = wl[kk];
        const uint32_t lo = hiWord ? v.y : v.x, hi = hiWord ? v.w : v.z;
        detail::dequant_word(__byte_perm(lo, hi, sel), zz.x, zz.y, &cur[16 * j + 4 * kk]);
      }
    }
    detail::keep_regs(cur);
    detail::wgmma_fence();
#pragma unroll
    for (int j = 0; j < KSTEP; ++j) {
      const int cr = it * KSTEP + j;
      if (KSTEP > 1 && cr >= nCh) break;
      const uint64_t descB = detail::sw128_desc(st + j * C::kSub);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) detail::wgmma_rs<N>(acc, &cur[16 * j + 4 * kk], descB + 2 * kk, cr + kk > 0);
    }
    detail::wgmma_commit();
    detail::wgmma_wait<1>();
    detail::keep_regs(prev);
  };
  uint32_t fa[KSTEP * 16], fb[KSTEP * 16];
#pragma unroll
  for (int i = 0; i < KSTEP * 16; ++i) fb[i] = 0;
  for (int it = 0; it < nIt; it += 2) {
    body(it, fa, fb);
    if (it + 1 < nIt) body(it + 1, fb, fa);
  }
  detail::wgmma_wait<0>();
  detail::keep_regs(acc);
  detail::keep_regs(fa);
  detail::keep_regs(fb);
  detail::cp_async_wait<0>();

  // acc[4j + 2h + e] = (output 16 * tile + g + 8h, row 8j + 2t + e)
  const int oBase = (tile0 + warp) * 16 + g;
  auto pos = [&](int i) { return make_int2(b0 + 8 * (i >> 2) + 2 * t + (i & 1), oBase + 8 * ((i >> 1) & 1)); };
  if (S > 1 && !detail::splitk_gather<N / 2, false>(acc, pos, m, out, ws, counters, S, z, blockIdx.x, &sLast))
    return;
  detail::store_acc<N / 2, false>(acc, pos, m, out, y);
#else
  __trap();
#endif
}

template <int N, int KSTEP, int MINB>
cudaError_t launch_rs(const __half* x, int m, const void* w, int in, int out, int group, __half* y, int splits,
                      float* ws, int* counters, cudaStream_t stream) {
  constexpr int smem = RsCfg<N, KSTEP, MINB>::kTotal;
  static unsigned long long configured = 0;  // one bit per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  if (!(configured & bit)) {
    cudaError_t e = cudaFuncSetAttribute(gemm_rs_kernel<N, KSTEP, MINB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         smem);
    if (e != cudaSuccess) return e;
    configured |= bit;
  }
  const int rowTiles = detail::ceil_div(m, N);
  dim3 grid(rowTiles * detail::ceil_div(out, kOutPerBlock), 1, splits);
  return pdl_launch_kernel(gemm_rs_kernel<N, KSTEP, MINB>, grid, dim3(256), smem, stream, x, m, w, in, out,
                           group / 64, rowTiles, y, ws, counters);
}

}  // namespace

// Variants of the H100 sweep (one chunk a stage was always slower: ptxas serializes its wgmmas).
const RsShape kRsShapes[] = {
    {64, 2, 1},  {32, 1, 2},  {64, 4, 1}, {64, 2, 2},
    {128, 1, 1}, {128, 2, 1}, {32, 2, 2}, {16, 2, 2},
};

RsShape gemm_rs_shape(int variant, int m) {
  if (variant >= 1 && variant <= (int)(sizeof kRsShapes / sizeof kRsShapes[0])) return kRsShapes[variant - 1];
  if (m <= 16) return {16, 2, 2};
  if (m <= 32) return {32, 2, 2};
  return {64, 2, 2};
}

cudaError_t gemm_sm90_rs(RsShape sh, const __half* x, int m, const void* w, int in, int out, int group, __half* y,
                         int splits, float* ws, int* counters, cudaStream_t stream) {
  if (splits > 1 && (ws == nullptr || counters == nullptr)) return cudaErrorInvalidValue;
  const int key = sh.rows * 100 + sh.kstep * 10 + sh.minBlocks;
  switch (key) {
    case 1622: return launch_rs<16, 2, 2>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 3212: return launch_rs<32, 1, 2>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 3222: return launch_rs<32, 2, 2>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 6422: return launch_rs<64, 2, 2>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 6421: return launch_rs<64, 2, 1>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 6441: return launch_rs<64, 4, 1>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 12811: return launch_rs<128, 1, 1>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    case 12821: return launch_rs<128, 2, 1>(x, m, w, in, out, group, y, splits, ws, counters, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace awqk
