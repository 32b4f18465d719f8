// Warp-specialized persistent AWQ GEMM for prefill sizes on sm_90a (gemm_sm90_ws.cu).
#pragma once

#include <cstddef>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace awqk {

// y (m, out) = x (m, in) @ W for AWQ-packed W (awq_repack). variant: 0 = the default for m; blocks of 1 = 256 outputs
// x 128 rows, 2 = 128 x 256, 3 = 128 x 128; 4 and 5 = 1 and 2 in clusters of two blocks sharing the x tile
// (multicast); 6 / 7 / 8 / 9 = 256 outputs x 64 / 32 / 16 / 8 rows (decode sizes). skMode 0: whole tiles only (no
// workspace used); 1: stream-K for the tail, through the linear workspace (kernels.h; counters left zero). sm_90a
// only (cc 9.x); returns cudaErrorNotSupported, launching nothing, where the driver lacks tensor maps or the pointers
// are unaligned. glu: W's outputs are gate|up interleaved by 8 (kernels.h, awq_linear_silu) and y (m, out / 2) gets
// silu(gate) * up instead (out % 16 == 0).
cudaError_t gemm_sm90_ws(int variant, int skMode, const __half* x, int m, const void* w, int in, int out, int group,
                         __half* y, void* workspace, size_t workspaceBytes, cudaStream_t stream, bool glu = false);
int gemm_ws_default_variant(int m, int in, int out);
constexpr int kGemmWsVariants = 9;

// Benchmark / test hooks for awq_linear (gemm.cu): whether it takes this kernel (0 = the default: AWQ_GEMM_WS in
// the environment, unset = 3, 1 = never, 2 = for every m > 64 on Hopper, 3 = for m >= AWQ_GEMM_WS_MIN_ROWS (9 unless
// set) on Hopper), its tile variant (0 = default) and stream-K (-1 = default, 0 = off, 1 = on).
void gemm_ws_override(int mode);
void gemm_ws_variant_override(int variant);
void gemm_ws_sk_override(int sk);
// How the weights reach shared memory: -1 = AWQ_GEMM_WS_TMAW in the environment (unset / 1: two 3-D TMA boxes a
// chunk, 0: one bulk copy a tile, 2: TMA with the packed words 128-byte swizzled), 0 / 1 / 2 forced.
void gemm_ws_tma_weights_override(int on);
bool awq_ws_path(int m, int in, int out);

}  // namespace awqk
