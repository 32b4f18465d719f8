// Paged attention decode fast path (one query per sequence), flash-decoding: the context is cut
// into partitions, one block per (partition, head, sequence) computes an unnormalized partial
// output with its running max and sum, and the last block of each (sequence, head) to finish merges
// the partitions (a counter per (sequence, head) in the workspace; no second kernel). Memory
// bound, so CUDA cores: D/8 lanes share one key (8 elements each: 16-byte loads of fp16, 8-byte loads of
// FP8 E4M3 converted to fp16 in registers), 128 keys per sub-chunk.
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

constexpr int kThreadsD = 256;     // 8 warps
constexpr int kWarpsD = kThreadsD / 32;
constexpr int kSub = 128;          // keys per sub-chunk (one logit per thread of the first 128)
constexpr int kTargetBlocks = 512;  // split until about this many blocks are in flight
constexpr int kMinPartition = 128;  // keys

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

using detail::KvIo;

constexpr int kMaxMergeSplits = 512;  // choose_splits never goes past kTargetBlocks splits

// Called by every block of a (seq, head) after writing its partial: the last of the splits to
// arrive merges them in split order (deterministic), writes out and resets the counter. The split
// weights are computed once into shared memory; each output element then sums its partials with
// independent loads (one L2 round trip per 8 splits, not per split).
__device__ __forceinline__ void merge_if_last(const float* wsO, const float* wsM, const float* wsL,
                                              int* counters, int numSplits, int D, int sh,
                                              __half* __restrict__ out, int* sLast) {
  __shared__ float sW[kMaxMergeSplits];
  __shared__ float sRed[kThreadsD / 32];
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const int old = atomicAdd(&counters[sh], 1);
    *sLast = old == numSplits - 1;
    if (old == numSplits - 1) atomicExch(&counters[sh], 0);
  }
  __syncthreads();
  if (!*sLast) return;
  __threadfence();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float* M = wsM + (size_t)sh * numSplits;
  const float* L = wsL + (size_t)sh * numSplits;
  float mx = -INFINITY;
  for (int s = tid; s < numSplits; s += kThreadsD) {
    const float m = __ldcg(M + s);
    sW[s] = m;
    mx = fmaxf(mx, m);
  }
  mx = warp_max(mx);
  if (lane == 0) sRed[warp] = mx;
  __syncthreads();
  float gmax = sRed[0];
#pragma unroll
  for (int w = 1; w < kThreadsD / 32; ++w) gmax = fmaxf(gmax, sRed[w]);
  __syncthreads();  // sRed is reused below
  float den = 0.f;
  for (int s = tid; s < numSplits; s += kThreadsD) {
    const float l = __ldcg(L + s);
    const float w = l > 0.f ? exp2f(sW[s] - gmax) : 0.f;
    sW[s] = w;
    den += w * l;
  }
  den = warp_sum(den);
  if (lane == 0) sRed[warp] = den;
  __syncthreads();
  den = 0.f;
#pragma unroll
  for (int w = 0; w < kThreadsD / 32; ++w) den += sRed[w];
  for (int d = tid; d < D; d += kThreadsD) {
    const float* o = wsO + (size_t)sh * numSplits * D + d;
    float num = 0.f;
#pragma unroll 8
    for (int s = 0; s < numSplits; ++s) num += sW[s] * __ldcg(o + (size_t)s * D);
    out[(size_t)sh * D + d] = __float2half(den > 0.f ? num / den : 0.f);
  }
}

template <int D, typename KV>
__global__ void __launch_bounds__(kThreadsD) decode_attention_kernel(
    const __half* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ contextLens,
    int numHeads, int numKvHeads, float scaleLog2, int partition, float* __restrict__ wsO,
    float* __restrict__ wsM, float* __restrict__ wsL, int* __restrict__ counters, __half* __restrict__ out) {
  constexpr int LPK = D / 8;          // lanes per key
  constexpr int KPW = 32 / LPK;       // keys per warp step
  constexpr int KPB = kWarpsD * KPW;  // keys per block step
  constexpr int ITER = kSub / KPB;
  __shared__ float logits[kSub];
  __shared__ float red[kWarpsD];
  __shared__ float accR[KPB][D];

  __shared__ int sLast;
  // PDL (launch.h): the step inputs (contextLens, blockTables) and the K/V of every earlier position are
  // read before pdl_wait; only q and the K/V of position ctx - 1 come from the previous kernel (RoPE + KV write).
  const int split = blockIdx.x, head = blockIdx.y, seq = blockIdx.z;
  const int numSplits = gridDim.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int kl = lane % LPK, kslot = warp * KPW + lane / LPK;
  const int ctx = contextLens[seq];
  const int start = split * partition;
  const int end = min(start + partition, ctx);
  const size_t wsIdx = ((size_t)seq * numHeads + head) * numSplits + split;
  if (start >= end) {
    detail::pdl_wait();
    detail::pdl_launch();
    if (numSplits > 1) {
      if (tid == 0) {
        wsM[wsIdx] = -INFINITY;
        wsL[wsIdx] = 0.f;
      }
      for (int i = tid; i < D; i += kThreadsD) wsO[wsIdx * D + i] = 0.f;
      merge_if_last(wsO, wsM, wsL, counters, numSplits, D, seq * numHeads + head, out, &sLast);
    } else {
      for (int i = tid; i < D; i += kThreadsD)
        out[((size_t)seq * numHeads + head) * D + i] = __float2half(0.f);
    }
    return;
  }
  const int kvh = head / (numHeads / numKvHeads);
  const int32_t* bt = blockTables + (size_t)seq * maxBlocksPerSeq;

  float qv[8];
  float acc[8] = {};
  float runM = -1e30f, runL = 0.f;

  for (int s0 = start; s0 < end; s0 += kSub) {
    size_t offs[ITER];
    bool oks[ITER];
#pragma unroll
    for (int it = 0; it < ITER; ++it) {
      const int key = s0 + it * KPB + kslot;
      oks[it] = key < end;
      const int blk = oks[it] ? bt[key / kKvBlockSize] : 0;
      offs[it] = ((size_t)(blk * kKvBlockSize + key % kKvBlockSize) * numKvHeads + kvh) * D + kl * 8;
    }
    // K and V of the sub-chunk are requested together: one memory round trip per sub-chunk.
    typename KvIo<KV>::Raw kv[ITER], vv[ITER];
#pragma unroll
    for (int it = 0; it < ITER; ++it) {
      kv[it] = oks[it] ? KvIo<KV>::stream(kc + offs[it]) : KvIo<KV>::zero();
      vv[it] = oks[it] ? KvIo<KV>::stream(vc + offs[it]) : KvIo<KV>::zero();
    }
    if (s0 == start) {
      detail::pdl_wait();
      detail::pdl_launch();
      // Position ctx - 1 was written by the previous kernel: read it again (coherent loads).
#pragma unroll
      for (int it = 0; it < ITER; ++it) {
        if (oks[it] && s0 + it * KPB + kslot == ctx - 1) {
          kv[it] = KvIo<KV>::coherent(kc + offs[it]);
          vv[it] = KvIo<KV>::coherent(vc + offs[it]);
        }
      }
      const uint4 raw = __ldcg(reinterpret_cast<const uint4*>(q + ((size_t)seq * numHeads + head) * D + kl * 8));
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        qv[2 * i] = f.x * scaleLog2;
        qv[2 * i + 1] = f.y * scaleLog2;
      }
    }
#pragma unroll
    for (int it = 0; it < ITER; ++it) {
      uint4 kh;
      const __half2* h = KvIo<KV>::as_half2(kv[it], kh);
      float dot = 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        dot = fmaf(qv[2 * i], f.x, fmaf(qv[2 * i + 1], f.y, dot));
      }
#pragma unroll
      for (int o = LPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (kl == 0) logits[it * KPB + kslot] = oks[it] ? dot : -INFINITY;
    }
    __syncthreads();
    // Softmax over this sub-chunk, merged into the running max / sum.
    const float v = tid < kSub ? logits[tid] : -INFINITY;
    float m = warp_max(v);
    if (lane == 0) red[warp] = m;
    __syncthreads();
    m = red[0];
#pragma unroll
    for (int w = 1; w < kWarpsD; ++w) m = fmaxf(m, red[w]);
    const float newM = fmaxf(runM, m);
    const float alpha = exp2f(runM - newM);
    const float p = exp2f(v - newM);
    __syncthreads();  // everyone has read red[] before it is reused
    if (tid < kSub) logits[tid] = p;
    float sum = warp_sum(p);
    if (lane == 0) red[warp] = sum;
    __syncthreads();
    sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarpsD; ++w) sum += red[w];
    runL = runL * alpha + sum;
    runM = newM;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] *= alpha;
#pragma unroll
    for (int it = 0; it < ITER; ++it) {
      const float w = logits[it * KPB + kslot];
      uint4 vh;
      const __half2* h = KvIo<KV>::as_half2(vv[it], vh);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(h[i]);
        acc[2 * i] = fmaf(w, f.x, acc[2 * i]);
        acc[2 * i + 1] = fmaf(w, f.y, acc[2 * i + 1]);
      }
    }
    __syncthreads();  // logits[] and red[] are rewritten by the next sub-chunk
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) accR[kslot][kl * 8 + i] = acc[i];
  __syncthreads();
  for (int d = tid; d < D; d += kThreadsD) {
    float o = 0.f;
#pragma unroll
    for (int k = 0; k < KPB; ++k) o += accR[k][d];
    if (numSplits == 1) {
      out[((size_t)seq * numHeads + head) * D + d] = __float2half(o / runL);
    } else {
      wsO[wsIdx * D + d] = o;
    }
  }
  if (numSplits > 1) {
    if (tid == 0) {
      wsM[wsIdx] = runM;
      wsL[wsIdx] = runL;
    }
    merge_if_last(wsO, wsM, wsL, counters, numSplits, D, seq * numHeads + head, out, &sLast);
  }
}

int choose_splits(int numSeqs, int numHeads, int maxContextLen) {
  int splits = 1;
  while ((long)numSeqs * numHeads * splits < kTargetBlocks &&
         maxContextLen >= 2 * splits * kMinPartition)
    splits *= 2;
  return splits;
}

constexpr size_t kCounterBytes = kTargetBlocks * sizeof(int);

size_t ws_bytes(int numSeqs, int numHeads, int headDim, int splits) {
  if (splits <= 1) return 0;
  return kCounterBytes + (size_t)numSeqs * numHeads * splits * (headDim + 2) * sizeof(float);
}

template <int D, typename KV>
cudaError_t launch_decode(const __half* q, const KV* kc, const KV* vc, const int32_t* bt,
                          int maxBlocksPerSeq, const int32_t* ctxLens, int numSeqs, int maxContextLen,
                          int numHeads, int numKvHeads, float scale, void* ws, size_t wsBytes,
                          __half* out, cudaStream_t stream) {
  int splits = choose_splits(numSeqs, numHeads, maxContextLen);
  while (splits > 1 && (ws == nullptr || ws_bytes(numSeqs, numHeads, D, splits) > wsBytes)) splits /= 2;
  const int partition = splits > 1 ? detail::ceil_div(detail::ceil_div(maxContextLen, splits), kSub) * kSub
                                   : (maxContextLen > 0 ? maxContextLen : 1);
  // Workspace: the split counters (kTargetBlocks ints, zero between calls) first, then the partials.
  int* counters = static_cast<int*>(ws);
  float* wsO = splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(ws) + kCounterBytes) : nullptr;
  const size_t entries = (size_t)numSeqs * numHeads * splits;
  float* wsM = splits > 1 ? wsO + entries * D : nullptr;
  float* wsL = splits > 1 ? wsM + entries : nullptr;
  dim3 grid(splits, numHeads, numSeqs);
  return pdl_launch_kernel(decode_attention_kernel<D, KV>, grid, dim3(kThreadsD), 0, stream, q, kc, vc, bt,
                           maxBlocksPerSeq, ctxLens, numHeads, numKvHeads, scale * 1.4426950408889634f, partition,
                           wsO, wsM, wsL, counters, out);
}

}  // namespace

namespace {
int g_decode_variant = 0;

// The kernel asked for: 1 = per query head (this file), 2 = by KV head (attention_decode_grouped.cu), 3 = by KV head
// on tensor cores (the same file; FP8 cache, head dim 128), 0 = none
// (the override, then AWQ_ATTN_DECODE; 0 = decide by shape in decode_variant).
int decode_variant_setting() {
  if (g_decode_variant > 0) return g_decode_variant;
  static const int fromEnv = [] {
    const char* v = std::getenv("AWQ_ATTN_DECODE");
    if (v == nullptr) return 0;
    if (!std::strcmp(v, "mma") || !std::strcmp(v, "3")) return 3;
    if (!std::strcmp(v, "grouped") || !std::strcmp(v, "2")) return 2;
    if (!std::strcmp(v, "per-head") || !std::strcmp(v, "1")) return 1;
    return 0;
  }();
  return fromEnv;
}

// By default by KV head where each KV head serves one query head (Llama-2-13B): H100, 2026-12-05, 13B at context
// 516, 1,719 / 3,176 / 3,722 tokens/s per query head against 1,899 / 3,450 / 3,866 by KV head at batch 16 / 64 /
// 128, equal at batch 1 (224 / 222); on tensor cores (3) its whole steps were slower (H100, 2026-12-07: FP8 KV,
// batch 64 / 128 5,281-5,291 / 6,240-6,244 against 5,539-5,550 / 6,679-6,683 tokens/s).
// Grouped-query models (kernel-tests --kv, H100, 2026-12-07, 32 or 64 query heads on 8 KV heads, us): per query head
// at batch 1 (fp16 6.8 against 8.1 by KV head at context 512, FP8 5.9 against 8.7), by KV head from batch 4 (fp16
// 37.1 -> 19.6 at batch 4 / context 2048, 431 -> 176 at batch 64), and over an FP8 cache on tensor cores once the
// batch holds >= 16K tokens of context (FP8 batch 8 x 2048 27.0 -> 25.1 with 4 heads a KV head, 51.0 -> 32.6 with 8;
// batch 128 x 512 76.2 -> 57.3; below that, e.g. 8 x 512, by KV head: 12.3 against 14.9). Batches 2 and 3 were not
// timed and stay per query head.
int decode_variant(int numHeads, int numKvHeads, int numSeqs, int maxContextLen, KvCacheDtype kvDtype) {
  const int setting = decode_variant_setting();
  if (setting > 0) return setting;
  if (numHeads == numKvHeads) return 2;
  if (numSeqs < 4) return 1;
  if (kvDtype == KvCacheDtype::Fp8E4m3 && (long)numSeqs * maxContextLen >= 16384) return 3;
  return 2;
}
}  // namespace

size_t paged_attention_decode_workspace_bytes(int numSeqs, int numHeads, int headDim,
                                              int maxContextLen) {
  // Per query head: splitting only happens while numSeqs*numHeads*splits < kTargetBlocks, so the workspace never
  // exceeds 2*kTargetBlocks entries. By KV head (when selected): that area, then its own counters and
  // kGroupedMaxEntries partials (fewer splits past it). One allocation serves every call of either kernel.
  (void)numSeqs;
  (void)numHeads;
  (void)maxContextLen;
  const size_t perHead = per_head_decode_ws_bytes(headDim);
  if (decode_variant_setting() == 1) return perHead;  // else the by-KV-head kernel may run (numKvHeads unknown here)
  return perHead + kGroupedCounterBytes + kGroupedMaxEntries * (headDim + 2) * sizeof(float);
}

size_t per_head_decode_ws_bytes(int headDim) {
  return kCounterBytes + (size_t)2 * kTargetBlocks * (headDim + 2) * sizeof(float);
}

void attention_decode_variant_override(int variant) { g_decode_variant = variant; }

namespace {
template <typename KV>
cudaError_t decode_for(const __half* q, const KV* kc, const KV* vc, const int32_t* blockTables, int maxBlocksPerSeq,
                       const int32_t* contextLens, int numSeqs, int maxContextLen, int numHeads, int numKvHeads,
                       int headDim, float scale, void* workspace, size_t workspaceBytes, __half* out,
                       cudaStream_t stream) {
  if (headDim == 128)
    return launch_decode<128, KV>(q, kc, vc, blockTables, maxBlocksPerSeq, contextLens, numSeqs, maxContextLen,
                                  numHeads, numKvHeads, scale, workspace, workspaceBytes, out, stream);
  if (headDim == 64)
    return launch_decode<64, KV>(q, kc, vc, blockTables, maxBlocksPerSeq, contextLens, numSeqs, maxContextLen,
                                 numHeads, numKvHeads, scale, workspace, workspaceBytes, out, stream);
  return cudaErrorInvalidValue;
}
}  // namespace

cudaError_t paged_attention_decode(const __half* q, const void* kCache, const void* vCache, KvCacheDtype kvDtype,
                                   const int32_t* blockTables, int maxBlocksPerSeq,
                                   const int32_t* contextLens, int numSeqs, int maxContextLen,
                                   int numHeads, int numKvHeads, int headDim, float scale,
                                   void* workspace, size_t workspaceBytes, __half* out,
                                   cudaStream_t stream) {
  if (numSeqs < 0 || maxContextLen < 0 || numHeads <= 0 || numKvHeads <= 0 ||
      numHeads % numKvHeads != 0 || maxBlocksPerSeq <= 0)
    return cudaErrorInvalidValue;
  if (numSeqs == 0) return cudaSuccess;
  const int variant = decode_variant(numHeads, numKvHeads, numSeqs, maxContextLen, kvDtype);
  for (int v = variant; v >= 2; --v) {  // 3: tensor cores where they take the shape, then 2: by KV head
    const cudaError_t status = paged_attention_decode_grouped(q, kCache, vCache, kvDtype, blockTables, maxBlocksPerSeq,
                                                              contextLens, numSeqs, maxContextLen, numHeads,
                                                              numKvHeads, headDim, scale, workspace, workspaceBytes,
                                                              out, stream, v == 3);
    if (status != cudaErrorNotSupported) return status;
  }
  if (kvDtype == KvCacheDtype::Fp8E4m3)
    return decode_for(q, static_cast<const uint8_t*>(kCache), static_cast<const uint8_t*>(vCache), blockTables,
                      maxBlocksPerSeq, contextLens, numSeqs, maxContextLen, numHeads, numKvHeads, headDim, scale,
                      workspace, workspaceBytes, out, stream);
  if (kvDtype == KvCacheDtype::Fp16)
    return decode_for(q, static_cast<const __half*>(kCache), static_cast<const __half*>(vCache), blockTables,
                      maxBlocksPerSeq, contextLens, numSeqs, maxContextLen, numHeads, numKvHeads, headDim, scale,
                      workspace, workspaceBytes, out, stream);
  return cudaErrorInvalidValue;
}

}  // namespace awqk
