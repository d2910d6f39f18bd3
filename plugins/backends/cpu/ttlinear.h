/* ttlinear.h — tensor-train linear layers: y = W x with W held as cores G_k [r_{k-1}, m_k, n_k, r_k].
 * The input is contracted with the cores from the last to the first, one GEMM and one transpose each;
 * the dense W is never formed. Cores are laid out for the GEMMs once, at prepare. */
#ifndef PQ_CPU_TTLINEAR_H
#define PQ_CPU_TTLINEAR_H

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

/* A core with a left rank of at least this many is laid out [(n_k, r_k), (m_k, r_{k-1})] and contracted by one
 * GEMM a value of m_k, each writing its [rows, r_{k-1}] block where the next step reads it: no transpose. Below
 * it, one GEMM [(n_k, r_k), (r_{k-1}, m_k)] and a transpose (a GEMM of a column or two is a GEMV). */
#define TT_SPLIT_MIN_RANK 8

typedef struct TT {
  int d;
  int64_t r[17], m[16], n[16], M, N;
  float *c[16];      /* C_k [(n_k, r_k), (r_{k-1}, m_k)], or [(n_k, r_k), (m_k, r_{k-1})] with r_{k-1} >= TT_SPLIT_MIN_RANK */
  float *bufr, *buft;/* work: each step reads one (or the input) and leaves its result in the other */
} TT;

static void tt_free(TT *t) {
  if (!t) return;
  for (int k = 0; k < t->d; k++) free(t->c[k]);
  free(t->bufr);
  free(t->buft);
  free(t);
}

/* A batch runs TT_ROWS rows at a time: the intermediates grow with the rows times the ranks (the default MLP's
 * rank-32 form held 47 MB of work buffers for a batch of 256, against 1.3 MB for the float model) */
#ifndef TT_ROWS
#define TT_ROWS 32
#endif

/* cores[k] in [r_{k-1}, m_k, n_k, r_k]; max_batch (at most TT_ROWS of it) sizes the work buffers. */
static TT *tt_new(int d, const float *const *cores, const int64_t (*shapes)[4], int64_t max_batch, int64_t *bytes) {
  if (max_batch > TT_ROWS) max_batch = TT_ROWS;
  TT *t = calloc(1, sizeof(TT));
  if (!t) return NULL;
  t->d = d;
  t->M = t->N = 1;
  t->r[0] = 1;
  for (int k = 0; k < d; k++) {
    t->m[k] = shapes[k][1];
    t->n[k] = shapes[k][2];
    t->r[k + 1] = shapes[k][3];
    t->M *= t->m[k];
    t->N *= t->n[k];
  }
  int64_t total = 0, work = 0;
  for (int k = 0; k < d; k++) {
    int64_t rp = t->r[k], m = t->m[k], n = t->n[k], rn = t->r[k + 1];
    t->c[k] = malloc(sizeof(float) * (size_t)(n * rn * rp * m));
    if (!t->c[k]) {
      tt_free(t);
      return NULL;
    }
    const int split = rp >= TT_SPLIT_MIN_RANK;
    for (int64_t a = 0; a < rp; a++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
          for (int64_t s = 0; s < rn; s++)
            t->c[k][(j * rn + s) * (rp * m) + (split ? i * rp + a : a * m + i)] = cores[k][((a * m + i) * n + j) * rn + s];
    total += n * rn * rp * m;
  }
  /* step k (last core first): A_k = m_{k+1}…m_d · batch · n_1…n_{k-1} rows */
  for (int k = d - 1; k >= 0; k--) {
    int64_t a = max_batch;
    for (int t2 = k + 1; t2 < d; t2++) a *= t->m[t2];
    for (int t2 = 0; t2 < k; t2++) a *= t->n[t2];
    int64_t need = a * (t->n[k] * t->r[k + 1] > t->r[k] * t->m[k] ? t->n[k] * t->r[k + 1] : t->r[k] * t->m[k]);
    if (need > work) work = need;
  }
  t->bufr = malloc(sizeof(float) * (size_t)work);
  t->buft = malloc(sizeof(float) * (size_t)work);
  if (!t->bufr || !t->buft) {
    tt_free(t);
    return NULL;
  }
  *bytes = (int64_t)sizeof(float) * (total + 2 * work);
  return t;
}

static void tt_rows(TT *t, Pool *pool, const float *x, const float *bias, float *y, int64_t batch, int relu) {
  const float *cur = x; /* [A_k, n_k r_k]: x itself is [batch n_1…n_{d-1}, n_d · 1] */
  for (int k = t->d - 1; k >= 0; k--) {
    int64_t a = batch, rp = t->r[k], m = t->m[k], kk = t->n[k] * t->r[k + 1];
    for (int t2 = k + 1; t2 < t->d; t2++) a *= t->m[t2];
    for (int t2 = 0; t2 < k; t2++) a *= t->n[t2];
    /* the result as [m_k, A, r_{k-1}]: the output index in front, as the next step reads it */
    float *next;
    if (rp >= TT_SPLIT_MIN_RANK) {
      next = cur == t->buft ? t->bufr : t->buft;
      for (int64_t i = 0; i < m; i++) gemm_par(pool, 0, 0, a, rp, kk, cur, kk, t->c[k] + i * rp, rp * m, 0.0f, next + i * a * rp, rp);
    } else { /* [A, r_{k-1}, m_k] into one buffer, then transposed into the other (cur is read by then) */
      float *tmp = cur == t->bufr ? t->buft : t->bufr;
      next = tmp == t->bufr ? t->buft : t->bufr;
      gemm_par(pool, 0, 0, a, rp * m, kk, cur, kk, t->c[k], rp * m, 0.0f, tmp, rp * m);
      for (int64_t ai = 0; ai < a; ai++)
        for (int64_t r = 0; r < rp; r++)
          for (int64_t i = 0; i < m; i++) next[(i * a + ai) * rp + r] = tmp[(ai * rp + r) * m + i];
    }
    cur = next;
  }
  /* cur is [M, batch] */
  for (int64_t b = 0; b < batch; b++)
    for (int64_t o = 0; o < t->M; o++) {
      float v = cur[o * batch + b] + (bias ? bias[o] : 0.0f);
      y[b * t->M + o] = relu && v < 0.0f ? 0.0f : v;
    }
}

static void tt_run(TT *t, Pool *pool, const float *x, const float *bias, float *y, int64_t batch, int relu) {
  for (int64_t r = 0; r < batch; r += TT_ROWS)
    tt_rows(t, pool, x + r * t->N, bias, y + r * t->M, batch - r < TT_ROWS ? batch - r : TT_ROWS, relu);
}

#endif
