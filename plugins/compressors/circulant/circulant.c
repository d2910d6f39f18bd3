/* circulant.c — block-circulant approximation (CirCNN): each b×b block of a linear layer's weight becomes
 * the circulant matrix nearest to it in Frobenius norm, whose first column is the mean of the block's
 * circulant diagonals. Stored as those columns only (b values a block); run with FFTs, never densely. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks beyond the weight's edge (when b does not divide it) see zeros there: the mean runs over the
 * entries that exist. */
static void project(const float *w, int64_t m, int64_t n, int64_t b, float *c /* [mb, nb, b] */) {
  int64_t mb = (m + b - 1) / b, nb = (n + b - 1) / b;
  double *sum = malloc(sizeof(double) * (size_t)b);
  int64_t *cnt = malloc(sizeof(int64_t) * (size_t)b);
  for (int64_t I = 0; I < mb; I++)
    for (int64_t J = 0; J < nb; J++) {
      memset(sum, 0, sizeof(double) * (size_t)b);
      memset(cnt, 0, sizeof(int64_t) * (size_t)b);
      for (int64_t r = 0; r < b && I * b + r < m; r++)
        for (int64_t s = 0; s < b && J * b + s < n; s++) {
          int64_t d = ((r - s) % b + b) % b;
          sum[d] += w[(I * b + r) * n + J * b + s];
          cnt[d]++;
        }
      float *cb = c + (I * nb + J) * b;
      for (int64_t d = 0; d < b; d++) cb[d] = cnt[d] ? (float)(sum[d] / (double)cnt[d]) : 0.0f;
    }
  free(sum);
  free(cnt);
}

static PqStatus circ_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  (void)cal;
  int64_t b = pq_options_get_int(o, "block", 64);
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  char why[200], name[256];
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    PqNode *node = pq_graph_node(g, i);
    const char *layer = pq_node_name(node);
    if (pq_layer_linear_only(m, node, o, "circulant")) continue;
    if (strcmp(pq_node_op(node), "linear") || pq_node_n_inputs(node) < 2) continue;
    PqTensor *w = pq_layer_weight(m, node, o, "circulant", NULL);
    if (!w) continue;
    int64_t rows = pq_tensor_rows(w), cols = pq_tensor_cols(w), numel = pq_tensor_numel(w);
    int64_t mb = (rows + b - 1) / b, nb = (cols + b - 1) / b;
    if (mb * nb * b >= numel) {
      snprintf(why, sizeof why, "block %lld would not shrink %lld x %lld", (long long)b, (long long)rows, (long long)cols);
      pq_model_record_skip(m, "circulant", layer, why);
      continue;
    }
    float *wf = pq_layer_weight_f32(node, w, err);
    if (!wf) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    float *back = malloc(sizeof(float) * (size_t)numel);
    int64_t cs[3] = {mb, nb, b};
    snprintf(name, sizeof name, "%s.circ", pq_tensor_name(w));
    PqTensor *c = pq_tensor_new(name, PQ_DTYPE_F32, 3, cs);
    project(wf, rows, cols, b, pq_tensor_mutable_data(c));
    pq_circulant_dense(pq_tensor_data(c), rows, cols, b, back);
    double rel, sqnr;
    pq_error_stats(wf, back, numel, &rel, &sqnr);
    char detail[64];
    snprintf(detail, sizeof detail, "block %lld", (long long)b);
    pq_model_record_layer(m, "circulant", layer, detail, numel, mb * nb * b, (int64_t)pq_tensor_nbytes(w), (int64_t)pq_tensor_nbytes(c), rel, sqnr);
    char wname[256];
    snprintf(wname, sizeof wname, "%s", pq_tensor_name(w));
    pq_model_set_tensor(m, c);
    pq_tensor_unref(c);
    pq_node_set_op(node, "circulant_linear");
    pq_node_set_input(node, 1, name);
    pq_node_set_int(node, "in_features", cols);
    pq_node_set_int(node, "out_features", rows);
    pq_model_remove_tensor_if_unused(m, wname); /* a weight another layer shares stays */
    free(wf);
    free(back);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable circ_vtable = {.struct_size = sizeof(PqCompressorVTable), .compress = circ_compress};

static const PqPluginDesc circ_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "circulant",
    .version = "1.0.0",
    .description = "block-circulant approximation of linear layers, run with FFTs",
    .options_schema = "{\"block\": {\"type\": \"integer\", \"minimum\": 2, \"maximum\": 4096, \"default\": 64,"
                      " \"description\": \"circulant block size b: b values stored per b x b block\"}}",
    .vtable = &circ_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &circ_desc; }
