// The engine's element-wise kernels; layouts are in ops.h.
#include <cuda_bf16.h>

#include "cuda_check.h"
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
__global__ void addRmsNormKernel(float* residual, const half* delta, const half* weight, half* out,
                                 const int32_t* rowIndex, int hidden, float eps, bool writeResidual) {
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

// Block per token. Angles as the CPU reference computes them: inv_freq rounded to f32, angle = f32(pos * inv),
// cos/sin in double then rounded; the rotation in f32.
__global__ void ropeKvWriteKernel(const half* qkv, const int32_t* positions, const int32_t* slotMapping,
                                  const int32_t* tokenSeqLen, half* qOut, half* kCache, half* vCache, int numHeads,
                                  int numKvHeads, int headDim, RopeParams rope) {
  extern __shared__ float cosSin[];  // (headDim): cos then sin
  const int t = blockIdx.x;
  const int halfDim = headDim / 2;
  double base = rope.theta;
  if (rope.scaling == 2) {
    const int seqLen = tokenSeqLen[t];
    if (seqLen > rope.originalMaxPositions) {
      const double d = headDim;
      base = rope.theta * pow(static_cast<double>(rope.factor) * seqLen / rope.originalMaxPositions -
                                  (static_cast<double>(rope.factor) - 1.0),
                              d / (d - 2.0));
    }
  }
  float pos = static_cast<float>(positions[t]);
  if (rope.scaling == 1) pos = static_cast<float>(static_cast<double>(positions[t]) / rope.factor);
  for (int i = threadIdx.x; i < halfDim; i += blockDim.x) {
    const float inv = static_cast<float>(1.0 / pow(base, (2.0 * i) / headDim));
    const float angle = pos * inv;
    cosSin[i] = static_cast<float>(cos(static_cast<double>(angle)));
    cosSin[halfDim + i] = static_cast<float>(sin(static_cast<double>(angle)));
  }
  __syncthreads();
  const int width = (numHeads + 2 * numKvHeads) * headDim;
  const half* row = qkv + static_cast<size_t>(t) * width;
  const int slot = slotMapping[t];
  const size_t cacheRow = static_cast<size_t>(slot) * numKvHeads * headDim;
  // Rotations: (numHeads + numKvHeads) heads x halfDim pairs.
  const int pairs = (numHeads + numKvHeads) * halfDim;
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int head = p / halfDim;
    const int i = p % halfDim;
    const half* x = row + head * headDim;
    const float x1 = __half2float(x[i]);
    const float x2 = __half2float(x[i + halfDim]);
    const float c = cosSin[i];
    const float s = cosSin[halfDim + i];
    const half y1 = __float2half(x1 * c - x2 * s);
    const half y2 = __float2half(x2 * c + x1 * s);
    if (head < numHeads) {
      half* q = qOut + (static_cast<size_t>(t) * numHeads + head) * headDim;
      q[i] = y1;
      q[i + halfDim] = y2;
    } else if (slot >= 0) {
      half* k = kCache + cacheRow + static_cast<size_t>(head - numHeads) * headDim;
      k[i] = y1;
      k[i + halfDim] = y2;
    }
  }
  if (slot >= 0) {
    const half* v = row + (numHeads + numKvHeads) * headDim;
    for (int i = threadIdx.x; i < numKvHeads * headDim; i += blockDim.x) vCache[cacheRow + i] = v[i];
  }
}

__global__ void siluMulKernel(const half* gateUp, half* act, int inter, size_t total) {
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = idx / inter;
    const size_t i = idx % inter;
    const float g = __half2float(gateUp[t * 2 * inter + i]);
    const float u = __half2float(gateUp[t * 2 * inter + inter + i]);
    act[idx] = __float2half(g / (1.f + __expf(-g)) * u);
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
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __half2float(in[i]);
  }
}

__device__ uint32_t hashWord(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

__global__ void randomWordsKernel(uint32_t* out, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = hashWord(hashWord(static_cast<uint32_t>(i) ^ seed) + static_cast<uint32_t>(i >> 32) * 0x9e3779b9u);
  }
}

__global__ void randomHalfKernel(half* out, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint32_t bits = hashWord(hashWord(static_cast<uint32_t>(i) ^ seed) + static_cast<uint32_t>(i >> 32));
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
  const size_t smem = static_cast<size_t>(hidden) * sizeof(float);
  if (smem > 48 * 1024) {
    cudaCheck(cudaFuncSetAttribute(addRmsNormKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
              "add_rmsnorm shared memory");
  }
  addRmsNormKernel<<<numOut, kNormThreads, smem, stream>>>(residual, delta, weight, out, rowIndex, hidden, eps,
                                                           writeResidual);
  checkLaunch("add_rmsnorm", stream);
}

void launchRopeKvWrite(const half* qkv, const int32_t* positions, const int32_t* slotMapping,
                       const int32_t* tokenSeqLen, half* qOut, half* kCache, half* vCache, int numTokens, int numHeads,
                       int numKvHeads, int headDim, const RopeParams& rope, cudaStream_t stream) {
  if (numTokens == 0) return;
  ropeKvWriteKernel<<<numTokens, 256, headDim * sizeof(float), stream>>>(
      qkv, positions, slotMapping, tokenSeqLen, qOut, kCache, vCache, numHeads, numKvHeads, headDim, rope);
  checkLaunch("rope_kv_write", stream);
}

void launchSiluMul(const half* gateUp, half* act, int numTokens, int inter, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(numTokens) * inter;
  if (total == 0) return;
  siluMulKernel<<<gridFor(total, 256), 256, 0, stream>>>(gateUp, act, inter, total);
  checkLaunch("silu_mul", stream);
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

void launchHalfToFloat(const half* in, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  halfToFloatKernel<<<gridFor(n, 256), 256, 0, stream>>>(in, out, n);
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
