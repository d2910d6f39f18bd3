/* circulant.h — block-circulant linear layers with FFTW: each block's spectrum is computed once at prepare;
 * a run transforms the input blocks, multiplies and accumulates in the frequency domain (planar, so the
 * loop vectorises), and transforms each output block back. Plans are made once, at prepare. */
#ifndef PQ_CPU_CIRCULANT_H
#define PQ_CPU_CIRCULANT_H

/* before <cblas.h>, which brings <complex.h>: fftwf_complex stays float[2] */
#include <fftw3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Circ {
  int64_t b, f, mb, nb, in, out;
  float *wre, *wim;   /* [mb][nb][f] spectra of the blocks' first columns, scaled by 1/b */
  float *xpad;        /* nb * b: one input row, zero-padded */
  fftwf_complex *x;   /* nb * f */
  float *xr, *xi;     /* nb * f, planar */
  fftwf_complex *acc; /* mb * f */
  float *ypad;        /* mb * b */
  float *ar, *ai;     /* f */
  fftwf_plan fwd, inv;
} Circ;

static void circ_free(Circ *c) {
  if (!c) return;
  if (c->fwd) fftwf_destroy_plan(c->fwd);
  if (c->inv) fftwf_destroy_plan(c->inv);
  fftwf_free(c->wre);
  fftwf_free(c->wim);
  fftwf_free(c->xpad);
  fftwf_free(c->x);
  fftwf_free(c->xr);
  fftwf_free(c->xi);
  fftwf_free(c->acc);
  fftwf_free(c->ypad);
  fftwf_free(c->ar);
  fftwf_free(c->ai);
  free(c);
}

static Circ *circ_new(const float *blocks, int64_t mb, int64_t nb, int64_t b, int64_t in, int64_t out, int64_t *bytes) {
  Circ *c = calloc(1, sizeof(Circ));
  if (!c) return NULL;
  c->b = b;
  c->f = b / 2 + 1;
  c->mb = mb;
  c->nb = nb;
  c->in = in;
  c->out = out;
  size_t nw = (size_t)(mb * nb * c->f);
  c->wre = fftwf_malloc(sizeof(float) * nw);
  c->wim = fftwf_malloc(sizeof(float) * nw);
  c->xpad = fftwf_malloc(sizeof(float) * (size_t)(nb * b));
  c->x = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(nb * c->f));
  c->xr = fftwf_malloc(sizeof(float) * (size_t)(nb * c->f));
  c->xi = fftwf_malloc(sizeof(float) * (size_t)(nb * c->f));
  c->acc = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(mb * c->f));
  c->ypad = fftwf_malloc(sizeof(float) * (size_t)(mb * b));
  c->ar = fftwf_malloc(sizeof(float) * (size_t)c->f);
  c->ai = fftwf_malloc(sizeof(float) * (size_t)c->f);
  float *tmp = fftwf_malloc(sizeof(float) * (size_t)(mb * nb * b));
  fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * nw);
  if (!c->wre || !c->wim || !c->xpad || !c->x || !c->xr || !c->xi || !c->acc || !c->ypad || !c->ar || !c->ai || !tmp || !spec) {
    fftwf_free(tmp);
    fftwf_free(spec);
    circ_free(c);
    return NULL;
  }
  int n = (int)b;
  /* the weights' spectra, once */
  fftwf_plan pw = fftwf_plan_many_dft_r2c(1, &n, (int)(mb * nb), tmp, NULL, 1, n, spec, NULL, 1, (int)c->f, FFTW_ESTIMATE);
  memcpy(tmp, blocks, sizeof(float) * (size_t)(mb * nb * b));
  fftwf_execute(pw);
  fftwf_destroy_plan(pw);
  for (size_t i = 0; i < nw; i++) {
    c->wre[i] = spec[i][0] / (float)b; /* the inverse transform is unnormalised */
    c->wim[i] = spec[i][1] / (float)b;
  }
  fftwf_free(tmp);
  fftwf_free(spec);
  c->fwd = fftwf_plan_many_dft_r2c(1, &n, (int)nb, c->xpad, NULL, 1, n, c->x, NULL, 1, (int)c->f, FFTW_MEASURE);
  c->inv = fftwf_plan_many_dft_c2r(1, &n, (int)mb, c->acc, NULL, 1, (int)c->f, c->ypad, NULL, 1, n, FFTW_MEASURE);
  if (!c->fwd || !c->inv) {
    circ_free(c);
    return NULL;
  }
  *bytes = (int64_t)(sizeof(float) * (2 * nw + (size_t)(nb * b + 2 * nb * c->f + mb * b + 2 * c->f)) +
                     sizeof(fftwf_complex) * (size_t)(nb * c->f + mb * c->f));
  return c;
}

static void circ_row(Circ *c, const float *x, const float *bias, float *y, int relu) {
  const int64_t b = c->b, f = c->f, nb = c->nb, mb = c->mb;
  memcpy(c->xpad, x, sizeof(float) * (size_t)c->in);
  memset(c->xpad + c->in, 0, sizeof(float) * (size_t)(nb * b - c->in));
  fftwf_execute(c->fwd);
  for (int64_t i = 0; i < nb * f; i++) {
    c->xr[i] = c->x[i][0];
    c->xi[i] = c->x[i][1];
  }
  float *restrict ar = c->ar, *restrict ai = c->ai;
  for (int64_t bi = 0; bi < mb; bi++) {
    memset(ar, 0, sizeof(float) * (size_t)f);
    memset(ai, 0, sizeof(float) * (size_t)f);
    for (int64_t bj = 0; bj < nb; bj++) {
      const float *restrict wr = c->wre + (bi * nb + bj) * f, *restrict wi = c->wim + (bi * nb + bj) * f;
      const float *restrict xr = c->xr + bj * f, *restrict xi = c->xi + bj * f;
      for (int64_t k = 0; k < f; k++) {
        ar[k] += wr[k] * xr[k] - wi[k] * xi[k];
        ai[k] += wr[k] * xi[k] + wi[k] * xr[k];
      }
    }
    for (int64_t k = 0; k < f; k++) {
      c->acc[bi * f + k][0] = ar[k];
      c->acc[bi * f + k][1] = ai[k];
    }
  }
  fftwf_execute(c->inv);
  for (int64_t o = 0; o < c->out; o++) {
    float v = c->ypad[o] + (bias ? bias[o] : 0.0f);
    y[o] = relu && v < 0.0f ? 0.0f : v;
  }
}

#endif
