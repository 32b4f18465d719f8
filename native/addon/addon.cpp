// The awq_native module: N-API glue only. `probe()` reports the driver and devices; `Engine` wraps
// awq::Engine, every slow method returning a Promise settled from the libuv thread pool (AsyncTask).
#include <cuda_runtime.h>
#include <napi.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/async_task.h"
#include "addon/convert.h"
#include "addon/quant_wrap.h"
#include "engine/engine.h"

namespace awq_addon {
namespace {

// A step whose call could not queue its worker: a launched step is waited for here (it is in flight and nothing else
// would finish it), an unlaunched one gives its ticket up so that later steps do not wait for it forever.
void releaseUnqueued(awq::Engine& eng, const awq::StepInput& input, awq::PendingStep& pending, bool launched) {
  try {
    if (launched) {
      eng.finishStep(input, pending);
    } else if (pending.ticket != awq::PendingStep::kNoTicket) {
      eng.abandonTicket(pending.ticket);
    }
  } catch (...) {
    // the caller rethrows the error that brought it here
  }
}

struct ProbeInfo {
  int driver = 0;
  int runtime = 0;
  int count = 0;
  std::string error;
  std::vector<cudaDeviceProp> devices;
};

// Driver/device query (it initializes the driver, which can take a while): resolved from a worker thread.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  auto probe = std::make_shared<ProbeInfo>();
  return AsyncTask::Run(
      info.Env(), "cuda probe",
      [probe] {
        cudaDriverGetVersion(&probe->driver);
        cudaRuntimeGetVersion(&probe->runtime);
        const cudaError_t status = cudaGetDeviceCount(&probe->count);
        if (status != cudaSuccess) {
          cudaGetLastError();
          probe->count = 0;
          probe->error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
          return;
        }
        for (int i = 0; i < probe->count; i++) {
          cudaDeviceProp prop{};
          if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) probe->devices.push_back(prop);
        }
      },
      [probe](Napi::Env env) -> Napi::Value {
        Napi::Object result = Napi::Object::New(env);
        result.Set("driverVersion", Napi::Number::New(env, probe->driver));
        result.Set("runtimeVersion", Napi::Number::New(env, probe->runtime));
        result.Set("deviceCount", Napi::Number::New(env, probe->count));
        if (!probe->error.empty()) result.Set("error", Napi::String::New(env, probe->error));
        Napi::Array devices = Napi::Array::New(env, probe->devices.size());
        for (size_t i = 0; i < probe->devices.size(); i++) {
          const cudaDeviceProp& prop = probe->devices[i];
          Napi::Object d = Napi::Object::New(env);
          d.Set("name", Napi::String::New(env, prop.name));
          d.Set("totalMemory", Napi::Number::New(env, static_cast<double>(prop.totalGlobalMem)));
          d.Set("major", Napi::Number::New(env, prop.major));
          d.Set("minor", Napi::Number::New(env, prop.minor));
          d.Set("multiProcessors", Napi::Number::New(env, prop.multiProcessorCount));
          devices.Set(static_cast<uint32_t>(i), d);
        }
        result.Set("devices", devices);
        return result;
      });
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("init", &EngineWrap::Init), InstanceMethod("uploadVector", &EngineWrap::UploadVector),
                        InstanceMethod("uploadLinear", &EngineWrap::UploadLinear),
                        InstanceMethod("initRandomWeights", &EngineWrap::InitRandomWeights),
                        InstanceMethod("finalize", &EngineWrap::Finalize), InstanceMethod("step", &EngineWrap::Step),
                        InstanceMethod("forward", &EngineWrap::Forward), InstanceMethod("sample", &EngineWrap::Sample),
                        InstanceMethod("dispose", &EngineWrap::Dispose),
                        InstanceMethod("setProfiling", &EngineWrap::SetProfiling),
                        InstanceMethod("takeProfile", &EngineWrap::TakeProfile)});
  }
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {}

 private:
  awq::Engine& engine(Napi::Env env) {
    if (!engine_) throw Napi::Error::New(env, "the CUDA engine is not initialized (or was disposed)");
    return *engine_;
  }

  // init(dims, device): creates the CUDA context and stream off the JS thread.
  Napi::Value Init(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (engine_) throw Napi::Error::New(env, "init() called twice");
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "init: dims must be an object, got " + describeValue(info[0]));
    const awq::ModelDims dims = toModelDims(info[0].As<Napi::Object>());
    const int device = info[1].IsUndefined() ? 0 : intArg(info, 1, "device");
    return CreateOffThread<awq::Engine>(
        env, "cuda init", Value(), [dims, device] { return std::make_shared<awq::Engine>(dims, device); },
        [this](std::shared_ptr<awq::Engine> engine) { engine_ = std::move(engine); });
  }

  // uploadVector(slot, layer, tensor)
  Napi::Value UploadVector(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    const awq::WeightSlot slot = parseSlot(env, info[0]);
    const int layer = intArg(info, 1, "layer");
    const awq::HostTensor tensor = toHostTensor(info[2], "tensor");
    return AsyncTask::Run(
        env, "cuda upload", [eng, slot, layer, tensor] { eng->uploadVector(slot, layer, tensor); }, nullptr,
        {info[2]});
  }

  // uploadLinear(slot, layer, parts): parts = [{qweight, qzeros, scales}] (AWQ) or [{weight}] (dense).
  Napi::Value UploadLinear(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    const awq::WeightSlot slot = parseSlot(env, info[0]);
    const int layer = intArg(info, 1, "layer");
    if (!info[2].IsArray()) {
      throw Napi::TypeError::New(env, "uploadLinear: parts must be an array, got " + describeValue(info[2]));
    }
    Napi::Array arr = info[2].As<Napi::Array>();
    std::vector<awq::LinearPart> parts;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value partValue = arr.Get(i);
      if (!partValue.IsObject()) {
        throw Napi::TypeError::New(env, "uploadLinear: parts[" + std::to_string(i) + "] must be an object, got " +
                                            describeValue(partValue));
      }
      Napi::Object p = partValue.As<Napi::Object>();
      awq::LinearPart part;
      if (p.Has("qweight")) {
        part.awq = true;
        part.qweight = toHostTensor(p.Get("qweight"), "qweight");
        part.qzeros = toHostTensor(p.Get("qzeros"), "qzeros");
        part.scales = toHostTensor(p.Get("scales"), "scales");
      } else {
        part.weight = toHostTensor(p.Get("weight"), "weight");
      }
      parts.push_back(std::move(part));
    }
    return AsyncTask::Run(
        env, "cuda upload", [eng, slot, layer, parts] { eng->uploadLinear(slot, layer, parts); }, nullptr, {info[2]});
  }

  Napi::Value InitRandomWeights(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    const uint32_t seed = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1;
    return AsyncTask::Run(env, "cuda random weights", [eng, seed] { eng->initRandomWeights(seed); }, nullptr);
  }

  Napi::Value Finalize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    if (!info[0].IsObject()) {
      throw Napi::TypeError::New(env, "finalize: options must be an object, got " + describeValue(info[0]));
    }
    const awq::RuntimeOptions options = toRuntimeOptions(info[0].As<Napi::Object>());
    auto report = std::make_shared<awq::MemoryReport>();
    return AsyncTask::Run(
        env, "cuda load", [eng, options, report] { *report = eng->finalize(options); },
        [report](Napi::Env e) -> Napi::Value { return fromMemoryReport(e, *report); });
  }

  // step(batch): the host-side phases are timed (microseconds) for the benchmark's overhead breakdown.
  Napi::Value Step(const Napi::CallbackInfo& info) {
    using Clock = std::chrono::steady_clock;
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "step: batch must be an object");
    const Clock::time_point called = Clock::now();
    const awq::StepInput input = toStepInput(info[0].As<Napi::Object>());
    auto output = std::make_shared<awq::StepOutput>();
    auto times = std::make_shared<std::array<Clock::time_point, 4>>();
    const bool tokenLogprobs = input.tokenLogprobs;
    // A decode step whose CUDA graph exists is launched right here (tens of microseconds), so the thread-pool
    // hand-off overlaps the GPU work; anything longer runs entirely on the worker.
    auto pending = std::make_shared<awq::PendingStep>();
    pending->ticket = eng->takeTicket();  // launched in call order, here or on the worker (a chained step's need)
    bool launched = false;
    try {
      launched = eng->launchStep(input, pending.get(), true);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("cuda step: ") + e.what());
    }
    (*times)[0] = Clock::now();
    try {
      return AsyncTask::Run(
          env, "cuda step",
          [eng, input, output, times, pending, launched] {
            (*times)[1] = Clock::now();
            if (!launched) eng->launchStep(input, pending.get(), false);  // its ticket's turn, then the step
            *output = eng->finishStep(input, *pending);
            (*times)[2] = Clock::now();
          },
          stepResult(output, tokenLogprobs, times, called), {info[0]});
    } catch (...) {
      // No worker will take this step: release its place in the launch order, or wait for it here if it launched.
      releaseUnqueued(*eng, input, *pending, launched);
      throw;
    }
  }

  // forward(batch): the first half of a step whose batch.sampling.tokenMask is still being written (the grammar
  // workers fill it, often in a SharedArrayBuffer): packs and uploads everything but the mask words and enqueues
  // the forward, then resolves without waiting for the GPU. A decode step with a captured graph is launched right
  // here; anything longer (capture, eager forward) on a worker. Every forward() that resolved needs a sample().
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "forward: batch must be an object, got " + describeValue(info[0]));
    if (deferred_ && !deferred_->failed) {
      throw Napi::Error::New(env, "forward() called while the previous forward() still waits for its sample()");
    }
    auto step = std::make_shared<DeferredStep>();
    step->input = toStepInput(info[0].As<Napi::Object>());
    step->input.deferSampling = true;
    step->batch = Napi::Persistent(info[0].As<Napi::Object>());
    step->pending.ticket = eng->takeTicket();
    bool launched = false;
    try {
      launched = eng->launchStep(step->input, &step->pending, true);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("cuda forward: ") + e.what());
    }
    deferred_ = step;
    if (launched) {
      Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
      done.Resolve(env.Undefined());
      return done.Promise();
    }
    try {
      return AsyncTask::Run(
          env, "cuda forward",
          [eng, step] {
            try {
              eng->launchStep(step->input, &step->pending, false);
            } catch (...) {
              step->failed = true;
              throw;
            }
          },
          nullptr, {info[0]});
    } catch (...) {
      step->failed = true;
      releaseUnqueued(*eng, step->input, step->pending, false);
      throw;
    }
  }

  // sample(batch), with the batch given to forward() once its masks are written: copies and uploads the mask
  // words, enqueues sampling and the downloads here (tens of microseconds), and waits for the results on a worker.
  Napi::Value Sample(const Napi::CallbackInfo& info) {
    using Clock = std::chrono::steady_clock;
    Napi::Env env = info.Env();
    auto eng = sharedEngine(env);
    if (!deferred_ || deferred_->failed) throw Napi::Error::New(env, "sample() without a forward() in flight");
    if (!info[0].IsObject() || !info[0].StrictEquals(deferred_->batch.Value())) {
      throw Napi::TypeError::New(env, "sample: batch must be the object given to forward()");
    }
    std::shared_ptr<DeferredStep> step = std::move(deferred_);
    deferred_.reset();
    step->batch.Reset();  // the task below keeps the batch alive from here
    const Clock::time_point called = Clock::now();
    // A failure here still lets the worker wait for the forward (which releases the engine), then reports it.
    std::string sampleError;
    try {
      eng->sampleStep(step->input, step->pending);
    } catch (const std::exception& e) {
      sampleError = e.what();
    }
    auto output = std::make_shared<awq::StepOutput>();
    auto times = std::make_shared<std::array<Clock::time_point, 4>>();
    (*times)[0] = Clock::now();
    const bool tokenLogprobs = step->input.tokenLogprobs;
    try {
      return AsyncTask::Run(
          env, "cuda sample",
          [eng, step, output, times, sampleError] {
            (*times)[1] = Clock::now();
            // Sampling not (fully) enqueued: nothing to read back (and the raw-logits buffer may not exist yet),
            // so finishStep only waits and frees the engine.
            if (!sampleError.empty()) step->pending.rows.clear();
            awq::StepOutput out = eng->finishStep(step->input, step->pending);
            if (!sampleError.empty()) throw std::runtime_error(sampleError);
            *output = std::move(out);
            (*times)[2] = Clock::now();
          },
          stepResult(output, tokenLogprobs, times, called), {info[0]});
    } catch (...) {
      step->pending.rows.clear();  // only wait for the step: the engine is then free for the next one
      releaseUnqueued(*eng, step->input, step->pending, true);
      throw;
    }
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<awq::Engine> eng = std::move(engine_);
    engine_.reset();
    // A forward() never sampled still holds the engine: wait for it before releasing.
    std::shared_ptr<DeferredStep> step = std::move(deferred_);
    deferred_.reset();
    if (step && step->failed) step.reset();
    if (!eng) return AsyncTask::Run(env, "cuda dispose", [] {}, nullptr);
    return AsyncTask::Run(
        env, "cuda dispose",
        [eng, step] {
          if (step) {
            step->pending.rows.clear();  // never sampled: nothing to read back, only the wait
            try {
              eng->finishStep(step->input, step->pending);
            } catch (const std::exception&) {
              // the step's own error is of no interest once the engine goes
            }
          }
          eng->release();
        },
        nullptr);
  }

  // setProfiling(on): quick (no GPU work), synchronous.
  Napi::Value SetProfiling(const Napi::CallbackInfo& info) {
    engine(info.Env()).setProfiling(info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }

  // takeProfile(): [{op, ms, count}] summed since the last call.
  Napi::Value TakeProfile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<awq::ProfileEntry> entries = engine(env).takeProfile();
    Napi::Array arr = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", Napi::String::New(env, entries[i].op));
      o.Set("ms", Napi::Number::New(env, entries[i].ms));
      o.Set("count", Napi::Number::New(env, static_cast<double>(entries[i].count)));
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return arr;
  }

  std::shared_ptr<awq::Engine> sharedEngine(Napi::Env env) {
    engine(env);
    return engine_;
  }

  static awq::WeightSlot parseSlot(Napi::Env env, const Napi::Value& v) {
    try {
      return awq::parseWeightSlot(v.ToString().Utf8Value());
    } catch (const std::exception& e) {
      throw Napi::TypeError::New(env, e.what());
    }
  }

  // Host phases of a step in microseconds: JS -> C++ conversion (and launch), thread-pool wait, the engine's
  // step (or wait), back to JS.
  static Napi::Object hostTiming(Napi::Env env, std::chrono::steady_clock::time_point called,
                                 const std::array<std::chrono::steady_clock::time_point, 4>& times) {
    auto us = [](std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    Napi::Object t = Napi::Object::New(env);
    t.Set("convertUs", us(called, times[0]));
    t.Set("queueUs", us(times[0], times[1]));
    t.Set("executeUs", us(times[1], times[2]));
    t.Set("returnUs", us(times[2], times[3]));
    return t;
  }

  // The value a finished step's promise resolves with: its outputs and the host phases (hostTiming).
  static AsyncTask::Done stepResult(std::shared_ptr<awq::StepOutput> output, bool tokenLogprobs,
                                    std::shared_ptr<std::array<std::chrono::steady_clock::time_point, 4>> times,
                                    std::chrono::steady_clock::time_point called) {
    return [output, tokenLogprobs, times, called](Napi::Env e) -> Napi::Value {
      (*times)[3] = std::chrono::steady_clock::now();
      Napi::Object o = fromStepOutput(e, *output, tokenLogprobs);
      o.Set("hostTiming", hostTiming(e, called, *times));
      return o;
    };
  }

  /** A step between forward() and sample(): its input (views into `batch`'s arrays) and launch state. */
  struct DeferredStep {
    awq::StepInput input;
    awq::PendingStep pending;
    Napi::ObjectReference batch;
    std::atomic<bool> failed{false};  // the worker's launch threw (the promise of forward() rejected)
  };

  std::shared_ptr<awq::Engine> engine_;
  std::shared_ptr<DeferredStep> deferred_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("QuantContext", DefineQuantContext(env));
  // step() takes chained steps (batch.prevTokenRows, filled from the previous step's sampled tokens).
  exports.Set("chainedSteps", Napi::Boolean::New(env, true));
  return exports;
}

}  // namespace
}  // namespace awq_addon

static Napi::Object InitAwqNative(Napi::Env env, Napi::Object exports) { return awq_addon::InitModule(env, exports); }

NODE_API_MODULE(awq_native, InitAwqNative)
