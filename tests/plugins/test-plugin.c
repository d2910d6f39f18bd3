/* test-plugin.c — plugins for the registry tests, one source built many ways:
 *   (default)     a compressor "test_identity" that copies the model and records an option (with gram=LAYER,
 *                 it also keeps that layer's pq_calibration_gram() as the tensor "test.gram")
 *   TEST_PROBE    a probe "test_probe" that runs both models once and reports their output difference
 *   TEST_UNUSABLE a backend "test_unusable" that says it is not usable here
 *   KERNEL_BUILTIN a compressor that declares a kernel for the built-in op "linear" (refused)
 *   KERNEL_NULL_TABLE, KERNEL_BAD_NAME, KERNEL_NO_RUN, KERNEL_TWICE  op-kernel tables that are refused: NULL
 *                 with n_kernels 1, op "Bad-Op", run NULL, one op declared twice
 *   KERNEL_SHARED an op "test_shared_op" with its kernel (two such plugins: the second is refused)
 *   TIMING_NAN    a backend "test_timing_nan" that runs (zeros out) and times its runs as NaN (an error)
 *   OLD_MINOR     a backend "test_old_minor" built as for ABI 1.10 (before F16 scales) that runs (zeros out)
 *   TIMING_ORDER  a backend "test_timing_order" that runs (zeros out) and times each run as 1 ms when it is the
 *                 first run of a pair (an odd run of the process) and 2 ms when the second: the latency
 *                 probe's mean of a model shows which of a pair it ran as
 * and deliberately broken ones:
 *   BAD_MAJOR, BAD_MINOR, MISSING_FN, DUP_NAME, UNDEFINED, NO_ENTRY, BAD_NAME, BAD_SCHEMA, NULL_DESC */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* every variant defines all the tables; each uses only some */
#define MAYBE_UNUSED __attribute__((unused))

#ifdef UNDEFINED
extern int pq_test_symbol_that_does_not_exist(void);
int (*volatile keep_undefined)(void) = pq_test_symbol_that_does_not_exist;
#endif

MAYBE_UNUSED static PqStatus identity_compress(const PqModel *in, const PqOptions *options, const PqCalibration *calibration,
                                  PqModel **out, PqPluginError *error) {
#ifdef CRASH
  raise(SIGSEGV); /* a compressor that crashes: the suite must survive it */
#endif
#ifdef HANG
  for (;;) pause(); /* one that never returns */
#endif
  if (pq_options_get_int(options, "fail", 0)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "asked to fail (fail=%lld)", (long long)pq_options_get_int(options, "fail", 0));
    return PQ_ERR_INVALID;
  }
  *out = pq_model_copy(in);
  const char *gram_layer = pq_options_get_string(options, "gram", "");
  if (gram_layer[0]) { /* the Gram matrix of that layer's inputs, kept as the tensor "test.gram" */
    PqGraph *g = pq_model_graph(*out);
    PqNode *node = NULL;
    for (size_t i = 0; i < pq_graph_n_nodes(g) && !node; i++)
      if (!strcmp(pq_node_name(pq_graph_node(g, i)), gram_layer)) node = pq_graph_node(g, i);
    int64_t k = 0, rows = 0;
    float *gm = node ? pq_calibration_gram(calibration, NULL, node, &k, &rows, error) : NULL;
    if (!gm) {
      if (!node) pq_plugin_error_set(error, PQ_ERR_INVALID, "no layer '%s'", gram_layer);
      pq_model_unref(*out);
      *out = NULL;
      return (PqStatus)error->code;
    }
    int64_t shape[2] = {k, k};
    PqTensor *t = pq_tensor_new("test.gram", PQ_DTYPE_F32, 2, shape);
    memcpy(pq_tensor_mutable_data(t), gm, sizeof(float) * (size_t)(k * k));
    pq_model_set_tensor(*out, t);
    pq_tensor_unref(t);
    free(gm);
    char rows_s[32];
    snprintf(rows_s, sizeof rows_s, "%lld", (long long)rows);
    pq_model_set_meta(*out, "test.gram_rows", rows_s);
  }
  char buf[64];
  snprintf(buf, sizeof buf, "%lld", (long long)(calibration ? calibration->n_samples : 0));
  pq_model_set_meta(*out, "test.calibration_samples", buf);
  pq_model_set_meta(*out, "test.tag", pq_options_get_string(options, "tag", "none"));
  return PQ_OK;
}

static int64_t identity_calibration(const PqOptions *options) { return pq_options_get_int(options, "calibration", 0); }

#if defined(KERNEL_BUILTIN) || defined(KERNEL_NULL_TABLE) || defined(KERNEL_BAD_NAME) || defined(KERNEL_NO_RUN) || \
    defined(KERNEL_TWICE) || defined(KERNEL_SHARED)
#define HAS_KERNELS 1
#endif

#ifdef HAS_KERNELS
MAYBE_UNUSED static PqStatus k_infer(const PqNode *n, const PqTensorView *i, size_t c, PqTensorView *o, PqPluginError *e) {
  (void)n, (void)i, (void)c, (void)o, (void)e;
  return PQ_OK;
}
MAYBE_UNUSED static PqStatus k_run(const PqNode *n, const PqModel *m, const PqTensorView *i, size_t c, PqTensorView *o, void *w, PqPluginError *e) {
  (void)n, (void)m, (void)i, (void)c, (void)o, (void)w, (void)e;
  return PQ_OK;
}
#if defined(KERNEL_BUILTIN) /* a kernel for a built-in op */
static const PqOpKernel kernels[] = {{.struct_size = sizeof(PqOpKernel), .op = "linear", .infer = k_infer, .run = k_run}};
#elif defined(KERNEL_NULL_TABLE)
static const PqOpKernel *const kernels = NULL;
#elif defined(KERNEL_BAD_NAME)
static const PqOpKernel kernels[] = {{.struct_size = sizeof(PqOpKernel), .op = "Bad-Op", .infer = k_infer, .run = k_run}};
#elif defined(KERNEL_NO_RUN)
static const PqOpKernel kernels[] = {{.struct_size = sizeof(PqOpKernel), .op = "test_no_run", .infer = k_infer}};
#elif defined(KERNEL_TWICE)
static const PqOpKernel kernels[] = {{.struct_size = sizeof(PqOpKernel), .op = "test_twice", .infer = k_infer, .run = k_run},
                                     {.struct_size = sizeof(PqOpKernel), .op = "test_twice", .infer = k_infer, .run = k_run}};
#else
static const PqOpKernel kernels[] = {{.struct_size = sizeof(PqOpKernel), .op = "test_shared_op", .infer = k_infer, .run = k_run}};
#endif
#endif

MAYBE_UNUSED static const PqCompressorVTable compressor_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
#ifndef MISSING_FN
    .compress = identity_compress,
#endif
    .calibration_samples = identity_calibration,
#ifdef HAS_KERNELS
    .kernels = kernels,
#ifdef KERNEL_TWICE
    .n_kernels = 2,
#else
    .n_kernels = 1,
#endif
#endif
#ifdef UNKNOWN_FLAG
    .flags = PQ_COMPRESSOR_EXACT | 4,
#endif
};

static PqStatus probe_observe(const PqProbeContext *ctx, PqMetricSink *sink, PqPluginError *error) {
  int nd;
  const int64_t *shape = pq_graph_input_shape(pq_model_const_graph(ctx->baseline), 0, &nd);
  int64_t per = 1;
  for (int d = 1; d < nd; d++) per *= shape[d];
  float *x = calloc((size_t)per, sizeof(float)), *a = calloc(64, sizeof(float)), *b = calloc(64, sizeof(float));
  for (int64_t i = 0; i < per; i++) x[i] = (float)(i % 7) / 7.0f;
  PqTensorView in = {sizeof in, PQ_DTYPE_F32, nd, 0, {0}, x}, out = {sizeof out, PQ_DTYPE_F32, 2, 0, {1, 10}, a};
  memcpy(in.shape, shape, sizeof(int64_t) * (size_t)nd);
  in.shape[0] = 1;
  int st = pq_runner_run(ctx->runner, PQ_MODEL_BASELINE, &in, 1, &out, 1, error);
  out.data = b;
  if (st == PQ_OK) st = pq_runner_run(ctx->runner, PQ_MODEL_COMPRESSED, &in, 1, &out, 1, error);
  double diff = 0;
  for (int i = 0; i < 10; i++) diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
  free(x);
  free(a);
  free(b);
  if (st != PQ_OK) return (PqStatus)st;
  pq_metrics_add(sink, "test.max_abs_diff", diff, "", PQ_BETTER_LOWER);
  double samples[3] = {1, 2, 3};
  pq_metrics_add_samples(sink, "test.max_abs_diff", samples, 3);
  if (pq_options_get_bool(ctx->options, "nan", 0)) pq_metrics_add(sink, "test.nan", NAN, "", PQ_BETTER_NONE);
  return PQ_OK;
}

MAYBE_UNUSED static const PqProbeVTable probe_vtable = {.struct_size = sizeof(PqProbeVTable), .observe = probe_observe};

MAYBE_UNUSED static int never_usable(PqPluginError *why) {
  pq_plugin_error_set(why, PQ_ERR_NOT_USABLE, "no test accelerator on this machine");
  return 0;
}
static int sup(const char *op) { (void)op; return 1; }
static PqStatus prep(const PqModel *m, const PqBackendConfig *c, void **h, PqPluginError *e) {
  (void)m; (void)c; (void)h;
  pq_plugin_error_set(e, PQ_ERR_NOT_USABLE, "cannot prepare");
  return PQ_ERR_NOT_USABLE;
}
static PqStatus run(void *h, const PqTensorView *i, size_t ni, PqTensorView *o, size_t no, PqPluginError *e) {
  (void)h; (void)i; (void)ni; (void)o; (void)no; (void)e;
  return PQ_ERR_NOT_USABLE;
}
static void rel(void *h) { (void)h; }
#if defined(TIMING_NAN) || defined(TIMING_ORDER) || defined(OLD_MINOR)
static PqStatus zero_prep(const PqModel *m, const PqBackendConfig *c, void **h, PqPluginError *e) {
  (void)m; (void)c; (void)e;
  *h = calloc(1, 4);
  return PQ_OK;
}
static PqStatus zero_run(void *h, const PqTensorView *i, size_t ni, PqTensorView *o, size_t no, PqPluginError *e) {
  (void)h; (void)i; (void)ni; (void)e;
  for (size_t k = 0; k < no; k++) {
    int64_t n = 1;
    for (int d = 0; d < o[k].ndim; d++) n *= o[k].shape[d];
    memset(o[k].data, 0, sizeof(float) * (size_t)n);
  }
  return PQ_OK;
}
#endif
#ifdef TIMING_ORDER
/* Times the first run of every pair of runs (of any handle) as 1 ms and the second as 2 ms, and, as the CUDA
 * backend does, only a run whose timing was asked for before it ran (else -1). Handle: [time, timed, asked]. */
static long runs_seen; /* runs of any handle so far */
static PqStatus order_run(void *h, const PqTensorView *i, size_t ni, PqTensorView *o, size_t no, PqPluginError *e) {
  unsigned char *s = h;
  s[0] = (unsigned char)(runs_seen++ % 2 ? 2 : 1);
  s[1] = s[2];
  s[2] = 0;
  return zero_run(h, i, ni, o, no, e);
}
static PqStatus order_timing(void *h, PqRunTiming *out, PqPluginError *e) {
  (void)e;
  unsigned char *s = h;
  s[2] = 1;
  out->total_ms = out->compute_ms = s[1] ? s[0] : -1;
  out->copy_in_ms = out->copy_out_ms = s[1] ? 0 : -1;
  return PQ_OK;
}
static const PqBackendVTable timing_vtable = {.struct_size = sizeof(PqBackendVTable), .supports_op = sup, .prepare = zero_prep,
                                              .run = order_run, .release = free, .last_run_timing = order_timing};
#endif
#ifdef TIMING_NAN
static PqStatus nan_timing(void *h, PqRunTiming *out, PqPluginError *e) {
  (void)h; (void)e;
  out->total_ms = 1;
  out->compute_ms = NAN;
  out->copy_in_ms = out->copy_out_ms = 0;
  return PQ_OK;
}
static const PqBackendVTable timing_vtable = {.struct_size = sizeof(PqBackendVTable), .supports_op = sup, .prepare = zero_prep,
                                              .run = zero_run, .release = free, .last_run_timing = nan_timing};
#endif
#ifdef OLD_MINOR
static const PqBackendVTable zero_vtable = {.struct_size = sizeof(PqBackendVTable), .supports_op = sup, .prepare = zero_prep, .run = zero_run,
                                            .release = free};
#endif
MAYBE_UNUSED static const PqBackendVTable backend_vtable = {.struct_size = sizeof(PqBackendVTable), .supports_op = sup, .prepare = prep, .run = run, .release = rel};

#if defined(TEST_PROBE)
#define KIND PQ_KIND_PROBE
#define NAME "test_probe"
#define VTABLE &probe_vtable
#ifdef NAN_DEFAULT
#define SCHEMA "{\"nan\": {\"type\": \"boolean\", \"default\": true}}"
#else
#define SCHEMA "{\"nan\": {\"type\": \"boolean\", \"default\": false}}"
#endif
#elif defined(TIMING_NAN)
#define KIND PQ_KIND_BACKEND
#define NAME "test_timing_nan"
#define VTABLE &timing_vtable
#define SCHEMA NULL
#elif defined(OLD_MINOR)
#define KIND PQ_KIND_BACKEND
#define NAME "test_old_minor"
#define VTABLE &zero_vtable
#define SCHEMA NULL
#elif defined(TIMING_ORDER)
#define KIND PQ_KIND_BACKEND
#define NAME "test_timing_order"
#define VTABLE &timing_vtable
#define SCHEMA NULL
#elif defined(TEST_UNUSABLE)
#define KIND PQ_KIND_BACKEND
#define NAME "test_unusable"
#define VTABLE &backend_vtable
#define SCHEMA NULL
#else
#define KIND PQ_KIND_COMPRESSOR
#define VTABLE &compressor_vtable
#define SCHEMA "{\"tag\": {\"type\": \"string\", \"default\": \"none\"}, \"fail\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9, \"default\": 0}, \"calibration\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 0}, \"gram\": {\"type\": \"string\", \"default\": \"\"}}"
#if defined(BAD_NAME)
#define NAME "Bad Name!"
#elif defined(DUP_NAME) || !defined(PLUGIN_NAME)
#define NAME "test_identity"
#else
#define NAME PLUGIN_NAME
#endif
#endif

#ifdef BAD_SCHEMA
#undef SCHEMA
#define SCHEMA "{\"rank\": {\"type\": \"whole number\"}}"
#endif

MAYBE_UNUSED static const PqPluginDesc desc = {
    .struct_size = sizeof(PqPluginDesc),
#ifdef BAD_MAJOR
    .abi_major = PQ_ABI_MAJOR + 1,
#else
    .abi_major = PQ_ABI_MAJOR,
#endif
#ifdef BAD_MINOR
    .abi_minor = PQ_ABI_MINOR + 1,
#elif defined(OLD_MINOR)
    .abi_minor = 10,
#else
    .abi_minor = PQ_ABI_MINOR,
#endif
    .kind = KIND,
    .name = NAME,
    .version = "0.0.1",
    .description = "a plugin for pquant's tests",
    .options_schema = SCHEMA,
    .vtable = VTABLE,
#ifdef TEST_UNUSABLE
    .usable_here = never_usable,
#endif
};

#ifndef NO_ENTRY
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) {
#ifdef NULL_DESC
  return NULL;
#else
  return &desc;
#endif
}
#else
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query_misspelled(void) { return &desc; }
#endif
