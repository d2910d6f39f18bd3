/* pq-private.h — libpquant's internal structures, shared by the core's source files only. */
#ifndef PQ_PRIVATE_H
#define PQ_PRIVATE_H

#include "pquant/pquant.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

struct PqTensor {
  gint refcount;
  char *name;
  PqDType dtype;
  int ndim;
  int64_t shape[PQ_MAX_DIMS];
  int64_t numel;
  size_t nbytes;
  void *data;
  gboolean owns_data;       /* g_free(data) on last unref */
  GMappedFile *mapping;     /* read-only tensors keep their file mapping alive */
  /* packed tensors */
  int bits;
  PqQuantScheme scheme;
  int64_t group_size;
  PqTensor *scales;
  PqTensor *zeros;
};

typedef enum { PQ_ATTR_INT, PQ_ATTR_FLOAT, PQ_ATTR_STRING, PQ_ATTR_INTS } PqAttrType;
typedef struct {
  char *key;
  PqAttrType type;
  int64_t i;
  double f;
  char *s;
  GArray *ints; /* int64_t */
} PqAttr;

struct PqNode {
  char *op;
  char *name;
  GPtrArray *inputs;  /* char* */
  GPtrArray *outputs; /* char* */
  GPtrArray *attrs;   /* PqAttr*, in insertion order */
};

typedef struct {
  char *name;
  int ndim;
  int64_t shape[PQ_MAX_DIMS];
} PqGraphInput;

struct PqGraph {
  GPtrArray *nodes;   /* PqNode* */
  GPtrArray *inputs;  /* PqGraphInput* */
  GPtrArray *outputs; /* char* */
};

struct PqModel {
  gint refcount;
  PqGraph *graph;
  GHashTable *tensors;   /* name → PqTensor* (owned ref) */
  GPtrArray *sorted;     /* cache of tensors sorted by name, rebuilt lazily */
  GHashTable *meta;      /* char* → char* */
  GPtrArray *records;    /* PqLayerRecord*, what the compressors that made it did */
};

struct PqDataset {
  gint refcount;
  char *name;
  int64_t n;
  int ndim;
  int64_t sample_shape[3];
  int64_t sample_numel;
  guint8 *images;  /* n * sample_numel bytes, scaled by 1/255 when read; or NULL and: */
  float *fimages;  /* n * sample_numel floats, read as they are */
  guint8 *labels;  /* n */
  int n_classes;
};

PqGraph *pq_graph_new(void);
void pq_graph_free(PqGraph *graph);
PqGraph *pq_graph_copy(const PqGraph *graph);
/* FALSE, with the node's name and the attribute's key, where a float attribute is NaN or infinite (JSON, and
 * so a model file, cannot hold one). */
gboolean pq_graph_attrs_finite(const PqGraph *graph, const char **node, const char **key);
void pq_node_free(PqNode *node);
/* The index of the first value of v[0..n) that is NaN or infinite, or -1. */
int64_t pq_first_non_finite(const float *v, int64_t n);


/* shape inference for one built-in op; returns FALSE with error for unknown ops or mismatches */
gboolean pq_op_infer(const PqNode *node, int n_in, const int64_t *const *in_shapes, const int *in_ndims,
                     int64_t out_shapes[][PQ_MAX_DIMS], int *out_ndims, GError **error);

/* tensor helper: a read-only tensor over memory kept alive by `mapping` */
PqTensor *pq_tensor_new_mapped(const char *name, PqDType dtype, int ndim, const int64_t *shape,
                               const void *data, size_t nbytes, GMappedFile *mapping);
gboolean pq_shape_numel(int ndim, const int64_t *shape, int64_t *numel);
/* Rows and row bytes of a packed layout; FALSE on overflow. */
gboolean pq_packed_layout(int bits, int ndim, const int64_t *shape, int64_t *rows, int64_t *cols, size_t *row_bytes,
                          size_t *nbytes);
int64_t pq_quant_n_scales(PqQuantScheme scheme, int64_t rows, int64_t cols, int64_t group_size);
/* `w` (the shape of the packed tensor `like`) rounded to nearest onto like's grid — its bits, scheme, scales
 * and zero points (shared) — as a new packed tensor. Non-finite values take the nearest end code. */
PqTensor *pq_quantize_like(const char *name, const float *w, const PqTensor *like);
/* The same rounding, written as the values the codes stand for (scale · (code − zero)) into `out`. */
void pq_round_like(const float *w, const PqTensor *like, float *out);
/* A packed tensor's scales as floats, however they are stored (F32, F16, packed); g_free it. */
float *pq_packed_scales_f32(const PqTensor *packed);
/* Check a packed tensor's parameters; FALSE with a message. */
gboolean pq_quant_params_valid(int bits, int ndim, const int64_t *shape, PqQuantScheme scheme, int64_t group_size,
                               const PqTensor *scales, const PqTensor *zeros, GError **error);

/* atomically replace `path` with `len` bytes written by a callback */
typedef gboolean (*PqWriteFunc)(FILE *out, gpointer user_data, GError **error);
gboolean pq_write_atomically(const char *path, PqWriteFunc func, gpointer user_data, GError **error);
gboolean pq_write_text_atomically(const char *path, const char *text, GError **error);

/* records: copy, and the JSON form stored as __metadata__["pquant.records"] */
void pq_records_copy(GPtrArray *dst, const GPtrArray *src);
void pq_record_free(gpointer record);
char *pq_records_to_json(const GPtrArray *records);
/* pq_compressor_run_full for a stage of a chain that started from `original` (the calibration's teacher). */
PqModel *pq_compressor_run_chained(PqPlugin *plugin, const PqModel *model, const PqModel *original, const PqOptions *options,
                                   const PqDataset *calibration_set, gint64 max_samples, PqPlugin *capture_backend, GError **error);
/* The options given (not defaults), as one JSON object of typed values (the builder's next value). */
void pq_options_to_json(const PqOptions *options, JsonBuilder *builder);
/* The pipeline whose stage `options` are (set by pq_pipeline_add_stage), for pq_options_later_stage(). */
void pq_options_set_chain(PqOptions *options, const PqPipeline *chain);
const PqPipeline *pq_options_chain(const PqOptions *options);
/* Whether a JSON node is a value of type t (G_TYPE_DOUBLE accepts integers too). */
static inline gboolean pq_json_holds(JsonNode *n, GType t) {
  if (!n || !JSON_NODE_HOLDS_VALUE(n)) return FALSE;
  GType v = json_node_get_value_type(n);
  return v == t || (t == G_TYPE_DOUBLE && v == G_TYPE_INT64);
}

/* A suite result row has the members, of the types, the reports read (report.c); FALSE with *why (g_free). */
gboolean pq_result_row_check(JsonObject *row, char **why);
/* A result row's "metrics" (NULL where it has none) and one metric's value (NAN where the row has none). */
JsonObject *pq_result_row_metrics(JsonObject *row);
double pq_result_metric(JsonObject *row, const char *name);
gboolean pq_records_from_json(GPtrArray *records, const char *json, GError **error);
/* Set the stage number of records that have none yet (stage 0). */
void pq_records_set_stage(GPtrArray *records, int stage);

#define PQ_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* structured.c: a tensor-train matrix's partial products, kept so that a gradient with respect to its dense
 * matrix goes back to each core (fine-tuning). chain_dense forms W and keeps the left products; chain_grads
 * (after chain_dense with the same cores) writes each core's gradient, laid out as the core. */
typedef struct PqTtChain PqTtChain;
PqTtChain *pq_tt_chain_new(int d, const int64_t (*shapes)[4]);
void pq_tt_chain_free(PqTtChain *chain);
void pq_tt_chain_dense(PqTtChain *chain, const float *const *cores, float *w);
void pq_tt_chain_grads(PqTtChain *chain, const float *const *cores, const float *dw, float *const *dcores);
/* A circulant weight's gradient: each block column's entries summed from dw [out, in] along their diagonals. */
void pq_circulant_grad(const float *dw, int64_t out, int64_t in, int64_t b, float *dblocks);

#endif
