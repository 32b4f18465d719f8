// QuantContext: construction, memory, the tensor registry, uploads/readbacks and the activation ops.
// The decoder-layer forward is in quant_forward.cu, the weight math in quant_weight_ops.cu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "engine/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/quant_kernels.h"
#include "quant/quant_context.h"

namespace awqq {

namespace {
constexpr size_t kAlign = 256;
size_t alignUp(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
}  // namespace

const char* linearName(Linear which) {
  switch (which) {
    case Linear::Qkv: return "qkv";
    case Linear::O: return "o";
    case Linear::GateUp: return "gateUp";
    case Linear::Down: return "down";
  }
  return "?";
}

// --- Tensor layout ---------------------------------------------------------------------------------------

size_t Tensor::scalesOffset() const { return alignUp(static_cast<size_t>(rows) * cols); }
size_t Tensor::zerosOffset() const {
  return scalesOffset() + alignUp(static_cast<size_t>(rows / group) * cols * sizeof(float));
}
size_t Tensor::statusOffset() const { return zerosOffset() + alignUp(static_cast<size_t>(rows / group) * cols); }
size_t Tensor::quantBytes(int in, int out, int g) {
  Tensor t;
  t.kind = Kind::Quant;
  t.rows = in;
  t.cols = out;
  t.group = g;
  return t.statusOffset() + kAlign;
}

// --- Readback -----------------------------------------------------------------------------------------------

void Readback::record() {
  awq::cudaCheck(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate (readback)");
  awq::cudaCheck(cudaEventRecord(event_, ctx_->stream()), "cudaEventRecord (readback)");
}

void Readback::wait() {
  cudaSetDevice(ctx_->device());
  if (event_ == nullptr) throw std::logic_error("readback waited for before it was recorded");
  awq::cudaCheck(cudaEventSynchronize(event_), "waiting for the GPU");
  for (const Part& p : parts_) {
    // The staging copy is complete (the event is past it), so a plain copy needs no stream order.
    awq::cudaCheck(cudaMemcpy(p.host, p.staging, p.bytes, cudaMemcpyDeviceToHost), "download to the host");
  }
  freeStaging();
}

void Readback::freeStaging() {
  if (freed_) return;
  freed_ = true;
  for (const Part& p : parts_) ctx_->freeAsync(p.staging);
  if (event_ != nullptr) cudaEventDestroy(event_);
  event_ = nullptr;
}

Readback::~Readback() {
  // A readback that was never waited for (an error before the task ran): its staging is freed in stream
  // order, after the copies into it.
  try {
    freeStaging();
  } catch (...) {
  }
}

// --- construction -------------------------------------------------------------------------------------------

QuantContext::QuantContext(const LayerShape& shape, int seqlen, int chunkBlocks, int device)
    : shape_(shape), seqlen_(seqlen), chunkBlocks_(chunkBlocks), device_(device) {
  const LayerShape& s = shape_;
  awq::checkDecoderLayerDims(s, "quantizer layer dims");
  if (s.hidden % 64 != 0 || s.intermediate % 64 != 0 || (s.numHeads * s.headDim) % 64 != 0) {
    throw std::invalid_argument("hidden " + std::to_string(s.hidden) + ", intermediate " +
                                std::to_string(s.intermediate) + " and numHeads * headDim " +
                                std::to_string(s.numHeads * s.headDim) + " must be multiples of 64");
  }
  if (seqlen <= 0 || chunkBlocks <= 0) {
    throw std::invalid_argument("seqlen " + std::to_string(seqlen) + " and chunkBlocks " + std::to_string(chunkBlocks) +
                                " must be positive");
  }
  try {
    setUp();
  } catch (...) {
    shutdown();  // what was created so far
    throw;
  }
}

void QuantContext::setUp() {
  const LayerShape& s = shape_;
  const int seqlen = seqlen_;
  const int chunkBlocks = chunkBlocks_;
  const int device = device_;
  bind();
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  deviceName_ = prop.name;
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaStreamCreateWithFlags(&upload_, cudaStreamNonBlocking), "cudaStreamCreate");
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  check(cudaMemPoolCreate(&pool_, &props), "cudaMemPoolCreate");
  // Keep freed memory in the pool (alloc/release cycles reuse it), and never make one stream wait for
  // another's frees behind our back (the upload stream must not wait for queued compute).
  uint64_t threshold = std::numeric_limits<uint64_t>::max();
  check(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold), "cudaMemPoolSetAttribute");
  int off = 0;
  check(cudaMemPoolSetAttribute(pool_, cudaMemPoolReuseAllowInternalDependencies, &off), "cudaMemPoolSetAttribute");

  auto own = [&](size_t bytes, const char* what) -> void* {
    void* p = nullptr;
    check(cudaMalloc(&p, std::max<size_t>(bytes, 16)), std::string("cudaMalloc of ") + std::to_string(bytes) +
                                                           " bytes for " + what);
    owned_.push_back(p);
    return p;
  };
  for (int i = 0; i < 4; i++) {
    const Linear which = static_cast<Linear>(i);
    weights_[i] = static_cast<half*>(
        own(static_cast<size_t>(inFeatures(which)) * outFeatures(which) * 2, "fp16 layer weights"));
  }
  const size_t H = s.hidden;
  const size_t T = static_cast<size_t>(chunkBlocks) * seqlen;
  const size_t attnWidth = static_cast<size_t>(s.numHeads) * s.headDim;
  normIn_ = static_cast<half*>(own(H * 2, "input norm"));
  normPost_ = static_cast<half*>(own(H * 2, "post-attention norm"));
  normed_ = static_cast<half*>(own(T * H * 2, "normed activations"));
  big_ = static_cast<half*>(
      own(T * std::max(static_cast<size_t>(outFeatures(Linear::Qkv)), 2 * static_cast<size_t>(s.intermediate)) * 2,
          "qkv / gate_up outputs"));
  q_ = static_cast<half*>(own(T * attnWidth * 2, "rotated queries"));
  attn_ = static_cast<half*>(own(T * attnWidth * 2, "attention output"));
  delta_ = static_cast<half*>(own(T * H * 2, "projection output"));
  act_ = static_cast<half*>(own(T * static_cast<size_t>(s.intermediate) * 2, "MLP activations"));
  kvBlocksPerSeq_ = (seqlen + awqk::kKvBlockSize - 1) / awqk::kKvBlockSize;
  const size_t kvBytes = static_cast<size_t>(chunkBlocks) * kvBlocksPerSeq_ * awqk::kKvBlockSize * s.numKvHeads *
                         s.headDim * 2;
  kCache_ = static_cast<half*>(own(kvBytes, "K cache"));
  vCache_ = static_cast<half*>(own(kvBytes, "V cache"));

  // The attention metadata of a full chunk; a shorter last chunk uses the prefix (blocks are uniform).
  const size_t metaWords = 3 * T + (chunkBlocks + 1) + chunkBlocks + static_cast<size_t>(chunkBlocks) * kvBlocksPerSeq_;
  std::vector<int32_t> meta(metaWords);
  int32_t* hp = meta.data();
  int32_t* hs = hp + T;
  int32_t* hl = hs + T;
  int32_t* hq = hl + T;
  int32_t* hc = hq + chunkBlocks + 1;
  int32_t* hb = hc + chunkBlocks;
  for (int b = 0; b < chunkBlocks; b++) {
    for (int p = 0; p < seqlen; p++) {
      const size_t t = static_cast<size_t>(b) * seqlen + p;
      hp[t] = p;
      hs[t] = (b * kvBlocksPerSeq_ + p / awqk::kKvBlockSize) * awqk::kKvBlockSize + p % awqk::kKvBlockSize;
      hl[t] = seqlen;
    }
    hq[b] = b * seqlen;
    hc[b] = seqlen;
    for (int j = 0; j < kvBlocksPerSeq_; j++) hb[static_cast<size_t>(b) * kvBlocksPerSeq_ + j] = b * kvBlocksPerSeq_ + j;
  }
  hq[chunkBlocks] = chunkBlocks * seqlen;
  meta_ = static_cast<int32_t*>(own(metaWords * 4, "attention metadata"));
  check(cudaMemcpy(meta_, meta.data(), metaWords * 4, cudaMemcpyHostToDevice), "upload of attention metadata");
  positions_ = meta_;
  slots_ = positions_ + T;
  seqLens_ = slots_ + T;
  queryStarts_ = seqLens_ + T;
  contextLens_ = queryStarts_ + chunkBlocks + 1;
  blockTables_ = contextLens_ + chunkBlocks;

  std::vector<float> inv(s.headDim / 2);
  awq::computeInvFreq(s.headDim, s.rope.theta, inv.data());
  invFreq_ = static_cast<float*>(own(inv.size() * 4, "RoPE inverse frequencies"));
  check(cudaMemcpy(invFreq_, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice), "upload of RoPE frequencies");
  ropeTable_ = static_cast<float2*>(own(static_cast<size_t>(seqlen) * (s.headDim / 2) * sizeof(float2), "RoPE table"));
  awq::launchRopeTable(invFreq_, ropeTable_, seqlen, s.headDim, s.rope, stream_);
  checkLaunch("launchRopeTable");
  check(cudaStreamSynchronize(stream_), "building the RoPE table");
}

QuantContext::~QuantContext() {
  try {
    shutdown();
  } catch (...) {
  }
}

void QuantContext::shutdown() {
  if (shutDown_) return;
  shutDown_ = true;
  bind();
  releaseAll();
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  if (upload_ != nullptr) cudaStreamSynchronize(upload_);
  for (void* p : owned_) cudaFree(p);
  owned_.clear();
  if (pool_ != nullptr) cudaMemPoolDestroy(pool_);
  pool_ = nullptr;
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  if (upload_ != nullptr) cudaStreamDestroy(upload_);
  stream_ = upload_ = nullptr;
}

int QuantContext::inFeatures(Linear which) const {
  switch (which) {
    case Linear::Qkv: return shape_.hidden;
    case Linear::O: return shape_.numHeads * shape_.headDim;
    case Linear::GateUp: return shape_.hidden;
    case Linear::Down: return shape_.intermediate;
  }
  return 0;
}

int QuantContext::outFeatures(Linear which) const {
  switch (which) {
    case Linear::Qkv: return (shape_.numHeads + 2 * shape_.numKvHeads) * shape_.headDim;
    case Linear::O: return shape_.hidden;
    case Linear::GateUp: return 2 * shape_.intermediate;
    case Linear::Down: return shape_.hidden;
  }
  return 0;
}

void QuantContext::bind() const { cudaSetDevice(device_); }

void QuantContext::check(cudaError_t status, const std::string& what) const { awq::cudaCheck(status, what); }

void QuantContext::checkLaunch(const std::string& what) const {
  check(cudaGetLastError(), what);
  if (awq::syncAfterLaunch()) check(cudaStreamSynchronize(stream_), what);
}

// --- memory and registry ------------------------------------------------------------------------------------

void* QuantContext::alloc(size_t bytes, cudaStream_t stream, const std::string& what) {
  if (shutDown_) throw std::logic_error("the quantizer context was disposed");
  void* p = nullptr;
  const cudaError_t status = cudaMallocFromPoolAsync(&p, std::max<size_t>(bytes, kAlign), pool_, stream);
  if (status != cudaSuccess) {
    check(status, "GPU allocation of " + std::to_string(bytes) + " bytes for " + what);
  }
  return p;
}

void QuantContext::freeAsync(void* ptr) {
  if (ptr != nullptr && stream_ != nullptr) cudaFreeAsync(ptr, stream_);
}

const Tensor& QuantContext::get(int id, const char* what) const {
  auto it = tensors_.find(id);
  if (it == tensors_.end()) {
    throw std::invalid_argument(std::string(what) + ": tensor " + std::to_string(id) +
                                " does not exist (released, or from another context)");
  }
  return it->second;
}

const Tensor& QuantContext::getF32(int id, const char* what, int rows, int cols) const {
  const Tensor& t = get(id, what);
  if (t.kind != Tensor::Kind::F32) throw std::invalid_argument(std::string(what) + ": expected an f32 tensor, got a quantized one");
  if ((rows >= 0 && t.rows != rows) || (cols >= 0 && t.cols != cols)) {
    throw std::invalid_argument(std::string(what) + ": expected shape (" + (rows >= 0 ? std::to_string(rows) : "*") +
                                ", " + (cols >= 0 ? std::to_string(cols) : "*") + "), got (" + std::to_string(t.rows) +
                                ", " + std::to_string(t.cols) + ")");
  }
  return t;
}

const Tensor& QuantContext::getQuant(int id, const char* what) const {
  const Tensor& t = get(id, what);
  if (t.kind != Tensor::Kind::Quant) throw std::invalid_argument(std::string(what) + ": expected a quantized tensor");
  return t;
}

int QuantContext::registerTensor(const Tensor& t) {
  const int id = nextId_++;
  tensors_.emplace(id, t);
  return id;
}

int QuantContext::newF32(int rows, int cols, const char* what) {
  Tensor t;
  t.kind = Tensor::Kind::F32;
  t.rows = rows;
  t.cols = cols;
  t.bytes = static_cast<size_t>(rows) * cols * sizeof(float);
  t.ptr = alloc(t.bytes, stream_, what);
  return registerTensor(t);
}

int QuantContext::newQuant(int in, int out, int g, const char* what) {
  Tensor t;
  t.kind = Tensor::Kind::Quant;
  t.rows = in;
  t.cols = out;
  t.group = g;
  t.bytes = Tensor::quantBytes(in, out, g);
  t.ptr = alloc(t.bytes, stream_, what);
  check(cudaMemsetAsync(t.status(), 0, sizeof(int), stream_), "clearing a quantized tensor's status");
  return registerTensor(t);
}

void QuantContext::release(int id) {
  auto it = tensors_.find(id);
  if (it == tensors_.end()) return;  // released twice: harmless
  freeAsync(it->second.ptr);
  tensors_.erase(it);
}

void QuantContext::releaseAll() {
  for (auto& [id, t] : tensors_) freeAsync(t.ptr);
  tensors_.clear();
}

size_t QuantContext::liveBytes() const {
  size_t sum = 0;
  for (const auto& [id, t] : tensors_) sum += t.bytes;
  return sum;
}

void QuantContext::poolStats(uint64_t* reserved, uint64_t* used) const {
  *reserved = *used = 0;
  if (pool_ == nullptr) return;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, reserved);
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, used);
}

void QuantContext::deviceMemInfo(size_t* freeBytes, size_t* totalBytes) const {
  *freeBytes = *totalBytes = 0;
  bind();
  check(cudaMemGetInfo(freeBytes, totalBytes), "cudaMemGetInfo");
}

void QuantContext::poolPeaks(uint64_t* reservedHigh, uint64_t* usedHigh) const {
  *reservedHigh = *usedHigh = 0;
  if (pool_ == nullptr) return;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, reservedHigh);
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, usedHigh);
}

// --- uploads and readbacks ----------------------------------------------------------------------------------

void* QuantContext::uploadNow(const void* host, size_t bytes, const char* what) {
  bind();
  void* p = alloc(bytes, upload_, what);
  check(cudaMemcpyAsync(p, host, bytes, cudaMemcpyHostToDevice, upload_), std::string("upload of ") + what);
  // Waits for this copy only (the upload stream carries nothing else), never for queued compute; afterwards the
  // host memory may change and the buffer is complete for any stream.
  check(cudaStreamSynchronize(upload_), std::string("upload of ") + what);
  return p;
}

void* QuantContext::uploadVector(const float* host, int n, const char* what) {
  if (host == nullptr) return nullptr;
  return uploadNow(host, static_cast<size_t>(n) * sizeof(float), what);
}

Tensor QuantContext::uploadF32Blocking(const float* host, int rows, int cols) {
  bind();
  Tensor t;
  t.kind = Tensor::Kind::F32;
  t.rows = rows;
  t.cols = cols;
  t.bytes = static_cast<size_t>(rows) * cols * sizeof(float);
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate (upload)");
  try {
    t.ptr = alloc(t.bytes, s, "uploaded activations");
    check(cudaMemcpyAsync(t.ptr, host, t.bytes, cudaMemcpyHostToDevice, s), "upload of activations");
    check(cudaStreamSynchronize(s), "upload of activations");
  } catch (...) {
    if (t.ptr != nullptr) cudaFreeAsync(t.ptr, s);
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
    throw;
  }
  cudaStreamDestroy(s);
  return t;
}

void* QuantContext::stageCopy(const void* src, size_t bytes, const char* what) {
  void* p = alloc(bytes, stream_, what);
  check(cudaMemcpyAsync(p, src, bytes, cudaMemcpyDeviceToDevice, stream_), std::string("staging copy of ") + what);
  return p;
}

void QuantContext::enqueueDownloadF32(int id, Readback& rb, float* hostOut) {
  const Tensor& t = getF32(id, "download");
  rb.add(stageCopy(t.ptr, t.bytes, "a download"), t.bytes, hostOut);
}

// --- activations --------------------------------------------------------------------------------------------

int QuantContext::cloneRows(int src, const std::vector<int>& blocks) {
  const Tensor s = getF32(src, "cloneActivations", -1, shape_.hidden);
  const int numBlocks = s.rows / seqlen_;
  const size_t span = static_cast<size_t>(seqlen_) * shape_.hidden * sizeof(float);
  if (blocks.empty()) {
    const int id = newF32(s.rows, s.cols, "cloned activations");
    check(cudaMemcpyAsync(get(id, "clone").ptr, s.ptr, s.bytes, cudaMemcpyDeviceToDevice, stream_), "clone of activations");
    return id;
  }
  for (size_t i = 0; i < blocks.size(); i++) {
    if (blocks[i] < 0 || blocks[i] >= numBlocks) {
      throw std::invalid_argument("cloneActivations: blocks[" + std::to_string(i) + "] = " + std::to_string(blocks[i]) +
                                  " is outside 0.." + std::to_string(numBlocks - 1));
    }
  }
  const int id = newF32(static_cast<int>(blocks.size()) * seqlen_, s.cols, "cloned activations");
  char* dst = static_cast<char*>(get(id, "clone").ptr);
  for (size_t i = 0; i < blocks.size(); i++) {
    check(cudaMemcpyAsync(dst + i * span, static_cast<const char*>(s.ptr) + blocks[i] * span, span,
                          cudaMemcpyDeviceToDevice, stream_),
          "clone of activation blocks");
  }
  return id;
}

void QuantContext::copy(int dst, int src) {
  const Tensor& s = getF32(src, "copyActivations src");
  const Tensor& d = getF32(dst, "copyActivations dst", s.rows, s.cols);
  if (d.ptr == s.ptr) return;
  check(cudaMemcpyAsync(d.ptr, s.ptr, s.bytes, cudaMemcpyDeviceToDevice, stream_), "copyActivations");
}

void QuantContext::enqueueSquaredError(int a, int b, Readback& rb, double* hostOut) {
  const Tensor& ta = getF32(a, "meanSquaredError a");
  const Tensor& tb = getF32(b, "meanSquaredError b", ta.rows, ta.cols);
  double* sum = static_cast<double*>(alloc(sizeof(double), stream_, "squared error sum"));
  rb.add(sum, sizeof(double), hostOut);  // owned by the readback from here on
  check(awqk::squared_error_sum(ta.f32(), tb.f32(), static_cast<size_t>(ta.rows) * ta.cols, sum, stream_),
        "squared_error_sum");
}

}  // namespace awqq
