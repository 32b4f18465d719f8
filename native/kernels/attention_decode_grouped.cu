// Paged decode attention by KV head (flash-decoding): one block per (split, kv head, sequence) serves the G query
// heads that share the kv head, so each K/V row is read once for all of them. Each warp streams its own chunks of
// U key-steps (the next chunk's K/V loads in flight while the current one is computed) with its own online
// softmax, so the loop has no block-wide barrier; warps, then splits, are merged at the end (the last block of a
// (sequence, kv head) to finish merges the splits, as attention_decode.cu does). Lanes: D/8 per key, 8 elements
// each (16-byte fp16 loads, 8-byte FP8 E4M3 loads widened in registers).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "fp8_e4m3.cuh"
#include "internal.h"
#include "kernels.h"
#include "kv_io.cuh"
#include "launch.h"

namespace awqk {
namespace {

constexpr int kWarpsG = 4;
constexpr int kThreadsG = kWarpsG * 32;
constexpr int kMaxSplitsG = 64;
constexpr int kMinKeysPerSplit = 64;

// Key-steps per warp chunk: as many 16-byte-equivalent loads in flight as registers allow for G heads of state.
template <typename KV, int G>
__host__ __device__ constexpr int chunk_steps() {
  return (sizeof(KV) == 1 ? 8 : 4) / (G >= 4 ? 2 : 1);
}

// Called by every thread of a block after it wrote its partial: true (in every thread) for the block that arrives
// last of `count` at counters[index], which it resets to zero for the next call.
__device__ __forceinline__ bool last_to_arrive(int* counters, int index, int count) {
  __shared__ int sLast;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const int old = atomicAdd(&counters[index], 1);
    sLast = old == count - 1;
    if (sLast) atomicExch(&counters[index], 0);
  }
  __syncthreads();
  if (!sLast) return false;
  __threadfence();
  return true;
}

// Merges the splits of (seq, kv head) for its G query heads: out = sum_s w_s O_s / sum_s w_s L_s with
// w_s = 2^(M_s - max M). Called by every block after its partial is written; only the last one to arrive merges.
template <int D, int G>
__device__ __forceinline__ void merge_splits(const float* wsO, const float* wsM, const float* wsL, int* counters,
                                             int counter, int numSplits, int numHeads, int seq, int head0,
                                             __half* __restrict__ out) {
  __shared__ float sW[G][kMaxSplitsG];
  __shared__ float sDen[G];
  if (!last_to_arrive(counters, counter, numSplits)) return;
  for (int i = threadIdx.x; i < G * numSplits; i += kThreadsG) {
    const int g = i / numSplits, s = i % numSplits;
    const size_t e = ((size_t)seq * numHeads + head0 + g) * numSplits + s;
    sW[g][s] = __ldcg(wsM + e);
    sW[g][s] = __ldcg(wsL + e) > 0.f ? sW[g][s] : -INFINITY;
  }
  __syncthreads();
  if (threadIdx.x < G) {
    const int g = threadIdx.x;
    float mx = -INFINITY;
    for (int s = 0; s < numSplits; ++s) mx = fmaxf(mx, sW[g][s]);
    float den = 0.f;
    for (int s = 0; s < numSplits; ++s) {
      const size_t e = ((size_t)seq * numHeads + head0 + g) * numSplits + s;
      const float w = sW[g][s] == -INFINITY ? 0.f : exp2f(sW[g][s] - mx);
      sW[g][s] = w;
      den += w * __ldcg(wsL + e);
    }
    sDen[g] = den;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * D; i += kThreadsG) {
    const int g = i / D, d = i % D;
    const float* o = wsO + ((size_t)seq * numHeads + head0 + g) * numSplits * D + d;
    float num = 0.f;
#pragma unroll 8
    for (int s = 0; s < numSplits; ++s) num += sW[g][s] * __ldcg(o + (size_t)s * D);
    out[((size_t)seq * numHeads + head0 + g) * D + d] = __float2half(sDen[g] > 0.f ? num / sDen[g] : 0.f);
  }
}

// The warps' (max, sum, accumulator) per query head of a block (sM, sL, sAcc, written by each warp) merged:
// emit(g, d, o, den, mx) for every (query head g, element d), spread over the block's threads.
template <int D, int G, typename Emit>
__device__ __forceinline__ void merge_warps(const float (&sM)[kWarpsG][G], const float (&sL)[kWarpsG][G],
                                            const float (&sAcc)[kWarpsG][G][D], Emit&& emit) {
  __syncthreads();
  for (int i = threadIdx.x; i < G * D; i += kThreadsG) {
    const int g = i / D, d = i % D;
    float mx = sM[0][g];
#pragma unroll
    for (int w = 1; w < kWarpsG; ++w) mx = fmaxf(mx, sM[w][g]);
    float o = 0.f, den = 0.f;
#pragma unroll
    for (int w = 0; w < kWarpsG; ++w) {
      const float a = exp2f(sM[w][g] - mx);
      o += a * sAcc[w][g][d];
      den += a * sL[w][g];
    }
    emit(g, d, o, den, mx);
  }
}

// The end of a block: its warps merged; the block writes the output (one split) or its split's partial, and the last
// split to finish merges them.
template <int D, int G>
__device__ __forceinline__ void finish_block(const float (&sM)[kWarpsG][G], const float (&sL)[kWarpsG][G],
                                             const float (&sAcc)[kWarpsG][G][D], int numHeads, int numKvHeads,
                                             int seq, int kvh, float* __restrict__ wsO, float* __restrict__ wsM,
                                             float* __restrict__ wsL, int* __restrict__ counters,
                                             __half* __restrict__ out) {
  const int split = blockIdx.x, numSplits = gridDim.x;
  const int head0 = kvh * G;
  merge_warps<D, G>(sM, sL, sAcc, [&](int g, int d, float o, float den, float mx) {
    const size_t row = (size_t)seq * numHeads + head0 + g;
    if (numSplits == 1) {
      out[row * D + d] = __float2half(den > 0.f ? o / den : 0.f);
    } else {
      const size_t e = row * numSplits + split;
      wsO[e * D + d] = o;
      if (d == 0) {
        wsM[e] = mx;
        wsL[e] = den;
      }
    }
  });
  if (numSplits > 1)
    merge_splits<D, G>(wsO, wsM, wsL, counters, seq * numKvHeads + kvh, numSplits, numHeads, seq, head0, out);
}

// The lane layout of decode_grouped_kernel's loop. WIDE (FP8 cache, G <= 2; launched for G = 1): 16 elements a
// lane (detail::KvIoFp8x16: one 16-byte load) instead of 8, so half the lanes serve a key and every per-key
// instruction (dot-product shuffles, softmax, loads) carries twice the bytes; the chunk keeps its bytes (half the
// key-steps).
template <int D, typename KV, int G, bool WIDE>
struct GroupedLanes {
  static_assert(!WIDE || (G <= 2 && sizeof(KV) == 1), "WIDE: the FP8 cache, one or two query heads a KV head");
  using Io = std::conditional_t<WIDE, detail::KvIoFp8x16, detail::KvIo<KV>>;
  using Raw = typename Io::Raw;
  static constexpr int EPL = Io::kElems;  // elements a lane of each key
  static constexpr int NH = EPL / 8;      // uint4s of halves a lane of each key
  static constexpr int LPK = D / EPL;     // lanes per key
  static constexpr int KPW = 32 / LPK;    // keys per warp step
  static constexpr int U = chunk_steps<KV, G>() * 8 / EPL;
  static constexpr int CK = U * KPW;  // keys per warp chunk
};

// Keys [start, end) of sequence `seq` (context ctx, block table row bt) for the G query heads of KV head kvh: each
// warp streams its chunks with its own online softmax and leaves its (max, sum, accumulator) per head in sM, sL,
// sAcc (merge_warps combines them). PDL (the block's first range): the first chunk's K/V are requested before the
// wait for the previous kernel, and the key at ctx - 1 (which that kernel wrote) is read again coherently after it.
// (A runtime flag, not a template parameter: the split kernel passes true, folded away.)
template <int D, typename KV, int G, bool WIDE>
__device__ __forceinline__ void attend_keys(const __half* __restrict__ q, const KV* __restrict__ kc,
                                            const KV* __restrict__ vc, const int32_t* __restrict__ bt, int ctx,
                                            int start, int end, int seq, int kvh, int numHeads, int numKvHeads,
                                            float scaleLog2, float (&sM)[kWarpsG][G], float (&sL)[kWarpsG][G],
                                            float (&sAcc)[kWarpsG][G][D], bool pdl) {
  using L = GroupedLanes<D, KV, G, WIDE>;
  using Io = typename L::Io;
  using Raw = typename L::Raw;
  constexpr int EPL = L::EPL, NH = L::NH, LPK = L::LPK, KPW = L::KPW, U = L::U, CK = L::CK;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kl = lane % LPK, kg = lane / LPK;
  const int head0 = kvh * G;
  const size_t rowStride = (size_t)numKvHeads * D;
  const size_t colOff = (size_t)kvh * D + kl * EPL;

  auto keyOf = [&](int c, int u) { return start + c * CK + u * KPW + kg; };
  auto load = [&](int c, Raw* kr, Raw* vr) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int key = keyOf(c, u);
      if (key < end) {
        const int blk = bt[key / kKvBlockSize];
        const size_t off = (size_t)(blk * kKvBlockSize + key % kKvBlockSize) * rowStride + colOff;
        kr[u] = Io::stream(kc + off);
        vr[u] = Io::stream(vc + off);
      } else {
        kr[u] = Io::zero();
        vr[u] = Io::zero();
      }
    }
  };

  float m[G], l[G], acc[G][EPL], qf[G][EPL];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -1e30f;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < EPL; ++i) acc[g][i] = 0.f;
  }

  // PDL (launch.h): the first chunk's K/V are requested before the wait; the key at ctx - 1 (written by the
  // previous kernel, RoPE + KV write) and q are read after it, coherently.
  int c = warp;
  Raw kb[U], vb[U];
  load(c, kb, vb);
  if (pdl) {
    detail::pdl_wait();
    detail::pdl_launch();
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int key = keyOf(c, u);
      if (key == ctx - 1 && key < end) {
        const int blk = bt[key / kKvBlockSize];
        const size_t off = (size_t)(blk * kKvBlockSize + key % kKvBlockSize) * rowStride + colOff;
        kb[u] = Io::coherent(kc + off);
        vb[u] = Io::coherent(vc + off);
      }
    }
  }
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int n = 0; n < NH; ++n) {
      const uint4 raw =
          __ldcg(reinterpret_cast<const uint4*>(q + ((size_t)seq * numHeads + head0 + g) * D + kl * EPL + 8 * n));
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        qf[g][8 * n + 2 * i] = f.x * scaleLog2;
        qf[g][8 * n + 2 * i + 1] = f.y * scaleLog2;
      }
    }
  }

  for (; start + c * CK < end; c += kWarpsG) {
    Raw kn[U], vn[U];
    const int cn = c + kWarpsG;
    if (start + cn * CK < end) load(cn, kn, vn);
    float s[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      uint4 kh[NH];
      Io::widen(kb[u], kh);
      const __half2* h = reinterpret_cast<const __half2*>(kh);
      float kf[EPL];
#pragma unroll
      for (int i = 0; i < EPL / 2; ++i) {
        const float2 f = __half22float2(h[i]);
        kf[2 * i] = f.x;
        kf[2 * i + 1] = f.y;
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < EPL; ++i) dot = fmaf(qf[g][i], kf[i], dot);
        s[u][g] = dot;
      }
    }
#pragma unroll
    for (int o = LPK / 2; o > 0; o >>= 1)
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int g = 0; g < G; ++g) s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], o);
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (keyOf(c, u) >= end) s[u][g] = -INFINITY;
        mx = fmaxf(mx, s[u][g]);
      }
      const float alpha = exp2f(m[g] - mx);
      m[g] = mx;
      l[g] *= alpha;
#pragma unroll
      for (int i = 0; i < EPL; ++i) acc[g][i] *= alpha;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        s[u][g] = exp2f(s[u][g] - mx);
        l[g] += s[u][g];
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      uint4 vh[NH];
      Io::widen(vb[u], vh);
      const __half2* h = reinterpret_cast<const __half2*>(vh);
#pragma unroll
      for (int i = 0; i < EPL / 2; ++i) {
        const float2 f = __half22float2(h[i]);
#pragma unroll
        for (int g = 0; g < G; ++g) {
          acc[g][2 * i] = fmaf(s[u][g], f.x, acc[g][2 * i]);
          acc[g][2 * i + 1] = fmaf(s[u][g], f.y, acc[g][2 * i + 1]);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      kb[u] = kn[u];
      vb[u] = vn[u];
    }
  }

  // The key groups of a warp (lanes kl + LPK * kg), then the warps.
#pragma unroll
  for (int o = LPK; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float l2 = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float mx = fmaxf(m[g], m2);
      const float a1 = exp2f(m[g] - mx), a2 = exp2f(m2 - mx);
      l[g] = l[g] * a1 + l2 * a2;
      m[g] = mx;
#pragma unroll
      for (int i = 0; i < EPL; ++i) acc[g][i] = acc[g][i] * a1 + __shfl_xor_sync(0xffffffffu, acc[g][i], o) * a2;
    }
  }
  if (kg == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      if (kl == 0) {
        sM[warp][g] = m[g];
        sL[warp][g] = l[g];
      }
#pragma unroll
      for (int i = 0; i < EPL; ++i) sAcc[warp][g][kl * EPL + i] = acc[g][i];
    }
  }
}

// One block per (split, kv head, sequence): the keys of its split, then finish_block.
template <int D, typename KV, int G, bool WIDE = false>
__global__ void __launch_bounds__(kThreadsG) decode_grouped_kernel(
    const __half* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ contextLens,
    int numHeads, int numKvHeads, float scaleLog2, int partition, float* __restrict__ wsO, float* __restrict__ wsM,
    float* __restrict__ wsL, int* __restrict__ counters, __half* __restrict__ out) {
  __shared__ float sM[kWarpsG][G], sL[kWarpsG][G];
  __shared__ float sAcc[kWarpsG][G][D];
  const int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int ctx = contextLens[seq];
  const int start = split * partition;
  const int end = min(start + partition, ctx);
  const int32_t* bt = blockTables + (size_t)seq * maxBlocksPerSeq;
  attend_keys<D, KV, G, WIDE>(q, kc, vc, bt, ctx, start, end, seq, kvh, numHeads, numKvHeads, scaleLog2, sM, sL,
                              sAcc, true);
  finish_block<D, G>(sM, sL, sAcc, numHeads, numKvHeads, seq, kvh, wsO, wsM, wsL, counters, out);
}

// ---- Balanced over the KV sequence (AWQ_ATTN_BALANCED=1) -------------------------------------------------------
// The split grid above gives every (sequence, kv head) the same number of splits, so its blocks come in waves of
// (SMs x blocks an SM): at batch 16 of the 13B (640 blocks, 528 resident on 132 SMs) the second wave is a fifth full.
// Here a grid of about one wave (B blocks) cuts the keys of all (sequence, kv head) items, laid end to end in units
// of 16 keys (one KV block; an empty context counts one unit), into B equal ranges, like the WS GEMM's stream-K. Each
// block walks the pieces of its range: a piece that is a whole item writes the output, any other writes a partial
// to slot (item + block), unique along the line, and the last piece of an item to finish merges its pieces.
constexpr int kBalancedMaxSeqs = 1024;  // sequences a launch (the prefix of units is kept in shared memory)
constexpr int kBalancedMinUnits = 4;   // units a block at least (kMinKeysPerSplit keys), from the bucket's context

// The pieces of `item` (units [first, last] of the line, in blocks b0..b1) merged by the last one to finish: out =
// sum_j w_j O_j / sum_j w_j L_j with w_j = 2^(M_j - max M); a block with an empty range (lo(b) == lo(b + 1)) has no
// piece. Called by every block after writing its piece's partial.
template <int D, int G, typename Lo>
__device__ __forceinline__ void merge_pieces(const float* wsO, const float* wsM, const float* wsL, int* counters,
                                             int item, int b0, int b1, Lo&& lo, int numHeads, int seq, int head0,
                                             __half* __restrict__ out) {
  int pieces = 0;
  for (int c = b0; c <= b1; ++c) pieces += lo(c) < lo(c + 1);
  if (!last_to_arrive(counters, item, pieces)) return;
  for (int i = threadIdx.x; i < G * D; i += kThreadsG) {
    const int g = i / D, d = i % D;
    auto mOf = [&](int c) {
      const size_t e = (size_t)(item + c) * G + g;
      return __ldcg(wsL + e) > 0.f ? __ldcg(wsM + e) : -INFINITY;
    };
    float mx = -INFINITY;
    for (int c = b0; c <= b1; ++c)
      if (lo(c) < lo(c + 1)) mx = fmaxf(mx, mOf(c));
    float num = 0.f, den = 0.f;
    for (int c = b0; c <= b1; ++c) {
      if (lo(c) >= lo(c + 1)) continue;
      const float m = mOf(c);
      if (m == -INFINITY) continue;
      const size_t e = (size_t)(item + c) * G + g;
      const float w = exp2f(m - mx);
      den += w * __ldcg(wsL + e);
      num += w * __ldcg(wsO + e * D + d);
    }
    out[((size_t)seq * numHeads + head0 + g) * D + d] = __float2half(den > 0.f ? num / den : 0.f);
  }
}

// Blocks an SM the balanced kernel is built for: the split kernel's own residency (5 for one query head a KV head
// with 8 elements a lane, 96 registers; 4 with 16 a lane or 2-4 heads, 112-128), which the range walk would otherwise
// lower (168 registers, 3 blocks an SM, unbounded). The FP8 cache at 8 a lane (AWQ_ATTN_FP8_WIDE=0) thus runs 5 an
// SM here, against 4 in the split grid: a third point for the A/B.
template <int G, bool WIDE>
constexpr int balanced_min_blocks() {
  return G == 1 && !WIDE ? 5 : G >= 8 ? 2 : 4;
}

template <int D, typename KV, int G, bool WIDE = false>
__global__ void __launch_bounds__(kThreadsG, balanced_min_blocks<G, WIDE>()) decode_balanced_kernel(
    const __half* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ contextLens,
    int numSeqs, int numHeads, int numKvHeads, float scaleLog2, float* __restrict__ wsO, float* __restrict__ wsM,
    float* __restrict__ wsL, int* __restrict__ counters, __half* __restrict__ out) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __trap();  // built for sm_90a only (the launcher takes cc 9.x; the GPU machine's bytes limit): nothing else runs it
#else
  __shared__ float sM[kWarpsG][G], sL[kWarpsG][G];
  __shared__ float sAcc[kWarpsG][G][D];
  __shared__ int sUnits[kBalancedMaxSeqs + 1];  // sUnits[s]: units a KV head of the sequences before s
  __shared__ int sWarpSum[kWarpsG];
  // The prefix of units over the sequences: thread t sums a run of `per` sequences, then a scan of the runs.
  {
    const int per = (numSeqs + kThreadsG - 1) / kThreadsG;
    const int s0 = min(numSeqs, (int)threadIdx.x * per), s1 = min(numSeqs, s0 + per);
    int run = 0;
    for (int s = s0; s < s1; ++s) run += max(1, (contextLens[s] + kKvBlockSize - 1) / kKvBlockSize);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    if (lane == 31) sWarpSum[warp] = incl;
    __syncthreads();
    int before = incl - run;
    for (int w = 0; w < warp; ++w) before += sWarpSum[w];
    if (threadIdx.x == 0) sUnits[0] = 0;
    for (int s = s0; s < s1; ++s) {
      before += max(1, (contextLens[s] + kKvBlockSize - 1) / kKvBlockSize);
      sUnits[s + 1] = before;
    }
    __syncthreads();
  }
  // 32-bit throughout (the launcher keeps the line under 2^30 units): 64-bit divisions are calls that cost this loop
  // its registers. lo(c) = floor(c * total / B) = c * quo + c * rem / B.
  const int total = numKvHeads * sUnits[numSeqs];
  const int B = gridDim.x, b = blockIdx.x;
  const int quo = total / B, rem = total % B;
  auto lo = [&](int c) { return c * quo + c * rem / B; };
  // The block whose (non-empty) range holds unit x.
  auto blockOf = [&](int x) {
    int c = min(B - 1, (int)((float)x * (float)B / (float)total));
    while (c + 1 < B && lo(c + 1) <= x) ++c;
    while (c > 0 && lo(c) > x) --c;
    return c;
  };
  // The piece of the line at unit `pos` (up to `hi`), as (seq, kvh) and its keys; then its output or partial.
  auto piece = [&](int pos, int hi, bool pdl) -> int {
    int s = 0, n = numSeqs;  // the last sequence whose units start at or before pos
    while (n > 1) {
      const int half = n >> 1;
      if (numKvHeads * sUnits[s + half] <= pos) s += half;
      n -= half;
    }
    const int units = sUnits[s + 1] - sUnits[s];
    const int rel = pos - numKvHeads * sUnits[s];
    const int kvh = rel / units, u0 = rel - kvh * units;
    const int itemStart = pos - u0, itemEnd = itemStart + units, end = min(hi, itemEnd);
    const int ctx = contextLens[s];
    const int start = u0 * kKvBlockSize, stop = min((end - itemStart) * kKvBlockSize, ctx);
    const int32_t* bt = blockTables + (size_t)s * maxBlocksPerSeq;
    attend_keys<D, KV, G, WIDE>(q, kc, vc, bt, ctx, start, stop, s, kvh, numHeads, numKvHeads, scaleLog2, sM, sL,
                                sAcc, pdl);
    const int item = s * numKvHeads + kvh, head0 = kvh * G;
    const bool whole = u0 == 0 && end == itemEnd;
    merge_warps<D, G>(sM, sL, sAcc, [&](int g, int d, float o, float den, float mx) {
      if (whole) {
        out[((size_t)s * numHeads + head0 + g) * D + d] = __float2half(den > 0.f ? o / den : 0.f);
      } else {
        const size_t e = (size_t)(item + b) * G + g;
        wsO[e * D + d] = o;
        if (d == 0) {
          wsM[e] = mx;
          wsL[e] = den;
        }
      }
    });
    if (!whole) merge_pieces<D, G>(wsO, wsM, wsL, counters, item, blockOf(itemStart), blockOf(itemEnd - 1), lo,
                                   numHeads, s, head0, out);
    __syncthreads();  // sM, sL, sAcc are rewritten by the next piece
    return end;
  };
  int pos = lo(b);
  const int hi = lo(b + 1);
  if (pos < hi) {
    // One copy of the loop, the first piece waiting for the previous kernel (two copies, one with the wait and one
    // without, held 168-183 registers a thread).
    bool first = true;
#pragma unroll 1
    while (pos < hi) {
      pos = piece(pos, hi, first);
      first = false;
    }
  } else {
    detail::pdl_wait();
    detail::pdl_launch();
  }
#endif
}

// ---- Tensor cores over an FP8 cache (AWQ_ATTN_DECODE=mma; head dim 128, G <= 8 query heads a KV head) ----------
// Each warp takes 16-key KV blocks (kb = first + warp, + kWarpsG, ...) and runs both products on mma.sync m16n8k16
// with the G query heads as the n columns, so no lane reduces a dot product by shuffles and each FP8 pair is widened
// once, straight into an mma operand:
//   S = K q: A = the block's K (16 keys x 16 dims a k-step), B = q. The k order inside the lane's own 32 dims makes
//     each A register one widened byte pair: lane (g, t) loads keys g and g + 8 at dims 32t .. 32t + 31, k-step j
//     takes bytes 4j .. 4j + 3 (dims 32t + 4j + {0, 1} as k = 2t, 2t + 1 and {2, 3} as k = 2t + 8, 2t + 9), and q
//     is held in the same order. Lane (g, t) gets the scores of keys g, g + 8 for heads 2t, 2t + 1.
//   O^T += V^T P^T: A = V^T (16 dims x 16 keys), B = P^T (fp16 probabilities, as flash attention keeps them). Row g
//     of tile m is dim 16g + 2m and row g + 8 dim 16g + 2m + 1, so lane (g, t) loads keys 2t, 2t + 1, 2t + 8, 2t + 9
//     at dims 16g .. 16g + 15 (16 bytes each) and pairs two keys' bytes with one byte_perm per two registers.
// Online softmax per head in fp32 (base 2), masked keys at -inf and loaded as zeros; the warps and the splits are
// merged as in decode_grouped_kernel (finish_block). Splits start at multiples of 16 keys (one KV block).
__device__ __forceinline__ uint32_t widen_pair(uint32_t twoBytes) {
  return detail::h2_as_u32(detail::e4m3x2_to_half2(static_cast<uint16_t>(twoBytes & 0xffffu)));
}

__device__ __forceinline__ uint4 load_kv16(const uint8_t* p, bool ok, bool coherent) {
  if (!ok) return make_uint4(0, 0, 0, 0);
  return coherent ? __ldcg(reinterpret_cast<const uint4*>(p)) : detail::ld_stream16(p);
}

template <int G>
__global__ void __launch_bounds__(kThreadsG) decode_mma_fp8_kernel(
    const __half* __restrict__ q, const uint8_t* __restrict__ kc, const uint8_t* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ contextLens,
    int numHeads, int numKvHeads, float scaleLog2, int partition, float* __restrict__ wsO, float* __restrict__ wsM,
    float* __restrict__ wsL, int* __restrict__ counters, __half* __restrict__ out) {
  constexpr int D = 128;
  __shared__ float sM[kWarpsG][G], sL[kWarpsG][G];
  __shared__ float sAcc[kWarpsG][G][D];
  const int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int head0 = kvh * G;
  // Everything read here may come from the previous kernel (q; the new token's K and V): wait first.
  detail::pdl_wait();
  detail::pdl_launch();
  const int ctx = contextLens[seq];
  const int start = split * partition;  // a multiple of 16
  const int end = min(start + partition, ctx);
  const int32_t* bt = blockTables + (size_t)seq * maxBlocksPerSeq;
  const size_t rowStride = (size_t)numKvHeads * D;
  const uint8_t* kHead = kc + (size_t)kvh * D;
  const uint8_t* vHead = vc + (size_t)kvh * D;

  // q of head g (zeros past the group) at dims 32t .. 32t + 31: word 2j + h = dims 32t + 4j + 2h, + 1.
  uint32_t qb[16];
  {
    const bool ok = g < G;
    const uint4* src = reinterpret_cast<const uint4*>(q + ((size_t)seq * numHeads + head0 + (ok ? g : 0)) * D + 32 * t);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint4 v = ok ? __ldcg(src + i) : make_uint4(0, 0, 0, 0);
      qb[4 * i] = v.x;
      qb[4 * i + 1] = v.y;
      qb[4 * i + 2] = v.z;
      qb[4 * i + 3] = v.w;
    }
  }
  // k[0..1]: key g's 32 bytes at dims 32t, k[2..3]: key g + 8's; v[i]: keys 2t, 2t + 1, 2t + 8, 2t + 9 at dims 16g.
  auto load = [&](int kb, uint4 (&k)[4], uint4 (&v)[4]) {
    const int key0 = kb * kKvBlockSize;
    const size_t rows = (size_t)bt[kb] * kKvBlockSize;
    const bool fresh = key0 <= ctx - 1 && ctx - 1 < key0 + kKvBlockSize;  // holds the token the last kernel wrote
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int key = g + 8 * i;
      const uint8_t* p = kHead + (rows + key) * rowStride + 32 * t;
      k[2 * i] = load_kv16(p, key0 + key < end, fresh);
      k[2 * i + 1] = load_kv16(p + 16, key0 + key < end, fresh);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int key = 2 * t + (i & 1) + 8 * (i >> 1);
      v[i] = load_kv16(vHead + (rows + key) * rowStride + 16 * g, key0 + key < end, fresh);
    }
  };

  float m0 = -1e30f, m1 = -1e30f;  // running max (base 2) of heads 2t, 2t + 1
  float l0 = 0.f, l1 = 0.f;        // this lane's share of their sums (keys g, g + 8 of every block)
  // O^T tile m: [0] head 2t at dim 16g + 2m, [1] head 2t + 1 there, [2] head 2t at dim 16g + 2m + 1, [3] head 2t + 1.
  float acc[8][4];
#pragma unroll
  for (int m = 0; m < 8; ++m) acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = 0.f;

  const int lastBlock = (end + kKvBlockSize - 1) / kKvBlockSize;  // exclusive
  int kb = start / kKvBlockSize + warp;
  uint4 kr[4], vr[4];
  if (kb < lastBlock) load(kb, kr, vr);
  for (; kb < lastBlock; kb += kWarpsG) {
    uint4 kn[4], vn[4];
    if (kb + kWarpsG < lastBlock) load(kb + kWarpsG, kn, vn);
    float sc[4] = {0.f, 0.f, 0.f, 0.f};  // keys g, g + 8 x heads 2t, 2t + 1
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const uint32_t wg = detail::word_of(kr[j >> 2], j & 3), wg8 = detail::word_of(kr[2 + (j >> 2)], j & 3);
      const uint32_t a[4] = {widen_pair(wg), widen_pair(wg8), widen_pair(wg >> 16), widen_pair(wg8 >> 16)};
      const uint32_t b[2] = {qb[2 * j], qb[2 * j + 1]};
      detail::mma16816(sc, a, b);
    }
    const int key0 = kb * kKvBlockSize;
    const bool ok0 = key0 + g < end, ok1 = key0 + g + 8 < end;
    const float x0 = ok0 ? sc[0] * scaleLog2 : -INFINITY, x1 = ok0 ? sc[1] * scaleLog2 : -INFINITY;
    const float x2 = ok1 ? sc[2] * scaleLog2 : -INFINITY, x3 = ok1 ? sc[3] * scaleLog2 : -INFINITY;
    float bm0 = fmaxf(x0, x2), bm1 = fmaxf(x1, x3);
#pragma unroll
    for (int o = 4; o < 32; o <<= 1) {
      bm0 = fmaxf(bm0, __shfl_xor_sync(0xffffffffu, bm0, o));
      bm1 = fmaxf(bm1, __shfl_xor_sync(0xffffffffu, bm1, o));
    }
    const float n0 = fmaxf(m0, bm0), n1 = fmaxf(m1, bm1);
    const float al0 = exp2f(m0 - n0), al1 = exp2f(m1 - n1);
    m0 = n0;
    m1 = n1;
    const float p0 = exp2f(x0 - n0), p1 = exp2f(x1 - n1), p2 = exp2f(x2 - n0), p3 = exp2f(x3 - n1);
    l0 = l0 * al0 + p0 + p2;
    l1 = l1 * al1 + p1 + p3;
#pragma unroll
    for (int m = 0; m < 8; ++m) {
      acc[m][0] *= al0;
      acc[m][1] *= al1;
      acc[m][2] *= al0;
      acc[m][3] *= al1;
    }
    // P^T as the B operand: lane (g, t) needs head g's probabilities of keys 2t, 2t + 1 (b[0]) and 2t + 8, 2t + 9
    // (b[1]), held by lanes (2t, g / 2) and (2t + 1, g / 2) as (key, heads 2t', 2t' + 1) half2 pairs.
    const uint32_t lo = detail::h2_as_u32(__floats2half2_rn(p0, p1)), hi = detail::h2_as_u32(__floats2half2_rn(p2, p3));
    const int srcA = 4 * (2 * t) + (g >> 1), srcB = srcA + 4;
    const uint32_t aLo = __shfl_sync(0xffffffffu, lo, srcA), aHi = __shfl_sync(0xffffffffu, hi, srcA);
    const uint32_t bLo = __shfl_sync(0xffffffffu, lo, srcB), bHi = __shfl_sync(0xffffffffu, hi, srcB);
    const uint32_t sel = (g & 1) ? 0x7632u : 0x5410u;
    const uint32_t bp[2] = {g < G ? __byte_perm(aLo, bLo, sel) : 0u, g < G ? __byte_perm(aHi, bHi, sel) : 0u};
#pragma unroll
    for (int m = 0; m < 8; ++m) {
      const int w = m >> 1;
      const uint32_t sel2 = (m & 1) ? 0x7362u : 0x5140u;  // bytes 2m, 2m + 1 of two keys: (k0, k1) at each dim
      const uint32_t r01 = __byte_perm(detail::word_of(vr[0], w), detail::word_of(vr[1], w), sel2);
      const uint32_t r23 = __byte_perm(detail::word_of(vr[2], w), detail::word_of(vr[3], w), sel2);
      const uint32_t a[4] = {widen_pair(r01), widen_pair(r01 >> 16), widen_pair(r23), widen_pair(r23 >> 16)};
      detail::mma16816(acc[m], a, bp);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      kr[i] = kn[i];
      vr[i] = vn[i];
    }
  }

#pragma unroll
  for (int o = 4; o < 32; o <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, o);
    l1 += __shfl_xor_sync(0xffffffffu, l1, o);
  }
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int head = 2 * t + e;
    if (head < G) {
      if (g == 0) {
        sM[warp][head] = e == 0 ? m0 : m1;
        sL[warp][head] = e == 0 ? l0 : l1;
      }
#pragma unroll
      for (int m = 0; m < 8; ++m) {
        sAcc[warp][head][16 * g + 2 * m] = acc[m][e];
        sAcc[warp][head][16 * g + 2 * m + 1] = acc[m][2 + e];
      }
    }
  }
  finish_block<D, G>(sM, sL, sAcc, numHeads, numKvHeads, seq, kvh, wsO, wsM, wsL, counters, out);
}

int g_blocks_per_sm = 0;  // bench hook: 0 = the default

int sm_count() {
  static int count[64] = {};
  int dev = 0;
  cudaGetDevice(&dev);
  int& c = count[dev & 63];
  if (c == 0) cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev);
  return c > 0 ? c : 132;
}

int blocks_per_sm_target() {
  if (g_blocks_per_sm > 0) return g_blocks_per_sm;
  static const int fromEnv = [] {
    const char* v = std::getenv("AWQ_ATTN_BLOCKS_PER_SM");
    return v != nullptr ? std::atoi(v) : 0;
  }();
  return fromEnv > 0 ? fromEnv : 4;
}

// decode_grouped_kernel's WIDE reads over the FP8 cache: on unless AWQ_ATTN_FP8_WIDE=0 (the 8-element build, for
// A/B). The fp16 cache keeps 8 a lane: 16 (two 16-byte loads) was slower at every batch on an H200 (2026-12-07,
// docs/benchmarks.md) and was removed.
bool wide_fp8_loads() {
  static const bool on = env_flag("AWQ_ATTN_FP8_WIDE", true);
  return on;
}

int g_balanced = 0;         // bench hook: 0 = AWQ_ATTN_BALANCED (off by default), 1 = off, 2 = on
int g_balanced_blocks = 0;  // bench hook: the balanced grid (0 = about one wave)
long g_balanced_launches = 0;  // for the checks: the balanced launches so far

bool balanced_on() {
  static const bool fromEnv = env_flag("AWQ_ATTN_BALANCED", false);
  return g_balanced == 0 ? fromEnv : g_balanced == 2;
}

// Blocks of `kernel` resident at once on the device (its registers and shared memory decide).
template <typename Kernel>
int resident_blocks(Kernel kernel) {
  static int perSm = 0;
  if (perSm == 0 && (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kThreadsG, 0) != cudaSuccess ||
                     perSm < 1))
    perSm = 1;
  return sm_count() * perSm;
}

// The balanced kernel where the switch is on and it takes the launch: Hopper (its only build), head dim 128, G <= 4,
// at most kBalancedMaxSeqs sequences, a counter for every (sequence, kv head), and room in the workspace for a
// partial of every piece (items + blocks a query head). cudaErrorNotSupported: not launched, the split grid runs.
template <int D, typename KV, int G, bool WIDE>
cudaError_t launch_balanced(const __half* q, const KV* kc, const KV* vc, const int32_t* bt, int maxBlocksPerSeq,
                            const int32_t* ctxLens, int numSeqs, int maxContextLen, int numHeads, int numKvHeads,
                            float scaleLog2, void* ws, size_t wsBytes, __half* out, cudaStream_t stream) {
  if constexpr (D != 128 || G > 4) {  // the shapes it is for (G = 8 already fills 2 blocks an SM); fewer bytes
    return cudaErrorNotSupported;
  } else {
    const long items = (long)numSeqs * numKvHeads;
    if (!balanced_on() || !hopper_device() || numSeqs < 1 || numSeqs > kBalancedMaxSeqs || items > kGroupedCounters ||
        ws == nullptr)
      return cudaErrorNotSupported;
    const auto kernel = decode_balanced_kernel<D, KV, G, WIDE>;
    const long unitsMax = items * std::max(1, detail::ceil_div(maxContextLen, kKvBlockSize));
    if (unitsMax > (1L << 30)) return cudaErrorNotSupported;  // the kernel's 32-bit line
    long blocks = g_balanced_blocks > 0
                      ? g_balanced_blocks
                      : std::min<long>(resident_blocks(kernel), std::max<long>(1, unitsMax / kBalancedMinUnits));
    const size_t entries = (size_t)(items + blocks) * G;
    if (per_head_decode_ws_bytes(D) + kGroupedCounterBytes + entries * (D + 2) * sizeof(float) > wsBytes)
      return cudaErrorNotSupported;
    char* own = static_cast<char*>(ws) + per_head_decode_ws_bytes(D);
    int* counters = reinterpret_cast<int*>(own);
    float* wsO = reinterpret_cast<float*>(own + kGroupedCounterBytes);
    float* wsM = wsO + entries * D;
    float* wsL = wsM + entries;
    const cudaError_t status =
        pdl_launch_kernel(kernel, dim3((unsigned)blocks), dim3(kThreadsG), 0, stream, q, kc, vc, bt, maxBlocksPerSeq,
                          ctxLens, numSeqs, numHeads, numKvHeads, scaleLog2, wsO, wsM, wsL, counters, out);
    if (status == cudaSuccess) ++g_balanced_launches;
    return status;
  }
}

template <int D, typename KV, int G>
cudaError_t launch_grouped(const __half* q, const KV* kc, const KV* vc, const int32_t* bt, int maxBlocksPerSeq,
                           const int32_t* ctxLens, int numSeqs, int maxContextLen, int numHeads, int numKvHeads,
                           float scale, void* ws, size_t wsBytes, __half* out, cudaStream_t stream, bool mma) {
  // The tensor-core kernel: FP8 cache, head dim 128 only.
  constexpr bool kMmaShape = D == 128 && sizeof(KV) == 1;
  if (mma && !kMmaShape) return cudaErrorNotSupported;
  // Splits: double while the grid is under the target and each split keeps kMinKeysPerSplit keys; then as many
  // as the workspace holds (a graph captured for a context bucket keeps these for every shorter context).
  if (!mma) {  // the balanced grid where it is on and takes the launch; WIDE as below
    constexpr bool kWide = G == 1 && sizeof(KV) == 1;
    const float scaleLog2 = scale * 1.4426950408889634f;
    const cudaError_t status =
        kWide && wide_fp8_loads()
            ? launch_balanced<D, KV, G, kWide>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen,
                                               numHeads, numKvHeads, scaleLog2, ws, wsBytes, out, stream)
            : launch_balanced<D, KV, G, false>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen,
                                               numHeads, numKvHeads, scaleLog2, ws, wsBytes, out, stream);
    if (status != cudaErrorNotSupported) return status;
  }
  const long target = (long)sm_count() * blocks_per_sm_target();
  const long base = (long)numSeqs * numKvHeads;
  int splits = 1;
  while (splits < kMaxSplitsG && base <= kGroupedCounters && base * splits * 2 <= target &&
         maxContextLen >= 2 * splits * kMinKeysPerSplit)
    splits *= 2;
  while (splits > 1 && (ws == nullptr || grouped_decode_ws_bytes(numSeqs, numHeads, D, splits) > wsBytes))
    splits /= 2;
  int partition = splits > 1 ? detail::ceil_div(maxContextLen, splits) : (maxContextLen > 0 ? maxContextLen : 1);
  if (mma) partition = detail::ceil_div(partition, kKvBlockSize) * kKvBlockSize;  // splits start on a KV block
  // Workspace: the per-head kernel's area untouched (so either kernel can follow the other on one workspace), then
  // this kernel's split counters (zero between calls), then the partials.
  char* own = splits > 1 ? static_cast<char*>(ws) + per_head_decode_ws_bytes(D) : nullptr;
  int* counters = reinterpret_cast<int*>(own);
  float* wsO = splits > 1 ? reinterpret_cast<float*>(own + kGroupedCounterBytes) : nullptr;
  const size_t entries = (size_t)numSeqs * numHeads * splits;
  float* wsM = splits > 1 ? wsO + entries * D : nullptr;
  float* wsL = splits > 1 ? wsM + entries : nullptr;
  if constexpr (kMmaShape) {
    if (mma)
      return pdl_launch_kernel(decode_mma_fp8_kernel<G>, dim3(splits, numKvHeads, numSeqs), dim3(kThreadsG), 0,
                               stream, q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numHeads, numKvHeads,
                               scale * 1.4426950408889634f, partition, wsO, wsM, wsL, counters, out);
  }
  if constexpr (G == 1 && sizeof(KV) == 1) {  // G = 2 would hold 160 registers (3 blocks an SM, not 4): not timed
    if (wide_fp8_loads())
      return pdl_launch_kernel(decode_grouped_kernel<D, KV, G, true>, dim3(splits, numKvHeads, numSeqs),
                               dim3(kThreadsG), 0, stream, q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numHeads,
                               numKvHeads, scale * 1.4426950408889634f, partition, wsO, wsM, wsL, counters, out);
  }
  return pdl_launch_kernel(decode_grouped_kernel<D, KV, G>, dim3(splits, numKvHeads, numSeqs), dim3(kThreadsG), 0,
                           stream, q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numHeads, numKvHeads,
                           scale * 1.4426950408889634f, partition, wsO, wsM, wsL, counters, out);
}

template <int D, typename KV>
cudaError_t grouped_for(int group, const __half* q, const KV* kc, const KV* vc, const int32_t* bt,
                        int maxBlocksPerSeq, const int32_t* ctxLens, int numSeqs, int maxContextLen, int numHeads,
                        int numKvHeads, float scale, void* ws, size_t wsBytes, __half* out, cudaStream_t stream,
                        bool mma) {
  switch (group) {
    case 1:
      return launch_grouped<D, KV, 1>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream, mma);
    case 2:
      return launch_grouped<D, KV, 2>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream, mma);
    case 4:
      return launch_grouped<D, KV, 4>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream, mma);
    case 8:
      return launch_grouped<D, KV, 8>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream, mma);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace

size_t grouped_decode_ws_bytes(int numSeqs, int numHeads, int headDim, int splits) {
  if (splits <= 1) return 0;
  return per_head_decode_ws_bytes(headDim) + kGroupedCounterBytes +
         (size_t)numSeqs * numHeads * splits * (headDim + 2) * sizeof(float);
}

void grouped_decode_blocks_per_sm_override(int blocksPerSm) { g_blocks_per_sm = blocksPerSm; }

void grouped_decode_balanced_override(int setting, int blocks) {
  g_balanced = setting;
  g_balanced_blocks = blocks;
}

long grouped_decode_balanced_launches() { return g_balanced_launches; }

cudaError_t paged_attention_decode_grouped(const __half* q, const void* kCache, const void* vCache,
                                           KvCacheDtype kvDtype, const int32_t* blockTables, int maxBlocksPerSeq,
                                           const int32_t* contextLens, int numSeqs, int maxContextLen, int numHeads,
                                           int numKvHeads, int headDim, float scale, void* workspace,
                                           size_t workspaceBytes, __half* out, cudaStream_t stream,
                                           bool tensorCores) {
  const int group = numHeads / numKvHeads;
  // One launch per (element type, head size): K and V as the cache's element type.
  auto launch = [&](auto element) -> cudaError_t {
    using KV = decltype(element);
    const auto* k = static_cast<const KV*>(kCache);
    const auto* v = static_cast<const KV*>(vCache);
    if (headDim == 128)
      return grouped_for<128>(group, q, k, v, blockTables, maxBlocksPerSeq, contextLens, numSeqs, maxContextLen,
                              numHeads, numKvHeads, scale, workspace, workspaceBytes, out, stream, tensorCores);
    if (headDim == 64)
      return grouped_for<64>(group, q, k, v, blockTables, maxBlocksPerSeq, contextLens, numSeqs, maxContextLen,
                             numHeads, numKvHeads, scale, workspace, workspaceBytes, out, stream, tensorCores);
    return cudaErrorInvalidValue;
  };
  if (kvDtype == KvCacheDtype::Fp8E4m3) return launch(uint8_t{});
  if (kvDtype == KvCacheDtype::Fp16) return launch(__half{});
  return cudaErrorInvalidValue;
}

}  // namespace awqk
