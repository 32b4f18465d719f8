// Public linear launchers: validate shapes and dispatch by the number of rows m.
#include <cstdlib>

#include "gemm_ws.h"
#include "internal.h"
#include "kernels.h"

namespace awqk {

size_t linear_workspace_bytes() { return kLinearCounters * sizeof(int) + ((size_t)16 << 20); }

cudaError_t awq_linear(const __half* x, int m, const void* packed, int in, int out, int group,
                       __half* y, cudaStream_t stream, void* workspace, size_t workspaceBytes) {
  if (m < 0 || !awq_shape_ok(in, out, group)) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  if (!x || !packed || !y) return cudaErrorInvalidValue;
  if (const int tail = workspace != nullptr ? ws_tail_rows(m, in, out) : 0; tail > 0) {  // whole row tiles, then the rest
    const cudaError_t e = awq_linear(x, m - tail, packed, in, out, group, y, stream, workspace, workspaceBytes);
    if (e != cudaSuccess) return e;
    const size_t head = (size_t)(m - tail);
    return awq_linear(x + head * in, tail, packed, in, out, group, y + head * out, stream, workspace, workspaceBytes);
  }
  if (m <= kGemvMaxM && (workspace == nullptr || (!awq_rs_path(m, in, out) && !awq_ws_path(m, in, out))))
    return awq_gemv(x, m, packed, in, out, group, y, stream);
  if (workspace != nullptr) {
    const cudaError_t e = awq_gemm_ws(x, m, packed, in, out, group, y, workspace, workspaceBytes, stream);
    if (e != cudaErrorNotSupported) return e;
  }
  if (m <= kGemvMaxM) return awq_gemv(x, m, packed, in, out, group, y, stream);
  return awq_gemm(x, m, packed, in, out, group, y, stream);
}

// AWQ_FUSED_SILU=0: no fused kernel (the engine runs the linear, then its SiLU kernel on the interleaved outputs).
cudaError_t awq_linear_silu(const __half* x, int m, const void* packed, int in, int out, int group, __half* act,
                            cudaStream_t stream, void* workspace, size_t workspaceBytes) {
  static const bool on = [] {
    const char* v = std::getenv("AWQ_FUSED_SILU");
    return v == nullptr || v[0] != '0';
  }();
  if (m < 0 || !awq_shape_ok(in, out, group) || out % 16 != 0) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  if (!x || !packed || !act) return cudaErrorInvalidValue;
  if (!on) return cudaErrorNotSupported;
  if (const int tail = workspace != nullptr ? ws_tail_rows(m, in, out) : 0; tail > 0) {  // as in awq_linear
    const cudaError_t e = awq_linear_silu(x, m - tail, packed, in, out, group, act, stream, workspace, workspaceBytes);
    if (e != cudaSuccess) return e;
    const size_t head = (size_t)(m - tail);
    return awq_linear_silu(x + head * in, tail, packed, in, out, group, act + head * (out / 2), stream, workspace,
                           workspaceBytes);
  }
  // The path awq_linear would take: the warp-specialized GEMM where it takes m rows, the GEMV at m <= 8 otherwise
  // (where the register-A GEMM would, or off Hopper, nothing fused).
  const cudaError_t e = awq_gemm_ws_glu(x, m, packed, in, out, group, act, workspace, workspaceBytes, stream);
  if (e != cudaErrorNotSupported || m > kGemvMaxM || awq_ws_path(m, in, out) ||
      (workspace != nullptr && awq_rs_path(m, in, out)))
    return e;
  return awq_gemv_glu(x, m, packed, in, out, group, act, stream);
}

cudaError_t dense_linear(const __half* x, int m, const __half* w, int in, int out, __half* y,
                         cudaStream_t stream) {
  if (m < 0 || in <= 0 || in % 64 != 0 || out <= 0) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  if (!x || !w || !y) return cudaErrorInvalidValue;
  if (m <= kGemvMaxM) return dense_gemv(x, m, w, in, out, y, stream);
  return dense_gemm(x, m, w, in, out, y, stream);
}

}  // namespace awqk
