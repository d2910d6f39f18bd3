/* ops.c — shape inference of the built-in op set (see docs/file-format.md for each op's contract). */
#include "pq-private.h"

#include <pquant/pq-activation.h>
#include <float.h>
#include <string.h>

#define FAIL(...)                                                                                                  \
  do {                                                                                                             \
    g_set_error(error, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID, __VA_ARGS__);                                       \
    return FALSE;                                                                                                  \
  } while (0)

/* the ops with their own rules below; the activations and the binary ops are named in pq-activation.h */
static const char *const known_ops[] = {"linear",  "matmul",    "relu",      "softmax",          "log_softmax", "conv2d",
                                        "maxpool2d", "avgpool2d", "global_avg_pool", "batch_norm", "flatten",     "reshape",
                                        "circulant_linear", "tt_linear", "sparse_linear", "transpose", "concat",  "pad2d",
                                        "layer_norm", "conv_transpose2d", "slice", "resize2d"};

static void set_nchw(int64_t *out, int *ndim, int64_t n, int64_t c, int64_t h, int64_t w) {
  *ndim = 4;
  out[0] = n, out[1] = c, out[2] = h, out[3] = w;
}

static gboolean get_pair(const PqNode *node, const char *key, int64_t def, int64_t out[2], GError **error) {
  size_t n;
  const int64_t *v = pq_node_get_ints(node, key, &n);
  if (!v) {
    out[0] = out[1] = def;
    return TRUE;
  }
  if (n != 2 || v[0] < 1 || v[1] < 1) FAIL("attribute \"%s\" must be two integers >= 1", key);
  out[0] = v[0];
  out[1] = v[1];
  return TRUE;
}

static gboolean get_pads(const PqNode *node, int64_t out[4], GError **error) {
  size_t n;
  const int64_t *v = pq_node_get_ints(node, "pads", &n);
  if (!v) {
    memset(out, 0, 4 * sizeof(int64_t));
    return TRUE;
  }
  if (n != 4) FAIL("attribute \"pads\" must be four integers (top, left, bottom, right)");
  for (int i = 0; i < 4; i++) {
    if (v[i] < 0) FAIL("attribute \"pads\" must not be negative");
    out[i] = v[i];
  }
  return TRUE;
}

/* Output size of a sliding window, or -1 if the window does not fit. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1, gboolean ceil_mode) {
  int64_t span = d * (k - 1) + 1, avail = in + p0 + p1 - span;
  if (avail < 0) return -1;
  int64_t o = (ceil_mode ? (avail + s - 1) / s : avail / s) + 1;
  if (ceil_mode && (o - 1) * s >= in + p0) o--; /* the last window must start inside the input or left pad */
  return o;
}

static void shape_str(GString *s, int nd, const int64_t *sh) {
  g_string_append_c(s, '[');
  for (int i = 0; i < nd; i++) g_string_append_printf(s, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, sh[i]);
  g_string_append_c(s, ']');
}

static char *shape_to_string(int nd, const int64_t *sh) {
  GString *s = g_string_new(NULL);
  shape_str(s, nd, sh);
  return g_string_free(s, FALSE);
}

int pq_op_is_builtin(const char *op) {
  for (size_t i = 0; i < PQ_N_ELEMENTS(known_ops); i++)
    if (!strcmp(op, known_ops[i])) return 1;
  return pq_activation_kind(op) != PQ_ACT_NONE || pq_binary_kind(op) != PQ_BIN_NONE || pq_reduce_kind(op) != PQ_RED_NONE;
}

/* A reduction's axes, checked: each a per-sample dimension, once; keepdims 0 or 1. */
static gboolean reduce_axes(const PqNode *node, int ndim, unsigned *axes, GError **error) {
  size_t n;
  const int64_t *v = pq_node_get_ints(node, "axes", &n);
  const char *op = pq_node_op(node);
  *axes = 0;
  if (!v || n == 0) FAIL("%s: \"axes\" is required (the dimensions to reduce; never the batch, dimension 0)", op);
  for (size_t i = 0; i < n; i++) {
    int64_t a = v[i] < 0 ? v[i] + ndim : v[i];
    if (a < 1 || a >= ndim)
      FAIL("%s: axis %" G_GINT64_FORMAT " outside 1 .. %d (dimension 0, the batch, is not reduced across)", op, v[i], ndim - 1);
    if (*axes & (1u << a)) FAIL("%s: axis %" G_GINT64_FORMAT " given twice", op, v[i]);
    *axes |= 1u << a;
  }
  int64_t keep = pq_node_get_int(node, "keepdims", 1);
  if (keep != 0 && keep != 1) FAIL("%s: keepdims must be 0 or 1, not %" G_GINT64_FORMAT, op, keep);
  return TRUE;
}

/* An op a loaded compressor declared: its kernel infers the shape. */
static gboolean plugin_infer(const PqOpKernel *k, const PqNode *node, int n_in, const int64_t *const *in, const int *nd,
                             int64_t out[][PQ_MAX_DIMS], int *ond, GError **error) {
  PqTensorView views[16], o;
  for (int j = 0; j < n_in; j++) pq_tensor_view_init(&views[j], PQ_DTYPE_F32, nd[j], in[j], 0, NULL);
  pq_tensor_view_init(&o, PQ_DTYPE_F32, 0, NULL, 0, NULL);
  PqPluginError perr = {sizeof perr, 0, {0}};
  if (k->infer(node, views, (size_t)n_in, &o, &perr) != PQ_OK)
    FAIL("%s", perr.message[0] ? perr.message : "the op's kernel refused these shapes");
  if (o.ndim < 1 || o.ndim > PQ_MAX_DIMS) FAIL("the op's kernel gave %d output dimensions", o.ndim);
  for (int d = 0; d < o.ndim; d++)
    if (o.shape[d] < 0) FAIL("the op's kernel gave a negative output dimension");
  ond[0] = o.ndim;
  memcpy(out[0], o.shape, sizeof(int64_t) * (size_t)o.ndim);
  return TRUE;
}

gboolean pq_op_infer(const PqNode *node, int n_in, const int64_t *const *in, const int *nd,
                     int64_t out[][PQ_MAX_DIMS], int *ond, GError **error) {
  const char *op = node->op;
  int n_out = (int)node->outputs->len;
  if (!pq_op_is_builtin(op)) {
    const PqOpKernel *k = pq_op_kernel_find(op);
    if (!k) FAIL("unknown op \"%s\" (neither built in nor declared by a loaded compressor plugin)", op);
    if (n_out != 1) FAIL("op \"%s\" has exactly one output, not %d", op, n_out);
    return plugin_infer(k, node, n_in, in, nd, out, ond, error);
  }
  if (n_out != 1) FAIL("op \"%s\" has exactly one output, not %d", op, n_out);
#define NEED_INPUTS(lo, hi)                                                                                        \
  if (n_in < (lo) || n_in > (hi)) FAIL("op \"%s\" takes %d to %d inputs, not %d", op, lo, hi, n_in);            \
  for (int i_ = 0; i_ < (lo); i_++)                                                                                \
    if (!in[i_]) FAIL("op \"%s\": input %d is required", op, i_);

  if (strcmp(op, "linear") == 0 || strcmp(op, "conv2d") == 0) { /* static int8 inputs (a packed weight's): a usable scale */
    double act = pq_node_get_float(node, "act_scale", 1.0);
    if (!(act >= FLT_MIN && act <= FLT_MAX)) FAIL("%s: act_scale %g is not a positive float32 number (the input's int8 scale)", op, act);
  }
  if (strcmp(op, "linear") == 0) {
    NEED_INPUTS(2, 3);
    if (nd[0] < 1 || nd[1] != 2) FAIL("linear: input must have >= 1 dimension and the weight exactly 2");
    if (in[0][nd[0] - 1] != in[1][1]) {
      g_autofree char *a = shape_to_string(nd[0], in[0]), *b = shape_to_string(nd[1], in[1]);
      FAIL("linear: input %s does not match weight %s (last dimension must equal weight columns)", a, b);
    }
    if (n_in == 3 && in[2] && !(nd[2] == 1 && in[2][0] == in[1][0]))
      FAIL("linear: bias must have shape [%" G_GINT64_FORMAT "]", in[1][0]);
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    out[0][nd[0] - 1] = in[1][0];
    return TRUE;
  }
  if (strcmp(op, "circulant_linear") == 0) {
    /* x [..., in] · (blocks [out_blocks, in_blocks, b], each the first column of a b×b circulant) + bias */
    NEED_INPUTS(2, 3);
    int64_t fin = pq_node_get_int(node, "in_features", -1), fout = pq_node_get_int(node, "out_features", -1);
    if (nd[1] != 3 || fin < 1 || fout < 1) FAIL("circulant_linear: blocks must be 3-D and in_features, out_features positive");
    int64_t b = in[1][2];
    if (b < 1 || in[1][1] != (fin + b - 1) / b || in[1][0] != (fout + b - 1) / b)
      FAIL("circulant_linear: blocks [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "] do not cover %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT,
           in[1][0], in[1][1], b, fout, fin);
    if (nd[0] < 1 || in[0][nd[0] - 1] != fin) FAIL("circulant_linear: the input's last dimension must be %" G_GINT64_FORMAT, fin);
    if (n_in == 3 && in[2] && !(nd[2] == 1 && in[2][0] == fout)) FAIL("circulant_linear: bias must have shape [%" G_GINT64_FORMAT "]", fout);
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    out[0][nd[0] - 1] = fout;
    return TRUE;
  }
  if (strcmp(op, "sparse_linear") == 0) {
    /* x [..., in] and a CSR weight: values [nnz], column indices [nnz] (U16 or I32), row starts [out + 1] */
    NEED_INPUTS(4, 5);
    int64_t fin = pq_node_get_int(node, "in_features", -1), fout = pq_node_get_int(node, "out_features", -1);
    if (fin < 1 || fout < 1) FAIL("sparse_linear: in_features and out_features must be positive");
    if (nd[1] != 1 || nd[2] != 1 || in[1][0] != in[2][0]) FAIL("sparse_linear: values and column indices must be 1-D of one length");
    if (nd[3] != 1 || in[3][0] != fout + 1) FAIL("sparse_linear: row starts must have shape [%" G_GINT64_FORMAT "]", fout + 1);
    if (nd[0] < 1 || in[0][nd[0] - 1] != fin) FAIL("sparse_linear: the input's last dimension must be %" G_GINT64_FORMAT, fin);
    if (n_in == 5 && in[4] && !(nd[4] == 1 && in[4][0] == fout)) FAIL("sparse_linear: bias must have shape [%" G_GINT64_FORMAT "]", fout);
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    out[0][nd[0] - 1] = fout;
    return TRUE;
  }
  if (strcmp(op, "tt_linear") == 0) {
    /* x [..., N], cores G_k [r_{k-1}, m_k, n_k, r_k] (k = 1..d, r_0 = r_d = 1), optional bias [M];
       M = prod m_k, N = prod n_k; attribute "cores" = d */
    int64_t d = pq_node_get_int(node, "cores", -1);
    if (d < 1 || d > 12) FAIL("tt_linear: attribute \"cores\" must be 1..12");
    if (n_in < 1 + d || n_in > 2 + d) FAIL("tt_linear: takes the input, %" G_GINT64_FORMAT " cores and an optional bias", d);
    int64_t mm = 1, nn = 1, r = 1;
    for (int64_t k = 1; k <= d; k++) {
      if (!in[k] || nd[k] != 4) FAIL("tt_linear: core %" G_GINT64_FORMAT " must be 4-D [r_prev, m, n, r_next]", k);
      if (in[k][0] != r) FAIL("tt_linear: core %" G_GINT64_FORMAT " has rank %" G_GINT64_FORMAT " in, the previous core %" G_GINT64_FORMAT " out", k, in[k][0], r);
      mm *= in[k][1];
      nn *= in[k][2];
      r = in[k][3];
    }
    if (r != 1) FAIL("tt_linear: the last core's output rank must be 1");
    if (nd[0] < 1 || in[0][nd[0] - 1] != nn) FAIL("tt_linear: the input's last dimension must be %" G_GINT64_FORMAT, nn);
    if (n_in == 2 + d && in[1 + d] && !(nd[1 + d] == 1 && in[1 + d][0] == mm)) FAIL("tt_linear: bias must have shape [%" G_GINT64_FORMAT "]", mm);
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    out[0][nd[0] - 1] = mm;
    return TRUE;
  }
  if (strcmp(op, "matmul") == 0) {
    NEED_INPUTS(2, 2);
    if (nd[0] < 2 || nd[1] < 2) FAIL("matmul: both inputs need >= 2 dimensions");
    int64_t k = in[0][nd[0] - 1], k2 = in[1][nd[1] - 2];
    if (k != k2) FAIL("matmul: inner dimensions differ (%" G_GINT64_FORMAT " vs %" G_GINT64_FORMAT ")", k, k2);
    if (nd[1] != 2) {
      if (nd[1] != nd[0] || memcmp(in[0], in[1], sizeof(int64_t) * (size_t)(nd[0] - 2)) != 0)
        FAIL("matmul: the second input must be 2-D or have the same leading dimensions as the first");
    }
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    out[0][nd[0] - 1] = in[1][nd[1] - 1];
    return TRUE;
  }
  if (pq_binary_kind(op) != PQ_BIN_NONE) { /* add, sub, mul, div */
    NEED_INPUTS(2, 2);
    int r = MAX(nd[0], nd[1]);
    for (int i = 0; i < r; i++) {
      int64_t a = i < r - nd[0] ? 1 : in[0][i - (r - nd[0])];
      int64_t b = i < r - nd[1] ? 1 : in[1][i - (r - nd[1])];
      if (a != b && a != 1 && b != 1) {
        g_autofree char *sa = shape_to_string(nd[0], in[0]), *sb = shape_to_string(nd[1], in[1]);
        FAIL("%s: shapes %s and %s do not broadcast", op, sa, sb);
      }
      out[0][i] = a == 1 ? b : a;
    }
    ond[0] = r;
    return TRUE;
  }
  if (strcmp(op, "pad2d") == 0) { /* [N, C, H, W] grown by constant borders */
    NEED_INPUTS(1, 1);
    size_t np;
    const int64_t *pads = pq_node_get_ints(node, "pads", &np);
    if (nd[0] != 4) FAIL("pad2d: the input must be [N, C, H, W]");
    if (!pads || np != 4 || pads[0] < 0 || pads[1] < 0 || pads[2] < 0 || pads[3] < 0)
      FAIL("pad2d: \"pads\" must be four counts >= 0 (top, left, bottom, right)");
    memcpy(out[0], in[0], sizeof(int64_t) * 4);
    out[0][2] += pads[0] + pads[2];
    out[0][3] += pads[1] + pads[3];
    ond[0] = 4;
    return TRUE;
  }
  if (strcmp(op, "concat") == 0) { /* joined along one axis other than the batch */
    NEED_INPUTS(1, 16);
    int64_t axis = pq_node_get_int(node, "axis", 1);
    if (axis < 0) axis += nd[0];
    if (axis < 1 || axis >= nd[0]) FAIL("concat: axis %" G_GINT64_FORMAT " must be one of dimensions 1..%d (not the batch)", pq_node_get_int(node, "axis", 1), nd[0] - 1);
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    for (int j = 1; j < n_in; j++) {
      if (!in[j] || nd[j] != nd[0]) FAIL("concat: input %d has %d dimensions, input 0 has %d", j, in[j] ? nd[j] : 0, nd[0]);
      for (int d = 0; d < nd[0]; d++) /* dimension 0 of 1 (a model tensor) is repeated over the batch */
        if (d != axis && in[j][d] != in[0][d] && !(d == 0 && (in[j][0] == 1 || in[0][0] == 1))) {
          g_autofree char *a = shape_to_string(nd[0], in[0]), *b = shape_to_string(nd[j], in[j]);
          FAIL("concat: %s and %s differ outside axis %" G_GINT64_FORMAT, a, b, axis);
        }
      out[0][axis] += in[j][axis];
      out[0][0] = MAX(out[0][0], in[j][0]);
    }
    ond[0] = nd[0];
    return TRUE;
  }
  if (strcmp(op, "resize2d") == 0) { /* planes [H, W] resampled to "sizes" */
    NEED_INPUTS(1, 1);
    if (nd[0] != 4) FAIL("resize2d: input must be 4-D (NCHW)");
    PqResizeParams rp;
    if (pq_resize_params(node, in[0][2], in[0][3], &rp) != 0)
      FAIL("resize2d: \"sizes\" must be two sizes, mode nearest, linear or cubic, coordinate_transformation_mode half_pixel, "
           "pytorch_half_pixel, align_corners, asymmetric or tf_half_pixel_for_nn, nearest_mode round_prefer_floor, round_prefer_ceil, "
           "floor or ceil");
    if (rp.out[0] < 1 || rp.out[1] < 1 || !(rp.scale[0] > 0) || !(rp.scale[1] > 0))
      FAIL("resize2d: sizes %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " and scales %g, %g must be positive", rp.out[0], rp.out[1], rp.scale[0],
           rp.scale[1]);
    set_nchw(out[0], &ond[0], in[0][0], in[0][1], rp.out[0], rp.out[1]);
    return TRUE;
  }
  if (strcmp(op, "slice") == 0) { /* a sub-block of each sample, with steps */
    NEED_INPUTS(1, 1);
    PqSliceGeometry geo;
    if (pq_slice_geometry(node, nd[0], in[0], &geo) != 0)
      FAIL("slice: \"starts\" and \"ends\" (and \"axes\", \"steps\" where given) must be lists of one length, each axis a dimension "
           "other than the batch (0) given once, each step not 0");
    ond[0] = nd[0];
    out[0][0] = in[0][0];
    for (int d = 1; d < nd[0]; d++) out[0][d] = geo.out[d];
    for (int d = 1; d < nd[0]; d++)
      if (out[0][d] == 0) FAIL("slice: dimension %d would be empty", d);
    return TRUE;
  }
  if (strcmp(op, "transpose") == 0) { /* dimensions permuted; the batch stays first */
    NEED_INPUTS(1, 1);
    size_t np;
    const int64_t *perm = pq_node_get_ints(node, "perm", &np);
    if (!perm || (int)np != nd[0]) FAIL("transpose: \"perm\" must list the %d dimensions", nd[0]);
    int seen = 0;
    for (int d = 0; d < nd[0]; d++) {
      if (perm[d] < 0 || perm[d] >= nd[0] || (seen >> perm[d]) & 1) FAIL("transpose: \"perm\" is not a permutation");
      seen |= 1 << perm[d];
      out[0][d] = in[0][perm[d]];
    }
    if (perm[0] != 0) FAIL("transpose: perm[0] must be 0 (the batch stays first)");
    ond[0] = nd[0];
    return TRUE;
  }
  if (pq_activation_kind(op) != PQ_ACT_NONE) { /* elementwise: the input's shape */
    NEED_INPUTS(1, 1);
    if (!strcmp(op, "clip") && pq_node_get_float(node, "min", -INFINITY) > pq_node_get_float(node, "max", INFINITY))
      FAIL("clip: min %g above max %g", pq_node_get_float(node, "min", -INFINITY), pq_node_get_float(node, "max", INFINITY));
    if (!strcmp(op, "gelu") && strcmp(pq_node_get_string(node, "approximate", "none"), "none") &&
        strcmp(pq_node_get_string(node, "approximate", "none"), "tanh"))
      FAIL("gelu: approximate must be \"none\" or \"tanh\", not \"%s\"", pq_node_get_string(node, "approximate", "none"));
    if (!strcmp(op, "celu") && pq_node_get_float(node, "alpha", 1.0) == 0.0) FAIL("celu: alpha must not be 0");
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    return TRUE;
  }
  if (strcmp(op, "relu") == 0 || strcmp(op, "softmax") == 0 || strcmp(op, "log_softmax") == 0) {
    NEED_INPUTS(1, 1);
    if (strcmp(op, "relu") != 0) {
      int64_t axis = pq_node_get_int(node, "axis", -1);
      if (nd[0] < 1 || axis < -nd[0] || axis >= nd[0]) FAIL("%s: axis %" G_GINT64_FORMAT " out of range", op, axis);
    }
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    return TRUE;
  }
  if (strcmp(op, "conv2d") == 0) {
    NEED_INPUTS(2, 3);
    if (nd[0] != 4 || nd[1] != 4) FAIL("conv2d: input and weight must be 4-D (NCHW, OIHW)");
    int64_t groups = pq_node_get_int(node, "groups", 1), st[2], dl[2], pads[4];
    if (!get_pair(node, "strides", 1, st, error) || !get_pair(node, "dilations", 1, dl, error) ||
        !get_pads(node, pads, error))
      return FALSE;
    int64_t c = in[0][1], oc = in[1][0];
    if (groups < 1 || c % groups || oc % groups || in[1][1] * groups != c)
      FAIL("conv2d: %" G_GINT64_FORMAT " input channels, weight %" G_GINT64_FORMAT " per group, groups %" G_GINT64_FORMAT
           " do not match", c, in[1][1], groups);
    if (n_in == 3 && in[2] && !(nd[2] == 1 && in[2][0] == oc)) FAIL("conv2d: bias must have shape [%" G_GINT64_FORMAT "]", oc);
    int64_t oh = window_out(in[0][2], in[1][2], st[0], dl[0], pads[0], pads[2], FALSE);
    int64_t ow = window_out(in[0][3], in[1][3], st[1], dl[1], pads[1], pads[3], FALSE);
    if (oh <= 0 || ow <= 0) FAIL("conv2d: kernel larger than the padded input");
    set_nchw(out[0], &ond[0], in[0][0], oc, oh, ow);
    return TRUE;
  }
  if (strcmp(op, "conv_transpose2d") == 0) { /* x [N, C, H, W], W [C, O/groups, kh, kw]: the gradient of a conv2d */
    NEED_INPUTS(2, 3);
    if (nd[0] != 4 || nd[1] != 4) FAIL("conv_transpose2d: input and weight must be 4-D (NCHW, and [C, O/groups, kh, kw])");
    int64_t groups = pq_node_get_int(node, "groups", 1), st[2], dl[2], pads[4], opad[2] = {0, 0};
    if (!get_pair(node, "strides", 1, st, error) || !get_pair(node, "dilations", 1, dl, error) || !get_pads(node, pads, error))
      return FALSE;
    size_t n_op;
    const int64_t *ov = pq_node_get_ints(node, "output_padding", &n_op);
    if (ov && n_op != 2) FAIL("conv_transpose2d: output_padding must be two integers");
    for (int i = 0; ov && i < 2; i++) {
      if (ov[i] < 0 || ov[i] >= MAX(st[i], dl[i]))
        FAIL("conv_transpose2d: output_padding %" G_GINT64_FORMAT " must be below its stride or dilation", ov[i]);
      opad[i] = ov[i];
    }
    int64_t c = in[0][1];
    if (groups < 1 || c % groups || in[1][0] != c)
      FAIL("conv_transpose2d: %" G_GINT64_FORMAT " input channels, a weight for %" G_GINT64_FORMAT ", groups %" G_GINT64_FORMAT " do not match", c,
           in[1][0], groups);
    int64_t oc = in[1][1] * groups;
    if (n_in == 3 && in[2] && !(nd[2] == 1 && in[2][0] == oc)) FAIL("conv_transpose2d: bias must have shape [%" G_GINT64_FORMAT "]", oc);
    int64_t oh = (in[0][2] - 1) * st[0] - pads[0] - pads[2] + dl[0] * (in[1][2] - 1) + opad[0] + 1;
    int64_t ow = (in[0][3] - 1) * st[1] - pads[1] - pads[3] + dl[1] * (in[1][3] - 1) + opad[1] + 1;
    if (oh <= 0 || ow <= 0) FAIL("conv_transpose2d: the pads remove the whole output");
    set_nchw(out[0], &ond[0], in[0][0], oc, oh, ow);
    return TRUE;
  }
  if (strcmp(op, "maxpool2d") == 0 || strcmp(op, "avgpool2d") == 0) {
    NEED_INPUTS(1, 1);
    if (nd[0] != 4) FAIL("%s: input must be 4-D (NCHW)", op);
    int64_t k[2], st[2], dl[2], pads[4];
    if (!pq_node_has_attr(node, "kernel")) FAIL("%s: attribute \"kernel\" is required", op);
    if (!get_pair(node, "kernel", 1, k, error) || !get_pair(node, "strides", 0, st, error) ||
        !get_pair(node, "dilations", 1, dl, error) || !get_pads(node, pads, error))
      return FALSE;
    if (st[0] == 0) {
      st[0] = k[0];
      st[1] = k[1];
    }
    gboolean ceil_mode = pq_node_get_int(node, "ceil_mode", 0) != 0;
    int64_t oh = window_out(in[0][2], k[0], st[0], dl[0], pads[0], pads[2], ceil_mode);
    int64_t ow = window_out(in[0][3], k[1], st[1], dl[1], pads[1], pads[3], ceil_mode);
    if (oh <= 0 || ow <= 0) FAIL("%s: window larger than the padded input", op);
    set_nchw(out[0], &ond[0], in[0][0], in[0][1], oh, ow);
    return TRUE;
  }
  if (strcmp(op, "global_avg_pool") == 0) {
    NEED_INPUTS(1, 1);
    if (nd[0] < 3) FAIL("global_avg_pool: input must have >= 3 dimensions (N, C, spatial...)");
    ond[0] = nd[0];
    out[0][0] = in[0][0];
    out[0][1] = in[0][1];
    for (int i = 2; i < nd[0]; i++) out[0][i] = 1;
    return TRUE;
  }
  if (pq_reduce_kind(op) != PQ_RED_NONE) { /* the input's shape, reduced dimensions 1 (keepdims) or gone */
    NEED_INPUTS(1, 1);
    unsigned axes;
    if (!reduce_axes(node, nd[0], &axes, error)) return FALSE;
    int keep = (int)pq_node_get_int(node, "keepdims", 1), o = 0;
    for (int d = 0; d < nd[0]; d++) {
      if (!(axes & (1u << d))) out[0][o++] = in[0][d];
      else if (keep) out[0][o++] = 1;
    }
    ond[0] = o;
    return TRUE;
  }
  if (strcmp(op, "layer_norm") == 0) {
    NEED_INPUTS(1, 3);
    int64_t axis = pq_node_get_int(node, "axis", -1), inner = 1;
    if (axis < 0) axis += nd[0];
    if (axis < 1 || axis >= nd[0])
      FAIL("layer_norm: axis %" G_GINT64_FORMAT " outside 1 .. %d (dimension 0, the batch, is not normalised across)",
           pq_node_get_int(node, "axis", -1), nd[0] - 1);
    for (int d = (int)axis; d < nd[0]; d++) inner *= in[0][d];
    for (int i = 1; i < n_in; i++) {
      if (!in[i]) continue;
      int64_t numel = 1;
      for (int d = 0; d < nd[i]; d++) numel *= in[i][d];
      if (numel != inner)
        FAIL("layer_norm: its %s holds %" G_GINT64_FORMAT " values, the normalised dimensions %" G_GINT64_FORMAT, i == 1 ? "scale" : "bias",
             numel, inner);
    }
    if (!(pq_node_get_float(node, "epsilon", 1e-5) >= 0)) FAIL("layer_norm: epsilon %g is negative", pq_node_get_float(node, "epsilon", 1e-5));
    const char *which = pq_node_get_string(node, "output", "y");
    if (strcmp(which, "y") && strcmp(which, "mean") && strcmp(which, "inv_std_dev"))
      FAIL("layer_norm: output must be \"y\", \"mean\" or \"inv_std_dev\", not \"%s\"", which);
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    if (strcmp(which, "y")) /* a statistic: one per row, the normalised dimensions kept as 1 */
      for (int d = (int)axis; d < nd[0]; d++) out[0][d] = 1;
    return TRUE;
  }
  if (strcmp(op, "batch_norm") == 0) {
    NEED_INPUTS(5, 5);
    if (nd[0] < 2) FAIL("batch_norm: input must have >= 2 dimensions");
    for (int i = 1; i < 5; i++)
      if (nd[i] != 1 || in[i][0] != in[0][1])
        FAIL("batch_norm: scale, bias, mean and var must have shape [%" G_GINT64_FORMAT "]", in[0][1]);
    ond[0] = nd[0];
    memcpy(out[0], in[0], sizeof(int64_t) * (size_t)nd[0]);
    return TRUE;
  }
  if (strcmp(op, "flatten") == 0) {
    NEED_INPUTS(1, 1);
    int64_t axis = pq_node_get_int(node, "axis", 1);
    if (axis < 0) axis += nd[0];
    if (axis < 0 || axis > nd[0]) FAIL("flatten: axis out of range");
    int64_t a = 1, b = 1;
    for (int i = 0; i < nd[0]; i++) {
      if (i < axis) a *= in[0][i];
      else b *= in[0][i];
    }
    ond[0] = 2;
    out[0][0] = a;
    out[0][1] = b;
    return TRUE;
  }
  if (strcmp(op, "reshape") == 0) {
    NEED_INPUTS(1, 1);
    size_t n;
    const int64_t *s = pq_node_get_ints(node, "shape", &n);
    if (!s || n == 0 || n > PQ_MAX_DIMS) FAIL("reshape: attribute \"shape\" must list 1 to %d dimensions", PQ_MAX_DIMS);
    int64_t total = 1, known_prod = 1;
    int infer = -1;
    for (int i = 0; i < nd[0]; i++) total *= in[0][i];
    for (size_t i = 0; i < n; i++) {
      int64_t d = s[i];
      if (d == 0) {
        if ((int)i >= nd[0]) FAIL("reshape: shape[%zu] = 0 copies a dimension the input does not have", i);
        d = in[0][i];
      }
      if (d == -1) {
        if (infer >= 0) FAIL("reshape: more than one -1 in \"shape\"");
        infer = (int)i;
        continue;
      }
      if (d < 0) FAIL("reshape: shape[%zu] = %" G_GINT64_FORMAT " is negative", i, d);
      out[0][i] = d;
      known_prod *= d;
    }
    if (infer >= 0) {
      if (known_prod == 0 || total % known_prod) FAIL("reshape: cannot infer the -1 dimension");
      out[0][infer] = total / known_prod;
    } else if (known_prod != total) {
      g_autofree char *a = shape_to_string(nd[0], in[0]);
      FAIL("reshape: %s has %" G_GINT64_FORMAT " elements, \"shape\" asks for %" G_GINT64_FORMAT, a, total, known_prod);
    }
    ond[0] = (int)n;
    return TRUE;
  }
  FAIL("unknown op \"%s\"", op);
}

int pq_sparse_check(const PqNode *node, const PqTensor *values, const PqTensor *cols, const PqTensor *rows, PqPluginError *error) {
  const char *name = pq_node_name(node);
  int64_t k = pq_node_get_int(node, "in_features", 0), n = pq_node_get_int(node, "out_features", 0);
  if (pq_tensor_dtype(rows) != PQ_DTYPE_I32 || (pq_tensor_dtype(cols) != PQ_DTYPE_U16 && pq_tensor_dtype(cols) != PQ_DTYPE_I32)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "sparse_linear '%s': row starts must be I32 and column indices U16 or I32", name);
    return -1;
  }
  int64_t nnz = pq_tensor_numel(values);
  if (pq_tensor_numel(rows) != n + 1 || pq_tensor_numel(cols) != nnz) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "sparse_linear '%s': %lld row starts and %lld column indices for %lld values and %lld rows",
                        name, (long long)pq_tensor_numel(rows), (long long)pq_tensor_numel(cols), (long long)nnz, (long long)n);
    return -1;
  }
  const int32_t *rp = pq_tensor_data(rows);
  if (rp[0] != 0 || rp[n] != nnz) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "sparse_linear '%s': row starts must run from 0 to %lld", name, (long long)nnz);
    return -1;
  }
  for (int64_t o = 0; o < n; o++)
    if (rp[o + 1] < rp[o]) {
      pq_plugin_error_set(error, PQ_ERR_INVALID, "sparse_linear '%s': row starts decrease at row %lld", name, (long long)o);
      return -1;
    }
  for (int64_t q = 0; q < nnz; q++) {
    int64_t col = pq_tensor_dtype(cols) == PQ_DTYPE_U16 ? ((const uint16_t *)pq_tensor_data(cols))[q] : ((const int32_t *)pq_tensor_data(cols))[q];
    if (col < 0 || col >= k) {
      pq_plugin_error_set(error, PQ_ERR_INVALID, "sparse_linear '%s': column index %lld out of range", name, (long long)col);
      return -1;
    }
  }
  return 0;
}
