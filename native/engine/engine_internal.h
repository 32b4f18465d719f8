// Engine internals shared by the engine's .cu files: the workspace, the shape of one forward, a captured graph.
#pragma once
#include <optional>
#include <tuple>

#include "engine.h"
#include "layer_runner.h"
#include "workspace.h"

namespace awq {

struct Engine::Workspace {
  int maxTokens = 0;
  int maxSeqs = 0;
  int logitRows = 0;       // rows of the logits buffers: max(maxSeqs, token-logprob chunk)
  DeviceBuffer residual;   // (maxTokens, hidden) fp32
  DeviceBuffer normed;     // (maxTokens, hidden) fp16
  DeviceBuffer big;        // (maxTokens, max(qkvWidth, 2 intermediate)) fp16: qkv, later gate|up
  DeviceBuffer q;          // (maxTokens, numHeads, headDim) fp16
  DeviceBuffer attn;       // (maxTokens, numHeads, headDim) fp16
  DeviceBuffer delta;      // (maxTokens, hidden) fp16: o_proj / down_proj output
  DeviceBuffer act;        // (maxTokens, intermediate) fp16
  DeviceBuffer finalNormed;  // (logitRows, hidden) fp16
  DeviceBuffer logitsHalf;   // (logitRows, vocab) fp16
  DeviceBuffer logits;       // (logitRows, vocab) fp32
  DeviceBuffer work;         // (maxSeqs, vocab) fp32: processed logits of the sampler
  DeviceBuffer counts;       // (maxSeqs, vocab) int32, zero between steps
  DeviceBuffer attnWork;     // paged_attention_decode workspace for (maxSeqs, maxModelLen), zeroed once
  DeviceBuffer linearWork;   // awq_linear split-K workspace (linear_workspace_bytes), zeroed once
  DeviceBuffer outTokens;    // (maxSeqs) int32
  DeviceBuffer outLogprobs;  // (maxSeqs) fp32
  DeviceBuffer outTopIds;    // (maxSeqs, kMaxTopLogprobs) int32
  DeviceBuffer outTopLogprobs;  // (maxSeqs, kMaxTopLogprobs) fp32
  DeviceBuffer tokenLogprobs;   // (maxTokens) fp32
  DeviceBuffer tokenTopIds;     // (maxTokens, kMaxTokenTop) int32
  DeviceBuffer tokenTopLogprobs;  // (maxTokens, kMaxTokenTop) fp32
  DeviceBuffer tokenRanks;      // (maxTokens) int32
  DeviceBuffer inputs;          // InputLayout words
  PinnedBuffer hostInputs[2];   // InputLayout words, per slot (PendingStep::slot)
  PinnedBuffer hostOutputs[2];  // tokens, logprobs, top ids, top logprobs, token logprobs, per slot
  PinnedBuffer hostLogits;      // (maxSeqs, vocab) fp32, allocated on first returnLogits
  size_t inputWords = 0;

  /** The layer runner's view of the activation buffers. */
  LayerActivations layerActivations() const {
    return LayerActivations{residual.as<float>(), normed.as<half>(), big.as<half>(), q.as<half>(),
                            attn.as<half>(),      delta.as<half>(),  act.as<half>()};
  }
};

struct Engine::ForwardShape {
  int numTokens = 0;
  int numSeqs = 0;
  int maxQueryLen = 0;
  int maxContextLen = 0;
  int numGather = 0;  // rows through the final norm and lm_head (sampleRows)
  int tokenTopLogprobs = 0;  // top-N alternatives per token in computeTokenLogprobs (StepInput::tokenTopLogprobs)
  bool decode = false;
  InputLayout layout{};
  const int32_t* inputs = nullptr;  // device base of `layout`
  std::optional<std::tuple<int, int>> graphKey;  // (padded seqs, context bucket) when replayed from a graph
};

struct Engine::Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
};

}  // namespace awq
