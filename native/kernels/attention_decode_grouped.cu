// Paged decode attention by KV head (flash-decoding): one block per (split, kv head, sequence) serves the G query
// heads that share the kv head, so each K/V row is read once for all of them. Each warp streams its own chunks of
// U key-steps (the next chunk's K/V loads in flight while the current one is computed) with its own online
// softmax, so the loop has no block-wide barrier; warps, then splits, are merged at the end (the last block of a
// (sequence, kv head) to finish merges the splits, as attention_decode.cu does). Lanes: D/8 per key, 8 elements
// each (16-byte fp16 loads, 8-byte FP8 E4M3 loads widened in registers).
#include <cmath>
#include <cstdlib>
#include <cstring>

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

// Merges the splits of (seq, kv head) for its G query heads: out = sum_s w_s O_s / sum_s w_s L_s with
// w_s = 2^(M_s - max M). Called by every block after its partial is written; only the last one to arrive merges.
template <int D, int G>
__device__ __forceinline__ void merge_splits(const float* wsO, const float* wsM, const float* wsL, int* counters,
                                             int counter, int numSplits, int numHeads, int seq, int head0,
                                             __half* __restrict__ out) {
  __shared__ int sLast;
  __shared__ float sW[G][kMaxSplitsG];
  __shared__ float sDen[G];
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const int old = atomicAdd(&counters[counter], 1);
    sLast = old == numSplits - 1;
    if (sLast) atomicExch(&counters[counter], 0);
  }
  __syncthreads();
  if (!sLast) return;
  __threadfence();
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

template <int D, typename KV, int G>
__global__ void __launch_bounds__(kThreadsG) decode_grouped_kernel(
    const __half* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ contextLens,
    int numHeads, int numKvHeads, float scaleLog2, int partition, float* __restrict__ wsO, float* __restrict__ wsM,
    float* __restrict__ wsL, int* __restrict__ counters, __half* __restrict__ out) {
  using Io = detail::KvIo<KV>;
  using Raw = typename Io::Raw;
  constexpr int LPK = D / 8;      // lanes per key
  constexpr int KPW = 32 / LPK;   // keys per warp step
  constexpr int U = chunk_steps<KV, G>();
  constexpr int CK = U * KPW;     // keys per warp chunk
  __shared__ float sM[kWarpsG][G], sL[kWarpsG][G];
  __shared__ float sAcc[kWarpsG][G][D];

  const int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int numSplits = gridDim.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kl = lane % LPK, kg = lane / LPK;
  const int head0 = kvh * G;
  const int ctx = contextLens[seq];
  const int start = split * partition;
  const int end = min(start + partition, ctx);
  const int32_t* bt = blockTables + (size_t)seq * maxBlocksPerSeq;
  const size_t rowStride = (size_t)numKvHeads * D;
  const size_t colOff = (size_t)kvh * D + kl * 8;

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

  float m[G], l[G], acc[G][8], qf[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -1e30f;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.f;
  }

  // PDL (launch.h): the first chunk's K/V are requested before the wait; the key at ctx - 1 (written by the
  // previous kernel, RoPE + KV write) and q are read after it, coherently.
  int c = warp;
  Raw kb[U], vb[U];
  load(c, kb, vb);
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
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const uint4 raw = __ldcg(reinterpret_cast<const uint4*>(q + ((size_t)seq * numHeads + head0 + g) * D + kl * 8));
    const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(h[i]);
      qf[g][2 * i] = f.x * scaleLog2;
      qf[g][2 * i + 1] = f.y * scaleLog2;
    }
  }

  for (; start + c * CK < end; c += kWarpsG) {
    Raw kn[U], vn[U];
    const int cn = c + kWarpsG;
    if (start + cn * CK < end) load(cn, kn, vn);
    float s[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const uint4 kh = Io::halves(kb[u]);
      const __half2* h = reinterpret_cast<const __half2*>(&kh);
      float kf[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        kf[2 * i] = f.x;
        kf[2 * i + 1] = f.y;
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(qf[g][i], kf[i], dot);
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
      for (int i = 0; i < 8; ++i) acc[g][i] *= alpha;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        s[u][g] = exp2f(s[u][g] - mx);
        l[g] += s[u][g];
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const uint4 vh = Io::halves(vb[u]);
      const __half2* h = reinterpret_cast<const __half2*>(&vh);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
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
      for (int i = 0; i < 8; ++i) acc[g][i] = acc[g][i] * a1 + __shfl_xor_sync(0xffffffffu, acc[g][i], o) * a2;
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
      for (int i = 0; i < 8; ++i) sAcc[warp][g][kl * 8 + i] = acc[g][i];
    }
  }
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
  }
  if (numSplits > 1)
    merge_splits<D, G>(wsO, wsM, wsL, counters, seq * numKvHeads + kvh, numSplits, numHeads, seq, head0, out);
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

template <int D, typename KV, int G>
cudaError_t launch_grouped(const __half* q, const KV* kc, const KV* vc, const int32_t* bt, int maxBlocksPerSeq,
                           const int32_t* ctxLens, int numSeqs, int maxContextLen, int numHeads, int numKvHeads,
                           float scale, void* ws, size_t wsBytes, __half* out, cudaStream_t stream) {
  // Splits: double while the grid is under the target and each split keeps kMinKeysPerSplit keys; then as many
  // as the workspace holds (a graph captured for a context bucket keeps these for every shorter context).
  const long target = (long)sm_count() * blocks_per_sm_target();
  const long base = (long)numSeqs * numKvHeads;
  int splits = 1;
  while (splits < kMaxSplitsG && base <= kGroupedCounters && base * splits * 2 <= target &&
         maxContextLen >= 2 * splits * kMinKeysPerSplit)
    splits *= 2;
  while (splits > 1 && (ws == nullptr || grouped_decode_ws_bytes(numSeqs, numHeads, D, splits) > wsBytes))
    splits /= 2;
  const int partition = splits > 1 ? detail::ceil_div(maxContextLen, splits) : (maxContextLen > 0 ? maxContextLen : 1);
  // Workspace: the per-head kernel's area untouched (so either kernel can follow the other on one workspace), then
  // this kernel's split counters (zero between calls), then the partials.
  char* own = splits > 1 ? static_cast<char*>(ws) + per_head_decode_ws_bytes(D) : nullptr;
  int* counters = reinterpret_cast<int*>(own);
  float* wsO = splits > 1 ? reinterpret_cast<float*>(own + kGroupedCounterBytes) : nullptr;
  const size_t entries = (size_t)numSeqs * numHeads * splits;
  float* wsM = splits > 1 ? wsO + entries * D : nullptr;
  float* wsL = splits > 1 ? wsM + entries : nullptr;
  return pdl_launch_kernel(decode_grouped_kernel<D, KV, G>, dim3(splits, numKvHeads, numSeqs), dim3(kThreadsG), 0,
                           stream, q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numHeads, numKvHeads,
                           scale * 1.4426950408889634f, partition, wsO, wsM, wsL, counters, out);
}

template <int D, typename KV>
cudaError_t grouped_for(int group, const __half* q, const KV* kc, const KV* vc, const int32_t* bt,
                        int maxBlocksPerSeq, const int32_t* ctxLens, int numSeqs, int maxContextLen, int numHeads,
                        int numKvHeads, float scale, void* ws, size_t wsBytes, __half* out, cudaStream_t stream) {
  switch (group) {
    case 1:
      return launch_grouped<D, KV, 1>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream);
    case 2:
      return launch_grouped<D, KV, 2>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream);
    case 4:
      return launch_grouped<D, KV, 4>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream);
    case 8:
      return launch_grouped<D, KV, 8>(q, kc, vc, bt, maxBlocksPerSeq, ctxLens, numSeqs, maxContextLen, numHeads,
                                      numKvHeads, scale, ws, wsBytes, out, stream);
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

cudaError_t paged_attention_decode_grouped(const __half* q, const void* kCache, const void* vCache,
                                           KvCacheDtype kvDtype, const int32_t* blockTables, int maxBlocksPerSeq,
                                           const int32_t* contextLens, int numSeqs, int maxContextLen, int numHeads,
                                           int numKvHeads, int headDim, float scale, void* workspace,
                                           size_t workspaceBytes, __half* out, cudaStream_t stream) {
  const int group = numHeads / numKvHeads;
  // One launch per (element type, head size): K and V as the cache's element type.
  auto launch = [&](auto element) -> cudaError_t {
    using KV = decltype(element);
    const auto* k = static_cast<const KV*>(kCache);
    const auto* v = static_cast<const KV*>(vCache);
    if (headDim == 128)
      return grouped_for<128>(group, q, k, v, blockTables, maxBlocksPerSeq, contextLens, numSeqs, maxContextLen,
                              numHeads, numKvHeads, scale, workspace, workspaceBytes, out, stream);
    if (headDim == 64)
      return grouped_for<64>(group, q, k, v, blockTables, maxBlocksPerSeq, contextLens, numSeqs, maxContextLen,
                             numHeads, numKvHeads, scale, workspace, workspaceBytes, out, stream);
    return cudaErrorInvalidValue;
  };
  if (kvDtype == KvCacheDtype::Fp8E4m3) return launch(uint8_t{});
  if (kvDtype == KvCacheDtype::Fp16) return launch(__half{});
  return cudaErrorInvalidValue;
}

}  // namespace awqk
