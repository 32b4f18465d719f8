// The model as the engine holds it on the GPU: hyper-parameters and per-layer device weights.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "layer_runner.h"
#include "ops.h"

namespace awq {

/** The whole model: the layer's dims (hidden, heads, headDim, intermediate, rmsEps, rope) and the rest. */
struct ModelDims : DecoderLayerDims {
  int numLayers = 0;
  int vocab = 0;
  bool tiedEmbeddings = false;
  /** AWQ group size (0 = not quantized). */
  int groupSize = 0;

  int qkvWidth() const { return (numHeads + 2 * numKvHeads) * headDim; }
  const DecoderLayerDims& layerDims() const { return *this; }
};

/** y = x W for one (possibly fused) projection; AWQ-packed or dense fp16 (out, in). */
struct LinearWeight {
  int in = 0;
  int out = 0;
  int group = 0;  // AWQ group size; 0 = dense fp16
  DeviceBuffer data;  // AWQ: awq_repack layout; dense: fp16 (out, in)
  const void* alias = nullptr;  // a weight owned elsewhere (tied lm_head = the embedding), when data is empty
  // AWQ gate|up only: the outputs are interleaved by 8 (8 gate outputs, the 8 matching up outputs, ...), so that the
  // two values of one SiLU product sit in the same 16-output tile (rows g and g + 8 of its mma fragments).
  bool gluInterleaved = false;
  bool awq() const { return group > 0; }
  bool loaded() const { return !data.empty() || alias != nullptr; }
  const void* ptr() const { return data.empty() ? alias : data.get(); }
};

struct LayerWeights {
  DeviceBuffer inputNorm;  // (hidden) fp16
  DeviceBuffer postNorm;   // (hidden) fp16
  LinearWeight qkv;        // in hidden, out (numHeads + 2 numKvHeads) headDim: q | k | v
  LinearWeight o;          // in numHeads headDim, out hidden
  LinearWeight gateUp;     // in hidden, out 2 intermediate: gate | up (AWQ: interleaved by 8, gluInterleaved)
  LinearWeight down;       // in intermediate, out hidden
  const LinearWeight& linear(LayerLinear which) const {
    switch (which) {
      case LayerLinear::Qkv: return qkv;
      case LayerLinear::O: return o;
      case LayerLinear::GateUp: return gateUp;
      case LayerLinear::Down: break;
    }
    return down;
  }
};

struct ModelWeights {
  DeviceBuffer embed;      // (vocab, hidden) fp16
  DeviceBuffer finalNorm;  // (hidden) fp16
  LinearWeight lmHead;     // dense (vocab, hidden) fp16; empty when tied (embed is used)
  std::vector<LayerWeights> layers;
};

/** Which tensor of the model an upload fills. */
enum class WeightSlot { Embed, FinalNorm, LmHead, InputNorm, PostNorm, Qkv, O, GateUp, Down };

/** Parses "embed", "finalNorm", "lmHead", "inputNorm", "postNorm", "qkv", "o", "gateUp", "down". */
WeightSlot parseWeightSlot(const std::string& name);
const char* weightSlotName(WeightSlot slot);

}  // namespace awq
