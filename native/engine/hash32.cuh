// The 32-bit integer hash behind every counter-based random number on the device: the sampler's RNG
// (sampler_block.cuh, matching src/backend/rng.ts) and the random test-weight fills of ops.cu.
#pragma once
#include <cstdint>

namespace awq {
namespace {

__device__ __forceinline__ uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

}  // namespace
}  // namespace awq
