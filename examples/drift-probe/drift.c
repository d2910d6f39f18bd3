/* drift.c — an example probe plugin: how far the compressed model's outputs drift from the baseline's on
 * the first samples of the dataset (max and mean absolute difference, top-1 agreement). Build out of tree:
 *   cc -shared -fPIC -O2 drift.c $(pkg-config --cflags --libs pquant) -lm -o drift.so */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdlib.h>

static PqStatus drift_observe(const PqProbeContext *ctx, PqMetricSink *sink, PqPluginError *error) {
  if (!ctx->dataset) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "drift needs a dataset");
    return PQ_ERR_INVALID;
  }
  int64_t want = pq_options_get_int(ctx->options, "samples", 256);
  int64_t n = want < pq_dataset_n_samples(ctx->dataset) ? want : pq_dataset_n_samples(ctx->dataset);
  int64_t batch = pq_runner_max_batch(ctx->runner), per = pq_dataset_sample_numel(ctx->dataset);
  int nd;
  const int64_t *in_shape = pq_graph_input_shape(pq_model_const_graph(ctx->baseline), 0, &nd);
  const int classes = pq_dataset_n_classes(ctx->dataset);
  float *x = malloc(sizeof(float) * (size_t)(batch * per));
  float *a = malloc(sizeof(float) * (size_t)(batch * classes)), *b = malloc(sizeof(float) * (size_t)(batch * classes));
  double max_diff = 0, sum_diff = 0;
  int64_t agree = 0, seen = 0;
  PqStatus st = PQ_OK;
  for (int64_t start = 0; start < n && st == PQ_OK; start += batch) {
    int64_t got = pq_dataset_get_batch(ctx->dataset, start, batch < n - start ? batch : n - start, x, NULL);
    PqTensorView in = {sizeof in, PQ_DTYPE_F32, nd, 0, {0}, x};
    for (int d = 0; d < nd; d++) in.shape[d] = in_shape[d];
    in.shape[0] = got;
    PqTensorView out = {sizeof out, PQ_DTYPE_F32, 2, 0, {got, classes}, a};
    st = (PqStatus)pq_runner_run(ctx->runner, PQ_MODEL_BASELINE, &in, 1, &out, 1, error);
    out.data = b;
    if (st == PQ_OK) st = (PqStatus)pq_runner_run(ctx->runner, PQ_MODEL_COMPRESSED, &in, 1, &out, 1, error);
    for (int64_t i = 0; st == PQ_OK && i < got; i++) {
      int ba = 0, bb = 0;
      for (int c = 0; c < classes; c++) {
        double d = fabs((double)a[i * classes + c] - (double)b[i * classes + c]);
        max_diff = d > max_diff ? d : max_diff;
        sum_diff += d;
        if (a[i * classes + c] > a[i * classes + ba]) ba = c;
        if (b[i * classes + c] > b[i * classes + bb]) bb = c;
      }
      agree += ba == bb;
    }
    seen += got;
  }
  free(x);
  free(a);
  free(b);
  if (st != PQ_OK) return st;
  pq_metrics_add(sink, "drift.max_abs", max_diff, "", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "drift.mean_abs", seen ? sum_diff / (double)(seen * classes) : 0, "", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "drift.top1_agreement", seen ? 100.0 * (double)agree / (double)seen : 0, "%", PQ_BETTER_HIGHER);
  return PQ_OK;
}

static const PqProbeVTable drift_vtable = {.struct_size = sizeof(PqProbeVTable), .observe = drift_observe};

static const PqPluginDesc drift_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_PROBE,
    .name = "drift",
    .version = "1.0.0",
    .description = "example: output drift of the compressed model from the baseline",
    .options_schema = "{\"samples\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 256}}",
    .vtable = &drift_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &drift_desc; }
