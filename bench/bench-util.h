/* bench-util.h — timing helpers for the benchmark programs: alternating rounds, medians, a backend run. */
#ifndef PQ_BENCH_UTIL_H
#define PQ_BENCH_UTIL_H

#include <pquant/pquant.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* When set, bench_pair runs `b` in a child process of its own each round (forked, so it shares nothing
 * running with `a`): for a bare OpenBLAS side on several threads against the CPU backend on its own threads.
 * OpenBLAS's workers spin for about 0.1 s after each threaded call; in the same process they took the cores
 * the backend's threads needed, and a backend thread that had to share a core with the caller stayed there. */
static int bench_isolate_b;

/* Seconds per call of fn, called for about round_s after one call that is not timed. */
static double bench_round(BenchFn fn, void *ctx, double round_s) {
  fn(ctx);
  int n = 0;
  double t0 = bench_now(), t;
  do {
    fn(ctx);
    n++;
  } while ((t = bench_now() - t0) < round_s);
  return t / n;
}

/* bench_round in a forked child; exits the program when the child fails. */
static double bench_round_forked(BenchFn fn, void *ctx, double round_s) {
  int fd[2];
  if (pipe(fd) != 0) {
    perror("bench: pipe");
    exit(1);
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    double v = bench_round(fn, ctx, round_s);
    _exit(write(fd[1], &v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
  }
  close(fd[1]);
  double v = -1;
  ssize_t got = pid > 0 ? read(fd[0], &v, sizeof v) : -1;
  close(fd[0]);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  if (pid < 0 || got != (ssize_t)sizeof v || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "bench: the baseline's child process failed\n");
    exit(1);
  }
  return v;
}

/* Median seconds per call of `a` and of `b`, measured in alternating rounds of ~`round_s` each. */
static void bench_pair(BenchFn a, void *actx, BenchFn b, void *bctx, int rounds, double round_s, double *ta, double *tb) {
  double *va = malloc(sizeof(double) * (size_t)rounds), *vb = malloc(sizeof(double) * (size_t)rounds);
  if (bench_isolate_b) {
    for (int r = 0; r < rounds; r++) {
      va[r] = bench_round(a, actx, round_s);
      vb[r] = bench_round_forked(b, bctx, round_s);
    }
  } else {
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
    for (int r = 0; r < rounds; r++) {
      double t0 = bench_now();
      for (int i = 0; i < iters; i++) a(actx);
      double t1 = bench_now();
      for (int i = 0; i < iters; i++) b(bctx);
      double t2 = bench_now();
      va[r] = (t1 - t0) / iters;
      vb[r] = (t2 - t1) / iters;
    }
  }
  *ta = bench_median(va, rounds);
  *tb = bench_median(vb, rounds);
  free(va);
  free(vb);
}

/* The options every bench takes: --threads N, --seconds S (and --model FILE where `model` is not NULL); exits
 * with the usage on anything else. */
G_GNUC_UNUSED static void bench_args(int argc, char **argv, int *threads, double *seconds, const char **model) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) *threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) *seconds = atof(argv[++i]);
    else if (model && !strcmp(argv[i], "--model") && i + 1 < argc) *model = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--threads N]%s [--seconds S]\n", argv[0], model ? " [--model FILE]" : "");
      exit(2);
    }
  }
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
