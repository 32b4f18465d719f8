// The decoder layer's launch order (see layer_runner.h); the hooks supply linears, attention and the rest.
#include "engine/layer_runner.h"

#include <stdexcept>
#include <string>
#include <utility>

namespace awq {

const char* layerLinearOp(LayerLinear which) {
  switch (which) {
    case LayerLinear::Qkv: return "qkv_proj";
    case LayerLinear::O: return "o_proj";
    case LayerLinear::GateUp: return "gate_up_proj";
    case LayerLinear::Down: return "down_proj";
  }
  return "?";
}

void checkDecoderLayerDims(const DecoderLayerDims& dims, const char* who) {
  const std::pair<const char*, int> sizes[] = {{"hidden", dims.hidden},
                                               {"numHeads", dims.numHeads},
                                               {"numKvHeads", dims.numKvHeads},
                                               {"intermediate", dims.intermediate}};
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      throw std::invalid_argument(std::string(who) + ": " + name + " is " + std::to_string(value) +
                                  " (must be positive)");
    }
  }
  if (dims.numHeads % dims.numKvHeads != 0) {
    throw std::invalid_argument(std::string(who) + ": numHeads " + std::to_string(dims.numHeads) +
                                " is not a multiple of numKvHeads " + std::to_string(dims.numKvHeads));
  }
  if (dims.headDim != 64 && dims.headDim != 128) {
    throw std::invalid_argument(std::string(who) + ": the CUDA attention kernels support head_dim 64 or 128, got " +
                                std::to_string(dims.headDim));
  }
}

LayerRunner::LayerRunner(const DecoderLayerDims& dims, const LayerActivations& acts, int numTokens,
                         cudaStream_t stream, const LayerHooks& hooks)
    : dims_(dims), acts_(acts), numTokens_(numTokens), stream_(stream), hooks_(hooks) {
  if (!hooks.linear || !hooks.attention) throw std::logic_error("LayerRunner needs the linear and attention hooks");
}

void LayerRunner::runAttentionBlock(const half* pendingDelta, const half* inputNorm, const LayerKvWrite& kv,
                                    const half* nextNorm) {
  const DecoderLayerDims& d = dims_;
  addRmsNorm(pendingDelta, inputNorm, "add_rmsnorm (input norm)");
  linear(LayerLinear::Qkv, acts_.normed, d.hidden, acts_.big);
  begin("rope_kv_write");
  launchRopeKvWrite(acts_.big, kv.positions, kv.slotMapping, kv.tokenSeqLen, kv.ropeTable, acts_.q, kv.kCache,
                    kv.vCache, kv.kvDtype, numTokens_, d.numHeads, d.numKvHeads, d.headDim, d.rope, stream_);
  launched("rope_kv_write");
  end();
  hooks_.attention(acts_.q, kv.kCache, kv.vCache, acts_.attn);
  residualLinear(LayerLinear::O, acts_.attn, d.numHeads * d.headDim, nextNorm);
}

void LayerRunner::runMlpBlock(const half* pendingDelta, const half* postNorm, const half* nextNorm) {
  const DecoderLayerDims& d = dims_;
  addRmsNorm(pendingDelta, postNorm, "add_rmsnorm (post-attention norm)");
  if (hooks_.capture) hooks_.capture(LayerLinear::GateUp, acts_.normed, numTokens_, d.hidden);
  begin(layerLinearOp(LayerLinear::GateUp));
  const bool fused = hooks_.gateUpSilu && hooks_.gateUpSilu(acts_.normed, numTokens_, acts_.act);
  if (!fused) hooks_.linear(LayerLinear::GateUp, acts_.normed, numTokens_, acts_.big);
  end();
  if (!fused) {
    begin("silu_mul");
    const bool interleaved = hooks_.gateUpInterleaved && hooks_.gateUpInterleaved();
    launchSiluMul(acts_.big, acts_.act, numTokens_, d.intermediate, interleaved, stream_);
    launched("silu_mul");
    end();
  }
  residualLinear(LayerLinear::Down, acts_.act, d.intermediate, nextNorm);
}

void LayerRunner::residualLinear(LayerLinear which, const half* x, int width, const half* nextNorm) {
  normedWith_ = nullptr;
  if (nextNorm != nullptr && hooks_.linearAddNorm && !hooks_.capture) {
    begin(layerLinearOp(which));
    const bool fused = hooks_.linearAddNorm(which, x, numTokens_, acts_.delta, acts_.residual, nextNorm,
                                            dims_.rmsEps, acts_.normed);
    if (!fused) hooks_.linear(which, x, numTokens_, acts_.delta);
    end();
    if (fused) normedWith_ = nextNorm;
    return;
  }
  linear(which, x, width, acts_.delta);
}

// residual += pendingDelta (written back only when there is one); normed = rmsnorm(residual) * weight.
void LayerRunner::addRmsNorm(const half* pendingDelta, const half* weight, const char* kernel) {
  if (normedWith_ != nullptr && normedWith_ == weight) {  // the projection before did it (residualLinear)
    normedWith_ = nullptr;
    return;
  }
  normedWith_ = nullptr;
  begin("add_rmsnorm");
  launchAddRmsNorm(acts_.residual, pendingDelta, weight, acts_.normed, nullptr, numTokens_, dims_.hidden,
                   dims_.rmsEps, pendingDelta != nullptr, stream_);
  launched(kernel);
  end();
}

void LayerRunner::linear(LayerLinear which, const half* x, int width, half* y) {
  if (hooks_.capture) hooks_.capture(which, x, numTokens_, width);
  begin(layerLinearOp(which));
  hooks_.linear(which, x, numTokens_, y);
  end();
}

void LayerRunner::begin(const char* op) const {
  if (hooks_.beginOp) hooks_.beginOp(op);
}

void LayerRunner::end() const {
  if (hooks_.endOp) hooks_.endOp();
}

void LayerRunner::launched(const char* kernel) const {
  if (hooks_.launched) hooks_.launched(kernel);
}

}  // namespace awq
