// awq-ts quantizer kernels (awq quantize --backend cuda): the weight math of src/quant/ on the device.
// Plain C++ launchers, no N-API (same conventions as kernels.h: device pointers, row-major, enqueue only on
// `stream`, return cudaGetLastError() or cudaErrorInvalidValue for a violated precondition).
//
// Numerics: every op reproduces the TypeScript reference in src/quant/ and src/model/awq.ts. Where the
// reference computes in JS doubles (divisions, rounding decisions, salience, error sums) the kernel computes in
// double too, so that rounding decisions (q, zeros, f16 scales) match the CPU bit for bit on the same f32
// inputs. Matrix products (Gram matrices, G * delta) are f32 with f32 accumulation (the CPU uses f32 SIMD too;
// sums may differ in the last bits, which can flip exact ties only).
//
// Files: quant_gemm.cu (sgemm), quant_weights.cu (scale/quantize/dequantize/salience/columns),
// quant_clip.cu (clip search), quant_stats.cu (input statistics, mse), gptq.cu (GPTQ rounding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace awqk {

// ---------------------------------------------------------------------------------------------
// f32 GEMM (SIMT, tiled): C = alpha * op(A) @ op(B) + beta * C, `batch` independent products.
// op(A) is (M, K): A stored (M, K) with row stride lda, or when transA stored (K, M) with row stride lda.
// op(B) is (K, N): B stored (K, N) with row stride ldb, or when transB stored (N, K) with row stride ldb.
// C (M, N) with row stride ldc. Batch i uses A + i*strideA, B + i*strideB, C + i*strideC (elements).
// beta == 0 ignores C's old contents (NaN-safe). Any M, N, K >= 0.
// ---------------------------------------------------------------------------------------------
cudaError_t sgemm(bool transA, bool transB, int M, int N, int K, float alpha,
                  const float* A, int lda, long long strideA,
                  const float* B, int ldb, long long strideB,
                  float beta, float* C, int ldc, long long strideC, int batch, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// Input statistics of a linear (src/quant/input-stats.ts), accumulated over calls:
//   absSum[i] += sum_r |x[r][i]|   (double accumulation)
//   gram[i][j] += sum_r x[r][i] * x[r][j]   (f32), the full symmetric matrix is written.
// x (rows, n) fp16 (the linear's input as the layer computed it); absSum (n) double; gram (n, n) f32.
// workspace: input_stats_workspace_bytes(rows, n) bytes (x converted to f32).
// ---------------------------------------------------------------------------------------------
size_t input_stats_workspace_bytes(int rows, int n);
cudaError_t input_stats_accumulate(const __half* x, int rows, int n, double* absSum, float* gram,
                                   void* workspace, cudaStream_t stream);

// sum_i (a[i] - b[i])^2 over n values into *out (double, overwritten). a, b f32 (n).
cudaError_t squared_error_sum(const float* a, const float* b, size_t n, double* out, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// Weight math on W (in, out) f32, groups of `g` input rows (in % g == 0); groups = in / g.
// ---------------------------------------------------------------------------------------------

// y[k][n] = w[k][n] * s[k], or when divide: w[k][n] * (1.0 / s[k]) computed in double (as JS does), rounded
// to f32. y may alias w. s (in) f32.
cudaError_t scale_rows(const float* w, const float* s, int in, int out, bool divide, float* y,
                       cudaStream_t stream);

// AutoAWQ asymmetric min/max 4-bit rounding (awq.ts groupQuantize), per (group, column):
//   values clamped to [-clip, clip] when clip != null (clip (groups, out));
//   scale = f16(f32(max(max - min, 1e-5) / 15)) (double division), zero = clamp(roundHalfEven(-min / scale), 0, 15),
//   q = clamp(roundHalfEven(v / scale) + zero, 0, 15) (double division, ties to even).
// q (in, out) uint8; scales (groups, out) f32 (f16-exact values); zeros (groups, out) uint8.
cudaError_t group_quantize(const float* w, int in, int out, int g, const float* clip,
                           uint8_t* q, float* scales, uint8_t* zeros, cudaStream_t stream);

// w[k][n] = (q[k][n] - zeros[k/g][n]) * scales[k/g][n] (f32).
cudaError_t dequantize_groups(const uint8_t* q, const float* scales, const uint8_t* zeros, int in, int out,
                              int g, float* w, cudaStream_t stream);

// scales[gi][start + j] = f16(f32(scales[gi][start + j] / s[j])) for j < width (double division);
// scales (groups, out) f32, s (width) f32 (group-math.ts divideQuantizedColumns).
cudaError_t divide_quantized_columns(float* scales, const float* s, int groups, int out, int start, int width,
                                     cudaStream_t stream);

// AutoAWQ's weight salience of ONE linear (scale-search.ts weightSalience with a single matrix), in double:
//   salience[k] = (sum_n |w[k][n]| * (1 / (max_{k' in group(k)} |w[k'][n]| + 1e-6))) / out (the sum divided, as the reference does).
// salience (in) double, overwritten.
cudaError_t weight_salience(const float* w, int in, int out, int g, double* salience, cudaStream_t stream);

// Clip search (clip-search.ts searchClip): for every (group, column), over shrinks i * 0.025, i = 0..20:
//   bound = maxAbs * (1 - shrink) (f32), v = group_quantize's rounding of the group column with that clip,
//   d = w - dequant(v) (f32, g values), err = d^T Gs_g d (double sum of d_a * (Gs_g d)_a, the f32 product
//   Gs_g d), Gs_g = the group's (g, g) block of gram with entries gram[a][b] / (s[a] * s[b]) (f32; s = rowScale,
//   or 1 when rowScale == null); keeps the bound with the smallest err (first one on ties, i.e. the smaller
//   shrink). Columns in [noClipStart, noClipEnd) get bound = maxAbs (unclipped) (pass 0, 0 for none).
// w (in, out) f32 (already scaled by rowScale), gram (in, in) f32 of the UNscaled inputs, rowScale (in) or null,
// bestBound (groups, out) f32 output. g <= 128.
cudaError_t clip_search(const float* w, int in, int out, int g, const float* gram, const float* rowScale,
                        int noClipStart, int noClipEnd, float* bestBound, cudaStream_t stream);

// Per output column calibration error of a rounding (rounding-choice.ts columnErrors):
//   d = w - deq (in, out), err[n] = sum_k d[k][n] * (Gs d)[k][n] with Gs = gram / (s s^T) (s = rowScale or 1).
// err (out) double, overwritten. workspace: column_errors_workspace_bytes(in, out) bytes.
size_t column_errors_workspace_bytes(int in, int out);
cudaError_t column_errors(const float* w, const float* deq, int in, int out, const float* gram,
                          const float* rowScale, double* err, void* workspace, cudaStream_t stream);

// rounding-choice.ts chooseColumns' mixing step: for every column n with errCand[n] < errBase[n] and n outside
// [keepStart, keepEnd), copy the candidate's q column and its scales/zeros into the base (in place), and count
// such columns into *taken (int, overwritten).
cudaError_t mix_columns(uint8_t* baseQ, float* baseScales, uint8_t* baseZeros, const uint8_t* candQ,
                        const float* candScales, const uint8_t* candZeros, const double* errBase,
                        const double* errCand, int in, int out, int g, int keepStart, int keepEnd, int* taken,
                        cudaStream_t stream);

// wt[n][k] = fp16(w[k][n]): (in, out) f32 -> (out, in) fp16, the layout of dense_linear's weights.
cudaError_t transpose_to_half(const float* w, int in, int out, __half* wt, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// GPTQ rounding (gptq-round.ts gptqQuantize with dampedGram), in f32 on the device:
//   H = gram / (s s^T) (s = rowScale or 1) + damp * mean(diag) * I with damp = 0.01, dead channels (diag == 0)
//   given a unit diagonal; U = upper Cholesky factor of H^-1; then input rows k = 0..in-1 in order: at the first
//   row of a group, that group's scale/zero from group_quantize's rule on the CURRENT (updated) rows of the group
//   (clipped to clipRatio * max|.| per column when clipRatio != null, clipRatio (groups, out)); q = rounding of
//   row k; err = (w_k - deq_k) / U[k][k]; rows j > k: w_j -= err * U[k][j]. (Blocked: rows of a group are done
//   by a per-column kernel, the later rows updated by one sgemm per group.)
// w (in, out) f32 (already scaled), gram (in, in) f32 of the unscaled inputs.
// status (device int): 0 = ok, 1 + j = H not positive definite at channel j (outputs then undefined).
// workspace: gptq_workspace_bytes(in, out) bytes.
// ---------------------------------------------------------------------------------------------
size_t gptq_workspace_bytes(int in, int out);
cudaError_t gptq_quantize(const float* w, int in, int out, int g, const float* gram, const float* rowScale,
                          const float* clipRatio, uint8_t* q, float* scales, uint8_t* zeros, int* status,
                          void* workspace, size_t workspaceBytes, cudaStream_t stream);

}  // namespace awqk
