/* sparse.h — CSR linear layers y = x Wᵀ + b: values, column indices (u16 or i32) and row starts.
 *
 * Four rows or more: the rows are taken 16 at a time and transposed once into [k, 16] (a lane a row, the
 * lanes past the last row zero), so that each stored value multiplies one contiguous vector of 16 inputs:
 * its index is read once for 16 rows. Fewer rows: one row at a time. Both keep four independent sums an
 * output, so that the multiply-adds do not wait on one another. The 16 lanes are GCC/Clang vector
 * extensions: one AVX-512 register in the copy compiled for AVX-512F (used where the CPU has it), four SSE
 * registers in the portable one; an AVX2 and FMA form in intrinsics, two registers a sum, where the CPU has
 * those but not AVX-512F (or kernels=avx2 asks). */
#ifndef PQ_CPU_SPARSE_H
#define PQ_CPU_SPARSE_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PQ_SP_X86 1
#define PQ_SP_AVX512 __attribute__((target("avx512f")))
#define PQ_SP_AVX2 __attribute__((target("avx2,fma")))
#endif

/* the CSR kernels' vectors: sp_lanes's `simd` */
enum { SP_PORTABLE = 0, SP_AVX2 = 1, SP_AVX512 = 2 };

#define SP_LANES 16
#define SP_MIN_LANE_ROWS 4 /* fewer rows than this: one row at a time */

typedef struct SpCsr {
  const float *values;
  const uint16_t *col16; /* one of the two */
  const int32_t *col32;
  const int32_t *rows;   /* out + 1 row starts */
  int64_t in, out;
  int64_t ldy;           /* y's row stride where it is not `out`: a part of an output split writes a range of them */
} SpCsr;

static inline int64_t sp_ldy(const SpCsr *s) { return s->ldy ? s->ldy : s->out; }

static int sp_has_avx512(void) {
#ifdef PQ_SP_X86
  return __builtin_cpu_supports("avx512f");
#else
  return 0;
#endif
}

/* FMA, which the AVX2 form needs beside AVX2 (the backend's own AVX2 choice) */
static int sp_has_fma(void) {
#ifdef PQ_SP_X86
  return __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

/* xt [k][SP_LANES] from `rows` (≤ SP_LANES) rows of x [rows][k]; lanes past them zero */
static void sp_transpose(const float *x, int64_t rows, int64_t k, float *xt) {
  for (int64_t j = 0; j < k; j++)
    for (int64_t l = 0; l < SP_LANES; l++) xt[j * SP_LANES + l] = l < rows ? x[l * k + j] : 0.0f;
}

static inline float sp_out(float v, const float *bias, int64_t o, int relu) {
  v += bias ? bias[o] : 0.0f;
  return relu && v < 0.0f ? 0.0f : v;
}

typedef float sp_v16 __attribute__((vector_size(SP_LANES * sizeof(float)))); /* 16 lanes, whatever the CPU's vectors */

/* acc += value q · the 16 lanes of input column cols[q] (a macro: a 64-byte vector passed to or returned from a
 * function would change the calling convention between the two copies) */
#define SP_FMA(acc, q)                                                                                                do {                                                                                                                  sp_v16 x_;                                                                                                          memcpy(&x_, xt + (int64_t)cols[q] * SP_LANES, sizeof x_);                                                           acc += s->values[q] * x_;                                                                                         } while (0)

/* One chunk of transposed rows: four sums an output, one vector of 16 lanes each. Instantiated for either
 * index type (T), plain and (x86-64) compiled for AVX-512F, where the vectors are one register. */
#define SP_LANES_FN(T, NAME, ATTR)                                                                                  \
  ATTR static void NAME(const SpCsr *s, const T *cols, const float *xt, const float *bias, float *y, int64_t rows, int relu) { \
    for (int64_t o = 0; o < s->out; o++) {                                                                      \
      sp_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                                            \
      int32_t q = s->rows[o], e = s->rows[o + 1];                                                               \
      for (; q + 4 <= e; q += 4) {                                                                              \
        SP_FMA(a0, q);                                         \
        SP_FMA(a1, q + 1);                                 \
        SP_FMA(a2, q + 2);                                 \
        SP_FMA(a3, q + 3);                                 \
      }                                                                                                         \
      for (; q < e; q++) SP_FMA(a0, q);                        \
      sp_v16 sum = (a0 + a1) + (a2 + a3);                                                                       \
      for (int64_t l = 0; l < rows; l++) y[l * sp_ldy(s) + o] = sp_out(sum[l], bias, o, relu);                     \
    }                                                                                                           \
  }

/* One row: four scalar sums an output (gathers of 16 were slower than these on the Zen 4 cores measured). */
#define SP_ROW_FN(T, NAME)                                                                                          \
  static void NAME(const SpCsr *s, const T *cols, const float *x, const float *bias, float *y, int relu) {      \
    for (int64_t o = 0; o < s->out; o++) {                                                                      \
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;                                                         \
      int32_t q = s->rows[o], e = s->rows[o + 1];                                                               \
      for (; q + 4 <= e; q += 4) {                                                                              \
        a0 += s->values[q] * x[cols[q]];                                                                        \
        a1 += s->values[q + 1] * x[cols[q + 1]];                                                                \
        a2 += s->values[q + 2] * x[cols[q + 2]];                                                                \
        a3 += s->values[q + 3] * x[cols[q + 3]];                                                                \
      }                                                                                                         \
      for (; q < e; q++) a0 += s->values[q] * x[cols[q]];                                                       \
      y[o] = sp_out((a0 + a1) + (a2 + a3), bias, o, relu);                                                      \
    }                                                                                                           \
  }

SP_LANES_FN(uint16_t, sp_lanes_u16, )
SP_LANES_FN(int32_t, sp_lanes_i32, )
SP_ROW_FN(uint16_t, sp_row_u16)
SP_ROW_FN(int32_t, sp_row_i32)
#ifdef PQ_SP_X86
SP_LANES_FN(uint16_t, sp_lanes_avx512_u16, PQ_SP_AVX512)
SP_LANES_FN(int32_t, sp_lanes_avx512_i32, PQ_SP_AVX512)
#endif

#ifdef PQ_SP_X86
/* SP_LANES_FN for AVX2 and FMA, in intrinsics: two registers a sum (GCC kept the 16-lane vectors of the generic
 * form on the stack there, and ran slower than the portable copy) */
#define SP_FMA2(lo, hi, q)                                                                                          \
  do {                                                                                                            \
    const __m256 v_ = _mm256_set1_ps(s->values[q]);                                                               \
    const float *p_ = xt + (int64_t)cols[q] * SP_LANES;                                                           \
    lo = _mm256_fmadd_ps(v_, _mm256_loadu_ps(p_), lo);                                                            \
    hi = _mm256_fmadd_ps(v_, _mm256_loadu_ps(p_ + 8), hi);                                                        \
  } while (0)
#define SP_LANES_AVX2_FN(T, NAME)                                                                                   \
  PQ_SP_AVX2 static void NAME(const SpCsr *s, const T *cols, const float *xt, const float *bias, float *y, int64_t rows, int relu) { \
    for (int64_t o = 0; o < s->out; o++) {                                                                        \
      __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;             \
      int32_t q = s->rows[o], e = s->rows[o + 1];                                                                 \
      for (; q + 4 <= e; q += 4) {                                                                                \
        SP_FMA2(a0, b0, q);                                                                                       \
        SP_FMA2(a1, b1, q + 1);                                                                                   \
        SP_FMA2(a2, b2, q + 2);                                                                                   \
        SP_FMA2(a3, b3, q + 3);                                                                                   \
      }                                                                                                           \
      for (; q < e; q++) SP_FMA2(a0, b0, q);                                                                      \
      float sum[SP_LANES];                                                                                        \
      _mm256_storeu_ps(sum, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                         \
      _mm256_storeu_ps(sum + 8, _mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)));                     \
      for (int64_t l = 0; l < rows; l++) y[l * sp_ldy(s) + o] = sp_out(sum[l], bias, o, relu);                    \
    }                                                                                                             \
  }
SP_LANES_AVX2_FN(uint16_t, sp_lanes_avx2_u16)
SP_LANES_AVX2_FN(int32_t, sp_lanes_avx2_i32)
#endif

/* y [rows, out] (rows ≤ SP_LANES) from those rows transposed by sp_transpose */
static void sp_lanes(const SpCsr *s, const float *xt, const float *bias, float *y, int64_t rows, int relu, int simd) {
#ifdef PQ_SP_X86
  if (simd == SP_AVX512) {
    if (s->col16) sp_lanes_avx512_u16(s, s->col16, xt, bias, y, rows, relu);
    else sp_lanes_avx512_i32(s, s->col32, xt, bias, y, rows, relu);
    return;
  }
  if (simd == SP_AVX2) {
    if (s->col16) sp_lanes_avx2_u16(s, s->col16, xt, bias, y, rows, relu);
    else sp_lanes_avx2_i32(s, s->col32, xt, bias, y, rows, relu);
    return;
  }
#else
  (void)simd;
#endif
  if (s->col16) sp_lanes_u16(s, s->col16, xt, bias, y, rows, relu);
  else sp_lanes_i32(s, s->col32, xt, bias, y, rows, relu);
}

/* y [n_rows, out] from x [n_rows, in]; xt: SP_LANES · in floats of workspace. `lanes`: the transposed path
 * (a part of a batch takes the path of the whole batch: the two sum in different orders). */
static void sp_run(const SpCsr *s, const float *x, const float *bias, float *y, int64_t n_rows, int relu, int simd, float *xt, int lanes) {
  int64_t r = 0;
  if (lanes)
    for (; r < n_rows; r += SP_LANES) {
      int64_t rows = n_rows - r < SP_LANES ? n_rows - r : SP_LANES;
      sp_transpose(x + r * s->in, rows, s->in, xt);
      sp_lanes(s, xt, bias, y + r * sp_ldy(s), rows, relu, simd);
    }
  for (; r < n_rows; r++) {
    const float *xr = x + r * s->in;
    float *yr = y + r * sp_ldy(s);
    if (s->col16) sp_row_u16(s, s->col16, xr, bias, yr, relu);
    else sp_row_i32(s, s->col32, xr, bias, yr, relu);
  }
}

#endif
