// Benchmarks on the Llama-2-13B shapes: linears at m = 1..2048 (weights rotated through enough
// copies to defeat the 50 MB L2, as in a real decode step) and paged attention.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../kernels/common.cuh"
#include "../kernels/gemm_ws.h"
#include "../kernels/internal.h"
#include "../kernels/kernels.h"
#include "../kernels/launch.h"
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

// The split-K workspace of the engine (zeroed once, left zero by the kernels).
void* linear_ws() {
  static void* p = nullptr;
  if (p == nullptr) {
    CK(cudaMalloc(&p, awqk::linear_workspace_bytes()));
    CK(cudaMemset(p, 0, awqk::linear_workspace_bytes()));
  }
  return p;
}

// One matrix of a shape, rotated over enough copies to defeat the 60 MB L2.
struct Weights {
  const Shape& s;
  size_t bytes;
  std::vector<void*> copies;
  explicit Weights(const Shape& sh) : s(sh) {
    bytes = s.awq ? awqk::awq_packed_bytes(s.in, s.out, 128) : (size_t)s.in * s.out * 2;
    const int n = (int)std::min<size_t>(16, std::max<size_t>(1, (200u << 20) / bytes + 1));
    copies.resize(n);
    for (int c = 0; c < n; ++c) CK(cudaMalloc(&copies[c], bytes));
    if (s.awq) {
      int32_t *qw, *qz;
      __half* sc;
      CK(cudaMalloc(&qw, (size_t)s.in * s.out / 2));
      CK(cudaMalloc(&qz, (size_t)s.in / 128 * s.out / 2));
      CK(cudaMalloc(&sc, (size_t)s.in / 128 * s.out * 2));
      fill_i32(qw, (size_t)s.in * s.out / 8, 7);
      fill_i32(qz, (size_t)s.in / 128 * s.out / 8, 8);
      fill_half(sc, (size_t)s.in / 128 * s.out, 9, 0.001f, 0.01f);
      CK(awqk::awq_repack(qw, qz, sc, s.in, s.out, 128, copies[0], 0));
      CK(cudaFree(qw));
      CK(cudaFree(qz));
      CK(cudaFree(sc));
    } else {
      fill_half(static_cast<__half*>(copies[0]), (size_t)s.in * s.out, 10, -0.05f, 0.05f);
    }
    for (int c = 1; c < n; ++c) CK(cudaMemcpy(copies[c], copies[0], bytes, cudaMemcpyDeviceToDevice));
  }
  ~Weights() {
    for (void* w : copies) cudaFree(w);
  }
  // Median us of one call at m rows (ws: with the split-K workspace, as the engine calls it).
  double us(const __half* x, int m, __half* y, bool ws) const {
    const int n = (int)copies.size();
    const int inner = std::max(n, 2 * n * std::max(1, 8 / n));
    return 1e3 * time_ms(
                     [&](int i, cudaStream_t st) {
                       void* w = copies[i % n];
                       if (s.awq)
                         CK(awqk::awq_linear(x, m, w, s.in, s.out, 128, y, st, ws ? linear_ws() : nullptr,
                                             ws ? awqk::linear_workspace_bytes() : 0));
                       else
                         CK(awqk::dense_linear(x, m, static_cast<__half*>(w), s.in, s.out, y, st));
                     },
                     inner);
  }
};

}  // namespace

int probe_linear(const char* shape, int m, int calls) {
  const Shape* s = nullptr;
  for (const Shape& c : kShapes)
    if (std::strncmp(c.name, shape, std::strlen(shape)) == 0 && c.name[std::strlen(shape)] == ' ') s = &c;
  if (s == nullptr || m < 1 || calls < 1) {
    std::printf("--probe-linear: unknown shape \"%s\" (qkv, o, gate_up, down, lm_head) or m / calls < 1\n", shape);
    return 2;
  }
  const size_t bytes = s->awq ? awqk::awq_packed_bytes(s->in, s->out, 128) : (size_t)s->in * s->out * 2;
  void* w;
  __half *x, *y;
  CK(cudaMalloc(&w, bytes));
  CK(cudaMalloc(&x, (size_t)m * s->in * 2));
  CK(cudaMalloc(&y, (size_t)m * s->out * 2));
  CK(cudaMemset(w, 0x11, bytes));  // values do not matter for a profile; the scales become small fp16 numbers
  fill_half(x, (size_t)m * s->in, 11, -1.f, 1.f);
  for (int i = 0; i < calls; ++i) {
    if (s->awq)
      CK(awqk::awq_linear(x, m, w, s->in, s->out, 128, y, 0, linear_ws(), awqk::linear_workspace_bytes()));
    else
      CK(awqk::dense_linear(x, m, static_cast<__half*>(w), s->in, s->out, y, 0));
  }
  CK(cudaDeviceSynchronize());
  std::printf("probe-linear %s m=%d: %d calls of the engine's dispatch, eager\n", s->name, m, calls);
  CK(cudaFree(w));
  CK(cudaFree(x));
  CK(cudaFree(y));
  return 0;
}

void bench_linears(bool quick) {
  const std::vector<int> ms = quick ? std::vector<int>{1, 8, 64, 128}
                                    : std::vector<int>{1, 4, 8, 16, 32, 64, 128, 512, 2048};
  std::printf("\nLinears (%s; median of 7; weights rotated over copies totalling >= 200 MB). GB/s counts the\n"
              "int4 weights + scales/zeros (+ x and y); 'other' = the other workspace path (register-A GEMM <-> GEMV / smem-B GEMM), 'no-ws' = without the split-K workspace, 'no-PDL' = plain launches\n",
              g_time_graphs ? "CUDA graph replay of back-to-back calls" : "eager launches");
  std::printf("%-24s %6s %10s %9s %9s %10s %10s %10s %8s\n", "shape", "m", "us", "GB/s", "TFLOP/s", "other us",
              "no-ws us", "no-PDL us", "x m=1");
  std::vector<double> stepMs(ms.size(), 0.0);
  for (const Shape& s : kShapes) {
    Weights w(s);
    const int mMax = ms.back();
    __half *x, *y;
    CK(cudaMalloc(&x, (size_t)mMax * s.in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * s.out * 2));
    fill_half(x, (size_t)mMax * s.in, 11, -1.f, 1.f);
    double us1 = 0;
    for (size_t mi = 0; mi < ms.size(); ++mi) {
      const int m = ms[mi];
      const double us = w.us(x, m, y, true);
      if (mi == 0) us1 = us;
      const double usOld = s.awq && m > 8 && m <= 256 ? w.us(x, m, y, false) : 0;
      // The other workspace path at m <= 256: the split-K smem-B GEMM / GEMV when the register-A one is the
      // default, and the other way round.
      double usAlt = 0;
      if (s.awq && m <= 256) {
        const bool rs = awqk::awq_rs_path(m, s.in, s.out);
        if (rs || m > 8) {
          awqk::gemm_path_override(rs ? 1 : 2);
          usAlt = w.us(x, m, y, true);
          awqk::gemm_path_override(0);
        }
      }
      double usNoPdl = 0;
      if (m <= 8 || m == 64 || m == 128) {
        awqk::set_pdl(false);
        usNoPdl = w.us(x, m, y, true);
        awqk::set_pdl(true);
      }
      const double bytes = (double)w.bytes + (double)m * (s.in + s.out) * 2;
      const double gbs = bytes / (us * 1e-6) / 1e9;
      const double tf = 2.0 * m * s.in * s.out / (us * 1e-6) / 1e12;
      std::printf("%-24s %6d %10.1f %9.0f %9.1f %10.1f %10.1f %10.1f %8.2f\n", s.name, m, us, gbs, tf, usAlt, usOld,
                  usNoPdl, us / us1);
      stepMs[mi] += us * 1e-3 * (s.perLayer ? 40 * s.perLayer : 1);
    }
    CK(cudaFree(x));
    CK(cudaFree(y));
  }
  std::printf("\n13B forward, linears only (40 layers x 4 AWQ linears + fp16 lm_head):\n");
  std::printf("%6s %12s %16s\n", "m", "ms/step", "tokens/s ceiling");
  for (size_t mi = 0; mi < ms.size(); ++mi)
    std::printf("%6d %12.3f %16.0f\n", ms[mi], stepMs[mi], ms[mi] * 1e3 / stepMs[mi]);
}

// Configuration sweep: GEMV variants at m = 1 and 8; split counts of the split-K wgmma at m = 16 / 64 / 128.
void bench_variants() {
  std::printf("\nVariants (us): GEMV m=1/8/16/32 [v1..v8 register bursts, v9..v12 bulk-copy ring; v0 = default] | split-K wgmma (smem-B: dequantized B tile in shared memory; reg-A: register-A swap-AB) [s = splits, s0 = auto]\n");
  for (const Shape& s : kShapes) {
    if (!s.awq) continue;
    Weights w(s);
    __half *x, *y;
    CK(cudaMalloc(&x, (size_t)256 * s.in * 2));
    CK(cudaMalloc(&y, (size_t)256 * s.out * 2));
    fill_half(x, (size_t)256 * s.in, 11, -1.f, 1.f);
    for (int m : {1, 8, 16, 32}) {
      std::printf("%-22s m%-4d", s.name, m);
      // Above 8 rows awq_linear with a workspace would take the register-A GEMM whatever the GEMV variant: path 1
      // keeps these rows on the GEMV, so that the variants are what is timed (v0 = the GEMV's own default there).
      if (m > 8) awqk::gemm_path_override(1);
      for (int v = 0; v <= 21; ++v) {
        if (v >= 16 && v <= 18) continue;  // evict-first builds: no gain in the H100 sweep
        if (m > 8 && v != 0 && v != 2 && v != 9 && v != 13 && v < 19) continue;
        if (m <= 8 && (v == 1 || v == 5 || v == 6 || v == 11)) continue;  // never the best in the H200 sweep
        awqk::awq_gemv_override({v});
        std::printf(" v%d %5.1f", v, w.us(x, m, y, true));
      }
      awqk::awq_gemv_override({0});
      awqk::gemm_path_override(0);
      std::printf("\n");
    }
    for (int m : {16, 32, 64, 128}) {
      std::printf("%-22s m%-4d smem-B", s.name, m);
      awqk::gemm_path_override(1);
      for (int sp : {0, 1, 2, 3, 4, 6}) {
        awqk::gemm_split_override(sp);
        std::printf(" s%d %6.1f", sp, w.us(x, m, y, true));
      }
      std::printf("\n");
      awqk::gemm_path_override(2);
      for (int v = 0; v <= awqk::kRsVariants; ++v) {
        const awqk::RsShape sh = awqk::gemm_rs_shape(v, m);
        if (sh.rows > 2 * m && v != 0) continue;
        std::printf("%-22s m%-4d reg-A v%d (%3d rows, %d chunks a stage, %d blocks/SM)", s.name, m, v, sh.rows, sh.kstep,
                    sh.minBlocks);
        awqk::gemm_rs_variant_override(v);
        for (int sp : {0, 1, 2, 3, 4, 6}) {
          awqk::gemm_split_override(sp);
          std::printf(" s%d %6.1f", sp, w.us(x, m, y, true));
        }
        std::printf("\n");
      }
      awqk::gemm_rs_variant_override(0);
      awqk::gemm_split_override(0);
      awqk::gemm_path_override(0);
    }
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

void bench_attention(bool quick, bool prefillOnly) {
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
  // --attn: prefill only, up to the 4096-token prefill of issue 14 and a 512-token chunk over a 1536-token prefix.
  if (prefillOnly) cases = {{1, 512, 512}, {4, 512, 512}, {1, 2048, 2048}, {1, 4096, 4096}, {1, 512, 2048}};
  // AWQ_BENCH_ATTN_QLEN=N: only the cases of N queries a sequence (say 4096 with --attn --bench-only --eager: one
  // prefill shape, for ncu -k regex:prefill_attention --launch-count 1).
  if (const char* e = std::getenv("AWQ_BENCH_ATTN_QLEN")) {
    const int qLen = std::atoi(e);
    std::vector<Case> kept;
    for (const Case& c : cases)
      if (c.qLen == qLen) kept.push_back(c);
    cases = kept;
  }
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
    CK(cudaMemset(b.ws, 0, b.wsBytes));
    const float scale = 1.f / std::sqrt((float)D);
    const bool decode = c.qLen == 1;
    const double t = time_ms(
        [&](int, cudaStream_t st) {
          if (decode)
            CK(awqk::paged_attention_decode(b.q, b.kc, b.vc, b.bt, blocksPer, b.ctx, c.batch, c.ctx, H, H,
                                            D, scale, b.ws, b.wsBytes, b.o, st));
          else
            CK(awqk::paged_attention_prefill(b.q, b.kc, b.vc, b.bt, blocksPer, b.qs, b.ctx, c.batch,
                                             c.qLen, H, H, D, scale, b.o, st));
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

namespace {

// Read-only probe of the GEMV's weight stream: the blocks, warps and bursts of the register GEMV (NPW tiles a
// block, `warps` warps splitting K, U-chunk bursts of 16-byte loads per lane) with no dequantization or mma, so
// the bandwidth that access pattern alone reaches can be set beside the real kernel's.
template <int NPW, int U>
__global__ void stream_probe_kernel(const uint4* __restrict__ wq, int kChunks, int nTiles, int chunksPerWarp,
                                    unsigned* sink) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int cBegin = warp * chunksPerWarp, cEnd = min(cBegin + chunksPerWarp, kChunks);
  unsigned acc = 0;
  for (int c0 = cBegin; c0 < cEnd; c0 += U) {
    uint4 v[U][NPW];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int p = 0; p < NPW; ++p) {
        const int tile = blockIdx.x * NPW + p;
        v[u][p] = c0 + u < cEnd && tile < nTiles
                      ? awqk::detail::ld_stream16(wq + ((size_t)tile * kChunks + c0 + u) * 32 + lane)
                      : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int p = 0; p < NPW; ++p) acc ^= v[u][p].x ^ v[u][p].y ^ v[u][p].z ^ v[u][p].w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

template <int NPW, int U>
void launch_probe(const void* w, int in, int out, int warps, unsigned* sink, cudaStream_t st) {
  const int kChunks = in / 64, nTiles = out / 16;
  stream_probe_kernel<NPW, U><<<(nTiles + NPW - 1) / NPW, warps * 32, 0, st>>>(
      static_cast<const uint4*>(w), kChunks, nTiles, (kChunks + warps - 1) / warps, sink);
}

}  // namespace

// Decode GEMV sweep of issue 13 (kernel-tests --gemv): m = 1 and 8 on the 13B shapes, GEMV variants x L2 prefetch
// (distance in 64-k chunks; mode 1 = bulk prefetch, 2 = per-lane line prefetch), then one layer's four linears
// back to back (each on its own rotated weights, as in a decode step) with each prefetch setting, with gate|up
// plain or fused with SiLU.
void bench_gemv() {
  struct Pf {
    int dist, mode;
  };
  const Pf pfs[] = {{0, 1}, {8, 1}, {16, 1}, {32, 1}, {64, 1}, {8, 2}, {16, 2}, {32, 2}};
  setenv("AWQ_GEMV_ADDNORM", "1", 0);  // the fused path is off by default; read once per process
  std::printf("\nDecode GEMV x L2 prefetch (us; graph replay, weights rotated; GB/s of the best at the end)\n");
  std::vector<std::unique_ptr<Weights>> ws;
  for (const Shape& s : kShapes)
    if (s.awq) ws.push_back(std::make_unique<Weights>(s));
  __half *x, *y;
  CK(cudaMalloc(&x, (size_t)8 * 13824 * 2));
  CK(cudaMalloc(&y, (size_t)8 * 27648 * 2));
  fill_half(x, (size_t)8 * 13824, 11, -1.f, 1.f);
  std::vector<std::string> summary;  // per shape and m: the default beside the best setting
  for (const auto& w : ws) {
    for (int m : {1, 8}) {
      double defUs = 0, bestUs = 1e30;
      int bestV = 0;
      Pf bestPf{0, 1};
      for (int v : {0, 2, 3, 16, 17, 10, 12, 18}) {
        std::printf("%-20s m%-2d v%-3d", w->s.name, m, v);
        double best = 1e30;
        for (const Pf& p : pfs) {
          awqk::awq_gemv_override({v, p.dist, p.mode});
          const double us = w->us(x, m, y, true);
          best = std::min(best, us);
          if (v == 0 && p.dist == 0) defUs = us;
          if (us < bestUs) {
            bestUs = us;
            bestV = v;
            bestPf = p;
          }
          std::printf(" pf%d/%d %6.1f", p.dist, p.mode, us);
        }
        std::printf("  best %5.0f GB/s\n", (double)w->bytes / (best * 1e-6) / 1e9);
      }
      char line[256];
      std::snprintf(line, sizeof line,
                    "%-20s m%-2d default %6.1f us (%5.0f GB/s)   best v%d pf%d/%d %6.1f us (%5.0f GB/s, %.2fx)", w->s.name,
                    m, defUs, (double)w->bytes / (defUs * 1e-6) / 1e9, bestV, bestPf.dist, bestPf.mode, bestUs,
                    (double)w->bytes / (bestUs * 1e-6) / 1e9, defUs / bestUs);
      summary.push_back(line);
    }
  }
  awqk::awq_gemv_override({});
  std::printf("\nDecode GEMV summary (default = auto variant, no prefetch; best of the sweep above)\n");
  for (const std::string& l : summary) std::printf("%s\n", l.c_str());
  // The weight stream alone (no dequantization, no mma), in the register GEMV's geometry and a few others.
  unsigned* sink;
  CK(cudaMalloc(&sink, 4));
  std::printf("\nWeight stream probe (loads only; GB/s of the int4 weights + zero/scale bytes of the shape)\n");
  for (const auto& w : ws) {
    const Shape& s = w->s;
    std::printf("%-20s", s.name);
    struct P {
      const char* name;
      void (*fn)(const void*, int, int, int, unsigned*, cudaStream_t);
      int warps;
    };
    const P probes[] = {{"npw2 u4 w4", launch_probe<2, 4>, 4},  {"npw2 u2 w8", launch_probe<2, 2>, 8},
                        {"npw1 u8 w4", launch_probe<1, 8>, 4},  {"npw2 u8 w4", launch_probe<2, 8>, 4},
                        {"npw1 u4 w8", launch_probe<1, 4>, 8},  {"npw4 u4 w4", launch_probe<4, 4>, 4},
                        {"npw1 u16 w2", launch_probe<1, 16>, 2}};
    for (const P& p : probes) {
      const int n = (int)w->copies.size();
      const double ms = time_ms([&](int i, cudaStream_t st) { p.fn(w->copies[i % n], s.in, s.out, p.warps, sink, st); },
                                std::max(n, 8));
      std::printf("  %s %5.0f", p.name, (double)w->bytes / (ms * 1e-3) / 1e9);
    }
    std::printf("\n");
  }
  CK(cudaFree(sink));
  // One layer: qkv, o, gate_up, down (or o / down with the fused add + RMSNorm), each call on the next copy of its
  // weights.
  std::printf("\nOne layer's linears back to back (us per layer, m = 1 / 8; graph replay of 8 layers)\n");
  float* res;
  __half *nw, *normed;
  CK(cudaMalloc(&res, (size_t)8 * 5120 * 4));
  CK(cudaMalloc(&nw, (size_t)5120 * 2));
  CK(cudaMalloc(&normed, (size_t)8 * 5120 * 2));
  CK(cudaMemset(res, 0, (size_t)8 * 5120 * 4));
  fill_half(nw, 5120, 12, 0.5f, 1.5f);
  for (int fuse = 0; fuse < 2; ++fuse) {
    const bool addNorm = fuse == 1;
    for (const Pf& p : pfs) {
      std::printf("  %-20s pf%d/%d", addNorm ? "add_rmsnorm" : "plain", p.dist, p.mode);
      for (int m : {1, 8}) {
        awqk::awq_gemv_override({0, p.dist, p.mode});
        const double ms = time_ms(
            [&](int i, cudaStream_t st) {
              for (const auto& w : ws) {
                const Shape& s = w->s;
                void* wp = w->copies[i % w->copies.size()];
                if (addNorm && s.out == 5120 &&
                         awqk::awq_linear_add_rmsnorm(x, m, wp, s.in, s.out, 128, y, res, nw, 1e-5f, normed,
                                                      linear_ws(), awqk::linear_workspace_bytes(),
                                                      st) != cudaErrorNotSupported)
                  CK(cudaGetLastError());
                else
                  CK(awqk::awq_linear(x, m, wp, s.in, s.out, 128, y, st, linear_ws(), awqk::linear_workspace_bytes()));
              }
            },
            8);
        std::printf("  m%d %7.1f", m, ms * 1e3);
      }
      std::printf("\n");
    }
  }
  awqk::awq_gemv_override({});
  CK(cudaFree(res));
  CK(cudaFree(nw));
  CK(cudaFree(normed));
  CK(cudaFree(x));
  CK(cudaFree(y));
}

// The warp-specialized persistent GEMM (gemm_sm90_ws.cu) against the current awq_linear path at prefill sizes, same
// weights and x, same call: TFLOP/s per shape and m, and the 13B prefill (40 layers x 4 AWQ linears) for each.
// AWQ_WS_VARIANTS=1,3 (say) times only those variants, AWQ_WS_MS=64,128 only those m.
bool ws_variant_selected(int v) {
  const char* e = std::getenv("AWQ_WS_VARIANTS");
  if (e == nullptr || *e == 0) return true;
  for (const char* c = e; *c; ++c)
    if (*c - '0' == v) return true;
  return false;
}

void bench_gemm_ws() {
  int dev = 0, major = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  if (major != 9) return;
  std::vector<int> ms = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  if (const char* e = std::getenv("AWQ_WS_MS"); e != nullptr && *e != 0) {  // AWQ_WS_MS=64,128: only those m
    ms.clear();
    for (const char* c = e; *c;) {
      char* end = nullptr;
      const long v = std::strtol(c, &end, 10);
      if (end == c) break;
      if (v > 0) ms.push_back((int)v);
      c = *end == ',' ? end + 1 : end;
    }
    if (ms.empty()) return;
  }
  // Columns: the current path, then (variant, stream-K).
  // Columns "T": the weights as 3-D TMA boxes (AWQ_GEMM_WS_TMAW=1's path); the first ones take the weights the way
  // the environment says.
  // kTma 2 ("S"): TMA with the packed words swizzled (AWQ_GEMM_WS_TMAW=2).
  const int kVar[] = {0, 1, 2, 3, 4, 5, 1, 3, 1, 2, 3, 6, 7, 8, 9, 1, 2, 3, 6, 7, 8, 9};
  const int kSk[] = {0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const int kTma[] = {-1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2};
  const int kCols = 22;
  std::printf("\nAWQ GEMMs: current path (WS off) vs warp-specialized (ws v1 = 256 out x 128 rows, v2 = 128 x 256,\n"
              "v3 = 128 x 128, v4 / v5 = v1 / v2 in clusters of 2 sharing x, v6-v9 = 256 x 64 / 32 / 16 / 8; sk =\n"
              "stream-K tail; T = weights as TMA boxes, S = TMA with swizzled words, else as the environment says;\n"
              "TFLOP/s, %s, median of 7)\n",
              g_time_graphs ? "CUDA graph replay" : "eager launches");
  std::printf("%-24s %6s %9s", "shape", "m", "current");
  for (int col = 1; col < kCols; ++col)
    std::printf("  %sv%d%s", kTma[col] == 2 ? "S" : kTma[col] == 1 ? "T" : " ", kVar[col], kSk[col] ? " sk" : "   ");
  std::printf("\n");
  std::vector<std::vector<double>> layerUs(ms.size(), std::vector<double>(kCols, 0.0));
  for (const Shape& s : kShapes) {
    if (!s.awq) continue;
    Weights w(s);
    const int mMax = ms.back();
    __half *x, *y;
    CK(cudaMalloc(&x, (size_t)mMax * s.in * 2));
    CK(cudaMalloc(&y, (size_t)mMax * s.out * 2));
    fill_half(x, (size_t)mMax * s.in, 11, -1.f, 1.f);
    for (size_t mi = 0; mi < ms.size(); ++mi) {
      const int m = ms[mi];
      const double flop = 2.0 * m * s.in * s.out;
      std::printf("%-24s %6d", s.name, m);
      for (int col = 0; col < kCols; ++col) {
        double us;
        if (col == 0) {
          awqk::gemm_ws_override(1);
          us = w.us(x, m, y, true);
          awqk::gemm_ws_override(0);
        } else if (!ws_variant_selected(kVar[col])) {
          std::printf(" %8s", "-");
          continue;
        } else {
          const int variant = kVar[col], sk = kSk[col];
          const int n = (int)w.copies.size();
          awqk::gemm_ws_tma_weights_override(kTma[col]);
          us = 1e3 * time_ms(
                         [&](int i, cudaStream_t st) {
                           CK(awqk::gemm_sm90_ws(variant, sk, x, m, w.copies[i % n], s.in, s.out, 128, y,
                                                 sk ? linear_ws() : nullptr, sk ? awqk::linear_workspace_bytes() : 0,
                                                 st));
                         },
                         std::max(n, 2 * n * std::max(1, 8 / n)));
          awqk::gemm_ws_tma_weights_override(-1);
        }
        layerUs[mi][col] += us;
        std::printf(col == 0 ? " %9.1f" : " %8.1f", flop / (us * 1e-6) / 1e12);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
    CK(cudaFree(x));
    CK(cudaFree(y));
  }
  std::printf("13B prefill, AWQ linears only (40 layers), tokens/s:\n");
  for (size_t mi = 0; mi < ms.size(); ++mi) {
    std::printf("%-24s %6d", "linears", ms[mi]);
    for (int col = 0; col < kCols; ++col) {
      if (col > 0 && !ws_variant_selected(kVar[col])) std::printf(" %8s", "-");
      else std::printf(col == 0 ? " %9.0f" : " %8.0f", ms[mi] / (40 * layerUs[mi][col] * 1e-6));
    }
    std::printf("\n");
  }
}
