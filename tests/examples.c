/* examples.c — the example plugins work through the registry as a user would load them. */
#include "testutil.h"

#include <string.h>

static void test_half_and_drift(void) {
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(GError) err = NULL;
  PqPlugin *half = pq_registry_load(reg, EXAMPLE_HALF, &err), *drift = pq_registry_load(reg, EXAMPLE_DRIFT, &err);
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

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/examples/half-and-drift", test_half_and_drift);
  return g_test_run();
}
