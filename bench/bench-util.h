/* bench-util.h — timing helpers for the benchmark programs: alternating rounds, medians, a backend run. */
#ifndef PQ_BENCH_UTIL_H
#define PQ_BENCH_UTIL_H

#include <pquant/pquant.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
  return v[n / 2];
}

typedef void (*BenchFn)(void *ctx);

/* Median seconds per call of `a` and of `b`, measured in alternating rounds of ~`round_s` each. */
static void bench_pair(BenchFn a, void *actx, BenchFn b, void *bctx, int rounds, double round_s, double *ta, double *tb) {
  int iters = 1;
  for (;;) { /* calibrate on the slower of the two */
    double t0 = bench_now();
    for (int i = 0; i < iters; i++) {
      a(actx);
      b(bctx);
    }
    if (bench_now() - t0 > round_s || iters > (1 << 20)) break;
    iters *= 2;
  }
  double *va = malloc(sizeof(double) * (size_t)rounds), *vb = malloc(sizeof(double) * (size_t)rounds);
  for (int r = 0; r < rounds; r++) {
    double t0 = bench_now();
    for (int i = 0; i < iters; i++) a(actx);
    double t1 = bench_now();
    for (int i = 0; i < iters; i++) b(bctx);
    double t2 = bench_now();
    va[r] = (t1 - t0) / iters;
    vb[r] = (t2 - t1) / iters;
  }
  *ta = bench_median(va, rounds);
  *tb = bench_median(vb, rounds);
  free(va);
  free(vb);
}

/* One run of a prepared backend, as a BenchFn: a failed run ends the program with its message. */
typedef struct {
  PqBackend *be;
  const float *x;
  float *y;
  int64_t batch;
} BenchRun;

G_GNUC_UNUSED static void bench_backend_run(void *p) {
  BenchRun *r = p;
  GError *err = NULL;
  if (!pq_backend_run_f32(r->be, r->x, r->batch, r->y, &err)) {
    fprintf(stderr, "bench: the backend's run failed: %s\n", err->message);
    exit(1);
  }
}

#endif
