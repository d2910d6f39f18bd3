/* latency.c — the latency probe: for each batch size, warm-up runs, then timed runs of the baseline and the
 * compressed model alternately (so drift hits both alike), each timed with CLOCK_MONOTONIC; mean, std, min,
 * max, p10, p50, p90, p99, throughput, speedup against the baseline, raw samples, and a flag when the
 * figures are unstable. Where the backend times its runs itself (a GPU's events), those figures come too:
 * the whole run and the compute alone, as the backend's clock saw them. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slower.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* *p grown to `cap` doubles; 0 (and *p as it was) when memory runs out */
static int grow(double **p, int cap) {
  double *q = realloc(*p, sizeof(double) * (size_t)cap);
  if (!q) return 0;
  *p = q;
  return 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *sorted, int n, double p) { /* nearest rank */
  int i = (int)ceil(p / 100.0 * n) - 1;
  return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void add_stats(PqMetricSink *sink, const char *prefix, const double *samples, int n, int64_t batch, int is_compressed) {
  double *s = malloc(sizeof(double) * (size_t)n), mean = 0, var = 0;
  memcpy(s, samples, sizeof(double) * (size_t)n);
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  for (int i = 0; i < n; i++) mean += s[i];
  mean /= n;
  for (int i = 0; i < n; i++) var += (s[i] - mean) * (s[i] - mean);
  double sd = n > 1 ? sqrt(var / (n - 1)) : 0, p50 = pct(s, n, 50);
  char key[96];
#define ADD(name, value, unit, better)                                                                             \
  do {                                                                                                             \
    snprintf(key, sizeof key, "%s.%s", prefix, name);                                                              \
    pq_metrics_add(sink, key, value, unit, better);                                                                \
  } while (0)
  ADD("mean_ms", mean, "ms", PQ_BETTER_LOWER);
  ADD("std_ms", sd, "ms", PQ_BETTER_LOWER);
  ADD("min_ms", s[0], "ms", PQ_BETTER_LOWER);
  ADD("max_ms", s[n - 1], "ms", PQ_BETTER_LOWER);
  ADD("p10_ms", pct(s, n, 10), "ms", PQ_BETTER_LOWER);
  ADD("p50_ms", p50, "ms", PQ_BETTER_LOWER);
  ADD("p90_ms", pct(s, n, 90), "ms", PQ_BETTER_LOWER);
  ADD("p99_ms", pct(s, n, 99), "ms", PQ_BETTER_LOWER);
  ADD("throughput", mean > 0 ? (double)batch / (mean / 1e3) : 0, "samples/s", PQ_BETTER_HIGHER);
  /* unstable: spread above 10% of the mean, extremes 50% off the median, or runs at the clock's resolution */
  int unstable = sd > 0.1 * mean || s[0] < 0.5 * p50 || s[n - 1] > 1.5 * p50 || s[0] < 0.001;
  ADD("unstable", unstable, "flag", PQ_BETTER_NONE);
  if (is_compressed) {
    snprintf(key, sizeof key, "%s.p50_ms", prefix);
    pq_metrics_add_samples(sink, key, samples, (size_t)n);
  }
  free(s);
#undef ADD
}

/* The backend's own timing of both models' runs, where it offers one (n runs of each, timed apart from the host's). */
static void add_backend_stats(PqMetricSink *sink, long long batch, double *tot_b, double *tot_c, double *cmp_b, double *cmp_c, int n) {
  qsort(tot_b, (size_t)n, sizeof(double), cmp_double);
  qsort(tot_c, (size_t)n, sizeof(double), cmp_double);
  qsort(cmp_b, (size_t)n, sizeof(double), cmp_double);
  qsort(cmp_c, (size_t)n, sizeof(double), cmp_double);
  double mean_b = 0, mean_c = 0;
  for (int i = 0; i < n; i++) {
    mean_b += tot_b[i];
    mean_c += tot_c[i];
  }
  char key[96];
  const struct {
    const char *fmt;
    double v;
    const char *unit;
    PqBetter better;
  } m[] = {{"latency.b%lld.backend_mean_ms", mean_c / n, "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.backend_p50_ms", pct(tot_c, n, 50), "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.backend_p99_ms", pct(tot_c, n, 99), "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.backend_compute_p50_ms", pct(cmp_c, n, 50), "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.baseline.backend_mean_ms", mean_b / n, "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.baseline.backend_p50_ms", pct(tot_b, n, 50), "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.baseline.backend_compute_p50_ms", pct(cmp_b, n, 50), "ms", PQ_BETTER_LOWER},
           {"latency.b%lld.backend_speedup", pct(tot_c, n, 50) > 0 ? pct(tot_b, n, 50) / pct(tot_c, n, 50) : 0, "x", PQ_BETTER_HIGHER}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    snprintf(key, sizeof key, m[i].fmt, batch);
    pq_metrics_add(sink, key, m[i].v, m[i].unit, m[i].better);
  }
}

static PqStatus latency_observe(const PqProbeContext *ctx, PqMetricSink *sink, PqPluginError *err) {
  const char *list = pq_options_get_string(ctx->options, "batch_sizes", "1,64");
  int runs = (int)pq_options_get_int(ctx->options, "runs", 100), warmup = (int)pq_options_get_int(ctx->options, "warmup", 10);
  double min_ms = pq_options_get_float(ctx->options, "min_time_ms", 0), warmup_ms = pq_options_get_float(ctx->options, "warmup_ms", 200);
  int first_batch = 1;
  int nd;
  const int64_t *ishape = pq_graph_input_shape(pq_model_const_graph(ctx->baseline), 0, &nd);
  int64_t per = 1;
  for (int d = 1; d < nd; d++) per *= ishape[d];
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *end;
    long long batch = strtoll(tok, &end, 10);
    if (*end || batch < 1 || batch > pq_runner_max_batch(ctx->runner)) {
      pq_plugin_error_set(err, PQ_ERR_INVALID, "batch size '%s' must be 1..%lld", tok, (long long)pq_runner_max_batch(ctx->runner));
      return PQ_ERR_INVALID;
    }
    /* real inputs where there is a dataset, else a fixed pattern */
    float *x = calloc((size_t)(batch * per), sizeof(float)), *y = NULL;
    if (!x) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "latency: out of memory for batch %lld", batch);
      return PQ_ERR_NOMEM;
    }
    if (ctx->dataset && pq_dataset_sample_numel(ctx->dataset) == per) pq_dataset_get_batch(ctx->dataset, 0, batch, x, NULL);
    else
      for (int64_t i = 0; i < batch * per; i++) x[i] = (float)(i % 17) / 17.0f;
    /* the output view: the graph output's shape with this batch */
    const PqGraph *g = pq_model_const_graph(ctx->baseline);
    PqPlan *plan = pq_plan_new(ctx->compressed, 1, err);
    if (!plan) {
      free(x);
      return PQ_ERR_INVALID;
    }
    int vo = pq_plan_value_index(plan, pq_graph_output_name(g, 0)), ond;
    const int64_t *os = pq_plan_value_shape(plan, vo, &ond);
    PqTensorView out = {sizeof out, PQ_DTYPE_F32, ond, 0, {0}, NULL};
    for (int d = 0; d < ond; d++) out.shape[d] = os[d];
    out.shape[0] = batch;
    y = malloc(sizeof(float) * (size_t)(batch * pq_plan_value_numel(plan, vo)));
    out.data = y;
    pq_plan_free(plan);
    PqTensorView in = {sizeof in, PQ_DTYPE_F32, nd, 0, {0}, x};
    for (int d = 0; d < nd; d++) in.shape[d] = ishape[d];
    in.shape[0] = batch;
    int cap = runs, n = 0, timed = 1; /* timed: the backend timed every run of its own pass so far */
    double *tb = malloc(sizeof(double) * (size_t)cap), *tc = malloc(sizeof(double) * (size_t)cap);
    /* the backend's own timings: of at most `runs` runs, however many the host timed */
    double *db = malloc(sizeof(double) * (size_t)runs), *dc = malloc(sizeof(double) * (size_t)runs);
    double *kb = malloc(sizeof(double) * (size_t)runs), *kc = malloc(sizeof(double) * (size_t)runs);
    PqStatus st = x && y && tb && tc && db && dc && kb && kc ? PQ_OK : PQ_ERR_NOMEM;
    if (st != PQ_OK) pq_plugin_error_set(err, PQ_ERR_NOMEM, "latency: out of memory for batch %lld", batch);
    /* the first batch size also warms up for warmup_ms: threads that what ran before left spinning (OpenBLAS's
       spin about 0.1 s after their last work) are gone by then; timed at once, one method in about ten read
       twice its time, and its baseline too */
    double warm_from = now_ms();
    for (int i = 0; st == PQ_OK && (i < warmup || (first_batch && now_ms() - warm_from < warmup_ms)); i++) {
      st = (PqStatus)pq_runner_run(ctx->runner, PQ_MODEL_BASELINE, &in, 1, &out, 1, err);
      if (st == PQ_OK) st = (PqStatus)pq_runner_run(ctx->runner, PQ_MODEL_COMPRESSED, &in, 1, &out, 1, err);
    }
    first_batch = 0;
    double started = now_ms();
    while (st == PQ_OK && (n < runs || now_ms() - started < min_ms)) {
      if (n == cap) { /* --min-time asked for more runs than planned */
        cap *= 2;
        if (!grow(&tb, cap) || !grow(&tc, cap)) {
          pq_plugin_error_set(err, PQ_ERR_NOMEM, "latency: out of memory for %d timings", cap);
          st = PQ_ERR_NOMEM;
          break;
        }
      }
      /* the two in turn, which first swapped every pair: the second of a pair finds the input in cache and the
         other's threads awake, so a fixed order would favour one of them */
      const PqModelRole first = n % 2 ? PQ_MODEL_COMPRESSED : PQ_MODEL_BASELINE, second = n % 2 ? PQ_MODEL_BASELINE : PQ_MODEL_COMPRESSED;
      double t0 = now_ms();
      st = (PqStatus)pq_runner_run(ctx->runner, first, &in, 1, &out, 1, err);
      double t1 = now_ms();
      if (st == PQ_OK) st = (PqStatus)pq_runner_run(ctx->runner, second, &in, 1, &out, 1, err);
      double t2 = now_ms();
      tb[n] = n % 2 ? t2 - t1 : t1 - t0;
      tc[n] = n % 2 ? t1 - t0 : t2 - t1;
      n++;
    }
    /* Then the backend's own timing of as many runs (at most `runs`), apart: a backend may record its timing
       only in runs whose timing was asked for before they ran (the CUDA backend's events cost a small model's
       run several microseconds), so the runs timed on the host above asked for none. A first request of each
       model, whose answer is not kept, asks for its next run's timing; each request after a run asks for the
       next one's. */
    const int nd_runs = n < runs ? n : runs;
    for (int i = -1; st == PQ_OK && timed && i < nd_runs; i++) {
      PqRunTiming r[2] = {{sizeof r[0], 0, -1, -1, -1, -1}, {sizeof r[1], 0, -1, -1, -1, -1}};
      for (int k = 0; st == PQ_OK && k < 2; k++) {
        const int role = (i < 0 || i % 2 == 0) ? k : 1 - k; /* which runs first swapped every pair, as above */
        if (i >= 0) st = (PqStatus)pq_runner_run(ctx->runner, role, &in, 1, &out, 1, err);
        if (st == PQ_OK) st = (PqStatus)pq_runner_last_timing(ctx->runner, role, &r[role], err);
      }
      if (st != PQ_OK || i < 0) continue;
      timed = r[0].total_ms >= 0 && r[1].total_ms >= 0 && r[0].compute_ms >= 0 && r[1].compute_ms >= 0;
      db[i] = r[PQ_MODEL_BASELINE].total_ms; /* (i < nd_runs <= runs) */
      dc[i] = r[PQ_MODEL_COMPRESSED].total_ms;
      kb[i] = r[PQ_MODEL_BASELINE].compute_ms;
      kc[i] = r[PQ_MODEL_COMPRESSED].compute_ms;
    }
    if (st == PQ_OK && n > 0) {
      char prefix[64];
      snprintf(prefix, sizeof prefix, "latency.b%lld", batch);
      add_stats(sink, prefix, tc, n, batch, 1);
      snprintf(prefix, sizeof prefix, "latency.b%lld.baseline", batch);
      add_stats(sink, prefix, tb, n, batch, 0);
      double *sb = malloc(sizeof(double) * (size_t)n), *sc = malloc(sizeof(double) * (size_t)n);
      memcpy(sb, tb, sizeof(double) * (size_t)n);
      memcpy(sc, tc, sizeof(double) * (size_t)n);
      qsort(sb, (size_t)n, sizeof(double), cmp_double);
      qsort(sc, (size_t)n, sizeof(double), cmp_double);
      char key[96];
      snprintf(key, sizeof key, "latency.b%lld.speedup", batch);
      pq_metrics_add(sink, key, pct(sc, n, 50) > 0 ? pct(sb, n, 50) / pct(sc, n, 50) : 0, "x", PQ_BETTER_HIGHER);
      /* slower than the baseline beyond noise (slower.h) */
      snprintf(key, sizeof key, "latency.b%lld.slower", batch);
      pq_metrics_add(sink, key, pq_latency_slower(pct(sc, n, 50), pct(sb, n, 50), pct(sb, n, 90)), "flag", PQ_BETTER_NONE);
      snprintf(key, sizeof key, "latency.b%lld.runs", batch);
      pq_metrics_add(sink, key, n, "", PQ_BETTER_NONE);
      free(sb);
      free(sc);
      if (timed && nd_runs > 0) add_backend_stats(sink, batch, db, dc, kb, kc, nd_runs);
    }
    free(x);
    free(y);
    free(tb);
    free(tc);
    free(db);
    free(dc);
    free(kb);
    free(kc);
    if (st != PQ_OK) return st;
  }
  return PQ_OK;
}

static const PqProbeVTable vt = {.struct_size = sizeof(PqProbeVTable), .observe = latency_observe};
static const PqPluginDesc desc = {
    .struct_size = sizeof(PqPluginDesc), .abi_major = PQ_ABI_MAJOR, .abi_minor = PQ_ABI_MINOR, .kind = PQ_KIND_PROBE,
    .name = "latency", .version = "1.0.0",
    .description = "latency per batch size: warm-up, timed runs alternating with the baseline, percentiles, speedup",
    .options_schema = "{\"batch_sizes\": {\"type\": \"string\", \"default\": \"1,64\", \"description\": \"comma-separated\"},"
                      " \"runs\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000000, \"default\": 100},"
                      " \"warmup\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100000, \"default\": 10},"
                      " \"warmup_ms\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 60000, \"default\": 200,"
                      "  \"description\": \"the first batch size warms up for at least this long too\"},"
                      " \"min_time_ms\": {\"type\": \"number\", \"minimum\": 0, \"default\": 0, \"description\": \"keep timing until this much time has passed\"}}",
    .vtable = &vt,
};
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &desc; }
