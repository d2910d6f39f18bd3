/* suite.c — pqrun bench and compare as a user runs them: the report files, a crashing and a hanging method
 * becoming error rows while the others finish, a probe reporting NaN, resume, bad configs and folders. */
#include "testutil.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

static char *tmpdir, *model_path;

static int pqrun_argv(char **out, char **err, const char *const *argv) {
  g_autoptr(GPtrArray) a = g_ptr_array_new();
  g_ptr_array_add(a, (gpointer)PQRUN);
  for (; *argv; argv++) g_ptr_array_add(a, (gpointer)*argv);
  g_ptr_array_add(a, NULL);
  int status = 0;
  g_autoptr(GError) e = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)a->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status, &e));
  g_assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static gboolean have_dataset(void) { return g_file_test("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", G_FILE_TEST_EXISTS); }

static const char *config =
    "{\"methods\": {\"baseline\": [], \"quantization_8\": [{\"plugin\": \"quant\", \"options\": {\"bits\": 8}}],"
    " \"crashes\": [{\"plugin\": \"crasher\"}], \"hangs\": [{\"plugin\": \"hanger\"}],"
    " \"low_rank_8\": [{\"plugin\": \"low_rank\", \"options\": {\"rank\": 8}}]}}";

static void test_bench_and_compare(void) {
  if (!have_dataset()) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_autofree char *cfg = pq_test_write(tmpdir, "suite.json", config, strlen(config));
  g_autofree char *out_dir = g_build_filename(tmpdir, "report-a", NULL);
  g_autofree char *crash = g_build_filename(SUITE_PLUGIN_DIR, "crasher.so", NULL), *hang = g_build_filename(SUITE_PLUGIN_DIR, "hanger.so", NULL);
  const char *argv[] = {"bench", "--model", model_path, "--config", cfg, "--plugin", crash, "--plugin", hang, "--plugin", EXAMPLE_DRIFT,
                        "--timeout", "30", "--runs", "7", "--warmup", "1", "--batch-sizes", "1,4", "-o", out_dir, NULL};
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(pqrun_argv(&out, &err, argv), ==, 0);
  /* the table: error rows for the crash and the hang, figures for the others, the custom probe's columns */
  /* the crash: SIGSEGV, or the abort a sanitizer makes of it */
  if (!strstr(out, "error: crashed: ")) g_error("no crash row in:\n%s", out);
  g_assert_nonnull(strstr(out, "error: timed out after 30 s"));
  g_assert_nonnull(strstr(out, "drift.top1_agreement"));
  g_assert_nonnull(strstr(out, "2 of 5 methods failed"));
  /* each method's median time at the first batch size beside its speedup: the baseline's own is a time in µs */
  g_assert_nonnull(strstr(out, "Latency (b1)  Speedup (b1)"));
  {
    const char *base = strstr(out, "\nbaseline ");
    g_assert_nonnull(base);
    g_autofree char *line = g_strndup(base + 1, strcspn(base + 1, "\n"));
    g_assert_nonnull(strstr(line, " µs "));
  }
  const char *files[] = {"report.json", "report.md", "report.csv", "results.jsonl", "accuracy_vs_compression.png",
                         "accuracy_vs_compression.svg", "latency.png", "latency.svg"};
  for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *p = g_build_filename(out_dir, files[i], NULL);
    g_assert_true(g_file_test(p, G_FILE_TEST_IS_REGULAR));
  }
  /* report.json: the schema, the environment, every method in order, raw latency samples */
  g_autofree char *json_path = g_build_filename(out_dir, "report.json", NULL);
  g_autoptr(JsonParser) parser = json_parser_new();
  g_assert_true(json_parser_load_from_file(parser, json_path, NULL));
  JsonObject *root = json_node_get_object(json_parser_get_root(parser));
  g_assert_cmpint(json_object_get_int_member(root, "schema_version"), ==, PQ_REPORT_SCHEMA_VERSION);
  g_assert_nonnull(json_object_get_string_member(json_object_get_object_member(root, "environment"), "cpu"));
  /* the backend line names its options, so two runs on different settings are told apart */
  g_assert_nonnull(strstr(json_object_get_string_member(json_object_get_object_member(root, "environment"), "backend"), "cpu 1.0.0 (simd=true, kernels=auto, fuse_elementwise=true)"));
  JsonArray *methods = json_object_get_array_member(root, "methods");
  g_assert_cmpuint(json_array_get_length(methods), ==, 5);
  JsonObject *q8 = json_array_get_object_element(methods, 1);
  g_assert_cmpstr(json_object_get_string_member(q8, "method"), ==, "quantization_8");
  if (g_strcmp0(json_object_get_string_member(q8, "status"), "ok"))
    g_error("quantization_8 failed: %s", json_object_get_string_member_with_default(q8, "error", "?"));
  JsonObject *m = json_object_get_object_member(q8, "metrics");
  JsonObject *lat = json_object_get_object_member(m, "latency.b1.p50_ms");
  g_assert_cmpuint(json_array_get_length(json_object_get_array_member(lat, "samples")), ==, 7);
  /* the ratio of stored bytes and the ratio of file sizes agree within 2% */
  double r_mem = json_object_get_double_member(json_object_get_object_member(m, "metrics.compression_ratio"), "value");
  double r_disk = json_object_get_double_member(json_object_get_object_member(m, "metrics.disk_ratio"), "value");
  g_assert_cmpfloat(fabs(r_disk / r_mem - 1), <, 0.02);
  g_assert_cmpstr(json_object_get_string_member(json_array_get_object_element(methods, 2), "status"), ==, "error");
  /* the CSV: a header and one row per method */
  g_autofree char *csv_path = g_build_filename(out_dir, "report.csv", NULL), *csv = NULL;
  g_file_get_contents(csv_path, &csv, NULL, NULL);
  g_auto(GStrv) lines = g_strsplit(csv, "\n", -1);
  g_assert_cmpuint(g_strv_length(lines), ==, 7); /* header, 5 rows, the empty tail */
  g_assert_true(g_str_has_prefix(lines[0], "method,status,error,"));
  g_assert_nonnull(strstr(lines[0], "accuracy.top1"));
  /* the Markdown: the seed's sections per method */
  g_autofree char *md_path = g_build_filename(out_dir, "report.md", NULL), *md = NULL;
  g_file_get_contents(md_path, &md, NULL, NULL);
  const char *sections[] = {"## quantization_8", "### Compression Metrics", "### Accuracy", "### Latency", "### Memory", "### Layers"};
  for (size_t i = 0; i < G_N_ELEMENTS(sections); i++) g_assert_nonnull(strstr(md, sections[i]));
  /* the CSV's columns and the Markdown's rows come in the order the probes wrote them (here: as in the
   * quantization_8 row of report.json), not sorted or hashed */
  {
    g_autoptr(GList) order = json_object_get_members(m);
    const char *h = lines[0], *md_at = md;
    for (GList *l = order; l; l = l->next) {
      g_autofree char *col = g_strdup_printf(",%s", (char *)l->data);
      const char *at = strstr(h, col);
      if (!at) g_error("report.csv: %s missing or out of order in %s", (char *)l->data, lines[0]);
      h = at + strlen(col);
      if (g_str_has_prefix(l->data, "latency.")) continue; /* the latency section is tables by batch size */
      g_autofree char *cell = g_strdup_printf("| %s | ", (char *)l->data);
      const char *mat = strstr(md_at, cell);
      if (!mat) g_error("report.md: %s missing or out of order", (char *)l->data);
      md_at = mat;
    }
  }
  /* the latency plot: a panel for each of the two batch sizes (the PNG's height, from its header, grows by a
   * panel's: 64 px and 26 a method with figures, three here) */
  {
    g_autofree char *png_path = g_build_filename(out_dir, "latency.png", NULL), *png = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(png_path, &png, &len, NULL));
    g_assert_cmpuint(len, >, 24);
    const guchar *u = (const guchar *)png;
    guint32 height = (guint32)u[20] << 24 | (guint32)u[21] << 16 | (guint32)u[22] << 8 | u[23];
    g_assert_cmpuint(height, ==, 50 + 2 * (3 * 26 + 64) + 20);
  }
  /* latency: each batch size's statistics beside the baseline's from the same process */
  g_assert_nonnull(strstr(md, "Batch 1, 7 timed runs alternating with the baseline's:\n\n| statistic | this method | baseline, same process |"));
  g_assert_nonnull(strstr(md, "Batch 4, 7 timed runs"));
  g_assert_nonnull(strstr(md, "\n| p50 | "));
  g_assert_true(strstr(md, "| unstable | no | ") || strstr(md, "| unstable | yes | "));
  /* counts in full, not rounded to four digits */
  {
    g_autofree char *samples = g_strdup_printf("| accuracy.samples | %.0f |",
                                               json_object_get_double_member(json_object_get_object_member(m, "accuracy.samples"), "value"));
    g_assert_nonnull(strstr(md, samples));
    g_autofree char *params = g_strdup_printf("| metrics.params | %.0f |",
                                              json_object_get_double_member(json_object_get_object_member(m, "metrics.params"), "value"));
    g_assert_nonnull(strstr(md, params));
  }
  /* the baseline against itself: no divergence, and never a negative one */
  {
    JsonObject *bm = json_object_get_object_member(json_array_get_object_element(methods, 0), "metrics");
    g_assert_cmpfloat(json_object_get_double_member(json_object_get_object_member(bm, "accuracy.kl_divergence"), "value"), ==, 0);
  }

  /* compare: a run against itself has no regression */
  g_free(out);
  g_free(err);
  const char *same[] = {"compare", json_path, json_path, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, same), ==, 0);
  g_assert_nonnull(strstr(out, " 0 regressions"));
  g_free(out);
  g_free(err);
  const char *folders[] = {"compare", out_dir, out_dir, NULL}; /* the report folders stand for their report.json */
  g_assert_cmpint(pqrun_argv(&out, &err, folders), ==, 0);
  g_assert_nonnull(strstr(out, " 0 regressions"));
  /* a run whose speedup moved by a fifth while its samples did not: within noise, no regression; its
   * spread (p99, std) is context, not judged */
  JsonObject *sp_q = json_object_get_object_member(m, "latency.b1.speedup"), *p99_q = json_object_get_object_member(m, "latency.b1.p99_ms");
  double sp0 = json_object_get_double_member(sp_q, "value"), p990 = json_object_get_double_member(p99_q, "value");
  json_object_set_double_member(sp_q, "value", sp0 / 1.2);
  json_object_set_double_member(p99_q, "value", p990 * 3);
  {
    g_autoptr(JsonGenerator) g0 = json_generator_new();
    json_generator_set_root(g0, json_parser_get_root(parser));
    g_autofree char *noisy = g_build_filename(tmpdir, "noisy.json", NULL);
    g_assert_true(json_generator_to_file(g0, noisy, NULL));
    g_free(out);
    g_free(err);
    const char *nz[] = {"compare", json_path, noisy, NULL};
    g_assert_cmpint(pqrun_argv(&out, &err, nz), ==, 0);
    g_assert_nonnull(strstr(out, "latency.b1.speedup"));
    g_assert_nonnull(strstr(out, "(within noise)"));
    g_assert_null(strstr(out, "latency.b1.p99_ms"));
    g_assert_nonnull(strstr(out, " 0 regressions"));
  }
  /* ... and against one where quantization_8 became three times slower, it exits 1 */
  JsonObject *lat_q = json_object_get_object_member(m, "latency.b1.p50_ms");
  json_object_set_double_member(lat_q, "value", json_object_get_double_member(lat_q, "value") * 3);
  JsonArray *smp = json_object_get_array_member(lat_q, "samples");
  /* every slow sample above three times the slowest original one: a clear regression however noisy the run
   * (scaling each sample alone leaves overlap when a run's spread exceeds 3x, as under sanitizers) */
  double slowest = 0;
  for (guint i = 0; i < json_array_get_length(smp); i++) slowest = fmax(slowest, json_array_get_double_element(smp, i));
  JsonArray *slow = json_array_new();
  for (guint i = 0; i < json_array_get_length(smp); i++) json_array_add_double_element(slow, slowest * (3 + 0.01 * i));
  json_object_set_array_member(lat_q, "samples", slow);
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, json_parser_get_root(parser));
  g_autofree char *slow_path = g_build_filename(tmpdir, "slow.json", NULL);
  g_assert_true(json_generator_to_file(gen, slow_path, NULL));
  g_free(out);
  g_free(err);
  const char *slower[] = {"compare", json_path, slow_path, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, slower), ==, 1);
  g_assert_nonnull(strstr(out, "quantization_8"));
  g_assert_nonnull(strstr(out, "latency.b1.p50_ms"));
  g_assert_nonnull(strstr(out, "REGRESSION"));
  /* accuracy one point lower: a regression in points, though only 1% relative (from a fresh copy of A) */
  g_autoptr(JsonParser) p2 = json_parser_new();
  g_assert_true(json_parser_load_from_file(p2, json_path, NULL));
  JsonObject *q8b = json_array_get_object_element(json_object_get_array_member(json_node_get_object(json_parser_get_root(p2)), "methods"), 1);
  JsonObject *acc = json_object_get_object_member(json_object_get_object_member(q8b, "metrics"), "accuracy.top1");
  json_object_set_double_member(acc, "value", json_object_get_double_member(acc, "value") - 1.0);
  g_autoptr(JsonGenerator) gen2 = json_generator_new();
  json_generator_set_root(gen2, json_parser_get_root(p2));
  g_autofree char *worse_path = g_build_filename(tmpdir, "worse.json", NULL);
  g_assert_true(json_generator_to_file(gen2, worse_path, NULL));
  g_free(out);
  g_free(err);
  const char *worse[] = {"compare", json_path, worse_path, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, worse), ==, 1);
  g_assert_nonnull(strstr(out, "accuracy.top1"));
  g_assert_nonnull(strstr(out, "-1.00 pp  REGRESSION"));
  g_assert_nonnull(strstr(out, "1 regression beyond"));
  { /* a method name longer than the column's 16: the metric column still starts where the header's does */
    const char *long_name = "quantization_8_with_a_longer_name";
    g_autoptr(JsonParser) p3 = json_parser_new();
    g_assert_true(json_parser_load_from_file(p3, json_path, NULL));
    json_object_set_string_member(json_array_get_object_element(json_object_get_array_member(json_node_get_object(json_parser_get_root(p3)), "methods"), 1),
                                  "method", long_name);
    json_object_set_string_member(q8b, "method", long_name);
    g_autoptr(JsonGenerator) g3 = json_generator_new();
    json_generator_set_root(g3, json_parser_get_root(p3));
    g_autofree char *a_long = g_build_filename(tmpdir, "a-long.json", NULL), *b_long = g_build_filename(tmpdir, "b-long.json", NULL);
    g_assert_true(json_generator_to_file(g3, a_long, NULL));
    g_assert_true(json_generator_to_file(gen2, b_long, NULL));
    g_free(out);
    g_free(err);
    const char *longer[] = {"compare", a_long, b_long, NULL};
    g_assert_cmpint(pqrun_argv(&out, &err, longer), ==, 1);
    const char *row = strstr(out, long_name), *metric = strstr(out, "metric");
    g_assert_nonnull(row);
    g_assert_nonnull(metric);
    g_assert_true(g_str_has_prefix(row + strlen(long_name), " accuracy.top1")); /* one space, as after a name that fits */
    g_assert_cmpint((int)(metric - out), ==, (int)strlen(long_name) + 1); /* the header's metric column there too */
  }
  /* reports of another schema version are refused */
  json_object_set_int_member(root, "schema_version", 99);
  g_autofree char *v99 = g_build_filename(tmpdir, "v99.json", NULL);
  g_assert_true(json_generator_to_file(gen, v99, NULL));
  g_free(out);
  g_free(err);
  const char *other[] = {"compare", json_path, v99, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, other), ==, 1);
  g_assert_nonnull(strstr(err, "different schema versions"));
  /* a report with a member of the wrong type is refused, naming it (found by fuzzing: GLib criticals) */
  const char *wrong = "{\"schema\": \"pquant-report\", \"schema_version\": 1, \"methods\": [{\"method\": \"q8\", \"status\": \"ok\","
                      " \"metrics\": {\"accuracy.top1\": {\"value\": \"high\"}}}]}";
  g_autofree char *wrong_path = pq_test_write(tmpdir, "wrong.json", wrong, strlen(wrong));
  g_free(out);
  g_free(err);
  const char *wr[] = {"compare", json_path, wrong_path, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, wr), ==, 1);
  g_assert_nonnull(strstr(err, "methods[0]: metrics.accuracy.top1.value must be a number"));

  /* resume: the methods that succeeded are kept, the failed ones run again; a line of results.jsonl that is
   * not a row as the suite writes it (hand-edited) means its method runs again */
  {
    g_autofree char *log = g_build_filename(out_dir, "results.jsonl", NULL), *text = NULL;
    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    g_autofree char *more = g_strconcat(text, "{\"method\": [\"baseline\"], \"status\": \"ok\"}\n", NULL);
    g_assert_true(g_file_set_contents(log, more, -1, NULL));
  }
  g_free(out);
  g_free(err);
  const char *again[] = {"bench", "--model", model_path, "--config", cfg, "--plugin", crash, "--plugin", hang, "--timeout", "2", "--runs", "3",
                         "--batch-sizes", "1", "--resume", "-o", out_dir, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, again), ==, 0);
  g_assert_nonnull(strstr(out, "error: timed out after 2 s")); /* ran again, with the new limit */
  g_assert_nonnull(strstr(out, "drift.top1_agreement"));        /* kept from the first run */
}

static void test_bad_inputs(void) {
  g_autofree char *out = NULL, *err = NULL;
  const char *bad_cfg = "{\"methods\": {\"q\": [{\"plugin\": \"quant\", \"options\": {\"bitz\": 3}}]}}";
  g_autofree char *cfg = pq_test_write(tmpdir, "bad.json", bad_cfg, strlen(bad_cfg));
  const char *a1[] = {"bench", "--model", model_path, "--config", cfg, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, a1), ==, 1);
  g_assert_nonnull(strstr(err, "methods.q"));
  g_assert_nonnull(strstr(err, "unknown option \"bitz\""));
  g_free(out);
  g_free(err);
  const char *unknown = "{\"methods\": {\"x\": [{\"plugin\": \"nope\"}]}}";
  g_autofree char *cfg2 = pq_test_write(tmpdir, "unknown.json", unknown, strlen(unknown));
  const char *a2[] = {"bench", "--model", model_path, "--config", cfg2, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, a2), ==, 1);
  g_assert_nonnull(strstr(err, "no compressor plugin named 'nope'"));
  g_free(out);
  g_free(err);
  if (!have_dataset()) return;
  /* an output folder that cannot be made (a file is in the way) */
  g_autofree char *file = pq_test_write(tmpdir, "a-file", "x", 1);
  g_autofree char *under = g_build_filename(file, "report", NULL);
  const char *a3[] = {"bench", "--model", model_path, "--config", cfg2, "-o", under, NULL};
  const char *good = "{\"methods\": {\"baseline\": []}}";
  g_autofree char *cfg3 = pq_test_write(tmpdir, "good.json", good, strlen(good));
  a3[4] = cfg3;
  g_assert_cmpint(pqrun_argv(&out, &err, a3), ==, 1);
  g_assert_nonnull(strstr(err, "cannot create the report folder"));
  g_free(out);
  g_free(err);
  /* a probe reporting NaN: its failure is reported, the method's other figures stay */
  g_autofree char *nanp = g_build_filename(SUITE_PLUGIN_DIR, "nan_probe.so", NULL);
  g_autofree char *dir = g_build_filename(tmpdir, "report-nan", NULL);
  const char *a4[] = {"bench", "--model", model_path, "--config", cfg3, "--plugin", nanp, "--runs", "3", "--batch-sizes", "1", "-o", dir, NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, a4), ==, 0);
  g_assert_nonnull(strstr(out, "baseline: probe 'test_probe' failed: probe 'test_probe': metric 'test.nan' is not a finite number"));
  g_assert_nonnull(strstr(out, "%  ")); /* accuracy still there */
  g_free(out);
  g_free(err);
  /* dry run: sizes without evaluating */
  const char *a5[] = {"bench", "--model", model_path, "--dry-run", NULL};
  g_assert_cmpint(pqrun_argv(&out, &err, a5), ==, 0);
  g_assert_nonnull(strstr(out, "quantization_6"));
  g_assert_nonnull(strstr(out, "(no evaluation: --dry-run"));
}

static JsonObject *report_row(const char *method, const char *metrics_json) {
  g_autofree char *text = g_strdup_printf("{\"method\": \"%s\", \"status\": \"ok\", \"metrics\": %s}", method, metrics_json);
  g_autoptr(GError) e = NULL;
  JsonNode *n = json_from_string(text, &e);
  g_assert_no_error(e);
  JsonObject *o = json_object_ref(json_node_get_object(n));
  json_node_unref(n);
  return o;
}

/* A latency figure of no batch size (a custom probe's "latency.cold_start_ms") is listed in the method's
 * latency section beside the per-batch tables, not dropped. */
static void test_report_custom_latency(void) {
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(PqModel) m = pq_test_tiny_mlp(8, 4, 2, 3);
  g_autofree char *out_dir = g_build_filename(tmpdir, "custom-latency", NULL);
  PqBenchSettings s = {0};
  s.registry = reg;
  s.backend = pq_test_cpu_backend(reg);
  s.model = m;
  s.threads = 1;
  s.output_dir = out_dir;
  g_assert_cmpint(g_mkdir_with_parents(out_dir, 0755), ==, 0);
  const char *lat = "{\"latency.b1.p50_ms\": {\"value\": 0.004, \"unit\": \"ms\", \"better\": \"lower\"},"
                    " \"latency.b1.baseline.p50_ms\": {\"value\": 0.005, \"unit\": \"ms\", \"better\": \"lower\"},"
                    " \"latency.cold_start_ms\": {\"value\": 12.5, \"unit\": \"ms\", \"better\": \"lower\"}}";
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  g_ptr_array_add(rows, report_row("baseline", lat));
  g_ptr_array_add(rows, report_row("custom", lat));
  g_autoptr(GError) e = NULL;
  g_autofree char *table = pq_report_write(&s, rows, &e);
  g_assert_no_error(e);
  g_assert_nonnull(table);
  g_autofree char *md_path = g_build_filename(out_dir, "report.md", NULL), *md = NULL;
  g_assert_true(g_file_get_contents(md_path, &md, NULL, NULL));
  const char *section = strstr(md, "## custom");
  g_assert_nonnull(section);
  const char *table_at = strstr(section, "| statistic | this method | baseline, same process |"), *custom = strstr(section, "| latency.cold_start_ms | 12.5");
  g_assert_nonnull(table_at);
  g_assert_nonnull(custom);
  g_assert_true(custom > table_at);
  /* a method that failed before measuring (no metrics) is a row of the report, not a crash */
  g_ptr_array_add(rows, json_object_ref(json_node_get_object(json_from_string("{\"method\": \"broke\", \"status\": \"error\", \"error\": \"x\"}", NULL))));
  g_free(pq_report_write(&s, rows, &e));
  g_assert_no_error(e);
  /* a row of another form is an error naming it, before anything is written */
  g_assert_true(g_remove(md_path) == 0);
  g_ptr_array_add(rows, report_row("odd", "{\"accuracy.top1\": {\"value\": \"high\"}}"));
  g_assert_null(pq_report_write(&s, rows, &e));
  g_assert_error(e, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID);
  g_assert_nonnull(strstr(e->message, "result row 3: metrics.accuracy.top1.value must be a number"));
  g_assert_false(g_file_test(md_path, G_FILE_TEST_EXISTS));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = pq_test_mkdtemp();
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 256, 10, 5); /* big enough that the file header weighs under 2% */
  model_path = g_build_filename(tmpdir, "m.safetensors", NULL);
  g_assert_true(pq_model_save(m, model_path, NULL));
  g_test_add_func("/suite/bench-and-compare", test_bench_and_compare);
  g_test_add_func("/suite/bad-inputs", test_bad_inputs);
  g_test_add_func("/suite/report-custom-latency", test_report_custom_latency);
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  g_free(model_path);
  return rc;
}
