/* pquant.h — the embedding API of libpquant (GLib style): model files, datasets, the plugin registry,
 * backends, compressors, probes and training. Plugins need only pq-plugin.h. */
#ifndef PQUANT_H
#define PQUANT_H

#include <glib.h>

#include "pq-core.h"
#include "pq-plugin.h"
#include "pq-version.h"

G_BEGIN_DECLS

/* ---- error domains: one per component --------------------------------------------------------------- */
#define PQ_FORMAT_ERROR (pq_format_error_quark())
#define PQ_DATASET_ERROR (pq_dataset_error_quark())
#define PQ_REGISTRY_ERROR (pq_registry_error_quark())
#define PQ_GRAPH_ERROR (pq_graph_error_quark())
#define PQ_PLUGIN_CALL_ERROR (pq_plugin_call_error_quark())
#define PQ_OPTIONS_ERROR (pq_options_error_quark())
PQ_API GQuark pq_format_error_quark(void);
PQ_API GQuark pq_dataset_error_quark(void);
PQ_API GQuark pq_registry_error_quark(void);
PQ_API GQuark pq_graph_error_quark(void);
PQ_API GQuark pq_plugin_call_error_quark(void);
PQ_API GQuark pq_options_error_quark(void);

typedef enum { PQ_FORMAT_ERROR_IO, PQ_FORMAT_ERROR_INVALID, PQ_FORMAT_ERROR_UNSUPPORTED } PqFormatError;
typedef enum { PQ_DATASET_ERROR_IO, PQ_DATASET_ERROR_INVALID } PqDatasetError;
typedef enum {
  PQ_REGISTRY_ERROR_OPEN,      /* not found, not a shared object, undefined symbol */
  PQ_REGISTRY_ERROR_NO_ENTRY,  /* no pq_plugin_query */
  PQ_REGISTRY_ERROR_ABI,       /* other major, newer minor */
  PQ_REGISTRY_ERROR_INVALID,   /* bad descriptor or vtable */
  PQ_REGISTRY_ERROR_DUPLICATE,
  PQ_REGISTRY_ERROR_NOT_FOUND
} PqRegistryError;
typedef enum { PQ_GRAPH_ERROR_INVALID } PqGraphError;
typedef enum { PQ_OPTIONS_ERROR_SCHEMA, PQ_OPTIONS_ERROR_UNKNOWN_KEY, PQ_OPTIONS_ERROR_VALUE } PqOptionsError;

/* Convert a plugin's error into a GError in `domain`; `who` names the plugin and call. The one place where
 * plugin errors become GErrors. */
PQ_API void pq_propagate_plugin_error(GError **error, const struct PqPluginError *perr, const char *who);

/* ---- model files (safetensors) ---------------------------------------------------------------------- */
/* Load a model file, memory-mapped. Errors name the file and the offending field. */
PQ_API PqModel *pq_model_load(const char *path, GError **error);
/* Write atomically (temporary file, then rename). */
PQ_API gboolean pq_model_save(const PqModel *model, const char *path, GError **error);
/* ONNX models (when built with protobuf-c; else these fail saying so). pq_model_load reads *.onnx through
 * them. `constants` (name → PqTensor*, may be NULL) turns graph inputs of those names into tensors. */
PQ_API gboolean pq_have_onnx(void);
PQ_API PqModel *pq_onnx_load(const char *path, GError **error);
PQ_API PqModel *pq_onnx_load_full(const char *path, GHashTable *constants, GError **error);
/* One ONNX TensorProto file (as the ONNX test data stores inputs and outputs). */
PQ_API PqTensor *pq_onnx_load_tensor(const char *path, GError **error);
/* Serialise the graph to JSON text and back (the `pquant.graph` metadata entry). */
PQ_API char *pq_graph_to_json(const PqGraph *graph);
PQ_API gboolean pq_graph_from_json(PqGraph *graph, const char *json, GError **error);
/* Validate graph + tensors for one batch size: unknown inputs, cycles, shape mismatches. */
PQ_API gboolean pq_model_validate(const PqModel *model, GError **error);
/* pq_plan_new() reporting through a GError. */
PQ_API PqPlan *pq_model_plan(const PqModel *model, gint64 batch, GError **error);

/* ---- datasets --------------------------------------------------------------------------------------- */
/* Load an IDX image file and its IDX label file (raw or gzip). */
PQ_API PqDataset *pq_dataset_load_idx(const char *images_path, const char *labels_path, GError **error);
/* Load NumPy .npy files: images [N, H, W], [N, C, H, W] or [N, D] (uint8, scaled by 1/255 as IDX images are;
 * float32 or float64, read as they are) and labels [N] of any integer type, values 0..255; C order,
 * little-endian. The classes are 0 … the largest label. */
PQ_API PqDataset *pq_dataset_load_npy(const char *images_path, const char *labels_path, GError **error);
/* Write float32 values of this shape as a NumPy .npy file (version 1.0, C order, little-endian), atomically. */
PQ_API gboolean pq_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data, GError **error);
/* `name_or_dir` is "fashion-mnist" (the Debian package's folder) or a folder with
 * {split}-images-idx3-ubyte[.gz] and {split}-labels-idx1-ubyte[.gz], or {split}-images.npy and {split}-labels.npy;
 * split is "train" or "t10k"/"test" (NumPy files may be named either). */
PQ_API PqDataset *pq_dataset_open(const char *name_or_dir, const char *split, GError **error);
/* A new dataset of samples start … start + count − 1 (copied), named "NAME[start:end]"; an error for a range
 * outside the dataset. */
PQ_API PqDataset *pq_dataset_slice(const PqDataset *dataset, gint64 start, gint64 count, GError **error);
PQ_API PqDataset *pq_dataset_ref(PqDataset *dataset);
PQ_API void pq_dataset_unref(PqDataset *dataset);
PQ_API const guint8 *pq_dataset_labels(const PqDataset *dataset);

/* ---- options ---------------------------------------------------------------------------------------- */
/* Options for a schema (JSON text, NULL = no options) filled with its defaults. */
PQ_API PqOptions *pq_options_new(const char *schema_json, const char *owner, GError **error);
/* Set `key` from text, checked against the schema's type, range and choices. */
PQ_API gboolean pq_options_set(PqOptions *options, const char *key, const char *value, GError **error);
PQ_API void pq_options_free(PqOptions *options);
/* "key=value, ..." for every option that has a value (defaults included), in schema order; g_free() it. */
PQ_API char *pq_options_describe(const PqOptions *options);
/* The choices (the schema's "enum") of string option `key`, in schema order, as a NULL-terminated array for
 * g_strfreev(); NULL where the key is unknown or takes any string. */
PQ_API char **pq_options_choices(const PqOptions *options, const char *key);
/* "rank (integer, 1..4096, default 64), ..." for listings. */
PQ_API char *pq_options_schema_summary(const char *schema_json);

/* ---- registry --------------------------------------------------------------------------------------- */
typedef struct PqRegistry PqRegistry;
typedef struct PqPlugin PqPlugin;

PQ_API PqRegistry *pq_registry_new(void);
PQ_API void pq_registry_free(PqRegistry *registry); /* plugins stay loaded: never unloaded */
/* Load one file; any failure is an error (and is also listed as rejected). */
PQ_API PqPlugin *pq_registry_load(PqRegistry *registry, const char *path, GError **error);
/* Load every *.so in a folder (recursively, 4 levels); failures are listed as rejected, not fatal. */
PQ_API void pq_registry_scan_dir(PqRegistry *registry, const char *dir);
/* PQ_PLUGIN_PATH folders, then the build tree when the program runs uninstalled, else the installed folder. */
PQ_API void pq_registry_scan_default(PqRegistry *registry);
PQ_API guint pq_registry_n_plugins(const PqRegistry *registry);
PQ_API PqPlugin *pq_registry_plugin(const PqRegistry *registry, guint index);
/* Find by name (and kind, 0 = any). NULL with a PQ_REGISTRY_ERROR_NOT_FOUND error that lists what exists. */
PQ_API PqPlugin *pq_registry_find(const PqRegistry *registry, const char *name, PqPluginKind kind, GError **error);
PQ_API guint pq_registry_n_rejected(const PqRegistry *registry);
PQ_API const char *pq_registry_rejected_path(const PqRegistry *registry, guint index);
PQ_API const char *pq_registry_rejected_reason(const PqRegistry *registry, guint index);
/* The folders the default scan looked at, in order. */
PQ_API const char *const *pq_registry_searched_dirs(const PqRegistry *registry);

PQ_API const char *pq_plugin_name(const PqPlugin *plugin);
PQ_API const char *pq_plugin_version(const PqPlugin *plugin);
PQ_API const char *pq_plugin_description(const PqPlugin *plugin);
PQ_API const char *pq_plugin_path(const PqPlugin *plugin);
PQ_API PqPluginKind pq_plugin_kind(const PqPlugin *plugin);
PQ_API const char *pq_plugin_kind_name(PqPluginKind kind);
PQ_API const char *pq_plugin_options_schema(const PqPlugin *plugin);
PQ_API const PqPluginDesc *pq_plugin_desc(const PqPlugin *plugin);
/* Whether usable here; when not, *reason (borrowed) says why. */
PQ_API gboolean pq_plugin_usable(const PqPlugin *plugin, const char **reason);
/* Whether a compressor declares itself exact (PQ_COMPRESSOR_EXACT: same function, values inside may differ). */
PQ_API gboolean pq_plugin_exact(const PqPlugin *plugin);

/* ---- backends --------------------------------------------------------------------------------------- */
typedef struct PqBackend PqBackend;
PQ_API PqBackend *pq_backend_prepare(PqPlugin *plugin, const PqModel *model, int threads, gint64 max_batch,
                                     const PqOptions *options, GError **error);
PQ_API gboolean pq_backend_run(PqBackend *backend, const PqTensorView *inputs, gsize n_inputs,
                               PqTensorView *outputs, gsize n_outputs, GError **error);
/* Convenience for single-input, single-output float models: out has batch*out_numel floats. */
PQ_API gboolean pq_backend_run_f32(PqBackend *backend, const float *input, gint64 batch, float *output,
                                   GError **error);
PQ_API gint64 pq_backend_input_numel(const PqBackend *backend);  /* per sample */
PQ_API gint64 pq_backend_output_numel(const PqBackend *backend); /* per sample */
PQ_API gint64 pq_backend_max_batch(const PqBackend *backend);
PQ_API gboolean pq_backend_memory(PqBackend *backend, PqMemoryCounters *out, GError **error);
/* The backend's own timing of its last successful run (fields it cannot time, or all where it offers no
 * timing, are -1). */
PQ_API gboolean pq_backend_last_timing(PqBackend *backend, PqRunTiming *out, GError **error);
PQ_API void pq_backend_free(PqBackend *backend);

/* Top-1 accuracy (0..1) of a prepared single-input model over a dataset. */
PQ_API gboolean pq_evaluate_accuracy(PqBackend *backend, const PqDataset *dataset, double *accuracy,
                                     GError **error);

/* ---- layer records --------------------------------------------------------------------------------- */
typedef struct {
  int stage;             /* 1-based position in the chain that made it */
  char *method, *layer, *detail;
  gboolean skipped;      /* left as it was; `detail` says why */
  gint64 params_before, params_after, bytes_before, bytes_after;
  double rel_error, sqnr_db; /* NAN when not measured */
} PqLayerRecord;
PQ_API guint pq_model_n_records(const PqModel *model);
PQ_API const PqLayerRecord *pq_model_record(const PqModel *model, guint index);

/* ---- pipeline: a chain of compressor stages -------------------------------------------------------- */
typedef struct PqPipeline PqPipeline;
/* `registry` provides the CPU backend used to capture calibration activations. */
PQ_API PqPipeline *pq_pipeline_new(PqRegistry *registry);
PQ_API void pq_pipeline_free(PqPipeline *pipeline);
PQ_API gboolean pq_pipeline_add_stage(PqPipeline *pipeline, PqPlugin *compressor, GError **error);
PQ_API guint pq_pipeline_n_stages(const PqPipeline *pipeline);
/* The plugin of stage `index` (0-based), borrowed; NULL past the end. */
PQ_API PqPlugin *pq_pipeline_stage_plugin(const PqPipeline *pipeline, guint index);
/* The number the chain's first stage has in the records it leaves and in its messages (1, the default; 0 is
 * taken as 1): a chain run on what another chain made continues that chain's numbering. */
PQ_API void pq_pipeline_set_first_stage(PqPipeline *pipeline, guint first);
/* Takes stage `index` (0-based) and its options out of the chain; the later stages move up one number.
 * FALSE past the end. */
PQ_API gboolean pq_pipeline_remove_stage(PqPipeline *pipeline, guint index);
/* `target` is a stage's plugin name (every stage of that plugin) or its 1-based number. */
PQ_API gboolean pq_pipeline_set_option(PqPipeline *pipeline, const char *target, const char *key, const char *value,
                                       GError **error);
/* "NAME.key=value" or "N.key=value". */
PQ_API gboolean pq_pipeline_parse_option(PqPipeline *pipeline, const char *assignment, GError **error);
/* Stages from a JSON config: {"stages": [{"plugin": "low_rank" or "path/low_rank.so", "options": {...}}, ...]}. */
PQ_API gboolean pq_pipeline_load_config(PqPipeline *pipeline, const char *path, GError **error);
/* The stages as a JSON array, the "stages" of a config that pq_pipeline_load_config reads back: each stage's
 * plugin by registry name and the options given to it (not the defaults, so that an option a stage takes from
 * a later stage when it is not given, as equalize awq's grid, still does after a reload). Free with g_free. */
PQ_API char *pq_pipeline_to_json(const PqPipeline *pipeline);
/* Calibration samples come from `calibration_set` (the first `max_samples`, default 512 when <= 0). */
PQ_API void pq_pipeline_set_calibration(PqPipeline *pipeline, const PqDataset *calibration_set, gint64 max_samples);
PQ_API PqModel *pq_pipeline_run(PqPipeline *pipeline, const PqModel *model, GError **error);
/* The chain on `model`, which an earlier chain made from `original` (NULL: model itself): the stages see
 * `original` as the model the chain started from (pq_calibration_original(): a teacher for distillation). */
PQ_API PqModel *pq_pipeline_run_from(PqPipeline *pipeline, const PqModel *model, const PqModel *original, GError **error);
/* The chain's first `n_stages` stages only (all when more). The later stages are not run but stay in the chain,
 * where a stage that prepares for one (pq_options_later_stage()) still reads its options. */
PQ_API PqModel *pq_pipeline_run_head(PqPipeline *pipeline, const PqModel *model, guint n_stages, GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqPipeline, pq_pipeline_free)

/* ---- compressors and probes ------------------------------------------------------------------------- */
PQ_API PqModel *pq_compressor_run(PqPlugin *plugin, const PqModel *model, const PqOptions *options,
                                  const PqDataset *calibration_set, GError **error);
/* The same with the calibration capture backed by `capture_backend` (a backend plugin; NULL = none). */
PQ_API PqModel *pq_compressor_run_full(PqPlugin *plugin, const PqModel *model, const PqOptions *options,
                                       const PqDataset *calibration_set, gint64 max_samples,
                                       PqPlugin *capture_backend, GError **error);
/* Adds the keys every compressor stage has (include, exclude, min_params) to options made for a compressor. */
PQ_API gboolean pq_options_add_layer_selection(PqOptions *options, GError **error);

typedef struct {
  char *name;
  double value;
  char *unit;
  PqBetter better;
  GArray *samples; /* double, or NULL */
} PqMetric;
/* Observe with a probe: `baseline` and `compressed` run on `backend_plugin`. Returns PqMetric* owned by
 * the array. */
PQ_API GPtrArray *pq_probe_run(PqPlugin *probe, PqPlugin *backend_plugin, const PqModel *baseline,
                               const PqModel *compressed, const PqDataset *dataset, const PqOptions *options,
                               int threads, gint64 max_batch, GError **error);
/* The same, with the backend's options (NULL = its defaults). */
PQ_API GPtrArray *pq_probe_run_full(PqPlugin *probe, PqPlugin *backend_plugin, const PqOptions *backend_options,
                                    const PqModel *baseline, const PqModel *compressed, const PqDataset *dataset,
                                    const PqOptions *options, int threads, gint64 max_batch, GError **error);

/* ---- the benchmark suite ---------------------------------------------------------------------------- */
#define PQ_REPORT_SCHEMA_VERSION 1
/* The default suite: baseline, low_rank_64, low_rank_32, quantization_8, quantization_6, tensor_train,
 * combined (JSON text in the form pq_bench_load_config reads). */
PQ_API const char *pq_bench_default_suite(void);

typedef struct {
  PqRegistry *registry;
  PqPlugin *backend;
  GPtrArray *probes;          /* PqPlugin*: every probe to run */
  GHashTable *probe_options;  /* probe name → PqOptions* (owned by the caller) */
  const PqModel *model;
  const PqDataset *test, *train;
  gint64 calibration;         /* calibration samples (default 512) */
  int threads;
  gint64 max_batch;           /* backends are prepared for this many samples */
  int timeout_s;              /* per method; 0 = none */
  gboolean resume, progress;
  const char *output_dir;
  const PqOptions *backend_options; /* the backend's options, or NULL for its defaults */
} PqBenchSettings;

/* Methods from a suite config: {"methods": {"NAME": [{"plugin": ..., "options": {...}}, ...], ...}}, each
 * validated (plugins found, options checked) before anything runs. Returns the method names in order, with
 * a pipeline each in `pipelines` (name → PqPipeline*). `origin` names the config in errors. */
PQ_API GPtrArray *pq_bench_load_config(PqRegistry *registry, const char *json, const char *origin, GHashTable *pipelines,
                                       GError **error);
/* Run every method, each in a child process; results are appended to OUTPUT/results.jsonl as they finish
 * and returned as JSON objects (JsonObject*, one per method, in order). */
PQ_API GPtrArray *pq_bench_run(const PqBenchSettings *settings, GPtrArray *methods, GHashTable *pipelines, GError **error);
/* The report: report.json, report.md, report.csv, plots; and the console table (returned). `results` in the
 * form pq_bench_run returns them ("method", "status", "metrics", optional "layers", ...); a row of another form
 * is an error naming the row and the member, before anything is written. */
PQ_API char *pq_report_write(const PqBenchSettings *settings, GPtrArray *results, GError **error);
/* Compare two report.json files: prints per method and metric the change, returns the number of regressions
 * beyond `threshold` (a fraction; metrics in % or pp: `threshold_pp` points), or -1 with an error
 * (unreadable, other schema version). */
PQ_API int pq_report_compare(const char *a_path, const char *b_path, double threshold, double threshold_pp, GString *out,
                             GError **error);

/* ---- the default model ------------------------------------------------------------------------------ */
typedef struct {
  int epochs;          /* default 18 */
  int batch_size;      /* default 128 */
  double learning_rate;/* Adam, default 1e-3 with cosine decay */
  guint64 seed;        /* default 42 */
  int threads;         /* BLAS threads while training (default 1: deterministic everywhere) */
  gboolean verbose;
} PqTrainParams;
PQ_API void pq_train_params_init(PqTrainParams *params);
/* Train the MLP 784→256→128→10 (ReLU, softmax cross-entropy, Adam) on `train`. */
PQ_API PqModel *pq_train_mlp(const PqDataset *train, const PqTrainParams *params, GError **error);
/* Train a small CNN on image samples ([H, W] or [C, H, W], H and W >= 8): three 3x3 convolutions (pad 1) of
 * 16, 32 and 64 channels, each followed by ReLU and a 2x2 max pool, then a linear layer and a softmax; He
 * initialisation from `seed`, trained by pq_finetune() (Adam, cosine decay). A model whose conv layers the
 * conv compressors (tucker, low_rank, quant, prune) work on. */
PQ_API PqModel *pq_train_cnn(const PqDataset *train, const PqTrainParams *params, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqModel, pq_model_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqTensor, pq_tensor_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqDataset, pq_dataset_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqOptions, pq_options_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqPlan, pq_plan_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqBackend, pq_backend_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PqRegistry, pq_registry_free)

G_END_DECLS

#endif /* PQUANT_H */
