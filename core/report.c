/* report.c — what a benchmark run leaves behind: report.json (versioned schema, docs/report-schema.md),
 * report.md, report.csv, the plots, the console table; and the comparison of two reports. */
#include "pq-private.h"

#include <cairo.h>
#include <cblas.h>
#include <errno.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

gboolean pq_plot_write(GPtrArray *results, const char *dir, GError **error); /* plot.c */

static const char *const builtin_probes[] = {"metrics", "accuracy", "latency", "memory"};

static gboolean is_builtin(const char *metric) {
  for (size_t i = 0; i < G_N_ELEMENTS(builtin_probes); i++) {
    size_t l = strlen(builtin_probes[i]);
    if (!strncmp(metric, builtin_probes[i], l) && metric[l] == '.') return TRUE;
  }
  return FALSE;
}

/* A row's metrics (NULL where it has none: a method that failed before measuring) and one metric's entry. */
JsonObject *pq_result_row_metrics(JsonObject *row) {
  JsonNode *n = json_object_get_member(row, "metrics");
  return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}
static JsonObject *metric_entry(JsonObject *row, const char *name) {
  JsonObject *m = pq_result_row_metrics(row);
  JsonNode *n = m ? json_object_get_member(m, name) : NULL;
  return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

/* A metric's value, or NAN when the method has none. */
double pq_result_metric(JsonObject *row, const char *name) {
  JsonObject *e = metric_entry(row, name);
  return e ? json_object_get_double_member_with_default(e, "value", NAN) : NAN;
}

static gboolean ok(JsonObject *row) { return !g_strcmp0(json_object_get_string_member_with_default(row, "status", ""), "ok"); }

/* Every metric name seen, in the order the probes added them (the first row that has a name places it),
 * optionally only those of custom probes. */
static GPtrArray *metric_names(GPtrArray *results, gboolean custom_only) {
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < results->len; i++) {
    JsonObject *m = pq_result_row_metrics(results->pdata[i]);
    if (!m) continue;
    g_autoptr(GList) keys = json_object_get_members(m);
    for (GList *l = keys; l; l = l->next)
      if (!g_hash_table_contains(seen, l->data) && (!custom_only || !is_builtin(l->data))) {
        g_hash_table_add(seen, l->data);
        g_ptr_array_add(names, g_strdup(l->data));
      }
  }
  return names;
}

static char *cpu_model(void) {
  g_autofree char *text = NULL;
  if (!g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL)) return g_strdup("unknown");
  const char *p = strstr(text, "model name");
  const char *c = p ? strchr(p, ':') : NULL;
  if (!c) return g_strdup("unknown");
  const char *e = strchr(c, '\n');
  return g_strstrip(g_strndup(c + 1, e ? (gsize)(e - c - 1) : strlen(c + 1)));
}

static char *cpu_flags(void) {
  const char *want[] = {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_int8", "neon", "asimd"};
  g_autofree char *text = NULL;
  GString *out = g_string_new(NULL);
  if (g_file_get_contents("/proc/cpuinfo", &text, NULL, NULL)) {
    const char *p = strstr(text, "\nflags");
    if (!p) p = strstr(text, "\nFeatures");
    const char *e = p ? strchr(p + 1, '\n') : NULL;
    g_autofree char *line = p ? g_strndup(p, e ? (gsize)(e - p) : strlen(p)) : g_strdup("");
    g_auto(GStrv) words = g_strsplit_set(line, " \t:", -1);
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
      for (char **w = words; *w; w++)
        if (!strcmp(*w, want[i])) g_string_append_printf(out, "%s%s", out->len ? " " : "", want[i]);
  }
  return g_string_free(out, FALSE);
}

static void env_json(JsonBuilder *b, const PqBenchSettings *s) {
  json_builder_set_member_name(b, "environment");
  json_builder_begin_object(b);
#define KV(k, v)                                                                                                   \
  do {                                                                                                             \
    json_builder_set_member_name(b, k);                                                                            \
    json_builder_add_string_value(b, v);                                                                           \
  } while (0)
  KV("pquant_version", PQ_VERSION_STRING);
  KV("git_commit", PQ_GIT_COMMIT);
  g_autofree char *cpu = cpu_model(), *flags = cpu_flags();
  KV("cpu", cpu);
  KV("cpu_flags", flags);
  json_builder_set_member_name(b, "cpus");
  json_builder_add_int_value(b, g_get_num_processors());
  json_builder_set_member_name(b, "threads");
  json_builder_add_int_value(b, s->threads);
  g_autofree char *bopts = pq_options_describe(s->backend_options);
  g_autofree char *backend = g_strdup_printf("%s %s%s%s%s", pq_plugin_name(s->backend), pq_plugin_version(s->backend),
                                             *bopts ? " (" : "", bopts, *bopts ? ")" : "");
  KV("backend", backend);
  g_autofree char *glib = g_strdup_printf("%u.%u.%u", glib_major_version, glib_minor_version, glib_micro_version);
  KV("glib", glib);
  KV("json_glib", JSON_VERSION_S);
  KV("openblas", openblas_get_config());
  KV("cairo", cairo_version_string());
  KV("dataset", s->test ? pq_dataset_name(s->test) : "none");
  const char *model = pq_model_meta(s->model, "pquant.model");
  KV("model", model ? model : "unnamed");
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *date = g_date_time_format_iso8601(now);
  KV("date", date);
  KV("host", g_get_host_name());
#undef KV
  json_builder_end_object(b);
}

static void fmt_value(GString *out, double v, const char *unit) {
  if (isnan(v)) {
    g_string_append(out, "-");
    return;
  }
  if (!strcmp(unit, "flag")) {
    g_string_append(out, v != 0 ? "yes" : "no");
    return;
  }
  /* counts (parameters, MACs, samples, bytes) in full: they are exact, four digits would round them; large
   * rates (samples/s) to the unit */
  if (!strcmp(unit, "bytes") || (v == floor(v) && fabs(v) < 1e15) || (fabs(v) >= 1e4 && fabs(v) < 1e15)) g_string_append_printf(out, "%.0f", v);
  else g_string_append_printf(out, "%.4g", v);
  if (unit[0]) g_string_append_printf(out, " %s", unit);
}

static const char *metric_unit(JsonObject *row, const char *name) {
  JsonObject *e = metric_entry(row, name);
  return e ? json_object_get_string_member_with_default(e, "unit", "") : "";
}

/* The first latency batch size the results have (b1 when present). */
static char *first_batch(GPtrArray *results) {
  g_autoptr(GPtrArray) names = metric_names(results, FALSE);
  long best = -1;
  for (guint i = 0; i < names->len; i++) {
    long b;
    if (sscanf(names->pdata[i], "latency.b%ld.speedup", &b) == 1 && (best < 0 || b < best)) best = b;
  }
  return best > 0 ? g_strdup_printf("b%ld", best) : NULL;
}

static char *console_table(GPtrArray *results, gboolean markdown) {
  g_autoptr(GPtrArray) custom = metric_names(results, TRUE);
  g_autofree char *fb = first_batch(results);
  GString *t = g_string_new(NULL);
  g_autoptr(GPtrArray) heads = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(heads, g_strdup("Method"));
  g_ptr_array_add(heads, g_strdup("Compression"));
  g_ptr_array_add(heads, g_strdup("On disk"));
  g_ptr_array_add(heads, g_strdup("Accuracy"));
  g_ptr_array_add(heads, g_strdup("Degradation"));
  g_ptr_array_add(heads, fb ? g_strdup_printf("Latency (%s)", fb) : g_strdup("Latency"));
  g_ptr_array_add(heads, fb ? g_strdup_printf("Speedup (%s)", fb) : g_strdup("Speedup"));
  g_ptr_array_add(heads, g_strdup("Peak memory"));
  for (guint i = 0; i < custom->len; i++) g_ptr_array_add(heads, g_strdup(custom->pdata[i]));
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
  for (guint r = 0; r < results->len; r++) {
    JsonObject *row = results->pdata[r];
    GPtrArray *cells = g_ptr_array_new();
    g_ptr_array_add(cells, g_strdup(json_object_get_string_member_with_default(row, "method", "?")));
    if (!ok(row)) {
      g_ptr_array_add(cells, g_strdup_printf("error: %s", json_object_get_string_member_with_default(row, "error", "?")));
      while (cells->len < heads->len) g_ptr_array_add(cells, g_strdup(""));
    } else {
      g_autofree char *sp = fb ? g_strdup_printf("latency.%s.speedup", fb) : NULL;
      double v[6] = {pq_result_metric(row, "metrics.compression_ratio"), pq_result_metric(row, "metrics.disk_ratio"), pq_result_metric(row, "accuracy.top1"),
                     pq_result_metric(row, "accuracy.degradation"), sp ? pq_result_metric(row, sp) : NAN, pq_result_metric(row, "memory.backend_peak_bytes") / 1e6};
      const char *fmt[6] = {"%.2fx", "%.2fx", "%.2f%%", "%+.2f pp", "%.2fx", "%.2f MB"};
      v[3] = v[3] == 0 ? 0 : -v[3]; /* shown as the change of accuracy */
      g_autofree char *p50 = fb ? g_strdup_printf("latency.%s.p50_ms", fb) : NULL, *slower = fb ? g_strdup_printf("latency.%s.slower", fb) : NULL;
      const double ms = p50 ? pq_result_metric(row, p50) : NAN;
      for (int k = 0; k < 6; k++) {
        if (k == 4) /* the median time itself, before the speedup against the baseline of the same process */
          g_ptr_array_add(cells, isnan(ms) ? g_strdup("-") : ms < 1 ? g_strdup_printf("%.1f µs", ms * 1e3) : g_strdup_printf("%.2f ms", ms));
        g_autofree char *cell = isnan(v[k]) ? g_strdup("-") : g_strdup_printf(fmt[k], v[k]);
        /* slower than the baseline beyond noise: said beside the speedup */
        g_ptr_array_add(cells, k == 4 && slower && pq_result_metric(row, slower) == 1 ? g_strdup_printf("%s (slower)", cell) : g_strdup(cell));
      }
      for (guint i = 0; i < custom->len; i++) {
        GString *c = g_string_new(NULL);
        fmt_value(c, pq_result_metric(row, custom->pdata[i]), metric_unit(row, custom->pdata[i]));
        g_ptr_array_add(cells, g_string_free(c, FALSE));
      }
    }
    g_ptr_array_add(cells, NULL);
    g_ptr_array_add(rows, g_ptr_array_free(cells, FALSE));
  }
  g_autofree int *w = g_new0(int, heads->len);
  for (guint c = 0; c < heads->len; c++) {
    w[c] = (int)g_utf8_strlen(heads->pdata[c], -1);
    for (guint r = 0; r < rows->len; r++) w[c] = MAX(w[c], (int)g_utf8_strlen(((char **)rows->pdata[r])[c], -1));
  }
  for (int line = -1; line < (int)rows->len; line++) {
    if (markdown) g_string_append(t, "|");
    for (guint c = 0; c < heads->len; c++) {
      const char *cell = line < 0 ? heads->pdata[c] : ((char **)rows->pdata[line])[c];
      int pad = w[c] - (int)g_utf8_strlen(cell, -1);
      g_string_append_printf(t, markdown ? " %s%*s |" : "%s%*s%s", cell, pad, "", c + 1 < heads->len ? "  " : "");
    }
    g_string_append_c(t, '\n');
    if (line < 0) {
      if (markdown) g_string_append(t, "|");
      for (guint c = 0; c < heads->len; c++) {
        for (int k = 0; k < w[c] + (markdown ? 2 : 0); k++) g_string_append(t, markdown ? "-" : "─");
        g_string_append(t, markdown ? "|" : (c + 1 < heads->len ? "──" : ""));
      }
      g_string_append_c(t, '\n');
    }
  }
  for (guint r = 0; r < results->len; r++) { /* probes that failed for a method: under the table */
    JsonObject *row = results->pdata[r];
    JsonObject *pe = json_object_has_member(row, "probe_errors") ? json_object_get_object_member(row, "probe_errors") : NULL;
    if (!pe) continue;
    g_autoptr(GList) keys = json_object_get_members(pe);
    for (GList *l = keys; l; l = l->next)
      g_string_append_printf(t, "%s%s: probe '%s' failed: %s\n", markdown ? "\n- " : "", json_object_get_string_member_with_default(row, "method", "?"),
                             (const char *)l->data, json_object_get_string_member(pe, l->data));
  }
  return g_string_free(t, FALSE);
}

static gboolean write_file(const char *dir, const char *name, const char *text, GError **error) {
  g_autofree char *path = g_build_filename(dir, name, NULL);
  return pq_write_text_atomically(path, text, error);
}

static void csv_cell(GString *s, const char *v) {
  if (strpbrk(v, ",\"\n")) {
    g_string_append_c(s, '"');
    for (const char *p = v; *p; p++) {
      if (*p == '"') g_string_append_c(s, '"');
      g_string_append_c(s, *p);
    }
    g_string_append_c(s, '"');
  } else {
    g_string_append(s, v);
  }
}

static const char *section_of(const char *metric) {
  if (g_str_has_prefix(metric, "metrics.")) return "Compression Metrics";
  if (g_str_has_prefix(metric, "accuracy.")) return "Accuracy";
  if (g_str_has_prefix(metric, "latency.")) return "Latency";
  if (g_str_has_prefix(metric, "memory.")) return "Memory";
  return "Other probes";
}

/* A time in ms as the latency tables show it: µs below a millisecond. */
static char *fmt_ms(double ms) {
  if (isnan(ms)) return g_strdup("-");
  return ms < 1 ? g_strdup_printf("%.4g µs", ms * 1e3) : g_strdup_printf("%.4g ms", ms);
}

static char *fmt_metric(JsonObject *row, const char *name) {
  double v = pq_result_metric(row, name);
  const char *unit = metric_unit(row, name);
  if (!strcmp(unit, "ms")) return fmt_ms(v);
  GString *s = g_string_new(NULL);
  fmt_value(s, v, unit);
  return g_string_free(s, FALSE);
}

/* A method's latency section: for each batch size, its statistics beside the baseline's measured in the same
 * process (latency.bN.X against latency.bN.baseline.X), then the figures that have no baseline twin
 * (speedup, slower, runs, ...). */
static void latency_md(GString *md, JsonObject *row, GPtrArray *names) {
  g_autoptr(GPtrArray) batches = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < names->len; i++) {
    const char *n = names->pdata[i];
    long b;
    int end = 0;
    if (sscanf(n, "latency.b%ld.%n", &b, &end) != 1 || !end || isnan(pq_result_metric(row, n))) continue;
    g_autofree char *prefix = g_strndup(n, (gsize)end);
    gboolean have = FALSE;
    for (guint k = 0; k < batches->len && !have; k++) have = !strcmp(batches->pdata[k], prefix);
    if (!have) g_ptr_array_add(batches, g_steal_pointer(&prefix));
  }
  for (guint k = 0; k < batches->len; k++) {
    const char *prefix = batches->pdata[k];
    g_autofree char *runs_key = g_strconcat(prefix, "runs", NULL), *base_prefix = g_strconcat(prefix, "baseline.", NULL);
    double runs = pq_result_metric(row, runs_key);
    g_string_append_printf(md, "Batch %.*s", (int)(strlen(prefix) - strlen("latency.b") - 1), prefix + strlen("latency.b"));
    if (!isnan(runs)) g_string_append_printf(md, ", %.0f timed runs alternating with the baseline's", runs);
    g_string_append(md, ":\n\n| statistic | this method | baseline, same process |\n|---|---|---|\n");
    g_autoptr(GString) rest = g_string_new(NULL);
    for (guint i = 0; i < names->len; i++) {
      const char *n = names->pdata[i];
      if (!g_str_has_prefix(n, prefix) || g_str_has_prefix(n, base_prefix) || isnan(pq_result_metric(row, n))) continue;
      const char *stat = n + strlen(prefix);
      g_autofree char *twin = g_strconcat(base_prefix, stat, NULL), *label = g_strdup(stat);
      if (g_str_has_suffix(label, "_ms")) label[strlen(label) - 3] = 0;
      g_autofree char *mine = fmt_metric(row, n);
      if (!isnan(pq_result_metric(row, twin))) {
        g_autofree char *theirs = fmt_metric(row, twin);
        g_string_append_printf(md, "| %s | %s | %s |\n", label, mine, theirs);
      } else if (strcmp(stat, "runs")) {
        g_string_append_printf(rest, "%s%s %s", rest->len ? ", " : "", label, mine);
      }
    }
    if (rest->len) g_string_append_printf(md, "\n%s.\n", rest->str);
    g_string_append_c(md, '\n');
  }
  gboolean any = FALSE; /* latency figures of no batch size (a custom probe's): as the other sections list theirs */
  for (guint i = 0; i < names->len; i++) {
    const char *n = names->pdata[i];
    long b;
    int end = 0;
    if (!g_str_has_prefix(n, "latency.") || isnan(pq_result_metric(row, n)) || (sscanf(n, "latency.b%ld.%n", &b, &end) == 1 && end)) continue;
    if (!any) g_string_append(md, "| metric | value |\n|---|---|\n");
    any = TRUE;
    g_autofree char *val = fmt_metric(row, n);
    g_string_append_printf(md, "| %s | %s |\n", n, val);
  }
  if (any) g_string_append_c(md, '\n');
}

char *pq_report_write(const PqBenchSettings *s, GPtrArray *results, GError **error) {
  for (guint i = 0; i < results->len; i++) { /* rows as the suite writes them: nothing below meets a wrong type */
    g_autofree char *why = NULL;
    if (!pq_result_row_check(results->pdata[i], &why)) {
      g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "result row %u: %s", i, why);
      return NULL;
    }
  }
  /* report.json */
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "schema");
  json_builder_add_string_value(b, "pquant-report");
  json_builder_set_member_name(b, "schema_version");
  json_builder_add_int_value(b, PQ_REPORT_SCHEMA_VERSION);
  env_json(b, s);
  json_builder_set_member_name(b, "methods");
  json_builder_begin_array(b);
  for (guint i = 0; i < results->len; i++) {
    JsonNode *n = json_node_init_object(json_node_alloc(), results->pdata[i]);
    json_builder_add_value(b, n);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  g_autofree char *json = json_generator_to_data(gen, NULL);
  if (!write_file(s->output_dir, "report.json", json, error)) return NULL;

  g_autofree char *table = console_table(results, FALSE);
  g_autofree char *mdtable = console_table(results, TRUE);
  g_autoptr(GPtrArray) names = metric_names(results, FALSE);

  /* report.csv: one row per method */
  g_autoptr(GString) csv = g_string_new("method,status,error");
  for (guint i = 0; i < names->len; i++) {
    g_string_append_c(csv, ',');
    csv_cell(csv, names->pdata[i]);
  }
  g_string_append_c(csv, '\n');
  for (guint r = 0; r < results->len; r++) {
    JsonObject *row = results->pdata[r];
    csv_cell(csv, json_object_get_string_member_with_default(row, "method", ""));
    g_string_append_c(csv, ',');
    csv_cell(csv, json_object_get_string_member_with_default(row, "status", ""));
    g_string_append_c(csv, ',');
    csv_cell(csv, json_object_get_string_member_with_default(row, "error", ""));
    for (guint i = 0; i < names->len; i++) {
      double v = pq_result_metric(row, names->pdata[i]);
      if (isnan(v)) g_string_append(csv, ",");
      else g_string_append_printf(csv, ",%.10g", v);
    }
    g_string_append_c(csv, '\n');
  }
  if (!write_file(s->output_dir, "report.csv", csv->str, error)) return NULL;

  /* report.md: the summary, then each method's sections */
  g_autoptr(GString) md = g_string_new("# pquant benchmark report\n\n");
  g_autofree char *cpu = cpu_model();
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *date = g_date_time_format_iso8601(now);
  g_autofree char *threads = s->threads > 0 ? g_strdup_printf("%d thread%s", s->threads, s->threads > 1 ? "s" : "")
                                             : g_strdup_printf("the backend's default threads (%d CPUs)", g_get_num_processors());
  g_string_append_printf(md, "pquant %s (%s), backend %s, %s, %s, dataset %s, %s.\n\n", PQ_VERSION_STRING, PQ_GIT_COMMIT,
                         pq_plugin_name(s->backend), threads, cpu, s->test ? pq_dataset_name(s->test) : "none", date);
  g_string_append_printf(md, "%s\n![accuracy against compression](accuracy_vs_compression.svg)\n![latency](latency.svg)\n\n", mdtable);
  for (guint r = 0; r < results->len; r++) {
    JsonObject *row = results->pdata[r];
    g_string_append_printf(md, "## %s\n\n", json_object_get_string_member_with_default(row, "method", "?"));
    if (!ok(row)) {
      g_string_append_printf(md, "**Error:** %s\n\n", json_object_get_string_member_with_default(row, "error", "?"));
      continue;
    }
    const char *sections[] = {"Compression Metrics", "Accuracy", "Latency", "Memory", "Other probes"};
    for (size_t sct = 0; sct < G_N_ELEMENTS(sections); sct++) {
      if (!strcmp(sections[sct], "Latency")) {
        g_autoptr(GString) lat = g_string_new(NULL);
        latency_md(lat, row, names);
        if (lat->len) g_string_append_printf(md, "### Latency\n\n%s", lat->str);
        continue;
      }
      gboolean any = FALSE;
      for (guint i = 0; i < names->len; i++) {
        const char *n = names->pdata[i];
        double v = pq_result_metric(row, n);
        if (strcmp(section_of(n), sections[sct]) || isnan(v)) continue;
        if (!any) g_string_append_printf(md, "### %s\n\n| metric | value |\n|---|---|\n", sections[sct]);
        any = TRUE;
        g_autofree char *val = fmt_metric(row, n);
        g_string_append_printf(md, "| %s | %s |\n", n, val);
      }
      if (any) g_string_append_c(md, '\n');
    }
    JsonNode *ln = json_object_get_member(row, "layers"); /* (optional: a row made by other code than the suite's may have none) */
    JsonArray *layers = ln && JSON_NODE_HOLDS_ARRAY(ln) ? json_node_get_array(ln) : NULL;
    if (layers && json_array_get_length(layers)) {
      g_string_append(md, "### Layers\n\n| stage | method | layer | bytes before | bytes after | SQNR (dB) | detail |\n|---|---|---|---|---|---|---|\n");
      for (guint i = 0; i < json_array_get_length(layers); i++) {
        JsonObject *l = json_array_get_object_element(layers, i);
        gboolean skipped = json_object_get_boolean_member_with_default(l, "skipped", FALSE);
        JsonNode *sq = json_object_get_member(l, "sqnr_db");
        g_autofree char *sqs = sq && JSON_NODE_HOLDS_VALUE(sq) ? g_strdup_printf("%.1f", json_node_get_double(sq)) : g_strdup("-");
        g_string_append_printf(md, "| %" G_GINT64_FORMAT " | %s | %s | %s%" G_GINT64_FORMAT " | %s%" G_GINT64_FORMAT " | %s | %s%s |\n",
                               json_object_get_int_member_with_default(l, "stage", 0), json_object_get_string_member_with_default(l, "method", ""),
                               json_object_get_string_member_with_default(l, "layer", ""), "", json_object_get_int_member_with_default(l, "bytes_before", 0), "",
                               json_object_get_int_member_with_default(l, "bytes_after", 0), sqs, skipped ? "skipped: " : "",
                               json_object_get_string_member_with_default(l, "detail", ""));
      }
      g_string_append_c(md, '\n');
    }
  }
  if (!write_file(s->output_dir, "report.md", md->str, error)) return NULL;
  if (!pq_plot_write(results, s->output_dir, error)) return NULL;
  return g_steal_pointer(&table);
}

/* ---- compare -------------------------------------------------------------------------------------- */

/* A result row as the suite writes it (results.jsonl, and each of report.json's methods), so that what reads
 * it later never meets a member of the wrong type: "method" and "status" strings; "error" a string where
 * present; with status "ok", "metrics" an object of objects, each with a number "value", strings "unit" and
 * "better" where present, and "samples" an array of numbers where present; "layers" an array of objects
 * whose known members have their types; "probe_errors" an object of strings. */
gboolean pq_result_row_check(JsonObject *row, char **why) {
#define BAD(...)                                                                                                   \
  do {                                                                                                             \
    *why = g_strdup_printf(__VA_ARGS__);                                                                           \
    return FALSE;                                                                                                  \
  } while (0)
  if (!pq_json_holds(json_object_get_member(row, "method"), G_TYPE_STRING)) BAD("\"method\" must be a string");
  if (!pq_json_holds(json_object_get_member(row, "status"), G_TYPE_STRING)) BAD("\"status\" must be a string");
  if (json_object_has_member(row, "error") && !pq_json_holds(json_object_get_member(row, "error"), G_TYPE_STRING)) BAD("\"error\" must be a string");
  if (json_object_has_member(row, "seconds") && !pq_json_holds(json_object_get_member(row, "seconds"), G_TYPE_DOUBLE)) BAD("\"seconds\" must be a number");
  JsonNode *pe = json_object_get_member(row, "probe_errors");
  if (pe) {
    if (!JSON_NODE_HOLDS_OBJECT(pe)) BAD("\"probe_errors\" must be an object");
    g_autoptr(GList) ks = json_object_get_members(json_node_get_object(pe));
    for (GList *l = ks; l; l = l->next)
      if (!pq_json_holds(json_object_get_member(json_node_get_object(pe), l->data), G_TYPE_STRING)) BAD("probe_errors.%s must be a string", (char *)l->data);
  }
  JsonNode *mn = json_object_get_member(row, "metrics");
  if (!mn && !g_strcmp0(json_node_get_string(json_object_get_member(row, "status")), "ok")) BAD("a finished method needs \"metrics\"");
  if (mn) {
    if (!JSON_NODE_HOLDS_OBJECT(mn)) BAD("\"metrics\" must be an object");
    JsonObject *m = json_node_get_object(mn);
    g_autoptr(GList) ks = json_object_get_members(m);
    for (GList *l = ks; l; l = l->next) {
      JsonNode *en = json_object_get_member(m, l->data);
      if (!JSON_NODE_HOLDS_OBJECT(en)) BAD("metrics.%s must be an object", (char *)l->data);
      JsonObject *e = json_node_get_object(en);
      if (!pq_json_holds(json_object_get_member(e, "value"), G_TYPE_DOUBLE)) BAD("metrics.%s.value must be a number", (char *)l->data);
      const char *str[] = {"unit", "better"};
      for (int k = 0; k < 2; k++)
        if (json_object_has_member(e, str[k]) && !pq_json_holds(json_object_get_member(e, str[k]), G_TYPE_STRING))
          BAD("metrics.%s.%s must be a string", (char *)l->data, str[k]);
      JsonNode *sn = json_object_get_member(e, "samples");
      if (sn) {
        if (!JSON_NODE_HOLDS_ARRAY(sn)) BAD("metrics.%s.samples must be an array", (char *)l->data);
        JsonArray *a = json_node_get_array(sn);
        for (guint i = 0; i < json_array_get_length(a); i++)
          if (!pq_json_holds(json_array_get_element(a, i), G_TYPE_DOUBLE)) BAD("metrics.%s.samples[%u] must be a number", (char *)l->data, i);
      }
    }
  }
  JsonNode *ln = json_object_get_member(row, "layers");
  if (ln) {
    if (!JSON_NODE_HOLDS_ARRAY(ln)) BAD("\"layers\" must be an array");
    JsonArray *a = json_node_get_array(ln);
    for (guint i = 0; i < json_array_get_length(a); i++) {
      JsonNode *en = json_array_get_element(a, i);
      if (!JSON_NODE_HOLDS_OBJECT(en)) BAD("layers[%u] must be an object", i);
      JsonObject *e = json_node_get_object(en);
      const struct {
        const char *key;
        GType t;
      } f[] = {{"stage", G_TYPE_INT64}, {"method", G_TYPE_STRING}, {"layer", G_TYPE_STRING}, {"detail", G_TYPE_STRING},
               {"bytes_before", G_TYPE_INT64}, {"bytes_after", G_TYPE_INT64}, {"skipped", G_TYPE_BOOLEAN}};
      for (size_t k = 0; k < G_N_ELEMENTS(f); k++)
        if (json_object_has_member(e, f[k].key) && !pq_json_holds(json_object_get_member(e, f[k].key), f[k].t))
          BAD("layers[%u].%s has the wrong type", i, f[k].key);
      JsonNode *q = json_object_get_member(e, "sqnr_db");
      if (q && !JSON_NODE_HOLDS_NULL(q) && !pq_json_holds(q, G_TYPE_DOUBLE)) BAD("layers[%u].sqnr_db must be a number or null", i);
    }
  }
  return TRUE;
#undef BAD
}

static JsonObject *load_report(const char *given, JsonParser *parser, GError **error) {
  g_autoptr(GError) perr = NULL;
  /* a report folder (what pqrun bench -o names) stands for its report.json */
  g_autofree char *in_dir = g_file_test(given, G_FILE_TEST_IS_DIR) ? g_build_filename(given, "report.json", NULL) : NULL;
  const char *path = in_dir ? in_dir : given;
  if (!json_parser_load_from_file(parser, path, &perr)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: %s", path, perr->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *sch = o ? json_object_get_member(o, "schema") : NULL;
  if (!pq_json_holds(sch, G_TYPE_STRING) || strcmp(json_node_get_string(sch), "pquant-report")) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: not a pquant report (field \"schema\")", path);
    return NULL;
  }
  JsonNode *ver = json_object_get_member(o, "schema_version"), *mn = json_object_get_member(o, "methods");
  if (!pq_json_holds(ver, G_TYPE_INT64)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: \"schema_version\" must be an integer", path);
    return NULL;
  }
  if (!mn || !JSON_NODE_HOLDS_ARRAY(mn)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: \"methods\" must be an array", path);
    return NULL;
  }
  JsonArray *ms = json_node_get_array(mn);
  for (guint i = 0; i < json_array_get_length(ms); i++) {
    JsonNode *rn = json_array_get_element(ms, i);
    g_autofree char *why = NULL;
    if (!JSON_NODE_HOLDS_OBJECT(rn)) why = g_strdup("must be an object");
    else pq_result_row_check(json_node_get_object(rn), &why);
    if (why) {
      g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: methods[%u]: %s", path, i, why);
      return NULL;
    }
  }
  return o;
}

/* Two-sided Mann–Whitney U test, normal approximation: the probability that samples this far apart come
 * from one distribution. */
static double mann_whitney_p(JsonArray *a, JsonArray *b) {
  guint na = json_array_get_length(a), nb = json_array_get_length(b), n = na + nb;
  if (na < 5 || nb < 5) return 1.0;
  g_autofree double *v = g_new(double, n);
  g_autofree int *from_a = g_new(int, n);
  for (guint i = 0; i < n; i++) {
    v[i] = json_array_get_double_element(i < na ? a : b, i < na ? i : i - na);
    from_a[i] = i < na;
  }
  /* rank with ties averaged: sort indices by value */
  g_autofree guint *idx = g_new(guint, n);
  for (guint i = 0; i < n; i++) idx[i] = i;
  for (guint i = 1; i < n; i++) /* insertion sort: sample counts are small */
    for (guint j = i; j > 0 && v[idx[j - 1]] > v[idx[j]]; j--) {
      guint t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  double ra = 0;
  for (guint i = 0; i < n;) {
    guint j = i;
    while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) j++;
    double rank = (i + j) / 2.0 + 1;
    for (guint k = i; k <= j; k++)
      if (from_a[idx[k]]) ra += rank;
    i = j + 1;
  }
  double u = ra - na * (na + 1) / 2.0, mu = na * (double)nb / 2.0, sd = sqrt(na * (double)nb * (n + 1) / 12.0);
  double z = fabs(u - mu) / sd;
  return erfc(z / sqrt(2.0));
}

/* Of a batch size's latency figures, compare judges the central ones: p50 (and the backend's own p50) and
 * the speedup over the baseline timed in the same process. Spread and extremes (std, min, max, p10–p99) and
 * figures derived from the mean move with every outlier; they stay in the reports as context. */
static gboolean latency_judged(const char *k) {
  long batch;
  int used = 0;
  if (sscanf(k, "latency.b%ld.%n", &batch, &used) != 1 || used == 0) return TRUE;
  const char *f = k + used;
  return !strcmp(f, "p50_ms") || !strcmp(f, "speedup") || !strcmp(f, "backend_p50_ms") || !strcmp(f, "backend_compute_p50_ms") ||
         !strcmp(f, "backend_speedup");
}

/* The raw samples that say whether a change of metric `k` is noise: its own, or for a latency figure without
 * any (mean, std, p99, throughput, the backend's own timings…) those of its batch size's p50 — one run's
 * spread is the same for all its figures. NULL when there are none. */
static JsonObject *noise_reference(JsonObject *metrics, const char *k, JsonObject *own) {
  if (json_object_has_member(own, "samples")) return own;
  long batch;
  int used = 0;
  if (sscanf(k, "latency.b%ld.%n", &batch, &used) != 1 || used == 0) return NULL;
  char ref[64];
  g_snprintf(ref, sizeof ref, "latency.b%ld.p50_ms", batch);
  JsonObject *r = json_object_has_member(metrics, ref) ? json_object_get_object_member(metrics, ref) : NULL;
  return r && json_object_has_member(r, "samples") ? r : NULL;
}

int pq_report_compare(const char *a_path, const char *b_path, double threshold, double threshold_pp, GString *out, GError **error) {
  g_autoptr(JsonParser) pa = json_parser_new();
  g_autoptr(JsonParser) pb = json_parser_new();
  JsonObject *a = load_report(a_path, pa, error);
  if (!a) return -1;
  JsonObject *b = load_report(b_path, pb, error);
  if (!b) return -1;
  gint64 va = json_object_get_int_member_with_default(a, "schema_version", -1), vb = json_object_get_int_member_with_default(b, "schema_version", -1);
  if (va != vb || va != PQ_REPORT_SCHEMA_VERSION) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_UNSUPPORTED,
                "reports of different schema versions (%s: %" G_GINT64_FORMAT ", %s: %" G_GINT64_FORMAT "; this pquant reads %d)", a_path, va,
                b_path, vb, PQ_REPORT_SCHEMA_VERSION);
    return -1;
  }
  JsonArray *ma = json_object_get_array_member(a, "methods"), *mb = json_object_get_array_member(b, "methods");
  int regressions = 0, compared = 0;
  int w = 16; /* the method column as wide as A's longest name */
  for (guint i = 0; ma && i < json_array_get_length(ma); i++)
    w = MAX(w, (int)strlen(json_object_get_string_member_with_default(json_array_get_object_element(ma, i), "method", "")));
  g_string_append_printf(out, "%-*s %-34s %14s %14s %9s  %s\n", w, "method", "metric", "A", "B", "change", "verdict");
  for (guint i = 0; ma && i < json_array_get_length(ma); i++) {
    JsonObject *ra = json_array_get_object_element(ma, i);
    const char *name = json_object_get_string_member_with_default(ra, "method", "");
    JsonObject *rb = NULL;
    for (guint j = 0; mb && j < json_array_get_length(mb); j++)
      if (!g_strcmp0(json_object_get_string_member_with_default(json_array_get_object_element(mb, j), "method", ""), name))
        rb = json_array_get_object_element(mb, j);
    if (!rb) {
      g_string_append_printf(out, "%-*s only in A\n", w, name);
      continue;
    }
    if (ok(ra) && !ok(rb)) {
      g_string_append_printf(out, "%-*s %-34s %14s %14s %9s  REGRESSION (%s)\n", w, name, "status", "ok", "error", "",
                             json_object_get_string_member_with_default(rb, "error", ""));
      regressions++;
      continue;
    }
    if (!ok(ra) || !ok(rb)) continue;
    JsonObject *xa = json_object_get_object_member(ra, "metrics"), *xb = json_object_get_object_member(rb, "metrics");
    g_autoptr(GList) keys = json_object_get_members(xa);
    keys = g_list_sort(keys, (GCompareFunc)strcmp);
    for (GList *l = keys; l; l = l->next) {
      const char *k = l->data;
      if (!json_object_has_member(xb, k)) continue;
      JsonObject *ea = json_object_get_object_member(xa, k), *eb = json_object_get_object_member(xb, k);
      const char *better = json_object_get_string_member_with_default(ea, "better", "none");
      if (!strcmp(better, "none") || strstr(k, ".baseline")) continue; /* the baseline's own figures are context */
      if (!latency_judged(k)) continue;
      double x = json_object_get_double_member_with_default(ea, "value", NAN), y = json_object_get_double_member_with_default(eb, "value", NAN);
      if (isnan(x) || isnan(y)) continue;
      compared++;
      /* percentages are judged in points (0.5 pp of accuracy matter), everything else relatively */
      const char *unit = json_object_get_string_member_with_default(ea, "unit", "");
      gboolean points = !strcmp(unit, "%") || !strcmp(unit, "pp");
      double change = points ? y - x : x != 0 ? (y - x) / fabs(x) : (y == 0 ? 0 : INFINITY);
      double worse = !strcmp(better, "higher") ? -change : change;
      double limit = points ? threshold_pp : threshold;
      gboolean regress = worse > limit;
      const char *why = "";
      JsonObject *sa = noise_reference(xa, k, ea), *sb = noise_reference(xb, k, eb);
      if (regress && sa && sb) {
        /* timings: a change only counts when both runs' samples say it is not noise */
        double p = mann_whitney_p(json_object_get_array_member(sa, "samples"), json_object_get_array_member(sb, "samples"));
        if (p > 0.01) {
          regress = FALSE;
          why = " (within noise)";
        }
      }
      if (fabs(change) <= limit && !regress) continue;
      regressions += regress;
      g_autofree char *shown = points ? g_strdup_printf("%+.2f pp", change) : g_strdup_printf("%+.1f%%", 100 * change);
      g_string_append_printf(out, "%-*s %-34s %14.6g %14.6g %9s  %s%s\n", w, name, k, x, y, shown,
                             regress ? "REGRESSION" : worse < 0 ? "better" : "worse", why);
    }
  }
  g_string_append_printf(out, "%d metrics compared, %d regression%s beyond %.1f%% (%.2f pp for percentages)\n", compared, regressions,
                         regressions == 1 ? "" : "s", 100 * threshold, threshold_pp);
  return regressions;
}
