// The engine's element-wise kernels; layouts are in ops.h.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cuda_check.h"
#include "hash32.cuh"
#include "kernels/common.cuh"
#include "kernels/launch.h"
#include "ops.h"

namespace awq {
namespace {

constexpr int kNormThreads = 256;

__global__ void embeddingKernel(const int32_t* tokenIds, const half* embed, float* residual, int hidden) {
  const int t = blockIdx.x;
  const half* src = embed + static_cast<size_t>(tokenIds[t]) * hidden;
  float* dst = residual + static_cast<size_t>(t) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = __half2float(src[i]);
}

__device__ float blockSum(float value, float* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  const int numWarps = blockDim.x / 32;
  value = lane < numWarps ? scratch[lane] : 0.f;
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  __syncthreads();
  return value;
}

// Block per output row; the row is kept in shared memory between the sum of squares and the scaling.
// (Generic path for hidden sizes that are not a multiple of 4.)
__global__ void addRmsNormKernel(float* residual, const half* delta, const half* weight, half* out,
                                 const int32_t* rowIndex, int hidden, float eps, bool writeResidual) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  extern __shared__ float row[];  // (hidden)
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const size_t src = static_cast<size_t>(rowIndex != nullptr ? rowIndex[r] : r) * hidden;
  float sumSq = 0.f;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
    float x = residual[src + i];
    if (delta != nullptr) x += __half2float(delta[src + i]);
    if (writeResidual) residual[src + i] = x;
    row[i] = x;
    sumSq += x * x;
  }
  const float total = blockSum(sumSq, scratch);
  const float inv = rsqrtf(total / hidden + eps);
  half* dst = out + static_cast<size_t>(r) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = __float2half(row[i] * inv * __half2float(weight[i]));
}

// Vectorized path (hidden % 4 == 0): each thread holds kVecs float4 of the row in registers (the fewest that fit
// the row in 1024 threads: 2 for hidden 5120, so that a thread needs ~30 registers and three 640-thread blocks share
// an SM; sized for 8 it took 64 and one block an SM, 1.9 TB/s at 4096 rows on the H100), all loads are issued before
// any use (16-byte residual loads, 8-byte fp16 loads), one reduction, one scaled store.
constexpr int kMaxVecs = 8;

template <int kVecs>
__global__ void __launch_bounds__(1024) addRmsNormVecKernel(float* __restrict__ residual,
                                                            const half* __restrict__ delta,
                                                            const half* __restrict__ weight, half* __restrict__ out,
                                                            const int32_t* __restrict__ rowIndex, int hidden,
                                                            float eps, bool writeResidual) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const int nvec = hidden / 4;
  // The norm weight never changes: fetched before waiting on the previous kernel (PDL, launch.h).
  const uint2* w4 = reinterpret_cast<const uint2*>(weight);
  uint2 wr[kVecs];
#pragma unroll
  for (int k = 0; k < kVecs; k++) {
    const int v = threadIdx.x + k * blockDim.x;
    if (v < nvec) wr[k] = w4[v];
  }
  awqk::detail::pdl_wait();
  awqk::detail::pdl_launch();
  const size_t src = static_cast<size_t>(rowIndex != nullptr ? rowIndex[r] : r) * hidden;
  float4* res4 = reinterpret_cast<float4*>(residual + src);
  const uint2* del4 = delta != nullptr ? reinterpret_cast<const uint2*>(delta + src) : nullptr;
  float4 x[kVecs];
  float sumSq = 0.f;
#pragma unroll
  for (int k = 0; k < kVecs; k++) {
    const int v = threadIdx.x + k * blockDim.x;
    if (v < nvec) x[k] = res4[v];
  }
  if (del4 != nullptr) {
#pragma unroll
    for (int k = 0; k < kVecs; k++) {
      const int v = threadIdx.x + k * blockDim.x;
      if (v < nvec) {
        const uint2 raw = del4[v];
        const float2 a = __half22float2(*reinterpret_cast<const half2*>(&raw.x));
        const float2 b = __half22float2(*reinterpret_cast<const half2*>(&raw.y));
        x[k].x += a.x;
        x[k].y += a.y;
        x[k].z += b.x;
        x[k].w += b.y;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kVecs; k++) {
    const int v = threadIdx.x + k * blockDim.x;
    if (v < nvec) {
      if (writeResidual) res4[v] = x[k];
      sumSq += x[k].x * x[k].x + x[k].y * x[k].y + x[k].z * x[k].z + x[k].w * x[k].w;
    }
  }
  const float total = blockSum(sumSq, scratch);
  const float inv = rsqrtf(total / hidden + eps);
  uint2* o4 = reinterpret_cast<uint2*>(out + static_cast<size_t>(r) * hidden);
#pragma unroll
  for (int k = 0; k < kVecs; k++) {
    const int v = threadIdx.x + k * blockDim.x;
    if (v < nvec) {
      const float2 wa = __half22float2(*reinterpret_cast<const half2*>(&wr[k].x));
      const float2 wb = __half22float2(*reinterpret_cast<const half2*>(&wr[k].y));
      const half2 ya = __floats2half2_rn(x[k].x * inv * wa.x, x[k].y * inv * wa.y);
      const half2 yb = __floats2half2_rn(x[k].z * inv * wb.x, x[k].w * inv * wb.y);
      uint2 packed;
      packed.x = *reinterpret_cast<const uint32_t*>(&ya);
      packed.y = *reinterpret_cast<const uint32_t*>(&yb);
      o4[v] = packed;
    }
  }
}

// silu(gate) * up of 8 fp16 values each (silu in f32 with an accurate exp, as siluMulKernel).
__device__ __forceinline__ uint4 siluMul8(uint4 gw, uint4 uw) {
  const half2* g2 = reinterpret_cast<const half2*>(&gw);
  const half2* u2 = reinterpret_cast<const half2*>(&uw);
  uint4 ow;
  half2* o2 = reinterpret_cast<half2*>(&ow);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 g = __half22float2(g2[k]);
    const float2 u = __half22float2(u2[k]);
    o2[k] = __floats2half2_rn(g.x / (1.f + expf(-g.x)) * u.x, g.y / (1.f + expf(-g.y)) * u.y);
  }
  return ow;
}

// Eight values a thread (16-byte loads of gate and up, one 16-byte store), a grid row per token: no division by the
// row length (inter % 8 == 0, every Llama size).
__global__ void siluMulVecKernel(const half* __restrict__ gateUp, half* __restrict__ act, int inter) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  const int v = blockIdx.x * blockDim.x + threadIdx.x;  // 8-value group of the row
  if (v >= inter / 8) return;
  const size_t tok = blockIdx.y;
  const uint4 gw = reinterpret_cast<const uint4*>(gateUp + tok * 2 * inter)[v];
  const uint4 uw = reinterpret_cast<const uint4*>(gateUp + tok * 2 * inter + inter)[v];
  reinterpret_cast<uint4*>(act + tok * inter)[v] = siluMul8(gw, uw);
}

// Gate|up interleaved by 8 (the AWQ gate_up weights' output order on the GPU): block b of a row is 8 gate values,
// then the 8 matching up values; one 16-byte load of each, one 16-byte store. Tokens stride over grid rows.
__global__ void siluMulInterleavedKernel(const half* __restrict__ gateUp, half* __restrict__ act, int inter,
                                         int numTokens) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  const int v = blockIdx.x * blockDim.x + threadIdx.x;  // 8-value group of the row
  if (v >= inter / 8) return;
  for (size_t tok = blockIdx.y; tok < static_cast<size_t>(numTokens); tok += gridDim.y) {
    const uint4* row = reinterpret_cast<const uint4*>(gateUp + tok * 2 * inter);
    const uint4 gw = row[2 * v], uw = row[2 * v + 1];  // two 16-byte loads
    reinterpret_cast<uint4*>(act + tok * inter)[v] = siluMul8(gw, uw);
  }
}

// dst row = a0 b0 a1 b1 ... from src row = [a | b] (blocks of unitsPerBlock 32-bit units).
__global__ void interleaveColumnBlocksKernel(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, size_t rows,
                                             int blocks, int unitsPerBlock) {
  const size_t rowUnits = 2 * static_cast<size_t>(blocks) * unitsPerBlock;
  const size_t n = rows * rowUnits;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t r = i / rowUnits, c = i % rowUnits;  // c: destination unit of the row
    const size_t b = c / (2 * unitsPerBlock), within = c % (2 * unitsPerBlock);
    const size_t part = within / unitsPerBlock, u = within % unitsPerBlock;  // part 0: a, 1: b
    dst[i] = src[r * rowUnits + part * blocks * unitsPerBlock + b * unitsPerBlock + u];
  }
}

// Two values per thread (inter is even for every Llama); silu in f32 with an accurate exp.
__global__ void siluMulKernel(const half* __restrict__ gateUp, half* __restrict__ act, int inter, size_t pairs) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  const int halfInter = inter / 2;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < pairs;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / halfInter;
    const size_t i = idx % halfInter;
    const half2* row = reinterpret_cast<const half2*>(gateUp + t * 2 * inter);
    const float2 g = __half22float2(row[i]);
    const float2 u = __half22float2(row[halfInter + i]);
    reinterpret_cast<half2*>(act)[idx] =
        __floats2half2_rn(g.x / (1.f + expf(-g.x)) * u.x, g.y / (1.f + expf(-g.y)) * u.y);
  }
}

__global__ void bf16ToHalfKernel(const uint16_t* in, half* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half(__uint_as_float(static_cast<uint32_t>(in[i]) << 16));
  }
}

__global__ void f32ToHalfKernel(const float* in, half* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half(in[i]);
  }
}

__global__ void halfToFloatKernel(const half* in, float* out, size_t n) {
  awqk::detail::pdl_wait();  // launched with PDL (launch.h)
  awqk::detail::pdl_launch();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __half2float(in[i]);
  }
}

// A plain launch (no PDL): it follows the upload of the step's inputs and the previous step's sampler.
__global__ void chainedTokensKernel(int32_t* tokenIds, const int32_t* sampled, int numTokens) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < numTokens && tokenIds[t] < 0) tokenIds[t] = sampled[-tokenIds[t] - 1];
}

__global__ void randomWordsKernel(uint32_t* out, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = mix32(mix32(static_cast<uint32_t>(i) ^ seed) + static_cast<uint32_t>(i >> 32) * 0x9e3779b9u);
  }
}

__global__ void randomHalfKernel(half* out, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint32_t bits = mix32(mix32(static_cast<uint32_t>(i) ^ seed) + static_cast<uint32_t>(i >> 32));
    out[i] = __float2half(lo + (hi - lo) * ((bits >> 8) * 0x1p-24f));
  }
}

__global__ void fillHalfKernel(half* out, size_t n, float value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half(value);
  }
}

unsigned gridFor(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks == 0 ? 1 : blocks) : 65536);
}

}  // namespace

void launchEmbedding(const int32_t* tokenIds, const half* embed, float* residual, int numTokens, int hidden,
                     cudaStream_t stream) {
  if (numTokens == 0) return;
  embeddingKernel<<<numTokens, 256, 0, stream>>>(tokenIds, embed, residual, hidden);
  checkLaunch("embedding", stream);
}

void launchAddRmsNorm(float* residual, const half* delta, const half* weight, half* out, const int32_t* rowIndex,
                      int numOut, int hidden, float eps, bool writeResidual, cudaStream_t stream) {
  if (numOut == 0) return;
  if (hidden % 4 == 0 && hidden / 4 <= 1024 * kMaxVecs) {
    const int nvec = hidden / 4;
    const int need = (nvec + 1023) / 1024;
    const int perThread = need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : 8;
    int threads = (nvec + perThread - 1) / perThread;
    threads = (threads + 31) / 32 * 32;
    auto launch = [&](auto kernel) {
      return awqk::pdl_launch_kernel(kernel, dim3(numOut), dim3(threads), 0, stream, residual, delta, weight, out,
                                     rowIndex, hidden, eps, writeResidual);
    };
    cudaCheck(perThread == 1   ? launch(addRmsNormVecKernel<1>)
              : perThread == 2 ? launch(addRmsNormVecKernel<2>)
              : perThread == 4 ? launch(addRmsNormVecKernel<4>)
                               : launch(addRmsNormVecKernel<8>),
              "add_rmsnorm launch");
    checkLaunch("add_rmsnorm", stream);
    return;
  }
  const size_t smem = static_cast<size_t>(hidden) * sizeof(float);
  if (smem > 48 * 1024) {
    cudaCheck(cudaFuncSetAttribute(addRmsNormKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
              "add_rmsnorm shared memory");
  }
  cudaCheck(awqk::pdl_launch_kernel(addRmsNormKernel, dim3(numOut), dim3(kNormThreads), smem, stream, residual, delta,
                                    weight, out, rowIndex, hidden, eps, writeResidual),
            "add_rmsnorm launch");
  checkLaunch("add_rmsnorm", stream);
}

void launchSiluMul(const half* gateUp, half* act, int numTokens, int inter, bool interleaved8, cudaStream_t stream) {
  const size_t pairs = static_cast<size_t>(numTokens) * inter / 2;
  if (pairs == 0) return;
  if (interleaved8) {
    if (inter % 8 != 0) throw std::invalid_argument("silu_mul: gate|up interleaved by 8 needs inter % 8 == 0");
    const int groups = inter / 8;
    cudaCheck(awqk::pdl_launch_kernel(siluMulInterleavedKernel, dim3((groups + 255) / 256, std::min(numTokens, 65535)),
                                      dim3(256), 0, stream, gateUp, act, inter, numTokens),
              "silu_mul launch");
    checkLaunch("silu_mul", stream);
    return;
  }
  if (inter % 8 == 0 && numTokens <= 65535) {
    const int groups = inter / 8;
    cudaCheck(awqk::pdl_launch_kernel(siluMulVecKernel, dim3((groups + 255) / 256, numTokens), dim3(256), 0, stream,
                                      gateUp, act, inter),
              "silu_mul launch");
    checkLaunch("silu_mul", stream);
    return;
  }
  cudaCheck(awqk::pdl_launch_kernel(siluMulKernel, dim3(gridFor(pairs, 256)), dim3(256), 0, stream, gateUp, act, inter,
                                    pairs),
            "silu_mul launch");
  checkLaunch("silu_mul", stream);
}

void launchInterleaveColumnBlocks(const uint32_t* src, uint32_t* dst, size_t rows, int blocks, int unitsPerBlock,
                                  cudaStream_t stream) {
  const size_t n = rows * 2 * blocks * unitsPerBlock;
  if (n == 0) return;
  interleaveColumnBlocksKernel<<<gridFor(n, 256), 256, 0, stream>>>(src, dst, rows, blocks, unitsPerBlock);
  checkLaunch("interleave_column_blocks", stream);
}

void launchBf16ToHalf(const uint16_t* in, half* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  bf16ToHalfKernel<<<gridFor(n, 256), 256, 0, stream>>>(in, out, n);
  checkLaunch("bf16_to_half", stream);
}

void launchF32ToHalf(const float* in, half* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  f32ToHalfKernel<<<gridFor(n, 256), 256, 0, stream>>>(in, out, n);
  checkLaunch("f32_to_half", stream);
}

void launchChainedTokens(int32_t* tokenIds, const int32_t* sampled, int numTokens, cudaStream_t stream) {
  if (numTokens <= 0) return;
  chainedTokensKernel<<<gridFor(static_cast<size_t>(numTokens), 256), 256, 0, stream>>>(tokenIds, sampled, numTokens);
  checkLaunch("chained_tokens", stream);
}

void launchHalfToFloat(const half* in, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  cudaCheck(awqk::pdl_launch_kernel(halfToFloatKernel, dim3(gridFor(n, 256)), dim3(256), 0, stream, in, out, n),
            "half_to_float launch");
  checkLaunch("half_to_float", stream);
}

void launchRandomWords(uint32_t* out, size_t n, uint32_t seed, cudaStream_t stream) {
  if (n == 0) return;
  randomWordsKernel<<<gridFor(n, 256), 256, 0, stream>>>(out, n, seed);
  checkLaunch("random_words", stream);
}

void launchRandomHalf(half* out, size_t n, uint32_t seed, float lo, float hi, cudaStream_t stream) {
  if (n == 0) return;
  randomHalfKernel<<<gridFor(n, 256), 256, 0, stream>>>(out, n, seed, lo, hi);
  checkLaunch("random_half", stream);
}

void launchFillHalf(half* out, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fillHalfKernel<<<gridFor(n, 256), 256, 0, stream>>>(out, n, value);
  checkLaunch("fill_half", stream);
}

}  // namespace awq
