// Prefill-path linears: launchers and tile choice for the mma.sync tile GEMM (gemm_mma.cuh); on
// sm_90 the 128x128 tiles go to the wgmma kernel of gemm_sm90.cu.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "common.cuh"
#include "gemm_mma.cuh"
#include "gemm_ws.h"
#include "internal.h"
#include "kernels.h"

namespace awqk {

bool hopper_device() {
  static int major[64] = {};  // per device ordinal
  int dev = 0;
  cudaGetDevice(&dev);
  if (major[dev & 63] == 0) cudaDeviceGetAttribute(&major[dev & 63], cudaDevAttrComputeCapabilityMajor, dev);
  return major[dev & 63] == 9;
}

namespace {


using detail::kThreads;
using detail::Tile;

template <int BM, int BN, int STAGES, bool AWQ>
__global__ void __launch_bounds__(kThreads, (BM * BN > 128 * 128) ? 1 : 2)
    gemm_kernel(const __half* __restrict__ x, int m, const void* __restrict__ wptr, int in, int out,
                int chunksPerGroup, __half* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smem[];
  detail::gemm_mma_body<BM, BN, STAGES, AWQ>(x, m, wptr, in, out, chunksPerGroup, y, smem);
}

int g_sms = 0;
int sms() {
  if (g_sms == 0) {
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, dev);
    if (g_sms <= 0) g_sms = 132;
  }
  return g_sms;
}


template <int BM, int BN, int STAGES, bool AWQ>
cudaError_t launch(const __half* x, int m, const void* w, int in, int out, int group, __half* y,
                   cudaStream_t stream) {
  constexpr int smem = Tile<BM, BN, AWQ>::kStageBytes * STAGES;
  static unsigned long long configured = 0;  // one bit per device: the attribute is per device
  int dev = 0;
  cudaGetDevice(&dev);
  const unsigned long long bit = 1ull << (dev & 63);
  if (!(configured & bit)) {
    cudaError_t e = cudaFuncSetAttribute(gemm_kernel<BM, BN, STAGES, AWQ>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
    configured |= bit;
  }
  dim3 grid(detail::ceil_div(out, BN), detail::ceil_div(m, BM));
  gemm_kernel<BM, BN, STAGES, AWQ><<<grid, kThreads, smem, stream>>>(x, m, w, in, out,
                                                                    AWQ ? group / 64 : 1, y);
  return cudaGetLastError();
}

int g_gemmOverride = 0;  // benchmark hook: 1 = 128x256, 2 = 128x128, 3 = 64x128, 4 = 64x64

template <bool AWQ, int STAGES>
cudaError_t dispatch(const __half* x, int m, const void* w, int in, int out, int group, __half* y,
                     cudaStream_t stream) {
  int cfg = g_gemmOverride;
  if (cfg == 0) {
    // Measured on the H100 (13B shapes, m = 512 / 2048): wgmma 128x256 beats wgmma 128x128 by
    // 15-35% and the mma.sync tiles by 30-65%, even with fewer blocks than SMs.
    const long wide = (long)detail::ceil_div(m, 128) * detail::ceil_div(out, 256);
    const long big = (long)detail::ceil_div(m, 128) * detail::ceil_div(out, 128);
    const long mid = (long)detail::ceil_div(m, 64) * detail::ceil_div(out, 128);
    if (hopper_device() && 2 * wide >= sms()) cfg = 6;
    else cfg = big >= sms() ? 2 : mid >= sms() ? 3 : 4;
  }
  switch (cfg) {
    case 1: return launch<128, 256, STAGES, AWQ>(x, m, w, in, out, group, y, stream);
    case 2: return launch<128, 128, STAGES, AWQ>(x, m, w, in, out, group, y, stream);
    case 3: return launch<64, 128, STAGES, AWQ>(x, m, w, in, out, group, y, stream);
    case 4: return launch<64, 64, STAGES, AWQ>(x, m, w, in, out, group, y, stream);
    case 6: return gemm_sm90(AWQ, 256, x, m, w, in, out, group, y, stream);
    default: return gemm_sm90(AWQ, 128, x, m, w, in, out, group, y, stream);
  }
}

int g_splitOverride = 0;
// AWQ_GEMM_PATH=1 / 2 in the environment: the hook's value for the whole process (A/B runs of a whole decode step).
int env_path() {
  const char* v = std::getenv("AWQ_GEMM_PATH");
  return v != nullptr && (v[0] == '1' || v[0] == '2') ? v[0] - '0' : 0;
}
int g_pathOverride = env_path();
int g_rsVariant = 0;
// The warp-specialized persistent GEMM (gemm_sm90_ws.cu) on Hopper: by default for m >= 9 (see g_wsMinRows below; it
// first took m >= 256, where on the H100 on 2026-12-05 its 128 x 256 tile with stream-K ran 420-496 TFLOP/s against
// the smem-B GEMM's 168-394). AWQ_GEMM_WS=0 turns it off, =1 takes it for every m > 64 (experiments);
// AWQ_GEMM_WS_VARIANT=1..9 forces its tile, AWQ_GEMM_WS_SK=0 drops stream-K.
int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] >= '0' && v[0] <= '9' ? std::atoi(v) : dflt;
}
// 1 = off, 2 = every m > 64, 3 = m >= g_wsMinRows (the default). With its weights as TMA boxes the WS GEMM beat the
// register-A / smem-B GEMMs at m = 128 on every 13B projection (H200, 2026-12-06, TFLOP/s: qkv 410 / 278, o 277 /
// 180, gate_up 485 / 301, down 373 / 223) and, with its 16 / 32 / 64-row tiles, the GEMV and register-A GEMM at
// m = 9..64 in whole decode steps (H100, 2026-12-06, two alternating pairs of processes, tokens/s: batch 16 1,974 /
// 2,029 against 1,914 / 1,912, batch 32 3,040 / 3,034 against 2,856 / 2,857, batch 64 3,863 / 3,818 against 3,465 /
// 3,513), so it takes every m >= 9. AWQ_GEMM_WS_MIN_ROWS=65 / 256 are the earlier rules (m <= 8: the GEMV).
// AWQ_GEMM_WS_MIN_ROWS=1..8 also sends the GEMV's sizes to it (tile v9, 8 rows; an experiment, not timed yet).
int g_wsMinRows = std::max(1, env_int("AWQ_GEMM_WS_MIN_ROWS", 9));
int ws_mode_from_env() {
  const int v = env_int("AWQ_GEMM_WS", -1);
  return v == 0 ? 1 : v == 1 ? 2 : 3;
}
int g_wsMode = ws_mode_from_env();
int g_wsVariant = env_int("AWQ_GEMM_WS_VARIANT", 0);
int g_wsSk = env_int("AWQ_GEMM_WS_SK", 1);

// Split count for `blocks` blocks over kChunks 64-deep chunks: fill `slots` block slots, >= minChunks chunks
// a split.
int split_for(long blocks, int kChunks, long slots, int minChunks) {
  return (int)std::max<long>(1, std::min<long>(slots / blocks, std::max(1, kChunks / minChunks)));
}

}  // namespace

void gemm_override(int config) { g_gemmOverride = config; }
void gemm_split_override(int splits) { g_splitOverride = splits; }
void gemm_path_override(int path) { g_pathOverride = path; }
void gemm_rs_variant_override(int variant) { g_rsVariant = variant; }
void gemm_ws_override(int mode) { g_wsMode = mode != 0 ? mode : ws_mode_from_env(); }
void gemm_ws_variant_override(int variant) { g_wsVariant = variant; }
void gemm_ws_sk_override(int sk) { g_wsSk = sk >= 0 ? sk : env_int("AWQ_GEMM_WS_SK", 1); }

// The narrow, short matrices (`o`: out = in <= 8192; not `down`) at 9..16 rows on the decode GEMV's two-tile bulk-copy
// kernel (variant 19) instead of the WS GEMM's 16-row tiles. H100, 2026-12-07 (seventh session), kernel-tests at m =
// 16: `o` 16.9 us on the WS tiles, 12.2 on v19; whole decode steps (context 512, alternating processes, three passes,
// tokens/s): batch 9 1,560.6 / 1,554.1 / 1,550.6 against 1,533.6 / 1,524.8 / 1,523.0, batch 12 1,935.6 / 1,900.7 /
// 1,901.6 against 1,900.2 / 1,887.5 / 1,898.9, batch 16 2,385.5 / 2,388.5 / 2,371.7 against 2,365.4 / 2,360.3 /
// 2,340.7 (+0.1..+1.9 %). With `down` on the GEMV too, every variant was slower at every batch (v19 -1..-4 %).
// The rule takes the square matrices up to 8192 (`o` of an unsharded model; a tensor-parallel shard of `down` such as
// 6912x5120 is narrow and short too, but untimed, so it stays on the WS tiles). AWQ_NARROW_GEMV_ROWS=0 turns it off
// (N: up to N rows), AWQ_NARROW_GEMV_MAX_K the largest square side (0: every matrix with out <= in, `down` included:
// the experiment above), AWQ_NARROW_GEMV_VARIANT the GEMV variant.
bool narrow_gemv_path(int m, int in, int out) {
  static const int rows = std::min(32, std::max(0, env_int("AWQ_NARROW_GEMV_ROWS", 16)));
  static const int maxK = env_int("AWQ_NARROW_GEMV_MAX_K", 8192);
  const bool shape = maxK == 0 ? out <= in : (in == out && in <= maxK);
  return m > 8 && m <= rows && shape && g_pathOverride == 0;
}

int narrow_gemv_variant() {
  static const int v = env_int("AWQ_NARROW_GEMV_VARIANT", 19);
  return v;
}

bool awq_ws_path(int m, int in, int out) {
  if (narrow_gemv_path(m, in, out)) return false;
  return hopper_device() && g_pathOverride == 0 && ((g_wsMode == 2 && m > 64) || (g_wsMode == 3 && m >= g_wsMinRows));
}

// Prefill rows past the last full row tile: above 128 rows the WS GEMM's default tile (v2) is 128 outputs x 256 rows,
// so m = 513 ran three row tiles where two and one row would do: 1.5x the work of m = 512 (a lone 513-token prompt,
// BOS + 512, prefilled in 39 ms in the server against 26 ms for 512 in `awq bench latency`, H100, seventh session).
// Where m > 256 and m % 256 is at most AWQ_GEMM_WS_TAIL_ROWS (default 128, the most; 0 off), awq_linear and
// awq_linear_silu run the whole row tiles and those rows as two linears: the rows take the tile (or the GEMV) of their
// own count, which reads the weights once more but skips a 256-row tile's worth of multiply-adds. H100, 2026-12-07
// (eighth session), prefill of one prompt through the engine, ms, off / 64 / 128, first of two alike passes:
// 257 30.0 / 17.6 / 17.7, 300 29.7 / 21.8 / 21.0, 513 39.0 / 30.0 / 30.0, 640 36.4 / 37.0 / 36.0, 1100 61.3 / 61.3 /
// 59.8, 4097 226.0 / 213.3 / 210.2; serving at concurrency 16 (FP8 KV) +1.5 / +2.1 %. Tenth session (H100, one pass,
// scripts/verify-ws-tail.sh): 321 28.2 / 28.0 / 22.6, 384 26.2 / 26.4 / 24.4, 640 36.7 / 36.8 / 36.1, 1100 60.6 / 61.0
// / 59.6, and the kernel checks with 128 (the 65..128-row tails at m = 321 / 384 included) 2,121 ok, 0 FAIL: 128 is
// the default since.
int ws_tail_rows(int m, int in, int out) {
  static const int maxTail = std::min(128, std::max(0, env_int("AWQ_GEMM_WS_TAIL_ROWS", 128)));
  constexpr int kRowTile = 256;  // gemm_ws_default_variant's v2 above 128 rows
  if (m <= kRowTile || maxTail == 0 || g_wsVariant != 0 || !awq_ws_path(m, in, out) ||
      gemm_ws_default_variant(m, in, out) != 2)
    return 0;
  const int tail = m % kRowTile;
  return tail <= maxTail ? tail : 0;
}

bool awq_rs_path(int m, int in, int out) {
  if (!hopper_device() || m > 256 || narrow_gemv_path(m, in, out)) return false;
  if (g_pathOverride != 0) return g_pathOverride == 2;
  if (m <= 8) return false;  // the GEMV streams faster at m <= 8
  // H100 sweep (kernel-tests bench_variants): at m = 9..16 the GEMV still wins on the square o_proj. Above 64 rows
  // the register-A GEMM wins each linear timed alone (qkv / o / down) but a whole decode step (CUDA graph, PDL) at
  // batch 128 ran 2.5% slower with it than with the smem-B GEMM (H100: 3,662 vs 3,755 tokens/s): smem-B there.
  if (m <= 16) return in != out;
  if (m <= 64) return true;
  // 65..128 rows, per shape (H200, 2026-12-06, kernel-tests at m = 128, us): register-A against smem-B qkv 72.1 /
  // 82.1, o 35.1 / 40.8, down 73.2 / 84.2, gate_up 144.0 / 115.6. The widest matrix (out >= 4 in: gate_up) keeps
  // smem-B, whose loss there is what made the whole-step A/B above favour smem-B for every shape. Whole decode
  // steps (H100, 2026-12-06, two alternating pairs of processes): batch 128 4,028 / 3,998 tokens/s with it against
  // 3,926 / 3,947 without (+1.9 %), batch 64 unchanged. On by default; AWQ_GEMM_RS128=0 turns it off.
  static const bool rs128 = env_int("AWQ_GEMM_RS128", 1) != 0;
  return rs128 && m <= 128 && out < 4 * in;
}

// Hopper, and a linear workspace the wgmma GEMMs can use (its counters, 16-byte aligned).
static bool wgmma_workspace_ok(const void* workspace, size_t workspaceBytes) {
  return hopper_device() && workspace != nullptr && workspaceBytes >= kLinearCounters * sizeof(int) &&
         reinterpret_cast<uintptr_t>(workspace) % 16 == 0;
}

cudaError_t awq_gemm_ws(const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                        void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  if (!wgmma_workspace_ok(workspace, workspaceBytes)) return cudaErrorNotSupported;
  if (awq_ws_path(m, in, out)) {
    const cudaError_t e =
        gemm_sm90_ws(g_wsVariant, g_wsSk, x, m, packed, in, out, group, y, workspace, workspaceBytes, stream);
    if (e != cudaErrorNotSupported) return e;
  }
  const int kChunks = in / 64;
  float* ws = reinterpret_cast<float*>(static_cast<char*>(workspace) + kLinearCounters * sizeof(int));
  const size_t wsFloats = (workspaceBytes - kLinearCounters * sizeof(int)) / sizeof(float);
  if (awq_rs_path(m, in, out)) {
    // Register-A GEMM: 128 outputs x sh.rows rows a block; split-K until the blocks fill every SM's slots.
    const RsShape sh = gemm_rs_shape(g_rsVariant, m);
    const long blocks = (long)detail::ceil_div(out, 128) * detail::ceil_div(m, sh.rows);
    if (blocks > kLinearCounters) return cudaErrorNotSupported;
    int splits = g_splitOverride > 0 ? g_splitOverride : split_for(blocks, kChunks, (long)sh.minBlocks * sms(), 8);
    splits = std::max(1, std::min(splits, kChunks));
    while (splits > 1 && (size_t)splits * m * out > wsFloats) --splits;
    return gemm_sm90_rs(sh, x, m, packed, in, out, group, y, splits, ws, static_cast<int*>(workspace), stream);
  }
  // Auto split: enough blocks to fill the SMs, >= 24 chunks per split (on the H200 sweep, o_proj with
  // 80 chunks ran best with 3 splits: 6 spent more on the partial sums than they saved).
  auto autoSplits = [&](long t) {
    return (int)std::max<long>(1, std::min<long>(sms() / t, std::max(1, kChunks / 24)));
  };
  bool halfM = m <= 64;
  long tiles = (long)detail::ceil_div(m, halfM ? 64 : 128) * detail::ceil_div(out, 256);
  // 128 x 128 tiles for narrow matrices at decode sizes, where they give more blocks than the 256-wide
  // tiles with their split (H200 sweep: o_proj at m = 64 and 128, down_proj and qkv at m = 128);
  // at m <= 64 only when they also beat the 64-row tiles' block count within one wave.
  const long tiles128 = (long)detail::ceil_div(m, 128) * detail::ceil_div(out, 128);
  const bool use128 = halfM ? tiles128 <= sms() && tiles128 * autoSplits(tiles128) > tiles * autoSplits(tiles)
                            : m <= 256 && 2 * tiles < sms();
  int bn = 256;
  if (use128) {
    halfM = false;
    bn = 128;
    tiles = tiles128;
  }
  if (tiles > kLinearCounters) return cudaErrorNotSupported;
  int splits = g_splitOverride;
  if (splits <= 0) splits = autoSplits(tiles);
  splits = std::max(1, std::min(splits, kChunks));
  while (splits > 1 && (size_t)splits * m * out > wsFloats) --splits;
  return gemm_sm90_split(true, halfM, bn, x, m, packed, in, out, group, y, splits, ws, static_cast<int*>(workspace),
                         stream);
}

cudaError_t awq_gemm_ws_glu(const __half* x, int m, const void* packed, int in, int out, int group, __half* act,
                            void* workspace, size_t workspaceBytes, cudaStream_t stream) {
  if (!wgmma_workspace_ok(workspace, workspaceBytes) || !awq_ws_path(m, in, out)) return cudaErrorNotSupported;
  return gemm_sm90_ws(g_wsVariant, g_wsSk, x, m, packed, in, out, group, act, workspace, workspaceBytes, stream, true);
}

cudaError_t awq_gemm(const __half* x, int m, const void* packed, int in, int out, int group,
                     __half* y, cudaStream_t stream) {
  // Whole tiles only (no workspace here): only when forced (AWQ_GEMM_WS=1); the default m >= 256 rule was timed
  // with the workspace (stream-K), which the engine's linears always pass.
  if (g_wsMode == 2 && awq_ws_path(m, in, out)) {
    const cudaError_t e = gemm_sm90_ws(g_wsVariant, 0, x, m, packed, in, out, group, y, nullptr, 0, stream);
    if (e != cudaErrorNotSupported) return e;
  }
  return dispatch<true, 4>(x, m, packed, in, out, group, y, stream);
}

cudaError_t dense_gemm(const __half* x, int m, const __half* w, int in, int out, __half* y,
                       cudaStream_t stream) {
  return dispatch<false, 3>(x, m, w, in, out, 0, y, stream);
}

}  // namespace awqk
