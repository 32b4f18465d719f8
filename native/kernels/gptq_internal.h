// Test/benchmark hooks of gptq.cu (not part of the addon's API): steps 1-2 of gptq_quantize alone, and where
// they leave U inside the workspace.
#pragma once

#include "quant_kernels.h"

namespace awqk {

// Steps 1-2 of gptq_quantize: H = damped gram / (s s^T), then U (in, in) f32 row-major, the upper Cholesky factor
// of H^-1 (zeros below the diagonal), left in the workspace at gptq_workspace_u. status as gptq_quantize.
// workspace: gptq_workspace_bytes(in, out) bytes (out only sizes the layout; it must match the later reads).
cudaError_t gptq_inverse_cholesky_upper(const float* gram, int in, int out, const float* rowScale, int* status,
                                        void* workspace, size_t workspaceBytes, cudaStream_t stream);

// U (in, in) inside a workspace filled by gptq_quantize or gptq_inverse_cholesky_upper with the same in, out.
const float* gptq_workspace_u(const void* workspace, int in, int out);

}  // namespace awqk
