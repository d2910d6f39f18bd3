/* options.c — plugin options: a JSON schema declared by the plugin, values checked before any call. */
#include "pq-private.h"

#include <json-glib/json-glib.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK(pq-options-error-quark, pq_options_error)

typedef enum { OPT_INT, OPT_NUMBER, OPT_BOOL, OPT_STRING } OptType;

typedef struct {
  char *key;
  OptType type;
  gboolean has_min, has_max, set, given; /* given: set by pq_options_set, not the schema's default */
  double min, max;
  GPtrArray *choices; /* strings, or NULL */
  int64_t i;
  double f;
  char *s;
} Opt;

struct PqOptions {
  char *owner;
  GPtrArray *opts;        /* Opt* */
  const PqPipeline *chain; /* the pipeline whose stage these options are, or NULL */
};

static void opt_free(gpointer p) {
  Opt *o = p;
  g_free(o->key);
  g_free(o->s);
  if (o->choices) g_ptr_array_unref(o->choices);
  g_free(o);
}

static const char *type_names[] = {"integer", "number", "boolean", "string"};

static Opt *find(const PqOptions *o, const char *key) {
  if (!o) return NULL;
  for (guint i = 0; i < o->opts->len; i++) {
    Opt *x = o->opts->pdata[i];
    if (strcmp(x->key, key) == 0) return x;
  }
  return NULL;
}

#define SCHEMA_FAIL(...)                                                                                           \
  do {                                                                                                             \
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_SCHEMA, __VA_ARGS__);                                    \
    return FALSE;                                                                                                  \
  } while (0)

static gboolean parse_schema(PqOptions *o, const char *schema, GError **error);

/* Keys every compressor stage has; a plugin's own key of the same name wins. */
static const char *layer_selection_schema =
    "{\"include\": {\"type\": \"string\", \"default\": \"*\", \"description\": \"layers to compress: comma-separated name patterns (* and ?)\"},"
    " \"exclude\": {\"type\": \"string\", \"default\": \"\", \"description\": \"layers to leave as they are: name patterns\"},"
    " \"min_params\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 0, \"description\": \"leave layers with fewer weights\"}}";

gboolean pq_options_add_layer_selection(PqOptions *options, GError **error) {
  return parse_schema(options, layer_selection_schema, error);
}

static gboolean parse_schema(PqOptions *o, const char *schema, GError **error) {
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(p, schema, -1, &perr)) SCHEMA_FAIL("%s: options schema is not JSON: %s", o->owner, perr->message);
  JsonNode *root = json_parser_get_root(p);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) SCHEMA_FAIL("%s: options schema must be a JSON object", o->owner);
  JsonObject *obj = json_node_get_object(root);
  g_autoptr(GList) keys = json_object_get_members(obj);
  for (GList *l = keys; l; l = l->next) {
    const char *key = l->data;
    JsonNode *n = json_object_get_member(obj, key);
    if (!JSON_NODE_HOLDS_OBJECT(n)) SCHEMA_FAIL("%s: options schema: \"%s\" must be an object", o->owner, key);
    JsonObject *d = json_node_get_object(n);
    const char *type = json_object_get_string_member_with_default(d, "type", NULL);
    if (find(o, key)) continue; /* already declared (the plugin's own wins) */
    Opt *x = g_new0(Opt, 1);
    x->key = g_strdup(key);
    g_ptr_array_add(o->opts, x);
    int t = -1;
    for (int i = 0; i < 4; i++)
      if (type && strcmp(type, type_names[i]) == 0) t = i;
    if (t < 0) SCHEMA_FAIL("%s: options schema: \"%s\".type must be integer, number, boolean or string", o->owner, key);
    x->type = (OptType)t;
    if (json_object_has_member(d, "minimum")) {
      x->has_min = TRUE;
      x->min = json_object_get_double_member(d, "minimum");
    }
    if (json_object_has_member(d, "maximum")) {
      x->has_max = TRUE;
      x->max = json_object_get_double_member(d, "maximum");
    }
    JsonNode *en = json_object_get_member(d, "enum");
    if (en) {
      if (!JSON_NODE_HOLDS_ARRAY(en) || x->type != OPT_STRING)
        SCHEMA_FAIL("%s: options schema: \"%s\".enum must be an array of strings on a string option", o->owner, key);
      x->choices = g_ptr_array_new_with_free_func(g_free);
      JsonArray *a = json_node_get_array(en);
      for (guint i = 0; i < json_array_get_length(a); i++) {
        const char *s = json_node_get_string(json_array_get_element(a, i));
        if (!s) SCHEMA_FAIL("%s: options schema: \"%s\".enum[%u] is not a string", o->owner, key, i);
        g_ptr_array_add(x->choices, g_strdup(s));
      }
    }
    JsonNode *def = json_object_get_member(d, "default");
    if (def && !JSON_NODE_HOLDS_NULL(def)) {
      if (!JSON_NODE_HOLDS_VALUE(def)) SCHEMA_FAIL("%s: options schema: \"%s\".default must be a plain value", o->owner, key);
      g_autofree char *text = NULL;
      GType vt = json_node_get_value_type(def);
      if (vt == G_TYPE_STRING) text = g_strdup(json_node_get_string(def));
      else if (vt == G_TYPE_INT64) text = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(def));
      else if (vt == G_TYPE_BOOLEAN) text = g_strdup(json_node_get_boolean(def) ? "true" : "false");
      else {
        text = g_malloc(G_ASCII_DTOSTR_BUF_SIZE);
        g_ascii_dtostr(text, G_ASCII_DTOSTR_BUF_SIZE, json_node_get_double(def));
      }
      g_autoptr(GError) derr = NULL;
      if (!pq_options_set(o, key, text, &derr))
        SCHEMA_FAIL("%s: options schema: default of \"%s\" is invalid: %s", o->owner, key, derr->message);
      x->given = FALSE;
    }
  }
  return TRUE;
}

PqOptions *pq_options_new(const char *schema_json, const char *owner, GError **error) {
  PqOptions *o = g_new0(PqOptions, 1);
  o->owner = g_strdup(owner ? owner : "options");
  o->opts = g_ptr_array_new_with_free_func(opt_free);
  if (schema_json && !parse_schema(o, schema_json, error)) {
    pq_options_free(o);
    return NULL;
  }
  return o;
}

void pq_options_free(PqOptions *o) {
  if (!o) return;
  g_free(o->owner);
  g_ptr_array_unref(o->opts);
  g_free(o);
}

#define VALUE_FAIL(...)                                                                                            \
  do {                                                                                                             \
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, __VA_ARGS__);                                     \
    return FALSE;                                                                                                  \
  } while (0)

gboolean pq_options_set(PqOptions *o, const char *key, const char *value, GError **error) {
  g_return_val_if_fail(o && key && value, FALSE);
  Opt *x = find(o, key);
  if (!x) {
    GString *known = g_string_new(NULL);
    for (guint i = 0; i < o->opts->len; i++) g_string_append_printf(known, "%s%s", i ? ", " : "", ((Opt *)o->opts->pdata[i])->key);
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_UNKNOWN_KEY, "%s: unknown option \"%s\" (known: %s)", o->owner,
                key, known->len ? known->str : "none");
    g_string_free(known, TRUE);
    return FALSE;
  }
  char *end = NULL;
  double num = 0;
  switch (x->type) {
  case OPT_INT: {
    errno = 0;
    gint64 v = g_ascii_strtoll(value, &end, 10);
    if (!value[0] || *end || errno) VALUE_FAIL("%s: option \"%s\" must be an integer, not \"%s\"", o->owner, key, value);
    num = (double)v;
    if ((x->has_min && num < x->min) || (x->has_max && num > x->max)) goto range;
    x->i = v;
    x->f = num;
    break;
  }
  case OPT_NUMBER: {
    errno = 0;
    double v = g_ascii_strtod(value, &end);
    if (!value[0] || *end || errno || v != v) VALUE_FAIL("%s: option \"%s\" must be a number, not \"%s\"", o->owner, key, value);
    num = v;
    if ((x->has_min && num < x->min) || (x->has_max && num > x->max)) goto range;
    x->f = v;
    x->i = (int64_t)v;
    break;
  }
  case OPT_BOOL:
    if (!g_ascii_strcasecmp(value, "true") || !strcmp(value, "1") || !g_ascii_strcasecmp(value, "yes")) x->i = 1;
    else if (!g_ascii_strcasecmp(value, "false") || !strcmp(value, "0") || !g_ascii_strcasecmp(value, "no")) x->i = 0;
    else VALUE_FAIL("%s: option \"%s\" must be true or false, not \"%s\"", o->owner, key, value);
    x->f = (double)x->i;
    break;
  case OPT_STRING:
    if (x->choices) {
      gboolean ok = FALSE;
      for (guint i = 0; i < x->choices->len; i++) ok |= strcmp(x->choices->pdata[i], value) == 0;
      if (!ok) {
        g_autoptr(GString) list = g_string_new(NULL);
        for (guint i = 0; i < x->choices->len; i++) g_string_append_printf(list, "%s%s", i ? ", " : "", (char *)x->choices->pdata[i]);
        VALUE_FAIL("%s: option \"%s\" must be one of %s, not \"%s\"", o->owner, key, list->str, value);
      }
    }
    g_free(x->s);
    x->s = g_strdup(value);
    break;
  }
  x->set = x->given = TRUE;
  return TRUE;
range:
  if (x->has_min && x->has_max)
    VALUE_FAIL("%s: option \"%s\" = %s is out of range [%g, %g]", o->owner, key, value, x->min, x->max);
  else if (x->has_min)
    VALUE_FAIL("%s: option \"%s\" = %s is below the minimum %g", o->owner, key, value, x->min);
  VALUE_FAIL("%s: option \"%s\" = %s is above the maximum %g", o->owner, key, value, x->max);
}

int pq_options_has(const PqOptions *o, const char *key) {
  Opt *x = find(o, key);
  return x && x->set;
}
int pq_options_given(const PqOptions *o, const char *key) {
  Opt *x = find(o, key);
  return x && x->given;
}

void pq_options_set_chain(PqOptions *o, const PqPipeline *chain) { o->chain = chain; }
const PqPipeline *pq_options_chain(const PqOptions *o) { return o ? o->chain : NULL; }

int64_t pq_options_get_int(const PqOptions *o, const char *key, int64_t fallback) {
  Opt *x = find(o, key);
  return x && x->set && x->type != OPT_STRING ? x->i : fallback;
}
double pq_options_get_float(const PqOptions *o, const char *key, double fallback) {
  Opt *x = find(o, key);
  return x && x->set && x->type != OPT_STRING ? x->f : fallback;
}
int pq_options_get_bool(const PqOptions *o, const char *key, int fallback) {
  Opt *x = find(o, key);
  return x && x->set && x->type == OPT_BOOL ? (int)x->i : fallback;
}
const char *pq_options_get_string(const PqOptions *o, const char *key, const char *fallback) {
  Opt *x = find(o, key);
  return x && x->set && x->type == OPT_STRING ? x->s : fallback;
}

char **pq_options_choices(const PqOptions *o, const char *key) {
  Opt *x = find(o, key);
  if (!x || !x->choices) return NULL;
  char **v = g_new0(char *, x->choices->len + 1);
  for (guint i = 0; i < x->choices->len; i++) v[i] = g_strdup(x->choices->pdata[i]);
  return v;
}

char *pq_options_schema_summary(const char *schema_json) {
  if (!schema_json) return g_strdup("no options");
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) o = pq_options_new(schema_json, "schema", &err);
  if (!o) return g_strdup_printf("invalid schema: %s", err->message);
  if (o->opts->len == 0) return g_strdup("no options");
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < o->opts->len; i++) {
    Opt *x = o->opts->pdata[i];
    g_string_append_printf(s, "%s%s (%s", i ? ", " : "", x->key, type_names[x->type]);
    if (x->has_min || x->has_max) {
      g_string_append(s, ", ");
      if (x->has_min) g_string_append_printf(s, "%g", x->min);
      g_string_append(s, "..");
      if (x->has_max) g_string_append_printf(s, "%g", x->max);
    }
    if (x->choices) {
      g_string_append(s, ", one of");
      for (guint j = 0; j < x->choices->len; j++) g_string_append_printf(s, "%s%s", j ? "|" : " ", (char *)x->choices->pdata[j]);
    }
    if (x->set) {
      if (x->type == OPT_STRING) g_string_append_printf(s, ", default %s", x->s);
      else if (x->type == OPT_BOOL) g_string_append_printf(s, ", default %s", x->i ? "true" : "false");
      else if (x->type == OPT_INT) g_string_append_printf(s, ", default %" G_GINT64_FORMAT, x->i);
      else g_string_append_printf(s, ", default %g", x->f);
    }
    g_string_append_c(s, ')');
  }
  return g_string_free(s, FALSE);
}

/* The options given (not the schema's defaults): what a chain file says, so that a stage reading a later
 * stage's settings for an option left unset (equalize awq) still does so when the file is loaded again. */
void pq_options_to_json(const PqOptions *o, JsonBuilder *b) {
  json_builder_begin_object(b);
  for (guint i = 0; o && i < o->opts->len; i++) {
    const Opt *x = o->opts->pdata[i];
    if (!x->given) continue;
    json_builder_set_member_name(b, x->key);
    switch (x->type) {
    case OPT_INT: json_builder_add_int_value(b, x->i); break;
    case OPT_NUMBER: json_builder_add_double_value(b, x->f); break;
    case OPT_BOOL: json_builder_add_boolean_value(b, x->i != 0); break;
    case OPT_STRING: json_builder_add_string_value(b, x->s); break;
    }
  }
  json_builder_end_object(b);
}

char *pq_options_describe(const PqOptions *o) {
  GString *s = g_string_new(NULL);
  for (guint i = 0; o && i < o->opts->len; i++) {
    const Opt *x = o->opts->pdata[i];
    if (!x->set) continue;
    if (s->len) g_string_append(s, ", ");
    switch (x->type) {
    case OPT_INT: g_string_append_printf(s, "%s=%" G_GINT64_FORMAT, x->key, (gint64)x->i); break;
    case OPT_NUMBER: g_string_append_printf(s, "%s=%g", x->key, x->f); break;
    case OPT_BOOL: g_string_append_printf(s, "%s=%s", x->key, x->i ? "true" : "false"); break;
    case OPT_STRING: g_string_append_printf(s, "%s=%s", x->key, x->s); break;
    }
  }
  return g_string_free(s, FALSE);
}
