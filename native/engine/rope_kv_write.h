// RoPE and the paged KV-cache write (rope_kv_write.cu).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/kernels.h"

namespace awq {

/** RoPE variant: the CPU backend's (HF Llama) rules, with positions scaled (linear) or the base grown (dynamic NTK). */
struct RopeParams {
  float theta;
  int scaling;  // 0 = none, 1 = linear, 2 = dynamic NTK
  float factor;
  int originalMaxPositions;
};

/**
 * Rotates q and k of each token (rotate-half pairs (i, i + headDim/2)) and writes k, v into the paged cache.
 * qkv (numTokens, (numHeads + 2 numKvHeads) headDim) fp16: q heads, then k heads, then v heads.
 * qOut (numTokens, numHeads, headDim) fp16. kCache/vCache (numBlocks, blockSize, numKvHeads, headDim) of kvDtype
 * (fp16, or FP8 E4M3 bytes at scale 1.0: round to nearest even, saturating at +-448, from the fp32 rotated key and
 * the fp16 value), slot = block * blockSize + offset; tokens with slot < 0 write nothing to the cache.
 * tokenSeqLen (numTokens): for dynamic NTK, the length of the token's sequence after this step.
 * cosSinTable (maxPositions, headDim / 2) (cos, sin) from launchRopeTable; positions must be below maxPositions
 * (dynamic NTK past the original context computes its own angles).
 */
void launchRopeKvWrite(const half* qkv, const int32_t* positions, const int32_t* slotMapping,
                       const int32_t* tokenSeqLen, const float2* cosSinTable, half* qOut, void* kCache,
                       void* vCache, awqk::KvCacheDtype kvDtype, int numTokens, int numHeads, int numKvHeads,
                       int headDim, const RopeParams& rope, cudaStream_t stream);

/**
 * Fills cosSinTable (maxPositions, headDim / 2) with (cos, sin) of f32(pos * invFreq[i]) as the CPU reference
 * computes them; invFreq (headDim / 2) fp32 from computeInvFreq.
 */
void launchRopeTable(const float* invFreq, float2* table, int maxPositions, int headDim, const RopeParams& rope,
                     cudaStream_t stream);

/** The CPU reference's inverse frequencies (double, rounded to f32), (headDim / 2) values. */
void computeInvFreq(int headDim, double theta, float* out);

}  // namespace awq
