/* pq-plugin.h — the pquant plugin ABI: what a plugin exports and what the host calls.
 *
 * Rules of this contract (see docs/plugin-abi.md):
 *  - Plain C99. No GLib (or any other library's) types cross this boundary.
 *  - A plugin is a shared object exporting exactly one entry symbol, PQ_PLUGIN_ENTRY_SYMBOL, that returns
 *    a pointer to a static PqPluginDesc. The host MUST NOT free it; the plugin MUST keep it valid until exit
 *    (plugins are never unloaded).
 *  - The host rejects a plugin built for another PQ_ABI_MAJOR, or for a newer PQ_ABI_MINOR than its own.
 *  - Every ABI struct starts with `uint32_t struct_size` (sizeof at the builder's compile time) and only ever
 *    grows at its end. A reader MUST NOT read a field that lies beyond struct_size. Reserved fields MUST be
 *    NULL/0.
 *  - Fallible calls return a PqStatus and fill a caller-owned PqPluginError. The callee MUST NOT keep the
 *    error pointer. On PQ_OK the error is left untouched.
 *  - Plugins create and inspect models and tensors only through the core API in pq-core.h.
 */
#ifndef PQ_PLUGIN_H
#define PQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "pq-core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PQ_ABI_MAJOR 1
#define PQ_ABI_MINOR 11

/* The one symbol a plugin exports. */
#define PQ_PLUGIN_ENTRY_SYMBOL "pq_plugin_query"

#if defined(_WIN32)
#define PQ_PLUGIN_EXPORT __declspec(dllexport)
#else
#define PQ_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Plugin kinds. Values are part of the ABI and are never renumbered. */
typedef enum {
  PQ_KIND_COMPRESSOR = 1,
  PQ_KIND_BACKEND = 2,
  PQ_KIND_PROBE = 3
} PqPluginKind;

/* Status codes returned across the ABI. Values are never renumbered. */
typedef enum {
  PQ_OK = 0,
  PQ_ERR_INVALID = 1,     /* bad argument, option or model */
  PQ_ERR_UNSUPPORTED = 2, /* an op, dtype or form this plugin cannot handle */
  PQ_ERR_NOMEM = 3,
  PQ_ERR_IO = 4,
  PQ_ERR_NOT_USABLE = 5,  /* the plugin cannot work on this machine (no GPU, no driver) */
  PQ_ERR_INTERNAL = 6
} PqStatus;

/* Caller-owned error buffer. The callee writes `code` and a NUL-terminated `message`. */
typedef struct PqPluginError {
  uint32_t struct_size;
  int32_t code;
  char message[256];
} PqPluginError;

/* A dense view of a float/int buffer passed to or from a backend. The memory belongs to the caller. */
typedef struct PqTensorView {
  uint32_t struct_size;
  int32_t dtype;               /* PqDType */
  int32_t ndim;
  int32_t reserved0;           /* MUST be 0 */
  int64_t shape[PQ_MAX_DIMS];
  void *data;                  /* row-major, contiguous; never NULL in a valid view */
} PqTensorView;

/* ------------------------------------------------------------------------------------------------------------
 * Compressors
 * ------------------------------------------------------------------------------------------------------------ */

/* Calibration data handed to a compressor that asked for it. Owned by the host, valid during compress(). */
typedef struct PqCalibration {
  uint32_t struct_size;
  int32_t reserved0;           /* MUST be 0 */
  int64_t n_samples;           /* number of samples in `inputs` (first dimension) */
  const PqTensorView *inputs;  /* the model's input for n_samples samples; never NULL when n_samples > 0 */
  const void *host;            /* the host's; MUST NOT be touched: pass the calibration to pq_calibration_capture() */
  /* Since ABI 1.2 (read it only when struct_size covers it): the samples' class labels, n_samples of them,
   * or NULL when the dataset has none. */
  const uint8_t *labels;
} PqCalibration;

/* Run the calibration inputs through the model being compressed (on the host's CPU backend) and return the
 * values of `value` (any graph value: a layer's input, say) as a malloc'd float array of n_samples rows of
 * `*per_sample` floats, which the caller frees with free(). NULL with `error` filled on failure. */
PQ_API float *pq_calibration_capture(const PqCalibration *calibration, const char *value, int64_t *per_sample,
                                     PqPluginError *error);
/* The same through `model` (a copy the compressor is changing, say; NULL: the model being compressed), for
 * methods that work layer after layer on what the earlier layers became. Since ABI 1.3. */
PQ_API float *pq_calibration_capture_model(const PqCalibration *calibration, const PqModel *model, const char *value,
                                           int64_t *per_sample, PqPluginError *error);
/* The model the host's chain started from (the uncompressed model, before any stage ran; for a compressor run
 * alone, the model being compressed), read-only, owned by the host and alive for the call: a teacher for
 * distillation (capture its output with pq_calibration_capture_model()). NULL without calibration. Since ABI 1.5. */
PQ_API const PqModel *pq_calibration_original(const PqCalibration *calibration);

/* The Gram matrix G = XᵀX / N of what a linear or conv2d layer (`node`, of `model`, or of the model being
 * compressed when `model` is NULL) multiplies by its weight, over the calibration samples: X's rows are the layer's input rows (linear) or
 * its input patches, one per output position (conv2d, groups = 1). G is k × k, k the weight's row length,
 * row-major with both triangles; malloc'd, free() it. `*k` gets k, `*rows` (may be NULL) N. NULL with
 * `error` filled otherwise (no samples, another op, a grouped conv). What data-aware compressors (GPTQ,
 * activation-whitened SVD) start from. Since ABI 1.3. */
PQ_API float *pq_calibration_gram(const PqCalibration *calibration, const PqModel *model, const PqNode *node, int64_t *k,
                                  int64_t *rows, PqPluginError *error);

/* A new op a compressor introduces (a codebook layer, a sparse pattern, a factorisation of its own), with the
 * reference CPU kernel that runs it: the CPU backend runs any op a loaded compressor declares, so a model
 * with a third-party form runs without changing a backend. Owned by the plugin, static. */
typedef struct PqOpKernel {
  uint32_t struct_size;
  uint32_t reserved0;            /* MUST be 0 */
  const char *op;                /* required: [a-z0-9_]+, not a built-in op, unique among loaded plugins */
  /* Required. The output's shape from the node and its inputs' shapes (inputs[j].data is NULL here).
   * Dimension 0 of activations is the batch; set output->ndim and output->shape. */
  PqStatus (*infer)(const PqNode *node, const PqTensorView *inputs, size_t n_inputs, PqTensorView *output, PqPluginError *error);
  /* Required. Compute the output (float32, shape as inferred with this batch). Inputs that are model
   * tensors come as views of their stored data with their own dtype (PACKED: the packed bytes; read such
   * tensors through pq_model_tensor(model, pq_node_input(node, j)) for their parameters). MUST NOT
   * allocate what a run could reuse: `workspace` is workspace_bytes() large, or NULL. */
  PqStatus (*run)(const PqNode *node, const PqModel *model, const PqTensorView *inputs, size_t n_inputs, PqTensorView *output,
                  void *workspace, PqPluginError *error);
  /* Optional (NULL = none). Scratch bytes run() needs for this node at this batch. */
  size_t (*workspace_bytes)(const PqNode *node, const PqTensorView *inputs, size_t n_inputs);
  void *reserved[4];             /* MUST be NULL */
} PqOpKernel;

/* PqCompressorVTable.flags (since ABI 1.8). */
#define PQ_COMPRESSOR_EXACT ((uintptr_t)1) /* the model returned computes the same function as the one given, up to
                                            * float rounding, though values inside it may differ (equalize): a
                                            * chain that starts with such stages takes their result as the model
                                            * later stages' calibration compares with (pq_calibration_original) */

typedef struct PqCompressorVTable {
  uint32_t struct_size;
  /* Required. Read `in` (which MUST NOT be modified) and return a new model in `*out`, owned by the caller.
   * `options` were validated against the descriptor's schema; never NULL. `calibration` is NULL unless
   * calibration_samples() asked for samples. */
  PqStatus (*compress)(const PqModel *in, const PqOptions *options, const PqCalibration *calibration,
                       PqModel **out, PqPluginError *error);
  /* Optional (may be NULL = 0). How many calibration samples the compressor wants for these options. */
  int64_t (*calibration_samples)(const PqOptions *options);
  /* Optional (may be NULL / 0). The ops this compressor introduces, with their reference CPU kernels. */
  const PqOpKernel *kernels;
  size_t n_kernels;            /* since ABI 1.1 (taken from reserved[]: the size is unchanged) */
  uintptr_t flags;             /* since ABI 1.8 (taken from reserved[]): PQ_COMPRESSOR_* bits, others 0 */
  void *reserved[5];           /* MUST be NULL */
} PqCompressorVTable;

/* ------------------------------------------------------------------------------------------------------------
 * Backends
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct PqBackendConfig {
  uint32_t struct_size;
  int32_t threads;             /* 0 = the backend's default */
  int64_t max_batch;           /* largest batch run() will be given; >= 1 */
  const PqOptions *options;    /* backend options validated against its schema, or NULL */
} PqBackendConfig;

/* Memory counters of a prepared model, in bytes. Fields a backend cannot know are -1. */
typedef struct PqMemoryCounters {
  uint32_t struct_size;
  int32_t reserved0;           /* MUST be 0 */
  int64_t weights_bytes;       /* weights as held by the backend */
  int64_t current_bytes;       /* everything the backend holds for this model now */
  int64_t peak_bytes;          /* the most it held at once since prepare() */
  int64_t device_free_bytes;   /* device memory free (accelerators), else -1 */
  int64_t device_total_bytes;  /* device memory in all (accelerators), else -1 */
} PqMemoryCounters;

/* How long the last run() of a prepared model took, as the backend itself timed it (an accelerator's own
 * clock: CUDA events, say), in milliseconds. Fields it cannot time are -1. */
typedef struct PqRunTiming {
  uint32_t struct_size;
  int32_t reserved0;           /* MUST be 0 */
  double total_ms;             /* the whole run: copies in, compute, copies out */
  double compute_ms;           /* the compute alone */
  double copy_in_ms;           /* host → device copies of the inputs (0 where nothing is copied) */
  double copy_out_ms;          /* device → host copies of the outputs (0 where nothing is copied) */
} PqRunTiming;

typedef struct PqBackendVTable {
  uint32_t struct_size;
  /* Required. 1 if the backend can run nodes with this op name, 0 otherwise. `op` is never NULL. */
  int (*supports_op)(const char *op);
  /* Required. Prepare `model` once for runs of up to config->max_batch samples. The backend MAY keep
   * references to the model's tensors through pq_model_ref(); `*handle` is owned by the host and given
   * back to release(). */
  PqStatus (*prepare)(const PqModel *model, const PqBackendConfig *config, void **handle, PqPluginError *error);
  /* Required. Run one batch: one input view per graph input, one output view per graph output, in graph
   * order, with shape[0] = batch <= max_batch. The host owns every view and its memory. */
  PqStatus (*run)(void *handle, const PqTensorView *inputs, size_t n_inputs, PqTensorView *outputs,
                  size_t n_outputs, PqPluginError *error);
  /* Required. Free everything prepare() made. `handle` may be NULL. */
  void (*release)(void *handle);
  /* Optional (may be NULL). Fill the memory counters of a prepared model. */
  PqStatus (*memory)(void *handle, PqMemoryCounters *out, PqPluginError *error);
  /* Optional (may be NULL; since ABI 1.2, taken from reserved[]: the size is unchanged). Fill the timing of
   * the last successful run() of `handle`; called by the host right after that run, from the same thread.
   * A backend whose timing costs its runs time MAY time only runs whose timing was asked for before they ran
   * (a call of this after the run before): for a run it did not time, every field -1. */
  PqStatus (*last_run_timing)(void *handle, PqRunTiming *out, PqPluginError *error);
  void *reserved[7];           /* MUST be NULL */
} PqBackendVTable;

/* ------------------------------------------------------------------------------------------------------------
 * Probes
 * ------------------------------------------------------------------------------------------------------------ */

/* Which of the two models a probe asks the host to run. */
typedef enum { PQ_MODEL_BASELINE = 0, PQ_MODEL_COMPRESSED = 1 } PqModelRole;

/* What a probe observes. Owned by the host, valid during observe(). */
typedef struct PqProbeContext {
  uint32_t struct_size;
  int32_t reserved0;            /* MUST be 0 */
  const PqModel *baseline;      /* never NULL */
  const PqModel *compressed;    /* never NULL (equal to baseline for the baseline method) */
  const PqDataset *dataset;     /* the evaluation split, or NULL when none was given */
  PqRunner *runner;             /* runs either model on the selected backend; never NULL */
  const PqOptions *options;     /* the probe's options, validated against its schema; never NULL */
} PqProbeContext;

typedef struct PqProbeVTable {
  uint32_t struct_size;
  /* Required. Observe and add metrics to `sink` through pq_metrics_add*(). MUST NOT modify the models. */
  PqStatus (*observe)(const PqProbeContext *context, PqMetricSink *sink, PqPluginError *error);
  void *reserved[8];            /* MUST be NULL */
} PqProbeVTable;

/* ------------------------------------------------------------------------------------------------------------
 * The descriptor
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct PqPluginDesc {
  uint32_t struct_size;
  uint16_t abi_major;           /* PQ_ABI_MAJOR at the plugin's build */
  uint16_t abi_minor;           /* PQ_ABI_MINOR at the plugin's build */
  uint32_t kind;                /* PqPluginKind */
  uint32_t reserved0;           /* MUST be 0 */
  const char *name;             /* required: [a-z0-9_]+, at most 63 chars, unique among loaded plugins */
  const char *version;          /* required, free text such as "1.2.0" */
  const char *description;      /* required, one line */
  const char *options_schema;   /* optional (NULL = no options): JSON object, see docs/plugin-abi.md */
  const void *vtable;           /* required: PqCompressorVTable, PqBackendVTable or PqProbeVTable per kind */
  /* Optional (may be NULL = always usable). Return 1 if usable on this machine; else 0 with the reason. */
  int (*usable_here)(PqPluginError *why);
  void *reserved[8];            /* MUST be NULL */
} PqPluginDesc;

typedef const PqPluginDesc *(*PqPluginQueryFunc)(void);

/* Every plugin defines exactly this function. */
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void);

/* Fill an error (plugins' helper; usable by the host too). Always NUL-terminates. */
PQ_API void pq_plugin_error_set(PqPluginError *error, PqStatus code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* For a step on one layer that failed: "layer 'NAME': " put in front of the error's message (unless it begins
 * so already); returns the error's code, PQ_ERR_INTERNAL where none was set. Since ABI 1.7. */
PQ_API PqStatus pq_plugin_error_in_layer(PqPluginError *error, const char *layer);

#ifdef __cplusplus
}
#endif

#endif /* PQ_PLUGIN_H */
