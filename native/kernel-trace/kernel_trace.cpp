// In-graph kernel timeline: a CUDA injection library (the driver loads it at cuInit when CUDA_INJECTION64_PATH
// names it) that records every kernel's start and end through CUPTI's activity API, kernels replayed from CUDA
// graphs included (each graph node is its own record, tagged with the graph and the launch's correlation id), and
// writes them as JSON lines to $AWQ_KERNEL_TRACE. No code of the traced process changes:
//   CUDA_INJECTION64_PATH=$PWD/native/build/kernel-trace/libawq-kernel-trace.so AWQ_KERNEL_TRACE=trace.jsonl \
//     node dist/src/cli/main.js bench latency --batches 1,16 ...
//   node scripts/read-kernel-trace.mjs trace.jsonl
// One line a kernel: {"n": demangled name (at most 160 chars), "s" / "e": start / end (ns, GPU clock), "g": graph
// id (0 outside graphs), "c": correlation id (one per launch API call: every node of one graph launch shares it),
// "st": stream, "grid": [x, y, z], "block": [x, y, z], "smem": dynamic shared memory bytes}.
// Built by native/kernel-trace/build.sh (host C++ only; links libcupti, found beside the library or on the
// system's path).
#include <cupti.h>
#include <cxxabi.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace {

constexpr size_t kBufferBytes = 8u << 20;
FILE* g_out = nullptr;
std::mutex g_mutex;
unsigned long long g_records = 0, g_dropped = 0;

void report(const char* what, CUptiResult r) {
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "awq-kernel-trace: %s failed: %s\n", what, msg ? msg : "unknown CUPTI error");
}

std::string short_name(const char* mangled) {
  if (!mangled) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : mangled;
  std::free(d);
  if (s.size() > 160) s.resize(160);
  std::string esc;  // JSON string escaping: quotes and backslashes only (names hold no control characters)
  for (char ch : s) {
    if (ch == '"' || ch == '\\') esc.push_back('\\');
    esc.push_back(ch);
  }
  return esc;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* maxNumRecords) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *maxNumRecords = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t validSize) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CUpti_Activity* rec = nullptr;
  while (cuptiActivityGetNextRecord(buffer, validSize, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    if (g_out)
      std::fprintf(g_out,
                   "{\"n\":\"%s\",\"s\":%llu,\"e\":%llu,\"g\":%u,\"c\":%u,\"st\":%u,\"grid\":[%d,%d,%d],"
                   "\"block\":[%d,%d,%d],\"smem\":%d}\n",
                   short_name(k->name).c_str(), static_cast<unsigned long long>(k->start),
                   static_cast<unsigned long long>(k->end), k->graphId, k->correlationId, k->streamId, k->gridX,
                   k->gridY, k->gridZ, k->blockX, k->blockY, k->blockZ, k->dynamicSharedMemory);
    ++g_records;
  }
  size_t dropped = 0;
  cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped);
  g_dropped += dropped;
  std::free(buffer);
  if (g_out) std::fflush(g_out);
}

void finish() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_out) {
    std::fclose(g_out);
    g_out = nullptr;
    std::fprintf(stderr, "awq-kernel-trace: %llu kernel records written, %llu dropped\n", g_records, g_dropped);
  }
}

}  // namespace

// Called by the CUDA driver at cuInit (CUDA_INJECTION64_PATH). Returns 1 on success.
extern "C" int InitializeInjection(void) {
  const char* path = std::getenv("AWQ_KERNEL_TRACE");
  if (!path || !*path) {
    std::fprintf(stderr, "awq-kernel-trace: AWQ_KERNEL_TRACE (the output file) is not set; not tracing\n");
    return 1;
  }
  g_out = std::fopen(path, "w");
  if (!g_out) {
    std::fprintf(stderr, "awq-kernel-trace: cannot write %s: %s\n", path, std::strerror(errno));
    return 1;
  }
  CUptiResult r = cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  if (r != CUPTI_SUCCESS) {
    report("cuptiActivityRegisterCallbacks", r);
    return 1;
  }
  // CONCURRENT_KERNEL keeps kernels concurrent (KIND_KERNEL would serialize them) and records graph nodes.
  r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  if (r != CUPTI_SUCCESS) {
    report("cuptiActivityEnable(CONCURRENT_KERNEL)", r);
    return 1;
  }
  cuptiActivityFlushPeriod(500);  // ms: records reach the file while the process runs
  std::atexit(finish);
  std::fprintf(stderr, "awq-kernel-trace: tracing kernels to %s\n", path);
  return 1;
}
