/* records.c — what each compressor stage did to each layer, kept with the model (and in its file). */
#include "pq-private.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pq_record_free(gpointer p) {
  PqLayerRecord *r = p;
  g_free(r->method);
  g_free(r->layer);
  g_free(r->detail);
  g_free(r);
}

static PqLayerRecord *record_dup(const PqLayerRecord *r) {
  PqLayerRecord *c = g_memdup2(r, sizeof *r);
  c->method = g_strdup(r->method);
  c->layer = g_strdup(r->layer);
  c->detail = g_strdup(r->detail);
  return c;
}

void pq_records_copy(GPtrArray *dst, const GPtrArray *src) {
  for (guint i = 0; i < src->len; i++) g_ptr_array_add(dst, record_dup(src->pdata[i]));
}

void pq_records_set_stage(GPtrArray *records, int stage) {
  for (guint i = 0; i < records->len; i++) {
    PqLayerRecord *r = records->pdata[i];
    if (r->stage == 0) r->stage = stage;
  }
}

void pq_model_record_layer(PqModel *m, const char *method, const char *layer, const char *detail, int64_t params_before,
                           int64_t params_after, int64_t bytes_before, int64_t bytes_after, double rel_error,
                           double sqnr_db) {
  g_return_if_fail(m && method && layer);
  PqLayerRecord *r = g_new0(PqLayerRecord, 1);
  r->method = g_strdup(method);
  r->layer = g_strdup(layer);
  r->detail = g_strdup(detail ? detail : "");
  r->params_before = params_before;
  r->params_after = params_after;
  r->bytes_before = bytes_before;
  r->bytes_after = bytes_after;
  r->rel_error = rel_error;
  r->sqnr_db = sqnr_db;
  g_ptr_array_add(m->records, r);
}

void pq_model_record_skip(PqModel *m, const char *method, const char *layer, const char *reason) {
  g_return_if_fail(m && method && layer);
  PqLayerRecord *r = g_new0(PqLayerRecord, 1);
  r->method = g_strdup(method);
  r->layer = g_strdup(layer);
  r->detail = g_strdup(reason ? reason : "");
  r->skipped = TRUE;
  r->rel_error = r->sqnr_db = NAN;
  g_ptr_array_add(m->records, r);
}

guint pq_model_n_records(const PqModel *m) { return m->records->len; }
const PqLayerRecord *pq_model_record(const PqModel *m, guint i) { return i < m->records->len ? m->records->pdata[i] : NULL; }

void pq_error_stats(const float *ref, const float *approx, int64_t n, double *rel_error, double *sqnr_db) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)ref[i] - (double)approx[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  if (rel_error) *rel_error = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
  if (sqnr_db) *sqnr_db = num > 0 ? 10 * log10(den / num) : INFINITY;
}

static gboolean match_any(const char *patterns, const char *name) {
  if (!patterns || !patterns[0]) return FALSE;
  g_auto(GStrv) parts = g_strsplit(patterns, ",", -1);
  for (char **p = parts; *p; p++) {
    g_strstrip(*p);
    if ((*p)[0] && g_pattern_match_simple(*p, name)) return TRUE;
  }
  return FALSE;
}

int pq_options_layer_selected(const PqOptions *o, const char *layer, int64_t n_params) {
  const char *inc = pq_options_get_string(o, "include", "*");
  const char *exc = pq_options_get_string(o, "exclude", "");
  return match_any(inc, layer) && !match_any(exc, layer) && n_params >= pq_options_get_int(o, "min_params", 0);
}

PqTensor *pq_layer_weight(PqModel *m, const PqNode *node, const PqOptions *o, const char *method, const char *packed_hint) {
  if (node->inputs->len < 2) return NULL;
  PqTensor *w = pq_model_tensor(m, node->inputs->pdata[1]);
  if (!w) return NULL; /* a computed operand, not a weight */
  if (!pq_options_layer_selected(o, node->name, w->numel)) {
    pq_model_record_skip(m, method, node->name, "not selected (include, exclude, min_params)");
    return NULL;
  }
  if (w->dtype != PQ_DTYPE_F32 && w->dtype != PQ_DTYPE_F16 && w->dtype != PQ_DTYPE_BF16) {
    g_autofree char *why = w->dtype == PQ_DTYPE_PACKED && packed_hint
                               ? g_strdup_printf("weight '%s' is packed: %s", w->name, packed_hint)
                               : g_strdup_printf("weight '%s' is %s, not floating point", w->name,
                                                 w->dtype == PQ_DTYPE_PACKED ? "packed" : pq_dtype_name(w->dtype));
    pq_model_record_skip(m, method, node->name, why);
    return NULL;
  }
  return w;
}

int pq_layer_linear_only(PqModel *m, const PqNode *node, const PqOptions *o, const char *method) {
  if (strcmp(node->op, "conv2d") != 0) return 0;
  if (pq_layer_weight(m, node, o, method, NULL)) {
    g_autofree char *why = g_strdup_printf("a convolution: %s compresses linear layers (tucker, cp, low_rank and quant take convolutions)", method);
    pq_model_record_skip(m, method, node->name, why);
  }
  return 1;
}

float *pq_layer_weight_f32(const PqNode *node, const PqTensor *w, PqPluginError *error) {
  float *f = malloc(sizeof(float) * (size_t)MAX(w->numel, 1)); /* plain malloc: plugins free() it */
  if (!f) {
    pq_plugin_error_set(error, PQ_ERR_NOMEM, "layer '%s': out of memory for weight '%s'", node->name, w->name);
    return NULL;
  }
  pq_tensor_to_f32(w, f);
  if (pq_first_non_finite(f, w->numel) >= 0) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': weight '%s' holds NaN or infinite values", node->name, w->name);
    free(f);
    return NULL;
  }
  return f;
}

/* JSON numbers cannot be NaN or infinite: those are written as null. */
static void add_num(JsonBuilder *b, const char *key, double v) {
  json_builder_set_member_name(b, key);
  if (isfinite(v)) json_builder_add_double_value(b, v);
  else json_builder_add_null_value(b);
}

char *pq_records_to_json(const GPtrArray *records) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_array(b);
  for (guint i = 0; i < records->len; i++) {
    const PqLayerRecord *r = records->pdata[i];
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "stage");
    json_builder_add_int_value(b, r->stage);
    json_builder_set_member_name(b, "method");
    json_builder_add_string_value(b, r->method);
    json_builder_set_member_name(b, "layer");
    json_builder_add_string_value(b, r->layer);
    json_builder_set_member_name(b, "skipped");
    json_builder_add_boolean_value(b, r->skipped);
    json_builder_set_member_name(b, "detail");
    json_builder_add_string_value(b, r->detail);
    if (!r->skipped) {
      const char *keys[4] = {"params_before", "params_after", "bytes_before", "bytes_after"};
      const gint64 vals[4] = {r->params_before, r->params_after, r->bytes_before, r->bytes_after};
      for (int k = 0; k < 4; k++) {
        json_builder_set_member_name(b, keys[k]);
        json_builder_add_int_value(b, vals[k]);
      }
      add_num(b, "rel_error", r->rel_error);
      add_num(b, "sqnr_db", r->sqnr_db);
    }
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

static double get_num(JsonObject *o, const char *key) {
  JsonNode *n = json_object_get_member(o, key);
  return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_double(n) : NAN;
}

gboolean pq_records_from_json(GPtrArray *records, const char *json, GError **error) {
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(p, json, -1, &perr) || !JSON_NODE_HOLDS_ARRAY(json_parser_get_root(p))) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "must be a JSON array of layer records");
    return FALSE;
  }
  JsonArray *a = json_node_get_array(json_parser_get_root(p));
  for (guint i = 0; i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    const char *method = o ? json_object_get_string_member_with_default(o, "method", NULL) : NULL;
    const char *layer = o ? json_object_get_string_member_with_default(o, "layer", NULL) : NULL;
    if (!method || !layer) {
      g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "record %u needs \"method\" and \"layer\" strings", i);
      return FALSE;
    }
    PqLayerRecord *r = g_new0(PqLayerRecord, 1);
    r->stage = (int)json_object_get_int_member_with_default(o, "stage", 0);
    r->method = g_strdup(method);
    r->layer = g_strdup(layer);
    r->detail = g_strdup(json_object_get_string_member_with_default(o, "detail", ""));
    r->skipped = json_object_get_boolean_member_with_default(o, "skipped", FALSE);
    r->params_before = json_object_get_int_member_with_default(o, "params_before", 0);
    r->params_after = json_object_get_int_member_with_default(o, "params_after", 0);
    r->bytes_before = json_object_get_int_member_with_default(o, "bytes_before", 0);
    r->bytes_after = json_object_get_int_member_with_default(o, "bytes_after", 0);
    r->rel_error = get_num(o, "rel_error");
    r->sqnr_db = get_num(o, "sqnr_db");
    g_ptr_array_add(records, r);
  }
  return TRUE;
}
