/* graph.c — the graph IR: nodes with op, inputs, outputs and attributes; JSON form; shape inference. */
#include "pq-private.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

G_DEFINE_QUARK(pq-graph-error-quark, pq_graph_error)

static void attr_free(gpointer p) {
  PqAttr *a = p;
  g_free(a->key);
  g_free(a->s);
  if (a->ints) g_array_unref(a->ints);
  g_free(a);
}

static void input_free(gpointer p) {
  PqGraphInput *in = p;
  g_free(in->name);
  g_free(in);
}

void pq_node_free(PqNode *node) {
  if (!node) return;
  g_free(node->op);
  g_free(node->name);
  g_ptr_array_unref(node->inputs);
  g_ptr_array_unref(node->outputs);
  g_ptr_array_unref(node->attrs);
  g_free(node);
}

PqGraph *pq_graph_new(void) {
  PqGraph *g = g_new0(PqGraph, 1);
  g->nodes = g_ptr_array_new_with_free_func((GDestroyNotify)pq_node_free);
  g->inputs = g_ptr_array_new_with_free_func(input_free);
  g->outputs = g_ptr_array_new_with_free_func(g_free);
  return g;
}

void pq_graph_free(PqGraph *graph) {
  if (!graph) return;
  g_ptr_array_unref(graph->nodes);
  g_ptr_array_unref(graph->inputs);
  g_ptr_array_unref(graph->outputs);
  g_free(graph);
}

PqGraph *pq_graph_copy(const PqGraph *src) {
  PqGraph *g = pq_graph_new();
  for (guint i = 0; i < src->inputs->len; i++) {
    const PqGraphInput *in = src->inputs->pdata[i];
    pq_graph_add_input(g, in->name, in->ndim, in->shape);
  }
  for (guint i = 0; i < src->outputs->len; i++) pq_graph_add_output(g, src->outputs->pdata[i]);
  for (guint i = 0; i < src->nodes->len; i++) {
    const PqNode *n = src->nodes->pdata[i];
    PqNode *c = pq_graph_add_node(g, n->op, n->name, n->inputs->len, (const char *const *)n->inputs->pdata,
                                  n->outputs->len, (const char *const *)n->outputs->pdata);
    for (guint j = 0; j < n->attrs->len; j++) {
      const PqAttr *a = n->attrs->pdata[j];
      switch (a->type) {
      case PQ_ATTR_INT: pq_node_set_int(c, a->key, a->i); break;
      case PQ_ATTR_FLOAT: pq_node_set_float(c, a->key, a->f); break;
      case PQ_ATTR_STRING: pq_node_set_string(c, a->key, a->s); break;
      case PQ_ATTR_INTS: pq_node_set_ints(c, a->key, a->ints->len, (const int64_t *)(void *)a->ints->data); break;
      }
    }
  }
  return g;
}

PqNode *pq_graph_add_node(PqGraph *graph, const char *op, const char *name, size_t n_inputs,
                          const char *const *inputs, size_t n_outputs, const char *const *outputs) {
  g_return_val_if_fail(graph && op, NULL);
  PqNode *n = g_new0(PqNode, 1);
  n->op = g_strdup(op);
  n->name = g_strdup(name ? name : "");
  n->inputs = g_ptr_array_new_with_free_func(g_free);
  n->outputs = g_ptr_array_new_with_free_func(g_free);
  n->attrs = g_ptr_array_new_with_free_func(attr_free);
  for (size_t i = 0; i < n_inputs; i++) g_ptr_array_add(n->inputs, g_strdup(inputs[i] ? inputs[i] : ""));
  for (size_t i = 0; i < n_outputs; i++) g_ptr_array_add(n->outputs, g_strdup(outputs[i]));
  g_ptr_array_add(graph->nodes, n);
  return n;
}

size_t pq_graph_value_readers(const PqGraph *g, const char *value, PqNode **first, int *is_output) {
  g_return_val_if_fail(g && value, 0);
  size_t n = 0;
  if (first) *first = NULL;
  for (guint i = 0; i < g->nodes->len; i++) {
    PqNode *node = g->nodes->pdata[i];
    for (guint j = 0; j < node->inputs->len; j++)
      if (!strcmp(node->inputs->pdata[j], value) && !n++ && first) *first = node;
  }
  if (is_output) {
    *is_output = 0;
    for (guint i = 0; i < g->outputs->len && !*is_output; i++) *is_output = !strcmp(g->outputs->pdata[i], value);
  }
  return n;
}

PqNode *pq_graph_value_producer(const PqGraph *g, const char *value) {
  g_return_val_if_fail(g && value, NULL);
  for (guint i = 0; i < g->nodes->len; i++) {
    PqNode *node = g->nodes->pdata[i];
    for (guint j = 0; j < node->outputs->len; j++)
      if (!strcmp(node->outputs->pdata[j], value)) return node;
  }
  return NULL;
}

int pq_graph_remove_node(PqGraph *graph, PqNode *node) {
  g_return_val_if_fail(graph && node, 0);
  return g_ptr_array_remove(graph->nodes, node) ? 1 : 0;
}

void pq_graph_add_input(PqGraph *graph, const char *name, int ndim, const int64_t *shape) {
  g_return_if_fail(graph && name && ndim >= 0 && ndim <= PQ_MAX_DIMS);
  PqGraphInput *in = g_new0(PqGraphInput, 1);
  in->name = g_strdup(name);
  in->ndim = ndim;
  if (ndim) memcpy(in->shape, shape, sizeof(int64_t) * (size_t)ndim);
  g_ptr_array_add(graph->inputs, in);
}

void pq_graph_add_output(PqGraph *graph, const char *name) {
  g_return_if_fail(graph && name);
  g_ptr_array_add(graph->outputs, g_strdup(name));
}

size_t pq_graph_n_nodes(const PqGraph *g) { return g->nodes->len; }
PqNode *pq_graph_node(const PqGraph *g, size_t i) { return i < g->nodes->len ? g->nodes->pdata[i] : NULL; }
size_t pq_graph_n_inputs(const PqGraph *g) { return g->inputs->len; }
const char *pq_graph_input_name(const PqGraph *g, size_t i) {
  return i < g->inputs->len ? ((PqGraphInput *)g->inputs->pdata[i])->name : NULL;
}
int pq_graph_input_index(const PqGraph *g, const char *name) {
  for (guint i = 0; name && i < g->inputs->len; i++)
    if (!strcmp(((PqGraphInput *)g->inputs->pdata[i])->name, name)) return (int)i;
  return -1;
}
const int64_t *pq_graph_input_shape(const PqGraph *g, size_t i, int *ndim) {
  if (i >= g->inputs->len) return NULL;
  PqGraphInput *in = g->inputs->pdata[i];
  if (ndim) *ndim = in->ndim;
  return in->shape;
}
size_t pq_graph_n_outputs(const PqGraph *g) { return g->outputs->len; }
const char *pq_graph_output_name(const PqGraph *g, size_t i) {
  return i < g->outputs->len ? g->outputs->pdata[i] : NULL;
}

const char *pq_node_op(const PqNode *n) { return n->op; }
const char *pq_node_name(const PqNode *n) { return n->name; }
size_t pq_node_n_inputs(const PqNode *n) { return n->inputs->len; }
const char *pq_node_input(const PqNode *n, size_t i) { return i < n->inputs->len ? n->inputs->pdata[i] : NULL; }
size_t pq_node_n_outputs(const PqNode *n) { return n->outputs->len; }
const char *pq_node_output(const PqNode *n, size_t i) { return i < n->outputs->len ? n->outputs->pdata[i] : NULL; }

void pq_node_set_input(PqNode *n, size_t i, const char *name) {
  while (n->inputs->len <= i) g_ptr_array_add(n->inputs, g_strdup(""));
  g_free(n->inputs->pdata[i]);
  n->inputs->pdata[i] = g_strdup(name ? name : "");
}

void pq_node_set_output(PqNode *n, size_t i, const char *name) {
  g_return_if_fail(name && name[0]);
  while (n->outputs->len <= i) g_ptr_array_add(n->outputs, g_strdup(""));
  g_free(n->outputs->pdata[i]);
  n->outputs->pdata[i] = g_strdup(name);
}

void pq_node_set_op(PqNode *n, const char *op) {
  g_return_if_fail(op && op[0]);
  g_free(n->op);
  n->op = g_strdup(op);
}

static PqAttr *attr_find(const PqNode *n, const char *key) {
  for (guint i = 0; i < n->attrs->len; i++) {
    PqAttr *a = n->attrs->pdata[i];
    if (strcmp(a->key, key) == 0) return a;
  }
  return NULL;
}

static PqAttr *attr_reset(PqNode *n, const char *key, PqAttrType type) {
  PqAttr *a = attr_find(n, key);
  if (!a) {
    a = g_new0(PqAttr, 1);
    a->key = g_strdup(key);
    g_ptr_array_add(n->attrs, a);
  }
  g_clear_pointer(&a->s, g_free);
  g_clear_pointer(&a->ints, g_array_unref);
  a->type = type;
  return a;
}

void pq_node_set_int(PqNode *n, const char *key, int64_t v) { attr_reset(n, key, PQ_ATTR_INT)->i = v; }
void pq_node_set_float(PqNode *n, const char *key, double v) { attr_reset(n, key, PQ_ATTR_FLOAT)->f = v; }
void pq_node_set_string(PqNode *n, const char *key, const char *v) {
  attr_reset(n, key, PQ_ATTR_STRING)->s = g_strdup(v ? v : "");
}
void pq_node_set_ints(PqNode *n, const char *key, size_t count, const int64_t *v) {
  PqAttr *a = attr_reset(n, key, PQ_ATTR_INTS);
  a->ints = g_array_sized_new(FALSE, FALSE, sizeof(int64_t), (guint)count);
  g_array_append_vals(a->ints, v, (guint)count);
}
int pq_layer_bias_input(const PqNode *n) {
  const char *op = n->op;
  if (!strcmp(op, "linear") || !strcmp(op, "conv2d") || !strcmp(op, "conv_transpose2d") || !strcmp(op, "circulant_linear")) return 2;
  if (!strcmp(op, "sparse_linear")) return 4;
  if (!strcmp(op, "tt_linear")) {
    int64_t d = pq_node_get_int(n, "cores", -1);
    return d >= 1 && d <= 64 ? (int)(1 + d) : -1;
  }
  return -1;
}
const char *pq_layer_bias(const PqNode *n) {
  int slot = pq_layer_bias_input(n);
  return slot >= 0 && (guint)slot < n->inputs->len ? (const char *)n->inputs->pdata[slot] : "";
}
int pq_node_has_attr(const PqNode *n, const char *key) { return attr_find(n, key) != NULL; }
int64_t pq_node_get_int(const PqNode *n, const char *key, int64_t fallback) {
  PqAttr *a = attr_find(n, key);
  return a && a->type == PQ_ATTR_INT ? a->i : fallback;
}
double pq_node_get_float(const PqNode *n, const char *key, double fallback) {
  PqAttr *a = attr_find(n, key);
  if (!a) return fallback;
  if (a->type == PQ_ATTR_FLOAT) return a->f;
  if (a->type == PQ_ATTR_INT) return (double)a->i;
  return fallback;
}
const char *pq_node_get_string(const PqNode *n, const char *key, const char *fallback) {
  PqAttr *a = attr_find(n, key);
  return a && a->type == PQ_ATTR_STRING ? a->s : fallback;
}
const int64_t *pq_node_get_ints(const PqNode *n, const char *key, size_t *count) {
  PqAttr *a = attr_find(n, key);
  if (!a || a->type != PQ_ATTR_INTS) {
    if (count) *count = 0;
    return NULL;
  }
  if (count) *count = a->ints->len;
  return (const int64_t *)(void *)a->ints->data;
}

/* ---- JSON form ------------------------------------------------------------------------------------- */

static void build_string_array(JsonBuilder *b, GPtrArray *arr) {
  json_builder_begin_array(b);
  for (guint i = 0; i < arr->len; i++) json_builder_add_string_value(b, arr->pdata[i]);
  json_builder_end_array(b);
}

gboolean pq_graph_attrs_finite(const PqGraph *graph, const char **node, const char **key) {
  for (guint i = 0; i < graph->nodes->len; i++) {
    const PqNode *n = graph->nodes->pdata[i];
    for (guint j = 0; j < n->attrs->len; j++) {
      const PqAttr *a = n->attrs->pdata[j];
      if (a->type == PQ_ATTR_FLOAT && !isfinite(a->f)) {
        *node = n->name;
        *key = a->key;
        return FALSE;
      }
    }
  }
  return TRUE;
}

char *pq_graph_to_json(const PqGraph *graph) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "format");
  json_builder_add_string_value(b, "pquant-graph");
  json_builder_set_member_name(b, "version");
  json_builder_add_int_value(b, 1);
  json_builder_set_member_name(b, "inputs");
  json_builder_begin_array(b);
  for (guint i = 0; i < graph->inputs->len; i++) {
    PqGraphInput *in = graph->inputs->pdata[i];
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, in->name);
    json_builder_set_member_name(b, "shape");
    json_builder_begin_array(b);
    for (int d = 0; d < in->ndim; d++) json_builder_add_int_value(b, in->shape[d]);
    json_builder_end_array(b);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_set_member_name(b, "outputs");
  build_string_array(b, graph->outputs);
  json_builder_set_member_name(b, "nodes");
  json_builder_begin_array(b);
  for (guint i = 0; i < graph->nodes->len; i++) {
    PqNode *n = graph->nodes->pdata[i];
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "op");
    json_builder_add_string_value(b, n->op);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, n->name);
    json_builder_set_member_name(b, "inputs");
    build_string_array(b, n->inputs);
    json_builder_set_member_name(b, "outputs");
    build_string_array(b, n->outputs);
    if (n->attrs->len) {
      json_builder_set_member_name(b, "attrs");
      json_builder_begin_object(b);
      for (guint j = 0; j < n->attrs->len; j++) {
        PqAttr *a = n->attrs->pdata[j];
        json_builder_set_member_name(b, a->key);
        switch (a->type) {
        case PQ_ATTR_INT: json_builder_add_int_value(b, a->i); break;
        case PQ_ATTR_FLOAT: /* JSON has no NaN or infinity: null, which no reader takes as a number */
          if (isfinite(a->f)) json_builder_add_double_value(b, a->f);
          else json_builder_add_null_value(b);
          break;
        case PQ_ATTR_STRING: json_builder_add_string_value(b, a->s); break;
        case PQ_ATTR_INTS:
          json_builder_begin_array(b);
          for (guint k = 0; k < a->ints->len; k++) json_builder_add_int_value(b, g_array_index(a->ints, int64_t, k));
          json_builder_end_array(b);
          break;
        }
      }
      json_builder_end_object(b);
    }
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, FALSE);
}

static gboolean json_int(JsonNode *node, int64_t *out) {
  if (!node || !JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64) return FALSE;
  *out = json_node_get_int(node);
  return TRUE;
}

static gboolean json_string_list(JsonObject *obj, const char *member, GPtrArray *out, const char *where,
                                 GError **error) {
  JsonNode *node = json_object_get_member(obj, member);
  if (!node || !JSON_NODE_HOLDS_ARRAY(node)) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s: \"%s\" must be an array of strings", where, member);
    return FALSE;
  }
  JsonArray *arr = json_node_get_array(node);
  for (guint i = 0; i < json_array_get_length(arr); i++) {
    JsonNode *e = json_array_get_element(arr, i);
    if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
      g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s: \"%s\"[%u] is not a string", where, member, i);
      return FALSE;
    }
    g_ptr_array_add(out, (gpointer)json_node_get_string(e));
  }
  return TRUE;
}

static gboolean node_attrs_from_json(PqNode *n, JsonObject *attrs, const char *where, GError **error) {
  g_autoptr(GList) members = json_object_get_members(attrs);
  for (GList *l = members; l; l = l->next) {
    const char *key = l->data;
    JsonNode *v = json_object_get_member(attrs, key);
    if (JSON_NODE_HOLDS_VALUE(v)) {
      GType t = json_node_get_value_type(v);
      if (t == G_TYPE_INT64) pq_node_set_int(n, key, json_node_get_int(v));
      else if (t == G_TYPE_DOUBLE) pq_node_set_float(n, key, json_node_get_double(v));
      else if (t == G_TYPE_STRING) pq_node_set_string(n, key, json_node_get_string(v));
      else if (t == G_TYPE_BOOLEAN) pq_node_set_int(n, key, json_node_get_boolean(v));
      else goto bad;
    } else if (JSON_NODE_HOLDS_ARRAY(v)) {
      JsonArray *arr = json_node_get_array(v);
      guint len = json_array_get_length(arr);
      g_autofree int64_t *vals = g_new0(int64_t, len + 1);
      for (guint i = 0; i < len; i++)
        if (!json_int(json_array_get_element(arr, i), &vals[i])) goto bad;
      pq_node_set_ints(n, key, len, vals);
    } else {
      goto bad;
    }
    continue;
  bad:
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID,
                "%s: attribute \"%s\" must be an integer, number, string or array of integers", where, key);
    return FALSE;
  }
  return TRUE;
}

gboolean pq_graph_from_json(PqGraph *graph, const char *json, GError **error) {
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(parser, json, -1, &perr)) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph is not valid JSON: %s", perr->message);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph must be a JSON object");
    return FALSE;
  }
  JsonObject *obj = json_node_get_object(root);
  int64_t version = 0;
  if (!json_int(json_object_get_member(obj, "version"), &version) || version != 1) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph: \"version\" must be 1");
    return FALSE;
  }
  JsonNode *inputs = json_object_get_member(obj, "inputs");
  if (!inputs || !JSON_NODE_HOLDS_ARRAY(inputs)) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph: \"inputs\" must be an array");
    return FALSE;
  }
  JsonArray *ia = json_node_get_array(inputs);
  for (guint i = 0; i < json_array_get_length(ia); i++) {
    JsonNode *e = json_array_get_element(ia, i);
    JsonObject *io = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    const char *name = io ? json_object_get_string_member_with_default(io, "name", NULL) : NULL;
    JsonNode *shape = io ? json_object_get_member(io, "shape") : NULL;
    if (!name || !shape || !JSON_NODE_HOLDS_ARRAY(shape) || json_array_get_length(json_node_get_array(shape)) > PQ_MAX_DIMS) {
      g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID,
                  "graph: inputs[%u] needs a \"name\" and a \"shape\" of at most %d integers", i, PQ_MAX_DIMS);
      return FALSE;
    }
    JsonArray *sa = json_node_get_array(shape);
    int64_t dims[PQ_MAX_DIMS];
    guint nd = json_array_get_length(sa);
    for (guint d = 0; d < nd; d++) {
      if (!json_int(json_array_get_element(sa, d), &dims[d]) || dims[d] < -1 || (dims[d] == -1 && d != 0)) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID,
                    "graph: inputs[%u] \"%s\": shape[%u] must be a non-negative integer (-1 only for the batch)", i,
                    name, d);
        return FALSE;
      }
    }
    pq_graph_add_input(graph, name, (int)nd, dims);
  }
  g_autoptr(GPtrArray) outs = g_ptr_array_new();
  if (!json_string_list(obj, "outputs", outs, "graph", error)) return FALSE;
  for (guint i = 0; i < outs->len; i++) pq_graph_add_output(graph, outs->pdata[i]);
  JsonNode *nodes = json_object_get_member(obj, "nodes");
  if (!nodes || !JSON_NODE_HOLDS_ARRAY(nodes)) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph: \"nodes\" must be an array");
    return FALSE;
  }
  JsonArray *na = json_node_get_array(nodes);
  for (guint i = 0; i < json_array_get_length(na); i++) {
    JsonNode *e = json_array_get_element(na, i);
    g_autofree char *where = g_strdup_printf("graph: nodes[%u]", i);
    JsonObject *no = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    const char *op = no ? json_object_get_string_member_with_default(no, "op", NULL) : NULL;
    if (!op) {
      g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s: needs a string \"op\"", where);
      return FALSE;
    }
    const char *name = json_object_get_string_member_with_default(no, "name", "");
    g_autoptr(GPtrArray) nin = g_ptr_array_new();
    g_autoptr(GPtrArray) nout = g_ptr_array_new();
    if (!json_string_list(no, "inputs", nin, where, error) || !json_string_list(no, "outputs", nout, where, error))
      return FALSE;
    PqNode *n = pq_graph_add_node(graph, op, name, nin->len, (const char *const *)nin->pdata, nout->len,
                                  (const char *const *)nout->pdata);
    JsonNode *attrs = json_object_get_member(no, "attrs");
    if (attrs) {
      if (!JSON_NODE_HOLDS_OBJECT(attrs)) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s: \"attrs\" must be an object", where);
        return FALSE;
      }
      if (!node_attrs_from_json(n, json_node_get_object(attrs), where, error)) return FALSE;
    }
  }
  return TRUE;
}
