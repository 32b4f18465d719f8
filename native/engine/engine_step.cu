// The forward of one engine step: the decoder layers over the packed inputs, eager or captured once per decode
// shape into a CUDA graph and replayed. Packing the inputs, sampling and downloads: engine_enqueue.cu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine.h"
#include "engine_internal.h"
#include "layer_runner.h"
#include "kernels/kernels.h"

namespace awq {

void Engine::linear(const LinearWeight& w, const half* x, int m, half* y, const char* what) {
  const cudaError_t status = w.awq() ? awqk::awq_linear(x, m, w.ptr(), w.in, w.out, w.group, y, stream_,
                                                        ws_->linearWork.get(), ws_->linearWork.bytes())
                                     : awqk::dense_linear(x, m, static_cast<const half*>(w.ptr()), w.in, w.out, y, stream_);
  cudaCheck(status, std::string(w.awq() ? "awq_linear " : "dense_linear ") + what + " (m=" + std::to_string(m) +
                        ", in=" + std::to_string(w.in) + ", out=" + std::to_string(w.out) + ")");
  if (syncAfterLaunch()) checkLaunch(w.awq() ? "awq_linear" : "dense_linear", stream_);
}

void Engine::forward(const ForwardShape& s) {
  const ModelDims& d = dims_;
  Workspace& w = *ws_;
  const int T = s.numTokens;
  const int32_t* in = s.inputs;
  float* residual = w.residual.as<float>();
  half* delta = w.delta.as<half>();
  const float scale = 1.f / std::sqrt(static_cast<float>(d.headDim));

  beginRange("embedding");
  launchEmbedding(in + s.layout.tokenIds, weights_.embed.as<half>(), residual, T, d.hidden, stream_);
  endRange();
  int l = 0;  // the layer the hooks below run for
  LayerHooks hooks;
  hooks.linear = [&](LayerLinear which, const half* x, int rows, half* y) {
    linear(weights_.layers[l].linear(which), x, rows, y, layerLinearOp(which));
  };
  const awqk::KvCacheDtype kvDtype = options_.kvCacheDtype;
  hooks.attention = [&](const half* q, const void* kCache, const void* vCache, half* attn) {
    cudaError_t status;
    beginRange(s.decode ? "attention_decode" : "attention_prefill");
    if (s.decode) {
      status = awqk::paged_attention_decode(q, kCache, vCache, kvDtype, in + s.layout.blockTables,
                                            tableWidth_, in + s.layout.contextLens, s.numSeqs, s.maxContextLen,
                                            d.numHeads, d.numKvHeads, d.headDim, scale, w.attnWork.get(),
                                            w.attnWork.bytes(), attn, stream_);
      cudaCheck(status, "paged_attention_decode (seqs=" + std::to_string(s.numSeqs) +
                            ", max context=" + std::to_string(s.maxContextLen) + ")");
      if (syncAfterLaunch()) checkLaunch("paged_attention_decode", stream_);
    } else {
      status = awqk::paged_attention_prefill(q, kCache, vCache, kvDtype,
                                             in + s.layout.blockTables, tableWidth_, in + s.layout.queryStarts,
                                             in + s.layout.contextLens, s.numSeqs, s.maxQueryLen, d.numHeads,
                                             d.numKvHeads, d.headDim, scale, attn, stream_);
      cudaCheck(status, "paged_attention_prefill (seqs=" + std::to_string(s.numSeqs) +
                            ", max query=" + std::to_string(s.maxQueryLen) + ")");
      if (syncAfterLaunch()) checkLaunch("paged_attention_prefill", stream_);
    }
    endRange();
  };
  hooks.gateUpSilu = [&](const half* x, int rows, half* act) {
    const LinearWeight& gu = weights_.layers[l].linear(LayerLinear::GateUp);
    if (!gu.awq()) return false;
    if (!gu.gluInterleaved) return false;
    const cudaError_t status = awqk::awq_linear_silu(x, rows, gu.ptr(), gu.in, gu.out, gu.group, act, stream_,
                                                     ws_->linearWork.get(), ws_->linearWork.bytes());
    if (status == cudaErrorNotSupported) return false;
    cudaCheck(status, "awq_linear_silu gate_up_proj (m=" + std::to_string(rows) + ")");
    if (syncAfterLaunch()) checkLaunch("awq_linear_silu", stream_);
    return true;
  };
  hooks.gateUpInterleaved = [&] { return weights_.layers[l].linear(LayerLinear::GateUp).gluInterleaved; };
  hooks.linearAddNorm = [&](LayerLinear which, const half* x, int rows, half* y, float* res, const half* normWeight,
                            float eps, half* normed) {
    const LinearWeight& lw = weights_.layers[l].linear(which);
    if (!lw.awq()) return false;
    const cudaError_t status =
        awqk::awq_linear_add_rmsnorm(x, rows, lw.ptr(), lw.in, lw.out, lw.group, y, res, normWeight, eps, normed,
                                     ws_->linearWork.get(), ws_->linearWork.bytes(), stream_);
    if (status == cudaErrorNotSupported) return false;
    cudaCheck(status, std::string("awq_linear_add_rmsnorm ") + layerLinearOp(which) + " (m=" + std::to_string(rows) + ")");
    if (syncAfterLaunch()) checkLaunch("awq_linear_add_rmsnorm", stream_);
    return true;
  };
  hooks.beginOp = [this](const char* op) { beginRange(op); };
  hooks.endOp = [this] { endRange(); };
  hooks.launched = [this](const char* kernel) {
    if (syncAfterLaunch()) checkLaunch(kernel, stream_);
  };
  LayerRunner runner(d.layerDims(), w.layerActivations(), T, stream_, hooks);
  for (l = 0; l < d.numLayers; l++) {
    const LayerWeights& layer = weights_.layers[l];
    const LayerKvWrite kv{in + s.layout.positions, in + s.layout.slotMapping, in + s.layout.tokenSeqLen,
                          ropeTable_.as<float2>(), kCache_[l].get(), vCache_[l].get(), kvDtype};
    const half* nextInputNorm = l + 1 < d.numLayers ? weights_.layers[l + 1].inputNorm.as<half>() : nullptr;
    runner.runAttentionBlock(l == 0 ? nullptr : delta, layer.inputNorm.as<half>(), kv, layer.postNorm.as<half>());
    runner.runMlpBlock(delta, layer.postNorm.as<half>(), nextInputNorm);
  }
  // Final norm of the rows that are sampled only (the residual keeps this last delta un-added).
  if (s.numGather > 0) {
    beginRange("final_norm_lm_head");
    launchAddRmsNorm(residual, delta, weights_.finalNorm.as<half>(), w.finalNormed.as<half>(),
                     in + s.layout.sampleRows, s.numGather, d.hidden, d.rmsEps, false, stream_);
    linear(lmHead(), w.finalNormed.as<half>(), s.numGather, w.logitsHalf.as<half>(), "lm_head");
    launchHalfToFloat(w.logitsHalf.as<half>(), w.logits.as<float>(), static_cast<size_t>(s.numGather) * d.vocab,
                      stream_);
    endRange();
  }
}

const LinearWeight& Engine::lmHead() const { return weights_.lmHead.loaded() ? weights_.lmHead : tiedHead_; }

void Engine::runForward(const ForwardShape& s) {
  if (!s.graphKey) {
    forward(s);
    return;
  }
  auto& slot = graphs_[*s.graphKey];
  if (!slot) {
    auto graph = std::make_unique<Graph>();
    cudaCheck(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      forward(s);
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream_, &broken);
      if (broken != nullptr) cudaGraphDestroy(broken);
      graphs_.erase(*s.graphKey);
      throw;
    }
    cudaGraph_t captured = nullptr;
    cudaCheck(cudaStreamEndCapture(stream_, &captured), "cudaStreamEndCapture of the decode step");
    graph->graph = captured;
    cudaCheck(cudaGraphInstantiate(&graph->exec, captured, 0), "cudaGraphInstantiate of the decode step");
    slot = std::move(graph);
  }
  cudaCheck(cudaGraphLaunch(slot->exec, stream_), "cudaGraphLaunch of the decode step");
}

}  // namespace awq
