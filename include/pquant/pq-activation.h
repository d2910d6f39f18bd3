/* pq-activation.h — pquant's elementwise ops: the activations (sigmoid, tanh, leaky_relu, elu, selu, clip,
 * hard_sigmoid, hard_swish, softplus, gelu, and the unary math functions abs … shrink) with their two parameters, and the broadcasting binary ops (add,
 * sub, mul, div, pow, minimum, maximum, and prelu: x with its slopes): names and one formula each, written once for every backend — plain C for CPU code,
 * host-and-device for CUDA code (include it from a .cu file and pq_activation() / pq_binary() run in
 * kernels). relu stays its own op. See docs/file-format.md for each op's contract. */
#ifndef PQ_ACTIVATION_H
#define PQ_ACTIVATION_H

#include <math.h>
#include <string.h>

#include "pq-core.h"

#ifdef __CUDACC__
#define PQ_ACT_FN __host__ __device__ static inline
#define PQ_ACT_INLINE_FN PQ_ACT_FN
#else
#define PQ_ACT_FN static inline
/* (always inlined: a loop that calls it with a constant kind keeps that case alone, and vectorizes it) */
#define PQ_ACT_INLINE_FN static inline __attribute__((always_inline))
#endif

typedef enum {
  PQ_ACT_NONE = 0,
  PQ_ACT_SIGMOID = 1,
  PQ_ACT_TANH = 2,
  PQ_ACT_LEAKY_RELU = 3,   /* a: alpha (0.01) */
  PQ_ACT_ELU = 4,          /* a: alpha (1) */
  PQ_ACT_SELU = 5,         /* a: alpha (1.67326324), b: gamma (1.05070102) */
  PQ_ACT_CLIP = 6,         /* a: min (-inf), b: max (+inf) */
  PQ_ACT_HARD_SIGMOID = 7, /* a: alpha (0.2), b: beta (0.5) */
  PQ_ACT_HARD_SWISH = 8,
  PQ_ACT_SOFTPLUS = 9,
  PQ_ACT_GELU = 10,        /* a: 0 the exact (erf) form, 1 the tanh approximation */
  PQ_ACT_ABS = 11,
  PQ_ACT_NEG = 12,
  PQ_ACT_EXP = 13,
  PQ_ACT_LOG = 14,
  PQ_ACT_SQRT = 15,
  PQ_ACT_RECIPROCAL = 16,
  PQ_ACT_ERF = 17,
  PQ_ACT_FLOOR = 18,
  PQ_ACT_CEIL = 19,
  PQ_ACT_ROUND = 20,       /* to nearest, ties to even */
  PQ_ACT_SIGN = 21,
  PQ_ACT_SIN = 22,
  PQ_ACT_COS = 23,
  PQ_ACT_TAN = 24,
  PQ_ACT_ASIN = 25,
  PQ_ACT_ACOS = 26,
  PQ_ACT_ATAN = 27,
  PQ_ACT_SINH = 28,
  PQ_ACT_COSH = 29,
  PQ_ACT_ASINH = 30,
  PQ_ACT_ACOSH = 31,
  PQ_ACT_ATANH = 32,
  PQ_ACT_SOFTSIGN = 33,
  PQ_ACT_THRESHOLDED_RELU = 34, /* a: alpha (1) */
  PQ_ACT_CELU = 35,        /* a: alpha (1), not 0 */
  PQ_ACT_SHRINK = 36,      /* a: lambd (0.5), b: bias (0) */
  PQ_ACT_LAST = PQ_ACT_SHRINK
} PqActivation;

/* The index of `op` in a table of n names, or -1. */
static inline int pq_op_index(const char *const *names, int n, const char *op) {
  for (int i = 0; op && i < n; i++)
    if (names[i][0] && !strcmp(op, names[i])) return i;
  return -1;
}

/* The activation an op name stands for, or PQ_ACT_NONE. */
static inline PqActivation pq_activation_kind(const char *op) {
  static const char *const names[] = {"",     "sigmoid", "tanh",       "leaky_relu", "elu",   "selu",     "clip",  "hard_sigmoid",
                                      "hard_swish", "softplus", "gelu",   "abs",   "neg",   "exp",      "log",   "sqrt",
                                      "reciprocal", "erf",   "floor",      "ceil",       "round", "sign",     "sin",   "cos",
                                      "tan",   "asin",     "acos",       "atan",       "sinh",  "cosh",     "asinh", "acosh",
                                      "atanh", "softsign", "thresholded_relu", "celu", "shrink"};
  int i = pq_op_index(names, (int)(sizeof names / sizeof names[0]), op);
  return i > 0 ? (PqActivation)i : PQ_ACT_NONE;
}

/* A node's two parameters, with the defaults above for the attributes it does not set. */
static inline void pq_activation_params(const PqNode *node, PqActivation kind, float *a, float *b) {
  *a = 0.0f;
  *b = 0.0f;
  switch (kind) {
  case PQ_ACT_LEAKY_RELU: *a = (float)pq_node_get_float(node, "alpha", 0.01); break;
  case PQ_ACT_ELU: *a = (float)pq_node_get_float(node, "alpha", 1.0); break;
  case PQ_ACT_SELU:
    *a = (float)pq_node_get_float(node, "alpha", 1.6732632423543772);
    *b = (float)pq_node_get_float(node, "gamma", 1.0507009873554805);
    break;
  case PQ_ACT_CLIP:
    *a = (float)pq_node_get_float(node, "min", -INFINITY);
    *b = (float)pq_node_get_float(node, "max", INFINITY);
    break;
  case PQ_ACT_HARD_SIGMOID:
    *a = (float)pq_node_get_float(node, "alpha", 0.2);
    *b = (float)pq_node_get_float(node, "beta", 0.5);
    break;
  case PQ_ACT_GELU: *a = !strcmp(pq_node_get_string(node, "approximate", "none"), "tanh") ? 1.0f : 0.0f; break;
  case PQ_ACT_THRESHOLDED_RELU:
  case PQ_ACT_CELU: *a = (float)pq_node_get_float(node, "alpha", 1.0); break;
  case PQ_ACT_SHRINK:
    *a = (float)pq_node_get_float(node, "lambd", 0.5);
    *b = (float)pq_node_get_float(node, "bias", 0.0);
    break;
  default: break;
  }
}

/* x held to [lo, hi]: fminf(fmaxf(x, lo), hi) (a NaN x gives lo; lo > hi gives hi), written as compares, which
 * compilers turn into vector min and max where they would call libm for fminf and fmaxf. */
PQ_ACT_INLINE_FN float pq_clampf(float x, float lo, float hi) {
  x = x > lo ? x : lo;
  return x < hi ? x : hi;
}

/* The function itself, in float32. */
PQ_ACT_INLINE_FN float pq_activation(int kind, float x, float a, float b) {
  switch (kind) {
  case PQ_ACT_SIGMOID: return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
  case PQ_ACT_TANH: return tanhf(x);
  case PQ_ACT_LEAKY_RELU: return x >= 0.0f ? x : a * x;
  case PQ_ACT_ELU: return x >= 0.0f ? x : a * expm1f(x);
  case PQ_ACT_SELU: return b * (x > 0.0f ? x : a * expm1f(x));
  case PQ_ACT_CLIP: return pq_clampf(x, a, b);
  case PQ_ACT_HARD_SIGMOID: return pq_clampf(a * x + b, 0.0f, 1.0f);
  case PQ_ACT_HARD_SWISH: return x * pq_clampf(x / 6.0f + 0.5f, 0.0f, 1.0f);
  case PQ_ACT_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x));
  case PQ_ACT_GELU:
    if (a != 0.0f) return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * 0.70710678118f));
  case PQ_ACT_ABS: return fabsf(x);
  case PQ_ACT_NEG: return -x;
  case PQ_ACT_EXP: return expf(x);
  case PQ_ACT_LOG: return logf(x);
  case PQ_ACT_SQRT: return sqrtf(x);
  case PQ_ACT_RECIPROCAL: return 1.0f / x;
  case PQ_ACT_ERF: return erff(x);
  case PQ_ACT_FLOOR: return floorf(x);
  case PQ_ACT_CEIL: return ceilf(x);
  case PQ_ACT_ROUND: return rintf(x);
  case PQ_ACT_SIGN: return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x; /* 0 stays 0, NaN stays NaN */
  case PQ_ACT_SIN: return sinf(x);
  case PQ_ACT_COS: return cosf(x);
  case PQ_ACT_TAN: return tanf(x);
  case PQ_ACT_ASIN: return asinf(x);
  case PQ_ACT_ACOS: return acosf(x);
  case PQ_ACT_ATAN: return atanf(x);
  case PQ_ACT_SINH: return sinhf(x);
  case PQ_ACT_COSH: return coshf(x);
  case PQ_ACT_ASINH: return asinhf(x);
  case PQ_ACT_ACOSH: return acoshf(x);
  case PQ_ACT_ATANH: return atanhf(x);
  case PQ_ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
  case PQ_ACT_THRESHOLDED_RELU: return x > a ? x : 0.0f;
  case PQ_ACT_CELU: return fmaxf(x, 0.0f) + fminf(0.0f, a * expm1f(x / a));
  case PQ_ACT_SHRINK: return x < -a ? x + b : x > a ? x - b : 0.0f;
  default: return x;
  }
}

/* Its derivative at x, for training through it (pq_finetune). */
PQ_ACT_FN float pq_activation_grad(int kind, float x, float a, float b) {
  switch (kind) {
  case PQ_ACT_SIGMOID: {
    float s = pq_activation(PQ_ACT_SIGMOID, x, a, b);
    return s * (1.0f - s);
  }
  case PQ_ACT_TANH: {
    float t = tanhf(x);
    return 1.0f - t * t;
  }
  case PQ_ACT_LEAKY_RELU: return x >= 0.0f ? 1.0f : a;
  case PQ_ACT_ELU: return x >= 0.0f ? 1.0f : a * expf(x);
  case PQ_ACT_SELU: return b * (x > 0.0f ? 1.0f : a * expf(x));
  case PQ_ACT_CLIP: return x > a && x < b ? 1.0f : 0.0f;
  case PQ_ACT_HARD_SIGMOID: return a * x + b > 0.0f && a * x + b < 1.0f ? a : 0.0f;
  case PQ_ACT_HARD_SWISH: return x <= -3.0f ? 0.0f : x >= 3.0f ? 1.0f : (2.0f * x + 3.0f) / 6.0f;
  case PQ_ACT_SOFTPLUS: return pq_activation(PQ_ACT_SIGMOID, x, a, b);
  case PQ_ACT_GELU:
    if (a != 0.0f) {
      const float k = 0.7978845608f;
      float t = tanhf(k * (x + 0.044715f * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    }
    return 0.5f * (1.0f + erff(x * 0.70710678118f)) + x * expf(-0.5f * x * x) * 0.3989422804f;
  case PQ_ACT_ABS: return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f;
  case PQ_ACT_NEG: return -1.0f;
  case PQ_ACT_EXP: return expf(x);
  case PQ_ACT_LOG: return 1.0f / x;
  case PQ_ACT_SQRT: return 0.5f / sqrtf(x);
  case PQ_ACT_RECIPROCAL: return -1.0f / (x * x);
  case PQ_ACT_ERF: return 1.1283791671f * expf(-x * x); /* 2/√π e^(−x²) */
  case PQ_ACT_FLOOR:
  case PQ_ACT_CEIL:
  case PQ_ACT_ROUND:
  case PQ_ACT_SIGN: return 0.0f; /* steps: flat wherever defined */
  case PQ_ACT_SIN: return cosf(x);
  case PQ_ACT_COS: return -sinf(x);
  case PQ_ACT_TAN: {
    float t = tanf(x);
    return 1.0f + t * t;
  }
  case PQ_ACT_ASIN: return 1.0f / sqrtf(1.0f - x * x);
  case PQ_ACT_ACOS: return -1.0f / sqrtf(1.0f - x * x);
  case PQ_ACT_ATAN: return 1.0f / (1.0f + x * x);
  case PQ_ACT_SINH: return coshf(x);
  case PQ_ACT_COSH: return sinhf(x);
  case PQ_ACT_ASINH: return 1.0f / sqrtf(x * x + 1.0f);
  case PQ_ACT_ACOSH: return 1.0f / sqrtf(x * x - 1.0f);
  case PQ_ACT_ATANH: return 1.0f / (1.0f - x * x);
  case PQ_ACT_SOFTSIGN: {
    float d = 1.0f + fabsf(x);
    return 1.0f / (d * d);
  }
  case PQ_ACT_THRESHOLDED_RELU: return x > a ? 1.0f : 0.0f;
  case PQ_ACT_CELU: return x > 0.0f ? 1.0f : expf(x / a);
  case PQ_ACT_SHRINK: return x < -a || x > a ? 1.0f : 0.0f;
  default: return 1.0f;
  }
}

/* The broadcasting binary ops (NumPy rules; see docs/file-format.md). */
typedef enum {
  PQ_BIN_NONE = -1,
  PQ_BIN_ADD = 0,
  PQ_BIN_SUB = 1,
  PQ_BIN_MUL = 2,
  PQ_BIN_DIV = 3,
  PQ_BIN_PRELU = 4,
  PQ_BIN_POW = 5,
  PQ_BIN_MINIMUM = 6,
  PQ_BIN_MAXIMUM = 7
} PqBinary;

static inline PqBinary pq_binary_kind(const char *op) {
  static const char *const names[] = {"add", "sub", "mul", "div", "prelu", "pow", "minimum", "maximum"};
  return (PqBinary)pq_op_index(names, 8, op); /* -1: PQ_BIN_NONE */
}

PQ_ACT_INLINE_FN float pq_binary(int kind, float a, float b) {
  switch (kind) {
  case PQ_BIN_SUB: return a - b;
  case PQ_BIN_MUL: return a * b;
  case PQ_BIN_DIV: return a / b;
  case PQ_BIN_PRELU: return a >= 0.0f ? a : a * b; /* b: the slope */
  case PQ_BIN_POW: return powf(a, b);
  case PQ_BIN_MINIMUM: return a < b || a != a ? a : b; /* a NaN wins, as in NumPy */
  case PQ_BIN_MAXIMUM: return a > b || a != a ? a : b;
  default: return a + b;
  }
}

/* The derivatives of a binary op's result by its first and by its second operand (finetune trains through them;
 * at a tie of minimum or maximum the first operand takes the gradient, as it takes the value). */
PQ_ACT_FN float pq_binary_da(int kind, float a, float b) {
  switch (kind) {
  case PQ_BIN_MUL: return b;
  case PQ_BIN_DIV: return 1.0f / b;
  case PQ_BIN_PRELU: return a >= 0.0f ? 1.0f : b;
  case PQ_BIN_POW: return b * powf(a, b - 1.0f);
  case PQ_BIN_MINIMUM: return a <= b || a != a ? 1.0f : 0.0f;
  case PQ_BIN_MAXIMUM: return a >= b || a != a ? 1.0f : 0.0f;
  default: return 1.0f; /* add, sub */
  }
}

PQ_ACT_FN float pq_binary_db(int kind, float a, float b) {
  switch (kind) {
  case PQ_BIN_SUB: return -1.0f;
  case PQ_BIN_MUL: return a;
  case PQ_BIN_DIV: return -a / (b * b);
  case PQ_BIN_PRELU: return a >= 0.0f ? 0.0f : a;
  case PQ_BIN_POW: return a > 0.0f ? powf(a, b) * logf(a) : 0.0f;
  case PQ_BIN_MINIMUM: return a <= b || a != a ? 0.0f : 1.0f;
  case PQ_BIN_MAXIMUM: return a >= b || a != a ? 0.0f : 1.0f;
  default: return 1.0f; /* add */
  }
}

/* The reductions over some dimensions (reduce_sum, reduce_mean, … ; see docs/file-format.md): a start value, a
 * step per element, and a final value from the count of elements; log_sum_exp takes a shift (the largest
 * element, found by a pass of reduce_max first) so that e^x cannot overflow. */
typedef enum {
  PQ_RED_NONE = -1,
  PQ_RED_SUM = 0,
  PQ_RED_MEAN = 1,
  PQ_RED_MAX = 2,
  PQ_RED_MIN = 3,
  PQ_RED_PROD = 4,
  PQ_RED_L1 = 5,
  PQ_RED_L2 = 6,
  PQ_RED_SUM_SQUARE = 7,
  PQ_RED_LOG_SUM = 8,
  PQ_RED_LOG_SUM_EXP = 9,
  PQ_RED_ARGMAX = 10, /* the index of the largest (the first of ties; a NaN's, as NumPy), as a float */
  PQ_RED_ARGMIN = 11
} PqReduce;

static inline PqReduce pq_reduce_kind(const char *op) {
  static const char *const names[] = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
                                      "reduce_l1", "reduce_l2", "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp", "argmax", "argmin"};
  return (PqReduce)pq_op_index(names, 12, op); /* -1: PQ_RED_NONE */
}

PQ_ACT_FN float pq_reduce_start(int kind) {
  return kind == PQ_RED_MAX ? -INFINITY : kind == PQ_RED_MIN ? INFINITY : kind == PQ_RED_PROD ? 1.0f : 0.0f;
}

PQ_ACT_FN float pq_reduce_step(int kind, float acc, float x, float shift) {
  switch (kind) {
  case PQ_RED_MAX: return x > acc || x != x ? x : acc; /* a NaN wins, as in NumPy */
  case PQ_RED_MIN: return x < acc || x != x ? x : acc;
  case PQ_RED_PROD: return acc * x;
  case PQ_RED_L1: return acc + fabsf(x);
  case PQ_RED_L2:
  case PQ_RED_SUM_SQUARE: return acc + x * x;
  case PQ_RED_LOG_SUM_EXP: return acc + expf(x - shift);
  default: return acc + x; /* sum, mean, log_sum */
  }
}

PQ_ACT_FN float pq_reduce_final(int kind, float acc, int64_t count, float shift) {
  switch (kind) {
  case PQ_RED_MEAN: return acc / (float)count;
  case PQ_RED_L2: return sqrtf(acc);
  case PQ_RED_LOG_SUM: return logf(acc);
  case PQ_RED_LOG_SUM_EXP: return logf(acc) + shift;
  default: return acc;
  }
}

/* Where a reduction reads: the per-sample dimensions it keeps and those it reduces, each with its size and
 * its input stride. Output element o (of a sample) starts at pq_reduce_base(o) and reads pq_reduce_offset(r)
 * past it for r < the reduced count. */
typedef struct {
  int n_kept, n_red;
  int64_t kept[PQ_MAX_DIMS], kept_stride[PQ_MAX_DIMS], red[PQ_MAX_DIMS], red_stride[PQ_MAX_DIMS];
  int64_t red_count;
} PqReduceGeometry;

/* Index i of a row-major walk over n dimensions of `sizes`, as an offset through `strides`. */
PQ_ACT_FN int64_t pq_walk_offset(int n, const int64_t *sizes, const int64_t *strides, int64_t i) {
  if (n == 1) return i * strides[0]; /* (i < sizes[0]: no division) */
  int64_t off = 0;
  for (int d = n - 1; d >= 0; d--) {
    off += (i % sizes[d]) * strides[d];
    i /= sizes[d];
  }
  return off;
}

PQ_ACT_FN int64_t pq_reduce_base(const PqReduceGeometry *g, int64_t o) { return pq_walk_offset(g->n_kept, g->kept, g->kept_stride, o); }

PQ_ACT_FN int64_t pq_reduce_offset(const PqReduceGeometry *g, int64_t r) { return pq_walk_offset(g->n_red, g->red, g->red_stride, r); }

/* One output value: the reduction of the elements of x (one sample's) that output element o gathers. */
PQ_ACT_FN float pq_reduce_one(int kind, const PqReduceGeometry *g, const float *x, int64_t o) {
  const float *xb = x + pq_reduce_base(g, o);
  if (kind == PQ_RED_ARGMAX || kind == PQ_RED_ARGMIN) { /* r: the index in row-major order over the reduced dimensions */
    int64_t best = 0;
    float bv = xb[pq_reduce_offset(g, 0)];
    for (int64_t r = 1; r < g->red_count && bv == bv; r++) {
      const float v = xb[pq_reduce_offset(g, r)];
      if ((kind == PQ_RED_ARGMAX ? v > bv : v < bv) || v != v) best = r, bv = v;
    }
    return (float)best;
  }
  float shift = 0.0f;
  if (kind == PQ_RED_LOG_SUM_EXP) {
    shift = pq_reduce_start(PQ_RED_MAX);
    for (int64_t r = 0; r < g->red_count; r++) shift = pq_reduce_step(PQ_RED_MAX, shift, xb[pq_reduce_offset(g, r)], 0.0f);
    if (!(shift > -INFINITY && shift < INFINITY)) shift = shift != shift ? shift : 0.0f; /* all −∞ (or +∞): no shift */
  }
  float acc = pq_reduce_start(kind);
  for (int64_t r = 0; r < g->red_count; r++) acc = pq_reduce_step(kind, acc, xb[pq_reduce_offset(g, r)], shift);
  return pq_reduce_final(kind, acc, g->red_count, shift);
}

/* A reduction node's "axes" as a bit per dimension (negative ones counted from the end), for a graph already
 * checked (pq_plan_new() refuses bad axes). */
static inline unsigned pq_reduce_axes_of(const PqNode *node, int ndim) {
  size_t n = 0;
  const int64_t *v = pq_node_get_ints(node, "axes", &n);
  unsigned bits = 0;
  for (size_t i = 0; v && i < n; i++) bits |= 1u << (v[i] < 0 ? v[i] + ndim : v[i]);
  return bits;
}

/* The geometry of reducing `axes` (a bit per dimension, never the batch) of a value of shape `shape`. */
static inline void pq_reduce_geometry(int ndim, const int64_t *shape, unsigned axes, PqReduceGeometry *g) {
  int64_t stride = 1;
  g->n_kept = g->n_red = 0;
  g->red_count = 1;
  int64_t st[PQ_MAX_DIMS];
  for (int d = ndim - 1; d >= 1; d--) st[d] = stride, stride *= shape[d];
  for (int d = 1; d < ndim; d++) {
    /* a dimension next to one of its kind joins it (row-major order is kept; a whole sample reduced is one run) */
    const int red = (axes & (1u << d)) != 0, joins = d > 1 && red == ((axes & (1u << (d - 1))) != 0);
    int64_t *sizes = red ? g->red : g->kept, *strides = red ? g->red_stride : g->kept_stride;
    int *n = red ? &g->n_red : &g->n_kept;
    if (joins) {
      sizes[*n - 1] *= shape[d];
      strides[*n - 1] = st[d];
    } else {
      sizes[*n] = shape[d];
      strides[(*n)++] = st[d];
    }
    if (red) g->red_count *= shape[d];
  }
}

/* slice: which elements of a sample each output element is. For each dimension d ≥ 1 the output has out[d]
 * elements, element i reading input index start + i·step (ONNX's Slice: negative starts and ends count from the
 * end, then both are clamped to the dimension; a negative step walks backwards). `base` and `inc[d]` fold
 * the starts, steps and the input's strides: output element o of a sample reads input element
 * pq_slice_offset(g, o) of it. */
typedef struct {
  int rank;
  int64_t base, out[PQ_MAX_DIMS], inc[PQ_MAX_DIMS];
} PqSliceGeometry;

PQ_ACT_FN int64_t pq_slice_offset(const PqSliceGeometry *g, int64_t o) {
  return g->base + pq_walk_offset(g->rank - 1, g->out + 1, g->inc + 1, o); /* dimension 0, the batch, is walked by the caller */
}

/* The geometry of a slice node (attributes starts, ends, axes, steps: see docs/file-format.md) over a value of
 * `shape`; 0, or -1 when an attribute is malformed (an axis out of range or twice, a step of 0, the lists of
 * unequal lengths): pq_plan_new() refuses such nodes with the reason. */
static inline int pq_slice_geometry(const PqNode *node, int ndim, const int64_t *shape, PqSliceGeometry *g) {
  size_t ns = 0, ne = 0, na = 0, nst = 0;
  const int64_t *st = pq_node_get_ints(node, "starts", &ns), *en = pq_node_get_ints(node, "ends", &ne);
  const int64_t *ax = pq_node_get_ints(node, "axes", &na), *sp = pq_node_get_ints(node, "steps", &nst);
  if (!st || !en || ns != ne || (ax && na != ns) || (sp && nst != ns) || ndim > PQ_MAX_DIMS) return -1;
  int64_t start[PQ_MAX_DIMS], step[PQ_MAX_DIMS], stride = 1;
  unsigned seen = 0;
  g->rank = ndim;
  for (int d = 0; d < ndim; d++) start[d] = 0, step[d] = 1, g->out[d] = shape[d];
  for (size_t i = 0; i < ns; i++) {
    int64_t a = ax ? ax[i] : (int64_t)i;
    if (a < 0) a += ndim;
    if (a < 1 || a >= ndim || (seen & (1u << a))) return -1;
    seen |= 1u << a;
    int64_t dim = shape[a], s = st[i], e = en[i], k = sp ? sp[i] : 1;
    if (k == 0) return -1;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (k > 0) {
      s = s < 0 ? 0 : s > dim ? dim : s;
      e = e < 0 ? 0 : e > dim ? dim : e;
      g->out[a] = e > s ? (e - s + k - 1) / k : 0;
    } else {
      s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
      e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
      g->out[a] = s > e ? (s - e - k - 1) / -k : 0;
    }
    start[a] = s, step[a] = k;
  }
  g->base = 0;
  for (int d = ndim - 1; d >= 1; d--) {
    g->base += start[d] * stride;
    g->inc[d] = step[d] * stride;
    stride *= shape[d];
  }
  g->inc[0] = 0;
  return 0;
}

/* resize2d (see docs/file-format.md): each output position of a plane [H, W] maps back to a source coordinate
 * per axis (coordinate transformation), and samples the input there: the nearest value (four rounding
 * rules), linearly between two, or cubically between four (Keys' kernel with parameter a; outside the plane
 * the edge value, or with exclude_outside the taps beyond it dropped and the rest renormalised). */
typedef enum { PQ_RESIZE_NEAREST = 0, PQ_RESIZE_LINEAR = 1, PQ_RESIZE_CUBIC = 2 } PqResizeMode;
typedef enum {
  PQ_COORD_HALF_PIXEL = 0,
  PQ_COORD_PYTORCH_HALF_PIXEL = 1,
  PQ_COORD_ALIGN_CORNERS = 2,
  PQ_COORD_ASYMMETRIC = 3,
  PQ_COORD_TF_HALF_PIXEL_FOR_NN = 4
} PqResizeCoord;
typedef enum { PQ_NEAREST_ROUND_PREFER_FLOOR = 0, PQ_NEAREST_ROUND_PREFER_CEIL = 1, PQ_NEAREST_FLOOR = 2, PQ_NEAREST_CEIL = 3 } PqResizeNearest;

typedef struct {
  int mode, coord, nearest, exclude_outside;
  double cubic_a;
  int64_t in[2], out[2]; /* H, W of a plane before and after */
  double scale[2];       /* output over input size per axis, as the model gives it */
} PqResizeParams;

/* A resize2d node's parameters for an input plane of in_h × in_w; 0, or -1 for an unknown mode name. */
static inline int pq_resize_params(const PqNode *node, int64_t in_h, int64_t in_w, PqResizeParams *p) {
  static const char *const modes[] = {"nearest", "linear", "cubic"};
  static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"};
  static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  size_t n = 0;
  const int64_t *sz = pq_node_get_ints(node, "sizes", &n);
  p->mode = pq_op_index(modes, 3, pq_node_get_string(node, "mode", "nearest"));
  p->coord = pq_op_index(coords, 5, pq_node_get_string(node, "coordinate_transformation_mode", "half_pixel"));
  p->nearest = pq_op_index(nearest, 4, pq_node_get_string(node, "nearest_mode", "round_prefer_floor"));
  p->exclude_outside = (int)pq_node_get_int(node, "exclude_outside", 0);
  p->cubic_a = pq_node_get_float(node, "cubic_coeff_a", -0.75);
  p->in[0] = in_h, p->in[1] = in_w;
  if (!sz || n != 2 || p->mode < 0 || p->coord < 0 || p->nearest < 0) return -1;
  p->out[0] = sz[0], p->out[1] = sz[1];
  p->scale[0] = pq_node_get_float(node, "scale_h", (double)sz[0] / (double)in_h);
  p->scale[1] = pq_node_get_float(node, "scale_w", (double)sz[1] / (double)in_w);
  return 0;
}

/* The source coordinate of output index x along `axis`. The resized length in the formulas is input length ×
 * scale, unrounded (ONNX's rule: with scales 0.6 a length 4 resizes to 2 values, placed as if it were 2.4). */
PQ_ACT_FN double pq_resize_source(const PqResizeParams *p, int axis, int64_t x) {
  double s = p->scale[axis], xr = (double)x, len = s * (double)p->in[axis];
  switch (p->coord) {
  case PQ_COORD_PYTORCH_HALF_PIXEL: return len > 1.0 ? (xr + 0.5) / s - 0.5 : 0.0;
  case PQ_COORD_ALIGN_CORNERS: return len > 1.0 ? xr * (double)(p->in[axis] - 1) / (len - 1.0) : 0.0;
  case PQ_COORD_ASYMMETRIC: return xr / s;
  case PQ_COORD_TF_HALF_PIXEL_FOR_NN: return (xr + 0.5) / s;
  default: return (xr + 0.5) / s - 0.5;
  }
}

PQ_ACT_FN double pq_cubic_weight(double d, double a) {
  d = fabs(d);
  if (d <= 1.0) return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
  if (d < 2.0) return ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a;
  return 0.0;
}

/* The input indices (inside the plane) and weights output index x samples along `axis`; their count. */
PQ_ACT_FN int pq_resize_taps(const PqResizeParams *p, int axis, int64_t x, int64_t idx[4], double w[4]) {
  double c = pq_resize_source(p, axis, x), f = floor(c), t = c - f;
  int64_t in = p->in[axis], base = (int64_t)f;
  if (p->mode == PQ_RESIZE_NEAREST) {
    int64_t i = p->nearest == PQ_NEAREST_FLOOR ? base
              : p->nearest == PQ_NEAREST_CEIL  ? (int64_t)ceil(c)
              : p->nearest == PQ_NEAREST_ROUND_PREFER_CEIL ? (t >= 0.5 ? base + 1 : base)
                                                           : (t > 0.5 ? base + 1 : base);
    idx[0] = i < 0 ? 0 : i >= in ? in - 1 : i;
    w[0] = 1.0;
    return 1;
  }
  int n = p->mode == PQ_RESIZE_LINEAR ? 2 : 4, first = p->mode == PQ_RESIZE_LINEAR ? 0 : -1;
  double sum = 0.0;
  for (int k = 0; k < n; k++) {
    int64_t i = base + first + k;
    w[k] = p->mode == PQ_RESIZE_LINEAR ? (k ? t : 1.0 - t) : pq_cubic_weight(t - (double)(first + k), p->cubic_a);
    if (p->exclude_outside && (i < 0 || i >= in)) w[k] = 0.0;
    sum += w[k];
    idx[k] = i < 0 ? 0 : i >= in ? in - 1 : i; /* outside: the edge value */
  }
  if (p->exclude_outside && sum != 0.0)
    for (int k = 0; k < n; k++) w[k] /= sum;
  return n;
}

/* Output value (oy, ox) of one plane [in_h, in_w]. */
PQ_ACT_FN float pq_resize_one(const PqResizeParams *p, const float *plane, int64_t oy, int64_t ox) {
  int64_t iy[4], ix[4];
  double wy[4], wx[4], acc = 0.0;
  int ny = pq_resize_taps(p, 0, oy, iy, wy), nx = pq_resize_taps(p, 1, ox, ix, wx);
  for (int a = 0; a < ny; a++)
    for (int b = 0; b < nx; b++) acc += wy[a] * wx[b] * (double)plane[iy[a] * p->in[1] + ix[b]];
  return (float)acc;
}

#endif
