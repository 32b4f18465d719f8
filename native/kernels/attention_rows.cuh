// The end of a flash-attention block shared by the prefill kernels (attention.cu, attention_prefill_sm90.cu).
#pragma once

#include <cstddef>
#include <cuda_fp16.h>

namespace awqk {
namespace detail {

// The running sums of the lane's two rows (A = g, B = g + 8 of its warp's 16) reduced over the lane quad, and O / l
// stored as fp16 to query rows rowA / rowB (those < qLen) of sequence start qs, head `head`. o(j, e) is the
// accumulator of head-dim column 8j + 2t + (e & 1), row A for e = 0, 1 and row B for e = 2, 3.
template <int D, typename O>
__device__ __forceinline__ void store_attention_rows(O o, float (&lrow)[2], __half* __restrict__ out, int qs,
                                                     int qLen, int rowA, int rowB, int head, int numHeads, int t) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  const float invA = lrow[0] > 0.f ? 1.f / lrow[0] : 0.f;
  const float invB = lrow[1] > 0.f ? 1.f / lrow[1] : 0.f;
  const size_t strideTok = (size_t)numHeads * D;
  __half* oa = out + (size_t)(qs + rowA) * strideTok + (size_t)head * D;
  __half* ob = out + (size_t)(qs + rowB) * strideTok + (size_t)head * D;
#pragma unroll
  for (int dn = 0; dn < D / 8; ++dn) {
    const int col = dn * 8 + 2 * t;
    if (rowA < qLen)
      *reinterpret_cast<__half2*>(oa + col) = __floats2half2_rn(o(dn, 0) * invA, o(dn, 1) * invA);
    if (rowB < qLen)
      *reinterpret_cast<__half2*>(ob + col) = __floats2half2_rn(o(dn, 2) * invB, o(dn, 3) * invB);
  }
}

}  // namespace detail
}  // namespace awqk
