/* bench-cuda.c — on a GPU: the default MLP's forward at batch 256 through pquant's CUDA backend against the
 * bare cuBLAS calls for the same shapes (target overhead <= 1.2x), and an 8192x8192 int8 linear at batch 1
 * against float32 cublasSgemv (target >= 3x faster); measured in one run, medians of alternating rounds.
 * Both include what each path needs per call: pquant's run copies its input in and its output out. */
#include <pquant/pquant.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "bench-util.h"


typedef struct {
  cublasHandle_t h;
  const float *w[3];
  int in[3], out[3], batch, layers;
  float *x, *t[3], *xh, *yh;
  size_t out_bytes;
} Bare;
static void run_bare(void *p) { /* the same transfers, then only the GEMMs */
  Bare *b = p;
  const float one = 1, zero = 0;
  cudaMemcpy(b->x, b->xh, sizeof(float) * (size_t)(b->batch * b->in[0]), cudaMemcpyHostToDevice);
  const float *cur = b->x;
  for (int l = 0; l < b->layers; l++) {
    if (b->batch == 1) cublasSgemv(b->h, CUBLAS_OP_T, b->in[l], b->out[l], &one, b->w[l], b->in[l], cur, 1, &zero, b->t[l], 1);
    else cublasSgemm(b->h, CUBLAS_OP_T, CUBLAS_OP_N, b->out[l], b->batch, b->in[l], &one, b->w[l], b->in[l], cur, b->in[l], &zero, b->t[l], b->out[l]);
    cur = b->t[l];
  }
  cudaMemcpy(b->yh, b->t[b->layers - 1], b->out_bytes, cudaMemcpyDeviceToHost);
}

static PqModel *mlp(const int *sizes, int layers, gboolean packed) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t is[2] = {-1, sizes[0]};
  pq_graph_add_input(g, "x", 2, is);
  char prev[32] = "x";
  GRand *r = g_rand_new_with_seed(1);
  for (int l = 0; l < layers; l++) {
    char wn[32], on[32];
    g_snprintf(wn, sizeof wn, "w%d", l);
    g_snprintf(on, sizeof on, l == layers - 1 ? "y" : "h%d", l);
    int64_t ws[2] = {sizes[l + 1], sizes[l]};
    PqTensor *w = pq_tensor_new(wn, PQ_DTYPE_F32, 2, ws);
    float *d = pq_tensor_mutable_data(w);
    for (int64_t i = 0; i < pq_tensor_numel(w); i++) d[i] = (float)g_rand_double_range(r, -0.05, 0.05);
    if (packed) {
      PqPluginError e = {sizeof e, 0, {0}};
      PqTensor *q = pq_quantize_matrix(wn, d, 2, ws, 8, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &e);
      pq_tensor_unref(w);
      w = q;
    }
    pq_model_set_tensor(m, w);
    pq_tensor_unref(w);
    const char *in[2] = {prev, wn}, *out[1] = {on};
    pq_graph_add_node(g, "linear", wn, 2, in, 1, out);
    g_strlcpy(prev, on, sizeof prev);
  }
  pq_graph_add_output(g, "y");
  g_rand_free(r);
  return m;
}

/* One more run of `r` timed by the backend's own events, printed with `indent`: the backend records them only
 * in a run whose timing was asked for before it ran, so the runs timed above paid nothing for them. */
static void print_events(BenchRun *r, const char *indent, double host_ms) {
  PqRunTiming t = {sizeof t, 0, -1, -1, -1, -1};
  pq_backend_last_timing(r->be, &t, NULL); /* asks for the next run's timing */
  bench_backend_run(r);
  if (pq_backend_last_timing(r->be, &t, NULL) && t.total_ms >= 0)
    printf("%sevents of a timed run: copy in %.4f, compute %.4f, copy out %.4f, all %.4f ms (untimed runs: %.4f ms on the host)\n", indent,
           t.copy_in_ms, t.compute_ms, t.copy_out_ms, t.total_ms, host_ms);
}

int main(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqRegistry) reg = pq_registry_new();
  pq_registry_scan_default(reg);
  PqPlugin *cuda = pq_registry_find(reg, "cuda", PQ_KIND_BACKEND, &err);
  const char *why;
  if (!cuda || !pq_plugin_usable(cuda, &why)) {
    fprintf(stderr, "bench-cuda: no usable CUDA backend: %s\n", cuda ? why : err->message);
    return 77;
  }
  struct cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  printf("bench-cuda on %s; times in ms (medians of alternating rounds)\n", prop.name);
  printf("%-38s %11s %11s %9s %8s\n", "", "pquant", "bare cuBLAS", "ratio", "target");
  int failed = 0;
  const struct {
    const char *name;
    int sizes[4];
    int layers, batch;
    gboolean packed;
    double target;
    gboolean speedup;
  } cases[2] = {{"MLP 784-256-128-10, batch 256 (overhead)", {784, 256, 128, 10}, 3, 256, FALSE, 1.2, FALSE},
                {"int8 linear 8192x8192, batch 1 (vs sgemv)", {8192, 8192, 0, 0}, 1, 1, TRUE, 3.0, TRUE}};
  for (int ci = 0; ci < 2; ci++) {
    g_autoptr(PqModel) m = mlp(cases[ci].sizes, cases[ci].layers, cases[ci].packed);
    g_autoptr(PqModel) dense = cases[ci].packed ? mlp(cases[ci].sizes, cases[ci].layers, FALSE) : pq_model_ref(m);
    g_autoptr(PqBackend) b = pq_backend_prepare(cuda, m, 0, cases[ci].batch, NULL, &err);
    if (!b) {
      fprintf(stderr, "bench-cuda: %s\n", err->message);
      return 1;
    }
    int batch = cases[ci].batch, L = cases[ci].layers;
    Bare bare = {.batch = batch, .layers = L};
    cublasCreate(&bare.h);
    for (int l = 0; l < L; l++) {
      char wn[8];
      g_snprintf(wn, sizeof wn, "w%d", l);
      PqTensor *w = pq_model_tensor(dense, wn);
      bare.in[l] = cases[ci].sizes[l];
      bare.out[l] = cases[ci].sizes[l + 1];
      float *dw;
      cudaMalloc((void **)&dw, pq_tensor_nbytes(w));
      cudaMemcpy(dw, pq_tensor_data(w), pq_tensor_nbytes(w), cudaMemcpyHostToDevice);
      bare.w[l] = dw;
      cudaMalloc((void **)&bare.t[l], sizeof(float) * (size_t)(batch * bare.out[l]));
    }
    cudaMalloc((void **)&bare.x, sizeof(float) * (size_t)(batch * bare.in[0]));
    bare.xh = g_new(float, batch * bare.in[0]);
    GRand *xr = g_rand_new_with_seed(7); /* a real input, not zeros (zeros can run faster than data) */
    for (int i = 0; i < batch * bare.in[0]; i++) bare.xh[i] = (float)g_rand_double_range(xr, 0.0, 1.0);
    g_rand_free(xr);
    bare.out_bytes = sizeof(float) * (size_t)(batch * bare.out[L - 1]);
    bare.yh = g_malloc(bare.out_bytes);
    BenchRun ours = {b, bare.xh, g_malloc(bare.out_bytes), batch};
    double to, tb;
    bench_pair(bench_backend_run, &ours, run_bare, &bare, 21, 0.05, &to, &tb);
    double ratio = cases[ci].speedup ? tb / to : to / tb;
    gboolean ok = cases[ci].speedup ? ratio >= cases[ci].target : ratio <= cases[ci].target;
    printf("%-38s %11.4f %11.4f %8.2fx %7.1fx %s\n", cases[ci].name, to * 1e3, tb * 1e3, ratio, cases[ci].target, ok ? "ok" : "MISSED");
    /* where pquant's run spends its time, by the backend's own events */
    print_events(&ours, "  ", to * 1e3);
    /* the same run with one option changed: without CUDA graphs (each kernel and copy launched as the run
       goes: what the graph buys), and each way of making the copies (copy engine or kernel; auto above) */
    static const char *const alt[][3] = {{"graphs", "off", "without CUDA graphs"},
                                         {"copies", "engine", "copies by a copy engine"},
                                         {"copies", "kernel", "copies by a kernel"}};
    for (size_t a = 0; a < G_N_ELEMENTS(alt); a++) {
      g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(cuda), "cuda", &err);
      g_autoptr(PqBackend) bp = o && pq_options_set(o, alt[a][0], alt[a][1], &err) ? pq_backend_prepare(cuda, m, 0, batch, o, &err) : NULL;
      if (!bp) {
        printf("  %s: not measured (%s)\n", alt[a][2], err ? err->message : "?");
        g_clear_error(&err);
        continue;
      }
      BenchRun ours_alt = {bp, bare.xh, g_malloc(bare.out_bytes), batch};
      double tp, tb2;
      bench_pair(bench_backend_run, &ours_alt, run_bare, &bare, 11, 0.05, &tp, &tb2);
      printf("  %s: %.4f ms against %.4f (%.2fx)\n", alt[a][2], tp * 1e3, tb2 * 1e3, cases[ci].speedup ? tb2 / tp : tp / tb2);
      print_events(&ours_alt, "    ", tp * 1e3);
      g_free(ours_alt.y);
    }
    /* the packed layer with each 8-bit kernel variant fixed (int8_kernel, read from the plugin's options): what
       the choice made by timing at prepare (auto, above) is worth against each */
    if (cases[ci].packed) {
      g_autoptr(PqOptions) schema = pq_options_new(pq_plugin_options_schema(cuda), "cuda", NULL);
      g_auto(GStrv) names = schema ? pq_options_choices(schema, "int8_kernel") : NULL;
      for (guint v = 0; names && names[v]; v++) {
        const char *name = names[v];
        if (!strcmp(name, "auto")) continue;
        g_autoptr(PqOptions) fixed = pq_options_new(pq_plugin_options_schema(cuda), "cuda", &err);
        g_autoptr(PqBackend) bv = fixed && pq_options_set(fixed, "int8_kernel", name, &err) ? pq_backend_prepare(cuda, m, 0, batch, fixed, &err) : NULL;
        if (!bv) {
          printf("  int8_kernel=%s: not measured (%s)\n", name, err ? err->message : "?");
          g_clear_error(&err);
          continue;
        }
        BenchRun ours_v = {bv, bare.xh, g_malloc(bare.out_bytes), batch};
        double tv, tb3;
        bench_pair(bench_backend_run, &ours_v, run_bare, &bare, 7, 0.03, &tv, &tb3);
        printf("  int8_kernel=%-10s %.4f ms against %.4f (%.2fx)\n", name, tv * 1e3, tb3 * 1e3, tb3 / tv);
        g_free(ours_v.y);
      }
    }
    failed |= !ok;
  }
  return failed ? 3 : 0;
}
