// Engine construction and weight loading: tensors arrive one at a time from the checkpoint (host memory) and go
// straight to their device buffers; AWQ projections are concatenated along `out` (q|k|v, gate|up) in the
// checkpoint layout, then repacked once by the kernels' awq_repack.
#include <cuda_bf16.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "engine.h"
#include "engine_internal.h"
#include "kernels/kernels.h"

namespace awq {

namespace {

size_t elementsOf(const HostTensor& t) {
  size_t n = 1;
  for (int64_t d : t.shape) n *= static_cast<size_t>(d);
  return n;
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void expectShape(const HostTensor& t, std::vector<int64_t> expected) {
  if (t.shape != expected) {
    throw std::invalid_argument("tensor \"" + t.name + "\": expected shape " + shapeString(expected) + ", got " +
                                shapeString(t.shape));
  }
}

void expectDType(const HostTensor& t, HostDType dtype, const char* dtypeName) {
  if (t.dtype != dtype) throw std::invalid_argument("tensor \"" + t.name + "\": expected dtype " + dtypeName);
}

}  // namespace

HostDType parseHostDType(const std::string& name) {
  if (name == "F16") return HostDType::F16;
  if (name == "BF16") return HostDType::BF16;
  if (name == "F32") return HostDType::F32;
  if (name == "I32") return HostDType::I32;
  throw std::invalid_argument("unsupported tensor dtype " + name + " (expected F16, BF16, F32 or I32)");
}

WeightSlot parseWeightSlot(const std::string& name) {
  static const std::pair<const char*, WeightSlot> table[] = {
      {"embed", WeightSlot::Embed},         {"finalNorm", WeightSlot::FinalNorm}, {"lmHead", WeightSlot::LmHead},
      {"inputNorm", WeightSlot::InputNorm}, {"postNorm", WeightSlot::PostNorm},   {"qkv", WeightSlot::Qkv},
      {"o", WeightSlot::O},                 {"gateUp", WeightSlot::GateUp},       {"down", WeightSlot::Down}};
  for (const auto& [key, slot] : table) {
    if (name == key) return slot;
  }
  throw std::invalid_argument("unknown weight slot \"" + name + "\"");
}

const char* weightSlotName(WeightSlot slot) {
  switch (slot) {
    case WeightSlot::Embed: return "embed";
    case WeightSlot::FinalNorm: return "finalNorm";
    case WeightSlot::LmHead: return "lmHead";
    case WeightSlot::InputNorm: return "inputNorm";
    case WeightSlot::PostNorm: return "postNorm";
    case WeightSlot::Qkv: return "qkv";
    case WeightSlot::O: return "o";
    case WeightSlot::GateUp: return "gateUp";
    case WeightSlot::Down: return "down";
  }
  return "?";
}

namespace {

// Every size the engine allocates from must be positive; the layer's own rules are the layer runner's.
void checkModelDims(const ModelDims& dims) {
  const char* who = "invalid model dimensions for the CUDA engine";
  const std::pair<const char*, int> sizes[] = {{"numLayers", dims.numLayers}, {"vocab", dims.vocab}};
  for (const auto& [name, value] : sizes) {
    if (value <= 0) {
      throw std::invalid_argument(std::string(who) + ": " + name + " is " + std::to_string(value) +
                                  " (must be positive)");
    }
  }
  checkDecoderLayerDims(dims.layerDims(), who);
}

}  // namespace

Engine::Engine(const ModelDims& dims, int device) : dims_(dims), device_(device) {
  checkModelDims(dims);
  cudaCheck(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
  cudaDeviceProp prop{};
  cudaCheck(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  deviceName_ = prop.name;
  cudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  weights_.layers.resize(dims.numLayers);
}

Engine::~Engine() {
  try {
    release();
  } catch (...) {
  }
}

void Engine::checkLayerIndex(WeightSlot slot, int layer) const {
  if (layer < 0 || layer >= dims_.numLayers) {
    throw std::invalid_argument(std::string("weight slot ") + weightSlotName(slot) + ": layer index " +
                                std::to_string(layer) + " out of range 0.." + std::to_string(dims_.numLayers - 1));
  }
}

LinearWeight& Engine::linearFor(WeightSlot slot, int layer) {
  if (slot == WeightSlot::LmHead) return weights_.lmHead;
  checkLayerIndex(slot, layer);
  LayerWeights& weights = weights_.layers[layer];
  switch (slot) {
    case WeightSlot::Qkv: return weights.qkv;
    case WeightSlot::O: return weights.o;
    case WeightSlot::GateUp: return weights.gateUp;
    case WeightSlot::Down: return weights.down;
    default: throw std::invalid_argument(std::string("weight slot ") + weightSlotName(slot) + " is not a linear");
  }
}

DeviceBuffer& Engine::vectorFor(WeightSlot slot, int layer, size_t* expectedElements) {
  *expectedElements = dims_.hidden;
  if (slot == WeightSlot::Embed) {
    *expectedElements = static_cast<size_t>(dims_.vocab) * dims_.hidden;
    return weights_.embed;
  }
  if (slot == WeightSlot::FinalNorm) return weights_.finalNorm;
  checkLayerIndex(slot, layer);
  if (slot == WeightSlot::InputNorm) return weights_.layers[layer].inputNorm;
  if (slot == WeightSlot::PostNorm) return weights_.layers[layer].postNorm;
  throw std::invalid_argument(std::string("weight slot ") + weightSlotName(slot) + " is not a vector");
}

void Engine::uploadHalf(const HostTensor& t, half* dst, size_t elements) {
  if (elementsOf(t) != elements) {
    throw std::invalid_argument("tensor \"" + t.name + "\": expected " + std::to_string(elements) +
                                " elements, got shape " + shapeString(t.shape));
  }
  const size_t width = t.dtype == HostDType::F32 ? 4 : 2;
  if (t.dtype == HostDType::I32 || t.bytes != elements * width) {
    throw std::invalid_argument("tensor \"" + t.name + "\": expected F16, BF16 or F32 data of " +
                                std::to_string(elements) + " elements");
  }
  if (t.dtype == HostDType::F16) {
    cudaCheck(cudaMemcpyAsync(dst, t.data, t.bytes, cudaMemcpyHostToDevice, stream_), "upload of " + t.name);
  } else {
    DeviceBuffer staging;
    staging.allocate(t.bytes, "staging of " + t.name);
    cudaCheck(cudaMemcpyAsync(staging.get(), t.data, t.bytes, cudaMemcpyHostToDevice, stream_), "upload of " + t.name);
    if (t.dtype == HostDType::BF16) {
      launchBf16ToHalf(staging.as<uint16_t>(), dst, elements, stream_);
    } else {
      launchF32ToHalf(staging.as<float>(), dst, elements, stream_);
    }
    cudaCheck(cudaStreamSynchronize(stream_), "conversion of " + t.name + " to fp16");
  }
}

void Engine::uploadVector(WeightSlot slot, int layer, const HostTensor& tensor) {
  auto lock = lockIdle();
  bindDevice();
  size_t elements = 0;
  DeviceBuffer& dst = vectorFor(slot, layer, &elements);
  if (slot == WeightSlot::Embed) expectShape(tensor, {dims_.vocab, dims_.hidden});
  if (dst.empty()) {
    dst.allocate(elements * sizeof(half), tensor.name);
    weightBytes_ += dst.bytes();
  }
  uploadHalf(tensor, dst.as<half>(), elements);
  cudaCheck(cudaStreamSynchronize(stream_), "upload of " + tensor.name);
}

void Engine::uploadLinear(WeightSlot slot, int layer, const std::vector<LinearPart>& parts) {
  auto lock = lockIdle();
  bindDevice();
  if (parts.empty()) throw std::invalid_argument("uploadLinear needs at least one part");
  LinearWeight& target = linearFor(slot, layer);
  const std::string what = std::string(weightSlotName(slot)) + " of layer " + std::to_string(layer);
  if (target.loaded()) weightBytes_ -= target.data.bytes();
  if (parts[0].awq) {
    const bool glu = slot == WeightSlot::GateUp && parts.size() == 2 && parts[0].qweight.shape.size() == 2 &&
                     parts[1].qweight.shape.size() == 2 && parts[0].qweight.shape[1] == parts[1].qweight.shape[1];
    repackAwq(target, parts, what, glu);
  } else {
    uploadDense(target, parts, what);
  }
  weightBytes_ += target.data.bytes();
  cudaCheck(cudaStreamSynchronize(stream_), "upload of " + what);
}

void Engine::repackAwq(LinearWeight& target, const std::vector<LinearPart>& parts, const std::string& what,
                       bool interleaveGlu) {
  const int group = dims_.groupSize;
  if (group <= 0) throw std::invalid_argument(what + ": AWQ tensors given but the model has no quantization config");
  const int64_t in = parts[0].qweight.shape.size() == 2 ? parts[0].qweight.shape[0] : -1;
  if (in <= 0 || in % group != 0) {
    throw std::invalid_argument("tensor \"" + parts[0].qweight.name + "\": rows must be a multiple of the group size " +
                                std::to_string(group));
  }
  int64_t out = 0;
  for (const LinearPart& p : parts) {
    if (!p.awq) throw std::invalid_argument(what + ": cannot fuse AWQ and dense parts");
    expectDType(p.qweight, HostDType::I32, "I32");
    expectDType(p.qzeros, HostDType::I32, "I32");
    expectDType(p.scales, HostDType::F16, "F16");
    if (p.qweight.shape.size() != 2) expectShape(p.qweight, {in, -1});
    const int64_t cols = p.qweight.shape[1];
    expectShape(p.qweight, {in, cols});
    expectShape(p.qzeros, {in / group, cols});
    expectShape(p.scales, {in / group, cols * 8});
    out += cols * 8;
  }
  const size_t packedCols = static_cast<size_t>(out / 8);
  DeviceBuffer qweight, qzeros, scales;
  qweight.allocate(static_cast<size_t>(in) * packedCols * 4, "staging qweight of " + what);
  qzeros.allocate(static_cast<size_t>(in / group) * packedCols * 4, "staging qzeros of " + what);
  scales.allocate(static_cast<size_t>(in / group) * out * 2, "staging scales of " + what);
  size_t colOffset = 0;  // in packed int32 columns
  for (const LinearPart& p : parts) {
    const size_t cols = static_cast<size_t>(p.qweight.shape[1]);
    cudaCheck(cudaMemcpy2DAsync(qweight.as<int32_t>() + colOffset, packedCols * 4, p.qweight.data, cols * 4, cols * 4,
                                in, cudaMemcpyHostToDevice, stream_),
              "upload of " + p.qweight.name);
    cudaCheck(cudaMemcpy2DAsync(qzeros.as<int32_t>() + colOffset, packedCols * 4, p.qzeros.data, cols * 4, cols * 4,
                                in / group, cudaMemcpyHostToDevice, stream_),
              "upload of " + p.qzeros.name);
    cudaCheck(cudaMemcpy2DAsync(scales.as<half>() + colOffset * 8, out * 2, p.scales.data, cols * 16, cols * 16,
                                in / group, cudaMemcpyHostToDevice, stream_),
              "upload of " + p.scales.name);
    colOffset += cols;
  }
  target.in = static_cast<int>(in);
  target.out = static_cast<int>(out);
  target.group = group;
  target.gluInterleaved = interleaveGlu;
  if (interleaveGlu) {
    // [gate | up] -> gate 0..7, up 0..7, gate 8..15, ...: one packed int32 column (8 outputs) of qweight and qzeros,
    // 8 scales (4 units), per block. The kernels then compute the outputs in this order (see LinearWeight).
    const int blocks = static_cast<int>(packedCols / 2);
    DeviceBuffer q2, z2, s2;
    q2.allocate(qweight.bytes(), "interleaved qweight of " + what);
    z2.allocate(qzeros.bytes(), "interleaved qzeros of " + what);
    s2.allocate(scales.bytes(), "interleaved scales of " + what);
    launchInterleaveColumnBlocks(qweight.as<uint32_t>(), q2.as<uint32_t>(), static_cast<size_t>(in), blocks, 1,
                                 stream_);
    launchInterleaveColumnBlocks(qzeros.as<uint32_t>(), z2.as<uint32_t>(), static_cast<size_t>(in / group), blocks, 1,
                                 stream_);
    launchInterleaveColumnBlocks(scales.as<uint32_t>(), s2.as<uint32_t>(), static_cast<size_t>(in / group), blocks, 4,
                                 stream_);
    cudaCheck(cudaStreamSynchronize(stream_), "gate|up interleave of " + what);
    qweight = std::move(q2);
    qzeros = std::move(z2);
    scales = std::move(s2);
  }
  target.data.allocate(awqk::awq_packed_bytes(target.in, target.out, group), "packed " + what);
  cudaCheck(awqk::awq_repack(qweight.as<int32_t>(), qzeros.as<int32_t>(), scales.as<half>(), target.in, target.out,
                             group, target.data.get(), stream_),
            "awq_repack of " + what);
  cudaCheck(cudaStreamSynchronize(stream_), "awq_repack of " + what);
}

void Engine::uploadDense(LinearWeight& target, const std::vector<LinearPart>& parts, const std::string& what) {
  const int64_t in = parts[0].weight.shape.size() == 2 ? parts[0].weight.shape[1] : -1;
  int64_t out = 0;
  for (const LinearPart& p : parts) {
    if (p.awq) throw std::invalid_argument(what + ": cannot fuse AWQ and dense parts");
    if (p.weight.shape.size() != 2 || p.weight.shape[1] != in) {
      throw std::invalid_argument("tensor \"" + p.weight.name + "\": expected shape [out, " + std::to_string(in) +
                                  "], got " + shapeString(p.weight.shape));
    }
    out += p.weight.shape[0];
  }
  if (in % 64 != 0) throw std::invalid_argument(what + ": the dense matmul needs in_features % 64 == 0");
  target.in = static_cast<int>(in);
  target.out = static_cast<int>(out);
  target.group = 0;
  target.data.allocate(static_cast<size_t>(in) * out * sizeof(half), what);
  size_t rowOffset = 0;
  for (const LinearPart& p : parts) {
    const size_t rows = static_cast<size_t>(p.weight.shape[0]);
    uploadHalf(p.weight, target.data.as<half>() + rowOffset * in, rows * in);
    rowOffset += rows;
  }
}

void Engine::randomLinear(LinearWeight& target, int in, int out, uint32_t seed) {
  const int group = dims_.groupSize;
  target.in = in;
  target.out = out;
  target.group = group;
  if (group > 0) {
    DeviceBuffer qweight, qzeros, scales;
    qweight.allocate(static_cast<size_t>(in) * (out / 8) * 4, "random qweight");
    qzeros.allocate(static_cast<size_t>(in / group) * (out / 8) * 4, "random qzeros");
    scales.allocate(static_cast<size_t>(in / group) * out * 2, "random scales");
    launchRandomWords(qweight.as<uint32_t>(), qweight.bytes() / 4, seed, stream_);
    launchRandomWords(qzeros.as<uint32_t>(), qzeros.bytes() / 4, seed + 1, stream_);
    // (q - z) has a standard deviation of about 6.5: scales near 1 / (6.5 sqrt(in)) keep activations near 1.
    const float s = 1.f / (6.5f * sqrtf(static_cast<float>(in)));
    launchRandomHalf(scales.as<half>(), scales.bytes() / 2, seed + 2, 0.5f * s, 1.5f * s, stream_);
    target.data.allocate(awqk::awq_packed_bytes(in, out, group), "random packed weight");
    cudaCheck(awqk::awq_repack(qweight.as<int32_t>(), qzeros.as<int32_t>(), scales.as<half>(), in, out, group,
                               target.data.get(), stream_),
              "awq_repack of a random weight");
    cudaCheck(cudaStreamSynchronize(stream_), "random AWQ weight");
  } else {
    target.data.allocate(static_cast<size_t>(in) * out * sizeof(half), "random dense weight");
    const float a = sqrtf(3.f / static_cast<float>(in));
    launchRandomHalf(target.data.as<half>(), static_cast<size_t>(in) * out, seed, -a, a, stream_);
  }
  weightBytes_ += target.data.bytes();
}

void Engine::initRandomWeights(uint32_t seed) {
  auto lock = lockIdle();
  bindDevice();
  const ModelDims& d = dims_;
  auto vector = [&](DeviceBuffer& buf, size_t n, float lo, float hi, uint32_t s, const char* what) {
    buf.allocate(n * sizeof(half), what);
    if (lo == hi) {
      launchFillHalf(buf.as<half>(), n, lo, stream_);
    } else {
      launchRandomHalf(buf.as<half>(), n, s, lo, hi, stream_);
    }
    weightBytes_ += buf.bytes();
  };
  vector(weights_.embed, static_cast<size_t>(d.vocab) * d.hidden, -1.f, 1.f, seed, "random embedding");
  vector(weights_.finalNorm, d.hidden, 1.f, 1.f, 0, "random final norm");
  uint32_t s = seed * 7919u + 17u;
  for (LayerWeights& layer : weights_.layers) {
    vector(layer.inputNorm, d.hidden, 1.f, 1.f, 0, "random input norm");
    vector(layer.postNorm, d.hidden, 1.f, 1.f, 0, "random post norm");
    randomLinear(layer.qkv, d.hidden, d.qkvWidth(), s += 11);
    randomLinear(layer.o, d.numHeads * d.headDim, d.hidden, s += 11);
    randomLinear(layer.gateUp, d.hidden, 2 * d.intermediate, s += 11);
    layer.gateUp.gluInterleaved = layer.gateUp.awq();  // random values: any order; the one loaded checkpoints get
    randomLinear(layer.down, d.intermediate, d.hidden, s += 11);
  }
  if (!d.tiedEmbeddings) {
    const int group = dims_.groupSize;
    dims_.groupSize = 0;  // lm_head stays fp16 in AWQ checkpoints
    randomLinear(weights_.lmHead, d.hidden, d.vocab, s += 11);
    dims_.groupSize = group;
  }
  cudaCheck(cudaStreamSynchronize(stream_), "random weights");
}

void Engine::release() {
  auto lock = lockIdle();
  bindDevice();
  graphs_.clear();
  ws_.reset();
  kCache_.clear();
  vCache_.clear();
  weights_ = ModelWeights{};
  weights_.layers.resize(dims_.numLayers);
  weightBytes_ = 0;
  finalized_ = false;
  for (const PendingRange& r : pending_) {
    eventPool_.push_back(r.start);
    eventPool_.push_back(r.end);
  }
  pending_.clear();
  for (cudaEvent_t e : eventPool_) cudaEventDestroy(e);
  eventPool_.clear();
  for (int i = 0; i < 2; i++) {
    if (stepStart_[i] != nullptr) cudaEventDestroy(stepStart_[i]);
    if (stepEnd_[i] != nullptr) cudaEventDestroy(stepEnd_[i]);
    stepStart_[i] = stepEnd_[i] = nullptr;
  }
  if (stream_ != nullptr) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
}

}  // namespace awq
