// The CUDA engine behind the addon: owns the device weights, the paged KV cache, the workspace of a worst-case
// step and the CUDA stream; runs engine steps (forward + sampling) one after the other on that stream, with at most
// two in flight: a chained step may be queued behind the step it continues (launchStep). No N-API here.
#pragma once
#include <cuda_runtime.h>

#include <set>

#include <cstdint>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "device_buffer.h"
#include "model.h"
#include "sampler.h"

namespace awq {

enum class HostDType { F16, BF16, F32, I32 };
HostDType parseHostDType(const std::string& name);

/** A tensor in host memory, as the checkpoint gives it. */
struct HostTensor {
  std::string name;
  HostDType dtype = HostDType::F16;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

/** One part of a (fused) linear: AWQ (qweight, qzeros, scales) or dense (weight, (out, in)). */
struct LinearPart {
  bool awq = false;
  HostTensor qweight, qzeros, scales;  // AWQ: (in, out/8) int32, (in/group, out/8) int32, (in/group, out) fp16
  HostTensor weight;                   // dense: (out, in)
};

struct RuntimeOptions {
  int maxNumSeqs = 0;
  int maxNumBatchedTokens = 0;
  int maxModelLen = 0;
  int blockSize = 16;
  int numBlocks = -1;  // -1: size from gpuMemoryUtilization
  double gpuMemoryUtilization = 0.9;
  awqk::KvCacheDtype kvCacheDtype = awqk::KvCacheDtype::Fp16;  // FP8 E4M3: 1 byte an element, twice the blocks
};

struct MemoryReport {
  int numBlocks = 0;
  int blockSize = 0;
  size_t weightBytes = 0;
  size_t workspaceBytes = 0;
  size_t kvBytes = 0;
  int kvElementBytes = 2;  // 2: fp16 K/V, 1: FP8 E4M3
  size_t totalBytes = 0;
  size_t freeBytesAfter = 0;
};

/** Host views of one StepBatch (see src/backend/backend.ts); the arrays outlive the call. */
struct StepInput {
  int numSeqs = 0;
  int numTokens = 0;
  int maxBlocksPerSeq = 0;
  const int32_t* tokenIds = nullptr;     // (numTokens)
  // A chained step (StepBatch.prevTokenRows): per token -1 (tokenIds[t]) or the row r of the step launched just
  // before this one whose sampled token it takes (tokenIds[t] is then a placeholder); null = none.
  const int32_t* prevTokenRows = nullptr;  // (numTokens)
  const int32_t* positions = nullptr;    // (numTokens)
  const int32_t* queryStarts = nullptr;  // (numSeqs + 1)
  const int32_t* contextLens = nullptr;  // (numSeqs)
  const int32_t* blockTables = nullptr;  // (numSeqs, maxBlocksPerSeq)
  const int32_t* slotMapping = nullptr;  // (numTokens)
  const uint8_t* sample = nullptr;       // (numSeqs)
  bool tokenLogprobs = false;
  int tokenTopLogprobs = 0;  // with tokenLogprobs: top-N alternatives and ranks at each token (0..kMaxTokenTop)
  bool returnLogits = false;
  // Sampling arrays (numSeqs entries; lists indexed by the *Starts arrays).
  const float* temperature = nullptr;
  const float* topP = nullptr;
  const int32_t* topK = nullptr;
  const float* minP = nullptr;
  const float* repetitionPenalty = nullptr;
  const float* presencePenalty = nullptr;
  const float* frequencyPenalty = nullptr;
  const uint32_t* seed = nullptr;
  const int32_t* outputIndex = nullptr;
  const int32_t* logprobs = nullptr;
  const int32_t* promptStarts = nullptr;
  const int32_t* promptTokens = nullptr;
  const int32_t* outputStarts = nullptr;
  const int32_t* outputTokens = nullptr;
  const int32_t* biasStarts = nullptr;
  const int32_t* biasTokens = nullptr;
  const float* biasValues = nullptr;
  // Allowed-token bitmasks (SamplingArrays.tokenMask in src/backend/backend.ts); maskRow null = none.
  int maskWords = 0;
  int numMaskRows = 0;
  const int32_t* maskRow = nullptr;             // (numSeqs) row of tokenMask, -1 = no mask
  const uint8_t* maskBeforeLogprobs = nullptr;  // (numSeqs)
  const int32_t* tokenMask = nullptr;           // (numMaskRows, maskWords)
  // The tokenMask words are still being written (grammar workers): launchStep enqueues the inputs but those
  // words and the forward only; sampleStep, once they are written, uploads them and enqueues the rest.
  bool deferSampling = false;
};

struct StepOutput {
  std::vector<int32_t> tokenIds;      // (numSeqs) -1 where not sampled
  std::vector<float> logprobs;        // (numSeqs) NaN where not requested
  std::vector<int32_t> topCounts;     // (numSeqs) entries of top-N per sequence (0 = none)
  std::vector<int32_t> topIds;        // (numSeqs, maxTop)
  std::vector<float> topLogprobs;     // (numSeqs, maxTop)
  std::vector<float> tokenLogprobs;   // (numTokens) when requested
  std::vector<int32_t> tokenTopIds;   // (numTokens, tokenTopLogprobs) when requested, -1 padded
  std::vector<float> tokenTopLogprobs;  // (numTokens, tokenTopLogprobs) when requested, NaN padded
  std::vector<int32_t> tokenRanks;    // (numTokens) when tokenTopLogprobs > 0, -1 at each sequence's last token
  std::vector<float> logits;          // (numSeqs, vocab) raw logits when requested, NaN rows where not sampled
  int maxTop = 0;
  /** GPU time of the step, upload to download (cudaEvent). */
  float gpuMs = 0.f;
};

/** Per-operation GPU time accumulated while profiling (setProfiling). */
struct ProfileEntry {
  std::string op;
  double ms = 0;
  long count = 0;
};

/** What finishStep needs from launchStep. */
struct PendingStep {
  std::vector<int> rows;  // sampled sequences, in order
  int maxTop = 0;
  int topStride = 1;
  size_t tokBytes = 0, topBytes = 0, tlBytes = 0, end = 0;  // layout of the downloaded outputs
  size_t tokenTopAt = 0;  // where the token top-N ids, logprobs and ranks start (when tokenTopLogprobs > 0)
  // Which of the two pinned input / output areas and step events the step uses (launches alternate, so a chained
  // step launched behind the step in flight never touches that step's).
  int slot = 0;
  // The step's place in the launch order (Engine::takeTicket, taken when the caller made the call); kNoTicket:
  // launchStep takes one itself.
  static constexpr uint64_t kNoTicket = ~uint64_t{0};
  uint64_t ticket = kNoTicket;
};

struct InputLayout;  // workspace.h

class Engine {
 public:
  static constexpr int kMaxTopLogprobs = 128;
  static constexpr int kMaxTokenTop = 20;  // prompt_logprobs' cap (MAX_LOGPROBS in src/engine/sampling-params.ts)

  Engine(const ModelDims& dims, int device);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /** Uploads one tensor or fused linear; `layer` is ignored for Embed / FinalNorm / LmHead. */
  void uploadVector(WeightSlot slot, int layer, const HostTensor& tensor);
  void uploadLinear(WeightSlot slot, int layer, const std::vector<LinearPart>& parts);
  /** Fills every weight with random values on the GPU (AWQ when dims.groupSize > 0): synthetic benchmarks. */
  void initRandomWeights(uint32_t seed);
  /** Checks every weight is present, allocates the workspace and the KV cache. */
  MemoryReport finalize(const RuntimeOptions& options);
  /**
   * The next place in the launch order: steps are launched in the order their tickets were taken, whichever
   * thread launches them (the JS thread's quick path or a worker). Lock-free: the caller's thread never waits.
   * A chained step (prevTokenRows) relies on it: it must run right after the step it continues.
   */
  uint64_t takeTicket() { return ticketsIssued_.fetch_add(1); }
  /**
   * Gives up a ticket whose step will never reach launchStep (the caller could not hand it to a worker), so that
   * later tickets do not wait for it forever. A chained step after it is refused (its rows are no longer the last
   * launched step's).
   */
  void abandonTicket(uint64_t ticket);
  /**
   * Enqueues a step (upload, forward, sampling, downloads) without waiting for it. With quickOnly, does nothing
   * and returns false unless the step is a replay of an already captured graph that may launch now: then it
   * costs tens of microseconds, so the JS thread can call it and leave only the wait to a worker. Waits (or,
   * with quickOnly, returns false) until every step of an earlier ticket (pending->ticket) has been launched
   * and, unless the step may launch ahead, until no step is in flight. Launching ahead: a chained step
   * (prevTokenRows) that replays a captured graph is queued on the stream right behind the one step in flight
   * (the step it continues) when that step's sampling is already queued and it returns no raw logits; its tokens
   * are gathered on the device from that step's sampled tokens, so the GPU goes from one step to the next
   * without waiting for the host. Every ticket taken must reach a launchStep that launches or throws, or later
   * tickets wait forever.
   */
  bool launchStep(const StepInput& input, PendingStep* pending, bool quickOnly);
  /**
   * For a step launched with input.deferSampling: copies the (now written) tokenMask words, uploads them and
   * enqueues sampling and the downloads, without waiting. Quick (tens of microseconds plus the mask copy).
   */
  void sampleStep(const StepInput& input, PendingStep& pending);
  /** Waits for the launched step and reads its results; every launchStep that returned true needs one. */
  StepOutput finishStep(const StepInput& input, PendingStep& pending);
  /** Frees every device buffer (also done by the destructor). */
  void release();
  /** Profiling runs every step eagerly (no graphs) with events around each operation. */
  void setProfiling(bool on);
  std::vector<ProfileEntry> takeProfile();

  const ModelDims& dims() const { return dims_; }
  std::string deviceName() const { return deviceName_; }

 private:
  struct Workspace;
  struct ForwardShape;
  struct Graph;

  void checkLayerIndex(WeightSlot slot, int layer) const;
  LinearWeight& linearFor(WeightSlot slot, int layer);
  DeviceBuffer& vectorFor(WeightSlot slot, int layer, size_t* expectedElements);
  // interleaveGlu (gate|up of two equal parts): the outputs interleaved by 8 before the repack (gluInterleaved).
  void repackAwq(LinearWeight& target, const std::vector<LinearPart>& parts, const std::string& what,
                 bool interleaveGlu);
  void uploadDense(LinearWeight& target, const std::vector<LinearPart>& parts, const std::string& what);
  void uploadHalf(const HostTensor& tensor, half* dst, size_t elements);
  void randomLinear(LinearWeight& target, int in, int out, uint32_t seed);
  void linear(const LinearWeight& w, const half* x, int m, half* y, const char* what);
  // The steps of finalize (engine_memory.cu).
  void checkRuntimeOptions(const RuntimeOptions& options) const;
  void checkWeightsLoaded();
  void uploadRopeFrequencies();
  void allocateWorkspace();
  int kvCacheBlocks() const;
  void allocateKvCache(int numBlocks);
  size_t kvLayerBytes() const;  // one layer's K (or V) cache
  MemoryReport memoryReport() const;
  // The steps of launchStep (engine_enqueue.cu).
  void resolveChainRows(const StepInput& in);
  bool mayLaunchNow(const StepInput& in, int maxContextLen, size_t listWords, bool graph) const;
  bool canReplayQuickly(const StepInput& in, int maxContextLen, size_t listWords, bool graph) const;
  void enqueueStep(const StepInput& in, int maxQueryLen, int maxContextLen, bool graph, ForwardShape& shape,
                   PendingStep* pending);
  void uploadInputs(size_t words, int slot);  // the first `words` of slot's packed inputs
  void enqueueSampling(const StepInput& in, ForwardShape& shape, PendingStep* pending);
  void launchSampling(const StepInput& in, const ForwardShape& shape, int numSample, int topStride, bool masked);
  void downloadRawLogits(int numSample);
  void queueDownloads(const StepInput& in, int numSample, int maxTop, int topStride, PendingStep* pending);
  void forward(const ForwardShape& shape);
  void runForward(const ForwardShape& shape);
  void computeTokenLogprobs(const ForwardShape& shape);
  void checkStep(const StepInput& input) const;
  /** Worker threads start on device 0: every entry point binds the engine's device first. */
  void bindDevice() const { cudaCheck(cudaSetDevice(device_), "cudaSetDevice"); }
  void ensureInputCapacity(size_t words);
  const LinearWeight& lmHead() const;

  ModelDims dims_;
  int device_ = 0;
  std::string deviceName_;
  cudaStream_t stream_ = nullptr;
  ModelWeights weights_;
  size_t weightBytes_ = 0;
  RuntimeOptions options_;
  bool finalized_ = false;
  int numBlocks_ = 0;
  int tableWidth_ = 0;  // block-table columns on the device: ceil(maxModelLen / blockSize)
  std::vector<DeviceBuffer> kCache_;  // per layer (numBlocks, blockSize, numKvHeads, headDim) options_.kvCacheDtype
  std::vector<DeviceBuffer> vCache_;
  DeviceBuffer invFreq_;  // (headDim / 2) fp32 RoPE inverse frequencies
  DeviceBuffer ropeTable_;  // (tableWidth * blockSize, headDim / 2) float2 (cos, sin)
  LinearWeight tiedHead_;  // aliases the embedding when the model ties lm_head to it
  std::unique_ptr<Workspace> ws_;
  std::map<std::tuple<int, int>, std::unique_ptr<Graph>> graphs_;
  /** The forward of a step launched with deferSampling, until sampleStep. */
  std::unique_ptr<ForwardShape> deferred_;
  // The last launched step's sampler row of each of its sequences (-1: not sampled): a chained step's
  // prevTokenRows index it, and outTokens holds the token of each row until the next step's sampling. Valid only
  // while that step launched (cleared as every turn ends, set once a step is enqueued).
  std::vector<int32_t> lastSampleRows_;
  bool lastRowsValid_ = false;
  // Per token of the chained step being launched: the sampler row of the step before whose token it takes, or -1.
  std::vector<int32_t> chainRows_;
  bool useGraphs_ = true;
  std::mutex mutex_;
  /** Launched steps not finished yet (at most 2: one launched ahead); other operations wait on idle_ for 0. */
  int inFlight_ = 0;
  /** Whether a chained step may launch behind the step in flight (its sampling queued, no raw logits). */
  bool aheadAllowed_ = false;
  /** Steps enqueued so far: the parity is the next step's slot. */
  uint64_t launches_ = 0;
  // The launch order (takeTicket): tickets handed out, and the ticket whose step launches next (under mutex_).
  std::atomic<uint64_t> ticketsIssued_{0};
  uint64_t nextTicket_ = 0;
  std::set<uint64_t> abandoned_;  // tickets given up before their turn (abandonTicket), under mutex_
  void skipAbandoned();           // under mutex_: moves nextTicket_ past abandoned tickets
  std::condition_variable idle_;
  /** Locks the engine once no step is in flight. */
  std::unique_lock<std::mutex> lockIdle() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return inFlight_ == 0; });
    return lock;
  }
  bool profiling_ = false;
  struct PendingRange {
    const char* op;
    cudaEvent_t start;
    cudaEvent_t end;
  };
  std::vector<PendingRange> pending_;
  std::vector<cudaEvent_t> eventPool_;
  std::map<std::string, ProfileEntry> profile_;
  cudaEvent_t stepStart_[2] = {nullptr, nullptr};  // per slot (PendingStep::slot): GPU time of a step
  cudaEvent_t stepEnd_[2] = {nullptr, nullptr};
  cudaEvent_t takeEvent();
  void beginRange(const char* op);
  void endRange();
  void collectProfile();
};

}  // namespace awq
