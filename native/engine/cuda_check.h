// CUDA error handling for the engine: every failing call or launch becomes a C++ exception whose message names
// the operation or kernel; the addon turns it into a JavaScript Error.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace awq {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void cudaCheck(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) {
    // Clear a sticky-free error so the next call does not report it again.
    cudaGetLastError();
    throw CudaError(what + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
  }
}

/** Set from AWQ_CUDA_SYNC=1: synchronize after every launch, so an asynchronous fault names its kernel. */
bool syncAfterLaunch();

/** After a kernel launch: reports a bad launch (and, with AWQ_CUDA_SYNC=1, a fault) under the kernel's name. */
void checkLaunch(const char* kernel, cudaStream_t stream);

}  // namespace awq
