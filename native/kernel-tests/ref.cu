// Naive reference kernels and test utilities (clarity over speed; fp32 accumulation).
#include <algorithm>
#include <cmath>

#include "harness.h"

namespace {

__device__ __forceinline__ uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_i32_kernel(int32_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = static_cast<int32_t>(mix(seed * 0x100000001b3ull + i));
}

__global__ void fill_half_kernel(__half* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float u = (mix(seed * 0x100000001b3ull + i) >> 40) * (1.0f / 16777216.0f);
    p[i] = __float2half(lo + (hi - lo) * u);
  }
}

__global__ void compare_kernel(const __half* y, const float* ref, size_t n, unsigned* maxErr,
                               unsigned* maxRef, unsigned* nan) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float a = __half2float(y[i]), r = ref[i];
    if (!isfinite(a) || !isfinite(r)) atomicOr(nan, 1u);
    atomicMax(maxErr, __float_as_uint(fabsf(a - r)));
    atomicMax(maxRef, __float_as_uint(fabsf(r)));
  }
}

__global__ void ref_awq_kernel(const __half* x, int m, const int32_t* qw, const int32_t* qz,
                               const __half* sc, int in, int out, int group, float* y) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int i = blockIdx.y;
  if (n >= out) return;
  const int shift = 4 * ((n & 1) * 4 + ((n & 7) >> 1));  // AutoAWQ order [0,2,4,6,1,3,5,7]
  float acc = 0.f;
  for (int k = 0; k < in; ++k) {
    const int gi = k / group;
    const int q = (static_cast<uint32_t>(qw[(size_t)k * (out / 8) + n / 8]) >> shift) & 0xf;
    const int z = (static_cast<uint32_t>(qz[(size_t)gi * (out / 8) + n / 8]) >> shift) & 0xf;
    const float w = (q - z) * __half2float(sc[(size_t)gi * out + n]);
    acc += __half2float(x[(size_t)i * in + k]) * w;
  }
  y[(size_t)i * out + n] = acc;
}

__global__ void ref_dense_kernel(const __half* x, int m, const __half* w, int in, int out, float* y) {
  const int i = blockIdx.y;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (warp >= out) return;
  float acc = 0.f;
  for (int k = lane; k < in; k += 32)
    acc += __half2float(x[(size_t)i * in + k]) * __half2float(w[(size_t)warp * in + k]);
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[(size_t)i * out + warp] = acc;
}

// One block per (token, head): logits into shared memory, then softmax and P.V.
__global__ void ref_attention_kernel(const __half* q, const __half* kc, const __half* vc,
                                     const int32_t* bt, int maxB, const int32_t* qStarts,
                                     const int32_t* ctxLens, int numSeqs, int numHeads,
                                     int numKvHeads, int D, float scale, float* out) {
  extern __shared__ float lg[];
  __shared__ float stat[2];
  const int tok = blockIdx.x, head = blockIdx.y;
  int seq = 0;
  while (seq + 1 < numSeqs && qStarts[seq + 1] <= tok) ++seq;
  const int qLen = qStarts[seq + 1] - qStarts[seq];
  const int j = tok - qStarts[seq];
  const int ctx = ctxLens[seq];
  const int pos = ctx - qLen + j;
  const int kvh = head / (numHeads / numKvHeads);
  const __half* qv = q + ((size_t)tok * numHeads + head) * D;
  for (int key = threadIdx.x; key <= pos; key += blockDim.x) {
    const int blk = bt[(size_t)seq * maxB + key / 16];
    const __half* kv = kc + ((size_t)(blk * 16 + key % 16) * numKvHeads + kvh) * D;
    float dot = 0.f;
    for (int d = 0; d < D; ++d) dot += __half2float(qv[d]) * __half2float(kv[d]);
    lg[key] = dot * scale;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float mx = -INFINITY, sum = 0.f;
    for (int key = 0; key <= pos; ++key) mx = fmaxf(mx, lg[key]);
    for (int key = 0; key <= pos; ++key) sum += expf(lg[key] - mx);
    stat[0] = mx;
    stat[1] = sum;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.f;
    for (int key = 0; key <= pos; ++key) {
      const int blk = bt[(size_t)seq * maxB + key / 16];
      const __half* vv = vc + ((size_t)(blk * 16 + key % 16) * numKvHeads + kvh) * D;
      acc += expf(lg[key] - stat[0]) * __half2float(vv[d]);
    }
    out[((size_t)tok * numHeads + head) * D + d] = acc / stat[1];
  }
}

}  // namespace

void fill_i32(int32_t* p, size_t n, uint64_t seed) {
  fill_i32_kernel<<<1024, 256>>>(p, n, seed);
  CK(cudaGetLastError());
}
void fill_half(__half* p, size_t n, uint64_t seed, float lo, float hi) {
  fill_half_kernel<<<1024, 256>>>(p, n, seed, lo, hi);
  CK(cudaGetLastError());
}

ErrStat compare(const __half* y, const float* ref, size_t rows, size_t cols) {
  unsigned* d;
  CK(cudaMalloc(&d, 3 * sizeof(unsigned)));
  CK(cudaMemset(d, 0, 3 * sizeof(unsigned)));
  compare_kernel<<<1024, 256>>>(y, ref, rows * cols, d, d + 1, d + 2);
  unsigned h[3];
  CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
  CK(cudaFree(d));
  float e, r;
  std::memcpy(&e, &h[0], 4);
  std::memcpy(&r, &h[1], 4);
  return ErrStat{e, r, h[2] != 0};
}

void ref_awq_linear(const __half* x, int m, const int32_t* qweight, const int32_t* qzeros,
                    const __half* scales, int in, int out, int group, float* y) {
  dim3 grid((out + 127) / 128, m);
  ref_awq_kernel<<<grid, 128>>>(x, m, qweight, qzeros, scales, in, out, group, y);
  CK(cudaGetLastError());
}

void ref_dense_linear(const __half* x, int m, const __half* w, int in, int out, float* y) {
  dim3 grid((out + 7) / 8, m);
  ref_dense_kernel<<<grid, 256>>>(x, m, w, in, out, y);
  CK(cudaGetLastError());
}

void ref_attention(const __half* q, const __half* kc, const __half* vc, const int32_t* bt,
                   int maxBlocksPerSeq, const int32_t* queryStarts, const int32_t* contextLens,
                   int numSeqs, int numTokens, int numHeads, int numKvHeads, int headDim,
                   float scale, int maxContext, float* out) {
  const size_t smem = (size_t)maxContext * sizeof(float);
  CK(cudaFuncSetAttribute(ref_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  dim3 grid(numTokens, numHeads);
  ref_attention_kernel<<<grid, 128, smem>>>(q, kc, vc, bt, maxBlocksPerSeq, queryStarts, contextLens,
                                            numSeqs, numHeads, numKvHeads, headDim, scale, out);
  CK(cudaGetLastError());
}
