// The engine's own element-wise and normalization kernels (the matmuls and attention are in kernels/).
// Activations are fp16; the residual stream is kept in fp32 so that 40 layers of adds lose nothing.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rope_kv_write.h"

namespace awq {

/** residual[t][:] = float(embed[tokenIds[t]][:]).  embed (vocab, hidden) fp16; residual (numTokens, hidden) fp32. */
void launchEmbedding(const int32_t* tokenIds, const half* embed, float* residual, int numTokens, int hidden,
                     cudaStream_t stream);

/**
 * Fused residual add + RMSNorm over rows: for output row r, source row s = rowIndex ? rowIndex[r] : r;
 * x = residual[s] + (delta ? delta[s] : 0); residual[s] = x when writeResidual;
 * out[r] = fp16(x * rsqrt(mean(x^2) + eps) * weight).
 * residual (rows, hidden) fp32; delta (rows, hidden) fp16; weight (hidden) fp16; out (numOut, hidden) fp16.
 */
void launchAddRmsNorm(float* residual, const half* delta, const half* weight, half* out, const int32_t* rowIndex,
                      int numOut, int hidden, float eps, bool writeResidual, cudaStream_t stream);

/**
 * act[t][i] = fp16(silu(gate) * up), gate and up read from gateUp (numTokens, 2 inter) as fp16. Halves
 * (interleaved8 false): gate = gateUp[t][i], up = gateUp[t][inter + i]; inter even. Interleaved by 8 (the AWQ
 * gate|up weights' output order on the GPU, see interleaveColumnBlocks): gate = gateUp[t][16 (i / 8) + i % 8],
 * up = gateUp[t][16 (i / 8) + 8 + i % 8]; inter % 8 == 0. act (numTokens, inter).
 */
void launchSiluMul(const half* gateUp, half* act, int numTokens, int inter, bool interleaved8, cudaStream_t stream);

/**
 * Row r of src is [a | b], two halves of `blocks` blocks of `unitsPerBlock` 32-bit units each; row r of dst becomes
 * a0 b0 a1 b1 ... (block by block). src and dst (rows, 2 blocks unitsPerBlock) uint32, distinct buffers.
 */
void launchInterleaveColumnBlocks(const uint32_t* src, uint32_t* dst, size_t rows, int blocks, int unitsPerBlock,
                                  cudaStream_t stream);

/**
 * A chained step's token ids on the device: each tokenIds[t] < 0 becomes sampled[-tokenIds[t] - 1] (the token the
 * step before sampled in that row). tokenIds (numTokens) int32, in place; sampled (rows) int32.
 */
void launchChainedTokens(int32_t* tokenIds, const int32_t* sampled, int numTokens, cudaStream_t stream);

/** Converts n values of bf16 (Uint16 bits) or f32 to fp16 on the device. */
void launchBf16ToHalf(const uint16_t* in, half* out, size_t n, cudaStream_t stream);
void launchF32ToHalf(const float* in, half* out, size_t n, cudaStream_t stream);
/** fp16 -> fp32 (logits). */
void launchHalfToFloat(const half* in, float* out, size_t n, cudaStream_t stream);

/** Synthetic weights: counter-hashed random bits (int32 words) and uniform fp16 values in [lo, hi). */
void launchRandomWords(uint32_t* out, size_t n, uint32_t seed, cudaStream_t stream);
void launchRandomHalf(half* out, size_t n, uint32_t seed, float lo, float hi, cudaStream_t stream);
void launchFillHalf(half* out, size_t n, float value, cudaStream_t stream);

}  // namespace awq
