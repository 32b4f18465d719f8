// GPU sampling with the reference sampler's semantics and order (src/backend/sampler.ts): the token mask
// (structured outputs, allowed_token_ids), raw logprobs, logit
// bias, repetition / presence / frequency penalties, greedy, temperature, min-p, top-k, top-p, and an inverse-CDF
// draw in token-id order with the counter-based RNG of src/backend/rng.ts (ported bit-exactly).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace awq {

/** Device pointers of one step's sampling inputs; per-row arrays have numRows entries (row = sampled sequence). */
struct SamplerArgs {
  const float* rawLogits;  // (numRows, vocab) fp32, untouched
  float* work;             // (numRows, vocab) fp32 scratch: the processed logits
  int32_t* counts;         // (numRows, vocab) int32, all zero before and after the call
  int numRows;
  int vocab;
  const float* temperature;        // (numRows)
  const float* topP;               // (numRows)
  const int32_t* topK;             // (numRows)
  const float* minP;               // (numRows)
  const float* repetitionPenalty;  // (numRows)
  const float* presencePenalty;    // (numRows)
  const float* frequencyPenalty;   // (numRows)
  const uint32_t* seed;            // (numRows)
  const int32_t* outputIndex;      // (numRows)
  const int32_t* logprobs;         // (numRows) -1 none, 0 chosen only, N chosen + top N
  const int32_t* promptStarts;     // (numRows + 1)
  const int32_t* promptTokens;
  const int32_t* outputStarts;     // (numRows + 1)
  const int32_t* outputTokens;
  const int32_t* biasStarts;       // (numRows + 1)
  const int32_t* biasTokens;
  const float* biasValues;
  // Allowed-token bitmasks: row r may sample token t only if bit (t & 31) of tokenMask[maskRow[r] * maskWords +
  // (t >> 5)] is set; maskRow null (no masks this step) or maskRow[r] = -1: no mask. maskBefore[r] != 0: the
  // logprobs are of the masked distribution (a grammar), else of the raw one (allowed_token_ids).
  const int32_t* maskRow;          // (numRows) or null
  const int32_t* maskBefore;       // (numRows)
  const uint32_t* tokenMask;       // (numMaskRows, maskWords)
  int maskWords;                   // ceil(vocab / 32)
  int maxTop;                      // capacity of the top-N outputs per row
  int32_t* outToken;               // (numRows)
  float* outLogprob;               // (numRows) NaN where not requested
  int32_t* outTopIds;              // (numRows, maxTop)
  float* outTopLogprobs;           // (numRows, maxTop)
};

void launchSampler(const SamplerArgs& args, cudaStream_t stream);

/** Optional outputs of launchTokenLogprobs: prompt_logprobs N > 0 (n = 0: none). */
struct TokenTopArgs {
  int n = 0;                  // alternatives per row
  int32_t* ids = nullptr;     // (numRows, n) best first, lowest id first on ties; -1 where targets[r] < 0
  float* logprobs = nullptr;  // (numRows, n) log_softmax of the raw logits; NaN where targets[r] < 0
  int32_t* ranks = nullptr;   // (numRows) tokens with a logit >= the target's (1 = the best); -1 where targets[r] < 0
};

/**
 * out[r] = log_softmax(logits[r])[targets[r]] (fp32 logits, lse in double), NaN where targets[r] < 0; with top.n > 0
 * also the top-n alternatives and the target's rank (the CPU backend's semantics, src/backend/cpu/cpu-backend.ts).
 * logits (numRows, vocab); targets (numRows); out (numRows).
 */
void launchTokenLogprobs(const float* logits, const int32_t* targets, float* out, int numRows, int vocab,
                         cudaStream_t stream, const TokenTopArgs& top = TokenTopArgs{});

}  // namespace awq
