// One Llama decoder layer, composed once from the engine's ops and run by both the engine's step
// (engine_step.cu: paged KV cache, AWQ or dense linears, decode or prefill attention, CUDA graphs) and the
// quantizer's calibration forward (quant/quant_forward.cu: dense fp16 linears, prefill attention over each
// calibration block, input statistics of one linear). What differs between the two comes in as hooks, as in
// the TypeScript side's runAttentionBlock / runMlpBlock (src/backend/cpu/decoder-layer.ts).
//
// The residual stream is fp32 and the projections' output (`delta`) is added to it by the NEXT fused
// add + RMSNorm: each half leaves its delta pending, and the caller passes it to the next half (or adds it).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>

#include "engine/ops.h"

namespace awq {

/** The four matmuls of a layer, in the order they run (fused: q|k|v and gate|up). */
enum class LayerLinear { Qkv = 0, O = 1, GateUp = 2, Down = 3 };

/** "qkv_proj", "o_proj", "gate_up_proj", "down_proj": the engine's op names (profiles, errors). */
const char* layerLinearOp(LayerLinear which);

struct DecoderLayerDims {
  int hidden = 0;
  int numHeads = 0;
  int numKvHeads = 0;
  int headDim = 0;
  int intermediate = 0;
  float rmsEps = 1e-5f;
  RopeParams rope{10000.f, 0, 1.f, 4096};
};

/**
 * Throws std::invalid_argument naming the first bad value: a size that is not positive, numHeads not a multiple
 * of numKvHeads, or a headDim the attention kernels do not support (64 or 128). `who` starts the message.
 */
void checkDecoderLayerDims(const DecoderLayerDims& dims, const char* who);

/** The activation buffers of one run over numTokens rows (each sized by the caller for at least that). */
struct LayerActivations {
  float* residual = nullptr;  // (numTokens, hidden) fp32: the residual stream, updated in place
  half* normed = nullptr;     // (numTokens, hidden) fp16: RMSNorm output, input of q|k|v and gate|up
  half* big = nullptr;        // (numTokens, max((numHeads + 2 numKvHeads) headDim, 2 intermediate)) fp16
  half* q = nullptr;          // (numTokens, numHeads, headDim) fp16: rotated queries
  half* attn = nullptr;       // (numTokens, numHeads, headDim) fp16: attention output
  half* delta = nullptr;      // (numTokens, hidden) fp16: o_proj / down_proj output, pending for the residual
  half* act = nullptr;        // (numTokens, intermediate) fp16: silu(gate) * up
};

/** Where one layer's keys and values go (launchRopeKvWrite's inputs; see ops.h for the shapes). */
struct LayerKvWrite {
  const int32_t* positions = nullptr;    // (numTokens)
  const int32_t* slotMapping = nullptr;  // (numTokens) slot = block * blockSize + offset; < 0 writes nothing
  const int32_t* tokenSeqLen = nullptr;  // (numTokens)
  const float2* ropeTable = nullptr;     // (maxPositions, headDim / 2) (cos, sin)
  void* kCache = nullptr;                // (numBlocks, blockSize, numKvHeads, headDim) of kvDtype, this layer's
  void* vCache = nullptr;
  awqk::KvCacheDtype kvDtype = awqk::KvCacheDtype::Fp16;
};

/** What the runners of a layer do differently. linear and attention are required; the rest may stay empty. */
struct LayerHooks {
  /** y (rows, out) = x (rows, in) W of `which`. */
  std::function<void(LayerLinear which, const half* x, int rows, half* y)> linear;
  /** attn = attention of the rotated queries over this layer's cache (K, V already written, LayerKvWrite::kvDtype). */
  std::function<void(const half* q, const void* kCache, const void* vCache, half* attn)> attention;
  /**
   * Optional: act (rows, intermediate) = silu(gate) * up of x (rows, hidden) W_gate|up in one launch. Returns false,
   * having launched nothing, where no fused kernel applies (the runner then runs the gate|up linear and SiLU).
   */
  std::function<bool(const half* x, int rows, half* act)> gateUpSilu;
  /** Optional: true where this layer's gate|up linear writes its outputs interleaved by 8 (see launchSiluMul). */
  std::function<bool()> gateUpInterleaved;
  /**
   * Optional: y (rows, hidden) = x W of `which` (O or Down), then residual += y and normed = rmsnorm(residual) *
   * normWeight, in one launch. Returns false, having launched nothing, where no fused kernel applies.
   */
  std::function<bool(LayerLinear which, const half* x, int rows, half* y, float* residual, const half* normWeight,
                     float eps, half* normed)>
      linearAddNorm;
  /** Sees the input x (rows, width) of a linear just before it runs (the quantizer's input statistics). */
  std::function<void(LayerLinear which, const half* x, int rows, int width)> capture;
  /** Around each operation but attention (which times itself): the engine's profiler ranges. */
  std::function<void(const char* op)> beginOp;
  std::function<void()> endOp;
  /** After each kernel the runner launches itself (norms, RoPE + KV write, SiLU); `kernel` names it. */
  std::function<void(const char* kernel)> launched;
};

class LayerRunner {
 public:
  LayerRunner(const DecoderLayerDims& dims, const LayerActivations& acts, int numTokens, cudaStream_t stream,
              const LayerHooks& hooks);

  /**
   * residual += pendingDelta (when not null); normed = rmsnorm(residual) * inputNorm; q|k|v; RoPE and the KV
   * write; attention; delta = o_proj(attn), left pending. inputNorm (hidden) fp16. With nextNorm (the postNorm the
   * next runMlpBlock gets), o_proj may add its delta and normalize itself (hooks.linearAddNorm); that
   * runMlpBlock then skips its add + RMSNorm.
   */
  void runAttentionBlock(const half* pendingDelta, const half* inputNorm, const LayerKvWrite& kv,
                         const half* nextNorm = nullptr);
  /**
   * residual += pendingDelta (when not null); normed = rmsnorm(residual) * postNorm; gate|up; act = silu(gate)
   * * up; delta = down_proj(act), left pending. postNorm (hidden) fp16. nextNorm: the next layer's inputNorm, as
   * in runAttentionBlock (null for the last layer: its delta stays pending).
   */
  void runMlpBlock(const half* pendingDelta, const half* postNorm, const half* nextNorm = nullptr);

 private:
  void addRmsNorm(const half* pendingDelta, const half* weight, const char* kernel);
  void linear(LayerLinear which, const half* x, int width, half* y);
  /** The projection into the residual stream (O or Down), fused with the next add + RMSNorm where it can be. */
  void residualLinear(LayerLinear which, const half* x, int width, const half* nextNorm);
  void begin(const char* op) const;
  void end() const;
  void launched(const char* kernel) const;

  DecoderLayerDims dims_;
  LayerActivations acts_;
  int numTokens_;
  cudaStream_t stream_;
  const LayerHooks& hooks_;
  const half* normedWith_ = nullptr;  // set when the last projection already left normed = rmsnorm(residual) * it
};

}  // namespace awq
