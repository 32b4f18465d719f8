// One block per sampled row runs the whole reference sampler (see sampler.h for the order). The processed
// logits live in `work` (global memory, L2-resident); phases are separated by __syncthreads, which also orders
// the block's global-memory accesses. Sums that decide a draw are in double, as the reference's are.
#include <cfloat>
#include <climits>
#include <cmath>

#include "cuda_check.h"
#include "sampler.h"
#include "sampler_block.cuh"

namespace awq {
namespace {

// The k-th largest value of row (k >= 1), by 8-bit radix selection from the top digit down.
__device__ float kthLargest(const float* row, int vocab, int k, Shared& sh) {
  uint32_t prefix = 0;
  uint32_t mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) sh.countHist[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const uint32_t key = floatKey(row[i]);
      if ((key & mask) == prefix) atomicAdd(&sh.countHist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned above = 0;
      int digit = 0;
      for (int d = 255; d >= 0; d--) {
        if (above + sh.countHist[d] >= static_cast<unsigned>(k)) {
          digit = d;
          break;
        }
        above += sh.countHist[d];
      }
      sh.prefix = prefix | (static_cast<uint32_t>(digit) << shift);
      sh.remainingCount = k - static_cast<int>(above);
    }
    __syncthreads();
    prefix = sh.prefix;
    k = sh.remainingCount;
    mask |= 255u << shift;
    __syncthreads();
  }
  return keyFloat(prefix);
}

// Top-p threshold: probs p_i = f32(exp(l_i - max)); walking them from the largest down (ties together), the
// value at which the running mass first reaches target. When rounding leaves the whole mass short of target,
// the smallest probability (everything is kept).
__device__ float topPThreshold(const float* row, int vocab, float max, double target, Shared& sh) {
  uint32_t prefix = 0;
  uint32_t mask = 0;
  bool takeLowest = false;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) sh.massHist[i] = 0.0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float p = static_cast<float>(exp(static_cast<double>(row[i]) - static_cast<double>(max)));
      const uint32_t key = floatKey(p);
      if ((key & mask) == prefix) atomicAdd(&sh.massHist[(key >> shift) & 255u], static_cast<double>(p));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double above = 0.0;
      int digit = -1;
      if (!takeLowest) {
        for (int d = 255; d >= 0; d--) {
          if (above + sh.massHist[d] >= target && sh.massHist[d] > 0.0) {
            digit = d;
            break;
          }
          above += sh.massHist[d];
        }
      }
      if (digit < 0) {
        // Short of target: descend into the lowest non-empty digit (zero-mass keys count as empty).
        takeLowest = true;
        digit = 0;
        for (int d = 0; d < 256; d++) {
          if (sh.massHist[d] > 0.0) {
            digit = d;
            break;
          }
        }
      }
      sh.prefix = prefix | (static_cast<uint32_t>(digit) << shift);
      sh.remainingMass = takeLowest ? INFINITY : target - above;
    }
    __syncthreads();
    prefix = sh.prefix;
    target = sh.remainingMass;
    takeLowest = isinf(target);
    mask |= 255u << shift;
    __syncthreads();
  }
  return keyFloat(prefix);
}

__device__ Best argmaxRow(const float* row, int vocab, Shared& sh) {
  Best b{0.f, INT_MAX};
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const Best c{row[i], i};
    if (before(c, b)) b = c;
  }
  return blockBest(b, sh.best);
}

__device__ float rowMax(const float* row, int vocab, Shared& sh) {
  float m = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, row[i]);
  return blockMax(m, sh.maxes);
}

// Inverse-CDF draw in token-id order over tokens with a finite logit; -1 when none is kept.
__device__ int drawToken(const float* row, int vocab, float u, Shared& sh) {
  const float max = rowMax(row, vocab, sh);
  if (max == -INFINITY) return -1;
  const int perThread = (vocab + kThreads - 1) / kThreads;
  const int begin = min(vocab, static_cast<int>(threadIdx.x) * perThread);
  const int end = min(vocab, begin + perThread);
  double local = 0.0;
  int lastKept = -1;
  for (int i = begin; i < end; i++) {
    if (row[i] == -INFINITY) continue;
    local += exp(static_cast<double>(row[i]) - static_cast<double>(max));
  }
  const double total = blockSumDouble(local, sh.sums);
  const double target = static_cast<double>(u) * total;
  double running = blockExclusiveScan(local, sh.sums);
  int found = INT_MAX;
  for (int i = begin; i < end; i++) {
    if (row[i] == -INFINITY) continue;
    running += exp(static_cast<double>(row[i]) - static_cast<double>(max));
    lastKept = i;
    if (running > target) {
      found = i;
      break;
    }
  }
  found = blockMinInt(found, sh.mins);
  if (found != INT_MAX) return found;
  return -blockMinInt(lastKept >= 0 ? -lastKept : INT_MAX, sh.mins);
}

__device__ __forceinline__ bool maskAllows(const uint32_t* mask, int t) {
  return ((mask[t >> 5] >> (t & 31)) & 1u) != 0u;
}

// The lowest token id the mask allows (INT_MAX when none).
__device__ int firstAllowed(const uint32_t* mask, int vocab, Shared& sh) {
  int first = INT_MAX;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (maskAllows(mask, i)) {
      first = i;
      break;
    }
  }
  return blockMinInt(first, sh.mins);
}

__global__ void __launch_bounds__(kThreads) samplerKernel(SamplerArgs a) {
  __shared__ Shared sh;
  const int r = blockIdx.x;
  const int vocab = a.vocab;
  const float* raw = a.rawLogits + static_cast<size_t>(r) * vocab;
  float* work = a.work + static_cast<size_t>(r) * vocab;
  int32_t* counts = a.counts + static_cast<size_t>(r) * vocab;
  const int wantLogprobs = a.logprobs[r];
  // 0. Token mask: disallowed tokens are -inf in work; with maskFirst also in the logprobs ("logprob logits").
  const int maskRow = a.maskRow != nullptr ? a.maskRow[r] : -1;
  const uint32_t* mask = maskRow >= 0 ? a.tokenMask + static_cast<size_t>(maskRow) * a.maskWords : nullptr;
  const bool maskFirst = mask != nullptr && a.maskBefore[r] != 0;
  auto lpLogit = [&](int i) { return maskFirst && !maskAllows(mask, i) ? -INFINITY : raw[i]; };

  // Log-sum-exp for logprobs; copy (masked) raw -> work.
  double lse = NAN;
  if (wantLogprobs >= 0) {
    float m = -INFINITY;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, lpLogit(i));
    m = blockMax(m, sh.maxes);
    double s = 0.0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += exp(static_cast<double>(lpLogit(i)) - m);
    const double total = blockSumDouble(s, sh.sums);
    lse = m == -INFINITY ? -INFINITY : static_cast<double>(m) + log(total);
  }
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    work[i] = mask != nullptr && !maskAllows(mask, i) ? -INFINITY : raw[i];
  }
  __syncthreads();

  // 1. Logit bias (atomic: a repeated token id adds twice, as the reference does).
  for (int j = a.biasStarts[r] + threadIdx.x; j < a.biasStarts[r + 1]; j += blockDim.x) {
    atomicAdd(&work[a.biasTokens[j]], a.biasValues[j]);
  }
  __syncthreads();

  // 2. Penalties. counts[t]: bit 30 = in the prompt, low bits = occurrences in the output. The thread that
  // takes a token's count back to zero (atomicExch) applies that token's penalties exactly once.
  const float rep = a.repetitionPenalty[r];
  const float presence = a.presencePenalty[r];
  const float frequency = a.frequencyPenalty[r];
  const bool useRep = rep != 1.f;
  const bool useCounts = presence != 0.f || frequency != 0.f;
  const int p0 = a.promptStarts[r], p1 = a.promptStarts[r + 1];
  const int o0 = a.outputStarts[r], o1 = a.outputStarts[r + 1];
  if ((useRep || useCounts) && (p1 > p0 || o1 > o0)) {
    if (useRep) {
      for (int j = p0 + threadIdx.x; j < p1; j += blockDim.x) atomicOr(&counts[a.promptTokens[j]], 1 << 30);
    }
    for (int j = o0 + threadIdx.x; j < o1; j += blockDim.x) atomicAdd(&counts[a.outputTokens[j]], 1);
    __syncthreads();
    const int total = (p1 - p0) + (o1 - o0);
    for (int j = threadIdx.x; j < total; j += blockDim.x) {
      const int t = j < p1 - p0 ? a.promptTokens[p0 + j] : a.outputTokens[o0 + j - (p1 - p0)];
      const int v = atomicExch(&counts[t], 0);
      if (v == 0) continue;
      const int outCount = v & ((1 << 30) - 1);
      float l = work[t];
      if (useRep) l = l > 0.f ? l / rep : l * rep;
      if (useCounts && outCount > 0) {
        l = static_cast<float>(static_cast<double>(l) -
                               (static_cast<double>(presence) + static_cast<double>(frequency) * outCount));
      }
      work[t] = l;
    }
  }
  __syncthreads();

  int token;
  const float temperature = a.temperature[r];
  if (temperature < 1e-5f) {
    token = argmaxRow(work, vocab, sh).index;
  } else {
    if (temperature != 1.f) {
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) work[i] = work[i] / temperature;
      __syncthreads();
    }
    const float minP = a.minP[r];
    if (minP > 0.f) {
      const float m = rowMax(work, vocab, sh);
      const double cutoff = static_cast<double>(m) + log(static_cast<double>(minP));
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        if (static_cast<double>(work[i]) < cutoff) work[i] = -INFINITY;
      }
      __syncthreads();
    }
    const int topK = a.topK[r];
    if (topK > 0 && topK < vocab) {
      const float threshold = kthLargest(work, vocab, topK, sh);
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        if (work[i] < threshold) work[i] = -INFINITY;
      }
      __syncthreads();
    }
    const float topP = a.topP[r];
    if (topP < 1.f) {
      const float m = rowMax(work, vocab, sh);
      double s = 0.0;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        s += static_cast<double>(static_cast<float>(exp(static_cast<double>(work[i]) - static_cast<double>(m))));
      }
      const double total = blockSumDouble(s, sh.sums);
      const float threshold = topPThreshold(work, vocab, m, static_cast<double>(topP) * total, sh);
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float p = static_cast<float>(exp(static_cast<double>(work[i]) - static_cast<double>(m)));
        if (p < threshold) work[i] = -INFINITY;
      }
      __syncthreads();
    }
    token = drawToken(work, vocab, uniform01(a.seed[r], static_cast<uint32_t>(a.outputIndex[r])), sh);
    // Every token banned: the raw argmax (the processed one when raw logprobs were not taken), as the reference
    // (whose raw logits are the masked ones under maskFirst).
    if (token < 0) {
      if (maskFirst && wantLogprobs >= 0) {
        Best b{0.f, INT_MAX};
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
          const Best c{lpLogit(i), i};
          if (before(c, b)) b = c;
        }
        token = blockBest(b, sh.best).index;
      } else {
        token = argmaxRow(wantLogprobs >= 0 ? raw : work, vocab, sh).index;
      }
    }
  }
  if (token == INT_MAX) token = 0;
  // A mask whose every token is also banned: the mask wins (the lowest allowed id), as the reference.
  if (mask != nullptr && !maskAllows(mask, token)) {
    const int allowed = firstAllowed(mask, vocab, sh);
    if (allowed != INT_MAX) token = allowed;
  }

  if (threadIdx.x == 0) {
    a.outToken[r] = token;
    a.outLogprob[r] = wantLogprobs >= 0 ? static_cast<float>(static_cast<double>(lpLogit(token)) - lse) : NAN;
  }
  // Top-N of the raw logits, best first (lowest id on ties): N rounds of "the best after the previous one".
  const int n = min(min(wantLogprobs, a.maxTop), vocab);
  Best previous{0.f, -1};
  for (int k = 0; k < n; k++) {
    Best b{0.f, INT_MAX};
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const Best c{lpLogit(i), i};
      const bool after = previous.index < 0 || c.value < previous.value ||
                         (c.value == previous.value && c.index > previous.index);
      if (after && before(c, b)) b = c;
    }
    b = blockBest(b, sh.best);
    if (b.index == INT_MAX) break;
    if (threadIdx.x == 0) {
      a.outTopIds[static_cast<size_t>(r) * a.maxTop + k] = b.index;
      a.outTopLogprobs[static_cast<size_t>(r) * a.maxTop + k] = static_cast<float>(static_cast<double>(b.value) - lse);
    }
    previous = b;
  }
}

__global__ void __launch_bounds__(kThreads)
    tokenLogprobsKernel(const float* logits, const int32_t* targets, float* out, int vocab, TokenTopArgs top) {
  __shared__ Shared sh;
  const int r = blockIdx.x;
  const int target = targets[r];
  if (target < 0) {
    if (threadIdx.x == 0) {
      out[r] = NAN;
      if (top.n > 0) top.ranks[r] = -1;
    }
    if (top.n > 0) {
      for (int k = threadIdx.x; k < top.n; k += blockDim.x) {
        top.ids[static_cast<size_t>(r) * top.n + k] = -1;
        top.logprobs[static_cast<size_t>(r) * top.n + k] = NAN;
      }
    }
    return;
  }
  const float* row = logits + static_cast<size_t>(r) * vocab;
  const float m = rowMax(row, vocab, sh);
  double s = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += exp(static_cast<double>(row[i]) - m);
  const double total = blockSumDouble(s, sh.sums);
  const double lse = m + log(total);
  if (threadIdx.x == 0) out[r] = static_cast<float>(static_cast<double>(row[target]) - lse);
  if (top.n <= 0) return;
  // Rank of the target as vLLM counts it: how many tokens have a logit at least as large (the target included).
  const float targetLogit = row[target];
  int atLeast = 0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) atLeast += row[i] >= targetLogit ? 1 : 0;
  atLeast = static_cast<int>(blockSumDouble(atLeast, sh.sums));  // exact: counts < 2^53
  if (threadIdx.x == 0) top.ranks[r] = atLeast;
  // The top-N in (logit descending, id ascending) order: N block-wide selections, each after the previous pick.
  Best previous{0.f, -1};
  for (int k = 0; k < top.n; k++) {
    Best b{0.f, INT_MAX};
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const Best c{row[i], i};
      const bool after = previous.index < 0 || c.value < previous.value ||
                         (c.value == previous.value && c.index > previous.index);
      if (after && before(c, b)) b = c;
    }
    b = blockBest(b, sh.best);
    if (threadIdx.x == 0) {
      const size_t at = static_cast<size_t>(r) * top.n + k;
      top.ids[at] = b.index == INT_MAX ? -1 : b.index;
      top.logprobs[at] = b.index == INT_MAX ? NAN : static_cast<float>(static_cast<double>(b.value) - lse);
    }
    if (b.index == INT_MAX) break;
    previous = b;
  }
}

}  // namespace

void launchSampler(const SamplerArgs& args, cudaStream_t stream) {
  if (args.numRows == 0) return;
  samplerKernel<<<args.numRows, kThreads, 0, stream>>>(args);
  checkLaunch("sampler", stream);
}

void launchTokenLogprobs(const float* logits, const int32_t* targets, float* out, int numRows, int vocab,
                         cudaStream_t stream, const TokenTopArgs& top) {
  if (numRows == 0) return;
  tokenLogprobsKernel<<<numRows, kThreads, 0, stream>>>(logits, targets, out, vocab, top);
  checkLaunch("token_logprobs", stream);
}

}  // namespace awq
