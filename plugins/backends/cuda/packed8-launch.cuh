/* packed8-launch.cuh — the variants of packed8.cuh's 16-byte 8-bit kernel by name, each with a launcher of one
 * signature: how many outputs a warp takes (1, 2, 4 or 8) and whether the codes are read with the evict-first
 * hint or through the caches. The backend chooses among them (its option int8_kernel, or by timing each at
 * prepare), and bench/bench-cuda-int8 checks and times every one. Kept apart from packed8.cuh, which the
 * host emulation of tests/cuda-kernels.cpp compiles without CUDA's launch syntax. */
#pragma once

#include <cstring>

#include "packed8.cuh"

typedef void (*Pq8Launch)(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias, float *y,
                          int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r, int64_t ys_o,
                          float act_scale, cudaStream_t s);

template <int R, bool STREAM>
static void pq8_launch_x16(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias, float *y,
                           int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r, int64_t ys_o,
                           float act_scale, cudaStream_t s) {
  const int64_t threads = pq8x16_warps(R, rows, n) * 32;
  k_packed_linear8x16<R, STREAM><<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(x, codes, scales, zeros, bias, y, rows, n, k, row_bytes,
                                                                                   per, relu, ys_r, ys_o, act_scale);
}

struct Pq8Variant {
  const char *name; /* the value of the backend's int8_kernel option */
  const char *what;
  Pq8Launch launch;
};

static const Pq8Variant pq8_variants[] = {
    {"r1", "16 B, 1 output a warp, evict-first", pq8_launch_x16<1, true>},
    {"r2", "16 B, 2 outputs a warp, evict-first", pq8_launch_x16<2, true>},
    {"r4", "16 B, 4 outputs a warp, evict-first", pq8_launch_x16<4, true>},
    {"r8", "16 B, 8 outputs a warp, evict-first", pq8_launch_x16<8, true>},
    {"r1-cached", "16 B, 1 output a warp, cached", pq8_launch_x16<1, false>},
    {"r2-cached", "16 B, 2 outputs a warp, cached", pq8_launch_x16<2, false>},
    {"r4-cached", "16 B, 4 outputs a warp, cached", pq8_launch_x16<4, false>},
    {"r8-cached", "16 B, 8 outputs a warp, cached", pq8_launch_x16<8, false>},
};
#define PQ8_N_VARIANTS ((int)(sizeof pq8_variants / sizeof pq8_variants[0]))
/* the choice where none is timed: two outputs a warp, evict-first */
#define PQ8_DEFAULT_VARIANT 1

/* the variant of that name, or -1 */
static inline int pq8_variant_index(const char *name) {
  for (int v = 0; v < PQ8_N_VARIANTS; v++)
    if (!strcmp(pq8_variants[v].name, name)) return v;
  return -1;
}
