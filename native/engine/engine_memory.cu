// Sizing: the workspace of a worst-case step, then the paged KV cache from what --gpu-memory-utilization leaves;
// and the checks every step's inputs pass before anything is launched.
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"
#include "engine_internal.h"
#include "kernels/kernels.h"

namespace awq {

MemoryReport Engine::finalize(const RuntimeOptions& options) {
  auto lock = lockIdle();
  bindDevice();
  checkRuntimeOptions(options);
  checkWeightsLoaded();
  options_ = options;
  graphs_.clear();
  uploadRopeFrequencies();
  allocateWorkspace();
  const int numBlocks = kvCacheBlocks();
  allocateKvCache(numBlocks);
  const char* graphsEnv = std::getenv("AWQ_CUDA_GRAPHS");
  useGraphs_ = graphsEnv == nullptr || std::string(graphsEnv) != "0";
  finalized_ = true;
  return memoryReport();
}

void Engine::checkRuntimeOptions(const RuntimeOptions& o) const {
  if (o.blockSize != awqk::kKvBlockSize) {
    throw std::invalid_argument("the CUDA backend needs --block-size " + std::to_string(awqk::kKvBlockSize) +
                                " (got " + std::to_string(o.blockSize) + ")");
  }
  if (o.maxNumSeqs <= 0 || o.maxNumBatchedTokens <= 0 || o.maxModelLen <= 0) {
    throw std::invalid_argument("maxNumSeqs, maxNumBatchedTokens and maxModelLen must be positive (got " +
                                std::to_string(o.maxNumSeqs) + ", " + std::to_string(o.maxNumBatchedTokens) + ", " +
                                std::to_string(o.maxModelLen) + ")");
  }
  if (o.kvCacheDtype != awqk::KvCacheDtype::Fp16 && o.kvCacheDtype != awqk::KvCacheDtype::Fp8E4m3) {
    throw std::invalid_argument("kvCacheDtype must be fp16 (auto) or fp8_e4m3");
  }
}

// Every weight present with the model's shape; an untied model without lm_head gets the embedding as its head.
void Engine::checkWeightsLoaded() {
  const ModelDims& d = dims_;
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("weight missing after load: " + what);
  };
  need(!weights_.embed.empty(), "model.embed_tokens.weight");
  need(!weights_.finalNorm.empty(), "model.norm.weight");
  for (int l = 0; l < d.numLayers; l++) {
    const LayerWeights& layer = weights_.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    need(!layer.inputNorm.empty(), p + "input_layernorm.weight");
    need(!layer.postNorm.empty(), p + "post_attention_layernorm.weight");
    need(layer.qkv.loaded() && layer.qkv.in == d.hidden && layer.qkv.out == d.qkvWidth(), p + "self_attn.{q,k,v}_proj");
    need(layer.o.loaded() && layer.o.in == d.numHeads * d.headDim && layer.o.out == d.hidden, p + "self_attn.o_proj");
    need(layer.gateUp.loaded() && layer.gateUp.in == d.hidden && layer.gateUp.out == 2 * d.intermediate,
         p + "mlp.{gate,up}_proj");
    need(layer.down.loaded() && layer.down.in == d.intermediate && layer.down.out == d.hidden, p + "mlp.down_proj");
  }
  if (!weights_.lmHead.loaded()) {
    tiedHead_.in = d.hidden;
    tiedHead_.out = d.vocab;
    tiedHead_.group = 0;
    tiedHead_.alias = weights_.embed.get();
  } else {
    need(weights_.lmHead.in == d.hidden && weights_.lmHead.out == d.vocab, "lm_head.weight");
  }
}

void Engine::uploadRopeFrequencies() {
  std::vector<float> inv(dims_.headDim / 2);
  computeInvFreq(dims_.headDim, dims_.rope.theta, inv.data());
  invFreq_.allocate(inv.size() * sizeof(float), "RoPE inverse frequencies");
  cudaCheck(cudaMemcpy(invFreq_.get(), inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice),
            "upload of the RoPE inverse frequencies");
}

// The buffers of a worst-case step (options_.maxNumBatchedTokens tokens, maxNumSeqs sequences), the RoPE table
// and the kernels' zeroed workspaces; waits until they are ready.
void Engine::allocateWorkspace() {
  const ModelDims& d = dims_;
  const RuntimeOptions& o = options_;
  ws_ = std::make_unique<Workspace>();
  Workspace& w = *ws_;
  const size_t tokens = static_cast<size_t>(o.maxNumBatchedTokens);
  const size_t seqs = static_cast<size_t>(o.maxNumSeqs);
  tableWidth_ = (o.maxModelLen + o.blockSize - 1) / o.blockSize;
  w.maxTokens = o.maxNumBatchedTokens;
  w.maxSeqs = o.maxNumSeqs;
  w.logitRows = std::max(o.maxNumSeqs, std::min(o.maxNumBatchedTokens, 256));
  const size_t hidden = d.hidden;
  const size_t logitRows = w.logitRows;
  const size_t vocab = d.vocab;
  const size_t attnWidth = static_cast<size_t>(d.numHeads) * d.headDim;
  w.residual.allocate(tokens * hidden * 4, "residual stream");
  w.normed.allocate(tokens * hidden * 2, "normed activations");
  w.big.allocate(tokens * std::max<size_t>(d.qkvWidth(), 2 * static_cast<size_t>(d.intermediate)) * 2,
                 "qkv / gate_up");
  w.q.allocate(tokens * attnWidth * 2, "rotated queries");
  w.attn.allocate(tokens * attnWidth * 2, "attention output");
  w.delta.allocate(tokens * hidden * 2, "projection output");
  w.act.allocate(tokens * d.intermediate * 2, "MLP activations");
  w.finalNormed.allocate(logitRows * hidden * 2, "final norm rows");
  w.logitsHalf.allocate(logitRows * vocab * 2, "fp16 logits");
  w.logits.allocate(logitRows * vocab * 4, "fp32 logits");
  w.work.allocate(seqs * vocab * 4, "sampler logits");
  w.counts.allocate(seqs * vocab * 4, "sampler token counts");
  cudaCheck(cudaMemsetAsync(w.counts.get(), 0, w.counts.bytes(), stream_), "clearing sampler counts");
  const int maxContext = tableWidth_ * o.blockSize;
  ropeTable_.allocate(static_cast<size_t>(maxContext) * (d.headDim / 2) * sizeof(float2), "RoPE cos/sin table");
  launchRopeTable(invFreq_.as<float>(), ropeTable_.as<float2>(), maxContext, d.headDim, d.rope, stream_);
  const size_t attnBytes = awqk::paged_attention_decode_workspace_bytes(o.maxNumSeqs, d.numHeads, d.headDim,
                                                                        maxContext);
  w.attnWork.allocate(std::max<size_t>(attnBytes, 256), "decode attention workspace");
  cudaCheck(cudaMemsetAsync(w.attnWork.get(), 0, w.attnWork.bytes(), stream_), "clearing the attention workspace");
  w.linearWork.allocate(awqk::linear_workspace_bytes(), "split-K linear workspace");
  cudaCheck(cudaMemsetAsync(w.linearWork.get(), 0, w.linearWork.bytes(), stream_), "clearing the linear workspace");
  w.outTokens.allocate(seqs * 4, "sampled tokens");
  w.outLogprobs.allocate(seqs * 4, "sampled logprobs");
  w.outTopIds.allocate(seqs * kMaxTopLogprobs * 4, "top logprob ids");
  w.outTopLogprobs.allocate(seqs * kMaxTopLogprobs * 4, "top logprobs");
  w.tokenLogprobs.allocate(tokens * 4, "token logprobs");
  w.tokenTopIds.allocate(tokens * kMaxTokenTop * 4, "token top logprob ids");
  w.tokenTopLogprobs.allocate(tokens * kMaxTokenTop * 4, "token top logprobs");
  w.tokenRanks.allocate(tokens * 4, "token ranks");
  // Inputs: the fixed part of a worst-case step plus room for penalty lists; grows when a step needs more.
  const InputLayout worst = InputLayout::make(o.maxNumBatchedTokens, o.maxNumSeqs, tableWidth_, 1 << 16, 1 << 16,
                                              1 << 12);
  ensureInputCapacity(worst.totalWords);
  for (int i = 0; i < 2; i++) {  // a step's GPU time, per slot (PendingStep::slot); release() destroys them
    if (stepStart_[i] == nullptr) cudaCheck(cudaEventCreate(&stepStart_[i]), "cudaEventCreate");
    if (stepEnd_[i] == nullptr) cudaCheck(cudaEventCreate(&stepEnd_[i]), "cudaEventCreate");
  }
  for (PinnedBuffer& outputs : w.hostOutputs) {
    outputs.allocate(seqs * 8 + seqs * kMaxTopLogprobs * 8 + tokens * 4 + tokens * (kMaxTokenTop * 8 + 4) + 256,
                     "step outputs");
  }
  cudaCheck(cudaStreamSynchronize(stream_), "workspace allocation");
}

// KV blocks: options_.numBlocks, or what --gpu-memory-utilization leaves after the weights and the workspace.
int Engine::kvCacheBlocks() const {
  const ModelDims& d = dims_;
  const RuntimeOptions& o = options_;
  size_t freeBytes = 0, totalBytes = 0;
  cudaCheck(cudaMemGetInfo(&freeBytes, &totalBytes), "cudaMemGetInfo");
  const size_t perBlock = static_cast<size_t>(d.numLayers) * 2 * o.blockSize * d.numKvHeads * d.headDim *
                          awqk::kv_cache_element_bytes(o.kvCacheDtype);
  long long numBlocks = o.numBlocks;
  if (numBlocks < 0) {
    const double budget = o.gpuMemoryUtilization * static_cast<double>(totalBytes) -
                          static_cast<double>(totalBytes - freeBytes);
    // Leave 256 MiB of the budget for the CUDA graphs and the driver's own growth.
    numBlocks = static_cast<long long>((budget - 256.0 * (1 << 20)) / static_cast<double>(perBlock));
    const long long needed = (o.maxModelLen + o.blockSize - 1) / o.blockSize;
    if (numBlocks < needed) {
      throw std::runtime_error(
          "not enough GPU memory for the KV cache of one " + std::to_string(o.maxModelLen) +
          "-token sequence: weights " + std::to_string(weightBytes_ >> 20) + " MiB, free " +
          std::to_string(freeBytes >> 20) + " of " + std::to_string(totalBytes >> 20) +
          " MiB; raise --gpu-memory-utilization or lower --max-model-len / --max-num-batched-tokens");
    }
  }
  if (numBlocks <= 0) throw std::invalid_argument("numBlocks must be positive (got " + std::to_string(numBlocks) + ")");
  return static_cast<int>(numBlocks);
}

void Engine::allocateKvCache(int numBlocks) {
  const ModelDims& d = dims_;
  numBlocks_ = numBlocks;
  kCache_.clear();
  vCache_.clear();
  kCache_.resize(d.numLayers);
  vCache_.resize(d.numLayers);
  const size_t layerBytes = kvLayerBytes();
  for (int l = 0; l < d.numLayers; l++) {
    kCache_[l].allocate(layerBytes, "K cache of layer " + std::to_string(l));
    vCache_[l].allocate(layerBytes, "V cache of layer " + std::to_string(l));
    cudaCheck(cudaMemsetAsync(kCache_[l].get(), 0, layerBytes, stream_), "clearing the K cache");
    cudaCheck(cudaMemsetAsync(vCache_[l].get(), 0, layerBytes, stream_), "clearing the V cache");
  }
  cudaCheck(cudaStreamSynchronize(stream_), "KV cache allocation");
}

size_t Engine::kvLayerBytes() const {
  return static_cast<size_t>(numBlocks_) * options_.blockSize * dims_.numKvHeads * dims_.headDim *
         awqk::kv_cache_element_bytes(options_.kvCacheDtype);
}

MemoryReport Engine::memoryReport() const {
  const Workspace& w = *ws_;
  MemoryReport report;
  report.numBlocks = numBlocks_;
  report.blockSize = options_.blockSize;
  report.weightBytes = weightBytes_;
  size_t workspaceBytes = 0;
  for (const DeviceBuffer* b : {&w.residual, &w.normed, &w.big, &w.q, &w.attn, &w.delta, &w.act, &w.finalNormed,
                                &w.logitsHalf, &w.logits, &w.work, &w.counts, &w.attnWork, &w.linearWork, &w.outTokens,
                                &w.outLogprobs, &w.outTopIds, &w.outTopLogprobs, &w.tokenLogprobs, &w.inputs}) {
    workspaceBytes += b->bytes();
  }
  report.workspaceBytes = workspaceBytes;
  report.kvBytes = 2 * kvLayerBytes() * dims_.numLayers;
  report.kvElementBytes = static_cast<int>(awqk::kv_cache_element_bytes(options_.kvCacheDtype));
  size_t totalBytes = 0;
  cudaCheck(cudaMemGetInfo(&report.freeBytesAfter, &totalBytes), "cudaMemGetInfo");
  report.totalBytes = totalBytes;
  return report;
}

void Engine::ensureInputCapacity(size_t words) {
  Workspace& w = *ws_;
  if (words <= w.inputWords) return;
  const size_t grown = std::max(words, w.inputWords + w.inputWords / 2);
  // Graphs hold pointers into the inputs: they are re-captured after a move.
  graphs_.clear();
  cudaCheck(cudaStreamSynchronize(stream_), "before growing the step inputs");
  w.inputs.allocate(grown * 4, "step inputs");
  for (PinnedBuffer& inputs : w.hostInputs) inputs.allocate(grown * 4, "step inputs (host)");
  w.inputWords = grown;
}

void Engine::checkStep(const StepInput& in) const {
  const ModelDims& d = dims_;
  auto fail = [](const std::string& m) { throw std::invalid_argument("step batch: " + m); };
  if (in.numSeqs <= 0 || in.numSeqs > options_.maxNumSeqs) {
    fail("numSeqs " + std::to_string(in.numSeqs) + " outside 1.." + std::to_string(options_.maxNumSeqs));
  }
  if (in.numTokens <= 0 || in.numTokens > options_.maxNumBatchedTokens) {
    fail("numTokens " + std::to_string(in.numTokens) + " outside 1.." + std::to_string(options_.maxNumBatchedTokens));
  }
  if (in.queryStarts[0] != 0 || in.queryStarts[in.numSeqs] != in.numTokens) {
    fail("queryStarts must start at 0 and end at numTokens");
  }
  if (in.tokenTopLogprobs < 0 || in.tokenTopLogprobs > kMaxTokenTop) {
    fail("tokenTopLogprobs " + std::to_string(in.tokenTopLogprobs) + " outside 0.." + std::to_string(kMaxTokenTop));
  }
  const long long slots = static_cast<long long>(numBlocks_) * options_.blockSize;
  for (int t = 0; t < in.numTokens; t++) {
    if (in.tokenIds[t] < 0 || in.tokenIds[t] >= d.vocab) {
      fail("token id " + std::to_string(in.tokenIds[t]) + " outside the vocabulary of " + std::to_string(d.vocab));
    }
    if (in.slotMapping[t] >= slots) fail("slot " + std::to_string(in.slotMapping[t]) + " beyond the KV cache");
  }
  for (int i = 0; i < in.numSeqs; i++) {
    const int ql = in.queryStarts[i + 1] - in.queryStarts[i];
    const int ctx = in.contextLens[i];
    if (ql <= 0) fail("sequence " + std::to_string(i) + " has no query tokens");
    if (ctx < ql || ctx > tableWidth_ * options_.blockSize) {
      fail("contextLens[" + std::to_string(i) + "] = " + std::to_string(ctx) + " must be >= its query length and <= " +
           std::to_string(tableWidth_ * options_.blockSize));
    }
    const int blocks = (ctx + options_.blockSize - 1) / options_.blockSize;
    if (blocks > in.maxBlocksPerSeq) fail("block table too narrow for contextLens[" + std::to_string(i) + "]");
    for (int b = 0; b < blocks; b++) {
      const int id = in.blockTables[static_cast<size_t>(i) * in.maxBlocksPerSeq + b];
      if (id < 0 || id >= numBlocks_) fail("block id " + std::to_string(id) + " outside 0.." + std::to_string(numBlocks_ - 1));
    }
    auto list = [&](const int32_t* starts, const int32_t* tokens, const char* name) {
      for (int j = starts[i]; j < starts[i + 1]; j++) {
        if (tokens[j] < 0 || tokens[j] >= d.vocab) fail(std::string(name) + " token outside the vocabulary");
      }
    };
    if (in.sample[i]) {
      list(in.promptStarts, in.promptTokens, "penalty prompt");
      list(in.outputStarts, in.outputTokens, "penalty output");
      list(in.biasStarts, in.biasTokens, "logit bias");
    }
  }
}

}  // namespace awq
