// The second half of a step: wait for the GPU, read the sampled tokens / logprobs / logits back into StepOutput;
// and the token logprobs pass (prompt logprobs, perplexity) that runs after sampling.
#include <algorithm>
#include <cmath>

#include "engine.h"
#include "engine_internal.h"

namespace awq {

StepOutput Engine::finishStep(const StepInput& in, PendingStep& pending) {
  // Wait for this step's end without the lock (a chained step may be launched behind it meanwhile, into the other
  // slot), then read the outputs under it.
  bindDevice();
  const int slot = pending.slot;
  const cudaError_t status = cudaEventSynchronize(stepEnd_[slot]);
  std::lock_guard<std::mutex> lock(mutex_);
  struct Idle {
    Engine* e;
    ~Idle() {
      e->inFlight_--;
      e->idle_.notify_all();
    }
  } idle{this};
  cudaCheck(status, syncAfterLaunch()
                        ? "engine step (forward and sampling)"
                        : "engine step (forward and sampling; run with AWQ_CUDA_SYNC=1 to name the failing kernel)");
  collectProfile();
  const ModelDims& d = dims_;
  Workspace& w = *ws_;
  const std::vector<int>& rows = pending.rows;
  const int numSample = static_cast<int>(rows.size());
  const int maxTop = pending.maxTop;
  const int topStride = pending.topStride;
  const size_t tokBytes = pending.tokBytes;
  const size_t topBytes = pending.topBytes;
  const size_t tlBytes = pending.tlBytes;
  const char* ho = w.hostOutputs[slot].as<char>();

  StepOutput out;
  out.maxTop = maxTop;
  cudaEventElapsedTime(&out.gpuMs, stepStart_[slot], stepEnd_[slot]);
  out.tokenIds.assign(in.numSeqs, -1);
  out.logprobs.assign(in.numSeqs, NAN);
  out.topCounts.assign(in.numSeqs, 0);
  out.topIds.assign(static_cast<size_t>(in.numSeqs) * maxTop, 0);
  out.topLogprobs.assign(static_cast<size_t>(in.numSeqs) * maxTop, NAN);
  const int32_t* hTok = reinterpret_cast<const int32_t*>(ho);
  const float* hLp = reinterpret_cast<const float*>(ho + tokBytes);
  const int32_t* hTopIds = reinterpret_cast<const int32_t*>(ho + 2 * tokBytes);
  const float* hTopLp = reinterpret_cast<const float*>(ho + 2 * tokBytes + topBytes);
  for (int r = 0; r < numSample; r++) {
    const int i = rows[r];
    out.tokenIds[i] = hTok[r];
    out.logprobs[i] = hLp[r];
    const int n = std::min(std::max(in.logprobs[i], 0), d.vocab);
    out.topCounts[i] = n;
    for (int k = 0; k < n; k++) {
      out.topIds[static_cast<size_t>(i) * maxTop + k] = hTopIds[static_cast<size_t>(r) * topStride + k];
      out.topLogprobs[static_cast<size_t>(i) * maxTop + k] = hTopLp[static_cast<size_t>(r) * topStride + k];
    }
  }
  if (in.returnLogits) {
    out.logits.assign(static_cast<size_t>(in.numSeqs) * d.vocab, NAN);
    for (int r = 0; r < numSample; r++) {
      const float* src = w.hostLogits.as<float>() + static_cast<size_t>(r) * d.vocab;
      std::copy(src, src + d.vocab, out.logits.begin() + static_cast<size_t>(rows[r]) * d.vocab);
    }
  }
  if (in.tokenLogprobs) {
    const float* hTl = reinterpret_cast<const float*>(ho + pending.tokenTopAt - tlBytes);
    out.tokenLogprobs.assign(hTl, hTl + in.numTokens);
    if (in.tokenTopLogprobs > 0) {
      const size_t n = static_cast<size_t>(in.numTokens) * in.tokenTopLogprobs;
      const int32_t* hIds = reinterpret_cast<const int32_t*>(ho + pending.tokenTopAt);
      const float* hLps = reinterpret_cast<const float*>(ho + pending.tokenTopAt + n * 4);
      const int32_t* hRanks = reinterpret_cast<const int32_t*>(ho + pending.tokenTopAt + n * 8);
      out.tokenTopIds.assign(hIds, hIds + n);
      out.tokenTopLogprobs.assign(hLps, hLps + n);
      out.tokenRanks.assign(hRanks, hRanks + in.numTokens);
    }
  }
  return out;
}

void Engine::computeTokenLogprobs(const ForwardShape& s) {
  const ModelDims& d = dims_;
  Workspace& w = *ws_;
  // residual += last delta for every row, and the final norm of every row into `normed`.
  launchAddRmsNorm(w.residual.as<float>(), w.delta.as<half>(), weights_.finalNorm.as<half>(), w.normed.as<half>(),
                   nullptr, s.numTokens, d.hidden, d.rmsEps, true, stream_);
  for (int start = 0; start < s.numTokens; start += w.logitRows) {
    const int rows = std::min(w.logitRows, s.numTokens - start);
    linear(lmHead(), w.normed.as<half>() + static_cast<size_t>(start) * d.hidden, rows, w.logitsHalf.as<half>(),
           "lm_head (token logprobs)");
    launchHalfToFloat(w.logitsHalf.as<half>(), w.logits.as<float>(), static_cast<size_t>(rows) * d.vocab, stream_);
    TokenTopArgs top;
    if (s.tokenTopLogprobs > 0) {
      top.n = s.tokenTopLogprobs;
      top.ids = w.tokenTopIds.as<int32_t>() + static_cast<size_t>(start) * top.n;
      top.logprobs = w.tokenTopLogprobs.as<float>() + static_cast<size_t>(start) * top.n;
      top.ranks = w.tokenRanks.as<int32_t>() + start;
    }
    launchTokenLogprobs(w.logits.as<float>(), s.inputs + s.layout.targets + start,
                        w.tokenLogprobs.as<float>() + start, rows, d.vocab, stream_, top);
  }
}

}  // namespace awq
