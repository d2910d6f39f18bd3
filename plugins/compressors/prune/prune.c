/* prune.c — magnitude pruning. Unstructured: the smallest weights of each layer are dropped and the rest
 * stored sparse (CSR: float values, 16-bit column indices where they fit, row starts), run by a sparse
 * kernel. Structured: whole output neurons with the smallest norms are removed, with the matching inputs
 * of the next linear layer, so dense kernels run on smaller matrices. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

/* The node reading `value`, if exactly one does and it is not a graph output; NULL otherwise. */
static PqNode *sole_reader(PqGraph *g, const char *value) {
  PqNode *first;
  int is_output;
  return pq_graph_value_readers(g, value, &first, &is_output) == 1 && !is_output ? first : NULL;
}

static int is_float(const PqTensor *t) {
  PqDType d = pq_tensor_dtype(t);
  return d == PQ_DTYPE_F32 || d == PQ_DTYPE_F16 || d == PQ_DTYPE_BF16;
}

static float *to_f32(const PqTensor *t) {
  float *f = malloc(sizeof(float) * (size_t)(pq_tensor_numel(t) ? pq_tensor_numel(t) : 1));
  if (f) pq_tensor_to_f32(t, f);
  return f;
}

static PqTensor *new_f32(const char *name, int nd, const int64_t *shape, const float *data) {
  PqTensor *t = pq_tensor_new(name, PQ_DTYPE_F32, nd, shape);
  memcpy(pq_tensor_mutable_data(t), data, pq_tensor_nbytes(t));
  return t;
}

static PqStatus unstructured(PqModel *m, PqNode *node, PqTensor *w, double sparsity, PqPluginError *err) {
  const char *layer = pq_node_name(node);
  int64_t rows = pq_tensor_rows(w), cols = pq_tensor_cols(w), numel = pq_tensor_numel(w);
  float *wf = to_f32(w), *mag = malloc(sizeof(float) * (size_t)numel);
  for (int64_t i = 0; i < numel; i++) mag[i] = fabsf(wf[i]);
  qsort(mag, (size_t)numel, sizeof(float), cmp_float);
  int64_t drop = (int64_t)floor(sparsity * (double)numel);
  float thr = drop > 0 ? mag[drop - 1] : -1.0f;
  free(mag);
  /* ties at the threshold: only as many dropped as `drop` leaves after the values below it (the first ones met) */
  int64_t below = 0;
  for (int64_t i = 0; i < numel; i++) below += fabsf(wf[i]) < thr;
  const int64_t ties_to_drop = drop - below;
  int64_t nnz = 0, ties = 0;
  for (int64_t i = 0; i < numel; i++)
    if (fabsf(wf[i]) > thr || (fabsf(wf[i]) == thr && ties++ >= ties_to_drop)) nnz++;
  int wide = cols > 65535;
  int64_t vs[1] = {nnz}, rs[1] = {rows + 1};
  char vn[256], cn[256], rn[256];
  snprintf(vn, sizeof vn, "%s.sp_values", pq_tensor_name(w));
  snprintf(cn, sizeof cn, "%s.sp_cols", pq_tensor_name(w));
  snprintf(rn, sizeof rn, "%s.sp_rows", pq_tensor_name(w));
  PqTensor *tv = pq_tensor_new(vn, PQ_DTYPE_F32, 1, vs), *tc = pq_tensor_new(cn, wide ? PQ_DTYPE_I32 : PQ_DTYPE_U16, 1, vs),
           *tr = pq_tensor_new(rn, PQ_DTYPE_I32, 1, rs);
  float *v = pq_tensor_mutable_data(tv), *dense = calloc((size_t)numel, sizeof(float));
  int32_t *rp = pq_tensor_mutable_data(tr);
  int64_t q = 0;
  ties = 0;
  for (int64_t r = 0; r < rows; r++) {
    rp[r] = (int32_t)q;
    for (int64_t c = 0; c < cols; c++) {
      float x = wf[r * cols + c];
      if (!(fabsf(x) > thr || (fabsf(x) == thr && ties++ >= ties_to_drop))) continue;
      v[q] = x;
      if (wide) ((int32_t *)pq_tensor_mutable_data(tc))[q] = (int32_t)c;
      else ((uint16_t *)pq_tensor_mutable_data(tc))[q] = (uint16_t)c;
      dense[r * cols + c] = x;
      q++;
    }
  }
  rp[rows] = (int32_t)q;
  int64_t bytes_after = (int64_t)(pq_tensor_nbytes(tv) + pq_tensor_nbytes(tc) + pq_tensor_nbytes(tr));
  if (bytes_after >= (int64_t)pq_tensor_nbytes(w)) {
    char why[200];
    snprintf(why, sizeof why, "%.0f%% sparse in CSR would take %lld bytes, not fewer than %lld dense", 100 * sparsity,
             (long long)bytes_after, (long long)pq_tensor_nbytes(w));
    pq_model_record_skip(m, "prune", layer, why);
  } else {
    double rel, sqnr;
    pq_error_stats(wf, dense, numel, &rel, &sqnr);
    char detail[96], wname[256];
    snprintf(detail, sizeof detail, "unstructured, %.1f%% zeros, CSR with %s indices", 100.0 * (double)(numel - nnz) / (double)numel,
             wide ? "32-bit" : "16-bit");
    pq_model_record_layer(m, "prune", layer, detail, numel, nnz, (int64_t)pq_tensor_nbytes(w), bytes_after, rel, sqnr);
    snprintf(wname, sizeof wname, "%s", pq_tensor_name(w));
    char bias[256];
    snprintf(bias, sizeof bias, "%s", pq_layer_bias(node));
    pq_model_set_tensor(m, tv);
    pq_model_set_tensor(m, tc);
    pq_model_set_tensor(m, tr);
    pq_node_set_op(node, "sparse_linear");
    pq_node_set_input(node, 1, vn);
    pq_node_set_input(node, 2, cn);
    pq_node_set_input(node, 3, rn);
    pq_node_set_input(node, 4, bias);
    pq_node_set_int(node, "in_features", cols);
    pq_node_set_int(node, "out_features", rows);
    pq_model_remove_tensor_if_unused(m, wname); /* a weight another layer shares stays */
  }
  pq_tensor_unref(tv);
  pq_tensor_unref(tc);
  pq_tensor_unref(tr);
  free(wf);
  free(dense);
  (void)err;
  return PQ_OK;
}

/* Remove the output neurons of `node` with the smallest L2 norms, and the same inputs of the next linear. */
static void structured(PqModel *m, PqNode *node, PqTensor *w, double sparsity) {
  PqGraph *g = pq_model_graph(m);
  const char *layer = pq_node_name(node);
  char why[256];
  /* follow the output through elementwise ops (relu) to a single linear reader */
  const char *val = pq_node_output(node, 0);
  PqNode *next = sole_reader(g, val);
  while (next && !strcmp(pq_node_op(next), "relu")) next = sole_reader(g, pq_node_output(next, 0));
  PqTensor *w2 = next && !strcmp(pq_node_op(next), "linear") && pq_node_n_inputs(next) >= 2 ? pq_model_tensor(m, pq_node_input(next, 1)) : NULL;
  if (!w2) {
    snprintf(why, sizeof why, "its outputs do not feed a single linear layer (through relu only): removing neurons would change the model's outputs");
    pq_model_record_skip(m, "prune", layer, why);
    return;
  }
  if (!is_float(w2)) {
    snprintf(why, sizeof why, "the next layer's weight '%s' is not floating point", pq_tensor_name(w2));
    pq_model_record_skip(m, "prune", layer, why);
    return;
  }
  int64_t rows = pq_tensor_rows(w), cols = pq_tensor_cols(w), rows2 = pq_tensor_rows(w2);
  int64_t keep = (int64_t)llround((1.0 - sparsity) * (double)rows);
  if (keep < 1) keep = 1;
  if (keep >= rows || pq_tensor_cols(w2) != rows) {
    pq_model_record_skip(m, "prune", layer, keep >= rows ? "no neuron to remove at this sparsity" : "the next layer does not read these neurons one to one");
    return;
  }
  float *wf = to_f32(w), *w2f = to_f32(w2), *norm = malloc(sizeof(float) * (size_t)rows), *sorted = malloc(sizeof(float) * (size_t)rows);
  for (int64_t r = 0; r < rows; r++) {
    double s2 = 0;
    for (int64_t c = 0; c < cols; c++) s2 += (double)wf[r * cols + c] * wf[r * cols + c];
    norm[r] = sorted[r] = (float)sqrt(s2);
  }
  qsort(sorted, (size_t)rows, sizeof(float), cmp_float);
  float thr = sorted[rows - keep]; /* keep the `keep` largest; ties broken by position */
  int64_t above = 0;
  for (int64_t r = 0; r < rows; r++) above += norm[r] > thr;
  int64_t ties_left = keep - above;
  char *kept = calloc((size_t)rows, 1);
  for (int64_t r = 0; r < rows; r++)
    if (norm[r] > thr || (norm[r] == thr && ties_left-- > 0)) kept[r] = 1;
  float *nw = malloc(sizeof(float) * (size_t)(keep * cols)), *nw2 = malloc(sizeof(float) * (size_t)(rows2 * keep));
  float *dense = calloc((size_t)(rows * cols), sizeof(float));
  int64_t k = 0;
  for (int64_t r = 0; r < rows; r++) {
    if (!kept[r]) continue;
    memcpy(nw + k * cols, wf + r * cols, sizeof(float) * (size_t)cols);
    memcpy(dense + r * cols, wf + r * cols, sizeof(float) * (size_t)cols);
    for (int64_t o = 0; o < rows2; o++) nw2[o * keep + k] = w2f[o * rows + r];
    k++;
  }
  double rel, sqnr;
  pq_error_stats(wf, dense, rows * cols, &rel, &sqnr);
  int64_t s1[2] = {keep, cols}, s2[2] = {rows2, keep}, sb[1] = {keep};
  PqTensor *t1 = new_f32(pq_tensor_name(w), 2, s1, nw), *t2 = new_f32(pq_tensor_name(w2), 2, s2, nw2);
  int64_t bytes_before = (int64_t)pq_tensor_nbytes(w);
  PqTensor *b = pq_layer_bias(node)[0] ? pq_model_tensor(m, pq_layer_bias(node)) : NULL;
  if (b) {
    float *bf = to_f32(b), *nb = malloc(sizeof(float) * (size_t)keep);
    for (int64_t r = 0, j = 0; r < rows; r++)
      if (kept[r]) nb[j++] = bf[r];
    PqTensor *tb = new_f32(pq_tensor_name(b), 1, sb, nb);
    bytes_before += (int64_t)pq_tensor_nbytes(b);
    pq_model_set_tensor(m, tb);
    pq_tensor_unref(tb);
    free(bf);
    free(nb);
  }
  char detail[160];
  snprintf(detail, sizeof detail, "structured, %lld of %lld neurons kept (and %s's inputs)", (long long)keep, (long long)rows, pq_node_name(next));
  pq_model_record_layer(m, "prune", layer, detail, rows * cols, keep * cols, bytes_before,
                        (int64_t)pq_tensor_nbytes(t1) + (b ? keep * 4 : 0), rel, sqnr);
  pq_model_set_tensor(m, t1);
  pq_model_set_tensor(m, t2);
  pq_tensor_unref(t1);
  pq_tensor_unref(t2);
  free(wf);
  free(w2f);
  free(norm);
  free(sorted);
  free(kept);
  free(nw);
  free(nw2);
  free(dense);
}

static PqStatus prune_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  (void)cal;
  double sparsity = pq_options_get_float(o, "sparsity", 0.5);
  int is_structured = !strcmp(pq_options_get_string(o, "mode", "unstructured"), "structured");
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  size_t n_nodes = pq_graph_n_nodes(g);
  for (size_t i = 0; i < n_nodes; i++) {
    PqNode *node = pq_graph_node(g, i);
    if (pq_layer_linear_only(m, node, o, "prune")) continue;
    if (strcmp(pq_node_op(node), "linear") || pq_node_n_inputs(node) < 2) continue;
    PqTensor *w = pq_layer_weight(m, node, o, "prune", NULL);
    if (!w) continue;
    float *wf = pq_layer_weight_f32(node, w, err); /* refuses NaN and infinite weights, naming the layer */
    if (!wf) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    free(wf);
    if (is_structured) structured(m, node, w, sparsity);
    else unstructured(m, node, w, sparsity, err);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable prune_vtable = {.struct_size = sizeof(PqCompressorVTable), .compress = prune_compress};

static const PqPluginDesc prune_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "prune",
    .version = "1.0.0",
    .description = "magnitude pruning: unstructured (stored sparse) or structured (neurons removed)",
    .options_schema = "{\"sparsity\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 0.999, \"default\": 0.5,"
                      "  \"description\": \"fraction of weights (unstructured) or neurons (structured) removed per layer\"},"
                      " \"mode\": {\"type\": \"string\", \"enum\": [\"unstructured\", \"structured\"], \"default\": \"unstructured\"}}",
    .vtable = &prune_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &prune_desc; }
