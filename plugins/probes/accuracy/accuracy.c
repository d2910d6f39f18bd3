/* accuracy.c — the accuracy probe: top-1 and top-5 of both models on the evaluation set, degradation in
 * percentage points, and fidelity to the baseline's outputs on the same inputs: top-1 agreement, mean KL
 * divergence of the output distributions, output RMSE. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdlib.h>

/* Outputs that already are distributions (non-negative, summing to 1) are used as they are; others get a
 * softmax. */
static void to_probs(const float *y, int64_t c, double *p) {
  double sum = 0, mn = INFINITY, mx = -INFINITY;
  for (int64_t j = 0; j < c; j++) {
    sum += y[j];
    mn = fmin(mn, y[j]);
    mx = fmax(mx, y[j]);
  }
  if (mn >= 0 && fabs(sum - 1.0) < 1e-3) {
    for (int64_t j = 0; j < c; j++) p[j] = y[j] / sum;
    return;
  }
  sum = 0;
  for (int64_t j = 0; j < c; j++) sum += (p[j] = exp((double)y[j] - mx));
  for (int64_t j = 0; j < c; j++) p[j] /= sum;
}

static int rank_of(const float *y, int64_t c, int label) {
  int r = 0;
  for (int64_t j = 0; j < c; j++) r += y[j] > y[label];
  return r;
}

static PqStatus accuracy_observe(const PqProbeContext *ctx, PqMetricSink *sink, PqPluginError *err) {
  const PqDataset *ds = ctx->dataset;
  if (!ds) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "the accuracy probe needs a dataset");
    return PQ_ERR_INVALID;
  }
  int nd;
  const int64_t *ishape = pq_graph_input_shape(pq_model_const_graph(ctx->baseline), 0, &nd);
  int64_t per = pq_dataset_sample_numel(ds), n = pq_dataset_n_samples(ds), c = pq_dataset_n_classes(ds);
  if (c < 1) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "the accuracy probe needs labels, and dataset %s has none (no labels file)", pq_dataset_name(ds));
    return PQ_ERR_INVALID;
  }
  int64_t limit = pq_options_get_int(ctx->options, "samples", 0);
  if (limit > 0 && limit < n) n = limit;
  int64_t bs = pq_runner_max_batch(ctx->runner);
  float *x = malloc(sizeof(float) * (size_t)(bs * per)), *ya = malloc(sizeof(float) * (size_t)(bs * c)),
        *yb = malloc(sizeof(float) * (size_t)(bs * c));
  uint8_t *labels = malloc((size_t)bs);
  double *pa = malloc(sizeof(double) * (size_t)c), *pb = malloc(sizeof(double) * (size_t)c);
  int64_t top1a = 0, top1b = 0, top5a = 0, top5b = 0, agree = 0;
  double kl = 0, se = 0;
  PqStatus st = PQ_OK;
  for (int64_t start = 0; start < n && st == PQ_OK; start += bs) {
    int64_t got = pq_dataset_get_batch(ds, start, bs < n - start ? bs : n - start, x, labels);
    PqTensorView in = {sizeof in, PQ_DTYPE_F32, nd, 0, {0}, x}, out = {sizeof out, PQ_DTYPE_F32, 2, 0, {got, c}, ya};
    for (int d = 0; d < nd; d++) in.shape[d] = ishape[d];
    in.shape[0] = got;
    st = (PqStatus)pq_runner_run(ctx->runner, PQ_MODEL_BASELINE, &in, 1, &out, 1, err);
    out.data = yb;
    if (st == PQ_OK) st = (PqStatus)pq_runner_run(ctx->runner, PQ_MODEL_COMPRESSED, &in, 1, &out, 1, err);
    for (int64_t i = 0; st == PQ_OK && i < got; i++) {
      const float *a = ya + i * c, *b = yb + i * c;
      int ra = rank_of(a, c, labels[i]), rb = rank_of(b, c, labels[i]);
      top1a += ra == 0;
      top1b += rb == 0;
      top5a += ra < 5;
      top5b += rb < 5;
      int64_t aa = 0, bb = 0;
      for (int64_t j = 1; j < c; j++) {
        if (a[j] > a[aa]) aa = j;
        if (b[j] > b[bb]) bb = j;
      }
      agree += aa == bb;
      to_probs(a, c, pa);
      to_probs(b, c, pb);
      for (int64_t j = 0; j < c; j++) {
        if (pa[j] > 0) kl += pa[j] * (log(fmax(pa[j], 1e-30)) - log(fmax(pb[j], 1e-30))); /* one floor for both: equal outputs give 0 */
        se += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
      }
    }
  }
  free(x);
  free(ya);
  free(yb);
  free(labels);
  free(pa);
  free(pb);
  if (st != PQ_OK) return st;
  double acc_b = 100.0 * (double)top1a / (double)n, acc_c = 100.0 * (double)top1b / (double)n;
  pq_metrics_add(sink, "accuracy.top1", acc_c, "%", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "accuracy.baseline_top1", acc_b, "%", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "accuracy.degradation", acc_b - acc_c, "pp", PQ_BETTER_LOWER);
  if (c >= 5) {
    pq_metrics_add(sink, "accuracy.top5", 100.0 * (double)top5b / (double)n, "%", PQ_BETTER_HIGHER);
    pq_metrics_add(sink, "accuracy.baseline_top5", 100.0 * (double)top5a / (double)n, "%", PQ_BETTER_HIGHER);
  }
  pq_metrics_add(sink, "accuracy.top1_agreement", 100.0 * (double)agree / (double)n, "%", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "accuracy.kl_divergence", kl / (double)n, "nats", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "accuracy.output_rmse", sqrt(se / (double)(n * c)), "", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "accuracy.samples", (double)n, "", PQ_BETTER_NONE);
  return PQ_OK;
}

static const PqProbeVTable vt = {.struct_size = sizeof(PqProbeVTable), .observe = accuracy_observe};
static const PqPluginDesc desc = {
    .struct_size = sizeof(PqPluginDesc), .abi_major = PQ_ABI_MAJOR, .abi_minor = PQ_ABI_MINOR, .kind = PQ_KIND_PROBE,
    .name = "accuracy", .version = "1.0.0",
    .description = "top-1/top-5 on the test set, degradation, and fidelity to the baseline (agreement, KL, RMSE)",
    .options_schema = "{\"samples\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 0, \"description\": \"evaluate the first N samples (0: all)\"}}",
    .vtable = &vt,
};
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &desc; }
