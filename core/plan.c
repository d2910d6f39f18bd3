/* plan.c — validates a model's graph and computes the execution order and every value's shape, once. */
#include "pq-private.h"

#include <string.h>

typedef struct {
  char *name;
  PqValueKind kind;
  int ndim;
  int64_t shape[PQ_MAX_DIMS];
  int64_t numel;
  PqTensor *tensor; /* borrowed from the model (kept alive by the plan's model ref) */
  int last_use;
  int n_uses;
} PlanValue;

typedef struct {
  const PqNode *node;
  int *in;  /* value index per input, -1 for omitted */
  int *out;
} PlanStep;

struct PqPlan {
  PqModel *model;
  int64_t batch;
  GArray *values; /* PlanValue */
  GArray *steps;  /* PlanStep */
  GHashTable *index; /* name → index+1 */
};

static void plan_value_clear(gpointer p) { g_free(((PlanValue *)p)->name); }
static void plan_step_clear(gpointer p) {
  PlanStep *s = p;
  g_free(s->in);
  g_free(s->out);
}

void pq_plan_free(PqPlan *plan) {
  if (!plan) return;
  g_array_unref(plan->values);
  g_array_unref(plan->steps);
  g_hash_table_unref(plan->index);
  pq_model_unref(plan->model);
  g_free(plan);
}

static int add_value(PqPlan *plan, const char *name, PqValueKind kind, int ndim, const int64_t *shape, PqTensor *t) {
  PlanValue v = {0};
  v.name = g_strdup(name);
  v.kind = kind;
  v.ndim = ndim;
  if (ndim) memcpy(v.shape, shape, sizeof(int64_t) * (size_t)ndim);
  pq_shape_numel(ndim, shape, &v.numel);
  v.tensor = t;
  v.last_use = -1;
  g_array_append_val(plan->values, v);
  int idx = (int)plan->values->len - 1;
  g_hash_table_insert(plan->index, v.name, GINT_TO_POINTER(idx + 1));
  return idx;
}

static const char *node_label(const PqNode *n, char *buf, size_t len) {
  g_snprintf(buf, len, "node '%s' (%s)", n->name[0] ? n->name : "<unnamed>", n->op);
  return buf;
}

PqPlan *pq_model_plan(const PqModel *model, int64_t batch, GError **error) {
  g_return_val_if_fail(model != NULL && batch >= 1, NULL);
  const PqGraph *g = model->graph;
  g_autoptr(PqPlan) plan = g_new0(PqPlan, 1);
  plan->model = pq_model_ref((PqModel *)model);
  plan->batch = batch;
  plan->values = g_array_new(FALSE, TRUE, sizeof(PlanValue));
  g_array_set_clear_func(plan->values, plan_value_clear);
  plan->steps = g_array_new(FALSE, TRUE, sizeof(PlanStep));
  g_array_set_clear_func(plan->steps, plan_step_clear);
  plan->index = g_hash_table_new(g_str_hash, g_str_equal);
  char lbl[160];

  if (g->inputs->len == 0 || g->outputs->len == 0 || g->nodes->len == 0) {
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "the model's graph is empty (it needs inputs, nodes and outputs)");
    return NULL;
  }
  for (guint i = 0; i < g->inputs->len; i++) {
    const PqGraphInput *in = g->inputs->pdata[i];
    int64_t shape[PQ_MAX_DIMS];
    if (in->ndim < 1 || g_hash_table_contains(plan->index, in->name) || pq_model_tensor(model, in->name)) {
      g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID,
                  "graph input '%s' is duplicated, has no dimensions or shares a tensor's name", in->name);
      return NULL;
    }
    memcpy(shape, in->shape, sizeof(shape));
    for (int d = 0; d < in->ndim; d++) {
      if (shape[d] == -1 && d == 0) shape[d] = batch;
      else if (shape[d] < 0) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph input '%s': dimension %d is negative", in->name, d);
        return NULL;
      }
    }
    add_value(plan, in->name, PQ_VALUE_INPUT, in->ndim, shape, NULL);
  }

  /* Kahn's algorithm in graph order: a node is ready once every input is known. */
  guint n_nodes = g->nodes->len;
  g_autofree gboolean *done = g_new0(gboolean, n_nodes);
  g_autoptr(GHashTable) producer = g_hash_table_new(g_str_hash, g_str_equal); /* output name → node */
  for (guint i = 0; i < n_nodes; i++) {
    PqNode *n = g->nodes->pdata[i];
    for (guint j = 0; j < n->outputs->len; j++) {
      const char *o = n->outputs->pdata[j];
      if (!o[0] || g_hash_table_contains(producer, o) || g_hash_table_contains(plan->index, o) || pq_model_tensor(model, o)) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID,
                    "%s: output '%s' is empty or already defined (by a node, a graph input or a tensor)",
                    node_label(n, lbl, sizeof lbl), o);
        return NULL;
      }
      g_hash_table_insert(producer, (gpointer)o, n);
    }
  }
  for (guint i = 0; i < n_nodes; i++) {
    PqNode *n = g->nodes->pdata[i];
    for (guint j = 0; j < n->inputs->len; j++) {
      const char *name = n->inputs->pdata[j];
      if (name[0] && !g_hash_table_contains(plan->index, name) && !pq_model_tensor(model, name) &&
          !g_hash_table_contains(producer, name)) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID,
                    "%s: input '%s' is not defined (not a graph input, a tensor or a node's output)",
                    node_label(n, lbl, sizeof lbl), name);
        return NULL;
      }
    }
  }
  guint n_done = 0;
  while (n_done < n_nodes) {
    gboolean progress = FALSE;
    for (guint i = 0; i < n_nodes; i++) {
      if (done[i]) continue;
      PqNode *n = g->nodes->pdata[i];
      gboolean ready = TRUE;
      for (guint j = 0; j < n->inputs->len && ready; j++) {
        const char *name = n->inputs->pdata[j];
        ready = !name[0] || g_hash_table_contains(plan->index, name) || pq_model_tensor(model, name);
      }
      if (!ready) continue;
      /* resolve inputs, adding weights as values on first use */
      int nin = (int)n->inputs->len;
      PlanStep step = {n, g_new(int, MAX(nin, 1)), g_new(int, MAX(n->outputs->len, 1))};
      const int64_t *in_shapes[16] = {0};
      int in_nd[16] = {0};
      if (nin > 16) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s: more than 16 inputs", node_label(n, lbl, sizeof lbl));
        plan_step_clear(&step);
        return NULL;
      }
      for (int j = 0; j < nin; j++) {
        const char *name = n->inputs->pdata[j];
        if (!name[0]) {
          step.in[j] = -1;
          continue;
        }
        gpointer p = g_hash_table_lookup(plan->index, name);
        int idx;
        if (p) {
          idx = GPOINTER_TO_INT(p) - 1;
        } else {
          PqTensor *t = pq_model_tensor(model, name);
          idx = add_value(plan, name, PQ_VALUE_WEIGHT, t->ndim, t->shape, t);
        }
        step.in[j] = idx;
      }
      for (int j = 0; j < nin; j++) {
        if (step.in[j] < 0) continue;
        PlanValue *v = &g_array_index(plan->values, PlanValue, step.in[j]);
        in_shapes[j] = v->shape;
        in_nd[j] = v->ndim;
      }
      int64_t out_shapes[4][PQ_MAX_DIMS];
      int out_nd[4] = {0};
      g_autoptr(GError) ierr = NULL;
      if (n->outputs->len > 4 || !pq_op_infer(n, nin, in_shapes, in_nd, out_shapes, out_nd, &ierr)) {
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s: %s", node_label(n, lbl, sizeof lbl),
                    ierr ? ierr->message : "too many outputs");
        plan_step_clear(&step);
        return NULL;
      }
      for (guint j = 0; j < n->outputs->len; j++)
        step.out[j] = add_value(plan, n->outputs->pdata[j], PQ_VALUE_ACTIVATION, out_nd[j], out_shapes[j], NULL);
      int sidx = (int)plan->steps->len;
      for (int j = 0; j < nin; j++) {
        if (step.in[j] < 0) continue;
        PlanValue *v = &g_array_index(plan->values, PlanValue, step.in[j]);
        v->last_use = sidx;
        v->n_uses++;
      }
      g_array_append_val(plan->steps, step);
      done[i] = TRUE;
      n_done++;
      progress = TRUE;
    }
    if (!progress) {
      for (guint i = 0; i < n_nodes; i++) {
        if (done[i]) continue;
        g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "%s is part of a cycle: the graph must be acyclic",
                    node_label(g->nodes->pdata[i], lbl, sizeof lbl));
        return NULL;
      }
    }
  }
  for (guint i = 0; i < g->outputs->len; i++) {
    const char *o = g->outputs->pdata[i];
    gpointer p = g_hash_table_lookup(plan->index, o);
    if (!p || g_array_index(plan->values, PlanValue, GPOINTER_TO_INT(p) - 1).kind != PQ_VALUE_ACTIVATION) {
      g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, "graph output '%s' is not produced by any node", o);
      return NULL;
    }
    PlanValue *v = &g_array_index(plan->values, PlanValue, GPOINTER_TO_INT(p) - 1);
    v->last_use = (int)plan->steps->len;
    v->n_uses++;
  }
  return g_steal_pointer(&plan);
}

PqPlan *pq_plan_new(const PqModel *model, int64_t batch, struct PqPluginError *error) {
  g_autoptr(GError) err = NULL;
  PqPlan *plan = pq_model_plan(model, batch, &err);
  if (!plan && error) pq_plugin_error_set(error, PQ_ERR_INVALID, "%s", err->message);
  return plan;
}

gboolean pq_model_validate(const PqModel *model, GError **error) {
  PqPlan *plan = pq_model_plan(model, 1, error);
  if (!plan) return FALSE;
  pq_plan_free(plan);
  return TRUE;
}

#define VAL(p, i) (&g_array_index((p)->values, PlanValue, (i)))
int64_t pq_plan_batch(const PqPlan *p) { return p->batch; }
size_t pq_plan_n_steps(const PqPlan *p) { return p->steps->len; }
const PqNode *pq_plan_step(const PqPlan *p, size_t s) { return g_array_index(p->steps, PlanStep, s).node; }
int pq_plan_step_input(const PqPlan *p, size_t s, size_t j) {
  const PlanStep *st = &g_array_index(p->steps, PlanStep, s);
  return j < st->node->inputs->len ? st->in[j] : -1;
}
int pq_plan_step_output(const PqPlan *p, size_t s, size_t j) {
  const PlanStep *st = &g_array_index(p->steps, PlanStep, s);
  return j < st->node->outputs->len ? st->out[j] : -1;
}
size_t pq_plan_n_values(const PqPlan *p) { return p->values->len; }
int pq_plan_value_index(const PqPlan *p, const char *name) {
  return GPOINTER_TO_INT(g_hash_table_lookup(p->index, name)) - 1;
}
const char *pq_plan_value_name(const PqPlan *p, int v) { return VAL(p, v)->name; }
PqValueKind pq_plan_value_kind(const PqPlan *p, int v) { return VAL(p, v)->kind; }
const int64_t *pq_plan_value_shape(const PqPlan *p, int v, int *ndim) {
  if (ndim) *ndim = VAL(p, v)->ndim;
  return VAL(p, v)->shape;
}
int64_t pq_plan_value_numel(const PqPlan *p, int v) { return VAL(p, v)->numel; }
PqTensor *pq_plan_value_tensor(const PqPlan *p, int v) { return VAL(p, v)->tensor; }
int pq_plan_value_last_use(const PqPlan *p, int v) { return VAL(p, v)->last_use; }
int pq_plan_value_n_uses(const PqPlan *p, int v) { return VAL(p, v)->n_uses; }
