// The host side of one engine step: take the engine, pick the shape (decode graph or eager), pack the inputs
// into one pinned buffer, upload them, run the forward, launch the sampler and queue the downloads. The
// results are read back by finishStep (engine_results.cu).
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "engine.h"
#include "engine_internal.h"

namespace awq {
namespace {

int bucketSeqs(int n, int cap) {
  static const int buckets[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256};
  for (int b : buckets) {
    if (b >= n) return std::min(b, cap);
  }
  return std::max(n, cap);
}

int bucketContext(int n, int cap) {
  int b = 256;
  while (b < n) b *= 2;
  return std::min(b, cap);
}

}  // namespace

StepOutput Engine::step(const StepInput& in) {
  PendingStep pending;
  launchStep(in, &pending, false);
  return finishStep(in, pending);
}

bool Engine::launchStep(const StepInput& in, PendingStep* pending, bool quickOnly) {
  std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
  if (quickOnly) {
    if (!lock.try_lock() || busy_) return false;
  } else {
    lock.lock();
    idle_.wait(lock, [this] { return !busy_; });
  }
  bindDevice();
  if (!finalized_) throw std::logic_error("step() before load finished");

  int maxQueryLen = 0;
  int maxContextLen = 0;
  bool allSingle = true;
  for (int i = 0; i < in.numSeqs; i++) {
    const int ql = in.queryStarts[i + 1] - in.queryStarts[i];
    maxQueryLen = std::max(maxQueryLen, ql);
    maxContextLen = std::max(maxContextLen, in.contextLens[i]);
    allSingle = allSingle && ql == 1;
  }
  int maxTop = 0;
  for (int i = 0; i < in.numSeqs; i++) {
    if (in.sample[i]) maxTop = std::max(maxTop, in.logprobs[i]);
  }
  if (maxTop > kMaxTopLogprobs) {
    throw std::invalid_argument("logprobs: at most " + std::to_string(kMaxTopLogprobs) + " top alternatives, asked " +
                                std::to_string(maxTop));
  }

  ForwardShape s{};
  s.decode = allSingle && !in.tokenLogprobs;
  const bool graph = s.decode && useGraphs_ && !profiling_;
  // The quick path (the caller's thread, e.g. the JS thread) only replays an existing graph: capturing one or
  // launching an eager forward takes milliseconds and belongs on a worker thread.
  if (quickOnly) {
    if (!graph) return false;
    const auto key = std::make_tuple(bucketSeqs(in.numSeqs, options_.maxNumSeqs),
                                     bucketContext(maxContextLen, tableWidth_ * options_.blockSize));
    if (graphs_.count(key) == 0) return false;
    // Growing the input buffers would drop the graphs (they hold its address): leave that to the worker too.
    size_t lists = 0;
    for (int i = 0; i < in.numSeqs; i++) {
      if (!in.sample[i]) continue;
      lists += (in.promptStarts[i + 1] - in.promptStarts[i]) + (in.outputStarts[i + 1] - in.outputStarts[i]) +
               (in.biasStarts[i + 1] - in.biasStarts[i]);
    }
    const int padded = std::get<0>(key);
    const size_t maskLen = in.maskRow != nullptr ? static_cast<size_t>(in.numMaskRows) * in.maskWords : 0;
    if (InputLayout::make(padded, padded, tableWidth_, lists, 0, lists, maskLen).totalWords > ws_->inputWords) {
      return false;
    }
  }
  checkStep(in);
  busy_ = true;
  try {
    enqueueStep(in, s, graph, maxQueryLen, maxContextLen, pending);
  } catch (...) {
    busy_ = false;
    idle_.notify_all();
    throw;
  }
  return true;
}

void Engine::enqueueStep(const StepInput& in, ForwardShape& s, bool graph, int maxQueryLen, int maxContextLen,
                         PendingStep* pending) {
  const ModelDims& d = dims_;
  Workspace& w = *ws_;
  std::vector<int>& rows = pending->rows;
  rows.clear();
  int maxTop = 0;
  size_t promptLen = 0, outputLen = 0, biasLen = 0;
  for (int i = 0; i < in.numSeqs; i++) {
    if (!in.sample[i]) continue;
    rows.push_back(i);
    maxTop = std::max(maxTop, in.logprobs[i]);
    promptLen += in.promptStarts[i + 1] - in.promptStarts[i];
    outputLen += in.outputStarts[i + 1] - in.outputStarts[i];
    biasLen += in.biasStarts[i + 1] - in.biasStarts[i];
  }
  const int numSample = static_cast<int>(rows.size());
  const int seqsPadded = graph ? bucketSeqs(in.numSeqs, options_.maxNumSeqs) : in.numSeqs;
  s.numSeqs = seqsPadded;
  s.numTokens = graph ? seqsPadded : in.numTokens;
  s.maxQueryLen = maxQueryLen;
  s.maxContextLen = graph ? bucketContext(maxContextLen, tableWidth_ * options_.blockSize) : maxContextLen;
  s.numGather = graph ? seqsPadded : numSample;
  if (graph) s.graphKey = std::make_tuple(seqsPadded, s.maxContextLen);
  const bool masked = in.maskRow != nullptr && in.numMaskRows > 0;
  if (masked && in.maskWords != (d.vocab + 31) / 32) {
    throw std::runtime_error("maskWords " + std::to_string(in.maskWords) + " does not match the vocabulary of " +
                             std::to_string(d.vocab) + " tokens");
  }
  const size_t maskLen = masked ? static_cast<size_t>(in.numMaskRows) * in.maskWords : 0;
  s.layout = InputLayout::make(s.numTokens, s.numSeqs, tableWidth_, promptLen, outputLen, biasLen, maskLen);
  ensureInputCapacity(s.layout.totalWords);
  s.inputs = w.inputs.as<int32_t>();

  // Pack the inputs.
  int32_t* h = w.hostInputs.as<int32_t>();
  const InputLayout& L = s.layout;
  for (int t = 0; t < s.numTokens; t++) {
    const bool real = t < in.numTokens;
    h[L.tokenIds + t] = real ? in.tokenIds[t] : 0;
    h[L.positions + t] = real ? in.positions[t] : 0;
    h[L.slotMapping + t] = real ? in.slotMapping[t] : -1;
    h[L.targets + t] = -1;
  }
  for (int i = 0; i < s.numSeqs; i++) {
    const bool real = i < in.numSeqs;
    h[L.queryStarts + i] = real ? in.queryStarts[i] : in.numTokens + (i - in.numSeqs);
    h[L.contextLens + i] = real ? in.contextLens[i] : 1;
    int32_t* table = h + L.blockTables + static_cast<size_t>(i) * tableWidth_;
    const int copy = real ? std::min(in.maxBlocksPerSeq, tableWidth_) : 0;
    if (copy > 0) std::memcpy(table, in.blockTables + static_cast<size_t>(i) * in.maxBlocksPerSeq, copy * 4);
    for (int b = copy; b < tableWidth_; b++) table[b] = real ? -1 : 0;
    const int begin = real ? in.queryStarts[i] : in.numTokens + (i - in.numSeqs);
    const int end = real ? in.queryStarts[i + 1] : begin + 1;
    for (int t = begin; t < end; t++) {
      h[L.tokenSeqLen + t] = real ? in.contextLens[i] : 1;
      if (in.tokenLogprobs && real && t + 1 < end) h[L.targets + t] = in.tokenIds[t + 1];
    }
  }
  h[L.queryStarts + s.numSeqs] = s.numTokens;
  float* hf = reinterpret_cast<float*>(h);
  size_t pAt = 0, oAt = 0, bAt = 0;
  for (int r = 0; r < s.numSeqs; r++) {
    if (r >= numSample) {
      h[L.sampleRows + r] = 0;
      continue;
    }
    const int i = rows[r];
    h[L.sampleRows + r] = in.queryStarts[i + 1] - 1;
    hf[L.temperature + r] = in.temperature[i];
    hf[L.topP + r] = in.topP[i];
    h[L.topK + r] = in.topK[i];
    hf[L.minP + r] = in.minP[i];
    hf[L.repetition + r] = in.repetitionPenalty[i];
    hf[L.presence + r] = in.presencePenalty[i];
    hf[L.frequency + r] = in.frequencyPenalty[i];
    reinterpret_cast<uint32_t*>(h)[L.seed + r] = in.seed[i];
    h[L.outputIndex + r] = in.outputIndex[i];
    h[L.logprobs + r] = in.logprobs[i];
    h[L.promptStarts + r] = static_cast<int32_t>(pAt);
    h[L.outputStarts + r] = static_cast<int32_t>(oAt);
    h[L.biasStarts + r] = static_cast<int32_t>(bAt);
    for (int j = in.promptStarts[i]; j < in.promptStarts[i + 1]; j++) h[L.promptTokens + pAt++] = in.promptTokens[j];
    for (int j = in.outputStarts[i]; j < in.outputStarts[i + 1]; j++) h[L.outputTokens + oAt++] = in.outputTokens[j];
    for (int j = in.biasStarts[i]; j < in.biasStarts[i + 1]; j++) {
      h[L.biasTokens + bAt] = in.biasTokens[j];
      hf[L.biasValues + bAt++] = in.biasValues[j];
    }
  }
  h[L.promptStarts + numSample] = static_cast<int32_t>(pAt);
  h[L.outputStarts + numSample] = static_cast<int32_t>(oAt);
  h[L.biasStarts + numSample] = static_cast<int32_t>(bAt);
  if (masked) {
    for (int r = 0; r < s.numSeqs; r++) {
      h[L.maskRow + r] = r < numSample ? in.maskRow[rows[r]] : -1;
      h[L.maskBefore + r] = r < numSample ? in.maskBeforeLogprobs[rows[r]] : 0;
    }
    std::memcpy(h + L.tokenMask, in.tokenMask, maskLen * 4);
  }
  if (stepStart_ == nullptr) {
    cudaCheck(cudaEventCreate(&stepStart_), "cudaEventCreate");
    cudaCheck(cudaEventCreate(&stepEnd_), "cudaEventCreate");
  }
  cudaCheck(cudaEventRecord(stepStart_, stream_), "cudaEventRecord");
  cudaCheck(cudaMemcpyAsync(w.inputs.get(), h, L.totalWords * 4, cudaMemcpyHostToDevice, stream_),
            "upload of the step inputs");

  runForward(s);

  const int32_t* di = s.inputs;
  const float* df = reinterpret_cast<const float*>(di);
  const int topStride = std::max(maxTop, 1);
  if (numSample > 0) {
    SamplerArgs a{};
    a.rawLogits = w.logits.as<float>();
    a.work = w.work.as<float>();
    a.counts = w.counts.as<int32_t>();
    a.numRows = numSample;
    a.vocab = d.vocab;
    a.temperature = df + L.temperature;
    a.topP = df + L.topP;
    a.topK = di + L.topK;
    a.minP = df + L.minP;
    a.repetitionPenalty = df + L.repetition;
    a.presencePenalty = df + L.presence;
    a.frequencyPenalty = df + L.frequency;
    a.seed = reinterpret_cast<const uint32_t*>(di) + L.seed;
    a.outputIndex = di + L.outputIndex;
    a.logprobs = di + L.logprobs;
    a.promptStarts = di + L.promptStarts;
    a.promptTokens = di + L.promptTokens;
    a.outputStarts = di + L.outputStarts;
    a.outputTokens = di + L.outputTokens;
    a.biasStarts = di + L.biasStarts;
    a.biasTokens = di + L.biasTokens;
    a.biasValues = df + L.biasValues;
    a.maskRow = masked ? di + L.maskRow : nullptr;
    a.maskBefore = masked ? di + L.maskBefore : nullptr;
    a.tokenMask = masked ? reinterpret_cast<const uint32_t*>(di) + L.tokenMask : nullptr;
    a.maskWords = in.maskWords;
    a.maxTop = topStride;
    a.outToken = w.outTokens.as<int32_t>();
    a.outLogprob = w.outLogprobs.as<float>();
    a.outTopIds = w.outTopIds.as<int32_t>();
    a.outTopLogprobs = w.outTopLogprobs.as<float>();
    beginRange("sampler");
    launchSampler(a, stream_);
    endRange();
  }
  if (in.returnLogits && numSample > 0) {
    // The raw fp32 logits of the sampled rows, before token logprobs reuse the buffer.
    if (w.hostLogits.bytes() < static_cast<size_t>(numSample) * d.vocab * 4) {
      w.hostLogits.allocate(static_cast<size_t>(w.maxSeqs) * d.vocab * 4, "raw logits (host)");
    }
    cudaCheck(cudaMemcpyAsync(w.hostLogits.as<float>(), w.logits.get(), static_cast<size_t>(numSample) * d.vocab * 4,
                              cudaMemcpyDeviceToHost, stream_),
              "download of raw logits");
  }
  if (in.tokenLogprobs) computeTokenLogprobs(s);

  // Download the results.
  char* ho = w.hostOutputs.as<char>();
  const size_t tokBytes = static_cast<size_t>(numSample) * 4;
  const size_t topBytes = static_cast<size_t>(numSample) * topStride * 4;
  const size_t tlBytes = in.tokenLogprobs ? static_cast<size_t>(in.numTokens) * 4 : 0;
  size_t at = 0;
  auto download = [&](const void* src, size_t bytes, const char* what) {
    if (bytes > 0) cudaCheck(cudaMemcpyAsync(ho + at, src, bytes, cudaMemcpyDeviceToHost, stream_), what);
    at += bytes;
  };
  download(w.outTokens.get(), tokBytes, "download of sampled tokens");
  download(w.outLogprobs.get(), tokBytes, "download of logprobs");
  if (maxTop > 0) {
    download(w.outTopIds.get(), topBytes, "download of top logprobs");
    download(w.outTopLogprobs.get(), topBytes, "download of top logprobs");
  }
  download(w.tokenLogprobs.get(), tlBytes, "download of token logprobs");
  cudaCheck(cudaEventRecord(stepEnd_, stream_), "cudaEventRecord");
  pending->maxTop = maxTop;
  pending->topStride = topStride;
  pending->tokBytes = tokBytes;
  pending->topBytes = topBytes;
  pending->tlBytes = tlBytes;
  pending->end = at;
}

}  // namespace awq
