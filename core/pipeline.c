/* pipeline.c — a chain of compressor stages with validated options, run one after another. */
#include "pq-private.h"

#include <json-glib/json-glib.h>
#include <string.h>

typedef struct {
  PqPlugin *plugin;
  PqOptions *options;
} Stage;

struct PqPipeline {
  PqRegistry *registry;
  GArray *stages; /* Stage */
  const PqDataset *calibration;
  gint64 max_samples;
  guint first_stage; /* the number its first stage has in records and messages */
};

static void stage_clear(gpointer p) { pq_options_free(((Stage *)p)->options); }

PqPipeline *pq_pipeline_new(PqRegistry *registry) {
  PqPipeline *p = g_new0(PqPipeline, 1);
  p->registry = registry;
  p->first_stage = 1;
  p->stages = g_array_new(FALSE, TRUE, sizeof(Stage));
  g_array_set_clear_func(p->stages, stage_clear);
  return p;
}

void pq_pipeline_free(PqPipeline *p) {
  if (!p) return;
  g_array_unref(p->stages);
  g_free(p);
}

guint pq_pipeline_n_stages(const PqPipeline *p) { return p->stages->len; }
void pq_pipeline_set_first_stage(PqPipeline *p, guint first) { p->first_stage = first ? first : 1; }
PqPlugin *pq_pipeline_stage_plugin(const PqPipeline *p, guint i) { return i < p->stages->len ? g_array_index(p->stages, Stage, i).plugin : NULL; }

gboolean pq_pipeline_remove_stage(PqPipeline *p, guint i) {
  if (i >= p->stages->len) return FALSE;
  g_array_remove_index(p->stages, i); /* clears its options */
  return TRUE;
}

gboolean pq_pipeline_add_stage(PqPipeline *p, PqPlugin *plugin, GError **error) {
  if (pq_plugin_kind(plugin) != PQ_KIND_COMPRESSOR) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "plugin '%s' is a %s, not a compressor", pq_plugin_name(plugin),
                pq_plugin_kind_name(pq_plugin_kind(plugin)));
    return FALSE;
  }
  PqOptions *o = pq_options_new(pq_plugin_options_schema(plugin), pq_plugin_name(plugin), error);
  if (!o) return FALSE;
  if (!pq_options_add_layer_selection(o, error)) {
    pq_options_free(o);
    return FALSE;
  }
  pq_options_set_chain(o, p);
  Stage s = {plugin, o};
  g_array_append_val(p->stages, s);
  return TRUE;
}

const PqOptions *pq_options_later_stage(const PqOptions *options, const char *plugin, int *stage) {
  const PqPipeline *p = pq_options_chain(options);
  if (stage) *stage = 0;
  if (!p || !plugin) return NULL;
  gboolean after = FALSE;
  for (guint i = 0; i < p->stages->len; i++) {
    const Stage *s = &g_array_index(p->stages, Stage, i);
    if (after && !strcmp(pq_plugin_name(s->plugin), plugin)) {
      if (stage) *stage = (int)(p->first_stage + i);
      return s->options;
    }
    after = after || s->options == options;
  }
  return NULL;
}

gboolean pq_pipeline_set_option(PqPipeline *p, const char *target, const char *key, const char *value, GError **error) {
  char *end = NULL;
  guint64 n = g_ascii_strtoull(target, &end, 10);
  gboolean by_number = target[0] && !*end;
  guint hits = 0;
  for (guint i = 0; i < p->stages->len; i++) {
    Stage *s = &g_array_index(p->stages, Stage, i);
    if (by_number ? n != i + 1 : strcmp(pq_plugin_name(s->plugin), target) != 0) continue;
    if (!pq_options_set(s->options, key, value, error)) return FALSE;
    hits++;
  }
  if (!hits) {
    GString *names = g_string_new(NULL);
    for (guint i = 0; i < p->stages->len; i++)
      g_string_append_printf(names, "%s%u %s", i ? ", " : "", i + 1, pq_plugin_name(g_array_index(p->stages, Stage, i).plugin));
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_UNKNOWN_KEY, "option %s.%s: no stage '%s' in the chain (stages: %s)",
                target, key, target, names->len ? names->str : "none");
    g_string_free(names, TRUE);
    return FALSE;
  }
  return TRUE;
}

gboolean pq_pipeline_parse_option(PqPipeline *p, const char *assignment, GError **error) {
  const char *eq = strchr(assignment, '=');
  const char *dot = strchr(assignment, '.');
  if (!eq || !dot || dot > eq || dot == assignment || eq == dot + 1) {
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "option '%s' must read PLUGIN.KEY=VALUE (or STAGE.KEY=VALUE)",
                assignment);
    return FALSE;
  }
  g_autofree char *target = g_strndup(assignment, (gsize)(dot - assignment));
  g_autofree char *key = g_strndup(dot + 1, (gsize)(eq - dot - 1));
  return pq_pipeline_set_option(p, target, key, eq + 1, error);
}

void pq_pipeline_set_calibration(PqPipeline *p, const PqDataset *set, gint64 max_samples) {
  p->calibration = set;
  p->max_samples = max_samples > 0 ? max_samples : 512;
}

static char *json_value_text(JsonNode *v) {
  if (!JSON_NODE_HOLDS_VALUE(v)) return NULL;
  GType t = json_node_get_value_type(v);
  if (t == G_TYPE_STRING) return g_strdup(json_node_get_string(v));
  if (t == G_TYPE_INT64) return g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(v));
  if (t == G_TYPE_BOOLEAN) return g_strdup(json_node_get_boolean(v) ? "true" : "false");
  char *buf = g_malloc(G_ASCII_DTOSTR_BUF_SIZE);
  return g_ascii_dtostr(buf, G_ASCII_DTOSTR_BUF_SIZE, json_node_get_double(v));
}

#define CFG_FAIL(...)                                                                                              \
  do {                                                                                                             \
    g_autofree char *m_ = g_strdup_printf(__VA_ARGS__);                                                            \
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "%s: %s", path, m_);                              \
    return FALSE;                                                                                                  \
  } while (0)

gboolean pq_pipeline_load_config(PqPipeline *p, const char *path, GError **error) {
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_file(parser, path, &perr)) CFG_FAIL("%s", perr->message);
  JsonNode *root = json_parser_get_root(parser);
  JsonObject *obj = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *sn = obj ? json_object_get_member(obj, "stages") : NULL;
  if (!sn || !JSON_NODE_HOLDS_ARRAY(sn)) CFG_FAIL("needs a \"stages\" array");
  JsonArray *arr = json_node_get_array(sn);
  for (guint i = 0; i < json_array_get_length(arr); i++) {
    JsonNode *e = json_array_get_element(arr, i);
    JsonObject *so = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    JsonNode *pn = so ? json_object_get_member(so, "plugin") : NULL;
    const char *name = pq_json_holds(pn, G_TYPE_STRING) ? json_node_get_string(pn) : NULL;
    if (!name) CFG_FAIL("stages[%u]: needs a \"plugin\" (a registry name or a .so path)", i);
    g_autoptr(GError) lerr = NULL;
    PqPlugin *plugin = strchr(name, '/') || g_str_has_suffix(name, ".so") ? pq_registry_load(p->registry, name, &lerr)
                                                                          : pq_registry_find(p->registry, name, PQ_KIND_COMPRESSOR, &lerr);
    if (!plugin) CFG_FAIL("stages[%u]: %s", i, lerr->message);
    if (!pq_pipeline_add_stage(p, plugin, &lerr)) CFG_FAIL("stages[%u]: %s", i, lerr->message);
    Stage *s = &g_array_index(p->stages, Stage, p->stages->len - 1);
    JsonNode *on = json_object_get_member(so, "options");
    if (!on) continue;
    if (!JSON_NODE_HOLDS_OBJECT(on)) CFG_FAIL("stages[%u].options must be an object", i);
    JsonObject *oo = json_node_get_object(on);
    g_autoptr(GList) keys = json_object_get_members(oo);
    for (GList *l = keys; l; l = l->next) {
      g_autofree char *text = json_value_text(json_object_get_member(oo, l->data));
      if (!text) CFG_FAIL("stages[%u].options.%s must be a string, number or boolean", i, (const char *)l->data);
      if (!pq_options_set(s->options, l->data, text, &lerr)) CFG_FAIL("stages[%u]: %s", i, lerr->message);
    }
  }
  return TRUE;
}

char *pq_pipeline_to_json(const PqPipeline *p) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_array(b);
  for (guint i = 0; i < p->stages->len; i++) {
    const Stage *s = &g_array_index(p->stages, Stage, i);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "plugin");
    json_builder_add_string_value(b, pq_plugin_name(s->plugin));
    json_builder_set_member_name(b, "options");
    pq_options_to_json(s->options, b);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  return json_generator_to_data(gen, NULL);
}

PqModel *pq_pipeline_run(PqPipeline *p, const PqModel *model, GError **error) {
  return pq_pipeline_run_from(p, model, model, error);
}

static PqModel *run_stages(PqPipeline *p, const PqModel *model, const PqModel *original, guint n_stages, GError **error);

PqModel *pq_pipeline_run_from(PqPipeline *p, const PqModel *model, const PqModel *original, GError **error) {
  return run_stages(p, model, original, p->stages->len, error);
}

PqModel *pq_pipeline_run_head(PqPipeline *p, const PqModel *model, guint n_stages, GError **error) {
  return run_stages(p, model, model, MIN(n_stages, p->stages->len), error);
}

static PqModel *run_stages(PqPipeline *p, const PqModel *model, const PqModel *original, guint n_stages, GError **error) {
  if (!original) original = model;
  if (n_stages == 0) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, p->stages->len ? "no stage to run (0 of the chain's stages asked)" : "the chain has no compressor stage");
    return NULL;
  }
  PqPlugin *cpu = p->registry ? pq_registry_find(p->registry, "cpu", PQ_KIND_BACKEND, NULL) : NULL;
  g_autoptr(PqModel) cur = pq_model_ref((PqModel *)model);
  /* what later stages compare with: the model given, or the result of the exact stages the chain starts with
     (equalize: the same function, but values inside it scaled, which bias_correct must match) */
  g_autoptr(PqModel) reference = pq_model_ref((PqModel *)original);
  gboolean leading = original == model;
  for (guint i = 0; i < n_stages; i++) {
    Stage *s = &g_array_index(p->stages, Stage, i);
    g_autoptr(GError) err = NULL;
    PqModel *next = pq_compressor_run_chained(s->plugin, cur, reference, s->options, p->calibration,
                                              p->max_samples, cpu, &err);
    if (!next) {
      g_set_error(error, err->domain, err->code, "stage %u (%s): %s", p->first_stage + i, pq_plugin_name(s->plugin), err->message);
      return NULL;
    }
    pq_records_set_stage(next->records, (int)(p->first_stage + i));
    leading = leading && pq_plugin_exact(s->plugin);
    if (leading) { /* every stage so far exact */
      pq_model_unref(reference);
      reference = pq_model_ref(next);
    }
    pq_model_unref(cur);
    cur = next;
  }
  return g_steal_pointer(&cur);
}
