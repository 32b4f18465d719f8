// Shared-memory mbarrier helpers for the Hopper kernels (gemm_sm90_ws.cu, attention_prefill_sm90.cu).
#pragma once

#include <cuda.h>

#include <cstdint>

#include "common.cuh"

namespace awqk {
namespace detail {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// Every wait is bounded: one that has not completed 2 s after its first failed try traps (the launch fails with
// cudaErrorLaunchFailure) instead of hanging the GPU. The kernels were written without a GPU to run them; a
// protocol error (a barrier count, a parity, a lost arrival) then costs seconds of a device call, not its whole
// limit. No legitimate wait comes near: each starts after its block's griddepcontrol.wait, and a call takes
// milliseconds (a tool that slows kernels 1000x, e.g. compute-sanitizer racecheck, may trip it). The clock is
// %globaltimer_lo (ns, wraps every 4.3 s: differences mod 2^32 stay exact below that), read only after a failed try
// and kept inside the asm: with the timer in C++ variables ptxas ran out of the WS GEMM consumers' 224 registers
// (wgmma serialized, C7512, and spills); this way its output is unchanged (no serialization, the same spill-free
// variants).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      ".reg .u32 t0, t1;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@p bra WS_DONE;\n"
      "mov.u32 t0, %%globaltimer_lo;\n"
      "WS_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@p bra WS_DONE;\n"
      "mov.u32 t1, %%globaltimer_lo;\n"
      "sub.u32 t1, t1, t0;\n"
      "setp.lt.u32 p, t1, 2000000000;\n"
      "@p bra WS_WAIT;\n"
      "trap;\n"
      "WS_DONE:\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
// A box of a 3-D tensor map into shared memory, completing its bytes on `bar` (TMA; issued by one thread).
__device__ __forceinline__ void tma_3d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::
          "r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
      : "memory");
}
// The barrier tracks this thread's cp.async copies issued so far: it counts one arrival (of its expected count)
// when they have all landed.
__device__ __forceinline__ void cp_async_mbar_arrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
#endif

}  // namespace detail
}  // namespace awqk
