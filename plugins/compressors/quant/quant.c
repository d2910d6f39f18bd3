/* quant.c — weight quantization to 2–8 bits, stored packed: the weights of linear and conv2d layers become
 * packed integer tensors with per-tensor, per-channel or per-group scales. Backends compute from the codes. */
#include <pquant/pq-plugin.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

static int uses_gptq(const PqOptions *o) { return !strcmp(pq_options_get_string(o, "method", "rtn"), "gptq"); }

static int64_t calibration_wanted(const PqOptions *o) {
  int static_act = !strcmp(pq_options_get_string(o, "activations", "dynamic"), "static");
  return static_act || uses_gptq(o) ? 65536 : 0; /* as many as given */
}

/* The int8 range of a layer's input: max |x| over the calibration data, or a percentile of |x|. */
static float activation_scale(const PqCalibration *cal, const char *value, const PqOptions *o, PqPluginError *error) {
  int64_t per = 0;
  float *x = pq_calibration_capture(cal, value, &per, error);
  if (!x) return -1.0f;
  int64_t n = cal->n_samples * per;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) { /* no int8 range holds it, and the scale would not be a number */
      pq_plugin_error_set(error, PQ_ERR_INVALID, "activations=static: its input '%s' is %s on calibration sample %lld", value,
                          isnan(x[i]) ? "NaN" : "infinite", (long long)(i / per));
      free(x);
      return -1.0f;
    }
    x[i] = fabsf(x[i]);
  }
  float range;
  if (!strcmp(pq_options_get_string(o, "act_range", "percentile"), "minmax")) {
    range = 0.0f;
    for (int64_t i = 0; i < n; i++) range = fmaxf(range, x[i]);
  } else {
    qsort(x, (size_t)n, sizeof(float), cmp_float);
    double pct = pq_options_get_float(o, "percentile", 99.99) / 100.0;
    int64_t at = (int64_t)ceil(pct * (double)n) - 1;
    range = x[at < 0 ? 0 : at >= n ? n - 1 : at];
  }
  free(x);
  return range / 127.0f >= FLT_MIN ? range / 127.0f : 1.0f; /* an input of zeros (or too small for a normal scale): codes of 0 */
}

/* q with its scales stored in fewer bytes: as F16 (q8 false; where a scale does not fit F16, q is returned as it
 * is and `note` says why, for the layer's record) or each row of them quantized to 8 bits (q8), the codes chosen
 * again for them from w (NULL: kept, as GPTQ's are); q is taken. Else `note` says how they are stored. */
static PqTensor *with_small_scales(PqTensor *q, const float *w, int q8, char *note, size_t note_size) {
  PqPluginError e = {sizeof e, 0, {0}};
  PqTensor *h = q8 ? pq_packed_with_quantized_scales(q, w, 8, &e) : pq_packed_with_f16_scales(q, w, &e);
  if (!h) {
    if (note) snprintf(note, note_size, ", F32 scales kept (%s)", e.message);
    return q;
  }
  pq_tensor_unref(q);
  if (note) snprintf(note, note_size, q8 ? ", 8-bit scales" : ", F16 scales");
  return h;
}

static PqStatus quant_compress(const PqModel *in, const PqOptions *o, const PqCalibration *calibration, PqModel **out,
                               PqPluginError *error) {
  int static_act = !strcmp(pq_options_get_string(o, "activations", "dynamic"), "static"), gptq = uses_gptq(o);
  if ((static_act || gptq) && (!calibration || calibration->n_samples < 1)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "%s needs calibration samples (--calibration N > 0)", gptq ? "method=gptq" : "activations=static");
    return PQ_ERR_INVALID;
  }
  double damping = pq_options_get_float(o, "damping", 0.01);
  int act_order = pq_options_get_bool(o, "act_order", 0), sequential = pq_options_get_bool(o, "sequential", 0);
  int bits = (int)pq_options_get_int(o, "bits", 8);
  const char *scheme_s = pq_options_get_string(o, "scheme", "per_channel");
  PqQuantScheme scheme = PQ_QUANT_PER_CHANNEL;
  for (int i = 0; i < 3; i++)
    if (!strcmp(scheme_s, pq_quant_scheme_name((PqQuantScheme)i))) scheme = (PqQuantScheme)i;
  int64_t group = pq_options_get_int(o, "group_size", 64);
  int fit = !strcmp(pq_options_get_string(o, "group_fit", "exact"), "divisor");
  int symmetric = pq_options_get_bool(o, "symmetric", 1);
  int clip = (int)pq_options_get_int(o, "clip_search", 20);
  const char *scale_dtype = pq_options_get_string(o, "scale_dtype", "f32");
  int half = !strcmp(scale_dtype, "f16"), q8 = !strcmp(scale_dtype, "q8");
  if (q8 && scheme != PQ_QUANT_PER_GROUP) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "scale_dtype=q8 quantizes each row's group scales, so it needs scheme=per_group (scheme is %s)",
                        scheme_s);
    return PQ_ERR_INVALID;
  }
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    PqNode *node = pq_graph_node(g, i);
    const char *op = pq_node_op(node), *layer = pq_node_name(node);
    int is_linear = !strcmp(op, "linear"), is_conv = !strcmp(op, "conv2d");
    if ((!is_linear && !is_conv && strcmp(op, "matmul")) || pq_node_n_inputs(node) < 2) continue;
    PqTensor *w = pq_model_tensor(m, pq_node_input(node, 1));
    if (!w) continue; /* a computed operand, not a weight */
    if (!pq_options_layer_selected(o, layer, pq_tensor_numel(w))) {
      pq_model_record_skip(m, "quant", layer, "not selected (include, exclude, min_params)");
      continue;
    }
    if (!is_linear && !is_conv) {
      pq_model_record_skip(m, "quant", layer, "matmul weights are not quantized (only linear and conv2d)");
      continue;
    }
    if (is_conv && pq_node_get_int(node, "groups", 1) != 1) {
      pq_model_record_skip(m, "quant", layer, "grouped convolution (packed conv kernels run with groups = 1)");
      continue;
    }
    PqDType dt = pq_tensor_dtype(w);
    char from_note[64] = "";
    if (dt == PQ_DTYPE_PACKED && pq_tensor_bits(w) <= bits) {
      char why[128];
      snprintf(why, sizeof why, "weight '%s' is already packed (%d-bit, not more than the %d asked)", pq_tensor_name(w), pq_tensor_bits(w), bits);
      pq_model_record_skip(m, "quant", layer, why);
      continue;
    }
    if (dt == PQ_DTYPE_PACKED) /* (more bits than asked, as an imported 8-bit model: the values its codes stand for, quantized again) */
      snprintf(from_note, sizeof from_note, ", from its %d-bit codes", pq_tensor_bits(w));
    else if (dt != PQ_DTYPE_F32 && dt != PQ_DTYPE_F16 && dt != PQ_DTYPE_BF16) {
      char why[96];
      snprintf(why, sizeof why, "weight '%s' is %s, not floating point", pq_tensor_name(w), pq_dtype_name(dt));
      pq_model_record_skip(m, "quant", layer, why);
      continue;
    }
    int64_t n = pq_tensor_numel(w), cols = pq_tensor_cols(w), lgroup = group; /* (this layer's group size) */
    if (scheme == PQ_QUANT_PER_GROUP && cols % group) {
      if (fit && (lgroup = pq_quant_group_fit(cols, group)) > 0) {
        /* (the record says so) */
      } else {
        if (fit)
          pq_plugin_error_set(error, PQ_ERR_INVALID,
                              "layer '%s': its row length %lld has no divisor from %lld to %lld for group_fit=divisor (choose another "
                              "group_size, or exclude the layer)", layer, (long long)cols, (long long)((group + 1) / 2), (long long)group);
        else
          pq_plugin_error_set(error, PQ_ERR_INVALID,
                              "layer '%s': group_size %lld does not divide its row length %lld (use a divisor of %lld, group_fit=divisor, "
                              "or exclude the layer)", layer, (long long)group, (long long)cols, (long long)cols);
        pq_model_unref(m); /* last: `layer` belongs to it */
        return PQ_ERR_INVALID;
      }
    }
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1)), *back = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f || !back) {
      free(f);
      free(back);
      pq_plugin_error_set(error, PQ_ERR_NOMEM, "layer '%s': out of memory", layer);
      pq_model_unref(m); /* last: the layer's name belongs to it */
      return PQ_ERR_NOMEM;
    }
    pq_tensor_to_f32(w, f);
    /* GPTQ: the Gram matrix of the layer's inputs first */
    float *gram = NULL;
    int64_t gram_rows = 0, gram_k = 0;
    char gptq_note[128] = "";
    if (gptq) {
      /* sequential: the layer's inputs through the layers before it as they are now quantized */
      gram = pq_calibration_gram(calibration, sequential ? m : NULL, node, &gram_k, &gram_rows, error);
      if (!gram || gram_k != cols) {
        if (gram) pq_plugin_error_set(error, PQ_ERR_INVALID, "its Gram matrix does not match its weight");
        PqStatus code = pq_plugin_error_in_layer(error, layer);
        free(gram);
        free(f);
        free(back);
        pq_model_unref(m); /* last: `layer` belongs to it */
        return code;
      }
    }
    PqTensor *q = gram ? pq_quantize_matrix_gptq(pq_tensor_name(w), f, pq_tensor_ndim(w), pq_tensor_shape(w), bits, scheme, lgroup,
                                                 symmetric, clip, gram, damping, act_order, error)
                       : pq_quantize_matrix(pq_tensor_name(w), f, pq_tensor_ndim(w), pq_tensor_shape(w), bits, scheme, lgroup,
                                            symmetric, clip, error);
    char scales_note[300] = "";
    if (q && (half || q8)) q = with_small_scales(q, gram ? NULL : f, q8, scales_note, sizeof scales_note);
    if (q && gram) { /* how much GPTQ bought: its output error against rounding to nearest (on the same scales), on the same inputs */
      PqTensor *rtn = pq_quantize_matrix(pq_tensor_name(w), f, pq_tensor_ndim(w), pq_tensor_shape(w), bits, scheme, lgroup, symmetric,
                                         clip, error);
      if (rtn && pq_tensor_dtype(pq_tensor_scales(q)) != PQ_DTYPE_F32) rtn = with_small_scales(rtn, f, q8, NULL, 0); /* (as q's are stored) */
      float *rb = rtn ? malloc(sizeof(float) * (size_t)n) : NULL;
      if (rb) {
        pq_tensor_to_f32(q, back);
        pq_tensor_to_f32(rtn, rb);
        double eg = pq_output_error(f, back, gram, n / cols, cols), er = pq_output_error(f, rb, gram, n / cols, cols);
        snprintf(gptq_note, sizeof gptq_note, ", GPTQ%s%s: output error %.2fx round-to-nearest's on the %lld calibration rows",
                 act_order ? " act_order" : "", sequential ? " sequential" : "", er > 0 ? eg / er : 1.0, (long long)gram_rows);
      }
      free(rb);
      if (rtn) pq_tensor_unref(rtn);
    }
    free(gram);
    if (!q) {
      free(f);
      free(back);
      PqStatus code = pq_plugin_error_in_layer(error, layer);
      pq_model_unref(m); /* last: `layer` belongs to it */
      return code;
    }
    pq_tensor_to_f32(q, back);
    double rel, sqnr;
    pq_error_stats(f, back, n, &rel, &sqnr);
    int64_t after = pq_tensor_stored_bytes(q);
    char detail[640];
    if (scheme == PQ_QUANT_PER_GROUP)
      snprintf(detail, sizeof detail, "%d-bit %s group %lld%s %s", bits, pq_quant_scheme_name(scheme), (long long)lgroup,
               lgroup != group ? " (fitted to the row)" : "", symmetric ? "symmetric" : "asymmetric");
    else
      snprintf(detail, sizeof detail, "%d-bit %s %s", bits, pq_quant_scheme_name(scheme), symmetric ? "symmetric" : "asymmetric");
    { /* (each note empty where it does not apply) */
      size_t at = strlen(detail);
      snprintf(detail + at, sizeof detail - at, "%s%s%s", from_note, gptq_note, scales_note);
    }
    if (static_act) { /* W8A8: a fixed int8 range for the layer's input (a conv: its input feature map) */
      float sa = activation_scale(calibration, pq_node_input(node, 0), o, error);
      if (sa < 0) {
        PqStatus code = pq_plugin_error_in_layer(error, layer);
        pq_tensor_unref(q);
        free(f);
        free(back);
        pq_model_unref(m); /* last: `layer` belongs to it */
        return code;
      }
      pq_node_set_float(node, "act_scale", sa);
      size_t at = strlen(detail);
      snprintf(detail + at, sizeof detail - at, ", static int8 inputs (%s)", pq_options_get_string(o, "act_range", "percentile"));
    }
    pq_model_record_layer(m, "quant", layer, detail, n, n, pq_tensor_stored_bytes(w), after, rel, sqnr);
    pq_model_set_tensor(m, q);
    pq_tensor_unref(q);
    free(f);
    free(back);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable quant_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = quant_compress,
    .calibration_samples = calibration_wanted,
};

static const PqPluginDesc quant_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "quant",
    .version = "1.2.0",
    .description = "weight quantization to 2-8 bits, stored packed, per tensor, channel or group",
    .options_schema =
        "{\"bits\": {\"type\": \"integer\", \"minimum\": 2, \"maximum\": 8, \"default\": 8},"
        " \"scheme\": {\"type\": \"string\", \"enum\": [\"per_tensor\", \"per_channel\", \"per_group\"], \"default\": \"per_channel\"},"
        " \"group_size\": {\"type\": \"integer\", \"minimum\": 2, \"maximum\": 65536, \"default\": 64,"
        "  \"description\": \"values per scale with scheme per_group; must divide each quantized row (see group_fit)\"},"
        " \"group_fit\": {\"type\": \"string\", \"enum\": [\"exact\", \"divisor\"], \"default\": \"exact\","
        "  \"description\": \"exact: a row group_size does not divide is an error; divisor: such a layer takes the largest divisor of its"
        " row from group_size/2 to group_size\"},"
        " \"symmetric\": {\"type\": \"boolean\", \"default\": true},"
        " \"scale_dtype\": {\"type\": \"string\", \"enum\": [\"f32\", \"f16\", \"q8\"], \"default\": \"f32\","
        "  \"description\": \"how the scales are stored: f16 halves their bytes (a layer with a scale outside F16's normal range keeps F32);"
        " q8 (per_group only) quantizes each row of group scales to 8 bits, one F32 scale a row\"},"
        " \"clip_search\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 200, \"default\": 20,"
        "  \"description\": \"clipping ratios tried per scale group to minimise the squared error (0: full range)\"},"
        " \"activations\": {\"type\": \"string\", \"enum\": [\"dynamic\", \"static\"], \"default\": \"dynamic\","
        "  \"description\": \"linear inputs quantized to int8 per row at run time, or with a range fixed from calibration data (W8A8)\"},"
        " \"act_range\": {\"type\": \"string\", \"enum\": [\"minmax\", \"percentile\"], \"default\": \"percentile\"},"
        " \"percentile\": {\"type\": \"number\", \"minimum\": 50, \"maximum\": 100, \"default\": 99.99},"
        " \"method\": {\"type\": \"string\", \"enum\": [\"rtn\", \"gptq\"], \"default\": \"rtn\","
        "  \"description\": \"rtn: round each weight to nearest; gptq: columns in turn, each rounding error spread over the columns left through"
        " the inverse Gram matrix of the layer's calibration inputs (Frantar et al. 2022)\"},"
        " \"damping\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 10, \"default\": 0.01,"
        "  \"description\": \"gptq: fraction of the Gram matrix's mean diagonal added to it\"},"
        " \"act_order\": {\"type\": \"boolean\", \"default\": false,"
        "  \"description\": \"gptq: quantize the columns with the largest inputs first\"},"
        " \"sequential\": {\"type\": \"boolean\", \"default\": false,"
        "  \"description\": \"gptq: each layer's inputs taken through the layers before it as already quantized\"}}",
    .vtable = &quant_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &quant_desc; }
