// KV-cache checks and timings: the FP8 E4M3 conversion against the CPU backend's rounding
// (src/backend/cpu/fp8-e4m3.ts, ported below), both attention kernels over an FP8 cache against the naive
// reference run on the same cache widened to fp16, and decode attention timings for fp16 and FP8 caches.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../kernels/fp8_e4m3.cuh"
#include "../kernels/internal.h"
#include "../kernels/kernels.h"
#include "harness.h"

namespace {

constexpr double kTolKv = 5e-3;  // max |y - ref| / max |ref|, as tests.cu

bool reportKv(const char* what, const ErrStat& e) {
  const bool ok = !e.nan && e.rel() < kTolKv;
  std::printf("  %-58s rel err %.2e (max|ref| %.3g) %s\n", what, e.rel(), e.maxAbsRef, ok ? "ok" : "FAIL");
  return ok;
}

// The CPU backend's roundE4m3 (fp8-e4m3.ts), step for step: saturate at 448, keep 3 mantissa bits with round
// half to even for normals, multiples of 2^-9 (half to even) below 2^-6; the sign is kept (also on zero).
float cpu_round_e4m3(float x) {
  if (std::isnan(x)) return x;
  const float a = std::fabs(x);
  float r;
  if (a >= 448.f) {
    r = 448.f;
  } else {
    uint32_t b;
    std::memcpy(&b, &a, 4);
    if ((b >> 23) >= 127 - 6) {
      b = (b + 0x7ffffu + ((b >> 20) & 1u)) & ~0xfffffu;
      std::memcpy(&r, &b, 4);
    } else {
      const double q = static_cast<double>(a) * 512;
      double whole = std::floor(q);
      const double frac = q - whole;
      if (frac > 0.5 || (frac == 0.5 && std::fmod(whole, 2.0) == 1.0)) whole += 1;
      r = static_cast<float>(whole / 512);
    }
  }
  return std::signbit(x) ? -r : r;
}

// decodeE4m3 of fp8-e4m3.ts.
float cpu_decode_e4m3(int code) {
  const float sign = (code & 0x80) ? -1.f : 1.f;
  const int exp = (code >> 3) & 0xf, man = code & 7;
  if (exp == 0) return sign * man * std::ldexp(1.f, -9);
  return sign * (1.f + man / 8.f) * std::ldexp(1.f, exp - 7);
}

__global__ void encode_kernel(const float* in, uint8_t* codes, float* back, size_t pairs) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pairs; i += (size_t)gridDim.x * blockDim.x) {
    const uint16_t p = awqk::detail::e4m3x2_from_float2(in[2 * i], in[2 * i + 1]);
    codes[2 * i] = static_cast<uint8_t>(p & 0xff);
    codes[2 * i + 1] = static_cast<uint8_t>(p >> 8);
    const __half2 h = awqk::detail::e4m3x2_to_half2(p);
    back[2 * i] = __low2float(h);
    back[2 * i + 1] = __high2float(h);
  }
}

// fp16 cache -> FP8 cache (as the RoPE + KV write stores a value), n even.
__global__ void quantize_kernel(const __half* in, uint8_t* out, size_t pairs) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pairs; i += (size_t)gridDim.x * blockDim.x) {
    const float2 f = __half22float2(reinterpret_cast<const __half2*>(in)[i]);
    reinterpret_cast<uint16_t*>(out)[i] = awqk::detail::e4m3x2_from_float2(f.x, f.y);
  }
}

// FP8 cache -> fp16 (the eight-at-a-time widening the attention kernels use), n % 8 == 0.
__global__ void widen_kernel(const uint8_t* in, __half* out, size_t groups) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < groups; i += (size_t)gridDim.x * blockDim.x) {
    reinterpret_cast<uint4*>(out)[i] = awqk::detail::e4m3x8_to_half8(reinterpret_cast<const uint2*>(in)[i]);
  }
}

bool test_conversion() {
  std::vector<float> in;
  // Every finite fp16 value (the V path encodes fp16 values).
  for (int bits = 0; bits < 65536; ++bits) {
    const float f = __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
    if (std::isfinite(f)) in.push_back(f);
  }
  // The exact midpoints between neighbouring E4M3 values (the ties), a hair either side, and the ends.
  std::vector<float> grid;
  for (int code = 0; code < 0x7f; ++code) grid.push_back(cpu_decode_e4m3(code));
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    const float mid = 0.5f * (grid[i] + grid[i + 1]);
    for (float v : {mid, std::nextafter(mid, 0.f), std::nextafter(mid, 1e9f), grid[i]}) {
      in.push_back(v);
      in.push_back(-v);
    }
  }
  for (float v : {448.f, 449.f, 464.f, 479.f, 480.f, 1e6f, 3.4e38f, INFINITY, 0.f, -0.f, 1e-30f, -1e-30f})
    in.push_back(v), in.push_back(-v);
  // NaN stays NaN (the CPU emulation keeps it; E4M3 has one NaN pattern, S.1111.111), either sign.
  in.push_back(NAN), in.push_back(-NAN);
  // Random fp32 (the K path encodes fp32 values) over the E4M3 range and a little beyond.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> expo(-14.f, 10.f);
  std::uniform_real_distribution<float> mant(1.f, 2.f);
  for (int i = 0; i < (1 << 20); ++i) {
    const float v = std::ldexp(mant(rng), static_cast<int>(std::floor(expo(rng))));
    in.push_back(rng() & 1 ? v : -v);
  }
  if (in.size() % 2) in.push_back(0.f);
  const size_t n = in.size();
  float *dIn, *dBack;
  uint8_t* dCodes;
  CK(cudaMalloc(&dIn, n * 4));
  CK(cudaMalloc(&dBack, n * 4));
  CK(cudaMalloc(&dCodes, n));
  CK(cudaMemcpy(dIn, in.data(), n * 4, cudaMemcpyHostToDevice));
  encode_kernel<<<256, 256>>>(dIn, dCodes, dBack, n / 2);
  CK(cudaGetLastError());
  std::vector<float> back(n);
  std::vector<uint8_t> codes(n);
  CK(cudaMemcpy(back.data(), dBack, n * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(codes.data(), dCodes, n, cudaMemcpyDeviceToHost));
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const float want = cpu_round_e4m3(in[i]);
    uint32_t a, b;
    std::memcpy(&a, &back[i], 4);
    std::memcpy(&b, &want, 4);
    const bool nanOk = std::isnan(in[i]) && (codes[i] & 0x7f) == 0x7f && std::isnan(back[i]);
    const bool codeOk = cpu_decode_e4m3(codes[i]) == want && (codes[i] & 0x7f) != 0x7f;
    if (!nanOk && (a != b || !codeOk)) {
      if (bad < 5)
        std::printf("    x=%.9g (0x%08x): device %.9g (code 0x%02x), CPU rounding %.9g\n", in[i],
                    *reinterpret_cast<const uint32_t*>(&in[i]), back[i], codes[i], want);
      ++bad;
    }
  }
  char name[128];
  std::snprintf(name, sizeof name, "fp8 e4m3 encode = CPU rounding (%zu values)", n);
  std::printf("  %-58s %zu mismatches %s\n", name, bad, bad == 0 ? "ok" : "FAIL");
  bool ok = bad == 0;
  // Widening of every byte (NaN codes aside), through the eight-at-a-time path.
  std::vector<uint8_t> all(256);
  std::iota(all.begin(), all.end(), 0);
  uint8_t* dAll;
  __half* dWide;
  CK(cudaMalloc(&dAll, 256));
  CK(cudaMalloc(&dWide, 256 * 2));
  CK(cudaMemcpy(dAll, all.data(), 256, cudaMemcpyHostToDevice));
  widen_kernel<<<1, 32>>>(dAll, dWide, 32);
  CK(cudaGetLastError());
  std::vector<__half> wide(256);
  CK(cudaMemcpy(wide.data(), dWide, 256 * 2, cudaMemcpyDeviceToHost));
  size_t badWide = 0;
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    if (__half2float(wide[code]) != cpu_decode_e4m3(code)) ++badWide;
  }
  std::printf("  %-58s %zu mismatches %s\n", "fp8 e4m3 widen x8 = CPU decode (254 codes)", badWide,
              badWide == 0 ? "ok" : "FAIL");
  ok &= badWide == 0;
  CK(cudaFree(dIn));
  CK(cudaFree(dBack));
  CK(cudaFree(dCodes));
  CK(cudaFree(dAll));
  CK(cudaFree(dWide));
  return ok;
}

// Set by test_decode_grouped: the decode checks call the by-KV-head kernel directly, so that a shape it declines
// (cudaErrorNotSupported, which paged_attention_decode answers with the per-head kernel) fails instead of passing
// on the other kernel.
bool g_direct_grouped = false;
bool g_direct_mma = false;  // with g_direct_grouped: the tensor-core kernel first

// The engine's context bucket of a CUDA graph (engine_enqueue.cu): the decode kernels get this maxContextLen, larger
// than every context of the step, on every graph replay.
int graph_bucket(int maxCtx) {
  int b = 256;
  while (b < maxCtx) b *= 2;
  return b;
}

// A paged cache (FP8, or fp16 with fp8 = false) with shuffled block tables for the (queryLen, contextLen) list: the
// prefill kernel (and the decode kernel when every queryLen is 1: twice at the exact max context, the split counters
// must be back at zero, then at the graph bucket's) against the reference over the (widened) cache.
bool kv_attention_case(int numHeads, int numKvHeads, int D, const std::vector<std::pair<int, int>>& seqs,
                       uint64_t seed, bool fp8 = true) {
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
  const int numBlocks = totalBlocks + 5;
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
  __half *q, *k16, *v16, *o;
  uint8_t *k8, *v8;
  float* ref;
  int32_t *dBt, *dQs, *dCtx;
  CK(cudaMalloc(&q, qElems * 2));
  CK(cudaMalloc(&k16, cacheElems * 2));
  CK(cudaMalloc(&v16, cacheElems * 2));
  CK(cudaMalloc(&k8, cacheElems));
  CK(cudaMalloc(&v8, cacheElems));
  CK(cudaMalloc(&o, qElems * 2));
  CK(cudaMalloc(&ref, qElems * 4));
  CK(cudaMalloc(&dBt, bt.size() * 4));
  CK(cudaMalloc(&dQs, qStarts.size() * 4));
  CK(cudaMalloc(&dCtx, ctxLens.size() * 4));
  CK(cudaMemcpy(dBt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dQs, qStarts.data(), qStarts.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dCtx, ctxLens.data(), ctxLens.size() * 4, cudaMemcpyHostToDevice));
  fill_half(q, qElems, seed * 3 + 1, -2.f, 2.f);
  fill_half(k16, cacheElems, seed * 3 + 2, -3.f, 3.f);
  fill_half(v16, cacheElems, seed * 3 + 3, -3.f, 3.f);
  if (fp8) {
    quantize_kernel<<<512, 256>>>(k16, k8, cacheElems / 2);
    quantize_kernel<<<512, 256>>>(v16, v8, cacheElems / 2);
    widen_kernel<<<512, 256>>>(k8, k16, cacheElems / 8);
    widen_kernel<<<512, 256>>>(v8, v16, cacheElems / 8);
    CK(cudaGetLastError());
  }
  const void* kc = fp8 ? (const void*)k8 : (const void*)k16;
  const void* vc = fp8 ? (const void*)v8 : (const void*)v16;
  const auto dtype = fp8 ? awqk::KvCacheDtype::Fp8E4m3 : awqk::KvCacheDtype::Fp16;
  const char* tag = fp8 ? "fp8 " : "fp16";
  const float scale = 1.f / std::sqrt((float)D);
  ref_attention(q, k16, v16, dBt, maxBlocks, dQs, dCtx, numSeqs, numTokens, numHeads, numKvHeads, D, scale, maxCtx,
                ref);
  CK(cudaMemset(o, 0xff, qElems * 2));
  CK(awqk::paged_attention_prefill(q, kc, vc, dtype, dBt, maxBlocks, dQs, dCtx, numSeqs, maxQ, numHeads, numKvHeads, D,
                                   scale, o, 0));
  CK(cudaDeviceSynchronize());
  char name[160];
  std::snprintf(name, sizeof name, "%s prefill H=%d KVH=%d D=%d seqs=%d tokens=%d maxCtx=%d", tag, numHeads,
                numKvHeads, D, numSeqs, numTokens, maxCtx);
  bool ok = reportKv(name, compare(o, ref, numTokens, (size_t)numHeads * D));
  if (allDecode) {
    const size_t wsBytes = awqk::paged_attention_decode_workspace_bytes(numSeqs, numHeads, D, maxCtx);
    void* ws;
    CK(cudaMalloc(&ws, std::max<size_t>(wsBytes, 16)));
    CK(cudaMemset(ws, 0, std::max<size_t>(wsBytes, 16)));
    for (int rep = 0; rep < 3; ++rep) {
      const int maxContext = rep < 2 ? maxCtx : graph_bucket(maxCtx);
      CK(cudaMemset(o, 0xff, qElems * 2));
      cudaError_t status;
      if (g_direct_grouped) {
        // The tensor-core kernel (g_direct_mma) must take every FP8 case of head dim 128; other shapes go to the
        // by-KV-head kernel as the dispatcher sends them.
        status = cudaErrorNotSupported;
        if (g_direct_mma) {
          status = awqk::paged_attention_decode_grouped(q, kc, vc, dtype, dBt, maxBlocks, dCtx, numSeqs, maxContext,
                                                        numHeads, numKvHeads, D, scale, ws, wsBytes, o, 0, true);
          if (status == cudaErrorNotSupported && fp8 && D == 128) {
            std::printf("  %s decode H=%d KVH=%d D=%d: the tensor-core kernel declined the shape FAIL\n", tag, numHeads,
                        numKvHeads, D);
            ok = false;
            break;
          }
        }
        if (status == cudaErrorNotSupported)
          status = awqk::paged_attention_decode_grouped(q, kc, vc, dtype, dBt, maxBlocks, dCtx, numSeqs, maxContext,
                                                        numHeads, numKvHeads, D, scale, ws, wsBytes, o, 0);
        if (status == cudaErrorNotSupported) {
          std::printf("  %s decode H=%d KVH=%d D=%d: the by-KV-head kernel declined the shape FAIL\n", tag, numHeads,
                      numKvHeads, D);
          ok = false;
          break;
        }
      } else {
        status = awqk::paged_attention_decode(q, kc, vc, dtype, dBt, maxBlocks, dCtx, numSeqs, maxContext, numHeads,
                                              numKvHeads, D, scale, ws, wsBytes, o, 0);
      }
      CK(status);
      CK(cudaDeviceSynchronize());
      std::snprintf(name, sizeof name, "%s decode  H=%d KVH=%d D=%d seqs=%d maxCtx=%d%s", tag, numHeads, numKvHeads, D,
                    numSeqs, maxContext, rep == 1 ? " (again)" : rep == 2 ? " (graph bucket)" : "");
      ok &= reportKv(name, compare(o, ref, numTokens, (size_t)numHeads * D));
    }
    CK(cudaFree(ws));
  }
  for (void* p : {(void*)q, (void*)k16, (void*)v16, (void*)k8, (void*)v8, (void*)o, (void*)ref, (void*)dBt,
                  (void*)dQs, (void*)dCtx})
    CK(cudaFree(p));
  return ok;
}

bool fp8_attention_cases() {
  const std::vector<std::pair<int, int>> mixed = {{100, 300}, {1, 517}, {64, 64}, {130, 130}, {17, 1000}};
  bool ok = kv_attention_case(8, 2, 128, mixed, 21);
  ok &= kv_attention_case(4, 2, 64, mixed, 22);
  ok &= kv_attention_case(40, 40, 128, {{1, 1}, {1, 17}, {1, 300}, {1, 2048}, {1, 4000}}, 23);
  ok &= kv_attention_case(32, 8, 128, {{1, 5}, {1, 700}, {1, 3000}}, 24);
  ok &= kv_attention_case(4, 2, 64, {{1, 2500}}, 25);
  ok &= kv_attention_case(40, 40, 128, {{300, 1500}, {1, 900}, {77, 77}}, 26);
  ok &= kv_attention_case(64, 8, 128, {{1, 33}, {1, 1000}, {1, 4096}}, 27);
  ok &= kv_attention_case(8, 2, 64, {{1, 1}, {1, 129}, {1, 1900}}, 28);
  ok &= kv_attention_case(16, 2, 64, {{1, 64}, {1, 2049}}, 29);
  // Long prompts and a chunk over a cached prefix (the wgmma kernel's FP8 path on Hopper: raw tiles widened in
  // shared memory).
  ok &= kv_attention_case(32, 8, 128, {{1000, 1000}, {513, 2000}, {200, 4100}}, 30);
  ok &= kv_attention_case(40, 40, 128, {{2048, 2048}}, 31);
  return ok;
}

// Decode over an fp16 cache with query heads sharing KV heads 4 and 8 ways (Llama-3-8B / 70B shapes; test_attention's
// decode cases have groups 1 and 2 only), every group size of the by-KV-head kernel at both head sizes.
bool gqa_fp16_decode_cases() {
  bool ok = kv_attention_case(32, 8, 128, {{1, 5}, {1, 700}, {1, 3000}}, 31, false);
  ok &= kv_attention_case(64, 8, 128, {{1, 1}, {1, 33}, {1, 1000}, {1, 4096}}, 32, false);
  ok &= kv_attention_case(8, 2, 64, {{1, 1}, {1, 129}, {1, 1900}}, 33, false);
  ok &= kv_attention_case(16, 2, 64, {{1, 64}, {1, 2049}}, 34, false);
  return ok;
}

}  // namespace

bool test_kv_cache_fp8() {
  std::printf("FP8 E4M3 KV cache (conversion vs the CPU emulation; attention over an FP8 cache; fp16 GQA decode)\n");
  bool ok = test_conversion();
  ok &= fp8_attention_cases();
  ok &= gqa_fp16_decode_cases();
  return ok;
}

// The by-KV-head kernel's balanced grid (AWQ_ATTN_BALANCED): every decode case above, plus batches of the 13B's shape
// and of many sequences (the prefix of units over more sequences than threads, contexts of 1..16 keys among them),
// at about one wave, at 3 blocks (many items a block) and at 1000 (many pieces an item, blocks with nothing to do).
// Each run must have launched the balanced kernel (a launch it declines would run the split grid and pass).
bool balanced_decode_cases() {
  if (!awqk::hopper_device()) {
    std::printf("Decode attention by KV head, balanced grid: skipped (built for sm_90a only)\n");
    return true;
  }
  bool ok = true;
  std::mt19937 rng(77);
  std::vector<std::pair<int, int>> many;
  for (int i = 0; i < 150; ++i) many.push_back({1, (int)(rng() % (i < 40 ? 16 : 700)) + 1});
  for (int blocks : {0, 3, 1000}) {
    std::printf("Decode attention by KV head, balanced grid (%s)\n",
                blocks == 0 ? "about one wave" : blocks == 3 ? "3 blocks" : "1000 blocks");
    awqk::attention_decode_variant_override(2);
    awqk::grouped_decode_balanced_override(2, blocks);
    const long before = awqk::grouped_decode_balanced_launches();
    ok &= test_attention();
    g_direct_grouped = true;
    ok &= fp8_attention_cases();
    ok &= gqa_fp16_decode_cases();
    const std::vector<std::pair<int, int>> b16(16, {1, 516});
    for (bool fp8 : {true, false}) {
      ok &= kv_attention_case(40, 40, 128, b16, 41, fp8);
      ok &= kv_attention_case(8, 2, 64, many, 42, fp8);
      ok &= kv_attention_case(32, 8, 128, {{1, 1}, {1, 16}, {1, 17}, {1, 4100}, {1, 33}}, 43, fp8);
    }
    g_direct_grouped = false;
    if (awqk::grouped_decode_balanced_launches() == before) {
      std::printf("  the balanced grid never launched FAIL\n");
      ok = false;
    }
  }
  awqk::grouped_decode_balanced_override(0, 0);
  awqk::attention_decode_variant_override(0);
  return ok;
}

bool test_decode_grouped() {
  // The decode kernel by KV head (attention_decode_grouped.cu) on every attention case, fp16 (test_attention) and
  // FP8, at the default split target and at one that splits as far as the kernel goes (merge of many splits).
  bool ok = true;
  for (int blocksPerSm : {0, 64}) {
    std::printf("Decode attention by KV head (blocks per SM target %s)\n", blocksPerSm ? "64" : "default");
    awqk::attention_decode_variant_override(2);
    awqk::grouped_decode_blocks_per_sm_override(blocksPerSm);
    ok &= test_attention();
    g_direct_grouped = true;  // below, a shape the kernel declines fails rather than passing on the per-head kernel
    ok &= fp8_attention_cases();
    ok &= gqa_fp16_decode_cases();
    g_direct_grouped = false;
  }
  for (int blocksPerSm : {0, 64}) {
    std::printf("Decode attention by KV head on tensor cores, FP8 (blocks per SM target %s)\n",
                blocksPerSm ? "64" : "default");
    awqk::attention_decode_variant_override(3);
    awqk::grouped_decode_blocks_per_sm_override(blocksPerSm);
    ok &= test_attention();
    g_direct_grouped = g_direct_mma = true;
    ok &= fp8_attention_cases();
    ok &= gqa_fp16_decode_cases();
    g_direct_grouped = g_direct_mma = false;
  }
  awqk::attention_decode_variant_override(0);
  awqk::grouped_decode_blocks_per_sm_override(0);
  ok &= balanced_decode_cases();
  return ok;
}

namespace {

struct DecodeCase {
  int batch, ctx, H, KVH;
};
constexpr int kBenchD = 128;

// The buffers of one timed case: q, out, fp16 and FP8 caches (the same values), sequential block tables.
struct DecodeBuffers {
  const DecodeCase c;
  int blocksPer = 0;
  __half *q = nullptr, *o = nullptr, *k16 = nullptr, *v16 = nullptr;
  uint8_t *k8 = nullptr, *v8 = nullptr;
  int32_t *bt = nullptr, *ctx = nullptr;
  void* ws = nullptr;
  size_t wsBytes = 0;

  explicit DecodeBuffers(const DecodeCase& cs) : c(cs) {
    const int D = kBenchD;
    blocksPer = (c.ctx + 15) / 16;
    const int numBlocks = c.batch * blocksPer;
    const size_t cacheElems = (size_t)numBlocks * 16 * c.KVH * D;
    CK(cudaMalloc(&q, (size_t)c.batch * c.H * D * 2));
    CK(cudaMalloc(&o, (size_t)c.batch * c.H * D * 2));
    CK(cudaMalloc(&k16, cacheElems * 2));
    CK(cudaMalloc(&v16, cacheElems * 2));
    CK(cudaMalloc(&k8, cacheElems));
    CK(cudaMalloc(&v8, cacheElems));
    fill_half(q, (size_t)c.batch * c.H * D, 1, -1.f, 1.f);
    fill_half(k16, cacheElems, 2, -1.f, 1.f);
    fill_half(v16, cacheElems, 3, -1.f, 1.f);
    quantize_kernel<<<512, 256>>>(k16, k8, cacheElems / 2);
    quantize_kernel<<<512, 256>>>(v16, v8, cacheElems / 2);
    std::vector<int> hbt((size_t)numBlocks), hctx(c.batch, c.ctx);
    std::iota(hbt.begin(), hbt.end(), 0);
    CK(cudaMalloc(&bt, hbt.size() * 4));
    CK(cudaMalloc(&ctx, hctx.size() * 4));
    CK(cudaMemcpy(bt, hbt.data(), hbt.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ctx, hctx.data(), hctx.size() * 4, cudaMemcpyHostToDevice));
    awqk::attention_decode_variant_override(2);  // the workspace both kernels take
    wsBytes = awqk::paged_attention_decode_workspace_bytes(c.batch, c.H, D, c.ctx);
    awqk::attention_decode_variant_override(0);
    CK(cudaMalloc(&ws, wsBytes));
    CK(cudaMemset(ws, 0, wsBytes));
  }
  ~DecodeBuffers() {
    for (void* p : {(void*)q, (void*)o, (void*)k16, (void*)v16, (void*)k8, (void*)v8, (void*)bt, (void*)ctx, ws})
      CK(cudaFree(p));
  }
  // Microseconds of one call (graph-timed, 20 calls) of kernel `variant` (1 per query head, 2 by KV head).
  double us(int variant, bool fp8) {
    awqk::attention_decode_variant_override(variant);
    const float scale = 1.f / std::sqrt((float)kBenchD);
    const void* kc = fp8 ? (const void*)k8 : (const void*)k16;
    const void* vc = fp8 ? (const void*)v8 : (const void*)v16;
    const auto dtype = fp8 ? awqk::KvCacheDtype::Fp8E4m3 : awqk::KvCacheDtype::Fp16;
    const double ms = time_ms(
        [&](int, cudaStream_t st) {
          CK(awqk::paged_attention_decode(q, kc, vc, dtype, bt, blocksPer, ctx, c.batch, c.ctx, c.H, c.KVH, kBenchD,
                                          scale, ws, wsBytes, o, st));
        },
        20);
    awqk::attention_decode_variant_override(0);
    return ms * 1e3;
  }
  // GB/s of the K and V bytes read in `us`.
  double gbps(double us, bool fp8) const {
    return 2.0 * c.batch * c.ctx * c.KVH * kBenchD * (fp8 ? 1 : 2) / (us * 1e-6) / 1e9;
  }
  std::string name() const {
    char b[96];
    std::snprintf(b, sizeof b, "batch=%d ctx=%d H=%d KVH=%d", c.batch, c.ctx, c.H, c.KVH);
    return b;
  }
};

std::vector<DecodeCase> decode_cases(bool quick) {
  if (quick) return {{1, 512, 40, 40}, {1, 4096, 40, 40}, {16, 512, 40, 40}, {64, 512, 40, 40}, {128, 512, 40, 40}};
  return {{1, 512, 40, 40},   {1, 2048, 40, 40},  {1, 4096, 40, 40},  {8, 512, 40, 40},  {16, 512, 40, 40},
          {32, 512, 40, 40},
          {32, 2048, 40, 40}, {64, 512, 40, 40},  {128, 512, 40, 40}, {128, 2048, 40, 40},
          // Grouped-query shapes (Llama-3-8B: 32 query heads on 8 KV heads; 70B: 64 on 8), for the default per batch.
          {1, 512, 32, 8},    {1, 2048, 32, 8},   {4, 2048, 32, 8},   {8, 512, 32, 8},   {8, 2048, 32, 8},
          {16, 512, 32, 8},   {16, 2048, 32, 8},  {32, 512, 32, 8},   {64, 2048, 32, 8}, {128, 512, 32, 8},
          {1, 2048, 64, 8},   {8, 2048, 64, 8},   {32, 2048, 64, 8}};
}

}  // namespace

// Decode attention over fp16 and FP8 caches, D = 128, per query head (v1, attention_decode.cu, the default) and by
// KV head (v2): microseconds and the bytes of K and V read per second (bytes per element of the cache's dtype; q and
// the output are ignored); then v2's split target swept.
void bench_decode_grouped(bool quick) {
  std::printf("\nDecode attention, v1 per query head / v2 by KV head / v3 by KV head on tensor cores, D=%d: us and GB/s "
              "of K+V\n", kBenchD);
  std::printf("%-32s %16s %16s %16s %16s %16s %16s %16s\n", "case", "v1 fp16", "v2 fp16", "v1 fp8", "v2 fp8",
              "v3 fp8", "v2 bal fp16", "v2 bal fp8");
  const std::vector<int> sweep = {2, 4, 8, 16};
  std::vector<std::pair<std::string, std::vector<double>>> swept;
  for (const DecodeCase& c : decode_cases(quick)) {
    DecodeBuffers b(c);
    char cell[7][24];
    for (int f = 0; f < 2; ++f)
      for (int v = 1; v <= 2; ++v) {
        const double us = b.us(v, f == 1);
        std::snprintf(cell[f * 2 + v - 1], sizeof cell[0], "%7.1f %6.0f", us, b.gbps(us, f == 1));
      }
    const double mmaUs = b.us(3, true);
    std::snprintf(cell[4], sizeof cell[0], "%7.1f %6.0f", mmaUs, b.gbps(mmaUs, true));
    awqk::grouped_decode_balanced_override(2, 0);  // the balanced grid (AWQ_ATTN_BALANCED=1)
    for (int f = 0; f < 2; ++f) {
      const double us = b.us(2, f == 1);
      std::snprintf(cell[5 + f], sizeof cell[0], "%7.1f %6.0f", us, b.gbps(us, f == 1));
    }
    awqk::grouped_decode_balanced_override(0, 0);
    std::printf("%-32s %16s %16s %16s %16s %16s %16s %16s\n", b.name().c_str(), cell[0], cell[1], cell[2], cell[3],
                cell[4], cell[5], cell[6]);
    std::vector<double> row;
    for (int bps : sweep) {
      awqk::grouped_decode_blocks_per_sm_override(bps);
      row.push_back(b.us(2, false));
    }
    awqk::grouped_decode_blocks_per_sm_override(0);
    swept.emplace_back(b.name(), row);
  }
  std::printf("\nv2 fp16 by split target (blocks per SM): us\n%-32s", "case");
  for (int bps : sweep) std::printf(" %8d", bps);
  std::printf("\n");
  for (const auto& [name, row] : swept) {
    std::printf("%-32s", name.c_str());
    for (double us : row) std::printf(" %8.1f", us);
    std::printf("\n");
  }
}
