/* bench-cuda-int8.cu — on a GPU: every 8-bit packed-linear kernel of the CUDA backend (packed8.cuh), checked
 * against a double-precision reference on the host and timed on the device, beside float32 cublasSgemv on the
 * same (dequantized) weights and a plain read of the codes' bytes (the card's reachable read bandwidth).
 * Kernel times only: CUDA events around back-to-back launches, no copies; bench-cuda times whole runs.
 * The shape of bench-cuda's int8 target (8192x8192 at batch 1), then batch 4, then small checks of the
 * other paths (an output count no variant divides, per-tensor zero point, static activations, ReLU).
 * Exit status: 0 all correct, 1 a variant's outputs were wrong, 77 no GPU. */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../plugins/backends/cuda/packed8-launch.cuh"
#include "../tests/cuda-host/packed8-ref.h"

#define PQ8_CHECK(call)                                                                                             \
  do {                                                                                                             \
    cudaError_t e_ = (call);                                                                                       \
    if (e_ != cudaSuccess) {                                                                                       \
      fprintf(stderr, "bench-cuda-int8: %s: %s\n", #call, cudaGetErrorString(e_));                                 \
      exit(2);                                                                                                     \
    }                                                                                                              \
  } while (0)

/* the uchar4 kernel (k % 4 == 0), beside packed8-launch.cuh's variants of the 16-byte one */
static void launch_uchar4(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias, float *y,
                          int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r, int64_t ys_o, float act_scale,
                          cudaStream_t s) {
  k_packed_linear8<<<(unsigned)((rows * n * 32 + 255) / 256), 256, 0, s>>>(x, codes, scales, zeros, bias, y, rows, n, k, row_bytes, per, relu, ys_r,
                                                                           ys_o, act_scale);
}

/* variant 0 the uchar4 kernel, then pq8_variants in order */
static const int n_variants = 1 + PQ8_N_VARIANTS;
static const char *variant_name(int v) { return v ? pq8_variants[v - 1].what : "uchar4, 1 output a warp"; }
static Pq8Launch variant_launch(int v) { return v ? pq8_variants[v - 1].launch : launch_uchar4; }
static int sm_count = 132; /* the device's, set in main */

/* the read roof: every 16 bytes of the codes read once, folded so the reads cannot be dropped */
__global__ void k_read(const uint4 *p, int64_t n16, uint32_t *sink) {
  uint32_t acc = 0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n16; i += (int64_t)gridDim.x * blockDim.x) {
    uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) sink[0] = acc; /* (practically never: only keeps the loads) */
}

static uint32_t rng = 12345;
static uint32_t next_u32(void) {
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xffffff) / 16777216.0f; }

/* median over `rounds` of the per-launch time of `iters` back-to-back launches, in ms */
template <typename F>
static double time_it(F f, int iters, int rounds) {
  cudaEvent_t a, b;
  PQ8_CHECK(cudaEventCreate(&a));
  PQ8_CHECK(cudaEventCreate(&b));
  f();
  PQ8_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int r = 0; r < rounds; r++) {
    PQ8_CHECK(cudaEventRecord(a));
    for (int i = 0; i < iters; i++) f();
    PQ8_CHECK(cudaEventRecord(b));
    PQ8_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    PQ8_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms / iters);
  }
  std::sort(t.begin(), t.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return t[t.size() / 2];
}

struct Case {
  const char *name;
  int64_t rows, n, k;
  bool per_channel_zero, relu, timed;
  float act_scale;
};

static int run_case(const Case &cs, cublasHandle_t blas) {
  const int64_t rows = cs.rows, n = cs.n, k = cs.k;
  std::vector<uint8_t> codes((size_t)(n * k)), zeros(cs.per_channel_zero ? (size_t)n : 1);
  std::vector<float> scales(cs.per_channel_zero ? (size_t)n : 1), bias((size_t)n), x((size_t)(rows * k));
  for (auto &c : codes) c = (uint8_t)(next_u32() & 0xff);
  for (auto &z : zeros) z = (uint8_t)(100 + next_u32() % 56);
  if (!cs.per_channel_zero) zeros[0] = 128; /* no zero points given: the kernels take 128 */
  for (auto &s : scales) s = uniform(0.0005f, 0.002f);
  for (auto &b : bias) b = uniform(-0.5f, 0.5f);
  for (auto &v : x) v = uniform(-1.0f, 1.0f);
  const int per = cs.per_channel_zero ? 1 : 0;
  /* the reference, in double; and the scale of each output's terms for the tolerance */
  std::vector<double> ref((size_t)(rows * n)), mag((size_t)(rows * n));
  pq8_reference(x.data(), codes.data(), scales.data(), zeros.data(), per, bias.data(), rows, n, k, cs.relu, cs.act_scale, ref.data(), mag.data());
  uint8_t *d_codes, *d_zeros;
  float *d_scales, *d_bias, *d_x, *d_y, *d_w, *d_yf;
  uint32_t *d_sink;
  PQ8_CHECK(cudaMalloc(&d_codes, codes.size()));
  PQ8_CHECK(cudaMalloc(&d_zeros, zeros.size()));
  PQ8_CHECK(cudaMalloc(&d_scales, sizeof(float) * scales.size()));
  PQ8_CHECK(cudaMalloc(&d_bias, sizeof(float) * bias.size()));
  PQ8_CHECK(cudaMalloc(&d_x, sizeof(float) * x.size()));
  PQ8_CHECK(cudaMalloc(&d_y, sizeof(float) * (size_t)(rows * n)));
  PQ8_CHECK(cudaMalloc(&d_sink, sizeof(uint32_t)));
  PQ8_CHECK(cudaMemcpy(d_codes, codes.data(), codes.size(), cudaMemcpyHostToDevice));
  PQ8_CHECK(cudaMemcpy(d_zeros, zeros.data(), zeros.size(), cudaMemcpyHostToDevice));
  PQ8_CHECK(cudaMemcpy(d_scales, scales.data(), sizeof(float) * scales.size(), cudaMemcpyHostToDevice));
  PQ8_CHECK(cudaMemcpy(d_bias, bias.data(), sizeof(float) * bias.size(), cudaMemcpyHostToDevice));
  PQ8_CHECK(cudaMemcpy(d_x, x.data(), sizeof(float) * x.size(), cudaMemcpyHostToDevice));
  const uint8_t *zp = cs.per_channel_zero ? d_zeros : nullptr;
  printf("\n%s: batch %lld, %lld outputs, %lld inputs (%.1f MB of codes)\n", cs.name, (long long)rows, (long long)n, (long long)k,
         (double)(n * k) / 1e6);
  double t_sgemv = 0;
  if (cs.timed) { /* the float32 baseline on the same weights, dequantized */
    std::vector<float> w((size_t)(n * k));
    for (int64_t o = 0; o < n; o++)
      for (int64_t i = 0; i < k; i++) w[(size_t)(o * k + i)] = scales[(size_t)(per ? o : 0)] * ((float)codes[(size_t)(o * k + i)] - (float)zeros[(size_t)(per ? o : 0)]);
    PQ8_CHECK(cudaMalloc(&d_w, sizeof(float) * w.size()));
    PQ8_CHECK(cudaMalloc(&d_yf, sizeof(float) * (size_t)(rows * n)));
    PQ8_CHECK(cudaMemcpy(d_w, w.data(), sizeof(float) * w.size(), cudaMemcpyHostToDevice));
    const float one = 1, zero = 0;
    t_sgemv = time_it(
        [&] {
          if (rows == 1) cublasSgemv(blas, CUBLAS_OP_T, (int)k, (int)n, &one, d_w, (int)k, d_x, 1, &zero, d_yf, 1);
          else cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)rows, (int)k, &one, d_w, (int)k, d_x, (int)k, &zero, d_yf, (int)n);
        },
        20, 9);
    double t_read = time_it([&] { k_read<<<sm_count * 8, 256>>>((const uint4 *)d_codes, n * k / 16, d_sink); }, 20, 9);
    printf("  %-32s %9.4f ms  %7.0f GB/s\n", rows == 1 ? "float32 cublasSgemv" : "float32 cublasSgemm", t_sgemv, 4.0 * (double)(n * k) / t_sgemv / 1e6);
    printf("  %-32s %9.4f ms  %7.0f GB/s (the codes' bytes read once: the roof)\n", "read of the codes", t_read, (double)(n * k) / t_read / 1e6);
    cudaFree(d_w);
    cudaFree(d_yf);
  }
  int bad = 0;
  std::vector<float> y((size_t)(rows * n));
  for (int v = 0; v < n_variants; v++) {
    if (v == 0 && k % 4) continue;
    PQ8_CHECK(cudaMemset(d_y, 0xff, sizeof(float) * y.size())); /* NaN: an output not written shows */
    variant_launch(v)(d_x, d_codes, d_scales, zp, d_bias, d_y, rows, n, k, k, zp ? 1 : 0, cs.relu, n, 1, cs.act_scale, 0);
    PQ8_CHECK(cudaGetLastError());
    PQ8_CHECK(cudaMemcpy(y.data(), d_y, sizeof(float) * y.size(), cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t i = 0; i < y.size(); i++) {
      double e = std::fabs((double)y[i] - ref[i]) / (mag[i] + 1e-30);
      if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
    }
    const bool ok = worst <= 1e-5;
    bad |= !ok;
    if (cs.timed) {
      double t = time_it([&] { variant_launch(v)(d_x, d_codes, d_scales, zp, d_bias, d_y, rows, n, k, k, zp ? 1 : 0, cs.relu, n, 1, cs.act_scale, 0); },
                         20, 9);
      printf("  %-32s %9.4f ms  %7.0f GB/s  %5.2fx the float32 call  error %.1e %s\n", variant_name(v), t, (double)(n * k) / t / 1e6, t_sgemv / t,
             worst, ok ? "ok" : "WRONG");
    } else {
      printf("  %-32s error %.1e %s\n", variant_name(v), worst, ok ? "ok" : "WRONG");
    }
  }
  cudaFree(d_codes);
  cudaFree(d_zeros);
  cudaFree(d_scales);
  cudaFree(d_bias);
  cudaFree(d_x);
  cudaFree(d_y);
  cudaFree(d_sink);
  return bad;
}

int main(void) {
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    fprintf(stderr, "bench-cuda-int8: no usable GPU\n");
    return 77;
  }
  cudaDeviceProp prop;
  PQ8_CHECK(cudaGetDeviceProperties(&prop, 0));
  sm_count = prop.multiProcessorCount;
  printf("bench-cuda-int8 on %s (%d SMs); kernel times (medians of 9 rounds of 20 launches), errors relative to each output's sum of |terms|\n",
         prop.name, prop.multiProcessorCount);
  cublasHandle_t blas;
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "bench-cuda-int8: cannot start cuBLAS\n");
    return 2;
  }
  const Case cases[] = {
      {"the int8 target's layer", 1, 8192, 8192, true, false, true, 0.0f},
      {"a batch of 4", 4, 8192, 8192, true, false, true, 0.0f},
      {"an output count no variant divides, ReLU", 3, 1021, 528, true, true, false, 0.0f},
      {"no zero points (128), static activations", 2, 300, 1024, false, false, false, 0.02f},
  };
  int bad = 0;
  for (const Case &cs : cases) bad |= run_case(cs, blas);
  cublasDestroy(blas);
  printf("\n%s\n", bad ? "bench-cuda-int8: a kernel's outputs were WRONG (above)" : "bench-cuda-int8: all kernels' outputs correct");
  return bad ? 1 : 0;
}
