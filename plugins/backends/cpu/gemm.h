/* gemm.h — float GEMMs split over the backend's pool (pool.h): C = A·B (+ beta·C), row-major, each part a
 * range of C's columns or rows computed by a one-thread OpenBLAS call. The default MLP on 2 cores
 * (`bench-mlp --threads 2`, bias, ReLU and softmax included against the bare calls on OpenBLAS's own two
 * threads): 5.2 against 5.6 µs at batch 1, 636 against 659 µs at batch 256; one thread alone takes 1.7–1.9
 * times as long.
 *
 * While a backend with a pool is prepared, OpenBLAS is held to one thread in the process (blas_hold) and its
 * worker threads are stopped: they spin for about 0.1 s after they last had work, and the process's first
 * call that sets OpenBLAS's thread count after a fork() starts them afresh (spinning); either way they took
 * the cores the pool's threads needed. The count is restored when the last such backend is released. */
#ifndef PQ_CPU_GEMM_H
#define PQ_CPU_GEMM_H

#include <cblas.h>
#include <dlfcn.h>
#include <stdint.h>

#include "pool.h"

/* Below this many multiply-adds a GEMM stays on the calling thread: the second layer of the default MLP at
 * batch 1 (256 → 128, 32k) gains from a second thread (1.37 → 1.11 µs), a low-rank factor 784 → 32 (25k) does
 * not (0.91 → 1.10 µs). */
#define GEMM_PAR_MIN_MACS (32 * 1024)

static int blas_holds, blas_saved; /* under pools_mu */

/* OpenBLAS's thread count as the process set it (not the one a hold put in place). */
static int blas_threads_default(void) {
  pthread_mutex_lock(&pools_mu);
  int n = blas_holds ? blas_saved : openblas_get_num_threads();
  pthread_mutex_unlock(&pools_mu);
  return n;
}

static void blas_hold(void) {
  pthread_mutex_lock(&pools_mu);
  if (blas_holds++ == 0 && (blas_saved = openblas_get_num_threads()) != 1) {
    openblas_set_num_threads(1);
    /* OpenBLAS's own fork handler stops its workers with this; not every build exports it (then they stay,
     * sleeping once their spin ends) */
    int (*shutdown)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
    if (shutdown) shutdown();
  }
  pthread_mutex_unlock(&pools_mu);
}

static void blas_release(void) {
  pthread_mutex_lock(&pools_mu);
  if (--blas_holds == 0 && blas_saved != 1) openblas_set_num_threads(blas_saved);
  pthread_mutex_unlock(&pools_mu);
}

typedef struct {
  int ta, tb; /* A, B transposed */
  int64_t m, n, k;
  const float *a, *b;
  int64_t lda, ldb;
  float beta;
  float *c;
  int64_t ldc;
  int by_rows; /* split C's rows (else its columns) */
} GemmJob;

static void gemm_call(const GemmJob *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const float *a = g->a + (g->ta ? m0 : m0 * g->lda), *b = g->b + (g->tb ? n0 * g->ldb : n0);
  float *c = g->c + m0 * g->ldc + n0;
  if (m1 - m0 == 1 && !g->ta && g->tb) /* one row by a weight stored [n, k]: a matrix-vector product */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(n1 - n0), (int)g->k, 1.0f, b, (int)g->ldb, a, 1, g->beta, c, 1);
  else
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)(m1 - m0), (int)(n1 - n0),
                (int)g->k, 1.0f, a, (int)g->lda, b, (int)g->ldb, g->beta, c, (int)g->ldc);
}

static void gemm_part(void *ctx, int part, int parts) {
  const GemmJob *g = ctx;
  if (g->by_rows) {
    int64_t blocks = (g->m + 7) / 8, m0 = blocks * part / parts * 8, m1 = part + 1 == parts ? g->m : blocks * (part + 1) / parts * 8;
    if (m1 > m0) gemm_call(g, m0, m1, 0, g->n);
  } else {
    int64_t blocks = (g->n + 15) / 16, n0 = blocks * part / parts * 16, n1 = part + 1 == parts ? g->n : blocks * (part + 1) / parts * 16;
    if (n1 > n0) gemm_call(g, 0, g->m, n0, n1);
  }
}

/* C[m, n] = op(A)[m, k] · op(B)[k, n] + beta · C, with op a transpose where ta / tb say. */
static void gemm_par(Pool *pool, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float beta, float *c, int64_t ldc) {
  GemmJob g = {ta, tb, m, n, k, a, b, lda, ldb, beta, c, ldc, 0};
  int threads = pool_size(pool), parts = 1;
  if (threads > 1 && m * n * k >= GEMM_PAR_MIN_MACS) {
    if (n >= 32 * threads || n >= m) parts = (int)((n + 15) / 16); /* by columns: each part a panel of B (a linear layer's outputs) */
    else g.by_rows = 1, parts = (int)((m + 7) / 8);
  }
  if (parts < 2) {
    gemm_call(&g, 0, m, 0, n);
    return;
  }
  pool_run(pool, parts, gemm_part, &g);
}

#endif
