// Weight math of the AWQ search on (in, out) f32 matrices: row scaling, group quantization (awq.ts
// groupQuantize), dequantization, column folding of scales, weight salience, per-column calibration errors,
// column mixing and the f16 transpose. Rounding decisions are taken in double exactly as the TypeScript
// reference takes them (JS numbers are doubles), so q / zeros / scales match the CPU bit for bit.
#include "quant_kernels.h"

namespace awqk {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(size_t n, int threads = kThreads) {
  const size_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 1048576 ? b : 1048576);  // grid-stride loops cover the rest
}

// f32 value -> nearest f16 (ties to even) -> back, as half.ts f32ToF16 on a number: the double is first
// rounded to f32, then to f16.
__device__ __forceinline__ float round_f16(double x) { return __half2float(__float2half_rn((float)x)); }

__device__ __forceinline__ double clamp_q(double v) { return fmin(fmax(v, 0.0), 15.0); }

__global__ void scale_rows_kernel(const float* w, const float* s, int in, int out, bool divide, float* y) {
  const size_t n = (size_t)in * out;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const int k = (int)(i / out);
    const double f = divide ? 1.0 / (double)s[k] : (double)s[k];
    y[i] = (float)((double)w[i] * f);
  }
}

// One thread per (group, column): min/max of the (clamped) group column, scale and zero, then q.
__global__ void group_quantize_kernel(const float* w, int in, int out, int g, const float* clip, uint8_t* q,
                                      float* scales, uint8_t* zeros) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int gi = blockIdx.y;
  if (n >= out) return;
  const size_t gIdx = (size_t)gi * out + n;
  const bool clipped = clip != nullptr;
  const double bound = clipped ? (double)clip[gIdx] : 0.0;
  const size_t base = (size_t)gi * g * out + n;
  double mn = INFINITY, mx = -INFINITY;
  for (int a = 0; a < g; ++a) {
    double v = w[base + (size_t)a * out];
    if (clipped) v = fmin(fmax(v, -bound), bound);
    mn = fmin(mn, v);
    mx = fmax(mx, v);
  }
  const double scale = round_f16(fmax(mx - mn, 1e-5) / 15.0);
  const double zero = clamp_q(rint(-mn / scale));
  scales[gIdx] = (float)scale;
  zeros[gIdx] = (uint8_t)zero;
  for (int a = 0; a < g; ++a) {
    double v = w[base + (size_t)a * out];
    if (clipped) v = fmin(fmax(v, -bound), bound);
    q[base + (size_t)a * out] = (uint8_t)clamp_q(rint(v / scale) + zero);
  }
}

__global__ void dequantize_kernel(const uint8_t* q, const float* scales, const uint8_t* zeros, int in, int out,
                                  int g, float* w) {
  const size_t n = (size_t)in * out;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t k = i / out, col = i - k * out;
    const size_t gIdx = (k / g) * out + col;
    w[i] = (float)((int)q[i] - (int)zeros[gIdx]) * scales[gIdx];  // exact: small int times an f16 value
  }
}

__global__ void divide_columns_kernel(float* scales, const float* s, int groups, int out, int start, int width) {
  const size_t n = (size_t)groups * width;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t gi = i / width, j = i - gi * width;
    float* p = scales + gi * out + start + j;
    *p = round_f16((double)*p / (double)s[j]);
  }
}

// inv[gi][n] = 1 / (max_{k in group gi} |w[k][n]| + 1e-6), in double.
__global__ void salience_inv_kernel(const float* w, int out, int g, double* inv) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int gi = blockIdx.y;
  if (n >= out) return;
  const size_t base = (size_t)gi * g * out + n;
  double mx = 0.0;
  for (int a = 0; a < g; ++a) mx = fmax(mx, fabs((double)w[base + (size_t)a * out]));
  inv[(size_t)gi * out + n] = 1.0 / (mx + 1e-6);
}

// salience[k] = (sum_n |w[k][n]| * inv[k/g][n]) / out, the sum taken in n order like the reference: a block of
// (32, 8) threads owns 32 rows; each 32-column slice is staged through shared memory (coalesced reads), then
// thread k of the first warp adds its row's 32 terms in column order.
__global__ void salience_rows_kernel(const float* w, int in, int out, int g, const double* inv, double* salience) {
  __shared__ double tile[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int k0 = blockIdx.x * 32;
  double sum = 0.0;
  for (int n0 = 0; n0 < out; n0 += 32) {
    for (int r = ty; r < 32; r += 8) {
      const int k = k0 + r, n = n0 + tx;
      double t = 0.0;
      if (k < in && n < out) t = fabs((double)w[(size_t)k * out + n]) * inv[(size_t)(k / g) * out + n];
      tile[r][tx] = t;
    }
    __syncthreads();
    if (ty == 0) {
      const int cols = out - n0 < 32 ? out - n0 : 32;
      for (int c = 0; c < cols; ++c) sum += tile[tx][c];
    }
    __syncthreads();
  }
  if (ty == 0 && k0 + tx < in) salience[k0 + tx] = sum / (double)out;
}

// ws_scaled[k][n] = (w - deq)[k][n] / s[k] (f32): G (d / s) then divided by s again gives Gs d.
__global__ void scaled_delta_kernel(const float* w, const float* deq, const float* s, int in, int out,
                                    float* dScaled) {
  const size_t n = (size_t)in * out;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float d = w[i] - deq[i];
    dScaled[i] = s ? (float)((double)d / (double)s[i / out]) : d;
  }
}

// err[n] = sum_k d[k][n] * gd[k][n] / s[k] (double, k in order), one thread per column.
__global__ void column_error_sum_kernel(const float* w, const float* deq, const float* s, const float* gd, int in,
                                        int out, double* err) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= out) return;
  double acc = 0.0;
  for (int k = 0; k < in; ++k) {
    const size_t i = (size_t)k * out + n;
    const double d = (double)(w[i] - deq[i]);
    const double p = s ? (double)gd[i] / (double)s[k] : (double)gd[i];
    acc += d * p;
  }
  err[n] = acc;
}

__device__ __forceinline__ bool take_column(int n, const double* errBase, const double* errCand, int keepStart,
                                            int keepEnd) {
  return !(n >= keepStart && n < keepEnd) && errCand[n] < errBase[n];
}

// One thread per (k, n): q copy; row k == group start also copies the group's scale/zero; row 0 counts.
__global__ void mix_columns_kernel(uint8_t* baseQ, float* baseScales, uint8_t* baseZeros, const uint8_t* candQ,
                                   const float* candScales, const uint8_t* candZeros, const double* errBase,
                                   const double* errCand, int in, int out, int g, int keepStart, int keepEnd,
                                   int* taken) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int k = blockIdx.y;
  if (n >= out || !take_column(n, errBase, errCand, keepStart, keepEnd)) return;
  const size_t i = (size_t)k * out + n;
  baseQ[i] = candQ[i];
  if (k % g == 0) {
    const size_t gIdx = (size_t)(k / g) * out + n;
    baseScales[gIdx] = candScales[gIdx];
    baseZeros[gIdx] = candZeros[gIdx];
  }
  if (k == 0) atomicAdd(taken, 1);
}

// wt[n][k] = f16(w[k][n]) through a 32x32 shared tile.
__global__ void transpose_half_kernel(const float* w, int in, int out, __half* wt) {
  __shared__ float tile[32][33];
  const int n0 = blockIdx.x * 32, k0 = blockIdx.y * 32;
  for (int r = threadIdx.y; r < 32; r += 8) {
    const int k = k0 + r, n = n0 + threadIdx.x;
    if (k < in && n < out) tile[r][threadIdx.x] = w[(size_t)k * out + n];
  }
  __syncthreads();
  for (int r = threadIdx.y; r < 32; r += 8) {
    const int n = n0 + r, k = k0 + threadIdx.x;
    if (k < in && n < out) wt[(size_t)n * in + k] = __float2half_rn(tile[threadIdx.x][r]);
  }
}

bool weight_shape_ok(int in, int out, int g) { return in > 0 && out > 0 && g > 0 && in % g == 0; }

}  // namespace

cudaError_t scale_rows(const float* w, const float* s, int in, int out, bool divide, float* y,
                       cudaStream_t stream) {
  if (in < 0 || out < 0 || !w || !s || !y) return cudaErrorInvalidValue;
  const size_t n = (size_t)in * out;
  if (n == 0) return cudaSuccess;
  scale_rows_kernel<<<blocks_for(n), kThreads, 0, stream>>>(w, s, in, out, divide, y);
  return cudaGetLastError();
}

cudaError_t group_quantize(const float* w, int in, int out, int g, const float* clip, uint8_t* q, float* scales,
                           uint8_t* zeros, cudaStream_t stream) {
  if (!weight_shape_ok(in, out, g) || !w || !q || !scales || !zeros) return cudaErrorInvalidValue;
  const int groups = in / g;
  if (groups > 65535) return cudaErrorInvalidValue;
  const dim3 grid((out + kThreads - 1) / kThreads, groups);
  group_quantize_kernel<<<grid, kThreads, 0, stream>>>(w, in, out, g, clip, q, scales, zeros);
  return cudaGetLastError();
}

cudaError_t dequantize_groups(const uint8_t* q, const float* scales, const uint8_t* zeros, int in, int out, int g,
                              float* w, cudaStream_t stream) {
  if (!weight_shape_ok(in, out, g) || !q || !scales || !zeros || !w) return cudaErrorInvalidValue;
  const size_t n = (size_t)in * out;
  dequantize_kernel<<<blocks_for(n), kThreads, 0, stream>>>(q, scales, zeros, in, out, g, w);
  return cudaGetLastError();
}

cudaError_t divide_quantized_columns(float* scales, const float* s, int groups, int out, int start, int width,
                                     cudaStream_t stream) {
  if (groups < 0 || out < 0 || start < 0 || width < 0 || start + width > out) return cudaErrorInvalidValue;
  const size_t n = (size_t)groups * width;
  if (n == 0) return cudaSuccess;
  if (!scales || !s) return cudaErrorInvalidValue;
  divide_columns_kernel<<<blocks_for(n), kThreads, 0, stream>>>(scales, s, groups, out, start, width);
  return cudaGetLastError();
}

// The header has no workspace here: the per-(group, column) inverse maxima (groups * out doubles) are allocated
// stream-ordered (cudaMallocAsync) and freed after the second kernel. Divides the sum by out (as the reference
// does), which is bit-identical to it, unlike a multiplication by 1 / out.
cudaError_t weight_salience(const float* w, int in, int out, int g, double* salience, cudaStream_t stream) {
  if (!weight_shape_ok(in, out, g) || !w || !salience) return cudaErrorInvalidValue;
  const int groups = in / g;
  if (groups > 65535) return cudaErrorInvalidValue;
  double* inv = nullptr;  // (groups, out)
  cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&inv), (size_t)groups * out * sizeof(double), stream);
  if (e != cudaSuccess) return e;
  salience_inv_kernel<<<dim3((out + kThreads - 1) / kThreads, groups), kThreads, 0, stream>>>(w, out, g, inv);
  salience_rows_kernel<<<(in + 31) / 32, dim3(32, 8), 0, stream>>>(w, in, out, g, inv, salience);
  e = cudaGetLastError();
  const cudaError_t f = cudaFreeAsync(inv, stream);
  return e != cudaSuccess ? e : f;
}

size_t column_errors_workspace_bytes(int in, int out) {
  if (in <= 0 || out <= 0) return 0;
  return 2 * (size_t)in * out * sizeof(float);  // d / s and G (d / s), both (in, out)
}

cudaError_t column_errors(const float* w, const float* deq, int in, int out, const float* gram,
                          const float* rowScale, double* err, void* workspace, cudaStream_t stream) {
  if (in <= 0 || out <= 0 || !w || !deq || !gram || !err || !workspace) return cudaErrorInvalidValue;
  const size_t n = (size_t)in * out;
  float* dScaled = static_cast<float*>(workspace);  // (in, out)
  float* gd = dScaled + n;                          // (in, out)
  // Gs d = diag(1/s) G diag(1/s) d: the same quadratic form as building gram / (s s^T), without the (in, in)
  // scratch; only the f32 rounding points differ.
  scaled_delta_kernel<<<blocks_for(n), kThreads, 0, stream>>>(w, deq, rowScale, in, out, dScaled);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  e = sgemm(false, false, in, out, in, 1.f, gram, in, 0, dScaled, out, 0, 0.f, gd, out, 0, 1, stream);
  if (e != cudaSuccess) return e;
  column_error_sum_kernel<<<(out + kThreads - 1) / kThreads, kThreads, 0, stream>>>(w, deq, rowScale, gd, in, out,
                                                                                     err);
  return cudaGetLastError();
}

cudaError_t mix_columns(uint8_t* baseQ, float* baseScales, uint8_t* baseZeros, const uint8_t* candQ,
                        const float* candScales, const uint8_t* candZeros, const double* errBase,
                        const double* errCand, int in, int out, int g, int keepStart, int keepEnd, int* taken,
                        cudaStream_t stream) {
  if (!weight_shape_ok(in, out, g) || in > 65535) return cudaErrorInvalidValue;
  if (!baseQ || !baseScales || !baseZeros || !candQ || !candScales || !candZeros || !errBase || !errCand || !taken)
    return cudaErrorInvalidValue;
  cudaError_t e = cudaMemsetAsync(taken, 0, sizeof(int), stream);
  if (e != cudaSuccess) return e;
  const dim3 grid((out + kThreads - 1) / kThreads, in);
  mix_columns_kernel<<<grid, kThreads, 0, stream>>>(baseQ, baseScales, baseZeros, candQ, candScales, candZeros,
                                                    errBase, errCand, in, out, g, keepStart, keepEnd, taken);
  return cudaGetLastError();
}

cudaError_t transpose_to_half(const float* w, int in, int out, __half* wt, cudaStream_t stream) {
  if (in < 0 || out < 0 || !w || !wt || (in + 31) / 32 > 65535) return cudaErrorInvalidValue;
  if (in == 0 || out == 0) return cudaSuccess;
  const dim3 grid((out + 31) / 32, (in + 31) / 32);
  transpose_half_kernel<<<grid, dim3(32, 8), 0, stream>>>(w, in, out, wt);
  return cudaGetLastError();
}

}  // namespace awqk
