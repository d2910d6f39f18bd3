/* packed8-launch.cuh — the variants of packed8.cuh's 16-byte 8-bit kernel by name, each with a launcher of one
 * signature: how many outputs a warp takes (1, 2, 4 or 8), for how many rows of the batch (1, 2, 4 or 8), and
 * whether the codes are read with the evict-first hint or through the caches. The backend chooses among them (its option int8_kernel, or by timing each at
 * prepare), and bench/bench-cuda-int8 checks and times every one. Kept apart from packed8.cuh, which the
 * host emulation of tests/cuda-kernels.cpp compiles without CUDA's launch syntax. */
#pragma once

#include <cstring>

#include "packed8.cuh"

typedef void (*Pq8Launch)(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias, float *y,
                          int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r, int64_t ys_o,
                          float act_scale, cudaStream_t s);

template <int R, int B, bool STREAM>
static void pq8_launch_x16(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias, float *y,
                           int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r, int64_t ys_o,
                           float act_scale, cudaStream_t s) {
  const int64_t threads = pq8x16_warps(R, B, rows, n) * 32;
  k_packed_linear8x16<R, B, STREAM><<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(x, codes, scales, zeros, bias, y, rows, n, k, row_bytes,
                                                                                   per, relu, ys_r, ys_o, act_scale);
}

struct Pq8Variant {
  const char *name; /* the value of the backend's int8_kernel option */
  const char *what;
  Pq8Launch launch;
};

/* The variants, in one list: the table below and the backend's options schema (its int8_kernel enum) are both
 * built from it, so a name cannot be offered that the table lacks. X(name, outputs a warp, rows of the batch a
 * warp, evict-first, what). */
#define PQ8_VARIANT_LIST(X)                                                                                          \
  X("r1", 1, 1, true, "16 B, 1 output a warp, evict-first")                                                          \
  X("r2", 2, 1, true, "16 B, 2 outputs a warp, evict-first")                                                         \
  X("r4", 4, 1, true, "16 B, 4 outputs a warp, evict-first")                                                         \
  X("r8", 8, 1, true, "16 B, 8 outputs a warp, evict-first")                                                         \
  X("r1-cached", 1, 1, false, "16 B, 1 output a warp, cached")                                                       \
  X("r2-cached", 2, 1, false, "16 B, 2 outputs a warp, cached")                                                      \
  X("r4-cached", 4, 1, false, "16 B, 4 outputs a warp, cached")                                                      \
  X("r8-cached", 8, 1, false, "16 B, 8 outputs a warp, cached")                                                      \
  X("r4b2", 4, 2, true, "16 B, 4 outputs x 2 rows a warp")                                                           \
  X("r4b4", 4, 4, true, "16 B, 4 outputs x 4 rows a warp")                                                           \
  X("r8b4", 8, 4, true, "16 B, 8 outputs x 4 rows a warp")                                                           \
  X("r4b8", 4, 8, true, "16 B, 4 outputs x 8 rows a warp")

#define PQ8_TABLE_ROW(name, r, b, stream, what) {name, what, pq8_launch_x16<r, b, stream>},
static const Pq8Variant pq8_variants[] = {PQ8_VARIANT_LIST(PQ8_TABLE_ROW)};
#undef PQ8_TABLE_ROW
/* the names as a JSON enum's items after "auto": , "r1", "r2", ... (string literals, joined at compile time) */
#define PQ8_ENUM_ITEM(name, r, b, stream, what) ", \"" name "\""
#define PQ8_ENUM_ITEMS PQ8_VARIANT_LIST(PQ8_ENUM_ITEM)
#define PQ8_N_VARIANTS ((int)(sizeof pq8_variants / sizeof pq8_variants[0]))
/* the choice where none is timed: two outputs a warp, evict-first */
#define PQ8_DEFAULT_VARIANT 1

/* the variant of that name, or -1 */
static inline int pq8_variant_index(const char *name) {
  for (int v = 0; v < PQ8_N_VARIANTS; v++)
    if (!strcmp(pq8_variants[v].name, name)) return v;
  return -1;
}
