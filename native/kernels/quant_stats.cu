// Input statistics of a linear (input-stats.ts) and the squared-error sum, on the device.
//
// input_stats_accumulate: one kernel converts x fp16 -> f32 into the workspace and adds sum_r |x[r][i]| per
// column (a (32, 8) block per 32 columns: 8 row lanes accumulate in double, then a fixed-order shared-memory
// sum, so the result is deterministic); then gram += X^T X by sgemm(transA, beta = 1), which writes the full
// symmetric matrix (C[i][j] and C[j][i] see the same products in the same order, so it is exactly symmetric).
// squared_error_sum: deterministic two-pass reduction in double (a fixed grid of per-block partial sums, then
// one block adds them in a fixed tree order); the partials live in a stream-ordered allocation.
#include "quant_kernels.h"

namespace awqk {
namespace {

constexpr int kColTile = 32;
constexpr int kRowLanes = 8;

__global__ void convert_abs_sum_kernel(const __half* __restrict__ x, int rows, int n, float* __restrict__ xf,
                                       double* __restrict__ absSum) {
  __shared__ double part[kRowLanes][kColTile];
  const int col = blockIdx.x * kColTile + threadIdx.x;
  double sum = 0.0;
  if (col < n) {
    for (int r = threadIdx.y; r < rows; r += kRowLanes) {
      const size_t i = (size_t)r * n + col;
      const float v = __half2float(x[i]);
      xf[i] = v;
      sum += fabs((double)v);
    }
  }
  part[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < n) {
    double total = 0.0;
    for (int l = 0; l < kRowLanes; ++l) total += part[l][threadIdx.x];
    absSum[col] += total;
  }
}

constexpr int kReduceBlocks = 512;
constexpr int kReduceThreads = 256;

template <int T>
__device__ __forceinline__ double block_sum(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int s = T / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  return sh[0];
}

__global__ void __launch_bounds__(kReduceThreads)
    sq_err_partial_kernel(const float* __restrict__ a, const float* __restrict__ b, size_t n,
                          double* __restrict__ partial) {
  __shared__ double sh[kReduceThreads];
  double acc = 0.0;
  for (size_t i = blockIdx.x * (size_t)kReduceThreads + threadIdx.x; i < n; i += (size_t)gridDim.x * kReduceThreads) {
    const double d = (double)a[i] - (double)b[i];
    acc += d * d;
  }
  const double total = block_sum<kReduceThreads>(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kReduceBlocks) sq_err_final_kernel(const double* __restrict__ partial, int count,
                                                                      double* __restrict__ out) {
  __shared__ double sh[kReduceBlocks];
  const double v = threadIdx.x < count ? partial[threadIdx.x] : 0.0;
  const double total = block_sum<kReduceBlocks>(v, sh);
  if (threadIdx.x == 0) *out = total;
}

}  // namespace

size_t input_stats_workspace_bytes(int rows, int n) {
  if (rows <= 0 || n <= 0) return 0;
  return (size_t)rows * n * sizeof(float);  // x as f32 (rows, n)
}

cudaError_t input_stats_accumulate(const __half* x, int rows, int n, double* absSum, float* gram, void* workspace,
                                   cudaStream_t stream) {
  if (rows < 0 || n <= 0 || !absSum || !gram) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (!x || !workspace) return cudaErrorInvalidValue;
  float* xf = static_cast<float*>(workspace);  // (rows, n)
  convert_abs_sum_kernel<<<(n + kColTile - 1) / kColTile, dim3(kColTile, kRowLanes), 0, stream>>>(x, rows, n, xf,
                                                                                                 absSum);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  // gram (n, n) += xf^T (n, rows) @ xf (rows, n)
  return sgemm(true, false, n, n, rows, 1.f, xf, n, 0, xf, n, 0, 1.f, gram, n, 0, 1, stream);
}

cudaError_t squared_error_sum(const float* a, const float* b, size_t n, double* out, cudaStream_t stream) {
  if (!out || (n > 0 && (!a || !b))) return cudaErrorInvalidValue;
  // The block count depends on n only, so the summation order (and the result) is the same on every run.
  const size_t want = (n + kReduceThreads * 8 - 1) / (kReduceThreads * 8);
  const int blocks = (int)(want < 1 ? 1 : (want > kReduceBlocks ? kReduceBlocks : want));
  double* partial = nullptr;  // (blocks)
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&partial), blocks * sizeof(double), stream);
  if (e != cudaSuccess) return e;
  sq_err_partial_kernel<<<blocks, kReduceThreads, 0, stream>>>(a, b, n, partial);
  sq_err_final_kernel<<<1, kReduceBlocks, 0, stream>>>(partial, blocks, out);
  e = cudaGetLastError();
  const cudaError_t f = cudaFreeAsync(partial, stream);
  return e != cudaSuccess ? e : f;
}

}  // namespace awqk
