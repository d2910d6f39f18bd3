/* cli.c — pqrun as a user runs it: exit codes, messages naming files and fields, and outputs. */
#include "testutil.h"

#include <string.h>
#include <sys/wait.h>

static char *tmpdir;

/* Runs pqrun with arguments; returns the exit status and fills stdout/stderr. */
static int pqrun(char **out, char **err, ...) {
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (gpointer)PQRUN);
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *))) g_ptr_array_add(argv, (gpointer)a);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  int status = 0;
  g_autoptr(GError) e = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status, &e));
  g_assert_no_error(e);
  g_assert_true(WIFEXITED(status)); /* never a crash */
  return WEXITSTATUS(status);
}

static void test_version_help(void) {
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(pqrun(&out, &err, "--version", NULL), ==, 0);
  g_assert_true(g_str_has_prefix(out, "pqrun " PQ_VERSION_STRING));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--help", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "--model"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "frobnicate", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "unknown command 'frobnicate'"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--bogus", NULL), ==, 2);
}

static void test_eval_and_info(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 16, 10, 5);
  g_autofree char *path = g_build_filename(tmpdir, "tiny.safetensors", NULL);
  g_autoptr(GError) e = NULL;
  g_assert_true(pq_model_save(m, path, &e));
  g_autofree char *out = NULL, *err = NULL;
  int rc = pqrun(&out, &err, "eval", "--model", path, NULL);
  if (rc != 0 && strstr(err, "no such dataset folder")) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_assert_cmpint(rc, ==, 0);
  g_assert_nonnull(strstr(out, "accuracy: "));
  g_assert_nonnull(strstr(out, "of 10000 correct"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", path, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "w1                   F32    [16, 784]"));
  g_assert_nonnull(strstr(out, "total: 12730 parameters, 50920 bytes"));
}

static void test_bad_inputs(void) {
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *missing = g_build_filename(tmpdir, "missing.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", missing, NULL), ==, 1);
  g_assert_nonnull(strstr(err, missing));
  g_assert_nonnull(strstr(err, "cannot open"));
  g_free(out);
  g_free(err);
  g_autofree char *garbage = pq_test_write_safetensors(tmpdir, "garbage.safetensors", "{\"a\":{\"dtype\":1}}", NULL, 0);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", garbage, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "tensor \"a\": field \"dtype\""));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", "/dev/zero", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "/dev/zero: is not a regular file"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "plugins", "--plugin", "/nonexistent/x.so", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "plugin /nonexistent/x.so: cannot open"));
  g_free(out);
  g_free(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 4, 10, 5);
  g_autofree char *path = g_build_filename(tmpdir, "m2.safetensors", NULL);
  g_assert_true(pq_model_save(m, path, NULL));
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--dataset", tmpdir, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "missing t10k-images-idx3-ubyte"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--backend", "tpu", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "no backend plugin named 'tpu' (loaded: cpu"));
}

static void test_plugins_listing(void) {
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *good = g_build_filename(TEST_PLUGIN_DIR, "probe.so", NULL);
  g_assert_cmpint(pqrun(&out, &err, "plugins", "--plugin", good, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "backend    cpu"));
  g_assert_nonnull(strstr(out, "probe      test_probe"));
  g_assert_nonnull(strstr(out, "options: nan (boolean, default false)"));
  g_assert_nonnull(strstr(out, "rejected (0)"));
  g_free(out);
  g_free(err);
  /* a folder on PQ_PLUGIN_PATH with broken plugins: each rejected file is listed with its reason */
  g_setenv("PQ_PLUGIN_PATH", TEST_PLUGIN_DIR, TRUE);
  g_assert_cmpint(pqrun(&out, &err, "plugins", NULL), ==, 0);
  g_unsetenv("PQ_PLUGIN_PATH");
  g_assert_nonnull(strstr(out, "rejected (9)"));
  g_assert_nonnull(strstr(out, "built for ABI 2.0"));
  g_assert_nonnull(strstr(out, "undefined symbol"));
  g_assert_nonnull(strstr(out, "NOT USABLE HERE: no test accelerator on this machine"));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = pq_test_mkdtemp();
  g_test_add_func("/cli/version-help", test_version_help);
  g_test_add_func("/cli/eval-and-info", test_eval_and_info);
  g_test_add_func("/cli/bad-inputs", test_bad_inputs);
  g_test_add_func("/cli/plugins", test_plugins_listing);
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
