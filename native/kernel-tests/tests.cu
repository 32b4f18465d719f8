// Correctness: every kernel path against a naive fp32 reference on random inputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "../kernels/gemm_ws.h"
#include "../kernels/internal.h"
#include "../kernels/kernels.h"
#include "harness.h"

namespace {

constexpr double kTol = 5e-3;  // max |y - ref| / max |ref|

bool report(const char* what, const ErrStat& e) {
  const bool ok = !e.nan && e.rel() < kTol;
  std::printf("  %-58s rel err %.2e (max|ref| %.3g) %s\n", what, e.rel(), e.maxAbsRef, ok ? "ok" : "FAIL");
  return ok;
}

struct AwqCase {
  int in, out, group;
  std::vector<int> ms;
};

}  // namespace

bool test_awq() {
  std::printf("AWQ W4A16 linear (repack + awq_linear vs naive dequant reference)\n");
  const std::vector<AwqCase> cases = {
      {256, 512, 128, {1, 3, 8, 9, 16, 17, 32, 33, 64, 100, 129, 256, 257, 320, 321, 384}},
      {768, 264, 64, {1, 7, 12, 20, 40, 200, 300}},
      {5120, 15360, 128, {1, 8, 16, 32, 64, 128, 512, 513}},
      {5120, 5120, 128, {1, 8, 9, 12, 16, 32, 128, 512, 2048, 2049, 2063}},
      {5120, 27648, 128, {1, 8, 32, 128, 512, 513}},
      {13824, 5120, 128, {1, 8, 32, 64, 128, 512, 529}},
  };
  bool ok = true;
  uint64_t seed = 1;
  for (const auto& c : cases) {
    const int mMax = *std::max_element(c.ms.begin(), c.ms.end());
    int32_t *qw, *qz;
    __half *sc, *x, *y;
    float* ref;
    void* packed;
    const size_t groups = c.in / c.group;
    CK(cudaMalloc(&qw, (size_t)c.in * c.out / 8 * 4));
    CK(cudaMalloc(&qz, groups * c.out / 8 * 4));
    CK(cudaMalloc(&sc, groups * c.out * 2));
    CK(cudaMalloc(&x, (size_t)mMax * c.in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * c.out * 2));
    CK(cudaMalloc(&ref, (size_t)mMax * c.out * 4));
    CK(cudaMalloc(&packed, awqk::awq_packed_bytes(c.in, c.out, c.group)));
    fill_i32(qw, (size_t)c.in * c.out / 8, seed++);
    fill_i32(qz, groups * c.out / 8, seed++);
    fill_half(sc, groups * c.out, seed++, 0.001f, 0.01f);
    fill_half(x, (size_t)mMax * c.in, seed++, -1.f, 1.f);
    CK(awqk::awq_repack(qw, qz, sc, c.in, c.out, c.group, packed, 0));
    void* lws;  // split-K workspace (zeroed once; the kernels leave it zero)
    const size_t lwsBytes = awqk::linear_workspace_bytes();
    CK(cudaMalloc(&lws, lwsBytes));
    CK(cudaMemset(lws, 0, lwsBytes));
    for (int m : c.ms) {
      CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));  // NaN pattern: unwritten outputs fail
      ref_awq_linear(x, m, qw, qz, sc, c.in, c.out, c.group, ref);
      CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
      CK(cudaDeviceSynchronize());
      char name[128];
      std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d", c.in, c.out, c.group, m);
      ok &= report(name, compare(y, ref, m, c.out));
      // The engine's call: the default dispatch with a workspace (at 9..16 rows the narrow, short matrices take the
      // GEMV's two-tile kernel, the others the WS GEMM; above 256 rows a tail of at most 128 rows past the last full
      // 256-row tile runs as a linear of its own: 257, 320, 321, 384, 513, 529, 2049, 2063; under
      // AWQ_GEMM_WS_TAIL_ROWS=64 not 321 / 384), twice.
      for (int rep = 0; rep < 2; ++rep) {
        CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
        CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0, lws, lwsBytes));
        CK(cudaDeviceSynchronize());
        std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d default with workspace%s", c.in, c.out, c.group, m,
                      rep ? " (again)" : "");
        ok &= report(name, compare(y, ref, m, c.out));
      }
      // Every GEMV variant and GEMM tile configuration, on two shapes.
      const bool sweep = (c.in == 5120 && c.out == 5120) || (c.in == 768 && c.out == 264);
      // With a workspace: the register-A wgmma GEMM (path 2, every m <= 256, auto split then forced splits)
      // and the split-K wgmma GEMM (path 1, m > 8); each twice, so that a counter the first call left non-zero
      // would break the second.
      for (int path : {2, 1}) {
        if (path == 2 ? m > 256 : m <= 8) continue;
        awqk::gemm_path_override(path);
        for (int variant = 0; variant <= (path == 2 && sweep ? awqk::kRsVariants : 0); ++variant) {
          awqk::gemm_rs_variant_override(variant);
          const int forced[] = {0, 2, 3, 7};
          for (int sp : forced) {
            if (sp != 0 && !sweep && !(path == 2 && sp == 3)) continue;
            awqk::gemm_split_override(sp);
            for (int rep = 0; rep < 2; ++rep) {
              CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
              CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0, lws, lwsBytes));
              CK(cudaDeviceSynchronize());
              std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d %s v%d split-K %d%s", c.in, c.out, c.group,
                            m, path == 2 ? "reg-A" : "smem-B", variant, sp, rep ? " (again)" : "");
              ok &= report(name, compare(y, ref, m, c.out));
            }
          }
        }
        awqk::gemm_rs_variant_override(0);
        awqk::gemm_split_override(0);
      }
      awqk::gemm_path_override(0);
      if (m <= 32) {  // the bulk-copy GEMV (m <= 32) and the register-burst one, every shape
        for (int v : {2, 3, 9, 12, 13, 14, 19, 20, 21}) {
          awqk::awq_gemv_override({v});
          CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
          CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
          CK(cudaDeviceSynchronize());
          std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d gemv variant %d (no ws)", c.in, c.out, c.group,
                        m, v);
          ok &= report(name, compare(y, ref, m, c.out));
        }
        awqk::awq_gemv_override({0});
      }
      if (sweep && m <= 8) {
        for (int v = 1; v <= 15; ++v) {
          awqk::awq_gemv_override({v});
          CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
          CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
          std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d gemv variant %d", c.in, c.out, c.group, m, v);
          ok &= report(name, compare(y, ref, m, c.out));
        }
        awqk::awq_gemv_override({0});
      }
      if (sweep && m > 32) {
        for (int cfg = 1; cfg <= 6; ++cfg) {
          awqk::gemm_override(cfg);
          CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
          CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
          std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d gemm cfg %d", c.in, c.out, c.group, m, cfg);
          ok &= report(name, compare(y, ref, m, c.out));
        }
        awqk::gemm_override(0);
      }
    }
    CK(cudaFree(qw));
    CK(cudaFree(qz));
    CK(cudaFree(sc));
    CK(cudaFree(x));
    CK(cudaFree(y));
    CK(cudaFree(ref));
    CK(cudaFree(packed));
    CK(cudaFree(lws));
  }
  return ok;
}

bool test_dense() {
  std::printf("Dense fp16 linear y = x W^T, W (out, in)\n");
  struct Case {
    int in, out;
    std::vector<int> ms;
  };
  const std::vector<Case> cases = {
      {5120, 32002, {1, 8, 17, 32, 33, 128, 200}},
      {64, 37, {1, 40}},
      {256, 32002, {1, 2, 64}},
  };
  bool ok = true;
  uint64_t seed = 100;
  for (const auto& c : cases) {
    const int mMax = *std::max_element(c.ms.begin(), c.ms.end());
    __half *w, *x, *y;
    float* ref;
    CK(cudaMalloc(&w, (size_t)c.out * c.in * 2));
    CK(cudaMalloc(&x, (size_t)mMax * c.in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * c.out * 2));
    CK(cudaMalloc(&ref, (size_t)mMax * c.out * 4));
    fill_half(w, (size_t)c.out * c.in, seed++, -0.05f, 0.05f);
    fill_half(x, (size_t)mMax * c.in, seed++, -1.f, 1.f);
    for (int m : c.ms) {
      CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
      ref_dense_linear(x, m, w, c.in, c.out, ref);
      CK(awqk::dense_linear(x, m, w, c.in, c.out, y, 0));
      CK(cudaDeviceSynchronize());
      char name[128];
      std::snprintf(name, sizeof name, "in=%d out=%d m=%d", c.in, c.out, m);
      ok &= report(name, compare(y, ref, m, c.out));
      if (m > 32 && c.out == 32002) {
        for (int cfg = 1; cfg <= 6; ++cfg) {
          awqk::gemm_override(cfg);
          CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
          CK(awqk::dense_linear(x, m, w, c.in, c.out, y, 0));
          std::snprintf(name, sizeof name, "in=%d out=%d m=%d gemm cfg %d", c.in, c.out, m, cfg);
          ok &= report(name, compare(y, ref, m, c.out));
        }
        awqk::gemm_override(0);
      }
    }
    CK(cudaFree(w));
    CK(cudaFree(x));
    CK(cudaFree(y));
    CK(cudaFree(ref));
  }
  return ok;
}

namespace {

// Builds a paged KV cache with shuffled block tables for the given (queryLen, contextLen) list and
// checks the prefill kernel (and the decode kernel when every queryLen is 1) against the reference.
bool attention_case(int numHeads, int numKvHeads, int D, const std::vector<std::pair<int, int>>& seqs,
                    uint64_t seed) {
  const int numSeqs = (int)seqs.size();
  std::vector<int> qStarts(numSeqs + 1, 0), ctxLens(numSeqs);
  int maxBlocks = 1, maxQ = 0, maxCtx = 0, totalBlocks = 0;
  bool allDecode = true;
  for (int i = 0; i < numSeqs; ++i) {
    qStarts[i + 1] = qStarts[i] + seqs[i].first;
    ctxLens[i] = seqs[i].second;
    const int nb = (seqs[i].second + 15) / 16;
    maxBlocks = std::max(maxBlocks, nb);
    totalBlocks += nb;
    maxQ = std::max(maxQ, seqs[i].first);
    maxCtx = std::max(maxCtx, seqs[i].second);
    allDecode &= seqs[i].first == 1;
  }
  const int numBlocks = totalBlocks + 7;  // a few unused blocks
  std::vector<int> perm(numBlocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937 rng((unsigned)seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int> bt((size_t)numSeqs * maxBlocks, -1);
  int next = 0;
  for (int i = 0; i < numSeqs; ++i)
    for (int b = 0; b < (ctxLens[i] + 15) / 16; ++b) bt[(size_t)i * maxBlocks + b] = perm[next++];
  const int numTokens = qStarts[numSeqs];
  const size_t cacheElems = (size_t)numBlocks * 16 * numKvHeads * D;
  const size_t qElems = (size_t)numTokens * numHeads * D;
  __half *q, *kc, *vc, *o;
  float* ref;
  int32_t *dBt, *dQs, *dCtx;
  CK(cudaMalloc(&q, qElems * 2));
  CK(cudaMalloc(&kc, cacheElems * 2));
  CK(cudaMalloc(&vc, cacheElems * 2));
  CK(cudaMalloc(&o, qElems * 2));
  CK(cudaMalloc(&ref, qElems * 4));
  CK(cudaMalloc(&dBt, bt.size() * 4));
  CK(cudaMalloc(&dQs, qStarts.size() * 4));
  CK(cudaMalloc(&dCtx, ctxLens.size() * 4));
  CK(cudaMemcpy(dBt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dQs, qStarts.data(), qStarts.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dCtx, ctxLens.data(), ctxLens.size() * 4, cudaMemcpyHostToDevice));
  fill_half(q, qElems, seed * 3 + 1, -2.f, 2.f);
  fill_half(kc, cacheElems, seed * 3 + 2, -1.f, 1.f);
  fill_half(vc, cacheElems, seed * 3 + 3, -1.f, 1.f);
  const float scale = 1.f / std::sqrt((float)D);
  ref_attention(q, kc, vc, dBt, maxBlocks, dQs, dCtx, numSeqs, numTokens, numHeads, numKvHeads, D,
                scale, maxCtx, ref);
  CK(cudaMemset(o, 0xff, qElems * 2));
  CK(awqk::paged_attention_prefill(q, kc, vc, dBt, maxBlocks, dQs, dCtx, numSeqs, maxQ, numHeads,
                                   numKvHeads, D, scale, o, 0));
  CK(cudaDeviceSynchronize());
  char name[160];
  std::snprintf(name, sizeof name, "prefill H=%d KVH=%d D=%d seqs=%d tokens=%d maxCtx=%d", numHeads,
                numKvHeads, D, numSeqs, numTokens, maxCtx);
  bool ok = report(name, compare(o, ref, numTokens, (size_t)numHeads * D));
  if (allDecode) {
    const size_t wsBytes = awqk::paged_attention_decode_workspace_bytes(numSeqs, numHeads, D, maxCtx);
    void* ws;
    CK(cudaMalloc(&ws, std::max<size_t>(wsBytes, 16)));
    CK(cudaMemset(ws, 0, std::max<size_t>(wsBytes, 16)));
    for (int rep = 0; rep < 2; ++rep) {  // twice: the split counters must be back at zero
      CK(cudaMemset(o, 0xff, qElems * 2));
      CK(awqk::paged_attention_decode(q, kc, vc, dBt, maxBlocks, dCtx, numSeqs, maxCtx, numHeads,
                                      numKvHeads, D, scale, ws, wsBytes, o, 0));
      CK(cudaDeviceSynchronize());
      std::snprintf(name, sizeof name, "decode  H=%d KVH=%d D=%d seqs=%d maxCtx=%d%s", numHeads,
                    numKvHeads, D, numSeqs, maxCtx, rep ? " (again)" : "");
      ok &= report(name, compare(o, ref, numTokens, (size_t)numHeads * D));
    }
    CK(cudaFree(ws));
  }
  CK(cudaFree(q));
  CK(cudaFree(kc));
  CK(cudaFree(vc));
  CK(cudaFree(o));
  CK(cudaFree(ref));
  CK(cudaFree(dBt));
  CK(cudaFree(dQs));
  CK(cudaFree(dCtx));
  return ok;
}

}  // namespace

bool test_attention() {
  std::printf("Paged attention (prefill kernel for any query lengths; decode fast path)\n");
  bool ok = true;
  const std::vector<std::pair<int, int>> mixed = {{100, 300}, {1, 517}, {64, 64}, {130, 130}, {17, 1000}};
  ok &= attention_case(8, 2, 128, mixed, 11);
  ok &= attention_case(4, 2, 64, mixed, 12);
  ok &= attention_case(40, 40, 128, {{1, 1}, {1, 15}, {1, 16}, {1, 17}, {1, 300}, {1, 2048}, {1, 4000}}, 13);
  ok &= attention_case(40, 40, 128, {{1, 3000}}, 14);
  ok &= attention_case(4, 2, 64, {{1, 5}, {1, 700}, {1, 3000}}, 15);
  ok &= attention_case(4, 2, 64, {{1, 2500}}, 16);
  ok &= attention_case(40, 40, 128, {{2048, 2048}}, 17);
  ok &= attention_case(40, 40, 128, {{300, 1500}, {1, 900}, {77, 77}}, 18);
  // Grouped-query heads over long prompts and a chunk over a cached prefix (the wgmma kernel's 128-query blocks
  // on Hopper: partial last blocks, warpgroups with no query, tiles past the context).
  ok &= attention_case(32, 8, 128, {{1000, 1000}, {513, 2000}, {64, 64}, {200, 4100}}, 19);
  ok &= attention_case(40, 40, 128, {{4096, 4096}}, 20);
  return ok;
}

// Decode GEMV options of issue 13: the fused gate|up + SiLU GEMV against awq_linear followed by the SiLU product
// (the same roundings: gate and up in fp16, the product in fp32), and awq_linear with the L2 prefetch on
// (both modes, several distances) against the naive reference.
namespace {

// awq_linear_add_rmsnorm against awq_linear + a host add + RMSNorm, twice in a row (the workspace must be left zero).
bool test_add_rmsnorm(const __half* x, const void* packed, int in, int out, int group, int m, __half* y, void* lws) {
  const float eps = 1e-5f;
  std::vector<float> res0((size_t)m * out);
  std::vector<__half> w(out);
  std::mt19937 rng(7 + m + out);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (auto& v : res0) v = u(rng);
  for (auto& v : w) v = __float2half(0.5f + 0.25f * u(rng));
  float* res;
  __half *wd, *normed;
  float* ref;
  CK(cudaMalloc(&res, res0.size() * 4));
  CK(cudaMalloc(&wd, (size_t)out * 2));
  CK(cudaMalloc(&normed, (size_t)m * out * 2));
  CK(cudaMalloc(&ref, (size_t)m * out * 4));
  CK(cudaMemcpy(wd, w.data(), (size_t)out * 2, cudaMemcpyHostToDevice));
  CK(awqk::awq_linear(x, m, packed, in, out, group, y, 0));
  CK(cudaDeviceSynchronize());
  std::vector<__half> hy((size_t)m * out);
  CK(cudaMemcpy(hy.data(), y, hy.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<float> expRes(res0.size()), expNorm(res0.size());
  for (int t = 0; t < m; ++t) {
    double ss = 0;
    for (int i = 0; i < out; ++i) {
      const size_t k = (size_t)t * out + i;
      expRes[k] = res0[k] + __half2float(hy[k]);
      ss += (double)expRes[k] * expRes[k];
    }
    const float inv = 1.f / std::sqrt((float)(ss / out) + eps);
    for (int i = 0; i < out; ++i) {
      const size_t k = (size_t)t * out + i;
      expNorm[k] = expRes[k] * inv * __half2float(w[i]);
    }
  }
  CK(cudaMemcpy(ref, expNorm.data(), expNorm.size() * 4, cudaMemcpyHostToDevice));
  bool ok = true;
  std::vector<__half> firstNormed;  // (m, out) the first call's output: the second must repeat it bit for bit
  for (int rep = 0; rep < 2; ++rep) {
    CK(cudaMemcpy(res, res0.data(), res0.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemset(normed, 0xff, (size_t)m * out * 2));
    const cudaError_t e = awqk::awq_linear_add_rmsnorm(x, m, packed, in, out, group, y, res, wd, eps, normed, lws,
                                                       awqk::linear_workspace_bytes(), 0);
    char name[128];
    std::snprintf(name, sizeof name, "add+rmsnorm in=%d out=%d m=%d%s", in, out, m, rep ? " (again)" : "");
    if (e == cudaErrorNotSupported) {
      std::printf("  %-58s not supported here\n", name);
      break;
    }
    CK(e);
    CK(cudaDeviceSynchronize());
    std::vector<float> got(res0.size());
    CK(cudaMemcpy(got.data(), res, got.size() * 4, cudaMemcpyDeviceToHost));
    double resErr = 0;
    for (size_t k = 0; k < got.size(); ++k) resErr = std::max(resErr, (double)std::fabs(got[k] - expRes[k]));
    const ErrStat es = compare(normed, ref, m, out);
    std::vector<__half> gotNormed((size_t)m * out);
    CK(cudaMemcpy(gotNormed.data(), normed, gotNormed.size() * 2, cudaMemcpyDeviceToHost));
    // Same inputs, same bits: the sum of squares must be added in a fixed order (seeded requests repeat exactly).
    const bool repeats =
        rep == 0 || std::memcmp(firstNormed.data(), gotNormed.data(), gotNormed.size() * sizeof(__half)) == 0;
    if (rep == 0) firstNormed = gotNormed;
    const bool good = !es.nan && es.rel() < 2e-3 && resErr == 0 && repeats;
    std::printf("  %-58s normed rel err %.2e, residual max err %.2e%s %s\n", name, es.rel(), resErr,
                repeats ? "" : ", output differs from the first call's", good ? "ok" : "FAIL");
    ok &= good;
  }
  CK(cudaFree(res));
  CK(cudaFree(wd));
  CK(cudaFree(normed));
  CK(cudaFree(ref));
  return ok;
}

}  // namespace

// Random AWQ weights (checkpoint layout and repacked), x (mMax, in) in [-1, 1), and y (mMax, out), act (mMax, out / 2)
// and an fp32 reference (mMax, out) to write into; freed when it goes out of scope.
struct AwqFixture {
  int32_t *qw, *qz;
  __half *sc, *x, *y, *act;
  float* ref;
  void* packed;
  AwqFixture(int in, int out, int group, int mMax, uint64_t& seed) {
    const size_t groups = in / group;
    CK(cudaMalloc(&qw, (size_t)in * out / 8 * 4));
    CK(cudaMalloc(&qz, groups * out / 8 * 4));
    CK(cudaMalloc(&sc, groups * out * 2));
    CK(cudaMalloc(&x, (size_t)mMax * in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * out * 2));
    CK(cudaMalloc(&act, (size_t)mMax * out / 2 * 2));
    CK(cudaMalloc(&ref, (size_t)mMax * out * 4));
    CK(cudaMalloc(&packed, awqk::awq_packed_bytes(in, out, group)));
    fill_i32(qw, (size_t)in * out / 8, seed++);
    fill_i32(qz, groups * out / 8, seed++);
    fill_half(sc, groups * out, seed++, 0.001f, 0.01f);
    fill_half(x, (size_t)mMax * in, seed++, -1.f, 1.f);
    CK(awqk::awq_repack(qw, qz, sc, in, out, group, packed, 0));
  }
  ~AwqFixture() {
    for (void* p : {(void*)qw, (void*)qz, (void*)sc, (void*)x, (void*)y, (void*)act, (void*)ref, packed}) CK(cudaFree(p));
  }
  AwqFixture(const AwqFixture&) = delete;
  AwqFixture& operator=(const AwqFixture&) = delete;
};

// ref (m, out / 2) fp32 = silu(gate) * up of the device fp16 y (m, out), its outputs read as gate|up interleaved by 8
// (awq_linear_silu's order): the unfused linear's output put through the SiLU product on the host.
static void glu_reference(const __half* y, int m, int out, float* ref) {
  const int inter = out / 2;
  std::vector<__half> hy((size_t)m * out);
  CK(cudaMemcpy(hy.data(), y, hy.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<float> act((size_t)m * inter);
  for (int t = 0; t < m; ++t)
    for (int i = 0; i < inter; ++i) {
      const size_t gcol = 16 * (size_t)(i / 8) + i % 8;
      const float g = __half2float(hy[(size_t)t * out + gcol]), u = __half2float(hy[(size_t)t * out + gcol + 8]);
      act[(size_t)t * inter + i] = g / (1.f + std::exp(-g)) * u;
    }
  CK(cudaMemcpy(ref, act.data(), act.size() * 4, cudaMemcpyHostToDevice));
}

// awq_linear_silu of f.x's first m rows into f.act, against f.ref (glu_reference); prints the case when it fails or
// when verbose.
static bool check_glu(const AwqFixture& f, int in, int out, int group, int m, void* lws, const char* name,
                      bool verbose) {
  CK(cudaMemset(f.act, 0xff, (size_t)m * out / 2 * 2));
  const cudaError_t e =
      awqk::awq_linear_silu(f.x, m, f.packed, in, out, group, f.act, 0, lws, awqk::linear_workspace_bytes());
  CK(cudaDeviceSynchronize());
  if (e != cudaSuccess) {
    std::printf("  %-58s %s FAIL\n", name, cudaGetErrorString(e));
    return false;
  }
  const ErrStat es = compare(f.act, f.ref, m, out / 2);
  const bool good = !es.nan && es.rel() < 2e-3;
  if (!good || verbose) std::printf("  %-58s rel err %.2e %s\n", name, es.rel(), good ? "ok" : "FAIL");
  return good;
}

bool test_gemv_fused() {
  std::printf("Decode GEMV: fused gate|up + SiLU, fused residual add + RMSNorm, L2 prefetch\n");
  setenv("AWQ_GEMV_ADDNORM", "1", 0);  // the fused path is off by default; read once per process
  void* lws;
  CK(cudaMalloc(&lws, awqk::linear_workspace_bytes()));
  CK(cudaMemset(lws, 0, awqk::linear_workspace_bytes()));
  struct Case {
    int in, out, group;
  };
  const Case cases[] = {{256, 512, 128}, {768, 1056, 64}, {5120, 27648, 128}, {13824, 5120, 128}};
  bool ok = true;
  uint64_t seed = 101;
  for (const Case& c : cases) {
    const int mMax = 32;  // the prefetch builds are checked at m = 16 and 32 too (two and four token tiles)
    AwqFixture f(c.in, c.out, c.group, mMax, seed);
    int32_t *qw = f.qw, *qz = f.qz;
    __half *sc = f.sc, *x = f.x, *y = f.y;
    float* ref = f.ref;
    void* packed = f.packed;
    for (int m : {1, 3, 8}) {
      // Fused gate|up + SiLU through the GEMV (the matrix read as gate|up interleaved by 8): against the unfused
      // GEMV's fp16 output put through the SiLU product on the host.
      CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
      CK(cudaDeviceSynchronize());
      glu_reference(y, m, c.out, ref);
      for (int v : {0, 2}) {
        awqk::awq_gemv_override({v, 0, 1});
        char name[128];
        std::snprintf(name, sizeof name, "gemv glu in=%d out=%d g=%d m=%d v%d", c.in, c.out, c.group, m, v);
        ok &= check_glu(f, c.in, c.out, c.group, m, lws, name, true);
      }
      awqk::awq_gemv_override({});
      for (int v : {0, 12, 18, 9}) {
        awqk::awq_gemv_override({v, v == 18 ? 16 : 0, 1});
        ok &= test_add_rmsnorm(x, packed, c.in, c.out, c.group, m, y, lws);
      }
      awqk::awq_gemv_override({});
      // Prefetch on: every variant against the naive reference.
      ref_awq_linear(x, m, qw, qz, sc, c.in, c.out, c.group, ref);
      for (int v : {0, 2, 3, 16, 17, 10, 12, 18}) {
        for (int mode : {1, 2}) {
          for (int pf : {4, 32}) {
            awqk::awq_gemv_override({v, pf, mode});
            CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
            CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
            CK(cudaDeviceSynchronize());
            char name[128];
            std::snprintf(name, sizeof name, "prefetch in=%d out=%d m=%d v%d mode%d pf%d", c.in, c.out, m, v, mode, pf);
            const ErrStat es = compare(y, ref, m, c.out);
            const bool good = !es.nan && es.rel() < kTol;
            if (!good) std::printf("  %-58s rel err %.2e FAIL\n", name, es.rel());
            ok &= good;
          }
        }
      }
      awqk::awq_gemv_override({});
    }
    for (int m : {16, 32}) {  // GEMV at m > 8 (no workspace: awq_linear keeps the GEMV up to 32 rows)
      ref_awq_linear(x, m, qw, qz, sc, c.in, c.out, c.group, ref);
      for (int v : {0, 2}) {  // 0: the bulk-copy kernel on Hopper; 2: the register kernel
        for (int mode : {1, 2}) {
          awqk::awq_gemv_override({v, 8, mode});
          CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
          CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0));
          CK(cudaDeviceSynchronize());
          char name[128];
          std::snprintf(name, sizeof name, "prefetch in=%d out=%d m=%d v%d mode%d pf8", c.in, c.out, m, v, mode);
          const ErrStat es = compare(y, ref, m, c.out);
          const bool good = !es.nan && es.rel() < kTol;
          if (!good) std::printf("  %-58s rel err %.2e FAIL\n", name, es.rel());
          ok &= good;
        }
      }
      awqk::awq_gemv_override({});
    }
  }
  CK(cudaFree(lws));
  std::printf("  decode GEMV options: %s\n", ok ? "ok" : "FAIL");
  return ok;
}

// AWQ_WS_VARIANTS=1,3 (say): only those variants of the warp-specialized GEMM (a hang in one leaves the others).
static bool ws_variant_on(int v) {
  const char* e = std::getenv("AWQ_WS_VARIANTS");
  if (e == nullptr || *e == 0) return true;
  for (const char* c = e; *c; ++c)
    if (*c - '0' == v) return true;
  return false;
}

// The warp-specialized GEMM's gate|up + SiLU epilogue (awq_linear_silu) against the unfused linear's fp16 output put
// through the SiLU product on the host, the outputs read as gate|up interleaved by 8; every tile variant, stream-K on
// and off, ragged m.
bool test_ws_glu() {
  int dev = 0, major = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  if (major != 9) return true;
  std::printf("Warp-specialized GEMM: gate|up (interleaved by 8) + SiLU epilogue\n");
  void* lws;
  CK(cudaMalloc(&lws, awqk::linear_workspace_bytes()));
  CK(cudaMemset(lws, 0, awqk::linear_workspace_bytes()));
  struct Case {
    int in, out, group;
  };
  const Case cases[] = {{256, 512, 128}, {768, 1056, 64}, {5120, 27648, 128}};
  bool ok = true;
  uint64_t seed = 301;
  const int mMax = 384;
  for (const Case& c : cases) {
    AwqFixture f(c.in, c.out, c.group, mMax, seed);
    // 257 / 300 / 321 / 384: 256 rows + a tail linear of 1 / 44 / 65 / 128 (ws_tail_rows; not 321 / 384 under =64).
    for (int m : {9, 16, 40, 100, 257, 300, 321, 384}) {
      CK(awqk::awq_linear(f.x, m, f.packed, c.in, c.out, c.group, f.y, 0, lws, awqk::linear_workspace_bytes()));
      CK(cudaDeviceSynchronize());
      glu_reference(f.y, m, c.out, f.ref);
      for (int v = 0; v <= awqk::kGemmWsVariants; ++v) {
        if (v > 0 && !ws_variant_on(v)) continue;
        for (int sk : {1, 0}) {
          awqk::gemm_ws_variant_override(v);
          awqk::gemm_ws_sk_override(sk);
          char name[128];
          std::snprintf(name, sizeof name, "ws glu in=%d out=%d g=%d m=%d v%d sk%d", c.in, c.out, c.group, m, v, sk);
          ok &= check_glu(f, c.in, c.out, c.group, m, lws, name, v == 0);
        }
      }
      awqk::gemm_ws_variant_override(0);
      awqk::gemm_ws_sk_override(-1);
    }
  }
  CK(cudaFree(lws));
  std::printf("  gate|up + SiLU epilogue: %s\n", ok ? "ok" : "FAIL");
  return ok;
}

namespace {

// Waits for the legacy stream. A kernel still running after 20 s (the largest call here takes well under 1 s) is
// reported as a hang under its case name and the process exits at once (rc 3): a hung kernel cannot be stopped
// from inside the process, and a step killed by `timeout` would spend its whole limit and lose the name. A kernel
// that failed (its bounded waits trap after 2 s) is reported under its name too (rc 4: the error is sticky).
void sync_or_hang(const char* name) {
  const auto t0 = std::chrono::steady_clock::now();
  cudaError_t e;
  while ((e = cudaStreamQuery(0)) == cudaErrorNotReady) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(20)) {
      std::printf("  %-58s HANG (still running after 20 s) FAIL\n", name);
      std::fflush(stdout);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (e != cudaSuccess) {  // e.g. the kernel's own bounded waits trapped (gemm_sm90_ws.cu): the error is sticky
    std::printf("  %-58s FAIL (%s)\n", name, cudaGetErrorString(e));
    std::fflush(stdout);
    std::_Exit(4);
  }
}

// Order-independent 64-bit digest of n fp16 values (bit patterns weighted by position): equal digests of two
// outputs mean bit-identical results (up to a hash collision).
__global__ void digest_kernel(const uint16_t* v, size_t n, unsigned long long* out) {
  unsigned long long s = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    s += (unsigned long long)(v[i] + 1) * (2654435761ull * i + 0x9E3779B97F4A7C15ull);
  atomicAdd(out, s);
}
unsigned long long digest(const __half* y, size_t n) {
  unsigned long long* d;
  CK(cudaMalloc(&d, sizeof(unsigned long long)));
  CK(cudaMemset(d, 0, sizeof(unsigned long long)));
  digest_kernel<<<256, 256>>>(reinterpret_cast<const uint16_t*>(y), n, d);
  unsigned long long h = 0;
  CK(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost));
  CK(cudaFree(d));
  return h;
}

}  // namespace

// The warp-specialized persistent AWQ GEMM (gemm_sm90_ws.cu, Hopper only): every tile variant, with and without
// stream-K, on the 13B shapes at prefill sizes (ragged m included) and on a small shape with a partial 16-output
// tile. Each call twice; before every call the workspace's partial-sum area is filled with NaNs (an owner that
// reads a slot nobody wrote in this call, or reads it before the write, gets NaNs into y), after every stream-K
// call the tile counters must all be back to zero (read back), and the second call's output must be bit-identical
// to the first's (the partials are added in a fixed order). A call that does not finish is reported as a hang.
bool test_awq_ws() {
  int dev = 0, major = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  std::printf("AWQ warp-specialized GEMM (gemm_sm90_ws) vs naive dequant reference\n");
  if (major != 9) {
    std::printf("  skipped: not a Hopper GPU\n");
    return true;
  }
  const std::vector<AwqCase> cases = {
      {768, 264, 64, {1, 9, 40, 65, 130, 300, 1000}},
      {5120, 15360, 128, {16, 32, 64, 128, 200, 256, 512, 1000, 2048, 4096}},
      {5120, 5120, 128, {1, 5, 8, 13, 64, 65, 128, 200, 256, 512, 1000, 2048, 4096}},
      {5120, 27648, 128, {16, 128, 256, 512, 2048, 4096}},
      {13824, 5120, 128, {16, 33, 128, 200, 256, 512, 1000, 2048, 4096}},
  };
  bool ok = true;
  uint64_t seed = 500;
  void* lws;
  const size_t lwsBytes = awqk::linear_workspace_bytes();
  CK(cudaMalloc(&lws, lwsBytes));
  CK(cudaMemset(lws, 0, lwsBytes));
  // The linear workspace: kLinearCounters tile counters (kept zero between calls), then the partial sums.
  const size_t kCountersBytes = awqk::kLinearCounters * sizeof(int);
  void* partials = static_cast<char*>(lws) + kCountersBytes;
  std::vector<int> counters(awqk::kLinearCounters);
  for (const auto& c : cases) {
    const int mMax = *std::max_element(c.ms.begin(), c.ms.end());
    int32_t *qw, *qz;
    __half *sc, *x, *y;
    float* ref;
    void* packed;
    const size_t groups = c.in / c.group;
    CK(cudaMalloc(&qw, (size_t)c.in * c.out / 8 * 4));
    CK(cudaMalloc(&qz, groups * c.out / 8 * 4));
    CK(cudaMalloc(&sc, groups * c.out * 2));
    CK(cudaMalloc(&x, (size_t)mMax * c.in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * c.out * 2));
    CK(cudaMalloc(&ref, (size_t)mMax * c.out * 4));
    CK(cudaMalloc(&packed, awqk::awq_packed_bytes(c.in, c.out, c.group)));
    fill_i32(qw, (size_t)c.in * c.out / 8, seed++);
    fill_i32(qz, groups * c.out / 8, seed++);
    fill_half(sc, groups * c.out, seed++, 0.001f, 0.01f);
    fill_half(x, (size_t)mMax * c.in, seed++, -1.f, 1.f);
    CK(awqk::awq_repack(qw, qz, sc, c.in, c.out, c.group, packed, 0));
    for (int m : c.ms) {
      ref_awq_linear(x, m, qw, qz, sc, c.in, c.out, c.group, ref);
      CK(cudaDeviceSynchronize());
      for (int variant = 1; variant <= awqk::kGemmWsVariants; ++variant) {
        if (!ws_variant_on(variant)) continue;
        for (int sk : {1, 0}) {
          unsigned long long first = 0;
          for (int rep = 0; rep < 2; ++rep) {
            CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));  // NaN pattern: unwritten outputs fail
            CK(cudaMemset(partials, 0xff, lwsBytes - kCountersBytes));
            const cudaError_t e = awqk::gemm_sm90_ws(variant, sk, x, m, packed, c.in, c.out, c.group, y,
                                                     sk ? lws : nullptr, sk ? lwsBytes : 0, 0);
            char name[128];
            std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d ws v%d stream-K %d%s", c.in, c.out, c.group,
                          m, variant, sk, rep ? " (again)" : "");
            if (e != cudaSuccess) {
              std::printf("  %-58s FAIL (%s)\n", name, cudaGetErrorString(e));
              ok = false;
              continue;
            }
            sync_or_hang(name);
            ok &= report(name, compare(y, ref, m, c.out));
            const unsigned long long d = digest(y, (size_t)m * c.out);
            if (rep == 0) first = d;
            else if (d != first) {
              std::printf("  %-58s FAIL (output differs from the first call's)\n", name);
              ok = false;
            }
            if (sk) {
              CK(cudaMemcpy(counters.data(), lws, kCountersBytes, cudaMemcpyDeviceToHost));
              const int dirty = (int)std::count_if(counters.begin(), counters.end(), [](int v) { return v != 0; });
              if (dirty != 0) {
                std::printf("  %-58s FAIL (%d stream-K counters left non-zero)\n", name, dirty);
                ok = false;
                CK(cudaMemset(lws, 0, kCountersBytes));
              }
            }
          }
        }
      }
      // Through awq_linear with the workspace, as the engine calls it (the tile variant awq_linear picks for m; only
      // when that variant is selected, so that a hang in it cannot stop the checks of the others).
      // m = 9..64: the default rule (3: m >= AWQ_GEMM_WS_MIN_ROWS, 9 unless set), which sends them to the decode tiles.
      if (m >= 9 && ws_variant_on(awqk::gemm_ws_default_variant(m, c.in, c.out))) {
        char name[128];
        std::snprintf(name, sizeof name, "in=%d out=%d group=%d m=%d awq_linear ws path (v%d)", c.in, c.out, c.group,
                      m, awqk::gemm_ws_default_variant(m, c.in, c.out));
        awqk::gemm_ws_override(m > 64 ? 2 : 3);
        CK(cudaMemset(y, 0xff, (size_t)m * c.out * 2));
        CK(awqk::awq_linear(x, m, packed, c.in, c.out, c.group, y, 0, lws, lwsBytes));
        sync_or_hang(name);
        awqk::gemm_ws_override(0);
        ok &= report(name, compare(y, ref, m, c.out));
      }
    }
    CK(cudaFree(qw));
    CK(cudaFree(qz));
    CK(cudaFree(sc));
    CK(cudaFree(x));
    CK(cudaFree(y));
    CK(cudaFree(ref));
    CK(cudaFree(packed));
  }
  CK(cudaFree(lws));
  return ok;
}
