/* registry.c — plugin discovery: good plugins load, and each broken one is refused with its reason. */
#include "testutil.h"

#include <string.h>

static char *plugin_path(const char *name) {
  g_autofree char *file = g_strconcat(name, ".so", NULL);
  return g_build_filename(TEST_PLUGIN_DIR, file, NULL);
}

static void expect_rejected(const char *name, int code, const char *needle) {
  g_autoptr(PqRegistry) r = pq_registry_new();
  g_autoptr(GError) err = NULL;
  g_autofree char *good = plugin_path("good");
  g_assert_nonnull(pq_registry_load(r, good, NULL)); /* for the duplicate-name case */
  g_autofree char *p = plugin_path(name);
  g_assert_null(pq_registry_load(r, p, &err));
  g_assert_error(err, PQ_REGISTRY_ERROR, code);
  if (!strstr(err->message, needle)) g_error("%s: '%s' lacks '%s'", name, err->message, needle);
  g_assert_nonnull(strstr(err->message, p)); /* names the file */
  g_assert_cmpuint(pq_registry_n_rejected(r), ==, 1);
  g_assert_cmpstr(pq_registry_rejected_path(r, 0), ==, p);
  g_assert_cmpuint(pq_registry_n_plugins(r), ==, 1);
}

static void test_good(void) {
  g_autoptr(PqRegistry) r = pq_registry_new();
  g_autoptr(GError) err = NULL;
  g_autofree char *p = plugin_path("good");
  PqPlugin *pl = pq_registry_load(r, p, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_plugin_name(pl), ==, "test_identity");
  g_assert_cmpint(pq_plugin_kind(pl), ==, PQ_KIND_COMPRESSOR);
  g_assert_true(pq_plugin_usable(pl, NULL));
  /* loading the same file again gives the same plugin, not a duplicate */
  g_assert_true(pq_registry_load(r, p, &err) == pl);
  g_assert_true(pq_registry_find(r, "test_identity", PQ_KIND_COMPRESSOR, &err) == pl);
  g_assert_null(pq_registry_find(r, "test_identity", PQ_KIND_BACKEND, &err));
  g_assert_error(err, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_NOT_FOUND);
}

static void test_broken(void) {
  g_autofree char *major = g_strdup_printf("built for ABI %d.%d, this pquant speaks ABI major %d only", PQ_ABI_MAJOR + 1, PQ_ABI_MINOR,
                                           PQ_ABI_MAJOR);
  g_autofree char *minor = g_strdup_printf("built for ABI %d.%d, newer than this pquant's %d.%d", PQ_ABI_MAJOR, PQ_ABI_MINOR + 1,
                                           PQ_ABI_MAJOR, PQ_ABI_MINOR);
  expect_rejected("bad-major", PQ_REGISTRY_ERROR_ABI, major);
  expect_rejected("bad-minor", PQ_REGISTRY_ERROR_ABI, minor);
  expect_rejected("missing-fn", PQ_REGISTRY_ERROR_INVALID, "required function compress is NULL");
  expect_rejected("dup-name", PQ_REGISTRY_ERROR_DUPLICATE, "duplicate name 'test_identity'");
  expect_rejected("undefined", PQ_REGISTRY_ERROR_OPEN, "undefined symbol: pq_test_symbol_that_does_not_exist");
  expect_rejected("no-entry", PQ_REGISTRY_ERROR_NO_ENTRY, "does not export pq_plugin_query()");
  expect_rejected("bad-name", PQ_REGISTRY_ERROR_INVALID, "name must be 1-63 characters");
  expect_rejected("bad-schema", PQ_REGISTRY_ERROR_INVALID, "type must be integer, number, boolean or string");
  expect_rejected("null-desc", PQ_REGISTRY_ERROR_INVALID, "returned NULL");
  expect_rejected("kernel-builtin", PQ_REGISTRY_ERROR_INVALID, "op kernel 'linear': a built-in op cannot be redefined");
  expect_rejected("kernel-null-table", PQ_REGISTRY_ERROR_INVALID, "compressor vtable: 1 kernels declared, the table is NULL");
  expect_rejected("kernel-bad-name", PQ_REGISTRY_ERROR_INVALID, "op kernel 0: op name must be 1-63 characters of [a-z0-9_]");
  expect_rejected("kernel-no-run", PQ_REGISTRY_ERROR_INVALID, "op kernel 'test_no_run': infer and run are required");
  expect_rejected("kernel-twice", PQ_REGISTRY_ERROR_DUPLICATE, "op kernel 'test_twice' is declared twice in the table");
  expect_rejected("unknown-flag", PQ_REGISTRY_ERROR_INVALID, "compressor vtable: unknown flags 0x5 (this pquant knows PQ_COMPRESSOR_EXACT, 0x1)");
  g_assert_null(pq_op_kernel_find("test_twice"));
  g_assert_null(pq_op_kernel_find("test_no_run"));
  { /* two plugins declaring one op: whichever loads second (a scan may have loaded one already) is refused */
    g_autoptr(PqRegistry) r = pq_registry_new();
    GError *ea = NULL, *eb = NULL;
    PqPlugin *a = pq_registry_load(r, TEST_PLUGIN_DIR "/kernel-shared-a.so", &ea);
    PqPlugin *b = pq_registry_load(r, TEST_PLUGIN_DIR "/kernel-shared-b.so", &eb);
    g_assert_true((a == NULL) != (b == NULL));
    GError *e = a ? eb : ea;
    g_assert_error(e, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_DUPLICATE);
    g_assert_nonnull(strstr(e->message, "op 'test_shared_op' is already declared by another plugin"));
    g_error_free(e);
    const PqOpKernel *k = pq_op_kernel_find("test_shared_op");
    g_assert_nonnull(k);
    /* loading the winner again elsewhere is no clash: the very same kernel */
    g_autoptr(PqRegistry) again = pq_registry_new();
    g_autoptr(GError) err = NULL;
    g_assert_nonnull(pq_registry_load(again, a ? TEST_PLUGIN_DIR "/kernel-shared-a.so" : TEST_PLUGIN_DIR "/kernel-shared-b.so", &err));
    g_assert_no_error(err);
    g_assert_true(pq_op_kernel_find("test_shared_op") == k);
  }
}

static void test_not_elf(void) {
  g_autofree char *dir = pq_test_mkdtemp();
  g_autofree char *p = pq_test_write(dir, "text.so", "this is not a shared object\n", 28);
  g_autoptr(PqRegistry) r = pq_registry_new();
  g_autoptr(GError) err = NULL;
  g_assert_null(pq_registry_load(r, p, &err));
  g_assert_error(err, PQ_REGISTRY_ERROR, PQ_REGISTRY_ERROR_OPEN);
  g_assert_nonnull(strstr(err->message, "cannot load"));
  g_clear_error(&err);
  g_autofree char *missing = g_build_filename(dir, "missing.so", NULL);
  g_assert_null(pq_registry_load(r, missing, &err));
  g_assert_nonnull(strstr(err->message, "No such file"));
  pq_test_rmdir(dir);
}

/* A folder scan loads what is good and lists every other .so with its reason. */
static void test_scan(void) {
  g_autoptr(PqRegistry) r = pq_registry_new();
  pq_registry_scan_dir(r, TEST_PLUGIN_DIR);
  /* good, probe, unusable, timing-nan, timing-order, old-minor and kernel-shared-a load; the first of good/dup-name loads
   * and the other is a duplicate, as is kernel-shared-b's op */
  g_assert_cmpuint(pq_registry_n_plugins(r), ==, 7);
  g_assert_cmpuint(pq_registry_n_rejected(r), ==, 16);
  for (guint i = 0; i < pq_registry_n_rejected(r); i++) g_assert_cmpstr(pq_registry_rejected_reason(r, i), !=, "");
  g_autoptr(GError) err = NULL;
  PqPlugin *u = pq_registry_find(r, "test_unusable", PQ_KIND_BACKEND, &err);
  g_assert_no_error(err);
  const char *why = NULL;
  g_assert_false(pq_plugin_usable(u, &why));
  g_assert_cmpstr(why, ==, "no test accelerator on this machine");
  /* asking to run on it is a clear error, not a crash */
  g_autoptr(PqModel) m = pq_test_tiny_mlp(3, 2, 2, 1);
  g_autoptr(PqBackend) b = pq_backend_prepare(u, m, 1, 4, NULL, &err);
  g_assert_null(b);
  g_assert_error(err, PQ_PLUGIN_CALL_ERROR, PQ_ERR_NOT_USABLE);
  g_assert_nonnull(strstr(err->message, "not usable on this machine: no test accelerator"));
  const char *const *dirs = pq_registry_searched_dirs(r);
  g_assert_cmpstr(dirs[0], ==, TEST_PLUGIN_DIR);
  g_assert_null(dirs[1]);
}

static void test_env_path(void) {
  g_setenv("PQ_PLUGIN_PATH", "/nonexistent:" TEST_PLUGIN_DIR, TRUE);
  g_autoptr(PqRegistry) r = pq_registry_new();
  pq_registry_scan_default(r);
  g_unsetenv("PQ_PLUGIN_PATH");
  g_autoptr(GError) err = NULL;
  g_assert_nonnull(pq_registry_find(r, "test_probe", PQ_KIND_PROBE, &err));
  /* run from the build tree: the build's own plugins are found too */
  g_assert_nonnull(pq_registry_find(r, "cpu", PQ_KIND_BACKEND, &err));
  g_assert_no_error(err);
  const char *const *dirs = pq_registry_searched_dirs(r);
  g_assert_cmpstr(dirs[0], ==, "/nonexistent");
  g_assert_cmpstr(dirs[1], ==, TEST_PLUGIN_DIR);
}

/* The host calls a compressor with validated options and calibration data, and a probe. */
static void test_calls(void) {
  g_autoptr(PqRegistry) r = pq_registry_new();
  g_autoptr(GError) err = NULL;
  g_autofree char *gp = plugin_path("good"), *pp = plugin_path("probe");
  PqPlugin *comp = pq_registry_load(r, gp, &err), *probe = pq_registry_load(r, pp, &err);
  PqPlugin *cpu = pq_test_cpu_backend(r);
  g_assert_no_error(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(6, 4, 10, 3);
  g_autoptr(PqOptions) opts = pq_options_new(pq_plugin_options_schema(comp), pq_plugin_name(comp), &err);
  g_assert_true(pq_options_set(opts, "tag", "hello", &err));
  g_autoptr(PqModel) out = pq_compressor_run(comp, m, opts, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_model_meta(out, "test.tag"), ==, "hello");
  g_assert_cmpstr(pq_model_meta(out, "test.calibration_samples"), ==, "0");
  g_assert_null(pq_model_meta(m, "test.tag")); /* the input is untouched */
  /* calibration asked for but no dataset: a clear error */
  g_assert_true(pq_options_set(opts, "calibration", "5", &err));
  g_assert_null(pq_compressor_run(comp, m, opts, NULL, &err));
  g_assert_nonnull(strstr(err->message, "needs calibration samples (up to 5)"));
  g_clear_error(&err);
  /* a plugin error comes back as a GError naming the plugin */
  g_assert_true(pq_options_set(opts, "calibration", "0", &err));
  g_assert_true(pq_options_set(opts, "fail", "3", &err));
  g_assert_null(pq_compressor_run(comp, m, opts, NULL, &err));
  g_assert_error(err, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID);
  g_assert_cmpstr(err->message, ==, "compressor 'test_identity': asked to fail (fail=3)");
  g_clear_error(&err);

  g_autoptr(GPtrArray) metrics = pq_probe_run(probe, cpu, m, out, NULL, NULL, 1, 8, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(metrics->len, ==, 1);
  PqMetric *mt = metrics->pdata[0];
  g_assert_cmpstr(mt->name, ==, "test.max_abs_diff");
  g_assert_cmpfloat(mt->value, ==, 0.0); /* the identity compressor changes nothing */
  g_assert_cmpuint(mt->samples->len, ==, 3);
  /* a probe reporting NaN is refused with its name */
  g_autoptr(PqOptions) popts = pq_options_new(pq_plugin_options_schema(probe), "test_probe", &err);
  g_assert_true(pq_options_set(popts, "nan", "true", &err));
  g_assert_null(pq_probe_run(probe, cpu, m, out, NULL, popts, 1, 8, &err));
  g_assert_nonnull(strstr(err->message, "metric 'test.nan' is not a finite number"));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/registry/good", test_good);
  g_test_add_func("/registry/broken-plugins", test_broken);
  g_test_add_func("/registry/not-elf", test_not_elf);
  g_test_add_func("/registry/scan-dir", test_scan);
  g_test_add_func("/registry/env-path", test_env_path);
  g_test_add_func("/registry/host-calls", test_calls);
  return g_test_run();
}
