/* backend.c — calling plugins from the host: backends (prepare/run), compressors, probes and the runner. */
#include "pq-private.h"

#include <cblas.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct PqBackend {
  PqPlugin *plugin;
  gboolean ran; /* a run succeeded since prepare: there is a last run to time */
  const PqBackendVTable *vt;
  void *handle;
  PqModel *model;
  gint64 max_batch;
  int in_ndim, out_ndim;
  int64_t in_shape[PQ_MAX_DIMS], out_shape[PQ_MAX_DIMS]; /* per sample shapes with dim 0 = 1 */
  gint64 in_numel, out_numel;
  size_t n_inputs, n_outputs;
};

static void init_error(PqPluginError *e) {
  memset(e, 0, sizeof *e);
  e->struct_size = sizeof *e;
}

PqBackend *pq_backend_prepare(PqPlugin *plugin, const PqModel *model, int threads, gint64 max_batch,
                              const PqOptions *options, GError **error) {
  g_return_val_if_fail(plugin && model && max_batch >= 1, NULL);
  const PqPluginDesc *d = pq_plugin_desc(plugin);
  if (d->kind != PQ_KIND_BACKEND) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "plugin '%s' is a %s, not a backend", d->name,
                pq_plugin_kind_name(d->kind));
    return NULL;
  }
  const char *why;
  if (!pq_plugin_usable(plugin, &why)) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_NOT_USABLE, "backend '%s' is not usable on this machine: %s", d->name, why);
    return NULL;
  }
  const PqBackendVTable *vt = d->vtable;
  g_autoptr(PqPlan) plan = pq_model_plan(model, 1, error);
  if (!plan) return NULL;
  for (size_t s = 0; s < pq_plan_n_steps(plan); s++) {
    const PqNode *n = pq_plan_step(plan, s);
    if (!vt->supports_op(n->op)) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_UNSUPPORTED, "backend '%s' cannot run op '%s' (node '%s')", d->name,
                  n->op, n->name);
      return NULL;
    }
  }
  /* F16 and packed scales came with ABI 1.11: a backend built before reads every scale as a float */
  for (size_t i = 0; d->abi_minor < 11 && i < pq_model_n_tensors(model); i++) {
    const PqTensor *t = pq_model_tensor_at(model, i);
    if (pq_tensor_scales(t) && pq_tensor_dtype(pq_tensor_scales(t)) != PQ_DTYPE_F32) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_UNSUPPORTED,
                  "backend '%s' was built for plugin ABI %u.%u, before packed tensors could carry %s scales ('%s'): rebuild it "
                  "against ABI 1.11 or later, or quantize with F32 scales", d->name, d->abi_major, d->abi_minor,
                  pq_dtype_name(pq_tensor_dtype(pq_tensor_scales(t))), pq_tensor_name(t));
      return NULL;
    }
  }
  PqBackend *b = g_new0(PqBackend, 1);
  b->plugin = plugin;
  b->vt = vt;
  b->model = pq_model_ref((PqModel *)model);
  b->max_batch = max_batch;
  const PqGraph *g = model->graph;
  b->n_inputs = g->inputs->len;
  b->n_outputs = g->outputs->len;
  int vi = pq_plan_value_index(plan, pq_graph_input_name(g, 0));
  const int64_t *sh = pq_plan_value_shape(plan, vi, &b->in_ndim);
  memcpy(b->in_shape, sh, sizeof(int64_t) * (size_t)b->in_ndim);
  b->in_numel = pq_plan_value_numel(plan, vi);
  int vo = pq_plan_value_index(plan, pq_graph_output_name(g, 0));
  sh = pq_plan_value_shape(plan, vo, &b->out_ndim);
  memcpy(b->out_shape, sh, sizeof(int64_t) * (size_t)b->out_ndim);
  b->out_numel = pq_plan_value_numel(plan, vo);
  PqBackendConfig cfg = {sizeof cfg, threads, max_batch, options};
  PqPluginError perr;
  init_error(&perr);
  if (vt->prepare(model, &cfg, &b->handle, &perr) != PQ_OK) {
    g_autofree char *who = g_strdup_printf("backend '%s': prepare", d->name);
    pq_propagate_plugin_error(error, &perr, who);
    pq_model_unref(b->model);
    g_free(b);
    return NULL;
  }
  return b;
}

void pq_backend_free(PqBackend *b) {
  if (!b) return;
  b->vt->release(b->handle);
  pq_model_unref(b->model);
  g_free(b);
}

gboolean pq_backend_run(PqBackend *b, const PqTensorView *inputs, gsize n_inputs, PqTensorView *outputs,
                        gsize n_outputs, GError **error) {
  if (n_inputs != b->n_inputs || n_outputs != b->n_outputs) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "the model takes %zu inputs and gives %zu outputs", b->n_inputs,
                b->n_outputs);
    return FALSE;
  }
  for (gsize i = 0; i < n_inputs; i++)
    if (inputs[i].ndim < 1 || inputs[i].shape[0] < 1 || inputs[i].shape[0] > b->max_batch || !inputs[i].data) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "input %zu: batch must be 1..%" G_GINT64_FORMAT, i, b->max_batch);
      return FALSE;
    }
  PqPluginError perr;
  init_error(&perr);
  if (b->vt->run(b->handle, inputs, n_inputs, outputs, n_outputs, &perr) != PQ_OK) {
    g_autofree char *who = g_strdup_printf("backend '%s': run", pq_plugin_name(b->plugin));
    pq_propagate_plugin_error(error, &perr, who);
    b->ran = FALSE;
    return FALSE;
  }
  b->ran = TRUE;
  return TRUE;
}

static void fill_view(PqTensorView *v, int ndim, const int64_t *per_sample, gint64 batch, void *data) {
  pq_tensor_view_init(v, PQ_DTYPE_F32, ndim, per_sample, batch, data);
}

gboolean pq_backend_run_f32(PqBackend *b, const float *input, gint64 batch, float *output, GError **error) {
  if (b->n_inputs != 1 || b->n_outputs != 1) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "this call needs a model with one input and one output");
    return FALSE;
  }
  PqTensorView in, out;
  fill_view(&in, b->in_ndim, b->in_shape, batch, (void *)input);
  fill_view(&out, b->out_ndim, b->out_shape, batch, output);
  return pq_backend_run(b, &in, 1, &out, 1, error);
}

gint64 pq_backend_input_numel(const PqBackend *b) { return b->in_numel; }
gint64 pq_backend_output_numel(const PqBackend *b) { return b->out_numel; }
gint64 pq_backend_max_batch(const PqBackend *b) { return b->max_batch; }

gboolean pq_backend_memory(PqBackend *b, PqMemoryCounters *out, GError **error) {
  memset(out, 0, sizeof *out);
  out->struct_size = sizeof *out;
  out->weights_bytes = out->current_bytes = out->peak_bytes = out->device_free_bytes = out->device_total_bytes = -1;
  if (!b->vt->memory) return TRUE;
  PqPluginError perr;
  init_error(&perr);
  if (b->vt->memory(b->handle, out, &perr) != PQ_OK) {
    pq_propagate_plugin_error(error, &perr, "backend memory counters");
    return FALSE;
  }
  return TRUE;
}

gboolean pq_backend_last_timing(PqBackend *b, PqRunTiming *out, GError **error) {
  memset(out, 0, sizeof *out);
  out->struct_size = sizeof *out;
  out->total_ms = out->compute_ms = out->copy_in_ms = out->copy_out_ms = -1;
  if (b->vt->struct_size < offsetof(PqBackendVTable, last_run_timing) + sizeof b->vt->last_run_timing || !b->vt->last_run_timing ||
      !b->ran)
    return TRUE;
  PqPluginError perr;
  init_error(&perr);
  if (b->vt->last_run_timing(b->handle, out, &perr) != PQ_OK) {
    pq_propagate_plugin_error(error, &perr, "backend timing");
    return FALSE;
  }
  const struct {
    const char *name;
    double v;
  } f[] = {{"total_ms", out->total_ms}, {"compute_ms", out->compute_ms}, {"copy_in_ms", out->copy_in_ms}, {"copy_out_ms", out->copy_out_ms}};
  for (size_t i = 0; i < G_N_ELEMENTS(f); i++)
    if (!isfinite(f[i].v) || (f[i].v < 0 && f[i].v != -1)) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INTERNAL, "backend '%s' timing: %s = %g is neither a time nor -1",
                  pq_plugin_name(b->plugin), f[i].name, f[i].v);
      return FALSE;
    }
  return TRUE;
}

gboolean pq_evaluate_accuracy(PqBackend *b, const PqDataset *ds, double *accuracy, GError **error) {
  if (pq_dataset_sample_numel(ds) != b->in_numel) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID,
                "dataset %s has %" G_GINT64_FORMAT " values per sample, the model's input takes %" G_GINT64_FORMAT,
                pq_dataset_name(ds), pq_dataset_sample_numel(ds), b->in_numel);
    return FALSE;
  }
  if (!pq_dataset_labels(ds)) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "dataset %s has no labels (no labels file): accuracy needs them", pq_dataset_name(ds));
    return FALSE;
  }
  if (b->out_numel < pq_dataset_n_classes(ds)) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "the model gives %" G_GINT64_FORMAT " outputs per sample for %d classes",
                b->out_numel, pq_dataset_n_classes(ds));
    return FALSE;
  }
  gint64 bs = b->max_batch, n = pq_dataset_n_samples(ds), correct = 0;
  g_autofree float *x = g_new(float, bs * b->in_numel);
  g_autofree float *y = g_new(float, bs * b->out_numel);
  g_autofree guint8 *labels = g_new(guint8, bs);
  for (gint64 start = 0; start < n; start += bs) {
    gint64 got = pq_dataset_get_batch(ds, start, bs, x, labels);
    if (!pq_backend_run_f32(b, x, got, y, error)) return FALSE;
    for (gint64 i = 0; i < got; i++) {
      const float *row = y + i * b->out_numel;
      gint64 best = 0;
      for (gint64 c = 1; c < b->out_numel; c++)
        if (row[c] > row[best]) best = c;
      correct += best == labels[i];
    }
  }
  *accuracy = n ? (double)correct / (double)n : 0.0;
  return TRUE;
}

/* ---- compressors ---------------------------------------------------------------------------------- */

typedef struct {
  PqPlugin *backend;       /* for capturing activations; may be NULL */
  const PqModel *model;    /* the stage's input model */
  const PqModel *original; /* the model the chain started from */
} CalibrationHost;

const PqModel *pq_calibration_original(const PqCalibration *c) {
  const CalibrationHost *host = c ? c->host : NULL;
  return host ? host->original : NULL;
}

float *pq_calibration_capture(const PqCalibration *c, const char *value, int64_t *per_sample, PqPluginError *error) {
  return pq_calibration_capture_model(c, NULL, value, per_sample, error);
}

float *pq_calibration_capture_model(const PqCalibration *c, const PqModel *model, const char *value, int64_t *per_sample,
                                    PqPluginError *error) {
  const CalibrationHost *host = c ? c->host : NULL;
  if (!host || !c->inputs || c->n_samples < 1) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "no calibration samples to capture '%s' from", value);
    return NULL;
  }
  if (!model) model = host->model;
  g_autoptr(GError) err = NULL;
  g_autoptr(PqPlan) plan = pq_model_plan(model, 1, &err);
  if (!plan) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "%s", err->message);
    return NULL;
  }
  int v = pq_plan_value_index(plan, value);
  if (v < 0 || pq_plan_value_kind(plan, v) == PQ_VALUE_WEIGHT) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "the model has no activation named '%s' to capture", value);
    return NULL;
  }
  int64_t per = pq_plan_value_numel(plan, v), n = c->n_samples;
  float *out = malloc(sizeof(float) * (size_t)(n * per));
  if (!out) {
    pq_plugin_error_set(error, PQ_ERR_NOMEM, "out of memory capturing '%s'", value);
    return NULL;
  }
  *per_sample = per;
  if (pq_plan_value_kind(plan, v) == PQ_VALUE_INPUT) { /* the model's input: the calibration data itself */
    memcpy(out, c->inputs->data, sizeof(float) * (size_t)(n * per));
    return out;
  }
  if (!host->backend) {
    free(out);
    pq_plugin_error_set(error, PQ_ERR_NOT_USABLE, "no backend to capture activations with");
    return NULL;
  }
  g_autoptr(PqModel) probe_model = pq_model_copy(model);
  PqGraph *g = pq_model_graph(probe_model);
  gboolean is_output = FALSE;
  for (size_t i = 0; i < pq_graph_n_outputs(g); i++) is_output |= strcmp(pq_graph_output_name(g, i), value) == 0;
  if (!is_output) pq_graph_add_output(g, value);
  gint64 bs = MIN(n, 256);
  g_autoptr(PqBackend) b = pq_backend_prepare(host->backend, probe_model, 0, bs, NULL, &err);
  if (!b) {
    free(out);
    pq_plugin_error_set(error, PQ_ERR_INTERNAL, "capturing '%s': %s", value, err->message);
    return NULL;
  }
  g_autoptr(PqPlan) plan2 = pq_model_plan(probe_model, 1, &err);
  size_t n_out = pq_graph_n_outputs(g), want = 0;
  g_autofree PqTensorView *outs = g_new0(PqTensorView, n_out);
  g_autofree int64_t *numel = g_new0(int64_t, n_out);
  g_autoptr(GPtrArray) bufs = g_ptr_array_new_with_free_func(g_free);
  for (size_t i = 0; i < n_out; i++) {
    int vi = pq_plan_value_index(plan2, pq_graph_output_name(g, i)), nd;
    const int64_t *sh = pq_plan_value_shape(plan2, vi, &nd);
    numel[i] = pq_plan_value_numel(plan2, vi);
    float *buf = g_new(float, bs * numel[i]);
    g_ptr_array_add(bufs, buf);
    fill_view(&outs[i], nd, sh, bs, buf);
    if (strcmp(pq_graph_output_name(g, i), value) == 0) want = i;
  }
  PqTensorView in = *c->inputs;
  int64_t in_per = 1;
  for (int d = 1; d < in.ndim; d++) in_per *= in.shape[d];
  for (int64_t start = 0; start < n; start += bs) {
    int64_t got = MIN(bs, n - start);
    in.shape[0] = got;
    in.data = (float *)c->inputs->data + start * in_per;
    for (size_t i = 0; i < n_out; i++) outs[i].shape[0] = got;
    if (!pq_backend_run(b, &in, 1, outs, n_out, &err)) {
      free(out);
      pq_plugin_error_set(error, PQ_ERR_INTERNAL, "capturing '%s': %s", value, err->message);
      return NULL;
    }
    memcpy(out + start * per, outs[want].data, sizeof(float) * (size_t)(got * per));
  }
  return out;
}

float *pq_calibration_gram(const PqCalibration *c, const PqModel *model, const PqNode *node, int64_t *k_out, int64_t *rows_out,
                           PqPluginError *error) {
  const CalibrationHost *host = c ? c->host : NULL;
  const char *op = pq_node_op(node), *layer = pq_node_name(node);
  int is_conv = !strcmp(op, "conv2d");
  if ((!is_conv && strcmp(op, "linear")) || pq_node_n_inputs(node) < 2) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': a Gram matrix of inputs is for linear and conv2d layers, not %s", layer, op);
    return NULL;
  }
  if (is_conv && pq_node_get_int(node, "groups", 1) != 1) {
    pq_plugin_error_set(error, PQ_ERR_UNSUPPORTED, "layer '%s': a grouped convolution has one Gram matrix per group", layer);
    return NULL;
  }
  if (!host || c->n_samples < 1) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': no calibration samples", layer);
    return NULL;
  }
  if (!model) model = host->model;
  PqTensor *w = pq_model_tensor((PqModel *)model, pq_node_input(node, 1));
  if (!w || pq_tensor_ndim(w) != (is_conv ? 4 : 2)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': its weight '%s' is not a %s tensor of the model being compressed", layer,
                        pq_node_input(node, 1), is_conv ? "4-D" : "2-D");
    return NULL;
  }
  int64_t k = pq_tensor_cols(w), per = 0, rows;
  float *x = pq_calibration_capture_model(c, model, pq_node_input(node, 0), &per, error);
  if (!x) return NULL;
  float *gram = calloc((size_t)(k * k), sizeof(float));
  if (!gram) {
    free(x);
    pq_plugin_error_set(error, PQ_ERR_NOMEM, "layer '%s': out of memory for a %lld x %lld Gram matrix", layer, (long long)k, (long long)k);
    return NULL;
  }
  if (!is_conv) {
    if (per % k) {
      free(x);
      free(gram);
      pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': its input (%lld values a sample) is not rows of %lld", layer, (long long)per, (long long)k);
      return NULL;
    }
    rows = c->n_samples * (per / k);
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, (int)k, (int)rows, 1.0f, x, (int)k, 0.0f, gram, (int)k);
  } else {
    g_autoptr(GError) err = NULL;
    g_autoptr(PqPlan) plan = pq_model_plan(model, 1, &err);
    int xv = plan ? pq_plan_value_index(plan, pq_node_input(node, 0)) : -1, yv = plan ? pq_plan_value_index(plan, pq_node_output(node, 0)) : -1;
    int xnd = 0, ynd = 0;
    const int64_t *xs = xv >= 0 ? pq_plan_value_shape(plan, xv, &xnd) : NULL, *ys = yv >= 0 ? pq_plan_value_shape(plan, yv, &ynd) : NULL;
    const int64_t *ws = pq_tensor_shape(w);
    if (!xs || !ys || xnd != 4 || ynd != 4 || xs[1] != ws[1]) {
      free(x);
      free(gram);
      pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': cannot find its input and output shapes in the model being compressed", layer);
      return NULL;
    }
    size_t cnt;
    const int64_t *st = pq_node_get_ints(node, "strides", &cnt), *dl = pq_node_get_ints(node, "dilations", &cnt),
                  *pd = pq_node_get_ints(node, "pads", &cnt);
    PqConvGeometry geo = {xs[1], xs[2], xs[3], ws[2], ws[3], ys[2], ys[3], st ? st[0] : 1, st ? st[1] : 1,
                          dl ? dl[0] : 1, dl ? dl[1] : 1, pd ? pd[0] : 0, pd ? pd[1] : 0};
    int64_t ohw = geo.oh * geo.ow;
    float *col = malloc(sizeof(float) * (size_t)(k * ohw));
    if (!col) {
      free(x);
      free(gram);
      pq_plugin_error_set(error, PQ_ERR_NOMEM, "layer '%s': out of memory", layer);
      return NULL;
    }
    for (int64_t s = 0; s < c->n_samples; s++) { /* G += col colᵀ, col [k, positions] */
      pq_im2col(x + s * per, &geo, col);
      cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)k, (int)ohw, 1.0f, col, (int)ohw, 1.0f, gram, (int)k);
    }
    free(col);
    rows = c->n_samples * ohw;
  }
  free(x);
  float inv = 1.0f / (float)rows;
  for (int64_t i = 0; i < k; i++)
    for (int64_t j = 0; j <= i; j++) gram[j * k + i] = gram[i * k + j] *= inv;
  int64_t bad = pq_first_non_finite(gram, k * k);
  if (bad >= 0) { /* what every user of it would trip on later, less clearly */
    free(gram);
    pq_plugin_error_set(error, PQ_ERR_INVALID, "layer '%s': the Gram matrix of its input '%s' holds a non-finite value at %lld (inputs beyond float32's range on the calibration samples)",
                        layer, pq_node_input(node, 0), (long long)bad);
    return NULL;
  }
  *k_out = k;
  if (rows_out) *rows_out = rows;
  return gram;
}

PqModel *pq_compressor_run_full(PqPlugin *plugin, const PqModel *model, const PqOptions *options,
                                const PqDataset *calibration_set, gint64 max_samples, PqPlugin *capture_backend,
                                GError **error) {
  return pq_compressor_run_chained(plugin, model, model, options, calibration_set, max_samples, capture_backend, error);
}

PqModel *pq_compressor_run_chained(PqPlugin *plugin, const PqModel *model, const PqModel *original, const PqOptions *options,
                                   const PqDataset *calibration_set, gint64 max_samples, PqPlugin *capture_backend, GError **error) {
  const PqPluginDesc *d = pq_plugin_desc(plugin);
  if (d->kind != PQ_KIND_COMPRESSOR) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "plugin '%s' is a %s, not a compressor", d->name,
                pq_plugin_kind_name(d->kind));
    return NULL;
  }
  const PqCompressorVTable *vt = d->vtable;
  g_autoptr(PqOptions) own_opts = NULL;
  if (!options) {
    own_opts = pq_options_new(d->options_schema, d->name, error);
    if (!own_opts || !pq_options_add_layer_selection(own_opts, error)) return NULL;
    options = own_opts;
  }
  if (!pq_model_validate(model, error)) return NULL;
  CalibrationHost host = {capture_backend, model, original ? original : model};
  PqCalibration calib = {sizeof calib, 0, 0, NULL, &host, NULL};
  PqTensorView view;
  g_autofree float *cal_data = NULL;
  g_autofree guint8 *cal_labels = NULL;
  gint64 want = vt->struct_size >= offsetof(PqCompressorVTable, calibration_samples) + sizeof(void *) && vt->calibration_samples
                    ? vt->calibration_samples(options)
                    : 0;
  if (want > 0) {
    if (!calibration_set) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "compressor '%s' needs calibration samples (up to %" G_GINT64_FORMAT ") and no calibration dataset was given",
                  d->name, want);
      return NULL;
    }
    int nd;
    const int64_t *shape = pq_graph_input_shape(model->graph, 0, &nd);
    int64_t per = pq_dataset_sample_numel(calibration_set);
    if (max_samples > 0) want = MIN(want, max_samples);
    want = MIN(want, pq_dataset_n_samples(calibration_set));
    cal_data = g_new(float, want * per);
    gboolean labelled = pq_dataset_labels(calibration_set) != NULL;
    if (labelled) cal_labels = g_new(guint8, want);
    gint64 got = pq_dataset_get_batch(calibration_set, 0, want, cal_data, cal_labels);
    fill_view(&view, nd, shape, got, cal_data);
    calib.n_samples = got;
    calib.inputs = &view;
    calib.labels = cal_labels;
  }
  PqModel *out = NULL;
  PqPluginError perr;
  init_error(&perr);
  if (vt->compress(model, options, want > 0 ? &calib : NULL, &out, &perr) != PQ_OK) {
    g_autofree char *who = g_strdup_printf("compressor '%s'", d->name);
    pq_propagate_plugin_error(error, &perr, who);
    if (out) pq_model_unref(out);
    return NULL;
  }
  if (!out || out == model) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INTERNAL, "compressor '%s' returned %s", d->name,
                out ? "its input model instead of a new one" : "no model");
    return NULL;
  }
  g_autoptr(GError) verr = NULL;
  if (!pq_model_validate(out, &verr)) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INTERNAL, "compressor '%s' returned an invalid model: %s", d->name, verr->message);
    pq_model_unref(out);
    return NULL;
  }
  return out;
}

PqModel *pq_compressor_run(PqPlugin *plugin, const PqModel *model, const PqOptions *options,
                           const PqDataset *calibration_set, GError **error) {
  return pq_compressor_run_full(plugin, model, options, calibration_set, 0, NULL, error);
}

/* ---- probes: runner and metric sink -------------------------------------------------------------- */

struct PqRunner {
  PqBackend *baseline, *compressed;
};

int pq_runner_run(PqRunner *r, int role, const PqTensorView *inputs, size_t n_inputs, PqTensorView *outputs,
                  size_t n_outputs, PqPluginError *error) {
  PqBackend *b = role == PQ_MODEL_COMPRESSED ? r->compressed : r->baseline;
  g_autoptr(GError) err = NULL;
  if (!pq_backend_run(b, inputs, n_inputs, outputs, n_outputs, &err)) {
    pq_plugin_error_set(error, err->domain == PQ_PLUGIN_CALL_ERROR ? err->code : PQ_ERR_INTERNAL, "%s", err->message);
    return err->domain == PQ_PLUGIN_CALL_ERROR ? err->code : PQ_ERR_INTERNAL;
  }
  return PQ_OK;
}

int pq_runner_last_timing(PqRunner *r, int role, PqRunTiming *out, PqPluginError *error) {
  g_autoptr(GError) err = NULL;
  if (!pq_backend_last_timing(role == PQ_MODEL_COMPRESSED ? r->compressed : r->baseline, out, &err)) {
    pq_plugin_error_set(error, PQ_ERR_INTERNAL, "%s", err->message);
    return PQ_ERR_INTERNAL;
  }
  return PQ_OK;
}

int64_t pq_runner_max_batch(const PqRunner *r) { return r->baseline->max_batch; }

int pq_runner_memory(PqRunner *r, int role, PqMemoryCounters *out, PqPluginError *error) {
  g_autoptr(GError) err = NULL;
  if (!pq_backend_memory(role == PQ_MODEL_COMPRESSED ? r->compressed : r->baseline, out, &err)) {
    pq_plugin_error_set(error, PQ_ERR_INTERNAL, "%s", err->message);
    return PQ_ERR_INTERNAL;
  }
  return PQ_OK;
}

struct PqMetricSink {
  GPtrArray *metrics;
};

static void metric_free(gpointer p) {
  PqMetric *m = p;
  g_free(m->name);
  g_free(m->unit);
  if (m->samples) g_array_unref(m->samples);
  g_free(m);
}

void pq_metrics_add(PqMetricSink *sink, const char *name, double value, const char *unit, PqBetter better) {
  g_return_if_fail(sink && name);
  PqMetric *m = g_new0(PqMetric, 1);
  m->name = g_strdup(name);
  m->value = value;
  m->unit = g_strdup(unit ? unit : "");
  m->better = better;
  g_ptr_array_add(sink->metrics, m);
}

void pq_metrics_add_samples(PqMetricSink *sink, const char *name, const double *samples, size_t n) {
  for (guint i = 0; i < sink->metrics->len; i++) {
    PqMetric *m = sink->metrics->pdata[i];
    if (strcmp(m->name, name) != 0) continue;
    if (!m->samples) m->samples = g_array_new(FALSE, FALSE, sizeof(double));
    g_array_append_vals(m->samples, samples, (guint)n);
    return;
  }
}

GPtrArray *pq_probe_run(PqPlugin *probe, PqPlugin *backend_plugin, const PqModel *baseline, const PqModel *compressed,
                        const PqDataset *dataset, const PqOptions *options, int threads, gint64 max_batch, GError **error) {
  return pq_probe_run_full(probe, backend_plugin, NULL, baseline, compressed, dataset, options, threads, max_batch, error);
}

GPtrArray *pq_probe_run_full(PqPlugin *probe, PqPlugin *backend_plugin, const PqOptions *backend_options, const PqModel *baseline,
                             const PqModel *compressed, const PqDataset *dataset, const PqOptions *options, int threads,
                             gint64 max_batch, GError **error) {
  const PqPluginDesc *d = pq_plugin_desc(probe);
  if (d->kind != PQ_KIND_PROBE) {
    g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID, "plugin '%s' is a %s, not a probe", d->name, pq_plugin_kind_name(d->kind));
    return NULL;
  }
  g_autoptr(PqOptions) own_opts = NULL;
  if (!options) {
    own_opts = pq_options_new(d->options_schema, d->name, error);
    if (!own_opts) return NULL;
    options = own_opts;
  }
  g_autoptr(PqBackend) bb = pq_backend_prepare(backend_plugin, baseline, threads, max_batch, backend_options, error);
  if (!bb) return NULL;
  g_autoptr(PqBackend) bc = pq_backend_prepare(backend_plugin, compressed, threads, max_batch, backend_options, error);
  if (!bc) return NULL;
  PqRunner runner = {bb, bc};
  PqMetricSink sink = {g_ptr_array_new_with_free_func(metric_free)};
  PqProbeContext ctx = {sizeof ctx, 0, baseline, compressed, dataset, &runner, options};
  PqPluginError perr;
  init_error(&perr);
  const PqProbeVTable *vt = d->vtable;
  if (vt->observe(&ctx, &sink, &perr) != PQ_OK) {
    g_autofree char *who = g_strdup_printf("probe '%s'", d->name);
    pq_propagate_plugin_error(error, &perr, who);
    g_ptr_array_unref(sink.metrics);
    return NULL;
  }
  for (guint i = 0; i < sink.metrics->len; i++) {
    PqMetric *m = sink.metrics->pdata[i];
    if (!isfinite(m->value)) {
      g_set_error(error, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INTERNAL, "probe '%s': metric '%s' is not a finite number", d->name, m->name);
      g_ptr_array_unref(sink.metrics);
      return NULL;
    }
  }
  return sink.metrics;
}
