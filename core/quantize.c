/* quantize.c — weight quantization to packed 2–8-bit codes with per-tensor, per-channel or per-group scales:
 * round to nearest, optionally with a clipping search per scale group. Shared by every plugin that quantizes. */
#include "pq-private.h"

#include <cblas.h>
#include <lapacke.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PQ_HAVE_X86 1
#endif

typedef struct {
  float scale;
  uint8_t zero;
} GroupParams;

/* v rounded to the nearest integer, ties to even: nearbyintf's result in the default rounding mode, for every
 * float (from 2^23 up every float is an integer already; NaN stays NaN). Adding 2^23 to |v| leaves no bits below
 * the units, so the float addition itself rounds. Inline and vectorizable: nearbyintf is a library call that
 * saves and restores the floating-point environment, and quantizing a 4096x4096 matrix spent most of its
 * time there (0.3 GB/s without the AVX-512 path). */
static inline float round_even(float v) {
  const float a = fabsf(v), big = 8388608.0f; /* 2^23 */
  const float r = copysignf((a + big) - big, v); /* computed either way: a select, not a branch, picks */
  return a < big ? r : v;
}

/* Parameters for values in [lo, hi] (already clipped). */
static GroupParams params_for(float lo, float hi, int bits, int symmetric) {
  GroupParams p;
  if (symmetric) {
    float amax = fmaxf(fabsf(lo), fabsf(hi));
    int qmax = (1 << (bits - 1)) - 1;
    p.scale = amax > 0 ? amax / (float)qmax : 1.0f;
    p.zero = (uint8_t)(1 << (bits - 1));
  } else {
    lo = fminf(lo, 0.0f); /* keep 0 exactly representable */
    hi = fmaxf(hi, 0.0f);
    int levels = (1 << bits) - 1;
    p.scale = hi > lo ? (hi - lo) / (float)levels : 1.0f;
    float z = round_even(-lo / p.scale);
    p.zero = (uint8_t)fminf(fmaxf(z, 0.0f), (float)levels);
  }
  return p;
}

/* Codes round v * (1 / scale) to nearest (even on ties), in every path alike. */
static inline uint8_t code_of(float v, GroupParams p, int bits) {
  float q = round_even(v * (1.0f / p.scale)) + (float)p.zero;
  const float top = (float)((1 << bits) - 1);
  q = q > 0.0f ? q : 0.0f; /* (NaN gives 0; the callers pass finite values) */
  q = q < top ? q : top;
  return (uint8_t)(int32_t)q; /* through int32: a conversion the compiler vectorizes */
}

static double group_error(const float *v, int64_t n, GroupParams p, int bits) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)v[i] - (double)p.scale * ((double)code_of(v[i], p, bits) - p.zero);
    e += d * d;
  }
  return e;
}

/* Codes of n values on one grid, code_of's for each. On x86-64, 16 a step with SSE2 (every x86-64 CPU has it):
 * v · (1/scale) is first clamped to [−256, 512], where every code's value lies (so nothing else changes), then
 * rounded by the conversion to int32 (nearest, ties to even: the default rounding mode, as round_even), the
 * zero point added, and the packs to 16 and 8 bits saturate to [0, 255], then the top taken for fewer bits. */
static void codes_of(const float *v, int64_t n, GroupParams p, int bits, uint8_t *codes) {
  int64_t i = 0;
#ifdef PQ_HAVE_X86
  const __m128 inv = _mm_set1_ps(1.0f / p.scale), lo = _mm_set1_ps(-256.0f), hi = _mm_set1_ps(512.0f);
  const __m128i zero = _mm_set1_epi32(p.zero), top = _mm_set1_epi8((char)((1 << bits) - 1));
  for (; i + 16 <= n; i += 16) {
    __m128i q[4];
    for (int j = 0; j < 4; j++) {
      __m128 x = _mm_mul_ps(_mm_loadu_ps(v + i + 4 * j), inv);
      x = _mm_min_ps(_mm_max_ps(x, lo), hi); /* (a NaN becomes −256, so code 0, as code_of gives) */
      q[j] = _mm_add_epi32(_mm_cvtps_epi32(x), zero);
    }
    __m128i b = _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
    _mm_storeu_si128((__m128i *)(codes + i), _mm_min_epu8(b, top));
  }
#endif
  for (; i < n; i++) codes[i] = code_of(v[i], p, bits);
}

/* (pq-private.h) one pass without an early exit (vectorized), then a second only where there is one */
int64_t pq_first_non_finite(const float *v, int64_t n) {
  int bad = 0;
  for (int64_t i = 0; i < n; i++) bad |= !(fabsf(v[i]) <= FLT_MAX);
  if (!bad) return -1;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i])) return i;
  return -1;
}

/* The error for element i of matrix `name`, found NaN or infinite (pq_first_non_finite); returns NULL. */
static PqTensor *non_finite_error(PqPluginError *error, const char *name, int64_t i, float v) {
  pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': element %lld is %s", name, (long long)i, isnan(v) ? "NaN" : "infinite");
  return NULL;
}

/* Finite values only (the callers check first): the comparisons then mean what fminf and fmaxf mean (library
 * calls, which made this loop most of quantizing's time). */
static GroupParams choose(const float *v, int64_t n, int bits, int symmetric, int clip_steps) {
  float lo = v[0], hi = v[0];
  int64_t i = 1;
#ifdef PQ_HAVE_X86
  if (n >= 8) { /* two vectors of running minima and maxima, folded at the end */
    __m128 l0 = _mm_loadu_ps(v), l1 = _mm_loadu_ps(v + 4), h0 = l0, h1 = l1;
    for (i = 8; i + 8 <= n; i += 8) {
      __m128 a = _mm_loadu_ps(v + i), b = _mm_loadu_ps(v + i + 4);
      l0 = _mm_min_ps(l0, a);
      l1 = _mm_min_ps(l1, b);
      h0 = _mm_max_ps(h0, a);
      h1 = _mm_max_ps(h1, b);
    }
    float l[4], h[4];
    _mm_storeu_ps(l, _mm_min_ps(l0, l1));
    _mm_storeu_ps(h, _mm_max_ps(h0, h1));
    for (int j = 0; j < 4; j++) {
      lo = l[j] < lo ? l[j] : lo;
      hi = h[j] > hi ? h[j] : hi;
    }
  }
#endif
  for (; i < n; i++) {
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  GroupParams best = params_for(lo, hi, bits, symmetric);
  if (clip_steps <= 0) return best;
  double best_err = group_error(v, n, best, bits);
  for (int s = 1; s <= clip_steps; s++) {
    float r = 1.0f - 0.5f * (float)s / (float)clip_steps;
    GroupParams p = params_for(lo * r, hi * r, bits, symmetric);
    double e = group_error(v, n, p, bits);
    if (e < best_err) {
      best_err = e;
      best = p;
    }
  }
  return best;
}

#ifdef PQ_HAVE_X86
/* 8-bit symmetric round-to-nearest of one row, one scale per group: the hot path of quantizing large
 * matrices. Same arithmetic as the portable path (scale = amax / 127, nearest-even rounding). */
/* Returns 0, or -1 (nothing usable written) when the row holds NaN or infinite values. */
__attribute__((target("avx512f,avx512bw"))) static int row_q8_sym_avx512(const float *v, int64_t n, int64_t group,
                                                                          uint8_t *codes, float *scales) {
  const __m512 inf = _mm512_set1_ps(INFINITY);
  for (int64_t g0 = 0; g0 < n; g0 += group) {
    const float *gv = v + g0;
    __m512 amax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 16 <= group; i += 16) {
      __m512 a = _mm512_abs_ps(_mm512_loadu_ps(gv + i));
      bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ); /* infinite, or NaN (unordered) */
      amax = _mm512_max_ps(amax, a);
    }
    float m = _mm512_reduce_max_ps(amax);
    for (; i < group; i++) {
      if (!isfinite(gv[i])) bad = 1;
      m = fmaxf(m, fabsf(gv[i]));
    }
    if (bad) return -1;
    GroupParams p = params_for(-m, m, 8, 1);
    *scales++ = p.scale;
    __m512 inv = _mm512_set1_ps(1.0f / p.scale);
    __m512i off = _mm512_set1_epi32(128), lo = _mm512_setzero_si512(), hi = _mm512_set1_epi32(255);
    for (i = 0; i + 16 <= group; i += 16) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(gv + i), inv));
      q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, off), lo), hi);
      _mm_storeu_si128((__m128i *)(codes + g0 + i), _mm512_cvtepi32_epi8(q));
    }
    for (; i < group; i++) codes[g0 + i] = code_of(gv[i], p, 8);
  }
  return 0;
}

/* row_q8_sym_avx512's first pass in AVX2, eight values a vector (the same scales), then the codes by codes_of
 * (the same codes). */
__attribute__((target("avx2"))) static int row_q8_sym_avx2(const float *v, int64_t n, int64_t group, uint8_t *codes, float *scales) {
  const __m256 inf = _mm256_set1_ps(INFINITY), sign = _mm256_set1_ps(-0.0f);
  for (int64_t g0 = 0; g0 < n; g0 += group) {
    const float *gv = v + g0;
    __m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= group; i += 8) {
      __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(gv + i));
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ)); /* infinite, or NaN (unordered) */
      amax = _mm256_max_ps(amax, a);
    }
    float lanes[8], m = 0.0f;
    _mm256_storeu_ps(lanes, amax);
    for (int j = 0; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
    int nonfinite = _mm256_movemask_ps(bad) != 0;
    for (; i < group; i++) {
      if (!isfinite(gv[i])) nonfinite = 1;
      m = fmaxf(m, fabsf(gv[i]));
    }
    if (nonfinite) return -1;
    GroupParams p = params_for(-m, m, 8, 1);
    *scales++ = p.scale;
    codes_of(gv, group, p, 8, codes + g0);
  }
  return 0;
}
#endif

/* The packed layout of a quantized matrix (rows, cols, bytes a packed row), or FALSE with `error` filled. */
static gboolean quant_layout(const char *name, int bits, int ndim, const int64_t *shape, PqQuantScheme scheme, int64_t group_size,
                             int64_t *rows, int64_t *cols, size_t *row_bytes, PqPluginError *error) {
  size_t nb;
  if (!pq_packed_layout(bits, ndim, shape, rows, cols, row_bytes, &nb)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': bits %d outside 2..8 or an invalid shape", name, bits);
    return FALSE;
  }
  if (scheme == PQ_QUANT_PER_GROUP && (group_size <= 0 || *cols % group_size)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': group size %lld does not divide the row length %lld", name,
                        (long long)group_size, (long long)*cols);
    return FALSE;
  }
  return TRUE;
}

PqTensor *pq_quantize_matrix(const char *name, const float *w, int ndim, const int64_t *shape, int bits, PqQuantScheme scheme,
                             int64_t group_size, int symmetric, int clip_steps, PqPluginError *error) {
  int64_t rows, cols;
  size_t rb;
  if (!quant_layout(name, bits, ndim, shape, scheme, group_size, &rows, &cols, &rb, error)) return NULL;
  if (scheme == PQ_QUANT_PER_TENSOR) { /* its one scale needs every value: check them all first */
    int64_t i = pq_first_non_finite(w, rows * cols);
    if (i >= 0) return non_finite_error(error, name, i, w[i]);
  }
  int64_t group = scheme == PQ_QUANT_PER_GROUP ? group_size : scheme == PQ_QUANT_PER_CHANNEL ? cols : rows * cols;
  int64_t n_scales = pq_quant_n_scales(scheme, rows, cols, group_size);
  int64_t ss[1] = {n_scales};
  g_autoptr(PqTensor) scales = pq_tensor_new("scales", PQ_DTYPE_F32, 1, ss);
  g_autoptr(PqTensor) zeros = symmetric ? NULL : pq_tensor_new("zeros", PQ_DTYPE_U8, 1, ss);
  float *sc = pq_tensor_mutable_data(scales);
  uint8_t *zp = zeros ? pq_tensor_mutable_data(zeros) : NULL;
  /* per-tensor: one set of parameters over everything, chosen first */
  GroupParams whole = {0};
  if (scheme == PQ_QUANT_PER_TENSOR) {
    whole = choose(w, rows * cols, bits, symmetric, clip_steps);
    sc[0] = whole.scale;
    if (zp) zp[0] = whole.zero;
  }
  g_autoptr(PqTensor) t = pq_tensor_new_packed(name, bits, ndim, shape, scheme, group_size, scales, zeros);
  uint8_t *packed = pq_tensor_mutable_data(t);
  g_autofree uint8_t *codes = g_new(uint8_t, cols ? cols : 1);
  int64_t row_groups = scheme == PQ_QUANT_PER_TENSOR ? 1 : cols / (group ? group : 1);
  gboolean fast = FALSE, fast512 = FALSE;
#ifdef PQ_HAVE_X86
  fast = bits == 8 && symmetric && clip_steps == 0 && scheme != PQ_QUANT_PER_TENSOR && !g_getenv("PQ_NO_SIMD") &&
         ((fast512 = __builtin_cpu_supports("avx512bw")) || __builtin_cpu_supports("avx2"));
#endif
  for (int64_t r = 0; r < rows; r++) {
    const float *row = w + r * cols;
    /* non-finite values: the fast path finds them on its way, the portable one looks first (row by row,
       so the row is still in cache for the pass below) */
    int bad = 0;
#ifdef PQ_HAVE_X86
    if (fast) /* 8-bit codes are their own packing */
      bad = (fast512 ? row_q8_sym_avx512(row, cols, group, packed + r * rb, sc + r * row_groups)
                     : row_q8_sym_avx2(row, cols, group, packed + r * rb, sc + r * row_groups)) != 0;
#endif
    int64_t i = scheme != PQ_QUANT_PER_TENSOR && (bad || !fast) ? pq_first_non_finite(row, cols) : -1;
    if (i >= 0) return non_finite_error(error, name, r * cols + i, row[i]);
    if (fast) continue;
    for (int64_t g = 0; g < row_groups; g++) {
      int64_t len = scheme == PQ_QUANT_PER_TENSOR ? cols : group;
      const float *gv = row + g * len;
      GroupParams p = whole;
      if (scheme != PQ_QUANT_PER_TENSOR) {
        p = choose(gv, len, bits, symmetric, clip_steps);
        sc[r * row_groups + g] = p.scale;
        if (zp) zp[r * row_groups + g] = p.zero;
      }
      codes_of(gv, len, p, bits, bits == 8 ? packed + r * rb + g * len : codes + g * len); /* 8-bit codes are their own packing */
    }
    if (bits < 8) pq_pack_codes(codes, cols, bits, packed + r * rb);
  }
  return g_steal_pointer(&t);
}

/* Row r of `w` (the shape of the packed tensor `like`) as codes on like's grid — its scales `sc` (pq_packed_scales_f32)
 * and zero points — and, with `deq`, the values those codes stand for. */
static void like_codes(const PqTensor *like, const float *sc, const float *w, int64_t r, uint8_t *codes, float *deq) {
  int bits = pq_tensor_bits(like);
  int64_t rows = pq_tensor_rows(like), cols = pq_tensor_cols(like);
  PqQuantScheme scheme = pq_tensor_quant_scheme(like);
  int64_t group = scheme == PQ_QUANT_PER_GROUP ? pq_tensor_group_size(like) : scheme == PQ_QUANT_PER_CHANNEL ? cols : rows * cols;
  int64_t row_groups = scheme == PQ_QUANT_PER_TENSOR ? 1 : cols / group;
  const uint8_t *zp = pq_tensor_zeros(like) ? pq_tensor_data(pq_tensor_zeros(like)) : NULL;
  for (int64_t i = 0; i < cols; i++) {
    int64_t s = scheme == PQ_QUANT_PER_TENSOR ? 0 : r * row_groups + i / group;
    GroupParams p = {sc[s], zp ? zp[s] : (uint8_t)(1 << (bits - 1))};
    codes[i] = code_of(w[r * cols + i], p, bits);
    if (deq) deq[i] = p.scale * ((float)codes[i] - (float)p.zero);
  }
}

PqTensor *pq_quantize_like(const char *name, const float *w, const PqTensor *like) {
  int64_t rows = pq_tensor_rows(like), cols = pq_tensor_cols(like);
  PqTensor *t = pq_tensor_new_packed(name, pq_tensor_bits(like), pq_tensor_ndim(like), pq_tensor_shape(like), pq_tensor_quant_scheme(like),
                                     pq_tensor_group_size(like), pq_tensor_scales(like), pq_tensor_zeros(like));
  uint8_t *packed = pq_tensor_mutable_data(t);
  size_t rb = pq_tensor_row_bytes(like);
  g_autofree uint8_t *codes = g_new(uint8_t, cols ? cols : 1);
  g_autofree float *sc = pq_packed_scales_f32(like);
  for (int64_t r = 0; r < rows; r++) {
    like_codes(like, sc, w, r, codes, NULL);
    pq_pack_codes(codes, cols, pq_tensor_bits(like), packed + r * rb);
  }
  return t;
}

void pq_round_like(const float *w, const PqTensor *like, float *out) {
  int64_t rows = pq_tensor_rows(like), cols = pq_tensor_cols(like);
  g_autofree uint8_t *codes = g_new(uint8_t, cols ? cols : 1);
  g_autofree float *sc = pq_packed_scales_f32(like);
  for (int64_t r = 0; r < rows; r++) like_codes(like, sc, w, r, codes, out + r * cols);
}

/* packed's grid with `scales` in place of its own: the codes chosen again from w, nearest on it, or (w NULL)
 * packed's kept */
static PqTensor *with_scales(const PqTensor *packed, PqTensor *scales, const float *w, PqPluginError *error) {
  g_autoptr(PqTensor) like = pq_tensor_new_packed(pq_tensor_name(packed), pq_tensor_bits(packed), pq_tensor_ndim(packed), pq_tensor_shape(packed),
                                                  pq_tensor_quant_scheme(packed), pq_tensor_group_size(packed), scales, pq_tensor_zeros(packed));
  if (!like) {
    pq_plugin_error_set(error, PQ_ERR_NOMEM, "'%s': out of memory", pq_tensor_name(packed));
    return NULL;
  }
  if (w) return pq_quantize_like(pq_tensor_name(packed), w, like);
  memcpy(pq_tensor_mutable_data(like), pq_tensor_data(packed), pq_tensor_nbytes(packed));
  return g_steal_pointer(&like);
}

PqTensor *pq_packed_with_f16_scales(const PqTensor *packed, const float *w, PqPluginError *error) {
  if (pq_tensor_dtype(packed) != PQ_DTYPE_PACKED) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s' is %s, not a packed tensor", pq_tensor_name(packed), pq_dtype_name(pq_tensor_dtype(packed)));
    return NULL;
  }
  const PqTensor *s = pq_tensor_scales(packed);
  int64_t n = pq_tensor_numel(s);
  g_autofree float *sc = pq_packed_scales_f32(packed);
  g_autoptr(PqTensor) half = pq_tensor_new("scales", PQ_DTYPE_F16, 1, &n);
  if (!half) {
    pq_plugin_error_set(error, PQ_ERR_NOMEM, "'%s': out of memory for its scales", pq_tensor_name(packed));
    return NULL;
  }
  uint16_t *h = pq_tensor_mutable_data(half);
  for (int64_t i = 0; i < n; i++) {
    const float a = fabsf(sc[i]);
    if (a != 0.0f && !(a >= 0x1p-14f && a <= 65504.0f)) { /* (NaN too) */
      pq_plugin_error_set(error, PQ_ERR_UNSUPPORTED, "'%s': scale %lld of %lld is %g, %s F16's normal range (6.1e-05 to 65504)",
                          pq_tensor_name(packed), (long long)i, (long long)n, (double)sc[i], isnan(a) ? "outside" : a > 1.0f ? "above" : "below");
      return NULL;
    }
    h[i] = pq_f32_to_f16(sc[i]);
  }
  return with_scales(packed, half, w, error);
}

PqTensor *pq_packed_with_quantized_scales(const PqTensor *packed, const float *w, int bits, PqPluginError *error) {
  if (pq_tensor_dtype(packed) != PQ_DTYPE_PACKED || pq_tensor_quant_scheme(packed) != PQ_QUANT_PER_GROUP) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': only a packed tensor with per-group scales has rows of scales to quantize",
                        pq_tensor_name(packed));
    return NULL;
  }
  if (pq_tensor_dtype(pq_tensor_scales(packed)) == PQ_DTYPE_PACKED) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': its scales are packed already", pq_tensor_name(packed));
    return NULL;
  }
  const int64_t rows = pq_tensor_rows(packed), per_row = pq_tensor_numel(pq_tensor_scales(packed)) / MAX(rows, 1), shape[2] = {rows, per_row};
  g_autofree float *sc = pq_packed_scales_f32(packed);
  /* asymmetric over [0, largest] (scales are not negative): all 2^bits codes spent on the row's range */
  g_autoptr(PqTensor) qs = pq_quantize_matrix(pq_tensor_name(packed), sc, 2, shape, bits, PQ_QUANT_PER_CHANNEL, 0, 0, 0, error);
  if (!qs) return NULL;
  return with_scales(packed, qs, w, error);
}

/* ---- GPTQ ------------------------------------------------------------------------------------------ */

/* U, the upper Cholesky factor of (G + damping)⁻¹ (k × k, row-major, lower triangle 0): GPTQ's update rows. */
static float *gptq_inverse_factor(const float *h, int64_t k, const char *name, PqPluginError *error) {
  float *u = malloc(sizeof(float) * (size_t)(k * k));
  if (!u) {
    pq_plugin_error_set(error, PQ_ERR_NOMEM, "'%s': out of memory for a %lld x %lld Gram matrix", name, (long long)k, (long long)k);
    return NULL;
  }
  memcpy(u, h, sizeof(float) * (size_t)(k * k));
  lapack_int info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, u, (lapack_int)k);
  if (info == 0) info = LAPACKE_spotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, u, (lapack_int)k);
  if (info == 0) {
    for (int64_t i = 0; i < k; i++) /* the inverse is in the lower triangle: mirror it, then factor it as UᵀU */
      for (int64_t j = 0; j < i; j++) u[j * k + i] = u[i * k + j];
    info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)k, u, (lapack_int)k);
  }
  if (info != 0) {
    free(u);
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': the inputs' Gram matrix is not positive definite even with its damping (raise damping)", name);
    return NULL;
  }
  for (int64_t i = 0; i < k; i++)
    for (int64_t j = 0; j < i; j++) u[i * k + j] = 0.0f;
  return u;
}

typedef struct {
  int64_t a;
  float key;
} OrderKey;

static int cmp_order_desc(const void *x, const void *y) { /* largest key first, ties by index: a stable order */
  const OrderKey *p = x, *q = y;
  if (p->key != q->key) return p->key > q->key ? -1 : 1;
  return p->a < q->a ? -1 : p->a > q->a;
}

PqTensor *pq_quantize_matrix_gptq(const char *name, const float *w, int ndim, const int64_t *shape, int bits, PqQuantScheme scheme,
                                  int64_t group_size, int symmetric, int clip_steps, const float *gram, double damping, int act_order,
                                  PqPluginError *error) {
  int64_t rows, cols;
  size_t rb;
  if (!quant_layout(name, bits, ndim, shape, scheme, group_size, &rows, &cols, &rb, error)) return NULL;
  if (!(damping >= 0)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': damping %g is negative", name, damping);
    return NULL;
  }
  int64_t bad = pq_first_non_finite(w, rows * cols);
  if (bad >= 0) return non_finite_error(error, name, bad, w[bad]);
  if ((bad = pq_first_non_finite(gram, cols * cols)) >= 0) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "'%s': the Gram matrix holds a non-finite value at %lld", name, (long long)bad);
    return NULL;
  }
  const int64_t k = cols, n = rows, block = 128;
  int64_t group = scheme == PQ_QUANT_PER_GROUP ? group_size : cols, row_groups = scheme == PQ_QUANT_PER_GROUP ? cols / group_size : 1;
  /* the columns' order, and G in that order with its damping; columns no input ever reaches are 0 */
  g_autofree int64_t *perm = g_new(int64_t, k);
  g_autofree OrderKey *keys = g_new(OrderKey, k);
  for (int64_t j = 0; j < k; j++) keys[j] = (OrderKey){j, act_order ? gram[j * k + j] : 0.0f};
  if (act_order) qsort(keys, (size_t)k, sizeof *keys, cmp_order_desc);
  for (int64_t j = 0; j < k; j++) perm[j] = keys[j].a;
  g_autofree float *h = g_new(float, k * k);
  double mean = 0;
  for (int64_t j = 0; j < k; j++) mean += gram[j * k + j];
  mean = k ? mean / (double)k : 0;
  g_autofree gboolean *dead = g_new0(gboolean, k);
  for (int64_t i = 0; i < k; i++)
    for (int64_t j = 0; j < k; j++) h[i * k + j] = gram[perm[i] * k + perm[j]];
  for (int64_t j = 0; j < k; j++) {
    if (h[j * k + j] <= 0.0f) { /* a dead input: any weight there is harmless; 0 keeps it simple */
      dead[j] = TRUE;
      for (int64_t i = 0; i < k; i++) h[i * k + j] = h[j * k + i] = 0.0f;
      h[j * k + j] = 1.0f;
    }
    h[j * k + j] += (float)(damping * (mean > 0 ? mean : 1.0));
  }
  g_autofree float *u = gptq_inverse_factor(h, k, name, error);
  if (!u) return NULL;
  /* Wt [k, n]: column j (in processing order) of W as a contiguous row */
  g_autofree float *wt = g_new(float, k * n);
  for (int64_t j = 0; j < k; j++)
    for (int64_t r = 0; r < n; r++) wt[j * n + r] = dead[j] ? 0.0f : w[r * k + perm[j]];
  /* scale groups: fixed from W now, except per-group scales in natural order, chosen as each group starts */
  int64_t n_scales = pq_quant_n_scales(scheme, rows, cols, group_size), ss[1] = {n_scales};
  g_autoptr(PqTensor) scales = pq_tensor_new("scales", PQ_DTYPE_F32, 1, ss);
  g_autoptr(PqTensor) zeros = symmetric ? NULL : pq_tensor_new("zeros", PQ_DTYPE_U8, 1, ss);
  float *sc = pq_tensor_mutable_data(scales);
  uint8_t *zp = zeros ? pq_tensor_mutable_data(zeros) : NULL;
  g_autofree GroupParams *params = g_new(GroupParams, n * row_groups);
  gboolean lazy = scheme == PQ_QUANT_PER_GROUP && !act_order;
  if (scheme == PQ_QUANT_PER_TENSOR) {
    GroupParams p = choose(w, rows * cols, bits, symmetric, clip_steps);
    for (int64_t r = 0; r < n; r++) params[r] = p;
  } else if (!lazy)
    for (int64_t r = 0; r < n; r++)
      for (int64_t gi = 0; gi < row_groups; gi++) params[r * row_groups + gi] = choose(w + r * k + gi * group, group, bits, symmetric, clip_steps);
  g_autofree float *gv = g_new(float, group);
  g_autofree uint8_t *codes = g_new(uint8_t, n * k);
  g_autofree float *err = g_new(float, block * n);
  for (int64_t i1 = 0; i1 < k; i1 += block) {
    int64_t i2 = MIN(i1 + block, k);
    for (int64_t j = i1; j < i2; j++) {
      int64_t col = perm[j], gi = scheme == PQ_QUANT_PER_GROUP ? col / group : 0;
      float *wj = wt + j * n, *ej = err + (j - i1) * n, d = u[j * k + j];
      if (lazy && col % group == 0) /* this group's scales, from its columns as they stand now */
        for (int64_t r = 0; r < n; r++) {
          for (int64_t t = 0; t < group; t++) gv[t] = wt[(j + t) * n + r];
          params[r * row_groups + gi] = choose(gv, group, bits, symmetric, clip_steps);
        }
      for (int64_t r = 0; r < n; r++) {
        GroupParams p = params[r * row_groups + gi];
        uint8_t q = code_of(wj[r], p, bits);
        codes[r * k + col] = q;
        ej[r] = (wj[r] - p.scale * ((float)q - (float)p.zero)) / d;
      }
      for (int64_t l = j + 1; l < i2; l++) cblas_saxpy((int)n, -u[j * k + l], ej, 1, wt + l * n, 1); /* within the block */
    }
    if (i2 < k) /* the rest at once: Wt[i2:] -= U[i1:i2, i2:]ᵀ E */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(k - i2), (int)n, (int)(i2 - i1), -1.0f, u + i1 * k + i2, (int)k, err, (int)n,
                  1.0f, wt + i2 * n, (int)n);
  }
  for (int64_t r = 0; r < n; r++)
    for (int64_t gi = 0; gi < (scheme == PQ_QUANT_PER_TENSOR ? 1 : row_groups); gi++) {
      int64_t si = scheme == PQ_QUANT_PER_TENSOR ? 0 : r * row_groups + gi;
      sc[si] = params[r * row_groups + gi].scale;
      if (zp) zp[si] = params[r * row_groups + gi].zero;
    }
  g_autoptr(PqTensor) t = pq_tensor_new_packed(name, bits, ndim, shape, scheme, group_size, scales, zeros);
  uint8_t *packed = pq_tensor_mutable_data(t);
  for (int64_t r = 0; r < n; r++) pq_pack_codes(codes + r * k, k, bits, packed + r * rb);
  return g_steal_pointer(&t);
}

double pq_output_error(const float *w, const float *q, const float *gram, int64_t rows, int64_t k) {
  float *d = calloc((size_t)MAX(rows * k, 1), sizeof(float)), *dg = malloc(sizeof(float) * (size_t)MAX(rows * k, 1));
  double e = -1;
  if (d && dg) {
    for (int64_t i = 0; i < rows * k; i++) d[i] = w[i] - q[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)k, (int)k, 1.0f, d, (int)k, gram, (int)k, 0.0f, dg, (int)k);
    e = 0;
    for (int64_t i = 0; i < rows * k; i++) e += (double)d[i] * dg[i];
  }
  free(d);
  free(dg);
  return e;
}
