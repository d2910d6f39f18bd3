/* bias-correct.c — empirical bias correction, a stage for the end of a chain: every layer's outputs are
 * shifted so that their mean over the calibration samples is the original model's (per output feature; per
 * channel for a convolution). Layers are taken from the input on, each measured on the model as corrected so
 * far, so a layer also makes up for the drift the layers before it left in its inputs. Only biases change (a
 * layer without one is given one); weights, packed codes and factors stay as the earlier stages left them.
 * The correction of Nagel et al. 2019 ("Data-free quantization through weight equalization and bias
 * correction"), taken from data: no training, one pass of the calibration samples per layer. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t calibration_wanted(const PqOptions *o) { return pq_options_get_int(o, "samples", 512); }

/* Per-feature means of `value` over the samples: `channels` features, each a run of `inner` values repeated
 * `outer` times a sample (a conv's [C, H, W]: outer 1, inner H·W; a linear's [..., C]: outer rows, inner 1). */
static double *feature_means(const float *x, int64_t samples, int64_t per, int64_t channels, int64_t inner, double *out) {
  int64_t outer = per / (channels * inner);
  for (int64_t c = 0; c < channels; c++) out[c] = 0;
  for (int64_t s = 0; s < samples; s++)
    for (int64_t o = 0; o < outer; o++)
      for (int64_t c = 0; c < channels; c++) {
        const float *v = x + s * per + (o * channels + c) * inner;
        for (int64_t i = 0; i < inner; i++) out[c] += v[i];
      }
  for (int64_t c = 0; c < channels; c++) out[c] /= (double)(samples * outer * inner);
  return out;
}

/* The output's features and their layout in `plan`: a conv's channels (dimension 1), else the last dimension;
 * channels -1 where the output has no batch and feature dimensions. */
static void output_layout(const PqPlan *plan, const PqNode *node, int64_t *channels, int64_t *inner) {
  int v = pq_plan_value_index(plan, pq_node_output(node, 0)), nd = 0;
  const int64_t *shape = v >= 0 ? pq_plan_value_shape(plan, v, &nd) : NULL;
  *channels = -1, *inner = 1;
  if (!shape || nd < 2) return;
  if (!strcmp(pq_node_op(node), "conv2d") || !strcmp(pq_node_op(node), "conv_transpose2d")) {
    *channels = shape[1];
    for (int d = 2; d < nd; d++) *inner *= shape[d];
  } else {
    *channels = shape[nd - 1];
  }
}

static PqStatus bc_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  const PqModel *orig = pq_calibration_original(cal);
  if (!cal || cal->n_samples < 1 || !orig) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "bias_correct needs calibration samples (--calibration N > 0)");
    return PQ_ERR_INVALID;
  }
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  /* every layer's output layout, from one plan made before any bias changes (which leaves the shapes as they are) */
  size_t n_nodes = pq_graph_n_nodes(g);
  PqPlan *plan = pq_plan_new(m, 1, err);
  int64_t *layout = plan ? malloc(sizeof(int64_t) * 2 * (n_nodes ? n_nodes : 1)) : NULL;
  if (!layout) {
    if (plan) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    pq_plan_free(plan);
    pq_model_unref(m);
    return (PqStatus)err->code;
  }
  for (size_t i = 0; i < n_nodes; i++) output_layout(plan, pq_graph_node(g, i), &layout[2 * i], &layout[2 * i + 1]);
  pq_plan_free(plan);
  for (size_t i = 0; i < n_nodes; i++) {
    PqNode *node = pq_graph_node(g, i);
    const char *layer = pq_node_name(node), *value = pq_node_output(node, 0);
    int slot = pq_layer_bias_input(node);
    if (slot < 0) continue;
    if (!pq_options_layer_selected(o, layer, 0)) {
      pq_model_record_skip(m, "bias_correct", layer, "not selected (include, exclude)");
      continue;
    }
    if (!pq_graph_value_producer(pq_model_const_graph(orig), value)) { /* an inner node of a factored layer (low-rank's first half, say) */
      pq_model_record_skip(m, "bias_correct", layer, "its output is not one of the original model's values");
      continue;
    }
    int64_t channels = layout[2 * i], inner = layout[2 * i + 1], per = 0, per0 = 0;
    if (channels < 0) {
      pq_plugin_error_set(err, PQ_ERR_INVALID, "its output has no batch and feature dimensions");
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      free(layout);
      pq_model_unref(m);
      return code;
    }
    float *now = pq_calibration_capture_model(cal, m, value, &per, err), *want = now ? pq_calibration_capture_model(cal, orig, value, &per0, err) : NULL;
    if (now && want && per != per0) { /* neurons removed (structured pruning): no mean to match one to one */
      char why[160];
      snprintf(why, sizeof why, "its output has %lld values a sample, the original's %lld", (long long)per, (long long)per0);
      pq_model_record_skip(m, "bias_correct", layer, why);
      free(now);
      free(want);
      continue;
    }
    double *shift = malloc(sizeof(double) * 2 * (size_t)channels);
    if (!now || !want || !shift || per % (channels * inner)) {
      if (now && want && shift) pq_plugin_error_set(err, PQ_ERR_INVALID, "its output (%lld values a sample) is not rows of %lld", (long long)per, (long long)channels);
      else if (!shift) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
      free(now);
      free(want);
      free(shift);
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      free(layout);
      pq_model_unref(m);
      return code;
    }
    feature_means(now, cal->n_samples, per, channels, inner, shift);
    feature_means(want, cal->n_samples, per, channels, inner, shift + channels);
    free(now);
    free(want);
    /* the bias: the layer's own (replaced, under its name where no other layer reads it), or a new one */
    const char *bname = pq_layer_bias(node);
    PqTensor *old = bname[0] ? pq_model_tensor(m, bname) : NULL;
    if (bname[0] && (!old || pq_tensor_numel(old) != channels)) {
      free(shift);
      pq_plugin_error_set(err, PQ_ERR_INVALID, "its bias '%s' is not a tensor of %lld values", bname, (long long)channels);
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      free(layout);
      pq_model_unref(m);
      return code;
    }
    char name[256], base[300];
    if (old && pq_graph_value_readers(g, bname, NULL, NULL) == 1) {
      snprintf(name, sizeof name, "%s", bname);
    } else {
      snprintf(base, sizeof base, "%s.bias", layer);
      pq_model_unique_name(m, base, name, sizeof name);
    }
    PqTensor *b = pq_tensor_new(name, PQ_DTYPE_F32, 1, &channels);
    float *bv = pq_tensor_mutable_data(b);
    if (old) pq_tensor_to_f32(old, bv);
    else memset(bv, 0, sizeof(float) * (size_t)channels);
    int64_t before = old ? pq_tensor_numel(old) : 0, bytes_before = old ? (int64_t)pq_tensor_nbytes(old) : 0; /* (old may go below) */
    double moved = 0, spread = 0;
    for (int64_t c = 0; c < channels; c++) {
      double d = shift[channels + c] - shift[c];
      bv[c] = (float)(bv[c] + d);
      moved += d * d;
      spread += shift[channels + c] * shift[channels + c];
    }
    free(shift);
    if (!isfinite(moved)) { /* outputs that overflow (in either model): nothing to match */
      pq_tensor_unref(b);
      pq_model_record_skip(m, "bias_correct", layer, "its outputs' means are not finite on the calibration samples");
      continue;
    }
    pq_model_set_tensor(m, b);
    pq_tensor_unref(b);
    pq_node_set_input(node, (size_t)slot, name);
    char detail[160];
    snprintf(detail, sizeof detail, "bias shifted by %.3g (rms) over %lld %s; output means %.3g (rms)", sqrt(moved / (double)channels),
             (long long)channels, inner > 1 ? "channels" : "features", sqrt(spread / (double)channels));
    pq_model_record_layer(m, "bias_correct", layer, detail, before, channels, bytes_before, 4 * channels, NAN, NAN);
  }
  free(layout);
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable bc_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = bc_compress,
    .calibration_samples = calibration_wanted,
};

static const PqPluginDesc bc_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "bias_correct",
    .version = "1.0.0",
    .description = "empirical bias correction: each layer's output means over calibration samples set back to the original model's",
    .options_schema = "{\"samples\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 512,"
                      "  \"description\": \"calibration samples to take the means over (at most what the host gives)\"}}",
    .vtable = &bc_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &bc_desc; }
