// Optional per-operation GPU timing (setProfiling; `awq bench latency --profile`): events around each launch group
// of an eager forward, summed per operation name. Off by default; graphs are not used while it is on.
#include "engine.h"
#include "engine_internal.h"

namespace awq {

cudaEvent_t Engine::takeEvent() {
  if (!eventPool_.empty()) {
    cudaEvent_t e = eventPool_.back();
    eventPool_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  cudaCheck(cudaEventCreate(&e), "cudaEventCreate");
  return e;
}

void Engine::beginRange(const char* op) {
  if (!profiling_) return;
  PendingRange r{op, takeEvent(), takeEvent()};
  cudaCheck(cudaEventRecord(r.start, stream_), "cudaEventRecord");
  pending_.push_back(r);
}

void Engine::endRange() {
  if (!profiling_ || pending_.empty()) return;
  cudaCheck(cudaEventRecord(pending_.back().end, stream_), "cudaEventRecord");
}

void Engine::collectProfile() {
  for (const PendingRange& r : pending_) {
    float ms = 0.f;
    if (cudaEventElapsedTime(&ms, r.start, r.end) == cudaSuccess) {
      ProfileEntry& e = profile_[r.op];
      e.op = r.op;
      e.ms += ms;
      e.count++;
    }
    eventPool_.push_back(r.start);
    eventPool_.push_back(r.end);
  }
  pending_.clear();
}

void Engine::setProfiling(bool on) {
  auto lock = lockIdle();
  profiling_ = on;
  profile_.clear();
}

std::vector<ProfileEntry> Engine::takeProfile() {
  auto lock = lockIdle();
  std::vector<ProfileEntry> out;
  for (auto& [name, e] : profile_) out.push_back(e);
  profile_.clear();
  return out;
}

}  // namespace awq
