/* low-rank.c — W ≈ U·V: each selected linear layer becomes two (x → V → U + bias), each conv2d a conv2d
 * with k output channels followed by a 1×1 conv2d. Rank by number, energy fraction or parameter fraction;
 * exact or randomized SVD; optionally activation-whitened (data-aware) so that the layer's outputs, not its
 * weights, are what the truncation preserves. */
#include <pquant/pq-plugin.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t rank;
  double energy, param_fraction;
  int randomized_mode; /* -1 auto, 0 exact, 1 randomized */
  int oversample, power_iters, data_aware;
  double damping;
  uint64_t seed;
} Settings;

static int64_t calibration_wanted(const PqOptions *o) { return pq_options_get_bool(o, "data_aware", 0) ? 65536 : 0; /* as many as the host gives (--calibration) */ }

/* Rank for an m × n weight: by number, by the fraction of spectral energy kept, or by parameter fraction. */
static int64_t choose_rank(const Settings *st, const float *w, int64_t m, int64_t n, PqPluginError *err) {
  if (st->param_fraction > 0) return (int64_t)floor(st->param_fraction * (double)(m * n) / (double)(m + n));
  if (st->energy > 0) return pq_energy_rank(w, m, n, st->energy, err);
  return st->rank;
}

/* Factor W [m, n] (row-major) at rank k: A [m, k], B [k, n] with W ≈ A B. With `chol` (lower-triangular
 * n × n Cholesky factor of the input covariance), the SVD is of W L and B is solved back through L. */
static int factor(const Settings *st, const float *w, int64_t m, int64_t n, int64_t k, const float *chol, float *a, float *b,
                  PqPluginError *err) {
  float *target = malloc(sizeof(float) * (size_t)(m * n)), *s = malloc(sizeof(float) * (size_t)k);
  if (!target || !s) {
    free(target);
    free(s);
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    return -1;
  }
  memcpy(target, w, sizeof(float) * (size_t)(m * n));
  if (chol) /* W L */
    cblas_strmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)m, (int)n, 1.0f, chol, (int)n, target, (int)n);
  int randomized = st->randomized_mode < 0 ? (m < n ? m : n) > 1024 : st->randomized_mode;
  int rc = pq_svd_truncated(target, m, n, k, randomized, st->oversample, st->power_iters, st->seed, a, s, b, err);
  if (rc == 0) {
    for (int64_t i = 0; i < m; i++) /* A = U S */
      for (int64_t j = 0; j < k; j++) a[i * k + j] *= s[j];
    if (chol) /* B L = Vt  →  B = Vt L^-1 */
      cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)k, (int)n, 1.0f, chol, (int)n, b, (int)n);
  }
  free(target);
  free(s);
  return rc;
}

/* Cholesky factor of the layer's input Gram matrix XᵀX / N (linear rows or conv patches) + damping · mean(diag) · I. */
static float *input_cholesky(const Settings *st, const PqCalibration *cal, const PqNode *node, int64_t n, PqPluginError *err) {
  int64_t k = 0;
  float *c = pq_calibration_gram(cal, NULL, node, &k, NULL, err);
  if (!c) return NULL;
  if (k != n) {
    free(c);
    pq_plugin_error_set(err, PQ_ERR_INVALID, "the input Gram matrix is %lld wide, the weight's rows %lld", (long long)k, (long long)n);
    return NULL;
  }
  if (pq_cholesky_damped(c, n, st->damping) != 0) {
    free(c);
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "the input covariance of '%s' is not positive definite (raise damping)", pq_node_input(node, 0));
    return NULL;
  }
  return c;
}

static PqStatus lr_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  Settings st = {
      .rank = pq_options_get_int(o, "rank", 64),
      .energy = pq_options_get_float(o, "energy", 0),
      .param_fraction = pq_options_get_float(o, "param_fraction", 0),
      .oversample = (int)pq_options_get_int(o, "oversample", 10),
      .power_iters = (int)pq_options_get_int(o, "power_iters", 2),
      .data_aware = pq_options_get_bool(o, "data_aware", 0),
      .damping = pq_options_get_float(o, "damping", 0.01),
      .seed = (uint64_t)pq_options_get_int(o, "seed", 1),
  };
  const char *svd = pq_options_get_string(o, "svd", "auto");
  st.randomized_mode = !strcmp(svd, "exact") ? 0 : !strcmp(svd, "randomized") ? 1 : -1;
  if (st.energy > 0 && st.param_fraction > 0) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "set either energy or param_fraction, not both");
    return PQ_ERR_INVALID;
  }
  if (st.data_aware && (!cal || cal->n_samples < 1)) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "data_aware needs calibration samples (--calibration N > 0)");
    return PQ_ERR_INVALID;
  }
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  size_t n_nodes = pq_graph_n_nodes(g); /* nodes appended below are not revisited */
  char detail[160], why[200];
  for (size_t i = 0; i < n_nodes; i++) {
    PqNode *node = pq_graph_node(g, i);
    const char *op = pq_node_op(node), *layer = pq_node_name(node);
    int is_linear = !strcmp(op, "linear"), is_conv = !strcmp(op, "conv2d");
    if ((!is_linear && !is_conv) || pq_node_n_inputs(node) < 2) continue;
    PqTensor *w = pq_layer_weight(m, node, o, "low_rank", "factor before quantizing");
    if (!w) continue;
    int64_t mrows = pq_tensor_rows(w), ncols = pq_tensor_cols(w), numel = pq_tensor_numel(w);
    if (is_conv && pq_node_get_int(node, "groups", 1) != 1) {
      pq_model_record_skip(m, "low_rank", layer, "grouped convolution");
      continue;
    }
    float *wf = pq_layer_weight_f32(node, w, err);
    if (!wf) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    int64_t k = choose_rank(&st, wf, mrows, ncols, err);
    if (k < 0) {
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      free(wf);
      pq_model_unref(m); /* last: `layer` belongs to it */
      return code;
    }
    int64_t p = mrows < ncols ? mrows : ncols;
    if (k < 1 || k >= p || k * (mrows + ncols) >= mrows * ncols) {
      if (k < 1) snprintf(why, sizeof why, "the rank would be 0");
      else if (k >= p) snprintf(why, sizeof why, "rank %lld is not below min(%lld, %lld)", (long long)k, (long long)mrows, (long long)ncols);
      else snprintf(why, sizeof why, "rank %lld would not shrink %lld x %lld (k(m+n) >= mn)", (long long)k, (long long)mrows, (long long)ncols);
      pq_model_record_skip(m, "low_rank", layer, why);
      free(wf);
      continue;
    }
    float *chol = NULL;
    if (st.data_aware) {
      chol = input_cholesky(&st, cal, node, ncols, err);
      if (!chol) {
        PqStatus code = pq_plugin_error_in_layer(err, layer);
        free(wf);
        pq_model_unref(m);
        return code;
      }
    }
    float *a = malloc(sizeof(float) * (size_t)(mrows * k)), *b = malloc(sizeof(float) * (size_t)(k * ncols));
    if (factor(&st, wf, mrows, ncols, k, chol, a, b, err) != 0) {
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      free(wf);
      free(chol);
      free(a);
      free(b);
      pq_model_unref(m); /* last: `layer` belongs to it */
      return code;
    }
    /* reconstruction error of the weight */
    float *approx = malloc(sizeof(float) * (size_t)numel);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mrows, (int)ncols, (int)k, 1.0f, a, (int)k, b, (int)ncols, 0.0f,
                approx, (int)ncols);
    double rel, sqnr;
    pq_error_stats(wf, approx, numel, &rel, &sqnr);
    free(approx);
    /* tensors: V = B shaped like the layer's input side, U = A */
    char vname[256], uname[256], mid[256], vnode[256], base[300];
    const char *stem = layer[0] ? layer : pq_tensor_name(w);
    /* names no other tensor, node or value has (a layer factored twice, a weight two layers share) */
    snprintf(base, sizeof base, "%s.lr_v", pq_tensor_name(w));
    pq_model_unique_name(m, base, vname, sizeof vname);
    snprintf(base, sizeof base, "%s.lr_u", pq_tensor_name(w));
    pq_model_unique_name(m, base, uname, sizeof uname);
    snprintf(base, sizeof base, "%s.lr_mid", stem);
    pq_model_unique_name(m, base, mid, sizeof mid);
    snprintf(base, sizeof base, "%s.lr_v", stem);
    pq_model_unique_name(m, base, vnode, sizeof vnode);
    int64_t vshape[4] = {k, ncols, 1, 1}, ushape[4] = {mrows, k, 1, 1};
    int vnd = 2, und = 2;
    if (is_conv) {
      memcpy(vshape, pq_tensor_shape(w), sizeof(int64_t) * 4);
      vshape[0] = k;
      vnd = 4;
      und = 4;
    }
    PqTensor *tv = pq_tensor_new(vname, PQ_DTYPE_F32, vnd, vshape), *tu = pq_tensor_new(uname, PQ_DTYPE_F32, und, ushape);
    memcpy(pq_tensor_mutable_data(tv), b, sizeof(float) * (size_t)(k * ncols));
    memcpy(pq_tensor_mutable_data(tu), a, sizeof(float) * (size_t)(mrows * k));
    pq_model_set_tensor(m, tv);
    pq_model_set_tensor(m, tu);
    /* x → V (no bias) → mid → U (+ bias) → the layer's original output */
    const char *vin[2] = {pq_node_input(node, 0), vname}, *vout[1] = {mid};
    PqNode *nv = pq_graph_add_node(g, op, vnode, 2, vin, 1, vout);
    node = pq_graph_node(g, i); /* adding may move the node array */
    if (is_conv) { /* the spatial part stays in the first conv; the second is 1×1 */
      const char *keys[4] = {"strides", "pads", "dilations", NULL};
      for (int kk = 0; keys[kk]; kk++) {
        size_t cnt;
        const int64_t *v = pq_node_get_ints(node, keys[kk], &cnt);
        if (v) pq_node_set_ints(nv, keys[kk], cnt, v);
      }
      int64_t one[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
      pq_node_set_ints(node, "strides", 2, one);
      pq_node_set_ints(node, "dilations", 2, one);
      pq_node_set_ints(node, "pads", 4, zero4);
    }
    char wname[256];
    snprintf(wname, sizeof wname, "%s", pq_tensor_name(w));
    int64_t bytes_before = (int64_t)pq_tensor_nbytes(w), bytes_after = (int64_t)(pq_tensor_nbytes(tv) + pq_tensor_nbytes(tu));
    pq_node_set_input(node, 0, mid);
    pq_node_set_input(node, 1, uname);
    pq_model_remove_tensor_if_unused(m, wname); /* w is not read after this, unless another layer shares it */
    if (chol) snprintf(detail, sizeof detail, "rank %lld, activation-whitened (%lld samples)", (long long)k, (long long)cal->n_samples);
    else snprintf(detail, sizeof detail, "rank %lld", (long long)k);
    pq_model_record_layer(m, "low_rank", layer, detail, numel, k * (mrows + ncols), bytes_before, bytes_after, rel, sqnr);
    pq_tensor_unref(tv);
    pq_tensor_unref(tu);
    free(wf);
    free(chol);
    free(a);
    free(b);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable lr_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = lr_compress,
    .calibration_samples = calibration_wanted,
};

static const PqPluginDesc lr_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "low_rank",
    .version = "1.0.0",
    .description = "low-rank factorisation W = U V of linear and conv2d layers by truncated SVD",
    .options_schema =
        "{\"rank\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 64, \"description\": \"kept rank (unless energy or param_fraction)\"},"
        " \"energy\": {\"type\": \"number\", \"minimum\": 0.000001, \"maximum\": 1, \"description\": \"keep this fraction of the squared singular values\"},"
        " \"param_fraction\": {\"type\": \"number\", \"minimum\": 0.000001, \"maximum\": 1, \"description\": \"factors hold at most this fraction of the weights\"},"
        " \"svd\": {\"type\": \"string\", \"enum\": [\"auto\", \"exact\", \"randomized\"], \"default\": \"auto\","
        "  \"description\": \"auto: exact below 1024 on the smaller side, randomized above\"},"
        " \"oversample\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 512, \"default\": 10},"
        " \"power_iters\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 20, \"default\": 2},"
        " \"data_aware\": {\"type\": \"boolean\", \"default\": false, \"description\": \"activation-whitened SVD from calibration data\"},"
        " \"damping\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 10, \"default\": 0.01,"
        "  \"description\": \"ridge added to the input covariance, relative to its mean diagonal\"},"
        " \"seed\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 1}}",
    .vtable = &lr_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &lr_desc; }
