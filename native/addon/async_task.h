// A promise-returning AsyncWorker: `work` runs on the libuv thread pool (never on the JS thread); `done` builds
// the resolved value on the JS thread. C++ exceptions from `work` reject the promise with their message.
#pragma once
#include <napi.h>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace awq_addon {

class AsyncTask : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  /** Queues the task; `keepAlive` holds JS objects whose memory `work` reads until it finishes. */
  static Napi::Promise Run(Napi::Env env, const char* name, Work work, Done done,
                           std::initializer_list<Napi::Value> keepAlive = {}) {
    auto* task = new AsyncTask(env, name, std::move(work), std::move(done));
    for (const Napi::Value& v : keepAlive) {
      if (v.IsObject()) task->refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    Napi::Promise promise = task->deferred_.Promise();
    task->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(std::string(name_) + ": " + e.what());
    } catch (...) {
      SetError(std::string(name_) + ": unknown native error");
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, std::string(name_) + ": " + e.what()).Value());
    }
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  AsyncTask(Napi::Env env, const char* name, Work work, Done done)
      : Napi::AsyncWorker(env, name), name_(name), work_(std::move(work)), done_(std::move(done)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  const char* name_;
  Work work_;
  Done done_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;
};

/**
 * Creates a native object on the thread pool (`make`: CUDA context and stream creation take a while), then on
 * the JS thread hands it to `adopt` and resolves with {deviceName}. `self` (the wrapper) is kept alive meanwhile.
 */
template <typename T, typename Make, typename Adopt>
Napi::Promise CreateOffThread(Napi::Env env, const char* name, const Napi::Value& self, Make make, Adopt adopt) {
  auto holder = std::make_shared<std::shared_ptr<T>>();
  return AsyncTask::Run(
      env, name, [holder, make] { *holder = make(); },
      [holder, adopt](Napi::Env e) -> Napi::Value {
        adopt(*holder);
        Napi::Object result = Napi::Object::New(e);
        result.Set("deviceName", Napi::String::New(e, (*holder)->deviceName()));
        return result;
      },
      {self});
}

}  // namespace awq_addon
