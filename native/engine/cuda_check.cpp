#include "cuda_check.h"

#include <cstdlib>
#include <cstring>

namespace awq {

bool syncAfterLaunch() {
  static const bool enabled = [] {
    const char* v = std::getenv("AWQ_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
  }();
  return enabled;
}

void checkLaunch(const char* kernel, cudaStream_t stream) {
  cudaCheck(cudaGetLastError(), std::string("launch of ") + kernel);
  if (syncAfterLaunch()) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(stream, &capture);
    if (capture == cudaStreamCaptureStatusNone) cudaCheck(cudaStreamSynchronize(stream), std::string("kernel ") + kernel);
  }
}

}  // namespace awq
