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
#include <type_traits>
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

// Timing mode of time_ms: false = eager launches on the legacy stream, true (default) = the `inner`
// calls captured once into a CUDA graph on a side stream and replayed, as the engine's decode step
// runs them (programmatic dependent launch edges included). fn(i, stream) enqueues call i.
extern bool g_time_graphs;

// Median milliseconds of `reps` timed batches, each `inner` calls of fn(i, stream) (i = call index);
// a fn(i) without a stream argument is timed eagerly on the legacy stream.
template <typename F>
double time_ms(F fn0, int inner, int reps = 7) {
  constexpr bool kStreamed = std::is_invocable_v<F, int, cudaStream_t>;
  auto fn = [&](int i, cudaStream_t s) {
    if constexpr (kStreamed) fn0(i, s);
    else fn0(i);
  };
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  cudaStream_t st = nullptr;
  cudaGraphExec_t exec = nullptr;
  const bool graphs = kStreamed && g_time_graphs;
  if (graphs) CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (int i = 0; i < inner; ++i) fn(i, st);  // warm-up (also sets kernel attributes outside capture)
  CK(cudaDeviceSynchronize());
  if (graphs) {
    cudaGraph_t graph = nullptr;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < inner; ++i) fn(i, st);
    CK(cudaStreamEndCapture(st, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphDestroy(graph));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
  }
  std::vector<float> ts;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(a, st));
    if (exec != nullptr) CK(cudaGraphLaunch(exec, st));
    else
      for (int i = 0; i < inner; ++i) fn(i, st);
    CK(cudaEventRecord(b, st));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms / inner);
  }
  if (exec != nullptr) CK(cudaGraphExecDestroy(exec));
  if (st != nullptr) CK(cudaStreamDestroy(st));
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
// --probe-linear SHAPE M [CALLS]: CALLS (3) eager calls of awq_linear / dense_linear (the engine's dispatch, with the
// split-K workspace) at m rows on one 13B shape (qkv, o, gate_up, down, lm_head), nothing else: a small process for
// `ncu -k <kernel> --launch-skip CALLS-1 --launch-count 1`. Returns the exit status.
int probe_linear(const char* shape, int m, int calls);
void bench_variants();
void bench_attention(bool quick, bool prefillOnly = false);
// KV cache (kv-cache-tests.cu; kernel-tests --kv runs only these): FP8 E4M3 conversion and attention over an FP8
// cache (also in the default run).
bool test_kv_cache_fp8();
// Decode attention by KV head (attention_decode_grouped.cu), for now only under --kv: every attention case, and
// timings beside the per-query-head kernel with its split target swept.
bool test_decode_grouped();
void bench_decode_grouped(bool quick);
// The warp-specialized prefill GEMM (gemm_sm90_ws.cu): tests.cu / bench.cu.
bool test_awq_ws();
void bench_gemm_ws();
// Decode GEMV options of issue 13 (tests.cu / bench.cu; kernel-tests --gemv runs only these).
bool test_gemv_fused();
// The warp-specialized GEMM's gate|up + SiLU epilogue (awq_linear_silu), Hopper only.
bool test_ws_glu();
void bench_gemv();

// Naive references (fp32 accumulation), in ref.cu.
void ref_awq_linear(const __half* x, int m, const int32_t* qweight, const int32_t* qzeros,
                    const __half* scales, int in, int out, int group, float* y);
void ref_dense_linear(const __half* x, int m, const __half* w, int in, int out, float* y);
void ref_attention(const __half* q, const __half* kc, const __half* vc, const int32_t* bt,
                   int maxBlocksPerSeq, const int32_t* queryStarts, const int32_t* contextLens,
                   int numSeqs, int numTokens, int numHeads, int numKvHeads, int headDim,
                   float scale, int maxContext, float* out);
