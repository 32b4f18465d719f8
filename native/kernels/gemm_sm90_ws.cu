// sm_90a (Hopper) AWQ GEMM, warp-specialized and persistent, with stream-K for the tail: every linear of 9 rows or
// more on Hopper (prefill, and decode batches >= 9 with its 16 / 32 / 64-row tiles).
//
// Swap-AB as in gemm_sm90_rs.cu: y^T = W * x^T, the dequantized weights are the wgmma A operand (registers),
// the rows of x the B operand (shared memory), so the int4 weights go global -> shared -> registers -> tensor
// cores and are never written back as fp16.
//
// Block = 3 warpgroups. Warpgroup 0 is the producer (one warp issues, the rest leave; setmaxnreg gives their
// registers to the consumers): per 64-deep k chunk it loads the x tile (NT rows x 64, TMA with the 128-byte
// swizzle wgmma reads, rows past m zero-filled) and, per 16-output tile, the packed int4 words (512 B) and the
// zero/scale pairs of the chunk's group (64 B) as two 3-D TMA boxes over the block's tiles (AWQ_GEMM_WS_TMAW=0: one
// cp.async.bulk a tile and lane, the first way, 20 % slower in prefill), all completing on the stage's "full"
// mbarrier, into a ring of kStages stages. Warpgroups 1 and 2 consume (setmaxnreg: 56 registers for the
// producer, 224 for them): each owns 64 * MS outputs (MS m64 slices of 4 packed tiles, one per warp); per chunk
// and slice every lane builds its A fragments from the packed words (one prmt + dequant_word per k step, see
// gemm_sm90_rs.cu) and issues 4 wgmma m64nNTk16 as one group. Two fragment sets alternate, so one group is
// always in flight while the next one's fragments are built (MS = 1: chunk after chunk; MS = 2: slice after
// slice); a chunk's stage goes back to the producer through its "empty" mbarrier once wgmma.wait_group has
// retired every group that reads it. (The decode tiles of 8..32 rows take mma.sync instead, see MMA below.) The
// producer requests the weights of its first stages before waiting for the previous kernel (programmatic dependent
// launch; AWQ_GEMM_WS_PF=0 turns that off), x only after.
//
// Clusters (CL = 2, variants 4 and 5): the two blocks of a cluster compute adjacent output tiles of the same row
// tile and k range, each TMA-loading half of the x tile with multicast into both, so x crosses L2 once for two
// blocks; a stage is free again once the consumer warps of both blocks released it (remote mbarrier arrivals).
//
// Scheduling: G <= #SMs persistent blocks (clusters). Tiles (CL * 128 * MS outputs x NT rows) are numbered in bands
// of 8 row tiles (rows fastest inside a band), so the blocks running at one time share their weight and x
// slices in L2. The first `dp` tiles go round-robin (block c: c, c + G, ...), whole. The last tiles (the
// partial wave plus one full wave, or all tiles when there are fewer than G) are split stream-K: their
// (tile, chunk) iterations are cut into G equal ranges, one per block. A tile cut between blocks is finished by
// the block that computed its first chunks (it reaches that tile last of its range): every other block writes its
// fp32 partial to its own workspace slot (fragment order, coalesced), raises the tile's counter, and the owner
// waits for the count, adds the partials in block order (deterministic) and writes y. Each block has at most one
// non-owned range, so the workspace holds G slots; counters are reset by the owner. The owners' waits need every
// block resident at once: G is at most the SMs (the co-resident clusters).
//
// Code built for any other architecture traps: the launcher runs it on cc 9.x only, where the sm_90a cubin is the
// one loaded.
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdlib>

#include "common.cuh"
#include "gemm_ws.h"
#include "internal.h"
#include "launch.h"
#include "mbarrier.cuh"
#include "tensor_map.h"
#include "wgmma.cuh"

namespace awqk {
namespace {

constexpr int kMaxSmem = 232448;  // 227 KB of dynamic shared memory a block on sm_90

// MS m64 slices a consumer warpgroup (outputs a block: 128 * MS), NT rows of x a tile (the wgmma n), CH 64-deep
// chunks a stage (2: the mma.sync decode tiles' pairs, PAIR below).
template <int MS, int NT, int CH = 1>
struct WsCfg {
  static constexpr int kTiles = 8 * MS;  // 16-output packed tiles a block
  static constexpr int kOut = 16 * kTiles;
  static constexpr int kX = CH * NT * 128;  // x tiles: CH x (NT rows x 128 B, swizzled)
  static constexpr int kW = kX;             // packed words: kTiles x CH x 512 B
  static constexpr int kZ = kW + kTiles * 512 * CH;  // zero/scale pairs: kTiles x 64 B (one group a stage)
  static constexpr int kStage = (kZ + kTiles * 64 + 1023) / 1024 * 1024;
  static constexpr int kStages = std::min(12, (kMaxSmem - 2048) / kStage);
  static constexpr int kSmem = kStages * kStage + 1024;
  static constexpr int kSlotFloats = kOut * NT;  // one stream-K partial
  static_assert(kStages >= 3, "stage ring");
};

struct WsParams {
  int m, in, out, chunksPerGroup;
  const uint4* wq;
  const uint2* zs;
  __half* y;
  float* ws;
  int* counters;
  int nTiles;     // 16-output packed tiles of the matrix
  int outTiles;   // block tiles along the outputs
  int tokTiles;   // block tiles along the rows of x
  int K;          // 64-deep chunks
  int dp;         // tiles done whole, round-robin
  long long wsk;  // stream-K iterations (tiles after dp, times K)
  int prefetch;   // 1: the first stages' weights are requested before the wait for the previous kernel
  int tmaW;       // 1: a chunk's packed words and zero/scale pairs of the block's tiles come as two 3-D TMA boxes
  int glu;        // 1: outputs gate|up interleaved by 8; y (m, out / 2) = silu(gate) * up
  int fixupBatch;  // 1: a stream-K owner reads up to 64 floats of partials a thread at once (AWQ_GEMM_WS_FIXUP)
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
using detail::smem_addr;
using detail::mbar_arrive;
using detail::mbar_arrive_expect_tx;
using detail::mbar_expect_tx;
using detail::mbar_init;
using detail::mbar_wait;
using detail::keep_regs;
using detail::tma_3d;  // the packed words or zero/scale pairs of the block's tiles for one chunk

__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void tma_2d(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
          "r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void tma_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                       uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
      : "memory");
}
// Multicast TMA: this block's rows of the x tile into the same offset of every block of the cluster in `mask`,
// completing on the mbarrier at the same offset in each.
__device__ __forceinline__ void tma_2d_mc(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar,
                                          uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, "
      "%3}], [%4], %5;\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar)), "h"(mask)
      : "memory");
}
// Arrival on the mbarrier at the same shared-memory offset in cluster block `cta`.
__device__ __forceinline__ void mbar_arrive_remote(uint64_t* bar, uint32_t cta) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smem_addr(bar)), "r"(cta));
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(remote) : "memory");
}
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }


// The work units of block c in order: its round-robin tiles, then its stream-K range cut at tile edges. The ranges
// are cut at multiples of `grain` chunks (MMA: 2, so that no unit splits a pair of chunks; K is even there).
struct Units {
  int t;
  long long i, e;
  __device__ __forceinline__ Units(const WsParams& p, int c, int G, int grain = 1)
      : t(c),
        i((long long)c * (p.wsk / grain) / G * grain),
        e((long long)(c + 1) * (p.wsk / grain) / G * grain) {}
  __device__ __forceinline__ bool next(const WsParams& p, int G, int& tile, int& kb, int& ke) {
    if (t < p.dp) {
      tile = t;
      kb = 0;
      ke = p.K;
      t += G;
      return true;
    }
    if (i < e) {
      const int j = (int)(i / p.K);
      kb = (int)(i - (long long)j * p.K);
      const long long left = e - i;
      ke = left < p.K - kb ? kb + (int)left : p.K;
      tile = p.dp + j;
      i += ke - kb;
      return true;
    }
    return false;
  }
};

// Tile -> (output tile, row tile): bands of 8 row tiles, rows fastest inside a band.
__device__ __forceinline__ void tile_coords(const WsParams& p, int t, int& ot, int& rt) {
  const int band = t / (8 * p.outTiles);
  const int bt = min(8, p.tokTiles - band * 8);
  const int local = t - band * 8 * p.outTiles;
  rt = band * 8 + local % bt;
  ot = local / bt;
}

// Block owning stream-K iteration i (ranges [c * wsk / G, (c + 1) * wsk / G) of grains; see Units).
__device__ __forceinline__ int sk_owner(long long i, long long wsk, int G, int grain = 1) {
  i /= grain;
  wsk /= grain;
  int c = (int)((i * G) / wsk);
  while (c + 1 < G && (long long)(c + 1) * wsk / G <= i) ++c;
  while (c > 0 && (long long)c * wsk / G > i) --c;
  return c;
}
#endif

// SWZ (with tmaW): the packed words arrive 128-byte swizzled (a 4-D box) and are read without bank conflicts.
// DEEP (two slices, NT <= 64): four fragment sets, so three wgmma groups stay in flight while the fourth set is
// dequantized (at decode sizes each chunk's tensor work is a few cycles; the loop waited on the previous group's
// latency: ncu, H100, m = 16: 232 instructions a chunk a warp at ~25 % issue utilisation).
// MMA (decode tiles of NT <= 32 rows, an even number of chunks a group): the consumers run mma.sync, each warp on its
// own, on the exact q - z, a pair of chunks into a temporary fp32 tile folded into the accumulators with the group's
// scale (acc += tmp * s). Against the wgmma loop (ncu, H100, m = 16: ~122 instructions a slice and chunk, 16 of them
// HMUL2 applying the scale per weight, ~20 building descriptors and scale-d predicates, plus warpgroup fences and
// waits): no fp16 multiply per weight, and no warpgroup coupling. (A wgmma form of the same folding makes ptxas
// serialize the wgmmas (C7514): the temporary tile read after a wait crosses the loop's back edge in flight.)
template <int MS, int NT, int CL, bool SWZ = false, bool DEEP = false, bool MMA = false>
__global__ void __launch_bounds__(384, 1) gemm_ws_kernel(const __grid_constant__ CUtensorMap tmX,
                                                          const __grid_constant__ CUtensorMap tmW,
                                                          const __grid_constant__ CUtensorMap tmZ, const WsParams p) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
  // PAIR (MMA with DEEP, AWQ_GEMM_WS_MMA=2): a stage holds a pair of chunks, the packed words of each tile as one
  // contiguous 1 KB piece (a TMA box of 128 words x 2 chunks x 16 tiles), the pair's x tiles and its group's
  // zero/scale pairs; the consumers wait and release once a pair.
  constexpr bool PAIR = MMA && DEEP;
  constexpr int CH = PAIR ? 2 : 1;
  using C = WsCfg<MS, NT, CH>;
  detail::pdl_launch();
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kStages = C::kStages;
  constexpr int kAcc = NT / 2;  // accumulators a thread a slice
  constexpr int kGrain = MMA ? 2 : 1;  // stream-K ranges cut at pairs of chunks
  static_assert(!MMA || (MS == 2 && NT <= 32 && CL == 1), "MMA: the two-slice decode tiles");
  __shared__ __align__(8) uint64_t full[kStages], empty[kStages];
  unsigned char* smem = smemRaw + ((1024 - (smem_addr(smemRaw) & 1023)) & 1023);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  // Clusters of CL blocks: cluster `cid` of G does the units; its block `rank` owns output tile ot * CL + rank of
  // each and loads NT / CL rows of the shared x tile for all of them (multicast).
  const int G = gridDim.x / CL, cid = blockIdx.x / CL;
  const int rank = CL > 1 ? (int)cluster_rank() : 0;
  if (tid == 0) {
    // The three tensor maps into the descriptor cache now, not at their first copy (x's comes after the PDL wait).
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&tmW)) : "memory");
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&tmZ)) : "memory");
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&tmX)) : "memory");
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 8 * CL);  // one arrival per consumer warp of each block of the cluster
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if constexpr (CL > 1) cluster_sync();
  else __syncthreads();

  if (warp < 4) {  // producer warpgroup
    asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n" ::: "memory");
    if (warp == 0) {
      const int groups = p.K / p.chunksPerGroup;
      const int ti = lane & 15;
      // Packed words and zero/scale pairs of the chunks of tile `tile0..` in stage s (bytes on full[s]). With tmaW two
      // TMA boxes (kTiles x 512 B and kTiles x 64 B, tiles past the matrix zero-filled) from lane 0 instead of 32
      // small bulk copies (one a tile and lane): the copy engine, not the bytes, limited the old way (ncu, H100: the
      // tensor pipe 49 % busy at m = 2048 while L2 and DRAM were not).
      auto w_bytes = [&](int nValid) { return nValid <= 0 ? 0 : (p.tmaW ? C::kTiles : nValid) * (512 * CH + 64); };
      auto load_w = [&](unsigned char* st, int tile0, int nValid, int kc, uint64_t* bar) {
        if (p.tmaW) {
          if (lane == 0 && nValid > 0) {
            if constexpr (SWZ) tma_4d(st + C::kW, &tmW, 0, 0, kc, tile0, bar);
            else tma_3d(st + C::kW, &tmW, 0, kc, tile0, bar);
            tma_3d(st + C::kZ, &tmZ, 0, kc / p.chunksPerGroup, tile0, bar);
          }
          return;
        }
        if (ti < nValid) {
          if (lane < 16)
            bulk_g2s(st + C::kW + ti * 512, p.wq + ((size_t)(tile0 + ti) * p.K + kc) * 32, 512, bar);
          else
            bulk_g2s(st + C::kZ + ti * 64, p.zs + ((size_t)(tile0 + ti) * groups + kc / p.chunksPerGroup) * 8, 64,
                     bar);
        }
      };
      // The weights of the first stages go out before the wait for the previous kernel (no kernel writes them).
      int pre = 0;
      {
        Units u(p, cid, G, kGrain);
        int tile, kb, ke;
        if (p.prefetch && u.next(p, G, tile, kb, ke)) {
          int ot, rt;
          tile_coords(p, tile, ot, rt);
          const int tile0 = (ot * CL + rank) * C::kTiles;
          const int nValid = max(0, min(C::kTiles, p.nTiles - tile0));
          pre = min(kStages, (ke - kb) / CH);
          for (int q = 0; q < pre; ++q) {
            if (lane == 0) mbar_expect_tx(&full[q], w_bytes(nValid));
            __syncwarp();
            load_w(smem + q * C::kStage, tile0, nValid, kb + q * CH, &full[q]);
          }
        }
      }
      detail::pdl_wait();
      Units u(p, cid, G, kGrain);
      int tile, kb, ke, q = 0;
      while (u.next(p, G, tile, kb, ke)) {
        int ot, rt;
        tile_coords(p, tile, ot, rt);
        const int tile0 = (ot * CL + rank) * C::kTiles;
        const int nValid = max(0, min(C::kTiles, p.nTiles - tile0));
        for (int kc = kb; kc < ke; kc += CH, ++q) {
          const int s = q % kStages;
          mbar_wait(&empty[s], ((q / kStages) & 1) ^ 1);
          unsigned char* st = smem + s * C::kStage;
          if (lane == 0) {
            mbar_arrive_expect_tx(&full[s], C::kX + (q < pre ? 0 : w_bytes(nValid)));
            if constexpr (CL == 1) {
#pragma unroll
              for (int c = 0; c < CH; ++c) tma_2d(st + c * NT * 128, &tmX, (kc + c) * 64, rt * NT, &full[s]);
            } else
              tma_2d_mc(st + rank * (C::kX / CL), &tmX, kc * 64, rt * NT + rank * (NT / CL), &full[s],
                        (uint16_t)((1 << CL) - 1));
          }
          __syncwarp();
          if (q >= pre) load_w(st, tile0, nValid, kc, &full[s]);
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n" ::: "memory");
    detail::pdl_wait();  // before the workspace, the counters and y
    const int ct = tid - 128, wg = ct >> 7, wi = (ct >> 5) & 3;
    const int g = lane >> 2, t = lane & 3;
    // Lane (g, t) of a tile: the bytes of lane (g, kk)'s words t/2 and 2 + t/2 holding k = 16kk + 2t + {0, 1} and
    // 16kk + 2t + 8 + {0, 1} (see gemm_sm90_rs.cu).
    const uint32_t sel = (t & 1) ? 0x7351u : 0x6240u;
    const bool hiWord = (t >> 1) != 0;
    float acc[MS][kAcc];
    uint32_t fa[16], fb[16];  // two fragment sets (one slice, one 64-deep chunk each)
    uint32_t fa1[16], fb1[16];  // DEEP: the sets of the odd chunks
#pragma unroll
    for (int i = 0; i < 16; ++i) fb[i] = fa1[i] = fb1[i] = 0;
    // Fragments of slice `sl` (packed tile (wg * MS + sl) * 4 + warp of the block) for the chunk in stage `st`.
    auto dequant = [&](const unsigned char* st, int sl, uint32_t(&f)[16]) {
      const int tl = (wg * MS + sl) * 4 + wi;
      // Lane (g, t) reads 16-byte word 4g + kk of its tile's 512 B: 128-byte row g / 2, column 4 (g & 1) + kk.
      // Unswizzled, the 8 rows g of one kk sit 64 B apart (4-way bank conflicts: ncu, H100). With SWZ the TMA box
      // stored column c of 128-byte row r at c ^ r (r = the row in the 1024-byte swizzle atom: 4 (tl & 1) + g / 2,
      // and tl & 1 = wi & 1), which spreads the 8 over all 32 banks: the word is 4g ^ r ^ kk.
      const int wq = SWZ ? (4 * g) ^ ((wi & 1) * 4 + (g >> 1)) : 4 * g;
      const uint4* wl = reinterpret_cast<const uint4*>(st + C::kW) + tl * 32;
      const uint2 zz = reinterpret_cast<const uint2*>(st + C::kZ)[tl * 8 + g];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint4 v = wl[wq ^ kk];
        const uint32_t lo = hiWord ? v.y : v.x, hi = hiWord ? v.w : v.z;
        detail::dequant_word(__byte_perm(lo, hi, sel), zz.x, zz.y, &f[4 * kk]);
      }
    };
    // The 4 k steps of slice `sl` as one wgmma group; i = 0 (the unit's first chunk) overwrites the accumulators.
    auto issue = [&](const unsigned char* st, int sl, uint32_t(&f)[16], int i) {
      keep_regs(f);
      detail::wgmma_fence();
      const uint64_t desc = detail::sw128_desc(st);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) detail::wgmma_rs<NT>(acc[sl], &f[4 * kk], desc + 2 * kk, i + kk > 0);
      detail::wgmma_commit();
    };
    // Stage s back to the producers of every block of the cluster (they all write into it).
    auto release = [&](int s) {
      if (lane == 0) {
        mbar_arrive(&empty[s]);
#pragma unroll
        for (int r = 1; r < CL; ++r) mbar_arrive_remote(&empty[s], (uint32_t)((rank + r) % CL));
      }
    };
    Units u(p, cid, G, kGrain);
    int tile, kb, ke, q = 0;
    while (u.next(p, G, tile, kb, ke)) {
      const int n = ke - kb;
      if constexpr (MS == 1) {
        // One chunk: stage -> fragments `cur` -> wgmmas; then retire the previous chunk's wgmmas (their fragments
        // `prev` stay live until then) and release its stage. No path may reach a body that writes the fragments
        // still in flight (ptxas would serialize every wgmma, C7513): pairs, then the odd chunk after the loop.
        auto body = [&](int i, uint32_t(&cur)[16], uint32_t(&prev)[16]) {
          const int s = q % kStages;
          mbar_wait(&full[s], (q / kStages) & 1);
          const unsigned char* st = smem + s * C::kStage;
          dequant(st, 0, cur);
          issue(st, 0, cur, i);
          detail::wgmma_wait<1>();
          keep_regs(prev);
          if (i > 0) release((q + kStages - 1) % kStages);
          ++q;
        };
        int i = 0;
        for (; i + 1 < n; i += 2) {
          body(i, fa, fb);
          body(i + 1, fb, fa);
        }
        if (i < n) body(i, fa, fb);
      } else if constexpr (MMA) {
        // Each warp alone (no warpgroup op), in the packed layout's own k order (as the GEMV: mma k index 2t + h is
        // k 16t + 4j + h of the chunk, 2t + 8 + h is 16t + 4j + 2 + h), so lane (g, t)'s A fragments of the 4 k steps
        // are its own 16 bytes of the tile (no byte selection) and its B fragments are x[row][16t .. 16t + 15] (two
        // 16-byte reads a row tile from the swizzled x tile). Per pair of chunks (one group; units are cut at pairs)
        // the exact q - z products go into a temporary fp32 tile, then acc += tmp * s. A stage goes back to the
        // producer as soon as the warp has read it.
        constexpr int kNt = NT / 8;  // 8-row tiles of x
        float tmp[2][kAcc];
        uint2 zsv[2];
#pragma unroll
        for (int sl = 0; sl < 2; ++sl)
#pragma unroll
          for (int j = 0; j < kAcc; ++j) acc[sl][j] = 0.f;
        // Row 8 nt + g of the x tile, 16-byte chunks 2t and 2t + 1, where TMA's 128-byte swizzle stored them (c ^ g).
        const int xOff0 = g * 128 + (((2 * t) ^ g) << 4), xOff1 = g * 128 + (((2 * t + 1) ^ g) << 4);
        auto chunk = [&](bool first) {
          const int s = q % kStages;
          mbar_wait(&full[s], (q / kStages) & 1);
          const unsigned char* st = smem + s * C::kStage;
          uint4 xv[kNt][2];
#pragma unroll
          for (int nt = 0; nt < kNt; ++nt) {
            xv[nt][0] = *reinterpret_cast<const uint4*>(st + nt * 8 * 128 + xOff0);
            xv[nt][1] = *reinterpret_cast<const uint4*>(st + nt * 8 * 128 + xOff1);
          }
#pragma unroll
          for (int sl = 0; sl < 2; ++sl) {
            const int tl = (wg * MS + sl) * 4 + wi;
            const uint4 w = reinterpret_cast<const uint4*>(st + C::kW)[tl * 32 + lane];
            const uint2 zz = reinterpret_cast<const uint2*>(st + C::kZ)[tl * 8 + g];
            if (first) zsv[sl] = zz;
            __half2 zLo, nzHi;
            detail::zero_operands(zz.x, zz.y, zLo, nzHi);
            uint32_t f[16];
            detail::dequant_qz(w.x, zLo, nzHi, &f[0]);
            detail::dequant_qz(w.y, zLo, nzHi, &f[4]);
            detail::dequant_qz(w.z, zLo, nzHi, &f[8]);
            detail::dequant_qz(w.w, zLo, nzHi, &f[12]);
#pragma unroll
            for (int nt = 0; nt < kNt; ++nt) {
              if (first) {
#pragma unroll
                for (int c = 0; c < 4; ++c) tmp[sl][4 * nt + c] = 0.f;
              }
              const uint32_t b[4][2] = {{xv[nt][0].x, xv[nt][0].y}, {xv[nt][0].z, xv[nt][0].w},
                                        {xv[nt][1].x, xv[nt][1].y}, {xv[nt][1].z, xv[nt][1].w}};
#pragma unroll
              for (int kk = 0; kk < 4; ++kk) detail::mma16816(&tmp[sl][4 * nt], &f[4 * kk], b[kk]);
            }
          }
          __syncwarp();
          release(s);
          ++q;
        };
        // PAIR: both chunks of a stage, one wait and one release; tile tl's words of chunk c at (tl * 2 + c) * 512 B.
        // Its dequant + mma body repeats chunk's: with one helper for both, ptxas scheduled the default (measured)
        // v7-v9 MMA kernels differently (sm_90a .text of 43-58 KB, half the bytes changed), which only a GPU call
        // could re-verify; share it once PAIR is timed and either lands or goes.
        auto pair = [&] {
          const int s = q % kStages;
          mbar_wait(&full[s], (q / kStages) & 1);
          const unsigned char* st = smem + s * C::kStage;
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            uint4 xv[kNt][2];
#pragma unroll
            for (int nt = 0; nt < kNt; ++nt) {
              xv[nt][0] = *reinterpret_cast<const uint4*>(st + c * NT * 128 + nt * 8 * 128 + xOff0);
              xv[nt][1] = *reinterpret_cast<const uint4*>(st + c * NT * 128 + nt * 8 * 128 + xOff1);
            }
#pragma unroll
            for (int sl = 0; sl < 2; ++sl) {
              const int tl = (wg * MS + sl) * 4 + wi;
              const uint4 w = reinterpret_cast<const uint4*>(st + C::kW)[(tl * 2 + c) * 32 + lane];
              const uint2 zz = reinterpret_cast<const uint2*>(st + C::kZ)[tl * 8 + g];
              if (c == 0) zsv[sl] = zz;
              __half2 zLo, nzHi;
              detail::zero_operands(zz.x, zz.y, zLo, nzHi);
              uint32_t f[16];
              detail::dequant_qz(w.x, zLo, nzHi, &f[0]);
              detail::dequant_qz(w.y, zLo, nzHi, &f[4]);
              detail::dequant_qz(w.z, zLo, nzHi, &f[8]);
              detail::dequant_qz(w.w, zLo, nzHi, &f[12]);
#pragma unroll
              for (int nt = 0; nt < kNt; ++nt) {
                if (c == 0) {
#pragma unroll
                  for (int j = 0; j < 4; ++j) tmp[sl][4 * nt + j] = 0.f;
                }
                const uint32_t b[4][2] = {{xv[nt][0].x, xv[nt][0].y}, {xv[nt][0].z, xv[nt][0].w},
                                          {xv[nt][1].x, xv[nt][1].y}, {xv[nt][1].z, xv[nt][1].w}};
#pragma unroll
                for (int kk = 0; kk < 4; ++kk) detail::mma16816(&tmp[sl][4 * nt], &f[4 * kk], b[kk]);
              }
            }
          }
          __syncwarp();
          release(s);
          ++q;
        };
        for (int i = 0; i < n; i += 2) {
          if constexpr (PAIR) {
            pair();
          } else {
            chunk(true);
            chunk(false);
          }
#pragma unroll
          for (int sl = 0; sl < 2; ++sl) {
            const float s0 = __high2float(detail::u32_as_h2(zsv[sl].x));
            const float s1 = __high2float(detail::u32_as_h2(zsv[sl].y));
#pragma unroll
            for (int j = 0; j < kAcc; ++j) acc[sl][j] = fmaf(tmp[sl][j], (j >> 1) & 1 ? s1 : s0, acc[sl][j]);
          }
        }
      } else if constexpr (DEEP) {
        // Two slices x two chunks: chunk i's slices in sets (fa, fb) or (fa1, fb1) by i & 1. A set is rewritten once
        // the group that read it two chunks ago has retired (wait<3>: the three groups after it may still run), and
        // a stage goes back to the producers two chunks late (its x tile is the B operand of groups in flight).
        auto body = [&](int i, uint32_t(&a)[16], uint32_t(&b)[16]) {
          const int s = q % kStages;
          mbar_wait(&full[s], (q / kStages) & 1);
          const unsigned char* st = smem + s * C::kStage;
          detail::wgmma_wait<3>();  // (i - 2, slice 0) retired: a is free
          keep_regs(a);
          dequant(st, 0, a);
          issue(st, 0, a, i);
          detail::wgmma_wait<3>();  // (i - 2, slice 1) retired: b and chunk i - 2's stage are free
          keep_regs(b);
          if (i >= 2) release((q + kStages - 2) % kStages);
          dequant(st, 1, b);
          issue(st, 1, b, i);
          ++q;
        };
        int i = 0;
        for (; i + 1 < n; i += 2) {
          body(i, fa, fb);
          body(i + 1, fa1, fb1);
        }
        if (i < n) body(i, fa, fb);
      } else {
        // Two slices: fa holds slice 0's fragments, fb slice 1's; each is rewritten once its previous group has
        // retired, so one group is always in flight while the other slice is dequantized.
        for (int i = 0; i < n; ++i) {
          const int s = q % kStages;
          mbar_wait(&full[s], (q / kStages) & 1);
          const unsigned char* st = smem + s * C::kStage;
          dequant(st, 0, fa);
          issue(st, 0, fa, i);
          detail::wgmma_wait<1>();  // slice 1 of the previous chunk: its fragments and stage are free
          keep_regs(fb);
          if (i > 0) release((q + kStages - 1) % kStages);
          dequant(st, 1, fb);
          issue(st, 1, fb, i);
          detail::wgmma_wait<1>();  // slice 0 of this chunk
          keep_regs(fa);
          ++q;
        }
      }
      if constexpr (!MMA) {  // (MMA released every stage as it read it)
        detail::wgmma_wait<0>();
        keep_regs(acc);
        keep_regs(fa);
        keep_regs(fb);
        if constexpr (DEEP) {
          keep_regs(fa1);
          keep_regs(fb1);
          if (n >= 2) release((q + kStages - 2) % kStages);
        }
        release((q + kStages - 1) % kStages);
      }

      if (kb != 0 || ke != p.K) {  // a stream-K piece of a tile
        const int j = (tile - p.dp) * CL + rank;  // counter of this block's part of the tile
        if (kb != 0) {  // not the owner: partial to this block's slot, then count
          float4* slot = reinterpret_cast<float4*>(p.ws + (size_t)blockIdx.x * C::kSlotFloats);
#pragma unroll
          for (int sl = 0; sl < MS; ++sl)
#pragma unroll
            for (int i = 0; i < kAcc; i += 4)
              __stcg(slot + ((sl * kAcc + i) / 4) * 256 + ct,
                     make_float4(acc[sl][i], acc[sl][i + 1], acc[sl][i + 2], acc[sl][i + 3]));
          __threadfence();
          consumers_sync();
          if (ct == 0) atomicAdd(&p.counters[j], 1);
          continue;
        }
        const int cLast = sk_owner((long long)(tile - p.dp + 1) * p.K - 1, p.wsk, G, kGrain);
        if (ct == 0) {
          // Until the counter reaches cLast - cid (acquire), bounded as mbar_wait is (a partial that never came traps).
          asm volatile(
              "{\n"
              ".reg .pred p;\n"
              ".reg .u32 t0, t1;\n"
              ".reg .b32 v;\n"
              "mov.u32 t0, %%globaltimer_lo;\n"
              "WS_SPIN:\n"
              "ld.acquire.gpu.global.b32 v, [%0];\n"
              "setp.ge.s32 p, v, %1;\n"
              "@p bra WS_SEEN;\n"
              "nanosleep.u32 64;\n"
              "mov.u32 t1, %%globaltimer_lo;\n"
              "sub.u32 t1, t1, t0;\n"
              "setp.lt.u32 p, t1, 2000000000;\n"
              "@p bra WS_SPIN;\n"
              "trap;\n"
              "WS_SEEN:\n"
              "}\n" ::"l"(&p.counters[j]),
              "r"(cLast - cid)
              : "memory");
          p.counters[j] = 0;
        }
        consumers_sync();
        __threadfence();
        // The partials of blocks cid + 1 .. cLast, added in block order (deterministic). A narrow matrix at decode
        // sizes (o, down at m = 16: 20 output tiles over 132 blocks) has ~6 partials a tile: their reads go out
        // kBatch at a time (up to 64 floats a thread; p.fixupBatch), not one L2 round trip after the other.
        // One at a time where the accumulators are large or DEEP's four fragment sets are still live (ptxas: the
        // batch spilled there); the MMA tiles and the 8-row tile take 4-8.
        constexpr int kF4 = MS * kAcc / 4;  // float4 of one partial a thread
        constexpr int kBatch = (DEEP && !MMA) || kF4 >= 16 ? 1 : 16 / kF4 > 8 ? 8 : 16 / kF4;
        const int nb = p.fixupBatch ? kBatch : 1;
        for (int c0 = cid + 1; c0 <= cLast; c0 += nb) {
          float4 v[kBatch][kF4];
#pragma unroll
          for (int b = 0; b < kBatch; ++b) {
            if (b < nb && c0 + b <= cLast) {
              const float4* slot =
                  reinterpret_cast<const float4*>(p.ws + (size_t)((c0 + b) * CL + rank) * C::kSlotFloats);
#pragma unroll
              for (int f = 0; f < kF4; ++f) v[b][f] = __ldcg(slot + f * 256 + ct);
            }
          }
#pragma unroll
          for (int b = 0; b < kBatch; ++b) {
            if (b < nb && c0 + b <= cLast) {
#pragma unroll
              for (int sl = 0; sl < MS; ++sl)
#pragma unroll
                for (int i = 0; i < kAcc; i += 4) {
                  const float4 w4 = v[b][(sl * kAcc + i) / 4];
                  acc[sl][i] += w4.x;
                  acc[sl][i + 1] += w4.y;
                  acc[sl][i + 2] += w4.z;
                  acc[sl][i + 3] += w4.w;
                }
            }
          }
        }
      }
      // acc[sl][4j + 2h + e] = (output 64 * slice + 16 * warp + g + 8h, row 8j + 2t + e). Lanes g and g ^ 1 (lane ^ 4)
      // trade one value each so that each stores an adjacent output pair as one half2: the even lane row 8j + 2t,
      // the odd lane row 8j + 2t + 1 (out is even: a pair is in or out of range whole). H100, 2026-12-06b, against
      // one half a store: prefill 4096 +2 %, batch 128 +0.6 % (whole steps, two passes).
      int ot, rt;
      tile_coords(p, tile, ot, rt);
      const bool oddLane = (g & 1) != 0;
      if (p.glu) {
        // A warp's 16-output tile holds 8 gate outputs (h = 0: acc[4j + e]) and the 8 matching up ones (h = 1:
        // acc[4j + 2 + e]) of the gate|up matrix interleaved by 8: act (row, 8 tile + g) = silu(gate) * up, gate and
        // up rounded to fp16 first as the unfused linear + launchSiluMul. Lanes g and g ^ 1 trade one product so that
        // each stores an adjacent pair as one half2 (the even lane row 8j + 2t, the odd lane row 8j + 2t + 1).
        const int actCols = p.out / 2;
#pragma unroll
        for (int sl = 0; sl < MS; ++sl) {
          const int col = ((ot * CL + rank) * C::kOut + (wg * MS + sl) * 64 + 16 * wi) / 2 + (g & ~1);
#pragma unroll
          for (int i = 0; i < kAcc; i += 4) {
            const float a0 = detail::silu_product(acc[sl][i], acc[sl][i + 2]);
            const float a1 = detail::silu_product(acc[sl][i + 1], acc[sl][i + 3]);
            const float other = __shfl_xor_sync(0xffffffffu, oddLane ? a0 : a1, 4);
            const int row = rt * NT + 8 * (i >> 2) + 2 * t + (oddLane ? 1 : 0);
            const __half2 pair = oddLane ? __floats2half2_rn(other, a1) : __floats2half2_rn(a0, other);
            if (row < p.m && col < actCols) *reinterpret_cast<__half2*>(p.y + (size_t)row * actCols + col) = pair;
          }
        }
        continue;
      }
#pragma unroll
      for (int sl = 0; sl < MS; ++sl) {
        const int o = (ot * CL + rank) * C::kOut + (wg * MS + sl) * 64 + 16 * wi + (g & ~1);
#pragma unroll
        for (int i = 0; i < kAcc; i += 2) {
          const float v0 = acc[sl][i], v1 = acc[sl][i + 1];
          const float other = __shfl_xor_sync(0xffffffffu, oddLane ? v0 : v1, 4);
          const int row = rt * NT + 8 * (i >> 2) + 2 * t + (oddLane ? 1 : 0);
          const int col = o + 8 * ((i >> 1) & 1);
          const __half2 pair = oddLane ? __floats2half2_rn(other, v1) : __floats2half2_rn(v0, other);
          if (row < p.m && col < p.out) *reinterpret_cast<__half2*>(p.y + (size_t)row * p.out + col) = pair;
        }
      }
    }
  }
  if constexpr (CL > 1) cluster_sync();  // no block leaves while another may still signal its barriers
#else
  __trap();
#endif
}

// AWQ_GEMM_WS_PF=0: no weight requests before the wait for the previous kernel (A/B of that prologue).
int ws_prefetch() {
  static const int v = env_flag("AWQ_GEMM_WS_PF", true) ? 1 : 0;
  return v;
}

// The weights of a chunk as two 3-D TMA boxes (see load_w; the default), AWQ_GEMM_WS_TMAW=0: 32 bulk copies, =2: TMA
// with the packed words 128-byte swizzled (conflict-free consumer reads; written without a GPU, off until timed).
int ws_tma_weights_env() {
  static const int v = [] {
    const char* e = std::getenv("AWQ_GEMM_WS_TMAW");
    return e != nullptr && (e[0] == '0' || e[0] == '2') ? e[0] - '0' : 1;
  }();
  return v;
}
int g_wsTmaW = -1;  // -1: the environment's choice

// The wgmma decode tiles' four-set pipeline (DEEP: v6, and v7-v9 when MMA is off): AWQ_GEMM_WS_DEEP=0 the two-set
// loop, else (default) on.
bool ws_deep() {
  static const bool on = env_flag("AWQ_GEMM_WS_DEEP", true);
  return on;
}

// The decode tiles of 8..32 rows (v7-v9) on mma.sync with fp32 scaling per pair of chunks (MMA, groups of an even
// number of chunks): AWQ_GEMM_WS_MMA=0 the wgmma loops, 2 a pair of chunks a stage (PAIR; written without a GPU,
// off until checked and timed), else (default) 1.
int ws_mma() {
  static const int v = [] {
    const char* e = std::getenv("AWQ_GEMM_WS_MMA");
    return e != nullptr && (e[0] == '0' || e[0] == '2') ? e[0] - '0' : 1;
  }();
  return v;
}

// Stream-K owners read the partials of a tile several at once (default); AWQ_GEMM_WS_FIXUP=0 one after the other.
bool ws_fixup_batch() {
  static const bool on = env_flag("AWQ_GEMM_WS_FIXUP", true);
  return on;
}

int sm_count() {
  int dev = 0, n = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
  return n > 0 ? n : 132;
}

template <int MS, int NT, int CL, bool SWZ = false, bool DEEP = false, bool MMA = false>
cudaError_t launch_ws(int tmaMode, int skMode, const __half* x, int m, const void* w, int in, int out, int group,
                      __half* y, void* workspace, size_t workspaceBytes, cudaStream_t stream, bool glu) {
  constexpr int CH = MMA && DEEP ? 2 : 1;  // chunks a stage (PAIR, see the kernel)
  using C = WsCfg<MS, NT, CH>;
  PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encode_fn();
  if (encode == nullptr) return cudaErrorNotSupported;
  static unsigned long long configured = 0;  // one bit per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  if (!(configured & bit)) {
    cudaError_t e =
        cudaFuncSetAttribute(gemm_ws_kernel<MS, NT, CL, SWZ, DEEP, MMA>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem);
    if (e != cudaSuccess) return e;
    configured |= bit;
  }
  CUtensorMap map;
  const cuuint64_t dims[2] = {(cuuint64_t)in, (cuuint64_t)m};
  const cuuint64_t strides[1] = {(cuuint64_t)in * 2};
  const cuuint32_t box[2] = {64, NT / CL};
  const cuuint32_t estr[2] = {1, 1};
  if (encode(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, const_cast<__half*>(x), dims, strides, box, estr,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
    return cudaErrorInvalidValue;

  // The packed words as a 3-D uint32 tensor (128 words of a (tile, chunk), chunks, tiles) and the zero/scale pairs
  // as (16 words of a (tile, group), groups, tiles); a box is one chunk (group) of kTiles tiles.
  const int nTiles = detail::ceil_div(out, 16), K = in / 64, groups = in / group;
  CUtensorMap mapW, mapZ;
  {
    const cuuint64_t wd[3] = {128, (cuuint64_t)K, (cuuint64_t)nTiles};
    const cuuint64_t wstr[2] = {512, (cuuint64_t)K * 512};
    const cuuint32_t wb[3] = {128, (cuuint32_t)CH, (cuuint32_t)C::kTiles};
    // Swizzled: the 512 B of a (tile, chunk) as 4 rows of 128 B (the swizzle's span), box 32 x 4 x 1 x kTiles.
    const cuuint64_t sd[4] = {32, 4, (cuuint64_t)K, (cuuint64_t)nTiles};
    const cuuint64_t sstr[3] = {128, 512, (cuuint64_t)K * 512};
    const cuuint32_t sb[4] = {32, 4, 1, (cuuint32_t)C::kTiles};
    const cuuint32_t e4[4] = {1, 1, 1, 1};
    const cuuint64_t zd[3] = {16, (cuuint64_t)groups, (cuuint64_t)nTiles};
    const cuuint64_t zst[2] = {64, (cuuint64_t)groups * 64};
    const cuuint32_t zb[3] = {16, 1, (cuuint32_t)C::kTiles};
    const cuuint32_t e3[3] = {1, 1, 1};
    void* zsPtr = static_cast<char*>(const_cast<void*>(w)) + awq_weight_bytes(in, out);
    const CUresult ew = SWZ ? encode(&mapW, CU_TENSOR_MAP_DATA_TYPE_UINT32, 4, const_cast<void*>(w), sd, sstr, sb, e4,
                                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
                            : encode(&mapW, CU_TENSOR_MAP_DATA_TYPE_UINT32, 3, const_cast<void*>(w), wd, wstr, wb, e3,
                                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (ew != CUDA_SUCCESS ||
        encode(&mapZ, CU_TENSOR_MAP_DATA_TYPE_UINT32, 3, zsPtr, zd, zst, zb, e3, CU_TENSOR_MAP_INTERLEAVE_NONE,
               CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
      return cudaErrorInvalidValue;
  }

  WsParams p;
  p.m = m;
  p.in = in;
  p.out = out;
  p.chunksPerGroup = group / 64;
  p.nTiles = nTiles;
  p.wq = static_cast<const uint4*>(w);
  p.zs = reinterpret_cast<const uint2*>(static_cast<const char*>(w) + awq_weight_bytes(in, out));
  p.y = y;
  p.outTiles = detail::ceil_div(out, C::kOut * CL);  // cluster tiles
  p.tokTiles = detail::ceil_div(m, NT);
  p.K = in / 64;
  const int T = p.outTiles * p.tokTiles;
  // Co-resident units of work: SMs, or for clusters the clusters that fit at once (the stream-K owners wait for
  // other blocks, so every block must be resident).
  int units = sm_count();
  if constexpr (CL > 1) {
    static int clusters[64] = {};
    if (clusters[dev & 63] == 0) {
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = dim3(CL * units);
      cfg.blockDim = dim3(384);
      cfg.dynamicSmemBytes = C::kSmem;
      cudaLaunchAttribute a[1];
      a[0].id = cudaLaunchAttributeClusterDimension;
      a[0].val.clusterDim.x = CL;
      a[0].val.clusterDim.y = 1;
      a[0].val.clusterDim.z = 1;
      cfg.attrs = a;
      cfg.numAttrs = 1;
      int n = 0;
      if (cudaOccupancyMaxActiveClusters(&n, gemm_ws_kernel<MS, NT, CL, SWZ, DEEP, MMA>, &cfg) != cudaSuccess || n <= 0) {
        cudaGetLastError();
        return cudaErrorNotSupported;
      }
      clusters[dev & 63] = n;
    }
    units = clusters[dev & 63];
  }
  const bool haveWs = workspace != nullptr && workspaceBytes > kLinearCounters * sizeof(int) &&
                      reinterpret_cast<uintptr_t>(workspace) % 16 == 0;
  int G = std::min(units, T), sk = 0;
  if (skMode != 0 && haveWs && T % units != 0) {
    // Stream-K over the last partial wave plus one full wave (all tiles when there are fewer than the units),
    // with one workspace slot a block.
    const size_t wsFloats = (workspaceBytes - kLinearCounters * sizeof(int)) / sizeof(float);
    const int gs = (int)std::min<size_t>(units, wsFloats / C::kSlotFloats / CL);
    if (gs >= 2) {
      const int waves = T / gs, rem = T % gs;
      sk = rem == 0 ? 0 : waves == 0 ? T : rem + gs;
      if ((long)sk * CL > kLinearCounters) sk = 0;
      if (sk > 0) G = gs;
    }
  }
  p.dp = T - sk;
  p.wsk = (long long)sk * p.K;
  if (sk > 0 && p.dp == 0) G = (int)std::max<long long>(1, std::min<long long>(G, p.wsk / 4));  // >= 4 chunks a block
  p.ws = haveWs ? reinterpret_cast<float*>(static_cast<char*>(workspace) + kLinearCounters * sizeof(int)) : nullptr;
  p.counters = haveWs ? static_cast<int*>(workspace) : nullptr;
  p.prefetch = ws_prefetch();
  p.tmaW = tmaMode != 0 || SWZ;
  p.glu = glu ? 1 : 0;
  p.fixupBatch = ws_fixup_batch() ? 1 : 0;
  if constexpr (CL == 1) {
    return pdl_launch_kernel(gemm_ws_kernel<MS, NT, CL, SWZ, DEEP, MMA>, dim3(G), dim3(384), C::kSmem, stream, map, mapW, mapZ,
                             p);
  } else {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(G * CL);
    cfg.blockDim = dim3(384);
    cfg.dynamicSmemBytes = C::kSmem;
    cfg.stream = stream;
    cudaLaunchAttribute a[2];
    a[0].id = cudaLaunchAttributeClusterDimension;
    a[0].val.clusterDim.x = CL;
    a[0].val.clusterDim.y = 1;
    a[0].val.clusterDim.z = 1;
    a[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = a;
    cfg.numAttrs = pdl_enabled() ? 2 : 1;
    return cudaLaunchKernelEx(&cfg, gemm_ws_kernel<MS, NT, CL, SWZ, DEEP, MMA>, map, mapW, mapZ, p);
  }
}

// tmaMode 0: bulk copies, 1: TMA boxes, 2: TMA with the packed words swizzled (single-block variants; the two-block
// cluster variants take mode 1 instead).
template <int MS, int NT, int CL>
cudaError_t launch_by_mode(int tmaMode, int skMode, const __half* x, int m, const void* w, int in, int out, int group,
                           __half* y, void* workspace, size_t workspaceBytes, cudaStream_t stream, bool glu) {
  if constexpr (CL == 1) {
    if (tmaMode == 2)
      return launch_ws<MS, NT, CL, true>(2, skMode, x, m, w, in, out, group, y, workspace, workspaceBytes, stream,
                                         glu);
    if constexpr (MS == 2 && NT <= 64) {
      if constexpr (NT <= 32) {
        if (ws_mma() != 0 && group % 128 == 0 && (in / 64) % 2 == 0) {
          if (ws_mma() == 2 && tmaMode == 1)  // the pairs come as TMA boxes only
            return launch_ws<MS, NT, CL, false, true, true>(tmaMode, skMode, x, m, w, in, out, group, y, workspace,
                                                           workspaceBytes, stream, glu);
          return launch_ws<MS, NT, CL, false, false, true>(tmaMode, skMode, x, m, w, in, out, group, y, workspace,
                                                          workspaceBytes, stream, glu);
        }
      }
      if (ws_deep())
        return launch_ws<MS, NT, CL, false, true>(tmaMode, skMode, x, m, w, in, out, group, y, workspace,
                                                  workspaceBytes, stream, glu);
    }
  }
  return launch_ws<MS, NT, CL, false>(tmaMode == 2 ? 1 : tmaMode, skMode, x, m, w, in, out, group, y, workspace,
                                      workspaceBytes, stream, glu);
}

}  // namespace

// With the weights as TMA boxes (H200, 2026-12-06, kernel-tests --gemm-ws --bench-only, TFLOP/s with stream-K): above
// 128 rows 128 outputs x 256 rows (v2: 509-605 on the four 13B projections at m = 512-4096, 389-587 at m = 256, the
// best tile there on each); at m <= 128 256 x 128 (v1) on the matrices wider than deep (qkv 410, gate_up 485 against 386 / 415 for v3)
// and 128 x 128 (v3) on the others (o 277, down 373 against 216 / 359 for v1).
// At m <= 64 the narrowest row tile that holds m (H100, kernel-tests, 13B linears per layer against the GEMV /
// register-A path: m = 16 +6 %, 32 +15 %, 64 +30 %; o alone at m = 16 was 13 % slower than the GEMV).
int gemm_ws_default_variant(int m, int in, int out) {
  if (m <= 64) return m <= 8 ? 9 : m <= 16 ? 8 : m <= 32 ? 7 : 6;
  return m > 128 ? 2 : out > in ? 1 : 3;
}

void gemm_ws_tma_weights_override(int on) { g_wsTmaW = on; }

cudaError_t gemm_sm90_ws(int variant, int skMode, const __half* x, int m, const void* w, int in, int out, int group,
                         __half* y, void* workspace, size_t workspaceBytes, cudaStream_t stream, bool glu) {
  if (m <= 0 || in % 64 != 0 || group % 64 != 0 || (glu && out % 16 != 0)) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0)
    return cudaErrorNotSupported;
  if (variant == 0) variant = gemm_ws_default_variant(m, in, out);
  const int tmaMode = g_wsTmaW >= 0 ? g_wsTmaW : ws_tma_weights_env();
  auto run = [&](auto launch) {
    return launch(tmaMode, skMode, x, m, w, in, out, group, y, workspace, workspaceBytes, stream, glu);
  };
  switch (variant) {
    case 1: return run(launch_by_mode<2, 128, 1>);
    case 2: return run(launch_by_mode<1, 256, 1>);
    case 3: return run(launch_by_mode<1, 128, 1>);
    case 4: return run(launch_by_mode<2, 128, 2>);
    case 5: return run(launch_by_mode<1, 256, 2>);
    // Decode sizes: 256 outputs x 64 / 32 / 16 rows, the weights streamed through the stage ring by TMA.
    case 6: return run(launch_by_mode<2, 64, 1>);
    case 7: return run(launch_by_mode<2, 32, 1>);
    case 8: return run(launch_by_mode<2, 16, 1>);
    // 256 x 8 for m <= 8, the GEMV's sizes (an experiment: AWQ_GEMM_WS_MIN_ROWS=1).
    case 9: return run(launch_by_mode<2, 8, 1>);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace awqk
