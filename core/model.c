/* model.c — PqModel: a graph, its named tensors and string metadata. */
#include "pq-private.h"

#include <string.h>

PqModel *pq_model_new(void) {
  PqModel *m = g_new0(PqModel, 1);
  m->refcount = 1;
  m->graph = pq_graph_new();
  m->tensors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)pq_tensor_unref);
  m->meta = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  m->records = g_ptr_array_new_with_free_func(pq_record_free);
  return m;
}

PqModel *pq_model_copy(const PqModel *src) {
  g_return_val_if_fail(src != NULL, NULL);
  PqModel *m = pq_model_new();
  pq_graph_free(m->graph);
  m->graph = pq_graph_copy(src->graph);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, src->tensors);
  while (g_hash_table_iter_next(&it, &k, &v)) g_hash_table_insert(m->tensors, g_strdup(k), pq_tensor_ref(v));
  g_hash_table_iter_init(&it, src->meta);
  while (g_hash_table_iter_next(&it, &k, &v)) g_hash_table_insert(m->meta, g_strdup(k), g_strdup(v));
  pq_records_copy(m->records, src->records);
  return m;
}

PqModel *pq_model_ref(PqModel *m) {
  g_return_val_if_fail(m != NULL, NULL);
  g_atomic_int_inc(&m->refcount);
  return m;
}

void pq_model_unref(PqModel *m) {
  if (!m || !g_atomic_int_dec_and_test(&m->refcount)) return;
  pq_graph_free(m->graph);
  g_hash_table_unref(m->tensors);
  g_hash_table_unref(m->meta);
  g_ptr_array_unref(m->records);
  if (m->sorted) g_ptr_array_unref(m->sorted);
  g_free(m);
}

PqGraph *pq_model_graph(PqModel *m) { return m->graph; }
const PqGraph *pq_model_const_graph(const PqModel *m) { return m->graph; }

void pq_model_set_tensor(PqModel *m, PqTensor *t) {
  g_return_if_fail(m && t && t->name && t->name[0]);
  g_hash_table_replace(m->tensors, g_strdup(t->name), pq_tensor_ref(t));
  g_clear_pointer(&m->sorted, g_ptr_array_unref);
}

void pq_model_remove_tensor(PqModel *m, const char *name) {
  g_hash_table_remove(m->tensors, name);
  g_clear_pointer(&m->sorted, g_ptr_array_unref);
}

int pq_model_remove_tensor_if_unused(PqModel *m, const char *name) {
  int is_output;
  if (pq_graph_value_readers(m->graph, name, NULL, &is_output) || is_output) return 0;
  pq_model_remove_tensor(m, name);
  return 1;
}

static gboolean name_taken(const PqModel *m, const char *name) {
  if (g_hash_table_contains(m->tensors, name)) return TRUE;
  const PqGraph *g = m->graph;
  if (pq_graph_input_index(g, name) >= 0) return TRUE;
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    const PqNode *n = pq_graph_node(g, i);
    if (!strcmp(pq_node_name(n), name)) return TRUE;
    for (size_t j = 0; j < pq_node_n_outputs(n); j++)
      if (!strcmp(pq_node_output(n, j), name)) return TRUE;
  }
  return FALSE;
}

int pq_model_unique_name(const PqModel *m, const char *base, char *out, size_t size) {
  g_autofree char *name = g_strdup(base);
  for (int k = 2; name_taken(m, name); k++) {
    g_free(name);
    name = g_strdup_printf("%s.%d", base, k);
  }
  return g_strlcpy(out, name, size) < size ? 0 : -1;
}

PqTensor *pq_model_tensor(const PqModel *m, const char *name) {
  return name ? g_hash_table_lookup(m->tensors, name) : NULL;
}

size_t pq_model_n_tensors(const PqModel *m) { return g_hash_table_size(m->tensors); }

static gint cmp_tensor_name(gconstpointer a, gconstpointer b) {
  return strcmp((*(PqTensor *const *)a)->name, (*(PqTensor *const *)b)->name);
}

PqTensor *pq_model_tensor_at(const PqModel *cm, size_t index) {
  PqModel *m = (PqModel *)cm;
  if (!m->sorted) {
    m->sorted = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, m->tensors);
    while (g_hash_table_iter_next(&it, NULL, &v)) g_ptr_array_add(m->sorted, v);
    g_ptr_array_sort(m->sorted, cmp_tensor_name);
  }
  return index < m->sorted->len ? m->sorted->pdata[index] : NULL;
}

void pq_model_set_meta(PqModel *m, const char *key, const char *value) {
  g_return_if_fail(m && key);
  if (value) g_hash_table_replace(m->meta, g_strdup(key), g_strdup(value));
  else g_hash_table_remove(m->meta, key);
}

const char *pq_model_meta(const PqModel *m, const char *key) { return g_hash_table_lookup(m->meta, key); }

/* Parameters are the elements of floating-point, packed and I8 tensors; unsigned and wide integer tensors
 * (sparse indices, row starts) are structure, not parameters. Scales and zero points of packed tensors are
 * stored with them, so they are not model tensors of their own. */
int64_t pq_model_n_params(const PqModel *m) {
  int64_t n = 0;
  for (size_t i = 0; i < pq_model_n_tensors(m); i++) {
    const PqTensor *t = pq_model_tensor_at(m, i);
    if (t->dtype == PQ_DTYPE_F32 || t->dtype == PQ_DTYPE_F16 || t->dtype == PQ_DTYPE_BF16 || t->dtype == PQ_DTYPE_PACKED ||
        t->dtype == PQ_DTYPE_I8)
      n += t->numel;
  }
  return n;
}

int64_t pq_model_nbytes(const PqModel *m) {
  int64_t n = 0;
  for (size_t i = 0; i < pq_model_n_tensors(m); i++) {
    const PqTensor *t = pq_model_tensor_at(m, i);
    n += pq_tensor_stored_bytes(t);
  }
  return n;
}
