// GPTQ rounding on the device (gptq.cu) against a host double port of src/quant/gptq-round.ts (dampedGram,
// inverseCholeskyUpper, gptqQuantize) and awq.ts (groupQuantize's rule): U, the rounding, and the quantity
// that matters, the calibration output error sum_n d_n^T Gs d_n with Gs = gram / (s s^T), d = w - dequant.
// Also: a non positive definite H reports status != 0, and the time at a Llama-13B-like shape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "../kernels/gptq_internal.h"
#include "../kernels/quant_kernels.h"
#include "harness.h"

namespace {

using std::vector;

struct Rng {  // splitmix64 + Box-Muller: deterministic, no library state
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    const double u = std::max(uniform(), 1e-300), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

float f16_round(double x) { return __half2float(__float2half_rn((float)x)); }  // half.ts f32ToF16 of a number
double clamp_q(double v) { return std::min(std::max(v, 0.0), 15.0); }
// awq.ts roundHalfEven == round to nearest, ties to even == nearbyint in the default rounding mode.
double round_half_even(double x) { return std::nearbyint(x); }

struct Quantized {
  vector<uint8_t> q;      // (in, out)
  vector<float> scales;   // (groups, out)
  vector<uint8_t> zeros;  // (groups, out)
};

// ---- host port of gptq-round.ts ----

// choleskyLower: returns -1, or the first channel with a non-positive pivot.
int cholesky_lower(vector<double>& a, int n) {
  for (int j = 0; j < n; ++j) {
    double d = a[(size_t)j * n + j];
    for (int k = 0; k < j; ++k) d -= a[(size_t)j * n + k] * a[(size_t)j * n + k];
    if (!(d > 0)) return j;
    const double ljj = std::sqrt(d);
    a[(size_t)j * n + j] = ljj;
    for (int i = j + 1; i < n; ++i) {
      double s = a[(size_t)i * n + j];
      for (int k = 0; k < j; ++k) s -= a[(size_t)i * n + k] * a[(size_t)j * n + k];
      a[(size_t)i * n + j] = s / ljj;
    }
    for (int k = j + 1; k < n; ++k) a[(size_t)j * n + k] = 0;
  }
  return -1;
}

// inverseCholeskyUpper: U (n, n) with H^-1 = U^T U; empty when H is not positive definite.
vector<double> inverse_cholesky_upper(const vector<double>& h, int n) {
  vector<double> l(h);  // (n, n)
  if (cholesky_lower(l, n) >= 0) return {};
  vector<double> linv((size_t)n * n, 0.0);  // (n, n)
  for (int c = 0; c < n; ++c) {
    linv[(size_t)c * n + c] = 1 / l[(size_t)c * n + c];
    for (int i = c + 1; i < n; ++i) {
      double s = 0;
      for (int k = c; k < i; ++k) s -= l[(size_t)i * n + k] * linv[(size_t)k * n + c];
      linv[(size_t)i * n + c] = s / l[(size_t)i * n + i];
    }
  }
  vector<double> hinv((size_t)n * n);  // (n, n)
  for (int i = 0; i < n; ++i)
    for (int j = i; j < n; ++j) {
      double s = 0;
      for (int k = j; k < n; ++k) s += linv[(size_t)k * n + i] * linv[(size_t)k * n + j];
      hinv[(size_t)i * n + j] = s;
      hinv[(size_t)j * n + i] = s;
    }
  if (cholesky_lower(hinv, n) >= 0) return {};
  vector<double> u((size_t)n * n, 0.0);  // (n, n)
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) u[(size_t)j * n + i] = hinv[(size_t)i * n + j];
  return u;
}

// gram / (s s^T) (s = rowScale or 1), no damping: the calibration metric's matrix.
vector<double> scaled_gram(const vector<float>& gram, int n, const vector<float>& s) {
  vector<double> h((size_t)n * n);  // (n, n)
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double si = s.empty() ? 1.0 : s[i], sj = s.empty() ? 1.0 : s[j];
      h[(size_t)i * n + j] = (double)gram[(size_t)i * n + j] / (si * sj);
    }
  return h;
}

// dampedGram.
vector<double> damped_gram(const vector<float>& gram, int n, const vector<float>& s) {
  vector<double> h = scaled_gram(gram, n, s);
  double diagSum = 0;
  for (int i = 0; i < n; ++i) diagSum += h[(size_t)i * n + i];
  const double damp = (0.01 * diagSum) / n;
  for (int i = 0; i < n; ++i) {
    double& d = h[(size_t)i * n + i];
    d = d > 0 ? d + damp : 1;
  }
  return h;
}

// awq.ts groupQuantize's params of one group column (f32 values), clip bound optional (< 0: none).
void group_params(const float* v, int g, float bound, float* scale, uint8_t* zero) {
  double mn = INFINITY, mx = -INFINITY;
  for (int i = 0; i < g; ++i) {
    double x = v[i];
    if (bound >= 0) x = std::min(std::max(x, (double)-bound), (double)bound);
    mn = std::min(mn, x);
    mx = std::max(mx, x);
  }
  *scale = f16_round(std::max(mx - mn, 1e-5) / 15.0);
  *zero = (uint8_t)clamp_q(round_half_even(-mn / *scale));
}

// gptqQuantize (u given); clipRatio (groups, out) or empty.
Quantized ref_gptq(const vector<float>& w, int in, int out, int g, const vector<double>& u,
                   const vector<float>& clipRatio) {
  const int groups = in / g;
  Quantized r{vector<uint8_t>((size_t)in * out), vector<float>((size_t)groups * out),
              vector<uint8_t>((size_t)groups * out)};
  vector<double> work(w.begin(), w.end());  // (in, out)
  vector<double> err(out);                  // (out)
  vector<float> column(g);                  // (g)
  for (int k = 0; k < in; ++k) {
    const int gi = k / g;
    if (k % g == 0) {
      for (int n = 0; n < out; ++n) {
        float maxAbs = 0;
        for (int i = 0; i < g; ++i) {
          column[i] = (float)work[(size_t)(k + i) * out + n];
          maxAbs = std::max(maxAbs, std::fabs(column[i]));
        }
        const float bound = clipRatio.empty() ? -1.f : (float)((double)maxAbs * clipRatio[(size_t)gi * out + n]);
        group_params(column.data(), g, bound, &r.scales[(size_t)gi * out + n], &r.zeros[(size_t)gi * out + n]);
      }
    }
    const double dkk = u[(size_t)k * in + k];
    for (int n = 0; n < out; ++n) {
      const double s = r.scales[(size_t)gi * out + n], z = r.zeros[(size_t)gi * out + n];
      const double qv = clamp_q(round_half_even(work[(size_t)k * out + n] / s) + z);
      r.q[(size_t)k * out + n] = (uint8_t)qv;
      err[n] = (work[(size_t)k * out + n] - (qv - z) * s) / dkk;
    }
    for (int j = k + 1; j < in; ++j) {
      const double ukj = u[(size_t)k * in + j];
      if (ukj == 0) continue;
      double* row = &work[(size_t)j * out];
      for (int n = 0; n < out; ++n) row[n] -= err[n] * ukj;
    }
  }
  return r;
}

// Plain round-to-nearest (groupQuantize without clip): the baseline GPTQ must beat.
Quantized ref_rtn(const vector<float>& w, int in, int out, int g) {
  const int groups = in / g;
  Quantized r{vector<uint8_t>((size_t)in * out), vector<float>((size_t)groups * out),
              vector<uint8_t>((size_t)groups * out)};
  vector<float> column(g);
  for (int gi = 0; gi < groups; ++gi)
    for (int n = 0; n < out; ++n) {
      for (int i = 0; i < g; ++i) column[i] = w[(size_t)(gi * g + i) * out + n];
      float& s = r.scales[(size_t)gi * out + n];
      uint8_t& z = r.zeros[(size_t)gi * out + n];
      group_params(column.data(), g, -1.f, &s, &z);
      for (int i = 0; i < g; ++i)
        r.q[(size_t)(gi * g + i) * out + n] = (uint8_t)clamp_q(round_half_even((double)column[i] / s) + z);
    }
  return r;
}

// sum_n d_n^T gs d_n, d = w - dequant(r) (in, out).
double output_error(const vector<float>& w, const Quantized& r, int in, int out, int g, const vector<double>& gs) {
  vector<double> d((size_t)in * out);  // (in, out)
  for (int k = 0; k < in; ++k)
    for (int n = 0; n < out; ++n) {
      const size_t gIdx = (size_t)(k / g) * out + n;
      d[(size_t)k * out + n] = (double)w[(size_t)k * out + n] -
                               ((double)r.q[(size_t)k * out + n] - r.zeros[gIdx]) * (double)r.scales[gIdx];
    }
  vector<double> hd(out);  // (out) one row of gs @ d
  double total = 0;
  for (int i = 0; i < in; ++i) {
    std::fill(hd.begin(), hd.end(), 0.0);
    for (int k = 0; k < in; ++k) {
      const double h = gs[(size_t)i * in + k];
      if (h == 0) continue;
      const double* dk = &d[(size_t)k * out];
      for (int n = 0; n < out; ++n) hd[n] += h * dk[n];
    }
    const double* di = &d[(size_t)i * out];
    for (int n = 0; n < out; ++n) total += di[n] * hd[n];
  }
  return total;
}

// ---- problems ----

struct Problem {
  int in, out, g;
  vector<float> w;          // (in, out)
  vector<float> gram;       // (in, in) f32 of the unscaled inputs
  vector<float> rowScale;   // (in) or empty
  vector<float> clipRatio;  // (groups, out) or empty
};

// Calibration inputs like an LLM's: low-rank-ish (correlated channels), a few outlier channels 30x larger, two
// dead channels; H is then ill-conditioned up to the damping.
Problem make_problem(int in, int out, int g, bool withScale, bool withClip, uint64_t seed) {
  Rng rng{seed};
  Problem p{in, out, g, {}, {}, {}, {}};
  const int rows = 2 * in, rank = std::max(4, in / 4);
  vector<double> basis((size_t)rank * in);  // (rank, in)
  for (double& v : basis) v = rng.normal();
  vector<double> chan(in, 1.0);  // (in) channel magnitudes
  for (int i = 0; i < in; ++i) chan[i] = 0.5 + rng.uniform();
  for (int o = 0; o < 4; ++o) chan[(size_t)(rng.uniform() * in) % in] = 30.0;
  chan[in / 3] = 0.0;
  chan[in - 2] = 0.0;
  vector<double> x((size_t)rows * in);  // (rows, in)
  vector<double> z(rank);
  for (int r = 0; r < rows; ++r) {
    for (double& v : z) v = rng.normal();
    for (int i = 0; i < in; ++i) x[(size_t)r * in + i] = 0.1 * rng.normal();
    for (int a = 0; a < rank; ++a)
      for (int i = 0; i < in; ++i) x[(size_t)r * in + i] += z[a] * basis[(size_t)a * in + i] / std::sqrt(rank);
    for (int i = 0; i < in; ++i) x[(size_t)r * in + i] *= chan[i];
  }
  vector<double> gram((size_t)in * in, 0.0);  // (in, in)
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < in; ++i) {
      const double xi = x[(size_t)r * in + i];
      if (xi == 0) continue;
      const double* xr = &x[(size_t)r * in];
      double* gi = &gram[(size_t)i * in];
      for (int j = 0; j < in; ++j) gi[j] += xi * xr[j];
    }
  p.gram.assign(gram.begin(), gram.end());
  p.w.resize((size_t)in * out);
  for (float& v : p.w) v = (float)(0.02 * rng.normal());
  if (withScale) {
    p.rowScale.resize(in);
    for (float& v : p.rowScale) v = (float)(0.5 + 1.5 * rng.uniform());
  }
  if (withClip) {
    p.clipRatio.resize((size_t)(in / g) * out);
    for (float& v : p.clipRatio) v = (float)(0.8 + 0.2 * rng.uniform());
  }
  return p;
}

template <typename T>
T* upload(const vector<T>& h) {
  if (h.empty()) return nullptr;
  T* d = nullptr;
  CK(cudaMalloc(&d, h.size() * sizeof(T)));
  CK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
vector<T> download(const T* d, size_t n) {
  vector<T> h(n);
  CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

struct DeviceRun {
  int status;
  Quantized r;
  vector<float> u;  // (in, in)
};

DeviceRun run_device(const Problem& p) {
  const int groups = p.in / p.g;
  float* w = upload(p.w);
  float* gram = upload(p.gram);
  float* rowScale = upload(p.rowScale);
  float* clipRatio = upload(p.clipRatio);
  uint8_t *q, *zeros;
  float* scales;
  int* status;
  void* ws;
  const size_t wsBytes = awqk::gptq_workspace_bytes(p.in, p.out);
  CK(cudaMalloc(&q, (size_t)p.in * p.out));
  CK(cudaMalloc(&zeros, (size_t)groups * p.out));
  CK(cudaMalloc(&scales, (size_t)groups * p.out * sizeof(float)));
  CK(cudaMalloc(&status, sizeof(int)));
  CK(cudaMalloc(&ws, wsBytes));
  CK(awqk::gptq_quantize(w, p.in, p.out, p.g, gram, rowScale, clipRatio, q, scales, zeros, status, ws, wsBytes,
                         0));
  CK(cudaDeviceSynchronize());
  DeviceRun d;
  d.status = download(status, 1)[0];
  d.r = {download(q, (size_t)p.in * p.out), download(scales, (size_t)groups * p.out),
         download(zeros, (size_t)groups * p.out)};
  d.u = download(awqk::gptq_workspace_u(ws, p.in, p.out), (size_t)p.in * p.in);
  for (void* ptr : {(void*)w, (void*)gram, (void*)rowScale, (void*)clipRatio, (void*)q, (void*)zeros,
                    (void*)scales, (void*)status, ws})
    CK(cudaFree(ptr));
  return d;
}

template <typename T>
double agreement(const vector<T>& a, const vector<T>& b) {
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return (double)same / a.size();
}

bool check_problem(int in, int out, int g, bool withScale, bool withClip, uint64_t seed) {
  const Problem p = make_problem(in, out, g, withScale, withClip, seed);
  const vector<double> u = inverse_cholesky_upper(damped_gram(p.gram, in, p.rowScale), in);
  if (u.empty()) {
    std::printf("FAIL gptq %d/%d/%d: the host reference found H not positive definite\n", in, out, g);
    return false;
  }
  const Quantized ref = ref_gptq(p.w, in, out, g, u, p.clipRatio);
  const DeviceRun dev = run_device(p);

  double du = 0, nu = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    const double e = (double)dev.u[i] - u[i];
    du += e * e;
    nu += u[i] * u[i];
  }
  const double uRel = std::sqrt(du / nu);
  const double qSame = agreement(dev.r.q, ref.q), sSame = agreement(dev.r.scales, ref.scales),
               zSame = agreement(dev.r.zeros, ref.zeros);
  const vector<double> gs = scaled_gram(p.gram, in, p.rowScale);
  const double errDev = output_error(p.w, dev.r, in, out, g, gs);
  const double errRef = output_error(p.w, ref, in, out, g, gs);
  const double errRtn = output_error(p.w, ref_rtn(p.w, in, out, g), in, out, g, gs);
  const bool ok = dev.status == 0 && uRel < 2e-3 && qSame >= 0.99 && sSame >= 0.99 && zSame >= 0.99 &&
                  std::fabs(errDev - errRef) <= 0.01 * errRef && errDev < 0.8 * errRtn;
  std::printf("%s gptq in=%d out=%d g=%d%s%s: status %d, U rel err %.2e, same q %.4f scales %.4f zeros %.4f, "
              "output err dev %.5g ref %.5g (%+.3f%%) rtn %.5g\n",
              ok ? "ok  " : "FAIL", in, out, g, withScale ? " rowScale" : "", withClip ? " clip" : "", dev.status,
              uRel, qSame, sSame, zSame, errDev, errRef, 100.0 * (errDev - errRef) / errRef, errRtn);
  return ok;
}

// gram = all ones plus a 2x2 block [[1, 5], [5, 1]] on channels 0, 1: positive diagonal, not positive definite.
bool check_not_positive_definite() {
  const int in = 192, out = 40, g = 64;
  Problem p = make_problem(in, out, g, false, false, 7);
  std::fill(p.gram.begin(), p.gram.end(), 1.f);
  p.gram[1] = p.gram[in] = 5.f;
  const bool refFails = inverse_cholesky_upper(damped_gram(p.gram, in, p.rowScale), in).empty();
  const DeviceRun dev = run_device(p);
  const bool ok = refFails && dev.status > 0 && dev.status <= in;
  std::printf("%s gptq not positive definite: status %d (host reference fails too: %s)\n", ok ? "ok  " : "FAIL",
              dev.status, refFails ? "yes" : "no");
  return ok;
}

__global__ void fill_uniform_kernel(float* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint64_t z = seed + i * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    p[i] = lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
  }
}

// A random positive definite-after-damping Gram matrix (in, in) of `rows` uniform inputs, on the device.
float* random_gram(int in, int rows, uint64_t seed) {
  float *x, *gram;
  CK(cudaMalloc(&x, (size_t)rows * in * sizeof(float)));
  CK(cudaMalloc(&gram, (size_t)in * in * sizeof(float)));
  fill_uniform_kernel<<<1024, 256>>>(x, (size_t)rows * in, seed, -1.f, 1.f);
  CK(cudaGetLastError());
  CK(awqk::sgemm(true, false, in, in, rows, 1.f, x, in, 0, x, in, 0, 0.f, gram, in, 0, 1, 0));
  CK(cudaDeviceSynchronize());
  CK(cudaFree(x));
  return gram;
}

// The factorization alone (steps 1-2) at several widths: separates its fixed per-panel cost from its n^3 part.
void time_factorization(int in) {
  float* gram = random_gram(in, 2048, 21);
  int* status;
  void* ws;
  const size_t wsBytes = awqk::gptq_workspace_bytes(in, 1);
  CK(cudaMalloc(&status, sizeof(int)));
  CK(cudaMalloc(&ws, wsBytes));
  const double ms = time_ms(
      [&](int) { CK(awqk::gptq_inverse_cholesky_upper(gram, in, 1, nullptr, status, ws, wsBytes, 0)); }, 1, 3);
  const int st = download(status, 1)[0];
  std::printf("gptq factorization (U) in=%d: %.2f ms, status %d\n", in, ms, st);
  for (void* ptr : {(void*)gram, (void*)status, ws}) CK(cudaFree(ptr));
}

// The whole call: Llama-2-13B's q/k/v shape (in 5120, out 3 x 5120) and the widest GPTQ linear (8192 x 27648).
void time_gptq(int in, int out, int g) {
  float* gram = random_gram(in, 2048, 22);
  float *w, *scales;
  uint8_t *q, *zeros;
  int* status;
  void* ws;
  const size_t wsBytes = awqk::gptq_workspace_bytes(in, out);
  CK(cudaMalloc(&w, (size_t)in * out * sizeof(float)));
  CK(cudaMalloc(&scales, (size_t)(in / g) * out * sizeof(float)));
  CK(cudaMalloc(&q, (size_t)in * out));
  CK(cudaMalloc(&zeros, (size_t)(in / g) * out));
  CK(cudaMalloc(&status, sizeof(int)));
  CK(cudaMalloc(&ws, wsBytes));
  fill_uniform_kernel<<<1024, 256>>>(w, (size_t)in * out, 12, -0.05f, 0.05f);
  CK(cudaGetLastError());
  const double ms = time_ms(
      [&](int) {
        CK(awqk::gptq_quantize(w, in, out, g, gram, nullptr, nullptr, q, scales, zeros, status, ws, wsBytes, 0));
      },
      1, 3);
  const int st = download(status, 1)[0];
  std::printf("gptq_quantize in=%d out=%d g=%d: %.2f ms, status %d, workspace %.0f MB\n", in, out, g, ms, st,
              wsBytes / 1e6);
  for (void* ptr : {(void*)gram, (void*)w, (void*)scales, (void*)q, (void*)zeros, (void*)status, ws})
    CK(cudaFree(ptr));
}

}  // namespace

bool test_gptq() {
  std::printf("\n== gptq (gptq.cu vs a host port of gptq-round.ts) ==\n");
  bool ok = true;
  ok &= check_problem(256, 72, 128, false, false, 1);
  ok &= check_problem(256, 72, 128, true, true, 2);
  ok &= check_problem(352, 100, 32, false, true, 3);  // partial last Cholesky panel, uneven inversion splits
  ok &= check_problem(288, 130, 96, true, false, 4);  // g not a power of two
  ok &= check_problem(48, 24, 16, true, true, 8);    // one partial panel, no sgemm in the factorization
  ok &= check_problem(768, 2304, 128, true, true, 5);
  ok &= check_problem(768, 2304, 128, false, false, 6);
  ok &= check_not_positive_definite();
  for (int in : {1024, 2048, 4096, 5120, 8192}) time_factorization(in);
  time_gptq(5120, 15360, 128);
  time_gptq(8192, 27648, 128);
  return ok;
}
