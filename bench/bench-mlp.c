/* bench-mlp.c — forward time of the default MLP (784→256→128→10) through pquant's CPU backend against the
 * bare OpenBLAS calls for the same shapes, measured in the same run. Prints ratios; targets are in
 * docs/benchmarks.md. Usage: bench-mlp [--threads N] [--model FILE] [--seconds S] */
#include <pquant/pquant.h>

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"

typedef struct {
  const float *w[3];
  int in[3], out[3];
  float *x, *h[3];
  int batch, threads;
} Bare;

/* Only the BLAS calls: no bias, no activation, no softmax — the floor any framework pays. */
static void bare_forward(Bare *b) {
  if (openblas_get_num_threads() != b->threads) openblas_set_num_threads(b->threads); /* (once, in the child: see below) */
  const float *x = b->x;
  for (int l = 0; l < 3; l++) {
    if (b->batch == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, b->out[l], b->in[l], 1.0f, b->w[l], b->in[l], x, 1, 0.0f, b->h[l], 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b->batch, b->out[l], b->in[l], 1.0f, x, b->in[l], b->w[l], b->in[l],
                  0.0f, b->h[l], b->out[l]);
    x = b->h[l];
  }
}

static void bare_run(void *p) { bare_forward(p); }

int main(int argc, char **argv) {
  int threads = 1;
  double seconds = 1.0;
  const char *model_path = NULL;
  bench_args(argc, argv, &threads, &seconds, &model_path);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) model = NULL;
  if (model_path) {
    model = pq_model_load(model_path, &err);
  } else { /* the default model's shapes with seeded random weights: timing does not depend on values */
    PqTrainParams p;
    pq_train_params_init(&p);
    model = pq_model_new();
  }
  if (!model) {
    fprintf(stderr, "bench-mlp: %s\n", err->message);
    return 1;
  }
  if (!model_path) {
    const int sizes[4] = {784, 256, 128, 10};
    PqGraph *g = pq_model_graph(model);
    int64_t is[2] = {-1, 784};
    pq_graph_add_input(g, "input", 2, is);
    const char *prev = "input";
    char names[3][4][32];
    GRand *r = g_rand_new_with_seed(1);
    for (int l = 0; l < 3; l++) {
      g_snprintf(names[l][0], 32, "fc%d.weight", l + 1);
      g_snprintf(names[l][1], 32, "fc%d.bias", l + 1);
      g_snprintf(names[l][2], 32, "fc%d.out", l + 1);
      g_snprintf(names[l][3], 32, l == 2 ? "logits" : "relu%d.out", l + 1);
      int64_t ws[2] = {sizes[l + 1], sizes[l]}, bs[1] = {sizes[l + 1]};
      PqTensor *w = pq_tensor_new(names[l][0], PQ_DTYPE_F32, 2, ws), *b = pq_tensor_new(names[l][1], PQ_DTYPE_F32, 1, bs);
      float *wd = pq_tensor_mutable_data(w);
      for (int64_t i = 0; i < pq_tensor_numel(w); i++) wd[i] = (float)g_rand_double_range(r, -0.05, 0.05);
      pq_model_set_tensor(model, w);
      pq_model_set_tensor(model, b);
      pq_tensor_unref(w);
      pq_tensor_unref(b);
      const char *ins[3] = {prev, names[l][0], names[l][1]}, *outs[1] = {l == 2 ? "logits" : names[l][2]};
      pq_graph_add_node(g, "linear", names[l][0], 3, ins, 1, outs);
      if (l < 2) {
        const char *ri[1] = {names[l][2]}, *ro[1] = {names[l][3]};
        pq_graph_add_node(g, "relu", names[l][3], 1, ri, 1, ro);
        prev = names[l][3];
      }
    }
    const char *si[1] = {"logits"}, *so[1] = {"probs"};
    pq_graph_add_node(g, "softmax", "softmax", 1, si, 1, so);
    pq_graph_add_output(g, "probs");
    g_rand_free(r);
  }
  g_autoptr(PqRegistry) reg = pq_registry_new();
  pq_registry_scan_default(reg);
  PqPlugin *cpu = pq_registry_find(reg, "cpu", PQ_KIND_BACKEND, &err);
  if (!cpu) {
    fprintf(stderr, "bench-mlp: %s\n", err->message);
    return 1;
  }
  printf("bench-mlp: default MLP 784-256-128-10 forward, %d thread(s), pquant cpu backend vs bare OpenBLAS calls\n", threads);
  printf("%-8s %14s %14s %8s %8s\n", "batch", "pquant (us)", "bare blas (us)", "ratio", "target");
  const int batches[2] = {1, 256};
  const double targets[2] = {1.3, 1.1};
  int failed = 0;
  for (int bi = 0; bi < 2; bi++) {
    int batch = batches[bi];
    g_autoptr(PqBackend) be = pq_backend_prepare(cpu, model, threads, batch, NULL, &err);
    if (!be) {
      fprintf(stderr, "bench-mlp: %s\n", err->message);
      return 1;
    }
    Bare bare = {.batch = batch, .threads = threads};
    const char *wn[3] = {"fc1.weight", "fc2.weight", "fc3.weight"};
    for (int l = 0; l < 3; l++) {
      PqTensor *w = pq_model_tensor(model, wn[l]);
      bare.w[l] = pq_tensor_data(w);
      bare.out[l] = (int)pq_tensor_shape(w)[0];
      bare.in[l] = (int)pq_tensor_shape(w)[1];
      bare.h[l] = g_new0(float, (gsize)batch * bare.out[l]);
    }
    bare.x = g_new(float, (gsize)batch * 784);
    for (int i = 0; i < batch * 784; i++) bare.x[i] = (float)(i % 255) / 255.0f;
    g_autofree float *y = g_new(float, (gsize)batch * 10);
    /* rounds of ~20 ms, alternating the two so that drift hits each alike; on several threads the bare calls
       run in a child process a round, so that OpenBLAS's threads and the backend's never share the cores */
    bench_isolate_b = threads > 1;
    BenchRun pr = {be, bare.x, y, batch};
    double mp, mb;
    bench_pair(bench_backend_run, &pr, bare_run, &bare, (int)(seconds / 0.04) + 5, 0.02, &mp, &mb);
    double ratio = mp / mb;
    printf("%-8d %14.2f %14.2f %7.3fx %7.2fx %s\n", batch, mp * 1e6, mb * 1e6, ratio, targets[bi],
           ratio <= targets[bi] ? "ok" : "OVER TARGET");
    failed |= ratio > targets[bi];
    for (int l = 0; l < 3; l++) g_free(bare.h[l]);
    g_free(bare.x);
  }
  printf("(medians of %s rounds; the bare calls skip bias, ReLU and softmax, which pquant includes)\n", "alternating");
  return failed ? 3 : 0;
}
