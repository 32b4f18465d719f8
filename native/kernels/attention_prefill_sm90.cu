// Paged prefill attention on Hopper (sm_90a) with wgmma, head dim 128, fp16 or FP8 E4M3 KV cache: the
// flash-attention-2 algorithm of attention.cu with the two products on the warpgroup tensor-core path.
//
// Block = 2 consumer warpgroups = 128 queries of one (sequence, head); warpgroup w owns queries 64w..64w+63 of the
// block. KV tiles of 64 keys are gathered from the paged cache into a shared-memory ring, in the 128-byte-swizzled
// layout wgmma reads: a tile is [d half (2)][key (64)][64 d] fp16, 8 KB a half, rows of 128 B. fp16 cache (the
// default, TMA): a third, producer warpgroup fills the ring (TMA boxes of whole cache pages); otherwise every thread
// issues its share with cp.async.
//   S = Q K^T : wgmma m64n64k16, A = Q (registers, the mma.m16n8k16 A fragment of each warp's 16 rows), B = K
//               (K-major: a key's d values are contiguous), 8 k-steps over d.
//   O += P V  : wgmma m64n128k16, A = P (the S accumulator re-packed to fp16 in registers), B = V (N-major: the
//               d values of a key are contiguous, imm-trans-b = 1), 4 k-steps over the tile's keys.
// Online softmax in fp32 with exp2 between the two, as in attention.cu. Accumulator layout of wgmma m64nN (f32):
// element 4j + 2h + e of a thread (lane 4g + t of warp v of its warpgroup) is row 16v + g + 8h, column 8j + 2t + e.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "attention_rows.cuh"
#include "common.cuh"
#include "fp8_e4m3.cuh"
#include "internal.h"
#include "kernels.h"
#include "mbarrier.cuh"
#include "tensor_map.h"
#include "wgmma.cuh"

namespace awqk {
namespace {

constexpr int kD = 128;                           // head dim
constexpr int kBQ = 128;                          // queries a block (2 warpgroups x 64)
constexpr int kBKV = 64;                          // keys a tile
constexpr int kStages = 5;                        // ring stages (cp.async)
constexpr int kStagesTma = 6;                     // ring stages with the TMA producer warpgroup (TMA below)
constexpr int kHalfBytes = kBKV * 128;            // one 64-key x 64-d swizzled half: 8 KB
constexpr int kTileBytes = 2 * kHalfBytes;        // 64 keys x 128 d fp16: 16 KB
constexpr int kStageBytes = 2 * kTileBytes;       // K tile, then V tile: 32 KB
// FP8 E4M3 cache: the ring holds the raw tiles ([K | V][64 keys][128 B], 16 KB a stage) and each landed tile is
// widened into one of two fp16 stages in the layout above (the wgmma operands).
constexpr int kRawStageBytes = 2 * kBKV * kD;
// FP8 cache with the producer warpgroup (the default; AWQ_ATTN_PREFILL_FP8_TMA=0 off): fp16 ring stages the
// consumers read, and the producer's raw FP8 stages after them (5 x 32 + 3 x 16 KB: within the 227 KB a block may
// have).
constexpr int kStagesTmaFp8 = 5;
constexpr int kRawTmaFp8 = 3;
template <typename KV, bool TMA = false>
__host__ __device__ constexpr int ring_stages() {
  return TMA ? (sizeof(KV) == 1 ? kStagesTmaFp8 : kStagesTma) : kStages;
}
template <typename KV, bool TMA = false>
constexpr int smem_bytes() {  // + slack to align the stages to 1024 B (swizzle atoms)
  return (sizeof(KV) == 1 ? (TMA ? kStagesTmaFp8 * kStageBytes + kRawTmaFp8 * kRawStageBytes
                                 : 2 * kStageBytes + kStages * kRawStageBytes)
                          : ring_stages<KV, TMA>() * kStageBytes) +
         1024;
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// D(64 x 128, f32) += A(64 x 16, f16, registers) * B(16 x 128, f16, N-major shared memory behind descB).
__device__ __forceinline__ void wgmma_rs_m64n128k16_nmajor(float* d, const uint32_t* a, uint64_t descB) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, "
      "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, "
      "%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB));
}

// N-major, 128-byte-swizzled B operand: 64 N-elements (one 128 B row) per swizzle row, 8 rows (k) an atom;
// lbo = bytes between the 64-element groups along N, sbo = bytes between the 8-row groups along K (kernel checks
// pass with them on the H100, 2026-12-06b).
__device__ __forceinline__ uint64_t sw128_nmajor_desc(const void* p, uint32_t lbo, uint32_t sbo) {
  const uint32_t a = detail::smem_addr(p);
  return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
         ((uint64_t)((sbo >> 4) & 0x3FFF) << 32) | ((uint64_t)1 << 62);
}

// 2^x (MUFU ex2, flush-to-zero; -inf -> 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_h2(float a, float b) {
  return detail::h2_as_u32(__floats2half2_rn(a, b));
}

// The TMA producer warp (see the kernel's TMA): tiles 0 .. nTiles - 1 of one (sequence, KV head) into the ring, tile x
// into stage x % kStagesTma once both consumer warpgroups released the stage's previous tile. A tile is 4 cache pages
// of 16 keys (kKvBlockSize); page p lands at row 16 p of the K and V halves ([d half][key][64 d], 128-byte swizzled).
// Pages wholly inside the context: 4 TMA boxes each (K and V, two d halves) from lane 0, their bytes expected on the
// stage's full barrier. The rest (the partial last page, pages past the context): 16-byte cp.async by every lane,
// keys past the context zero-filled (their V must not be stale NaN / Inf: P = 0 times it would be NaN). Every lane
// then arrives on the full barrier when its copies have landed (count 33 with lane 0's expect_tx arrival). The block
// numbers of tile x + 1 are read while tile x is issued.
__device__ __forceinline__ void produce_kv_tma(unsigned char* ring, uint64_t* fullBar, uint64_t* emptyBar,
                                               const CUtensorMap* tmK, const CUtensorMap* tmV,
                                               const __half* __restrict__ kc, const __half* __restrict__ vc,
                                               const int32_t* __restrict__ bt, int ctx, int nTiles, int numKvHeads,
                                               int kvh) {
  const int lane = threadIdx.x & 31;
  auto block_of = [&](int x) {  // lane l: the cache block of page l & 3 of tile x (0 past the context)
    const int page = 4 * x + (lane & 3);
    return x < nTiles && page * kKvBlockSize < ctx ? bt[page] : 0;
  };
  int blk = block_of(0);
  for (int x = 0; x < nTiles; ++x) {
    const int blkNext = block_of(x + 1);
    const int st = x % kStagesTma;
    if (x >= kStagesTma) detail::mbar_wait(&emptyBar[st], ((x / kStagesTma) - 1) & 1);
    unsigned char* Ks = ring + st * kStageBytes;
    const int key0 = x * kBKV;
    int pg[4];
#pragma unroll
    for (int p = 0; p < 4; ++p) pg[p] = __shfl_sync(0xffffffffu, blk, p);
    const int wholePages = min(4, max(0, (ctx - key0) / kKvBlockSize));  // pages 0 .. wholePages - 1
    if (lane == 0) detail::mbar_arrive_expect_tx(&fullBar[st], (uint32_t)wholePages * 4 * (kKvBlockSize * 128));
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      if (p < wholePages) {
        if (lane == 0) {
          const int slot = pg[p] * kKvBlockSize;
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            unsigned char* dst = Ks + h * kHalfBytes + p * kKvBlockSize * 128;
            detail::tma_3d(dst, tmK, 64 * h, kvh, slot, &fullBar[st]);
            detail::tma_3d(dst + kTileBytes, tmV, 64 * h, kvh, slot, &fullBar[st]);
          }
        }
      } else {  // 16 rows x 16 chunks of 16 B, K and V: lane l copies chunk l & 15 of rows (l >> 4) + 2 j, j = 0..7
        const int c = lane & 15, row0 = lane >> 4;
        const size_t rowStride = (size_t)2 * numKvHeads * kD;  // two slots
        size_t off = ((size_t)(pg[p] * kKvBlockSize + row0) * numKvHeads + kvh) * kD + c * 8;
        unsigned char* dst = Ks + (c >> 3) * kHalfBytes;
#pragma unroll 1
        for (int row = row0; row < kKvBlockSize; row += 2, off += rowStride) {
          const bool ok = key0 + kKvBlockSize * p + row < ctx;
          const int at = detail::swz(kKvBlockSize * p + row, c & 7);
          detail::cp_async16(dst + at, kc + off, ok);
          detail::cp_async16(dst + kTileBytes + at, vc + off, ok);
        }
      }
    }
    detail::cp_async_mbar_arrive(&fullBar[st]);
    blk = blkNext;
  }
  detail::cp_async_wait<0>();
}

// The FP8 cache's producer warpgroup (all 128 threads; see the kernel's TMA): tile x's raw K and V (64 keys x 128 B
// each, 16 KB) by cp.async into raw stage x % kRawTmaFp8, kRawTmaFp8 - 1 tiles ahead, keys past the context
// zero-filled; then, once both consumer warpgroups released fp16 stage x % kStagesTmaFp8, widened (exactly) into it in
// the swizzled layout wgmma reads, made visible to the async proxy, and announced on the stage's full barrier (one
// arrival a producer thread: count 128). Thread p copies 16-byte chunk p & 7 of row (p >> 3) of each of the tile's 4
// cache pages; the pages' block numbers are read a tile ahead. Named barrier 3 (the producer warpgroup's 128 threads)
// orders the copies' landing before the widening, and the widening before its raw stage is loaded again.
__device__ __forceinline__ void produce_kv_fp8(unsigned char* ring, unsigned char* raw, uint64_t* fullBar,
                                               uint64_t* emptyBar, const uint8_t* __restrict__ kc,
                                               const uint8_t* __restrict__ vc, const int32_t* __restrict__ bt,
                                               int ctx, int nTiles, int numKvHeads, int kvh) {
  const int ptid = threadIdx.x;  // 0..127
  const int rowInPage = ptid >> 3, c = ptid & 7;
  auto pages_of = [&](int x, int(&pg)[4]) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int page = 4 * x + r;
      pg[r] = x < nTiles && page * kKvBlockSize < ctx ? bt[page] : 0;
    }
  };
  int pg[4];
  pages_of(0, pg);
  auto load = [&](int x) {  // tile x (if any) into its raw stage, one commit group either way
    if (x < nTiles) {
      unsigned char* Kr = raw + (x % kRawTmaFp8) * kRawStageBytes;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int row = kKvBlockSize * r + rowInPage;
        const bool ok = x * kBKV + row < ctx;
        const size_t off = ((size_t)(pg[r] * kKvBlockSize + rowInPage) * numKvHeads + kvh) * kD + c * 16;
        detail::cp_async16(Kr + row * kD + c * 16, kc + off, ok);
        detail::cp_async16(Kr + kBKV * kD + row * kD + c * 16, vc + off, ok);
      }
      pages_of(x + 1, pg);
    }
    detail::cp_async_commit();
  };
  for (int x = 0; x < kRawTmaFp8 - 1; ++x) load(x);
  for (int x = 0; x < nTiles; ++x) {
    load(x + kRawTmaFp8 - 1);  // into the raw stage of tile x - 1 (widened, and barrier 3 passed since)
    detail::cp_async_wait<kRawTmaFp8 - 1>();  // this thread's copies of tile x landed
    asm volatile("bar.sync 3, 128;\n" ::: "memory");  // every producer thread's
    const int st = x % kStagesTmaFp8;
    if (x >= kStagesTmaFp8) detail::mbar_wait(&emptyBar[st], ((x / kStagesTmaFp8) - 1) & 1);
    const unsigned char* src = raw + (x % kRawTmaFp8) * kRawStageBytes;
    unsigned char* dst = ring + st * kStageBytes;
    // The pipelined path's `widen` for 128 threads, 4 groups at once (fully unrolled it needs more than the producer's
    // 56 registers: ptxas spilled 116 B). Not one shared helper: as a function it changed the sm_90a code of the
    // pipelined FP8 kernel, the verified default (the same effect as gemv_tile.cuh describes).
#pragma unroll 4
    for (int k = 0; k < 16; ++k) {  // 2048 groups of 8 values (K then V, 64 rows, 16 groups a row), 16 a thread
      const int gi = ptid + 128 * k;
      const int kv = gi >> 10, row = (gi >> 4) & 63, cc = gi & 15;
      const uint2 bytes = *reinterpret_cast<const uint2*>(src + kv * kBKV * kD + row * kD + cc * 8);
      *reinterpret_cast<uint4*>(dst + kv * kTileBytes + (cc >> 3) * kHalfBytes + detail::swz(row, cc & 7)) =
          detail::e4m3x8_to_half8(bytes);
    }
    detail::fence_proxy_async();  // the widened stage, written by the generic proxy, is read by wgmma
    detail::mbar_arrive(&fullBar[st]);
    asm volatile("bar.sync 3, 128;\n" ::: "memory");  // raw stage x % kRawTmaFp8 read by all before its next load
  }
  detail::cp_async_wait<0>();
}
#endif

// Two schedules. Pipelined (PP off): a block barrier a tile, and S of the next tile issued before the exp of this one
// (two score buffers), so the tensor cores work through it. Ping-pong (PP, fp16 cache only): no block barrier in
// the loop (a full / empty mbarrier pair per ring stage: the warpgroups run apart), and the two warpgroups take
// turns issuing their wgmmas (S of the next tile and P V of this one back to back), so one warpgroup's softmax runs
// while the other's products occupy the tensor cores (flash-attention 3's schedule).
// KV: __half (fp16 cache) or uint8_t (FP8 E4M3 cache, widened to fp16 in shared memory: exact).
// FP8 with TMA (the default; AWQ_ATTN_PREFILL_FP8_TMA=0: the two-warpgroup kernel): the producer warpgroup loads the
// raw tiles and widens them into the fp16 ring itself (produce_kv_fp8), so the consumers run the fp16 cache's
// ping-pong schedule unchanged.
// TMA (ping-pong only): a third warpgroup, first in the block, loads the ring: one thread issues the K and V pages
// that lie wholly inside the context as TMA boxes of 64 d x 16 keys (tmK, tmV: the cache as [slot][kv head][d], the
// 128-byte swizzle the wgmma descriptors read), and its warp copies the context's last, partial page and the pages
// past it with zero-filling cp.async. The two consumer warpgroups then run no load code at all (ncu, H100, 4096
// tokens: ~30 % of their instructions were the cp.async addressing and the block-table reads); setmaxnreg gives the
// producer's registers to them.
template <bool PP, typename KV, bool TMA = false>
__global__ void __launch_bounds__(TMA ? 384 : 256, 1) prefill_attention_sm90_kernel(
    const __half* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ queryStarts,
    const int32_t* __restrict__ contextLens, int numHeads, int numKvHeads, float scaleLog2, __half* __restrict__ out,
    int headsFastest, const __grid_constant__ CUtensorMap tmK, const __grid_constant__ CUtensorMap tmV) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(!PP || sizeof(KV) == 2 || TMA, "ping-pong reads an fp16 ring: FP8 needs the producer's widening");
  static_assert(!TMA || PP, "the TMA producer feeds the ping-pong schedule");
  constexpr int kRing = ring_stages<KV, TMA>();  // ring stages (fp16 operands)
  extern __shared__ __align__(16) unsigned char smraw[];
  __shared__ uint64_t fullBar[kRing], emptyBar[kRing];  // PP: stage landed / released by both warpgroups
  unsigned char* ring = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smraw) + 1023) & ~uintptr_t(1023));

  // Heavy (late) query tiles first. headsFastest: grid (heads, query tiles), so the blocks start in order of work
  // over all heads (the longest first, the shortest last: no long block starts near the end); else (query tiles,
  // heads), each head's tiles from the longest.
  const int seq = blockIdx.z;
  const int head = headsFastest ? blockIdx.x : blockIdx.y;
  const int qTile = headsFastest ? gridDim.y - 1 - blockIdx.y : gridDim.x - 1 - blockIdx.x;
  const int qs = queryStarts[seq];
  const int qLen = queryStarts[seq + 1] - qs;
  const int j0 = qTile * kBQ;
  if (j0 >= qLen) return;
  const int ctx = contextLens[seq];
  const int pos0 = ctx - qLen;  // cache position of query 0
  const int kvh = head / (numHeads / numKvHeads);
  const int nTiles = (pos0 + min(j0 + kBQ - 1, qLen - 1)) / kBKV + 1;  // tiles any query of the block sees

  if constexpr (TMA) {
    if (threadIdx.x == 0) {
#pragma unroll
      for (int st = 0; st < kRing; ++st) {
        // fp16: the producer's expect_tx arrival + its warp's 32 cp.async arrivals; FP8: each producer thread's
        detail::mbar_init(&fullBar[st], sizeof(KV) == 1 ? 128 : 33);
        detail::mbar_init(&emptyBar[st], 8);  // one arrival per consumer warp
      }
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x < 128) {
      asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n" ::: "memory");
      if constexpr (sizeof(KV) == 1)
        produce_kv_fp8(ring, ring + kRing * kStageBytes, fullBar, emptyBar, kc, vc,
                       blockTables + (size_t)seq * maxBlocksPerSeq, ctx, nTiles, numKvHeads, kvh);
      else if (threadIdx.x < 32)
        produce_kv_tma(ring, fullBar, emptyBar, &tmK, &tmV, kc, vc, blockTables + (size_t)seq * maxBlocksPerSeq, ctx,
                       nTiles, numKvHeads, kvh);
      return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n" ::: "memory");
  }
  // Consumer threads (all of the block without TMA): two warpgroups of 64 queries.
  const int tid = threadIdx.x - (TMA ? 128 : 0), lane = tid & 31, warp = tid >> 5;
  // Warpgroup, warp within it. With TMA the warpgroup index is broadcast from lane 0, which tells the compiler it is
  // warp-uniform: the tile loop's counters and the stage addresses behind the wgmma descriptors can then stay in
  // uniform registers.
  const int wg = TMA ? __shfl_sync(0xffffffffu, warp >> 2, 0) : warp >> 2, wv = warp & 3;
  const int g = lane >> 2, t = lane & 3;
  const int wgRow0 = j0 + 64 * wg;
  const int myTiles = wgRow0 < qLen ? (pos0 + min(wgRow0 + 63, qLen - 1)) / kBKV + 1 : 0;
  const int rowA = wgRow0 + 16 * wv + g, rowB = rowA + 8;
  const int posA = pos0 + rowA, posB = pos0 + rowB;

  // Q as the A fragments of the 8 k-steps over d (rows past the sequence repeat its last query; never stored).
  uint32_t qf[kD / 16][4];
  {
    const size_t strideTok = (size_t)numHeads * kD;
    const __half* qa = q + (size_t)(qs + min(rowA, qLen - 1)) * strideTok + (size_t)head * kD;
    const __half* qb = q + (size_t)(qs + min(rowB, qLen - 1)) * strideTok + (size_t)head * kD;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      qf[kk][0] = *reinterpret_cast<const uint32_t*>(qa + 16 * kk + 2 * t);
      qf[kk][1] = *reinterpret_cast<const uint32_t*>(qb + 16 * kk + 2 * t);
      qf[kk][2] = *reinterpret_cast<const uint32_t*>(qa + 16 * kk + 8 + 2 * t);
      qf[kk][3] = *reinterpret_cast<const uint32_t*>(qb + 16 * kk + 8 + 2 * t);
    }
  }

  // Tile `tile` (keys 64 tile ..) into ring stage `stage`. fp16: 16 chunks of 16 B a key row, 1024 chunks each for
  // K and V, 4 + 4 a thread: chunk tid & 15 of key rows 16 r + (tid >> 4), r = 0..3, i.e. row tid >> 4 of the
  // tile's cache page r. FP8: 8 chunks a row, 512 each, 2 + 2 a thread: chunk tid & 7 of rows (tid >> 3) + 32 r,
  // r = 0..1 (pages (tid >> 7) + 2 r). The pages' block numbers pg[] were fetched a tile earlier (fetch_pages), so
  // the block-table read is off the loads' path. Keys past the context are zero-filled.
  constexpr bool kFp8 = sizeof(KV) == 1;
  constexpr int kPg = kFp8 ? 2 : 4;  // cache pages a thread loads rows of
  static_assert(kBKV == 4 * kKvBlockSize && kD == 128, "a tile is 4 cache pages of 16 keys, 128 values a row");
  const int32_t* bt = blockTables + (size_t)seq * maxBlocksPerSeq;
  unsigned char* raw = ring + 2 * kStageBytes;  // FP8: the raw stages after the two fp16 ones
  auto fetch_pages = [&](int tile, int(&pg)[kPg]) {
#pragma unroll
    for (int r = 0; r < kPg; ++r) {
      const int page = 4 * tile + (kFp8 ? (tid >> 7) + 2 * r : r);
      pg[r] = page * kKvBlockSize < ctx ? bt[page] : 0;
    }
  };
  auto load_kv = [&](int stage, int tile, const int(&pg)[kPg]) {
    if constexpr (kFp8) {
      unsigned char* Kr = raw + stage * kRawStageBytes;
      const int row0 = tid >> 3, c = tid & 7;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = row0 + 32 * r;
        const bool ok = tile * kBKV + row < ctx;
        const size_t off = ((size_t)(pg[r] * kKvBlockSize + (row & 15)) * numKvHeads + kvh) * kD + c * 16;
        detail::cp_async16(Kr + row * kD + c * 16, kc + off, ok);
        detail::cp_async16(Kr + kBKV * kD + row * kD + c * 16, vc + off, ok);
      }
    } else {
      unsigned char* Ks = ring + stage * kStageBytes;
      const int rowInPage = tid >> 4, c = tid & 15;
      const int dst0 = (c >> 3) * kHalfBytes;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int row = kKvBlockSize * r + rowInPage;
        const bool ok = tile * kBKV + row < ctx;
        const size_t off = ((size_t)(pg[r] * kKvBlockSize + rowInPage) * numKvHeads + kvh) * kD + c * 8;
        const int dst = dst0 + detail::swz(row, c & 7);
        detail::cp_async16(Ks + dst, kc + off, ok);
        detail::cp_async16(Ks + kTileBytes + dst, vc + off, ok);
      }
    }
  };
  // FP8: raw stage `stage` widened (exactly) into fp16 stage `wide`: 2048 groups of 8 values, 8 a thread.
  auto widen = [&](int stage, int wide) {
    const unsigned char* src = raw + stage * kRawStageBytes;
    unsigned char* dst = ring + wide * kStageBytes;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int gi = tid + 256 * k;
      const int kv = gi >> 10, row = (gi >> 4) & 63, c = gi & 15;
      const uint2 bytes = *reinterpret_cast<const uint2*>(src + kv * kBKV * kD + row * kD + c * 8);
      *reinterpret_cast<uint4*>(dst + kv * kTileBytes + (c >> 3) * kHalfBytes + detail::swz(row, c & 7)) =
          detail::e4m3x8_to_half8(bytes);
    }
  };
  // The fp16 operands of tile `tile`: its ring stage, or (FP8) the fp16 stage it was widened into.
  auto operands = [&](int tile) -> const unsigned char* {
    return ring + (kFp8 && !TMA ? (tile & 1) : tile % kRing) * kStageBytes;
  };

  float o[kD / 2];  // O rows (16 wv + g, + 8) of this warpgroup, columns 8j + 2t + e
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) o[i] = 0.f;
  float mrow[2] = {-1e30f, -1e30f}, lrow[2] = {0.f, 0.f};

  // S = Q K^T of tile `tile` into `sacc` (issued, not waited for).
  auto issue_s = [&](int tile, float(&sacc)[kBKV / 2]) {
    const unsigned char* Ks = operands(tile);
    detail::keep_regs(sacc);
    detail::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk)
      detail::wgmma_rs_m64n64k16(sacc, qf[kk], detail::sw128_desc(Ks + (kk >> 2) * kHalfBytes) + 2 * (kk & 3),
                                 kk > 0);
    detail::wgmma_commit();
  };
  // Online softmax of tile `tile`'s scores, first half: causal mask (also hides keys past the context), the running
  // max (in log2 units: scores x scaleLog2), the running sum rescaled to it, alpha = the factor O takes (rescale_o).
  auto softmax_max = [&](int tile, float(&sacc)[kBKV / 2], float(&alpha)[2]) {
    float mx[2] = {-1e30f, -1e30f};
    const int key0 = tile * kBKV;
    if (key0 + kBKV - 1 <= pos0 + wgRow0 && key0 + kBKV - 1 < ctx) {  // every key visible to every row
#pragma unroll
      for (int i = 0; i < kBKV / 2; ++i) mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], sacc[i]);
    } else {
#pragma unroll
      for (int i = 0; i < kBKV / 2; ++i) {
        const int h = (i >> 1) & 1;
        const int key = key0 + 8 * (i >> 2) + 2 * t + (i & 1);
        if (!(key <= (h ? posB : posA) && key < ctx)) sacc[i] = -INFINITY;
        mx[h] = fmaxf(mx[h], sacc[i]);
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      const float mnew = fmaxf(mrow[h], mx[h] * scaleLog2);
      alpha[h] = fast_exp2(mrow[h] - mnew);
      mrow[h] = mnew;
      lrow[h] *= alpha[h];
    }
  };
  // O rescaled to the new running max (skipped by a warp whose maxima all stayed); no wgmma may be in flight.
  auto rescale_o = [&](const float(&alpha)[2]) {
    if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
      for (int i = 0; i < kD / 2; ++i) o[i] *= alpha[(i >> 1) & 1];
    }
    detail::keep_regs(o);  // the rescale stays before the next wgmma issued
  };
  // Second half: P = exp2(S x scaleLog2 - max) as the A fragments of the 4 k-steps over the tile's keys, and the
  // running sum. Reads the scores only, so it may overlap the next tile's S wgmma.
  auto softmax_exp = [&](const float(&sacc)[kBKV / 2], uint32_t(&pa)[kBKV / 16][4]) {
#pragma unroll
    for (int i = 0; i < kBKV / 2; i += 2) {
      const int h = (i >> 1) & 1;
      const float p0 = fast_exp2(fmaf(sacc[i], scaleLog2, -mrow[h]));
      const float p1 = fast_exp2(fmaf(sacc[i + 1], scaleLog2, -mrow[h]));
      lrow[h] += p0 + p1;
      pa[i >> 3][((i >> 2) & 1) * 2 + h] = pack_h2(p0, p1);  // i = 8 kk2 + 4 jj + 2 h: register 2 jj + h
    }
  };
  // O += P V of tile `tile` (issued, not waited for).
  auto issue_pv = [&](int tile, uint32_t(&pa)[kBKV / 16][4]) {
    const unsigned char* Vs = operands(tile) + kTileBytes;
    detail::wgmma_fence();  // (no register-pinning asm here: an S wgmma may be in flight)
#pragma unroll
    for (int kk2 = 0; kk2 < kBKV / 16; ++kk2)  // 64-d groups of V a half apart (N), 8-key groups 1 KB apart (K)
      wgmma_rs_m64n128k16_nmajor(o, pa[kk2], sw128_nmajor_desc(Vs + kk2 * 16 * 128, kHalfBytes, 1024));
    detail::wgmma_commit();
  };
  // Ping-pong. Tile x's loads are issued by every thread kPpAhead tiles before either warpgroup computes it (after both
  // released the stage's previous tile, x - kStages), each thread's share counted on fullBar[x % kStages] as its
  // copies land; a warpgroup waits for that, computes, and its warps release the stage on emptyBar. Turns: named
  // barrier 1 + w is warpgroup w's; warpgroup 1 hands warpgroup 0 its first turn, and each hands the other the
  // next after issuing its wgmmas, as long as the other has a turn to take (warpgroup 1 sees at most one tile more
  // than warpgroup 0, whose last tile it then computes alone, unsynchronised).
  auto pingpong = [&](int(&pg)[kPg]) {
    constexpr int kPpAhead = kStages - 2;
    if constexpr (!TMA) {  // (with TMA: initialised before the producer warpgroup left)
      if (tid == 0) {
#pragma unroll
        for (int st = 0; st < kStages; ++st) {
          detail::mbar_init(&fullBar[st], 256);
          detail::mbar_init(&emptyBar[st], 8);
        }
      }
      __syncthreads();
    }
    auto issue = [&](int x) {  // (not called with TMA: the producer warpgroup loads)
      const int st = x % kStages;
      if (x >= kStages) detail::mbar_wait(&emptyBar[st], ((x / kStages) - 1) & 1);
      load_kv(st, x, pg);
      fetch_pages(x + 1, pg);
      detail::cp_async_mbar_arrive(&fullBar[st]);
    };
    auto wait_full = [&](int x) {
      detail::mbar_wait(&fullBar[x % kRing], (x / kRing) & 1);
      detail::fence_proxy_async();
    };
    auto release = [&](int x) {
      __syncwarp();
      if (lane == 0) detail::mbar_arrive(&emptyBar[x % kRing]);
    };
    if constexpr (!TMA) {
      fetch_pages(0, pg);
      for (int x = 0; x < kPpAhead && x < nTiles; ++x) issue(x);
    }
    const int tiles0 = (pos0 + min(j0 + 63, qLen - 1)) / kBKV + 1;  // warpgroup 0's (j0 < qLen)
    const int tiles1 = j0 + 64 < qLen ? (pos0 + min(j0 + 127, qLen - 1)) / kBKV + 1 : 0;
    const bool turns = tiles1 > 0;
    auto turn_wait = [&](int i) {
      if (turns && (wg == 0 || i < tiles0)) asm volatile("bar.sync %0, 256;\n" ::"r"(1 + wg) : "memory");
    };
    auto turn_pass = [&](int i) {
      if (turns && (wg == 0 ? i < tiles1 : i + 1 < tiles0)) asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - wg) : "memory");
    };
    if (turns && wg == 1) asm volatile("bar.arrive 1, 256;\n" ::: "memory");

    float sc[kBKV / 2], alpha[2];
    uint32_t pa0[kBKV / 16][4], pa1[kBKV / 16][4];
    if (myTiles > 0) {
      wait_full(0);
      issue_s(0, sc);
      detail::wgmma_wait<0>();
      detail::keep_regs(sc);
      softmax_max(0, sc, alpha);
      detail::keep_regs(sc);
      softmax_exp(sc, pa0);
    }
    // Tile t: S of t + 1 (clamped: the last tile recomputes its own, discarded; a conditional wgmma would make ptxas
    // serialize them all) and P V of t in this warpgroup's turn, then the softmax of t + 1 while P V runs.
    auto step = [&](int tl, uint32_t(&paCur)[kBKV / 16][4], uint32_t(&paNext)[kBKV / 16][4]) {
      if (!TMA && tl + kPpAhead < nTiles) issue(tl + kPpAhead);
      const bool more = tl + 1 < myTiles;
      if (more) wait_full(tl + 1);
      turn_wait(tl);
      issue_s(min(tl + 1, myTiles - 1), sc);
      issue_pv(tl, paCur);
      turn_pass(tl);
      detail::wgmma_wait<1>();
      detail::keep_regs(sc);
      if (more) {
        softmax_max(tl + 1, sc, alpha);
        detail::keep_regs(sc);
        softmax_exp(sc, paNext);
      }
      detail::wgmma_wait<0>();
      detail::keep_regs(o);
      detail::keep_regs(paCur);
      if (more) rescale_o(alpha);
      release(tl);
    };
    for (int tl = 0; tl < myTiles; tl += 2) {
      step(tl, pa0, pa1);
      if (tl + 1 < myTiles) step(tl + 1, pa1, pa0);
    }
    // Tiles this warpgroup's queries do not see: load ahead, release. With TMA each is released only once it has
    // landed: released at once, a warpgroup with no queries would run its arrivals on a stage's empty barrier two
    // phases ahead of the other warpgroup's (tiles x and x + kRing), and the producer's parity wait would never end.
    for (int x = myTiles; x < nTiles; ++x) {
      if (!TMA && x + kPpAhead < nTiles) issue(x + kPpAhead);
      if constexpr (TMA) wait_full(x);
      release(x);
    }
  };
  auto pipelined = [&](int(&pg)[kPg]) {
    // Pipelined. Tile `tile` landed for every thread of the block (its cp.async group, then the block barrier), and
    // tile + kAhead loaded into the stage of tile - 2, every wgmma reading which was waited for before. FP8: the raw
    // tile is widened into fp16 stage tile & 1 (last read by tile - 2, its wgmmas waited for), then a second barrier.
    constexpr int kAhead = kStages - 2;  // tiles in flight beyond the two computed at once
    auto arrive = [&](int tile) {
      detail::cp_async_wait<kAhead - 1>();
      if constexpr (!kFp8) detail::fence_proxy_async();
      __syncthreads();
      if (tile + kAhead < nTiles) {
        load_kv((tile + kAhead) % kStages, tile + kAhead, pg);
        fetch_pages(tile + kAhead + 1, pg);
      }
      detail::cp_async_commit();
      if constexpr (kFp8) {
        widen(tile % kStages, tile & 1);
        detail::fence_proxy_async();
        __syncthreads();
      }
    };
#pragma unroll
    for (int s = 0; s < kAhead; ++s) {
      if (s < nTiles) {
        fetch_pages(s, pg);
        load_kv(s, s, pg);
      }
      detail::cp_async_commit();
    }
    fetch_pages(kAhead, pg);
    uint32_t pa[kBKV / 16][4];
    // The exp half of tile's softmax runs while the tensor cores compute the S of tile + 1; the two score buffers
    // alternate, so the loop body is written for a pair of tiles.
    float sa[kBKV / 2], sb[kBKV / 2];
    auto step = [&](int tile, float(&cur)[kBKV / 2], float(&next)[kBKV / 2]) {
      if (tile + 1 < nTiles) arrive(tile + 1);
      if (tile >= myTiles) return;  // the warpgroup's queries see no key of this tile (warpgroup-uniform)
      float alpha[2];
      softmax_max(tile, cur, alpha);
      rescale_o(alpha);
      detail::keep_regs(cur);
      // Unconditional (the last tile recomputes its own S, discarded): a conditional wgmma here makes ptxas
      // serialize every wgmma of the kernel (C7515).
      issue_s(min(tile + 1, myTiles - 1), next);
      softmax_exp(cur, pa);
      issue_pv(tile, pa);
      detail::wgmma_wait<0>();
      detail::keep_regs(o);
      detail::keep_regs(pa);
      detail::keep_regs(next);
    };
    arrive(0);
    if (myTiles > 0) {
      issue_s(0, sa);
      detail::wgmma_wait<0>();
      detail::keep_regs(sa);
    }
    for (int tile = 0; tile < nTiles; tile += 2) {
      step(tile, sa, sb);
      if (tile + 1 < nTiles) step(tile + 1, sb, sa);
    }
  };
  int pgNext[kPg];  // cache blocks of the next tile to load
  if constexpr (PP)
    pingpong(pgNext);
  else
    pipelined(pgNext);
  detail::cp_async_wait<0>();

  detail::store_attention_rows<kD>([&](int j, int e) { return o[4 * j + e]; }, lrow, out, qs, qLen, rowA, rowB, head,
                                   numHeads, t);
#else
  __trap();
#endif
}

}  // namespace

// AWQ_ATTN_PREFILL_WGMMA=0 turns the kernel off (attention.cu's mma.sync kernel takes every prefill). The fp16 cache
// takes the ping-pong schedule (H100, 2026-12-06b: 316-319 TFLOP/s at 4096 tokens against the pipelined 307-309, in
// both passes; AWQ_ATTN_WGMMA_PP=0 the pipelined one), the FP8 cache the pipelined one. (Each tile's S, exp and P V
// in turn, timed the same day, ran 302-306 and was dropped.)
bool prefill_attention_sm90_enabled() {
  static const bool v = env_flag("AWQ_ATTN_PREFILL_WGMMA", true);
  return v && hopper_device();
}

cudaError_t paged_attention_prefill_sm90(const __half* q, const void* kc, const void* vc, KvCacheDtype kvDtype,
                                         const int32_t* blockTables, int maxBlocksPerSeq, const int32_t* queryStarts,
                                         const int32_t* contextLens, int numSeqs, int maxQueryLen, int numHeads,
                                         int numKvHeads, int headDim, float scale, __half* out, cudaStream_t stream) {
  if (headDim != kD || !hopper_device()) return cudaErrorNotSupported;
  if (kvDtype != KvCacheDtype::Fp16 && kvDtype != KvCacheDtype::Fp8E4m3) return cudaErrorInvalidValue;
  static const bool pp = env_flag("AWQ_ATTN_WGMMA_PP", true);
  // The ping-pong kernel is fed by the TMA producer warpgroup (H100, 2026-12-06g, kernel checks and conformance pass:
  // 4096 tokens 503 -> 392-395 us, 342 -> 435-438 TFLOP/s; 2048 tokens 292 -> 364-366; a 512-token chunk over 2048
  // 205 -> 269-271; whole prefill 4096 +1.4 %). AWQ_ATTN_PREFILL_TMA=0: its consumers load the ring with cp.async.
  static const bool tma = env_flag("AWQ_ATTN_PREFILL_TMA", true);
  // AWQ_ATTN_PREFILL_ORDER=0: each head's query tiles together (the first order) instead of the heaviest tiles of
  // every head first.
  static const bool headsFastest = env_flag("AWQ_ATTN_PREFILL_ORDER", true);
  CUtensorMap maps[2] = {};  // K, V (TMA only)
  auto launch = [&](auto kernel, auto* kcT, int smem, int threads) {
    // Every launch (a host call of ~1 us, 40 a prefill step): the kernel instances share one function-pointer type,
    // so a static "configured" flag here would cover all of them with the first one's size.
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    using T = std::remove_const_t<std::remove_pointer_t<decltype(kcT)>>;
    const int qTiles = (maxQueryLen + kBQ - 1) / kBQ;
    const dim3 grid = headsFastest ? dim3(numHeads, qTiles, numSeqs) : dim3(qTiles, numHeads, numSeqs);
    kernel<<<grid, threads, smem, stream>>>(q, kcT, static_cast<const T*>(vc), blockTables, maxBlocksPerSeq,
                                            queryStarts, contextLens, numHeads, numKvHeads,
                                            scale * 1.4426950408889634f, out, headsFastest ? 1 : 0, maps[0], maps[1]);
    return cudaGetLastError();
  };
  if (kvDtype == KvCacheDtype::Fp8E4m3) {
    const auto* k8 = static_cast<const uint8_t*>(kc);
    // The ping-pong kernel fed by a producer warpgroup that loads and widens the FP8 tiles (H100, 2026-12-07: kernel
    // checks and conformance pass; attention of a 13B prefill 4096 28.2 -> 24.9 ms, 2048 8.2 -> 7.3 ms; whole
    // prefill 4096 +0.4..1.3 %). AWQ_ATTN_PREFILL_FP8_TMA=0: the two-warpgroup kernel, each tile widened by the
    // consumers.
    static const bool fp8Tma = env_flag("AWQ_ATTN_PREFILL_FP8_TMA", true);
    if (pp && tma && fp8Tma) {
      constexpr int smem = smem_bytes<uint8_t, true>();
      return launch(prefill_attention_sm90_kernel<true, uint8_t, true>, k8, smem, 384);
    }
    constexpr int smem = smem_bytes<uint8_t>();
    return launch(prefill_attention_sm90_kernel<false, uint8_t>, k8, smem, 256);
  }
  const auto* k16 = static_cast<const __half*>(kc);
  if (pp && tma) {
    // The cache as a 3-D fp16 tensor [slot][kv head][128 d]; a box is 64 d x 1 head x one page of 16 slots. The slot
    // extent is a bound, not the cache's size (unknown here): the producer only boxes pages of the block table that
    // lie wholly inside a sequence's context, as the cp.async path reads them. Where the driver has no encoder or
    // refuses the maps, the cp.async kernel runs instead.
    PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encode_fn();
    const cuuint64_t dims[3] = {(cuuint64_t)kD, (cuuint64_t)numKvHeads, (cuuint64_t)1 << 28};
    const cuuint64_t strides[2] = {(cuuint64_t)kD * 2, (cuuint64_t)numKvHeads * kD * 2};
    const cuuint32_t box[3] = {64, 1, (cuuint32_t)kKvBlockSize};
    const cuuint32_t estr[3] = {1, 1, 1};
    const void* base[2] = {kc, vc};
    bool encoded = encode != nullptr;
    for (int i = 0; i < 2 && encoded; ++i)
      encoded = encode(&maps[i], CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3, const_cast<void*>(base[i]), dims, strides, box,
                       estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                       CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
    if (encoded) {
      constexpr int smem = smem_bytes<__half, true>();
      return launch(prefill_attention_sm90_kernel<true, __half, true>, k16, smem, 384);
    }
  }
  constexpr int smem = smem_bytes<__half>();
  return pp ? launch(prefill_attention_sm90_kernel<true, __half>, k16, smem, 256)
            : launch(prefill_attention_sm90_kernel<false, __half>, k16, smem, 256);
}

}  // namespace awqk
