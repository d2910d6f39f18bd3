/* abi.c — pins the size and layout of every plugin ABI struct (LP64): a change here breaks plugins. */
#include <pquant/pq-plugin.h>

#include <glib.h>
#include <stddef.h>

#define PIN_SIZE(type, n) g_assert_cmpuint(sizeof(type), ==, n)
#define PIN_OFF(type, field, n) g_assert_cmpuint(offsetof(type, field), ==, n)

static void test_versions(void) {
  g_assert_cmpint(PQ_ABI_MAJOR, ==, 1);
  g_assert_cmpint(PQ_ABI_MINOR, ==, 11);
  g_assert_cmpstr(PQ_PLUGIN_ENTRY_SYMBOL, ==, "pq_plugin_query");
}

static void test_enums(void) {
  g_assert_cmpint(PQ_KIND_COMPRESSOR, ==, 1);
  g_assert_cmpint(PQ_KIND_BACKEND, ==, 2);
  g_assert_cmpint(PQ_KIND_PROBE, ==, 3);
  g_assert_cmpint(PQ_ERR_INTERNAL, ==, 6);
  g_assert_cmpint(PQ_DTYPE_PACKED, ==, 7);
  g_assert_cmpint(PQ_QUANT_PER_GROUP, ==, 2);
  g_assert_cmpint(PQ_MODEL_COMPRESSED, ==, 1);
  g_assert_cmpint(PQ_BETTER_LOWER, ==, 2);
  g_assert_cmpint(PQ_MAX_DIMS, ==, 8);
}

/* The plugins' error helpers: a message, then the layer's name put in front once, the code kept. */
static void test_error_helpers(void) {
  PqPluginError e = {sizeof e, 0, {0}};
  pq_plugin_error_set(&e, PQ_ERR_INVALID, "bits %d is out of range", 9);
  g_assert_cmpstr(e.message, ==, "bits 9 is out of range");
  g_assert_cmpint(pq_plugin_error_in_layer(&e, "fc1"), ==, PQ_ERR_INVALID);
  g_assert_cmpstr(e.message, ==, "layer 'fc1': bits 9 is out of range");
  g_assert_cmpint(pq_plugin_error_in_layer(&e, "fc1"), ==, PQ_ERR_INVALID); /* already says so */
  g_assert_cmpstr(e.message, ==, "layer 'fc1': bits 9 is out of range");
  PqPluginError none = {sizeof none, 0, {0}};
  g_assert_cmpint(pq_plugin_error_in_layer(&none, "conv"), ==, PQ_ERR_INTERNAL); /* no code set */
  g_assert_cmpint(none.code, ==, PQ_ERR_INTERNAL);
  g_assert_cmpstr(none.message, ==, "layer 'conv': ");
}

static void test_layout(void) {
  if (sizeof(void *) != 8) {
    g_test_skip("layouts are pinned for 64-bit targets");
    return;
  }
  PIN_SIZE(PqPluginError, 264);
  PIN_OFF(PqPluginError, code, 4);
  PIN_OFF(PqPluginError, message, 8);

  PIN_SIZE(PqTensorView, 88);
  PIN_OFF(PqTensorView, dtype, 4);
  PIN_OFF(PqTensorView, ndim, 8);
  PIN_OFF(PqTensorView, shape, 16);
  PIN_OFF(PqTensorView, data, 80);

  PIN_SIZE(PqCalibration, 40);
  PIN_OFF(PqCalibration, n_samples, 8);
  PIN_OFF(PqCalibration, inputs, 16);
  PIN_OFF(PqCalibration, host, 24);
  PIN_OFF(PqCalibration, labels, 32);

  PIN_SIZE(PqFinetuneExtra, 24); /* since 1.5 */
  PIN_OFF(PqFinetuneExtra, qat, 4);
  PIN_OFF(PqFinetuneExtra, teacher, 8);
  PIN_OFF(PqFinetuneExtra, alpha, 16);

  PIN_SIZE(PqCompressorVTable, 88);
  PIN_OFF(PqCompressorVTable, compress, 8);
  PIN_OFF(PqCompressorVTable, calibration_samples, 16);
  PIN_OFF(PqCompressorVTable, kernels, 24);
  PIN_OFF(PqCompressorVTable, n_kernels, 32);
  PIN_OFF(PqCompressorVTable, flags, 40);
  PIN_OFF(PqCompressorVTable, reserved, 48);

  PIN_SIZE(PqOpKernel, 72);
  PIN_OFF(PqOpKernel, op, 8);
  PIN_OFF(PqOpKernel, infer, 16);
  PIN_OFF(PqOpKernel, run, 24);
  PIN_OFF(PqOpKernel, workspace_bytes, 32);
  PIN_OFF(PqOpKernel, reserved, 40);

  PIN_SIZE(PqBackendConfig, 24);
  PIN_OFF(PqBackendConfig, threads, 4);
  PIN_OFF(PqBackendConfig, max_batch, 8);
  PIN_OFF(PqBackendConfig, options, 16);

  PIN_SIZE(PqMemoryCounters, 48);
  PIN_OFF(PqMemoryCounters, weights_bytes, 8);
  PIN_OFF(PqMemoryCounters, device_total_bytes, 40);

  PIN_SIZE(PqBackendVTable, 112);
  PIN_OFF(PqBackendVTable, supports_op, 8);
  PIN_OFF(PqBackendVTable, prepare, 16);
  PIN_OFF(PqBackendVTable, run, 24);
  PIN_OFF(PqBackendVTable, release, 32);
  PIN_OFF(PqBackendVTable, memory, 40);
  PIN_OFF(PqBackendVTable, last_run_timing, 48);
  PIN_OFF(PqBackendVTable, reserved, 56);

  PIN_SIZE(PqRunTiming, 40);
  PIN_OFF(PqRunTiming, total_ms, 8);
  PIN_OFF(PqRunTiming, compute_ms, 16);
  PIN_OFF(PqRunTiming, copy_in_ms, 24);
  PIN_OFF(PqRunTiming, copy_out_ms, 32);

  PIN_SIZE(PqProbeContext, 48);
  PIN_OFF(PqProbeContext, baseline, 8);
  PIN_OFF(PqProbeContext, compressed, 16);
  PIN_OFF(PqProbeContext, dataset, 24);
  PIN_OFF(PqProbeContext, runner, 32);
  PIN_OFF(PqProbeContext, options, 40);

  PIN_SIZE(PqProbeVTable, 80);
  PIN_OFF(PqProbeVTable, observe, 8);
  PIN_OFF(PqProbeVTable, reserved, 16);

  PIN_SIZE(PqPluginDesc, 128);
  PIN_OFF(PqPluginDesc, abi_major, 4);
  PIN_OFF(PqPluginDesc, abi_minor, 6);
  PIN_OFF(PqPluginDesc, kind, 8);
  PIN_OFF(PqPluginDesc, name, 16);
  PIN_OFF(PqPluginDesc, version, 24);
  PIN_OFF(PqPluginDesc, description, 32);
  PIN_OFF(PqPluginDesc, options_schema, 40);
  PIN_OFF(PqPluginDesc, vtable, 48);
  PIN_OFF(PqPluginDesc, usable_here, 56);
  PIN_OFF(PqPluginDesc, reserved, 64);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/abi/versions", test_versions);
  g_test_add_func("/abi/enums", test_enums);
  g_test_add_func("/abi/layout", test_layout);
  g_test_add_func("/abi/error-helpers", test_error_helpers);
  return g_test_run();
}
