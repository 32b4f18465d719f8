// Public linear launchers: validate shapes and dispatch by the number of rows m.
#include "internal.h"
#include "kernels.h"

namespace awqk {

cudaError_t awq_linear(const __half* x, int m, const void* packed, int in, int out, int group,
                       __half* y, cudaStream_t stream) {
  if (m < 0 || !awq_shape_ok(in, out, group)) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  if (!x || !packed || !y) return cudaErrorInvalidValue;
  if (m <= kGemvMaxM) return awq_gemv(x, m, packed, in, out, group, y, stream);
  return awq_gemm(x, m, packed, in, out, group, y, stream);
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
