// Kernel launch with programmatic dependent launch (PDL) on Hopper: the next kernel of the stream (or
// of a graph captured from it) may start while this one drains, up to its pdl_wait() (common.cuh).
// Every kernel launched through pdl_launch_kernel must call pdl_wait() before it reads anything an
// earlier kernel wrote or writes anything an earlier kernel reads. Shared by kernels/ and engine/.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace awqk {

// True on cc >= 9 unless disabled (set_pdl(false), or AWQ_PDL=0 in the environment).
bool pdl_enabled();
void set_pdl(bool on);

template <typename... KArgs, typename... Args>
cudaError_t pdl_launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                              Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace awqk
