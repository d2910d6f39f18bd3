/* bench-conv.c — the convolutions of a MobileNet-style block through pquant's CPU backend against the calls
 * a GEMM-only convolution makes for the same shapes, measured in the same run: a depthwise 3×3 (one im2col
 * and one sgemm a channel: what the backend's grouped path does, and what it no longer does for depthwise)
 * and a pointwise 1×1 (one sgemm a sample); and 3×3 convs with 8-bit kernels (the packed kernels) against the float
 * GEMM path. Prints ratios; targets are in docs/benchmarks.md.
 * Usage: bench-conv [--threads N] [--seconds S] */
#include <pquant/pquant.h>

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"

typedef struct {
  const char *name;
  int64_t c, oc, hw, k, pad, groups; /* square input hw × hw, k × k kernel, stride 1 */
  double target;                     /* pquant / baseline at most this */
  int bits;                          /* > 0: pquant runs the kernel quantized to this many bits (per channel) */
  int64_t stride;                    /* 0 or 1: stride 1; 2: both axes */
  const char *kernels;               /* the CPU backend's kernels option (NULL: auto, the widest the CPU has) */
} Case;

/* The baseline: per sample and group, im2col (none for 1×1) then one sgemm, bias and ReLU left out. */
static int64_t out_hw(const Case *k) { return (k->hw + 2 * k->pad - k->k) / (k->stride > 1 ? k->stride : 1) + 1; }

static void gemm_conv(const Case *k, const float *x, const float *w, float *col, float *y, int batch) {
  int64_t s = k->stride > 1 ? k->stride : 1, o = out_hw(k), cg = k->c / k->groups, ocg = k->oc / k->groups, ohw = o * o, ihw = k->hw * k->hw,
          kk = cg * k->k * k->k;
  PqConvGeometry geo = {cg, k->hw, k->hw, k->k, k->k, o, o, s, s, 1, 1, k->pad, k->pad};
  for (int n = 0; n < batch; n++)
    for (int64_t g = 0; g < k->groups; g++) {
      const float *xg = x + (n * k->c + g * cg) * ihw, *b = xg;
      if (k->k > 1) {
        pq_im2col(xg, &geo, col);
        b = col;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ocg, (int)ohw, (int)kk, 1.0f, w + g * ocg * kk, (int)kk, b, (int)ohw, 0.0f,
                  y + (n * k->oc + g * ocg) * ohw, (int)ohw);
    }
}

typedef struct {
  const Case *k;
  const float *x, *w;
  float *col, *y;
  int batch, threads;
} GemmRun;

static void run_gemm(void *p) {
  GemmRun *r = p;
  if (openblas_get_num_threads() != r->threads) openblas_set_num_threads(r->threads); /* (once, in the child: see main) */
  gemm_conv(r->k, r->x, r->w, r->col, r->y, r->batch);
}

static PqModel *conv_model(const Case *k) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, k->c, k->hw, k->hw}, ws[4] = {k->oc, k->c / k->groups, k->k, k->k}, bs[1] = {k->oc};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *w = pq_tensor_new("w", PQ_DTYPE_F32, 4, ws), *b = pq_tensor_new("b", PQ_DTYPE_F32, 1, bs);
  float *wd = pq_tensor_mutable_data(w);
  GRand *r = g_rand_new_with_seed(3);
  for (int64_t i = 0; i < pq_tensor_numel(w); i++) wd[i] = (float)g_rand_double_range(r, -0.3, 0.3);
  g_rand_free(r);
  pq_model_set_tensor(m, w);
  pq_model_set_tensor(m, b);
  pq_tensor_unref(w);
  pq_tensor_unref(b);
  const char *ins[3] = {"x", "w", "b"}, *outs[1] = {"c"}, *ri[1] = {"c"}, *ro[1] = {"y"};
  PqNode *n = pq_graph_add_node(g, "conv2d", "conv", 3, ins, 1, outs);
  int64_t pads[4] = {k->pad, k->pad, k->pad, k->pad};
  pq_node_set_ints(n, "pads", 4, pads);
  pq_node_set_int(n, "groups", k->groups);
  if (k->stride > 1) pq_node_set_ints(n, "strides", 2, (const int64_t[]){k->stride, k->stride});
  pq_graph_add_node(g, "relu", "relu", 1, ri, 1, ro);
  pq_graph_add_output(g, "y");
  return m;
}

int main(int argc, char **argv) {
  int threads = 1;
  double seconds = 1.0;
  bench_args(argc, argv, &threads, &seconds, NULL);
  const Case cases[] = {
      {"depthwise 3x3, 144 ch, 28x28", 144, 144, 28, 3, 1, 144, 0.34, 0, 1, NULL}, /* >= 3x faster */
      {"depthwise 3x3, 384 ch, 14x14", 384, 384, 14, 3, 1, 384, 0.34, 0, 1, NULL},
      {"depthwise 3x3, 960 ch, 7x7", 960, 960, 7, 3, 1, 960, 0.34, 0, 1, NULL}, /* narrow planes: one long row each */
      {"depthwise 3x3 /2, 144 ch, 56x56", 144, 144, 56, 3, 1, 144, 0.34, 0, 2, NULL}, /* stride 2: even and odd half planes */
      {"pointwise 1x1, 144->24, 28x28", 144, 24, 28, 1, 0, 1, 1.20, 0, 1, NULL},   /* overhead only: bias and ReLU, which the bare sgemm skips */
      /* packed 8-bit kernels (16 output positions in the vector lanes) against the float GEMM path: an 8-bit conv
         should not be slower than float32 */
      {"8-bit 3x3, 1->16, 28x28", 1, 16, 28, 3, 1, 1, 1.10, 8, 1, NULL}, /* 9-value patches: int8 has no arithmetic to save, parity */
      {"8-bit 3x3, 16->32, 14x14", 16, 32, 14, 3, 1, 1, 1.0, 8, 1, NULL},
      {"8-bit 3x3, 32->64, 7x7", 32, 64, 7, 3, 1, 1, 1.0, 8, 1, NULL},
      /* the same through the AVX2 kernels (how a CPU without AVX-512 runs them; where the CPU has AVX2) */
      {"  AVX2: 8-bit 3x3, 1->16, 28x28", 1, 16, 28, 3, 1, 1, 1.8, 8, 1, "avx2"}, /* 9-value patches: each output's finish costs more than its 9 multiply-adds */
      {"  AVX2: 8-bit 3x3, 16->32, 14x14", 16, 32, 14, 3, 1, 1, 1.0, 8, 1, "avx2"},
      {"  AVX2: 8-bit 3x3, 32->64, 7x7", 32, 64, 7, 3, 1, 1, 1.0, 8, 1, "avx2"},
  };
  const int batches[2] = {1, 16};
  g_autoptr(GError) err = NULL;
  g_autoptr(PqRegistry) reg = pq_registry_new();
  pq_registry_scan_default(reg);
  PqPlugin *cpu = pq_registry_find(reg, "cpu", PQ_KIND_BACKEND, &err);
  if (!cpu) {
    fprintf(stderr, "bench-conv: %s\n", err->message);
    return 1;
  }
  openblas_set_num_threads(threads);
  /* on several threads the GEMM path runs in a child process a round, so that OpenBLAS's threads and the
     backend's never share the cores (bench-util.h) */
  bench_isolate_b = threads > 1;
  printf("bench-conv: %d thread(s), pquant cpu backend (conv + bias + relu) vs the GEMM-only calls (im2col + sgemm a group)\n", threads);
  printf("%-32s %6s %13s %13s %8s %8s\n", "layer", "batch", "pquant (us)", "gemm (us)", "ratio", "target");
  int failed = 0;
  for (size_t ci = 0; ci < G_N_ELEMENTS(cases); ci++)
    for (int bi = 0; bi < 2; bi++) {
      const Case *k = &cases[ci];
      int batch = batches[bi];
#if defined(__x86_64__)
      if (k->kernels && !strcmp(k->kernels, "avx2") && !__builtin_cpu_supports("avx2")) continue;
#else
      if (k->kernels && !strcmp(k->kernels, "avx2")) continue; /* (x86-64 kernels) */
#endif
      g_autoptr(PqModel) m = conv_model(k);
      g_autoptr(PqModel) run = pq_model_copy(m);
      if (k->bits) { /* pquant runs the kernel packed; the baseline keeps the float one */
        PqPluginError perr = {sizeof perr, 0, {0}};
        PqTensor *fw = pq_model_tensor(m, "w");
        PqTensor *q = pq_quantize_matrix("w", pq_tensor_data(fw), 4, pq_tensor_shape(fw), k->bits, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &perr);
        if (!q) {
          fprintf(stderr, "bench-conv: %s\n", perr.message);
          return 1;
        }
        pq_model_set_tensor(run, q);
        pq_tensor_unref(q);
      }
      int64_t in = (int64_t)batch * k->c * k->hw * k->hw, out = (int64_t)batch * k->oc * out_hw(k) * out_hw(k);
      g_autofree float *x = g_new(float, in), *y = g_new(float, out), *y2 = g_new(float, out);
      g_autofree float *col = g_new(float, (k->c / k->groups) * k->k * k->k * out_hw(k) * out_hw(k));
      for (int64_t i = 0; i < in; i++) x[i] = (float)(i % 97) / 97.0f - 0.5f;
      const float *w = pq_tensor_data(pq_model_tensor(m, "w"));
      GemmRun rg = {k, x, w, col, y2, batch, threads};
      run_gemm(&rg); /* the baseline's outputs, for the check below (before the backend: its threads start after OpenBLAS's stop) */
      g_autoptr(PqOptions) bo = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
      if (!bo || (k->kernels && !pq_options_set(bo, "kernels", k->kernels, &err))) {
        fprintf(stderr, "bench-conv: %s\n", err->message);
        return 1;
      }
      g_autoptr(PqBackend) be = pq_backend_prepare(cpu, run, threads, batch, bo, &err);
      if (!be) {
        fprintf(stderr, "bench-conv: %s\n", err->message);
        return 1;
      }
      BenchRun rp = {be, x, y, batch};
      double mp, mb;
      bench_pair(bench_backend_run, &rp, run_gemm, &rg, (int)(seconds / 0.04) + 5, 0.02, &mp, &mb);
      double maxdiff = 0, maxy = 0; /* the same convolution: the backend's output against the baseline's, ReLU applied */
      for (int64_t i = 0; i < out; i++) {
        double d = (double)y[i] - (y2[i] > 0 ? y2[i] : 0);
        maxdiff = d > maxdiff ? d : -d > maxdiff ? -d : maxdiff;
        maxy = y2[i] > maxy ? y2[i] : maxy;
      }
      if (maxdiff > (k->bits ? 0.03 * maxy : 1e-3)) { /* packed: int8 inputs and 8-bit codes, within a few percent */
        fprintf(stderr, "bench-conv: %s: the backend's output differs from the GEMM path's by %g\n", k->name, maxdiff);
        return 1;
      }
      double ratio = mp / mb;
      printf("%-32s %6d %13.1f %13.1f %7.3fx %7.2fx %s\n", k->name, batch, mp * 1e6, mb * 1e6, ratio, k->target,
             ratio <= k->target ? "ok" : "OVER TARGET");
      failed |= ratio > k->target;
    }
  printf("(medians of alternating rounds; ratio = pquant / GEMM path, below 1 is faster; the GEMM path skips bias and ReLU)\n");
  return failed ? 3 : 0;
}
