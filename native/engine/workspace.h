// Device and pinned-host buffers of the engine, sized once for a worst-case step (maxNumBatchedTokens tokens,
// maxNumSeqs sequences), so that the KV cache can take the rest of the memory.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "device_buffer.h"

namespace awq {

/** Pinned host memory (cudaHostAlloc), for one-copy uploads of the step inputs and downloads of the results. */
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { release(); }
  void allocate(size_t bytes, const char* what) {
    release();
    cudaCheck(cudaHostAlloc(&ptr_, bytes, cudaHostAllocDefault), std::string("cudaHostAlloc for ") + what);
    bytes_ = bytes;
  }
  void release() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

/**
 * Where each step input lives inside one packed int32 array (offsets in 4-byte words). The layout depends only
 * on (tokens, seqs, tableWidth, list lengths), so a graph captured for a bucket keeps valid pointers.
 */
struct InputLayout {
  size_t tokenIds, positions, slotMapping, tokenSeqLen, targets;  // (tokens) each
  size_t queryStarts;                                             // (seqs + 1)
  size_t contextLens;                                             // (seqs)
  size_t blockTables;                                             // (seqs, tableWidth)
  size_t sampleRows;                                              // (seqs) token row of each sampled sequence
  // Sampler rows (compacted to the sampled sequences): (seqs) each, the *Starts (seqs + 1).
  size_t temperature, topP, topK, minP, repetition, presence, frequency, seed, outputIndex, logprobs;
  size_t promptStarts, outputStarts, biasStarts;
  size_t promptTokens, outputTokens, biasTokens, biasValues;  // the lists
  size_t maskRow, maskBefore;                                 // (seqs) each; only when maskLen > 0
  size_t tokenMask;                                           // (maskLen) bitmask rows, last (offsets above fixed)
  size_t totalWords;

  static InputLayout make(int tokens, int seqs, int tableWidth, size_t promptLen, size_t outputLen, size_t biasLen,
                          size_t maskLen = 0) {
    InputLayout l{};
    size_t at = 0;
    auto take = [&at](size_t words) {
      const size_t start = at;
      at += (words + 31) / 32 * 32;  // 128-byte aligned arrays
      return start;
    };
    l.tokenIds = take(tokens);
    l.positions = take(tokens);
    l.slotMapping = take(tokens);
    l.tokenSeqLen = take(tokens);
    l.targets = take(tokens);
    l.queryStarts = take(seqs + 1);
    l.contextLens = take(seqs);
    l.blockTables = take(static_cast<size_t>(seqs) * tableWidth);
    l.sampleRows = take(seqs);
    l.temperature = take(seqs);
    l.topP = take(seqs);
    l.topK = take(seqs);
    l.minP = take(seqs);
    l.repetition = take(seqs);
    l.presence = take(seqs);
    l.frequency = take(seqs);
    l.seed = take(seqs);
    l.outputIndex = take(seqs);
    l.logprobs = take(seqs);
    l.promptStarts = take(seqs + 1);
    l.outputStarts = take(seqs + 1);
    l.biasStarts = take(seqs + 1);
    l.promptTokens = take(promptLen);
    l.outputTokens = take(outputLen);
    l.biasTokens = take(biasLen);
    l.biasValues = take(biasLen);
    l.maskRow = take(maskLen > 0 ? seqs : 0);
    l.maskBefore = take(maskLen > 0 ? seqs : 0);
    l.tokenMask = take(maskLen);
    l.totalWords = at;
    return l;
  }
};

}  // namespace awq
