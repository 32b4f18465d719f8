// Internal launchers shared between the kernel files (not for the engine: use kernels.h).
#pragma once

#include <cstddef>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels.h"

namespace awqk {

// True when the current device is Hopper (compute capability 9.x): the wgmma / TMA kernels' devices.
bool hopper_device();

// A 0 / 1 switch from the environment (values checked on the TypeScript side, native-switches.ts): "0..." off,
// anything else on, unset or empty `dflt` (launch.cu).
bool env_flag(const char* name, bool dflt);

// Rows of m past the WS GEMM's last full 256-row tile that awq_linear / awq_linear_silu run as a linear of their own
// (0: none; gemm.cu, AWQ_GEMM_WS_TAIL_ROWS).
int ws_tail_rows(int m, int in, int out);

// Bytes of the packed int4 part (the zero/scale part follows it).
size_t awq_weight_bytes(int in, int out);
bool awq_shape_ok(int in, int out, int group);

// Weight-streaming tensor-core GEMV for m <= 32 (swap-AB: W^T is the mma A operand).
cudaError_t awq_gemv(const __half* x, int m, const void* packed, int in, int out, int group,
                     __half* y, cudaStream_t stream);
cudaError_t dense_gemv(const __half* x, int m, const __half* w, int in, int out, __half* y,
                       cudaStream_t stream);

// Tile GEMM (any m) for AWQ-packed or dense (out, in) weights.
cudaError_t awq_gemm(const __half* x, int m, const void* packed, int in, int out, int group,
                     __half* y, cudaStream_t stream);
cudaError_t dense_gemm(const __half* x, int m, const __half* w, int in, int out, __half* y,
                       cudaStream_t stream);

// Paged prefill attention with wgmma (attention_prefill_sm90.cu): head dim 128, fp16 or FP8 cache, sm_90a; returns
// cudaErrorNotSupported for any other head dim or device (attention.cu's mma.sync kernel takes those).
bool prefill_attention_sm90_enabled();
cudaError_t paged_attention_prefill_sm90(const __half* q, const void* kc, const void* vc, KvCacheDtype kvDtype,
                                         const int32_t* blockTables, int maxBlocksPerSeq, const int32_t* queryStarts,
                                         const int32_t* contextLens, int numSeqs, int maxQueryLen, int numHeads,
                                         int numKvHeads, int headDim, float scale, __half* out, cudaStream_t stream);

// Hopper wgmma GEMM with 128 x bn tiles, bn = 128 or 256 (gemm_sm90.cu); falls back to mma.sync
// code on other architectures' cubins, so it is correct anywhere, fast on sm_90a.
cudaError_t gemm_sm90(bool awq, int bn, const __half* x, int m, const void* w, int in, int out,
                      int group, __half* y, cudaStream_t stream);

// Split-K / 64-row-tile variants of the wgmma GEMM (see gemm_sm90.cu; bn = 128 or 256, halfM needs
// 256): gridDim.z = splits; ws holds
// splits * m * out floats and counters one int per (m, n) tile, zero on entry (left zero).
cudaError_t gemm_sm90_split(bool awq, bool halfM, int bn, const __half* x, int m, const void* w, int in, int out,
                            int group, __half* y, int splits, float* ws, int* counters, cudaStream_t stream);

// AWQ linear for m > 8 through the split-K wgmma GEMM, with the workspace of kernels.h; returns
// cudaErrorNotSupported (nothing launched) where that path does not apply (not Hopper, no workspace).
cudaError_t awq_gemm_ws(const __half* x, int m, const void* packed, int in, int out, int group, __half* y,
                        void* workspace, size_t workspaceBytes, cudaStream_t stream);
// The gate|up linear + SiLU product through the warp-specialized GEMM's GLU epilogue (awq_linear_silu, kernels.h):
// act (m, out / 2). cudaErrorNotSupported (nothing launched) where that kernel does not take m rows (awq_ws_path),
// off Hopper or without the workspace.
cudaError_t awq_gemm_ws_glu(const __half* x, int m, const void* packed, int in, int out, int group, __half* act,
                            void* workspace, size_t workspaceBytes, cudaStream_t stream);
// The same for m <= 8 through the decode GEMV's register kernel (gemv.cu). cudaErrorNotSupported outside 1..8 rows.
cudaError_t awq_gemv_glu(const __half* x, int m, const void* packed, int in, int out, int group, __half* act,
                         cudaStream_t stream);
// Benchmark hook: force the split count of awq_gemm_ws (0 = auto).
void gemm_split_override(int splits);

// Register-A ("swap-AB") wgmma GEMM for AWQ at decode sizes (gemm_sm90_rs.cu): blocks of 128 outputs x `rows`
// rows of x (16..128), `kstep` 64-deep chunks per pipeline stage, `minBlocks` blocks an SM; gridDim.z = splits
// (ws / counters as for gemm_sm90_split). sm_90a only.
struct RsShape {
  int rows, kstep, minBlocks;
};
// The shape for m rows: variant 0 = the default for m, 1..8 = a fixed one (benchmark sweep).
RsShape gemm_rs_shape(int variant, int m);
constexpr int kRsVariants = 8;
cudaError_t gemm_sm90_rs(RsShape shape, const __half* x, int m, const void* w, int in, int out, int group, __half* y,
                         int splits, float* ws, int* counters, cudaStream_t stream);
// Benchmark hook: the register-A shape variant (0 = auto).
void gemm_rs_variant_override(int variant);
// Benchmark hook for awq_linear with a workspace: 0 = auto, 1 = never the register-A GEMM (GEMV up to
// kGemvMaxM, then the split-K wgmma GEMM), 2 = the register-A GEMM for every m <= 256.
void gemm_path_override(int path);
// Whether awq_linear with a workspace sends m rows of an (in, out) matrix to the register-A GEMM (through
// awq_gemm_ws) rather than the GEMV (m <= kGemvMaxM) or the smem-B wgmma GEMM.
bool awq_rs_path(int m, int in, int out);
// Whether m rows of an (in, out) matrix go to the decode GEMV (variant narrow_gemv_variant()) rather than the WS GEMM:
// the square matrices up to 8192 (`o`) at 9..16 rows by default (gemm.cu; AWQ_NARROW_GEMV_ROWS / _MAX_K / _VARIANT).
bool narrow_gemv_path(int m, int in, int out);
int narrow_gemv_variant();
constexpr int kLinearCounters = 4096;  // ints at the start of the linear workspace

// Bulk-copy (cp.async.bulk) GEMV for m <= 32 on sm_90+ (gemv_bulk.cu); variant 9..12 picks its
// stage shape for m <= 8 (9 = default).
bool gemv_bulk_available();
// Whether GEMV variant v runs on the bulk-copy kernels (9..15, 18..21); 16 / 17 are register variants 3 / 2 with
// evict-first loads, 18 is bulk variant 12 with evict-first copies, 19..21 take 2 / 4 / 4 tiles a block.
constexpr bool gemv_bulk_variant(int v) { return (v >= 9 && v <= 15) || (v >= 18 && v <= 21); }
// Epilogue of a decode GEMV whose output y (m, out) is the residual stream's next delta (awq_linear_add_rmsnorm):
// residual += fp16(y), then the last block to finish writes normed = rmsnorm(residual) * weight. partial
// (m * ceil(out / 16) floats) and counter come from the linear workspace: zero on entry, left zero. on = false:
// a plain GEMV.
struct AddNormEpilogue {
  bool on = false;
  float* residual = nullptr;      // (m, out) fp32
  const __half* weight = nullptr;  // (out)
  __half* normed = nullptr;        // (m, out)
  float* partial = nullptr;        // (m, nTiles): sum of squares of each 16-column tile of the new residual
  int* counter = nullptr;          // blocks done
  float eps = 0.f;
};
cudaError_t awq_gemv_bulk(int variant, const __half* x, int m, const void* packed, int in, int out, int group,
                          __half* y, cudaStream_t stream, const AddNormEpilogue& epi = AddNormEpilogue{});

constexpr int kGemvMaxM = 32;

// Decode attention by KV head (attention_decode_grouped.cu): one block per (split, kv head, sequence) for the G =
// numHeads / numKvHeads query heads sharing it (G in 1, 2, 4, 8; cudaErrorNotSupported otherwise, nothing
// launched). tensorCores: both products on mma.sync (FP8 cache and head dim 128 only, else cudaErrorNotSupported). Workspace: after per_head_decode_ws_bytes, kGroupedCounterBytes of split counters (zero between
// calls), then the partials.
constexpr int kGroupedCounters = 8192;
constexpr size_t kGroupedCounterBytes = kGroupedCounters * sizeof(int);
constexpr size_t kGroupedMaxEntries = 8192;  // (sequence, head, split) partials the engine's workspace holds
// Workspace bytes: the per-query-head kernel's whole area (attention_decode.cu; left untouched by the other), and
// the by-KV-head kernel's need for `splits` (after that area).
size_t per_head_decode_ws_bytes(int headDim);
size_t grouped_decode_ws_bytes(int numSeqs, int numHeads, int headDim, int splits);
cudaError_t paged_attention_decode_grouped(const __half* q, const void* kCache, const void* vCache,
                                           KvCacheDtype kvDtype, const int32_t* blockTables, int maxBlocksPerSeq,
                                           const int32_t* contextLens, int numSeqs, int maxContextLen, int numHeads,
                                           int numKvHeads, int headDim, float scale, void* workspace,
                                           size_t workspaceBytes, __half* out, cudaStream_t stream,
                                           bool tensorCores = false);
// Benchmark hooks: the blocks per SM the split count aims at (0 = AWQ_ATTN_BLOCKS_PER_SM or 4), and the decode
// kernel (0 = AWQ_ATTN_DECODE or the default, 1 = per query head (attention_decode.cu), 2 = by KV head, 3 = by KV
// head on tensor cores where it takes the shape, else 2).
void grouped_decode_blocks_per_sm_override(int blocksPerSm);
// Benchmark hook: the balanced grid of the by-KV-head decode kernel (0 = AWQ_ATTN_BALANCED, off by default; 1 = off;
// 2 = on where it takes the launch), and its blocks (0 = about one wave of the device).
void grouped_decode_balanced_override(int setting, int blocks = 0);
long grouped_decode_balanced_launches();  // for the checks: how many launches took the balanced grid
void attention_decode_variant_override(int variant);

// Benchmark hook for m <= 8: GEMV variant (tiles per warp, burst, double buffering, warps; see
// launch_awq in gemv.cu); 0 = the default.
struct GemvConfig {
  int variant = 0;
  int pf = -1;      // L2 prefetch distance in 64-k chunks ahead of the loads (0 = off; < 0 = AWQ_GEMV_PF / default)
  int pfMode = -1;  // 1 = cp.async.bulk.prefetch.L2 (sm_90), 2 = per-lane prefetch.global.L2 (< 0 = AWQ_GEMV_PF_MODE)
};
// The L2 prefetch distance and mode in effect (the override, else the environment, else the default).
struct GemvPrefetch {
  int dist, mode;
};
GemvPrefetch gemv_prefetch();
void awq_gemv_override(GemvConfig c);
// Benchmark hook: force the GEMM tile (1 = 128x256, 2 = 128x128, 3 = 64x128, 4 = 64x64,
// 5 = sm_90 wgmma 128x128, 6 = sm_90 wgmma 128x256; 0 = auto).
void gemm_override(int config);

}  // namespace awqk
