// sm_90a (Hopper) prefill GEMM: wgmma.mma_async m64n128k16 from shared memory. Block = 2
// warpgroups = 128 (m) x 128 (n) output tile; A (x) and dense B arrive through cp.async into
// 128-byte-swizzled K-major tiles; AWQ B is staged packed (int4) and dequantized by all threads
// into a swizzled fp16 tile (double buffered) while the previous chunk's wgmmas run. Code built
// for any other architecture runs the mma.sync body of gemm_mma.cuh instead, so the kernel is
// correct whichever cubin the driver picks.
#include "common.cuh"
#include "gemm_mma.cuh"
#include "internal.h"

namespace awqk {
namespace {

constexpr int kBM = 128, kBN = 128, kStages = 6, kDist = kStages - 2;

template <bool AWQ>
struct Sm90Smem {
  static constexpr int kStage = AWQ ? 21504 : 32768;  // A 16 KB + (packed B 4 KB + zs 512 B | B 16 KB)
  static constexpr int kB = 16384;                    // offset of B inside a stage
  static constexpr int kZ = 20480;                    // offset of the AWQ zero/scale pairs
  static constexpr int kBh = AWQ ? 2 * kBN * 128 : 0; // two fp16 B tiles (AWQ)
  static constexpr int kTotal = kStages * kStage + kBh + 1024;
  static constexpr int kFallbackStages = AWQ ? 4 : 3;
  static_assert(kTotal >= detail::Tile<128, 128, AWQ>::kStageBytes * kFallbackStages, "fallback smem");
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 B apart.
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
  const uint32_t a = detail::smem_addr(p);
  return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)64 << 32) |
         ((uint64_t)1 << 62);
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void wgmma_m64n128k16(float* d, uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB));
}
// Byte offset of 16-byte chunk `ch` of row `row` in a 128-byte-swizzled tile.
__device__ __forceinline__ int swz(int row, int ch) { return row * 128 + ((ch ^ (row & 7)) << 4); }
#endif

template <bool AWQ>
__global__ void __launch_bounds__(256, 1)
    gemm_sm90_kernel(const __half* __restrict__ x, int m, const void* __restrict__ wptr, int in,
                     int out, int chunksPerGroup, __half* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Sm = Sm90Smem<AWQ>;
  unsigned char* smem = smemRaw + ((1024 - (detail::smem_addr(smemRaw) & 1023)) & 1023);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  const int kChunks = in >> 6;
  const int nTiles = (out + 15) >> 4;
  const uint4* wq = static_cast<const uint4*>(wptr);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(wptr) +
                                                   (size_t)nTiles * 16 * in / 2);
  const __half* wd = static_cast<const __half*>(wptr);
  unsigned char* bh = smem + kStages * Sm::kStage;

  auto load_stage = [&](int s, int c) {
    unsigned char* base = smem + s * Sm::kStage;
    for (int i = tid; i < kBM * 8; i += 256) {
      const int row = i >> 3, ch = i & 7, grow = m0 + row;
      const bool ok = grow < m;
      detail::cp_async16(base + swz(row, ch), x + (size_t)(ok ? grow : 0) * in + 64 * c + ch * 8, ok);
    }
    if constexpr (AWQ) {
      const int tile = (n0 >> 4) + (tid >> 5);
      const bool ok = tile < nTiles;
      detail::cp_async16(base + Sm::kB + tid * 16,
                         wq + ((size_t)(ok ? tile : 0) * kChunks + c) * 32 + (tid & 31), ok);
      if (tid < 64) {
        const int zt = (n0 >> 4) + (tid >> 3);
        const bool zok = zt < nTiles;
        detail::cp_async8(base + Sm::kZ + tid * 8,
                          zs + ((size_t)(zok ? zt : 0) * (kChunks / chunksPerGroup) + c / chunksPerGroup) * 8 + (tid & 7), zok);
      }
    } else {
      for (int i = tid; i < kBN * 8; i += 256) {
        const int row = i >> 3, ch = i & 7, n = n0 + row;
        const bool ok = n < out;
        detail::cp_async16(base + Sm::kB + swz(row, ch), wd + (size_t)(ok ? n : 0) * in + 64 * c + ch * 8, ok);
      }
    }
  };

  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;

#pragma unroll
  for (int s = 0; s < kDist; ++s) {
    if (s < kChunks) load_stage(s, s);
    detail::cp_async_commit();
  }
  for (int c = 0; c < kChunks; ++c) {
    detail::cp_async_wait<kDist - 1>();
    wgmma_wait<1>();
    fence_proxy_async();
    __syncthreads();  // chunk c landed for everyone; every wgmma of chunk c-2 has completed
    if (c + kDist < kChunks) load_stage((c + kDist) % kStages, c + kDist);
    detail::cp_async_commit();
    unsigned char* st = smem + (c % kStages) * Sm::kStage;
    unsigned char* bTile = st + Sm::kB;
    if constexpr (AWQ) {
      // One (16-output tile, lane) packed word group per thread -> natural-k swizzled fp16 rows.
      bTile = bh + (c & 1) * kBN * 128;
      const uint4 q = reinterpret_cast<const uint4*>(st + Sm::kB)[tid];
      const int tl = tid >> 5, gg = (tid & 31) >> 2, tt = tid & 3;
      const uint2 z = reinterpret_cast<const uint2*>(st + Sm::kZ)[tl * 8 + gg];
      uint32_t d[4][4];
      detail::dequant_word(q.x, z.x, z.y, d[0]);
      detail::dequant_word(q.y, z.x, z.y, d[1]);
      detail::dequant_word(q.z, z.x, z.y, d[2]);
      detail::dequant_word(q.w, z.x, z.y, d[3]);
      const int nlo = 16 * tl + gg, nhi = nlo + 8;
      *reinterpret_cast<uint4*>(bTile + swz(nlo, 2 * tt)) = make_uint4(d[0][0], d[0][2], d[1][0], d[1][2]);
      *reinterpret_cast<uint4*>(bTile + swz(nlo, 2 * tt + 1)) = make_uint4(d[2][0], d[2][2], d[3][0], d[3][2]);
      *reinterpret_cast<uint4*>(bTile + swz(nhi, 2 * tt)) = make_uint4(d[0][1], d[0][3], d[1][1], d[1][3]);
      *reinterpret_cast<uint4*>(bTile + swz(nhi, 2 * tt + 1)) = make_uint4(d[2][1], d[2][3], d[3][1], d[3][3]);
      fence_proxy_async();
      __syncthreads();
    }
    const uint64_t descA = sw128_desc(st + wg * 64 * 128);
    const uint64_t descB = sw128_desc(bTile);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_m64n128k16(acc, descA + 2 * kk, descB + 2 * kk);
    wgmma_commit();
  }
  wgmma_wait<0>();
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(acc[i])::"memory");
  detail::cp_async_wait<0>();

  const bool evenOut = (out & 1) == 0;
  const int rowBase = m0 + wg * 64 + (warp & 3) * 16 + g;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int col = n0 + 8 * j + 2 * t;
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = rowBase + 8 * hr;
      if (row >= m) continue;
      __half* dst = y + (size_t)row * out + col;
      const float v0 = acc[4 * j + 2 * hr], v1 = acc[4 * j + 2 * hr + 1];
      if (evenOut && col + 1 < out) {
        *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(v0, v1);
      } else {
        if (col < out) dst[0] = __float2half(v0);
        if (col + 1 < out) dst[1] = __float2half(v1);
      }
    }
  }
#else
  detail::gemm_mma_body<128, 128, Sm90Smem<AWQ>::kFallbackStages, AWQ>(x, m, wptr, in, out,
                                                                      chunksPerGroup, y, smemRaw);
#endif
}

}  // namespace

cudaError_t gemm_sm90(bool awq, const __half* x, int m, const void* w, int in, int out, int group,
                      __half* y, cudaStream_t stream) {
  static unsigned long long configured[2] = {0, 0};  // one bit per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  const int smem = awq ? Sm90Smem<true>::kTotal : Sm90Smem<false>::kTotal;
  if (!(configured[awq] & bit)) {
    cudaError_t e = awq ? cudaFuncSetAttribute(gemm_sm90_kernel<true>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem)
                        : cudaFuncSetAttribute(gemm_sm90_kernel<false>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    configured[awq] |= bit;
  }
  dim3 grid(detail::ceil_div(out, kBN), detail::ceil_div(m, kBM));
  if (awq)
    gemm_sm90_kernel<true><<<grid, 256, smem, stream>>>(x, m, w, in, out, group / 64, y);
  else
    gemm_sm90_kernel<false><<<grid, 256, smem, stream>>>(x, m, w, in, out, 1, y);
  return cudaGetLastError();
}

}  // namespace awqk
