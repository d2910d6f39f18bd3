/* structured.c — linear weights held in structured forms, as dense matrices and back: tensor-train cores and
 * block-circulant columns to their [out, in] matrix, and, for fine-tuning, a gradient with respect to that
 * matrix taken back to the cores or columns by the chain rule.
 *
 * A tensor-train matrix W[(i_1 … i_d), (j_1 … j_d)] = G_1[i_1, j_1] · … · G_d[i_d, j_d] (each G_k[i, j] an
 * r_{k-1} × r_k matrix) is formed by left partial products P_k (the first k cores' product, [rows so far,
 * columns so far, r_k]); a core's gradient pairs the left product before it with the right product after it
 * (Q_k, [r_{k+1}, rows after, columns after]): dG_k[a, i, j, b] = Σ P_k[I, J, a] dW[(I, i, I'), (J, j, J')] Q_k[b, I', J'].
 * Every contraction is one GEMM plus a permutation. */
#include "pq-private.h"

#include <cblas.h>
#include <string.h>

struct PqTtChain {
  int d;
  int64_t m[16], n[16], r[17], M, N;
  int64_t ml[17], nl[17];  /* Π m_t, Π n_t over t < k */
  float *left[16];         /* P_k [ml_k, nl_k, r_k] (P_0 = 1) */
  float *right[16];        /* Q_k [r_{k+1}, M / (ml_k m_k), N / (nl_k n_k)] (Q_{d-1} = 1) */
  float *work, *perm;      /* a GEMM's result; the gradient permuted */
};

void pq_tt_chain_free(PqTtChain *c) {
  if (!c) return;
  for (int k = 0; k < c->d; k++) g_free(c->left[k]), g_free(c->right[k]);
  g_free(c->work);
  g_free(c->perm);
  g_free(c);
}

PqTtChain *pq_tt_chain_new(int d, const int64_t (*shapes)[4]) {
  g_return_val_if_fail(d >= 1 && d <= 16, NULL);
  PqTtChain *c = g_new0(PqTtChain, 1);
  c->d = d;
  c->r[0] = 1;
  c->ml[0] = c->nl[0] = 1;
  for (int k = 0; k < d; k++) {
    c->m[k] = shapes[k][1], c->n[k] = shapes[k][2], c->r[k + 1] = shapes[k][3];
    c->ml[k + 1] = c->ml[k] * c->m[k], c->nl[k + 1] = c->nl[k] * c->n[k];
  }
  c->M = c->ml[d], c->N = c->nl[d];
  int64_t work = 1;
  for (int k = 0; k < d; k++) {
    int64_t mr = c->M / c->ml[k + 1], nr = c->N / c->nl[k + 1], mn = c->m[k] * c->n[k];
    c->left[k] = g_try_new(float, c->ml[k] * c->nl[k] * c->r[k]);
    c->right[k] = g_try_new(float, c->r[k + 1] * mr * nr);
    if (!c->left[k] || !c->right[k]) {
      pq_tt_chain_free(c);
      return NULL;
    }
    work = MAX(work, c->ml[k] * c->nl[k] * mn * c->r[k + 1]); /* P_{k+1} before its permutation, and Z */
    work = MAX(work, c->r[k] * mn * mr * nr);                 /* Q_{k-1} before its permutation */
  }
  c->work = g_try_new(float, work);
  c->perm = g_try_new(float, c->M * c->N);
  if (!c->work || !c->perm) {
    pq_tt_chain_free(c);
    return NULL;
  }
  c->left[0][0] = 1.0f;
  c->right[d - 1][0] = 1.0f;
  return c;
}

void pq_tt_chain_dense(PqTtChain *c, const float *const *cores, float *w) {
  for (int k = 0; k < c->d; k++) {
    int64_t ml = c->ml[k], nl = c->nl[k], m = c->m[k], n = c->n[k], rp = c->r[k], rn = c->r[k + 1];
    /* R [ml·nl, m·n·rn] = P_k [ml·nl, rp] · G_k [rp, m·n·rn], then P_{k+1}[(I m + i), (J n + j), b] = R[I, J, i, j, b] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(ml * nl), (int)(m * n * rn), (int)rp, 1.0f, c->left[k], (int)rp, cores[k],
                (int)(m * n * rn), 0.0f, c->work, (int)(m * n * rn));
    float *next = k + 1 < c->d ? c->left[k + 1] : w;
    for (int64_t Il = 0; Il < ml; Il++)
      for (int64_t Jl = 0; Jl < nl; Jl++)
        for (int64_t i = 0; i < m; i++)
          for (int64_t j = 0; j < n; j++) {
            const float *src = c->work + (((Il * nl + Jl) * m + i) * n + j) * rn;
            float *dst = next + ((Il * m + i) * (nl * n) + Jl * n + j) * rn;
            for (int64_t b = 0; b < rn; b++) dst[b] = src[b];
          }
  }
}

void pq_tt_chain_grads(PqTtChain *c, const float *const *cores, const float *dw, float *const *dcores) {
  for (int k = c->d - 1; k >= 1; k--) { /* Q_{k-1}[a, (i, Il'), (j, Jl')] = Σ_b G_k[a, i, j, b] Q_k[b, Il', Jl'] */
    int64_t m = c->m[k], n = c->n[k], rp = c->r[k], rn = c->r[k + 1], mr = c->M / c->ml[k + 1], nr = c->N / c->nl[k + 1];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(rp * m * n), (int)(mr * nr), (int)rn, 1.0f, cores[k], (int)rn, c->right[k],
                (int)(mr * nr), 0.0f, c->work, (int)(mr * nr));
    for (int64_t a = 0; a < rp; a++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
          for (int64_t I2 = 0; I2 < mr; I2++)
            memcpy(c->right[k - 1] + (a * m * mr + i * mr + I2) * (n * nr) + j * nr, c->work + (((a * m + i) * n + j) * mr + I2) * nr,
                   sizeof(float) * (size_t)nr);
  }
  for (int k = 0; k < c->d; k++) {
    int64_t ml = c->ml[k], nl = c->nl[k], m = c->m[k], n = c->n[k], rp = c->r[k], rn = c->r[k + 1], mr = c->M / c->ml[k + 1],
            nr = c->N / c->nl[k + 1];
    /* D [(Il, Jl, i, j), (Il', Jl')] from dW [(Il m + i) mr + Il', (Jl n + j) nr + Jl'] */
    for (int64_t Il = 0; Il < ml; Il++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t I2 = 0; I2 < mr; I2++)
          for (int64_t Jl = 0; Jl < nl; Jl++)
            for (int64_t j = 0; j < n; j++)
              memcpy(c->perm + (((Il * nl + Jl) * m + i) * n + j) * (mr * nr) + I2 * nr, dw + ((Il * m + i) * mr + I2) * c->N + (Jl * n + j) * nr,
                     sizeof(float) * (size_t)nr);
    /* Z [(Il, Jl, i, j), b] = D · Q_kᵀ, then dG_k [a, (i, j, b)] = P_kᵀ · Z */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(ml * nl * m * n), (int)rn, (int)(mr * nr), 1.0f, c->perm, (int)(mr * nr), c->right[k],
                (int)(mr * nr), 0.0f, c->work, (int)rn);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rp, (int)(m * n * rn), (int)(ml * nl), 1.0f, c->left[k], (int)rp, c->work,
                (int)(m * n * rn), 0.0f, dcores[k], (int)(m * n * rn));
  }
}

int pq_tt_dense(int d, const int64_t (*shapes)[4], const float *const *cores, float *w) {
  g_return_val_if_fail(d >= 1 && d <= 16 && shapes && cores && w, -1);
  PqTtChain *c = pq_tt_chain_new(d, shapes);
  if (!c) return -1;
  pq_tt_chain_dense(c, cores, w);
  pq_tt_chain_free(c);
  return 0;
}

/* block (Il, Jl) of a [out, in] matrix, and the diagonal d = (i − j) mod b its entry (i, j) lies on */
#define CIRC_INDEX(i, j, b, nb) ((((i) / (b)) * (nb) + (j) / (b)) * (b) + ((i) % (b) - (j) % (b) + (b)) % (b))

void pq_circulant_dense(const float *blocks, int64_t out, int64_t in, int64_t b, float *w) {
  g_return_if_fail(blocks && w && b >= 1);
  int64_t nb = (in + b - 1) / b;
  for (int64_t i = 0; i < out; i++)
    for (int64_t j = 0; j < in; j++) w[i * in + j] = blocks[CIRC_INDEX(i, j, b, nb)];
}

void pq_circulant_grad(const float *dw, int64_t out, int64_t in, int64_t b, float *dblocks) {
  int64_t nb = (in + b - 1) / b, mb = (out + b - 1) / b;
  memset(dblocks, 0, sizeof(float) * (size_t)(mb * nb * b));
  for (int64_t i = 0; i < out; i++)
    for (int64_t j = 0; j < in; j++) dblocks[CIRC_INDEX(i, j, b, nb)] += dw[i * in + j];
}
