// QuantContext (JS) wraps awqq::QuantContext (native/quant/): tensors are integer ids. Methods that only enqueue
// GPU work return at once; those that hand a value back (downloads, sums, counts, captured statistics) enqueue
// their work and device copies on the JS thread (keeping the stream in call order) and wait for them on the
// libuv thread pool (AsyncTask), so the event loop never blocks on the GPU.
#include "addon/quant_wrap.h"

#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/async_task.h"
#include "quant/quant_context.h"

namespace awq_addon {
namespace {

using awqq::QuantContext;
using awqq::Readback;

// --- argument parsing (Napi::TypeError naming the argument) ----------------------------------------------------

/** The optional AWQ row scale of weight `w` (argument i): a Float32Array of w's rows, or null. */
const float* rowScaleArg(const Napi::CallbackInfo& info, size_t i, const QuantContext& c, int w, const char* what) {
  return f32Arg(info, i, "rowScale", c.getF32(w, what).rows, true);
}

int linearArg(const Napi::CallbackInfo& info, size_t i, const char* name, bool allowNone) {
  const int v = intArg(info, i, name);
  if (v < (allowNone ? -1 : 0) || v > 3) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be 0 (qkv), 1 (o), 2 (gateUp) or 3 (down)" +
                                               (allowNone ? " or -1 (none)" : "") + ", got " + std::to_string(v));
  }
  return v;
}

/** Runs `body`, turning C++ exceptions into JS errors prefixed by the method name. */
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* method, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(info.Env(), std::string("QuantContext.") + method + ": " + e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("QuantContext.") + method + ": " + e.what());
  }
}

/**
 * Settles a method whose device results come back through `rb`: records it (the method has enqueued its copies),
 * waits for it on the thread pool and runs `afterWait` there (status checks), then resolves with done(env).
 */
Napi::Value settleAfterReadback(Napi::Env env, const char* name, const std::shared_ptr<Readback>& rb,
                                AsyncTask::Done done, std::function<void()> afterWait = nullptr) {
  rb->record();
  return AsyncTask::Run(
      env, name,
      [rb, afterWait] {
        rb->wait();
        if (afterWait) afterWait();
      },
      std::move(done));
}

/** A Done that resolves with `result`, an object of typed arrays a readback fills (kept alive until then). */
AsyncTask::Done resolveWith(const Napi::Object& result) {
  auto ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(result));
  return [ref](Napi::Env) -> Napi::Value { return ref->Value(); };
}

void throwOnGptqStatus(int status, const char* what) {
  if (status != 0) {
    throw std::runtime_error(std::string(what) +
                             ": GPTQ rounding failed: the damped Gram matrix is not positive definite at input "
                             "channel " +
                             std::to_string(status - 1) +
                             " (calibration inputs degenerate for this linear; try more calibration data)");
  }
}

class QuantContextWrap : public Napi::ObjectWrap<QuantContextWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "QuantContext",
        {InstanceMethod("init", &QuantContextWrap::Init), InstanceMethod("uploadF32", &QuantContextWrap::UploadF32),
         InstanceMethod("uploadF32Async", &QuantContextWrap::UploadF32Async),
         InstanceMethod("download", &QuantContextWrap::Download),
         InstanceMethod("cloneRows", &QuantContextWrap::CloneRows), InstanceMethod("copy", &QuantContextWrap::Copy),
         InstanceMethod("meanSquaredError", &QuantContextWrap::MeanSquaredError),
         InstanceMethod("setLinear", &QuantContextWrap::SetLinear),
         InstanceMethod("forward", &QuantContextWrap::Forward),
         InstanceMethod("weightSalience", &QuantContextWrap::WeightSalience),
         InstanceMethod("scaleRows", &QuantContextWrap::ScaleRows),
         InstanceMethod("groupQuantize", &QuantContextWrap::GroupQuantize),
         InstanceMethod("dequantize", &QuantContextWrap::Dequantize),
         InstanceMethod("pseudoQuantizeScaled", &QuantContextWrap::PseudoQuantizeScaled),
         InstanceMethod("searchClip", &QuantContextWrap::SearchClip),
         InstanceMethod("divideQuantizedColumns", &QuantContextWrap::DivideQuantizedColumns),
         InstanceMethod("downloadQuantized", &QuantContextWrap::DownloadQuantized),
         InstanceMethod("gptqQuantize", &QuantContextWrap::GptqQuantize),
         InstanceMethod("clipRatios", &QuantContextWrap::ClipRatios),
         InstanceMethod("chooseColumns", &QuantContextWrap::ChooseColumns),
         InstanceMethod("release", &QuantContextWrap::Release),
         InstanceMethod("memoryStats", &QuantContextWrap::MemoryStats),
         InstanceMethod("dispose", &QuantContextWrap::Dispose)});
  }
  explicit QuantContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QuantContextWrap>(info) {}

 private:
  std::shared_ptr<QuantContext> ctx_;

  QuantContext& ctx(Napi::Env env) {
    if (!ctx_) throw Napi::Error::New(env, "the quantizer's CUDA context is not initialized (or was disposed)");
    return *ctx_;
  }

  // init(dims, seqlen, chunkBlocks, device): dims = {hiddenSize, numHeads, numKvHeads, headDim, intermediateSize,
  // rmsNormEps, ropeTheta, ropeScalingType, ropeFactor, ropeOriginalMaxPositions}.
  Napi::Value Init(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ctx_) throw Napi::Error::New(env, "QuantContext.init() called twice");
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "dims must be an object, got " + describeValue(info[0]));
    const Napi::Object d = info[0].As<Napi::Object>();
    const awqq::LayerShape shape = layerDimsFields(d);
    const int seqlen = intArg(info, 1, "seqlen");
    const int chunkBlocks = intArg(info, 2, "chunkBlocks");
    const int device = info[3].IsNumber() ? intArg(info, 3, "device") : 0;
    return CreateOffThread<QuantContext>(
        env, "cuda quantizer init", Value(),
        [shape, seqlen, chunkBlocks, device] {
          return std::make_shared<QuantContext>(shape, seqlen, chunkBlocks, device);
        },
        [this](std::shared_ptr<QuantContext> ctx) { ctx_ = std::move(ctx); });
  }

  // uploadF32(data, rows, cols) -> id. Waits for this copy only (never for queued GPU work).
  Napi::Value UploadF32(const Napi::CallbackInfo& info) {
    return guarded(info, "uploadF32", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int rows = intArg(info, 1, "rows");
      const int cols = intArg(info, 2, "cols");
      if (rows <= 0 || cols <= 0) throw Napi::TypeError::New(info.Env(), "rows and cols must be positive");
      const float* data = f32Arg(info, 0, "data", static_cast<long long>(rows) * cols, false);
      awqq::Tensor t;
      t.rows = rows;
      t.cols = cols;
      t.bytes = static_cast<size_t>(rows) * cols * sizeof(float);
      t.ptr = c.uploadNow(data, t.bytes, "an f32 tensor");
      return Napi::Number::New(info.Env(), c.registerTensor(t));
    });
  }

  // uploadF32Async(data, rows, cols) -> Promise<id>; data must stay untouched until it settles.
  Napi::Value UploadF32Async(const Napi::CallbackInfo& info) {
    return guarded(info, "uploadF32Async", [&]() -> Napi::Value {
      ctx(info.Env());
      const int rows = intArg(info, 1, "rows");
      const int cols = intArg(info, 2, "cols");
      if (rows <= 0 || cols <= 0) throw Napi::TypeError::New(info.Env(), "rows and cols must be positive");
      const float* data = f32Arg(info, 0, "data", static_cast<long long>(rows) * cols, false);
      auto c = ctx_;
      auto tensor = std::make_shared<awqq::Tensor>();
      return AsyncTask::Run(
          info.Env(), "QuantContext.uploadF32Async",
          [c, tensor, data, rows, cols] { *tensor = c->uploadF32Blocking(data, rows, cols); },
          [this, c, tensor](Napi::Env e) -> Napi::Value {
            if (ctx_ != c) {  // disposed meanwhile
              c->freeAsync(tensor->ptr);
              throw Napi::Error::New(e, "QuantContext.uploadF32Async: the context was disposed");
            }
            return Napi::Number::New(e, c->registerTensor(*tensor));
          },
          {info[0], Value()});
    });
  }

  // download(id) -> Promise<Float32Array>
  Napi::Value Download(const Napi::CallbackInfo& info) {
    return guarded(info, "download", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int id = intArg(info, 0, "id");
      const awqq::Tensor& t = c.getF32(id, "download");
      auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t.rows) * t.cols);
      auto rb = std::make_shared<Readback>(ctx_);
      c.enqueueDownloadF32(id, *rb, out.Data());
      return settleAfterReadback(info.Env(), "QuantContext.download", rb, resolveWith(out));
    });
  }

  // cloneRows(id, blocks: Int32Array | null) -> id
  Napi::Value CloneRows(const Napi::CallbackInfo& info) {
    return guarded(info, "cloneRows", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int id = intArg(info, 0, "id");
      std::vector<int> blocks;
      if (!info[1].IsNull() && !info[1].IsUndefined()) {
        if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
          throw Napi::TypeError::New(info.Env(), "blocks must be an Int32Array or null");
        }
        auto a = info[1].As<Napi::Int32Array>();
        if (a.ElementLength() == 0) throw Napi::TypeError::New(info.Env(), "blocks must not be empty");
        blocks.assign(a.Data(), a.Data() + a.ElementLength());
      }
      return Napi::Number::New(info.Env(), c.cloneRows(id, blocks));
    });
  }

  Napi::Value Copy(const Napi::CallbackInfo& info) {
    return guarded(info, "copy", [&]() -> Napi::Value {
      ctx(info.Env()).copy(intArg(info, 0, "dst"), intArg(info, 1, "src"));
      return info.Env().Undefined();
    });
  }

  // meanSquaredError(a, b) -> Promise<number>
  Napi::Value MeanSquaredError(const Napi::CallbackInfo& info) {
    return guarded(info, "meanSquaredError", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int a = intArg(info, 0, "a");
      const awqq::Tensor& t = c.getF32(a, "meanSquaredError a");
      const double count = static_cast<double>(t.rows) * t.cols;
      auto sum = std::make_shared<double>(0.0);
      auto rb = std::make_shared<Readback>(ctx_);
      c.enqueueSquaredError(a, intArg(info, 1, "b"), *rb, sum.get());
      return settleAfterReadback(info.Env(), "QuantContext.meanSquaredError", rb,
                                 [sum, count](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *sum / count); });
    });
  }

  Napi::Value SetLinear(const Napi::CallbackInfo& info) {
    return guarded(info, "setLinear", [&]() -> Napi::Value {
      ctx(info.Env()).setLinear(static_cast<awqq::Linear>(linearArg(info, 0, "which", false)), intArg(info, 1, "id"));
      return info.Env().Undefined();
    });
  }

  // forward(h, inputNorm, postNorm, part, capture): undefined, or with capture >= 0
  // Promise<{absMean: Float64Array, gram: id, tokens, inFeatures}>.
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    return guarded(info, "forward", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int h = intArg(info, 0, "h");
      const int hidden = c.shape().hidden;
      const int part = intArg(info, 3, "part");
      if (part < 0 || part > 2) {
        throw Napi::TypeError::New(info.Env(), "part must be 0 (layer), 1 (attention) or 2 (mlp)");
      }
      const float* inputNorm = f32Arg(info, 1, "inputNorm", hidden, part == 2);
      const float* postNorm = f32Arg(info, 2, "postNorm", hidden, part == 1);
      const int capture = linearArg(info, 4, "capture", true);
      if (capture < 0) {
        c.forward(h, inputNorm, postNorm, static_cast<awqq::Part>(part), -1, nullptr, nullptr);
        return info.Env().Undefined();
      }
      const int n = c.inFeatures(static_cast<awqq::Linear>(capture));
      auto absMean = Napi::Float64Array::New(info.Env(), n);
      auto rb = std::make_shared<Readback>(ctx_);
      const awqq::CaptureResult r =
          c.forward(h, inputNorm, postNorm, static_cast<awqq::Part>(part), capture, rb.get(), absMean.Data());
      auto ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(absMean.As<Napi::Object>()));
      return settleAfterReadback(
          info.Env(), "QuantContext.forward", rb, [ref, r](Napi::Env e) -> Napi::Value {
            Napi::Float64Array a = ref->Value().As<Napi::Float64Array>();
            double* p = a.Data();
            for (size_t i = 0; i < a.ElementLength(); i++) p[i] /= static_cast<double>(r.tokens);
            Napi::Object o = Napi::Object::New(e);
            o.Set("absMean", a);
            o.Set("gram", Napi::Number::New(e, r.gramId));
            o.Set("tokens", Napi::Number::New(e, static_cast<double>(r.tokens)));
            o.Set("inFeatures", Napi::Number::New(e, r.inFeatures));
            return o;
          });
    });
  }

  // weightSalience(w, groupSize) -> Promise<Float64Array>
  Napi::Value WeightSalience(const Napi::CallbackInfo& info) {
    return guarded(info, "weightSalience", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int w = intArg(info, 0, "w");
      const awqq::Tensor& t = c.getF32(w, "weightSalience w");
      auto out = Napi::Float64Array::New(info.Env(), t.rows);
      auto rb = std::make_shared<Readback>(ctx_);
      c.enqueueSalience(w, intArg(info, 1, "groupSize"), *rb, out.Data());
      return settleAfterReadback(info.Env(), "QuantContext.weightSalience", rb, resolveWith(out));
    });
  }

  Napi::Value ScaleRows(const Napi::CallbackInfo& info) {
    return guarded(info, "scaleRows", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int w = intArg(info, 0, "w");
      const float* s = f32Arg(info, 1, "s", c.getF32(w, "scaleRows w").rows, false);
      const bool divide = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
      return Napi::Number::New(info.Env(), c.scaleRows(w, s, divide));
    });
  }

  // groupQuantize(w, groupSize, clip id or -1) -> id
  Napi::Value GroupQuantize(const Napi::CallbackInfo& info) {
    return guarded(info, "groupQuantize", [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), ctx(info.Env()).groupQuantize(intArg(info, 0, "w"),
                                                                          intArg(info, 1, "groupSize"),
                                                                          intArg(info, 2, "clip")));
    });
  }

  Napi::Value Dequantize(const Napi::CallbackInfo& info) {
    return guarded(info, "dequantize", [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), ctx(info.Env()).dequantize(intArg(info, 0, "q")));
    });
  }

  // pseudoQuantizeScaled(w, s | null, groupSize) -> id
  Napi::Value PseudoQuantizeScaled(const Napi::CallbackInfo& info) {
    return guarded(info, "pseudoQuantizeScaled", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int w = intArg(info, 0, "w");
      const float* s = f32Arg(info, 1, "s", c.getF32(w, "pseudoQuantizeScaled w").rows, true);
      return Napi::Number::New(info.Env(), c.pseudoQuantizeScaled(w, s, intArg(info, 2, "groupSize")));
    });
  }

  // searchClip(w, groupSize, gram, rowScale | null, noClipStart, noClipEnd) -> id
  Napi::Value SearchClip(const Napi::CallbackInfo& info) {
    return guarded(info, "searchClip", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int w = intArg(info, 0, "w");
      const float* rowScale = rowScaleArg(info, 3, c, w, "searchClip w");
      return Napi::Number::New(info.Env(), c.searchClip(w, intArg(info, 1, "groupSize"), intArg(info, 2, "gram"),
                                                        rowScale, intArg(info, 4, "noClipStart"),
                                                        intArg(info, 5, "noClipEnd")));
    });
  }

  // divideQuantizedColumns(q, s, start)
  Napi::Value DivideQuantizedColumns(const Napi::CallbackInfo& info) {
    return guarded(info, "divideQuantizedColumns", [&]() -> Napi::Value {
      const float* s = f32Arg(info, 1, "s", -1, false);
      const size_t width = info[1].As<Napi::Float32Array>().ElementLength();
      ctx(info.Env()).divideQuantizedColumns(intArg(info, 0, "q"), s, static_cast<int>(width), intArg(info, 2, "start"));
      return info.Env().Undefined();
    });
  }

  // downloadQuantized(q) -> Promise<{q: Uint8Array, scales: Float32Array, zeros: Uint8Array}>
  Napi::Value DownloadQuantized(const Napi::CallbackInfo& info) {
    return guarded(info, "downloadQuantized", [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      QuantContext& c = ctx(env);
      const int id = intArg(info, 0, "q");
      const awqq::Tensor& t = c.getQuant(id, "downloadQuantized q");
      const size_t groupVals = static_cast<size_t>(t.rows / t.group) * t.cols;
      auto q = Napi::Uint8Array::New(env, static_cast<size_t>(t.rows) * t.cols);
      auto scales = Napi::Float32Array::New(env, groupVals);
      auto zeros = Napi::Uint8Array::New(env, groupVals);
      auto status = std::make_shared<int>(0);
      auto rb = std::make_shared<Readback>(ctx_);
      c.enqueueDownloadQuant(id, *rb, q.Data(), scales.Data(), zeros.Data(), status.get());
      Napi::Object result = Napi::Object::New(env);
      result.Set("q", q);
      result.Set("scales", scales);
      result.Set("zeros", zeros);
      return settleAfterReadback(env, "QuantContext.downloadQuantized", rb, resolveWith(result),
                                 [status] { throwOnGptqStatus(*status, "downloadQuantized"); });
    });
  }

  // gptqQuantize(w, groupSize, gram, rowScale | null, clipRatio id or -1) -> id (a failure surfaces when the
  // result is next read back: chooseColumns or downloadQuantized)
  Napi::Value GptqQuantize(const Napi::CallbackInfo& info) {
    return guarded(info, "gptqQuantize", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int w = intArg(info, 0, "w");
      const float* rowScale = rowScaleArg(info, 3, c, w, "gptqQuantize w");
      return Napi::Number::New(info.Env(), c.gptqQuantize(w, intArg(info, 1, "groupSize"), intArg(info, 2, "gram"),
                                                          rowScale, intArg(info, 4, "clipRatio")));
    });
  }

  // clipRatios(w, clip, groupSize) -> id
  Napi::Value ClipRatios(const Napi::CallbackInfo& info) {
    return guarded(info, "clipRatios", [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(), ctx(info.Env()).clipRatios(intArg(info, 0, "w"), intArg(info, 1, "clip"),
                                                                       intArg(info, 2, "groupSize")));
    });
  }

  // chooseColumns(w, groupSize, gram, rowScale | null, base, candidate, keepStart, keepEnd)
  //   -> Promise<{mixed: id, taken: number}>
  Napi::Value ChooseColumns(const Napi::CallbackInfo& info) {
    return guarded(info, "chooseColumns", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      const int w = intArg(info, 0, "w");
      const float* rowScale = rowScaleArg(info, 3, c, w, "chooseColumns w");
      struct Out {
        int taken = 0;
        int status[2] = {0, 0};
      };
      auto out = std::make_shared<Out>();
      auto rb = std::make_shared<Readback>(ctx_);
      const int mixed = c.chooseColumns(w, intArg(info, 1, "groupSize"), intArg(info, 2, "gram"), rowScale,
                                        intArg(info, 4, "base"), intArg(info, 5, "candidate"),
                                        intArg(info, 6, "keepStart"), intArg(info, 7, "keepEnd"), *rb, &out->taken,
                                        out->status);
      return settleAfterReadback(
          info.Env(), "QuantContext.chooseColumns", rb,
          [out, mixed](Napi::Env e) -> Napi::Value {
            Napi::Object o = Napi::Object::New(e);
            o.Set("mixed", Napi::Number::New(e, mixed));
            o.Set("taken", Napi::Number::New(e, out->taken));
            return o;
          },
          [out] {
            throwOnGptqStatus(out->status[0], "chooseColumns base");
            throwOnGptqStatus(out->status[1], "chooseColumns candidate");
          });
    });
  }

  // release(...ids): unknown ids are ignored (released twice).
  Napi::Value Release(const Napi::CallbackInfo& info) {
    return guarded(info, "release", [&]() -> Napi::Value {
      if (!ctx_) return info.Env().Undefined();  // after dispose everything is gone already
      for (size_t i = 0; i < info.Length(); i++) ctx_->release(intArg(info, i, "id"));
      return info.Env().Undefined();
    });
  }

  // memoryStats() -> {tensors, tensorBytes, poolReservedBytes, poolUsedBytes, poolReservedPeakBytes,
  //                  poolUsedPeakBytes, deviceUsedBytes, deviceTotalBytes}
  Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
    return guarded(info, "memoryStats", [&]() -> Napi::Value {
      QuantContext& c = ctx(info.Env());
      uint64_t reserved = 0, used = 0;
      c.poolStats(&reserved, &used);
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("tensors", Napi::Number::New(info.Env(), static_cast<double>(c.liveTensors())));
      o.Set("tensorBytes", Napi::Number::New(info.Env(), static_cast<double>(c.liveBytes())));
      o.Set("poolReservedBytes", Napi::Number::New(info.Env(), static_cast<double>(reserved)));
      o.Set("poolUsedBytes", Napi::Number::New(info.Env(), static_cast<double>(used)));
      uint64_t reservedHigh = 0, usedHigh = 0;
      c.poolPeaks(&reservedHigh, &usedHigh);
      o.Set("poolReservedPeakBytes", Napi::Number::New(info.Env(), static_cast<double>(reservedHigh)));
      o.Set("poolUsedPeakBytes", Napi::Number::New(info.Env(), static_cast<double>(usedHigh)));
      size_t freeBytes = 0, totalBytes = 0;
      c.deviceMemInfo(&freeBytes, &totalBytes);
      o.Set("deviceUsedBytes", Napi::Number::New(info.Env(), static_cast<double>(totalBytes - freeBytes)));
      o.Set("deviceTotalBytes", Napi::Number::New(info.Env(), static_cast<double>(totalBytes)));
      return o;
    });
  }

  // dispose() -> Promise<void>: waits for the GPU off the JS thread, then frees everything.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    auto c = std::move(ctx_);
    ctx_.reset();
    return AsyncTask::Run(info.Env(), "QuantContext.dispose", [c] {
      if (c) c->shutdown();
    }, nullptr);
  }
};

}  // namespace

Napi::Function DefineQuantContext(Napi::Env env) { return QuantContextWrap::Define(env); }

}  // namespace awq_addon
