/* pqrun.c — the command-line front end: train, eval, predict, run, compress, sensitivity, tune, bench, compare, convert, info, plugins. */
#include "pquant/pquant.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <errno.h>
#include <unistd.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#define DEFAULT_MODEL_FILE "fashion-mnist-mlp-v1.safetensors"
#define CNN_MODEL_FILE "fashion-mnist-cnn-v1.safetensors"
#define EPOCHS_UNSET G_MININT

typedef struct {
  char **plugins;
  char *model;
  char *dataset;
  char *backend;
  char *output;
  int threads;
  int batch;
  int epochs;
  char *arch;
  gint64 seed;
  gboolean quiet;
  char **opts;
  char **backend_opts;
  char *config;
  int calibration;
  GPtrArray *chain; /* "path:FILE" or "name:NAME", in command-line order */
  char *batch_sizes;
  int runs, warmup, timeout;
  gboolean resume, dry_run;
  double threshold, threshold_pp;
  double max_degradation;
  int validation;
  char **fallback_opts;
  char **levels;
  char *save_chain;
  char *input;
} Args;

static Args args = {.dataset = NULL, .threads = 0, .batch = 256, .epochs = EPOCHS_UNSET, .seed = 42, .calibration = 512,
                    .runs = 100, .warmup = 10, .timeout = 600, .threshold = 0.05, .threshold_pp = 0.5,
                    .max_degradation = 1.0, .validation = 5000};

/* --plugin and --compressor keep their relative order: it is the order of the chain */
static gboolean add_chain_plugin(const char *name, const char *value, gpointer data, GError **error) {
  (void)name; (void)data; (void)error;
  g_ptr_array_add(args.chain, g_strconcat("path:", value, NULL));
  return TRUE;
}
static gboolean add_chain_compressor(const char *name, const char *value, gpointer data, GError **error) {
  (void)name; (void)data; (void)error;
  g_ptr_array_add(args.chain, g_strconcat("name:", value, NULL));
  return TRUE;
}

static const GOptionEntry plugin_entries[] = {
    {"plugin", 'p', 0, G_OPTION_ARG_FILENAME_ARRAY, &args.plugins, "Load this plugin file (repeatable; failure is fatal)", "PATH"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry model_entries[] = {
    {"model", 'm', 0, G_OPTION_ARG_FILENAME, &args.model, "Model file (default: the cached Fashion-MNIST MLP, trained on first use)", "FILE"},
    {"dataset", 'd', 0, G_OPTION_ARG_FILENAME, &args.dataset, "fashion-mnist (default) or a folder of IDX or NumPy (.npy) files", "NAME|DIR"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry run_entries[] = {
    {"backend", 'b', 0, G_OPTION_ARG_STRING, &args.backend, "Backend plugin (default: cpu)", "NAME"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &args.threads, "Threads (default: the backend's choice)", "N"},
    {"backend-opt", 0, 0, G_OPTION_ARG_STRING_ARRAY, &args.backend_opts, "Backend option KEY=VALUE (repeatable; see pqrun plugins)", "ASSIGNMENT"},
    {"batch", 0, 0, G_OPTION_ARG_INT, &args.batch, "Batch size for evaluation (default 256)", "N"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry chain_entries[] = {
    {"plugin", 'p', 0, G_OPTION_ARG_CALLBACK, (gpointer)add_chain_plugin, "Load a plugin file; compressors join the chain in order (repeatable)", "PATH"},
    {"compressor", 'c', 0, G_OPTION_ARG_CALLBACK, (gpointer)add_chain_compressor, "Add a compressor by registry name to the chain (repeatable)", "NAME"},
    {"opt", 'O', 0, G_OPTION_ARG_STRING_ARRAY, &args.opts, "Stage option PLUGIN.KEY=VALUE or STAGE.KEY=VALUE (repeatable)", "ASSIGNMENT"},
    {"config", 0, 0, G_OPTION_ARG_FILENAME, &args.config, "Stages from a JSON file: {\"stages\": [{\"plugin\": ..., \"options\": {...}}]}", "FILE"},
    {"calibration", 0, 0, G_OPTION_ARG_INT, &args.calibration, "Calibration samples from the training set for stages that ask (default 512)", "N"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry model_output_entries[] = {
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &args.output, "Write the compressed model here", "FILE"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry json_output_entries[] = {
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &args.output, "Write the results as JSON here", "FILE"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry bench_entries[] = {
    {"config", 0, 0, G_OPTION_ARG_FILENAME, &args.config, "Suite config: {\"methods\": {NAME: [stages...]}} (default: the seven-method suite)", "FILE"},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &args.output, "Report folder (default: pquant-report-DATE-TIME here)", "DIR"},
    {"batch-sizes", 0, 0, G_OPTION_ARG_STRING, &args.batch_sizes, "Latency batch sizes, comma-separated (default 1,64)", "LIST"},
    {"runs", 0, 0, G_OPTION_ARG_INT, &args.runs, "Timed runs per batch size (default 100)", "N"},
    {"warmup", 0, 0, G_OPTION_ARG_INT, &args.warmup, "Warm-up runs (default 10)", "N"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &args.timeout, "Seconds a method may take before it is stopped (default 600, 0: none)", "S"},
    {"calibration", 0, 0, G_OPTION_ARG_INT, &args.calibration, "Calibration samples for stages that ask (default 512)", "N"},
    {"resume", 0, 0, G_OPTION_ARG_NONE, &args.resume, "Keep the methods already measured in the output folder", NULL},
    {"dry-run", 0, 0, G_OPTION_ARG_NONE, &args.dry_run, "Sizes, bytes and FLOPs of each method, without evaluating", NULL},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry bench_run_entries[] = {
    {"plugin", 'p', 0, G_OPTION_ARG_CALLBACK, (gpointer)add_chain_plugin, "Load a plugin (a custom probe or compressor; repeatable)", "PATH"},
    {"backend", 'b', 0, G_OPTION_ARG_STRING, &args.backend, "Backend plugin (default: cpu)", "NAME"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &args.threads, "Threads (default: the backend's choice)", "N"},
    {"backend-opt", 0, 0, G_OPTION_ARG_STRING_ARRAY, &args.backend_opts, "Backend option KEY=VALUE (repeatable; see pqrun plugins)", "ASSIGNMENT"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry tune_entries[] = {
    {"max-degradation", 0, 0, G_OPTION_ARG_DOUBLE, &args.max_degradation, "Accuracy points the result may lose on validation (default 1.0)", "PP"},
    {"validation", 0, 0, G_OPTION_ARG_INT, &args.validation, "Validation samples: the last N of the training split (default 5000)", "N"},
    {"fallback-opt", 0, 0, G_OPTION_ARG_STRING_ARRAY, &args.fallback_opts,
     "Level 1: layers moved up take the chain again with this option changed, PLUGIN.KEY=VALUE (repeatable)", "ASSIGNMENT"},
    {"level", 0, 0, G_OPTION_ARG_STRING_ARRAY, &args.levels,
     "A further level, after --fallback-opt's: the chain with these options changed, PLUGIN.KEY=VALUE, several joined by ';' (repeatable, in order; above the last, a layer stays as it was)", "ASSIGNMENTS"},
    {"save-chain", 0, 0, G_OPTION_ARG_FILENAME, &args.save_chain,
     "Write the result's chain as a config: its \"stages\" for pqrun run/compress --config, its \"methods\" (baseline, tuned) for pqrun bench --config", "FILE.json"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry predict_entries[] = {
    {"input", 'i', 0, G_OPTION_ARG_FILENAME, &args.input,
     "Samples as a NumPy .npy file [N, ...]: float32 or float64 as they are, uint8 scaled by 1/255 (as datasets are)", "FILE.npy"},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &args.output, "Write the model's outputs here, float32 [N, ...]", "FILE.npy"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry convert_entries[] = {
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &args.output, "The model file to write", "FILE"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry compare_entries[] = {
    {"threshold", 0, 0, G_OPTION_ARG_DOUBLE, &args.threshold, "Relative change that counts as a regression (default 0.05)", "FRACTION"},
    {"threshold-pp", 0, 0, G_OPTION_ARG_DOUBLE, &args.threshold_pp, "Change in points for metrics in % or pp, such as accuracy (default 0.5)", "POINTS"},
    G_OPTION_ENTRY_NULL};
static const GOptionEntry train_entries[] = {
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &args.output, "Where to write the model (default: the cache)", "FILE"},
    {"arch", 0, 0, G_OPTION_ARG_STRING, &args.arch, "mlp (default: 784-256-128-10) or cnn (three 3x3 convs of 16, 32, 64 channels)", "mlp|cnn"},
    {"epochs", 0, 0, G_OPTION_ARG_INT, &args.epochs, "Epochs (default 18 for the MLP, 4 for the CNN)", "N"},
    {"seed", 0, 0, G_OPTION_ARG_INT64, &args.seed, "Random seed (default 42)", "N"},
    {"threads", 't', 0, G_OPTION_ARG_INT, &args.threads, "BLAS threads while training (default 1: the same weights on every machine)", "N"},
    {"dataset", 'd', 0, G_OPTION_ARG_FILENAME, &args.dataset, "fashion-mnist (default) or a folder of IDX or NumPy (.npy) files", "NAME|DIR"},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &args.quiet, "Do not print progress", NULL},
    G_OPTION_ENTRY_NULL};

static int fail(GError *error) {
  g_printerr("pqrun: %s\n", error->message);
  g_error_free(error);
  return 1;
}

static char *cache_model_path(const char *file) {
  return g_build_filename(g_get_user_cache_dir(), "pquant", file, NULL);
}

static PqRegistry *make_registry(GError **error) {
  PqRegistry *r = pq_registry_new();
  for (char **p = args.plugins; p && *p; p++)
    if (!pq_registry_load(r, *p, error)) {
      pq_registry_free(r);
      return NULL;
    }
  pq_registry_scan_default(r);
  return r;
}

static const char *dataset_name(void) { return args.dataset ? args.dataset : "fashion-mnist"; }

/* The registry plus the chain from --plugin/--compressor (and --config), with --opt applied. */
static PqPipeline *make_pipeline(PqRegistry *reg, PqDataset **calibration, GError **error) {
  g_autoptr(PqPipeline) p = pq_pipeline_new(reg);
  g_autoptr(GPtrArray) stages = g_ptr_array_new();
  for (guint i = 0; i < args.chain->len; i++) { /* load every file first: a later name may refer to one */
    const char *spec = args.chain->pdata[i];
    if (g_str_has_prefix(spec, "path:")) {
      PqPlugin *pl = pq_registry_load(reg, spec + 5, error);
      if (!pl) return NULL;
      g_ptr_array_add(stages, pl);
    } else {
      g_ptr_array_add(stages, NULL);
    }
  }
  pq_registry_scan_default(reg);
  for (guint i = 0; i < args.chain->len; i++) {
    const char *spec = args.chain->pdata[i];
    PqPlugin *pl = stages->pdata[i];
    if (!pl && !(pl = pq_registry_find(reg, spec + 5, PQ_KIND_COMPRESSOR, error))) return NULL;
    if (pq_plugin_kind(pl) != PQ_KIND_COMPRESSOR) continue; /* a probe or backend loaded for later */
    if (!pq_pipeline_add_stage(p, pl, error)) return NULL;
  }
  if (args.config && !pq_pipeline_load_config(p, args.config, error)) return NULL;
  if (pq_pipeline_n_stages(p) == 0) {
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE,
                "no compressor given: name one with --plugin FILE.so, --compressor NAME or --config FILE");
    return NULL;
  }
  for (char **o = args.opts; o && *o; o++)
    if (!pq_pipeline_parse_option(p, *o, error)) return NULL;
  if (args.calibration < 0) {
    g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE, "--calibration must not be negative");
    return NULL;
  }
  *calibration = pq_dataset_open(dataset_name(), "train", error);
  if (!*calibration) return NULL;
  pq_pipeline_set_calibration(p, *calibration, args.calibration);
  return g_steal_pointer(&p);
}

static void print_records(const PqModel *m) {
  if (!pq_model_n_records(m)) return;
  printf("%-5s %-10s %-14s %12s %12s %8s %8s %9s  %s\n", "stage", "method", "layer", "bytes before", "bytes after", "ratio",
         "bits/w", "sqnr dB", "detail");
  for (guint i = 0; i < pq_model_n_records(m); i++) {
    const PqLayerRecord *r = pq_model_record(m, i);
    if (r->skipped) {
      printf("%-5d %-10s %-14s %12s %12s %8s %8s %9s  skipped: %s\n", r->stage, r->method, r->layer, "-", "-", "-", "-", "-", r->detail);
      continue;
    }
    g_autofree char *sqnr = isnan(r->sqnr_db) ? g_strdup("-") : g_strdup_printf("%.1f", r->sqnr_db); /* not measured: "-" */
    printf("%-5d %-10s %-14s %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %7.2fx %8.2f %9s  %s\n", r->stage, r->method, r->layer,
           r->bytes_before, r->bytes_after, r->bytes_after ? (double)r->bytes_before / (double)r->bytes_after : 0.0,
           r->params_before ? 8.0 * (double)r->bytes_after / (double)r->params_before : 0.0, sqnr, r->detail);
  }
}

/* The backend's options from --backend-opt KEY=VALUE, checked against its schema. */
static PqOptions *backend_options(PqPlugin *be, GError **error) {
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(be), pq_plugin_name(be), error);
  if (!o) return NULL;
  for (char **a = args.backend_opts; a && *a; a++) {
    const char *eq = strchr(*a, '=');
    if (!eq || eq == *a) {
      g_set_error(error, PQ_OPTIONS_ERROR, 0, "--backend-opt '%s': expected KEY=VALUE", *a);
      return NULL;
    }
    g_autofree char *key = g_strndup(*a, (gsize)(eq - *a));
    if (!pq_options_set(o, key, eq + 1, error)) return NULL;
  }
  return g_steal_pointer(&o);
}

static gboolean evaluate(PqRegistry *reg, PqModel *model, const PqDataset *test, double *acc, GError **error) {
  PqPlugin *be = pq_registry_find(reg, args.backend ? args.backend : "cpu", PQ_KIND_BACKEND, error);
  if (!be) return FALSE;
  g_autoptr(PqOptions) bo = backend_options(be, error);
  if (!bo) return FALSE;
  /* no larger than the test set: a batch beyond it would only reserve memory no run uses */
  int batch = (int)MIN((gint64)args.batch, MAX(pq_dataset_n_samples(test), 1));
  g_autoptr(PqBackend) b = pq_backend_prepare(be, model, args.threads, batch, bo, error);
  return b && pq_evaluate_accuracy(b, test, acc, error);
}

/* Train the MLP (the default model) or the CNN on the training split, BLAS on `threads`, and write it to out_path. */
static PqModel *train_model(gboolean cnn, int threads, const char *out_path, GError **error) {
  g_autoptr(PqDataset) train = pq_dataset_open(dataset_name(), "train", error);
  if (!train) return NULL;
  PqTrainParams p;
  pq_train_params_init(&p);
  p.epochs = args.epochs != EPOCHS_UNSET ? args.epochs : cnn ? 4 : p.epochs;
  if (cnn) {
    p.batch_size = 64;
    p.learning_rate = 2e-3;
  }
  p.seed = (guint64)args.seed;
  p.threads = threads;
  p.verbose = !args.quiet;
  if (!args.quiet)
    g_printerr("training the %s on %s (%" G_GINT64_FORMAT " samples, %d epochs)\n", cnn ? "CNN 3x3 convs 16-32-64 + linear" : "MLP 784-256-128-10",
               pq_dataset_name(train), pq_dataset_n_samples(train), p.epochs);
  gint64 t0 = g_get_monotonic_time();
  g_autoptr(PqModel) m = cnn ? pq_train_cnn(train, &p, error) : pq_train_mlp(train, &p, error);
  if (!m) return NULL;
  double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
  g_autofree char *dir = g_path_get_dirname(out_path);
  if (g_mkdir_with_parents(dir, 0755) != 0) {
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "%s: cannot create the folder: %s", dir, g_strerror(errno));
    return NULL;
  }
  if (!pq_model_save(m, out_path, error)) return NULL;
  if (!args.quiet) g_printerr("trained in %.1f s, written to %s\n", secs, out_path);
  return g_steal_pointer(&m);
}

/* The model named by --model, or the cached default (trained and cached on first use). */
static PqModel *load_model(GError **error) {
  if (args.model) return pq_model_load(args.model, error);
  g_autofree char *path = cache_model_path(DEFAULT_MODEL_FILE);
  if (g_file_test(path, G_FILE_TEST_EXISTS)) {
    g_autoptr(GError) lerr = NULL;
    PqModel *m = pq_model_load(path, &lerr);
    if (m) return m;
    g_printerr("pqrun: the cached default model is unusable (%s); training it again\n", lerr->message);
  }
  return train_model(FALSE, 1, path, error); /* (the cached default: one thread, the same weights everywhere) */
}

static int cmd_train(void) {
  GError *error = NULL;
  gboolean cnn = args.arch && !strcmp(args.arch, "cnn");
  if (args.arch && !cnn && strcmp(args.arch, "mlp") != 0) {
    g_printerr("pqrun train: --arch must be mlp or cnn, not '%s'\n", args.arch);
    return 2;
  }
  g_autofree char *path = args.output ? g_strdup(args.output)
                                      : cache_model_path(cnn ? CNN_MODEL_FILE : DEFAULT_MODEL_FILE);
  if (args.epochs != EPOCHS_UNSET && args.epochs < 1) {
    g_printerr("pqrun train: --epochs must be at least 1\n");
    return 2;
  }
  g_autoptr(PqModel) m = train_model(cnn, args.threads > 0 ? args.threads : 1, path, &error);
  if (!m) return fail(error);
  g_autoptr(PqRegistry) reg = make_registry(&error);
  if (!reg) return fail(error);
  g_autoptr(PqDataset) test = pq_dataset_open(dataset_name(), "t10k", &error);
  if (!test) return fail(error);
  double acc;
  if (!evaluate(reg, m, test, &acc, &error)) return fail(error);
  printf("test accuracy: %.2f%% on %s\n", 100.0 * acc, pq_dataset_name(test));
  return 0;
}

static int cmd_eval(void) {
  GError *error = NULL;
  if (args.batch < 1) {
    g_printerr("pqrun eval: --batch must be at least 1\n");
    return 2;
  }
  g_autoptr(PqRegistry) reg = make_registry(&error);
  if (!reg) return fail(error);
  g_autoptr(PqModel) m = load_model(&error);
  if (!m) return fail(error);
  g_autoptr(PqDataset) test = pq_dataset_open(dataset_name(), "t10k", &error);
  if (!test) return fail(error);
  double acc;
  gint64 t0 = g_get_monotonic_time();
  if (!evaluate(reg, m, test, &acc, &error)) return fail(error);
  double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
  g_autofree char *path = args.model ? g_strdup(args.model) : cache_model_path(DEFAULT_MODEL_FILE);
  printf("model:    %s\n", path);
  printf("dataset:  %s (%" G_GINT64_FORMAT " samples)\n", pq_dataset_name(test), pq_dataset_n_samples(test));
  printf("backend:  %s\n", args.backend ? args.backend : "cpu");
  printf("accuracy: %.2f%% (%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " correct) in %.2f s\n", 100.0 * acc,
         (gint64)(acc * (double)pq_dataset_n_samples(test) + 0.5), pq_dataset_n_samples(test), secs);
  return 0;
}

/* The model on each sample of a .npy file, its outputs written as one: what a user compares with another
 * framework's outputs on the same inputs. */
static int cmd_predict(void) {
  GError *error = NULL;
  if (!args.input || !args.output) {
    g_printerr("pqrun predict: --input FILE.npy and --output FILE.npy are both needed\n");
    return 2;
  }
  if (args.batch < 1) {
    g_printerr("pqrun predict: --batch must be at least 1\n");
    return 2;
  }
  g_autoptr(PqRegistry) reg = make_registry(&error);
  if (!reg) return fail(error);
  g_autoptr(PqModel) m = load_model(&error);
  if (!m) return fail(error);
  const PqGraph *g = pq_model_const_graph(m);
  if (pq_graph_n_inputs(g) != 1 || pq_graph_n_outputs(g) != 1) {
    g_printerr("pqrun predict: the model has %zu inputs and %zu outputs; predict runs models with one of each\n", pq_graph_n_inputs(g),
               pq_graph_n_outputs(g));
    return 1;
  }
  g_autoptr(PqDataset) ds = pq_dataset_load_npy(args.input, NULL, &error);
  if (!ds) return fail(error);
  const gint64 n = pq_dataset_n_samples(ds);
  PqPlugin *bp = pq_registry_find(reg, args.backend ? args.backend : "cpu", PQ_KIND_BACKEND, &error);
  if (!bp) return fail(error);
  g_autoptr(PqOptions) bo = backend_options(bp, &error);
  if (!bo) return fail(error);
  const gint64 batch = MIN((gint64)args.batch, n);
  g_autoptr(PqBackend) b = pq_backend_prepare(bp, m, args.threads, batch, bo, &error);
  if (!b) return fail(error);
  if (pq_dataset_sample_numel(ds) != pq_backend_input_numel(b)) {
    g_printerr("pqrun predict: %s: field 'shape': a sample has %" G_GINT64_FORMAT " values; the model's input '%s' takes %" G_GINT64_FORMAT "\n",
               args.input, pq_dataset_sample_numel(ds), pq_graph_input_name(g, 0), pq_backend_input_numel(b));
    return 1;
  }
  /* the output's shape a sample, from the model's plan */
  g_autoptr(PqPlan) plan = pq_model_plan(m, 1, &error);
  if (!plan) return fail(error);
  int ond;
  const int64_t *os = pq_plan_value_shape(plan, pq_plan_value_index(plan, pq_graph_output_name(g, 0)), &ond);
  int64_t shape[PQ_MAX_DIMS] = {n};
  for (int d = 1; d < ond; d++) shape[d] = os[d];
  const gint64 in_n = pq_backend_input_numel(b), out_n = pq_backend_output_numel(b);
  g_autofree float *x = g_try_new(float, batch * in_n), *y = g_try_new(float, n * out_n);
  if (!x || !y) {
    g_printerr("pqrun predict: out of memory for %" G_GINT64_FORMAT " outputs of %" G_GINT64_FORMAT " values\n", n, out_n);
    return 1;
  }
  gint64 t0 = g_get_monotonic_time();
  for (gint64 s = 0; s < n; s += batch) {
    gint64 got = pq_dataset_get_batch(ds, s, batch, x, NULL);
    if (!pq_backend_run_f32(b, x, got, y + s * out_n, &error)) return fail(error);
  }
  double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
  if (!pq_npy_save_f32(args.output, ond, shape, y, &error)) return fail(error);
  g_autoptr(GString) sh = g_string_new("");
  for (int d = 0; d < ond; d++) g_string_append_printf(sh, "%s%" G_GINT64_FORMAT, d ? ", " : "", shape[d]);
  printf("%s: float32 [%s], the outputs '%s' of %s on the %" G_GINT64_FORMAT " samples of %s (backend %s, %.2f s)\n", args.output, sh->str,
         pq_graph_output_name(g, 0), args.model ? args.model : "the default model", n, args.input, args.backend ? args.backend : "cpu", secs);
  return 0;
}

static gint64 file_size(const char *path) {
  GStatBuf st;
  return g_stat(path, &st) == 0 ? (gint64)st.st_size : -1;
}

static int cmd_compress(void) {
  GError *error = NULL;
  if (!args.output) {
    g_printerr("pqrun compress: -o FILE is required (pqrun run compresses and evaluates without writing)\n");
    return 2;
  }
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(PqDataset) calib = NULL;
  g_autoptr(PqPipeline) p = make_pipeline(reg, &calib, &error);
  if (!p) return fail(error);
  g_autoptr(PqModel) m = load_model(&error);
  if (!m) return fail(error);
  g_autoptr(PqModel) out = pq_pipeline_run(p, m, &error);
  if (!out || !pq_model_save(out, args.output, &error)) return fail(error);
  print_records(out);
  printf("\nbytes in memory: %" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT " (%.2fx)\n", pq_model_nbytes(m), pq_model_nbytes(out),
         (double)pq_model_nbytes(m) / (double)pq_model_nbytes(out));
  printf("written: %s (%" G_GINT64_FORMAT " bytes on disk)\n", args.output, file_size(args.output));
  return 0;
}

/* What `run` and `sensitivity` start from: the chain (with its calibration set), the model and the test set. */
typedef struct {
  PqRegistry *reg;
  PqDataset *calib, *test;
  PqPipeline *p;
  PqModel *m;
} ChainJob;

static void chain_job_clear(ChainJob *j) {
  if (j->p) pq_pipeline_free(j->p);
  if (j->m) pq_model_unref(j->m);
  if (j->test) pq_dataset_unref(j->test);
  if (j->calib) pq_dataset_unref(j->calib);
  if (j->reg) pq_registry_free(j->reg);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ChainJob, chain_job_clear)

static gboolean chain_job_open(ChainJob *j, GError **error) {
  j->reg = pq_registry_new();
  return (j->p = make_pipeline(j->reg, &j->calib, error)) && (j->m = load_model(error)) &&
         (j->test = pq_dataset_open(dataset_name(), "t10k", error));
}

static int cmd_run(void) {
  GError *error = NULL;
  g_auto(ChainJob) job = {0};
  if (!chain_job_open(&job, &error)) return fail(error);
  gint64 t0 = g_get_monotonic_time();
  g_autoptr(PqModel) out = pq_pipeline_run(job.p, job.m, &error);
  if (!out) return fail(error);
  double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
  double acc_base, acc_comp;
  if (!evaluate(job.reg, job.m, job.test, &acc_base, &error) || !evaluate(job.reg, out, job.test, &acc_comp, &error)) return fail(error);
  print_records(out);
  gint64 disk_base = -1, disk_comp = -1;
  g_autofree char *tmpdir = g_dir_make_tmp("pqrun-XXXXXX", NULL);
  g_autofree char *fb = tmpdir ? g_build_filename(tmpdir, "baseline.safetensors", NULL) : NULL;
  g_autofree char *fc = tmpdir ? g_build_filename(tmpdir, "compressed.safetensors", NULL) : NULL;
  const char *comp_path = args.output ? args.output : fc;
  if (fb && pq_model_save(job.m, fb, NULL)) disk_base = file_size(fb);
  if (comp_path && pq_model_save(out, comp_path, &error)) disk_comp = file_size(comp_path);
  else if (error) return fail(error);
  if (fb) g_unlink(fb);
  if (fc) g_unlink(fc);
  if (tmpdir) g_rmdir(tmpdir);
  printf("\n%-12s %12s %12s %12s %9s %10s %12s\n", "model", "params", "bytes", "bytes on disk", "ratio", "accuracy", "degradation");
  printf("%-12s %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %8.2fx %9.2f%% %12s\n", "baseline", pq_model_n_params(job.m),
         pq_model_nbytes(job.m), disk_base, 1.0, 100 * acc_base, "-");
  printf("%-12s %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %8.2fx %9.2f%% %+9.2f pp\n", "compressed",
         pq_model_n_params(out), pq_model_nbytes(out), disk_comp, (double)pq_model_nbytes(job.m) / (double)pq_model_nbytes(out),
         100 * acc_comp, 100 * (acc_comp - acc_base));
  printf("(ratio: bytes stored in memory; on disk %.2fx; compressed in %.2f s on %s)\n",
         disk_comp > 0 ? (double)disk_base / (double)disk_comp : 0.0, secs, pq_dataset_name(job.test));
  if (args.output) printf("written: %s\n", args.output);
  return 0;
}

/* The builder's JSON, pretty, to `path`: written whole or not at all (a temporary file renamed). */
static gboolean write_json(JsonBuilder *b, const char *path, GError **error) {
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  g_autofree char *text = json_generator_to_data(gen, NULL);
  return g_file_set_contents(path, text, -1, error);
}

/* One row of `pqrun sensitivity`: the chain applied to one layer (or to all). */
typedef struct {
  char *layer, *op;
  gint64 params, bytes;
  double accuracy;
} SensRow;

static void sens_row_free(gpointer p) {
  SensRow *r = p;
  g_free(r->layer);
  g_free(r->op);
  g_free(r);
}

static gint cmp_degradation(gconstpointer a, gconstpointer b) { /* the largest loss first, then by name */
  const SensRow *x = *(SensRow *const *)a, *y = *(SensRow *const *)b;
  if (x->accuracy != y->accuracy) return x->accuracy < y->accuracy ? -1 : 1;
  return strcmp(x->layer, y->layer);
}

/* Whether the chain acted on `layer`: a record, not a skip, names it or a node derived from it ("layer.…"). */
static gboolean chain_touched(const PqModel *out, const char *layer) {
  size_t len = strlen(layer);
  for (guint i = 0; i < pq_model_n_records(out); i++) {
    const PqLayerRecord *r = pq_model_record(out, i);
    if (!r->skipped && !strncmp(r->layer, layer, len) && (r->layer[len] == 0 || r->layer[len] == '.')) return TRUE;
  }
  return FALSE;
}

/* Sets one option on every stage of the chain but the exact ones (equalize), which keep the selection the
 * user gave them: they compress nothing, and work on pairs of layers a one-layer selection would split. */
static gboolean set_on_every_stage(PqPipeline *p, const char *key, const char *value, GError **error) {
  for (guint st = 1; st <= pq_pipeline_n_stages(p); st++) {
    if (pq_plugin_exact(pq_pipeline_stage_plugin(p, st - 1))) continue;
    g_autofree char *target = g_strdup_printf("%u", st);
    if (!pq_pipeline_set_option(p, target, key, value, error)) return FALSE;
  }
  return TRUE;
}

/* How many exact stages (equalize) the chain starts with; 0 when every stage is exact (nothing would be left). */
static guint exact_head(const PqPipeline *p) {
  guint n = 0;
  while (n < pq_pipeline_n_stages(p) && pq_plugin_exact(pq_pipeline_stage_plugin(p, n))) n++;
  return n == pq_pipeline_n_stages(p) ? 0 : n;
}

/* The job's chain without its first n_exact stages, numbered on from them, on `head_result` (what they made,
 * referenced) instead of its model. */
static void chain_start_after(ChainJob *j, guint n_exact, PqModel *head_result) {
  for (guint st = 0; st < n_exact; st++) pq_pipeline_remove_stage(j->p, 0);
  pq_pipeline_set_first_stage(j->p, n_exact + 1);
  pq_model_unref(j->m);
  j->m = pq_model_ref(head_result);
}

/* Runs the chain's first n_exact stages (exact ones, which take the whole model) once, on the job's model, and
 * makes their result the job's model and the rest of the chain its chain (chain_start_after): what each
 * layer's row or each build of a tuned model then runs. Returns that model (the job's), or NULL. The stages
 * after the head stay in the chain while it runs, for a head stage that reads them (equalize awq). */
static PqModel *chain_strip_head(ChainJob *j, guint n_exact, GError **error) {
  g_autoptr(PqModel) ref = pq_pipeline_run_head(j->p, j->m, n_exact, error);
  if (!ref) return NULL;
  chain_start_after(j, n_exact, ref);
  return j->m;
}

/* The chain on each layer it changed in `full`, alone, evaluated on `ds`: one row a layer, in graph order.
 * Every stage's `include` is left set to the last layer's pattern. */
static GPtrArray *per_layer_rows(ChainJob *job, const PqModel *full, const PqDataset *ds, GError **error) {
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(sens_row_free);
  const PqGraph *g = pq_model_const_graph(job->m);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    const PqNode *node = pq_graph_node(g, i);
    const char *layer = pq_node_name(node);
    if (!layer[0] || !chain_touched(full, layer)) continue;
    g_autofree char *pattern = g_strdup_printf("%s,%s.*", layer, layer);
    if (!set_on_every_stage(job->p, "include", pattern, error)) return NULL;
    g_autoptr(PqModel) out = pq_pipeline_run(job->p, job->m, error);
    if (!out) return NULL;
    SensRow *r = g_new0(SensRow, 1);
    r->layer = g_strdup(layer);
    r->op = g_strdup(pq_node_op(node));
    r->params = pq_model_n_params(out);
    r->bytes = pq_model_nbytes(out);
    g_ptr_array_add(rows, r);
    if (!evaluate(job->reg, out, ds, &r->accuracy, error)) return NULL;
  }
  return g_steal_pointer(&rows);
}

/* The chain on one layer at a time: which layers cost the accuracy, and what each saves. Every stage's
 * `include` is set to the layer and the nodes derived from it, so the layer's own compression is measured
 * alone. */
static int cmd_sensitivity(void) {
  GError *error = NULL;
  g_auto(ChainJob) job = {0};
  if (!chain_job_open(&job, &error)) return fail(error);
  double acc_base;
  if (!evaluate(job.reg, job.m, job.test, &acc_base, &error)) return fail(error);
  const gint64 base_bytes = pq_model_nbytes(job.m);
  guint n_exact = exact_head(job.p); /* run once: every row starts from their result */
  if (n_exact && !chain_strip_head(&job, n_exact, &error)) return fail(error);
  g_autoptr(PqModel) full = pq_pipeline_run(job.p, job.m, &error);
  if (!full) return fail(error);
  SensRow all = {(char *)"(all layers)", (char *)"", pq_model_n_params(full), pq_model_nbytes(full), 0};
  if (!evaluate(job.reg, full, job.test, &all.accuracy, &error)) return fail(error);
  g_autoptr(GPtrArray) rows = per_layer_rows(&job, full, job.test, &error);
  if (!rows) return fail(error);
  if (rows->len == 0) {
    g_printerr("pqrun sensitivity: the chain changed no layer of the model (see `pqrun run` for its records)\n");
    return 1;
  }
  g_ptr_array_sort(rows, cmp_degradation);
  gint64 saved_all = base_bytes - all.bytes;
  printf("%-20s %-12s %12s %12s %9s %10s %12s\n", "layer", "op", "bytes", "saved", "of all", "accuracy", "degradation");
  for (guint i = 0; i <= rows->len; i++) {
    const SensRow *r = i < rows->len ? rows->pdata[i] : &all;
    gint64 saved = base_bytes - r->bytes;
    g_autofree char *share = saved_all > 0 ? g_strdup_printf("%.0f%%", 100.0 * (double)saved / (double)saved_all) : g_strdup("-");
    printf("%-20s %-12s %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %9s %9.2f%% %+9.2f pp\n", r->layer, r->op, r->bytes, saved, share,
           100 * r->accuracy, 100 * (r->accuracy - acc_base));
  }
  printf("(baseline %.2f%%, %" G_GINT64_FORMAT " bytes, on %s; each row: the chain on that layer alone, worst first)\n", 100 * acc_base,
         base_bytes, pq_dataset_name(job.test));
  if (args.output) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "schema");
    json_builder_add_string_value(b, "pquant-sensitivity-1");
    json_builder_set_member_name(b, "model");
    g_autofree char *mpath = args.model ? g_strdup(args.model) : cache_model_path(DEFAULT_MODEL_FILE);
    json_builder_add_string_value(b, mpath);
    json_builder_set_member_name(b, "dataset");
    json_builder_add_string_value(b, pq_dataset_name(job.test));
    json_builder_set_member_name(b, "chain");
    json_builder_begin_array(b);
    for (guint i = 0; i < args.chain->len; i++) json_builder_add_string_value(b, (const char *)args.chain->pdata[i] + 5);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "options");
    json_builder_begin_array(b);
    for (char **o = args.opts; o && *o; o++) json_builder_add_string_value(b, *o);
    json_builder_end_array(b);
    if (args.config) {
      json_builder_set_member_name(b, "config");
      json_builder_add_string_value(b, args.config);
    }
    json_builder_set_member_name(b, "baseline");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "accuracy");
    json_builder_add_double_value(b, acc_base);
    json_builder_set_member_name(b, "bytes");
    json_builder_add_int_value(b, base_bytes);
    json_builder_end_object(b);
    for (int part = 0; part < 2; part++) {
      json_builder_set_member_name(b, part ? "all" : "layers");
      if (!part) json_builder_begin_array(b);
      for (guint i = 0; i < (part ? 1 : rows->len); i++) {
        const SensRow *r = part ? &all : rows->pdata[i];
        json_builder_begin_object(b);
        if (!part) {
          json_builder_set_member_name(b, "layer");
          json_builder_add_string_value(b, r->layer);
          json_builder_set_member_name(b, "op");
          json_builder_add_string_value(b, r->op);
        }
        json_builder_set_member_name(b, "bytes");
        json_builder_add_int_value(b, r->bytes);
        json_builder_set_member_name(b, "bytes_saved");
        json_builder_add_int_value(b, base_bytes - r->bytes);
        json_builder_set_member_name(b, "accuracy");
        json_builder_add_double_value(b, r->accuracy);
        json_builder_set_member_name(b, "degradation_pp");
        json_builder_add_double_value(b, 100 * (r->accuracy - acc_base));
        json_builder_end_object(b);
      }
      if (!part) json_builder_end_array(b);
    }
    json_builder_end_object(b);
    if (!write_json(b, args.output, &error)) return fail(error);
    printf("written: %s\n", args.output);
  }
  return 0;
}

/* Accuracy-driven tuning over a ladder of levels: 0 the chain, 1 … K fallback chains (the chain again with
 * --fallback-opt, then each --level, applied), K + 1 the layer left as it was. Every layer starts at level 0;
 * while the validation degradation is beyond --max-degradation, one layer moves up to a higher level: the
 * move that buys back the most validation accuracy for each byte it adds, as measured with that layer alone
 * at either level (the chain at each level on one layer at a time, once). The validation set is the last --validation
 * samples of the training split (the test set is only for the final figures). */
#define TUNE_MAX_LEVELS 8

typedef struct {
  const char *layer;
  int level;
  double acc[TUNE_MAX_LEVELS + 2]; /* validation accuracy with this layer alone at each level */
  gint64 bytes[TUNE_MAX_LEVELS + 2];
} TuneLayer;

/* The pattern that selects the layers at `level` (and the nodes derived from them). */
static char *tune_pattern(const TuneLayer *ls, guint n, int level, gboolean at_least) {
  GString *p = g_string_new("");
  for (guint i = 0; i < n; i++)
    if (at_least ? ls[i].level >= level : ls[i].level == level) g_string_append_printf(p, "%s%s,%s.*", p->len ? "," : "", ls[i].layer, ls[i].layer);
  return g_string_free(p, FALSE);
}

/* Level k's chain set to its layers: the chain (level 0) on every layer but those above it, a fallback chain
 * on the layers at its level. *used: whether the level has layers to run on (level 0 always runs). */
static gboolean tune_select(ChainJob *lv, int k, const TuneLayer *ls, guint n, gboolean *used, GError **error) {
  g_autofree char *pat = tune_pattern(ls, n, k ? k : 1, k == 0);
  *used = k == 0 || pat[0];
  if (k == 0) return set_on_every_stage(lv[0].p, "include", "*", error) && set_on_every_stage(lv[0].p, "exclude", pat, error);
  return !*used || set_on_every_stage(lv[k].p, "include", pat, error);
}

/* The model with every layer at its level: the chain on the layers at level 0, then each fallback chain on
 * the layers at its level (the stages' original, their distillation teacher, stays the model itself, or the
 * result of the chain's leading exact stages: tune_strip_exact). The stages are numbered in the records as
 * in the one chain tune_save_chain writes: level 0 from `first` (after the exact stages, where they were
 * run before), each level used going on from the last. */
static PqModel *tune_build(ChainJob *lv, int K, const TuneLayer *ls, guint n, guint first, GError **error) {
  PqModel *cur = NULL;
  for (int k = 0; k <= K; k++) {
    gboolean used;
    if (!tune_select(lv, k, ls, n, &used, error)) {
      if (cur) pq_model_unref(cur);
      return NULL;
    }
    if (!used) continue;
    pq_pipeline_set_first_stage(lv[k].p, first);
    first += pq_pipeline_n_stages(lv[k].p);
    PqModel *prev = cur;
    cur = k == 0 ? pq_pipeline_run(lv[0].p, lv[0].m, error) : pq_pipeline_run_from(lv[k].p, prev, lv[k].m, error);
    if (prev) pq_model_unref(prev);
    if (!cur) return NULL;
  }
  return cur;
}

/* The result as one chain: the exact stages run before the levels (`head`, NULL for none), then the stages of
 * every level that holds a layer, in the order tune_build runs them, each with its include or exclude;
 * written as {"stages": [...], "methods": {"baseline": [], "tuned": [...]}}. */
static gboolean tune_save_chain(ChainJob *lv, int K, const TuneLayer *ls, guint n, JsonArray *head, const char *path, GError **error) {
  g_autoptr(JsonArray) stages = json_array_new();
  for (guint i = 0; head && i < json_array_get_length(head); i++) json_array_add_element(stages, json_node_copy(json_array_get_element(head, i)));
  for (int k = 0; k <= K; k++) {
    gboolean used;
    if (!tune_select(lv, k, ls, n, &used, error)) return FALSE;
    if (!used) continue;
    g_autofree char *text = pq_pipeline_to_json(lv[k].p);
    g_autoptr(JsonParser) parser = json_parser_new();
    if (!json_parser_load_from_data(parser, text, -1, error)) return FALSE;
    JsonArray *a = json_node_get_array(json_parser_get_root(parser));
    for (guint i = 0; i < json_array_get_length(a); i++) json_array_add_element(stages, json_node_copy(json_array_get_element(a, i)));
  }
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "stages");
  json_builder_add_value(b, json_node_init_array(json_node_alloc(), stages));
  json_builder_set_member_name(b, "methods");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "baseline");
  json_builder_begin_array(b);
  json_builder_end_array(b);
  json_builder_set_member_name(b, "tuned");
  json_builder_add_value(b, json_node_init_array(json_node_alloc(), stages));
  json_builder_end_object(b);
  json_builder_end_object(b);
  if (!write_json(b, path, error)) return FALSE;
  printf("chain written: %s (pqrun run --config %s; pqrun bench --config %s, with the same --calibration)\n", path, path, path);
  return TRUE;
}

/* The exact stages the chain starts with (equalize: the same function, values inside rescaled) run once, on
 * the whole model, before the levels; every level's chain, level 0's too, then starts from their result
 * without them. Run again on a model already holding a level-0 layer they would rename values once more, and
 * a bias_correct there would no longer find them in the model it compares with; and each build of the model
 * and each layer's row would run them again for the same result (equalize awq's search among them). Each
 * level's model (lv[k].m) becomes that result, which its stages see as the original; `*head` gets the exact
 * stages as a chain file writes them. A level may not change an exact stage's options (it would not be run). */
static gboolean tune_strip_exact(ChainJob *lv, int K, guint n_exact, JsonArray **head, GError **error) {
  g_autofree char *j0 = pq_pipeline_to_json(lv[0].p);
  g_autoptr(JsonNode) a0 = json_from_string(j0, error);
  if (!a0) return FALSE;
  for (int k = 1; k <= K; k++) {
    g_autofree char *jk = pq_pipeline_to_json(lv[k].p);
    g_autoptr(JsonNode) ak = json_from_string(jk, error);
    if (!ak) return FALSE;
    for (guint st = 0; st < n_exact; st++)
      if (!json_node_equal(json_array_get_element(json_node_get_array(a0), st), json_array_get_element(json_node_get_array(ak), st))) {
        g_set_error(error, PQ_OPTIONS_ERROR, PQ_OPTIONS_ERROR_VALUE,
                    "level %d changes stage %u (%s), which runs once, on the whole model, before the levels: set its options with --opt",
                    k, st + 1, pq_plugin_name(pq_pipeline_stage_plugin(lv[0].p, st)));
        return FALSE;
      }
  }
  PqModel *ref = chain_strip_head(&lv[0], n_exact, error);
  if (!ref) return FALSE;
  *head = json_array_new();
  for (guint st = 0; st < n_exact; st++) json_array_add_element(*head, json_node_copy(json_array_get_element(json_node_get_array(a0), st)));
  for (int k = 1; k <= K; k++) chain_start_after(&lv[k], n_exact, ref);
  return TRUE;
}

static int cmd_tune(void) {
  GError *error = NULL;
  int K = (args.fallback_opts ? 1 : 0) + (args.levels ? (int)g_strv_length(args.levels) : 0);
  g_autoptr(GPtrArray) level_opts = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev); /* each level's assignments */
  if (args.fallback_opts) g_ptr_array_add(level_opts, g_strdupv(args.fallback_opts));
  for (char **l = args.levels; l && *l; l++) {
    g_auto(GStrv) parts = g_strsplit(*l, ";", -1);
    GPtrArray *kept = g_ptr_array_new();
    for (char **q = parts; *q; q++)
      if (g_strstrip(*q)[0]) g_ptr_array_add(kept, g_strdup(*q));
    if (kept->len == 0) {
      g_ptr_array_free(kept, TRUE);
      g_printerr("pqrun tune: --level '%s' changes no option (PLUGIN.KEY=VALUE, several joined by ';')\n", *l);
      return 2;
    }
    g_ptr_array_add(kept, NULL);
    g_ptr_array_add(level_opts, g_ptr_array_free(kept, FALSE));
  }
  if (K > TUNE_MAX_LEVELS) {
    g_printerr("pqrun tune: %d fallback levels; at most %d\n", K, TUNE_MAX_LEVELS);
    return 2;
  }
  for (int k = -1; k < K; k++)
    for (char **o = k < 0 ? args.opts : level_opts->pdata[k]; o && *o; o++)
      if (strstr(*o, ".include=") || strstr(*o, ".exclude=")) {
        g_printerr("pqrun tune: '%s': tune chooses the layers itself (leave include and exclude out)\n", *o);
        return 2;
      }
  if (!(args.max_degradation >= 0)) {
    g_printerr("pqrun tune: --max-degradation must be >= 0 (points of accuracy)\n");
    return 2;
  }
  ChainJob lv[TUNE_MAX_LEVELS + 1] = {{0}};
  int status = 1;
  PqModel *cur = NULL, *orig = NULL; /* orig: the model given (lv[k].m may become the exact stages' result) */
  JsonArray *head = NULL;            /* the exact stages run before the levels, as a chain file has them */
  g_autoptr(GString) exact = g_string_new(""); /* the exact stages' names: they take the whole model */
  PqDataset *val = NULL;
  GPtrArray *rows0 = NULL;
  g_autofree TuneLayer *ls = NULL;
  guint n = 0;
  if (!chain_job_open(&lv[0], &error)) goto out;
  gint64 n_train = pq_dataset_n_samples(lv[0].calib);
  if (args.validation < 1 || args.validation >= n_train) {
    g_printerr("pqrun tune: --validation must be 1 .. %" G_GINT64_FORMAT " (the training split has %" G_GINT64_FORMAT " samples)\n", n_train - 1, n_train);
    status = 2;
    goto out;
  }
  for (int k = 1; k <= K; k++) { /* the fallback chains: the same stages with their level's options */
    lv[k].reg = pq_registry_new();
    lv[k].m = pq_model_ref(lv[0].m);
    if (!(lv[k].p = make_pipeline(lv[k].reg, &lv[k].calib, &error))) goto out;
    for (char **o = level_opts->pdata[k - 1]; *o; o++)
      if (!pq_pipeline_parse_option(lv[k].p, *o, &error)) goto out;
  }
  guint n_exact = exact_head(lv[0].p);
  for (guint st = 0; st < pq_pipeline_n_stages(lv[0].p); st++)
    if (pq_plugin_exact(pq_pipeline_stage_plugin(lv[0].p, st)))
      g_string_append_printf(exact, "%s%s", exact->len ? ", " : "", pq_plugin_name(pq_pipeline_stage_plugin(lv[0].p, st)));
  orig = pq_model_ref(lv[0].m);
  if (n_exact > 0 && !tune_strip_exact(lv, K, n_exact, &head, &error)) goto out;
  const guint first0 = head ? n_exact + 1 : 1; /* level 0's first stage, in the records */
  val = pq_dataset_slice(lv[0].calib, n_train - args.validation, args.validation, &error);
  double v_base, v_acc;
  if (!val || !evaluate(lv[0].reg, orig, val, &v_base, &error)) goto out;
  if (!(cur = pq_pipeline_run(lv[0].p, lv[0].m, &error)) || !evaluate(lv[0].reg, cur, val, &v_acc, &error)) goto out;
  gint64 base_bytes = pq_model_nbytes(orig);
  printf("levels: 0 the chain");
  for (int k = 1; k <= K; k++) {
    g_autofree char *joined = g_strjoinv(" ", level_opts->pdata[k - 1]);
    printf("; %d %s", k, joined);
  }
  printf("; %d left as it was\n", K + 1);
  printf("%-5s %-28s %12s %9s %11s %12s\n", "step", "layer -> level", "bytes", "ratio", "validation", "degradation");
#define TUNE_ROW(step, what, model, acc)                                                                                  \
  printf("%-5d %-28s %12" G_GINT64_FORMAT " %8.2fx %10.2f%% %+9.2f pp\n", step, what, pq_model_nbytes(model),              \
         (double)base_bytes / (double)pq_model_nbytes(model), 100 * (acc), 100 * ((acc) - v_base))
  TUNE_ROW(0, "-", cur, v_acc);
  int step = 0;
  if (100 * (v_base - v_acc) > args.max_degradation) {
    /* each layer alone at each level, measured once */
    if (!(rows0 = per_layer_rows(&lv[0], cur, val, &error))) goto out;
    n = rows0->len;
    ls = g_new0(TuneLayer, n ? n : 1);
    for (guint i = 0; i < n; i++) {
      const SensRow *r = rows0->pdata[i];
      ls[i].layer = r->layer;
      ls[i].acc[0] = r->accuracy, ls[i].bytes[0] = r->bytes;
      for (int k = 1; k <= K + 1; k++) ls[i].acc[k] = v_base, ls[i].bytes[k] = base_bytes; /* (a level that skips it: as it was) */
    }
    for (int k = 1; k <= K; k++) {
      g_autoptr(PqModel) full = pq_pipeline_run(lv[k].p, lv[k].m, &error);
      if (!full) goto out;
      g_autoptr(GPtrArray) rk = per_layer_rows(&lv[k], full, val, &error);
      if (!rk) goto out;
      for (guint j = 0; j < rk->len; j++)
        for (guint i = 0; i < n; i++)
          if (!strcmp(ls[i].layer, ((SensRow *)rk->pdata[j])->layer)) ls[i].acc[k] = ((SensRow *)rk->pdata[j])->accuracy, ls[i].bytes[k] = ((SensRow *)rk->pdata[j])->bytes;
    }
    while (100 * (v_base - v_acc) > args.max_degradation) {
      /* a move takes a layer from its level to any higher one; measured alone, it gains some accuracy for
         some bytes. The move with the most accuracy a byte among those that gain (else, every estimate
         saying no gain, the least loss a byte); but a move that alone would close what is left of the gap
         and costs fewer bytes than that one goes first. */
      double gap = (v_base - v_acc) - args.max_degradation / 100, best_key = 0;
      int best = -1, best_to = 0, best_gains = 0, closer = -1, closer_to = 0;
      gint64 best_cost = 0, closer_cost = 0;
      for (guint i = 0; i < n; i++)
        for (int m = ls[i].level + 1; m <= K + 1; m++) {
          double gain = ls[i].acc[m] - ls[i].acc[ls[i].level];
          gint64 cost = MAX(ls[i].bytes[m] - ls[i].bytes[ls[i].level], 1);
          double key = gain / (double)cost;
          if (best < 0 || (gain > 0) > best_gains || ((gain > 0) == best_gains && key > best_key))
            best = (int)i, best_to = m, best_gains = gain > 0, best_key = key, best_cost = cost;
          if (gain > 0 && gain >= gap && (closer < 0 || cost < closer_cost)) closer = (int)i, closer_to = m, closer_cost = cost;
        }
      if (closer >= 0 && closer_cost < best_cost) best = closer, best_to = closer_to;
      if (best < 0) break; /* every layer as it was */
      ls[best].level = best_to;
      pq_model_unref(cur);
      if (!(cur = tune_build(lv, K, ls, n, first0, &error)) || !evaluate(lv[0].reg, cur, val, &v_acc, &error)) goto out;
      g_autofree char *what = g_strdup_printf("%s -> %d%s", ls[best].layer, ls[best].level, ls[best].level > K ? " (as it was)" : "");
      TUNE_ROW(++step, what, cur, v_acc);
    }
  }
#undef TUNE_ROW
  double t_base, t_acc;
  if (!evaluate(lv[0].reg, orig, lv[0].test, &t_base, &error) || !evaluate(lv[0].reg, cur, lv[0].test, &t_acc, &error)) goto out;
  printf("(validation: %s, %d samples, baseline %.2f%%%s)\n", pq_dataset_name(val), args.validation, 100 * v_base,
         args.calibration > n_train - args.validation ? "; it overlaps the calibration samples: pass a smaller --calibration" : "");
  printf("\nresult: %.2fx, test accuracy %.2f%% against %.2f%% (%+.2f pp) on %s; %s\n", (double)base_bytes / (double)pq_model_nbytes(cur),
         100 * t_acc, 100 * t_base, 100 * (t_acc - t_base), pq_dataset_name(lv[0].test),
         100 * (v_base - v_acc) <= args.max_degradation ? "within the target on validation" : "beyond the target on validation");
  if (step > 0) {
    g_autofree char *above = tune_pattern(ls, n, 1, TRUE);
    printf("the same model again: this chain with --opt N.exclude=%s for each stage N%s%s%s", above, exact->len ? " but " : "",
           exact->str, exact->len ? " (it takes the whole model)" : "");
    gboolean fallback = FALSE;
    for (int k = 1; k <= K; k++) {
      g_autofree char *at = tune_pattern(ls, n, k, FALSE), *joined = g_strjoinv(" ", level_opts->pdata[k - 1]);
      if (at[0]) printf(", then the chain%s with %s and --opt N.include=%s", n_exact ? " without its first stages, the exact ones," : "", joined, at);
      fallback |= at[0] != 0;
    }
    printf("%s\n", n_exact && fallback ? " (--save-chain writes it exactly)" : "");
  }
  if (args.output) {
    if (!pq_model_save(cur, args.output, &error)) goto out;
    printf("written: %s\n", args.output);
  }
  if (args.save_chain && !tune_save_chain(lv, K, ls, n, head, args.save_chain, &error)) goto out;
  status = 0;
out:
  if (cur) pq_model_unref(cur);
  if (orig) pq_model_unref(orig);
  if (head) json_array_unref(head);
  if (val) pq_dataset_unref(val);
  if (rows0) g_ptr_array_unref(rows0);
  for (int k = 0; k <= TUNE_MAX_LEVELS; k++) chain_job_clear(&lv[k]);
  return error ? fail(error) : status;
}

static int cmd_bench(void) {
  GError *error = NULL;
  if (args.runs < 1 || args.warmup < 0 || args.timeout < 0 || args.calibration < 0) {
    g_printerr("pqrun bench: --runs must be >= 1; --warmup, --timeout and --calibration >= 0\n");
    return 2;
  }
  g_autoptr(PqRegistry) reg = pq_registry_new();
  for (guint i = 0; i < args.chain->len; i++) /* --plugin: custom compressors and probes */
    if (!pq_registry_load(reg, (char *)args.chain->pdata[i] + 5, &error)) return fail(error);
  pq_registry_scan_default(reg);
  PqPlugin *backend = pq_registry_find(reg, args.backend ? args.backend : "cpu", PQ_KIND_BACKEND, &error);
  if (!backend) return fail(error);
  const char *why;
  if (!pq_plugin_usable(backend, &why)) {
    g_printerr("pqrun: backend '%s' is not usable on this machine: %s\n", pq_plugin_name(backend), why);
    return 1;
  }
  g_autoptr(PqOptions) bopts = backend_options(backend, &error);
  if (!bopts) return fail(error);
  /* the suite, validated whole before anything runs */
  g_autofree char *config_text = NULL;
  const char *origin = args.config ? args.config : "the default suite";
  if (args.config && !g_file_get_contents(args.config, &config_text, NULL, &error)) return fail(error);
  g_autoptr(GHashTable) pipelines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)pq_pipeline_free);
  g_autoptr(GPtrArray) methods = pq_bench_load_config(reg, config_text ? config_text : pq_bench_default_suite(), origin, pipelines, &error);
  if (!methods) return fail(error);
  /* probes and their options */
  g_autoptr(GPtrArray) probes = g_ptr_array_new();
  g_autoptr(GHashTable) popts = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)pq_options_free);
  gint64 max_batch = 256;
  for (guint i = 0; i < pq_registry_n_plugins(reg); i++) {
    PqPlugin *p = pq_registry_plugin(reg, i);
    if (pq_plugin_kind(p) != PQ_KIND_PROBE) continue;
    PqOptions *o = pq_options_new(pq_plugin_options_schema(p), pq_plugin_name(p), &error);
    if (!o) return fail(error);
    if (!strcmp(pq_plugin_name(p), "latency")) {
      g_autofree char *runs = g_strdup_printf("%d", args.runs), *warm = g_strdup_printf("%d", args.warmup);
      if ((args.batch_sizes && !pq_options_set(o, "batch_sizes", args.batch_sizes, &error)) || !pq_options_set(o, "runs", runs, &error) ||
          !pq_options_set(o, "warmup", warm, &error)) {
        pq_options_free(o);
        return fail(error);
      }
      g_auto(GStrv) sizes = g_strsplit(pq_options_get_string(o, "batch_sizes", "1,64"), ",", -1);
      for (char **b = sizes; *b; b++) {
        char *end;
        gint64 v = g_ascii_strtoll(*b, &end, 10);
        if (*end || v < 1 || v > 65536) {
          pq_options_free(o);
          g_printerr("pqrun bench: --batch-sizes: '%s' is not a batch size (1..65536)\n", *b);
          return 2;
        }
        max_batch = MAX(max_batch, v);
      }
    }
    g_hash_table_insert(popts, (gpointer)pq_plugin_name(p), o);
    g_ptr_array_add(probes, p);
  }
  g_autoptr(PqModel) model = load_model(&error);
  if (!model) return fail(error);
  g_autoptr(PqDataset) test = pq_dataset_open(dataset_name(), "t10k", &error);
  if (!test) return fail(error);
  g_autoptr(PqDataset) train = pq_dataset_open(dataset_name(), "train", &error);
  if (!train) return fail(error);

  if (args.dry_run) {
    int w = 18; /* the method column as wide as its longest name */
    for (guint i = 0; i < methods->len; i++) w = MAX(w, (int)strlen(methods->pdata[i]));
    printf("%-*s %12s %12s %14s %14s %9s\n", w, "method", "params", "bytes", "bytes on disk", "MACs", "ratio");
    for (guint i = 0; i < methods->len; i++) {
      const char *name = methods->pdata[i];
      PqPipeline *p = g_hash_table_lookup(pipelines, name);
      g_autoptr(PqModel) out = NULL;
      if (pq_pipeline_n_stages(p) == 0) out = pq_model_ref(model);
      else {
        pq_pipeline_set_calibration(p, train, args.calibration);
        g_autoptr(GError) merr = NULL;
        out = pq_pipeline_run(p, model, &merr);
        if (!out) {
          printf("%-*s error: %s\n", w, name, merr->message);
          continue;
        }
      }
      PqCost c = {sizeof c, 0, 0, 0};
      pq_model_cost(out, &c, NULL);
      printf("%-*s %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %14" G_GINT64_FORMAT " %14" G_GINT64_FORMAT "%s %8.2fx\n", w, name,
             pq_model_n_params(out), pq_model_nbytes(out), pq_model_file_size(out), c.macs, c.estimated ? "*" : " ",
             (double)pq_model_nbytes(model) / (double)pq_model_nbytes(out));
    }
    printf("(no evaluation: --dry-run%s)\n", "; * marks estimated counts");
    return 0;
  }

  /* the report folder: made and checked before the first method runs */
  g_autofree char *outdir = NULL;
  if (args.output) outdir = g_strdup(args.output);
  else {
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    outdir = g_date_time_format(now, "pquant-report-%Y%m%d-%H%M%S");
  }
  if (g_mkdir_with_parents(outdir, 0755) != 0) {
    g_printerr("pqrun: %s: cannot create the report folder: %s\n", outdir, g_strerror(errno));
    return 1;
  }
  g_autofree char *probe_path = g_build_filename(outdir, ".write-test", NULL);
  if (!g_file_set_contents(probe_path, "", 0, &error)) {
    g_printerr("pqrun: %s: the report folder is not writable: %s\n", outdir, error->message);
    g_error_free(error);
    return 1;
  }
  g_unlink(probe_path);
  g_printerr("report folder: %s\n", outdir);
  PqBenchSettings st = {reg, backend, probes, popts, model, test, train, args.calibration, args.threads, max_batch, args.timeout,
                        args.resume, isatty(2), outdir, bopts};
  g_autoptr(GPtrArray) results = pq_bench_run(&st, methods, pipelines, &error);
  if (!results) return fail(error);
  g_autofree char *table = pq_report_write(&st, results, &error);
  if (!table) return fail(error);
  fputs(table, stdout);
  printf("\nreport: %s/report.{json,md,csv}, plots: accuracy_vs_compression.{png,svg}, latency.{png,svg}\n", outdir);
  guint errors = 0;
  for (guint i = 0; i < results->len; i++)
    errors += g_strcmp0(json_object_get_string_member_with_default(results->pdata[i], "status", ""), "ok") != 0;
  if (errors) printf("%u of %u methods failed (see the table)\n", errors, results->len);
  return 0;
}

static int cmd_convert(int argc, char **argv) {
  if (argc != 2 || !args.output) {
    g_printerr("usage: pqrun convert MODEL.onnx -o MODEL.safetensors\n");
    return 2;
  }
  GError *error = NULL;
  g_autoptr(PqModel) m = pq_model_load(argv[1], &error);
  if (!m || !pq_model_save(m, args.output, &error)) return fail(error);
  printf("%s: %" G_GINT64_FORMAT " parameters, %" G_GINT64_FORMAT " bytes of tensors, %zu nodes -> %s\n", argv[1], pq_model_n_params(m),
         pq_model_nbytes(m), pq_graph_n_nodes(pq_model_const_graph(m)), args.output);
  return 0;
}

static int cmd_compare(int argc, char **argv) {
  if (argc != 3) {
    g_printerr("usage: pqrun compare A/report.json B/report.json (or the report folders A B) [--threshold FRACTION] [--threshold-pp POINTS]\n");
    return 2;
  }
  GError *error = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  int n = pq_report_compare(argv[1], argv[2], args.threshold, args.threshold_pp, out, &error);
  if (n < 0) return fail(error);
  fputs(out->str, stdout);
  return n > 0 ? 1 : 0;
}

static void print_shape(GString *s, int nd, const int64_t *sh) {
  g_string_append_c(s, '[');
  for (int i = 0; i < nd; i++) g_string_append_printf(s, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, sh[i]);
  g_string_append_c(s, ']');
}

static int cmd_info(void) {
  GError *error = NULL;
  g_autoptr(PqRegistry) reg = make_registry(&error); /* loaded compressors declare their ops */
  if (!reg) return fail(error);
  g_autoptr(PqModel) m = load_model(&error);
  if (!m) return fail(error);
  const PqGraph *g = pq_model_const_graph(m);
  g_autoptr(GString) s = g_string_new(NULL);
  g_autofree char *path = args.model ? g_strdup(args.model) : cache_model_path(DEFAULT_MODEL_FILE);
  g_string_append_printf(s, "model %s\n", path);
  const char *keys[] = {"pquant.model", "pquant.training"};
  for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
    if (pq_model_meta(m, keys[i])) g_string_append_printf(s, "  %s: %s\n", keys[i], pq_model_meta(m, keys[i]));
  g_string_append(s, "\ninputs:\n");
  for (size_t i = 0; i < pq_graph_n_inputs(g); i++) {
    int nd;
    const int64_t *sh = pq_graph_input_shape(g, i, &nd);
    g_string_append_printf(s, "  %-20s ", pq_graph_input_name(g, i));
    print_shape(s, nd, sh);
    g_string_append_c(s, '\n');
  }
  if (pq_graph_n_nodes(g)) {
    g_autoptr(PqPlan) plan = pq_model_plan(m, 1, &error);
    if (!plan) return fail(error);
    g_string_append(s, "\ngraph (batch 1):\n");
    for (size_t st = 0; st < pq_plan_n_steps(plan); st++) {
      const PqNode *n = pq_plan_step(plan, st);
      g_string_append_printf(s, "  %-10s %-12s (", pq_node_name(n), pq_node_op(n));
      for (size_t j = 0; j < pq_node_n_inputs(n); j++)
        g_string_append_printf(s, "%s%s", j ? ", " : "", pq_node_input(n, j)[0] ? pq_node_input(n, j) : "-");
      int out = pq_plan_step_output(plan, st, 0), nd;
      const int64_t *sh = pq_plan_value_shape(plan, out, &nd);
      g_string_append_printf(s, ") -> %s ", pq_node_output(n, 0));
      print_shape(s, nd, sh);
      g_string_append_c(s, '\n');
    }
  }
  g_string_append(s, "\ntensors:\n");
  for (size_t i = 0; i < pq_model_n_tensors(m); i++) {
    PqTensor *t = pq_model_tensor_at(m, i);
    g_string_append_printf(s, "  %-20s %-6s ", pq_tensor_name(t), pq_tensor_dtype(t) == PQ_DTYPE_PACKED ? "PACKED" : pq_dtype_name(pq_tensor_dtype(t)));
    g_autoptr(GString) sh = g_string_new(NULL);
    print_shape(sh, pq_tensor_ndim(t), pq_tensor_shape(t));
    g_string_append_printf(s, "%-14s %10" G_GINT64_FORMAT " params %10" G_GINT64_FORMAT " bytes", sh->str, pq_tensor_numel(t),
                           pq_tensor_stored_bytes(t));
    if (pq_tensor_dtype(t) == PQ_DTYPE_PACKED) { /* its grid: bits, scheme (group size), zero points, how the scales are stored */
      g_string_append_printf(s, "  (%d-bit %s", pq_tensor_bits(t), pq_quant_scheme_name(pq_tensor_quant_scheme(t)));
      if (pq_tensor_quant_scheme(t) == PQ_QUANT_PER_GROUP) g_string_append_printf(s, " %" G_GINT64_FORMAT, pq_tensor_group_size(t));
      const PqTensor *sc = pq_tensor_scales(t);
      g_string_append_printf(s, "%s", pq_tensor_zeros(t) ? ", zero points" : "");
      if (pq_tensor_dtype(sc) == PQ_DTYPE_F16) g_string_append(s, ", F16 scales");
      if (pq_tensor_dtype(sc) == PQ_DTYPE_PACKED) g_string_append_printf(s, ", %d-bit scales", pq_tensor_bits(sc));
      g_string_append_c(s, ')');
    }
    g_string_append_c(s, '\n');
  }
  g_string_append_printf(s, "\ntotal: %" G_GINT64_FORMAT " parameters, %" G_GINT64_FORMAT " bytes of tensor data\n", pq_model_n_params(m),
                         pq_model_nbytes(m));
  fputs(s->str, stdout);
  if (pq_model_n_records(m)) {
    printf("\nhow it was compressed:\n");
    print_records(m);
  }
  return 0;
}

static int cmd_plugins(void) {
  GError *error = NULL;
  g_autoptr(PqRegistry) reg = make_registry(&error);
  if (!reg) return fail(error);
  printf("searched:");
  for (const char *const *d = pq_registry_searched_dirs(reg); *d; d++) printf(" %s", *d);
  printf("\n\nloaded (%u):\n", pq_registry_n_plugins(reg));
  for (guint i = 0; i < pq_registry_n_plugins(reg); i++) {
    PqPlugin *p = pq_registry_plugin(reg, i);
    const char *why;
    g_autofree char *opts = pq_options_schema_summary(pq_plugin_options_schema(p));
    printf("  %-10s %-16s %-8s %s\n", pq_plugin_kind_name(pq_plugin_kind(p)), pq_plugin_name(p), pq_plugin_version(p), pq_plugin_path(p));
    printf("             %s\n             options: %s\n", pq_plugin_description(p), opts);
    if (pq_plugin_exact(p)) printf("             exact: it returns the same function as it is given (later stages of a chain it opens compare with its result)\n");
    if (!pq_plugin_usable(p, &why)) printf("             NOT USABLE HERE: %s\n", why);
  }
  printf("\nrejected (%u):\n", pq_registry_n_rejected(reg));
  for (guint i = 0; i < pq_registry_n_rejected(reg); i++)
    printf("  %s\n      %s\n", pq_registry_rejected_path(reg, i), pq_registry_rejected_reason(reg, i));
  return 0;
}

static const struct {
  const char *name;
  const char *summary;
  int (*run)(void);
  const GOptionEntry *groups[5];
} commands[] = {
    {"eval", "accuracy of a model on the test set", cmd_eval, {plugin_entries, model_entries, run_entries}},
    {"predict", "a model's outputs on the samples of a .npy file, written as a .npy file", cmd_predict,
     {predict_entries, plugin_entries, model_entries, run_entries}},
    {"bench", "run the benchmark suite and write the report (the default: seven methods)", cmd_bench, {bench_entries, model_entries, bench_run_entries}},
    {"compare", "compare two reports; exit 1 on a regression", NULL, {compare_entries, NULL, NULL}},
    {"convert", "convert an ONNX model into a pquant model file", NULL, {convert_entries, NULL, NULL}},
    {"run", "compress with a chain of plugins and evaluate beside the baseline", cmd_run, {chain_entries, model_output_entries, model_entries, run_entries}},
    {"compress", "compress a model with a chain of plugins and write it", cmd_compress, {chain_entries, model_output_entries, model_entries, NULL}},
    {"sensitivity", "the chain on each layer alone: which layers cost accuracy, what each saves", cmd_sensitivity,
     {chain_entries, json_output_entries, model_entries, run_entries}},
    {"tune", "the chain, moving layers up a ladder of levels (then leaving them out) until within an accuracy target", cmd_tune,
     {chain_entries, tune_entries, model_output_entries, model_entries, run_entries}},
    {"train", "train the default Fashion-MNIST MLP and cache it", cmd_train, {train_entries, NULL, NULL}},
    {"info", "graph, shapes, parameters and bytes of a model", cmd_info, {plugin_entries, model_entries, NULL}},
    {"plugins", "list loaded plugins and every rejected file with its reason", cmd_plugins, {plugin_entries, NULL, NULL}},
};

static void usage(FILE *f) {
  fprintf(f, "Usage: pqrun COMMAND [OPTION...]\n\nCommands:\n");
  for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n`pqrun COMMAND --help` for a command's options; `pqrun --version`.\n");
}

int main(int argc, char **argv) {
  setlocale(LC_ALL, "");
  args.chain = g_ptr_array_new_with_free_func(g_free);
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("pqrun %s (plugin ABI %d.%d)\n", PQ_VERSION_STRING, PQ_ABI_MAJOR, PQ_ABI_MINOR);
    return 0;
  }
  for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (strcmp(argv[1], commands[i].name) != 0) continue;
    g_autofree char *param = g_strdup_printf("%s - %s", commands[i].name, commands[i].summary);
    g_autoptr(GOptionContext) ctx = g_option_context_new(param);
    for (int j = 0; j < 5 && commands[i].groups[j]; j++) g_option_context_add_main_entries(ctx, commands[i].groups[j], NULL);
    GError *error = NULL;
    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    if (!g_option_context_parse(ctx, &sub_argc, &sub_argv, &error)) {
      g_printerr("pqrun %s: %s\n", commands[i].name, error->message);
      g_error_free(error);
      return 2;
    }
    if (!commands[i].run) return !strcmp(commands[i].name, "convert") ? cmd_convert(sub_argc, sub_argv) : cmd_compare(sub_argc, sub_argv);
    if (sub_argc > 1) {
      g_printerr("pqrun %s: unexpected argument '%s'\n", commands[i].name, sub_argv[1]);
      return 2;
    }
    if (args.threads < 0) {
      g_printerr("pqrun %s: --threads must be at least 1 (or 0: the default)\n", commands[i].name);
      return 2;
    }
    return commands[i].run();
  }
  g_printerr("pqrun: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
