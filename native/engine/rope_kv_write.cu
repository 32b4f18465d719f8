// RoPE: the (cos, sin) table and the fused rotate + paged KV-cache write of each layer; declarations in
// rope_kv_write.h. Angles follow the CPU reference (src/backend/cpu) exactly.
#include <algorithm>
#include <cmath>

#include "cuda_check.h"
#include "kernels/common.cuh"
#include "kernels/fp8_e4m3.cuh"
#include "kernels/launch.h"
#include "rope_kv_write.h"

namespace awq {
namespace {

// Dynamic NTK past the original context: base = theta * (factor * seqLen / original - (factor - 1))^(d / (d - 2)).
__device__ float dynamicInvFreq(const RopeParams& rope, int seqLen, int i, int headDim) {
  const double d = headDim;
  const double base = rope.theta * pow(static_cast<double>(rope.factor) * seqLen / rope.originalMaxPositions -
                                           (static_cast<double>(rope.factor) - 1.0),
                                       d / (d - 2.0));
  return static_cast<float>(1.0 / pow(base, (2.0 * i) / headDim));
}

// The reference's angle: f32(pos (/ linear factor) * inv_freq); cos and sin in double, rounded to f32.
__device__ void ropeCosSin(int position, float inv, const RopeParams& rope, float* c, float* s) {
  float pos = static_cast<float>(position);
  if (rope.scaling == 1) pos = static_cast<float>(static_cast<double>(position) / rope.factor);
  const float angle = pos * inv;
  double sn, cs;
  sincos(static_cast<double>(angle), &sn, &cs);
  *c = static_cast<float>(cs);
  *s = static_cast<float>(sn);
}

// (cos, sin) of every position below maxPositions, for the plain and linear variants (and dynamic NTK within the
// original context): table (maxPositions, headDim / 2).
__global__ void ropeTableKernel(const float* __restrict__ invFreq, float2* __restrict__ table, int maxPositions,
                                int halfDim, RopeParams rope) {
  const size_t n = static_cast<size_t>(maxPositions) * halfDim;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(k % halfDim);
    float c, s;
    ropeCosSin(static_cast<int>(k / halfDim), invFreq[i], rope, &c, &s);
    table[k] = make_float2(c, s);
  }
}

// Grid-stride over (token, head, pair of rotate-half pairs): each item loads two half2 (elements i, i+1 and
// i + headDim/2, i + 1 + headDim/2) and writes them rotated to q / the K cache, or copies them to the V cache.
// Heads: q heads, then k heads, then v heads. Angles as the CPU reference computes them (ropeCosSin).
// KV = half (fp16 cache) or uint8_t (FP8 E4M3, scale 1.0: the rotated key is encoded from its fp32 value, the
// value from its fp16 one, as the CPU backend rounds its float32 K and V).
template <typename KV>
__device__ __forceinline__ void storePair(KV* dst, float a, float b);
template <>
__device__ __forceinline__ void storePair<half>(half* dst, float a, float b) {
  *reinterpret_cast<half2*>(dst) = __floats2half2_rn(a, b);
}
template <>
__device__ __forceinline__ void storePair<uint8_t>(uint8_t* dst, float a, float b) {
  *reinterpret_cast<uint16_t*>(dst) = awqk::detail::e4m3x2_from_float2(a, b);
}

// ROW_GRID: a grid row per token (blockIdx.y) and one item per thread, with no 64-bit division (launcher: up to
// 65535 tokens); otherwise a grid-stride loop over every item.
template <typename KV>
__global__ void ropeKvWriteKernel(const half* __restrict__ qkv, const int32_t* __restrict__ positions,
                                  const int32_t* __restrict__ slotMapping, const int32_t* __restrict__ tokenSeqLen,
                                  const float2* __restrict__ cosSinTable, half* __restrict__ qOut,
                                  KV* __restrict__ kCache, KV* __restrict__ vCache,
                                  int numTokens, int numHeads, int numKvHeads, int headDim, RopeParams rope) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  const int halfDim = headDim / 2;
  const int quarter = headDim / 4;
  const int heads = numHeads + 2 * numKvHeads;
  const size_t perToken = static_cast<size_t>(heads) * quarter;
  const size_t total = perToken * numTokens;
  const int width = heads * headDim;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(k / perToken);
    const int r = static_cast<int>(k % perToken);
    const int head = r / quarter;
    const int i = 2 * (r % quarter);
    const half* x = qkv + static_cast<size_t>(t) * width + static_cast<size_t>(head) * headDim;
    const half2 lo = *reinterpret_cast<const half2*>(x + i);
    const half2 hi = *reinterpret_cast<const half2*>(x + i + halfDim);
    const int slot = slotMapping[t];
    const size_t cacheRow = static_cast<size_t>(slot) * numKvHeads * headDim;
    if (head >= numHeads + numKvHeads) {  // v: copy into the cache
      if (slot >= 0) {
        KV* v = vCache + cacheRow + static_cast<size_t>(head - numHeads - numKvHeads) * headDim;
        if constexpr (sizeof(KV) == 2) {
          *reinterpret_cast<half2*>(v + i) = lo;
          *reinterpret_cast<half2*>(v + i + halfDim) = hi;
        } else {
          const float2 l = __half22float2(lo), h = __half22float2(hi);
          storePair(v + i, l.x, l.y);
          storePair(v + i + halfDim, h.x, h.y);
        }
      }
      continue;
    }
    float c[2], s[2];
    const int position = positions[t];
    const bool grown = rope.scaling == 2 && tokenSeqLen[t] > rope.originalMaxPositions;
#pragma unroll
    for (int u = 0; u < 2; u++) {
      if (!grown) {
        const float2 cs = cosSinTable[static_cast<size_t>(position) * halfDim + i + u];
        c[u] = cs.x;
        s[u] = cs.y;
      } else {
        ropeCosSin(position, dynamicInvFreq(rope, tokenSeqLen[t], i + u, headDim), rope, &c[u], &s[u]);
      }
    }
    const float2 x1 = __half22float2(lo);
    const float2 x2 = __half22float2(hi);
    if constexpr (sizeof(KV) == 2) {  // fp16 cache: the code (and machine code) of the fp16-only kernel
      const half2 y1 = __floats2half2_rn(x1.x * c[0] - x2.x * s[0], x1.y * c[1] - x2.y * s[1]);
      const half2 y2 = __floats2half2_rn(x2.x * c[0] + x1.x * s[0], x2.y * c[1] + x1.y * s[1]);
      half* dst;
      if (head < numHeads) {
        dst = qOut + (static_cast<size_t>(t) * numHeads + head) * headDim;
      } else if (slot >= 0) {
        dst = kCache + cacheRow + static_cast<size_t>(head - numHeads) * headDim;
      } else {
        continue;
      }
      *reinterpret_cast<half2*>(dst + i) = y1;
      *reinterpret_cast<half2*>(dst + i + halfDim) = y2;
    } else {  // FP8: q in fp16 as above, the key encoded from its fp32 value
      const float y1a = x1.x * c[0] - x2.x * s[0], y1b = x1.y * c[1] - x2.y * s[1];
      const float y2a = x2.x * c[0] + x1.x * s[0], y2b = x2.y * c[1] + x1.y * s[1];
      if (head < numHeads) {
        half* dst = qOut + (static_cast<size_t>(t) * numHeads + head) * headDim;
        storePair(dst + i, y1a, y1b);
        storePair(dst + i + halfDim, y2a, y2b);
      } else if (slot >= 0) {
        KV* dst = kCache + cacheRow + static_cast<size_t>(head - numHeads) * headDim;
        storePair(dst + i, y1a, y1b);
        storePair(dst + i + halfDim, y2a, y2b);
      }
    }
  }
}

// Eight values as E4M3 bytes, in order.
__device__ __forceinline__ uint2 e4m3x8_from_float8(const float (&v)[8]) {
  uint32_t w[2];
#pragma unroll
  for (int k = 0; k < 2; ++k)
    w[k] = awqk::detail::e4m3x2_from_float2(v[4 * k], v[4 * k + 1]) |
           (uint32_t)awqk::detail::e4m3x2_from_float2(v[4 * k + 2], v[4 * k + 3]) << 16;
  return make_uint2(w[0], w[1]);
}

// Eight rotate-half pairs an item (headDim % 16 == 0): elements i..i+7 and i+headDim/2..+7 of one head of one token
// as two 16-byte loads, their (cos, sin) as four 16-byte table loads, two 16-byte stores (8-byte ones into an FP8
// cache). A grid row per token (blockIdx.y). Same arithmetic per element as ropeKvWriteKernel.
template <typename KV>
__global__ void ropeKvWriteWideKernel(const half* __restrict__ qkv, const int32_t* __restrict__ positions,
                                      const int32_t* __restrict__ slotMapping, const int32_t* __restrict__ tokenSeqLen,
                                      const float2* __restrict__ cosSinTable, half* __restrict__ qOut,
                                      KV* __restrict__ kCache, KV* __restrict__ vCache, int numHeads, int numKvHeads,
                                      int headDim, RopeParams rope) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  const int halfDim = headDim / 2;
  const int eighths = halfDim / 8;  // items a head
  const int heads = numHeads + 2 * numKvHeads;
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= heads * eighths) return;
  const int t = blockIdx.y;
  const int head = r / eighths;
  const int i = 8 * (r - head * eighths);
  const half* x = qkv + static_cast<size_t>(t) * heads * headDim + static_cast<size_t>(head) * headDim;
  const uint4 loRaw = *reinterpret_cast<const uint4*>(x + i);
  const uint4 hiRaw = *reinterpret_cast<const uint4*>(x + i + halfDim);
  const int slot = slotMapping[t];
  const size_t cacheRow = static_cast<size_t>(slot) * numKvHeads * headDim;
  if (head >= numHeads + numKvHeads) {  // v: copy into the cache
    if (slot < 0) return;
    KV* v = vCache + cacheRow + static_cast<size_t>(head - numHeads - numKvHeads) * headDim;
    if constexpr (sizeof(KV) == 2) {
      *reinterpret_cast<uint4*>(v + i) = loRaw;
      *reinterpret_cast<uint4*>(v + i + halfDim) = hiRaw;
    } else {
      const half2* lo2 = reinterpret_cast<const half2*>(&loRaw);
      const half2* hi2 = reinterpret_cast<const half2*>(&hiRaw);
      float lo[8], hi[8];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float2 l = __half22float2(lo2[k]), h = __half22float2(hi2[k]);
        lo[2 * k] = l.x;
        lo[2 * k + 1] = l.y;
        hi[2 * k] = h.x;
        hi[2 * k + 1] = h.y;
      }
      *reinterpret_cast<uint2*>(v + i) = e4m3x8_from_float8(lo);
      *reinterpret_cast<uint2*>(v + i + halfDim) = e4m3x8_from_float8(hi);
    }
    return;
  }
  if (head >= numHeads && slot < 0) return;  // a key with no cache slot
  float c[8], sn[8];
  const int position = positions[t];
  const bool grown = rope.scaling == 2 && tokenSeqLen[t] > rope.originalMaxPositions;
  if (!grown) {
    const float4* cs4 = reinterpret_cast<const float4*>(cosSinTable + static_cast<size_t>(position) * halfDim + i);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float4 v = cs4[k];
      c[2 * k] = v.x;
      sn[2 * k] = v.y;
      c[2 * k + 1] = v.z;
      sn[2 * k + 1] = v.w;
    }
  } else {
#pragma unroll
    for (int u = 0; u < 8; ++u)
      ropeCosSin(position, dynamicInvFreq(rope, tokenSeqLen[t], i + u, headDim), rope, &c[u], &sn[u]);
  }
  const half2* lo2 = reinterpret_cast<const half2*>(&loRaw);
  const half2* hi2 = reinterpret_cast<const half2*>(&hiRaw);
  float y1[8], y2[8];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 x1 = __half22float2(lo2[k]);
    const float2 x2 = __half22float2(hi2[k]);
    y1[2 * k] = x1.x * c[2 * k] - x2.x * sn[2 * k];
    y1[2 * k + 1] = x1.y * c[2 * k + 1] - x2.y * sn[2 * k + 1];
    y2[2 * k] = x2.x * c[2 * k] + x1.x * sn[2 * k];
    y2[2 * k + 1] = x2.y * c[2 * k + 1] + x1.y * sn[2 * k + 1];
  }
  auto halves = [](const float* y) {
    uint4 out;
    uint32_t* w = reinterpret_cast<uint32_t*>(&out);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const half2 h = __floats2half2_rn(y[2 * k], y[2 * k + 1]);
      w[k] = *reinterpret_cast<const uint32_t*>(&h);
    }
    return out;
  };
  if (head < numHeads) {
    half* dst = qOut + (static_cast<size_t>(t) * numHeads + head) * headDim;
    *reinterpret_cast<uint4*>(dst + i) = halves(y1);
    *reinterpret_cast<uint4*>(dst + i + halfDim) = halves(y2);
    return;
  }
  KV* dst = kCache + cacheRow + static_cast<size_t>(head - numHeads) * headDim;
  if constexpr (sizeof(KV) == 2) {
    *reinterpret_cast<uint4*>(dst + i) = halves(y1);
    *reinterpret_cast<uint4*>(dst + i + halfDim) = halves(y2);
  } else {  // the key encoded from its fp32 value
    *reinterpret_cast<uint2*>(dst + i) = e4m3x8_from_float8(y1);
    *reinterpret_cast<uint2*>(dst + i + halfDim) = e4m3x8_from_float8(y2);
  }
}

unsigned gridFor(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks == 0 ? 1 : blocks) : 65536);
}

}  // namespace

void computeInvFreq(int headDim, double theta, float* out) {
  for (int i = 0; i < headDim / 2; i++) out[i] = static_cast<float>(1.0 / std::pow(theta, (2.0 * i) / headDim));
}

void launchRopeTable(const float* invFreq, float2* table, int maxPositions, int headDim, const RopeParams& rope,
                     cudaStream_t stream) {
  const size_t n = static_cast<size_t>(maxPositions) * (headDim / 2);
  ropeTableKernel<<<gridFor(n, 256), 256, 0, stream>>>(invFreq, table, maxPositions, headDim / 2, rope);
  checkLaunch("rope_table", stream);
}

void launchRopeKvWrite(const half* qkv, const int32_t* positions, const int32_t* slotMapping,
                       const int32_t* tokenSeqLen, const float2* cosSinTable, half* qOut, void* kCache,
                       void* vCache, awqk::KvCacheDtype kvDtype, int numTokens, int numHeads, int numKvHeads,
                       int headDim, const RopeParams& rope, cudaStream_t stream) {
  if (numTokens == 0) return;
  if (headDim % 16 == 0 && numTokens <= 65535) {
    const int wideItems = (numHeads + 2 * numKvHeads) * (headDim / 16);
    const dim3 wideGrid(static_cast<unsigned>((wideItems + 127) / 128), static_cast<unsigned>(numTokens));
    auto launchWide = [&](auto kernel, auto* kc, auto* vc) {
      return awqk::pdl_launch_kernel(kernel, wideGrid, dim3(128), 0, stream, qkv, positions, slotMapping, tokenSeqLen,
                                     cosSinTable, qOut, kc, vc, numHeads, numKvHeads, headDim, rope);
    };
    if (kvDtype == awqk::KvCacheDtype::Fp8E4m3)
      cudaCheck(launchWide(ropeKvWriteWideKernel<uint8_t>, static_cast<uint8_t*>(kCache), static_cast<uint8_t*>(vCache)),
                "rope_kv_write launch");
    else
      cudaCheck(launchWide(ropeKvWriteWideKernel<half>, static_cast<half*>(kCache), static_cast<half*>(vCache)),
                "rope_kv_write launch");
    checkLaunch("rope_kv_write", stream);
    return;
  }
  // Head dims not a multiple of 16, or more tokens than a grid has rows: a grid-stride loop, 2 pairs an item.
  const size_t items = static_cast<size_t>(numTokens) * (numHeads + 2 * numKvHeads) * (headDim / 4);
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((items + 255) / 256, 132 * 16));
  if (kvDtype == awqk::KvCacheDtype::Fp8E4m3) {
    cudaCheck(awqk::pdl_launch_kernel(ropeKvWriteKernel<uint8_t>, dim3(blocks), dim3(256), 0, stream, qkv, positions,
                                      slotMapping, tokenSeqLen, cosSinTable, qOut, static_cast<uint8_t*>(kCache),
                                      static_cast<uint8_t*>(vCache), numTokens, numHeads, numKvHeads, headDim, rope),
              "rope_kv_write launch");
  } else {
    cudaCheck(awqk::pdl_launch_kernel(ropeKvWriteKernel<half>, dim3(blocks), dim3(256), 0, stream, qkv, positions,
                                      slotMapping, tokenSeqLen, cosSinTable, qOut, static_cast<half*>(kCache),
                                      static_cast<half*>(vCache), numTokens, numHeads, numKvHeads, headDim, rope),
              "rope_kv_write launch");
  }
  checkLaunch("rope_kv_write", stream);
}

}  // namespace awq
