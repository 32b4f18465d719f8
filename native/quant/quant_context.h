// The AWQ search's device side (awq quantize --backend cuda): one decoder layer's shape, its current fp16
// weights, a registry of device tensors addressed by integer ids, and every op of src/quant/quant-math.ts on
// them. Plain C++ (no N-API): native/addon/quant_wrap.cpp is the JS glue.
//
// Threading: every method that enqueues GPU work runs on ONE thread (the JS thread), so the stream order is
// the call order. Results the host needs come back through a Readback: enqueued (device copies into staging
// buffers + an event) by the JS thread, then waited for and copied to host memory by a worker thread.
// Allocations come from the context's own stream-ordered pool: cudaFreeAsync never blocks, and the pool does
// not let the upload stream wait on the compute stream (no internal dependencies).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/layer_runner.h"
#include "engine/ops.h"

namespace awqq {

/** hidden, numHeads, numKvHeads, headDim, intermediate, rmsEps, rope: the layer runner's own dims. */
using LayerShape = awq::DecoderLayerDims;

/** The layer's fused linears, as the engine's layer runner numbers them (0 qkv, 1 o, 2 gateUp, 3 down). */
using Linear = awq::LayerLinear;
enum class Part { Layer = 0, Attention = 1, Mlp = 2 };
const char* linearName(Linear which);

/** A registry entry: an f32 matrix (rows, cols) or a group-quantized matrix (in, out) with groups of g rows. */
struct Tensor {
  enum class Kind { F32, Quant } kind = Kind::F32;
  int rows = 0;  // F32: rows; Quant: in
  int cols = 0;  // F32: cols; Quant: out
  int group = 0;  // Quant only
  void* ptr = nullptr;  // one allocation; Quant: q | scales | zeros | status at the offsets below
  size_t bytes = 0;
  float* f32() const { return static_cast<float*>(ptr); }
  // Quant layout.
  size_t scalesOffset() const;
  size_t zerosOffset() const;
  size_t statusOffset() const;
  uint8_t* q() const { return static_cast<uint8_t*>(ptr); }
  float* scales() const { return reinterpret_cast<float*>(static_cast<char*>(ptr) + scalesOffset()); }
  uint8_t* zeros() const { return static_cast<uint8_t*>(ptr) + zerosOffset(); }
  /** 0 = fine; 1 + j = GPTQ found the damped Gram matrix not positive definite at input channel j. */
  int* status() const { return reinterpret_cast<int*>(static_cast<char*>(ptr) + statusOffset()); }
  static size_t quantBytes(int in, int out, int g);
};

class QuantContext;

/**
 * Device results on their way to the host: staging copies made in stream order, an event after them. wait()
 * (any thread) blocks until the event, copies each part into its host destination and frees the staging.
 */
class Readback {
 public:
  Readback(std::shared_ptr<QuantContext> ctx) : ctx_(std::move(ctx)) {}
  ~Readback();
  Readback(const Readback&) = delete;
  Readback& operator=(const Readback&) = delete;
  /** Staging (owned) of `bytes`, copied to `host` by wait(); host must stay valid until then. */
  void add(void* staging, size_t bytes, void* host) { parts_.push_back({staging, bytes, host}); }
  void record();  // JS thread, after the parts' copies were enqueued
  void wait();    // worker thread

 private:
  struct Part {
    void* staging;
    size_t bytes;
    void* host;
  };
  std::shared_ptr<QuantContext> ctx_;
  std::vector<Part> parts_;
  cudaEvent_t event_ = nullptr;
  bool freed_ = false;
  void freeStaging();
};

/** What a captured forward hands back: the gram tensor id and, after the readback, the per-channel |x| sums. */
struct CaptureResult {
  int gramId = -1;
  int inFeatures = 0;
  long long tokens = 0;
};

class QuantContext {
 public:
  /** chunkBlocks: calibration blocks per forward chunk (sizes the activation and KV buffers). */
  QuantContext(const LayerShape& shape, int seqlen, int chunkBlocks, int device);
  ~QuantContext();
  QuantContext(const QuantContext&) = delete;
  QuantContext& operator=(const QuantContext&) = delete;

  const LayerShape& shape() const { return shape_; }
  int seqlen() const { return seqlen_; }
  int chunkBlocks() const { return chunkBlocks_; }
  int device() const { return device_; }
  const std::string& deviceName() const { return deviceName_; }
  cudaStream_t stream() const { return stream_; }
  int inFeatures(Linear which) const;
  int outFeatures(Linear which) const;

  // --- memory (any thread may allocate on its own stream; the registry is JS-thread only) ---
  void* alloc(size_t bytes, cudaStream_t stream, const std::string& what);
  void freeAsync(void* ptr);  // ordered after everything enqueued so far on the compute stream
  const Tensor& get(int id, const char* what) const;
  const Tensor& getF32(int id, const char* what, int rows = -1, int cols = -1) const;
  const Tensor& getQuant(int id, const char* what) const;
  int registerTensor(const Tensor& t);
  int newF32(int rows, int cols, const char* what);
  int newQuant(int in, int out, int g, const char* what);
  void release(int id);
  void releaseAll();
  size_t liveTensors() const { return tensors_.size(); }
  size_t liveBytes() const;
  void poolStats(uint64_t* reserved, uint64_t* used) const;
  /** High-water marks of the pool since creation: bytes reserved from the device, bytes handed out. */
  void poolPeaks(uint64_t* reservedHigh, uint64_t* usedHigh) const;
  /** cudaMemGetInfo on this context's device (all allocations of the process and others on the card). */
  void deviceMemInfo(size_t* freeBytes, size_t* totalBytes) const;

  // --- uploads ---
  /** JS thread: copies host data into a fresh device buffer on the upload stream and waits for that copy only. */
  void* uploadNow(const void* host, size_t bytes, const char* what);
  /** Worker thread: an F32 tensor's buffer filled from host memory; register it on the JS thread afterwards. */
  Tensor uploadF32Blocking(const float* host, int rows, int cols);

  // --- activations ---
  int cloneRows(int src, const std::vector<int>& blocks);  // blocks empty = all
  void copy(int dst, int src);
  void enqueueSquaredError(int a, int b, Readback& rb, double* hostOut);
  void enqueueDownloadF32(int id, Readback& rb, float* hostOut);

  // --- the layer ---
  void setLinear(Linear which, int weightId);
  /** Enqueues `part` over every block of h; with capture, the gram tensor is registered and absSum queued. */
  CaptureResult forward(int hId, const float* inputNorm, const float* postNorm, Part part, int capture,
                        Readback* rb, double* absSumHost);

  // --- weight math ---
  void enqueueSalience(int w, int g, Readback& rb, double* hostOut);
  int scaleRows(int w, const float* s, bool divide);
  int groupQuantize(int w, int g, int clip);  // clip: a (in/g, out) bounds tensor id, or -1 for none
  int dequantize(int q);
  int pseudoQuantizeScaled(int w, const float* s, int g);
  int searchClip(int w, int g, int gram, const float* rowScale, int noClipStart, int noClipEnd);
  void divideQuantizedColumns(int q, const float* s, int width, int start);
  void enqueueDownloadQuant(int q, Readback& rb, uint8_t* qHost, float* scalesHost, uint8_t* zerosHost,
                            int* statusHost);
  /** clipRatio: a (in/g, out) tensor id or -1; a failure shows in the result's status (read back later). */
  int gptqQuantize(int w, int g, int gram, const float* rowScale, int clipRatio);
  int clipRatios(int w, int clip, int g);
  /** The mixed Q id (registered now); taken and the two input statuses come back through rb. */
  int chooseColumns(int w, int g, int gram, const float* rowScale, int base, int cand, int keepStart, int keepEnd,
                    Readback& rb, int* takenHost, int* statusHost /* (2) base, candidate */);

  /** Waits for all work and frees every tensor and buffer (the destructor does it too). */
  void shutdown();

 private:
  void setUp();  // streams, pool, layer and chunk buffers, attention metadata, RoPE table
  void check(cudaError_t status, const std::string& what) const;
  void checkLaunch(const std::string& what) const;
  void bind() const;
  void* stageCopy(const void* src, size_t bytes, const char* what);
  void* uploadVector(const float* host, int n, const char* what);  // nullptr when host == nullptr
  void forwardChunk(float* residual, int numBlocks, Part part, int capture, double* absSum, float* gram,
                    void* statsWork);
  void captureStats(const half* x, int rows, int n, double* absSum, float* gram, void* statsWork);
  void linear(Linear which, const half* x, int rows, half* y);

  LayerShape shape_;
  int seqlen_;
  int chunkBlocks_;
  int device_;
  std::string deviceName_;
  cudaStream_t stream_ = nullptr;  // compute, non-blocking
  cudaStream_t upload_ = nullptr;  // host -> device copies of the JS thread, non-blocking
  cudaMemPool_t pool_ = nullptr;
  bool shutDown_ = false;

  std::unordered_map<int, Tensor> tensors_;
  int nextId_ = 1;

  // Per-layer state (plain cudaMalloc'd, owned for the context's life).
  half* weights_[4] = {nullptr, nullptr, nullptr, nullptr};  // (out, in) fp16 each
  bool weightSet_[4] = {false, false, false, false};
  half* normIn_ = nullptr;    // (hidden)
  half* normPost_ = nullptr;  // (hidden)
  // Chunk buffers: T = chunkBlocks * seqlen tokens.
  half* normed_ = nullptr;  // (T, hidden)
  half* big_ = nullptr;     // (T, max(qkv width, 2 * intermediate))
  half* q_ = nullptr;       // (T, heads * headDim)
  half* attn_ = nullptr;    // (T, heads * headDim)
  half* delta_ = nullptr;   // (T, hidden)
  half* act_ = nullptr;     // (T, intermediate)
  half* kCache_ = nullptr;  // (chunkBlocks * kvBlocksPerSeq, 16, kvHeads, headDim)
  half* vCache_ = nullptr;
  int32_t* meta_ = nullptr;  // positions (T) | slots (T) | seqLens (T) | queryStarts (chunkBlocks + 1) |
                             // contextLens (chunkBlocks) | blockTables (chunkBlocks, kvBlocksPerSeq)
  int32_t *positions_ = nullptr, *slots_ = nullptr, *seqLens_ = nullptr, *queryStarts_ = nullptr,
          *contextLens_ = nullptr, *blockTables_ = nullptr;
  int kvBlocksPerSeq_ = 0;
  float* invFreq_ = nullptr;     // (headDim / 2)
  float2* ropeTable_ = nullptr;  // (seqlen, headDim / 2)
  std::vector<void*> owned_;     // the cudaMalloc'd buffers above
};

}  // namespace awqq
