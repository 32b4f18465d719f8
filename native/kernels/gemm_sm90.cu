// sm_90a (Hopper) prefill GEMM: wgmma.mma_async m64nBNk16 from shared memory. Block = 2
// warpgroups = 128 (m) x BN (n) output tile; A (x) and dense B arrive through cp.async into
// 128-byte-swizzled K-major tiles; AWQ B is staged packed (int4) and dequantized by all threads
// into a swizzled fp16 tile (double buffered) while the previous chunk's wgmmas run. Code built
// for any other architecture runs the mma.sync body of gemm_mma.cuh instead, so the kernel is
// correct whichever cubin the driver picks.
#include "common.cuh"
#include "gemm_mma.cuh"
#include "internal.h"
#include "launch.h"
#include "wgmma.cuh"

namespace awqk {
namespace {

constexpr int kBM = 128;

template <bool AWQ, int BN>
struct Sm90Cfg {
  // AWQ BN = 256: 6 stages (4 chunks in flight; 215 KB) keep the small-m decode GEMMs off the memory
  // latency; dense BN = 256 stages are twice as large, so 4.
  static constexpr int kStages = (BN == 128 || AWQ) ? 6 : 4;
  static constexpr int kDist = kStages - 2;  // prefetch distance (a stage is reused 2 chunks later)
  static constexpr int kB = kBM * 128;       // offset of B inside a stage (A is 128 rows x 128 B)
  static constexpr int kZ = kB + (BN / 16) * 32 * 16;  // AWQ zero/scale pairs after packed B
  static constexpr int kStage = ((AWQ ? kZ + (BN / 16) * 8 * 8 : kB + BN * 128) + 1023) / 1024 * 1024;
  static constexpr int kBh = AWQ ? 2 * BN * 128 : 0;   // two fp16 B tiles (AWQ)
  static constexpr int kTotal = kStages * kStage + kBh + 1024;
  static constexpr int kFallbackStages = AWQ ? 4 : 3;
  static_assert(kStage % 1024 == 0 && kDist >= 1, "stage layout");
  static_assert(kTotal >= detail::Tile<128, BN, AWQ>::kStageBytes * kFallbackStages, "fallback smem");
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
using detail::fence_proxy_async;
using detail::sw128_desc;
using detail::swz;
using detail::wgmma_commit;
using detail::wgmma_fence;
using detail::wgmma_wait;

__device__ __forceinline__ void wgmma_m64n128k16(float* d, uint64_t descA, uint64_t descB, int scaleD) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB), "r"(scaleD));
}
__device__ __forceinline__ void wgmma_m64n256k16(float* d, uint64_t descA, uint64_t descB, int scaleD) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
      "%128, %129, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(descA), "l"(descB), "r"(scaleD));
}
// scaleD = 0: D = A*B (the first k-slice; the accumulators are never written by other code, which
// would serialize the wgmma pipeline), 1: D += A*B.
template <int BN>
__device__ __forceinline__ void wgmma_tile(float* d, uint64_t descA, uint64_t descB, int scaleD) {
  if constexpr (BN == 128) wgmma_m64n128k16(d, descA, descB, scaleD);
  else wgmma_m64n256k16(d, descA, descB, scaleD);
}
#endif

// HALFM: 64-row tiles for small m (decode batches): both warpgroups multiply the same 64 rows of A,
// each against its half (BN/2 columns) of the B tile, so no tensor work is spent on padding rows.
// Split-K (gridDim.z = S > 1): block z covers chunks [kChunks*z/S, kChunks*(z+1)/S) and writes its
// fp32 partial to ws[z][m][out]; the last block of a tile to arrive (counters[tile], reset by it)
// sums the S partials in z order (deterministic) and writes y.
template <bool AWQ, int BN, bool HALFM>
__global__ void __launch_bounds__(256, 1)
    gemm_sm90_kernel(const __half* __restrict__ x, int m, const void* __restrict__ wptr, int in,
                     int out, int chunksPerGroup, __half* __restrict__ y, float* __restrict__ ws,
                     int* __restrict__ counters) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
  using C = Sm90Cfg<AWQ, BN>;
  static_assert(!HALFM || BN == 256, "HALFM needs BN = 256 (m64n128 per warpgroup)");
  detail::pdl_wait();
  detail::pdl_launch();
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kStages = C::kStages, kDist = C::kDist;
  constexpr int kRows = HALFM ? 64 : kBM;   // rows of x per block
  constexpr int kWN = HALFM ? BN / 2 : BN;  // columns per warpgroup
  __shared__ int sLast;
  unsigned char* smem = smemRaw + ((1024 - (detail::smem_addr(smemRaw) & 1023)) & 1023);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * kRows, n0 = blockIdx.x * BN;
  const int kChunks = in >> 6;
  const int S = gridDim.z, z = blockIdx.z;
  const int cBase = (int)((long)kChunks * z / S);
  const int nCh = (int)((long)kChunks * (z + 1) / S) - cBase;
  const int nTiles = (out + 15) >> 4;
  const uint4* wq = static_cast<const uint4*>(wptr);
  const uint2* zs = reinterpret_cast<const uint2*>(static_cast<const char*>(wptr) +
                                                   (size_t)nTiles * 16 * in / 2);
  const __half* wd = static_cast<const __half*>(wptr);
  unsigned char* bh = smem + kStages * C::kStage;

  auto load_stage = [&](int s, int c) {
    unsigned char* base = smem + s * C::kStage;
    for (int i = tid; i < kRows * 8; i += 256) {
      const int row = i >> 3, ch = i & 7, grow = m0 + row;
      const bool ok = grow < m;
      detail::cp_async16(base + swz(row, ch), x + (size_t)(ok ? grow : 0) * in + 64 * c + ch * 8, ok);
    }
    if constexpr (AWQ) {
      for (int i = tid; i < (BN / 16) * 32; i += 256) {
        const int tile = (n0 >> 4) + (i >> 5);
        const bool ok = tile < nTiles;
        detail::cp_async16(base + C::kB + i * 16,
                           wq + ((size_t)(ok ? tile : 0) * kChunks + c) * 32 + (i & 31), ok);
      }
      for (int i = tid; i < (BN / 16) * 8; i += 256) {
        const int zt = (n0 >> 4) + (i >> 3);
        const bool zok = zt < nTiles;
        detail::cp_async8(base + C::kZ + i * 8,
                          zs + ((size_t)(zok ? zt : 0) * (kChunks / chunksPerGroup) + c / chunksPerGroup) * 8 + (i & 7),
                          zok);
      }
    } else {
      for (int i = tid; i < BN * 8; i += 256) {
        const int row = i >> 3, ch = i & 7, n = n0 + row;
        const bool ok = n < out;
        detail::cp_async16(base + C::kB + swz(row, ch), wd + (size_t)(ok ? n : 0) * in + 64 * c + ch * 8, ok);
      }
    }
  };

  float acc[kWN / 2];  // first written by the scaleD = 0 wgmma of the first chunk

#pragma unroll
  for (int s = 0; s < kDist; ++s) {
    if (s < nCh) load_stage(s, cBase + s);
    detail::cp_async_commit();
  }
  for (int r = 0; r < nCh; ++r) {
    detail::cp_async_wait<kDist - 1>();
    wgmma_wait<1>();
    fence_proxy_async();
    __syncthreads();  // chunk r landed for everyone; every wgmma of chunk r-2 has completed
    if (r + kDist < nCh) load_stage((r + kDist) % kStages, cBase + r + kDist);
    detail::cp_async_commit();
    unsigned char* st = smem + (r % kStages) * C::kStage;
    unsigned char* bTile = st + C::kB;
    if constexpr (AWQ) {
      // (16-output tile, lane) packed word groups -> natural-k swizzled fp16 rows.
      bTile = bh + (r & 1) * BN * 128;
#pragma unroll
      for (int it = 0; it < BN / 128; ++it) {
        const int item = tid + 256 * it;
        const uint4 q = reinterpret_cast<const uint4*>(st + C::kB)[item];
        const int tl = item >> 5, gg = (item & 31) >> 2, tt = item & 3;
        const uint2 zz = reinterpret_cast<const uint2*>(st + C::kZ)[tl * 8 + gg];
        uint32_t d[4][4];
        detail::dequant_word(q.x, zz.x, zz.y, d[0]);
        detail::dequant_word(q.y, zz.x, zz.y, d[1]);
        detail::dequant_word(q.z, zz.x, zz.y, d[2]);
        detail::dequant_word(q.w, zz.x, zz.y, d[3]);
        const int nlo = 16 * tl + gg, nhi = nlo + 8;
        *reinterpret_cast<uint4*>(bTile + swz(nlo, 2 * tt)) = make_uint4(d[0][0], d[0][2], d[1][0], d[1][2]);
        *reinterpret_cast<uint4*>(bTile + swz(nlo, 2 * tt + 1)) = make_uint4(d[2][0], d[2][2], d[3][0], d[3][2]);
        *reinterpret_cast<uint4*>(bTile + swz(nhi, 2 * tt)) = make_uint4(d[0][1], d[0][3], d[1][1], d[1][3]);
        *reinterpret_cast<uint4*>(bTile + swz(nhi, 2 * tt + 1)) = make_uint4(d[2][1], d[2][3], d[3][1], d[3][3]);
      }
      fence_proxy_async();
      __syncthreads();
    }
    const uint64_t descA = sw128_desc(HALFM ? st : st + wg * 64 * 128);
    const uint64_t descB = sw128_desc(HALFM ? bTile + wg * kWN * 128 : bTile);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_tile<kWN>(acc, descA + 2 * kk, descB + 2 * kk, r + kk > 0);
    wgmma_commit();
  }
  wgmma_wait<0>();
#pragma unroll
  for (int i = 0; i < kWN / 2; ++i) asm volatile("" : "+f"(acc[i])::"memory");
  detail::cp_async_wait<0>();

  const int rowBase = m0 + (HALFM ? 0 : wg * 64) + (warp & 3) * 16 + g;
  const int colBase = n0 + (HALFM ? wg * kWN : 0);
  // acc[4j + 2h + e] = (row rowBase + 8h, column colBase + 8j + 2t + e)
  auto pos = [&](int i) { return make_int2(rowBase + 8 * ((i >> 1) & 1), colBase + 8 * (i >> 2) + 2 * t + (i & 1)); };
  if (S > 1 && !detail::splitk_gather<kWN / 2, true>(acc, pos, m, out, ws, counters, S, z,
                                                      blockIdx.y * gridDim.x + blockIdx.x, &sLast))
    return;
  detail::store_acc<kWN / 2, true>(acc, pos, m, out, y);
#else
  detail::gemm_mma_body<128, BN, C::kFallbackStages, AWQ>(x, m, wptr, in, out, chunksPerGroup, y,
                                                         smemRaw);
#endif
}

template <bool AWQ, int BN, bool HALFM>
cudaError_t launch_sm90(const __half* x, int m, const void* w, int in, int out, int group, __half* y,
                        int splits, float* ws, int* counters, cudaStream_t stream) {
  constexpr int smem = Sm90Cfg<AWQ, BN>::kTotal;
  static unsigned long long configured = 0;  // one bit per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  if (!(configured & bit)) {
    cudaError_t e = cudaFuncSetAttribute(gemm_sm90_kernel<AWQ, BN, HALFM>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    configured |= bit;
  }
  dim3 grid(detail::ceil_div(out, BN), detail::ceil_div(m, HALFM ? 64 : kBM), splits);
  return pdl_launch_kernel(gemm_sm90_kernel<AWQ, BN, HALFM>, grid, dim3(256), smem, stream, x, m, w, in, out,
                           AWQ ? group / 64 : 1, y, ws, counters);
}

}  // namespace

cudaError_t gemm_sm90(bool awq, int bn, const __half* x, int m, const void* w, int in, int out,
                      int group, __half* y, cudaStream_t stream) {
  if (bn == 256)
    return awq ? launch_sm90<true, 256, false>(x, m, w, in, out, group, y, 1, nullptr, nullptr, stream)
               : launch_sm90<false, 256, false>(x, m, w, in, out, group, y, 1, nullptr, nullptr, stream);
  return awq ? launch_sm90<true, 128, false>(x, m, w, in, out, group, y, 1, nullptr, nullptr, stream)
             : launch_sm90<false, 128, false>(x, m, w, in, out, group, y, 1, nullptr, nullptr, stream);
}

cudaError_t gemm_sm90_split(bool awq, bool halfM, int bn, const __half* x, int m, const void* w, int in, int out,
                            int group, __half* y, int splits, float* ws, int* counters, cudaStream_t stream) {
  if (splits > 1 && (ws == nullptr || counters == nullptr)) return cudaErrorInvalidValue;
  if (bn == 128) {
    if (halfM) return cudaErrorInvalidValue;
    return awq ? launch_sm90<true, 128, false>(x, m, w, in, out, group, y, splits, ws, counters, stream)
               : launch_sm90<false, 128, false>(x, m, w, in, out, group, y, splits, ws, counters, stream);
  }
  if (halfM)
    return awq ? launch_sm90<true, 256, true>(x, m, w, in, out, group, y, splits, ws, counters, stream)
               : launch_sm90<false, 256, true>(x, m, w, in, out, group, y, splits, ws, counters, stream);
  return awq ? launch_sm90<true, 256, false>(x, m, w, in, out, group, y, splits, ws, counters, stream)
             : launch_sm90<false, 256, false>(x, m, w, in, out, group, y, splits, ws, counters, stream);
}

}  // namespace awqk
