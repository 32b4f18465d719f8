// Benchmarks on the Llama-2-13B shapes: linears at m = 1..2048 (weights rotated through enough
// copies to defeat the 50 MB L2, as in a real decode step) and paged attention.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernels/internal.h"
#include "../kernels/kernels.h"
#include "harness.h"

namespace {

struct Shape {
  const char* name;
  int in, out;
  bool awq;
  int perLayer;  // how many per layer (0: once per token, lm_head)
};

const Shape kShapes[] = {
    {"qkv 5120x15360", 5120, 15360, true, 1},
    {"o 5120x5120", 5120, 5120, true, 1},
    {"gate_up 5120x27648", 5120, 27648, true, 1},
    {"down 13824x5120", 13824, 5120, true, 1},
    {"lm_head fp16 5120x32002", 5120, 32002, false, 0},
};

}  // namespace

void bench_linears(bool quick) {
  const std::vector<int> ms = quick ? std::vector<int>{1, 8, 128, 2048}
                                    : std::vector<int>{1, 8, 16, 32, 128, 512, 2048};
  std::printf("\nLinears (median of 7 batches; weights rotated over copies totalling >= 150 MB)\n");
  std::printf("%-24s %6s %10s %9s %9s\n", "shape", "m", "us", "GB/s", "TFLOP/s");
  std::vector<double> stepMs(ms.size(), 0.0);
  for (const Shape& s : kShapes) {
    const size_t wBytes = s.awq ? awqk::awq_packed_bytes(s.in, s.out, 128) : (size_t)s.in * s.out * 2;
    const int copies = (int)std::min<size_t>(16, std::max<size_t>(1, (150u << 20) / wBytes + 1));
    std::vector<void*> ws(copies);
    for (int c = 0; c < copies; ++c) CK(cudaMalloc(&ws[c], wBytes));
    if (s.awq) {
      int32_t *qw, *qz;
      __half* sc;
      CK(cudaMalloc(&qw, (size_t)s.in * s.out / 2));
      CK(cudaMalloc(&qz, (size_t)s.in / 128 * s.out / 2));
      CK(cudaMalloc(&sc, (size_t)s.in / 128 * s.out * 2));
      fill_i32(qw, (size_t)s.in * s.out / 8, 7);
      fill_i32(qz, (size_t)s.in / 128 * s.out / 8, 8);
      fill_half(sc, (size_t)s.in / 128 * s.out, 9, 0.001f, 0.01f);
      CK(awqk::awq_repack(qw, qz, sc, s.in, s.out, 128, ws[0], 0));
      CK(cudaFree(qw));
      CK(cudaFree(qz));
      CK(cudaFree(sc));
    } else {
      fill_half(static_cast<__half*>(ws[0]), (size_t)s.in * s.out, 10, -0.05f, 0.05f);
    }
    for (int c = 1; c < copies; ++c) CK(cudaMemcpy(ws[c], ws[0], wBytes, cudaMemcpyDeviceToDevice));
    const int mMax = ms.back();
    __half *x, *y;
    CK(cudaMalloc(&x, (size_t)mMax * s.in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * s.out * 2));
    fill_half(x, (size_t)mMax * s.in, 11, -1.f, 1.f);
    for (size_t mi = 0; mi < ms.size(); ++mi) {
      const int m = ms[mi];
      const int inner = std::max(copies, 2 * copies * std::max(1, 8 / copies));
      const double ms_ = time_ms(
          [&](int i) {
            void* w = ws[i % copies];
            if (s.awq)
              CK(awqk::awq_linear(x, m, w, s.in, s.out, 128, y, 0));
            else
              CK(awqk::dense_linear(x, m, static_cast<__half*>(w), s.in, s.out, y, 0));
          },
          inner);
      const double bytes = (double)wBytes + (double)m * (s.in + s.out) * 2;
      const double gbs = bytes / (ms_ * 1e-3) / 1e9;
      const double tf = 2.0 * m * s.in * s.out / (ms_ * 1e-3) / 1e12;
      std::printf("%-24s %6d %10.1f %9.0f %9.1f\n", s.name, m, ms_ * 1e3, gbs, tf);
      stepMs[mi] += ms_ * (s.perLayer ? 40 * s.perLayer : 1);
    }
    for (void* w : ws) CK(cudaFree(w));
    CK(cudaFree(x));
    CK(cudaFree(y));
  }
  std::printf("\n13B forward, linears only (40 layers x 4 AWQ linears + fp16 lm_head):\n");
  std::printf("%6s %12s %16s\n", "m", "ms/step", "tokens/s ceiling");
  for (size_t mi = 0; mi < ms.size(); ++mi)
    std::printf("%6d %12.3f %16.0f\n", ms[mi], stepMs[mi], ms[mi] * 1e3 / stepMs[mi]);
}

// Configuration sweep: GEMV variants at m = 1 and GEMM tiles at m = 512 / 2048 (AWQ shapes).
void bench_variants() {
  std::printf("\nVariants (us): GEMV m=1 [variant v1..v4, v2 = default] | GEMM m=512 and m=2048 [cfg 2=mma.sync 128x128 5=wgmma 128x128 6=wgmma 128x256]\n");
  for (const Shape& s : kShapes) {
    if (!s.awq) continue;
    const size_t wBytes = awqk::awq_packed_bytes(s.in, s.out, 128);
    const int copies = (int)std::min<size_t>(16, std::max<size_t>(1, (150u << 20) / wBytes + 1));
    std::vector<void*> ws(copies);
    for (int c = 0; c < copies; ++c) {
      CK(cudaMalloc(&ws[c], wBytes));
      CK(cudaMemset(ws[c], 0x11, wBytes));
    }
    __half *x, *y;
    CK(cudaMalloc(&x, (size_t)2048 * s.in * 2));
    CK(cudaMalloc(&y, (size_t)2048 * s.out * 2));
    fill_half(x, (size_t)2048 * s.in, 11, -1.f, 1.f);
    auto run = [&](int m) {
      return time_ms([&](int i) { CK(awqk::awq_linear(x, m, ws[i % copies], s.in, s.out, 128, y, 0)); },
                     2 * copies);
    };
    std::printf("%-22s", s.name);
    for (int v = 1; v <= 4; ++v) {
      awqk::awq_gemv_override({v});
      std::printf(" v%d %5.1f", v, run(1) * 1e3);
    }
    awqk::awq_gemv_override({0});
    std::printf(" |");
    for (int m : {512, 2048})
      for (int cfg : {2, 5, 6}) {
        awqk::gemm_override(cfg);
        std::printf(" m%d c%d %7.1f", m, cfg, run(m) * 1e3);
      }
    awqk::gemm_override(0);
    std::printf("\n");
    for (void* w : ws) CK(cudaFree(w));
    CK(cudaFree(x));
    CK(cudaFree(y));
  }
}

namespace {

struct AttnBuffers {
  __half *q, *kc, *vc, *o;
  int32_t *bt, *qs, *ctx;
  void* ws;
  size_t wsBytes;
};

}  // namespace

void bench_attention(bool quick) {
  const int H = 40, D = 128;
  std::printf("\nPaged attention, H=%d D=%d (13B)\n", H, D);
  std::printf("%-34s %10s %9s %9s\n", "case", "us", "GB/s", "TFLOP/s");
  struct Case {
    int batch, qLen, ctx;
  };
  std::vector<Case> cases = {{1, 512, 512}, {1, 2048, 2048}, {4, 512, 512},
                             {1, 1, 512},   {1, 1, 2048},    {8, 1, 512},
                             {8, 1, 2048},  {32, 1, 512},    {32, 1, 2048},
                             {128, 1, 512}, {128, 1, 2048}};
  if (quick) cases = {{1, 2048, 2048}, {1, 1, 2048}, {32, 1, 2048}};
  for (const Case& c : cases) {
    const int blocksPer = (c.ctx + 15) / 16;
    const int numBlocks = c.batch * blocksPer;
    const int tokens = c.batch * c.qLen;
    AttnBuffers b{};
    const size_t cacheElems = (size_t)numBlocks * 16 * H * D;
    CK(cudaMalloc(&b.q, (size_t)tokens * H * D * 2));
    CK(cudaMalloc(&b.o, (size_t)tokens * H * D * 2));
    CK(cudaMalloc(&b.kc, cacheElems * 2));
    CK(cudaMalloc(&b.vc, cacheElems * 2));
    fill_half(b.q, (size_t)tokens * H * D, 1, -1.f, 1.f);
    fill_half(b.kc, cacheElems, 2, -1.f, 1.f);
    fill_half(b.vc, cacheElems, 3, -1.f, 1.f);
    std::vector<int> bt((size_t)c.batch * blocksPer), qs(c.batch + 1), ctx(c.batch, c.ctx);
    for (size_t i = 0; i < bt.size(); ++i) bt[i] = (int)i;
    for (int i = 0; i <= c.batch; ++i) qs[i] = i * c.qLen;
    CK(cudaMalloc(&b.bt, bt.size() * 4));
    CK(cudaMalloc(&b.qs, qs.size() * 4));
    CK(cudaMalloc(&b.ctx, ctx.size() * 4));
    CK(cudaMemcpy(b.bt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b.qs, qs.data(), qs.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b.ctx, ctx.data(), ctx.size() * 4, cudaMemcpyHostToDevice));
    b.wsBytes = awqk::paged_attention_decode_workspace_bytes(c.batch, H, D, c.ctx);
    CK(cudaMalloc(&b.ws, b.wsBytes));
    const float scale = 1.f / std::sqrt((float)D);
    const bool decode = c.qLen == 1;
    const double t = time_ms(
        [&](int) {
          if (decode)
            CK(awqk::paged_attention_decode(b.q, b.kc, b.vc, b.bt, blocksPer, b.ctx, c.batch, c.ctx, H, H,
                                            D, scale, b.ws, b.wsBytes, b.o, 0));
          else
            CK(awqk::paged_attention_prefill(b.q, b.kc, b.vc, b.bt, blocksPer, b.qs, b.ctx, c.batch,
                                             c.qLen, H, H, D, scale, b.o, 0));
        },
        10);
    double pairs = 0;  // (query, key) pairs attended
    for (int j = 0; j < c.qLen; ++j) pairs += c.ctx - c.qLen + j + 1;
    pairs *= c.batch;
    const double flops = 4.0 * pairs * H * D;
    const double kvBytes = 2.0 * c.batch * c.ctx * H * D * 2;
    char name[96];
    std::snprintf(name, sizeof name, "%s batch=%d q=%d ctx=%d", decode ? "decode " : "prefill", c.batch,
                  c.qLen, c.ctx);
    std::printf("%-34s %10.1f %9.0f %9.1f\n", name, t * 1e3, kvBytes / (t * 1e-3) / 1e9,
                flops / (t * 1e-3) / 1e12);
    CK(cudaFree(b.q));
    CK(cudaFree(b.o));
    CK(cudaFree(b.kc));
    CK(cudaFree(b.vc));
    CK(cudaFree(b.bt));
    CK(cudaFree(b.qs));
    CK(cudaFree(b.ctx));
    CK(cudaFree(b.ws));
  }
}
