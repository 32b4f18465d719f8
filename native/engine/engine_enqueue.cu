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

/** Padded sequence count of a decode graph: one of a few buckets, so a handful of graphs covers every batch. */
int bucketSeqs(int n, int cap) {
  static const int buckets[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256};
  for (int b : buckets) {
    if (b >= n) return std::min(b, cap);
  }
  return std::max(n, cap);
}

/** Context bound of a decode graph: powers of two from 256, capped at the block table's reach. */
int bucketContext(int n, int cap) {
  int b = 256;
  while (b < n) b *= 2;
  return std::min(b, cap);
}

/** The longest query and context of a batch, and whether every sequence brings one token (a decode step). */
struct BatchExtent {
  int maxQueryLen = 0;
  int maxContextLen = 0;
  bool allSingleToken = true;
};

BatchExtent batchExtent(const StepInput& in) {
  BatchExtent extent;
  for (int i = 0; i < in.numSeqs; i++) {
    const int queryLen = in.queryStarts[i + 1] - in.queryStarts[i];
    extent.maxQueryLen = std::max(extent.maxQueryLen, queryLen);
    extent.maxContextLen = std::max(extent.maxContextLen, in.contextLens[i]);
    extent.allSingleToken = extent.allSingleToken && queryLen == 1;
  }
  return extent;
}

/** The sampled sequences of a step: their indices (when `rows` is given), top-N width and list lengths. */
struct SampledRows {
  int maxTop = 0;
  size_t promptLen = 0, outputLen = 0, biasLen = 0;  // words of the penalty / bias lists, all sampled rows
};

SampledRows sampledRows(const StepInput& in, std::vector<int>* rows) {
  SampledRows sampled;
  if (rows != nullptr) rows->clear();
  for (int i = 0; i < in.numSeqs; i++) {
    if (!in.sample[i]) continue;
    if (rows != nullptr) rows->push_back(i);
    sampled.maxTop = std::max(sampled.maxTop, in.logprobs[i]);
    sampled.promptLen += in.promptStarts[i + 1] - in.promptStarts[i];
    sampled.outputLen += in.outputStarts[i + 1] - in.outputStarts[i];
    sampled.biasLen += in.biasStarts[i + 1] - in.biasStarts[i];
  }
  return sampled;
}

/** Words of the allowed-token bitmasks the step carries (0: no masks). */
size_t tokenMaskWords(const StepInput& in) {
  return in.maskRow != nullptr && in.numMaskRows > 0 ? static_cast<size_t>(in.numMaskRows) * in.maskWords : 0;
}

/**
 * Token rows and per-sequence attention metadata into the packed host words. Tokens and sequences past the
 * batch's own (a decode graph's padding) are inert: token 0, no KV slot, a one-token context in block 0.
 */
void packAttentionInputs(const StepInput& in, int numTokens, int numSeqs, int tableWidth, const InputLayout& layout,
                         int32_t* hostWords) {
  for (int t = 0; t < numTokens; t++) {
    const bool real = t < in.numTokens;
    hostWords[layout.tokenIds + t] = real ? in.tokenIds[t] : 0;
    hostWords[layout.positions + t] = real ? in.positions[t] : 0;
    hostWords[layout.slotMapping + t] = real ? in.slotMapping[t] : -1;
    hostWords[layout.targets + t] = -1;
  }
  for (int i = 0; i < numSeqs; i++) {
    const bool real = i < in.numSeqs;
    hostWords[layout.queryStarts + i] = real ? in.queryStarts[i] : in.numTokens + (i - in.numSeqs);
    hostWords[layout.contextLens + i] = real ? in.contextLens[i] : 1;
    int32_t* table = hostWords + layout.blockTables + static_cast<size_t>(i) * tableWidth;
    const int copy = real ? std::min(in.maxBlocksPerSeq, tableWidth) : 0;
    if (copy > 0) std::memcpy(table, in.blockTables + static_cast<size_t>(i) * in.maxBlocksPerSeq, copy * 4);
    for (int b = copy; b < tableWidth; b++) table[b] = real ? -1 : 0;
    const int begin = real ? in.queryStarts[i] : in.numTokens + (i - in.numSeqs);
    const int end = real ? in.queryStarts[i + 1] : begin + 1;
    for (int t = begin; t < end; t++) {
      hostWords[layout.tokenSeqLen + t] = real ? in.contextLens[i] : 1;
      if (in.tokenLogprobs && real && t + 1 < end) hostWords[layout.targets + t] = in.tokenIds[t + 1];
    }
  }
  hostWords[layout.queryStarts + numSeqs] = numTokens;
}

/**
 * The sampler's per-row values: where each lives in the step's arrays (StepInput), in the packed words
 * (InputLayout) and in the sampler's arguments (SamplerArgs). One line per sampling parameter; packing and the
 * sampler's pointers both read this table. (The penalty / bias lists and the masks are packed on their own.)
 */
template <typename T>
struct RowField {
  using HostArray = const T* StepInput::*;
  using Offset = size_t InputLayout::*;
  using DeviceArray = const T* SamplerArgs::*;
  HostArray host;
  Offset offset;
  DeviceArray device;
};
constexpr RowField<float> kFloatRows[] = {
    {&StepInput::temperature, &InputLayout::temperature, &SamplerArgs::temperature},
    {&StepInput::topP, &InputLayout::topP, &SamplerArgs::topP},
    {&StepInput::minP, &InputLayout::minP, &SamplerArgs::minP},
    {&StepInput::repetitionPenalty, &InputLayout::repetition, &SamplerArgs::repetitionPenalty},
    {&StepInput::presencePenalty, &InputLayout::presence, &SamplerArgs::presencePenalty},
    {&StepInput::frequencyPenalty, &InputLayout::frequency, &SamplerArgs::frequencyPenalty},
};
constexpr RowField<int32_t> kIntRows[] = {
    {&StepInput::topK, &InputLayout::topK, &SamplerArgs::topK},
    {&StepInput::outputIndex, &InputLayout::outputIndex, &SamplerArgs::outputIndex},
    {&StepInput::logprobs, &InputLayout::logprobs, &SamplerArgs::logprobs},
};
constexpr RowField<uint32_t> kUintRows[] = {
    {&StepInput::seed, &InputLayout::seed, &SamplerArgs::seed},
};

/** Sampler rows, compacted to the sampled sequences `rows`; rows past them (padding) sample token row 0. */
void packSamplingRows(const StepInput& in, const std::vector<int>& rows, int numSeqs, const InputLayout& layout,
                      int32_t* hostWords) {
  float* hostFloats = reinterpret_cast<float*>(hostWords);
  uint32_t* hostUints = reinterpret_cast<uint32_t*>(hostWords);
  const int numSample = static_cast<int>(rows.size());
  size_t promptAt = 0, outputAt = 0, biasAt = 0;
  for (int r = 0; r < numSeqs; r++) {
    if (r >= numSample) {
      hostWords[layout.sampleRows + r] = 0;
      continue;
    }
    const int i = rows[r];
    hostWords[layout.sampleRows + r] = in.queryStarts[i + 1] - 1;
    for (const auto& f : kFloatRows) hostFloats[layout.*f.offset + r] = (in.*f.host)[i];
    for (const auto& f : kIntRows) hostWords[layout.*f.offset + r] = (in.*f.host)[i];
    for (const auto& f : kUintRows) hostUints[layout.*f.offset + r] = (in.*f.host)[i];
    hostWords[layout.promptStarts + r] = static_cast<int32_t>(promptAt);
    hostWords[layout.outputStarts + r] = static_cast<int32_t>(outputAt);
    hostWords[layout.biasStarts + r] = static_cast<int32_t>(biasAt);
    for (int j = in.promptStarts[i]; j < in.promptStarts[i + 1]; j++) {
      hostWords[layout.promptTokens + promptAt++] = in.promptTokens[j];
    }
    for (int j = in.outputStarts[i]; j < in.outputStarts[i + 1]; j++) {
      hostWords[layout.outputTokens + outputAt++] = in.outputTokens[j];
    }
    for (int j = in.biasStarts[i]; j < in.biasStarts[i + 1]; j++) {
      hostWords[layout.biasTokens + biasAt] = in.biasTokens[j];
      hostFloats[layout.biasValues + biasAt++] = in.biasValues[j];
    }
  }
  hostWords[layout.promptStarts + numSample] = static_cast<int32_t>(promptAt);
  hostWords[layout.outputStarts + numSample] = static_cast<int32_t>(outputAt);
  hostWords[layout.biasStarts + numSample] = static_cast<int32_t>(biasAt);
}

/** Each sampled row's mask row (-1 on padding rows) and whether it applies before the logprobs. */
void packMaskRows(const StepInput& in, const std::vector<int>& rows, int numSeqs, const InputLayout& layout,
                  int32_t* hostWords) {
  const int numSample = static_cast<int>(rows.size());
  for (int r = 0; r < numSeqs; r++) {
    hostWords[layout.maskRow + r] = r < numSample ? in.maskRow[rows[r]] : -1;
    hostWords[layout.maskBefore + r] = r < numSample ? in.maskBeforeLogprobs[rows[r]] : 0;
  }
}

/** The sampler's per-row inputs, as device pointers into the uploaded words. */
void pointSamplerAtInputs(const InputLayout& layout, const int32_t* deviceWords, bool masked, SamplerArgs* args) {
  const float* deviceFloats = reinterpret_cast<const float*>(deviceWords);
  const uint32_t* deviceUints = reinterpret_cast<const uint32_t*>(deviceWords);
  for (const auto& f : kFloatRows) args->*f.device = deviceFloats + layout.*f.offset;
  for (const auto& f : kIntRows) args->*f.device = deviceWords + layout.*f.offset;
  for (const auto& f : kUintRows) args->*f.device = deviceUints + layout.*f.offset;
  args->promptStarts = deviceWords + layout.promptStarts;
  args->promptTokens = deviceWords + layout.promptTokens;
  args->outputStarts = deviceWords + layout.outputStarts;
  args->outputTokens = deviceWords + layout.outputTokens;
  args->biasStarts = deviceWords + layout.biasStarts;
  args->biasTokens = deviceWords + layout.biasTokens;
  args->biasValues = deviceFloats + layout.biasValues;
  args->maskRow = masked ? deviceWords + layout.maskRow : nullptr;
  args->maskBefore = masked ? deviceWords + layout.maskBefore : nullptr;
  args->tokenMask = masked ? deviceUints + layout.tokenMask : nullptr;
}

}  // namespace

bool Engine::launchStep(const StepInput& in, PendingStep* pending, bool quickOnly) {
  if (pending->ticket == PendingStep::kNoTicket) pending->ticket = takeTicket();
  const uint64_t ticket = pending->ticket;
  const BatchExtent extent = batchExtent(in);
  const SampledRows sampled = sampledRows(in, nullptr);
  const size_t listWords = sampled.promptLen + sampled.outputLen + sampled.biasLen;
  const bool decode = extent.allSingleToken && !in.tokenLogprobs;
  // Steps launch in ticket order (the order of the calls): the JS thread's quick path and the workers may reach
  // this in any order, and a chained step must follow the very step it continues.
  const auto myTurn = [&] {
    return nextTicket_ == ticket &&
           mayLaunchNow(in, extent.maxContextLen, listWords, decode && useGraphs_ && !profiling_);
  };
  std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
  if (quickOnly) {
    if (!lock.try_lock() || !myTurn()) return false;
  } else {
    lock.lock();
    idle_.wait(lock, myTurn);
  }
  // From here the ticket is used up, whether the step launches or throws (the next one may then go), and the
  // rows of the step before are no longer the last launched step's unless this one launches (a chained step after
  // a failed one is refused). Only the quick path's "not a quick replay" hands the turn back (its worker calls
  // again with the ticket).
  struct Turn {
    Engine* e;
    bool used = true;
    ~Turn() {
      if (!used) return;
      e->nextTicket_++;
      e->skipAbandoned();
      e->idle_.notify_all();
    }
  } turn{this};
  bindDevice();
  if (!finalized_) throw std::logic_error("step() before load finished");
  if (sampled.maxTop > kMaxTopLogprobs) {
    lastRowsValid_ = false;
    throw std::invalid_argument("logprobs: at most " + std::to_string(kMaxTopLogprobs) + " top alternatives, asked " +
                                std::to_string(sampled.maxTop));
  }
  const bool graph = decode && useGraphs_ && !profiling_;
  if (quickOnly && !canReplayQuickly(in, extent.maxContextLen, listWords, graph)) {
    turn.used = false;
    return false;
  }
  try {
    // A chained step takes its tokens from the rows of the step before it (launched just before: its ticket came
    // just before), gathered on the device from that step's sampled tokens.
    if (in.prevTokenRows != nullptr) resolveChainRows(in);
    lastRowsValid_ = false;
    checkStep(in);
    ForwardShape shape{};
    shape.decode = decode;
    pending->slot = static_cast<int>(launches_ & 1);
    enqueueStep(in, extent.maxQueryLen, extent.maxContextLen, graph, shape, pending);
  } catch (...) {
    lastRowsValid_ = false;
    throw;
  }
  launches_++;
  inFlight_++;
  aheadAllowed_ = !deferred_ && !in.returnLogits;
  lastSampleRows_.assign(in.numSeqs, -1);
  for (size_t r = 0; r < pending->rows.size(); r++) lastSampleRows_[pending->rows[r]] = static_cast<int32_t>(r);
  lastRowsValid_ = true;
  return true;
}

void Engine::abandonTicket(uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mutex_);
  abandoned_.insert(ticket);
  skipAbandoned();
  idle_.notify_all();
}

void Engine::skipAbandoned() {
  while (abandoned_.erase(nextTicket_) > 0) {
    nextTicket_++;
    lastRowsValid_ = false;
  }
}

// Whether a step whose ticket has come may launch now: when no step is in flight, or as a chained step replaying a
// captured graph behind the one step in flight (the step it continues), once that step's sampling is queued.
bool Engine::mayLaunchNow(const StepInput& in, int maxContextLen, size_t listWords, bool graph) const {
  if (inFlight_ == 0) return true;
  return inFlight_ == 1 && aheadAllowed_ && in.prevTokenRows != nullptr &&
         canReplayQuickly(in, maxContextLen, listWords, graph);
}

// chainRows_: per token of the chained step `in`, the sampler row of the step before whose token it takes (-1:
// tokenIds[t] as given). Throws when that step failed to launch, or did not sample the row.
void Engine::resolveChainRows(const StepInput& in) {
  if (!lastRowsValid_) {
    throw std::invalid_argument("a chained step (prevTokenRows) continues a step that failed or never ran");
  }
  chainRows_.assign(in.numTokens, -1);
  for (int t = 0; t < in.numTokens; t++) {
    const int row = in.prevTokenRows[t];
    if (row < 0) continue;
    const int32_t sampleRow = row < static_cast<int>(lastSampleRows_.size()) ? lastSampleRows_[row] : -1;
    if (sampleRow < 0) {
      throw std::invalid_argument("prevTokenRows[" + std::to_string(t) + "] = " + std::to_string(row) +
                                  ": the previous step (" + std::to_string(lastSampleRows_.size()) +
                                  " sequences) sampled no token there");
    }
    chainRows_[t] = sampleRow;
  }
}

// The quick path (the caller's thread, e.g. the JS thread) only replays an existing graph: capturing one or
// launching an eager forward takes milliseconds and belongs on a worker thread.
bool Engine::canReplayQuickly(const StepInput& in, int maxContextLen, size_t listWords, bool graph) const {
  if (!graph) return false;
  const auto key = std::make_tuple(bucketSeqs(in.numSeqs, options_.maxNumSeqs),
                                   bucketContext(maxContextLen, tableWidth_ * options_.blockSize));
  if (graphs_.count(key) == 0) return false;
  // Growing the input buffers would drop the graphs (they hold its address): leave that to the worker too. The
  // bound: every list word counted as a prompt token and as a bias token + value.
  const int padded = std::get<0>(key);
  const InputLayout bound = InputLayout::make(padded, padded, tableWidth_, listWords, 0, listWords, tokenMaskWords(in));
  return bound.totalWords <= ws_->inputWords;
}

void Engine::enqueueStep(const StepInput& in, int maxQueryLen, int maxContextLen, bool graph, ForwardShape& s,
                         PendingStep* pending) {
  deferred_.reset();
  const SampledRows sampled = sampledRows(in, &pending->rows);
  const int numSample = static_cast<int>(pending->rows.size());
  const size_t maskWords = tokenMaskWords(in);
  if (maskWords > 0 && in.maskWords != (dims_.vocab + 31) / 32) {
    throw std::runtime_error("maskWords " + std::to_string(in.maskWords) + " does not match the vocabulary of " +
                             std::to_string(dims_.vocab) + " tokens");
  }
  const int seqsPadded = graph ? bucketSeqs(in.numSeqs, options_.maxNumSeqs) : in.numSeqs;
  s.numSeqs = seqsPadded;
  s.numTokens = graph ? seqsPadded : in.numTokens;
  s.maxQueryLen = maxQueryLen;
  s.maxContextLen = graph ? bucketContext(maxContextLen, tableWidth_ * options_.blockSize) : maxContextLen;
  s.numGather = graph ? seqsPadded : numSample;
  if (graph) s.graphKey = std::make_tuple(seqsPadded, s.maxContextLen);
  s.layout = InputLayout::make(s.numTokens, s.numSeqs, tableWidth_, sampled.promptLen, sampled.outputLen,
                               sampled.biasLen, maskWords);
  ensureInputCapacity(s.layout.totalWords);
  s.inputs = ws_->inputs.as<int32_t>();

  int32_t* hostWords = ws_->hostInputs[pending->slot].as<int32_t>();
  packAttentionInputs(in, s.numTokens, s.numSeqs, tableWidth_, s.layout, hostWords);
  // A chained step's tokens: -(row + 1) for the device to replace with the previous step's sampled token there.
  const bool chained = in.prevTokenRows != nullptr;
  if (chained) {
    for (int t = 0; t < in.numTokens; t++) {
      if (chainRows_[t] >= 0) hostWords[s.layout.tokenIds + t] = -(chainRows_[t] + 1);
    }
  }
  packSamplingRows(in, pending->rows, s.numSeqs, s.layout, hostWords);
  if (maskWords > 0) packMaskRows(in, pending->rows, s.numSeqs, s.layout, hostWords);
  // Deferred sampling: the mask words (last in the layout) are copied and uploaded by sampleStep.
  const bool defer = in.deferSampling && maskWords > 0;
  if (maskWords > 0 && !defer) std::memcpy(hostWords + s.layout.tokenMask, in.tokenMask, maskWords * 4);
  uploadInputs(defer ? s.layout.tokenMask : s.layout.totalWords, pending->slot);
  if (chained) {
    launchChainedTokens(ws_->inputs.as<int32_t>() + s.layout.tokenIds, ws_->outTokens.as<int32_t>(), s.numTokens,
                        stream_);
  }

  runForward(s);

  if (defer) {
    deferred_ = std::make_unique<ForwardShape>(s);
    return;
  }
  enqueueSampling(in, s, pending);
}

void Engine::sampleStep(const StepInput& in, PendingStep& pending) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (inFlight_ == 0 || !in.deferSampling) {
    throw std::logic_error("sampleStep() without a step launched with deferSampling");
  }
  bindDevice();
  std::unique_ptr<ForwardShape> shape = std::move(deferred_);
  if (!shape) return;  // launched without masks: sampling is already enqueued
  const size_t maskWords = tokenMaskWords(in);
  int32_t* hostMask = ws_->hostInputs[pending.slot].as<int32_t>() + shape->layout.tokenMask;
  std::memcpy(hostMask, in.tokenMask, maskWords * 4);
  cudaCheck(cudaMemcpyAsync(ws_->inputs.as<int32_t>() + shape->layout.tokenMask, hostMask, maskWords * 4,
                            cudaMemcpyHostToDevice, stream_),
            "upload of the token masks");
  enqueueSampling(in, *shape, &pending);
  aheadAllowed_ = !in.returnLogits;  // its sampling is queued now: a chained step may follow it on the stream
}

// Sampling (it reads the logits of the forward, and the masks), the raw logits, the token logprobs and the
// downloads of the results.
void Engine::enqueueSampling(const StepInput& in, ForwardShape& s, PendingStep* pending) {
  const SampledRows sampled = sampledRows(in, nullptr);
  const int numSample = static_cast<int>(pending->rows.size());
  const int topStride = std::max(sampled.maxTop, 1);
  if (numSample > 0) launchSampling(in, s, numSample, topStride, tokenMaskWords(in) > 0);
  if (in.returnLogits && numSample > 0) downloadRawLogits(numSample);
  if (in.tokenLogprobs) {
    s.tokenTopLogprobs = in.tokenTopLogprobs;
    computeTokenLogprobs(s);
  }
  queueDownloads(in, numSample, sampled.maxTop, topStride, pending);
}

void Engine::uploadInputs(size_t words, int slot) {
  cudaCheck(cudaEventRecord(stepStart_[slot], stream_), "cudaEventRecord");
  cudaCheck(cudaMemcpyAsync(ws_->inputs.get(), ws_->hostInputs[slot].as<int32_t>(), words * 4, cudaMemcpyHostToDevice,
                            stream_),
            "upload of the step inputs");
}

void Engine::launchSampling(const StepInput& in, const ForwardShape& s, int numSample, int topStride, bool masked) {
  Workspace& w = *ws_;
  SamplerArgs args{};
  args.rawLogits = w.logits.as<float>();
  args.work = w.work.as<float>();
  args.counts = w.counts.as<int32_t>();
  args.numRows = numSample;
  args.vocab = dims_.vocab;
  pointSamplerAtInputs(s.layout, s.inputs, masked, &args);
  args.maskWords = in.maskWords;
  args.maxTop = topStride;
  args.outToken = w.outTokens.as<int32_t>();
  args.outLogprob = w.outLogprobs.as<float>();
  args.outTopIds = w.outTopIds.as<int32_t>();
  args.outTopLogprobs = w.outTopLogprobs.as<float>();
  beginRange("sampler");
  launchSampler(args, stream_);
  endRange();
}

// The raw fp32 logits of the sampled rows, before token logprobs reuse the buffer.
void Engine::downloadRawLogits(int numSample) {
  Workspace& w = *ws_;
  const size_t bytes = static_cast<size_t>(numSample) * dims_.vocab * 4;
  if (w.hostLogits.bytes() < bytes) {
    w.hostLogits.allocate(static_cast<size_t>(w.maxSeqs) * dims_.vocab * 4, "raw logits (host)");
  }
  cudaCheck(cudaMemcpyAsync(w.hostLogits.as<float>(), w.logits.get(), bytes, cudaMemcpyDeviceToHost, stream_),
            "download of raw logits");
}

// Sampled tokens, their logprobs, the top-N ids and logprobs and the token logprobs, back to back in the pinned
// outputs; finishStep reads them at the offsets kept in `pending`.
void Engine::queueDownloads(const StepInput& in, int numSample, int maxTop, int topStride, PendingStep* pending) {
  Workspace& w = *ws_;
  char* hostOutputs = w.hostOutputs[pending->slot].as<char>();
  const size_t tokBytes = static_cast<size_t>(numSample) * 4;
  const size_t topBytes = static_cast<size_t>(numSample) * topStride * 4;
  const size_t tlBytes = in.tokenLogprobs ? static_cast<size_t>(in.numTokens) * 4 : 0;
  size_t at = 0;
  auto download = [&](const void* src, size_t bytes, const char* what) {
    if (bytes > 0) cudaCheck(cudaMemcpyAsync(hostOutputs + at, src, bytes, cudaMemcpyDeviceToHost, stream_), what);
    at += bytes;
  };
  download(w.outTokens.get(), tokBytes, "download of sampled tokens");
  download(w.outLogprobs.get(), tokBytes, "download of logprobs");
  if (maxTop > 0) {
    download(w.outTopIds.get(), topBytes, "download of top logprobs");
    download(w.outTopLogprobs.get(), topBytes, "download of top logprobs");
  }
  download(w.tokenLogprobs.get(), tlBytes, "download of token logprobs");
  pending->tokenTopAt = at;
  if (in.tokenLogprobs && in.tokenTopLogprobs > 0) {
    const size_t topTokenBytes = static_cast<size_t>(in.numTokens) * in.tokenTopLogprobs * 4;
    download(w.tokenTopIds.get(), topTokenBytes, "download of token top logprob ids");
    download(w.tokenTopLogprobs.get(), topTokenBytes, "download of token top logprobs");
    download(w.tokenRanks.get(), static_cast<size_t>(in.numTokens) * 4, "download of token ranks");
  }
  cudaCheck(cudaEventRecord(stepEnd_[pending->slot], stream_), "cudaEventRecord");
  pending->maxTop = maxTop;
  pending->topStride = topStride;
  pending->tokBytes = tokBytes;
  pending->topBytes = topBytes;
  pending->tlBytes = tlBytes;
  pending->end = at;
}

}  // namespace awq
