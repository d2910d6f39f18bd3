/* cpu.c — the CPU backend: runs pquant graphs in float32 with OpenBLAS. Buffers are planned once at prepare
 * (with reuse by liveness and zero-copy flatten/reshape), so run() allocates nothing. */
#include <pquant/pq-activation.h>
#include <pquant/pq-plugin.h>

#include "circulant.h" /* first: see there */
#include "ttlinear.h"
#include "sparse.h"
#include "gemm.h" /* (and pool.h) */
#include "elementwise.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  K_LINEAR, K_MATMUL, K_ADD, K_RELU, K_SOFTMAX, K_CONV2D, K_MAXPOOL, K_AVGPOOL, K_GAP, K_BATCHNORM, K_ALIAS, K_NOP, K_CIRC, K_TT, K_SPARSE, K_PLUGIN,
  K_ACT /* sigmoid, tanh, … (pq-activation.h) */, K_TRANSPOSE, K_CONCAT, K_PAD, K_LAYERNORM, K_REDUCE /* reduce_sum, … */, K_CONVT, K_SLICE, K_RESIZE,
  K_EWCHAIN /* elementwise ops run as one pass (fuse_elementwise) */, K_SKIP /* a step such a chain took in: nothing to run */
};

static const struct {
  const char *op;
  int kind;
} op_table[] = {{"linear", K_LINEAR},       {"matmul", K_MATMUL},
                {"transpose", K_TRANSPOSE}, {"concat", K_CONCAT}, {"pad2d", K_PAD},
                {"relu", K_RELU},           {"softmax", K_SOFTMAX},     {"conv2d", K_CONV2D}, {"log_softmax", K_SOFTMAX},
                {"maxpool2d", K_MAXPOOL},   {"avgpool2d", K_AVGPOOL},   {"global_avg_pool", K_GAP},
                {"batch_norm", K_BATCHNORM}, {"flatten", K_ALIAS},      {"reshape", K_ALIAS},
                {"circulant_linear", K_CIRC}, {"tt_linear", K_TT},
                {"sparse_linear", K_SPARSE}, {"layer_norm", K_LAYERNORM}, {"conv_transpose2d", K_CONVT},
                {"slice", K_SLICE}, {"resize2d", K_RESIZE}};

static int op_kind(const char *op) {
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
    if (strcmp(op_table[i].op, op) == 0) return op_table[i].kind;
  if (pq_binary_kind(op) != PQ_BIN_NONE) return K_ADD; /* add, sub, mul, div, prelu, pow, minimum, maximum: one broadcasting step */
  if (pq_reduce_kind(op) != PQ_RED_NONE) return K_REDUCE;
  return pq_activation_kind(op) != PQ_ACT_NONE ? K_ACT : -1;
}

/* Built-in ops, and any op a loaded compressor declared with its reference kernel. */
static int cpu_supports_op(const char *op) { return op_kind(op) >= 0 || pq_op_kernel_find(op) != NULL; }

typedef struct {
  int kind;
  int in[16], out;     /* value indices (-1 = none) */
  int fuse_relu;       /* linear/conv/add followed by a relu folded into it */
  int act;             /* K_ACT: which function, and its two parameters */
  int log_sm;          /* K_SOFTMAX: log_softmax */
  float pad_value;     /* K_PAD: the border's value; pads in pt, pl (top, left) and oh, ow the output plane */
  int64_t cat_outer;   /* K_CONCAT: blocks before the axis, per sample; each input's block after it */
  int cat_n;
  unsigned cat_const;  /* K_CONCAT: a bit per input that is a model tensor, repeated for every sample */
  int64_t cat_blk[16];
  int tr_rank;         /* K_TRANSPOSE: per-sample input shape and, for each output dimension, its input stride */
  int64_t tr_oshape[PQ_MAX_DIMS], tr_istride[PQ_MAX_DIMS];
  float act_a, act_b;
  /* geometry, per sample where it matters */
  int64_t m_rows;      /* linear: rows per sample (product of leading dims / batch) */
  int64_t mm_slices;   /* matmul of two activations: matrices per sample ([m_rows, k] · [k, n] each), else 0 */
  int64_t k, n;        /* linear: in, out features; matmul: k, n */
  int64_t c, h, w, oc, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, groups;
  int count_include_pad;
  int axis_outer_per_sample; int64_t axis_len, axis_inner; /* softmax; layer_norm: axis_len values a row */
  double ln_eps;                                             /* layer_norm */
  int ln_out;                                                /* layer_norm: 0 the normalised values, 1 each row's mean, 2 its 1/σ */
  int red;                                                   /* K_REDUCE: which (pq-activation.h) and where it reads */
  PqReduceGeometry red_geo;
  PqSliceGeometry slice;                                     /* K_SLICE */
  PqResizeParams resize;                                     /* K_RESIZE */
  float *bn_scale, *bn_shift; /* batch_norm folded at prepare */
  int add_same;        /* add: both inputs same shape */
  int bin;             /* add, sub, mul, div (PqBinary) */
  int64_t add_bshape[PQ_MAX_DIMS], add_ashape[PQ_MAX_DIMS], add_oshape[PQ_MAX_DIMS];
  int add_rank;
  /* linear with a packed weight */
  const uint8_t *q_codes;
  const float *q_scales;
  const uint8_t *q_zeros; /* NULL: symmetric, zero = 2^(bits-1) */
  int q_bits, q_per;      /* q_per: 0 tensor, 1 channel, 2 group */
  int64_t q_row_bytes, q_chunk, q_chunks, q_groups_per_row;
  int8_t *q_x;            /* the activation row as int8 */
  int32_t *q_xsum;        /* its sum per chunk */
  uint8_t *q_unpacked;    /* one unpacked row of codes (bits other than 8) */
  int8_t *q_xe, *q_xo;    /* the int8 row's even and odd elements (4-bit kernels) */
  float *q_xsumf;         /* q_xsum as floats */
  float q_act_scale;      /* > 0: the input's int8 scale fixed at compression (static activations) */
  const float *q_in_scale; /* a mul by a vector of k before the layer, folded in (fuse_input_scale): each input row
                              is multiplied by it into q_xf as it is quantized */
  float *q_xf;
  int8_t *q_xbatch;       /* every input row of a batch as int8 (blocked kernels), with sums and scales */
  int32_t *q_xbatch_sum;  /* a sum a chunk a row, [rows][q_chunks] */
  float *q_xbatch_scale;
  int64_t q_xbatch_rows;  /* rows those buffers hold */
  int64_t q_ldy;          /* y's row stride where it is not n: a part of an output split writes a range of the outputs */
  int q_avx2;             /* the AVX2 row kernels (where the AVX-512 VNNI ones are not used) */
  /* the layers lanes_wanted picks (short rows, per-group scales, batches): codes laid out with the outputs in vector lanes */
  uint8_t *q_lanes;       /* [ceil(n/16)][ceil(k/4)][16 outputs][4 codes], one byte a code, zero-padded */
  int q_lanes_one_row;    /* q_lanes also for one row (else the row kernels there) */
  int32_t *q_fix, *q_fix_start; /* AVX2 8-bit lanes: codes of 0 kept as 1, listed (lanes_zero_fix) */
  uint8_t *q_rows4;       /* packed conv2d: [n][ceil(k/4)·4], one byte a code, zero-padded */
  uint32_t *q_pairs;      /* packed conv2d, AVX2: [n][ceil(k/2)], two codes a word, 16 bits each, zero-padded */
  float *q_lane_scale;    /* each output's scale (ceil(n/16)·16 of them), or for q_rows4/q_pairs each output's groups' [n][groups a row] */
  int32_t *q_lane_zero;   /* and zero points, likewise */
  int64_t q_lane_k4;      /* ceil(k/4) */
  int64_t q_lane_rows;    /* rows the lane kernels quantize at once (the scratch holds so many): 4, or more for the
                             AVX2 kernel on layers whose codes pass the L2 cache (LANE_BLOCK_CODES) */
  const PqOpKernel *kernel; /* an op a plugin declared */
  void *kernel_ws;
  struct Circ *circ;      /* circulant_linear: spectra, buffers and FFT plans */
  struct TT *tt;          /* tt_linear: cores laid out for GEMMs, work buffers */
  int tt_bias;            /* value index of its bias, or -1 */
  /* sparse_linear (CSR) */
  SpCsr sp;               /* sparse_linear */
  struct QScratch *q_more; /* packed linear: the per-row buffers above for the pool's threads 1, 2, … */
  struct EwOp *ew;        /* K_EWCHAIN: its ops in order (their tensors' values over a sample owned here) */
  int ew_n;
} Step;

/* A packed linear layer's per-row buffers (one set a thread) */
typedef struct QScratch {
  int8_t *x;
  int32_t *xsum;
  uint8_t *unpacked;
  int8_t *xe, *xo;
  float *xsumf;
  float *xf;      /* the scaled input row (q_in_scale), else NULL */
  int8_t *xbatch; /* a row-kernel conv's batch buffers, for a batch of images split over the threads (else NULL) */
  int32_t *xbatch_sum;
  float *xbatch_scale;
} QScratch;

static int q_scratch_new(const Step *st, QScratch *q) {
  q->x = malloc((size_t)st->k + 64);
  q->xsum = malloc(sizeof(int32_t) * (size_t)(st->q_lane_rows * st->q_chunks)); /* (the lane kernels' rows') */
  q->unpacked = malloc((size_t)st->q_lane_rows * ((size_t)st->k + 64)); /* four unpacked rows, or the lane kernels' rows */
  q->xe = malloc((size_t)st->k / 2 + 64);
  q->xo = malloc((size_t)st->k / 2 + 64);
  q->xsumf = malloc(sizeof(float) * (size_t)st->q_chunks);
  q->xf = st->q_in_scale ? malloc(sizeof(float) * (size_t)st->k) : NULL;
  q->xbatch = NULL, q->xbatch_sum = NULL, q->xbatch_scale = NULL;
  return q->x && q->xsum && q->unpacked && q->xe && q->xo && q->xsumf && (q->xf || !st->q_in_scale);
}

/* the bytes q_scratch_new allocates (batch buffers apart) */
static int64_t q_scratch_bytes(const Step *st) {
  return (st->k + 64) + (int64_t)sizeof(int32_t) * st->q_lane_rows * st->q_chunks + st->q_lane_rows * (st->k + 64) + 2 * (st->k / 2 + 64) +
         (int64_t)sizeof(float) * st->q_chunks + (st->q_in_scale ? (int64_t)sizeof(float) * st->k : 0);
}

static void q_scratch_free(QScratch *q) {
  free(q->x), free(q->xsum), free(q->unpacked), free(q->xe), free(q->xo), free(q->xsumf), free(q->xf);
  free(q->xbatch), free(q->xbatch_sum), free(q->xbatch_scale);
}

typedef struct {
  int slot;            /* buffer slot; inputs have their own slots filled at run time */
  int64_t per_sample;  /* elements per sample (activations and inputs) */
  const float *weight; /* weights as f32 */
  int ndim;
  int64_t shape[PQ_MAX_DIMS]; /* at max_batch */
} Value;

typedef struct {
  PqModel *model;
  PqPlan *plan;
  int64_t max_batch;
  int threads;
  int n_values, n_steps, n_slots;
  Value *values;
  Step *steps;
  float **slot_ptr;     /* per slot: arena pointer, or the caller's input at run time */
  float *arena;
  size_t arena_floats;
  float *workspace;     /* im2col */
  size_t workspace_floats;
  float **owned_weights;
  int n_owned;
  int64_t weights_bytes;   /* the weights as this backend keeps them (float32 conversions included) */
  int64_t converted_bytes; /* what else it made at prepare: lane layouts, batch and per-thread buffers, FFT spectra, … */
  int *input_values, *output_values;
  int n_inputs, n_outputs;
  int simd; /* AVX-512 VNNI kernels for packed weights (else the AVX2 or the portable ones) */
  int avx2; /* AVX2 kernels for packed weights, where the AVX-512 ones are not used */
  int sp_simd; /* the CSR kernels' vectors: SP_AVX512, SP_AVX2 or SP_PORTABLE */
  int ew_avx2; /* the AVX2 build of the elementwise loops */
  Pool *pool;    /* threads for the packed, CSR and depthwise kernels (NULL: the calling thread only) */
  int pool_threads; /* its size when made (1 without one) */
  size_t workspace_stride; /* the workspace holds one part of this many floats a thread */
  double last_compute_ms, last_copy_out_ms; /* the last run, timed here (CLOCK_MONOTONIC) */
} Cpu;

static void cpu_release(void *handle) {
  Cpu *c = handle;
  if (!c) return;
  if (c->pool) blas_release();
  pool_release(c->pool); /* first: no thread runs a kernel of this backend any more */
  for (int i = 0; i < c->n_owned; i++) free(c->owned_weights[i]);
  for (int i = 0; i < c->n_steps && c->steps; i++) {
    free(c->steps[i].bn_scale);
    free(c->steps[i].bn_shift);
    QScratch own = {c->steps[i].q_x,   c->steps[i].q_xsum, c->steps[i].q_unpacked, c->steps[i].q_xe, c->steps[i].q_xo,
                    c->steps[i].q_xsumf, c->steps[i].q_xf, NULL, NULL, NULL}; /* (the batch buffers are freed below) */
    q_scratch_free(&own);
    if (c->steps[i].q_more)
      for (int t = 0; t + 1 < c->pool_threads; t++) q_scratch_free(&c->steps[i].q_more[t]);
    free(c->steps[i].q_more);
    circ_free(c->steps[i].circ);
    free(c->steps[i].kernel_ws);
    free(c->steps[i].q_xbatch);
    free(c->steps[i].q_xbatch_sum);
    free(c->steps[i].q_xbatch_scale);
    free(c->steps[i].q_lanes);
    free(c->steps[i].q_fix);
    free(c->steps[i].q_fix_start);
    free(c->steps[i].q_rows4);
    free(c->steps[i].q_pairs);
    free(c->steps[i].q_lane_scale);
    free(c->steps[i].q_lane_zero);
    tt_free(c->steps[i].tt);
    for (int k = 0; k < c->steps[i].ew_n; k++) free(c->steps[i].ew[k].owned);
    free(c->steps[i].ew);
  }
  free(c->owned_weights);
  free(c->values);
  free(c->steps);
  free(c->slot_ptr);
  free(c->arena);
  free(c->workspace);
  free(c->input_values);
  free(c->output_values);
  if (c->plan) pq_plan_free(c->plan);
  if (c->model) pq_model_unref(c->model);
  free(c);
}

#include "qkernels.h"

/* t as float32: its own data, or a copy the backend owns (F16 and other types widened; with `packed`, a packed
 * tensor dequantized — a packed layer's packed scales — where a packed weight elsewhere is refused) */
static const float *as_f32(Cpu *c, PqTensor *t, int packed, PqPluginError *err) {
  if (pq_tensor_dtype(t) == PQ_DTYPE_F32) {
    c->weights_bytes += (int64_t)pq_tensor_nbytes(t);
    return pq_tensor_data(t);
  }
  if (pq_tensor_dtype(t) == PQ_DTYPE_PACKED && !packed) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "tensor '%s' is packed %d-bit: the CPU backend runs packed weights in linear layers only",
                        pq_tensor_name(t), pq_tensor_bits(t));
    return NULL;
  }
  int64_t n = pq_tensor_numel(t);
  float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (!f || pq_tensor_to_f32(t, f) != 0) {
    free(f);
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "cannot convert tensor '%s' to float32", pq_tensor_name(t));
    return NULL;
  }
  float **grown = realloc(c->owned_weights, sizeof(float *) * (size_t)(c->n_owned + 1));
  if (!grown) {
    free(f);
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory for tensor '%s'", pq_tensor_name(t));
    return NULL;
  }
  c->owned_weights = grown;
  c->owned_weights[c->n_owned++] = f;
  c->weights_bytes += n * 4;
  return f;
}

static const float *weight_f32(Cpu *c, PqTensor *t, PqPluginError *err) { return as_f32(c, t, 0, err); }

/* ---- preparation ---------------------------------------------------------------------------------- */

/* Every activation must keep the batch as dimension 0 so buffers sized for max_batch serve any batch. */
static PqStatus check_values(Cpu *c, PqPluginError *err) {
  PqPlan *p = c->plan;
  PqPlan *p1 = pq_plan_new(c->model, 1, err);
  if (!p1) return PQ_ERR_INVALID;
  PqStatus st = PQ_OK;
  for (int v = 0; v < c->n_values && st == PQ_OK; v++) {
    int nd, nd1;
    const int64_t *s = pq_plan_value_shape(p, v, &nd);
    Value *val = &c->values[v];
    val->ndim = nd;
    memcpy(val->shape, s, sizeof(int64_t) * (size_t)nd);
    val->slot = -1;
    if (pq_plan_value_kind(p, v) == PQ_VALUE_WEIGHT) continue;
    int v1 = pq_plan_value_index(p1, pq_plan_value_name(p, v));
    const int64_t *s1 = pq_plan_value_shape(p1, v1, &nd1);
    int ok = nd == nd1 && nd >= 1 && s1[0] == 1 && s[0] == c->max_batch;
    for (int d = 1; ok && d < nd; d++) ok = s[d] == s1[d];
    if (!ok) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "value '%s' does not keep the batch as its first dimension",
                          pq_plan_value_name(p, v));
      st = PQ_ERR_UNSUPPORTED;
    }
    val->per_sample = pq_plan_value_numel(p1, v1);
  }
  pq_plan_free(p1);
  return st;
}

/* Linear layers with packed weights compute from the codes: nothing is widened to float. */
/* batch_rows: the most rows one call takes (0: the batch's rows; a conv: one image's output positions) */
static PqStatus setup_packed_linear(Cpu *c, Step *st, const PqNode *node, int64_t batch_rows, PqPluginError *err) {
  PqPlan *p = c->plan;
  PqTensor *w = pq_plan_value_tensor(p, st->in[1]);
  if (pq_plan_value_kind(p, st->in[0]) == PQ_VALUE_WEIGHT ||
      (st->in[2] >= 0 && pq_plan_value_kind(p, st->in[2]) != PQ_VALUE_WEIGHT)) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "linear '%s': the bias must be a model tensor", pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  if (st->in[2] >= 0 && !c->values[st->in[2]].weight) {
    c->values[st->in[2]].weight = weight_f32(c, pq_plan_value_tensor(p, st->in[2]), err);
    if (!c->values[st->in[2]].weight) return (PqStatus)err->code;
  }
  st->n = pq_tensor_rows(w);
  st->k = pq_tensor_cols(w);
  st->m_rows = c->values[st->in[0]].per_sample / st->k;
  st->q_codes = pq_tensor_data(w);
  st->q_scales = as_f32(c, pq_tensor_scales(w), 1, err); /* (F16 or packed scales widened once, here) */
  if (!st->q_scales) return (PqStatus)err->code;
  st->q_zeros = pq_tensor_zeros(w) ? pq_tensor_data(pq_tensor_zeros(w)) : NULL;
  st->q_bits = pq_tensor_bits(w);
  st->q_avx2 = c->avx2;
  st->q_act_scale = (float)pq_node_get_float(node, "act_scale", 0.0);
  st->q_per = (int)pq_tensor_quant_scheme(w);
  st->q_row_bytes = (int64_t)pq_tensor_row_bytes(w);
  /* int32 sums stay exact over chunks of at most 8192 codes; a group is its own chunk */
  st->q_chunk = st->q_per == PQ_QUANT_PER_GROUP ? pq_tensor_group_size(w) : (st->k < 8192 ? st->k : 8192);
  if (st->q_chunk < 1) st->q_chunk = 1;
  st->q_chunks = (st->k + st->q_chunk - 1) / st->q_chunk;
  st->q_groups_per_row = st->q_per == PQ_QUANT_PER_GROUP ? st->k / st->q_chunk : 1;
  int64_t max_rows = batch_rows > 0 ? batch_rows : c->max_batch * (st->m_rows > 0 ? st->m_rows : 1);
  /* output positions in the lanes (conv2d: one scale a row, or groups of whole 4-code words; int32 sums exact up to
     65536 codes), or outputs in the lanes (a linear layer: lanes_wanted) */
  const int conv = st->kind == K_CONV2D;
  const int by_position = conv && st->k <= 65536 && (st->q_per != PQ_QUANT_PER_GROUP || st->q_chunk % 4 == 0);
  const int by_output = !conv && lanes_wanted(st, max_rows, &st->q_lanes_one_row);
  /* the AVX2 lane kernel on codes that pass the L2 cache: many rows quantized at once, each block of codes read
     once for all of them (lanes_rows_avx2_k) */
  st->q_lane_rows = by_output && !c->simd && c->avx2 && max_rows > 4 && st->n * st->k >= LANE_BLOCK_CODES
                        ? (max_rows < LANE_BLOCK_ROWS ? (max_rows + 3) / 4 * 4 : LANE_BLOCK_ROWS)
                        : 4;
  QScratch own;
  q_scratch_new(st, &own); /* (checked below) */
  st->q_x = own.x, st->q_xsum = own.xsum, st->q_unpacked = own.unpacked, st->q_xe = own.xe, st->q_xo = own.xo, st->q_xsumf = own.xsumf;
  if (!st->q_x || !st->q_xsum || !st->q_unpacked || !st->q_xe || !st->q_xo || !st->q_xsumf) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "linear '%s': out of memory", pq_node_name(node));
    return PQ_ERR_NOMEM;
  }
  const int pairs = by_position && c->avx2; /* (the AVX2 form of the positions-in-lanes kernel) */
  /* (AVX2 lanes: vpmaddubsw, exact to 7 bits; 8-bit codes as code − 128, lane_pairs_avx2, codes of 0 fixed up) */
  const int lanes = (by_position && (c->simd || pairs)) || (by_output && (c->simd || c->avx2));
  if (lanes) {
    if (lanes_setup(st, by_position, pairs) != 0 || (by_output && !c->simd && st->q_bits == 8 && lanes_zero_fix(st) != 0)) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "linear '%s': out of memory", pq_node_name(node));
      return PQ_ERR_NOMEM;
    }
    c->converted_bytes += by_position ? st->n * (pairs ? (st->k + 1) / 2 : st->q_lane_k4) * 4 + st->n * st->q_groups_per_row * 8
                                      : ((st->n + 15) / 16) * (st->q_lane_k4 * 64 + st->q_groups_per_row * 16 * 8);
  }
  /* batches: the blocked kernels (AVX2: any chunks), where the lane kernels, which quantize four rows at a time,
     do not take them */
  if (max_rows >= 4 && (st->q_per != PQ_QUANT_PER_GROUP || c->avx2) && !lanes) {
    st->q_xbatch = malloc((size_t)(max_rows * st->k) + 64);
    st->q_xbatch_sum = malloc(sizeof(int32_t) * (size_t)(max_rows * st->q_chunks));
    st->q_xbatch_scale = malloc(sizeof(float) * (size_t)max_rows);
    if (!st->q_xbatch || !st->q_xbatch_sum || !st->q_xbatch_scale) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "linear '%s': out of memory", pq_node_name(node));
      return PQ_ERR_NOMEM;
    }
    st->q_xbatch_rows = max_rows;
    c->converted_bytes += max_rows * (st->k + 4 + 4 * st->q_chunks);
  }
  c->weights_bytes += (int64_t)pq_tensor_nbytes(w) + (pq_tensor_zeros(w) ? (int64_t)pq_tensor_nbytes(pq_tensor_zeros(w)) : 0); /* (the scales: as_f32) */
  c->converted_bytes += q_scratch_bytes(st);
  return PQ_OK;
}

/* CSR weights are checked once here, so that a malformed file is an error and never a stray read. */
static PqStatus setup_sparse_linear(Cpu *c, Step *st, const PqNode *node, PqPluginError *err) {
  PqPlan *p = c->plan;
  for (int j = 1; j < 5; j++)
    if (st->in[j] >= 0 && pq_plan_value_kind(p, st->in[j]) != PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "sparse_linear '%s': its weight and bias must be model tensors", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
  PqTensor *vals = pq_plan_value_tensor(p, st->in[1]), *cols = pq_plan_value_tensor(p, st->in[2]), *rows = pq_plan_value_tensor(p, st->in[3]);
  st->k = pq_node_get_int(node, "in_features", 0);
  st->n = pq_node_get_int(node, "out_features", 0);
  st->m_rows = c->values[st->in[0]].per_sample / st->k;
  if (pq_sparse_check(node, vals, cols, rows, err) != 0) return PQ_ERR_INVALID;
  st->sp.rows = pq_tensor_data(rows);
  if (pq_tensor_dtype(cols) == PQ_DTYPE_U16) st->sp.col16 = pq_tensor_data(cols);
  else st->sp.col32 = pq_tensor_data(cols);
  st->sp.in = st->k, st->sp.out = st->n;
  c->weights_bytes += (int64_t)(pq_tensor_nbytes(cols) + pq_tensor_nbytes(rows));
  if (!(st->sp.values = weight_f32(c, vals, err))) return (PqStatus)err->code;
  size_t ws = (size_t)(SP_LANES * st->k); /* a chunk of rows, transposed */
  if (ws > c->workspace_floats) c->workspace_floats = ws;
  if (st->in[4] >= 0 && !(c->values[st->in[4]].weight = weight_f32(c, pq_plan_value_tensor(p, st->in[4]), err))) return (PqStatus)err->code;
  return PQ_OK;
}

static void conv_geometry(Step *st, PqPlan *p, const PqNode *node);
static size_t depthwise_pad(const Step *st, int64_t *ph, int64_t *pw);
static int conv_is_depthwise(const Step *st) { return st->groups > 1 && st->c == st->groups; }
/* The geometry of one group of a conv2d step, as pq_im2col takes it. */
static PqConvGeometry conv_group_geometry(const Step *st) {
  PqConvGeometry g = {st->c / st->groups, st->h, st->w, st->kh, st->kw, st->oh, st->ow, st->sh, st->sw, st->dh, st->dw, st->pt, st->pl};
  return g;
}

/* conv2d with a packed kernel: im2col by output position, then the packed-linear kernels over positions. */
static PqStatus setup_packed_conv(Cpu *c, Step *st, const PqNode *node, PqPluginError *err) {
  if (pq_node_get_int(node, "groups", 1) != 1) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "conv2d '%s': packed kernels run with groups = 1 only", pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  conv_geometry(st, c->plan, node);
  int64_t per_sample = c->values[st->in[0]].per_sample;
  c->values[st->in[0]].per_sample = st->c * st->kh * st->kw; /* the packed-linear setup reads k from here */
  PqStatus rc = setup_packed_linear(c, st, node, st->oh * st->ow, err); /* the blocked kernels take an image's positions */
  c->values[st->in[0]].per_sample = per_sample;
  if (rc != PQ_OK) return rc;
  st->m_rows = 1;
  size_t ws = (size_t)(st->oh * st->ow * (st->k + st->oc));
  /* the patches ([k][ohw]), then each part's block of packed int8 patches and its sums a group: 64-byte vectors
     (16 floats), one a four values (VNNI), or two 32-byte ones a two values (AVX2) */
  const int64_t vecs = st->q_pairs ? (st->k + 1) / 2 : st->q_lane_k4;
  size_t wl = (size_t)(st->oh * st->ow * st->k + 16 * (vecs + st->q_groups_per_row) + 16);
  if ((st->q_rows4 || st->q_pairs) && wl > ws) ws = wl;
  if (ws > c->workspace_floats) c->workspace_floats = ws;
  return PQ_OK;
}

static void conv_geometry(Step *st, PqPlan *p, const PqNode *node) {
  int nd, ond;
  const int64_t *xs = pq_plan_value_shape(p, st->in[0], &nd), *os = pq_plan_value_shape(p, st->out, &ond);
  size_t n;
  const int64_t *v;
  st->c = xs[1];
  st->h = xs[2];
  st->w = xs[3];
  st->oc = os[1];
  st->oh = os[2];
  st->ow = os[3];
  if (st->kind == K_CONV2D || st->kind == K_CONVT) {
    int wnd;
    const int64_t *ws = pq_plan_value_shape(p, st->in[1], &wnd);
    st->kh = ws[2];
    st->kw = ws[3];
    st->groups = pq_node_get_int(node, "groups", 1);
  } else {
    v = pq_node_get_ints(node, "kernel", &n);
    st->kh = v[0];
    st->kw = v[1];
  }
  v = pq_node_get_ints(node, "strides", &n);
  st->sh = v ? v[0] : (st->kind == K_CONV2D || st->kind == K_CONVT ? 1 : st->kh);
  st->sw = v ? v[1] : (st->kind == K_CONV2D || st->kind == K_CONVT ? 1 : st->kw);
  v = pq_node_get_ints(node, "dilations", &n);
  st->dh = v ? v[0] : 1;
  st->dw = v ? v[1] : 1;
  v = pq_node_get_ints(node, "pads", &n);
  st->pt = v ? v[0] : 0;
  st->pl = v ? v[1] : 0;
  st->count_include_pad = (int)pq_node_get_int(node, "count_include_pad", 0);
}

/* A view for a plugin op's kernel: `nd` dimensions of `shape` (none when shape is NULL), over `data`. */
static void set_view(PqTensorView *v, PqDType dtype, int nd, const int64_t *shape, void *data) {
  pq_tensor_view_init(v, dtype, nd, shape, 0, data);
}

static PqStatus setup_step(Cpu *c, int s, PqPluginError *err) {
  PqPlan *p = c->plan;
  const PqNode *node = pq_plan_step(p, (size_t)s);
  Step *st = &c->steps[s];
  st->kind = op_kind(pq_node_op(node));
  for (int j = 0; j < 16; j++) st->in[j] = pq_plan_step_input(p, (size_t)s, (size_t)j);
  st->out = pq_plan_step_output(p, (size_t)s, 0);
  if (st->kind == K_ACT) {
    st->act = (int)pq_activation_kind(pq_node_op(node));
    pq_activation_params(node, (PqActivation)st->act, &st->act_a, &st->act_b);
  }
  if (st->kind < 0 && (st->kernel = pq_op_kernel_find(pq_node_op(node)))) {
    st->kind = K_PLUGIN; /* weights go to the kernel as stored: it knows its own form */
    if (st->in[0] < 0 || pq_plan_value_kind(p, st->in[0]) == PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "node '%s': the first input must be an activation, not a tensor", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    if (st->kernel->struct_size >= offsetof(PqOpKernel, workspace_bytes) + sizeof(void *) && st->kernel->workspace_bytes) {
      PqTensorView views[16];
      size_t n = pq_node_n_inputs(node);
      for (size_t j = 0; j < n && j < 16; j++) {
        int nd = 0;
        const int64_t *sh = st->in[j] >= 0 ? pq_plan_value_shape(p, st->in[j], &nd) : NULL;
        set_view(&views[j], PQ_DTYPE_F32, nd, sh, NULL);
      }
      size_t bytes = st->kernel->workspace_bytes(node, views, n < 16 ? n : 16);
      if (bytes && !(st->kernel_ws = malloc(bytes))) {
        pq_plugin_error_set(err, PQ_ERR_NOMEM, "node '%s': out of memory for its workspace", pq_node_name(node));
        return PQ_ERR_NOMEM;
      }
    }
    return PQ_OK;
  }
  if (st->kind < 0) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "op '%s' (node '%s') is not supported by the CPU backend", pq_node_op(node),
                        pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  if ((st->kind == K_LINEAR || st->kind == K_CONV2D) && st->in[1] >= 0 && pq_plan_value_kind(p, st->in[1]) == PQ_VALUE_WEIGHT &&
      pq_tensor_dtype(pq_plan_value_tensor(p, st->in[1])) == PQ_DTYPE_PACKED) {
    if (st->kind == K_CONV2D) return setup_packed_conv(c, st, node, err);
    return setup_packed_linear(c, st, node, 0, err);
  }
  if (st->kind == K_SPARSE) {
    if (pq_plan_value_kind(p, st->in[0]) == PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "node '%s': the first input must be an activation", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    return setup_sparse_linear(c, st, node, err);
  }
  for (int j = 0; j < 16; j++) {
    int v = st->in[j];
    if (v >= 0 && pq_plan_value_kind(p, v) == PQ_VALUE_WEIGHT && !c->values[v].weight) {
      c->values[v].weight = weight_f32(c, pq_plan_value_tensor(p, v), err);
      if (!c->values[v].weight) return (PqStatus)err->code;
    }
  }
  if (pq_plan_value_kind(p, st->in[0]) == PQ_VALUE_WEIGHT && st->kind != K_CONCAT && /* concat may start with a model tensor, */
      !(st->kind == K_ADD && pq_plan_value_kind(p, st->in[1]) != PQ_VALUE_WEIGHT)) { /* a binary op too: c − x */
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "node '%s': the first input must be an activation, not a tensor",
                        pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  int nd;
  const int64_t *xs = pq_plan_value_shape(p, st->in[0], &nd);
  switch (st->kind) {
  case K_LINEAR: {
    int wnd;
    const int64_t *ws = pq_plan_value_shape(p, st->in[1], &wnd);
    if (pq_plan_value_kind(p, st->in[1]) != PQ_VALUE_WEIGHT || (st->in[2] >= 0 && pq_plan_value_kind(p, st->in[2]) != PQ_VALUE_WEIGHT)) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "linear '%s': weight and bias must be model tensors", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    st->n = ws[0];
    st->k = ws[1];
    st->m_rows = c->values[st->in[0]].per_sample / st->k;
    break;
  }
  case K_MATMUL: {
    int bnd;
    const int64_t *bs = pq_plan_value_shape(p, st->in[1], &bnd);
    int weight = pq_plan_value_kind(p, st->in[1]) == PQ_VALUE_WEIGHT;
    if (weight ? bnd != 2 : bnd < 3) { /* an activation B has the batch first, then the same leading dimensions as A */
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED,
                          "matmul '%s': the CPU backend multiplies by a 2-D model tensor, or by an activation with A's leading dimensions",
                          pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    st->k = bs[bnd - 2];
    st->n = bs[bnd - 1];
    if (weight) st->m_rows = c->values[st->in[0]].per_sample / st->k;
    else { /* batched: one [m, k] · [k, n] product per leading index */
      st->m_rows = xs[nd - 2];
      st->mm_slices = c->values[st->in[0]].per_sample / (st->m_rows * st->k);
    }
    break;
  }
  case K_CONV2D:
  case K_CONVT:
  case K_MAXPOOL:
  case K_AVGPOOL: {
    if ((st->kind == K_CONV2D || st->kind == K_CONVT) && pq_plan_value_kind(p, st->in[1]) != PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "%s '%s': the kernel must be a model tensor", pq_node_op(node), pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    conv_geometry(st, p, node);
    if (st->kind == K_CONV2D) {
      size_t ws = conv_is_depthwise(st) ? depthwise_pad(st, NULL, NULL) : (size_t)((st->c / st->groups) * st->kh * st->kw * st->oh * st->ow);
      if (ws > c->workspace_floats) c->workspace_floats = ws;
    }
    if (st->kind == K_CONVT) { /* columns [O/groups·kh·kw, H·W] for one group of one sample */
      size_t ws = (size_t)((st->oc / st->groups) * st->kh * st->kw * st->h * st->w);
      if (ws > c->workspace_floats) c->workspace_floats = ws;
    }
    break;
  }
  case K_CIRC: {
    int bnd;
    const int64_t *bs = pq_plan_value_shape(p, st->in[1], &bnd);
    st->k = pq_node_get_int(node, "in_features", 0);
    st->n = pq_node_get_int(node, "out_features", 0);
    st->m_rows = c->values[st->in[0]].per_sample / st->k;
    int64_t bytes = 0;
    st->circ = circ_new(c->values[st->in[1]].weight, bs[0], bs[1], bs[2], st->k, st->n, &bytes);
    if (!st->circ) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "circulant_linear '%s': cannot set up its FFTs", pq_node_name(node));
      return PQ_ERR_NOMEM;
    }
    c->converted_bytes += bytes;
    break;
  }
  case K_TT: {
    int d = (int)pq_node_get_int(node, "cores", 0);
    const float *cores[16];
    int64_t shapes[16][4];
    for (int k = 0; k < d; k++) {
      int cnd;
      const int64_t *cs = pq_plan_value_shape(p, st->in[1 + k], &cnd);
      if (pq_plan_value_kind(p, st->in[1 + k]) != PQ_VALUE_WEIGHT) {
        pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "tt_linear '%s': cores must be model tensors", pq_node_name(node));
        return PQ_ERR_UNSUPPORTED;
      }
      memcpy(shapes[k], cs, sizeof shapes[k]);
      cores[k] = c->values[st->in[1 + k]].weight;
    }
    st->tt_bias = st->in[1 + d];
    int64_t nin = 1, bytes = 0;
    for (int k = 0; k < d; k++) nin *= shapes[k][2];
    st->m_rows = c->values[st->in[0]].per_sample / nin;
    st->tt = tt_new(d, cores, (const int64_t(*)[4])shapes, c->max_batch * st->m_rows, &bytes);
    if (!st->tt) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "tt_linear '%s': out of memory", pq_node_name(node));
      return PQ_ERR_NOMEM;
    }
    c->converted_bytes += bytes;
    break;
  }
  case K_GAP:
    st->c = xs[1];
    st->h = c->values[st->in[0]].per_sample / xs[1]; /* spatial size */
    break;
  case K_BATCHNORM: {
    int64_t ch = xs[1];
    double eps = pq_node_get_float(node, "epsilon", 1e-5);
    for (int j = 1; j < 5; j++)
      if (pq_plan_value_kind(p, st->in[j]) != PQ_VALUE_WEIGHT) {
        pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "batch_norm '%s': parameters must be model tensors", pq_node_name(node));
        return PQ_ERR_UNSUPPORTED;
      }
    st->c = ch;
    st->h = c->values[st->in[0]].per_sample / ch;
    st->bn_scale = malloc(sizeof(float) * (size_t)ch);
    st->bn_shift = malloc(sizeof(float) * (size_t)ch);
    if (!st->bn_scale || !st->bn_shift) return PQ_ERR_NOMEM;
    const float *g = c->values[st->in[1]].weight, *b = c->values[st->in[2]].weight;
    const float *mean = c->values[st->in[3]].weight, *var = c->values[st->in[4]].weight;
    for (int64_t i = 0; i < ch; i++) {
      float sc = (float)(g[i] / sqrt((double)var[i] + eps));
      st->bn_scale[i] = sc;
      st->bn_shift[i] = b[i] - mean[i] * sc;
    }
    break;
  }
  case K_PAD: {
    size_t np;
    const int64_t *pads = pq_node_get_ints(node, "pads", &np);
    st->c = xs[1], st->h = xs[2], st->w = xs[3], st->pt = pads[0], st->pl = pads[1];
    st->oh = xs[2] + pads[0] + pads[2], st->ow = xs[3] + pads[1] + pads[3];
    st->pad_value = (float)pq_node_get_float(node, "value", 0.0);
    break;
  }
  case K_CONCAT: {
    int64_t axis = pq_node_get_int(node, "axis", 1);
    if (axis < 0) axis += nd;
    st->cat_outer = 1;
    for (int d = 1; d < axis; d++) st->cat_outer *= xs[d];
    st->cat_n = (int)pq_node_n_inputs(node);
    for (int j = 0; j < st->cat_n; j++) {
      int wnd;
      const int64_t *ws = pq_plan_value_shape(p, st->in[j], &wnd);
      if (pq_plan_value_kind(p, st->in[j]) == PQ_VALUE_WEIGHT) { /* a model tensor [1, …]: the same block for every sample */
        if (ws[0] != 1) {
          pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "concat '%s': a model tensor joins activations only with a first dimension of 1",
                              pq_node_name(node));
          return PQ_ERR_UNSUPPORTED;
        }
        st->cat_blk[j] = pq_tensor_numel(pq_plan_value_tensor(p, st->in[j])) / st->cat_outer;
        st->cat_const |= 1u << j;
      } else st->cat_blk[j] = c->values[st->in[j]].per_sample / st->cat_outer;
    }
    break;
  }
  case K_TRANSPOSE: {
    int ond;
    size_t np;
    const int64_t *os = pq_plan_value_shape(p, st->out, &ond), *perm = pq_node_get_ints(node, "perm", &np);
    int64_t ist[PQ_MAX_DIMS], m = 1;
    for (int d = nd - 1; d >= 0; d--) ist[d] = m, m *= d ? xs[d] : 1; /* per sample: dimension 0 is the batch */
    st->tr_rank = ond;
    for (int d = 0; d < ond; d++) st->tr_oshape[d] = os[d], st->tr_istride[d] = ist[perm[d]];
    break;
  }
  case K_SLICE: pq_slice_geometry(node, nd, xs, &st->slice); break;
  case K_RESIZE: pq_resize_params(node, xs[2], xs[3], &st->resize); break;
  case K_REDUCE:
    st->red = (int)pq_reduce_kind(pq_node_op(node));
    pq_reduce_geometry(nd, xs, pq_reduce_axes_of(node, nd), &st->red_geo);
    break;
  case K_LAYERNORM: {
    for (int j = 1; j < 3; j++)
      if (st->in[j] >= 0 && pq_plan_value_kind(p, st->in[j]) != PQ_VALUE_WEIGHT) {
        pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "layer_norm '%s': its scale and bias must be model tensors", pq_node_name(node));
        return PQ_ERR_UNSUPPORTED;
      }
    int64_t axis = pq_node_get_int(node, "axis", -1), inner = 1;
    if (axis < 0) axis += nd;
    for (int d = (int)axis; d < nd; d++) inner *= xs[d];
    st->axis_len = inner;
    st->ln_eps = pq_node_get_float(node, "epsilon", 1e-5);
    const char *which = pq_node_get_string(node, "output", "y");
    st->ln_out = !strcmp(which, "mean") ? 1 : !strcmp(which, "inv_std_dev") ? 2 : 0;
    break;
  }
  case K_SOFTMAX: {
    st->log_sm = !strcmp(pq_node_op(node), "log_softmax");
    int64_t axis = pq_node_get_int(node, "axis", -1);
    if (axis < 0) axis += nd;
    if (axis == 0) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "softmax '%s' over the batch axis is not supported", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    st->axis_len = xs[axis];
    int64_t inner = 1;
    for (int d = (int)axis + 1; d < nd; d++) inner *= xs[d];
    st->axis_inner = inner;
    break;
  }
  case K_ADD: {
    st->bin = (int)pq_binary_kind(pq_node_op(node));
    int and_, bnd, ond;
    const int64_t *as = pq_plan_value_shape(p, st->in[0], &and_), *bs = pq_plan_value_shape(p, st->in[1], &bnd);
    const int64_t *os = pq_plan_value_shape(p, st->out, &ond);
    st->add_rank = ond;
    for (int d = 0; d < ond; d++) {
      st->add_ashape[d] = d < ond - and_ ? 1 : as[d - (ond - and_)];
      st->add_bshape[d] = d < ond - bnd ? 1 : bs[d - (ond - bnd)];
      st->add_oshape[d] = os[d];
    }
    st->add_same = and_ == bnd && memcmp(as, bs, sizeof(int64_t) * (size_t)and_) == 0 &&
                   pq_plan_value_kind(p, st->in[0]) != PQ_VALUE_WEIGHT && pq_plan_value_kind(p, st->in[1]) != PQ_VALUE_WEIGHT;
    break;
  }
  default: break;
  }
  return PQ_OK;
}

/* A relu that alone reads the output of the step just before it is folded into that step. */
static void fuse_relu(Cpu *c) {
  for (int s = 1; s < c->n_steps; s++) {
    Step *st = &c->steps[s], *prev = &c->steps[s - 1];
    if (st->kind != K_RELU || st->in[0] != prev->out) continue;
    if (prev->kind != K_LINEAR && prev->kind != K_CONV2D && prev->kind != K_CONVT && prev->kind != K_ADD && prev->kind != K_BATCHNORM &&
        prev->kind != K_MATMUL && prev->kind != K_CIRC && prev->kind != K_TT &&
        prev->kind != K_SPARSE)
      continue;
    if (pq_plan_value_n_uses(c->plan, prev->out) != 1) continue;
    prev->fuse_relu = 1;
    st->kind = K_NOP;
  }
}

/* A mul by a model tensor of k values (equalize awq's input scales) whose output only a packed linear layer
 * reads, as its input, is folded into that layer: the layer multiplies each input row by the vector as it
 * quantizes it, into a row of scratch, and the mul becomes an alias of its input. The same products, so the
 * same outputs, without the mul's buffer of a batch of rows or its pass over them. */
static PqStatus fuse_input_scale(Cpu *c, PqPluginError *err) {
  PqPlan *p = c->plan;
  for (int s = 0; s < c->n_steps; s++) {
    Step *st = &c->steps[s];
    if (st->kind != K_ADD || st->bin != PQ_BIN_MUL || pq_plan_value_n_uses(p, st->out) != 1) continue;
    int wv = pq_plan_value_kind(p, st->in[1]) == PQ_VALUE_WEIGHT ? 1 : pq_plan_value_kind(p, st->in[0]) == PQ_VALUE_WEIGHT ? 0 : -1;
    if (wv < 0) continue;
    int av = st->in[1 - wv];
    if (pq_plan_value_kind(p, av) == PQ_VALUE_WEIGHT || c->values[av].per_sample != c->values[st->out].per_sample) continue;
    Step *r = NULL;
    for (int t = s + 1; t < c->n_steps && !r; t++)
      if (c->steps[t].kind != K_NOP && c->steps[t].in[0] == st->out) r = &c->steps[t];
    int wnd;
    const int64_t *ws = pq_plan_value_shape(p, st->in[wv], &wnd);
    int64_t wn = 1;
    for (int d = 0; d < wnd; d++) wn *= ws[d];
    if (!r || r->kind != K_LINEAR || !r->q_codes || r->q_in_scale || wn != r->k || ws[wnd - 1] != r->k || r->in[1] == st->out || r->in[2] == st->out)
      continue;
    r->q_in_scale = c->values[st->in[wv]].weight;
    if (!(r->q_xf = malloc(sizeof(float) * (size_t)r->k))) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory folding a mul into a packed layer");
      return PQ_ERR_NOMEM;
    }
    c->converted_bytes += (int64_t)sizeof(float) * r->k;
    st->kind = K_NOP;
    st->in[0] = av;
    st->in[1] = -1;
  }
  return PQ_OK;
}

/* Elementwise chains. A step is an op of one where it is an activation, a relu, or a binary op of an activation
 * and a model tensor whose result has the activation's shape (the tensor broadcast to it, never along the
 * batch). Fills *o but its tensor's values; *act: the activation it reads, *wv: the tensor's value or -1. */
#define EW_MAX_OPS 16
#define EW_MAX_TENSOR (1 << 20) /* floats a tensor may take as its values over a sample */
static int ew_op_of(const Cpu *c, const Step *st, EwOp *o, int *act, int *wv) {
  PqPlan *p = c->plan;
  *o = (EwOp){0};
  *wv = -1;
  *act = st->in[0];
  if (st->kind == K_RELU) {
    o->kind = EW_RELU;
    return 1;
  }
  if (st->kind == K_ACT) {
    *o = (EwOp){EW_ACT, st->act, st->act_a, st->act_b, NULL, 0, NULL};
    return 1;
  }
  if (st->kind != K_ADD) return 0;
  const int w1 = pq_plan_value_kind(p, st->in[1]) == PQ_VALUE_WEIGHT, w0 = pq_plan_value_kind(p, st->in[0]) == PQ_VALUE_WEIGHT;
  if (w0 == w1) return 0; /* two activations (or two tensors) */
  *act = st->in[w0 ? 1 : 0];
  *wv = st->in[w0 ? 0 : 1];
  const int64_t *ws = w0 ? st->add_ashape : st->add_bshape;
  if (c->values[*act].per_sample != c->values[st->out].per_sample || ws[0] != 1 || c->values[st->out].per_sample > EW_MAX_TENSOR) return 0;
  *o = (EwOp){EW_BIN, st->bin, 0.0f, 0.0f, NULL, w0, NULL};
  return 1;
}

/* The tensor of a chain's binary step as its values at each position of a sample: its own where it has that
 * shape, else a copy the op owns; or in o->a where it is one value. */
static int ew_tensor_values(Cpu *c, const Step *st, int wv, EwOp *o) {
  const int r = st->add_rank;
  const int64_t *ws = o->tensor_first ? st->add_ashape : st->add_bshape, *os = st->add_oshape, ps = c->values[st->out].per_sample;
  const float *w = c->values[wv].weight;
  int64_t numel = 1, stride[PQ_MAX_DIMS];
  for (int d = r - 1; d >= 1; d--) {
    stride[d] = ws[d] == 1 ? 0 : numel;
    numel *= ws[d];
  }
  if (numel == 1) {
    o->a = w[0];
    return 1;
  }
  if (numel == ps) { /* (its own values, in order) */
    o->v = w;
    return 1;
  }
  float *v = malloc(sizeof(float) * (size_t)ps);
  if (!v) return 0;
  for (int64_t i = 0; i < ps; i++) {
    int64_t rest = i, off = 0;
    for (int d = r - 1; d >= 1; d--) {
      off += rest % os[d] * stride[d];
      rest /= os[d];
    }
    v[i] = w[off];
  }
  o->v = o->owned = v;
  c->converted_bytes += (int64_t)sizeof(float) * ps;
  return 1;
}

/* Runs of elementwise steps, each reading the step just before it (its output read by nothing else), become one
 * K_EWCHAIN step at the run's last place: one pass over blocks of the first one's input, no buffer for the
 * values between them, and the same values, each op's loop being the one it runs alone (elementwise.h). A relu
 * folded into a binary step (fuse_relu) goes along as an op. */
static PqStatus fuse_elementwise(Cpu *c, PqPluginError *err) {
  for (int s = 0; s < c->n_steps; s++) {
    EwOp ops[EW_MAX_OPS];
    int wvs[EW_MAX_OPS], n = 0, steps = 0, x = -1, cur = -1, t = s;
    while (t < c->n_steps && n + 2 <= EW_MAX_OPS) {
      const Step *st = &c->steps[t];
      int act, wv;
      EwOp o;
      if (!ew_op_of(c, st, &o, &act, &wv)) break;
      if (n > 0 && (act != cur || pq_plan_value_n_uses(c->plan, cur) != 1)) break;
      if (n == 0) x = act;
      ops[n] = o;
      wvs[n++] = wv;
      cur = st->out;
      t++;
      if (st->fuse_relu) { /* (the relu's step follows, a K_NOP) */
        ops[n] = (EwOp){EW_RELU, 0, 0.0f, 0.0f, NULL, 0, NULL};
        wvs[n++] = -1;
        cur = c->steps[t].out;
        t++;
      }
      steps++;
    }
    if (steps < 2) continue;
    Step *last = &c->steps[t - 1];
    EwOp *chain = calloc((size_t)n, sizeof(EwOp));
    if (!chain) goto nomem;
    for (int k = 0; k < n; k++) {
      chain[k] = ops[k];
      chain[k].v = chain[k].owned = NULL;
    }
    last->ew = chain;
    last->ew_n = n;
    for (int k = 0; k < n; k++) /* (op k is step s + k's, a folded relu its K_NOP's) */
      if (wvs[k] >= 0 && !ew_tensor_values(c, &c->steps[s + k], wvs[k], &chain[k])) goto nomem;
    for (int u = s; u < t - 1; u++) c->steps[u].kind = K_SKIP;
    last->kind = K_EWCHAIN;
    last->fuse_relu = 0;
    last->in[0] = x;
    for (int j = 1; j < 16; j++) last->in[j] = -1;
    last->out = cur;
    s = t - 1;
  }
  return PQ_OK;
nomem:
  pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory for a chain of elementwise ops");
  return PQ_ERR_NOMEM;
}

typedef struct {
  size_t cap; /* floats */
  int live;   /* values that still need this memory */
  size_t offset;
} Slot;

static int slot_get(Slot **slots, int *n_slots, size_t need) {
  int best = -1;
  for (int i = 0; i < *n_slots; i++) { /* the smallest free slot that fits */
    Slot *s = &(*slots)[i];
    if (s->live == 0 && s->cap >= need && (best < 0 || s->cap < (*slots)[best].cap)) best = i;
  }
  if (best < 0) { /* else grow the largest free slot, or make a new one */
    for (int i = 0; i < *n_slots; i++)
      if ((*slots)[i].live == 0 && (best < 0 || (*slots)[i].cap > (*slots)[best].cap)) best = i;
    if (best < 0) { /* the array has room: at most one slot per input and per step */
      best = (*n_slots)++;
      (*slots)[best] = (Slot){0, 0, 0};
    }
    if ((*slots)[best].cap < need) (*slots)[best].cap = need;
  }
  return best;
}

/* Assigns each activation a slot of the arena, reusing a slot once all values living in it are read. */
static PqStatus plan_buffers(Cpu *c, PqPluginError *err) {
  PqPlan *p = c->plan;
  int n_slots = 0;
  Slot *slots = malloc(sizeof(Slot) * (size_t)(c->n_inputs + c->n_steps + 1));
  int *remaining = calloc((size_t)c->n_values + 1, sizeof(int));
  if (!slots || !remaining) {
    free(slots);
    free(remaining);
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory planning the activation buffers");
    return PQ_ERR_NOMEM;
  }
  for (int v = 0; v < c->n_values; v++) remaining[v] = pq_plan_value_n_uses(p, v);
  for (int i = 0; i < c->n_inputs; i++) {
    slots[n_slots] = (Slot){0, 1 << 30, 0}; /* the caller's memory: never reused */
    c->values[c->input_values[i]].slot = n_slots++;
  }
  for (int s = 0; s < c->n_steps; s++) {
    Step *st = &c->steps[s];
    Value *ov = &c->values[st->out];
    if (st->kind == K_SKIP) continue; /* (taken into a chain: its output has no buffer, its inputs are the chain's) */
    if (st->kind == K_NOP || st->kind == K_ALIAS) {
      ov->slot = c->values[st->in[0]].slot; /* the same memory, seen with another shape */
    } else {
      ov->slot = slot_get(&slots, &n_slots, (size_t)(ov->per_sample * c->max_batch));
    }
    slots[ov->slot].live++;
    for (int j = 0; j < 16; j++) {
      int v = st->in[j];
      if (v < 0 || pq_plan_value_kind(p, v) == PQ_VALUE_WEIGHT) continue;
      if (--remaining[v] == 0) slots[c->values[v].slot].live--;
    }
  }
  free(remaining);
  size_t total = 0;
  for (int i = c->n_inputs; i < n_slots; i++) {
    slots[i].offset = total;
    total += (slots[i].cap + 15) & ~(size_t)15; /* 64-byte aligned starts */
  }
  c->arena_floats = total;
  c->arena = aligned_alloc(64, sizeof(float) * (total ? total : 16));
  c->slot_ptr = calloc((size_t)n_slots, sizeof(float *));
  if (!c->arena || !c->slot_ptr) {
    free(slots);
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory for %zu activation floats", total);
    return PQ_ERR_NOMEM;
  }
  memset(c->arena, 0, sizeof(float) * (total ? total : 16));
  for (int i = c->n_inputs; i < n_slots; i++) c->slot_ptr[i] = c->arena + slots[i].offset;
  c->n_slots = n_slots;
  free(slots);
  return PQ_OK;
}

/* The threads every parallel kernel and GEMM runs on: the `threads` asked for, else OpenBLAS's own count (the
 * process's pool of that size, shared with the other backends); each packed layer gets its per-row buffers
 * once a thread. */
static PqStatus setup_pool(Cpu *c, PqPluginError *err) {
  c->pool_threads = 1;
  int want = c->threads > 0 ? c->threads : blas_threads_default();
  if (want < 2) return PQ_OK; /* (no pool: one thread) */
  /* OpenBLAS's workers stopped first: a thread is put on a processor when it is made, and one made while they
   * spin went beside the calling thread, where it stayed (the default MLP at batch 1: 10.4 µs instead of 6.0
   * in about one process in three) */
  blas_hold();
  if (!(c->pool = pool_acquire(want))) {
    blas_release();
    return PQ_OK;
  }
  c->pool_threads = c->pool->n;
  for (int s = 0; s < c->n_steps; s++) {
    Step *st = &c->steps[s];
    if (!st->q_codes) continue;
    st->q_more = calloc((size_t)(c->pool_threads - 1), sizeof(QScratch));
    if (!st->q_more) goto nomem;
    for (int t = 0; t + 1 < c->pool_threads; t++) {
      QScratch *q = &st->q_more[t];
      if (!q_scratch_new(st, q)) goto nomem;
      c->converted_bytes += q_scratch_bytes(st);
      if (st->kind == K_CONV2D && st->q_xbatch && !c->simd && !st->q_pairs) { /* (run_packed_conv: images over the threads) */
        q->xbatch = malloc((size_t)(st->q_xbatch_rows * st->k) + 64);
        q->xbatch_sum = malloc(sizeof(int32_t) * (size_t)(st->q_xbatch_rows * st->q_chunks));
        q->xbatch_scale = malloc(sizeof(float) * (size_t)st->q_xbatch_rows);
        if (!q->xbatch || !q->xbatch_sum || !q->xbatch_scale) goto nomem;
        c->converted_bytes += st->q_xbatch_rows * (st->k + 4 + 4 * st->q_chunks);
      }
    }
  }
  return PQ_OK;
nomem:
  pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory for the kernels' per-thread buffers");
  return PQ_ERR_NOMEM;
}

static PqStatus cpu_prepare(const PqModel *model, const PqBackendConfig *cfg, void **handle, PqPluginError *err) {
  Cpu *c = calloc(1, sizeof(Cpu));
  if (!c) return PQ_ERR_NOMEM;
  PqStatus st = PQ_ERR_INVALID;
  c->model = pq_model_ref((PqModel *)model);
  c->max_batch = cfg->max_batch;
  c->threads = cfg->threads;
  const char *kernels = pq_options_get_string(cfg->options, "kernels", "auto");
  const int vec = pq_options_get_bool(cfg->options, "simd", 1) && strcmp(kernels, "portable") != 0, widest = strcmp(kernels, "auto") == 0;
  c->simd = vec && widest && pq_cpu_has_vnni();
#ifdef PQ_X86
  c->avx2 = vec && !c->simd && pq_cpu_has_avx2();
  c->ew_avx2 = vec && pq_cpu_has_avx2();
#endif
  c->sp_simd = vec && widest && sp_has_avx512() ? SP_AVX512 : c->avx2 && sp_has_fma() ? SP_AVX2 : SP_PORTABLE;
  c->plan = pq_plan_new(model, cfg->max_batch, err);
  if (!c->plan) goto fail;
  c->n_values = (int)pq_plan_n_values(c->plan);
  c->n_steps = (int)pq_plan_n_steps(c->plan);
  c->values = calloc((size_t)c->n_values, sizeof(Value));
  c->steps = calloc((size_t)c->n_steps, sizeof(Step));
  const PqGraph *g = pq_model_const_graph(model);
  c->n_inputs = (int)pq_graph_n_inputs(g);
  c->n_outputs = (int)pq_graph_n_outputs(g);
  c->input_values = calloc((size_t)c->n_inputs, sizeof(int));
  c->output_values = calloc((size_t)c->n_outputs, sizeof(int));
  for (int i = 0; i < c->n_inputs; i++) c->input_values[i] = pq_plan_value_index(c->plan, pq_graph_input_name(g, (size_t)i));
  for (int i = 0; i < c->n_outputs; i++) c->output_values[i] = pq_plan_value_index(c->plan, pq_graph_output_name(g, (size_t)i));
  if ((st = check_values(c, err)) != PQ_OK) goto fail;
  for (int s = 0; s < c->n_steps; s++)
    if ((st = setup_step(c, s, err)) != PQ_OK) goto fail;
  fuse_relu(c);
  if ((st = fuse_input_scale(c, err)) != PQ_OK) goto fail;
  if (pq_options_get_bool(cfg->options, "fuse_elementwise", 1) && (st = fuse_elementwise(c, err)) != PQ_OK) goto fail;
  if ((st = plan_buffers(c, err)) != PQ_OK) goto fail;
  if ((st = setup_pool(c, err)) != PQ_OK) goto fail;
  c->workspace_stride = (c->workspace_floats + 15) & ~(size_t)15;
  if (c->workspace_floats) {
    c->workspace = aligned_alloc(64, sizeof(float) * c->workspace_stride * (size_t)c->pool_threads);
    if (!c->workspace) {
      st = PQ_ERR_NOMEM;
      pq_plugin_error_set(err, st, "out of memory for the convolution workspace");
      goto fail;
    }
  }
  if (c->threads > 0 && !c->pool) openblas_set_num_threads(c->threads);
  *handle = c;
  return PQ_OK;
fail:
  cpu_release(c);
  return st;
}

/* ---- kernels ------------------------------------------------------------------------------------- */

static void relu_inplace(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* y[r, :] += b, then ReLU if fused: one pass over the output instead of a bias copy plus a ReLU pass. */
static void bias_relu(float *restrict y, const float *restrict b, int64_t rows, int64_t n, int relu) {
  for (int64_t r = 0; r < rows; r++) {
    float *restrict yr = y + r * n;
    if (b && relu)
      for (int64_t j = 0; j < n; j++) {
        float v = yr[j] + b[j];
        yr[j] = v > 0.0f ? v : 0.0f;
      }
    else if (b)
      for (int64_t j = 0; j < n; j++) yr[j] += b[j];
    else if (relu)
      for (int64_t j = 0; j < n; j++) yr[j] = yr[j] > 0.0f ? yr[j] : 0.0f;
  }
}

static void run_linear(Cpu *c, const Step *st, const float *x, const float *w, const float *b, float *y, int64_t batch) {
  int64_t rows = batch * st->m_rows, n = st->n, k = st->k;
  gemm_par(c->pool, 0, 1, rows, n, k, x, k, w, k, 0.0f, y, n); /* (one row: sgemv) */
  if (b || st->fuse_relu) bias_relu(y, b, rows, n, st->fuse_relu);
}

static void run_matmul(Cpu *c, const Step *st, const float *x, const float *w, float *y, int64_t batch) {
  if (st->mm_slices) { /* two activations: a product per matrix */
    int64_t m = st->m_rows, k = st->k, n = st->n;
    for (int64_t i = 0; i < batch * st->mm_slices; i++) gemm_par(c->pool, 0, 0, m, n, k, x + i * m * k, k, w + i * k * n, n, 0.0f, y + i * m * n, n);
    if (st->fuse_relu) relu_inplace(y, batch * st->mm_slices * m * n);
    return;
  }
  int64_t rows = batch * st->m_rows;
  gemm_par(c->pool, 0, 0, rows, st->n, st->k, x, st->k, w, st->n, 0.0f, y, st->n);
  if (st->fuse_relu) relu_inplace(y, rows * st->n);
}

/* y[i] = a[i·ia] op b[i·ib] with ia and ib 0 or 1 (run_add walks the innermost dimension, whose strides are
 * those): a run op a run or a value, through the elementwise loops (elementwise.h: the op's own loop, vectorized);
 * a value op a value, that one value */
static void binary_inner(int op, float *restrict y, const float *a, int64_t ia, const float *b, int64_t ib, int64_t n, int avx2) {
  if (ia == 0 && ib == 0) {
    const float v = pq_binary(op, a[0], b[0]);
    for (int64_t i = 0; i < n; i++) y[i] = v;
    return;
  }
  const int first = ia == 0; /* (a value op a run: the value is the "tensor", first) */
  const EwOp o = {EW_BIN, op, first ? a[0] : ib == 0 ? b[0] : 0.0f, 0.0f, NULL, first, NULL};
  ew_apply(&o, first ? b : a, y, n, ia == 1 && ib == 1 ? b : NULL, avx2);
}

static void run_add(const Step *st, const float *a, const float *b, float *y, int64_t batch, int a_act, int b_act, int avx2) {
  int r = st->add_rank;
  int64_t os[PQ_MAX_DIMS], as[PQ_MAX_DIMS], bs[PQ_MAX_DIMS];
  memcpy(os, st->add_oshape, sizeof os);
  memcpy(as, st->add_ashape, sizeof as);
  memcpy(bs, st->add_bshape, sizeof bs);
  os[0] = batch;
  if (a_act && as[0] != 1) as[0] = batch;
  if (b_act && bs[0] != 1) bs[0] = batch;
  int64_t total = 1;
  for (int d = 0; d < r; d++) total *= os[d];
  if (st->add_same) {
    binary_inner(st->bin, y, a, 1, b, 1, total, avx2);
  } else {
    /* strides with 0 on broadcast dimensions; the innermost dimension is walked in a tight loop */
    int64_t sa[PQ_MAX_DIMS], sb[PQ_MAX_DIMS], idx[PQ_MAX_DIMS] = {0};
    int64_t ma = 1, mb = 1;
    for (int d = r - 1; d >= 0; d--) {
      sa[d] = as[d] == 1 ? 0 : ma;
      sb[d] = bs[d] == 1 ? 0 : mb;
      ma *= as[d];
      mb *= bs[d];
    }
    int64_t inner = os[r - 1], outer = total / (inner ? inner : 1);
    for (int64_t o = 0; o < outer; o++) {
      int64_t ao = 0, bo = 0;
      for (int d = 0; d < r - 1; d++) {
        ao += idx[d] * sa[d];
        bo += idx[d] * sb[d];
      }
      float *yo = y + o * inner;
      const float *ap = a + ao, *bp = b + bo;
      int64_t ia = sa[r - 1], ib = sb[r - 1];
      binary_inner(st->bin, yo, ap, ia, bp, ib, inner, avx2);
      for (int d = r - 2; d >= 0; d--) {
        if (++idx[d] < os[d]) break;
        idx[d] = 0;
      }
    }
  }
  if (st->fuse_relu) relu_inplace(y, total);
}

/* layer_norm: each row of axis_len values to zero mean and unit variance (in double), then scale and bias; or
 * the rows' means or 1/σ, one value a row */
static void run_layer_norm(const Step *st, const float *x, const float *scale, const float *bias, float *y, int64_t total) {
  const int64_t len = st->axis_len;
  for (int64_t r = 0; r < total / (st->ln_out ? 1 : len); r++) {
    const float *xr = x + r * len;
    float *yr = y + r * len;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < len; i++) mean += xr[i];
    mean /= (double)len;
    for (int64_t i = 0; i < len; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
    float inv = (float)(1.0 / sqrt(var / (double)len + st->ln_eps)), m = (float)mean;
    if (st->ln_out) {
      y[r] = st->ln_out == 1 ? m : inv;
      continue;
    }
    for (int64_t i = 0; i < len; i++) {
      float v = (xr[i] - m) * inv;
      yr[i] = (scale ? v * scale[i] : v) + (bias ? bias[i] : 0.0f);
    }
  }
}

static void run_softmax(const Step *st, const float *x, float *y, int64_t total) {
  int64_t len = st->axis_len, inner = st->axis_inner, outer = total / (len * inner);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float *xp = x + o * len * inner + i;
      float *yp = y + o * len * inner + i;
      float m = -INFINITY;
      for (int64_t j = 0; j < len; j++) m = xp[j * inner] > m ? xp[j * inner] : m;
      float sum = 0.0f;
      for (int64_t j = 0; j < len; j++) {
        float e = expf(xp[j * inner] - m);
        yp[j * inner] = e;
        sum += e;
      }
      if (st->log_sm) { /* x − max − log Σ e^(x − max) */
        float ls = logf(sum);
        for (int64_t j = 0; j < len; j++) yp[j * inner] = xp[j * inner] - m - ls;
        continue;
      }
      float inv = 1.0f / sum;
      for (int64_t j = 0; j < len; j++) yp[j * inner] *= inv;
    }
  }
}

/* conv_transpose2d, per sample and group: columns = W_gᵀ · x_g ([O/g·kh·kw, H·W]), then each column value added
 * into the output at the place a conv2d with the same geometry would have read it from (col2im), then bias. */
static void run_conv_transpose(Cpu *c, const Step *st, const float *x, const float *w, const float *b, float *y, int64_t batch, float *ws) {
  int64_t g = st->groups, cg = st->c / g, ocg = st->oc / g, hw = st->h * st->w, kk = ocg * st->kh * st->kw, ohw = st->oh * st->ow;
  PqConvGeometry geo = {ocg, st->oh, st->ow, st->kh, st->kw, st->h, st->w, st->sh, st->sw, st->dh, st->dw, st->pt, st->pl};
  for (int64_t n = 0; n < batch; n++) {
    float *yn = y + n * st->oc * ohw;
    memset(yn, 0, sizeof(float) * (size_t)(st->oc * ohw));
    for (int64_t gi = 0; gi < g; gi++) {
      gemm_par(c->pool, 1, 0, kk, hw, cg, w + gi * cg * kk, kk, x + (n * st->c + gi * cg) * hw, hw, 0.0f, ws, hw);
      pq_col2im_add(ws, &geo, yn + gi * ocg * ohw);
    }
    for (int64_t o = 0; o < st->oc; o++) {
      float bo = b ? b[o] : 0.0f, *yo = yn + o * ohw;
      for (int64_t i = 0; i < ohw; i++) {
        float v = yo[i] + bo;
        yo[i] = st->fuse_relu && v < 0.0f ? 0.0f : v;
      }
    }
  }
}

/* An image of a conv with this much work has its own work split over the threads instead of whole images
 * a thread (float and packed convs alike). */
#define PAR_MIN_MACS (1 << 20)

/* A depthwise conv (one input channel a group, ocg outputs each): a GEMM a channel would be 1 × OH·OW ×
 * kh·kw, all call and no work. Instead each input plane is copied once into a zero-bordered plane (`pad`, the
 * workspace), and each output row is computed in blocks of 16 (then 8) outputs held in one vector across all
 * kh·kw taps, the last block overlapping the one before it; planes narrower than 16 (horizontal stride 1)
 * as one long row; horizontal stride 2 as two half planes (even and odd columns), each read as one long row;
 * other rows narrower than 8 and other horizontal strides go output by output. */
typedef float dw_v16 __attribute__((vector_size(16 * sizeof(float))));
typedef float dw_v8 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t dw_i16 __attribute__((vector_size(16 * sizeof(int32_t))));
typedef int32_t dw_i8 __attribute__((vector_size(8 * sizeof(int32_t))));

#define DW_BLOCK(VT, IT, ox) DW_BLOCK_K(VT, IT, ox, st->kh, st->kw, st->dh, st->dw)
/* (with kh, kw, dh, dw constants — the 3×3 undilated case — the tap loops unroll) */
#define DW_BLOCK_K(VT, IT, ox, KH, KW, DH, DW)                                                                   \
  do {                                                                                                             \
    VT acc_ = {0};                                                                                                 \
    acc_ += bias;                                                                                                  \
    for (int64_t ky = 0; ky < (KH); ky++)                                                                          \
      for (int64_t kx = 0; kx < (KW); kx++) {                                                                      \
        VT v_;                                                                                                     \
        memcpy(&v_, base + ky * (DH) * pw + kx * (DW) + (ox), sizeof v_);                                          \
        acc_ += wo[ky * (KW) + kx] * v_;                                                                           \
      }                                                                                                            \
    if (relu) { /* lanes kept where positive: the compare's all-ones mask, and-ed with the bits */                  \
      VT zero_ = {0};                                                                                              \
      acc_ = (VT)((IT)acc_ & (acc_ > zero_));                                                                      \
    }                                                                                                              \
    memcpy(yr + (ox), &acc_, sizeof acc_);                                                                         \
  } while (0)

/* 16 outputs of a depthwise conv with horizontal stride 2 from the even and odd half planes (e, o at the block's
 * first output; `row` floats between the planes' rows a dilation step apart): tap (ky, kx) reads plane kx % 2 at
 * ky·row + kx / 2. Inlined into the clones below. */
static inline __attribute__((always_inline)) void dw_half_block(const float *wo, int64_t kh, int64_t kw, int64_t row, const float *e,
                                                                const float *o, float bias, int relu, float *y) {
  dw_v16 acc = {0};
  acc += bias;
  for (int64_t ky = 0; ky < kh; ky++)
    for (int64_t kx = 0; kx < kw; kx++) {
      dw_v16 v;
      memcpy(&v, (kx % 2 ? o : e) + ky * row + kx / 2, sizeof v);
      acc += wo[ky * kw + kx] * v;
    }
  if (relu) {
    dw_v16 zero = {0};
    acc = (dw_v16)((dw_i16)acc & (acc > zero));
  }
  memcpy(y, &acc, sizeof acc);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) /* one register a block where the machine has them */
static void conv_depthwise_planes(const Step *st, const float *x, const float *w, const float *b, float *y, int64_t i0, int64_t i1, float *pad) {
  int64_t ocg = st->oc / st->groups, ohw = st->oh * st->ow, hw = st->h * st->w, ph, pw;
  depthwise_pad(st, &ph, &pw);
  int relu = st->fuse_relu;
  /* Rows narrower than a 16-wide block, horizontal stride 1: output (oy, ox) reads the plane at oy·sh·pw + ox plus
     each tap's fixed offset, so the outputs laid out sh·pw apart are one long row, computed 16 at a time (the
     columns past ow, and the rows a vertical stride skips, wasted) into `fl`, then copied out row by row. The
     plane has 32 floats of slack behind it. */
  const int flat = st->sw == 1 && st->ow < 16, k33 = st->kh == 3 && st->kw == 3 && st->dh == 1 && st->dw == 1;
  const int64_t pitch = st->sh * pw, span = (st->oh - 1) * pitch + st->ow;
  float *fl = pad + ph * pw + 32;
  /* Horizontal stride 2 (undilated): each padded row split into its even and odd columns, two planes pwe wide;
     a tap at column 2·ox + kx reads plane kx % 2 at ox + kx / 2, so these are stride-1 planes read as one long
     row as above (pitch sh·pwe), at any width. */
  const int split = st->sw == 2 && st->dw == 1;
  const int64_t pwe = (pw + 1) / 2, epitch = st->sh * pwe, espan = (st->oh - 1) * epitch + st->ow;
  float *ev = pad + ph * pw + 32, *od = ev + ph * pwe + 32, *efl = od + ph * pwe + 32;
  for (int64_t i = i0; i < i1; i++) { /* input planes i0 … i1 − 1 of the batch: sample i / C, channel i % C */
    int64_t n = i / st->c, ci = i % st->c;
    const float *xp = x + (n * st->c + ci) * hw;
    int64_t c0 = st->pl, c1 = st->pl + st->w < pw ? st->pl + st->w : pw; /* the input's columns in pad */
    for (int64_t r = 0; r < ph; r++) {
      float *row = pad + r * pw;
      int64_t iy = r - st->pt;
      if (iy < 0 || iy >= st->h || c0 >= c1) {
        memset(row, 0, sizeof(float) * (size_t)pw);
        continue;
      }
      /* (loops, not memset/memcpy: rows are short, a call costs more than the copy) */
      const float *src = xp + iy * st->w;
      for (int64_t j = 0; j < c0; j++) row[j] = 0.0f;
      for (int64_t j = c0; j < c1; j++) row[j] = src[j - st->pl];
      for (int64_t j = c1; j < pw; j++) row[j] = 0.0f;
    }
    memset(pad + ph * pw, 0, sizeof(float) * 32);
    if (split) {
      /* 32 values in, 16 even and 16 odd out (the last block of a row reads into the next row or the slack, and
         writes past the half row into the next one, which is written after it: only lanes thrown away read those) */
      for (int64_t r = 0; r < ph; r++)
        for (int64_t j = 0; j < pwe; j += 16) {
          dw_v16 lo, hi, e, d;
          memcpy(&lo, pad + r * pw + 2 * j, sizeof lo);
          memcpy(&hi, pad + r * pw + 2 * j + 16, sizeof hi);
          e = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); /* (GCC 12 and clang) */
          d = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
          memcpy(ev + r * pwe + j, &e, sizeof e);
          memcpy(od + r * pwe + j, &d, sizeof d);
        }
      memset(ev + ph * pwe, 0, sizeof(float) * 16);
      memset(od + ph * pwe, 0, sizeof(float) * 16);
      for (int64_t o = ci * ocg; o < (ci + 1) * ocg; o++) {
        const float *wo = w + o * st->kh * st->kw;
        float *yp = y + (n * st->oc + o) * ohw, bias = b ? b[o] : 0.0f;
        if (st->ow >= 16) { /* row by row, 16 outputs a block, the last block overlapping */
          for (int64_t oy = 0; oy < st->oh; oy++) {
            const int64_t at = oy * epitch;
            for (int64_t ox = 0; ox < st->ow; ox += 16) {
              int64_t x0 = ox + 16 <= st->ow ? ox : st->ow - 16;
              if (k33) dw_half_block(wo, 3, 3, pwe, ev + at + x0, od + at + x0, bias, relu, yp + oy * st->ow + x0); /* (unrolled) */
              else dw_half_block(wo, st->kh, st->kw, st->dh * pwe, ev + at + x0, od + at + x0, bias, relu, yp + oy * st->ow + x0);
            }
          }
        } else { /* narrow: one long row (pitch sh·pwe), copied out */
          for (int64_t q = 0; q < espan; q += 16)
            if (k33) dw_half_block(wo, 3, 3, pwe, ev + q, od + q, bias, relu, efl + q);
            else dw_half_block(wo, st->kh, st->kw, st->dh * pwe, ev + q, od + q, bias, relu, efl + q);
          for (int64_t oy = 0; oy < st->oh; oy++) memcpy(yp + oy * st->ow, efl + oy * epitch, sizeof(float) * (size_t)st->ow);
        }
      }
      continue;
    }
    if (flat) { /* narrow planes: the padded plane read as one long row (above) */
      for (int64_t o = ci * ocg; o < (ci + 1) * ocg; o++) {
        const float *wo = w + o * st->kh * st->kw, *base = pad;
        float *yp = y + (n * st->oc + o) * ohw, bias = b ? b[o] : 0.0f, *yr = fl;
        if (k33)
          for (int64_t q = 0; q < span; q += 16) DW_BLOCK_K(dw_v16, dw_i16, q, 3, 3, 1, 1);
        else
          for (int64_t q = 0; q < span; q += 16) DW_BLOCK(dw_v16, dw_i16, q);
        for (int64_t oy = 0; oy < st->oh; oy++) memcpy(yp + oy * st->ow, fl + oy * pitch, sizeof(float) * (size_t)st->ow);
      }
      continue;
    }
    for (int64_t o = ci * ocg; o < (ci + 1) * ocg; o++) {
      const float *wo = w + o * st->kh * st->kw;
      float *yp = y + (n * st->oc + o) * ohw, bias = b ? b[o] : 0.0f;
      for (int64_t oy = 0; oy < st->oh; oy++) {
        const float *base = pad + oy * st->sh * pw;
        float *yr = yp + oy * st->ow;
        int64_t ox = 0;
        if (st->sw == 1 && st->ow >= 16 && k33) {
          for (; ox + 16 <= st->ow; ox += 16) DW_BLOCK_K(dw_v16, dw_i16, ox, 3, 3, 1, 1);
          if (ox < st->ow) DW_BLOCK_K(dw_v16, dw_i16, st->ow - 16, 3, 3, 1, 1);
          ox = st->ow;
        } else if (st->sw == 1 && st->ow >= 16) {
          for (; ox + 16 <= st->ow; ox += 16) DW_BLOCK(dw_v16, dw_i16, ox);
          if (ox < st->ow) DW_BLOCK(dw_v16, dw_i16, st->ow - 16);
          ox = st->ow;
        } else if (st->sw == 1 && st->ow >= 8) {
          for (; ox + 8 <= st->ow; ox += 8) DW_BLOCK(dw_v8, dw_i8, ox);
          if (ox < st->ow) DW_BLOCK(dw_v8, dw_i8, st->ow - 8);
          ox = st->ow;
        }
        for (; ox < st->ow; ox++) {
          float acc = bias;
          for (int64_t ky = 0; ky < st->kh; ky++)
            for (int64_t kx = 0; kx < st->kw; kx++) acc += wo[ky * st->kw + kx] * base[ky * st->dh * pw + kx * st->dw + ox * st->sw];
          yr[ox] = relu && acc < 0.0f ? 0.0f : acc;
        }
      }
    }
  }
}

/* A conv split over the threads by a range of `count` things (a depthwise conv's planes, a float conv's
 * images, a packed conv's images): each part runs `run` on its range with its own part of the workspace. */
typedef struct ConvRangeJob {
  Cpu *c;
  const Step *st;
  const float *x, *w, *b;
  float *y;
  int64_t count;
  void (*run)(const struct ConvRangeJob *j, int64_t from, int64_t to, float *ws, int part); /* ws: part `part`'s workspace */
} ConvRangeJob;

static void conv_range_part(void *p, int part, int parts) {
  const ConvRangeJob *j = p;
  j->run(j, j->count * part / parts, j->count * (part + 1) / parts, j->c->workspace + (size_t)part * j->c->workspace_stride, part);
}

static void depthwise_range(const ConvRangeJob *j, int64_t from, int64_t to, float *ws, int part) {
  (void)part;
  conv_depthwise_planes(j->st, j->x, j->w, j->b, j->y, from, to, ws);
}

/* The zero-bordered plane conv_depthwise_planes works in (one a thread): the rows and columns its outputs
 * read (*ph × *pw, either may be NULL); the floats it needs: the plane and 32 of slack, then either the rows
 * of narrow outputs laid out sh·pw apart (16 more) or (horizontal stride 2) the even and odd halves of the
 * plane (32 more each) and their outputs (16 more). */
static size_t depthwise_pad(const Step *st, int64_t *ph, int64_t *pw) {
  int64_t h = (st->oh - 1) * st->sh + (st->kh - 1) * st->dh + 1, w = (st->ow - 1) * st->sw + (st->kw - 1) * st->dw + 1;
  if (ph) *ph = h;
  if (pw) *pw = w;
  size_t narrow = (size_t)(st->oh * st->sh * w + 16), halves = (size_t)(2 * (h * ((w + 1) / 2) + 32) + st->oh * st->sh * ((w + 1) / 2) + 16);
  return (size_t)(h * w + 32) + (narrow > halves ? narrow : halves);
}

/* The im2col + GEMM path for images [n0, n1) with `ws` for the patches; the GEMMs on `pool` (NULL: here). */
static void conv_gemm_images(Pool *pool, const Step *st, const float *x, const float *w, const float *b, float *y, int64_t n0, int64_t n1,
                             float *ws) {
  int64_t g = st->groups, cg = st->c / g, ocg = st->oc / g, ohw = st->oh * st->ow, kk = cg * st->kh * st->kw;
  int direct = st->kh == 1 && st->kw == 1 && st->sh == 1 && st->sw == 1 && st->pt == 0 && st->pl == 0 && st->oh == st->h &&
               st->ow == st->w;
  for (int64_t n = n0; n < n1; n++) {
    const float *xn = x + n * st->c * st->h * st->w;
    float *yn = y + n * st->oc * ohw;
    for (int64_t gi = 0; gi < g; gi++) {
      const float *xg = xn + gi * cg * st->h * st->w;
      const float *col = xg;
      if (!direct) {
        PqConvGeometry geo = conv_group_geometry(st);
        pq_im2col(xg, &geo, ws);
        col = ws;
      }
      float *yg = yn + gi * ocg * ohw;
      if (b)
        for (int64_t o = 0; o < ocg; o++)
          for (int64_t i = 0; i < ohw; i++) yg[o * ohw + i] = b[gi * ocg + o];
      gemm_par(pool, 0, 0, ocg, ohw, kk, w + gi * ocg * kk, kk, col, ohw, b ? 1.0f : 0.0f, yg, ohw);
    }
    if (st->fuse_relu) relu_inplace(yn, st->oc * ohw);
  }
}

static void gemm_images_range(const ConvRangeJob *j, int64_t from, int64_t to, float *ws, int part) {
  (void)part;
  conv_gemm_images(NULL, j->st, j->x, j->w, j->b, j->y, from, to, ws);
}

/* Whether a conv runs a batch of small images (under PAR_MIN_MACS each) over the threads a whole image each,
 * each thread laying out its own patches, rather than image by image with each image's work split: at any
 * batch of two or more, even of tiny images (a part costs the pool well under a microsecond). Measured on the
 * CNN's convs and smaller ones, float and 8-bit, batches 2-8 on 2 threads: 1.3-1.9x faster than image by
 * image, never slower. */
static int conv_split_images(const Cpu *c, int64_t batch, int64_t per_image) {
  return batch >= 2 && pool_size(c->pool) > 1 && per_image < PAR_MIN_MACS;
}

/* A depthwise conv with this much work has its planes split over the threads. Measured 3x3, batch 1, on 2
 * threads: 960 channels 7x7 61 -> 34 us, 384 channels 14x14 65 -> 35 us, 64 channels 14x14 11 -> 7 us, 32
 * channels 8x8 2.35 -> 1.55 us (the threshold was 1M: the first two did not split); 128k: the first two only. */
#define DEPTHWISE_PAR_MIN_MACS (16 * 1024)

static void run_conv(Cpu *c, const Step *st, const float *x, const float *w, const float *b, float *y, int64_t batch) {
  int64_t ohw = st->oh * st->ow, per_image = st->oc * ohw * (st->c / st->groups) * st->kh * st->kw;
  if (conv_is_depthwise(st)) { /* depthwise: planes split over the backend's threads */
    ConvRangeJob job = {c, st, x, w, b, y, batch * st->c, depthwise_range};
    pool_run(c->pool, batch * st->oc * ohw * st->kh * st->kw >= DEPTHWISE_PAR_MIN_MACS ? (int)(batch * st->c) : 1, conv_range_part, &job);
    return;
  }
  if (conv_split_images(c, batch, per_image)) { /* small images: whole images a thread */
    ConvRangeJob job = {c, st, x, w, b, y, batch, gemm_images_range};
    pool_run(c->pool, (int)batch, conv_range_part, &job);
    return;
  }
  conv_gemm_images(c->pool, st, x, w, b, y, 0, batch, c->workspace); /* each GEMM split over the threads */
}

static void run_pool(const Step *st, const float *x, float *y, int64_t batch, int is_max) {
  for (int64_t nc = 0; nc < batch * st->c; nc++) {
    const float *xp = x + nc * st->h * st->w;
    float *yp = y + nc * st->oh * st->ow;
    for (int64_t oy = 0; oy < st->oh; oy++)
      for (int64_t ox = 0; ox < st->ow; ox++) {
        const int64_t iy0 = oy * st->sh - st->pt, ix0 = ox * st->sw - st->pl;
        if (iy0 >= 0 && iy0 + (st->kh - 1) * st->dh < st->h && ix0 >= 0 && ix0 + (st->kw - 1) * st->dw < st->w) {
          /* the window inside the image: no bounds to check, kh·kw values (the same comparisons and sums) */
          const float *xw = xp + iy0 * st->w + ix0;
          float acc = is_max ? -INFINITY : 0.0f;
          if (st->kh == 2 && st->kw == 2 && st->dh == 1 && st->dw == 1) {
            const float v[4] = {xw[0], xw[1], xw[st->w], xw[st->w + 1]};
            for (int t = 0; t < 4; t++) {
              if (is_max) acc = v[t] > acc ? v[t] : acc;
              else acc += v[t];
            }
          } else {
            for (int64_t ki = 0; ki < st->kh; ki++)
              for (int64_t kj = 0; kj < st->kw; kj++) {
                float v = xw[ki * st->dh * st->w + kj * st->dw];
                if (is_max) acc = v > acc ? v : acc;
                else acc += v;
              }
          }
          yp[oy * st->ow + ox] = is_max ? acc : acc / (float)(st->kh * st->kw);
          continue;
        }
        float acc = is_max ? -INFINITY : 0.0f;
        int64_t cnt = 0, cnt_pad = 0;
        for (int64_t ki = 0; ki < st->kh; ki++) {
          int64_t iy = oy * st->sh - st->pt + ki * st->dh;
          for (int64_t kj = 0; kj < st->kw; kj++) {
            int64_t ix = ox * st->sw - st->pl + kj * st->dw;
            /* windows may run into the right/bottom padding (and past it with ceil_mode): pads count
               toward the divisor only up to the padded extent */
            if (iy < 0 || iy >= st->h || ix < 0 || ix >= st->w) {
              if (iy < st->h + st->pt && ix < st->w + st->pl) cnt_pad++;
              continue;
            }
            float v = xp[iy * st->w + ix];
            if (is_max) acc = v > acc ? v : acc;
            else acc += v;
            cnt++;
          }
        }
        if (!is_max) {
          int64_t div = st->count_include_pad ? cnt + cnt_pad : cnt;
          acc = div ? acc / (float)div : 0.0f;
        }
        yp[oy * st->ow + ox] = acc;
      }
  }
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- the packed and CSR kernels on the pool's threads: each part a contiguous range of rows -------------- */

typedef struct {
  const Cpu *c;
  const Step *st;
  const float *x, *b;
  float *y;
  int64_t rows;
} RowsJob;

/* a copy of a packed step with thread `part`'s per-row buffers */
static void packed_local(const Step *st, int part, Step *local) {
  *local = *st;
  if (part == 0) return;
  const QScratch *q = &st->q_more[part - 1];
  local->q_x = q->x, local->q_xsum = q->xsum, local->q_unpacked = q->unpacked, local->q_xe = q->xe, local->q_xo = q->xo, local->q_xsumf = q->xsumf;
  local->q_xf = q->xf;
}

/* Part `part` of `parts` of `rows` rows, in blocks of 4 as the blocked kernels take them; the rows past the
 * last block (which one thread gives to the one-row kernels) go to the last part. */
static void part_rows(int64_t rows, int part, int parts, int64_t *r0, int64_t *r1) {
  int64_t blocks = rows / 4;
  *r0 = blocks * part / parts * 4;
  *r1 = part == parts - 1 ? rows : blocks * (part + 1) / parts * 4;
}

/* A copy of a packed step for rows r0… of a call of `rows` rows: thread `part`'s per-row buffers and its rows of
 * the batch buffers (none when the call has more rows than they hold: the one-row kernels, as one thread
 * would take them). */
static void packed_slice(const Step *st, int part, int64_t r0, int64_t rows, Step *local) {
  packed_local(st, part, local);
  if (st->q_xbatch && rows <= st->q_xbatch_rows) {
    local->q_xbatch = st->q_xbatch + r0 * st->k;
    local->q_xbatch_sum = st->q_xbatch_sum + r0 * st->q_chunks;
    local->q_xbatch_scale = st->q_xbatch_scale + r0;
    local->q_xbatch_rows = st->q_xbatch_rows - r0;
  } else {
    local->q_xbatch = NULL;
  }
}

static void packed_part(void *p, int part, int parts) {
  const RowsJob *j = p;
  int64_t r0, r1;
  part_rows(j->rows, part, parts, &r0, &r1);
  Step local;
  packed_slice(j->st, part, r0, j->rows, &local);
  if (r1 > r0) packed_rows(&local, j->x + r0 * local.k, j->b, j->y + r0 * local.n, r1 - r0, j->c->simd);
}

/* A packed layer with this much work over a batch is split over the threads: from 16 rows by rows (parts of 8
 * rows or more), with fewer rows (a layer of 128 outputs or more: parts of 64 at least) by outputs. Measured on
 * the default MLP on 2 threads (the threshold was 1M for rows, 4M for outputs): by outputs, its 784 x 256 layer,
 * 8-bit at 1, 2, 4 rows 2.7 -> 1.9, 4.9 -> 3.2, 7.6 -> 6.5 us, 6-bit 2.9 -> 2.1, 5.3 -> 3.4, 15.3 -> 7.2 us;
 * by rows, low-rank then 8-bit at 16 and 32 rows 12.3 -> 7.7, 16.5 -> 14.3 us, 8-bit at 16 rows 17.4 -> 16.4
 * us, 64 rows unchanged. 64k and 32k also split the 256 x 128 layer at 2 rows by outputs and were slower there.
 * The output split runs each part's outputs through the kernel one thread would take for the whole batch (the
 * blocked one on rows quantized once, or the lane layout): whole model, 8-bit at 4, 8, 12 rows 7.0 -> 5.1,
 * 15.6 -> 9.5, 23.5 -> 13.9 us, 6-bit 7.5 -> 6.3, 22.7 -> 13.9, 30.3 -> 18.0 us (until then parts went row by
 * row and 8-15 rows did not split); from 16 rows it was slower than the row split (8-bit 16 rows 21.7 against
 * 27.9 us, 48 rows 60 against 77). */
#define PACKED_PAR_MIN_MACS (128 * 1024)
#define PACKED_COLS_MAX_ROWS 16 /* fewer rows than this: the output split */

/* A few rows of a large layer: each part takes a range of the outputs (whole blocks of 16, as the lane layout
 * holds them) over all the rows, y's rows the layer's outputs apart. Rows the blocked kernel takes were
 * quantized once by the caller (`quantized`); the other paths quantize each row in the part's own buffers. */
typedef struct {
  RowsJob rows;
  int quantized;   /* packed: the rows are in the batch buffers, as int8 */
  const float *xt; /* CSR: the rows transposed, SP_LANES a chunk */
} ColsJob;

static void packed_cols_part(void *p, int part, int parts) {
  const ColsJob *cj = p;
  const RowsJob *j = &cj->rows;
  const Step *st = j->st;
  int64_t blocks = (st->n + 15) / 16, n0 = blocks * part / parts * 16, n1 = blocks * (part + 1) / parts * 16;
  if (n1 > st->n) n1 = st->n;
  if (n1 <= n0) return;
  Step local;
  packed_local(st, part, &local);
  int64_t per_out = st->q_per == PQ_QUANT_PER_GROUP ? st->q_groups_per_row : st->q_per == PQ_QUANT_PER_CHANNEL ? 1 : 0; /* scales an output */
  local.n = n1 - n0;
  local.q_ldy = st->n;
  local.q_codes = st->q_codes + n0 * st->q_row_bytes;
  local.q_scales = st->q_scales + n0 * per_out;
  if (st->q_zeros) local.q_zeros = st->q_zeros + n0 * per_out;
  if (st->q_lanes) {
    local.q_lanes = st->q_lanes + (n0 / 16) * st->q_lane_k4 * 64;
    local.q_lane_scale = st->q_lane_scale + n0 * st->q_groups_per_row; /* ([blocks][groups][16]) */
    local.q_lane_zero = st->q_lane_zero + n0 * st->q_groups_per_row;
    if (st->q_fix_start) local.q_fix_start = st->q_fix_start + (n0 / 16) * st->q_groups_per_row;
  }
  const float *b = j->b ? j->b + n0 : NULL;
#ifdef PQ_X86
  if (cj->quantized) { /* (the step's batch buffers, as packed_local copied them) */
    packed_batch_run(&local, j->rows, b, j->y + n0);
    return;
  }
#endif
  local.q_xbatch = NULL; /* (shared: written by the caller only) */
  packed_rows(&local, j->x, b, j->y + n0, j->rows, j->c->simd);
}

static void run_packed_linear_par(Cpu *c, const Step *st, const float *x, const float *b, float *y, int64_t rows) {
  if (rows < PACKED_COLS_MAX_ROWS && st->n >= 128 && pool_size(c->pool) > 1 && rows * st->k * st->n >= PACKED_PAR_MIN_MACS) {
    ColsJob job = {{c, st, x, b, y, rows}, 0, NULL};
#ifdef PQ_X86
    if (packed_batch_kernel(st, rows, c->simd)) {
      packed_quantize_batch(st, x, rows);
      job.quantized = 1;
    }
#endif
    pool_run(c->pool, (int)(st->n / 64), packed_cols_part, &job);
    return;
  }
  RowsJob job = {c, st, x, b, y, rows};
  int parts = rows * st->k * st->n >= PACKED_PAR_MIN_MACS ? (int)(rows / 8) : 1; /* (8 rows or more a part: the blocked kernels) */
  if (parts < 2 || pool_size(c->pool) < 2) {
    packed_rows(st, x, b, y, rows, c->simd); /* one thread: no copy of the step */
    return;
  }
  pool_run(c->pool, parts, packed_part, &job);
}

/* conv2d with a packed kernel, image by image: each part lays out the patches of its output positions (a row
 * a position), runs the packed-linear kernels over them and writes its positions of the output. */
typedef struct {
  const Cpu *c;
  const Step *st;
  const float *xn, *b;
  float *yn, *cols, *tmp;
} ConvJob;

/* Output positions r0…r1 of one image: their patches laid out a row each, the packed-linear kernels over them
 * with part `part`'s per-row buffers, then bias and ReLU. `own`: the part's own batch buffers (an image a
 * part), else its rows r0… of the step's (positions split). */
static void conv_positions(const ConvJob *j, int part, int64_t r0, int64_t r1, int own) {
  const Step *st = j->st;
  const int64_t ohw = st->oh * st->ow, kk = st->k;
  for (int64_t q = r0; q < r1; q++) {
    const int64_t oy = q / st->ow, ox = q % st->ow, ix0 = ox * st->sw - st->pl, iy0 = oy * st->sh - st->pt;
    const int inside_x = ix0 >= 0 && ix0 + (st->kw - 1) * st->dw < st->w; /* no column of the window in the padding */
    float *row = j->cols + q * kk;
    if (inside_x && iy0 >= 0 && iy0 + (st->kh - 1) * st->dh < st->h && st->dw == 1) { /* the whole window inside */
      for (int64_t ci = 0; ci < st->c; ci++) {
        const float *src = j->xn + (ci * st->h + iy0) * st->w + ix0;
        for (int64_t ki = 0; ki < st->kh; ki++, row += st->kw, src += st->dh * st->w) {
          if (st->kw == 3) row[0] = src[0], row[1] = src[1], row[2] = src[2];
          else memcpy(row, src, sizeof(float) * (size_t)st->kw);
        }
      }
      continue;
    }
    for (int64_t ci = 0; ci < st->c; ci++)
      for (int64_t ki = 0; ki < st->kh; ki++) {
        const int64_t iy = oy * st->sh - st->pt + ki * st->dh;
        float *dst = row + (ci * st->kh + ki) * st->kw;
        if (iy < 0 || iy >= st->h) {
          for (int64_t kj = 0; kj < st->kw; kj++) dst[kj] = 0.0f;
          continue;
        }
        const float *src = j->xn + (ci * st->h + iy) * st->w;
        if (inside_x)
          for (int64_t kj = 0; kj < st->kw; kj++) dst[kj] = src[ix0 + kj * st->dw];
        else
          for (int64_t kj = 0; kj < st->kw; kj++) {
            int64_t ix = ix0 + kj * st->dw;
            dst[kj] = ix >= 0 && ix < st->w ? src[ix] : 0.0f;
          }
      }
  }
  if (r1 <= r0) return;
  Step local;
  packed_slice(st, part, r0, ohw, &local);
  if (own && part > 0) {
    const QScratch *q = &st->q_more[part - 1];
    local.q_xbatch = q->xbatch, local.q_xbatch_sum = q->xbatch_sum, local.q_xbatch_scale = q->xbatch_scale;
  }
  local.fuse_relu = 0; /* the bias is added below, then the ReLU: never before the bias */
  packed_rows(&local, j->cols + r0 * kk, NULL, j->tmp + r0 * st->oc, r1 - r0, j->c->simd);
  for (int64_t o = 0; o < st->oc; o++)
    for (int64_t q = r0; q < r1; q++) {
      float v = j->tmp[q * st->oc + o] + (j->b ? j->b[o] : 0.0f);
      j->yn[o * ohw + q] = st->fuse_relu && v < 0.0f ? 0.0f : v;
    }
}

static void conv_part(void *p, int part, int parts) {
  const ConvJob *j = p;
  int64_t r0, r1;
  part_rows(j->st->oh * j->st->ow, part, parts, &r0, &r1);
  conv_positions(j, part, r0, r1, 0);
}

/* Whole images [from, to) of the row-kernel packed conv (a batch of small images over the threads), each in
 * the part's own workspace, per-row and batch buffers (made at prepare where this split can run: where no
 * positions-in-lanes kernel takes the conv). */
static void packed_conv_images_range(const ConvRangeJob *j, int64_t from, int64_t to, float *ws, int part) {
  const Step *st = j->st;
  const int64_t ohw = st->oh * st->ow, in_img = st->c * st->h * st->w, out_img = st->oc * ohw;
  for (int64_t n = from; n < to; n++) {
    ConvJob job = {j->c, st, j->x + n * in_img, j->b, j->y + n * out_img, ws, ws + ohw * st->k};
    conv_positions(&job, part, 0, ohw, 1);
  }
}

/* The positions-in-lanes packed conv, one image's blocks of 16 positions split over the pool (its patches laid
 * out once, in part 0's workspace). */
typedef struct {
  const Cpu *c;
  const Step *st;
  const float *b;
  float *y; /* this image's output */
} ConvLanesJob;

/* 16 positions of a packed conv from q0 on, the positions in the lanes: the AVX-512 VNNI kernel or the AVX2 one;
 * `scratch` 64-byte aligned */
static void conv_block(const Step *st, const float *cols, int64_t ohw, int64_t q0, const float *b, float *yn, void *scratch) {
#ifdef PQ_X86
  if (st->q_pairs) conv_pairs_block_avx2(st, cols, ohw, q0, b, yn, scratch);
  else conv_lanes_block(st, cols, ohw, q0, b, yn, scratch);
#else
  (void)st, (void)cols, (void)ohw, (void)q0, (void)b, (void)yn, (void)scratch;
#endif
}

static void conv_lanes_part(void *p, int part, int parts) {
  const ConvLanesJob *j = p;
  const Step *st = j->st;
  const int64_t ohw = st->oh * st->ow, blocks = (ohw + 15) / 16;
  float *own = j->c->workspace + (size_t)part * j->c->workspace_stride;
  /* part 0's scratch follows the patches; the other parts' start their own workspace parts */
  void *xblk = (void *)(((uintptr_t)(part == 0 ? own + ohw * st->k : own) + 63) & ~(uintptr_t)63);
  for (int64_t blk = blocks * part / parts; blk < blocks * (part + 1) / parts; blk++)
    conv_block(st, j->c->workspace, ohw, blk * 16, j->b, j->y, xblk);
}

/* Whole images [from, to) of the positions-in-lanes packed conv (a ConvRangeJob's range: a batch of small
 * images over the threads), each image's patches laid out in `ws`, then all its blocks. */
static void lanes_images_range(const ConvRangeJob *j, int64_t from, int64_t to, float *ws, int part) {
  (void)part;
  const Step *st = j->st;
  const int64_t ohw = st->oh * st->ow, blocks = (ohw + 15) / 16, in_img = st->c * st->h * st->w, out_img = st->oc * ohw;
  const PqConvGeometry geo = conv_group_geometry(st);
  void *xblk = (void *)(((uintptr_t)(ws + ohw * st->k) + 63) & ~(uintptr_t)63);
  for (int64_t n = from; n < to; n++) {
    pq_im2col(j->x + n * in_img, &geo, ws);
    for (int64_t blk = 0; blk < blocks; blk++) conv_block(st, ws, ohw, blk * 16, j->b, j->y + n * out_img, xblk);
  }
}

/* An image of a packed conv with this much work has its blocks of 16 positions split over the threads.
 * Measured at batch 1 on 2 threads, 8-bit 3x3: 16->32 channels 14x14 (0.9M) 14.0 -> 12.6 us, 32->64 7x7
 * 12.8 -> 11.6 us (the threshold was 1M); 16k also split 1->16 28x28 (0.11M) and 4->8 12x12, 5-10% slower. */
#define PACKED_CONV_PAR_MIN_MACS (256 * 1024)

static void run_packed_conv(Cpu *c, const Step *st, const float *x, const float *b, float *y, int64_t batch) {
  const int64_t ohw = st->oh * st->ow;
  if ((c->simd && st->q_rows4) || st->q_pairs) { /* patches as im2col lays them, then 16 positions in the lanes */
    const int64_t per_image = ohw * st->k * st->oc;
    if (conv_split_images(c, batch, per_image)) { /* images over the threads */
      ConvRangeJob job = {c, st, x, NULL, b, y, batch, lanes_images_range};
      pool_run(c->pool, (int)batch, conv_range_part, &job);
      return;
    }
    const PqConvGeometry geo = conv_group_geometry(st);
    for (int64_t img = 0; img < batch; img++) {
      pq_im2col(x + img * st->c * st->h * st->w, &geo, c->workspace);
      ConvLanesJob job = {c, st, b, y + img * st->oc * ohw};
      pool_run(c->pool, per_image >= PACKED_CONV_PAR_MIN_MACS ? (int)((ohw + 15) / 16) : 1, conv_lanes_part, &job);
    }
    return;
  }
  const int64_t per_image = ohw * st->k * st->oc;
  if (!c->simd && conv_split_images(c, batch, per_image)) { /* images over the threads */
    ConvRangeJob job = {c, st, x, NULL, b, y, batch, packed_conv_images_range};
    pool_run(c->pool, (int)batch, conv_range_part, &job);
    return;
  }
  int parts = per_image >= PACKED_CONV_PAR_MIN_MACS ? (int)(ohw / 8) : 1;
  for (int64_t nimg = 0; nimg < batch; nimg++) {
    ConvJob job = {c, st, x + nimg * st->c * st->h * st->w, b, y + nimg * st->oc * ohw, c->workspace, c->workspace + ohw * st->k};
    pool_run(c->pool, parts, conv_part, &job);
  }
}

static void sparse_part(void *p, int part, int parts) {
  const RowsJob *j = p;
  const Step *st = j->st;
  int64_t chunks = (j->rows + SP_LANES - 1) / SP_LANES, r0 = chunks * part / parts * SP_LANES, r1 = chunks * (part + 1) / parts * SP_LANES;
  if (r1 > j->rows) r1 = j->rows;
  if (r1 > r0)
    sp_run(&st->sp, j->x + r0 * st->k, j->b, j->y + r0 * st->n, r1 - r0, st->fuse_relu, j->c->sp_simd,
           j->c->workspace + (size_t)part * j->c->workspace_stride, j->rows >= SP_MIN_LANE_ROWS);
}

/* A CSR layer with this many stored weights over a batch is split over the threads: from 32 rows by rows, in
 * chunks of SP_LANES; with fewer rows (a layer of 128 outputs or more) by outputs, over all the rows — one at
 * a time below SP_MIN_LANE_ROWS, else through the transposed path, the chunks transposed once, before the
 * parts. Measured on the default MLP pruned 90% on 2 threads, by outputs at 1, 2, 3 rows: 6.6 -> 4.1, 13.5 ->
 * 7.4, 20.0 -> 10.7 us (16k and 32k: 4.2, 8.3, 12.1; before, such rows never split); 50%: 32.7 -> 17.2 us at
 * 1 row; at 4, 8, 16, 24, 31 rows (before, one thread): 11.2 -> 8.9, 11.3 -> 9.0, 12.5 -> 10.7, 24.0 -> 19.3,
 * 25.5 -> 21.1 us; by rows (the threshold was 256k, which kept its 128 x 10 layer on one thread, and at 90%
 * its 256 x 128 one), 90% at 32 and 64 rows: 23.2 -> 14.7, about 48 -> 33 us (32k: 14.7, 36), 50% 60.6 ->
 * 52.6, 118 -> 102 us. */
#define SP_PAR_MIN_NNZ 4096

static void sparse_cols_part(void *p, int part, int parts) {
  const ColsJob *cj = p;
  const RowsJob *j = &cj->rows;
  const Step *st = j->st;
  const int64_t n0 = st->n * part / parts, n1 = st->n * (part + 1) / parts;
  if (n1 <= n0) return;
  SpCsr local = st->sp; /* the outputs' row starts index the whole layer's values */
  local.rows = st->sp.rows + n0;
  local.out = n1 - n0;
  local.ldy = st->n;
  const float *b = j->b ? j->b + n0 : NULL;
  if (cj->xt) {
    for (int64_t r = 0; r < j->rows; r += SP_LANES)
      sp_lanes(&local, cj->xt + r * st->k, b, j->y + r * st->n + n0, j->rows - r < SP_LANES ? j->rows - r : SP_LANES, st->fuse_relu,
               j->c->sp_simd);
    return;
  }
  sp_run(&local, j->x, b, j->y + n0, j->rows, st->fuse_relu, j->c->sp_simd, NULL, 0);
}

static void run_sparse_par(Cpu *c, const Step *st, const float *x, const float *b, float *y, int64_t rows) {
  if (rows < 2 * SP_LANES && st->n >= 128 && pool_size(c->pool) > 1 && rows * st->sp.rows[st->n] >= SP_PAR_MIN_NNZ) {
    ColsJob job = {{c, st, x, b, y, rows}, 0, NULL};
    if (rows >= SP_MIN_LANE_ROWS) { /* (two chunks fit: the workspace holds SP_LANES · k floats for each of 2+ threads) */
      for (int64_t r = 0; r < rows; r += SP_LANES)
        sp_transpose(x + r * st->k, rows - r < SP_LANES ? rows - r : SP_LANES, st->k, c->workspace + r * st->k);
      job.xt = c->workspace;
    }
    pool_run(c->pool, (int)(st->n / 64), sparse_cols_part, &job);
    return;
  }
  RowsJob job = {c, st, x, b, y, rows};
  int parts = rows >= 2 * SP_LANES && rows * st->sp.rows[st->n] >= SP_PAR_MIN_NNZ ? (int)(rows / SP_LANES) : 1;
  pool_run(c->pool, parts, sparse_part, &job);
}

/* A chain over a batch: parts of at least EW_PAR_MIN values over the pool's threads */
#define EW_PAR_MIN (1 << 15)
typedef struct {
  const Step *st;
  const float *x;
  float *y;
  int64_t total, per_sample;
  int avx2;
} EwJob;

static void ew_part(void *p, int part, int parts) {
  const EwJob *j = p;
  ew_chain(j->st->ew, j->st->ew_n, j->per_sample, j->x, j->y, j->total * part / parts, j->total * (part + 1) / parts, j->avx2);
}

static PqStatus cpu_run(void *handle, const PqTensorView *inputs, size_t n_inputs, PqTensorView *outputs,
                        size_t n_outputs, PqPluginError *err) {
  Cpu *c = handle;
  if ((int)n_inputs != c->n_inputs || (int)n_outputs != c->n_outputs) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "expected %d inputs and %d outputs", c->n_inputs, c->n_outputs);
    return PQ_ERR_INVALID;
  }
  int64_t batch = inputs[0].shape[0];
  if (batch < 1 || batch > c->max_batch) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "batch %lld outside 1..%lld", (long long)batch, (long long)c->max_batch);
    return PQ_ERR_INVALID;
  }
  for (int i = 0; i < c->n_inputs; i++) {
    const Value *v = &c->values[c->input_values[i]];
    int ok = inputs[i].dtype == PQ_DTYPE_F32 && inputs[i].ndim == v->ndim && inputs[i].shape[0] == batch && inputs[i].data;
    for (int d = 1; ok && d < v->ndim; d++) ok = inputs[i].shape[d] == v->shape[d];
    if (!ok) {
      pq_plugin_error_set(err, PQ_ERR_INVALID, "input %d: expected float32 of the graph input's shape with batch %lld", i,
                          (long long)batch);
      return PQ_ERR_INVALID;
    }
    c->slot_ptr[v->slot] = inputs[i].data;
  }
  for (int i = 0; i < c->n_outputs; i++) {
    const Value *v = &c->values[c->output_values[i]];
    int ok = outputs[i].ndim == v->ndim && outputs[i].shape[0] == batch && outputs[i].data && outputs[i].dtype == PQ_DTYPE_F32;
    for (int d = 1; ok && d < v->ndim; d++) ok = outputs[i].shape[d] == v->shape[d];
    if (!ok) {
      pq_plugin_error_set(err, PQ_ERR_INVALID, "output %d: expected float32 of the graph output's shape with batch %lld", i,
                          (long long)batch);
      return PQ_ERR_INVALID;
    }
  }
  /* With a pool, GEMMs are split over it and OpenBLAS is held to one thread (gemm.h) — set again for this run
   * if the program changed it since (and given back after); without one, OpenBLAS runs on the threads asked for. */
  const int blas_threads = openblas_get_num_threads();
  if (c->pool && blas_threads != 1) openblas_set_num_threads(1);
  else if (!c->pool && c->threads > 0 && blas_threads != c->threads) openblas_set_num_threads(c->threads);
  double t0 = now_ms();
#define PTR(v) (c->values[(v)].weight ? c->values[(v)].weight : c->slot_ptr[c->values[(v)].slot])
  for (int s = 0; s < c->n_steps; s++) {
    const Step *st = &c->steps[s];
    if (st->kind == K_SKIP) continue; /* (its output has no buffer) */
    float *y = c->slot_ptr[c->values[st->out].slot];
    const float *x = PTR(st->in[0]);
    int64_t total = c->values[st->out].per_sample * batch;
    switch (st->kind) {
    case K_LINEAR:
      if (st->q_codes) run_packed_linear_par(c, st, x, st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y, batch * st->m_rows);
      else run_linear(c, st, x, PTR(st->in[1]), st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y, batch);
      break;
    case K_MATMUL: run_matmul(c, st, x, PTR(st->in[1]), y, batch); break;
    case K_PLUGIN: {
      const PqNode *node = pq_plan_step(c->plan, (size_t)s);
      size_t n = pq_node_n_inputs(node);
      PqTensorView views[16];
      for (size_t j = 0; j < n && j < 16; j++) {
        int v = st->in[j];
        if (v < 0) {
          set_view(&views[j], PQ_DTYPE_F32, 0, NULL, NULL);
        } else if (pq_plan_value_kind(c->plan, v) == PQ_VALUE_WEIGHT) { /* as stored */
          PqTensor *t = pq_plan_value_tensor(c->plan, v);
          set_view(&views[j], pq_tensor_dtype(t), pq_tensor_ndim(t), pq_tensor_shape(t), (void *)pq_tensor_data(t));
        } else {
          const Value *val = &c->values[v];
          set_view(&views[j], PQ_DTYPE_F32, val->ndim, val->shape, c->slot_ptr[val->slot]);
          views[j].shape[0] = batch;
        }
      }
      const Value *ov = &c->values[st->out];
      PqTensorView out;
      set_view(&out, PQ_DTYPE_F32, ov->ndim, ov->shape, y);
      out.shape[0] = batch;
      PqStatus rc = st->kernel->run(node, c->model, views, n < 16 ? n : 16, &out, st->kernel_ws, err);
      if (rc != PQ_OK) {
        if (c->pool && blas_threads != 1) openblas_set_num_threads(blas_threads);
        return rc;
      }
      break;
    }
    case K_SPARSE:
      run_sparse_par(c, st, x, st->in[4] >= 0 ? PTR(st->in[4]) : NULL, y, batch * st->m_rows);
      break;
    case K_TT: tt_run(st->tt, c->pool, x, st->tt_bias >= 0 ? PTR(st->tt_bias) : NULL, y, batch * st->m_rows, st->fuse_relu); break;
    case K_CIRC:
      for (int64_t r = 0; r < batch * st->m_rows; r++)
        circ_row(st->circ, x + r * st->k, st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y + r * st->n, st->fuse_relu);
      break;
    case K_ADD:
      run_add(st, x, PTR(st->in[1]), y, batch, !c->values[st->in[0]].weight, !c->values[st->in[1]].weight, c->ew_avx2);
      break;
    case K_RELU: /* (the activations' loops: elementwise.h) */
    case K_ACT: {
      const EwOp op = {st->kind == K_RELU ? EW_RELU : EW_ACT, st->act, st->act_a, st->act_b, NULL, 0, NULL};
      ew_apply(&op, x, y, total, NULL, c->ew_avx2);
      break;
    }
    case K_EWCHAIN: {
      EwJob job = {st, x, y, total, c->values[st->out].per_sample, c->ew_avx2};
      pool_run(c->pool, total >= EW_PAR_MIN ? (int)((total + EW_PAR_MIN - 1) / EW_PAR_MIN) : 1, ew_part, &job);
      break;
    }
    case K_PAD: /* each plane: the border's value, then the input's rows in place */
      for (int64_t pl = 0; pl < batch * st->c; pl++) {
        float *yp = y + pl * st->oh * st->ow;
        const float *xp = x + pl * st->h * st->w;
        for (int64_t i = 0; i < st->oh * st->ow; i++) yp[i] = st->pad_value;
        for (int64_t r = 0; r < st->h; r++) memcpy(yp + (r + st->pt) * st->ow + st->pl, xp + r * st->w, sizeof(float) * (size_t)st->w);
      }
      break;
    case K_CONCAT: { /* per sample and block before the axis, each input's block in turn */
      int64_t per = c->values[st->out].per_sample;
      for (int64_t r = 0; r < batch; r++)
        for (int64_t o = 0; o < st->cat_outer; o++) {
          float *yo = y + r * per + o * (per / st->cat_outer);
          for (int j = 0; j < st->cat_n; j++) {
            int64_t blk = st->cat_blk[j];
            memcpy(yo, PTR(st->in[j]) + ((st->cat_const >> j & 1u) ? o : r * st->cat_outer + o) * blk, sizeof(float) * (size_t)blk);
            yo += blk;
          }
        }
      break;
    }
    case K_TRANSPOSE: { /* per sample, the output in order, read through the permuted strides */
      int64_t per = c->values[st->out].per_sample;
      for (int64_t r = 0; r < batch; r++) {
        const float *xr = x + r * per;
        float *yr = y + r * per;
        int64_t idx[PQ_MAX_DIMS] = {0};
        for (int64_t i = 0; i < per; i++) {
          int64_t off = 0;
          for (int d = 1; d < st->tr_rank; d++) off += idx[d] * st->tr_istride[d];
          yr[i] = xr[off];
          for (int d = st->tr_rank - 1; d >= 1; d--) {
            if (++idx[d] < st->tr_oshape[d]) break;
            idx[d] = 0;
          }
        }
      }
      break;
    }
    case K_SOFTMAX: run_softmax(st, x, y, total); break;
    case K_RESIZE: {
      const PqResizeParams *rp = &st->resize;
      int64_t planes = batch * c->values[st->in[0]].per_sample / (rp->in[0] * rp->in[1]), ohw = rp->out[0] * rp->out[1];
      for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t o = 0; o < ohw; o++) y[pl * ohw + o] = pq_resize_one(rp, x + pl * rp->in[0] * rp->in[1], o / rp->out[1], o % rp->out[1]);
      break;
    }
    case K_SLICE: {
      int64_t in_ps = c->values[st->in[0]].per_sample, out_ps = total / batch;
      for (int64_t n = 0; n < batch; n++)
        for (int64_t o = 0; o < out_ps; o++) y[n * out_ps + o] = x[n * in_ps + pq_slice_offset(&st->slice, o)];
      break;
    }
    case K_REDUCE: {
      int64_t in_ps = c->values[st->in[0]].per_sample, out_ps = total / batch;
      for (int64_t n = 0; n < batch; n++)
        for (int64_t o = 0; o < out_ps; o++) y[n * out_ps + o] = pq_reduce_one(st->red, &st->red_geo, x + n * in_ps, o);
      break;
    }
    case K_LAYERNORM: run_layer_norm(st, x, st->in[1] >= 0 ? PTR(st->in[1]) : NULL, st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y, total); break;
    case K_CONV2D:
      if (st->q_codes) run_packed_conv(c, st, x, st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y, batch);
      else run_conv(c, st, x, PTR(st->in[1]), st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y, batch);
      break;
    case K_CONVT: run_conv_transpose(c, st, x, PTR(st->in[1]), st->in[2] >= 0 ? PTR(st->in[2]) : NULL, y, batch, c->workspace); break;
    case K_MAXPOOL: run_pool(st, x, y, batch, 1); break;
    case K_AVGPOOL: run_pool(st, x, y, batch, 0); break;
    case K_GAP:
      for (int64_t nc = 0; nc < batch * st->c; nc++) {
        double acc = 0;
        for (int64_t i = 0; i < st->h; i++) acc += x[nc * st->h + i];
        y[nc] = (float)(acc / (double)st->h);
      }
      break;
    case K_BATCHNORM:
      for (int64_t n = 0; n < batch; n++)
        for (int64_t ch = 0; ch < st->c; ch++) {
          const float *xp = x + (n * st->c + ch) * st->h;
          float *yp = y + (n * st->c + ch) * st->h, sc = st->bn_scale[ch], sh = st->bn_shift[ch];
          for (int64_t i = 0; i < st->h; i++) yp[i] = xp[i] * sc + sh;
          if (st->fuse_relu) relu_inplace(yp, st->h);
        }
      break;
    case K_ALIAS:
    case K_NOP: break;
    }
  }
  double t1 = now_ms();
  if (c->pool && blas_threads != 1) openblas_set_num_threads(blas_threads);
  for (int i = 0; i < c->n_outputs; i++) {
    const Value *v = &c->values[c->output_values[i]];
    memcpy(outputs[i].data, c->slot_ptr[v->slot], sizeof(float) * (size_t)(v->per_sample * batch));
  }
#undef PTR
  c->last_compute_ms = t1 - t0;
  c->last_copy_out_ms = now_ms() - t1;
  return PQ_OK;
}

/* Inputs are read in place (no copy in); the outputs are copied out of the arena. */
static PqStatus cpu_last_run_timing(void *handle, PqRunTiming *out, PqPluginError *err) {
  (void)err;
  const Cpu *c = handle;
  out->compute_ms = c->last_compute_ms;
  out->copy_in_ms = 0;
  out->copy_out_ms = c->last_copy_out_ms;
  out->total_ms = c->last_compute_ms + c->last_copy_out_ms;
  return PQ_OK;
}

static PqStatus cpu_memory(void *handle, PqMemoryCounters *out, PqPluginError *err) {
  (void)err;
  Cpu *c = handle;
  int64_t bytes = c->weights_bytes + c->converted_bytes + (int64_t)(c->arena_floats + c->workspace_stride * (size_t)c->pool_threads) * 4;
  out->weights_bytes = c->weights_bytes;
  out->current_bytes = bytes;
  out->peak_bytes = bytes; /* everything is allocated once at prepare */
  out->device_free_bytes = -1;
  out->device_total_bytes = -1;
  return PQ_OK;
}

static const PqBackendVTable cpu_vtable = {
    .struct_size = sizeof(PqBackendVTable),
    .supports_op = cpu_supports_op,
    .prepare = cpu_prepare,
    .run = cpu_run,
    .release = cpu_release,
    .memory = cpu_memory,
    .last_run_timing = cpu_last_run_timing,
};

static const PqPluginDesc cpu_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_BACKEND,
    .name = "cpu",
    .version = "1.0.0",
    .description = "float32 inference on the CPU with OpenBLAS",
    .options_schema = "{\"simd\": {\"type\": \"boolean\", \"default\": true,"
                      " \"description\": \"vector kernels where the CPU has them (false: the portable C ones, as kernels=portable)\"},"
                      " \"kernels\": {\"type\": \"string\", \"enum\": [\"auto\", \"avx2\", \"portable\"], \"default\": \"auto\","
                      " \"description\": \"packed and CSR kernels: auto, the widest the CPU has (AVX-512 VNNI and AVX-512F; else AVX2 for packed"
                      " weights, portable C for CSR ones); avx2, those of a CPU without AVX-512; portable, plain C\"},"
                      " \"fuse_elementwise\": {\"type\": \"boolean\", \"default\": true,"
                      " \"description\": \"run each run of elementwise ops (activations, and binary ops with a model tensor) that read one"
                      " another as one pass, without buffers between them (false: an op at a time, as for a comparison)\"}}",
    .vtable = &cpu_vtable,
    .usable_here = NULL,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &cpu_desc; }
