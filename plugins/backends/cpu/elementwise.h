/* elementwise.h — the CPU backend's elementwise loops: an activation, a relu, or a binary op with a model tensor
 * (a scalar, or its values over one sample) applied to a run of floats. Each op has its own loop, with the op's
 * kind a constant in it, so the compiler inlines pq-activation.h's formula and vectorizes what it can; the
 * same loops are built twice, plainly and for AVX2 (rounding, floor and ceil then take vroundps). Both give the
 * values pq_activation() and pq_binary() give: no formula is rewritten here, and no FMA is allowed.
 *
 * A chain of such ops, each reading the one before it alone (the QuantizeLinear/DequantizeLinear pairs of a
 * QDQ model: div, round, add, clip, sub, mul), runs as one pass over blocks small enough to stay in the L1
 * cache, with no buffer for the values between the ops (fuse_elementwise in cpu.c). */
#ifndef PQ_CPU_ELEMENTWISE_H
#define PQ_CPU_ELEMENTWISE_H

#include <pquant/pq-activation.h>

#include <stdint.h>

enum { EW_ACT, EW_RELU, EW_BIN };

typedef struct EwOp {
  int kind;         /* EW_ACT, EW_RELU, EW_BIN */
  int op;           /* EW_ACT: PqActivation; EW_BIN: PqBinary */
  float a, b;       /* EW_ACT: its two parameters; EW_BIN without v: the tensor's one value in a */
  const float *v;   /* EW_BIN: the tensor's value at each position of a sample (NULL: a scalar, in a) */
  int tensor_first; /* EW_BIN: tensor op x (as ONNX writes 1 − x), else x op tensor */
  float *owned;     /* v where it is a copy made for the op (a tensor broadcast over a sample), else NULL */
} EwOp;

/* The values a chain works on at once: 16 KB, in the L1 cache with its input. */
#define EW_BLOCK 4096

#define EW_ACT_LOOP(K)                                                                                             \
  case K:                                                                                                          \
    for (int64_t i = 0; i < n; i++) y[i] = pq_activation(K, x[i], a, b);                                           \
    break
#define EW_BIN_LOOP(K)                                                                                             \
  case K:                                                                                                          \
    if (!v && first)                                                                                               \
      for (int64_t i = 0; i < n; i++) y[i] = pq_binary(K, s, x[i]);                                                \
    else if (!v)                                                                                                   \
      for (int64_t i = 0; i < n; i++) y[i] = pq_binary(K, x[i], s);                                                \
    else if (first)                                                                                                \
      for (int64_t i = 0; i < n; i++) y[i] = pq_binary(K, v[i], x[i]);                                            \
    else                                                                                                           \
      for (int64_t i = 0; i < n; i++) y[i] = pq_binary(K, x[i], v[i]);                                             \
    break

/* y[i] = op(x[i]) for i < n, the body of both forms below; v: the tensor's values for these positions (EW_BIN with
 * a vector). */
#define EW_BODY                                                                                                    \
  const float a = o->a, b = o->b, s = o->a;                                                                        \
  const int first = o->tensor_first;                                                                               \
  if (o->kind == EW_RELU) {                                                                                        \
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;                                              \
  } else if (o->kind == EW_BIN) {                                                                                  \
    switch (o->op) {                                                                                               \
      EW_BIN_LOOP(PQ_BIN_ADD);                                                                                     \
      EW_BIN_LOOP(PQ_BIN_SUB);                                                                                     \
      EW_BIN_LOOP(PQ_BIN_MUL);                                                                                     \
      EW_BIN_LOOP(PQ_BIN_DIV);                                                                                     \
      EW_BIN_LOOP(PQ_BIN_PRELU);                                                                                   \
      EW_BIN_LOOP(PQ_BIN_MINIMUM);                                                                                 \
      EW_BIN_LOOP(PQ_BIN_MAXIMUM);                                                                                 \
    default:                                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                                            \
        float t = v ? v[i] : s;                                                                                    \
        y[i] = first ? pq_binary(o->op, t, x[i]) : pq_binary(o->op, x[i], t);                                      \
      }                                                                                                            \
    }                                                                                                              \
  } else {                                                                                                         \
    switch (o->op) { /* those a loop of compares and arithmetic vectorizes; the rest call libm a value anyway */   \
      EW_ACT_LOOP(PQ_ACT_LEAKY_RELU);                                                                              \
      EW_ACT_LOOP(PQ_ACT_CLIP);                                                                                    \
      EW_ACT_LOOP(PQ_ACT_HARD_SIGMOID);                                                                            \
      EW_ACT_LOOP(PQ_ACT_HARD_SWISH);                                                                              \
      EW_ACT_LOOP(PQ_ACT_ABS);                                                                                     \
      EW_ACT_LOOP(PQ_ACT_NEG);                                                                                     \
      EW_ACT_LOOP(PQ_ACT_RECIPROCAL);                                                                              \
      EW_ACT_LOOP(PQ_ACT_FLOOR);                                                                                   \
      EW_ACT_LOOP(PQ_ACT_CEIL);                                                                                    \
      EW_ACT_LOOP(PQ_ACT_ROUND);                                                                                   \
      EW_ACT_LOOP(PQ_ACT_SIGN);                                                                                    \
      EW_ACT_LOOP(PQ_ACT_SOFTSIGN);                                                                                \
      EW_ACT_LOOP(PQ_ACT_THRESHOLDED_RELU);                                                                        \
      EW_ACT_LOOP(PQ_ACT_SHRINK);                                                                                  \
    default:                                                                                                       \
      for (int64_t i = 0; i < n; i++) y[i] = pq_activation(o->op, x[i], a, b);                                     \
    }                                                                                                              \
  }

/* from x into y (apart) */
static inline __attribute__((always_inline)) void ew_body_to(const EwOp *o, const float *restrict x, float *restrict y, int64_t n,
                                                             const float *restrict v) {
  EW_BODY
}

/* in place (a value then reads and writes one address: vectorized without a check of overlap) */
static inline __attribute__((always_inline)) void ew_body_in(const EwOp *o, float *y, int64_t n, const float *restrict v) {
  const float *x = y;
  EW_BODY
}

static void ew_apply_plain(const EwOp *o, const float *x, float *y, int64_t n, const float *v) {
  if (x == y) ew_body_in(o, y, n, v);
  else ew_body_to(o, x, y, n, v);
}

#if defined(__x86_64__)
/* (AVX2 without FMA: a·x + b stays a product then a sum, as in the plain build) */
__attribute__((target("avx2"))) static void ew_apply_avx2(const EwOp *o, const float *x, float *y, int64_t n, const float *v) {
  if (x == y) ew_body_in(o, y, n, v);
  else ew_body_to(o, x, y, n, v);
}
#endif

/* One op over n values, x apart from y or x == y; `avx2`: the AVX2 build of the loops */
static void ew_apply(const EwOp *o, const float *x, float *y, int64_t n, const float *v, int avx2) {
#if defined(__x86_64__)
  if (avx2) {
    ew_apply_avx2(o, x, y, n, v);
    return;
  }
#endif
  (void)avx2;
  ew_apply_plain(o, x, y, n, v);
}

/* A chain of n_ops ops over the values from..to of a batch (per_sample values a sample): block by block, each
 * block read from x once, then worked on in y. A tensor's values repeat every sample. */
static void ew_chain(const EwOp *ops, int n_ops, int64_t per_sample, const float *x, float *y, int64_t from, int64_t to, int avx2) {
  for (int64_t i = from; i < to;) {
    const int64_t pos = i % per_sample;
    int64_t len = to - i < EW_BLOCK ? to - i : EW_BLOCK;
    if (len > per_sample - pos) len = per_sample - pos; /* (a block within one sample: the tensors' values are in a row) */
    for (int k = 0; k < n_ops; k++) ew_apply(&ops[k], k == 0 ? x + i : y + i, y + i, len, ops[k].v ? ops[k].v + pos : NULL, avx2);
    i += len;
  }
}

#endif
