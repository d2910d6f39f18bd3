/* bench.c — the suite runner: every method compressed and probed in a child process of its own, so a crash
 * or a hang becomes an error row and the others finish; results are appended as each method ends. */
#include "pq-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *pq_bench_default_suite(void) {
  return "{\"methods\": {"
         " \"baseline\": [],"
         " \"low_rank_64\": [{\"plugin\": \"low_rank\", \"options\": {\"rank\": 64, \"data_aware\": true}}],"
         " \"low_rank_32\": [{\"plugin\": \"low_rank\", \"options\": {\"rank\": 32, \"data_aware\": true}}],"
         " \"quantization_8\": [{\"plugin\": \"quant\", \"options\": {\"bits\": 8}}],"
         " \"quantization_6\": [{\"plugin\": \"quant\", \"options\": {\"bits\": 6}}],"
         " \"tensor_train\": [{\"plugin\": \"tensor_train\", \"options\": {\"max_rank\": 32}}],"
         " \"combined\": [{\"plugin\": \"low_rank\", \"options\": {\"rank\": 64, \"data_aware\": true}},"
         "              {\"plugin\": \"quant\", \"options\": {\"bits\": 8}}]}}";
}

GPtrArray *pq_bench_load_config(PqRegistry *reg, const char *json, const char *origin, GHashTable *pipelines, GError **error) {
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(parser, json, -1, &perr)) {
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "%s: not JSON: %s", origin, perr->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(parser);
  JsonNode *mn = root && JSON_NODE_HOLDS_OBJECT(root) ? json_object_get_member(json_node_get_object(root), "methods") : NULL;
  if (!mn || !JSON_NODE_HOLDS_OBJECT(mn)) {
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "%s: needs a \"methods\" object (name → list of stages)", origin);
    return NULL;
  }
  JsonObject *methods = json_node_get_object(mn);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GList) members = json_object_get_members(methods);
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *stages = json_object_get_member(methods, name);
    if (!JSON_NODE_HOLDS_ARRAY(stages)) {
      g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "%s: methods.%s must be a list of stages", origin, name);
      return NULL;
    }
    /* the stages in the pipeline config form, validated by the pipeline itself */
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "stages");
    json_builder_add_value(b, json_node_copy(stages));
    json_builder_end_object(b);
    g_autoptr(JsonNode) cfg = json_builder_get_root(b);
    g_autofree char *text = json_to_string(cfg, FALSE);
    g_autofree char *tmp = NULL;
    int fd = g_file_open_tmp("pquant-method-XXXXXX.json", &tmp, NULL);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
      if (fd >= 0) close(fd);
      g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "cannot write a temporary file");
      return NULL;
    }
    close(fd);
    PqPipeline *p = pq_pipeline_new(reg);
    g_autoptr(GError) lerr = NULL;
    gboolean ok = pq_pipeline_load_config(p, tmp, &lerr);
    g_unlink(tmp);
    if (!ok) {
      pq_pipeline_free(p);
      /* the message names the temporary file: name the method instead */
      const char *msg = lerr->message;
      const char *colon = strstr(msg, ": ");
      g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "%s: methods.%s.%s", origin, name, colon ? colon + 2 : msg);
      return NULL;
    }
    g_hash_table_insert(pipelines, g_strdup(name), p);
    g_ptr_array_add(names, g_strdup(name));
  }
  if (names->len == 0) {
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "%s: no methods", origin);
    return NULL;
  }
  return g_steal_pointer(&names);
}

static const char *better_name(PqBetter b) { return b == PQ_BETTER_HIGHER ? "higher" : b == PQ_BETTER_LOWER ? "lower" : "none"; }

static void add_metric_json(JsonBuilder *b, const PqMetric *m) {
  json_builder_set_member_name(b, m->name);
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "value");
  json_builder_add_double_value(b, m->value);
  json_builder_set_member_name(b, "unit");
  json_builder_add_string_value(b, m->unit);
  json_builder_set_member_name(b, "better");
  json_builder_add_string_value(b, better_name(m->better));
  if (m->samples) {
    json_builder_set_member_name(b, "samples");
    json_builder_begin_array(b);
    for (guint i = 0; i < m->samples->len; i++) json_builder_add_double_value(b, g_array_index(m->samples, double, i));
    json_builder_end_array(b);
  }
  json_builder_end_object(b);
}

/* The child tells the parent what it is doing (for the progress line) through this pipe; -1: nobody asks. */
static int stage_fd = -1;

static void tell_stage(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void tell_stage(const char *fmt, ...) {
  if (stage_fd < 0) return;
  char buf[64];
  va_list ap;
  va_start(ap, fmt);
  int n = g_vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  buf[MIN(n, (int)sizeof buf - 2)] = '\n';
  if (write(stage_fd, buf, (size_t)MIN(n + 1, (int)sizeof buf - 1)) < 0) stage_fd = -1;
}

/* In the child: compress, probe, and describe the result as JSON text. */
static char *run_method(const PqBenchSettings *s, const char *name, PqPipeline *pipeline, GError **error) {
  gint64 t0 = g_get_monotonic_time();
  g_autoptr(PqModel) compressed = NULL;
  if (pipeline && pq_pipeline_n_stages(pipeline) > 0) {
    tell_stage("compressing (%u stage%s)", pq_pipeline_n_stages(pipeline), pq_pipeline_n_stages(pipeline) == 1 ? "" : "s");
    pq_pipeline_set_calibration(pipeline, s->train, s->calibration);
    compressed = pq_pipeline_run(pipeline, s->model, error);
    if (!compressed) return NULL;
  } else {
    compressed = pq_model_ref((PqModel *)s->model);
  }
  double compress_s = (double)(g_get_monotonic_time() - t0) / 1e6;
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "method");
  json_builder_add_string_value(b, name);
  json_builder_set_member_name(b, "status");
  json_builder_add_string_value(b, "ok");
  /* a probe that fails (or reports a NaN) loses its own metrics, not the method's others */
  g_autoptr(GHashTable) probe_errors = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
  json_builder_set_member_name(b, "metrics");
  json_builder_begin_object(b);
  for (guint i = 0; i < s->probes->len; i++) {
    PqPlugin *probe = s->probes->pdata[i];
    const PqOptions *po = s->probe_options ? g_hash_table_lookup(s->probe_options, pq_plugin_name(probe)) : NULL;
    tell_stage("probe %s", pq_plugin_name(probe));
    g_autoptr(GError) perr = NULL;
    g_autoptr(GPtrArray) metrics = pq_probe_run_full(probe, s->backend, s->backend_options, s->model, compressed, s->test, po, s->threads,
                                                      s->max_batch, &perr);
    if (!metrics) {
      g_hash_table_insert(probe_errors, (gpointer)pq_plugin_name(probe), g_strdup(perr->message));
      continue;
    }
    for (guint j = 0; j < metrics->len; j++) add_metric_json(b, metrics->pdata[j]);
  }
  json_builder_end_object(b);
  if (g_hash_table_size(probe_errors)) {
    json_builder_set_member_name(b, "probe_errors");
    json_builder_begin_object(b);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, probe_errors);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      json_builder_set_member_name(b, k);
      json_builder_add_string_value(b, v);
    }
    json_builder_end_object(b);
  }
  json_builder_set_member_name(b, "layers");
  g_autofree char *records = pq_records_to_json(compressed->records);
  g_autoptr(JsonNode) rn = json_from_string(records, NULL);
  json_builder_add_value(b, g_steal_pointer(&rn));
  json_builder_set_member_name(b, "compress_seconds");
  json_builder_add_double_value(b, compress_s);
  json_builder_set_member_name(b, "seconds");
  json_builder_add_double_value(b, (double)(g_get_monotonic_time() - t0) / 1e6);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

static JsonObject *error_row(const char *name, const char *message, double seconds) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "method", name);
  json_object_set_string_member(o, "status", "error");
  json_object_set_string_member(o, "error", message);
  json_object_set_object_member(o, "metrics", json_object_new());
  json_object_set_array_member(o, "layers", json_array_new());
  json_object_set_double_member(o, "seconds", seconds);
  return o;
}

/* Methods already in OUTPUT/results.jsonl (for --resume). */
static GHashTable *load_done(const char *path) {
  GHashTable *done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_object_unref);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, NULL)) return done;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (!**l) continue;
    g_autoptr(JsonNode) n = json_from_string(*l, NULL);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n)) continue; /* a line cut short by a crash: run that method again */
    JsonObject *o = json_node_get_object(n);
    g_autofree char *why = NULL;
    if (!pq_result_row_check(o, &why)) continue; /* not a row as the suite writes it: that method runs again */
    g_hash_table_replace(done, g_strdup(json_object_get_string_member(o, "method")), json_object_ref(o));
  }
  return done;
}

static void progress(const PqBenchSettings *s, guint i, guint n, const char *name, double elapsed, double estimate, const char *state) {
  if (!s->progress) return;
  if (estimate > 0)
    g_printerr("\r\033[K[%u/%u] %-18s %-24s %6.1f s (about %.0f s left)", i + 1, n, name, state, elapsed, estimate);
  else
    g_printerr("\r\033[K[%u/%u] %-18s %-24s %6.1f s", i + 1, n, name, state, elapsed);
}

/* The last complete line the child wrote, if any new one came. */
static void read_stage(int fd, char *stage, size_t len) {
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf - 1)) > 0) {
    buf[n] = 0;
    char *end = strrchr(buf, '\n');
    if (!end) continue;
    *end = 0;
    char *start = strrchr(buf, '\n');
    g_strlcpy(stage, start ? start + 1 : buf, len);
  }
}

GPtrArray *pq_bench_run(const PqBenchSettings *s, GPtrArray *methods, GHashTable *pipelines, GError **error) {
  g_autofree char *log_path = g_build_filename(s->output_dir, "results.jsonl", NULL);
  g_autoptr(GHashTable) done = s->resume ? load_done(log_path) : g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_object_unref);
  if (!s->resume) g_unlink(log_path);
  GPtrArray *results = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  gint64 started = g_get_monotonic_time();
  guint ran = 0;
  for (guint i = 0; i < methods->len; i++) {
    const char *name = methods->pdata[i];
    JsonObject *prev = g_hash_table_lookup(done, name);
    if (prev && !g_strcmp0(json_object_get_string_member_with_default(prev, "status", ""), "ok")) {
      g_ptr_array_add(results, json_object_ref(prev));
      continue;
    }
    g_autofree char *tmp = g_strdup_printf("%s/.method-%u.json", s->output_dir, i);
    g_unlink(tmp);
    fflush(NULL);
    int pipefd[2] = {-1, -1};
    if (s->progress && pipe(pipefd) == 0) fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    gint64 t0 = g_get_monotonic_time();
    pid_t pid = fork();
    if (pid < 0) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INTERNAL, "cannot start a process for method %s: %s", name, g_strerror(errno));
      g_ptr_array_unref(results);
      return NULL;
    }
    if (pid == 0) { /* the child: its result is a file, written whole or not at all */
      if (pipefd[0] >= 0) close(pipefd[0]);
      stage_fd = pipefd[1];
      g_autoptr(GError) cerr = NULL;
      g_autofree char *text = run_method(s, name, g_hash_table_lookup(pipelines, name), &cerr);
      if (!text) {
        JsonObject *o = error_row(name, cerr->message, (double)(g_get_monotonic_time() - t0) / 1e6);
        JsonNode *n = json_node_init_object(json_node_alloc(), o);
        text = json_to_string(n, FALSE);
        json_node_unref(n);
        json_object_unref(o);
      }
      _exit(pq_write_text_atomically(tmp, text, NULL) ? 0 : 3);
    }
    if (pipefd[1] >= 0) close(pipefd[1]);
    char stage[64] = "starting";
    int status = 0;
    gboolean timed_out = FALSE;
    double est = ran ? (double)(g_get_monotonic_time() - started) / 1e6 / ran * (methods->len - i) : 0;
    for (;;) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) break;
      double el = (double)(g_get_monotonic_time() - t0) / 1e6;
      if (s->timeout_s > 0 && el > s->timeout_s) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        timed_out = TRUE;
        break;
      }
      if (pipefd[0] >= 0) read_stage(pipefd[0], stage, sizeof stage);
      progress(s, i, methods->len, name, el, est, stage);
      g_usleep(20000);
    }
    if (pipefd[0] >= 0) close(pipefd[0]);
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    ran++;
    JsonObject *row = NULL;
    g_autofree char *text = NULL;
    if (timed_out) {
      g_autofree char *msg = g_strdup_printf("timed out after %d s (--timeout)", s->timeout_s);
      row = error_row(name, msg, secs);
    } else if (WIFSIGNALED(status)) {
      g_autofree char *msg = g_strdup_printf("crashed: %s (signal %d)", g_strsignal(WTERMSIG(status)), WTERMSIG(status));
      row = error_row(name, msg, secs);
    } else if (g_file_get_contents(tmp, &text, NULL, NULL)) {
      g_autoptr(JsonNode) n = json_from_string(text, NULL);
      row = n && JSON_NODE_HOLDS_OBJECT(n) ? json_object_ref(json_node_get_object(n)) : error_row(name, "unreadable result", secs);
    } else {
      g_autofree char *msg = g_strdup_printf("exited with status %d without a result", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      row = error_row(name, msg, secs);
    }
    g_unlink(tmp);
    /* append as soon as it is known: an interrupted run keeps what it measured */
    JsonNode *rn = json_node_init_object(json_node_alloc(), row);
    g_autofree char *line = json_to_string(rn, FALSE);
    json_node_unref(rn);
    FILE *f = fopen(log_path, "a");
    if (!f || fprintf(f, "%s\n", line) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
      if (f) fclose(f);
      g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: cannot append: %s", log_path, g_strerror(errno));
      json_object_unref(row);
      g_ptr_array_unref(results);
      return NULL;
    }
    fclose(f);
    progress(s, i, methods->len, name, secs, 0, g_strcmp0(json_object_get_string_member(row, "status"), "ok") ? "error" : "done");
    if (s->progress) g_printerr("\n");
    g_ptr_array_add(results, row);
  }
  return results;
}
