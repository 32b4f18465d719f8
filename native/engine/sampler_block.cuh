// Block-wide building blocks of the sampler (one 1024-thread block per row): the counter-based RNG of
// src/backend/rng.ts, monotonic float keys for radix selection, and reductions / scans over the block.
#pragma once
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>

#include "hash32.cuh"

namespace awq {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// rng.ts: bits(seed, index) = mix(mix(seed ^ 0x243f6a88) ^ mix(index + 0x85a308d3)); u = (bits >> 8) * 2^-24.
__device__ __forceinline__ float uniform01(uint32_t seed, uint32_t index) {
  const uint32_t bits = mix32(mix32(seed ^ 0x243f6a88u) ^ mix32(index + 0x85a308d3u));
  return static_cast<float>(bits >> 8) * 0x1p-24f;
}

// Monotonic float <-> uint32 keys: a larger float has a larger key.
__device__ __forceinline__ uint32_t floatKey(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float keyFloat(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

struct Best {
  float value;
  int index;
};

// "a before b" in the order (value descending, index ascending); invalid entries carry index INT_MAX.
__device__ __forceinline__ bool before(const Best& a, const Best& b) {
  if (a.index == INT_MAX) return false;
  if (b.index == INT_MAX) return true;
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

__device__ Best blockBest(Best b, Best* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.value, offset), __shfl_xor_sync(0xffffffffu, b.index, offset)};
    if (before(other, b)) b = other;
  }
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = b;
  __syncthreads();
  b = lane < kWarps ? scratch[lane] : Best{0.f, INT_MAX};
  for (int offset = 16; offset > 0; offset >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.value, offset), __shfl_xor_sync(0xffffffffu, b.index, offset)};
    if (before(other, b)) b = other;
  }
  __syncthreads();
  return b;
}

// A block-wide reduction by `op` (sum, max, min): within each warp, then over the warp results; every thread
// gets the result. `identity` fills the lanes past the last warp.
template <typename T, typename Op>
__device__ T blockReduce(T v, T identity, T* scratch, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < kWarps ? scratch[lane] : identity;
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  __syncthreads();
  return v;
}

struct AddOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinOp {
  __device__ int operator()(int a, int b) const { return min(a, b); }
};

__device__ double blockSumDouble(double v, double* scratch) { return blockReduce(v, 0.0, scratch, AddOp{}); }
__device__ float blockMax(float v, float* scratch) { return blockReduce(v, -INFINITY, scratch, MaxOp{}); }
__device__ int blockMinInt(int v, int* scratch) { return blockReduce(v, INT_MAX, scratch, MinOp{}); }

// Exclusive prefix sum of one double per thread, in thread order.
__device__ double blockExclusiveScan(double v, double* scratch) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  double inclusive = v;
  for (int offset = 1; offset < 32; offset <<= 1) {
    const double up = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += up;
  }
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    double w = lane < kWarps ? scratch[lane] : 0.0;
    for (int offset = 1; offset < 32; offset <<= 1) {
      const double up = __shfl_up_sync(0xffffffffu, w, offset);
      if (lane >= offset) w += up;
    }
    if (lane < kWarps) scratch[lane] = w;  // inclusive warp totals
  }
  __syncthreads();
  const double warpBase = warp > 0 ? scratch[warp - 1] : 0.0;
  __syncthreads();
  return warpBase + inclusive - v;
}

struct Shared {
  union {
    unsigned countHist[256];
    double massHist[256];
  };
  Best best[kWarps];
  double sums[kWarps];
  float maxes[kWarps];
  int mins[kWarps];
  uint32_t prefix;
  int remainingCount;
  double remainingMass;
};

}  // namespace
}  // namespace awq
