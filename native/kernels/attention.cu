// Paged attention for any query lengths (prefill, chunked prefill over a cached prefix, mixed
// steps): flash-attention-2 style, mma.sync m16n8k16. Block = 4 warps = 64 queries of one
// (sequence, head); KV tiles of 64 keys gathered from the paged cache into shared memory with
// cp.async (double buffered); online softmax in fp32 with exp2. An FP8 E4M3 cache is gathered the same way
// (as bytes) and widened into one fp16 tile per step before the tensor-core loop. On Hopper, head dim 128 with
// queries of 64+ tokens goes to the wgmma kernel of attention_prefill_sm90.cu instead (either cache dtype).
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "attention_rows.cuh"
#include "common.cuh"
#include "fp8_e4m3.cuh"
#include "internal.h"
#include "kernels.h"

namespace awqk {
namespace {

using detail::mma16816;

constexpr int kBKV = 64;
// Query lengths from which a step's prefill attention goes to the wgmma kernel on Hopper (its blocks hold 128).
constexpr int kWgmmaMinQueryLen = 64;

__device__ __forceinline__ uint32_t pack_h2(float a, float b) {
  return detail::h2_as_u32(__floats2half2_rn(a, b));
}

// Dynamic shared memory: fp16 stages [2][K | V][kBKV][D + 8]; FP8 raw stages [2][K | V][kBKV][D] bytes, then one
// fp16 tile [K | V][kBKV][D + 8] they are widened into.
template <int D, typename KV>
constexpr int prefill_smem_bytes() {
  return sizeof(KV) == 1 ? 2 * 2 * kBKV * D + 2 * kBKV * (D + 8) * 2 : 2 * 2 * kBKV * (D + 8) * 2;
}

// BQ queries a block (BQ / 16 warps): 64, the default, or 128 (each K/V tile then serves twice the queries: half the
// shared-memory fills a FLOP). SKIP: tiles whose keys are all visible to every query of the block (below the
// diagonal, inside the context) skip the per-element causal test. Defaults per cache dtype: prefill_bq.
template <int D, typename KV, int BQ = 64, bool SKIP = false>
__global__ void __launch_bounds__(BQ * 2) prefill_attention_kernel(
    const __half* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
    const int32_t* __restrict__ blockTables, int maxBlocksPerSeq, const int32_t* __restrict__ queryStarts,
    const int32_t* __restrict__ contextLens, int numHeads, int numKvHeads, float scaleLog2,
    __half* __restrict__ out) {
  constexpr int P = D + 8;  // smem row pitch (halves): conflict-free ldmatrix
  constexpr int KT = D / 16;
  constexpr bool kFp8 = sizeof(KV) == 1;
  extern __shared__ __align__(16) unsigned char smraw[];
  __half* sm = reinterpret_cast<__half*>(smraw);  // fp16: [2 stages][K | V][kBKV][P]; fp8: prefill_smem_bytes

  const int seq = blockIdx.z, head = blockIdx.y;
  const int qs = queryStarts[seq];
  const int qLen = queryStarts[seq + 1] - qs;
  constexpr int kThreadsPA = BQ * 2;
  const int j0 = (gridDim.x - 1 - blockIdx.x) * BQ;  // heavy (late) query tiles first
  if (j0 >= qLen) return;
  const int ctx = contextLens[seq];
  const int pos0 = ctx - qLen;  // cache position of query 0
  const int kvh = head / (numHeads / numKvHeads);
  const int lastPos = pos0 + min(j0 + BQ - 1, qLen - 1);
  const int nTiles = lastPos / kBKV + 1;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int rowA = j0 + warp * 16 + g, rowB = rowA + 8;
  const int posA = pos0 + rowA, posB = pos0 + rowB;

  uint32_t qf[KT][4];
  {
    const size_t strideTok = (size_t)numHeads * D;
    const __half* qa = q + (size_t)(qs + min(rowA, qLen - 1)) * strideTok + (size_t)head * D;
    const __half* qb = q + (size_t)(qs + min(rowB, qLen - 1)) * strideTok + (size_t)head * D;
#pragma unroll
    for (int kk = 0; kk < KT; ++kk) {
      qf[kk][0] = *reinterpret_cast<const uint32_t*>(qa + 16 * kk + 2 * t);
      qf[kk][1] = *reinterpret_cast<const uint32_t*>(qb + 16 * kk + 2 * t);
      qf[kk][2] = *reinterpret_cast<const uint32_t*>(qa + 16 * kk + 8 + 2 * t);
      qf[kk][3] = *reinterpret_cast<const uint32_t*>(qb + 16 * kk + 8 + 2 * t);
    }
  }

  const int32_t* bt = blockTables + (size_t)seq * maxBlocksPerSeq;
  auto load_kv = [&](int stage, int tile) {
    if constexpr (kFp8) {  // 16 E4M3 bytes a segment into the raw stage [K | V][kBKV][D]
      uint8_t* Kr = smraw + stage * 2 * kBKV * D;
      uint8_t* Vr = Kr + kBKV * D;
      constexpr int SEGS = D / 16;
      for (int i = tid; i < kBKV * SEGS; i += kThreadsPA) {
        const int row = i / SEGS, seg = i % SEGS;
        const int kpos = tile * kBKV + row;
        const bool ok = kpos < ctx;
        const int blk = ok ? bt[kpos / kKvBlockSize] : 0;
        const size_t off =
            ((size_t)(blk * kKvBlockSize + kpos % kKvBlockSize) * numKvHeads + kvh) * D + seg * 16;
        detail::cp_async16(Kr + row * D + seg * 16, kc + off, ok);
        detail::cp_async16(Vr + row * D + seg * 16, vc + off, ok);
      }
    } else {
      __half* Ks = sm + stage * 2 * kBKV * P;
      __half* Vs = Ks + kBKV * P;
      constexpr int SEGS = D / 8;
      for (int i = tid; i < kBKV * SEGS; i += kThreadsPA) {
        const int row = i / SEGS, seg = i % SEGS;
        const int kpos = tile * kBKV + row;
        const bool ok = kpos < ctx;
        const int blk = ok ? bt[kpos / kKvBlockSize] : 0;
        const size_t off =
            ((size_t)(blk * kKvBlockSize + kpos % kKvBlockSize) * numKvHeads + kvh) * D + seg * 8;
        detail::cp_async16(Ks + row * P + seg * 8, kc + off, ok);
        detail::cp_async16(Vs + row * P + seg * 8, vc + off, ok);
      }
    }
  };

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float mrow[2] = {-1e30f, -1e30f}, lrow[2] = {0.f, 0.f};

  load_kv(0, 0);
  detail::cp_async_commit();
  for (int tile = 0; tile < nTiles; ++tile) {
    if (tile + 1 < nTiles) {
      load_kv((tile + 1) & 1, tile + 1);
      detail::cp_async_commit();
      detail::cp_async_wait<1>();
    } else {
      detail::cp_async_wait<0>();
    }
    __syncthreads();
    const __half* Ks = sm + (tile & 1) * 2 * kBKV * P;
    const __half* Vs = Ks + kBKV * P;
    if constexpr (kFp8) {
      // Widen this stage's E4M3 K and V (exact) into the fp16 tile [K | V][kBKV][P] after the raw stages.
      const uint8_t* raw = smraw + (tile & 1) * 2 * kBKV * D;
      __half* smWide = reinterpret_cast<__half*>(smraw + 2 * 2 * kBKV * D);
      for (int i = tid; i < 2 * kBKV * (D / 8); i += kThreadsPA) {
        const int row = i / (D / 8), seg = i % (D / 8);  // row < kBKV: K, else V
        const uint2 bytes = *reinterpret_cast<const uint2*>(raw + row * D + seg * 8);
        *reinterpret_cast<uint4*>(smWide + row * P + seg * 8) = detail::e4m3x8_to_half8(bytes);
      }
      __syncthreads();
      Ks = smWide;
      Vs = smWide + kBKV * P;
    }

    float s[8][4];
#pragma unroll
    for (int nj = 0; nj < 8; ++nj) s[nj][0] = s[nj][1] = s[nj][2] = s[nj][3] = 0.f;
    const int mat = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int kk = 0; kk < KT; kk += 2) {
#pragma unroll
      for (int nj = 0; nj < 8; ++nj) {
        uint32_t b[4];
        detail::ldmatrix_x4(b, Ks + (8 * nj + r8) * P + 16 * (kk + (mat >> 1)) + 8 * (mat & 1));
        mma16816(s[nj], qf[kk], b);
        mma16816(s[nj], qf[kk + 1], b + 2);
      }
    }

    // Scale, causal mask (also hides keys past the context), online softmax.
    float mx[2] = {-1e30f, -1e30f};
    const int lastKey = tile * kBKV + kBKV - 1;
    if (SKIP && lastKey <= pos0 + j0 && lastKey < ctx) {  // every key visible to every query of the block
#pragma unroll
      for (int nj = 0; nj < 8; ++nj)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[nj][e] *= scaleLog2;
          mx[e >> 1] = fmaxf(mx[e >> 1], s[nj][e]);
        }
    } else {
#pragma unroll
      for (int nj = 0; nj < 8; ++nj)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = tile * kBKV + 8 * nj + 2 * t + (e & 1);
          const int qpos = e < 2 ? posA : posB;
          const bool valid = key <= qpos && key < ctx;
          s[nj][e] = valid ? s[nj][e] * scaleLog2 : -INFINITY;
          mx[e >> 1] = fmaxf(mx[e >> 1], s[nj][e]);
        }
    }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mnew = fmaxf(mrow[r], mx[r]);
      alpha[r] = exp2f(mrow[r] - mnew);
      mrow[r] = mnew;
      lrow[r] *= alpha[r];
    }
#pragma unroll
    for (int nj = 0; nj < 8; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f(s[nj][e] - mrow[e >> 1]);
        s[nj][e] = p;
        lrow[e >> 1] += p;
      }
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn) {
      o[dn][0] *= alpha[0];
      o[dn][1] *= alpha[0];
      o[dn][2] *= alpha[1];
      o[dn][3] *= alpha[1];
    }

    // O += P V; P's accumulator layout is already the A fragment layout of the next mma.
#pragma unroll
    for (int kk2 = 0; kk2 < kBKV / 16; ++kk2) {
      const uint32_t a[4] = {pack_h2(s[2 * kk2][0], s[2 * kk2][1]), pack_h2(s[2 * kk2][2], s[2 * kk2][3]),
                             pack_h2(s[2 * kk2 + 1][0], s[2 * kk2 + 1][1]),
                             pack_h2(s[2 * kk2 + 1][2], s[2 * kk2 + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        detail::ldmatrix_x4_trans(b, Vs + (16 * kk2 + 8 * (mat & 1) + r8) * P + 16 * dp + 8 * (mat >> 1));
        mma16816(o[2 * dp], a, b);
        mma16816(o[2 * dp + 1], a, b + 2);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage's buffers
  }

  detail::store_attention_rows<D>([&](int j, int e) { return o[j][e]; }, lrow, out, qs, qLen, rowA, rowB, head,
                                  numHeads, t);
}

template <int D, typename KV, int BQ, bool SKIP>
cudaError_t launch_prefill(const __half* q, const KV* kc, const KV* vc, const int32_t* bt,
                           int maxBlocksPerSeq, const int32_t* qStarts, const int32_t* ctxLens,
                           int numSeqs, int maxQueryLen, int numHeads, int numKvHeads, float scale,
                           __half* out, cudaStream_t stream) {
  constexpr int smem = prefill_smem_bytes<D, KV>();
  static unsigned long long configured = 0;  // one bit per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  if (!(configured & bit)) {
    cudaError_t e = cudaFuncSetAttribute(prefill_attention_kernel<D, KV, BQ, SKIP>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    configured |= bit;
  }
  dim3 grid(detail::ceil_div(maxQueryLen, BQ), numHeads, numSeqs);
  prefill_attention_kernel<D, KV, BQ, SKIP><<<grid, BQ * 2, smem, stream>>>(
      q, kc, vc, bt, maxBlocksPerSeq, qStarts, ctxLens, numHeads, numKvHeads,
      scale * 1.4426950408889634f, out);
  return cudaGetLastError();
}

// Queries a block and the mask skip (see the kernel): the FP8 cache takes 128 and skips (H100, 2026-12-06: prefill of
// 4096 tokens 17,035 / 16,988 -> 17,559 / 17,604 tokens/s in alternating processes, as its widening step is shared
// by twice the queries); the fp16 cache (the wgmma kernel takes it on Hopper) 64, every tile masked (its kernel
// timing: 128 queries 14 % slower, the skip even). AWQ_ATTN_PREFILL_BQ (64 | 128) and AWQ_ATTN_PREFILL_MASKSKIP
// (0 | 1) override both.
int prefill_bq(bool fp8) {
  static const int env = [] {
    const char* e = std::getenv("AWQ_ATTN_PREFILL_BQ");
    if (e == nullptr || e[0] == '\0') return 0;
    return std::atoi(e) == 128 ? 128 : 64;
  }();
  return env != 0 ? env : (fp8 ? 128 : 64);
}
bool prefill_mask_skip(bool fp8) {
  static const int env = [] {
    const char* e = std::getenv("AWQ_ATTN_PREFILL_MASKSKIP");
    if (e == nullptr || e[0] == '\0') return -1;
    return e[0] == '1' ? 1 : 0;
  }();
  return env >= 0 ? env == 1 : fp8;
}

template <int D, typename KV>
cudaError_t launch_prefill_by_env(const __half* q, const KV* kc, const KV* vc, const int32_t* bt, int maxBlocksPerSeq,
                                  const int32_t* qStarts, const int32_t* ctxLens, int numSeqs, int maxQueryLen,
                                  int numHeads, int numKvHeads, float scale, __half* out, cudaStream_t stream) {
  auto run = [&](auto launch) {
    return launch(q, kc, vc, bt, maxBlocksPerSeq, qStarts, ctxLens, numSeqs, maxQueryLen, numHeads, numKvHeads, scale,
                  out, stream);
  };
  constexpr bool kFp8 = sizeof(KV) == 1;
  const bool skip = prefill_mask_skip(kFp8);
  if (prefill_bq(kFp8) == 128) return skip ? run(launch_prefill<D, KV, 128, true>) : run(launch_prefill<D, KV, 128, false>);
  return skip ? run(launch_prefill<D, KV, 64, true>) : run(launch_prefill<D, KV, 64, false>);
}

template <typename KV>
cudaError_t prefill_for(const __half* q, const KV* kc, const KV* vc, const int32_t* blockTables,
                        int maxBlocksPerSeq, const int32_t* queryStarts, const int32_t* contextLens, int numSeqs,
                        int maxQueryLen, int numHeads, int numKvHeads, int headDim, float scale, __half* out,
                        cudaStream_t stream) {
  if (headDim == 128)
    return launch_prefill_by_env<128, KV>(q, kc, vc, blockTables, maxBlocksPerSeq, queryStarts, contextLens,
                                          numSeqs, maxQueryLen, numHeads, numKvHeads, scale, out, stream);
  if (headDim == 64)
    return launch_prefill_by_env<64, KV>(q, kc, vc, blockTables, maxBlocksPerSeq, queryStarts, contextLens, numSeqs,
                                         maxQueryLen, numHeads, numKvHeads, scale, out, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t paged_attention_prefill(const __half* q, const void* kCache, const void* vCache, KvCacheDtype kvDtype,
                                    const int32_t* blockTables, int maxBlocksPerSeq,
                                    const int32_t* queryStarts, const int32_t* contextLens,
                                    int numSeqs, int maxQueryLen, int numHeads, int numKvHeads,
                                    int headDim, float scale, __half* out, cudaStream_t stream) {
  if (numSeqs < 0 || maxQueryLen < 0 || numHeads <= 0 || numKvHeads <= 0 ||
      numHeads % numKvHeads != 0 || maxBlocksPerSeq <= 0)
    return cudaErrorInvalidValue;
  if (numSeqs == 0 || maxQueryLen == 0) return cudaSuccess;
  // Hopper, head dim 128: the wgmma kernel (attention_prefill_sm90.cu) for anything longer than a short chunk.
  if (headDim == 128 && maxQueryLen >= kWgmmaMinQueryLen && prefill_attention_sm90_enabled() &&
      (kvDtype == KvCacheDtype::Fp16 || kvDtype == KvCacheDtype::Fp8E4m3))
    return paged_attention_prefill_sm90(q, kCache, vCache, kvDtype, blockTables, maxBlocksPerSeq, queryStarts,
                                        contextLens, numSeqs, maxQueryLen, numHeads, numKvHeads, headDim, scale, out,
                                        stream);
  if (kvDtype == KvCacheDtype::Fp8E4m3)
    return prefill_for(q, static_cast<const uint8_t*>(kCache), static_cast<const uint8_t*>(vCache), blockTables,
                       maxBlocksPerSeq, queryStarts, contextLens, numSeqs, maxQueryLen, numHeads, numKvHeads,
                       headDim, scale, out, stream);
  if (kvDtype == KvCacheDtype::Fp16) {
    return prefill_for(q, static_cast<const __half*>(kCache), static_cast<const __half*>(vCache), blockTables,
                       maxBlocksPerSeq, queryStarts, contextLens, numSeqs, maxQueryLen, numHeads, numKvHeads,
                       headDim, scale, out, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace awqk
