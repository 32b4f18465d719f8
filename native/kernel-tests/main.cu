// kernel-tests: correctness of every awq-ts CUDA kernel against naive references, then timings
// on the Llama-2-13B shapes. Usage: kernel-tests [--quick] [--no-bench] [--bench-only] [--eager] [--gemm-ws]
// (--gemm-ws: only the warp-specialized prefill GEMM's checks and its timings beside the current path) [--gemv]
// (--gemv: only the decode GEMV options' checks and sweep) [--kv] (--kv: only the KV cache checks, FP8 and the
// by-KV-head decode attention, then decode attention timings v1 / v2 x fp16 / fp8) [--attn] (--attn: only the
// paged attention checks, fp16 and FP8 caches, then prefill attention timings)
#include <cstdio>
#include <cstring>

#include "harness.h"

bool g_time_graphs = true;

int main(int argc, char** argv) {
  // Line-buffered even into a log file or a pipe: a run killed by `timeout` (a hung kernel) keeps every line
  // printed before it, so the log shows how far it got.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  bool quick = false, bench = true, tests = true, gemvOnly = false, gemmWs = false;
  bool attnOnly = false;  // --attn: only the attention checks and the prefill attention timings
  bool kvOnly = false;  // --kv: only the KV cache / attention checks and timings (kv-cache-tests.cu)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--probe-linear")) {
      if (i + 2 >= argc) {
        std::printf("--probe-linear needs SHAPE M [CALLS]\n");
        return 2;
      }
      return probe_linear(argv[i + 1], std::atoi(argv[i + 2]), i + 3 < argc ? std::atoi(argv[i + 3]) : 3);
    }
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--no-bench")) bench = false;
    if (!std::strcmp(argv[i], "--bench-only")) tests = false;
    if (!std::strcmp(argv[i], "--eager")) g_time_graphs = false;
    if (!std::strcmp(argv[i], "--kv")) kvOnly = true;
    if (!std::strcmp(argv[i], "--attn")) attnOnly = true;
    if (!std::strcmp(argv[i], "--gemv")) gemvOnly = true;
    if (!std::strcmp(argv[i], "--gemm-ws")) gemmWs = true;
  }
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s, %d SMs, %.1f GB\n", prop.name, prop.multiProcessorCount,
              prop.totalGlobalMem / 1e9);
  bool ok = true;
  if (gemmWs) {  // the warp-specialized prefill GEMM only: its checks, then its timings beside the current path
    if (tests) ok &= test_awq_ws();
    if (tests) ok &= test_ws_glu();
    if (bench) bench_gemm_ws();
    return ok ? 0 : 1;
  }
  if (gemvOnly) {
    if (tests) ok &= test_gemv_fused();
    if (bench) bench_gemv();
    return ok ? 0 : 1;
  }
  if (attnOnly) {
    if (tests) {
      ok &= test_attention();
      ok &= test_kv_cache_fp8();
      std::printf("\ncorrectness: %s\n", ok ? "ALL PASSED" : "FAILURES (see FAIL lines)");
    }
    if (bench) bench_attention(false, true);
    return ok ? 0 : 1;
  }
  if (kvOnly) {
    if (tests) {
      ok &= test_kv_cache_fp8();
      ok &= test_attention();
      ok &= test_decode_grouped();
    }
    if (bench) bench_decode_grouped(quick);
    return ok ? 0 : 1;
  }
  if (tests) {
    // test_awq_ws (the warp-specialized prefill GEMM, not yet run on a GPU) runs only under --gemm-ws
    // (scripts/gpu-run.sh verify-gemm), so that a first-run hang there cannot stop these checks.
    ok &= test_awq();
    ok &= test_dense();
    ok &= test_attention();
    ok &= test_kv_cache_fp8();
    ok &= test_quant();
    ok &= test_gptq();
    ok &= test_gemv_fused();
    ok &= test_ws_glu();
    std::printf("\ncorrectness: %s\n", ok ? "ALL PASSED" : "FAILURES (see FAIL lines)");
  }
  if (bench) {
    if (!quick) bench_variants();
    bench_linears(quick);
    bench_attention(quick);
  }
  return ok ? 0 : 1;
}
