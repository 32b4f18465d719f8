// GPTQ rounding on the device (quant_kernels.h gptq_quantize; reference: src/quant/gptq-round.ts).
//
// 1. H = gram / (s s^T) + damp * mean(diag) * I (dead channels get a unit diagonal), built with its channels in
//    REVERSE order: A = J H J (J the reversal permutation).
// 2. U, the upper Cholesky factor of H^-1, without forming H^-1: if A = M M^T (M lower), then H = R R^T with
//    R = J M J upper, so H^-1 = R^-T R^-1 and, by uniqueness of the Cholesky factor, U = R^-1 = J M^-1 J.
//    M: blocked right-looking Cholesky in panels of kNB channels (the diagonal block factored and inverted in one
//    CTA, the panel below = A_ip * L_pp^-T by sgemm, the lower part of the trailing matrix updated by sgemm).
//    X = M^-1: recursive block inversion [M11 0; M21 M22]^-1 = [X11 0; -X22 M21 X11  X22], leaves = the panels'
//    inverted diagonal blocks, products by sgemm. U[i][j] = X[n-1-i][n-1-j]. About 0.9 n^3 flops in all.
// 3. GPTQ's lazy-batch rounding with one group per block: a kernel with one thread per output column rounds the
//    group's g rows in order (params from the current rows, errors pushed down the block with U's diagonal
//    block), then one sgemm pushes the block's errors E (g, out) onto every later row: W[later] -= U^T E.
//
// Everything is enqueued on `stream` and lives in the caller's workspace. A non-positive pivot sets *status and
// every later kernel of ours returns at once (sgemm calls still run on the stale buffers: harmless).
#include <cmath>
#include <cstdint>

#include "gptq_internal.h"
#include "quant_kernels.h"

namespace awqk {
namespace {

constexpr int kNB = 64;           // Cholesky panel width (channels)
constexpr int kDiagThreads = 256;  // 16 x 16
constexpr int kRoundThreads = 64;  // columns per rounding CTA: spreads out = 15360 over ~240 CTAs
constexpr int kMaxGroup = 128;
constexpr int kSub = 32;         // rows of a group held in registers at a time
constexpr double kDamp = 0.01;  // gptq-round.ts GPTQ_DAMP

struct Layout {
  size_t a;      // (in, in) f32: A = J H J, then M (lower) and scratch (upper), then U
  size_t x;      // (in, in) f32: X = M^-1
  size_t w;      // (in, out) f32: the weights as updated by the pushed errors
  size_t e;      // (kMaxGroup, out) f32: one block's scaled errors
  size_t t;      // (in, kNB) f32: the current Cholesky panel
  size_t damp;   // double
  size_t total;
};

size_t align_up(size_t v) { return (v + 255) & ~size_t(255); }

Layout layout_of(int in, int out) {
  const size_t n = (size_t)in, o = (size_t)out;
  Layout l{};
  size_t end = 0;
  l.a = end, end += align_up(n * n * sizeof(float));
  l.x = end, end += align_up(n * n * sizeof(float));
  l.w = end, end += align_up(n * o * sizeof(float));
  l.e = end, end += align_up((size_t)kMaxGroup * o * sizeof(float));
  l.t = end, end += align_up(n * kNB * sizeof(float));
  l.damp = end, end += align_up(sizeof(double));
  l.total = end;
  return l;
}

template <typename T>
T* at(void* base, size_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

// damp = 0.01 * sum_i gram[i][i] / s_i^2 / n, summed in double as dampedGram does.
__global__ void __launch_bounds__(256) damp_kernel(const float* gram, const float* s, int n, double* damp) {
  __shared__ double part[256];
  double sum = 0;
  for (int i = threadIdx.x; i < n; i += 256) {
    const double si = s ? (double)s[i] : 1.0;
    sum += (double)gram[(size_t)i * n + i] / (si * si);
  }
  part[threadIdx.x] = sum;
  __syncthreads();
  for (int half = 128; half > 0; half >>= 1) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *damp = kDamp * part[0] / n;
}

// A[i][j] = H[n-1-i][n-1-j], H = dampedGram(gram, s) computed in double and rounded once to f32.
__global__ void build_reversed_h_kernel(const float* gram, const float* s, int n, const double* damp, float* A) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  const int i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= n || j >= n) return;
  const int a = n - 1 - i, b = n - 1 - j;
  const double sa = s ? (double)s[a] : 1.0, sb = s ? (double)s[b] : 1.0;
  double h = (double)gram[(size_t)a * n + b] / (sa * sb);
  if (a == b) h = h > 0 ? h + *damp : 1.0;
  A[(size_t)i * n + j] = (float)h;
}

// One CTA: Cholesky of the (nbp, nbp) diagonal block at (p0, p0) of A (lower part, already updated by all
// earlier panels) -> L_pp into A's lower part, and L_pp^-1 -> X's diagonal block (zeros above its diagonal).
__global__ void __launch_bounds__(kDiagThreads)
    chol_diag_kernel(float* A, float* X, int n, int p0, int nbp, int* status) {
  __shared__ float L[kNB][kNB + 1];
  __shared__ float Li[kNB][kNB + 1];
  __shared__ int failed;
  if (*status != 0) return;  // an earlier panel failed; written before this launch, so uniform
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  for (int e = tid; e < nbp * nbp; e += kDiagThreads) {
    const int r = e / nbp, c = e % nbp;
    L[r][c] = c <= r ? A[(size_t)(p0 + r) * n + p0 + c] : 0.f;
    Li[r][c] = r == c ? 1.f : 0.f;
  }
  if (tid == 0) failed = 0;
  __syncthreads();
  for (int j = 0; j < nbp; ++j) {
    if (tid == 0) {
      const float d = L[j][j];
      if (!(d > 0.f)) {
        failed = 1;
        *status = 1 + (n - 1 - (p0 + j));  // A's channel p0 + j is H's channel n - 1 - (p0 + j)
      } else {
        L[j][j] = sqrtf(d);
      }
    }
    __syncthreads();
    if (failed) return;  // read after the barrier: uniform
    const float ljj = L[j][j];
    for (int i = j + 1 + tid; i < nbp; i += kDiagThreads) L[i][j] /= ljj;
    __syncthreads();
    // Rank-1 update of the trailing lower triangle (reads column j only, writes columns > j); threads as a
    // 16 x 16 grid over (i, k).
    for (int i = j + 1 + ty; i < nbp; i += 16)
      for (int k = j + 1 + tx; k <= i; k += 16) L[i][k] -= L[i][j] * L[k][j];
    __syncthreads();
  }
  // Li = L^-1 by column-oriented forward elimination of L Li = I: row j is final once divided by L[j][j];
  // it is then removed from the rows below. Row j of Li is zero beyond column j.
  for (int j = 0; j < nbp; ++j) {
    const float ljj = L[j][j];
    for (int c = tid; c <= j; c += kDiagThreads) Li[j][c] /= ljj;
    __syncthreads();
    for (int i = j + 1 + ty; i < nbp; i += 16)
      for (int c = tx; c <= j; c += 16) Li[i][c] -= L[i][j] * Li[j][c];
    __syncthreads();
  }
  for (int e = tid; e < nbp * nbp; e += kDiagThreads) {
    const int r = e / nbp, c = e % nbp;
    if (c <= r) A[(size_t)(p0 + r) * n + p0 + c] = L[r][c];
    X[(size_t)(p0 + r) * n + p0 + c] = c <= r ? Li[r][c] : 0.f;
  }
}

// A[p1 + r][p0 + c] = T[r][c]: the solved panel (rows, cols) back into M's place.
__global__ void store_panel_kernel(const float* T, int rows, int cols, float* A, int n, int p1, int p0) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= rows * cols) return;
  const int r = e / cols, c = e % cols;
  A[(size_t)(p1 + r) * n + p0 + c] = T[(size_t)r * kNB + c];
}

// U[i][j] = X[n-1-i][n-1-j] for j >= i, 0 below the diagonal.
__global__ void reverse_to_upper_kernel(const float* X, int n, float* U, const int* status) {
  if (*status != 0) return;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  const int i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= n || j >= n) return;
  U[(size_t)i * n + j] = j >= i ? X[(size_t)(n - 1 - i) * n + (n - 1 - j)] : 0.f;
}

// Start of row k of U's (g, g) diagonal block packed as an upper triangle (row k holds columns k..g-1).
__device__ __forceinline__ int tri_offset(int k, int g) { return k * g - k * (k - 1) / 2; }

// One group (= block) of GPTQ rounding, one thread per output column n, U's (g, g) diagonal block in shared
// memory. The g rows are taken in sub-blocks of kSub held in registers (fully unrolled loops, no spills): rows of
// the sub-block are rounded in order, each error pushed onto the sub-block's later rows, then the sub-block's
// errors are pushed onto the block's later sub-blocks (read from and written back to W, which only this thread
// touches in column n). Rounding decisions in double as awq.ts takes them.
__global__ void __launch_bounds__(kRoundThreads)
    gptq_block_kernel(float* __restrict__ W, const float* __restrict__ U, int in, int out, int g, int group,
                      const float* __restrict__ clipRatio, uint8_t* __restrict__ q, float* __restrict__ scales,
                      uint8_t* __restrict__ zeros, float* __restrict__ E, const int* __restrict__ status) {
  __shared__ float sU[kMaxGroup * (kMaxGroup + 1) / 2];
  if (*status != 0) return;
  const int b0 = group * g;
  for (int e = threadIdx.x; e < g * g; e += blockDim.x) {
    const int k = e / g, j = e % g;
    if (j >= k) sU[tri_offset(k, g) + j - k] = U[(size_t)(b0 + k) * in + b0 + j];
  }
  __syncthreads();
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= out) return;
  float* col = W + (size_t)b0 * out + n;  // row j of the block at col[j * out]

  // Group params (awq.ts groupQuantize on the current f32 rows; the clip bound as gptq-round.ts derives it).
  const bool clipped = clipRatio != nullptr;
  float bound = 0.f;
  if (clipped) {
    float maxAbs = 0.f;
    for (int j = 0; j < g; ++j) maxAbs = fmaxf(maxAbs, fabsf(col[(size_t)j * out]));
    bound = maxAbs * clipRatio[(size_t)group * out + n];
  }
  float mn = INFINITY, mx = -INFINITY;
  for (int j = 0; j < g; ++j) {
    const float wj = col[(size_t)j * out];
    const float v = clipped ? fminf(fmaxf(wj, -bound), bound) : wj;
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  const float scale =
      __half2float(__float2half_rn(__double2float_rn(fmax((double)mx - (double)mn, 1e-5) / 15.0)));
  const double zero = fmin(fmax(rint(-(double)mn / (double)scale), 0.0), 15.0);
  scales[(size_t)group * out + n] = scale;
  zeros[(size_t)group * out + n] = (uint8_t)zero;

  for (int s0 = 0; s0 < g; s0 += kSub) {
    const int rows = g - s0 < kSub ? g - s0 : kSub;
    float w[kSub];  // (kSub) rows s0.. of the column
    float e[kSub];  // (kSub) their scaled errors
#pragma unroll
    for (int i = 0; i < kSub; ++i) w[i] = i < rows ? col[(size_t)(s0 + i) * out] : 0.f;
#pragma unroll
    for (int kk = 0; kk < kSub; ++kk) {
      e[kk] = 0.f;
      if (kk < rows) {
        const int k = s0 + kk;
        const float* uk = sU + tri_offset(k, g) - k;  // uk[j] = U[b0 + k][b0 + j], j >= k
        const double qv = fmin(fmax(rint((double)w[kk] / (double)scale) + zero, 0.0), 15.0);
        q[(size_t)(b0 + k) * out + n] = (uint8_t)qv;
        const float deq = (float)(qv - zero) * scale;  // exact: |q - z| <= 15 times an f16 value
        const float err = (w[kk] - deq) / uk[k];
        e[kk] = err;
        E[(size_t)k * out + n] = err;
#pragma unroll
        for (int jj = kk + 1; jj < kSub; ++jj)
          if (jj < rows) w[jj] = fmaf(-err, uk[s0 + jj], w[jj]);
      }
    }
    for (int t0 = s0 + kSub; t0 < g; t0 += kSub) {
      const int trows = g - t0 < kSub ? g - t0 : kSub;
      float v[kSub];  // (kSub) rows t0.. of the column
#pragma unroll
      for (int jj = 0; jj < kSub; ++jj) v[jj] = jj < trows ? col[(size_t)(t0 + jj) * out] : 0.f;
#pragma unroll
      for (int kk = 0; kk < kSub; ++kk) {
        if (kk < rows) {
          const float* uk = sU + tri_offset(s0 + kk, g) - (s0 + kk);
#pragma unroll
          for (int jj = 0; jj < kSub; ++jj)
            if (jj < trows) v[jj] = fmaf(-e[kk], uk[t0 + jj], v[jj]);
        }
      }
#pragma unroll
      for (int jj = 0; jj < kSub; ++jj)
        if (jj < trows) col[(size_t)(t0 + jj) * out] = v[jj];
    }
  }
}

#define GPTQ_CHECK(call)               \
  do {                                 \
    const cudaError_t e_ = (call);     \
    if (e_ != cudaSuccess) return e_;  \
  } while (0)

// Where a diagonal block of s channels splits into two (a multiple of kNB, so leaves are the Cholesky panels);
// 0 for a single panel.
int split_of(int s) {
  const int blocks = (s + kNB - 1) / kNB;
  return blocks <= 1 ? 0 : (blocks / 2) * kNB;
}

// X[off.., off..] = inverse of M's (s, s) diagonal block at (off, off), given the panels' inverted diagonal
// blocks already in X (and zeros above X's diagonal): with M = [M11 0; M21 M22] and X11, X22 the inverses of its
// diagonal blocks, X21 = -X22 (M21 X11). Products skip the zero upper-right quarter of a lower-triangular factor
// (3/4 of the dense flops). Scratch: A's strictly upper part (M lives in the lower part).
cudaError_t invert_lower(float* A, float* X, int n, int off, int s, cudaStream_t stream) {
  const int h1 = split_of(s), h2 = s - h1;
  if (h1 == 0) return cudaSuccess;
  GPTQ_CHECK(invert_lower(A, X, n, off, h1, stream));
  GPTQ_CHECK(invert_lower(A, X, n, off + h1, h2, stream));
  const float* x11 = X + (size_t)off * n + off;              // (h1, h1) lower
  const float* x22 = X + (size_t)(off + h1) * n + off + h1;  // (h2, h2) lower
  const float* m21 = A + (size_t)(off + h1) * n + off;       // (h2, h1)
  float* tt = A + (size_t)off * n + off + h1;                // (h1, h2) = T^T, T = M21 X11
  float* x21 = X + (size_t)(off + h1) * n + off;             // (h2, h1)
  // T^T = X11^T M21^T. With X11 = [Xa 0; Xb Xc] split at ha: T^T rows [0, ha) = (X11[:, 0:ha])^T M21^T,
  // rows [ha, h1) = Xc^T (M21[:, ha:h1])^T.
  const int ha = split_of(h1), hb = h1 - ha;
  if (ha == 0) {
    GPTQ_CHECK(sgemm(true, true, h1, h2, h1, 1.f, x11, n, 0, m21, n, 0, 0.f, tt, n, 0, 1, stream));
  } else {
    GPTQ_CHECK(sgemm(true, true, ha, h2, h1, 1.f, x11, n, 0, m21, n, 0, 0.f, tt, n, 0, 1, stream));
    GPTQ_CHECK(sgemm(true, true, hb, h2, hb, 1.f, x11 + (size_t)ha * n + ha, n, 0, m21 + ha, n, 0, 0.f,
                     tt + (size_t)ha * n, n, 0, 1, stream));
  }
  // X21 = -X22 T. With X22 = [Ya 0; Yb Yc] split at hc: rows [0, hc) = -Ya T[0:hc, :], rows [hc, h2) =
  // -[Yb Yc] T; op(B) = T read from T^T (stored (h1, h2)) with transB.
  const int hc = split_of(h2), hd = h2 - hc;
  if (hc == 0) return sgemm(false, true, h2, h1, h2, -1.f, x22, n, 0, tt, n, 0, 0.f, x21, n, 0, 1, stream);
  GPTQ_CHECK(sgemm(false, true, hc, h1, hc, -1.f, x22, n, 0, tt, n, 0, 0.f, x21, n, 0, 1, stream));
  return sgemm(false, true, hd, h1, h2, -1.f, x22 + (size_t)hc * n, n, 0, tt, n, 0, 0.f, x21 + (size_t)hc * n, n, 0,
               1, stream);
}

// Steps 1-2 (see the top of the file): U into the workspace's A buffer.
cudaError_t inverse_cholesky_upper(const float* gram, int n, const float* rowScale, int* status, const Layout& l,
                                   void* workspace, cudaStream_t stream) {
  float* A = at<float>(workspace, l.a);  // (n, n)
  float* X = at<float>(workspace, l.x);  // (n, n)
  float* T = at<float>(workspace, l.t);  // (n, kNB)
  double* damp = at<double>(workspace, l.damp);
  GPTQ_CHECK(cudaMemsetAsync(status, 0, sizeof(int), stream));
  GPTQ_CHECK(cudaMemsetAsync(X, 0, (size_t)n * n * sizeof(float), stream));
  damp_kernel<<<1, 256, 0, stream>>>(gram, rowScale, n, damp);
  const dim3 tile(32, 8), grid((n + 31) / 32, (n + 7) / 8);
  build_reversed_h_kernel<<<grid, tile, 0, stream>>>(gram, rowScale, n, damp, A);
  GPTQ_CHECK(cudaGetLastError());

  for (int p0 = 0; p0 < n; p0 += kNB) {
    const int nbp = n - p0 < kNB ? n - p0 : kNB, p1 = p0 + nbp, rem = n - p1;
    chol_diag_kernel<<<1, kDiagThreads, 0, stream>>>(A, X, n, p0, nbp, status);
    GPTQ_CHECK(cudaGetLastError());
    if (rem == 0) break;
    // Panel: L_ip = A_ip L_pp^-T -> T (rem, nbp).
    GPTQ_CHECK(sgemm(false, true, rem, nbp, nbp, 1.f, A + (size_t)p1 * n + p0, n, 0, X + (size_t)p0 * n + p0, n, 0,
                     0.f, T, kNB, 0, 1, stream));
    // Trailing lower triangle -= T T^T, by column chunks [c0, c1) x rows [c0, n) (skips most of the upper part).
    const int chunks = rem <= 1024 ? 1 : (rem <= 2048 ? 2 : 4);
    const int width = (rem + chunks - 1) / chunks;
    for (int c0 = p1; c0 < n; c0 += width) {
      const int c1 = c0 + width < n ? c0 + width : n;
      const float* tc = T + (size_t)(c0 - p1) * kNB;
      GPTQ_CHECK(sgemm(false, true, n - c0, c1 - c0, nbp, -1.f, tc, kNB, 0, tc, kNB, 0, 1.f,
                       A + (size_t)c0 * n + c0, n, 0, 1, stream));
    }
    const int cells = rem * nbp;
    store_panel_kernel<<<(cells + 255) / 256, 256, 0, stream>>>(T, rem, nbp, A, n, p1, p0);
    GPTQ_CHECK(cudaGetLastError());
  }
  GPTQ_CHECK(invert_lower(A, X, n, 0, n, stream));
  reverse_to_upper_kernel<<<grid, tile, 0, stream>>>(X, n, A, status);
  return cudaGetLastError();
}

bool valid_sizes(int in, int out) {
  // in * in and the (rows * cols) cell counts of the panel kernels stay within int.
  return in > 0 && out > 0 && in <= 46340;
}

}  // namespace

size_t gptq_workspace_bytes(int in, int out) {
  if (!valid_sizes(in, out)) return 0;
  return layout_of(in, out).total;
}

const float* gptq_workspace_u(const void* workspace, int in, int out) {
  return reinterpret_cast<const float*>(static_cast<const char*>(workspace) + layout_of(in, out).a);
}

cudaError_t gptq_inverse_cholesky_upper(const float* gram, int in, int out, const float* rowScale, int* status,
                                        void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  if (!valid_sizes(in, out) || !gram || !status || !workspace) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;
  const Layout l = layout_of(in, out);
  if (workspaceBytes < l.total) return cudaErrorInvalidValue;
  return inverse_cholesky_upper(gram, in, rowScale, status, l, workspace, stream);
}

cudaError_t gptq_quantize(const float* w, int in, int out, int g, const float* gram, const float* rowScale,
                          const float* clipRatio, uint8_t* q, float* scales, uint8_t* zeros, int* status,
                          void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  if (!valid_sizes(in, out) || g <= 0 || g > kMaxGroup || in % g != 0) return cudaErrorInvalidValue;
  if (!w || !gram || !q || !scales || !zeros || !status || !workspace) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;
  const Layout l = layout_of(in, out);
  if (workspaceBytes < l.total) return cudaErrorInvalidValue;

  GPTQ_CHECK(inverse_cholesky_upper(gram, in, rowScale, status, l, workspace, stream));
  const float* U = at<float>(workspace, l.a);  // (in, in)
  float* W = at<float>(workspace, l.w);        // (in, out)
  float* E = at<float>(workspace, l.e);        // (g, out)
  GPTQ_CHECK(cudaMemcpyAsync(W, w, (size_t)in * out * sizeof(float), cudaMemcpyDeviceToDevice, stream));

  const int groups = in / g;
  for (int group = 0; group < groups; ++group) {
    gptq_block_kernel<<<(out + kRoundThreads - 1) / kRoundThreads, kRoundThreads, 0, stream>>>(
        W, U, in, out, g, group, clipRatio, q, scales, zeros, E, status);
    GPTQ_CHECK(cudaGetLastError());
    const int b0 = group * g, b1 = b0 + g, later = in - b1;
    if (later == 0) break;
    // W[b1..] -= U[b0..b1, b1..]^T E: op(A) = (later, g) from U's rows b0..b1 stored (g, later).
    GPTQ_CHECK(sgemm(true, false, later, out, g, -1.f, U + (size_t)b0 * in + b1, in, 0, E, out, 0, 1.f,
                     W + (size_t)b1 * out, out, 0, 1, stream));
  }
  return cudaSuccess;
}

}  // namespace awqk
