/* linalg.c — SVD helpers shared by the plugins: exact truncated SVD through LAPACK, and randomized SVD
 * (range finder with power iterations) for large matrices. Work is done column-major, where LAPACK is
 * fastest: a row-major A [m, n] is read as the column-major A^T. */
#include "pq-private.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The error for a LAPACK call that failed: LAPACKE refuses a matrix holding NaN with the matrix argument's
 * position as a negative info, which here means values that overflowed float32 on the way. */
static void lapack_error(PqPluginError *err, const char *what, lapack_int info) {
  if (info < 0)
    pq_plugin_error_set(err, PQ_ERR_INVALID, "%s: the matrix holds NaN (values beyond float32's range on the way; LAPACK info %d)", what,
                        (int)info);
  else
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "%s did not converge (LAPACK info %d)", what, (int)info);
}

/* Orthonormalise the columns of a column-major [rows, cols] matrix in place (thin QR). */
static int orthonormalize(float *a, int64_t rows, int64_t cols, PqPluginError *err) {
  float *tau = malloc(sizeof(float) * (size_t)cols);
  lapack_int info = tau ? LAPACKE_sgeqrf(LAPACK_COL_MAJOR, (lapack_int)rows, (lapack_int)cols, a, (lapack_int)rows, tau) : -1;
  if (info == 0) info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, (lapack_int)rows, (lapack_int)cols, (lapack_int)cols, a, (lapack_int)rows, tau);
  free(tau);
  if (info != 0) lapack_error(err, "QR factorisation", info);
  return info == 0 ? 0 : -1;
}

/* Exact thin SVD of a column-major [m, n] matrix (destroyed): U [m, p] (ld m), S [p], Vt [p, n] (ld p). */
static int svd_cm(float *a, int64_t m, int64_t n, float *u, float *s, float *vt, PqPluginError *err) {
  lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)m, (lapack_int)n, a, (lapack_int)m, s, u, (lapack_int)m, vt,
                                   (lapack_int)MIN(m, n));
  if (info != 0) {
    lapack_error(err, "SVD", info);
    return -1;
  }
  return 0;
}

int pq_singular_values(const float *a, int64_t m, int64_t n, float *s, PqPluginError *err) {
  float *c = malloc(sizeof(float) * (size_t)(m * n));
  if (!c) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    return -1;
  }
  memcpy(c, a, sizeof(float) * (size_t)(m * n));
  lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)n, (lapack_int)m, c, (lapack_int)n, s, NULL, 1, NULL, 1);
  free(c);
  if (info != 0) lapack_error(err, "SVD", info);
  return info == 0 ? 0 : -1;
}

int pq_cholesky_damped(float *a, int64_t n, double damping) {
  double mean = 0;
  for (int64_t i = 0; i < n; i++) mean += a[i * n + i];
  mean /= (double)n;
  float ridge = (float)(damping * (mean > 0 ? mean : 1.0));
  for (int64_t i = 0; i < n; i++) a[i * n + i] += ridge;
  if (LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, a, (lapack_int)n) != 0) return -1;
  for (int64_t i = 0; i < n; i++) /* potrf leaves the upper triangle as it was */
    for (int64_t j = i + 1; j < n; j++) a[i * n + j] = 0.0f;
  return 0;
}

int64_t pq_energy_rank(const float *a, int64_t m, int64_t n, double energy, PqPluginError *err) {
  int64_t p = MIN(m, n);
  float *s = malloc(sizeof(float) * (size_t)p);
  if (!s) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    return -1;
  }
  if (pq_singular_values(a, m, n, s, err) != 0) {
    free(s);
    return -1;
  }
  double total = 0, acc = 0;
  for (int64_t i = 0; i < p; i++) total += (double)s[i] * s[i];
  int64_t k = p;
  for (int64_t i = 0; i < p; i++) {
    acc += (double)s[i] * s[i];
    if (acc >= energy * total) {
      k = i + 1;
      break;
    }
  }
  free(s);
  return k;
}

static int svd_exact(const float *a, int64_t m, int64_t n, int64_t k, float *u, float *s, float *vt, PqPluginError *err) {
  int64_t p = MIN(m, n);
  /* the buffer is A^T column-major (n × m): A^T = Ub Sb Vbt gives A = Vbt^T Sb Ub^T, so Ub's columns are
     Vt's rows and Vbt, read row-major, is U */
  float *c = malloc(sizeof(float) * (size_t)(m * n)), *ub = malloc(sizeof(float) * (size_t)(n * p)),
        *vbt = malloc(sizeof(float) * (size_t)(p * m)), *sb = malloc(sizeof(float) * (size_t)p);
  int rc = -1;
  if (!c || !ub || !vbt || !sb) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory for the SVD of %lld x %lld", (long long)m, (long long)n);
    goto out;
  }
  memcpy(c, a, sizeof(float) * (size_t)(m * n));
  if (svd_cm(c, n, m, ub, sb, vbt, err) != 0) goto out;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < k; j++) u[i * k + j] = vbt[i * p + j];
  memcpy(vt, ub, sizeof(float) * (size_t)(k * n));
  memcpy(s, sb, sizeof(float) * (size_t)k);
  rc = 0;
out:
  free(c);
  free(ub);
  free(vbt);
  free(sb);
  return rc;
}

static float gaussian(uint64_t *state) {
  /* splitmix64 → two uniforms → Box–Muller: deterministic for a seed on every machine */
  double u[2];
  for (int i = 0; i < 2; i++) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    u[i] = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
  }
  return (float)(sqrt(-2.0 * log(u[0])) * cos(2 * G_PI * u[1]));
}

static int svd_randomized(const float *a, int64_t m, int64_t n, int64_t k, int oversample, int power_iters, uint64_t seed,
                          float *u, float *s, float *vt, PqPluginError *err) {
  int64_t l = MIN(k + oversample, MIN(m, n));
  float *omega = malloc(sizeof(float) * (size_t)(n * l)), *y = malloc(sizeof(float) * (size_t)(m * l)),
        *z = malloc(sizeof(float) * (size_t)(n * l)), *b = malloc(sizeof(float) * (size_t)(l * n)),
        *ub = malloc(sizeof(float) * (size_t)(l * l)), *vbt = malloc(sizeof(float) * (size_t)(l * n)),
        *sb = malloc(sizeof(float) * (size_t)l), *uq = malloc(sizeof(float) * (size_t)(m * l));
  int rc = -1;
  if (!omega || !y || !z || !b || !ub || !vbt || !sb || !uq) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory for a randomized SVD of %lld x %lld", (long long)m, (long long)n);
    goto out;
  }
  uint64_t state = seed;
  for (int64_t i = 0; i < n * l; i++) omega[i] = gaussian(&state);
  /* Y = A Ω (m × l); the row-major A buffer is the column-major A^T (n × m, ld n) */
  cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m, (int)l, (int)n, 1.0f, a, (int)n, omega, (int)n, 0.0f, y, (int)m);
  if (orthonormalize(y, m, l, err)) goto out;
  for (int q = 0; q < power_iters; q++) {
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)l, (int)m, 1.0f, a, (int)n, y, (int)m, 0.0f, z, (int)n);
    if (orthonormalize(z, n, l, err)) goto out;
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m, (int)l, (int)n, 1.0f, a, (int)n, z, (int)n, 0.0f, y, (int)m);
    if (orthonormalize(y, m, l, err)) goto out;
  }
  /* B = Q^T A (l × n), then the small exact SVD B = Ub S Vbt and U = Q Ub */
  cblas_sgemm(CblasColMajor, CblasTrans, CblasTrans, (int)l, (int)n, (int)m, 1.0f, y, (int)m, a, (int)n, 0.0f, b, (int)l);
  if (svd_cm(b, l, n, ub, sb, vbt, err)) goto out;
  cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)l, (int)l, 1.0f, y, (int)m, ub, (int)l, 0.0f, uq, (int)m);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < k; j++) u[i * k + j] = uq[i + j * m];
  for (int64_t j = 0; j < k; j++)
    for (int64_t c = 0; c < n; c++) vt[j * n + c] = vbt[j + c * l];
  memcpy(s, sb, sizeof(float) * (size_t)k);
  rc = 0;
out:
  free(omega);
  free(y);
  free(z);
  free(b);
  free(ub);
  free(vbt);
  free(sb);
  free(uq);
  return rc;
}

int pq_svd_truncated(const float *a, int64_t m, int64_t n, int64_t k, int randomized, int oversample, int power_iters,
                     uint64_t seed, float *u, float *s, float *vt, PqPluginError *err) {
  if (m < 1 || n < 1 || k < 1 || k > MIN(m, n)) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "rank %lld outside 1..%lld for a %lld x %lld matrix", (long long)k,
                        (long long)MIN(m, n), (long long)m, (long long)n);
    return -1;
  }
  if (randomized) return svd_randomized(a, m, n, k, oversample < 0 ? 0 : oversample, power_iters < 0 ? 0 : power_iters, seed, u, s, vt, err);
  return svd_exact(a, m, n, k, u, s, vt, err);
}

/* ---- convolution patches --------------------------------------------------------------------------- */

/* The outputs ox0 … ox1 − 1 of a row whose tap kj reads inside the image (ix = ox·sw − pl + kj·dw in [0, w)). */
static void im2col_span(const PqConvGeometry *g, int64_t kj, int64_t *ox0, int64_t *ox1) {
  int64_t lo = g->pl - kj * g->dw, hi = g->w + g->pl - kj * g->dw; /* ox·sw must reach lo and stay below hi */
  int64_t a = lo <= 0 ? 0 : (lo + g->sw - 1) / g->sw, b = hi <= 0 ? 0 : (hi + g->sw - 1) / g->sw;
  *ox0 = MIN(a, g->ow);
  *ox1 = MAX(*ox0, MIN(b, g->ow));
}

void pq_im2col(const float *x, const PqConvGeometry *g, float *col) {
  int64_t ohw = g->oh * g->ow;
  for (int64_t ci = 0; ci < g->c; ci++)
    for (int64_t ki = 0; ki < g->kh; ki++)
      for (int64_t kj = 0; kj < g->kw; kj++) {
        float *row = col + ((ci * g->kh + ki) * g->kw + kj) * ohw;
        int64_t ox0, ox1;
        im2col_span(g, kj, &ox0, &ox1);
        for (int64_t oy = 0; oy < g->oh; oy++) {
          int64_t iy = oy * g->sh - g->pt + ki * g->dh;
          float *r = row + oy * g->ow;
          if (iy < 0 || iy >= g->h) { /* a whole output row in the padding */
            memset(r, 0, sizeof(float) * (size_t)g->ow);
            continue;
          }
          const float *xr = x + (ci * g->h + iy) * g->w;
          const int64_t off = kj * g->dw - g->pl; /* ix = ox·sw + off, inside for ox in the span */
          /* (loops, not memcpy/memset: rows are short, a call costs more than the copy) */
          for (int64_t ox = 0; ox < ox0; ox++) r[ox] = 0.0f;
          if (g->sw == 1)
            for (int64_t ox = ox0; ox < ox1; ox++) r[ox] = xr[ox + off];
          else
            for (int64_t ox = ox0; ox < ox1; ox++) r[ox] = xr[ox * g->sw + off];
          for (int64_t ox = ox1; ox < g->ow; ox++) r[ox] = 0.0f;
        }
      }
}

void pq_col2im_add(const float *col, const PqConvGeometry *g, float *x) {
  int64_t ohw = g->oh * g->ow;
  for (int64_t ci = 0; ci < g->c; ci++)
    for (int64_t ki = 0; ki < g->kh; ki++)
      for (int64_t kj = 0; kj < g->kw; kj++) {
        const float *row = col + ((ci * g->kh + ki) * g->kw + kj) * ohw;
        int64_t ox0, ox1;
        im2col_span(g, kj, &ox0, &ox1);
        for (int64_t oy = 0; oy < g->oh; oy++) {
          int64_t iy = oy * g->sh - g->pt + ki * g->dh;
          if (iy < 0 || iy >= g->h) continue;
          float *xr = x + (ci * g->h + iy) * g->w;
          const int64_t off = kj * g->dw - g->pl;
          const float *r = row + oy * g->ow;
          if (g->sw == 1)
            for (int64_t ox = ox0; ox < ox1; ox++) xr[ox + off] += r[ox];
          else
            for (int64_t ox = ox0; ox < ox1; ox++) xr[ox * g->sw + off] += r[ox];
        }
      }
}
