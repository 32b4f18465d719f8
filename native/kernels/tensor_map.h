// The driver's tensor-map encoder (cuTensorMapEncodeTiled) for the Hopper kernels that load through TMA
// (gemm_sm90_ws.cu, attention_prefill_sm90.cu), found once through the runtime's driver entry points so that the
// addon does not link libcuda itself.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

namespace awqk {

// nullptr when the driver does not provide it (the WS GEMM then returns cudaErrorNotSupported; the prefill
// attention takes its cp.async kernel).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encode_fn();

}  // namespace awqk
