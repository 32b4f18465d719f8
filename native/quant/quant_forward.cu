// QuantContext::forward: one decoder layer over calibration blocks, run by the engine's own LayerRunner
// (engine/layer_runner.h: fp32 residual, fp16 activations, RoPE + paged KV write) with dense fp16 linears and
// paged prefill attention, chunk by chunk. Each block is one sequence of seqlen tokens at positions
// 0..seqlen-1 attending causally within itself; the per-chunk KV cache maps block b to its own pages.
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/quant_kernels.h"
#include "quant/quant_context.h"

namespace awqq {

namespace {

// residual[i] += float(delta[i]): the residual add of a half-layer that no RMSNorm follows.
__global__ void addHalfToResidualKernel(float* residual, const half* delta, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    residual[i] += __half2float(delta[i]);
  }
}

void addHalfToResidual(float* residual, const half* delta, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const size_t blocks = std::min<size_t>((n + 255) / 256, 65535);
  addHalfToResidualKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(residual, delta, n);
}

}  // namespace

void QuantContext::setLinear(Linear which, int weightId) {
  const int i = static_cast<int>(which);
  const Tensor& w = getF32(weightId, (std::string("setLinear(") + linearName(which) + ")").c_str(), inFeatures(which),
                           outFeatures(which));
  check(awqk::transpose_to_half(w.f32(), w.rows, w.cols, weights_[i], stream_),
        std::string("transpose_to_half (") + linearName(which) + ")");
  weightSet_[i] = true;
}

void QuantContext::linear(Linear which, const half* x, int rows, half* y) {
  const int i = static_cast<int>(which);
  if (!weightSet_[i]) {
    throw std::invalid_argument(std::string("forward: the ") + linearName(which) + " weights were never set (setLinear)");
  }
  check(awqk::dense_linear(x, rows, weights_[i], inFeatures(which), outFeatures(which), y, stream_),
        std::string("dense_linear ") + linearName(which) + " (m=" + std::to_string(rows) + ")");
}

void QuantContext::captureStats(const half* x, int rows, int n, double* absSum, float* gram, void* statsWork) {
  check(awqk::input_stats_accumulate(x, rows, n, absSum, gram, statsWork, stream_),
        "input_stats_accumulate (rows=" + std::to_string(rows) + ", n=" + std::to_string(n) + ")");
}

CaptureResult QuantContext::forward(int hId, const float* inputNorm, const float* postNorm, Part part, int capture,
                                    Readback* rb, double* absSumHost) {
  bind();
  const LayerShape& s = shape_;
  const Tensor h = getF32(hId, "forward h", -1, s.hidden);
  if (h.rows % seqlen_ != 0) {
    throw std::invalid_argument("forward: h has " + std::to_string(h.rows) + " rows, not a multiple of seqlen " +
                                std::to_string(seqlen_));
  }
  if (capture >= 0) {
    const Linear c = static_cast<Linear>(capture);
    const bool attentionSide = c == Linear::Qkv || c == Linear::O;
    if ((attentionSide && part == Part::Mlp) || (!attentionSide && part == Part::Attention)) {
      throw std::invalid_argument(std::string("forward: capture ") + linearName(c) + " is not part of the " +
                                  (part == Part::Mlp ? "mlp" : "attention") + " half");
    }
  }
  for (int i = 0; i < 4; i++) {
    const bool used = part == Part::Layer || (part == Part::Attention) == (i < 2);
    if (used && !weightSet_[i]) {
      throw std::invalid_argument(std::string("forward: the ") + linearName(static_cast<Linear>(i)) +
                                  " weights were never set (setLinear)");
    }
  }
  // Norms: f32 (f16-exact) from the host -> fp16 buffers of the context (stream-ordered after earlier forwards).
  float* normStage[2] = {nullptr, nullptr};
  if (part != Part::Mlp) normStage[0] = static_cast<float*>(uploadVector(inputNorm, s.hidden, "input norm"));
  if (part != Part::Attention) normStage[1] = static_cast<float*>(uploadVector(postNorm, s.hidden, "post norm"));
  if (normStage[0] != nullptr) awq::launchF32ToHalf(normStage[0], normIn_, s.hidden, stream_);
  if (normStage[1] != nullptr) awq::launchF32ToHalf(normStage[1], normPost_, s.hidden, stream_);
  checkLaunch("launchF32ToHalf (norms)");
  freeAsync(normStage[0]);
  freeAsync(normStage[1]);

  CaptureResult result;
  double* absSum = nullptr;
  float* gram = nullptr;
  void* statsWork = nullptr;
  if (capture >= 0) {
    const int n = inFeatures(static_cast<Linear>(capture));
    result.inFeatures = n;
    result.tokens = h.rows;
    result.gramId = newF32(n, n, "input Gram matrix");
    gram = get(result.gramId, "gram").f32();
    check(cudaMemsetAsync(gram, 0, static_cast<size_t>(n) * n * sizeof(float), stream_), "clearing the Gram matrix");
    absSum = static_cast<double*>(alloc(static_cast<size_t>(n) * sizeof(double), stream_, "input |x| sums"));
    check(cudaMemsetAsync(absSum, 0, static_cast<size_t>(n) * sizeof(double), stream_), "clearing the |x| sums");
    const size_t workBytes = awqk::input_stats_workspace_bytes(chunkBlocks_ * seqlen_, n);
    statsWork = alloc(workBytes, stream_, "input statistics workspace");
  }
  const int numBlocks = h.rows / seqlen_;
  try {
    for (int b0 = 0; b0 < numBlocks; b0 += chunkBlocks_) {
      const int nb = std::min(chunkBlocks_, numBlocks - b0);
      float* residual = h.f32() + static_cast<size_t>(b0) * seqlen_ * s.hidden;
      forwardChunk(residual, nb, part, capture, absSum, gram, statsWork);
    }
  } catch (...) {
    freeAsync(absSum);
    freeAsync(statsWork);
    if (result.gramId >= 0) release(result.gramId);
    throw;
  }
  freeAsync(statsWork);
  if (capture >= 0) {
    // absSum is handed to the readback (it frees it after the copy to the host).
    rb->add(absSum, static_cast<size_t>(result.inFeatures) * sizeof(double), absSumHost);
  }
  return result;
}

void QuantContext::forwardChunk(float* residual, int numBlocks, Part part, int capture, double* absSum, float* gram,
                                void* statsWork) {
  const LayerShape& s = shape_;
  const int numTokens = numBlocks * seqlen_;
  const float scale = 1.f / std::sqrt(static_cast<float>(s.headDim));
  awq::LayerHooks hooks;
  hooks.linear = [this](Linear which, const half* x, int rows, half* y) { linear(which, x, rows, y); };
  hooks.attention = [&](const half* q, const void* kCache, const void* vCache, half* attn) {
    check(awqk::paged_attention_prefill(q, kCache, vCache, awqk::KvCacheDtype::Fp16, blockTables_, kvBlocksPerSeq_,
                                        queryStarts_, contextLens_, numBlocks, seqlen_, s.numHeads, s.numKvHeads,
                                        s.headDim, scale, attn, stream_),
          "paged_attention_prefill (seqs=" + std::to_string(numBlocks) + ", query=" + std::to_string(seqlen_) + ")");
  };
  if (capture >= 0) {
    hooks.capture = [&](Linear which, const half* x, int rows, int width) {
      if (static_cast<int>(which) == capture) captureStats(x, rows, width, absSum, gram, statsWork);
    };
  }
  hooks.launched = [this](const char* kernel) { checkLaunch(kernel); };
  const awq::LayerActivations acts{residual, normed_, big_, q_, attn_, delta_, act_};
  awq::LayerRunner runner(s, acts, numTokens, stream_, hooks);
  if (part != Part::Mlp) {
    const awq::LayerKvWrite kv{positions_, slots_, seqLens_, ropeTable_, kCache_, vCache_};
    runner.runAttentionBlock(nullptr, normIn_, kv);
  }
  if (part != Part::Attention) runner.runMlpBlock(part == Part::Layer ? delta_ : nullptr, normPost_);
  // The last half's delta: no norm follows inside this layer, so it is added here.
  addHalfToResidual(residual, delta_, static_cast<size_t>(numTokens) * s.hidden, stream_);
  checkLaunch(part == Part::Attention ? "residual add (attention)" : "residual add (MLP)");
}

}  // namespace awqq
