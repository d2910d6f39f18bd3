/* packed8-ref.h — what the CUDA backend's 8-bit packed-linear kernels (plugins/backends/cuda/packed8.cuh)
 * compute, in double on the host: the reference of tests/cuda-kernels.cpp and bench/bench-cuda-int8.cu. */
#pragma once

#include <cmath>
#include <cstdint>

/* ref[r·n + o] = scales[s] · Σ_i x'[r, i] · (codes[o, i] − zeros[s]) + bias[o] (ReLU where asked), s = o with
 * per == 1 else 0, zeros NULL meaning 128, x' the input rounded to the act_scale int8 grid where act_scale > 0
 * (in float, as the kernels round it); mag[r·n + o] = Σ |terms| + |bias[o]|, the scale of the sum's
 * rounding error. */
static inline void pq8_reference(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, int per, const float *bias,
                                 int64_t rows, int64_t n, int64_t k, int relu, float act_scale, double *ref, double *mag) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < n; o++) {
      const int64_t s = per == 1 ? o : 0;
      const double scale = scales[s], zero = zeros ? zeros[s] : 128.0;
      double acc = 0, m = std::fabs(bias[o]);
      for (int64_t i = 0; i < k; i++) {
        float xv = x[r * k + i];
        if (act_scale > 0) xv = std::fmin(std::fmax(std::rint(xv * (1.0f / act_scale)), -127.0f), 127.0f) * act_scale;
        const double t = (double)xv * scale * ((double)codes[o * k + i] - zero);
        acc += t;
        m += std::fabs(t);
      }
      acc += bias[o];
      ref[r * n + o] = relu && acc < 0 ? 0 : acc;
      mag[r * n + o] = m;
    }
}
