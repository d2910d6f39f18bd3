/* qkernels.h — linear layers with packed 2–8-bit weights: the activation row is quantized to int8
 * (symmetric, per row), codes and activations meet in int32 dot products per chunk (AVX-512 VNNI where the
 * CPU has it, else portable C computing the same integers), and each chunk's sum is scaled in float. */
#ifndef PQ_CPU_QKERNELS_H
#define PQ_CPU_QKERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define PQ_X86 1
#endif

static int pq_cpu_has_vnni(void) {
#ifdef PQ_X86
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return 0;
#endif
}

/* x → int8 with scale amax/127 (nearest-even rounding, as both paths do). Returns the scale. */
static float quantize_row_s8(const float *x, int64_t n, int8_t *q) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
  if (amax == 0.0f) {
    memset(q, 0, (size_t)n);
    return 0.0f;
  }
  float inv = 127.0f / amax;
  for (int64_t i = 0; i < n; i++) q[i] = (int8_t)lrintf(x[i] * inv);
  return amax / 127.0f;
}

static int32_t dot_u8s8_c(const uint8_t *a, const int8_t *b, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
  return s;
}

#ifdef PQ_X86
#define PQ_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

PQ_VNNI static float quantize_row_s8_avx512(const float *x, int64_t n, int8_t *q) {
  __m512 m = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  float amax = _mm512_reduce_max_ps(m);
  for (; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
  if (amax == 0.0f) {
    memset(q, 0, (size_t)n);
    return 0.0f;
  }
  float inv = 127.0f / amax;
  __m512 vinv = _mm512_set1_ps(inv);
  for (i = 0; i + 16 <= n; i += 16)
    _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv))));
  for (; i < n; i++) q[i] = (int8_t)lrintf(x[i] * inv);
  return amax / 127.0f;
}

PQ_VNNI static int32_t dot_u8s8_vnni(const uint8_t *a, const int8_t *b, int64_t n) {
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) {
    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(a + i + 64), _mm512_loadu_si512(b + i + 64));
  }
  for (; i + 64 <= n; i += 64) s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
  if (i + 32 <= n) {
    __m256i t = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)(a + i)),
                                    _mm256_loadu_si256((const __m256i *)(b + i)));
    s1 = _mm512_add_epi32(s1, _mm512_zextsi256_si512(t));
    i += 32;
  }
  int32_t s = _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
  for (; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
  return s;
}

/* 4-bit codes, two a byte (low nibble first), 64 at a time: widen each byte to 16 bits, put the high
 * nibble in the high byte, and the 64 bytes read in code order. */
PQ_VNNI static void unpack4_avx512(const uint8_t *packed, int64_t n, uint8_t *codes) {
  const __m512i lo = _mm512_set1_epi16(0x000f), hi = _mm512_set1_epi16(0x0f00);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(packed + i / 2)));
    __m512i v = _mm512_or_si512(_mm512_and_si512(w, lo), _mm512_and_si512(_mm512_slli_epi16(w, 4), hi));
    _mm512_storeu_si512(codes + i, v);
  }
  for (; i < n; i++) codes[i] = (uint8_t)((packed[i / 2] >> ((i & 1) * 4)) & 15);
}

/* 8-bit rows, chunk sums straight from the packed bytes */
#endif

static void unpack_row(const uint8_t *packed, int64_t n, int bits, uint8_t *codes, int simd) {
#ifdef PQ_X86
  if (simd && bits == 4) {
    unpack4_avx512(packed, n, codes);
    return;
  }
#endif
  (void)simd;
  pq_unpack_codes(packed, n, bits, codes);
}

static void run_packed_linear(const Step *st, const float *x, const float *b, float *y, int64_t batch, int simd) {
  const int64_t rows = batch * st->m_rows, n = st->n, k = st->k, L = st->q_chunk, nch = st->q_chunks;
  const int zdef = 1 << (st->q_bits - 1);
  int8_t *xq = st->q_x;
  int32_t *xsum = st->q_xsum;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * k;
    float *yr = y + r * n;
    float sx;
#ifdef PQ_X86
    sx = simd ? quantize_row_s8_avx512(xr, k, xq) : quantize_row_s8(xr, k, xq);
#else
    sx = quantize_row_s8(xr, k, xq);
#endif
    for (int64_t ch = 0; ch < nch; ch++) {
      int64_t len = ch == nch - 1 ? k - ch * L : L;
      int32_t s = 0;
      for (int64_t i = 0; i < len; i++) s += xq[ch * L + i];
      xsum[ch] = s;
    }
    for (int64_t o = 0; o < n; o++) {
      const uint8_t *codes = st->q_codes + o * st->q_row_bytes;
      if (st->q_bits != 8) {
        unpack_row(codes, k, st->q_bits, st->q_unpacked, simd);
        codes = st->q_unpacked;
      }
      float acc = 0.0f;
      for (int64_t ch = 0; ch < nch; ch++) {
        int64_t len = ch == nch - 1 ? k - ch * L : L;
        int64_t si = st->q_per == 2 ? o * st->q_groups_per_row + ch : st->q_per == 1 ? o : 0;
        int32_t z = st->q_zeros ? st->q_zeros[si] : zdef;
        int32_t d;
#ifdef PQ_X86
        d = simd ? dot_u8s8_vnni(codes + ch * L, xq + ch * L, len) : dot_u8s8_c(codes + ch * L, xq + ch * L, len);
#else
        d = dot_u8s8_c(codes + ch * L, xq + ch * L, len);
#endif
        acc += st->q_scales[si] * (float)(d - z * xsum[ch]);
      }
      float v = acc * sx + (b ? b[o] : 0.0f);
      yr[o] = st->fuse_relu && v < 0.0f ? 0.0f : v;
    }
  }
}

#endif
