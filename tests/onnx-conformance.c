/* onnx-conformance.c — runs ONNX's own backend test data (Debian's libonnx-testdata) through pquant's ONNX
 * loader and CPU backend, and compares the outputs. A test runs when pquant supports its ops and shapes;
 * it passes when every output matches within |got - want| <= 1e-4 + 1e-3 |want|. The first input is fed
 * at run time with its first dimension as the batch; further inputs are bound as constants. Prints how
 * many ran, passed, failed and were skipped (by reason); exits 1 when any test that ran gave wrong
 * numbers. Usage: onnx-conformance [DATA_DIR] [-v] */
#include <pquant/pquant.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static PqPlugin *cpu;
static gboolean verbose;

static int cmp_str(gconstpointer a, gconstpointer b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static GPtrArray *files(const char *dir, const char *prefix) {
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d)))
    if (g_str_has_prefix(n, prefix) && g_str_has_suffix(n, ".pb")) g_ptr_array_add(out, g_build_filename(dir, n, NULL));
  g_ptr_array_sort(out, cmp_str);
  return out;
}

/* A short reason from an error message, for the skip table. */
static char *reason_of(const char *msg) {
  const char *p;
  if ((p = strstr(msg, "op '"))) {
    const char *e = strchr(p + 4, '\'');
    return e ? g_strdup_printf("unsupported op %.*s", (int)(e - p - 4), p + 4) : g_strdup("unsupported op");
  }
  const char *keys[] = {"does not keep the batch", "transA", "must be a 2-D initializer", "2-D", "element type", "data type",
                        "multiplies by a 2-D", "training mode", "storage_order", "Indices", "auto_pad", "allowzero", "INT64 initializer",
                        "only the first may be symbolic", "must be model tensors", "first input must be an activation", "softmax", "over the batch axis",
                        "do not broadcast", "batch"};
  for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
    if (strstr(msg, keys[i])) return g_strdup(keys[i]);
  return g_strdup("other");
}

typedef enum { T_PASS, T_FAIL, T_SKIP } Outcome;

static Outcome run_test(const char *dir, char **why) {
  g_autofree char *model = g_build_filename(dir, "model.onnx", NULL), *data = g_build_filename(dir, "test_data_set_0", NULL);
  if (!g_file_test(data, G_FILE_TEST_IS_DIR)) {
    *why = g_strdup("no test data");
    return T_SKIP;
  }
  g_autoptr(GPtrArray) ins = files(data, "input_"), outs = files(data, "output_");
  g_autoptr(GError) err = NULL;
  g_autoptr(GPtrArray) in_t = g_ptr_array_new_with_free_func((GDestroyNotify)pq_tensor_unref);
  for (guint i = 0; i < ins->len; i++) {
    PqTensor *t = pq_onnx_load_tensor(ins->pdata[i], &err);
    if (!t) {
      *why = g_strdup("input data type");
      return T_SKIP;
    }
    g_ptr_array_add(in_t, t);
  }
  if (in_t->len == 0 || pq_tensor_dtype(in_t->pdata[0]) != PQ_DTYPE_F32 || pq_tensor_ndim(in_t->pdata[0]) < 1) {
    *why = g_strdup("first input not float");
    return T_SKIP;
  }
  g_autoptr(GHashTable) constants = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = 1; i < in_t->len; i++) g_hash_table_insert(constants, (gpointer)pq_tensor_name(in_t->pdata[i]), in_t->pdata[i]);
  g_autoptr(PqModel) m = pq_onnx_load_full(model, constants, &err);
  if (!m) {
    *why = reason_of(err->message);
    if (verbose) g_printerr("  skip %s: %s\n", dir, err->message);
    return T_SKIP;
  }
  PqTensor *x = in_t->pdata[0];
  int64_t batch = pq_tensor_shape(x)[0];
  if (batch < 1) {
    *why = g_strdup("empty batch");
    return T_SKIP;
  }
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, batch, NULL, &err);
  if (!b) {
    *why = reason_of(err->message);
    if (verbose) g_printerr("  skip %s: %s\n", dir, err->message);
    return T_SKIP;
  }
  const PqGraph *g = pq_model_const_graph(m);
  if (pq_graph_n_inputs(g) != 1 || pq_graph_n_outputs(g) != outs->len) {
    *why = g_strdup("input/output count");
    return T_SKIP;
  }
  g_autoptr(PqPlan) plan = pq_model_plan(m, batch, &err);
  size_t no = pq_graph_n_outputs(g);
  g_autofree PqTensorView *ov = g_new0(PqTensorView, no);
  g_autoptr(GPtrArray) bufs = g_ptr_array_new_with_free_func(g_free);
  for (size_t i = 0; i < no; i++) {
    int v = pq_plan_value_index(plan, pq_graph_output_name(g, i)), nd;
    const int64_t *s = pq_plan_value_shape(plan, v, &nd);
    ov[i] = (PqTensorView){sizeof(PqTensorView), PQ_DTYPE_F32, nd, 0, {0}, NULL};
    memcpy(ov[i].shape, s, sizeof(int64_t) * (size_t)nd);
    ov[i].data = g_new0(float, pq_plan_value_numel(plan, v));
    g_ptr_array_add(bufs, ov[i].data);
  }
  PqTensorView iv = {sizeof iv, PQ_DTYPE_F32, pq_tensor_ndim(x), 0, {0}, (void *)pq_tensor_data(x)};
  memcpy(iv.shape, pq_tensor_shape(x), sizeof(int64_t) * (size_t)pq_tensor_ndim(x));
  if (!pq_backend_run(b, &iv, 1, ov, no, &err)) {
    *why = reason_of(err->message);
    return T_SKIP;
  }
  for (size_t i = 0; i < no; i++) {
    g_autoptr(PqTensor) want = pq_onnx_load_tensor(outs->pdata[i], &err);
    const PqDType wt = want ? pq_tensor_dtype(want) : PQ_DTYPE_F32;
    if (!want || (wt != PQ_DTYPE_F32 && wt != PQ_DTYPE_I64 && wt != PQ_DTYPE_I32)) {
      *why = g_strdup("output data type");
      return T_SKIP;
    }
    g_autofree float *wf = g_new(float, MAX(pq_tensor_numel(want), 1)); /* (integer outputs, as ArgMax's, compared as the float values pquant gives) */
    if (pq_tensor_to_f32(want, wf) != 0) {
      *why = g_strdup("output data type");
      return T_SKIP;
    }
    int64_t n = 1;
    for (int d = 0; d < ov[i].ndim; d++) n *= ov[i].shape[d];
    if (n != pq_tensor_numel(want)) {
      *why = g_strdup_printf("output %zu has %" G_GINT64_FORMAT " values, expected %" G_GINT64_FORMAT, i, n, pq_tensor_numel(want));
      return T_FAIL;
    }
    const float *got = ov[i].data, *w = wf;
    for (int64_t k = 0; k < n; k++)
      if (!(fabsf(got[k] - w[k]) <= 1e-4f + 1e-3f * fabsf(w[k])) && !(isnan(got[k]) && isnan(w[k]))) {
        *why = g_strdup_printf("output %zu element %" G_GINT64_FORMAT ": %g, expected %g", i, k, got[k], w[k]);
        return T_FAIL;
      }
  }
  return T_PASS;
}

int main(int argc, char **argv) {
  const char *root = "/usr/share/libonnx-testdata/data";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-v")) verbose = TRUE;
    else root = argv[i];
  }
  if (!pq_have_onnx()) {
    printf("onnx-conformance: this pquant was built without ONNX support: skipped\n");
    return 77;
  }
  if (!g_file_test(root, G_FILE_TEST_IS_DIR)) {
    printf("onnx-conformance: %s not found (Debian's libonnx-testdata): skipped\n", root);
    return 77;
  }
  PqRegistry *reg = pq_registry_new();
  g_autoptr(GError) err = NULL;
  cpu = pq_registry_load(reg, CPU_PLUGIN, &err);
  if (!cpu) {
    fprintf(stderr, "onnx-conformance: %s\n", err->message);
    return 1;
  }
  const char *suites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
  int total = 0, passed = 0, failed = 0, skipped = 0;
  g_autoptr(GHashTable) reasons = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) passes = g_ptr_array_new_with_free_func(g_free);
  for (size_t s = 0; s < G_N_ELEMENTS(suites); s++) {
    g_autofree char *sd = g_build_filename(root, suites[s], NULL);
    g_autoptr(GPtrArray) tests = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) d = g_dir_open(sd, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d))) g_ptr_array_add(tests, g_strdup(n));
    g_ptr_array_sort(tests, cmp_str);
    for (guint i = 0; i < tests->len; i++) {
      g_autofree char *dir = g_build_filename(sd, tests->pdata[i], NULL), *why = NULL;
      total++;
      switch (run_test(dir, &why)) {
      case T_PASS:
        passed++;
        g_ptr_array_add(passes, g_strdup_printf("%s/%s", suites[s], (char *)tests->pdata[i]));
        break;
      case T_FAIL:
        failed++;
        printf("FAIL %s/%s: %s\n", suites[s], (char *)tests->pdata[i], why);
        break;
      case T_SKIP:
        skipped++;
        g_hash_table_insert(reasons, g_strdup(why), GINT_TO_POINTER(GPOINTER_TO_INT(g_hash_table_lookup(reasons, why)) + 1));
        break;
      }
    }
  }
  printf("\nonnx-conformance: %d tests in %s: %d run, %d passed, %d failed, %d skipped\n", total, root, passed + failed, passed, failed,
         skipped);
  printf("\npassed:");
  for (guint i = 0; i < passes->len; i++) printf("%s%s", i % 4 ? "  " : "\n  ", (char *)passes->pdata[i]);
  printf("\n\nskipped, by reason:\n");
  g_autoptr(GList) keys = g_hash_table_get_keys(reasons);
  for (GList *l = keys; l; l = l->next) printf("  %4d  %s\n", GPOINTER_TO_INT(g_hash_table_lookup(reasons, l->data)), (char *)l->data);
  printf("\n%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  pq_registry_free(reg);
  return failed ? 1 : 0;
}
