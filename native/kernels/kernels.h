// awq-ts CUDA kernels: plain C++ launchers (device pointers + sizes + stream), no N-API.
//
// Files in native/kernels/ (CMake compiles every native/kernels/*.cu; all need sm_80+ instructions,
// i.e. mma.sync / cp.async / ldmatrix; build for sm_90a and sm_80 (+ compute_80 PTX)):
//   kernels.h          this header (the only one the engine includes)
//   common.cuh         internal device helpers (mma / cp.async / dequant inline functions)
//   internal.h         internal launchers shared between the .cu files
//   awq_repack.cu      awq_packed_bytes, awq_repack
//   gemv.cu            decode path (m <= 32): weight-streaming tensor-core GEMV (AWQ and dense),
//                      register bursts; picks a variant per shape (auto_variant)
//   gemv_bulk.cu       sm_90 AWQ GEMV fed by cp.async.bulk into a per-warp shared-memory ring
//   launch.h/.cu       programmatic dependent launch (PDL) helper used by the decode kernels
//   gemm.cu            prefill path (m > 32): tile choice + launchers of the mma.sync GEMM
//   gemm_mma.cuh       the mma.sync tile GEMM body (AWQ and dense fp16 weights), sm_80+
//   gemm_sm90.cu       Hopper wgmma GEMM (128x256 tiles; 64x256 and split-K for decode batches) on
//                      cc 9.x for m > 64 (and 33..64 when forced); its non-sm_90a
//                      cubins run the mma.sync body, so it is correct whichever cubin is loaded.
//                      The wgmma speed needs the sm_90a cubin to be the one loaded on H100/H200:
//                      a plain sm_90 cubin in the same fatbin may be preferred by the driver and
//                      would silently fall back to the ~20% slower mma.sync body.
//   gemm_sm90_rs.cu    Hopper register-A ("swap-AB") wgmma GEMM for AWQ at m = 9..64 (awq_rs_path in gemm.cu):
//                      dequantized weights as the wgmma A operand in registers, x in shared memory
//   wgmma.cuh          wgmma descriptors / fences / register-A shapes and the split-K epilogue shared by both
//   gemm_sm90_ws.cu    Hopper warp-specialized persistent AWQ GEMM for prefill (TMA / bulk-copy producer warp,
//                      register-A wgmma consumers, stream-K tail, optional 2-block clusters); off unless
//                      AWQ_GEMM_WS=1 (then m > 64); gemm_ws.h declares it and its test hooks. Not yet run on a GPU.
//   linear.cu          awq_linear, dense_linear (validation + dispatch by m)
//   attention.cu       paged_attention_prefill
//   attention_decode.cu paged_attention_decode (+ split reduction)
//
// Conventions for every launcher:
// - All tensors are device pointers, row-major, fp16 (__half) unless stated; accumulation is fp32.
// - Launchers only enqueue work on `stream` (never synchronize) and return cudaGetLastError() of the
//   launch, or cudaErrorInvalidValue when a size precondition (listed per function) is violated.
// - bf16 models: convert weights/activations to fp16 at load; these kernels are fp16 only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace awqk {

// ---------------------------------------------------------------------------------------------
// AWQ W4A16 linear: y(m, out) = x(m, in) @ W(in, out)
//
// Input (AutoAWQ "GEMM" checkpoint tensors, copied to the device as they are in the file):
//   qweight int32 (in, out/8); qzeros int32 (in/group, out/8); scales fp16 (in/group, out);
//   nibble i (bits 4i..4i+3) of each int32 holds output column 8c + [0,2,4,6,1,3,5,7][i];
//   W[k][n] = (q[k][n] - z[k/group][n]) * s[k/group][n].
// Preconditions: in % group == 0, group % 64 == 0 (AutoAWQ uses 128), out % 8 == 0.
// Fused projections (q|k|v, gate|up) are just wider matrices: concatenate the checkpoint tensors
// along `out` before repacking (qweight/qzeros/scales columns side by side), then one awq_linear
// produces y(m, out_q + out_k + out_v) with each part's columns contiguous in every row.
//
// Packed layout (opaque to the engine; described for the tests): out is padded to a multiple of
// 16 (padding columns are zero), nTiles = ceil(out/16);
//   weights: int32 [nTiles][in/64][32 lanes][4]  (each uint4 = one lane's mma fragments for 16
//            outputs x 64 k), then zero/scale: half2 [nTiles][in/group][8][2] = {1024+z, s}.
// ---------------------------------------------------------------------------------------------

// Bytes of the repacked weight buffer for one matrix (allocate it with cudaMalloc: 256-B aligned).
size_t awq_packed_bytes(int in, int out, int group);

// One-time repack at load. The source tensors may be freed after the stream reaches this point.
// packed: awq_packed_bytes(in, out, group) bytes, 16-byte aligned.
cudaError_t awq_repack(const int32_t* qweight,  // (in, out/8)
                       const int32_t* qzeros,   // (in/group, out/8)
                       const __half* scales,    // (in/group, out)
                       int in, int out, int group,
                       void* packed,            // awq_packed_bytes(...) bytes
                       cudaStream_t stream);

// y = x @ W. Dispatch: m <= 32 -> weight-streaming GEMV (reads the weights once; bulk-copy ring on
// sm_90); with a workspace on sm_90, m > 32 -> wgmma GEMM with 64-row tiles for m <= 64 and split-K
// over enough blocks to fill the SMs; without one, the GEMM without split. Deterministic (the split-K sum
// runs in a fixed order), graph-capture safe (no allocation or sync). x and y must not alias.
// m >= 0 (m == 0 is a no-op). Launched with programmatic dependent launch on sm_90 (launch.h).
// Workspace: linear_workspace_bytes() bytes, zero-filled once after allocation (cudaMemset); the
// kernels leave it zeroed. One workspace serves every call on one stream (calls must not overlap).
size_t linear_workspace_bytes();
cudaError_t awq_linear(const __half* x,     // (m, in)
                       int m,
                       const void* packed,  // from awq_repack
                       int in, int out, int group,
                       __half* y,           // (m, out)
                       cudaStream_t stream,
                       void* workspace = nullptr,  // linear_workspace_bytes(), or null (no split-K)
                       size_t workspaceBytes = 0);

// Fused gate|up projection + SiLU: act = silu(gate) * up of y = x @ W, with W's outputs gate and up interleaved by 8
// (outputs 16b..16b+7 are gate 8b..8b+7, outputs 16b+8..16b+15 the matching up ones; the engine repacks AutoAWQ's
// gate|up that way), so act[:, 8b + i] = silu(y[:, 16b + i]) * y[:, 16b + 8 + i], with y rounded to fp16 first as
// the unfused linear + SiLU product would. The warp-specialized GEMM's epilogue (Hopper, the rows it takes, with the
// workspace). cudaErrorNotSupported (nothing launched) where it does not apply: run awq_linear and the SiLU product.
cudaError_t awq_linear_silu(const __half* x,     // (m, in)
                            int m,
                            const void* packed,  // from awq_repack, (in, out): gate|up interleaved by 8
                            int in, int out, int group,
                            __half* act,         // (m, out / 2)
                            cudaStream_t stream,
                            void* workspace,     // linear_workspace_bytes()
                            size_t workspaceBytes);

// Decode projection feeding the residual stream, fused with the next residual add + RMSNorm: y = fp16(x @ W),
// residual += y, normed = fp16(residual * rsqrt(mean(residual^2) + eps) * normWeight) (each row), the roundings of
// awq_linear followed by the engine's add + RMSNorm. Uses the linear workspace (as awq_linear; left zero).
// cudaErrorNotSupported (nothing launched) where no fused kernel applies (m > 8, not the bulk-copy GEMV, no
// workspace, or AWQ_GEMV_ADDNORM unset/0): run awq_linear and the add + RMSNorm instead.
cudaError_t awq_linear_add_rmsnorm(const __half* x,          // (m, in)
                                   int m, const void* packed, int in, int out, int group,
                                   __half* y,                // (m, out): x @ W in fp16
                                   float* residual,          // (m, out) fp32, updated in place
                                   const __half* normWeight, // (out)
                                   float eps,
                                   __half* normed,           // (m, out)
                                   void* workspace, size_t workspaceBytes, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// Dense fp16 linear (lm_head, fp16 models): y(m, out) = x(m, in) @ W^T with W in the PyTorch layout
// (out, in) fp16, used as-is (no repack). Preconditions: in % 64 == 0; any out >= 1 (tails such as
// vocab 32002 are handled). W must be 16-byte aligned.
// ---------------------------------------------------------------------------------------------
cudaError_t dense_linear(const __half* x,  // (m, in)
                         int m,
                         const __half* w,  // (out, in)
                         int in, int out,
                         __half* y,        // (m, out)
                         cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// Paged attention.
// KV cache, per layer, K and V each: (numBlocks, blockSize = 16, numKvHeads, headDim) of fp16 or, with
// KvCacheDtype::Fp8E4m3, one E4M3 byte per element (scale 1.0; fp8_e4m3.cuh), i.e.
// slot s = block * 16 + offset holds K[block][offset][kvHead][:]. The engine writes this step's K/V
// (after RoPE) into the cache through the slot mapping BEFORE calling attention.
// q: (numTokens, numHeads, headDim) after RoPE; out: (numTokens, numHeads, headDim).
// GQA: numHeads % numKvHeads == 0; query head h reads kv head h / (numHeads / numKvHeads).
// headDim in {64, 128}. scale is usually 1/sqrt(headDim).
// blockTables int32 (numSeqs, maxBlocksPerSeq), entries past a sequence's blocks are ignored.
// contextLens int32 (numSeqs): tokens in the KV cache for the sequence AFTER this step (cached
// prefix + this step's tokens).
// ---------------------------------------------------------------------------------------------
constexpr int kKvBlockSize = 16;

// The KV cache's element type (vLLM's --kv-cache-dtype auto -> Fp16, fp8 / fp8_e4m3 -> Fp8E4m3).
enum class KvCacheDtype : int { Fp16 = 0, Fp8E4m3 = 1 };
inline size_t kv_cache_element_bytes(KvCacheDtype dtype) { return dtype == KvCacheDtype::Fp8E4m3 ? 1 : 2; }

// Any query lengths (prefill, chunked prefill over a cached prefix, decode, or a mix): query token
// j of sequence i (queryLen q_i = queryStarts[i+1]-queryStarts[i], contextLen c_i) sits at
// position c_i - q_i + j and attends causally to cache positions 0 .. c_i - q_i + j.
// maxQueryLen: max over sequences of q_i (host value; sizes the grid).
cudaError_t paged_attention_prefill(const __half* q,            // (numTokens, numHeads, headDim)
                                    const void* kCache,         // (numBlocks, 16, numKvHeads, headDim) kvDtype
                                    const void* vCache,         // (numBlocks, 16, numKvHeads, headDim) kvDtype
                                    KvCacheDtype kvDtype,
                                    const int32_t* blockTables, // (numSeqs, maxBlocksPerSeq)
                                    int maxBlocksPerSeq,
                                    const int32_t* queryStarts, // (numSeqs + 1)
                                    const int32_t* contextLens, // (numSeqs)
                                    int numSeqs, int maxQueryLen,
                                    int numHeads, int numKvHeads, int headDim, float scale,
                                    __half* out,                // (numTokens, numHeads, headDim)
                                    cudaStream_t stream);

// Decode fast path: exactly one query token per sequence (q row i belongs to sequence i), split
// over the context (flash-decoding) when it is long, with a reduction kernel.
// maxContextLen: max of contextLens (host value; sizes the grid), or any larger value (a graph
// captured with a context bucket stays correct for every context up to the bucket).
// Kernel: by KV head (attention_decode_grouped.cu) when numHeads == numKvHeads; with grouped-query heads per query
// head below 4 sequences, by KV head from 4, and by KV head on tensor cores over an FP8 cache (head dim 128) once
// numSeqs x maxContextLen >= 16384 (attention_decode.cu, decode_variant, has the timings);
// AWQ_ATTN_DECODE=per-head / grouped / mma forces one (mma falls back to grouped where it does not take the shape). Workspace: the returned size (< 0.6 MB with the per-head kernel
// forced; about 4.3 MB at headDim 128 otherwise, with the by-KV-head kernel's counters and 8192 partials;
// independent of numSeqs and maxContextLen) serves every
// call; a null or smaller workspace is allowed and only means fewer splits (slower, still exact).
// It must be zero-filled once after allocation (cudaMemset): it holds split counters that the
// kernel leaves at zero. Calls sharing one workspace must not overlap (one stream).
size_t paged_attention_decode_workspace_bytes(int numSeqs, int numHeads, int headDim,
                                              int maxContextLen);
cudaError_t paged_attention_decode(const __half* q,            // (numSeqs, numHeads, headDim)
                                   const void* kCache,         // (numBlocks, 16, numKvHeads, headDim) kvDtype
                                   const void* vCache,         // (numBlocks, 16, numKvHeads, headDim) kvDtype
                                   KvCacheDtype kvDtype,
                                   const int32_t* blockTables, // (numSeqs, maxBlocksPerSeq)
                                   int maxBlocksPerSeq,
                                   const int32_t* contextLens, // (numSeqs)
                                   int numSeqs, int maxContextLen,
                                   int numHeads, int numKvHeads, int headDim, float scale,
                                   void* workspace,            // decode_workspace_bytes(...)
                                   size_t workspaceBytes,
                                   __half* out,                // (numSeqs, numHeads, headDim)
                                   cudaStream_t stream);

// fp16 caches (the signatures from before FP8 KV).
inline cudaError_t paged_attention_prefill(const __half* q, const __half* kCache, const __half* vCache,
                                           const int32_t* blockTables, int maxBlocksPerSeq,
                                           const int32_t* queryStarts, const int32_t* contextLens, int numSeqs,
                                           int maxQueryLen, int numHeads, int numKvHeads, int headDim,
                                           float scale, __half* out, cudaStream_t stream) {
  return paged_attention_prefill(q, static_cast<const void*>(kCache), static_cast<const void*>(vCache),
                                 KvCacheDtype::Fp16, blockTables, maxBlocksPerSeq, queryStarts, contextLens,
                                 numSeqs, maxQueryLen, numHeads, numKvHeads, headDim, scale, out, stream);
}
inline cudaError_t paged_attention_decode(const __half* q, const __half* kCache, const __half* vCache,
                                          const int32_t* blockTables, int maxBlocksPerSeq,
                                          const int32_t* contextLens, int numSeqs, int maxContextLen,
                                          int numHeads, int numKvHeads, int headDim, float scale,
                                          void* workspace, size_t workspaceBytes, __half* out,
                                          cudaStream_t stream) {
  return paged_attention_decode(q, static_cast<const void*>(kCache), static_cast<const void*>(vCache),
                                KvCacheDtype::Fp16, blockTables, maxBlocksPerSeq, contextLens, numSeqs,
                                maxContextLen, numHeads, numKvHeads, headDim, scale, workspace, workspaceBytes,
                                out, stream);
}

}  // namespace awqk
