// QuantContext's weight math: the ops of quant-math.ts on (in, out) f32 weights, group-quantized matrices,
// Gram matrices and clip bounds, each a few launches of kernels/quant_kernels.h on the compute stream.
#include <stdexcept>
#include <string>

#include "engine/cuda_check.h"
#include "kernels/quant_kernels.h"
#include "quant/quant_context.h"

namespace awqq {

namespace {

void checkColumnRange(int start, int end, int out, const char* what) {
  if (start < 0 || end < start || end > out) {
    throw std::invalid_argument(std::string(what) + ": column range [" + std::to_string(start) + ", " +
                                std::to_string(end) + ") is not within 0.." + std::to_string(out));
  }
}

// ratio[gi][n] = max > 0 ? f32(min(1, clip / max)) : 1 with max = max |w| over the group's rows (awq-search.ts
// clipRatios, the division in double as JS does). One thread per (group, column).
__global__ void clipRatiosKernel(const float* w, const float* clip, int in, int out, int g, float* ratio) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int gi = blockIdx.y;
  if (n >= out) return;
  float mx = 0.f;
  for (int k = gi * g; k < (gi + 1) * g; k++) mx = fmaxf(mx, fabsf(w[static_cast<size_t>(k) * out + n]));
  const size_t i = static_cast<size_t>(gi) * out + n;
  ratio[i] = mx > 0.f ? static_cast<float>(fmin(1.0, static_cast<double>(clip[i]) / static_cast<double>(mx))) : 1.f;
}

// mixed status = base's failure, else the candidate's (a mix of a failed GPTQ rounding is failed too).
__global__ void mergeStatusKernel(int* mixed, const int* base, const int* cand) {
  *mixed = *base != 0 ? *base : *cand;
}

// Scope guards for an op's temporaries: a stream-ordered buffer freed, or a registered tensor released, when the
// op returns (after everything it enqueued, so in stream order) or throws. keep() / handOver() give it away.
class ScopedBuffer {
 public:
  ScopedBuffer(QuantContext& ctx, void* ptr) : ctx_(ctx), ptr_(ptr) {}
  ~ScopedBuffer() { ctx_.freeAsync(ptr_); }
  ScopedBuffer(const ScopedBuffer&) = delete;
  ScopedBuffer& operator=(const ScopedBuffer&) = delete;
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  /** The buffer is someone else's to free now (a Readback's). */
  void* handOver() {
    void* ptr = ptr_;
    ptr_ = nullptr;
    return ptr;
  }

 private:
  QuantContext& ctx_;
  void* ptr_;
};

class ScopedTensor {
 public:
  ScopedTensor(QuantContext& ctx, int id) : ctx_(ctx), id_(id) {}
  ~ScopedTensor() {
    if (id_ >= 0) ctx_.release(id_);
  }
  ScopedTensor(const ScopedTensor&) = delete;
  ScopedTensor& operator=(const ScopedTensor&) = delete;
  int id() const { return id_; }
  /** The op's result: registered, the caller's to release. */
  int keep() {
    const int id = id_;
    id_ = -1;
    return id;
  }

 private:
  QuantContext& ctx_;
  int id_;
};

}  // namespace

void QuantContext::enqueueSalience(int w, int g, Readback& rb, double* hostOut) {
  const Tensor& t = getF32(w, "weightSalience w");
  if (g <= 0 || t.rows % g != 0) throw std::invalid_argument("weightSalience: groupSize must divide in");
  double* sal = static_cast<double*>(alloc(static_cast<size_t>(t.rows) * sizeof(double), stream_, "salience"));
  rb.add(sal, static_cast<size_t>(t.rows) * sizeof(double), hostOut);
  check(awqk::weight_salience(t.f32(), t.rows, t.cols, g, sal, stream_), "weight_salience");
}

int QuantContext::scaleRows(int w, const float* s, bool divide) {
  const Tensor t = getF32(w, "scaleRows w");
  ScopedBuffer scales(*this, uploadVector(s, t.rows, "row scales"));
  ScopedTensor out(*this, newF32(t.rows, t.cols, "scaled weights"));
  check(awqk::scale_rows(t.f32(), scales.as<float>(), t.rows, t.cols, divide, get(out.id(), "y").f32(), stream_),
        "scale_rows");
  return out.keep();
}

int QuantContext::groupQuantize(int w, int g, int clip) {
  const Tensor t = getF32(w, "groupQuantize w");
  if (g <= 0 || t.rows % g != 0) {
    throw std::invalid_argument("groupQuantize: groupSize " + std::to_string(g) + " must divide in = " +
                                std::to_string(t.rows));
  }
  const float* clipPtr = clip != -1 ? getF32(clip, "groupQuantize clip", t.rows / g, t.cols).f32() : nullptr;
  ScopedTensor out(*this, newQuant(t.rows, t.cols, g, "quantized weights"));
  const Tensor& q = get(out.id(), "q");
  check(awqk::group_quantize(t.f32(), t.rows, t.cols, g, clipPtr, q.q(), q.scales(), q.zeros(), stream_),
        "group_quantize");
  return out.keep();
}

int QuantContext::dequantize(int qId) {
  const Tensor q = getQuant(qId, "dequantize q");
  ScopedTensor out(*this, newF32(q.rows, q.cols, "dequantized weights"));
  check(awqk::dequantize_groups(q.q(), q.scales(), q.zeros(), q.rows, q.cols, q.group, get(out.id(), "w").f32(),
                                stream_),
        "dequantize_groups");
  return out.keep();
}

int QuantContext::pseudoQuantizeScaled(int w, const float* s, int g) {
  ScopedTensor scaled(*this, s != nullptr ? scaleRows(w, s, false) : -1);
  ScopedTensor q(*this, groupQuantize(s != nullptr ? scaled.id() : w, g, -1));
  ScopedTensor deq(*this, dequantize(q.id()));
  if (s != nullptr) {
    const Tensor d = get(deq.id(), "deq");
    ScopedBuffer scales(*this, uploadVector(s, d.rows, "row scales"));
    check(awqk::scale_rows(d.f32(), scales.as<float>(), d.rows, d.cols, true, d.f32(), stream_), "scale_rows (divide)");
  }
  return deq.keep();
}

int QuantContext::searchClip(int w, int g, int gram, const float* rowScale, int noClipStart, int noClipEnd) {
  const Tensor t = getF32(w, "searchClip w");
  if (g <= 0 || g > 128 || t.rows % g != 0) {
    throw std::invalid_argument("searchClip: groupSize " + std::to_string(g) + " must divide in and be <= 128");
  }
  const Tensor G = getF32(gram, "searchClip gram", t.rows, t.rows);
  checkColumnRange(noClipStart, noClipEnd, t.cols, "searchClip noClipColumns");
  ScopedBuffer scales(*this, uploadVector(rowScale, t.rows, "row scales"));
  ScopedTensor bounds(*this, newF32(t.rows / g, t.cols, "clip bounds"));
  check(awqk::clip_search(t.f32(), t.rows, t.cols, g, G.f32(), scales.as<float>(), noClipStart, noClipEnd,
                          get(bounds.id(), "b").f32(), stream_),
        "clip_search");
  return bounds.keep();
}

void QuantContext::divideQuantizedColumns(int qId, const float* s, int width, int start) {
  const Tensor& q = getQuant(qId, "divideQuantizedColumns q");
  if (start < 0 || width < 0 || start + width > q.cols) {
    throw std::invalid_argument("divideQuantizedColumns: columns [" + std::to_string(start) + ", " +
                                std::to_string(start + width) + ") are outside 0.." + std::to_string(q.cols));
  }
  if (width == 0) return;
  ScopedBuffer scales(*this, uploadVector(s, width, "column scales"));
  check(awqk::divide_quantized_columns(q.scales(), scales.as<float>(), q.rows / q.group, q.cols, start, width, stream_),
        "divide_quantized_columns");
}

void QuantContext::enqueueDownloadQuant(int qId, Readback& rb, uint8_t* qHost, float* scalesHost, uint8_t* zerosHost,
                                        int* statusHost) {
  const Tensor& q = getQuant(qId, "downloadQuantized q");
  const size_t qBytes = static_cast<size_t>(q.rows) * q.cols;
  const size_t groupVals = static_cast<size_t>(q.rows / q.group) * q.cols;
  rb.add(stageCopy(q.q(), qBytes, "q"), qBytes, qHost);
  rb.add(stageCopy(q.scales(), groupVals * sizeof(float), "scales"), groupVals * sizeof(float), scalesHost);
  rb.add(stageCopy(q.zeros(), groupVals, "zeros"), groupVals, zerosHost);
  rb.add(stageCopy(q.status(), sizeof(int), "status"), sizeof(int), statusHost);
}

int QuantContext::gptqQuantize(int w, int g, int gram, const float* rowScale, int clipRatio) {
  const Tensor t = getF32(w, "gptqQuantize w");
  if (g <= 0 || t.rows % g != 0) throw std::invalid_argument("gptqQuantize: groupSize must divide in");
  const Tensor G = getF32(gram, "gptqQuantize gram", t.rows, t.rows);
  const float* ratio = clipRatio != -1 ? getF32(clipRatio, "gptqQuantize clipRatio", t.rows / g, t.cols).f32() : nullptr;
  ScopedBuffer scales(*this, uploadVector(rowScale, t.rows, "row scales"));
  const size_t workBytes = awqk::gptq_workspace_bytes(t.rows, t.cols);
  ScopedBuffer work(*this, alloc(workBytes, stream_, "GPTQ workspace"));
  ScopedTensor out(*this, newQuant(t.rows, t.cols, g, "GPTQ-rounded weights"));
  const Tensor& q = get(out.id(), "q");
  check(awqk::gptq_quantize(t.f32(), t.rows, t.cols, g, G.f32(), scales.as<float>(), ratio, q.q(), q.scales(),
                            q.zeros(), q.status(), work.get(), workBytes, stream_),
        "gptq_quantize");
  return out.keep();
}

int QuantContext::clipRatios(int w, int clip, int g) {
  const Tensor t = getF32(w, "clipRatios w");
  if (g <= 0 || t.rows % g != 0) throw std::invalid_argument("clipRatios: groupSize must divide in");
  const Tensor c = getF32(clip, "clipRatios clip", t.rows / g, t.cols);
  ScopedTensor out(*this, newF32(t.rows / g, t.cols, "clip ratios"));
  const dim3 grid((t.cols + 127) / 128, t.rows / g);
  clipRatiosKernel<<<grid, 128, 0, stream_>>>(t.f32(), c.f32(), t.rows, t.cols, g, get(out.id(), "r").f32());
  check(cudaGetLastError(), "clipRatios kernel");
  return out.keep();
}

int QuantContext::chooseColumns(int w, int g, int gram, const float* rowScale, int base, int cand, int keepStart,
                                int keepEnd, Readback& rb, int* takenHost, int* statusHost) {
  const Tensor t = getF32(w, "chooseColumns w");
  const Tensor G = getF32(gram, "chooseColumns gram", t.rows, t.rows);
  const Tensor B = getQuant(base, "chooseColumns base");
  const Tensor C = getQuant(cand, "chooseColumns candidate");
  if (B.rows != t.rows || B.cols != t.cols || B.group != g || C.rows != t.rows || C.cols != t.cols || C.group != g) {
    throw std::invalid_argument("chooseColumns: base and candidate must be (" + std::to_string(t.rows) + ", " +
                                std::to_string(t.cols) + ") with groups of " + std::to_string(g));
  }
  checkColumnRange(keepStart, keepEnd, t.cols, "chooseColumns keepBase");
  ScopedBuffer scales(*this, uploadVector(rowScale, t.rows, "row scales"));
  const size_t errBytes = static_cast<size_t>(t.cols) * sizeof(double);
  ScopedBuffer errBase(*this, alloc(errBytes, stream_, "column errors"));
  ScopedBuffer errCand(*this, alloc(errBytes, stream_, "column errors"));
  const size_t workBytes = awqk::column_errors_workspace_bytes(t.rows, t.cols);
  ScopedBuffer work(*this, alloc(workBytes, stream_, "column errors workspace"));
  ScopedBuffer taken(*this, alloc(sizeof(int), stream_, "taken count"));
  ScopedTensor deqBase(*this, dequantize(base));
  ScopedTensor deqCand(*this, dequantize(cand));
  check(awqk::column_errors(t.f32(), get(deqBase.id(), "deq").f32(), t.rows, t.cols, G.f32(), scales.as<float>(),
                            errBase.as<double>(), work.get(), stream_),
        "column_errors (base)");
  check(awqk::column_errors(t.f32(), get(deqCand.id(), "deq").f32(), t.rows, t.cols, G.f32(), scales.as<float>(),
                            errCand.as<double>(), work.get(), stream_),
        "column_errors (candidate)");
  ScopedTensor mixed(*this, newQuant(t.rows, t.cols, g, "mixed rounding"));
  const Tensor& M = get(mixed.id(), "mixed");
  check(cudaMemcpyAsync(M.ptr, B.ptr, B.bytes, cudaMemcpyDeviceToDevice, stream_), "copy of the base rounding");
  check(awqk::mix_columns(M.q(), M.scales(), M.zeros(), C.q(), C.scales(), C.zeros(), errBase.as<double>(),
                          errCand.as<double>(), t.rows, t.cols, g, keepStart, keepEnd, taken.as<int>(), stream_),
        "mix_columns");
  mergeStatusKernel<<<1, 1, 0, stream_>>>(M.status(), B.status(), C.status());
  check(cudaGetLastError(), "status merge");
  rb.add(taken.handOver(), sizeof(int), takenHost);  // the readback frees it after the copy
  rb.add(stageCopy(B.status(), sizeof(int), "status"), sizeof(int), statusHost);
  rb.add(stageCopy(C.status(), sizeof(int), "status"), sizeof(int), statusHost + 1);
  return mixed.keep();
}

}  // namespace awqq
