// Test/benchmark helpers for the kernel-tests executable: error checks, device RNG fills, error
// metrics, and cudaEvent timing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <vector>

#define CK(call)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (call);                                                              \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s -> %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)

// Device RNG fills (deterministic per seed).
void fill_i32(int32_t* p, size_t n, uint64_t seed);
void fill_half(__half* p, size_t n, uint64_t seed, float lo, float hi);

struct ErrStat {
  double maxAbsErr;  // max |y - ref|
  double maxAbsRef;  // max |ref|
  double rel() const { return maxAbsRef > 0 ? maxAbsErr / maxAbsRef : maxAbsErr; }
  bool nan;
};
// Compares fp16 y against fp32 ref. y has rows of `ld` halves, of which the first `cols` count.
ErrStat compare(const __half* y, const float* ref, size_t rows, size_t cols);

// Median milliseconds of `reps` timed batches, each `inner` calls of fn(i) (i = call index).
template <typename F>
double time_ms(F fn, int inner, int reps = 7) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < inner; ++i) fn(i);  // warm-up
  CK(cudaDeviceSynchronize());
  std::vector<float> ts;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(a));
    for (int i = 0; i < inner; ++i) fn(i);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms / inner);
  }
  CK(cudaGetLastError());
  std::sort(ts.begin(), ts.end());
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return ts[ts.size() / 2];
}

// Correctness tests (tests.cu) and benchmarks (bench.cu); tests return false on a failure.
bool test_awq();
bool test_dense();
bool test_attention();
// Quantizer kernels (quant_kernels.h): quant-tests.cu and gptq-tests.cu.
bool test_quant();
bool test_gptq();
void bench_linears(bool quick);
void bench_variants();
void bench_attention(bool quick);

// Naive references (fp32 accumulation), in ref.cu.
void ref_awq_linear(const __half* x, int m, const int32_t* qweight, const int32_t* qzeros,
                    const __half* scales, int in, int out, int group, float* y);
void ref_dense_linear(const __half* x, int m, const __half* w, int in, int out, float* y);
void ref_attention(const __half* q, const __half* kc, const __half* vc, const int32_t* bt,
                   int maxBlocksPerSeq, const int32_t* queryStarts, const int32_t* contextLens,
                   int numSeqs, int numTokens, int numHeads, int numKvHeads, int headDim,
                   float scale, int maxContext, float* out);
