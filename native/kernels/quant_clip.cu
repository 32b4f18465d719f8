// clip_search: AWQ's clipping-range search (clip-search.ts searchClip) on the device.
//
// Design: a block owns one group and kCols output columns, one thread per column. The group's scaled Gram block
// Gs_g (g, g) is staged once in dynamic shared memory, stored transposed and padded to gp = ceil(g / 8) * 8
// columns (GsT[b][a] = Gs_g[a][b], zero for a >= g) so that 8 rows of Gs_g * d come from two float4 broadcast
// loads per b. Each thread then walks the 21 shrinks: it rounds its group column with that bound (group_quantize's
// double-precision rule), keeps d = w - dequant in shared memory (d[b][thread], conflict-free), and evaluates
// err = sum_a d_a (Gs_g d)_a with (Gs_g d)_a an f32 FMA chain over b and the outer sum in double (as the CPU
// reference: f32 matmul, double dot). The first bound reaching the smallest err wins (strict <).
// Shared memory: 4 * (g * gp + g * kCols) bytes (96 KB at g = 128): above the 48 KB default, so the launcher
// raises cudaFuncAttributeMaxDynamicSharedMemorySize (needs sm_80+: 163 KB on A100, 227 KB on H100).
#include "quant_kernels.h"

namespace awqk {
namespace {

constexpr int kCols = 64;  // threads (output columns) per block
constexpr int kShrinks = 21;
constexpr int kMaxGroup = 128;

__device__ __forceinline__ double clamp_q(double v) { return fmin(fmax(v, 0.0), 15.0); }

__global__ void __launch_bounds__(kCols)
    clip_search_kernel(const float* __restrict__ w, int in, int out, int g, const float* __restrict__ gram,
                       const float* __restrict__ rowScale, int noClipStart, int noClipEnd,
                       float* __restrict__ bestBound) {
  extern __shared__ __align__(16) float smem[];
  const int gp = (g + 7) & ~7;
  float* gsT = smem;               // (g, gp): gsT[b * gp + a] = Gs_g[a][b]
  float* dS = smem + (size_t)g * gp;  // (g, kCols): d[b][thread]
  const int gi = blockIdx.y;
  const int k0 = gi * g;

  for (int idx = threadIdx.x; idx < g * gp; idx += blockDim.x) {
    const int b = idx / gp, a = idx - b * gp;
    float v = 0.f;
    if (a < g) {
      const double sa = rowScale ? (double)rowScale[k0 + a] : 1.0;
      const double sb = rowScale ? (double)rowScale[k0 + b] : 1.0;
      v = (float)((double)gram[(size_t)(k0 + a) * in + k0 + b] / (sa * sb));
    }
    gsT[idx] = v;
  }
  __syncthreads();

  const int n = blockIdx.x * kCols + threadIdx.x;
  if (n >= out) return;  // no barrier below
  const float* col = w + (size_t)k0 * out + n;  // col[a * out] = w[k0 + a][n]
  float* d = dS + threadIdx.x;                  // d[b * kCols]

  float maxAbs = 0.f;
  for (int a = 0; a < g; ++a) maxAbs = fmaxf(maxAbs, fabsf(col[(size_t)a * out]));
  const size_t gIdx = (size_t)gi * out + n;
  if (n >= noClipStart && n < noClipEnd) {
    bestBound[gIdx] = maxAbs;
    return;
  }

  double bestErr = INFINITY;
  float best = 0.f;
  for (int si = 0; si < kShrinks; ++si) {
    const float bound = (float)((double)maxAbs * (1.0 - si * 0.025));
    const double bd = bound;
    double mn = INFINITY, mx = -INFINITY;
    for (int a = 0; a < g; ++a) {
      const double v = fmin(fmax((double)col[(size_t)a * out], -bd), bd);
      mn = fmin(mn, v);
      mx = fmax(mx, v);
    }
    const double scale = __half2float(__float2half_rn((float)(fmax(mx - mn, 1e-5) / 15.0)));
    const double zero = clamp_q(rint(-mn / scale));
    const float scaleF = (float)scale;
    for (int a = 0; a < g; ++a) {
      const float wv = col[(size_t)a * out];
      const double v = fmin(fmax((double)wv, -bd), bd);
      const double q = clamp_q(rint(v / scale) + zero);
      const float deq = (float)(q - zero) * scaleF;  // exact, as dequantize_groups
      d[a * kCols] = wv - deq;
    }
    // Only this thread reads its own d column: no barrier needed.
    double err = 0.0;
    for (int a0 = 0; a0 < g; a0 += 8) {
      float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      for (int b = 0; b < g; ++b) {
        const float db = d[b * kCols];
        const float4 lo = *reinterpret_cast<const float4*>(gsT + (size_t)b * gp + a0);
        const float4 hi = *reinterpret_cast<const float4*>(gsT + (size_t)b * gp + a0 + 4);
        acc[0] = fmaf(lo.x, db, acc[0]);
        acc[1] = fmaf(lo.y, db, acc[1]);
        acc[2] = fmaf(lo.z, db, acc[2]);
        acc[3] = fmaf(lo.w, db, acc[3]);
        acc[4] = fmaf(hi.x, db, acc[4]);
        acc[5] = fmaf(hi.y, db, acc[5]);
        acc[6] = fmaf(hi.z, db, acc[6]);
        acc[7] = fmaf(hi.w, db, acc[7]);
      }
      const int rows = g - a0 < 8 ? g - a0 : 8;
#pragma unroll
      for (int r = 0; r < 8; ++r)
        if (r < rows) err += (double)d[(a0 + r) * kCols] * (double)acc[r];
    }
    if (err < bestErr) {
      bestErr = err;
      best = bound;
    }
  }
  bestBound[gIdx] = best;
}

size_t clip_smem_bytes(int g) { return sizeof(float) * ((size_t)g * ((g + 7) & ~7) + (size_t)g * kCols); }

}  // namespace

cudaError_t clip_search(const float* w, int in, int out, int g, const float* gram, const float* rowScale,
                        int noClipStart, int noClipEnd, float* bestBound, cudaStream_t stream) {
  if (in <= 0 || out <= 0 || g <= 0 || g > kMaxGroup || in % g != 0) return cudaErrorInvalidValue;
  if (!w || !gram || !bestBound) return cudaErrorInvalidValue;
  const int groups = in / g;
  if (groups > 65535) return cudaErrorInvalidValue;
  const size_t smem = clip_smem_bytes(g);
  // Raised once to the largest size this launcher can ask for (g = 128); cheap, but done every call so that
  // every device the process uses gets it.
  cudaError_t e = cudaFuncSetAttribute(clip_search_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)clip_smem_bytes(kMaxGroup));
  if (e != cudaSuccess) return e;
  const dim3 grid((out + kCols - 1) / kCols, groups);
  clip_search_kernel<<<grid, kCols, smem, stream>>>(w, in, out, g, gram, rowScale, noClipStart, noClipEnd,
                                                    bestBound);
  return cudaGetLastError();
}

}  // namespace awqk
