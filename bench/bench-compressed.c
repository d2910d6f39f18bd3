/* bench-compressed.c — compressed forms against dense float32 OpenBLAS on the same 4096×4096 shape, one
 * thread, measured in the same run: int8, 4-bit (per group) and 6-bit (per channel) linear at batch 1 against sgemv, low-rank rank 64
 * against dense, CSR at 90% sparsity at batch 1 and 64, int8 on 2 threads against 1 (and right after a float layer's
 * run against alone), quantizing to int8 against a copy of the same floats, randomized SVD against full sgesdd.
 * Usage: bench-compressed [--size N] [--skip-svd] */
#include <pquant/pquant.h>

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench-util.h"
#include "../plugins/backends/cpu/cpu-features.h"

typedef struct {
  PqBackend *b;
  const float *x;
  float *y;
  int64_t batch; /* 0: 1 */
} RunCtx;
static void run_backend(void *p) {
  RunCtx *c = p;
  pq_backend_run_f32(c->b, c->x, c->batch ? c->batch : 1, c->y, NULL);
}

typedef struct {
  const float *w, *x;
  float *y;
  int n, batch;
} GemmCtx;
static void run_sgemm(void *p) { /* y [batch, n] = x [batch, n] · Wᵀ */
  GemmCtx *c = p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->batch, c->n, c->n, 1.0f, c->x, c->n, c->w, c->n, 0.0f, c->y, c->n);
}

typedef struct {
  const float *w, *x;
  float *y;
  int n;
} GemvCtx;
static void run_sgemv(void *p) {
  GemvCtx *c = p;
  cblas_sgemv(CblasRowMajor, CblasNoTrans, c->n, c->n, 1.0f, c->w, c->n, c->x, 1, 0.0f, c->y, 1);
}

typedef struct {
  const float *w;
  const int64_t *shape;
  PqPluginError *err;
} QuantCtx;
static void run_quantize(void *p) {
  QuantCtx *c = p;
  pq_tensor_unref(pq_quantize_matrix("w", c->w, 2, c->shape, 8, PQ_QUANT_PER_CHANNEL, 0, 1, 0, c->err));
}

typedef struct {
  void *dst;
  const void *src;
  size_t n;
} CopyCtx;
static void run_copy(void *p) {
  CopyCtx *c = p;
  memcpy(c->dst, c->src, c->n);
}

/* Targets of quantizing against the copy, by the path pq_quantize_matrix takes: it should run at about the
 * speed memory gives. AVX2 measured 0.88-1.00x on an AMD EPYC (Zen 3), the portable (SSE2) path 0.72-0.76x
 * there (PQ_NO_SIMD=1); the AVX-512 path ran at 15-18 GB/s on the machines that have it, not yet measured
 * against the copy. */
#define QT_AVX512 0.9
#define QT_AVX2 0.75
#define QT_PORTABLE 0.5

static PqModel *one_linear(PqTensor *w, int64_t n) {
  PqModel *m = pq_model_new();
  int64_t is[2] = {-1, n};
  pq_graph_add_input(pq_model_graph(m), "x", 2, is);
  pq_model_set_tensor(m, w);
  const char *in[2] = {"x", pq_tensor_name(w)}, *out[1] = {"y"};
  pq_graph_add_node(pq_model_graph(m), "linear", "fc", 2, in, 1, out);
  pq_graph_add_output(pq_model_graph(m), "y");
  return m;
}

static int report(const char *what, double t_ours, double t_base, double target, const char *unit) {
  double ratio = t_base / t_ours;
  printf("%-34s %11.3f %11.3f %8.2fx %7.2fx %s\n", what, t_ours * 1e3, t_base * 1e3, ratio, target, ratio >= target ? "ok" : "BELOW TARGET");
  (void)unit;
  return ratio >= target ? 0 : 1;
}

/* An int8 layer on 2 threads timed right after each run of a float layer on 2 threads (as the latency probe
 * alternates a method with its baseline, or as a model mixes float and packed layers), against the int8 runs
 * alone: the float GEMM must not leave threads spinning that the packed kernels then wait behind. 1024×1024
 * at batch 64, so the float run takes about as long as the int8 one. Target: within 15%. */
static int after_float(PqPlugin *cpu, const float *wd, const float *x, int64_t size) {
  const int64_t n = size < 1024 ? size : 1024, B = 64, shape[2] = {n, n}; /* (wd and x hold size² and size values) */
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_autoptr(GError) err = NULL;
  PqTensor *wf = pq_tensor_new("w", PQ_DTYPE_F32, 2, shape), *wq = pq_quantize_matrix("w", wd, 2, shape, 8, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &perr);
  if (!wq) {
    fprintf(stderr, "bench-compressed: %s\n", perr.message);
    exit(1);
  }
  memcpy(pq_tensor_mutable_data(wf), wd, sizeof(float) * (size_t)(n * n));
  g_autoptr(PqModel) mf = one_linear(wf, n);
  g_autoptr(PqModel) mq = one_linear(wq, n);
  pq_tensor_unref(wf);
  pq_tensor_unref(wq);
  g_autoptr(PqBackend) bf = pq_backend_prepare(cpu, mf, 2, B, NULL, &err);
  g_autoptr(PqBackend) bq = bf ? pq_backend_prepare(cpu, mq, 2, B, NULL, &err) : NULL;
  if (!bq) {
    fprintf(stderr, "bench-compressed: %s\n", err->message);
    exit(1);
  }
  g_autofree float *xb = g_new(float, B * n), *yb = g_new(float, B * n);
  for (int64_t i = 0; i < B * n; i++) xb[i] = x[i % n];
  enum { ROUNDS = 21, RUNS = 50 };
  double alone[ROUNDS], mixed[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    double t = 0;
    for (int i = 0; i < RUNS; i++) {
      pq_backend_run_f32(bf, xb, B, yb, NULL);
      double t0 = bench_now();
      pq_backend_run_f32(bq, xb, B, yb, NULL);
      t += bench_now() - t0;
    }
    mixed[r] = t / RUNS;
    double t0 = bench_now();
    for (int i = 0; i < RUNS; i++) pq_backend_run_f32(bq, xb, B, yb, NULL);
    alone[r] = (bench_now() - t0) / RUNS;
  }
  double tm = bench_median(mixed, ROUNDS), ta = bench_median(alone, ROUNDS), ratio = tm / ta;
  printf("%-34s %11.3f %11.3f %7.2fx %6.2fx %s\n", "int8 b64 after float / alone, 2 thr", tm * 1e3, ta * 1e3, ratio, 1.15,
         ratio <= 1.15 ? "ok" : "OVER TARGET");
  return ratio <= 1.15 ? 0 : 1;
}

int main(int argc, char **argv) {
  int64_t n = 4096;
  gboolean skip_svd = FALSE;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--size") && i + 1 < argc) n = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--skip-svd")) skip_svd = TRUE;
    else {
      fprintf(stderr, "usage: %s [--size N] [--skip-svd]\n", argv[0]);
      return 2;
    }
  }
  openblas_set_num_threads(1);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqRegistry) reg = pq_registry_new();
  pq_registry_scan_default(reg);
  PqPlugin *cpu = pq_registry_find(reg, "cpu", PQ_KIND_BACKEND, &err);
  if (!cpu) {
    fprintf(stderr, "bench-compressed: %s\n", err->message);
    return 1;
  }
  int64_t shape[2] = {n, n};
  g_autoptr(PqTensor) w = pq_tensor_new("w", PQ_DTYPE_F32, 2, shape);
  float *wd = pq_tensor_mutable_data(w);
  GRand *r = g_rand_new_with_seed(3);
  for (int64_t i = 0; i < n * n; i++) wd[i] = (float)g_rand_double_range(r, -1, 1);
  g_autofree float *x = g_new(float, n), *y = g_new(float, n), *y2 = g_new(float, n);
  for (int64_t i = 0; i < n; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  g_rand_free(r);
  GemvCtx dense = {wd, x, y2, (int)n};
  int failed = 0;
  printf("bench-compressed: %lldx%lld, 1 thread; times in ms (medians of alternating rounds)\n", (long long)n, (long long)n);
  printf("%-34s %11s %11s %9s %8s\n", "", "pquant", "baseline", "speedup", "target");

  /* quantizing to int8 (one scale a row, no clipping search), against a plain copy of the same float bytes
     (memcpy into a buffer written before): both read the matrix once; the quantizer writes a quarter of the
     bytes into a new tensor, and does the arithmetic. */
  PqPluginError perr = {sizeof perr, 0, {0}};
  QuantCtx qc = {wd, shape, &perr};
  g_autofree float *copy = g_new(float, n * n);
  memcpy(copy, wd, sizeof(float) * (size_t)(n * n));
  CopyCtx cc = {copy, wd, (size_t)(n * n) * sizeof(float)};
  double tq, tcopy;
  bench_pair(run_quantize, &qc, run_copy, &cc, 5, 0.2, &tq, &tcopy);
  if (perr.code) {
    fprintf(stderr, "bench-compressed: %s\n", perr.message);
    return 1;
  }
  /* the path pq_quantize_matrix takes for 8-bit symmetric rows here, and its target */
  int qpath = 0;
#if defined(__x86_64__)
  qpath = g_getenv("PQ_NO_SIMD") ? 0 : __builtin_cpu_supports("avx512bw") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
  const double qt = qpath == 2 ? QT_AVX512 : qpath == 1 ? QT_AVX2 : QT_PORTABLE;
  failed |= report(qpath == 2 ? "quantize to int8 (AVX-512) vs copy" : qpath == 1 ? "quantize to int8 (AVX2) vs copy" : "quantize to int8 (portable) vs copy",
                   tq, tcopy, qt, "x");
  printf("%-34s %11.1f %11.1f GB/s of float input\n", "", (double)(n * n * 4) / tq / 1e9, (double)(n * n * 4) / tcopy / 1e9);

  /* the CPU's widest kernels, then the AVX2 ones (how a CPU without AVX-512 runs them; where the CPU has AVX2), at
     batch 1 against sgemv and at batch 64 against sgemm (the lane layout: 16 outputs side by side, four input
     rows a pass) */
  /* targets: of the AVX-512 VNNI kernels, and of the AVX2 ones, which "auto" runs on a CPU without VNNI (its
     lines are then judged by them and say so) */
  struct {
    const char *name;
    int bits;
    PqQuantScheme scheme;
    double target, target_avx2;
    const char *kernels;
    int64_t batch;
  } forms[10] = {{"int8 linear, batch 1 vs sgemv", 8, PQ_QUANT_PER_CHANNEL, 5.0, 2.5, "auto", 1},
                 {"4-bit linear, batch 1 vs sgemv", 4, PQ_QUANT_PER_GROUP, 8.0, 2.5, "auto", 1},
                 {"6-bit linear, batch 1 vs sgemv", 6, PQ_QUANT_PER_CHANNEL, 5.0, 1.5, "auto", 1},
                 {"  AVX2 kernels: int8", 8, PQ_QUANT_PER_CHANNEL, 2.5, 2.5, "avx2", 1},
                 {"  AVX2 kernels: 4-bit per group", 4, PQ_QUANT_PER_GROUP, 2.5, 2.5, "avx2", 1},
                 {"  AVX2 kernels: 6-bit", 6, PQ_QUANT_PER_CHANNEL, 1.5, 1.5, "avx2", 1},
                 {"int8 linear, batch 64 vs sgemm", 8, PQ_QUANT_PER_CHANNEL, 3.0, 1.5, "auto", 64},
                 {"4-bit per group, batch 64 vs sgemm", 4, PQ_QUANT_PER_GROUP, 3.0, 1.5, "auto", 64},
                 {"  AVX2 kernels: 6-bit, batch 64", 6, PQ_QUANT_PER_CHANNEL, 1.5, 1.5, "avx2", 64},
                 {"  AVX2: 4-bit per group, batch 64", 4, PQ_QUANT_PER_GROUP, 1.5, 1.5, "avx2", 64}};
  int vnni = pq_cpu_has_vnni(); /* the CPU backend's own test for its AVX-512 VNNI kernels */
  if (!vnni) printf("(no AVX-512 VNNI on this CPU: the lines without AVX2 in their name run the AVX2 kernels, or the portable ones, and are judged by their targets)\n");
  {
    const int64_t B = 64;
    g_autofree float *xb = g_new(float, B * n), *yb = g_new(float, B * n), *yb2 = g_new(float, B * n);
    for (int64_t i = 0; i < B * n; i++) xb[i] = x[i % n] * (float)(1 + i / n % 3);
    GemmCtx dense_b = {wd, xb, yb2, (int)n, (int)B};
    for (int f = 0; f < 10; f++) {
      if (!strcmp(forms[f].kernels, "avx2") && !pq_cpu_has_avx2()) continue; /* (x86-64 kernels) */
      PqTensor *q = pq_quantize_matrix("w", wd, 2, shape, forms[f].bits, forms[f].scheme, 128, 1, 0, &perr);
      g_autoptr(PqModel) m = one_linear(q, n);
      pq_tensor_unref(q);
      g_autoptr(PqOptions) bo = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
      if (!bo || !pq_options_set(bo, "kernels", forms[f].kernels, &err)) {
        fprintf(stderr, "bench-compressed: %s\n", err->message);
        return 1;
      }
      g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, forms[f].batch, bo, &err);
      if (!b) {
        fprintf(stderr, "bench-compressed: %s\n", err->message);
        return 1;
      }
      RunCtx ours = {b, x, y, 1}, ours_b = {b, xb, yb, B};
      double to, tb;
      if (forms[f].batch == 1) bench_pair(run_backend, &ours, run_sgemv, &dense, 21, 0.05, &to, &tb);
      else bench_pair(run_backend, &ours_b, run_sgemm, &dense_b, 11, 0.1, &to, &tb);
      failed |= report(forms[f].name, to, tb, vnni ? forms[f].target : forms[f].target_avx2, "");
    }
  }

  /* the packed kernels on the backend's threads: int8 at batch 64 (rows split), 8 and 1 (outputs split),
     2 threads against 1, where the machine has two processors */
  if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
    PqTensor *q = pq_quantize_matrix("w", wd, 2, shape, 8, PQ_QUANT_PER_CHANNEL, 128, 1, 0, &perr);
    g_autoptr(PqModel) m = one_linear(q, n);
    pq_tensor_unref(q);
    const int64_t B = 64;
    g_autoptr(PqBackend) b1 = pq_backend_prepare(cpu, m, 1, B, NULL, &err), b2 = pq_backend_prepare(cpu, m, 2, B, NULL, &err);
    if (!b1 || !b2) {
      fprintf(stderr, "bench-compressed: %s\n", err->message);
      return 1;
    }
    g_autofree float *xb = g_new(float, B * n), *yb = g_new(float, B * n);
    for (int64_t i = 0; i < B * n; i++) xb[i] = x[i % n] * (float)(1 + i / n % 3);
    const int64_t batches[3] = {64, 8, 1};
    const char *names[3] = {"int8 batch 64, 2 threads vs 1", "int8 batch 8, 2 threads vs 1", "int8 batch 1, 2 threads vs 1"};
    for (int k = 0; k < 3; k++) {
      RunCtx one = {b1, xb, yb, batches[k]}, two = {b2, xb, yb, batches[k]};
      double t2, t1;
      bench_pair(run_backend, &two, run_backend, &one, 11, 0.1, &t2, &t1);
      failed |= report(names[k], t2, t1, 1.5, "");
    }
    failed |= after_float(cpu, wd, x, n);
  }

  /* low-rank rank 64 as two linears */
  {
    int64_t k = 64, vs[2] = {k, n}, us[2] = {n, k};
    g_autoptr(PqModel) m = pq_model_new();
    int64_t is[2] = {-1, n};
    pq_graph_add_input(pq_model_graph(m), "x", 2, is);
    PqTensor *v = pq_tensor_new("v", PQ_DTYPE_F32, 2, vs), *u = pq_tensor_new("u", PQ_DTYPE_F32, 2, us);
    memcpy(pq_tensor_mutable_data(v), wd, sizeof(float) * (size_t)(k * n));
    memcpy(pq_tensor_mutable_data(u), wd + k * n, sizeof(float) * (size_t)(k * n));
    pq_model_set_tensor(m, v);
    pq_model_set_tensor(m, u);
    pq_tensor_unref(v);
    pq_tensor_unref(u);
    const char *i1[2] = {"x", "v"}, *o1[1] = {"t"}, *i2[2] = {"t", "u"}, *o2[1] = {"y"};
    pq_graph_add_node(pq_model_graph(m), "linear", "fc.lr_v", 2, i1, 1, o1);
    pq_graph_add_node(pq_model_graph(m), "linear", "fc", 2, i2, 1, o2);
    pq_graph_add_output(pq_model_graph(m), "y");
    g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, 1, NULL, &err);
    RunCtx ours = {b, x, y, 1};
    double to, tb;
    bench_pair(run_backend, &ours, run_sgemv, &dense, 21, 0.05, &to, &tb);
    failed |= report("low-rank 64, batch 1 vs dense", to, tb, 10.0, "");
  }

  /* block-circulant, b = 64: FFTs planned at prepare */
  {
    int64_t b = 64, nb = (n + b - 1) / b, cs[3] = {nb, nb, b};
    g_autoptr(PqModel) m = pq_model_new();
    int64_t is[2] = {-1, n};
    pq_graph_add_input(pq_model_graph(m), "x", 2, is);
    PqTensor *c = pq_tensor_new("c", PQ_DTYPE_F32, 3, cs);
    memcpy(pq_tensor_mutable_data(c), wd, sizeof(float) * (size_t)(nb * nb * b));
    pq_model_set_tensor(m, c);
    pq_tensor_unref(c);
    const char *i1[2] = {"x", "c"}, *o1[1] = {"y"};
    PqNode *node = pq_graph_add_node(pq_model_graph(m), "circulant_linear", "fc", 2, i1, 1, o1);
    pq_node_set_int(node, "in_features", n);
    pq_node_set_int(node, "out_features", n);
    pq_graph_add_output(pq_model_graph(m), "y");
    g_autoptr(PqBackend) be = pq_backend_prepare(cpu, m, 1, 1, NULL, &err);
    if (!be) {
      fprintf(stderr, "bench-compressed: %s\n", err->message);
      return 1;
    }
    RunCtx ours = {be, x, y, 1};
    double to, tb;
    bench_pair(run_backend, &ours, run_sgemv, &dense, 21, 0.05, &to, &tb);
    failed |= report("block-circulant 64, batch 1 vs dense", to, tb, 20.0, "");
  }

  /* CSR at 90% sparsity (a random pattern, 10% of each row kept): one row at a time at batch 1 against sgemv,
     chunks of 16 transposed rows at batch 64 against sgemm */
  {
    int64_t per_row = n / 10, nnz = per_row * n, vs[1] = {nnz}, rs[1] = {n + 1};
    g_autoptr(PqModel) m = pq_model_new();
    int64_t is[2] = {-1, n};
    pq_graph_add_input(pq_model_graph(m), "x", 2, is);
    PqTensor *v = pq_tensor_new("v", PQ_DTYPE_F32, 1, vs), *ci = pq_tensor_new("c", n <= 65536 ? PQ_DTYPE_U16 : PQ_DTYPE_I32, 1, vs),
             *ri = pq_tensor_new("r", PQ_DTYPE_I32, 1, rs);
    float *vd = pq_tensor_mutable_data(v);
    int32_t *rd = pq_tensor_mutable_data(ri);
    GRand *rp = g_rand_new_with_seed(5);
    for (int64_t o = 0; o <= n; o++) rd[o] = (int32_t)(o * per_row);
    for (int64_t o = 0; o < n; o++)
      for (int64_t q = 0; q < per_row; q++) { /* ascending columns, one every ~10 */
        int64_t col = (q * n) / per_row + g_rand_int_range(rp, 0, (gint32)(n / per_row));
        if (pq_tensor_dtype(ci) == PQ_DTYPE_U16) ((uint16_t *)pq_tensor_mutable_data(ci))[o * per_row + q] = (uint16_t)col;
        else ((int32_t *)pq_tensor_mutable_data(ci))[o * per_row + q] = (int32_t)col;
        vd[o * per_row + q] = wd[o * n + col];
      }
    g_rand_free(rp);
    PqTensor *ts[3] = {v, ci, ri};
    for (int j = 0; j < 3; j++) {
      pq_model_set_tensor(m, ts[j]);
      pq_tensor_unref(ts[j]);
    }
    const char *i1[4] = {"x", "v", "c", "r"}, *o1[1] = {"y"};
    PqNode *node = pq_graph_add_node(pq_model_graph(m), "sparse_linear", "fc", 4, i1, 1, o1);
    pq_node_set_int(node, "in_features", n);
    pq_node_set_int(node, "out_features", n);
    pq_graph_add_output(pq_model_graph(m), "y");
    const int64_t B = 64;
    g_autoptr(PqBackend) be = pq_backend_prepare(cpu, m, 1, B, NULL, &err);
    if (!be) {
      fprintf(stderr, "bench-compressed: %s\n", err->message);
      return 1;
    }
    g_autofree float *xb = g_new(float, B * n), *yb = g_new(float, B * n), *yb2 = g_new(float, B * n);
    for (int64_t i = 0; i < B * n; i++) xb[i] = x[i % n] * (float)(1 + i / n % 3);
    RunCtx ours = {be, x, y, 1}, ours_b = {be, xb, yb, B};
    GemmCtx dense_b = {wd, xb, yb2, (int)n, (int)B};
    double to, tb;
    bench_pair(run_backend, &ours, run_sgemv, &dense, 21, 0.05, &to, &tb);
    failed |= report("CSR 90%, batch 1 vs dense", to, tb, 2.0, "");
    bench_pair(run_backend, &ours_b, run_sgemm, &dense_b, 11, 0.1, &to, &tb);
    failed |= report("CSR 90%, batch 64 vs dense sgemm", to, tb, 3.0, "");
  }

  { /* GPTQ at 4 bits per channel against round-to-nearest with the same scales: its cost, and what it buys on
       inputs whose columns are correlated (x = shared factors + noise, N = n rows) */
    int64_t f = 32;
    g_autofree float *xin = g_new(float, n * n), *fac = g_new(float, n * f), *mix = g_new(float, f * n), *gram = g_new0(float, n * n);
    GRand *rg = g_rand_new_with_seed(9);
    for (int64_t i = 0; i < n * f; i++) fac[i] = (float)g_rand_double_range(rg, -1, 1);
    for (int64_t i = 0; i < f * n; i++) mix[i] = (float)g_rand_double_range(rg, -1, 1);
    for (int64_t i = 0; i < n * n; i++) xin[i] = 0.3f * (float)g_rand_double_range(rg, -1, 1);
    g_rand_free(rg);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)f, 1.0f, fac, (int)f, mix, (int)n, 1.0f, xin, (int)n);
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, (int)n, (int)n, 1.0f / (float)n, xin, (int)n, 0.0f, gram, (int)n);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < i; j++) gram[j * n + i] = gram[i * n + j];
    double t0 = bench_now();
    PqTensor *qr = pq_quantize_matrix("w", wd, 2, shape, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 20, &perr);
    double t_rtn = bench_now() - t0;
    t0 = bench_now();
    PqTensor *qg = pq_quantize_matrix_gptq("w", wd, 2, shape, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 20, gram, 0.01, 1, &perr);
    double t_gptq = bench_now() - t0;
    if (!qr || !qg) {
      fprintf(stderr, "bench-compressed: %s\n", perr.message);
      return 1;
    }
    /* output error Σ (w − q)ᵀ G (w − q) of each, through one GEMM: D G, then ⟨D G, D⟩ */
    double e[2];
    g_autofree float *d = g_new(float, n * n), *dg = g_new(float, n * n);
    for (int which = 0; which < 2; which++) {
      pq_tensor_to_f32(which ? qg : qr, d);
      for (int64_t i = 0; i < n * n; i++) d[i] = wd[i] - d[i];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, d, (int)n, gram, (int)n, 0.0f, dg, (int)n);
      e[which] = 0;
      for (int64_t i = 0; i < n * n; i++) e[which] += (double)d[i] * dg[i];
    }
    pq_tensor_unref(qr);
    pq_tensor_unref(qg);
    printf("%-34s %11.1f %11.1f %8.1fx %8s (its cost: time against round-to-nearest)\n", "GPTQ 4-bit act_order vs RTN", t_gptq * 1e3, t_rtn * 1e3,
           t_gptq / t_rtn, "-");
    double ratio = e[1] / e[0];
    printf("%-34s %11.4f %11s %9s %8s %s\n", "  its output error / RTN's", ratio, "", "", "0.50", ratio <= 0.5 ? "ok" : "ABOVE TARGET");
    failed |= ratio > 0.5;
  }

  if (!skip_svd) { /* a weight-like spectrum: singular values decaying as 1/(1+i/8) */
    int64_t k = 64;
    g_autofree float *a = g_new(float, n * n), *u = g_new(float, n * k), *s = g_new(float, k), *vt = g_new(float, k * n);
    g_autofree float *g1 = g_new(float, n * k), *g2 = g_new(float, k * n);
    GRand *rr = g_rand_new_with_seed(5);
    /* A = G1 diag(d) G2 + noise, built with one sgemm */
    for (int64_t i = 0; i < n * k; i++) g1[i] = (float)g_rand_double_range(rr, -1, 1);
    for (int64_t i = 0; i < k * n; i++) g2[i] = (float)g_rand_double_range(rr, -1, 1) / (1.0f + (float)(i / n) / 8.0f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)k, 1.0f, g1, (int)k, g2, (int)n, 0.0f, a, (int)n);
    for (int64_t i = 0; i < n * n; i++) a[i] += 0.5f * (float)g_rand_double_range(rr, -1, 1);
    g_rand_free(rr);
    double t0 = bench_now();
    if (pq_svd_truncated(a, n, n, k, 1, 10, 1, 7, u, s, vt, &perr) != 0) {
      fprintf(stderr, "bench-compressed: %s\n", perr.message);
      return 1;
    }
    double t_rand = bench_now() - t0;
    /* the baseline: the full SVD (sgesdd with vectors), truncated; its values give the optimal error,
       ||A||^2 minus the kept squared singular values */
    g_autofree float *uf = g_new(float, n * k), *sf = g_new(float, k), *vtf = g_new(float, k * n);
    t0 = bench_now();
    if (pq_svd_truncated(a, n, n, k, 0, 0, 0, 0, uf, sf, vtf, &perr) != 0) return 1;
    double t_full = bench_now() - t0;
    double tail = 0, err2 = 0;
    for (int64_t i = 0; i < n * n; i++) tail += (double)a[i] * a[i];
    for (int64_t j = 0; j < k; j++) tail -= (double)sf[j] * sf[j];
    for (int64_t j = 0; j < k; j++)
      for (int64_t i = 0; i < n; i++) u[i * k + j] *= s[j];
    g_autofree float *rec = g_new(float, n * n);
    memcpy(rec, a, sizeof(float) * (size_t)(n * n));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)k, -1.0f, u, (int)k, vt, (int)n, 1.0f, rec, (int)n);
    for (int64_t i = 0; i < n * n; i++) err2 += (double)rec[i] * rec[i];
    double quality = sqrt(err2 / tail);
    failed |= report("randomized SVD 64 vs full sgesdd", t_rand, t_full, 30.0, "");
    printf("%-34s %11.5f %11s %9s %8s %s\n", "  its error / optimal error", quality, "", "", "1.01", quality <= 1.01 ? "ok" : "ABOVE TARGET");
    failed |= quality > 1.01;
  }
  return failed ? 3 : 0;
}
