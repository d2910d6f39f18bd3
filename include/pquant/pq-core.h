/* pq-core.h — libpquant's plain-C API shared by plugins and embedders: tensors, graphs, models, options,
 * execution plans, datasets, the runner and the metric sink. No GLib types appear here.
 *
 * Ownership: functions named *_new and *_copy return a reference the caller owns and releases with the
 * matching *_unref/_free. Functions returning `const` pointers lend them: valid as long as their owner.
 */
#ifndef PQ_CORE_H
#define PQ_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PQ_COMPILATION)
#define PQ_API __attribute__((visibility("default")))
#else
#define PQ_API
#endif

#define PQ_MAX_DIMS 8

typedef struct PqTensor PqTensor;
typedef struct PqGraph PqGraph;
typedef struct PqNode PqNode;
typedef struct PqModel PqModel;
typedef struct PqOptions PqOptions;
typedef struct PqPlan PqPlan;
typedef struct PqDataset PqDataset;
typedef struct PqRunner PqRunner;
typedef struct PqMetricSink PqMetricSink;
struct PqPluginError;
struct PqTensorView;
struct PqMemoryCounters;
struct PqRunTiming;

/* Element types. Values are part of the ABI and are never renumbered. */
typedef enum {
  PQ_DTYPE_F32 = 0,
  PQ_DTYPE_F16 = 1,
  PQ_DTYPE_BF16 = 2,
  PQ_DTYPE_I8 = 3,
  PQ_DTYPE_U8 = 4,
  PQ_DTYPE_I32 = 5,
  PQ_DTYPE_I64 = 6,
  PQ_DTYPE_PACKED = 7, /* 2–8-bit integer codes, packed, with quantization parameters (see below) */
  PQ_DTYPE_U16 = 8     /* since 1.0: sparse column indices */
} PqDType;

/* How the scales of a packed tensor are laid out. A packed tensor is seen as a matrix of
 * rows = shape[0] and cols = product of the other dimensions. */
typedef enum {
  PQ_QUANT_PER_TENSOR = 0,  /* one scale (and zero point) */
  PQ_QUANT_PER_CHANNEL = 1, /* one per row */
  PQ_QUANT_PER_GROUP = 2    /* one per `group_size` consecutive values of a row */
} PqQuantScheme;

/* ---- tensors ------------------------------------------------------------------------------------------- */

PQ_API const char *pq_dtype_name(PqDType dtype);          /* "F32", ... as in safetensors; "PACKED" */
/* "per_tensor", "per_channel" or "per_group", as files and options name the schemes; NULL for another value.
 * Since ABI 1.11. */
PQ_API const char *pq_quant_scheme_name(PqQuantScheme scheme);
PQ_API size_t pq_dtype_size(PqDType dtype);               /* bytes per element; 0 for PACKED */

/* A new zero-filled tensor owning its memory. NULL if the shape is invalid (ndim > PQ_MAX_DIMS, a negative
 * dimension, overflow) or dtype is PACKED. */
PQ_API PqTensor *pq_tensor_new(const char *name, PqDType dtype, int ndim, const int64_t *shape);
/* A new zero-filled packed tensor of `bits` (2..8) per value. Codes are unsigned, value = scale * (code - zero).
 * Each row is packed little-endian bit by bit and padded to a whole byte. The scales tensor (F32; since ABI 1.11
 * also F16, or with per-group scales a packed tensor whose own scales are F32 or F16) has 1, rows or
 * rows*(cols/group_size) elements; zero points (U8) are optional: NULL means symmetric, zero = 2^(bits-1).
 * The tensor takes its own references to scales and zeros. NULL on invalid arguments. */
PQ_API PqTensor *pq_tensor_new_packed(const char *name, int bits, int ndim, const int64_t *shape,
                                      PqQuantScheme scheme, int64_t group_size, PqTensor *scales,
                                      PqTensor *zeros);
PQ_API PqTensor *pq_tensor_ref(PqTensor *tensor);
PQ_API void pq_tensor_unref(PqTensor *tensor);

PQ_API const char *pq_tensor_name(const PqTensor *tensor);
PQ_API PqDType pq_tensor_dtype(const PqTensor *tensor);
PQ_API int pq_tensor_ndim(const PqTensor *tensor);
PQ_API const int64_t *pq_tensor_shape(const PqTensor *tensor);
PQ_API int64_t pq_tensor_numel(const PqTensor *tensor);
/* Bytes of the stored data (packed tensors: the packed codes only, without scales). */
PQ_API size_t pq_tensor_nbytes(const PqTensor *tensor);
PQ_API const void *pq_tensor_data(const PqTensor *tensor);
/* Writable data, or NULL if the tensor is read-only (memory-mapped from a file). */
PQ_API void *pq_tensor_mutable_data(PqTensor *tensor);

PQ_API int pq_tensor_bits(const PqTensor *tensor);                  /* 2..8 for PACKED, else 8*dtype size */
PQ_API PqQuantScheme pq_tensor_quant_scheme(const PqTensor *tensor);
PQ_API int64_t pq_tensor_group_size(const PqTensor *tensor);        /* PER_GROUP only, else 0 */
PQ_API PqTensor *pq_tensor_scales(const PqTensor *tensor);          /* borrowed; NULL unless PACKED */
PQ_API PqTensor *pq_tensor_zeros(const PqTensor *tensor);           /* borrowed; NULL if symmetric */
/* Every byte the tensor stores: its data, and a packed tensor's scales (with their own scales and zero points
 * where they are packed) and zero points. What a model's bytes count. Since ABI 1.11. */
PQ_API int64_t pq_tensor_stored_bytes(const PqTensor *tensor);
PQ_API int64_t pq_tensor_rows(const PqTensor *tensor);              /* shape[0] (1 for scalars) */
PQ_API int64_t pq_tensor_cols(const PqTensor *tensor);              /* numel / rows */
PQ_API size_t pq_tensor_row_bytes(const PqTensor *tensor);          /* PACKED: bytes of one packed row */
/* Fill a PqTensorView (struct_size set, reserved fields 0): `shape` NULL gives a view of no dimensions (an
 * absent input); `batch` >= 1 replaces dimension 0. */
PQ_API void pq_tensor_view_init(struct PqTensorView *view, int dtype, int ndim, const int64_t *shape, int64_t batch, void *data);

/* Pack `n` codes (each < 2^bits) into `out` (ceil(n*bits/8) bytes) and back. */
PQ_API void pq_pack_codes(const uint8_t *codes, int64_t n, int bits, uint8_t *out);
PQ_API void pq_unpack_codes(const uint8_t *packed, int64_t n, int bits, uint8_t *codes);
/* Convert any tensor to float32 (dequantizing packed ones) into `out` of numel floats. Reference path for
 * tests and tools; kernels MUST NOT use it at run time. Returns 0 on success, -1 for an unknown dtype. */
PQ_API int pq_tensor_to_f32(const PqTensor *tensor, float *out);
PQ_API float pq_f16_to_f32(uint16_t h);
PQ_API uint16_t pq_f32_to_f16(float f);
PQ_API float pq_bf16_to_f32(uint16_t h);
PQ_API uint16_t pq_f32_to_bf16(float f);

/* Quantize a row-major float matrix (rows = shape[0], cols = the rest) into a new packed tensor of `bits`
 * with its scales (and zero points when not symmetric). `clip_steps` = 0 takes each scale group's full
 * range; n > 0 also tries n smaller clipping ratios (down to half the range) and keeps the one with the
 * least squared error. NULL with `error` filled for invalid arguments (bits outside 2..8, a group size
 * that does not divide the row, NaN or infinite weights). */
PQ_API PqTensor *pq_quantize_matrix(const char *name, const float *w, int ndim, const int64_t *shape, int bits,
                                    PqQuantScheme scheme, int64_t group_size, int symmetric, int clip_steps,
                                    struct PqPluginError *error);

/* GPTQ (Frantar et al., 2022): quantize W as pq_quantize_matrix() does (same layout, scales and zero points),
 * but column by column, each column's rounding error spread over the columns not yet quantized through the
 * inverse of `gram` — G = XᵀX / N (cols × cols, row-major, both triangles), X the rows the layer multiplies
 * by W — so that the layer's outputs on such inputs, not its weights, keep the least squared error.
 * `damping` adds that fraction of G's mean diagonal to it; `act_order` quantizes the columns with the
 * largest G diagonal first (per-group scales are then fixed from W before the first column). Columns
 * whose inputs are always 0 are quantized as 0. NULL with `error` filled for invalid arguments, or when G
 * plus its damping is not positive definite. Since ABI 1.3. */
PQ_API PqTensor *pq_quantize_matrix_gptq(const char *name, const float *w, int ndim, const int64_t *shape, int bits,
                                         PqQuantScheme scheme, int64_t group_size, int symmetric, int clip_steps,
                                         const float *gram, double damping, int act_order, struct PqPluginError *error);

/* Σ over the rows of (w − q)ᵀ G (w − q): the squared output error, on the inputs that `gram` (G = XᵀX / N,
 * k × k, as for pq_quantize_matrix_gptq()) summarises, of a layer whose weight w ([rows, k], row-major) is
 * replaced by q. Returns -1 when out of memory. Since ABI 1.9. */
PQ_API double pq_output_error(const float *w, const float *q, const float *gram, int64_t rows, int64_t k);

/* The group size to use on rows of `cols` values when `group_size` is wanted: the largest divisor of cols that
 * is at most group_size and at least half of it (group_size itself where it divides; cols where a row is no
 * longer than a group), else 0 — 784 values take groups of 28 for 32, 56 for 64, 112 for 128; 147, none for 128. quant's group_fit=divisor, and equalize awq weighing for
 * it, use it. Since ABI 1.11. */
PQ_API int64_t pq_quant_group_fit(int64_t cols, int64_t group_size);
/* A copy of the packed tensor `packed` whose scales are stored as F16 (each rounded to nearest): half their
 * bytes. With `w` (the row-major float matrix `packed` stands for, its shape), the codes are chosen again,
 * nearest on the rounded grid; with NULL they are kept (GPTQ's codes, say, whose rounding errors were
 * spread for the scales as they were). Zero points are shared. NULL with `error` filled (PQ_ERR_UNSUPPORTED)
 * when a scale does not fit F16 to its precision: above 65504, or below 2^-14 (6.1e-5, where F16 numbers
 * lose bits) unless 0; the message names the tensor, the scale and its index. Since ABI 1.11, packed tensors
 * may carry F16 scales: code that reads them reads them with pq_tensor_to_f32(pq_tensor_scales(t), ...). */
PQ_API PqTensor *pq_packed_with_f16_scales(const PqTensor *packed, const float *w, struct PqPluginError *error);
/* A copy of the packed tensor `packed` (per-group scales) whose scales are themselves quantized: each row of
 * scales to `bits` (2..8) codes over [0, its largest], with one F32 scale and zero point a row (double
 * quantization: at 8 bits, a scale of a group costs one byte). With `w`, the codes are chosen again on the
 * resulting grid, as pq_packed_with_f16_scales() does; with NULL, kept. NULL with `error` filled for a tensor
 * that is not packed per group, or whose scales are packed already. Since ABI 1.11. */
PQ_API PqTensor *pq_packed_with_quantized_scales(const PqTensor *packed, const float *w, int bits, struct PqPluginError *error);

/* A conv2d's geometry over one image [c, h, w] (c: the channels of one group), kernel kh × kw, output
 * oh × ow, strides, dilations and the top and left pads. */
typedef struct PqConvGeometry {
  int64_t c, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
} PqConvGeometry;
/* col [c·kh·kw, oh·ow]: the image's patches, one column per output position, 0 where a patch reaches into
 * the padding. Since ABI 1.3. */
PQ_API void pq_im2col(const float *x, const PqConvGeometry *geometry, float *col);
/* The reverse: each of col's values added into x [c, h, w] at its place (those in the padding dropped). */
PQ_API void pq_col2im_add(const float *col, const PqConvGeometry *geometry, float *x);

/* The dense [M, N] matrix (row-major) of a tensor-train matrix of d cores (1..16), core k of shape
 * shapes[k] = [r_{k-1}, m_k, n_k, r_k] with r_0 = r_d = 1, M = Π m_k, N = Π n_k: W[(i_1 … i_d), (j_1 … j_d)] =
 * G_1[:, i_1, j_1, :] · … · G_d[:, i_d, j_d, :], the first core's index the most significant (the layout of
 * tt_linear). Returns 0, or -1 when out of memory. Since ABI 1.4. */
PQ_API int pq_tt_dense(int d, const int64_t (*shapes)[4], const float *const *cores, float *w);
/* The dense [out, in] matrix of a block-circulant weight (circulant_linear's blocks [ceil(out/b), ceil(in/b), b]):
 * block (I, J) is the b × b circulant C[r][s] = c[(r − s) mod b] of its first column c, cut at the
 * matrix's edges. Since ABI 1.4. */
PQ_API void pq_circulant_dense(const float *blocks, int64_t out, int64_t in, int64_t b, float *w);

/* Truncated SVD of a row-major matrix A [m, n] ≈ U diag(S) Vt with U [m, k], S [k], Vt [k, n] (row-major),
 * singular values descending. `randomized` = 0: exact (LAPACK sgesdd); else randomized (Halko et al.) with
 * `oversample` extra columns and `power_iters` power iterations, in O((m + n)(k + oversample)) memory
 * beyond A. Returns 0, or -1 with `error` filled. */
PQ_API int pq_svd_truncated(const float *a, int64_t m, int64_t n, int64_t k, int randomized, int oversample,
                            int power_iters, uint64_t seed, float *u, float *s, float *vt,
                            struct PqPluginError *error);
/* All min(m, n) singular values of A, descending (exact). Returns 0 or -1. */
PQ_API int pq_singular_values(const float *a, int64_t m, int64_t n, float *s, struct PqPluginError *error);
/* The smallest rank k whose k leading singular values of A [m, n] hold at least `energy` (0..1] of the sum of
 * all squared singular values; min(m, n) at most. -1 with `error` filled when the SVD fails. Since ABI 1.6. */
PQ_API int64_t pq_energy_rank(const float *a, int64_t m, int64_t n, double energy, struct PqPluginError *error);
/* In place: A [n, n] (symmetric, row-major; a Gram or covariance matrix) plus `damping` times its mean diagonal
 * on the diagonal, replaced by its lower Cholesky factor L (L Lᵀ = A + ridge; upper triangle zeroed). 0, or -1
 * when that is not positive definite (A is then overwritten). Since ABI 1.6. */
PQ_API int pq_cholesky_damped(float *a, int64_t n, double damping);

/* ---- graphs -------------------------------------------------------------------------------------------- */

/* Graph inputs are named values with a shape whose dimension 0 is the batch (-1). Nodes read values
 * (graph inputs, model tensors or other nodes' outputs) and write new values. The op names understood by
 * the core's shape inference are listed in docs/file-format.md. */
PQ_API PqNode *pq_graph_add_node(PqGraph *graph, const char *op, const char *name, size_t n_inputs,
                                 const char *const *inputs, size_t n_outputs, const char *const *outputs);
/* Who reads a value (a node output, graph input or model tensor): the number of node inputs naming it (a
 * node reading it twice counts twice), the first such node in `*first` (may be NULL; NULL when none), and
 * whether it is one of the graph's outputs in `*is_output` (may be NULL). Since ABI 1.8. */
PQ_API size_t pq_graph_value_readers(const PqGraph *graph, const char *value, PqNode **first, int *is_output);
/* The node whose outputs include `value`, or NULL (a graph input, a model tensor, or no such value). Since
 * ABI 1.8. */
PQ_API PqNode *pq_graph_value_producer(const PqGraph *graph, const char *value);
/* Removes `node` from `graph` and frees it (what read its outputs must be rewired first); 1 if it was
 * there. Since ABI 1.8. */
PQ_API int pq_graph_remove_node(PqGraph *graph, PqNode *node);
PQ_API void pq_graph_add_input(PqGraph *graph, const char *name, int ndim, const int64_t *shape);
PQ_API void pq_graph_add_output(PqGraph *graph, const char *name);
PQ_API size_t pq_graph_n_nodes(const PqGraph *graph);
PQ_API PqNode *pq_graph_node(const PqGraph *graph, size_t index);
PQ_API size_t pq_graph_n_inputs(const PqGraph *graph);
PQ_API const char *pq_graph_input_name(const PqGraph *graph, size_t index);
/* The index of the model input named `name`, or -1 when no input has that name. Since ABI 1.10. */
PQ_API int pq_graph_input_index(const PqGraph *graph, const char *name);
PQ_API const int64_t *pq_graph_input_shape(const PqGraph *graph, size_t index, int *ndim);
PQ_API size_t pq_graph_n_outputs(const PqGraph *graph);
PQ_API const char *pq_graph_output_name(const PqGraph *graph, size_t index);

PQ_API const char *pq_node_op(const PqNode *node);
PQ_API const char *pq_node_name(const PqNode *node);
PQ_API size_t pq_node_n_inputs(const PqNode *node);
PQ_API const char *pq_node_input(const PqNode *node, size_t index);   /* "" for an omitted optional input */
PQ_API size_t pq_node_n_outputs(const PqNode *node);
PQ_API const char *pq_node_output(const PqNode *node, size_t index);
/* Rewire a node: replace input `index` (appending "" inputs as needed) or output `index`. */
PQ_API void pq_node_set_input(PqNode *node, size_t index, const char *name);
PQ_API void pq_node_set_output(PqNode *node, size_t index, const char *name);
PQ_API void pq_node_set_op(PqNode *node, const char *op);
PQ_API void pq_node_set_int(PqNode *node, const char *key, int64_t value);
PQ_API void pq_node_set_float(PqNode *node, const char *key, double value);
PQ_API void pq_node_set_string(PqNode *node, const char *key, const char *value);
PQ_API void pq_node_set_ints(PqNode *node, const char *key, size_t n, const int64_t *values);
PQ_API int pq_node_has_attr(const PqNode *node, const char *key);
PQ_API int64_t pq_node_get_int(const PqNode *node, const char *key, int64_t fallback);
PQ_API double pq_node_get_float(const PqNode *node, const char *key, double fallback);
PQ_API const char *pq_node_get_string(const PqNode *node, const char *key, const char *fallback);
/* Lends the list (n set to its length), or returns NULL (n = 0) when absent. */
PQ_API const int64_t *pq_node_get_ints(const PqNode *node, const char *key, size_t *n);
/* The input slot of a layer's bias: 2 for linear, conv2d, conv_transpose2d and circulant_linear, 4 for
 * sparse_linear, 1 + cores for tt_linear; -1 for an op that takes none (or a tt_linear without its "cores").
 * The slot may be past the node's inputs or "": no bias. Since ABI 1.9. */
PQ_API int pq_layer_bias_input(const PqNode *node);
/* The name of the value a layer takes as its bias, or "" when the op takes none or the node gives none.
 * Since ABI 1.9. */
PQ_API const char *pq_layer_bias(const PqNode *node);

/* A sparse_linear node's CSR tensors checked against its in/out features, so that a backend never reads out
 * of bounds: row starts I32 running from 0 to the number of values without decreasing, column indices U16
 * or I32 inside [0, in_features). 0, or -1 with `error` filled (PQ_ERR_INVALID, naming the node). */
PQ_API int pq_sparse_check(const PqNode *node, const PqTensor *values, const PqTensor *cols, const PqTensor *rows,
                           struct PqPluginError *error);

/* ---- fine-tuning -------------------------------------------------------------------------------------- */

typedef struct PqFinetuneParams {
  int epochs;              /* >= 1 */
  int batch_size;          /* >= 1 */
  double learning_rate;    /* Adam's, cosine-decayed to 0 over the run */
  uint64_t seed;           /* the order of the samples */
  int threads;             /* BLAS threads (0 = 1) */
} PqFinetuneParams;

typedef struct PqFinetuneResult {
  double loss_before, loss_after;           /* mean cross-entropy on the samples */
  double accuracy_before, accuracy_after;   /* fraction of the samples classified right */
  int64_t trained_params;                   /* float32 weights and biases trained */
} PqFinetuneResult;

/* Trains the float32 weights and biases of `model`'s linear layers on labelled samples (inputs: n rows of
 * the model's input width; labels: class indices) with softmax cross-entropy and Adam; weights held in
 * another form (packed codes, float16) stay as they are and are trained through. The model must be made of
 * linear (tt_linear, circulant_linear and sparse_linear too: their cores, block columns or CSR values are what is
 * trained, the sparsity pattern kept), conv2d and conv_transpose2d (any groups), pad2d, resize2d, pools, global_avg_pool, batch_norm (fixed), layer_norm, relu or another activation op,
 * flatten/reshape, reduce_sum/mean/max/min, transpose, slice, concat, matmul of two activations, softmax over the last dimension, the
 * binary ops of two activations or of an activation and a model tensor (broadcast either way; a tensor of more than one value trained
 * under add, sub, mul, div and prelu) and an optional final softmax, its last node computing its one output
 * (docs/compressors.md). A tensor read by several nodes is trained once, from all their gradients. The trained tensors replace the model's
 * (new tensors: a model sharing the old ones is untouched). 0, or -1 with `error` filled. */
PQ_API int pq_finetune(PqModel *model, const float *inputs, const uint8_t *labels, int64_t n, const PqFinetuneParams *params,
                       PqFinetuneResult *result, struct PqPluginError *error);
/* What pq_finetune_ex adds to pq_finetune. Since ABI 1.5; grows only at its end (struct_size). */
typedef struct PqFinetuneExtra {
  uint32_t struct_size;   /* sizeof(PqFinetuneExtra) at the caller's build */
  int32_t qat;            /* 1: packed weights (linear, conv2d) are trained too: a float32 copy of each learns
                             through its rounding (straight-through: the forward pass uses it rounded again
                             with the weight's own bits, scheme and group size every step), and the weight is
                             packed from it at the end */
  const float *teacher;   /* soft targets: n rows of the output width, probabilities (another model's outputs:
                             the uncompressed model's, for distillation), or NULL */
  double alpha;           /* targets = (1 − alpha)·onehot(label) + alpha·teacher; alpha in [0, 1]. `teacher` may be
                             NULL when alpha is 0, `labels` when alpha is 1 (unlabelled samples: the result's
                             accuracies are then agreement with the teacher's top class) */
} PqFinetuneExtra;
/* pq_finetune with `extra` (NULL: as pq_finetune). Since ABI 1.5. */
PQ_API int pq_finetune_ex(PqModel *model, const float *inputs, const uint8_t *labels, int64_t n, const PqFinetuneParams *params,
                          const PqFinetuneExtra *extra, PqFinetuneResult *result, struct PqPluginError *error);

/* ---- models -------------------------------------------------------------------------------------------- */

PQ_API PqModel *pq_model_new(void);
/* A new model sharing the tensors (by reference) with a deep copy of the graph and metadata. */
PQ_API PqModel *pq_model_copy(const PqModel *model);
PQ_API PqModel *pq_model_ref(PqModel *model);
PQ_API void pq_model_unref(PqModel *model);
PQ_API PqGraph *pq_model_graph(PqModel *model);
PQ_API const PqGraph *pq_model_const_graph(const PqModel *model);
/* Adds or replaces the tensor of that name; the model takes its own reference. */
PQ_API void pq_model_set_tensor(PqModel *model, PqTensor *tensor);
PQ_API void pq_model_remove_tensor(PqModel *model, const char *name);
/* Remove the tensor when no node of the graph reads it and it is no graph output (a weight a compressor
 * replaced); 1 if it was removed. */
PQ_API int pq_model_remove_tensor_if_unused(PqModel *model, const char *name);
/* Writes to `out` (`size` bytes) `base`, or `base` with ".2", ".3", … after it: the first that names no
 * tensor, node, node output or graph input of `model` — for the tensors, nodes and values a compressor adds
 * (a layer rewritten twice, a weight two layers share). 0, or -1 where the name does not fit in `size`.
 * Since ABI 1.7. */
PQ_API int pq_model_unique_name(const PqModel *model, const char *base, char *out, size_t size);
PQ_API PqTensor *pq_model_tensor(const PqModel *model, const char *name); /* borrowed or NULL */
PQ_API size_t pq_model_n_tensors(const PqModel *model);
PQ_API PqTensor *pq_model_tensor_at(const PqModel *model, size_t index);  /* sorted by name */
PQ_API void pq_model_set_meta(PqModel *model, const char *key, const char *value);
PQ_API const char *pq_model_meta(const PqModel *model, const char *key);  /* borrowed or NULL */
/* Parameters (elements of floating-point, packed and I8 tensors; index tensors of other integer types are
 * not parameters) and stored bytes (every tensor, packed codes with their scales and zero points). */
PQ_API int64_t pq_model_n_params(const PqModel *model);
PQ_API int64_t pq_model_nbytes(const PqModel *model);
/* The exact size in bytes of the model's file (header and data) as pq_model_save would write it; -1 on error. */
PQ_API int64_t pq_model_file_size(const PqModel *model);

/* ---- options ------------------------------------------------------------------------------------------- */

PQ_API int pq_options_has(const PqOptions *options, const char *key);
PQ_API int64_t pq_options_get_int(const PqOptions *options, const char *key, int64_t fallback);
PQ_API double pq_options_get_float(const PqOptions *options, const char *key, double fallback);
PQ_API int pq_options_get_bool(const PqOptions *options, const char *key, int fallback);
PQ_API const char *pq_options_get_string(const PqOptions *options, const char *key, const char *fallback);
/* 1 when `key`'s value was given (on the command line, in a chain file, by pq_options_set), 0 when it is the
 * schema's default or the key is unknown. Since ABI 1.10. */
PQ_API int pq_options_given(const PqOptions *options, const char *key);
/* When `options` are a stage's in a host's chain: the options of the first stage after it whose plugin is
 * named `plugin`, and that stage's number (from 1) in `*stage` (may be NULL; 0 when none). NULL when no such
 * stage follows or the compressor runs outside a chain. For a stage that prepares the model for a later one:
 * equalize awq reads the grid of the quant stage it prepares for. Valid during compress(). Since ABI 1.10. */
PQ_API const PqOptions *pq_options_later_stage(const PqOptions *options, const char *plugin, int *stage);

/* ---- what compressors did, per layer ----------------------------------------------------------------- */

/* Record that `method` compressed `layer` (its parameter and stored byte counts before and after, and the
 * reconstruction error of its weight: relative Frobenius norm and SQNR in dB; NAN when not measured).
 * `detail` is free text ("rank 32", "8-bit per_channel"). The pipeline numbers the stage. */
PQ_API void pq_model_record_layer(PqModel *model, const char *method, const char *layer, const char *detail,
                                  int64_t params_before, int64_t params_after, int64_t bytes_before,
                                  int64_t bytes_after, double rel_error, double sqnr_db);
/* Record that `method` left `layer` as it was, and why. */
PQ_API void pq_model_record_skip(PqModel *model, const char *method, const char *layer, const char *reason);
/* For compressors walking a model's layers: the weight (input 1, a model tensor) of `node` when the layer
 * is selected (include, exclude, min_params) and the weight is floating point; NULL otherwise, the skip
 * recorded for `method` when there was a weight to skip. `packed_hint` (may be NULL) replaces the reason
 * given for a packed weight ("factor before quantizing"). */
PQ_API PqTensor *pq_layer_weight(PqModel *model, const PqNode *node, const PqOptions *options, const char *method,
                                 const char *packed_hint);
/* For compressors of linear layers only: when `node` is a conv2d, record (if the layer selection takes it) that
 * `method` left it as it was and which methods take convolutions, and return 1; else 0. Since ABI 1.6. */
PQ_API int pq_layer_linear_only(PqModel *model, const PqNode *node, const PqOptions *options, const char *method);
/* That weight widened to float32 (malloc'd: free() it), or NULL with an error naming the layer when it holds
 * NaN or infinite values. */
PQ_API float *pq_layer_weight_f32(const PqNode *node, const PqTensor *weight, struct PqPluginError *error);
/* Relative Frobenius error ||ref - approx|| / ||ref|| and SQNR = 10 log10(||ref||^2 / ||ref - approx||^2). */
PQ_API void pq_error_stats(const float *ref, const float *approx, int64_t n, double *rel_error, double *sqnr_db);
/* Whether the pipeline's layer selection (options include, exclude, min_params, which every compressor
 * stage has) takes this layer. */
PQ_API int pq_options_layer_selected(const PqOptions *options, const char *layer, int64_t n_params);

/* ---- execution plans: topological order and shapes, computed once by the core ---------------------------- */

typedef enum {
  PQ_VALUE_INPUT = 0,    /* a graph input */
  PQ_VALUE_WEIGHT = 1,   /* a model tensor */
  PQ_VALUE_ACTIVATION = 2
} PqValueKind;

/* Validates the graph against the model's tensors (unknown input, cycle, shape mismatch) and infers every
 * value's shape for `batch` samples. NULL with `error` filled on failure. */
PQ_API PqPlan *pq_plan_new(const PqModel *model, int64_t batch, struct PqPluginError *error);
PQ_API void pq_plan_free(PqPlan *plan);
PQ_API int64_t pq_plan_batch(const PqPlan *plan);
PQ_API size_t pq_plan_n_steps(const PqPlan *plan);
PQ_API const PqNode *pq_plan_step(const PqPlan *plan, size_t step);
/* Value index of a step's input j (-1 for an omitted optional input) and output j. */
PQ_API int pq_plan_step_input(const PqPlan *plan, size_t step, size_t j);
PQ_API int pq_plan_step_output(const PqPlan *plan, size_t step, size_t j);
PQ_API size_t pq_plan_n_values(const PqPlan *plan);
PQ_API int pq_plan_value_index(const PqPlan *plan, const char *name);     /* -1 if absent */
PQ_API const char *pq_plan_value_name(const PqPlan *plan, int value);
PQ_API PqValueKind pq_plan_value_kind(const PqPlan *plan, int value);
PQ_API const int64_t *pq_plan_value_shape(const PqPlan *plan, int value, int *ndim);
PQ_API int64_t pq_plan_value_numel(const PqPlan *plan, int value);
PQ_API PqTensor *pq_plan_value_tensor(const PqPlan *plan, int value);     /* WEIGHT values only, else NULL */
/* Index of the last step reading the value, or -1 (graph outputs are read "after the end": n_steps). */
PQ_API int pq_plan_value_last_use(const PqPlan *plan, int value);
/* Number of steps reading the value (graph outputs count once more). */
PQ_API int pq_plan_value_n_uses(const PqPlan *plan, int value);

/* ---- ops plugins add ---------------------------------------------------------------------------------- */
struct PqOpKernel;
/* The kernel a loaded compressor declared for `op`, or NULL (built-in ops have none). */
PQ_API const struct PqOpKernel *pq_op_kernel_find(const char *op);
/* Whether `op` is one of the core's built-in ops. */
PQ_API int pq_op_is_builtin(const char *op);

/* ---- cost ------------------------------------------------------------------------------------------- */

/* Multiply-accumulates and floating-point operations of one sample through the model, from the real
 * shapes (conv2d counts its output height and width; compressed forms count what they compute: two
 * GEMMs for low-rank, the core contractions for tensor-train, the stored non-zeros for sparse layers).
 * `estimated` is 1 when some op's count is an estimate (the FFTs of circulant layers); see
 * docs/report-schema.md for the conventions. */
typedef struct PqCost {
  uint32_t struct_size;
  int32_t estimated;
  int64_t macs;
  int64_t flops;
} PqCost;
PQ_API int pq_model_cost(const PqModel *model, PqCost *cost, struct PqPluginError *error);

/* ---- datasets ------------------------------------------------------------------------------------------ */

PQ_API int64_t pq_dataset_n_samples(const PqDataset *dataset);
PQ_API int pq_dataset_n_classes(const PqDataset *dataset);
/* Shape of one sample (without the batch dimension), e.g. [1, 28, 28]. */
PQ_API const int64_t *pq_dataset_sample_shape(const PqDataset *dataset, int *ndim);
PQ_API int64_t pq_dataset_sample_numel(const PqDataset *dataset);
/* Copy samples [start, start+count) normalised to [0,1] into `images` (count*sample_numel floats) and their
 * labels into `labels` (may be NULL). Returns the number copied (fewer at the end of the set). */
PQ_API int64_t pq_dataset_get_batch(const PqDataset *dataset, int64_t start, int64_t count, float *images,
                                    uint8_t *labels);
PQ_API const char *pq_dataset_name(const PqDataset *dataset);

/* ---- runner and metric sink (probe side) ------------------------------------------------------------- */

/* Run `role`'s model on the host's chosen backend. Views as in PqBackendVTable.run. */
PQ_API int pq_runner_run(PqRunner *runner, int role, const struct PqTensorView *inputs, size_t n_inputs,
                         struct PqTensorView *outputs, size_t n_outputs, struct PqPluginError *error);
PQ_API int64_t pq_runner_max_batch(const PqRunner *runner);
/* The memory counters of the backend running `role`'s model (fields it cannot know are -1). */
PQ_API int pq_runner_memory(PqRunner *runner, int role, struct PqMemoryCounters *out, struct PqPluginError *error);
/* How long `role`'s last run took as the backend timed it (an accelerator's clock: copies and compute
 * apart); every field -1 where the backend offers no timing of its own, or did not time that run (a backend
 * may time only runs whose timing was asked for, by a call of this, before they ran). */
PQ_API int pq_runner_last_timing(PqRunner *runner, int role, struct PqRunTiming *out, struct PqPluginError *error);

typedef enum { PQ_BETTER_NONE = 0, PQ_BETTER_HIGHER = 1, PQ_BETTER_LOWER = 2 } PqBetter;

/* Add a named metric (name: [a-z0-9_.]+) with its unit ("%", "ms", "bytes", "" ...). */
PQ_API void pq_metrics_add(PqMetricSink *sink, const char *name, double value, const char *unit, PqBetter better);
/* Attach raw samples to a metric already added; copied. */
PQ_API void pq_metrics_add_samples(PqMetricSink *sink, const char *name, const double *samples, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PQ_CORE_H */
