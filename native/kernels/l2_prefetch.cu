// L2 prefetch of weights a later kernel of the step reads (the next linear of a decode layer), as a kernel of its own
// in the stream. It asks the copy engine for the bytes at once (cp.async.bulk.prefetch.L2, fire and forget: nothing
// waits for the data), lets the next kernel start (programmatic dependent launch) and then waits for the kernel
// before it, so that it never ends before its predecessor: a kernel after it that waits for it also waits for that
// one. The DRAM then fetches those weights while the kernels in between (RoPE, attention, norms, the tail of a
// linear) leave it idle, and the linear that needs them finds them in L2.
#include <algorithm>

#include "common.cuh"
#include "gemv_tile.cuh"
#include "kernels.h"
#include "launch.h"

namespace awqk {
namespace {

constexpr unsigned kPiece = 16384;  // bytes one thread asks for in one bulk prefetch

struct L2Ranges {
  const char* ptr[kMaxL2Ranges];
  unsigned long long bytes[kMaxL2Ranges];  // multiples of 16
};

__global__ void __launch_bounds__(32) l2_prefetch_kernel(L2Ranges r) {
  detail::pdl_launch();
  const unsigned long long stride = (unsigned long long)gridDim.x * 32 * kPiece;
  const unsigned long long first = ((unsigned long long)blockIdx.x * 32 + threadIdx.x) * kPiece;
#pragma unroll
  for (int k = 0; k < kMaxL2Ranges; ++k) {
    for (unsigned long long off = first; off < r.bytes[k]; off += stride) {
      const unsigned long long left = r.bytes[k] - off;
      detail::prefetch_l2_bulk(r.ptr[k] + off, left < kPiece ? (uint32_t)left : kPiece);
    }
  }
  detail::pdl_wait();
}

bool bulk_prefetch_available() {
  static int major[64] = {};
  int dev = 0;
  cudaGetDevice(&dev);
  if (major[dev & 63] == 0) cudaDeviceGetAttribute(&major[dev & 63], cudaDevAttrComputeCapabilityMajor, dev);
  return major[dev & 63] >= 9;
}

}  // namespace

cudaError_t l2_prefetch(const L2Range* ranges, int n, cudaStream_t stream) {
  if (n < 0 || n > kMaxL2Ranges || (n > 0 && ranges == nullptr)) return cudaErrorInvalidValue;
  L2Ranges r{};
  unsigned long long pieces = 0;
  for (int k = 0; k < n; ++k) {
    const auto addr = reinterpret_cast<uintptr_t>(ranges[k].ptr);
    if (ranges[k].bytes > 0 && (ranges[k].ptr == nullptr || addr % 16 != 0)) return cudaErrorInvalidValue;
    r.ptr[k] = static_cast<const char*>(ranges[k].ptr);
    r.bytes[k] = ranges[k].bytes / 16 * 16;
    pieces = std::max(pieces, (r.bytes[k] + kPiece - 1) / kPiece);
  }
  if (pieces == 0) return cudaSuccess;
  if (!bulk_prefetch_available()) return cudaErrorNotSupported;
  const int blocks = (int)std::min<unsigned long long>(132, (pieces + 31) / 32);
  return pdl_launch_kernel(l2_prefetch_kernel, dim3(blocks), dim3(32), 0, stream, r);
}

}  // namespace awqk
