// QuantContext::forward: one decoder layer over calibration blocks, composed from the CUDA engine's own ops
// exactly as engine_step.cu composes a layer (fp32 residual, fp16 activations, dense fp16 linears, RoPE + paged
// KV write, paged prefill attention), chunk by chunk. Each block is one sequence of seqlen tokens at positions
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
  const int T = numBlocks * seqlen_;
  const int attnWidth = s.heads * s.headDim;
  const float scale = 1.f / std::sqrt(static_cast<float>(s.headDim));
  const Linear cap = static_cast<Linear>(capture);
  if (part != Part::Mlp) {
    awq::launchAddRmsNorm(residual, nullptr, normIn_, normed_, nullptr, T, s.hidden, s.rmsEps, false, stream_);
    checkLaunch("launchAddRmsNorm (input norm)");
    if (capture >= 0 && cap == Linear::Qkv) captureStats(normed_, T, s.hidden, absSum, gram, statsWork);
    linear(Linear::Qkv, normed_, T, big_);
    awq::launchRopeKvWrite(big_, positions_, slots_, seqLens_, ropeTable_, q_, kCache_, vCache_, T, s.heads,
                           s.kvHeads, s.headDim, s.rope, stream_);
    checkLaunch("launchRopeKvWrite");
    check(awqk::paged_attention_prefill(q_, kCache_, vCache_, blockTables_, kvBlocksPerSeq_, queryStarts_,
                                        contextLens_, numBlocks, seqlen_, s.heads, s.kvHeads, s.headDim, scale, attn_,
                                        stream_),
          "paged_attention_prefill (seqs=" + std::to_string(numBlocks) + ", query=" + std::to_string(seqlen_) + ")");
    if (capture >= 0 && cap == Linear::O) captureStats(attn_, T, attnWidth, absSum, gram, statsWork);
    linear(Linear::O, attn_, T, delta_);
    if (part == Part::Layer) {
      // h += attention; normed = rmsnorm(h) * postNorm (one fused kernel, as the engine does).
      awq::launchAddRmsNorm(residual, delta_, normPost_, normed_, nullptr, T, s.hidden, s.rmsEps, true, stream_);
      checkLaunch("launchAddRmsNorm (post-attention norm)");
    } else {
      addHalfToResidual(residual, delta_, static_cast<size_t>(T) * s.hidden, stream_);
      checkLaunch("residual add (attention)");
      return;
    }
  } else {
    awq::launchAddRmsNorm(residual, nullptr, normPost_, normed_, nullptr, T, s.hidden, s.rmsEps, false, stream_);
    checkLaunch("launchAddRmsNorm (post-attention norm)");
  }
  if (capture >= 0 && cap == Linear::GateUp) captureStats(normed_, T, s.hidden, absSum, gram, statsWork);
  linear(Linear::GateUp, normed_, T, big_);
  awq::launchSiluMul(big_, act_, T, s.intermediate, stream_);
  checkLaunch("launchSiluMul");
  if (capture >= 0 && cap == Linear::Down) captureStats(act_, T, s.intermediate, absSum, gram, statsWork);
  linear(Linear::Down, act_, T, delta_);
  addHalfToResidual(residual, delta_, static_cast<size_t>(T) * s.hidden, stream_);
  checkLaunch("residual add (MLP)");
}

}  // namespace awqq
