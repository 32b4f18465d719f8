// sgemm: f32 SIMT tiled GEMM for the quantizer (Gram matrices, G * delta, GPTQ blocked updates).
//
// Design: a block computes a BM x BN tile of C with (BM/8)*(BN/8) threads, each owning an 8x8 register tile
// split in two 4-row and two 4-column halves (rows ty*4 + {0..3} and BM/2 + ty*4 + {0..3}; likewise columns)
// so that the shared-memory reads are conflict-free float4s. K advances in steps of BK = 8: the next A/B
// slices are loaded from global memory into registers while the current ones (double-buffered shared memory,
// stored k-major: As[k][m], Bs[k][n]) feed the FMAs, one __syncthreads per step. Global loads are scalar and
// bounds-checked (zero-filled outside M/N/K), with the thread -> element map chosen per transpose case so that
// consecutive threads read consecutive addresses. Accumulation is plain f32 FMA in k order.
#include "quant_kernels.h"

namespace awqk {
namespace {

constexpr int kBK = 8;
constexpr int kPad = 4;  // keeps rows float4-aligned and spreads the transposed stores over all banks

template <int BM, int BN>
struct Tile {
  static constexpr int kThreads = (BM / 8) * (BN / 8);
  static constexpr int kALoads = BM * kBK / kThreads;  // elements of A each thread loads per K step
  static constexpr int kBLoads = BN * kBK / kThreads;
  static_assert(BM * kBK % kThreads == 0 && BN * kBK % kThreads == 0, "tile loads must divide evenly");
};

// Loads the (ROWS x BK) slice of one operand at rows r0.., k0.. into registers (zero outside the matrix);
// T threads take LOADS elements each. KMAJOR: the operand is stored (K, ROWS), so consecutive threads take
// consecutive rows; else it is stored (ROWS, K) and consecutive threads take consecutive k. A is k-major
// when transA, B when not transB: both operands go through this one map.
template <int ROWS, int T, int LOADS, bool KMAJOR>
__device__ __forceinline__ void load_slice(const float* __restrict__ src, int ld, int nRows, int K, int r0, int k0,
                                           float (&r)[LOADS]) {
#pragma unroll
  for (int i = 0; i < LOADS; ++i) {
    const int e = threadIdx.x + i * T;
    const int row = KMAJOR ? e % ROWS : e / kBK;
    const int k = KMAJOR ? e / ROWS : e % kBK;
    const int gr = r0 + row, gk = k0 + k;
    float v = 0.f;
    if (gr < nRows && gk < K) v = KMAJOR ? src[(long long)gk * ld + gr] : src[(long long)gr * ld + gk];
    r[i] = v;
  }
}

// Stores a slice loaded by load_slice k-major into shared memory: S[k][row], rows padded by kPad.
template <int ROWS, int T, int LOADS, bool KMAJOR>
__device__ __forceinline__ void store_slice(float* S, const float (&r)[LOADS]) {
#pragma unroll
  for (int i = 0; i < LOADS; ++i) {
    const int e = threadIdx.x + i * T;
    const int row = KMAJOR ? e % ROWS : e / kBK;
    const int k = KMAJOR ? e / ROWS : e % kBK;
    S[k * (ROWS + kPad) + row] = r[i];
  }
}

template <int BM, int BN, bool TA, bool TB>
__global__ void __launch_bounds__(Tile<BM, BN>::kThreads)
    sgemm_kernel(int M, int N, int K, float alpha, const float* __restrict__ A, int lda, long long strideA,
                 const float* __restrict__ B, int ldb, long long strideB, float beta, float* __restrict__ C,
                 int ldc, long long strideC, int batch) {
  __shared__ __align__(16) float As[2][kBK * (BM + kPad)];
  __shared__ __align__(16) float Bs[2][kBK * (BN + kPad)];
  constexpr int TX = BN / 8;  // threads along n
  const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  for (int z = blockIdx.z; z < batch; z += gridDim.z) {
    const float* Az = A + z * strideA;
    const float* Bz = B + z * strideB;
    float* Cz = C + z * strideC;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    constexpr int kT = Tile<BM, BN>::kThreads, kLA = Tile<BM, BN>::kALoads, kLB = Tile<BM, BN>::kBLoads;
    float ra[kLA], rb[kLB];
    load_slice<BM, kT, kLA, TA>(Az, lda, M, K, m0, 0, ra);
    load_slice<BN, kT, kLB, !TB>(Bz, ldb, N, K, n0, 0, rb);
    store_slice<BM, kT, kLA, TA>(As[0], ra);
    store_slice<BN, kT, kLB, !TB>(Bs[0], rb);
    __syncthreads();

    const int steps = (K + kBK - 1) / kBK;
    for (int s = 0; s < steps; ++s) {
      const int cur = s & 1;
      const bool more = s + 1 < steps;
      if (more) {
        load_slice<BM, kT, kLA, TA>(Az, lda, M, K, m0, (s + 1) * kBK, ra);
        load_slice<BN, kT, kLB, !TB>(Bz, ldb, N, K, n0, (s + 1) * kBK, rb);
      }
      const float* as = As[cur];
      const float* bs = Bs[cur];
#pragma unroll
      for (int k = 0; k < kBK; ++k) {
        const float4 a0 = *reinterpret_cast<const float4*>(as + k * (BM + kPad) + ty * 4);
        const float4 a1 = *reinterpret_cast<const float4*>(as + k * (BM + kPad) + BM / 2 + ty * 4);
        const float4 b0 = *reinterpret_cast<const float4*>(bs + k * (BN + kPad) + tx * 4);
        const float4 b1 = *reinterpret_cast<const float4*>(bs + k * (BN + kPad) + BN / 2 + tx * 4);
        const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      if (more) {
        // The other buffer was last read in step s - 1, which every thread finished before the barrier
        // that ended it; writing it now cannot race with readers of `cur`.
        store_slice<BM, kT, kLA, TA>(As[cur ^ 1], ra);
        store_slice<BN, kT, kLB, !TB>(Bs[cur ^ 1], rb);
      }
      __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int gm = m0 + (i < 4 ? ty * 4 + i : BM / 2 + ty * 4 + i - 4);
      if (gm >= M) continue;
      float* crow = Cz + (long long)gm * ldc;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int gn = n0 + (j < 4 ? tx * 4 + j : BN / 2 + tx * 4 + j - 4);
        if (gn >= N) continue;
        const float v = alpha * acc[i][j];
        crow[gn] = beta == 0.f ? v : fmaf(beta, crow[gn], v);
      }
    }
    // The next batch item reuses As/Bs[0]: every thread must be done with this item's last reads (the loop's
    // final barrier guarantees it), so no extra barrier is needed here.
  }
}

template <int BM, int BN, bool TA, bool TB>
cudaError_t launch(int M, int N, int K, float alpha, const float* A, int lda, long long strideA, const float* B,
                   int ldb, long long strideB, float beta, float* C, int ldc, long long strideC, int batch,
                   cudaStream_t stream) {
  const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM, batch < 65535 ? batch : 65535);
  sgemm_kernel<BM, BN, TA, TB><<<grid, Tile<BM, BN>::kThreads, 0, stream>>>(
      M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch);
  return cudaGetLastError();
}

template <int BM, int BN>
cudaError_t dispatch(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                     long long strideA, const float* B, int ldb, long long strideB, float beta, float* C, int ldc,
                     long long strideC, int batch, cudaStream_t stream) {
  if (transA) {
    if (transB)
      return launch<BM, BN, true, true>(M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                                        batch, stream);
    return launch<BM, BN, true, false>(M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                                       batch, stream);
  }
  if (transB)
    return launch<BM, BN, false, true>(M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                                       batch, stream);
  return launch<BM, BN, false, false>(M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                                      batch, stream);
}

}  // namespace

cudaError_t sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                  long long strideA, const float* B, int ldb, long long strideB, float beta, float* C, int ldc,
                  long long strideC, int batch, cudaStream_t stream) {
  if (M < 0 || N < 0 || K < 0 || batch < 0) return cudaErrorInvalidValue;
  if (M == 0 || N == 0 || batch == 0) return cudaSuccess;
  if (!C || ldc < N) return cudaErrorInvalidValue;
  if (K > 0) {
    if (!A || !B) return cudaErrorInvalidValue;
    if (lda < (transA ? M : K) || ldb < (transB ? K : N)) return cudaErrorInvalidValue;
  }
  if ((M + 63) / 64 > 65535) return cudaErrorInvalidValue;  // gridDim.y (batches beyond 65535 loop in-kernel)
  // K == 0 still runs the kernel: C = beta * C (or 0 when beta == 0).
  const long long tiles128 = (long long)((M + 127) / 128) * ((N + 127) / 128) * batch;
  // Below ~2 waves of 128x128 tiles on a large GPU, 64x64 tiles keep more SMs busy.
  if (tiles128 >= 264)
    return dispatch<128, 128>(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                              strideC, batch, stream);
  return dispatch<64, 64>(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC,
                          batch, stream);
}

}  // namespace awqk
