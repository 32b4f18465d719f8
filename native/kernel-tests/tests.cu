// Correctness: every kernel path against a naive fp32 reference on random inputs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

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
      {256, 512, 128, {1, 3, 8, 9, 16, 17, 32, 33, 64, 100, 129, 256}},
      {768, 264, 64, {1, 7, 20, 40, 200, 300}},
      {5120, 15360, 128, {1, 8, 16, 32, 64, 128, 512}},
      {5120, 5120, 128, {1, 8, 32, 128, 512, 2048}},
      {5120, 27648, 128, {1, 8, 32, 128, 512}},
      {13824, 5120, 128, {1, 8, 32, 64, 128, 512}},
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
        for (int v : {2, 3, 9, 12, 13, 14}) {
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
  return ok;
}
