// AWQ repack: AutoAWQ GEMM tensors -> the layout our GEMV/GEMM kernels read.
//
// Packed weights: int32 [nTiles][in/64][32 lanes][4 regs], nTiles = ceil(out/16). Lane L = 4g + t
// holding reg j (k sub-tile j of the 64-k chunk) has, in nibble p:
//   output n = 16*tile + g + 8*(p & 1),  k = 64*chunk + 16*t + 4*j + 2*((p >> 1) & 1) + (p >> 2)
// so that (word >> 4i) & 0x000f000f yields the fp16 pair of mma fragment register i (see
// dequant_word), and one lane's x values for a 64-k chunk are 16 contiguous halves (16t..16t+15).
// Zero/scale: half2 [nTiles][in/group][8 (g)][2 (row g, row g+8)] = {1024 + z, s}; padding
// columns get {1024, 0} (and q = 0), so they dequantize to 0.
#include "common.cuh"
#include "internal.h"
#include "kernels.h"

namespace awqk {
namespace {

// Inverse of AutoAWQ's nibble order [0,2,4,6,1,3,5,7]: nibble index holding column (n % 8).
__device__ __forceinline__ int awq_nibble_of_col(int col8) {
  return (col8 & 1) * 4 + (col8 >> 1);
}

__device__ __forceinline__ int awq_q(const int32_t* qweight, int outWords, int k, int n) {
  uint32_t w = static_cast<uint32_t>(qweight[(size_t)k * outWords + (n >> 3)]);
  return (w >> (4 * awq_nibble_of_col(n & 7))) & 0xf;
}

__global__ void repack_weights_kernel(const int32_t* __restrict__ qweight, int in, int out,
                                      uint32_t* __restrict__ packed, int nTiles) {
  const int kChunks = in / 64;
  const size_t total = (size_t)nTiles * kChunks * 32 * 4;
  const int outWords = out / 8;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int j = idx & 3;
    const int lane = (idx >> 2) & 31;
    const size_t rest = idx >> 7;
    const int chunk = rest % kChunks;
    const int tile = rest / kChunks;
    const int g = lane >> 2, t = lane & 3;
    uint32_t word = 0;
#pragma unroll
    for (int p = 0; p < 8; ++p) {
      const int n = 16 * tile + g + 8 * (p & 1);
      const int k = 64 * chunk + 16 * t + 4 * j + 2 * ((p >> 1) & 1) + (p >> 2);
      const int q = n < out ? awq_q(qweight, outWords, k, n) : 0;
      word |= static_cast<uint32_t>(q) << (4 * p);
    }
    packed[idx] = word;
  }
}

__global__ void repack_zs_kernel(const int32_t* __restrict__ qzeros, const __half* __restrict__ scales,
                                 int out, int groups, __half2* __restrict__ zs, int nTiles) {
  const size_t total = (size_t)groups * nTiles * 16;
  const int outWords = out / 8;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int h = idx & 1;
    const int g = (idx >> 1) & 7;
    const size_t rest = idx >> 4;
    const int grp = rest % groups;
    const int tile = rest / groups;
    const int n = 16 * tile + g + 8 * h;
    __half2 v;
    if (n < out) {
      const int z = awq_q(qzeros, outWords, grp, n);
      v = __halves2half2(__int2half_rn(1024 + z), scales[(size_t)grp * out + n]);
    } else {
      v = __halves2half2(__int2half_rn(1024), __float2half(0.f));
    }
    zs[idx] = v;
  }
}

}  // namespace

size_t awq_weight_bytes(int in, int out) {
  return (size_t)detail::ceil_div(out, 16) * 16 * (size_t)in / 2;
}

size_t awq_packed_bytes(int in, int out, int group) {
  if (in <= 0 || out <= 0 || group <= 0) return 0;
  const size_t nTiles = detail::ceil_div(out, 16);
  return awq_weight_bytes(in, out) + (size_t)(in / group) * nTiles * 16 * sizeof(__half2);
}

bool awq_shape_ok(int in, int out, int group) {
  return in > 0 && out > 0 && group > 0 && group % 64 == 0 && in % group == 0 && out % 8 == 0;
}

cudaError_t awq_repack(const int32_t* qweight, const int32_t* qzeros, const __half* scales, int in,
                       int out, int group, void* packed, cudaStream_t stream) {
  if (!awq_shape_ok(in, out, group) || !qweight || !qzeros || !scales || !packed)
    return cudaErrorInvalidValue;
  const int nTiles = detail::ceil_div(out, 16);
  uint32_t* w = static_cast<uint32_t*>(packed);
  __half2* zs = reinterpret_cast<__half2*>(static_cast<char*>(packed) + awq_weight_bytes(in, out));
  repack_weights_kernel<<<1024, 256, 0, stream>>>(qweight, in, out, w, nTiles);
  repack_zs_kernel<<<256, 256, 0, stream>>>(qzeros, scales, out, in / group, zs, nTiles);
  return cudaGetLastError();
}

}  // namespace awqk
