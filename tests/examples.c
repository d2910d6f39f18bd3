/* examples.c — the example plugins work through the registry as a user would load them. */
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <sys/wait.h>

static void test_half_and_drift(void) {
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(GError) err = NULL;
  PqPlugin *half = pq_registry_load(reg, EXAMPLE_HALF, &err);
  g_assert_no_error(err);
  PqPlugin *drift = pq_registry_load(reg, EXAMPLE_DRIFT, &err);
  g_assert_no_error(err);
  PqPlugin *cpu = pq_test_cpu_backend(reg);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 32, 10, 11);
  g_autoptr(PqOptions) opts = pq_options_new(pq_plugin_options_schema(half), "half", &err);
  g_assert_true(pq_options_set(opts, "min_elements", "100", &err)); /* biases stay float32 */
  g_autoptr(PqModel) h = pq_compressor_run(half, m, opts, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(h, "w1")), ==, PQ_DTYPE_F16);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(h, "b1")), ==, PQ_DTYPE_F32);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(m, "w1")), ==, PQ_DTYPE_F32); /* input untouched */
  g_assert_cmpint(pq_model_nbytes(h), ==, (784 * 32 + 32 * 10) * 2 + (32 + 10) * 4);
  g_assert_true(pq_options_set(opts, "format", "bf16", &err));
  g_autoptr(PqModel) hb = pq_compressor_run(half, m, opts, NULL, &err);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(hb, "w2")), ==, PQ_DTYPE_BF16);

  g_autoptr(PqDataset) test = pq_dataset_open("fashion-mnist", "t10k", &err);
  if (!test) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_autoptr(GPtrArray) metrics = pq_probe_run(drift, cpu, m, h, test, NULL, 1, 64, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(metrics->len, ==, 3);
  PqMetric *max = metrics->pdata[0], *agree = metrics->pdata[2];
  g_assert_cmpstr(max->name, ==, "drift.max_abs");
  g_assert_cmpfloat(max->value, >, 0.0);   /* float16 rounding moves the outputs a little */
  g_assert_cmpfloat(max->value, <, 0.05);
  g_assert_cmpfloat(agree->value, >=, 95.0);
  /* against itself, no drift at all */
  g_autoptr(GPtrArray) same = pq_probe_run(drift, cpu, m, m, test, NULL, 1, 64, &err);
  g_assert_cmpfloat(((PqMetric *)same->pdata[0])->value, ==, 0.0);
}

/* A compressor that invents an op runs on the CPU backend through the kernel it ships. */
static void test_new_op(void) {
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(GError) err = NULL;
  PqPlugin *sign = pq_registry_load(reg, EXAMPLE_SIGN, &err);
  g_assert_no_error(err);
  g_assert_nonnull(pq_op_kernel_find("sign_linear"));
  { /* a second registry in the same process loads the same plugin again: its op is not a duplicate */
    g_autoptr(PqRegistry) again = pq_registry_new();
    g_assert_nonnull(pq_registry_load(again, EXAMPLE_SIGN, &err));
    g_assert_no_error(err);
  }
  PqPlugin *cpu = pq_test_cpu_backend(reg);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(100, 24, 10, 3);
  g_autoptr(PqModel) s = pq_compressor_run(sign, m, NULL, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_node_op(pq_graph_node(pq_model_const_graph(s), 0)), ==, "sign_linear");
  /* the same as W' = scale · sign(W) run densely */
  g_autoptr(PqModel) dense = pq_model_copy(m);
  const char *ws[2] = {"w1", "w2"};
  for (int l = 0; l < 2; l++) {
    PqTensor *w = pq_model_tensor(m, ws[l]);
    int64_t rows = pq_tensor_rows(w), cols = pq_tensor_cols(w);
    PqTensor *d = pq_tensor_new(ws[l], PQ_DTYPE_F32, 2, pq_tensor_shape(w));
    const float *src = pq_tensor_data(w);
    float *dst = pq_tensor_mutable_data(d);
    for (int64_t r = 0; r < rows; r++) {
      double a = 0;
      for (int64_t c = 0; c < cols; c++) a += fabs(src[r * cols + c]);
      for (int64_t c = 0; c < cols; c++) dst[r * cols + c] = (src[r * cols + c] >= 0 ? 1.0f : -1.0f) * (float)(a / (double)cols);
    }
    pq_model_set_tensor(dense, d);
    pq_tensor_unref(d);
  }
  g_autoptr(PqBackend) bs = pq_backend_prepare(cpu, s, 1, 3, NULL, &err), bd = pq_backend_prepare(cpu, dense, 1, 3, NULL, &err);
  g_assert_no_error(err);
  float x[300], ys[30], yd[30];
  for (int i = 0; i < 300; i++) x[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
  g_assert_true(pq_backend_run_f32(bs, x, 3, ys, &err));
  g_assert_true(pq_backend_run_f32(bd, x, 3, yd, &err));
  for (int i = 0; i < 30; i++) g_assert_cmpfloat_with_epsilon(ys[i], yd[i], 1e-4 * (1 + fabsf(yd[i])));
  /* saved, it loads again here (the op is declared), and only with the plugin in another process */
  g_autofree char *dir = pq_test_mkdtemp();
  g_autofree char *path = g_build_filename(dir, "sign.safetensors", NULL);
  g_assert_true(pq_model_save(s, path, &err));
  g_autoptr(PqModel) back = pq_model_load(path, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(back)), ==, pq_graph_n_nodes(pq_model_const_graph(s)));
  const char *without[] = {PQRUN, "info", "--model", path, NULL};
  g_autofree char *out = NULL, *errs = NULL;
  int status;
  g_assert_true(g_spawn_sync(NULL, (char **)without, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errs, &status, NULL));
  g_assert_cmpint(WEXITSTATUS(status), ==, 1);
  g_assert_nonnull(strstr(errs, "unknown op \"sign_linear\" (neither built in nor declared by a loaded compressor plugin)"));
  g_free(out);
  g_free(errs);
  const char *with[] = {PQRUN, "info", "--model", path, "--plugin", EXAMPLE_SIGN, NULL};
  g_assert_true(g_spawn_sync(NULL, (char **)with, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errs, &status, NULL));
  if (WEXITSTATUS(status) != 0) g_error("info with the plugin failed: %s", errs);
  g_assert_nonnull(strstr(out, "sign_linear"));
  pq_test_rmdir(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/examples/half-and-drift", test_half_and_drift);
  g_test_add_func("/examples/new-op-with-its-kernel", test_new_op);
  return g_test_run();
}
