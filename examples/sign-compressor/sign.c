/* sign.c — an example compressor that invents a layer form and ships its kernel: each linear weight
 * becomes one sign bit per weight plus one scale per output row (the mean |w|), W ≈ diag(scale)·sign(W) —
 * 32x smaller. The new op "sign_linear" comes with a reference CPU kernel through the ABI, so pquant's CPU
 * backend runs the compressed model without knowing the form. Build out of tree with:
 *   cc -shared -fPIC -O2 sign.c $(pkg-config --cflags --libs pquant) -lm -o sign.so */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* inputs: x [..., in], signs U8 [out, ceil(in/8)] (bit i of row o: w[o][i] >= 0), scales F32 [out], bias (optional) */
static PqStatus sign_infer(const PqNode *node, const PqTensorView *in, size_t n, PqTensorView *out, PqPluginError *err) {
  if (n < 3 || in[0].ndim < 1 || in[1].ndim != 2 || in[2].ndim != 1 || in[2].shape[0] != in[1].shape[0] ||
      in[1].shape[1] != (in[0].shape[in[0].ndim - 1] + 7) / 8) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "sign_linear '%s': expects x [.., in], signs [out, ceil(in/8)], scales [out]", pq_node_name(node));
    return PQ_ERR_INVALID;
  }
  out->ndim = in[0].ndim;
  memcpy(out->shape, in[0].shape, sizeof(int64_t) * (size_t)in[0].ndim);
  out->shape[out->ndim - 1] = in[1].shape[0];
  return PQ_OK;
}

static PqStatus sign_run(const PqNode *node, const PqModel *model, const PqTensorView *in, size_t n, PqTensorView *out, void *ws,
                         PqPluginError *err) {
  (void)node, (void)model, (void)ws, (void)err;
  int64_t k = in[0].shape[in[0].ndim - 1], m = in[1].shape[0], rb = in[1].shape[1], rows = 1;
  for (int d = 0; d < in[0].ndim - 1; d++) rows *= in[0].shape[d];
  const float *x = in[0].data, *scales = in[2].data, *bias = n > 3 && in[3].data ? in[3].data : NULL;
  const uint8_t *signs = in[1].data;
  float *y = out->data;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < m; o++) {
      const uint8_t *bits = signs + o * rb;
      float acc = 0.0f;
      for (int64_t i = 0; i < k; i++) acc += (bits[i >> 3] >> (i & 7) & 1) ? x[r * k + i] : -x[r * k + i];
      y[r * m + o] = scales[o] * acc + (bias ? bias[o] : 0.0f);
    }
  return PQ_OK;
}

static const PqOpKernel sign_kernels[] = {{.struct_size = sizeof(PqOpKernel), .op = "sign_linear", .infer = sign_infer, .run = sign_run}};

static PqStatus sign_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  (void)cal;
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    PqNode *node = pq_graph_node(g, i);
    if (strcmp(pq_node_op(node), "linear")) continue;
    PqTensor *w = pq_layer_weight(m, node, o, "sign", NULL); /* selection, dtype and skip records */
    if (!w) continue;
    float *wf = pq_layer_weight_f32(node, w, err);
    if (!wf) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    int64_t rows = pq_tensor_rows(w), cols = pq_tensor_cols(w), rb = (cols + 7) / 8;
    char sn[300], cn[300], wn[256];
    snprintf(wn, sizeof wn, "%s", pq_tensor_name(w));
    snprintf(sn, sizeof sn, "%s.signs", wn);
    snprintf(cn, sizeof cn, "%s.sign_scales", wn);
    int64_t ss[2] = {rows, rb}, cs[1] = {rows};
    PqTensor *signs = pq_tensor_new(sn, PQ_DTYPE_U8, 2, ss), *scales = pq_tensor_new(cn, PQ_DTYPE_F32, 1, cs);
    uint8_t *sd = pq_tensor_mutable_data(signs);
    float *sc = pq_tensor_mutable_data(scales), *back = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++) {
      double a = 0;
      for (int64_t c = 0; c < cols; c++) a += fabs(wf[r * cols + c]);
      sc[r] = (float)(a / (double)cols); /* the scale that minimises ||w - s·sign(w)|| */
      for (int64_t c = 0; c < cols; c++) {
        int pos = wf[r * cols + c] >= 0;
        if (pos) sd[r * rb + c / 8] |= (uint8_t)(1u << (c % 8));
        back[r * cols + c] = pos ? sc[r] : -sc[r];
      }
    }
    double rel, sqnr;
    pq_error_stats(wf, back, rows * cols, &rel, &sqnr);
    pq_model_record_layer(m, "sign", pq_node_name(node), "1-bit signs, one scale per row", rows * cols, rows * cols,
                          (int64_t)pq_tensor_nbytes(w), (int64_t)(pq_tensor_nbytes(signs) + pq_tensor_nbytes(scales)), rel, sqnr);
    pq_model_set_tensor(m, signs);
    pq_model_set_tensor(m, scales);
    pq_tensor_unref(signs);
    pq_tensor_unref(scales);
    char bias[256];
    snprintf(bias, sizeof bias, "%s", pq_node_n_inputs(node) > 2 ? pq_node_input(node, 2) : "");
    pq_node_set_op(node, "sign_linear");
    pq_node_set_input(node, 1, sn);
    pq_node_set_input(node, 2, cn);
    pq_node_set_input(node, 3, bias);
    pq_model_remove_tensor(m, wn);
    free(wf);
    free(back);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable sign_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = sign_compress,
    .kernels = sign_kernels,
    .n_kernels = 1,
};

static const PqPluginDesc sign_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "sign",
    .version = "1.0.0",
    .description = "example: 1-bit sign weights with a scale per row, as a new op with its own CPU kernel",
    .vtable = &sign_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &sign_desc; }
