/* bench-elementwise.c — chains of elementwise ops through pquant's CPU backend run as one pass (the default,
 * fuse_elementwise=true) against the same backend running them an op at a time (fuse_elementwise=false), in the
 * same run: the QuantizeLinear/DequantizeLinear pairs of a QDQ model, and a bias, clip and scale. The outputs of
 * the two are checked equal bit for bit. Prints ratios; targets are in docs/benchmarks.md.
 * Usage: bench-elementwise [--threads N] [--seconds S] */
#include <pquant/pquant.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"

typedef struct {
  const char *op, *t; /* the op; the model tensor it takes with the activation ("" none) */
  const char *attr[2];
  double val[2];
} Op;

typedef struct {
  const char *name;
  int64_t c, hw;  /* a sample: [c] (hw 0) or [c, hw, hw] */
  int per_channel; /* the tensors s and z: one value a channel (else one value) */
  Op ops[8];
  int n_ops;
  double target; /* one pass / an op at a time, at most this */
} Case;

static PqModel *chain_model(const Case *k) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, k->c, k->hw, k->hw}, ts[3] = {k->per_channel ? k->c : 1, 1, 1};
  int tnd = k->per_channel && k->hw ? 3 : 1;
  const char *names[3] = {"s", "z", "b"};
  for (int i = 0; i < 3; i++) {
    PqTensor *t = pq_tensor_new(names[i], PQ_DTYPE_F32, tnd, ts);
    float *d = pq_tensor_mutable_data(t);
    for (int64_t j = 0; j < ts[0]; j++) d[j] = i == 0 ? 0.02f + 0.001f * (float)(j % 7) : i == 1 ? (float)(j % 5) : 0.1f * (float)(j % 3) - 0.1f;
    pq_model_set_tensor(m, t);
    pq_tensor_unref(t);
  }
  pq_graph_add_input(g, "x", k->hw ? 4 : 2, xs);
  for (int i = 0; i < k->n_ops; i++) {
    char in[16], out[16], name[16];
    snprintf(in, sizeof in, i ? "v%d" : "x", i - 1);
    snprintf(out, sizeof out, i == k->n_ops - 1 ? "y" : "v%d", i);
    snprintf(name, sizeof name, "n%d", i);
    const char *ins[2] = {in, k->ops[i].t}, *outs[1] = {out};
    PqNode *node = pq_graph_add_node(g, k->ops[i].op, name, k->ops[i].t[0] ? 2 : 1, ins, 1, outs);
    for (int a = 0; a < 2; a++)
      if (k->ops[i].attr[a]) pq_node_set_float(node, k->ops[i].attr[a], k->ops[i].val[a]);
  }
  pq_graph_add_output(g, "y");
  return m;
}

static PqBackend *prepare(PqPlugin *cpu, PqModel *m, int threads, int batch, gboolean fuse) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
  PqBackend *be = NULL;
  if (o && pq_options_set(o, "fuse_elementwise", fuse ? "true" : "false", &err)) be = pq_backend_prepare(cpu, m, threads, batch, o, &err);
  if (!be) {
    fprintf(stderr, "bench-elementwise: %s\n", err->message);
    exit(1);
  }
  return be;
}

int main(int argc, char **argv) {
  int threads = 1;
  double seconds = 1.0;
  bench_args(argc, argv, &threads, &seconds, NULL);
  const Case cases[] = {
      {"QDQ u8 with zero point, 784", 784, 0, 0,
       {{"div", "s", {0}, {0}}, {"round", "", {0}, {0}}, {"add", "z", {0}, {0}}, {"clip", "", {"min", "max"}, {0, 255}},
        {"sub", "z", {0}, {0}}, {"mul", "s", {0}, {0}}},
       6, 1.0}, /* (784 values a sample stay in the cache between the ops, each op's own loop vectorized: the one pass must not be slower) */
      {"QDQ s8 per channel, 64x28x28", 64, 28, 1,
       {{"div", "s", {0}, {0}}, {"round", "", {0}, {0}}, {"clip", "", {"min", "max"}, {-128, 127}}, {"mul", "s", {0}, {0}}},
       4, 0.7},
      {"bias, relu6, scale, 64x28x28", 64, 28, 1,
       {{"add", "b", {0}, {0}}, {"clip", "", {"min", "max"}, {0, 6}}, {"mul", "s", {0}, {0}}},
       3, 0.8},
  };
  const int batches[2] = {1, 64};
  g_autoptr(GError) err = NULL;
  g_autoptr(PqRegistry) reg = pq_registry_new();
  pq_registry_scan_default(reg);
  PqPlugin *cpu = pq_registry_find(reg, "cpu", PQ_KIND_BACKEND, &err);
  if (!cpu) {
    fprintf(stderr, "bench-elementwise: %s\n", err->message);
    return 1;
  }
  printf("bench-elementwise: %d thread(s), pquant cpu backend: a chain as one pass vs an op at a time (fuse_elementwise=false)\n", threads);
  printf("%-32s %6s %13s %13s %8s %8s\n", "chain", "batch", "one pass (us)", "op a time (us)", "ratio", "target");
  int failed = 0;
  for (size_t ci = 0; ci < G_N_ELEMENTS(cases); ci++)
    for (int bi = 0; bi < 2; bi++) {
      const Case *k = &cases[ci];
      const int batch = batches[bi];
      const int64_t n = (int64_t)batch * k->c * (k->hw ? k->hw * k->hw : 1);
      g_autoptr(PqModel) m = chain_model(k);
      g_autofree float *x = g_new(float, n), *y1 = g_new(float, n), *y2 = g_new(float, n);
      for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 1013) / 101.3f - 2.5f;
      PqBackend *fused = prepare(cpu, m, threads, batch, TRUE), *ops = prepare(cpu, m, threads, batch, FALSE);
      BenchRun a = {fused, x, y1, batch}, b = {ops, x, y2, batch};
      double ta, tb;
      bench_pair(bench_backend_run, &a, bench_backend_run, &b, (int)(seconds / 0.04) + 5, 0.02, &ta, &tb);
      if (memcmp(y1, y2, sizeof(float) * (size_t)n)) {
        fprintf(stderr, "bench-elementwise: %s: the one pass's values differ from the ops'\n", k->name);
        return 1;
      }
      double ratio = ta / tb;
      printf("%-32s %6d %13.2f %13.2f %7.3fx %7.2fx %s\n", k->name, batch, ta * 1e6, tb * 1e6, ratio, k->target,
             ratio <= k->target ? "ok" : "OVER TARGET");
      failed |= ratio > k->target;
      pq_backend_free(fused);
      pq_backend_free(ops);
    }
  printf("(medians of alternating rounds; ratio = one pass / an op at a time, below 1 is faster)\n");
  return failed ? 3 : 0;
}
