/* qkernels.h — linear layers with packed 2–8-bit weights: the activation row is quantized to int8
 * (symmetric, per row), codes and activations meet in int32 dot products per chunk (AVX-512 VNNI where the
 * CPU has it, else portable C computing the same integers), and each chunk's sum is scaled in float. */
#ifndef PQ_CPU_QKERNELS_H
#define PQ_CPU_QKERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu-features.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define PQ_X86 1
#endif

/* How far ahead (bytes) the AVX2 kernels prefetch the codes they stream at one row: on an AMD EPYC (Zen 3)
 * the hardware's own prefetch left a 4096 x 4096 layer at 13 GB/s of the 16 that sgemv reads at; 4096 bytes
 * ahead, 20 GB/s (1.33 -> 0.80-0.90 ms, 4-bit groups of 128, one row); 512 ahead, no change. */
#define PREFETCH_AHEAD 4096


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

/* x → int8 with a fixed scale (static activation ranges), saturating at ±127. */
static void quantize_row_s8_fixed(const float *x, int64_t n, int8_t *q, float scale) {
  float inv = 1.0f / scale;
  for (int64_t i = 0; i < n; i++) {
    long v = lrintf(x[i] * inv);
    q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
  }
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
  if (i < n) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i)));
  float amax = _mm512_reduce_max_ps(m);
  if (amax == 0.0f) {
    memset(q, 0, (size_t)n);
    return 0.0f;
  }
  float inv = 127.0f / amax;
  __m512 vinv = _mm512_set1_ps(inv);
  for (i = 0; i + 16 <= n; i += 16)
    _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv))));
  if (i < n) {
    __mmask16 t = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_cvtsepi32_storeu_epi8(q + i, t, _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + i), vinv)));
  }
  return amax / 127.0f;
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

/* One output of a packed linear layer: per chunk, int32 lane sums (never reduced), scaled into a float
 * vector accumulator; a single horizontal sum per row. 4-bit rows are split into low and high nibbles
 * in registers and meet activations de-interleaved once per input row (xe: even, xo: odd indices). */
/* The common case: every chunk a whole number of 64-byte blocks; two chunks a step, two accumulators. */
PQ_VNNI static inline __m512i chunk_sum(const uint8_t *p, const int8_t *xe, const int8_t *xo, const int8_t *xq, int64_t bytes,
                                        int nib) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512i li = _mm512_setzero_si512();
  int64_t j = 0;
  if (nib) {
    for (; j + 64 <= bytes; j += 64) {
      __m512i v = _mm512_loadu_si512(p + j);
      li = _mm512_dpbusd_epi32(li, _mm512_and_si512(v, m4), _mm512_loadu_si512(xe + j));
      li = _mm512_dpbusd_epi32(li, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4), _mm512_loadu_si512(xo + j));
    }
    if (j < bytes) { /* the tail, masked: nothing read past the chunk */
      __mmask64 k = ((__mmask64)1 << (bytes - j)) - 1;
      __m512i v = _mm512_maskz_loadu_epi8(k, p + j);
      li = _mm512_dpbusd_epi32(li, _mm512_and_si512(v, m4), _mm512_maskz_loadu_epi8(k, xe + j));
      li = _mm512_dpbusd_epi32(li, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4), _mm512_maskz_loadu_epi8(k, xo + j));
    }
  } else {
    for (; j + 64 <= bytes; j += 64) li = _mm512_dpbusd_epi32(li, _mm512_loadu_si512(p + j), _mm512_loadu_si512(xq + j));
    if (j < bytes) {
      __mmask64 k = ((__mmask64)1 << (bytes - j)) - 1;
      li = _mm512_dpbusd_epi32(li, _mm512_maskz_loadu_epi8(k, p + j), _mm512_maskz_loadu_epi8(k, xq + j));
    }
  }
  return li;
}

PQ_VNNI static float row_dot_blocks(const uint8_t *codes, int nib, const int8_t *xq, const int8_t *xe, const int8_t *xo,
                                    const float *scales, int64_t sstep, int64_t nch, int64_t chunk_bytes) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  const int64_t xstep = chunk_bytes; /* activation bytes per chunk: xe/xo for nibbles, xq for bytes */
  int64_t ch = 0;
  for (; ch + 2 <= nch; ch += 2) {
    __m512i l0 = chunk_sum(codes + ch * chunk_bytes, xe + ch * xstep, xo + ch * xstep, xq + ch * xstep, chunk_bytes, nib);
    __m512i l1 = chunk_sum(codes + (ch + 1) * chunk_bytes, xe + (ch + 1) * xstep, xo + (ch + 1) * xstep, xq + (ch + 1) * xstep,
                           chunk_bytes, nib);
    a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l0), _mm512_set1_ps(scales[ch * sstep]), a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l1), _mm512_set1_ps(scales[(ch + 1) * sstep]), a1);
  }
  if (ch < nch) {
    __m512i l0 = chunk_sum(codes + ch * chunk_bytes, xe + ch * xstep, xo + ch * xstep, xq + ch * xstep, chunk_bytes, nib);
    a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l0), _mm512_set1_ps(scales[ch * sstep]), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

PQ_VNNI static float row_dot_vnni(const Step *st, const uint8_t *codes, int nib, const int8_t *xq, const int8_t *xe,
                                  const int8_t *xo, const float *xsumf, int64_t o) {
  const int64_t k = st->k, L = st->q_chunk, nch = st->q_chunks;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m256i m4y = _mm256_set1_epi8(0x0f);
  const int64_t s0 = st->q_per == 2 ? o * st->q_groups_per_row : st->q_per == 1 ? o : 0;
  const int64_t sstep = st->q_per == 2 ? 1 : 0; /* scale index step from chunk to chunk */
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  float tails = 0.0f, main = 0.0f;
  const int64_t chunk_bytes = nib ? L / 2 : L;
  const int blocks = k % L == 0 && (!nib || L % 2 == 0); /* whole chunks; tails are masked */
  if (blocks) main = row_dot_blocks(codes, nib, xq, xe, xo, st->q_scales + s0, sstep, nch, chunk_bytes);
  for (int64_t ch = 0; ch < (blocks ? 0 : nch); ch++) {
    const int64_t len = ch == nch - 1 ? k - ch * L : L;
    const float sc = st->q_scales[s0 + ch * sstep];
    __m512i li = _mm512_setzero_si512();
    int32_t tail = 0;
    if (nib) {
      const uint8_t *p = codes + ch * L / 2;
      const int8_t *e = xe + ch * L / 2, *od = xo + ch * L / 2;
      const int64_t pairs = len / 2;
      int64_t j = 0;
      for (; j + 64 <= pairs; j += 64) {
        __m512i v = _mm512_loadu_si512(p + j);
        li = _mm512_dpbusd_epi32(li, _mm512_and_si512(v, m4), _mm512_loadu_si512(e + j));
        li = _mm512_dpbusd_epi32(li, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4), _mm512_loadu_si512(od + j));
      }
      if (j + 32 <= pairs) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + j));
        __m256i t = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(v, m4y), _mm256_loadu_si256((const __m256i *)(e + j)));
        t = _mm256_dpbusd_epi32(t, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4y), _mm256_loadu_si256((const __m256i *)(od + j)));
        li = _mm512_add_epi32(li, _mm512_zextsi256_si512(t));
        j += 32;
      }
      for (; j < pairs; j++) tail += (p[j] & 15) * e[j] + (p[j] >> 4) * od[j];
      if (len & 1) tail += (p[j] & 15) * xq[ch * L + len - 1];
    } else {
      const uint8_t *a = codes + ch * L;
      const int8_t *b = xq + ch * L;
      int64_t i = 0;
      for (; i + 64 <= len; i += 64) li = _mm512_dpbusd_epi32(li, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
      if (i + 32 <= len) {
        __m256i t = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)(a + i)),
                                        _mm256_loadu_si256((const __m256i *)(b + i)));
        li = _mm512_add_epi32(li, _mm512_zextsi256_si512(t));
        i += 32;
      }
      for (; i < len; i++) tail += (int32_t)a[i] * (int32_t)b[i];
    }
    acc[ch & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(li), _mm512_set1_ps(sc), acc[ch & 1]);
    if (tail) tails += sc * (float)tail;
  }
  /* zero points: sum over chunks of scale * zero * (sum of the int8 activations in the chunk) */
  float zc;
  if (sstep == 0) {
    float xs = 0.0f;
    for (int64_t ch = 0; ch < nch; ch++) xs += xsumf[ch];
    zc = st->q_scales[s0] * (st->q_zeros ? (float)st->q_zeros[s0] : (float)(1 << (st->q_bits - 1))) * xs;
  } else {
    const float *sc = st->q_scales + s0;
    __m512 zacc = _mm512_setzero_ps();
    int64_t ch = 0;
    if (st->q_zeros) {
      const uint8_t *zp = st->q_zeros + s0;
      for (; ch + 16 <= nch; ch += 16) {
        __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(zp + ch))));
        zacc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_loadu_ps(sc + ch), z), _mm512_loadu_ps(xsumf + ch), zacc);
      }
      zc = _mm512_reduce_add_ps(zacc);
      for (; ch < nch; ch++) zc += sc[ch] * (float)zp[ch] * xsumf[ch];
    } else {
      for (; ch + 16 <= nch; ch += 16) zacc = _mm512_fmadd_ps(_mm512_loadu_ps(sc + ch), _mm512_loadu_ps(xsumf + ch), zacc);
      zc = _mm512_reduce_add_ps(zacc);
      for (; ch < nch; ch++) zc += sc[ch] * xsumf[ch];
      zc *= (float)(1 << (st->q_bits - 1));
    }
  }
  return (blocks ? main : _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))) + tails - zc;
}

#endif

/* y's row stride: n, or the whole layer's outputs where a step covers a range of them (an output split) */
static inline int64_t packed_ldy(const Step *st) { return st->q_ldy ? st->q_ldy : st->n; }

/* One output of a layer with one scale per row (or per tensor): the integer dot product of its codes with
 * an int8 input row, corrected for the zero point, scaled, plus bias, ReLU where fused. */
static inline float finish_output(const Step *st, int64_t o, int32_t dot, int32_t xsum, float sx, const float *b) {
  int64_t si = st->q_per == 1 ? o : 0;
  int32_t z = st->q_zeros ? st->q_zeros[si] : 1 << (st->q_bits - 1);
  float v = st->q_scales[si] * (float)(dot - z * xsum) * sx + (b ? b[o] : 0.0f);
  return st->fuse_relu && v < 0.0f ? 0.0f : v;
}

#ifdef PQ_X86
/* The byte permutation and bit shifts that pull 8 codes of `bits` out of each 64-bit lane (below). */
static void vbmi_tables(int bits, uint8_t perm[64], uint8_t shift[64]) {
  for (int lane = 0; lane < 8; lane++)
    for (int j = 0; j < 8; j++) {
      perm[lane * 8 + j] = (uint8_t)(j < bits ? lane * bits + j : 0);
      shift[lane * 8 + j] = (uint8_t)(j * bits);
    }
}

/* Any width b: 8 codes live in b consecutive bytes. Gather each group's b bytes into its own 64-bit lane
 * (vpermb), then pull 8 bit-fields at offsets 0, b, …, 7b out of every lane (vpmultishiftqb) and mask. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static void unpack_vbmi(const uint8_t *packed, int64_t n, int bits,
                                                                                uint8_t *codes) {
  uint8_t perm[64], shift[64];
  vbmi_tables(bits, perm, shift);
  const __m512i vperm = _mm512_loadu_si512(perm), vshift = _mm512_loadu_si512(shift);
  const __m512i mask = _mm512_set1_epi8((char)((1u << bits) - 1));
  const __mmask64 load = bits == 8 ? ~(__mmask64)0 : (((__mmask64)1 << (8 * bits)) - 1);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) { /* 64 codes from 8·bits bytes, loaded without reading past them */
    __m512i v = _mm512_maskz_loadu_epi8(load, packed + i / 8 * bits);
    v = _mm512_permutexvar_epi8(vperm, v);
    _mm512_storeu_si512(codes + i, _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, v), mask));
  }
  if (i < n) { /* the last codes the same way: only their bytes read, only they written */
    int64_t left = n - i, bytes = (left * bits + 7) / 8;
    __m512i v = _mm512_maskz_loadu_epi8(((__mmask64)1 << bytes) - 1, packed + i / 8 * bits);
    v = _mm512_permutexvar_epi8(vperm, v);
    _mm512_mask_storeu_epi8(codes + i, ((__mmask64)1 << left) - 1, _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, v), mask));
  }
}

static int pq_cpu_has_vbmi(void) { return __builtin_cpu_supports("avx512vbmi"); }

/* One input row against rows of 2–7-bit codes, one scale per row: the codes are pulled out of the packed
 * bytes in registers (vpermb + vpmultishiftqb, as unpack_vbmi does) right before each dot product, four
 * weight rows a pass sharing each activation block; nothing is unpacked to memory. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi"))) static void rows_vbmi(const Step *st, const int8_t *xq,
                                                                                                 int32_t xsum, float sx, const float *b,
                                                                                                 float *y) {
  const int64_t n = st->n, k = st->k, rb = st->q_row_bytes;
  const int bits = st->q_bits;
  uint8_t perm[64], shift[64];
  vbmi_tables(bits, perm, shift);
  const __m512i vperm = _mm512_loadu_si512(perm), vshift = _mm512_loadu_si512(shift);
  const __m512i mask = _mm512_set1_epi8((char)((1u << bits) - 1));
  const __mmask64 load = ((__mmask64)1 << (8 * bits)) - 1;
  const int64_t full = k - k % 64, left = k % 64;
  const __mmask64 xtail = left ? ((__mmask64)1 << left) - 1 : 0, wtail = left ? ((__mmask64)1 << ((left * bits + 7) / 8)) - 1 : 0;
#define CODES(row, j, m) _mm512_and_si512(_mm512_multishift_epi64_epi8(vshift, _mm512_permutexvar_epi8(vperm, _mm512_maskz_loadu_epi8(m, (row) + (j) / 8 * bits))), mask)
  int64_t o = 0;
  for (; o + 4 <= n; o += 4) {
    const uint8_t *r0 = st->q_codes + o * rb, *r1 = r0 + rb, *r2 = r1 + rb, *r3 = r2 + rb;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < full; j += 64) {
      __m512i x = _mm512_loadu_si512(xq + j);
      a0 = _mm512_dpbusd_epi32(a0, CODES(r0, j, load), x);
      a1 = _mm512_dpbusd_epi32(a1, CODES(r1, j, load), x);
      a2 = _mm512_dpbusd_epi32(a2, CODES(r2, j, load), x);
      a3 = _mm512_dpbusd_epi32(a3, CODES(r3, j, load), x);
    }
    if (left) { /* codes past k decode to anything: their activations load as 0 */
      __m512i x = _mm512_maskz_loadu_epi8(xtail, xq + full);
      a0 = _mm512_dpbusd_epi32(a0, CODES(r0, full, wtail), x);
      a1 = _mm512_dpbusd_epi32(a1, CODES(r1, full, wtail), x);
      a2 = _mm512_dpbusd_epi32(a2, CODES(r2, full, wtail), x);
      a3 = _mm512_dpbusd_epi32(a3, CODES(r3, full, wtail), x);
    }
    int32_t d[4] = {_mm512_reduce_add_epi32(a0), _mm512_reduce_add_epi32(a1), _mm512_reduce_add_epi32(a2), _mm512_reduce_add_epi32(a3)};
    for (int t = 0; t < 4; t++) y[o + t] = finish_output(st, o + t, d[t], xsum, sx, b);
  }
  for (; o < n; o++) {
    const uint8_t *r0 = st->q_codes + o * rb;
    __m512i a0 = _mm512_setzero_si512();
    for (int64_t j = 0; j < full; j += 64) a0 = _mm512_dpbusd_epi32(a0, CODES(r0, j, load), _mm512_loadu_si512(xq + j));
    if (left) a0 = _mm512_dpbusd_epi32(a0, CODES(r0, full, wtail), _mm512_maskz_loadu_epi8(xtail, xq + full));
    y[o] = finish_output(st, o, _mm512_reduce_add_epi32(a0), xsum, sx, b);
  }
#undef CODES
}
#endif

#ifdef PQ_X86
static void unpack_vbmi(const uint8_t *packed, int64_t n, int bits, uint8_t *codes);
static int pq_cpu_has_vbmi(void);

/* Rows o..o+count-1 unpacked to one byte a code, k + 64 bytes apart, in the step's buffer. */
static const uint8_t *unpack_rows(const Step *st, int64_t o, int count, int vbmi) {
  for (int t = 0; t < count; t++) {
    const uint8_t *src = st->q_codes + (o + t) * st->q_row_bytes;
    uint8_t *dst = st->q_unpacked + t * (st->k + 64);
    if (vbmi) unpack_vbmi(src, st->k, st->q_bits, dst);
    else pq_unpack_codes(src, st->k, st->q_bits, dst);
  }
  return st->q_unpacked;
}

/* One scale per row (per channel or per tensor), rows of at most one chunk: four outputs a pass, each
 * activation block loaded once for all four; integer sums exact, one float step per output. Codes of
 * fewer than 8 bits are unpacked four rows at a time into the step's buffer first. */
PQ_VNNI static void rows8_vnni(const Step *st, const int8_t *xq, int32_t xsum, float sx, const float *b, float *y) {
  const int64_t n = st->n, k = st->k;
  const int64_t rb = st->q_bits == 8 ? st->q_row_bytes : k + 64; /* unpacked rows: one byte a code */
  const int vbmi = st->q_bits != 8 && pq_cpu_has_vbmi();
#define ROWS(o, count)                                                                                             \
  (st->q_bits == 8 ? st->q_codes + (o) * st->q_row_bytes : unpack_rows(st, o, count, vbmi))
  const __mmask64 tail = k % 64 ? (((__mmask64)1 << (k % 64)) - 1) : 0;
  const int64_t full = k - k % 64;
  int64_t o = 0;
  for (; o + 4 <= n; o += 4) {
    const uint8_t *r0 = ROWS(o, 4), *r1 = r0 + rb, *r2 = r1 + rb, *r3 = r2 + rb;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < full; j += 64) {
      __m512i x = _mm512_loadu_si512(xq + j);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(r0 + j), x);
      a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(r1 + j), x);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512(r2 + j), x);
      a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512(r3 + j), x);
    }
    if (tail) {
      __m512i x = _mm512_maskz_loadu_epi8(tail, xq + full);
      a0 = _mm512_dpbusd_epi32(a0, _mm512_maskz_loadu_epi8(tail, r0 + full), x);
      a1 = _mm512_dpbusd_epi32(a1, _mm512_maskz_loadu_epi8(tail, r1 + full), x);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_maskz_loadu_epi8(tail, r2 + full), x);
      a3 = _mm512_dpbusd_epi32(a3, _mm512_maskz_loadu_epi8(tail, r3 + full), x);
    }
    int32_t d[4] = {_mm512_reduce_add_epi32(a0), _mm512_reduce_add_epi32(a1), _mm512_reduce_add_epi32(a2), _mm512_reduce_add_epi32(a3)};
    for (int t = 0; t < 4; t++) y[o + t] = finish_output(st, o + t, d[t], xsum, sx, b);
  }
  for (; o < n; o++) {
    const uint8_t *r0 = ROWS(o, 1);
    __m512i a0 = _mm512_setzero_si512();
    for (int64_t j = 0; j < full; j += 64) a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(r0 + j), _mm512_loadu_si512(xq + j));
    if (tail) a0 = _mm512_dpbusd_epi32(a0, _mm512_maskz_loadu_epi8(tail, r0 + full), _mm512_maskz_loadu_epi8(tail, xq + full));
    y[o] = finish_output(st, o, _mm512_reduce_add_epi32(a0), xsum, sx, b);
  }
#undef ROWS
}
#endif

#ifdef PQ_X86
/* Several input rows at once (batches): four weight rows × four input rows a pass, sixteen accumulators, so
 * every weight block loaded serves four inputs. xq holds `rows` int8 rows `k` apart, with their sums and
 * scales. Rows and outputs left over take the one-row path. */
PQ_VNNI static void rows8_vnni_batch(const Step *st, const int8_t *xq, const int32_t *xsum, const float *sx, int64_t rows,
                                     const float *b, float *y) {
  const int64_t n = st->n, k = st->k, full = k - k % 64, ldy = packed_ldy(st);
  const __mmask64 tail = k % 64 ? (((__mmask64)1 << (k % 64)) - 1) : 0;
  const int64_t rb = st->q_bits == 8 ? st->q_row_bytes : k + 64;
  const int vbmi = st->q_bits != 8 && pq_cpu_has_vbmi();
  const int64_t rows4 = rows - rows % 4;
  for (int64_t o = 0; o < n; o += 4) {
    int oc = (int)(n - o < 4 ? n - o : 4);
    const uint8_t *w0 = st->q_bits == 8 ? st->q_codes + o * st->q_row_bytes : unpack_rows(st, o, oc, vbmi);
    const uint8_t *w[4];
    for (int t = 0; t < 4; t++) w[t] = w0 + (t < oc ? t : 0) * rb; /* a short last group repeats row 0, unused */
    for (int64_t r = 0; r < rows4; r += 4) {
      const int8_t *x0 = xq + r * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
      __m512i a[4][4];
      for (int i = 0; i < 4; i++)
        for (int t = 0; t < 4; t++) a[i][t] = _mm512_setzero_si512();
      for (int64_t j = 0; j <= full; j += 64) {
        __mmask64 m = j < full ? ~(__mmask64)0 : tail;
        if (!m) break;
        __m512i xv[4] = {_mm512_maskz_loadu_epi8(m, x0 + j), _mm512_maskz_loadu_epi8(m, x1 + j), _mm512_maskz_loadu_epi8(m, x2 + j),
                         _mm512_maskz_loadu_epi8(m, x3 + j)};
        for (int t = 0; t < 4; t++) {
          __m512i wv = _mm512_maskz_loadu_epi8(m, w[t] + j);
          for (int i = 0; i < 4; i++) a[i][t] = _mm512_dpbusd_epi32(a[i][t], wv, xv[i]);
        }
      }
      for (int i = 0; i < 4; i++)
        for (int t = 0; t < oc; t++) y[(r + i) * ldy + o + t] = finish_output(st, o + t, _mm512_reduce_add_epi32(a[i][t]), xsum[r + i], sx[r + i], b);
    }
  }
  for (int64_t r = rows4; r < rows; r++) {
    if (vbmi) rows_vbmi(st, xq + r * k, xsum[r], sx[r], b, y + r * ldy);
    else rows8_vnni(st, xq + r * k, xsum[r], sx[r], b, y + r * ldy);
  }
}
#endif

static void unpack_row(const uint8_t *packed, int64_t n, int bits, uint8_t *codes, int simd) {
#ifdef PQ_X86
  if (simd && bits == 4) {
    unpack4_avx512(packed, n, codes);
    return;
  }
  if (simd && pq_cpu_has_vbmi()) {
    unpack_vbmi(packed, n, bits, codes);
    return;
  }
#endif
  (void)simd;
  pq_unpack_codes(packed, n, bits, codes);
}

/* Where output o's scale (and zero point) for its chunk or group ch is: a group's, a row's, or the one */
static inline int64_t scale_index(const Step *st, int64_t o, int64_t ch) {
  return st->q_per == PQ_QUANT_PER_GROUP ? o * st->q_groups_per_row + ch : st->q_per == PQ_QUANT_PER_CHANNEL ? o : 0;
}

/* One chunk's (or group's) part of output o in the portable path's float steps: scale · (dot − zero · Σx) */
static inline float chunk_term(const Step *st, int64_t o, int64_t ch, int32_t dot, int32_t xsum) {
  const int64_t si = scale_index(st, o, ch);
  const int32_t z = st->q_zeros ? st->q_zeros[si] : 1 << (st->q_bits - 1);
  return st->q_scales[si] * (float)(dot - z * xsum);
}

/* An output from the sum of its chunk terms and the input row's scale: plus bias, ReLU where fused */
static inline float packed_out(const Step *st, float acc, float sx, const float *b, int64_t o) {
  const float v = acc * sx + (b ? b[o] : 0.0f);
  return st->fuse_relu && v < 0.0f ? 0.0f : v;
}

static float row_dot_c(const Step *st, const uint8_t *codes, const int8_t *xq, const int32_t *xsum, int64_t o) {
  const int64_t k = st->k, L = st->q_chunk, nch = st->q_chunks;
  float acc = 0.0f;
  for (int64_t ch = 0; ch < nch; ch++) {
    int64_t len = ch == nch - 1 ? k - ch * L : L;
    acc += chunk_term(st, o, ch, dot_u8s8_c(codes + ch * L, xq + ch * L, len), xsum[ch]);
  }
  return acc;
}


#ifdef PQ_X86
/* ---- AVX2 (CPUs without AVX-512 VNNI: most x86 laptops and desktops) ------------------------------------------
 * The portable path's integers and its float steps in the same order, so the two agree bit for bit: the u8
 * codes and int8 inputs are widened to 16 bits and multiplied in pairs (vpmaddwd: |pair sum| <= 2 * 255 * 127,
 * exact) into int32 sums; codes below 8 bits are unpacked eight at a time from their b bytes. */
#define PQ_AVX2 __attribute__((target("avx2")))


/* quantize_row_s8's numbers, eight at a time: the same maximum (NaNs passed over, as fmaxf does), the same
 * product rounded to nearest even (|x · inv| <= 127: nothing saturates) */
PQ_AVX2 static float quantize_row_s8_avx2(const float *x, int64_t n, int8_t *q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float amax = _mm_cvtss_f32(h);
  for (int64_t j = i; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
  if (amax == 0.0f) {
    memset(q, 0, (size_t)n);
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(void *)(q + i), _mm_packs_epi16(w, w));
  }
  for (; i < n; i++) q[i] = (int8_t)lrintf(x[i] * inv);
  return amax / 127.0f;
}

/* the four sums d[t] = sum over i < n of r[t][i] * x[i], t < 4 */
PQ_AVX2 static inline __attribute__((always_inline)) __m128i dot4_sums_avx2(const uint8_t *const r[4], const int8_t *x, int64_t n) {
  __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  int64_t i = 0;
  const __m256i lo8 = _mm256_set1_epi16(0xff);
  for (; i + 32 <= n; i += 32) { /* even and odd bytes apart in 16-bit lanes (in-lane ops, no widening shuffle) */
    const __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
    const __m256i xe = _mm256_srai_epi16(_mm256_slli_epi16(xv, 8), 8), xo = _mm256_srai_epi16(xv, 8);
    for (int t = 0; t < 4; t++) {
      _mm_prefetch((const char *)(r[t] + i + PREFETCH_AHEAD), _MM_HINT_T0);
      const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(r[t] + i));
      a[t] = _mm256_add_epi32(a[t], _mm256_add_epi32(_mm256_madd_epi16(_mm256_and_si256(v, lo8), xe), _mm256_madd_epi16(_mm256_srli_epi16(v, 8), xo)));
    }
  }
  for (; i + 16 <= n; i += 16) {
    const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + i)));
    for (int t = 0; t < 4; t++)
      a[t] = _mm256_add_epi32(a[t], _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(r[t] + i))), xv));
  }
  /* the four sums at once: pairwise adds leave [a0 a1 a2 a3] in each 128-bit half */
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  __m128i d = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  if (i < n) {
    int32_t tail[4] = {0, 0, 0, 0};
    for (int t = 0; t < 4; t++)
      for (int64_t j = i; j < n; j++) tail[t] += (int32_t)r[t][j] * (int32_t)x[j];
    d = _mm_add_epi32(d, _mm_loadu_si128((const __m128i *)(const void *)tail));
  }
  return d;
}

/* d[t] = sum over i < n of r[t][i] * x[i], t < 4 */
PQ_AVX2 static void dot4_avx2(const uint8_t *const r[4], const int8_t *x, int64_t n, int32_t d[4]) {
  _mm_storeu_si128((__m128i *)(void *)d, dot4_sums_avx2(r, x, n));
}

/* How dot4_codes_avx2 finds codes of `bits` in their bytes: sixteen codes take 2·bits bytes, loaded into both
 * 128-bit halves; ctl gives each 16-bit lane the two bytes holding its code (code j of a half starts at bit
 * s = j·bits mod 8 of its first byte), mul is 2^(16 - bits - s), which puts the code at the top of the lane and
 * drops the bits above it (a shift by 16 - bits then brings it down). */
typedef struct {
  uint8_t ctl[32];
  int16_t mul[16];
  int bits;
} CodeLanes;

static void code_lanes(int bits, CodeLanes *cl) {
  cl->bits = bits;
  for (int h = 0; h < 2; h++)
    for (int j = 0; j < 8; j++) {
      cl->ctl[h * 16 + 2 * j] = (uint8_t)(h * bits + j * bits / 8);
      cl->ctl[h * 16 + 2 * j + 1] = (uint8_t)(h * bits + j * bits / 8 + 1);
      cl->mul[h * 8 + j] = (int16_t)(1 << (16 - bits - j * bits % 8));
    }
}

/* chunk_term for four outputs (rows row[t] of codes) at once, lane by lane, added to acc: scale · (float)(dot −
 * zero · Σx), the same operations in the same order */
PQ_AVX2 static inline __attribute__((always_inline)) __m128 chunk_terms4(const Step *st, const int64_t row[4], int64_t c, __m128i d, int32_t xsum,
                                                                       __m128 acc) {
  int64_t si[4];
  for (int t = 0; t < 4; t++) si[t] = scale_index(st, row[t], c);
  const __m128 sc = _mm_setr_ps(st->q_scales[si[0]], st->q_scales[si[1]], st->q_scales[si[2]], st->q_scales[si[3]]);
  const __m128i z = st->q_zeros ? _mm_setr_epi32(st->q_zeros[si[0]], st->q_zeros[si[1]], st->q_zeros[si[2]], st->q_zeros[si[3]])
                                : _mm_set1_epi32(1 << (st->q_bits - 1));
  return _mm_add_ps(acc, _mm_mul_ps(sc, _mm_cvtepi32_ps(_mm_sub_epi32(d, _mm_mullo_epi32(z, _mm_set1_epi32(xsum))))));
}

/* Four outputs (rows o…o+3 of codes, p[t] their first bytes; past cnt the first repeated) against one int8 input
 * row x: y[t] = the sum over chunks of chunk_term, the codes (2..7 bits) decoded in registers straight into
 * 16-bit lanes, sixteen a pass (CodeLanes), multiplied in pairs as dot4_avx2 does, and each chunk's float step
 * done for the four outputs at once (the same operations as chunk_term, lane by lane). A chunk must start on
 * a byte (L · bits a multiple of 8); a chunk's last codes short of sixteen are decoded with the next ones and
 * met by zeros. Loads stay below `end`: the codes whose 16-byte load would pass it are unpacked as
 * pq_unpack_codes does. */
PQ_AVX2 static void quad_codes_avx2(const Step *st, const CodeLanes *cl, const uint8_t *const p[4], int64_t o, int cnt, const int8_t *x,
                                    const int32_t *xsum, const uint8_t *end, float y[4]) {
  const int bits = cl->bits;
  const int64_t k = st->k, L = st->q_chunk, nch = st->q_chunks;
  const __m256i vctl = _mm256_loadu_si256((const __m256i *)(const void *)cl->ctl), vmul = _mm256_loadu_si256((const __m256i *)(const void *)cl->mul);
  const __m128i down = _mm_cvtsi32_si128(16 - bits);
  const uint8_t *last = p[0];
  for (int t = 1; t < 4; t++)
    if (p[t] > last) last = p[t];
  const int64_t max_off = end - last - 16; /* the last offset from p[t] a 16-byte load may start at, from every row */
  int64_t row[4];
  for (int t = 0; t < 4; t++) row[t] = o + (t < cnt ? t : 0);
  __m128 acc = _mm_setzero_ps();
  for (int64_t c = 0; c < nch; c++) {
    const int64_t i0 = c * L, len = k - i0 < L ? k - i0 : L, base = i0 * bits / 8, full = len / 16;
    __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    int64_t g = 0, done = 0;
#define PQ_DECODE4(xv, off)                                                                                              \
  for (int t = 0; t < 4; t++) {                                                                                          \
    _mm_prefetch((const char *)(p[t] + (off) + PREFETCH_AHEAD), _MM_HINT_T0);                                           \
    const __m256i v_ = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(p[t] + (off))));     \
    const __m256i code_ = _mm256_srl_epi16(_mm256_mullo_epi16(_mm256_shuffle_epi8(v_, vctl), vmul), down);              \
    a[t] = _mm256_add_epi32(a[t], _mm256_madd_epi16(code_, xv));                                                        \
  }
    for (; g < full && base + g * 2 * bits <= max_off; g++) {
      const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + i0 + g * 16)));
      PQ_DECODE4(xv, base + g * 2 * bits)
    }
    done = g * 16;
    if (g == full && done < len && base + g * 2 * bits <= max_off) { /* the chunk's last codes, beside zeros */
      int8_t xt[16] = {0};
      memcpy(xt, x + i0 + done, (size_t)(len - done));
      const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)xt));
      PQ_DECODE4(xv, base + g * 2 * bits)
      done = len;
    }
#undef PQ_DECODE4
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    __m128i d = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    if (done < len) { /* (done a multiple of 16: byte-aligned) */
      int32_t dt[4];
      _mm_storeu_si128((__m128i *)(void *)dt, d);
      uint8_t tail[64];
      for (int64_t i = done; i < len; i += 64) {
        const int64_t m = len - i < 64 ? len - i : 64;
        for (int t = 0; t < 4; t++) {
          pq_unpack_codes(p[t] + base + i / 8 * bits, m, bits, tail);
          for (int64_t j = 0; j < m; j++) dt[t] += (int32_t)tail[j] * (int32_t)x[i0 + i + j];
        }
      }
      d = _mm_loadu_si128((const __m128i *)(const void *)dt);
    }
    acc = chunk_terms4(st, row, c, d, xsum[c], acc);
  }
  _mm_storeu_ps(y, acc);
}

/* unpack_avx2's codes from i on, `per` codes a lane (8 or 4: a constant where it is inlined, so that the
 * loop over a lane's codes unrolls); returns where it stopped */
PQ_AVX2 static inline __attribute__((always_inline)) int64_t unpack_lanes_avx2(const uint8_t *packed, int64_t n, int bits, int64_t row_bytes,
                                                                               uint8_t *codes, int64_t i, const int per) {
  const int group_bytes = per * bits / 8; /* the bytes a lane's codes take */
  uint8_t ctl[32];
  for (int lane = 0; lane < 2; lane++)
    for (int g = 0; g < 16 / per; g++)
      for (int j = 0; j < per; j++) ctl[lane * 16 + g * per + j] = (uint8_t)(j < group_bytes ? g * group_bytes + j : 0x80);
  const __m256i vctl = _mm256_loadu_si256((const __m256i *)(const void *)ctl);
  __m256i mask[8];
  __m128i count[8];
  for (int j = 0; j < per; j++) {
    const uint64_t m = (((uint64_t)1 << bits) - 1) << (8 * j);
    mask[j] = _mm256_set1_epi64x((long long)(per == 8 ? m : m | m << 32));
    count[j] = _mm_cvtsi32_si128(j * (8 - bits));
  }
  for (; i + 32 <= n && i / 8 * bits + 2 * bits + 16 <= row_bytes; i += 32) { /* 32 codes from 4·bits bytes */
    const uint8_t *p = packed + i / 8 * bits;
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p)),
                                        _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * bits)), 1);
    v = _mm256_shuffle_epi8(v, vctl);
    __m256i out = _mm256_and_si256(v, mask[0]);
    for (int j = 1; j < per; j++) out = _mm256_or_si256(out, _mm256_and_si256(_mm256_sll_epi64(v, count[j]), mask[j]));
    _mm256_storeu_si256((__m256i *)(void *)(codes + i), out);
  }
  return i;
}

/* n codes of `bits` (2..7) from a row of row_bytes bytes: each 64-bit lane takes the b bytes of eight codes
 * (vpshufb), code j is shifted from bit j·b to bit 8j and masked — or, for even widths, each 32-bit lane the
 * b/2 bytes of four codes (three shifts instead of seven; a 64-bit shift carries bits of the lower 32 into the
 * upper only below the upper's first code); 4-bit nibbles 64 at a time. The last codes, whose loads would
 * pass the row's end, as pq_unpack_codes does. */
PQ_AVX2 static void unpack_avx2(const uint8_t *packed, int64_t n, int bits, int64_t row_bytes, uint8_t *codes) {
  int64_t i = 0;
  if (bits == 4) /* two codes a byte, low nibble first: 64 codes from 32 bytes, nibbles split and interleaved back */
    for (; i + 64 <= n && i / 2 + 32 <= row_bytes; i += 64) {
      const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(packed + i / 2)), m4 = _mm256_set1_epi8(0x0f);
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      const __m256i a = _mm256_unpacklo_epi8(lo, hi), b = _mm256_unpackhi_epi8(lo, hi); /* codes 0-15 | 32-47, 16-31 | 48-63 */
      _mm256_storeu_si256((__m256i *)(void *)(codes + i), _mm256_permute2x128_si256(a, b, 0x20));
      _mm256_storeu_si256((__m256i *)(void *)(codes + i + 32), _mm256_permute2x128_si256(a, b, 0x31));
    }
  i = bits % 2 ? unpack_lanes_avx2(packed, n, bits, row_bytes, codes, i, 8) : unpack_lanes_avx2(packed, n, bits, row_bytes, codes, i, 4);
  if (i < n) pq_unpack_codes(packed + i / 8 * bits, n - i, bits, codes + i); /* (i is a multiple of 32: byte-aligned) */
}

/* Rows of codes o..o+3 (fewer at the end: the first repeated) as one byte a code, for the AVX2 kernels */
static void avx2_quad(const Step *st, int64_t o, int cnt, const uint8_t *r[4]) {
  const int64_t rb = st->q_bits == 8 ? st->q_row_bytes : st->k + 64;
  for (int t = 0; t < 4; t++) {
    if (st->q_bits == 8) {
      r[t] = st->q_codes + (o + (t < cnt ? t : 0)) * rb;
      continue;
    }
    r[t] = st->q_unpacked + (t < cnt ? t : 0) * rb;
    if (t < cnt) unpack_avx2(st->q_codes + (o + t) * st->q_row_bytes, st->k, st->q_bits, st->q_row_bytes, st->q_unpacked + t * rb);
  }
}

/* One group of four outputs (their codes a byte each, r[t]; past cnt the first repeated) against `rows` rows
 * quantized beforehand (xsum: a sum a chunk a row): the integer sums and float steps of rows_avx2. */
PQ_AVX2 static void quad_rows_avx2(const Step *st, const uint8_t *const r[4], int64_t o, int cnt, const int8_t *xq, const int32_t *xsum,
                                   const float *sx, int64_t rows, const float *b, float *y) {
  const int64_t k = st->k, L = st->q_chunk, nch = st->q_chunks, ldy = packed_ldy(st);
  int64_t row[4];
  for (int t = 0; t < 4; t++) row[t] = o + (t < cnt ? t : 0);
  for (int64_t i = 0; i < rows; i++) {
    __m128 acc = _mm_setzero_ps();
    for (int64_t c = 0; c < nch; c++) {
      const int64_t len = k - c * L < L ? k - c * L : L;
      const uint8_t *rc[4] = {r[0] + c * L, r[1] + c * L, r[2] + c * L, r[3] + c * L};
      acc = chunk_terms4(st, row, c, dot4_sums_avx2(rc, xq + i * k + c * L, len), xsum[i * nch + c], acc);
    }
    float a[4];
    _mm_storeu_ps(a, acc);
    for (int t = 0; t < cnt; t++) y[i * ldy + o + t] = packed_out(st, a[t], sx[i], b, o + t);
  }
}

/* Rows quantized beforehand: each group of four outputs unpacked once for the whole batch, then every row
 * against it (quad_rows_avx2). y's rows packed_ldy() apart. */
static void rows_avx2_batch(const Step *st, const int8_t *xq, const int32_t *xsum, const float *sx, int64_t rows, const float *b,
                            float *y) {
  if (st->q_chunks == 1) { /* one chunk a row: chunk_term and packed_out written out with the invariants hoisted
                              (the chunked loop of quad_rows_avx2, or calling the two, measured 11-15% slower here:
                              default MLP, 8-bit, batch 64, 130 against 146-151 us) */
    const int64_t n = st->n, k = st->k, ldy = packed_ldy(st);
    const int zdef = 1 << (st->q_bits - 1);
    for (int64_t o = 0; o < n; o += 4) {
      const int cnt = (int)(n - o < 4 ? n - o : 4);
      const uint8_t *r[4];
      avx2_quad(st, o, cnt, r);
      for (int64_t row = 0; row < rows; row++) {
        int32_t d[4];
        dot4_avx2(r, xq + row * k, k, d);
        for (int t = 0; t < cnt; t++) {
          const int64_t si = st->q_per == 1 ? o + t : 0;
          const int32_t z = st->q_zeros ? st->q_zeros[si] : zdef;
          const float acc = 0.0f + st->q_scales[si] * (float)(d[t] - z * xsum[row]);
          const float v = acc * sx[row] + (b ? b[o + t] : 0.0f);
          y[row * ldy + o + t] = st->fuse_relu && v < 0.0f ? 0.0f : v;
        }
      }
    }
    return;
  }
  for (int64_t o = 0; o < st->n; o += 4) {
    const int cnt = (int)(st->n - o < 4 ? st->n - o : 4);
    const uint8_t *r[4];
    avx2_quad(st, o, cnt, r);
    quad_rows_avx2(st, r, o, cnt, xq, xsum, sx, rows, b, y);
  }
}

/* One input row against every output, four outputs a pass sharing the input's loads: codes below 8 bits decoded
 * in registers (quad_codes_avx2), else four rows of codes a byte each against the row as the batch kernel does
 * (quad_rows_avx2); each chunk's integer sum and each output as the portable path makes them. */
static void rows_avx2(const Step *st, const int8_t *xq, const int32_t *xsum, float sx, const float *b, float *y) {
  const int64_t n = st->n, L = st->q_chunk, nch = st->q_chunks;
  /* codes below 8 bits decoded in registers where every chunk starts on a byte, else unpacked first */
  const int in_regs = st->q_bits != 8 && (nch == 1 || L * st->q_bits % 8 == 0);
  CodeLanes cl;
  if (in_regs) code_lanes(st->q_bits, &cl);
  const uint8_t *end = st->q_codes + n * st->q_row_bytes;
  for (int64_t o = 0; o < n; o += 4) {
    const int cnt = (int)(n - o < 4 ? n - o : 4);
    const uint8_t *r[4];
    if (!in_regs) { /* the batch kernel's pass over one row */
      avx2_quad(st, o, cnt, r);
      quad_rows_avx2(st, r, o, cnt, xq, xsum, &sx, 1, b, y);
      continue;
    }
    float acc[4];
    for (int t = 0; t < 4; t++) r[t] = st->q_codes + (o + (t < cnt ? t : 0)) * st->q_row_bytes;
    quad_codes_avx2(st, &cl, r, o, cnt, xq, xsum, end, acc);
    for (int t = 0; t < cnt; t++) y[o + t] = packed_out(st, acc[t], sx, b, o + t);
  }
}
#endif

/* One input row of k values to int8 (first multiplied by a folded mul's vector, where there is one): with the
 * layer's fixed scale (static activations, saturating), else with its own (amax / 127, SIMD where asked); returns
 * the scale. */
static float quantize_input_row(const Step *st, const float *x, int8_t *q, int simd) {
  if (st->q_in_scale) { /* a mul folded in (fuse_input_scale) */
    for (int64_t i = 0; i < st->k; i++) st->q_xf[i] = x[i] * st->q_in_scale[i];
    x = st->q_xf;
  }
  if (st->q_act_scale > 0) {
    quantize_row_s8_fixed(x, st->k, q, st->q_act_scale);
    return st->q_act_scale;
  }
#ifdef PQ_X86
  if (simd) return quantize_row_s8_avx512(x, st->k, q);
  if (st->q_avx2) return quantize_row_s8_avx2(x, st->k, q);
#endif
  (void)simd;
  return quantize_row_s8(x, st->k, q);
}

static int32_t sum_s8(const int8_t *q, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; i++) s += q[i];
  return s;
}

/* ---- outputs in vector lanes ------------------------------------------------------------------------------
 * The codes of 16 outputs side by side, four consecutive codes an output in each 32-bit lane (one byte a code),
 * so one vpdpbusd against four input bytes broadcast to every lane advances 16 outputs at once; four input rows
 * share each block of codes, and nothing is summed across lanes. Taken (AVX-512 VNNI) by:
 *  - short rows (k <= LANE_MAX_K), at any batch: the row kernels waste most of a 64-byte block there;
 *  - per-group scales in groups of whole 4-code words, at any batch: each group's sums are a float step for 16
 *    outputs at once, where the row kernels paid a horizontal sum and a scalar step a group and output.
 *    2048 x 2048 4-bit, 2 threads, batch 1 / 8 / 64: groups of 16 306 -> 36, 1433 -> 89, 11669 -> 699 us;
 *    of 128 33.6 -> 24.6, 255 -> 63, 2071 -> 482 us;
 *  - per-channel layers of one chunk (k <= 8192) prepared for more than one row, from 2 rows: 2048 x 2048 8-bit
 *    at 2 / 8 / 64 rows 54 -> 36, 110 -> 68, 856 -> 531 us; the default MLP 8-bit at 2 / 8 / 64 rows 3.6 ->
 *    2.8, 9.3 -> 5.3, 60.5 -> 34.6 us. At one row the row kernels stay faster on long rows (4-bit 2048 x 2048:
 *    17.9 against 29.3 us), so such layers keep both (the lane layout's bytes are counted as converted).
 *    The AVX2 kernels take the lane layout for such layers at any batch, one row included: on an AMD EPYC
 *    (Zen 3), one row, one thread, against their row kernels: 4096 x 4096 8-bit 1.30-1.65 -> 0.69-0.91 ms,
 *    6-bit 1.18-1.56 -> 0.78-1.23 ms; 784 x 784 8-bit 29 -> 15-20 us, 6-bit 43-47 -> 19-20 us. */
#define LANE_MAX_K 256

/* Whether a linear layer takes the lane layout (above), prepared for up to max_rows rows; *one_row: also at
 * one row */
static int lanes_wanted(const Step *st, int64_t max_rows, int *one_row) {
  if (st->q_per == PQ_QUANT_PER_GROUP) {
    /* at one row the VNNI nibble kernel stays ahead on a layer too large for the cache in 4-bit groups of 128
       or more (4096 x 4096, groups of 128, one thread: 0.21 against 0.28 ms; 2048 x 2048: 33 against 25 us the
       other way; groups of 32 on 4096 x 4096: 401 against 183 us, 2 threads) */
    const int nibbles = !st->q_avx2 && st->q_bits == 4 && st->q_chunk >= 128 && st->n * st->k > 8 * 1024 * 1024;
    *one_row = !nibbles;
    return st->q_chunk % 4 == 0 && (!nibbles || max_rows >= 2);
  }
  *one_row = st->k <= LANE_MAX_K || (st->q_avx2 && st->q_chunks == 1);
  return st->k <= LANE_MAX_K || (st->q_chunks == 1 && (max_rows >= 2 || st->q_avx2));
}

/* `by_position` (convolutions): codes kept one output a row, [n][ceil(k/4)·4] (q_rows4), for the kernel that puts
 * 16 output positions in the lanes instead (below); `pairs`, for its AVX2 form, [n][ceil(k/2)] words of two
 * 16-bit codes (q_pairs). */
static int lanes_setup(Step *st, int by_position, int pairs) {
  const int64_t n = st->n, k = st->k, k4 = (k + 3) / 4, k2 = (k + 1) / 2, nb = (n + 15) / 16;
  const int64_t gpr = st->q_groups_per_row;
  st->q_lane_k4 = k4;
  if (pairs) st->q_pairs = calloc((size_t)(n * k2), sizeof(uint32_t));
  else if (by_position) st->q_rows4 = calloc((size_t)(n * k4 * 4), 1);
  else st->q_lanes = calloc((size_t)(nb * k4 * 64), 1);
  const int64_t scales = by_position ? n * gpr : nb * gpr * 16; /* each output's groups', [n][gpr], or [nb][gpr][16] */
  st->q_lane_scale = calloc((size_t)scales, sizeof(float));
  st->q_lane_zero = calloc((size_t)scales, sizeof(int32_t));
  uint8_t *codes = malloc((size_t)k);
  if (!(pairs ? (void *)st->q_pairs : by_position ? (void *)st->q_rows4 : (void *)st->q_lanes) || !st->q_lane_scale || !st->q_lane_zero || !codes) {
    free(codes);
    return -1;
  }
  for (int64_t o = 0; o < n; o++) {
    pq_unpack_codes(st->q_codes + o * st->q_row_bytes, k, st->q_bits, codes);
    if (pairs) {
      for (int64_t j = 0; j < k; j++) st->q_pairs[o * k2 + j / 2] |= (uint32_t)codes[j] << (16 * (j % 2));
    } else if (by_position) {
      memcpy(st->q_rows4 + o * k4 * 4, codes, (size_t)k);
    } else {
      uint8_t *dst = st->q_lanes + (o / 16) * k4 * 64 + (o % 16) * 4;
      for (int64_t j = 0; j < k; j++) dst[(j / 4) * 64 + j % 4] = codes[j];
    }
    for (int64_t g = 0; g < gpr; g++) {
      const int64_t si = scale_index(st, o, g);
      const int64_t li = by_position ? o * gpr + g : ((o / 16) * gpr + g) * 16 + o % 16;
      st->q_lane_scale[li] = st->q_scales[si];
      st->q_lane_zero[li] = st->q_zeros ? st->q_zeros[si] : 1 << (st->q_bits - 1);
    }
  }
  free(codes);
  return 0;
}

/* The AVX2 8-bit lane kernel takes codes as code − 128, which a code of 0 (−128) would overflow: such codes are
 * kept as 1 in the lane layout and listed (q_fix: lane, input; q_fix_start: where each block's groups' entries
 * begin), and the kernel takes x_j back off each listed output's integer sum — exactly the portable sum. */
static int lanes_zero_fix(Step *st) {
  const int64_t n = st->n, k = st->k, k4 = st->q_lane_k4, nb = (n + 15) / 16, gpr = st->q_groups_per_row,
                L = gpr > 1 ? st->q_chunk : k;
  st->q_fix_start = calloc((size_t)(nb * gpr + 1), sizeof(int32_t));
  if (!st->q_fix_start) return -1;
  int64_t count = 0;
  for (int64_t ob = 0; ob < nb; ob++) /* counted by block and group */
    for (int64_t j = 0; j < k; j++)
      for (int64_t l = 0; l < 16 && ob * 16 + l < n; l++)
        if (st->q_lanes[ob * k4 * 64 + (j / 4) * 64 + l * 4 + j % 4] == 0) st->q_fix_start[ob * gpr + j / L + 1]++, count++;
  for (int64_t i = 0; i < nb * gpr; i++) st->q_fix_start[i + 1] += st->q_fix_start[i];
  st->q_fix = malloc(sizeof(int32_t) * (size_t)(2 * count + 1));
  if (!st->q_fix) return -1;
  int64_t e = 0; /* (the same walk: blocks, then inputs, so each block's groups' entries come in order) */
  for (int64_t ob = 0; ob < nb; ob++)
    for (int64_t j = 0; j < k; j++)
      for (int64_t l = 0; l < 16 && ob * 16 + l < n; l++) {
        uint8_t *c = &st->q_lanes[ob * k4 * 64 + (j / 4) * 64 + l * 4 + j % 4];
        if (*c != 0) continue;
        st->q_fix[2 * e] = (int32_t)l, st->q_fix[2 * e + 1] = (int32_t)j;
        e++;
        *c = 1;
      }
  return 0;
}

/* The AVX2 lane kernel on a layer of at least LANE_BLOCK_CODES codes (past a 512 KB L2 cache) quantizes up to
 * LANE_BLOCK_ROWS input rows at once and runs them all over LANE_BLOCK_BYTES of the lane layout's codes before
 * the next, instead of every four rows over all the codes. */
#define LANE_BLOCK_CODES (512 * 1024)
#define LANE_BLOCK_ROWS 32
#define LANE_BLOCK_BYTES (128 * 1024)

/* The lane kernels' input rows (cnt of them from x, the others up to pad zero; pad at most q_lane_rows) as int8
 * into the step's unpacking buffer, k4 · 4 bytes apart, their scales into sx and their sums a group into q_xsum
 * ([rows][groups]) */
static void lanes_quantize(const Step *st, const float *x, int64_t cnt, int64_t pad, int simd, float *sx) {
  const int64_t k = st->k, k4 = st->q_lane_k4, gpr = st->q_groups_per_row, L = gpr > 1 ? st->q_chunk : k;
  for (int64_t i = 0; i < pad; i++) {
    int8_t *xi = (int8_t *)st->q_unpacked + i * k4 * 4;
    if (i >= cnt) {
      memset(xi, 0, (size_t)(k4 * 4));
      for (int64_t g = 0; g < gpr; g++) st->q_xsum[i * gpr + g] = 0;
      continue;
    }
    sx[i] = quantize_input_row(st, x + i * k, xi, simd);
    memset(xi + k, 0, (size_t)(k4 * 4 - k)); /* (met by zero codes: only so that nothing unwritten is read) */
    for (int64_t g = 0; g < gpr; g++) st->q_xsum[i * gpr + g] = sum_s8(xi + g * L, L);
  }
}

#ifdef PQ_X86
/* y [rows, n] = x [rows, k] · W^T (+ b) from the lane layout, four rows a pass (one where one is left), the int8
 * rows in the step's unpacking buffer (k4 · 4 bytes apart) and their sums a group in q_xsum ([4][groups]); with
 * per-group scales each group's integer sums become a float step, 16 outputs at once: the same integers and
 * the same float steps as chunk_term and packed_out. */
PQ_VNNI static void lanes_rows(const Step *st, const float *x, const float *b, float *y, int64_t rows) {
  const int64_t n = st->n, k = st->k, k4 = st->q_lane_k4, nb = (n + 15) / 16, ldy = packed_ldy(st);
  const int64_t gpr = st->q_groups_per_row, L = gpr > 1 ? st->q_chunk : k, wg = gpr > 1 ? L / 4 : k4;
  const int8_t *xq = (const int8_t *)st->q_unpacked;
  const int32_t *xs = st->q_xsum;
  float sx[4];
  for (int64_t r = 0; r < rows; r += 4) {
    const int cnt = (int)(rows - r < 4 ? rows - r : 4);
    lanes_quantize(st, x + r * k, cnt, 4, 1, sx);
    for (int64_t ob = 0; ob < nb; ob++) {
      const uint8_t *w = st->q_lanes + ob * k4 * 64;
      const int64_t o = ob * 16, left = n - o;
      const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      __m512 vf[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t g = 0; g < gpr; g++) {
        const int64_t w0 = g * wg, w1 = w0 + wg < k4 ? w0 + wg : k4;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        if (cnt == 1)
          for (int64_t j = w0; j < w1; j++) {
            int32_t q;
            memcpy(&q, xq + j * 4, 4);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(w + j * 64), _mm512_set1_epi32(q));
          }
        else
          for (int64_t j = w0; j < w1; j++) {
            const __m512i wv = _mm512_loadu_si512(w + j * 64);
            int32_t q[4];
            for (int i = 0; i < 4; i++) memcpy(&q[i], xq + i * k4 * 4 + j * 4, 4);
            a0 = _mm512_dpbusd_epi32(a0, wv, _mm512_set1_epi32(q[0]));
            a1 = _mm512_dpbusd_epi32(a1, wv, _mm512_set1_epi32(q[1]));
            a2 = _mm512_dpbusd_epi32(a2, wv, _mm512_set1_epi32(q[2]));
            a3 = _mm512_dpbusd_epi32(a3, wv, _mm512_set1_epi32(q[3]));
          }
        const __m512i vz = _mm512_loadu_si512(st->q_lane_zero + (ob * gpr + g) * 16);
        const __m512 vs = _mm512_loadu_ps(st->q_lane_scale + (ob * gpr + g) * 16);
        const __m512i acc[4] = {a0, a1, a2, a3};
        for (int i = 0; i < cnt; i++) /* chunk_term: scale · (float)(dot − zero · Σx), summed over the groups from 0 */
          vf[i] = _mm512_add_ps(vf[i], _mm512_mul_ps(vs, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i], _mm512_mullo_epi32(vz, _mm512_set1_epi32(xs[i * gpr + g]))))));
      }
      const __m512 vb = b ? _mm512_maskz_loadu_ps(m, b + o) : _mm512_setzero_ps();
      for (int i = 0; i < cnt; i++) { /* packed_out */
        __m512 v = _mm512_add_ps(_mm512_mul_ps(vf[i], _mm512_set1_ps(sx[i])), vb);
        if (st->fuse_relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + (r + i) * ldy + o, m, v);
      }
    }
  }
}

/* Four codes of an output (u8, one 32-bit lane) times four int8 inputs (xb), summed in pairs into 16 bits by
 * vpmaddubsw: codes of up to 7 bits as they are (2 · 127 · 127 < 2^15, which 8-bit codes would pass); 8-bit
 * codes of 1…255, given as code − 128 (v ^ 0x80), as |x| times (code − 128) with x's sign (vpsignb: 2 · 127 ·
 * 127 again), the 128 · Σx then put back with the zero point. */
PQ_AVX2 static inline __attribute__((always_inline)) __m256i lane_pairs_avx2(__m256i v, __m256i xb, const int s8) {
  return s8 ? _mm256_maddubs_epi16(_mm256_abs_epi8(xb), _mm256_sign_epi8(v, xb)) : _mm256_maddubs_epi16(v, xb);
}

/* lanes_rows in AVX2, for codes of at most 7 bits, or 8 bits (s8: lane_pairs_avx2, codes of 0 fixed up as
 * lanes_zero_fix says): each
 * 64-byte block of the lane layout as two vectors of 8 outputs, four codes an output in each 32-bit lane,
 * lane_pairs_avx2 then vpmaddwd by ones into int32. The same integers and float steps as lanes_rows, so the
 * portable path's results bit for bit. */
PQ_AVX2 static inline __attribute__((always_inline)) void lanes_rows_avx2_k(const Step *st, const float *x, const float *b, float *y, int64_t rows,
                                                                          const int s8) {
  const int64_t n = st->n, k = st->k, k4 = st->q_lane_k4, nb = (n + 15) / 16, ldy = packed_ldy(st);
  const int64_t gpr = st->q_groups_per_row, L = gpr > 1 ? st->q_chunk : k, wg = gpr > 1 ? L / 4 : k4;
  const int64_t rb = st->q_lane_rows, obb = LANE_BLOCK_BYTES / (k4 * 64) > 1 ? LANE_BLOCK_BYTES / (k4 * 64) : 1;
  float sxb[LANE_BLOCK_ROWS > 4 ? LANE_BLOCK_ROWS : 4];
  const __m256i ones = _mm256_set1_epi16(1), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), flip = _mm256_set1_epi8((char)0x80);
  for (int64_t r0 = 0; r0 < rows; r0 += rb) { /* rb rows quantized, then each obb blocks of codes over all of them */
    const int64_t cr = rows - r0 < rb ? rows - r0 : rb;
    lanes_quantize(st, x + r0 * k, cr, (cr + 3) / 4 * 4, 0, sxb);
    for (int64_t ob0 = 0; ob0 < nb; ob0 += obb) {
      for (int64_t rr = 0; rr < cr; rr += 4) { /* rows r… of the call, cnt of them, their int8 rows, sums and scales */
        const int cnt = (int)(cr - rr < 4 ? cr - rr : 4);
        const int64_t r = r0 + rr;
        const int8_t *xq = (const int8_t *)st->q_unpacked + rr * k4 * 4;
        const int32_t *xs = st->q_xsum + rr * gpr;
        const float *sx = sxb + rr;
        for (int64_t ob = ob0; ob < nb && ob < ob0 + obb; ob++) {
          const uint8_t *w = st->q_lanes + ob * k4 * 64;
          const int64_t o = ob * 16, left = n - o;
          const __m256i m[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 16 ? left : 16)), lane),
                                _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 16 ? left : 16) - 8), lane)};
          __m256 vf[4][2];
          for (int i = 0; i < 4; i++) vf[i][0] = vf[i][1] = _mm256_setzero_ps();
          for (int64_t g = 0; g < gpr; g++) {
            const int64_t w0 = g * wg, w1 = w0 + wg < k4 ? w0 + wg : k4;
            /* (named accumulators: see conv_pairs_block_avx2) */
            __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            if (cnt == 1)
              for (int64_t j = w0; j < w1; j++) {
                _mm_prefetch((const char *)(w + j * 64 + PREFETCH_AHEAD), _MM_HINT_T0);
                int32_t q;
                memcpy(&q, xq + j * 4, 4);
                const __m256i xb = _mm256_set1_epi32(q);
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)(w + j * 64)), v1 = _mm256_loadu_si256((const __m256i *)(const void *)(w + j * 64 + 32));
                if (s8) v0 = _mm256_xor_si256(v0, flip), v1 = _mm256_xor_si256(v1, flip);
                a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(lane_pairs_avx2(v0, xb, s8), ones));
                a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(lane_pairs_avx2(v1, xb, s8), ones));
              }
            else
              for (int64_t j = w0; j < w1; j++) {
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)(w + j * 64)), v1 = _mm256_loadu_si256((const __m256i *)(const void *)(w + j * 64 + 32));
                if (s8) v0 = _mm256_xor_si256(v0, flip), v1 = _mm256_xor_si256(v1, flip);
                int32_t q;
                memcpy(&q, xq + j * 4, 4);
                __m256i xb = _mm256_set1_epi32(q);
                a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(lane_pairs_avx2(v0, xb, s8), ones));
                a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(lane_pairs_avx2(v1, xb, s8), ones));
                memcpy(&q, xq + k4 * 4 + j * 4, 4);
                xb = _mm256_set1_epi32(q);
                a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(lane_pairs_avx2(v0, xb, s8), ones));
                a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(lane_pairs_avx2(v1, xb, s8), ones));
                memcpy(&q, xq + 2 * k4 * 4 + j * 4, 4);
                xb = _mm256_set1_epi32(q);
                a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(lane_pairs_avx2(v0, xb, s8), ones));
                a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(lane_pairs_avx2(v1, xb, s8), ones));
                memcpy(&q, xq + 3 * k4 * 4 + j * 4, 4);
                xb = _mm256_set1_epi32(q);
                a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(lane_pairs_avx2(v0, xb, s8), ones));
                a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(lane_pairs_avx2(v1, xb, s8), ones));
              }
            __m256i acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
            if (s8 && st->q_fix_start[ob * gpr + g + 1] > st->q_fix_start[ob * gpr + g]) { /* codes of 0, kept as 1 (lanes_zero_fix) */
              int32_t t[4][16];
              for (int i = 0; i < 4; i++) {
                _mm256_storeu_si256((__m256i *)(void *)t[i], acc[i][0]);
                _mm256_storeu_si256((__m256i *)(void *)(t[i] + 8), acc[i][1]);
              }
              for (int32_t e = st->q_fix_start[ob * gpr + g]; e < st->q_fix_start[ob * gpr + g + 1]; e++)
                for (int i = 0; i < cnt; i++) t[i][st->q_fix[2 * e]] -= xq[i * k4 * 4 + st->q_fix[2 * e + 1]];
              for (int i = 0; i < 4; i++) {
                acc[i][0] = _mm256_loadu_si256((const __m256i *)(const void *)t[i]);
                acc[i][1] = _mm256_loadu_si256((const __m256i *)(const void *)(t[i] + 8));
              }
            }
            for (int h = 0; h < 2; h++) {
              __m256i vz = _mm256_loadu_si256((const __m256i *)(const void *)(st->q_lane_zero + (ob * gpr + g) * 16 + 8 * h));
              if (s8) vz = _mm256_sub_epi32(vz, _mm256_set1_epi32(128)); /* dot − zero · Σx = (the sum with code − 128) − (zero − 128) · Σx */
              const __m256 vs = _mm256_loadu_ps(st->q_lane_scale + (ob * gpr + g) * 16 + 8 * h);
              for (int i = 0; i < cnt; i++) /* chunk_term, summed over the groups from 0 */
                vf[i][h] = _mm256_add_ps(vf[i][h], _mm256_mul_ps(vs, _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[i][h], _mm256_mullo_epi32(vz, _mm256_set1_epi32(xs[i * gpr + g]))))));
            }
          }
          for (int h = 0; h < 2 && 8 * h < left; h++) {
            const __m256 vb = b ? _mm256_maskload_ps(b + o + 8 * h, m[h]) : _mm256_setzero_ps();
            for (int i = 0; i < cnt; i++) { /* packed_out */
              __m256 v = _mm256_add_ps(_mm256_mul_ps(vf[i][h], _mm256_set1_ps(sx[i])), vb);
              if (st->fuse_relu) v = _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ), v);
              if (left >= 8 * h + 8) _mm256_storeu_ps(y + (r + i) * ldy + o + 8 * h, v);
              else _mm256_maskstore_ps(y + (r + i) * ldy + o + 8 * h, m[h], v);
            }
          }
        }
      }
    }
  }
}

PQ_AVX2 static void lanes_rows_avx2(const Step *st, const float *x, const float *b, float *y, int64_t rows) {
  if (st->q_bits == 8) lanes_rows_avx2_k(st, x, b, y, rows, 1);
  else lanes_rows_avx2_k(st, x, b, y, rows, 0);
}
#endif


#ifdef PQ_X86
/* A packed conv2d over up to 16 output positions q0… of one image, the positions in the vector lanes. `cols` is
 * the image's patches as pq_im2col lays them out ([k][ohw] floats), so a patch column of 16 positions is one
 * load: each position's patch is quantized to int8 with its own scale (the same numbers as quantize_row_s8),
 * four consecutive int8 values of it packed into its 32-bit lane (xblk: ceil(k/4) vectors), then for each
 * output one vpdpbusd a four codes (broadcast) gives 16 positions at once, stored straight into the output
 * plane. */
PQ_VNNI static void conv_lanes_block(const Step *st, const float *cols, int64_t ohw, int64_t q0, const float *b, float *yn, __m512i *xblk) {
  const int64_t k = st->k, k4 = st->q_lane_k4;
  /* per-group scales: groups of wg words, each with its own scale, zero point and input sums (xs, after xblk) */
  const int64_t gpr = st->q_groups_per_row, wg = gpr > 1 ? st->q_chunk / 4 : k4;
  __m512i *xs = xblk + k4;
  const int64_t left = ohw - q0;
  const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
  __m512 inv, sx;
  __m512i xsum = _mm512_setzero_si512();
  if (st->q_act_scale > 0) { /* a fixed range (static activations) */
    inv = _mm512_set1_ps(1.0f / st->q_act_scale);
    sx = _mm512_set1_ps(st->q_act_scale);
  } else {
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j++) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, cols + j * ohw + q0)));
    const __mmask16 nz = _mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_NEQ_OQ);
    inv = _mm512_maskz_div_ps(nz, _mm512_set1_ps(127.0f), amax); /* an all-zero patch: scale 0, codes 0 */
    sx = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
  }
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), byte = _mm512_set1_epi32(0xff);
  for (int64_t g = 0; g < k4; g++) {
    if (g % wg == 0 && g) { /* a group's sums done */
      xs[g / wg - 1] = xsum;
      xsum = _mm512_setzero_si512();
    }
    __m512i packed = _mm512_setzero_si512();
    for (int t = 0; t < 4; t++) {
      const int64_t j = g * 4 + t;
      if (j >= k) break;
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, cols + j * ohw + q0), inv));
      if (st->q_act_scale > 0) q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi); /* static ranges saturate */
      xsum = _mm512_add_epi32(xsum, q);
      packed = _mm512_or_si512(packed, _mm512_slli_epi32(_mm512_and_si512(q, byte), 8 * t));
    }
    xblk[g] = packed;
  }
  xs[gpr - 1] = xsum;
  const int32_t *codes = (const int32_t *)(const void *)st->q_rows4; /* four codes a 32-bit word, k4 words an output */
  int64_t o = 0;
  if (gpr == 1) { /* one scale a row: four outputs a pass in registers, then one at a time */
#define CONV_LANES_FINISH(acc, oo)                                                                                       \
  do {                                                                                                                   \
    __m512i d_ = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(st->q_lane_zero[oo]), xs[0]));             \
    __m512 v_ = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(st->q_lane_scale[oo]), _mm512_cvtepi32_ps(d_)), sx), \
                              _mm512_set1_ps(b ? b[oo] : 0.0f));                                                             \
    if (st->fuse_relu) v_ = _mm512_max_ps(v_, _mm512_setzero_ps());                                                      \
    _mm512_mask_storeu_ps(yn + (oo) * ohw + q0, m, v_);                                                                  \
  } while (0)
    for (; o + 4 <= st->n; o += 4) {
      const int32_t *w0 = codes + o * k4, *w1 = w0 + k4, *w2 = w1 + k4, *w3 = w2 + k4;
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t g = 0; g < k4; g++) {
        const __m512i xv = xblk[g];
        a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(w0[g]), xv);
        a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(w1[g]), xv);
        a2 = _mm512_dpbusd_epi32(a2, _mm512_set1_epi32(w2[g]), xv);
        a3 = _mm512_dpbusd_epi32(a3, _mm512_set1_epi32(w3[g]), xv);
      }
      CONV_LANES_FINISH(a0, o);
      CONV_LANES_FINISH(a1, o + 1);
      CONV_LANES_FINISH(a2, o + 2);
      CONV_LANES_FINISH(a3, o + 3);
    }
    for (; o < st->n; o++) {
      const int32_t *w0 = codes + o * k4;
      __m512i a0 = _mm512_setzero_si512();
      for (int64_t g = 0; g < k4; g++) a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(w0[g]), xblk[g]);
      CONV_LANES_FINISH(a0, o);
    }
#undef CONV_LANES_FINISH
    return;
  }
  for (; o < st->n; o += 4) { /* groups: four outputs a pass, a float sum of the groups' scaled integer sums */
    const int cnt = (int)(st->n - o < 4 ? st->n - o : 4);
    const int32_t *w0 = codes + o * k4, *w1 = w0 + (cnt > 1 ? k4 : 0), *w2 = w0 + (cnt > 2 ? 2 * k4 : 0), *w3 = w0 + (cnt > 3 ? 3 * k4 : 0);
    __m512 vf[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t gi = 0; gi < gpr; gi++) {
      __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int64_t g = gi * wg; g < (gi + 1) * wg && g < k4; g++) {
        const __m512i xv = xblk[g];
        acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_set1_epi32(w0[g]), xv);
        acc[1] = _mm512_dpbusd_epi32(acc[1], _mm512_set1_epi32(w1[g]), xv);
        acc[2] = _mm512_dpbusd_epi32(acc[2], _mm512_set1_epi32(w2[g]), xv);
        acc[3] = _mm512_dpbusd_epi32(acc[3], _mm512_set1_epi32(w3[g]), xv);
      }
      for (int t = 0; t < cnt; t++) { /* the same float steps as the portable path: Σ scale · (dot − zero · Σx), then · sx + b */
        const int64_t si = (o + t) * gpr + gi;
        __m512i d = _mm512_sub_epi32(acc[t], _mm512_mullo_epi32(_mm512_set1_epi32(st->q_lane_zero[si]), xs[gi]));
        vf[t] = _mm512_add_ps(vf[t], _mm512_mul_ps(_mm512_set1_ps(st->q_lane_scale[si]), _mm512_cvtepi32_ps(d)));
      }
    }
    for (int t = 0; t < cnt; t++) {
      __m512 v = _mm512_add_ps(_mm512_mul_ps(vf[t], sx), _mm512_set1_ps(b ? b[o + t] : 0.0f));
      if (st->fuse_relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(yn + (o + t) * ohw + q0, m, v);
    }
  }
}
#endif

#ifdef PQ_X86
/* The AVX2 form of conv_lanes_block: 16 positions in two vectors of eight 32-bit lanes, each lane a pair of
 * consecutive int8 values of its position's patch widened to 16 bits (xp: two vectors a pair, ceil(k/2) pairs,
 * then two of sums a group); each output's codes kept as 16-bit pairs (q_pairs), a pair broadcast against
 * both vectors by vpmaddwd (exact int32), four outputs a pass. A patch is quantized as quantize_row_s8 (or
 * _fixed) does, and the float steps are the portable path's (chunk_term, packed_out, then the ReLU as
 * v < 0 ? 0 : v), so the results equal it bit for bit. */
PQ_AVX2 static void conv_pairs_block_avx2(const Step *st, const float *cols, int64_t ohw, int64_t q0, const float *b, float *yn, void *scratch) {
  const int64_t n = st->n, k = st->k, k2 = (k + 1) / 2;
  /* per-group scales: groups of wg pairs, each with its own scale, zero point and input sums (xs) */
  const int64_t gpr = st->q_groups_per_row, wg = gpr > 1 ? st->q_chunk / 2 : k2;
  __m256i *xp = scratch, *xs = xp + 2 * k2;
  const int64_t left = ohw - q0;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 16 ? left : 16)), lane),
                        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 16 ? left : 16) - 8), lane)};
  const int fixed = st->q_act_scale > 0, halves = left > 8 ? 2 : 1; /* (a last block of 8 positions or fewer: one vector) */
  const int full[2] = {left >= 8, left >= 16}; /* whole vectors: plain loads and stores (masked stores are many micro-ops on AMD before Zen 4, by published instruction tables; not measurable here) */
#define PQ_LOAD8(p, h) (full[h] ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m[h]))
  __m256 inv[2], sx[2];
  for (int h = 0; h < halves; h++) {
    if (fixed) { /* a fixed range (static activations) */
      inv[h] = _mm256_set1_ps(1.0f / st->q_act_scale);
      sx[h] = _mm256_set1_ps(st->q_act_scale);
      continue;
    }
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_setzero_ps();
    for (int64_t j = 0; j < k; j++) amax = _mm256_max_ps(_mm256_andnot_ps(sign, PQ_LOAD8(cols + j * ohw + q0 + 8 * h, h)), amax);
    const __m256 nz = _mm256_cmp_ps(amax, _mm256_setzero_ps(), _CMP_NEQ_OQ);
    inv[h] = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(127.0f), amax), nz); /* an all-zero patch: scale 0, codes 0 */
    sx[h] = _mm256_div_ps(amax, _mm256_set1_ps(127.0f));
  }
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i low16 = _mm256_set1_epi32(0xffff);
  __m256i sum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int64_t g = 0; g < k2; g++) {
    if (g % wg == 0 && g) { /* a group's sums done */
      xs[2 * (g / wg - 1)] = sum[0], xs[2 * (g / wg - 1) + 1] = sum[1];
      sum[0] = sum[1] = _mm256_setzero_si256();
    }
    for (int h = 0; h < halves; h++) {
      __m256i q[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
      for (int t = 0; t < 2 && 2 * g + t < k; t++) {
        __m256 v = _mm256_mul_ps(PQ_LOAD8(cols + (2 * g + t) * ohw + q0 + 8 * h, h), inv[h]);
        if (fixed) v = _mm256_min_ps(_mm256_max_ps(v, lo), hi); /* static ranges saturate (as lrintf, then the clamp) */
        q[t] = _mm256_cvtps_epi32(v);
      }
      sum[h] = _mm256_add_epi32(sum[h], _mm256_add_epi32(q[0], q[1]));
      xp[2 * g + h] = _mm256_or_si256(_mm256_and_si256(q[0], low16), _mm256_slli_epi32(q[1], 16));
    }
  }
  xs[2 * (gpr - 1)] = sum[0], xs[2 * (gpr - 1) + 1] = sum[1];
  const int32_t *codes = (const int32_t *)(const void *)st->q_pairs;
  for (int64_t o = 0; o < n; o += 4) {
    const int cnt = (int)(n - o < 4 ? n - o : 4);
    const int32_t *w[4];
    for (int t = 0; t < 4; t++) w[t] = codes + (o + (t < cnt ? t : 0)) * k2;
    __m256 vf[4][2];
    for (int t = 0; t < 4; t++) vf[t][0] = vf[t][1] = _mm256_setzero_ps();
    for (int64_t gi = 0; gi < gpr; gi++) {
      /* (named accumulators: with an array GCC spilled one and copied the others every pass) */
      __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      const int64_t g1 = (gi + 1) * wg < k2 ? (gi + 1) * wg : k2;
      const int32_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
      if (halves == 1)
        for (int64_t g = gi * wg; g < g1; g++) {
          const __m256i x0 = _mm256_load_si256(xp + 2 * g);
          a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, _mm256_set1_epi32(w0[g])));
          a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x0, _mm256_set1_epi32(w1[g])));
          a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x0, _mm256_set1_epi32(w2[g])));
          a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x0, _mm256_set1_epi32(w3[g])));
        }
      else
      for (int64_t g = gi * wg; g < g1; g++) {
        const __m256i x0 = _mm256_load_si256(xp + 2 * g), x1 = _mm256_load_si256(xp + 2 * g + 1);
        __m256i wv = _mm256_set1_epi32(w0[g]);
        a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, wv));
        a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x1, wv));
        wv = _mm256_set1_epi32(w1[g]);
        a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x0, wv));
        a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x1, wv));
        wv = _mm256_set1_epi32(w2[g]);
        a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x0, wv));
        a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x1, wv));
        wv = _mm256_set1_epi32(w3[g]);
        a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x0, wv));
        a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x1, wv));
      }
      const __m256i a[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      for (int t = 0; t < cnt; t++) { /* Σ scale · (dot − zero · Σx), as chunk_term */
        const int64_t si = (o + t) * gpr + gi;
        const __m256i z = _mm256_set1_epi32(st->q_lane_zero[si]);
        const __m256 sc = _mm256_set1_ps(st->q_lane_scale[si]);
        for (int h = 0; h < halves; h++)
          vf[t][h] = _mm256_add_ps(vf[t][h], _mm256_mul_ps(sc, _mm256_cvtepi32_ps(_mm256_sub_epi32(a[t][h], _mm256_mullo_epi32(z, xs[2 * gi + h])))));
      }
    }
    for (int t = 0; t < cnt; t++) {
      const __m256 bias = _mm256_set1_ps(b ? b[o + t] : 0.0f);
      for (int h = 0; h < halves; h++) {
        __m256 v = _mm256_add_ps(_mm256_mul_ps(vf[t][h], sx[h]), bias);
        if (st->fuse_relu) v = _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ), v);
        if (full[h]) _mm256_storeu_ps(yn + (o + t) * ohw + q0 + 8 * h, v);
        else _mm256_maskstore_ps(yn + (o + t) * ohw + q0 + 8 * h, m[h], v);
      }
    }
  }
}
#undef PQ_LOAD8
#endif

#ifdef PQ_X86
/* Whether `rows` rows take the blocked kernel (rows8_vnni_batch): as many as the batch buffers hold, one
 * scale a row of one chunk, not the lane layout; 8-bit codes from four rows, narrower ones from eight where
 * the one-row kernel decodes them in registers (VBMI, nothing unpacked to memory). Measured on the default
 * MLP at 6 bits on one thread, one-row against blocked: 4 rows 10.0 against 15.0 us, 8 rows 19.9 against
 * 22.3, 12 even, 16 39.6 against 37.0. Not 12: the two kernels' results can differ in the last bit, and a
 * batch split by rows (parts of 8 rows or more) must take the whole batch's kernel. */
static int packed_batch_kernel(const Step *st, int64_t rows, int simd) {
  if (!st->q_xbatch || rows > st->q_xbatch_rows || (st->q_lanes && (rows > 1 || st->q_lanes_one_row))) return 0; /* (the lane kernels) */
  if (st->q_avx2) return rows >= 4; /* (rows_avx2_batch: the row kernel's results, codes unpacked once a batch; any chunks) */
  if (st->q_per == 2 || st->q_chunks != 1) return 0;
  const int vbmi = pq_cpu_has_vbmi();
  return simd && rows >= (st->q_bits == 8 || !vbmi ? 4 : 8) && (st->q_bits != 4 || vbmi);
}

/* the blocked kernel for rows the batch buffers hold, quantized (packed_quantize_batch) */
static void packed_batch_run(const Step *st, int64_t rows, const float *b, float *y) {
  if (st->q_avx2) rows_avx2_batch(st, st->q_xbatch, st->q_xbatch_sum, st->q_xbatch_scale, rows, b, y);
  else rows8_vnni_batch(st, st->q_xbatch, st->q_xbatch_sum, st->q_xbatch_scale, rows, b, y);
}

/* every input row as int8 into the batch buffers, with its scale and its sum a chunk */
static void packed_quantize_batch(const Step *st, const float *x, int64_t rows) {
  const int64_t k = st->k, L = st->q_chunk, nch = st->q_chunks;
  for (int64_t r = 0; r < rows; r++) {
    int8_t *xr = st->q_xbatch + r * k;
    st->q_xbatch_scale[r] = quantize_input_row(st, x + r * k, xr, !st->q_avx2); /* (AVX-512 or AVX2) */
    for (int64_t c = 0; c < nch; c++) st->q_xbatch_sum[r * nch + c] = sum_s8(xr + c * L, k - c * L < L ? k - c * L : L);
  }
}
#endif

/* y [rows, n] = x [rows, k] · W^T (+ b), W packed; y's rows packed_ldy() apart */
static void packed_rows(const Step *st, const float *x, const float *b, float *y, int64_t rows, int simd) {
  const int64_t n = st->n, k = st->k, L = st->q_chunk, nch = st->q_chunks;
#ifdef PQ_X86
  if (st->q_lanes && (rows > 1 || st->q_lanes_one_row) && (simd || st->q_avx2)) {
    if (simd) lanes_rows(st, x, b, y, rows);
    else lanes_rows_avx2(st, x, b, y, rows);
    return;
  }
  if (packed_batch_kernel(st, rows, simd)) { /* quantize every input row first, then the blocked pass */
    packed_quantize_batch(st, x, rows);
    packed_batch_run(st, rows, b, y);
    return;
  }
#endif
  int8_t *xq = st->q_x;
  int32_t *xsum = st->q_xsum;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * k;
    float *yr = y + r * packed_ldy(st);
    float sx = quantize_input_row(st, xr, xq, simd);
    for (int64_t ch = 0; ch < nch; ch++) {
      int32_t s = sum_s8(xq + ch * L, ch == nch - 1 ? k - ch * L : L);
      xsum[ch] = s;
      st->q_xsumf[ch] = (float)s; /* exact: |s| <= 127 * 8192 */
    }
#ifdef PQ_X86
    if (simd && st->q_bits != 8 && st->q_per != 2 && nch == 1 && pq_cpu_has_vbmi()) {
      rows_vbmi(st, xq, xsum[0], sx, b, yr);
      continue;
    }
    if (simd && st->q_bits != 4 && st->q_per != 2 && nch == 1) {
      rows8_vnni(st, xq, xsum[0], sx, b, yr);
      continue;
    }
    if (simd) {
      const int nib = st->q_bits == 4 && L % 2 == 0; /* else one byte a code: rows below 8 bits are unpacked first */
      if (nib)
        for (int64_t j = 0; j < k / 2; j++) {
          st->q_xe[j] = xq[2 * j];
          st->q_xo[j] = xq[2 * j + 1];
        }
      for (int64_t o = 0; o < n; o++) {
        const uint8_t *codes = st->q_codes + o * st->q_row_bytes;
        if (st->q_bits != 8 && !nib) {
          unpack_row(codes, k, st->q_bits, st->q_unpacked, 1);
          codes = st->q_unpacked;
        }
        yr[o] = packed_out(st, row_dot_vnni(st, codes, nib, xq, st->q_xe, st->q_xo, st->q_xsumf, o), sx, b, o);
      }
      continue;
    }
    if (st->q_avx2) {
      rows_avx2(st, xq, xsum, sx, b, yr);
      continue;
    }
#endif
    for (int64_t o = 0; o < n; o++) {
      const uint8_t *codes = st->q_codes + o * st->q_row_bytes;
      if (st->q_bits != 8) {
        unpack_row(codes, k, st->q_bits, st->q_unpacked, 0);
        codes = st->q_unpacked;
      }
      yr[o] = packed_out(st, row_dot_c(st, codes, xq, xsum, o), sx, b, o);
    }
  }
}


#endif
