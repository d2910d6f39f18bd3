/* onnx.c — ONNX models into pquant's graph: initializers become tensors, supported nodes become pquant ops
 * (Gemm, MatMul, Add, Relu, Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, Flatten,
 * Reshape, Softmax, Constant, Identity, Dropout). The protobuf code is generated at build time from the
 * onnx.proto Debian's libonnx-dev installs. */
#include "../pq-private.h"

#include <pquant/pq-activation.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "onnx.pb-c.h"

#define FAIL(...)                                                                                                  \
  do {                                                                                                             \
    g_autofree char *m_ = g_strdup_printf(__VA_ARGS__);                                                            \
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: %s", path, m_);                              \
    goto fail;                                                                                                     \
  } while (0)

static const char *dtype_label(int t) {
  static const char *names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
                                "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  return t >= 0 && t < (int)G_N_ELEMENTS(names) ? names[t] : "unknown";
}

/* The bytes of a tensor stored outside the model file (ONNX external data): "location" relative to the
 * model's folder and inside it, "offset" and "length" in bytes (length: to the end of the file when absent).
 * Only that range is read. NULL with a message naming the tensor and the key. */
static guint8 *read_external(const Onnx__TensorProto *tp, const char *name, const char *path, gsize *len, GError **error) {
  const char *location = NULL, *offset_s = NULL, *length_s = NULL;
  guint8 *buf = NULL;
  g_autofree char *dir = g_path_get_dirname(path), *file = NULL;
  int fd = -1;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[i];
    if (!e->key || !e->value) continue;
    if (!strcmp(e->key, "location")) location = e->value;
    else if (!strcmp(e->key, "offset")) offset_s = e->value;
    else if (!strcmp(e->key, "length")) length_s = e->value;
  }
  if (!location || !location[0]) FAIL("tensor '%s': external data without a \"location\"", name);
  if (g_path_is_absolute(location)) FAIL("tensor '%s': external data location '%s' must be relative to the model's folder", name, location);
  {
    g_auto(GStrv) parts = g_strsplit(location, "/", -1);
    for (char **c = parts; *c; c++)
      if (!strcmp(*c, "..")) FAIL("tensor '%s': external data location '%s' leaves the model's folder", name, location);
  }
  guint64 offset = 0, length = 0;
  if (offset_s && !g_ascii_string_to_unsigned(offset_s, 10, 0, G_MAXINT64, &offset, NULL))
    FAIL("tensor '%s': external data offset '%s' is not a byte count", name, offset_s);
  if (length_s && !g_ascii_string_to_unsigned(length_s, 10, 0, G_MAXINT64, &length, NULL))
    FAIL("tensor '%s': external data length '%s' is not a byte count", name, length_s);
  file = g_build_filename(dir, location, NULL);
  fd = open(file, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) FAIL("tensor '%s': cannot open its external data '%s': %s", name, file, g_strerror(errno));
  if (!S_ISREG(st.st_mode)) FAIL("tensor '%s': external data '%s' is not a file", name, file);
  if (offset > (guint64)st.st_size) FAIL("tensor '%s': external data offset %" G_GUINT64_FORMAT " lies beyond the end of '%s' (%lld bytes)", name, offset, file, (long long)st.st_size);
  if (!length_s) length = (guint64)st.st_size - offset;
  if (length > (guint64)st.st_size - offset)
    FAIL("tensor '%s': external data offset %" G_GUINT64_FORMAT " + length %" G_GUINT64_FORMAT " lies beyond the end of '%s' (%lld bytes)", name, offset,
         length, file, (long long)st.st_size);
  buf = g_try_malloc(length ? length : 1);
  if (!buf) FAIL("tensor '%s': cannot allocate %" G_GUINT64_FORMAT " bytes for its external data", name, length);
  for (guint64 done = 0; done < length;) {
    ssize_t r = pread(fd, buf + done, length - done, (off_t)(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) FAIL("tensor '%s': cannot read its external data '%s': %s", name, file, r < 0 ? g_strerror(errno) : "the file is shorter than it was");
    done += (guint64)r;
  }
  close(fd);
  *len = length;
  return buf;
fail:
  if (fd >= 0) close(fd);
  g_free(buf);
  return NULL;
}

/* A TensorProto as a pquant tensor (DOUBLE narrowed to F32); NULL with a message naming the tensor. */
static PqTensor *tensor_from_proto(const Onnx__TensorProto *tp, const char *name, const char *path, GError **error) {
  int64_t shape[PQ_MAX_DIMS];
  PqTensor *t = NULL;
  g_autofree guint8 *ext = NULL;
  if (tp->n_dims > PQ_MAX_DIMS) FAIL("tensor '%s': %zu dimensions, at most %d", name, tp->n_dims, PQ_MAX_DIMS);
  for (size_t i = 0; i < tp->n_dims; i++) {
    if (tp->dims[i] < 0) FAIL("tensor '%s': dimension %zu is negative (%" G_GINT64_FORMAT ")", name, i, tp->dims[i]);
    shape[i] = tp->dims[i];
  }
  /* the stored bytes: raw_data, or the same bytes from the external file */
  const uint8_t *raw = tp->has_raw_data ? tp->raw_data.data : NULL;
  size_t raw_len = tp->has_raw_data ? tp->raw_data.len : 0;
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    gsize n_ext = 0;
    if (!(ext = read_external(tp, name, path, &n_ext, error))) return NULL;
    raw = ext;
    raw_len = n_ext;
  }
  PqDType dt;
  size_t src_size;
  switch (tp->data_type) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: dt = PQ_DTYPE_F32; src_size = 4; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: dt = PQ_DTYPE_F32; src_size = 8; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: dt = PQ_DTYPE_F16; src_size = 2; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: dt = PQ_DTYPE_BF16; src_size = 2; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: dt = PQ_DTYPE_I8; src_size = 1; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: dt = PQ_DTYPE_U8; src_size = 1; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: dt = PQ_DTYPE_I32; src_size = 4; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: dt = PQ_DTYPE_I64; src_size = 8; break;
  default: FAIL("tensor '%s': data type %s is not supported", name, dtype_label(tp->data_type));
  }
  int64_t n;
  if (!pq_shape_numel((int)tp->n_dims, shape, &n)) FAIL("tensor '%s': its shape overflows", name);
  /* the stored data must match the shape before anything is allocated for it */
  if (raw) {
    if ((uint64_t)raw_len != (uint64_t)n * src_size)
      FAIL("tensor '%s': %s holds %zu bytes, its shape and type need %" G_GINT64_FORMAT, name, ext ? "the external data" : "raw_data", raw_len,
           n * (int64_t)src_size);
  } else {
    size_t have = dt == PQ_DTYPE_F32 && src_size == 4 ? tp->n_float_data
                  : src_size == 8 && dt == PQ_DTYPE_F32 ? tp->n_double_data
                  : dt == PQ_DTYPE_I64 ? tp->n_int64_data
                                       : tp->n_int32_data;
    if ((int64_t)have != n) FAIL("tensor '%s': %zu values stored, its shape needs %" G_GINT64_FORMAT, name, have, n);
  }
  t = pq_tensor_new(name, dt, (int)tp->n_dims, shape);
  if (!t) FAIL("tensor '%s': cannot allocate it", name);
  void *dst = pq_tensor_mutable_data(t);
  if (raw) {
    if (tp->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
      for (int64_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, raw + 8 * i, 8);
        ((float *)dst)[i] = (float)d;
      }
    else if (n > 0) memcpy(dst, raw, (size_t)n * src_size);
  } else {
    for (int64_t i = 0; i < n; i++) {
      switch (dt) {
      case PQ_DTYPE_F32: ((float *)dst)[i] = src_size == 8 ? (float)tp->double_data[i] : tp->float_data[i]; break;
      case PQ_DTYPE_I64: ((int64_t *)dst)[i] = tp->int64_data[i]; break;
      case PQ_DTYPE_I32: ((int32_t *)dst)[i] = tp->int32_data[i]; break;
      case PQ_DTYPE_F16:
      case PQ_DTYPE_BF16: ((uint16_t *)dst)[i] = (uint16_t)tp->int32_data[i]; break;
      case PQ_DTYPE_I8: ((int8_t *)dst)[i] = (int8_t)tp->int32_data[i]; break;
      case PQ_DTYPE_U8: ((uint8_t *)dst)[i] = (uint8_t)tp->int32_data[i]; break;
      default: break;
      }
    }
  }
  return t;
fail:
  if (t) pq_tensor_unref(t);
  return NULL;
}

/* protobuf-c recurses without a depth limit: a file nesting subgraphs deeply overflows the stack. The first
 * unpack runs in a child process; a crash there is an error here. */
static gboolean unpack_survives(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *desc) {
  pid_t pid = fork();
  if (pid < 0) return TRUE; /* cannot check: go on */
  if (pid == 0) {
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    _exit(m ? 0 : 2);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return !WIFSIGNALED(status);
}

static uint8_t *read_file(const char *path, size_t *len, GError **error) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: cannot open: %s", path, g_strerror(errno));
    return NULL;
  }
  gboolean regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  gboolean dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
  close(fd);
  if (!regular) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: %s", path, dir ? "is a folder, not a model file" : "is not a regular file");
    return NULL;
  }
  char *data = NULL;
  gsize n = 0;
  g_autoptr(GError) ferr = NULL;
  if (!g_file_get_contents(path, &data, &n, &ferr)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "%s: %s", path, ferr->message);
    return NULL;
  }
  *len = n;
  return (uint8_t *)data;
}

PqTensor *pq_onnx_load_tensor(const char *path, GError **error) {
  size_t len;
  g_autofree uint8_t *data = read_file(path, &len, error);
  if (!data) return NULL;
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
  if (!tp) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "%s: not an ONNX TensorProto", path);
    return NULL;
  }
  PqTensor *t = tensor_from_proto(tp, tp->name && tp->name[0] ? tp->name : "tensor", path, error);
  onnx__tensor_proto__free_unpacked(tp, NULL);
  return t;
}

/* ---- nodes ---------------------------------------------------------------------------------------- */

typedef struct {
  PqModel *m;
  const char *path;
  int64_t opset;
  int counter;
  GHashTable *transposed; /* a MatMul's constant B → the name of its transposed copy (a linear layer's weight) */
  GPtrArray *dq;          /* DqFold: the grids of the INT8/UINT8 constants DequantizeLinear folded, for pack_dq_weights */
} Ctx;

/* A DequantizeLinear folded at load: its values' count, and its ns scales and zero points (codes signed or not) */
typedef struct {
  int64_t numel, ns;
  float *s, *z;
  gboolean is_signed;
} DqFold;

static void dq_fold_free(gpointer p) {
  DqFold *f = p;
  g_free(f->s);
  g_free(f->z);
  g_free(f);
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
  return NULL;
}
static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t def) {
  const Onnx__AttributeProto *a = attr(n, name);
  return a && a->has_i ? a->i : def;
}
static double attr_f(const Onnx__NodeProto *n, const char *name, double def) {
  const Onnx__AttributeProto *a = attr(n, name);
  return a && a->has_f ? a->f : def;
}
static const char *attr_s(const Onnx__NodeProto *n, const char *name, char *buf, size_t len) {
  const Onnx__AttributeProto *a = attr(n, name);
  if (!a || !a->has_s) return NULL;
  g_strlcpy(buf, (const char *)a->s.data, MIN(len, a->s.len + 1));
  return buf;
}

/* The shape of a value, from the graph built so far (the graph planned with it as an output). */
static gboolean shape_of(Ctx *c, const char *value, int64_t *shape, int *nd, GError **error) {
  if (pq_model_tensor(c->m, value)) {
    PqTensor *t = pq_model_tensor(c->m, value);
    *nd = pq_tensor_ndim(t);
    memcpy(shape, pq_tensor_shape(t), sizeof(int64_t) * (size_t)*nd);
    return TRUE;
  }
  const PqGraph *g = pq_model_const_graph(c->m);
  int in = pq_graph_input_index(g, value);
  if (in >= 0) {
    const int64_t *s = pq_graph_input_shape(g, (size_t)in, nd);
    memcpy(shape, s, sizeof(int64_t) * (size_t)*nd);
    shape[0] = 1;
    return TRUE;
  }
  g_autoptr(PqModel) probe = pq_model_copy(c->m);
  pq_graph_add_output(pq_model_graph(probe), value);
  g_autoptr(PqPlan) plan = pq_model_plan(probe, 1, error);
  if (!plan) return FALSE;
  const int64_t *s = pq_plan_value_shape(plan, pq_plan_value_index(plan, value), nd);
  memcpy(shape, s, sizeof(int64_t) * (size_t)*nd);
  return TRUE;
}

static char *fresh(Ctx *c, const char *base) { return g_strdup_printf("%s__pq%d", base, c->counter++); }

static void set_tensor(Ctx *c, PqTensor *t) {
  pq_model_set_tensor(c->m, t);
  pq_tensor_unref(t);
}

/* Shape arithmetic folded at load (PyTorch's x.view(x.size(0), -1) exports as Shape, Gather, Unsqueeze, Concat,
 * Reshape): the batch, unknown until run time, is this value inside such constants; a Reshape takes it in its
 * first place as "copy the batch" and refuses it anywhere else. */
#define BATCH_MARK INT64_MIN

static PqTensor *int64_const(const char *name, int nd, const int64_t *shape, const int64_t *v) {
  PqTensor *t = pq_tensor_new(name, PQ_DTYPE_I64, nd, shape);
  if (t && pq_tensor_numel(t)) memcpy(pq_tensor_mutable_data(t), v, sizeof(int64_t) * (size_t)pq_tensor_numel(t));
  return t;
}

/* An INT64 constant (initializer, Constant or folded) of at most 64 values, or NULL. */
/* The pquant reduction an ONNX Reduce* op is (its name without "Reduce"), or NULL. */
static const char *reduce_op(const char *suffix) {
  static const char *const map[][2] = {{"Sum", "sum"},   {"Mean", "mean"}, {"Max", "max"},           {"Min", "min"},
                                       {"Prod", "prod"}, {"L1", "l1"},     {"L2", "l2"},             {"SumSquare", "sum_square"},
                                       {"LogSum", "log_sum"}, {"LogSumExp", "log_sum_exp"}};
  for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
    if (!strcmp(suffix, map[i][0])) return map[i][1];
  return NULL;
}

static PqTensor *small_int64(Ctx *c, const char *name) {
  PqTensor *t = name && name[0] ? pq_model_tensor(c->m, name) : NULL;
  return t && pq_tensor_dtype(t) == PQ_DTYPE_I64 && pq_tensor_ndim(t) <= 1 && pq_tensor_numel(t) <= 64 ? t : NULL;
}

/* Sliding-window attributes (Conv, MaxPool, AveragePool) onto a pquant node; auto_pad resolved from shapes. */
/* A conv's or pool's strides, dilations and pads (from auto_pad where set) onto `node`, 2-D: with dims = 1 (a 1-D
 * window over x [N, C, L], run as a 2-D one over [N, C, 1, L]) ONNX's values go to the second dimension and the
 * first is 1 wide. `kernel`: the window's dims sizes. */
/* A window's strides, dilations and explicit pads as 2-D values (dims = 1: ONNX's values in the second
 * dimension, the first 1 wide), and its auto_pad. */
static gboolean read_window(const char *path, const Onnx__NodeProto *n, int dims, int64_t strides[2], int64_t dil[2], int64_t pads[4],
                            char *ap, size_t ap_len, GError **error) {
  const Onnx__AttributeProto *a;
  int off = 2 - dims;
  strides[0] = strides[1] = dil[0] = dil[1] = 1;
  memset(pads, 0, 4 * sizeof(int64_t));
  if ((a = attr(n, "strides")) && (int)a->n_ints == dims) memcpy(strides + off, a->ints, sizeof(int64_t) * (size_t)dims);
  if ((a = attr(n, "dilations")) && (int)a->n_ints == dims) memcpy(dil + off, a->ints, sizeof(int64_t) * (size_t)dims);
  if ((a = attr(n, "pads"))) {
    if ((int)a->n_ints != 2 * dims) FAIL("node '%s' (%s): pads must list %d values", n->name, n->op_type, 2 * dims);
    for (int d = 0; d < dims; d++) { /* ONNX: the begins, then the ends = pquant's top, left, bottom, right */
      pads[off + d] = a->ints[d];
      pads[2 + off + d] = a->ints[dims + d];
    }
  }
  g_strlcpy(ap, "NOTSET", ap_len);
  attr_s(n, "auto_pad", ap, ap_len);
  return TRUE;
fail:
  return FALSE;
}

static void set_window(PqNode *node, const int64_t strides[2], const int64_t dil[2], const int64_t pads[4]) {
  pq_node_set_ints(node, "strides", 2, strides);
  pq_node_set_ints(node, "dilations", 2, dil);
  pq_node_set_ints(node, "pads", 4, pads);
}

static gboolean window_attrs(Ctx *c, const Onnx__NodeProto *n, PqNode *node, const char *x, const int64_t *kernel, int dims,
                             GError **error) {
  const char *path = c->path;
  int64_t strides[2], dil[2], pads[4];
  int off = 2 - dims;
  char ap[32];
  if (!read_window(path, n, dims, strides, dil, pads, ap, sizeof ap, error)) return FALSE;
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, x, s, &nd, error)) return FALSE;
    for (int d = 0; d < dims; d++) {
      int e = off + d;
      int64_t in = s[2 + d], out = (in + strides[e] - 1) / strides[e];
      int64_t total = MAX((out - 1) * strides[e] + (kernel[d] - 1) * dil[e] + 1 - in, 0);
      int64_t small = total / 2, big = total - small;
      pads[e] = !strcmp(ap, "SAME_UPPER") ? small : big;
      pads[e + 2] = !strcmp(ap, "SAME_UPPER") ? big : small;
    }
  } else if (!strcmp(ap, "VALID")) {
    memset(pads, 0, sizeof pads);
  } else if (strcmp(ap, "NOTSET")) {
    FAIL("node '%s' (%s): auto_pad '%s' is not supported", n->name, n->op_type, ap);
  }
  set_window(node, strides, dil, pads);
  return TRUE;
fail:
  return FALSE;
}

/* ConvTranspose's strides, dilations, output_padding and pads onto `node` (2-D; dims = 1 as in window_attrs), the
 * pads computed from output_shape or auto_pad where the node gives them (ONNX's rules: the total padding split
 * in two, the larger half at the end for SAME_UPPER, at the start otherwise). */
static gboolean convt_attrs(Ctx *c, const Onnx__NodeProto *n, PqNode *node, const char *x, const int64_t *kernel, int dims, GError **error) {
  const char *path = c->path;
  const Onnx__AttributeProto *a;
  int64_t strides[2], dil[2], pads[4], opad[2] = {0, 0};
  int off = 2 - dims;
  char ap[32];
  if (!read_window(path, n, dims, strides, dil, pads, ap, sizeof ap, error)) return FALSE;
  if ((a = attr(n, "output_padding")) && (int)a->n_ints == dims) memcpy(opad + off, a->ints, sizeof(int64_t) * (size_t)dims);
  const Onnx__AttributeProto *os = attr(n, "output_shape");
  gboolean same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
  if (!same && strcmp(ap, "NOTSET") && strcmp(ap, "VALID")) FAIL("node '%s' (%s): auto_pad '%s' is not supported", n->name, n->op_type, ap);
  if (!strcmp(ap, "VALID")) memset(pads, 0, sizeof pads);
  if (os || same) {
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, x, s, &nd, error)) return FALSE;
    if (os && (int)os->n_ints != dims && (int)os->n_ints != dims + 2)
      FAIL("node '%s' (%s): output_shape lists %zu values for %d spatial dimensions", n->name, n->op_type, os->n_ints, dims);
    for (int d = 0; d < dims; d++) {
      int e = off + d;
      int64_t want = os ? os->ints[os->n_ints - (size_t)dims + (size_t)d] : s[2 + d] * strides[e];
      int64_t total = strides[e] * (s[2 + d] - 1) + opad[e] + (kernel[d] - 1) * dil[e] + 1 - want;
      int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2); /* rounded down, also below 0 */
      int upper = !strcmp(ap, "SAME_UPPER");
      pads[e] = upper ? half : total - half;
      pads[e + 2] = upper ? total - half : half;
      if (pads[e + 2] < 0) { /* an output larger than the kernels reach: rows of bias only at the end */
        opad[e] -= pads[e + 2];
        pads[e + 2] = 0;
      }
      if (pads[e] < 0) FAIL("node '%s' (%s): output_shape %lld would need rows before the first", n->name, n->op_type, (long long)want);
    }
  }
  set_window(node, strides, dil, pads);
  pq_node_set_ints(node, "output_padding", 2, opad);
  return TRUE;
fail:
  return FALSE;
}

/* A 1-D conv or pool over x [N, C, L] as a 2-D one: x reshaped to [N, C, 1, L] (a node named NAME_2d), the
 * 2-D node (NAME, returned, its output a fresh value), and its output reshaped back to [N, C', L'] (NAME_1d)
 * as `out`. */
static PqNode *as_2d(Ctx *c, const char *name, const char *pqop, size_t n_in, const char **ins, const char *out) {
  PqGraph *g = pq_model_graph(c->m);
  g_autofree char *x2 = fresh(c, name), *y2 = fresh(c, name), *n_in2 = g_strdup_printf("%s_2d", name),
                  *n_out = g_strdup_printf("%s_1d", name);
  int64_t to2d[4] = {0, 0, 1, -1}, to1d[3] = {0, 0, -1};
  const char *ri[1] = {ins[0]}, *ro[1] = {x2};
  pq_node_set_ints(pq_graph_add_node(g, "reshape", n_in2, 1, ri, 1, ro), "shape", 4, to2d);
  const char *ci[3] = {x2, n_in > 1 ? ins[1] : NULL, n_in > 2 ? ins[2] : NULL}, *co[1] = {y2};
  pq_graph_add_node(g, pqop, name, n_in, ci, 1, co);
  const char *bi[1] = {y2}, *bo[1] = {out};
  pq_node_set_ints(pq_graph_add_node(g, "reshape", n_out, 1, bi, 1, bo), "shape", 3, to1d);
  return pq_graph_node(g, pq_graph_n_nodes(g) - 2); /* looked up again: adding a node may move the others */
}

/* A Conv or ConvTranspose node (input, kernel W, optional bias) as `pqop`: 2-D as it is; 1-D with the kernel
 * [A, B, k] stored as [A, B, 1, k] and run over [N, C, 1, L] between reshapes (as_2d). */
static PqNode *conv_node(Ctx *c, const Onnx__NodeProto *n, const char *pqop, PqTensor *W) {
  gboolean bias = n->n_input > 2 && n->input[2][0];
  const char *ins[3] = {n->input[0], n->input[1], bias ? n->input[2] : NULL};
  if (pq_tensor_ndim(W) == 4) {
    const char *outs[1] = {n->output[0]};
    return pq_graph_add_node(pq_model_graph(c->m), pqop, n->name, bias ? 3 : 2, ins, 1, outs);
  }
  const int64_t *ws = pq_tensor_shape(W);
  int64_t w4[4] = {ws[0], ws[1], 1, ws[2]};
  g_autofree char *w2 = fresh(c, pq_tensor_name(W));
  PqTensor *t = pq_tensor_new(w2, PQ_DTYPE_F32, 4, w4);
  pq_tensor_to_f32(W, pq_tensor_mutable_data(t));
  set_tensor(c, t);
  ins[1] = w2;
  return as_2d(c, n->name, pqop, bias ? 3 : 2, ins, n->output[0]);
}

/* A node that passes `in` through as `out` unchanged: a reshape keeping each of its `nd` dimensions (0s). */
static PqNode *add_identity(PqGraph *g, const char *name, const char *in, const char *out, int nd) {
  int64_t zeros[PQ_MAX_DIMS] = {0};
  const char *ri[1] = {in}, *ro[1] = {out};
  PqNode *node = pq_graph_add_node(g, "reshape", name, 1, ri, 1, ro);
  pq_node_set_ints(node, "shape", (size_t)nd, zeros);
  return node;
}

/* QuantizeLinear and DequantizeLinear (the QDQ form that quantization tools export), per tensor or per axis.
 * Of constants they are folded at load: a weight stored as int8 codes behind a DequantizeLinear becomes the
 * float32 weight it stands for (QuantizeLinear of a float constant: float32 codes, which the DequantizeLinear
 * after it folds the same way). Of an activation they become pquant's elementwise ops on float32 values that
 * hold the codes: QuantizeLinear div by the scale, round (ties to even), add the zero point, clip to the code
 * type's range; DequantizeLinear sub the zero point, mul by the scale. */
static gboolean add_qdq(Ctx *c, const Onnx__NodeProto *n, GError **error) {
  const char *path = c->path, *op = n->op_type, *name = n->name, *x = n->input[0], *out = n->output[0];
  const int quant = !strcmp(op, "QuantizeLinear");
  PqGraph *g = pq_model_graph(c->m);
  g_autofree float *sv = NULL, *zv = NULL, *xf = NULL;
  g_autofree char *sn = NULL, *zn = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL, *n1 = NULL, *n2 = NULL, *n3 = NULL;
  if (n->n_input < 2 || !n->input[1][0]) FAIL("node '%s' (%s): no scale", name, op);
  if (attr_i(n, "block_size", 0) != 0) FAIL("node '%s' (%s): blocked quantization (block_size) is not supported", name, op);
  PqTensor *S = pq_model_tensor(c->m, n->input[1]), *Z = n->n_input > 2 && n->input[2][0] ? pq_model_tensor(c->m, n->input[2]) : NULL;
  if (!S || (n->n_input > 2 && n->input[2][0] && !Z)) FAIL("node '%s' (%s): its scale and zero point must be constants", name, op);
  /* the codes' range: the zero point's type, else (QuantizeLinear) output_dtype or UINT8; a constant x's type */
  PqTensor *X = pq_model_tensor(c->m, x);
  PqDType ct = Z ? pq_tensor_dtype(Z) : quant ? (attr_i(n, "output_dtype", 2) == 3 ? PQ_DTYPE_I8 : PQ_DTYPE_U8) : X ? pq_tensor_dtype(X) : PQ_DTYPE_U8;
  if (quant && Z == NULL && attr_i(n, "output_dtype", 2) != 2 && attr_i(n, "output_dtype", 2) != 3)
    FAIL("node '%s' (%s): output_dtype %lld: only UINT8 and INT8 codes are read", name, op, (long long)attr_i(n, "output_dtype", 2));
  if (ct != PQ_DTYPE_U8 && ct != PQ_DTYPE_I8 && !(ct == PQ_DTYPE_I32 && !quant) && !(ct == PQ_DTYPE_F32 && X && !quant))
    FAIL("node '%s' (%s): codes of type %s are not read (UINT8 and INT8, and INT32 for a DequantizeLinear)", name, op, pq_dtype_name(ct));
  const float qmin = ct == PQ_DTYPE_I8 ? -128.0f : 0.0f, qmax = ct == PQ_DTYPE_I8 ? 127.0f : 255.0f;
  int64_t xs[PQ_MAX_DIMS];
  int nd;
  if (!shape_of(c, x, xs, &nd, error)) return FALSE;
  const int64_t ns = pq_tensor_numel(S);
  int64_t axis = attr_i(n, "axis", 1);
  if (axis < 0) axis += nd;
  if (ns != 1 && (pq_tensor_ndim(S) != 1 || axis < 0 || axis >= nd || xs[axis] != ns))
    FAIL("node '%s' (%s): %lld scales for axis %lld of a %d-D input", name, op, (long long)ns, (long long)attr_i(n, "axis", 1), nd);
  if (Z && pq_tensor_numel(Z) != ns) FAIL("node '%s' (%s): %lld zero points for %lld scales", name, op, (long long)pq_tensor_numel(Z), (long long)ns);
  sv = g_new(float, ns);
  zv = g_new0(float, ns);
  if (pq_tensor_to_f32(S, sv) != 0 || (Z && pq_tensor_to_f32(Z, zv) != 0)) FAIL("node '%s' (%s): its scale is not numeric", name, op);
  gboolean any_zero = FALSE;
  for (int64_t i = 0; i < ns; i++) {
    if (!(sv[i] > 0.0f) || !isfinite(sv[i])) FAIL("node '%s' (%s): scale %lld is %g (it must be positive)", name, op, (long long)i, (double)sv[i]);
    any_zero |= zv[i] != 0.0f;
  }
  int64_t inner = 1; /* values of one channel along the axis, in a row */
  for (int d = (int)axis + 1; ns != 1 && d < nd; d++) inner *= xs[d];
  if (X) { /* a constant: folded */
    const int64_t cnt = pq_tensor_numel(X);
    xf = g_new(float, MAX(cnt, 1));
    if (pq_tensor_to_f32(X, xf) != 0) FAIL("node '%s' (%s): '%s' is not numeric", name, op, x);
    PqTensor *t = pq_tensor_new(out, PQ_DTYPE_F32, pq_tensor_ndim(X), pq_tensor_shape(X));
    float *o = pq_tensor_mutable_data(t);
    for (int64_t i = 0; i < cnt; i++) {
      const int64_t k = ns == 1 ? 0 : (i / inner) % ns;
      o[i] = quant ? fminf(fmaxf(rintf(xf[i] / sv[k]) + zv[k], qmin), qmax) : (xf[i] - zv[k]) * sv[k];
    }
    set_tensor(c, t);
    if (!quant && (ct == PQ_DTYPE_I8 || ct == PQ_DTYPE_U8) && (ns == 1 || axis == 0 || axis == pq_tensor_ndim(X) - 1)) {
      DqFold *f = g_new0(DqFold, 1);
      *f = (DqFold){cnt, ns, g_steal_pointer(&sv), g_steal_pointer(&zv), ct == PQ_DTYPE_I8};
      g_ptr_array_add(c->dq, f);
    }
    return TRUE;
  }
  if (ns != 1 && axis == 0) FAIL("node '%s' (%s): scales along the batch (axis 0)", name, op);
  /* an activation: the scales and zero points as constants shaped to broadcast along the axis */
  int64_t cs[PQ_MAX_DIMS];
  int cnd = ns == 1 ? 1 : nd - (int)axis;
  cs[0] = ns;
  for (int d = 1; d < cnd; d++) cs[d] = 1;
  sn = fresh(c, quant ? "qdq_scale" : "dq_scale");
  PqTensor *st = pq_tensor_new(sn, PQ_DTYPE_F32, cnd, cs);
  memcpy(pq_tensor_mutable_data(st), sv, sizeof(float) * (size_t)ns);
  set_tensor(c, st);
  if (any_zero) {
    zn = fresh(c, "qdq_zero");
    PqTensor *zt = pq_tensor_new(zn, PQ_DTYPE_F32, cnd, cs);
    memcpy(pq_tensor_mutable_data(zt), zv, sizeof(float) * (size_t)ns);
    set_tensor(c, zt);
  }
  n1 = fresh(c, name); /* (the nodes before the last: unique names) */
  n2 = fresh(c, name);
  n3 = fresh(c, name);
  if (quant) { /* div, round, (add), clip */
    t1 = fresh(c, name);
    t2 = fresh(c, name);
    const char *i1[2] = {x, sn}, *o1[1] = {t1}, *i2[1] = {t1}, *o2[1] = {t2};
    pq_graph_add_node(g, "div", n1, 2, i1, 1, o1);
    pq_graph_add_node(g, "round", n3, 1, i2, 1, o2);
    const char *cur = t2;
    if (any_zero) {
      t3 = fresh(c, name);
      const char *i3[2] = {t2, zn}, *o3[1] = {t3};
      pq_graph_add_node(g, "add", n2, 2, i3, 1, o3);
      cur = t3;
    }
    const char *i4[1] = {cur}, *o4[1] = {out};
    PqNode *cl = pq_graph_add_node(g, "clip", name, 1, i4, 1, o4);
    pq_node_set_float(cl, "min", qmin);
    pq_node_set_float(cl, "max", qmax);
  } else { /* (sub), mul */
    const char *cur = x;
    if (any_zero) {
      t1 = fresh(c, name);
      const char *i1[2] = {x, zn}, *o1[1] = {t1};
      pq_graph_add_node(g, "sub", n2, 2, i1, 1, o1);
      cur = t1;
    }
    const char *i2[2] = {cur, sn}, *o2[1] = {out};
    pq_graph_add_node(g, "mul", name, 2, i2, 1, o2);
  }
  return TRUE;
fail:
  return FALSE;
}

static gboolean add_node(Ctx *c, const Onnx__NodeProto *n, GError **error);

/* A node of ONNX's own that add_node() maps, made for a QOperator node: op on the inputs, with the attributes
 * given (borrowed, as the names are). */
static gboolean add_made(Ctx *c, const char *op, const char *name, int nin, const char *const *in, const char *out, size_t nattr,
                         Onnx__AttributeProto **attrs, GError **error) {
  Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
  char *outs[1] = {(char *)out};
  n.op_type = (char *)op;
  n.name = (char *)name;
  n.n_input = (size_t)nin;
  n.input = (char **)in;
  n.n_output = 1;
  n.output = outs;
  n.n_attribute = nattr;
  n.attribute = attrs;
  return add_node(c, &n, error);
}

/* A QOperator or integer op's constant weight W: a MatMul's B [K, N], or a 1-D or 2-D conv kernel */
static gboolean weight_rank_ok(const Ctx *c, const Onnx__NodeProto *n, int conv, const PqTensor *W, GError **error) {
  const char *path = c->path, *op = n->op_type, *name = n->name;
  if (conv ? pq_tensor_ndim(W) < 3 : pq_tensor_ndim(W) != 2)
    FAIL("node '%s' (%s): a weight of %d dimensions (%s)", name, op, pq_tensor_ndim(W), conv ? "3 or 4: a 1-D or 2-D kernel" : "2: B [K, N]");
  return TRUE;
fail:
  return FALSE;
}

/* The DequantizeLinear of such a weight (input `w`) by `scale` and `zero` (NULL: none) along the outputs (B's
 * columns, the kernel's output channels), into `out`, as node `dq_name` */
static gboolean add_weight_dq(Ctx *c, int conv, const char *w, const char *scale, const char *zero, const char *dq_name, const char *out,
                              GError **error) {
  Onnx__AttributeProto axis = ONNX__ATTRIBUTE_PROTO__INIT, *ax[1] = {&axis};
  axis.name = (char *)"axis";
  axis.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  axis.has_i = 1;
  axis.i = conv ? 0 : 1;
  const char *in[3] = {w, scale, zero};
  return add_made(c, "DequantizeLinear", dq_name, zero ? 3 : 2, in, out, 1, ax, error);
}

/* QLinearMatMul and QLinearConv (the QOperator form): each the ops it is defined as. DequantizeLinear of the
 * input by its scale and zero point; DequantizeLinear of the weight, a constant (folded, and kept 8-bit where it
 * has one scale an output: along B's columns, or the kernel's output channels); the MatMul or Conv (the node's
 * own attributes), with QLinearConv's INT32 bias on the grid x_scale · w_scale as float32; then QuantizeLinear
 * by the output's scale and zero point. The values are float32 holding the codes, as for QDQ models. */
static gboolean add_qlinear(Ctx *c, const Onnx__NodeProto *n, GError **error) {
  const char *path = c->path, *op = n->op_type, *name = n->name;
  const int conv = !strcmp(op, "QLinearConv");
  g_autofree char *xd = NULL, *wd = NULL, *yd = NULL, *n1 = NULL, *n2 = NULL, *n3 = NULL, *bn = NULL;
  g_autofree float *bv = NULL, *wsv = NULL;
  for (size_t i = 0; i < 8; i++)
    if (i != 2 && i != 5 && i != 7 && !n->input[i][0]) FAIL("node '%s' (%s): input %zu is empty", name, op, i);
  PqTensor *W = pq_model_tensor(c->m, n->input[3]), *WS = pq_model_tensor(c->m, n->input[4]), *XS = pq_model_tensor(c->m, n->input[1]);
  if (!W) FAIL("node '%s' (%s): its weight '%s' must be a constant (an initializer)", name, op, n->input[3]);
  if (!weight_rank_ok(c, n, conv, W, error)) return FALSE;
  if (!XS || pq_tensor_numel(XS) != 1) FAIL("node '%s' (%s): x_scale must be a constant scalar (one scale for the input)", name, op);
  { /* (the nodes' names say what each is of the QOperator node, for its errors and pqrun info) */
    g_autofree char *bx = g_strdup_printf("%s_x_dq", name), *bw = g_strdup_printf("%s_w_dq", name), *bo = g_strdup_printf("%s_%s", name, conv ? "conv" : "matmul");
    xd = fresh(c, bx), wd = fresh(c, bw), yd = fresh(c, bo), n1 = fresh(c, bx), n2 = fresh(c, bw), n3 = fresh(c, bo);
  }
  const char *dx[3] = {n->input[0], n->input[1], n->input[2]};
  if (!add_made(c, "DequantizeLinear", n1, n->input[2][0] ? 3 : 2, dx, xd, 0, NULL, error)) return FALSE;
  if (!add_weight_dq(c, conv, n->input[3], n->input[4], n->input[5][0] ? n->input[5] : NULL, n2, wd, error)) return FALSE;
  if (conv && n->n_input > 8 && n->input[8][0]) { /* the bias: codes on x_scale · w_scale, zero point 0 */
    PqTensor *B = pq_model_tensor(c->m, n->input[8]);
    const int64_t m = pq_tensor_shape(W)[0], ns = WS ? pq_tensor_numel(WS) : 0;
    if (!B || pq_tensor_numel(B) != m) FAIL("node '%s' (%s): its bias must be a constant of %lld values (one an output channel)", name, op, (long long)m);
    if (!WS || (ns != 1 && ns != m)) FAIL("node '%s' (%s): w_scale must be a constant of 1 or %lld values", name, op, (long long)m);
    bv = g_new(float, m), wsv = g_new(float, ns);
    float xs;
    if (pq_tensor_to_f32(B, bv) != 0 || pq_tensor_to_f32(WS, wsv) != 0 || pq_tensor_to_f32(XS, &xs) != 0)
      FAIL("node '%s' (%s): its bias and scales must be numeric", name, op);
    bn = fresh(c, "qconv_bias");
    PqTensor *bt = pq_tensor_new(bn, PQ_DTYPE_F32, 1, &m);
    float *bd = pq_tensor_mutable_data(bt);
    for (int64_t o = 0; o < m; o++) bd[o] = (float)((double)bv[o] * (double)xs * (double)wsv[ns == 1 ? 0 : o]);
    set_tensor(c, bt);
  }
  const char *ci[3] = {xd, wd, bn};
  if (!add_made(c, conv ? "Conv" : "MatMul", n3, bn ? 3 : 2, ci, yd, conv ? n->n_attribute : 0, conv ? n->attribute : NULL, error)) return FALSE;
  const char *qi[3] = {yd, n->input[6], n->input[7]};
  return add_made(c, "QuantizeLinear", name, n->input[7][0] ? 3 : 2, qi, n->output[0], 0, NULL, error);
fail:
  return FALSE;
}

/* A float32 constant of n values v (n 1: shape [1]); its fresh name */
static char *const_f32(Ctx *c, const char *base, int64_t n, float v) {
  char *name = fresh(c, base);
  PqTensor *t = pq_tensor_new(name, PQ_DTYPE_F32, 1, &n);
  float *d = pq_tensor_mutable_data(t);
  for (int64_t i = 0; i < n; i++) d[i] = v;
  set_tensor(c, t);
  return name;
}

/* DynamicQuantizeLinear: x to UINT8 codes on the range [min(0, x's least), max(0, x's largest)], with that
 * scale and zero point as two more outputs, as ONNX defines them (a range of 0 takes the scale 1/255). The range
 * is taken over each sample (reduce_max and reduce_min over the dimensions after the batch, kept as 1s): ONNX
 * takes it over the whole tensor, so the two agree at batch 1, and pquant's samples never depend on one another.
 * The scale and zero point are then activations of shape [N, 1, …], which broadcast where ONNX's scalars do. */
static gboolean add_dynamic_quantize(Ctx *c, const Onnx__NodeProto *n, GError **error) {
  const char *path = c->path, *name = n->name, *x = n->input[0];
  PqGraph *g = pq_model_graph(c->m);
  int64_t xs[PQ_MAX_DIMS], axes[PQ_MAX_DIMS];
  int nd;
  g_autofree char *zero = NULL, *one = NULL, *c255 = NULL;
  if (pq_model_tensor(c->m, x)) FAIL("node '%s' (DynamicQuantizeLinear): its input '%s' is a constant (quantize it before export)", name, x);
  if (!shape_of(c, x, xs, &nd, error)) return FALSE;
  if (nd < 2) FAIL("node '%s' (DynamicQuantizeLinear): a %d-D input has no values a sample besides the batch", name, nd);
  for (int d = 1; d < nd; d++) axes[d - 1] = d;
  zero = const_f32(c, "dql_zero", 1, 0.0f), one = const_f32(c, "dql_one", 1, 1.0f), c255 = const_f32(c, "dql_255", 1, 255.0f);
  char *t[16];
  for (int i = 0; i < 16; i++) t[i] = fresh(c, name);
  const char *scale = n->n_output > 1 && n->output[1][0] ? n->output[1] : t[14], *zp = n->n_output > 2 && n->output[2][0] ? n->output[2] : t[15];
  const struct {
    const char *op, *a, *b, *out;
  } steps[] = {
      {"reduce_max", x, NULL, t[0]},   {"reduce_min", x, NULL, t[1]},   {"maximum", t[0], zero, t[2]}, {"minimum", t[1], zero, t[3]},
      {"sub", t[2], t[3], t[4]},       {"sign", t[4], NULL, t[5]},      {"sub", one, t[5], t[6]},      {"add", t[4], t[6], t[7]},
      {"div", t[7], c255, scale},      {"div", t[3], scale, t[8]},      {"neg", t[8], NULL, t[9]},     {"clip", t[9], NULL, t[10]},
      {"round", t[10], NULL, zp},      {"div", x, scale, t[11]},        {"round", t[11], NULL, t[12]}, {"add", t[12], zp, t[13]},
      {"clip", t[13], NULL, n->output[0]},
  }; /* max(0, max x) − min(0, min x), plus 1 where that is 0 (1 − sign); / 255; zero point round(clip(−min / scale)); codes */
  for (size_t i = 0; i < G_N_ELEMENTS(steps); i++) {
    const char *ins[2] = {steps[i].a, steps[i].b}, *outs[1] = {steps[i].out};
    g_autofree char *nn = i + 1 == G_N_ELEMENTS(steps) ? g_strdup(name) : fresh(c, name);
    PqNode *node = pq_graph_add_node(g, steps[i].op, nn, steps[i].b ? 2 : 1, ins, 1, outs);
    if (!strncmp(steps[i].op, "reduce_", 7)) {
      pq_node_set_ints(node, "axes", (size_t)(nd - 1), axes);
      pq_node_set_int(node, "keepdims", 1);
    } else if (!strcmp(steps[i].op, "clip")) {
      pq_node_set_float(node, "min", 0.0);
      pq_node_set_float(node, "max", 255.0);
    }
  }
  for (int i = 0; i < 16; i++) g_free(t[i]);
  return TRUE;
fail:
  return FALSE;
}

/* MatMulInteger and ConvInteger: (A − a_zero) times (B − b_zero), as float32 values (exact while the sums stay
 * below 2^24). The zero point of A may be an activation (DynamicQuantizeLinear's) or a constant; B is an INT8 or
 * UINT8 constant, which becomes a weight of those codes less their zero points, kept 8-bit (a packed tensor with
 * scale 1, through the DequantizeLinear folding that QDQ models take). */
static gboolean add_integer_op(Ctx *c, const Onnx__NodeProto *n, GError **error) {
  const char *path = c->path, *op = n->op_type, *name = n->name;
  const int conv = !strcmp(op, "ConvInteger");
  g_autofree char *xa = NULL, *wd = NULL, *ones = NULL, *nsub = NULL, *ndq = NULL;
  PqTensor *B = pq_model_tensor(c->m, n->input[1]);
  if (!B) FAIL("node '%s' (%s): its weight '%s' must be a constant (an initializer)", name, op, n->input[1]);
  if (pq_tensor_dtype(B) != PQ_DTYPE_I8 && pq_tensor_dtype(B) != PQ_DTYPE_U8)
    FAIL("node '%s' (%s): its weight is %s, not INT8 or UINT8", name, op, pq_dtype_name(pq_tensor_dtype(B)));
  if (!weight_rank_ok(c, n, conv, B, error)) return FALSE;
  const char *az = n->n_input > 2 && n->input[2][0] ? n->input[2] : NULL, *bz = n->n_input > 3 && n->input[3][0] ? n->input[3] : NULL;
  PqTensor *AZ = az ? pq_model_tensor(c->m, az) : NULL, *BZ = bz ? pq_model_tensor(c->m, bz) : NULL;
  if (AZ && pq_tensor_numel(AZ) != 1) FAIL("node '%s' (%s): a constant zero point for the input must be one value", name, op);
  if (bz && !BZ) FAIL("node '%s' (%s): the weight's zero point must be a constant", name, op);
  xa = az ? fresh(c, name) : NULL, wd = fresh(c, name), nsub = fresh(c, name), ndq = fresh(c, name);
  if (az) {
    const char *si[2] = {n->input[0], az}, *so[1] = {xa};
    pq_graph_add_node(pq_model_graph(c->m), "sub", nsub, 2, si, 1, so);
  }
  ones = const_f32(c, "int_scale", BZ ? pq_tensor_numel(BZ) : 1, 1.0f); /* (a zero point an output, or one for all) */
  if (!add_weight_dq(c, conv, n->input[1], ones, bz, ndq, wd, error)) return FALSE;
  const char *ci[2] = {az ? xa : n->input[0], wd};
  return add_made(c, conv ? "Conv" : "MatMul", name, 2, ci, n->output[0], conv ? n->n_attribute : 0, conv ? n->attribute : NULL, error);
fail:
  return FALSE;
}

static gboolean add_node(Ctx *c, const Onnx__NodeProto *n, GError **error) {
  const char *path = c->path, *op = n->op_type;
  PqGraph *g = pq_model_graph(c->m);
  const char *in0 = n->n_input > 0 ? n->input[0] : "", *out0 = n->n_output > 0 ? n->output[0] : "";
  const char *name = n->name;
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) FAIL("node '%s': domain '%s' is not supported", name, n->domain);
#define ONE(pqop, ...)                                                                                             \
  do {                                                                                                             \
    const char *ins_[] = {__VA_ARGS__};                                                                            \
    const char *outs_[1] = {out0};                                                                                 \
    node = pq_graph_add_node(g, pqop, name, G_N_ELEMENTS(ins_), ins_, 1, outs_);                                   \
  } while (0)
  PqNode *node = NULL;
  { /* the inputs an op reads by position must be there */
    static const struct {
      const char *op;
      size_t n;
    } need[] = {{"Add", 2}, {"Sub", 2}, {"Mul", 2}, {"Div", 2}, {"PRelu", 2}, {"MatMul", 2}, {"Gemm", 2}, {"Conv", 2}, {"BatchNormalization", 5}, {"Reshape", 2}, {"Gather", 2}, {"Expand", 2}, {"Tile", 2}, {"LayerNormalization", 2}, {"InstanceNormalization", 3}, {"QLinearMatMul", 8}, {"QLinearConv", 8}, {"MatMulInteger", 2}, {"ConvInteger", 2}};
    size_t want = strcmp(op, "Constant") ? 1 : 0;
    for (size_t i = 0; i < G_N_ELEMENTS(need); i++)
      if (!strcmp(op, need[i].op)) want = need[i].n;
    if (n->n_input < want) FAIL("node '%s' (%s): %zu inputs, it needs %zu", name, op, n->n_input, want);
    if (n->n_output < 1) FAIL("node '%s' (%s): no output", name, op);
  }
  static const struct {
    const char *onnx, *pq;
  } unary[] = {{"Sigmoid", "sigmoid"}, {"Tanh", "tanh"},           {"LeakyRelu", "leaky_relu"}, {"Elu", "elu"},
               {"Selu", "selu"},       {"HardSigmoid", "hard_sigmoid"}, {"HardSwish", "hard_swish"}, {"Softplus", "softplus"},
               {"Gelu", "gelu"},       {"Clip", "clip"},            {"Abs", "abs"},              {"Neg", "neg"},
               {"Exp", "exp"},         {"Log", "log"},              {"Sqrt", "sqrt"},            {"Reciprocal", "reciprocal"},
               {"Erf", "erf"},         {"Floor", "floor"},          {"Ceil", "ceil"},            {"Round", "round"},
               {"Sign", "sign"},       {"Sin", "sin"},              {"Cos", "cos"},              {"Tan", "tan"},
               {"Asin", "asin"},       {"Acos", "acos"},            {"Atan", "atan"},            {"Sinh", "sinh"},
               {"Cosh", "cosh"},       {"Asinh", "asinh"},          {"Acosh", "acosh"},          {"Atanh", "atanh"},
               {"Softsign", "softsign"}, {"ThresholdedRelu", "thresholded_relu"}, {"Celu", "celu"}, {"Shrink", "shrink"}};
  const char *act = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS(unary); i++)
    if (!strcmp(op, unary[i].onnx)) act = unary[i].pq;
  if (act) { /* elementwise activations: ONNX's attributes (and Clip's bounds) become the node's */
    ONE(act, in0);
    static const char *const fattrs[] = {"alpha", "beta", "gamma", "lambd", "bias"};
    for (size_t i = 0; i < G_N_ELEMENTS(fattrs); i++)
      if (attr(n, fattrs[i])) pq_node_set_float(node, fattrs[i], attr_f(n, fattrs[i], 0));
    if (!strcmp(op, "Gelu")) {
      char buf[16];
      const char *ap = attr_s(n, "approximate", buf, sizeof buf);
      pq_node_set_string(node, "approximate", ap ? ap : "none");
    }
    if (!strcmp(op, "Clip")) { /* opset < 11: attributes min, max; since 11: optional inputs 1 and 2, scalars */
      const char *bound[2] = {"min", "max"};
      for (int k = 0; k < 2; k++) {
        if (attr(n, bound[k])) pq_node_set_float(node, bound[k], attr_f(n, bound[k], 0));
        if (n->n_input > (size_t)(1 + k) && n->input[1 + k][0]) {
          PqTensor *t = pq_model_tensor(c->m, n->input[1 + k]);
          float v;
          if (!t || pq_tensor_numel(t) != 1 || pq_tensor_to_f32(t, &v) != 0)
            FAIL("node '%s' (Clip): its %s must be a scalar initializer or constant", name, bound[k]);
          pq_node_set_float(node, bound[k], v);
        }
      }
    }
  } else if (!strcmp(op, "Relu")) ONE("relu", in0);
  else if (!strcmp(op, "Add") || !strcmp(op, "Mul")) { /* commutative: the activation first, as backends read it */
    const char *a = in0, *b = n->input[1];
    if (pq_model_tensor(c->m, a) && !pq_model_tensor(c->m, b)) a = n->input[1], b = in0;
    ONE(!strcmp(op, "Add") ? "add" : "mul", a, b);
  } else if (!strcmp(op, "Sub")) ONE("sub", in0, n->input[1]);
  else if (!strcmp(op, "Pow")) ONE("pow", in0, n->input[1]);
  else if (!strcmp(op, "Min") || !strcmp(op, "Max") || !strcmp(op, "Sum") || !strcmp(op, "Mean")) {
    /* variadic: a chain of binary nodes (the activations first), then Mean's 1/n; one input: the input itself */
    const char *pqop = !strcmp(op, "Min") ? "minimum" : !strcmp(op, "Max") ? "maximum" : "add";
    GPtrArray *ins = g_ptr_array_new();
    for (size_t k = 0; k < n->n_input; k++)
      if (n->input[k][0]) g_ptr_array_insert(ins, pq_model_tensor(c->m, n->input[k]) ? -1 : 0, n->input[k]);
    if (ins->len == 0 || pq_model_tensor(c->m, ins->pdata[0])) {
      g_ptr_array_free(ins, TRUE);
      FAIL("node '%s' (%s): needs an input that is not a constant", name, op);
    }
    int mean = !strcmp(op, "Mean") && ins->len > 1;
    const char *cur = ins->pdata[0];
    g_autofree char *held = NULL;
    for (guint k = 1; k < ins->len; k++) {
      gboolean last = k + 1 == ins->len && !mean;
      char *o = last ? g_strdup(out0) : fresh(c, name);
      g_autofree char *nn = last ? g_strdup(name) : g_strdup_printf("%s_%u", name, k);
      const char *bi[2] = {cur, ins->pdata[k]}, *bo[1] = {o};
      node = pq_graph_add_node(g, pqop, nn, 2, bi, 1, bo);
      g_free(held);
      held = o;
      cur = held;
    }
    if (ins->len == 1) { /* the input as it is */
      int64_t s[PQ_MAX_DIMS];
      int nd;
      if (!shape_of(c, cur, s, &nd, error)) {
        g_ptr_array_free(ins, TRUE);
        return FALSE;
      }
      node = add_identity(g, name, cur, out0, nd);
    } else if (mean) {
      g_autofree char *cn = fresh(c, "mean_scale");
      int64_t one[1] = {1};
      PqTensor *t = pq_tensor_new(cn, PQ_DTYPE_F32, 1, one);
      *(float *)pq_tensor_mutable_data(t) = 1.0f / (float)ins->len;
      set_tensor(c, t);
      const char *mi[2] = {cur, cn}, *mo[1] = {out0};
      node = pq_graph_add_node(g, "mul", name, 2, mi, 1, mo);
    }
    g_ptr_array_free(ins, TRUE);
  }
  else if (!strcmp(op, "PRelu")) ONE("prelu", in0, n->input[1]);
  else if (!strcmp(op, "Div")) ONE("div", in0, n->input[1]);
  else if (!strcmp(op, "QuantizeLinear") || !strcmp(op, "DequantizeLinear")) {
    if (!add_qdq(c, n, error)) return FALSE;
  } else if (!strcmp(op, "QLinearMatMul") || !strcmp(op, "QLinearConv")) {
    if (!add_qlinear(c, n, error)) return FALSE;
  } else if (!strcmp(op, "DynamicQuantizeLinear")) {
    if (!add_dynamic_quantize(c, n, error)) return FALSE;
  } else if (!strcmp(op, "MatMulInteger") || !strcmp(op, "ConvInteger")) {
    if (!add_integer_op(c, n, error)) return FALSE;
  } else if (!strcmp(op, "Cast") && pq_model_tensor(c->m, in0)) { /* of a constant: converted at load (to float32 or int64) */
    PqTensor *x = pq_model_tensor(c->m, in0);
    int64_t to = attr_i(n, "to", 0), cnt = pq_tensor_numel(x);
    if (to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && to != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
      FAIL("node '%s' (Cast): of a constant, only to FLOAT or INT64 (not type %lld)", name, (long long)to);
    if (pq_tensor_dtype(x) == PQ_DTYPE_I64)
      for (int64_t i = 0; i < cnt; i++)
        if (((const int64_t *)pq_tensor_data(x))[i] == BATCH_MARK) FAIL("node '%s' (Cast): '%s' is a shape holding the batch", name, in0);
    g_autofree float *f = g_new(float, cnt ? cnt : 1);
    PqTensor *t;
    if (to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
      if (pq_tensor_to_f32(x, f) != 0) FAIL("node '%s' (Cast): '%s' is not numeric", name, in0);
      t = pq_tensor_new(out0, PQ_DTYPE_F32, pq_tensor_ndim(x), pq_tensor_shape(x));
      if (cnt) memcpy(pq_tensor_mutable_data(t), f, sizeof(float) * (size_t)cnt);
    } else {
      t = pq_tensor_new(out0, PQ_DTYPE_I64, pq_tensor_ndim(x), pq_tensor_shape(x));
      int64_t *d = pq_tensor_mutable_data(t);
      if (pq_tensor_dtype(x) == PQ_DTYPE_I64) {
        if (cnt) memcpy(d, pq_tensor_data(x), sizeof(int64_t) * (size_t)cnt);
      } else {
        if (pq_tensor_to_f32(x, f) != 0) FAIL("node '%s' (Cast): '%s' is not numeric", name, in0);
        for (int64_t i = 0; i < cnt; i++) d[i] = (int64_t)f[i]; /* toward zero, as ONNX casts */
      }
    }
    set_tensor(c, t);
  } else if (!strcmp(op, "Cast")) { /* of an activation: float32 stays float32 */
    int64_t to = attr_i(n, "to", 0), s[PQ_MAX_DIMS], zeros[PQ_MAX_DIMS] = {0};
    int nd;
    if (to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
      FAIL("node '%s' (Cast): of an activation, only to FLOAT (pquant runs float32), not type %lld", name, (long long)to);
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    ONE("reshape", in0);
    pq_node_set_ints(node, "shape", (size_t)nd, zeros);
  } else if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) { /* inference: the input itself */
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    node = add_identity(g, name, in0, out0, nd);
  } else if (!strcmp(op, "MatMul")) {
    PqTensor *B = pq_model_tensor(c->m, n->input[1]);
    if (B && pq_tensor_ndim(B) == 2 && !pq_model_tensor(c->m, in0)) {
      /* x · B with a constant B [k, n] (how PyTorch exports nn.Linear on 3-D inputs): a linear layer with W = Bᵀ,
         so that compressors (which work on linear and conv2d layers) see it */
      const int64_t *bs = pq_tensor_shape(B);
      int64_t ws[2] = {bs[1], bs[0]};
      const char *wname = g_hash_table_lookup(c->transposed, n->input[1]); /* one copy, however many MatMuls share B */
      if (!wname) {
        wname = fresh(c, pq_tensor_name(B));
        g_hash_table_insert(c->transposed, g_strdup(n->input[1]), (gpointer)wname);
        g_autofree float *bf = g_new(float, bs[0] * bs[1]);
        if (pq_tensor_to_f32(B, bf) != 0) FAIL("node '%s' (MatMul): its constant operand '%s' is not numeric", name, n->input[1]);
        PqTensor *w = pq_tensor_new(wname, PQ_DTYPE_F32, 2, ws);
        float *wd = pq_tensor_mutable_data(w);
        for (int64_t i = 0; i < bs[0]; i++)
          for (int64_t j = 0; j < bs[1]; j++) wd[j * bs[0] + i] = bf[i * bs[1] + j];
        set_tensor(c, w);
      }
      ONE("linear", in0, wname);
    } else ONE("matmul", in0, n->input[1]);
  } else if (!strcmp(op, "Gemm")) {
    double alpha = attr_f(n, "alpha", 1.0), beta = attr_f(n, "beta", 1.0);
    int64_t ta = attr_i(n, "transA", 0), tb = attr_i(n, "transB", 0);
    PqTensor *B = pq_model_tensor(c->m, n->input[1]);
    PqTensor *C = n->n_input > 2 && n->input[2][0] ? pq_model_tensor(c->m, n->input[2]) : NULL;
    if (ta) FAIL("node '%s' (Gemm): transA = 1 is not supported", name);
    if (!B || pq_tensor_ndim(B) != 2) FAIL("node '%s' (Gemm): B must be a 2-D initializer", name);
    if (n->n_input > 2 && n->input[2][0] && !C) FAIL("node '%s' (Gemm): C must be an initializer", name);
    int64_t K = tb ? pq_tensor_shape(B)[1] : pq_tensor_shape(B)[0], N = tb ? pq_tensor_shape(B)[0] : pq_tensor_shape(B)[1];
    int64_t ws[2] = {N, K};
    g_autofree char *wname = NULL;
    if (tb && alpha == 1.0) { /* B already is linear's W [N, K] */
      wname = g_strdup(n->input[1]);
    } else {
      wname = fresh(c, "gemm_w");
      PqTensor *w = pq_tensor_new(wname, PQ_DTYPE_F32, 2, ws);
      g_autofree float *bf = g_new(float, MAX(K * N, 1));
      pq_tensor_to_f32(B, bf);
      float *wd = pq_tensor_mutable_data(w);
      for (int64_t i = 0; i < N; i++) /* W [N, K]: linear computes x W^T */
        for (int64_t k = 0; k < K; k++) wd[i * K + k] = (float)alpha * (tb ? bf[i * K + k] : bf[k * N + i]);
      set_tensor(c, w);
    }
    g_autofree char *bias = NULL, *mid = NULL;
    g_autofree float *cf = NULL;
    int64_t cn = C ? pq_tensor_numel(C) : 0;
    if (C) {
      cf = g_new(float, MAX(cn, 1));
      pq_tensor_to_f32(C, cf);
    }
    if (C && (cn == N || cn == 1) && (pq_tensor_ndim(C) <= 1 || pq_tensor_shape(C)[pq_tensor_ndim(C) - 1] == cn)) {
      bias = fresh(c, "gemm_b"); /* a vector (or scalar) C is the bias */
      int64_t bs[1] = {N};
      PqTensor *bt = pq_tensor_new(bias, PQ_DTYPE_F32, 1, bs);
      for (int64_t i = 0; i < N; i++) ((float *)pq_tensor_mutable_data(bt))[i] = (float)beta * cf[cn == 1 ? 0 : i];
      set_tensor(c, bt);
      const char *ins[3] = {in0, wname, bias}, *outs[1] = {out0};
      node = pq_graph_add_node(g, "linear", name, 3, ins, 1, outs);
    } else {
      mid = C ? fresh(c, "gemm_out") : g_strdup(out0);
      const char *ins[2] = {in0, wname}, *outs[1] = {mid};
      node = pq_graph_add_node(g, "linear", name, 2, ins, 1, outs);
      if (C) { /* a matrix C: added after, as a constant */
        g_autofree char *cname = fresh(c, "gemm_c");
        PqTensor *ct = pq_tensor_new(cname, PQ_DTYPE_F32, pq_tensor_ndim(C), pq_tensor_shape(C));
        for (int64_t i = 0; i < cn; i++) ((float *)pq_tensor_mutable_data(ct))[i] = (float)beta * cf[i];
        set_tensor(c, ct);
        const char *ai[2] = {mid, cname}, *ao[1] = {out0};
        g_autofree char *an = g_strdup_printf("%s_add_c", name);
        pq_graph_add_node(g, "add", an, 2, ai, 1, ao);
      }
    }
  } else if (!strcmp(op, "Conv")) {
    PqTensor *W = pq_model_tensor(c->m, n->input[1]);
    if (!W || (pq_tensor_ndim(W) != 4 && pq_tensor_ndim(W) != 3))
      FAIL("node '%s' (Conv): only 1-D and 2-D convolutions with an initializer kernel are supported", name);
    int dims = pq_tensor_ndim(W) - 2;
    node = conv_node(c, n, "conv2d", W);
    pq_node_set_int(node, "groups", attr_i(n, "group", 1));
    if (!window_attrs(c, n, node, in0, pq_tensor_shape(W) + 2, dims, error)) return FALSE;
  } else if (!strcmp(op, "ConvTranspose")) {
    PqTensor *W = pq_model_tensor(c->m, n->input[1]);
    if (!W || (pq_tensor_ndim(W) != 4 && pq_tensor_ndim(W) != 3))
      FAIL("node '%s' (ConvTranspose): only 1-D and 2-D transposed convolutions with an initializer kernel are supported", name);
    int dims = pq_tensor_ndim(W) - 2;
    node = conv_node(c, n, "conv_transpose2d", W);
    pq_node_set_int(node, "groups", attr_i(n, "group", 1));
    if (!convt_attrs(c, n, node, in0, pq_tensor_shape(W) + 2, dims, error)) return FALSE;
  } else if (!strcmp(op, "Resize") || !strcmp(op, "Upsample")) { /* [N, C, H, W] planes resampled: resize2d */
    int64_t s0[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s0, &nd, error)) return FALSE;
    if (nd != 4) FAIL("node '%s' (%s): only 4-D inputs [N, C, H, W] are resized, not %d-D", name, op, nd);
    /* Upsample and opset-10 Resize (X, scales): asymmetric coordinates, nearest by floor; since opset 11
       (X, roi, scales, sizes) the attributes say */
    gboolean legacy = !strcmp(op, "Upsample") || n->n_input == 2;
    const char *scales_name = legacy ? n->input[1] : n->n_input > 2 ? n->input[2] : "";
    const char *sizes_name = !legacy && n->n_input > 3 ? n->input[3] : "";
    char mode[32] = "nearest", coord[32] = "half_pixel", nearest[32] = "round_prefer_floor", policy[32] = "stretch";
    attr_s(n, "mode", mode, sizeof mode);
    attr_s(n, "coordinate_transformation_mode", coord, sizeof coord);
    attr_s(n, "nearest_mode", nearest, sizeof nearest);
    attr_s(n, "keep_aspect_ratio_policy", policy, sizeof policy);
    if (legacy) {
      g_strlcpy(coord, "asymmetric", sizeof coord);
      g_strlcpy(nearest, "floor", sizeof nearest);
      if (!strcmp(mode, "bilinear")) g_strlcpy(mode, "linear", sizeof mode);
    }
    if (!strcmp(coord, "tf_crop_and_resize")) FAIL("node '%s' (%s): coordinate_transformation_mode tf_crop_and_resize is not supported", name, op);
    if (attr_i(n, "antialias", 0)) FAIL("node '%s' (%s): antialias is not supported", name, op);
    if (strcmp(policy, "stretch")) FAIL("node '%s' (%s): keep_aspect_ratio_policy %s is not supported", name, op, policy);
    if (attr(n, "axes")) FAIL("node '%s' (%s): axes are not supported (all four dimensions only)", name, op);
    double scale[2] = {0, 0};
    int64_t out[2] = {0, 0};
    if (sizes_name[0]) {
      PqTensor *t = small_int64(c, sizes_name);
      if (!t || pq_tensor_numel(t) != 4) FAIL("node '%s' (%s): its sizes must be an INT64 constant of 4 values", name, op);
      const int64_t *v = pq_tensor_data(t);
      if (v[1] != s0[1]) FAIL("node '%s' (%s): it resizes the channels (%lld to %lld)", name, op, (long long)s0[1], (long long)v[1]);
      out[0] = v[2], out[1] = v[3];
      scale[0] = (double)v[2] / (double)s0[2], scale[1] = (double)v[3] / (double)s0[3];
    } else {
      PqTensor *t = scales_name[0] ? pq_model_tensor(c->m, scales_name) : NULL;
      float sv[4];
      if (!t || pq_tensor_numel(t) != 4 || pq_tensor_to_f32(t, sv) != 0)
        FAIL("node '%s' (%s): its scales must be a constant of 4 values (or sizes given)", name, op);
      if (sv[0] != 1.0f || sv[1] != 1.0f) FAIL("node '%s' (%s): it scales the batch or the channels (%g, %g)", name, op, sv[0], sv[1]);
      for (int d = 0; d < 2; d++) {
        scale[d] = sv[2 + d];
        out[d] = (int64_t)floor((double)s0[2 + d] * scale[d]);
      }
    }
    ONE("resize2d", in0);
    pq_node_set_ints(node, "sizes", 2, out);
    pq_node_set_float(node, "scale_h", scale[0]);
    pq_node_set_float(node, "scale_w", scale[1]);
    pq_node_set_string(node, "mode", mode);
    pq_node_set_string(node, "coordinate_transformation_mode", coord);
    pq_node_set_string(node, "nearest_mode", nearest);
    pq_node_set_float(node, "cubic_coeff_a", attr_f(n, "cubic_coeff_a", -0.75));
    pq_node_set_int(node, "exclude_outside", attr_i(n, "exclude_outside", 0));
  } else if (!strcmp(op, "Slice")) { /* starts, ends, axes, steps: attributes (opset < 10) or constant inputs */
    static const char *const keys[4] = {"starts", "ends", "axes", "steps"};
    const int64_t *v[4] = {NULL, NULL, NULL, NULL};
    size_t nv[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
      const Onnx__AttributeProto *a = attr(n, keys[k]);
      if (a) v[k] = a->ints, nv[k] = a->n_ints;
      else if (n->n_input > (size_t)(1 + k) && n->input[1 + k][0]) {
        PqTensor *t = small_int64(c, n->input[1 + k]);
        if (!t) FAIL("node '%s' (Slice): its %s must be an INT64 constant", name, keys[k]);
        v[k] = pq_tensor_data(t), nv[k] = (size_t)pq_tensor_numel(t);
      }
    }
    if (!v[0] || !v[1]) FAIL("node '%s' (Slice): starts and ends are required", name);
    if (nv[1] != nv[0] || (v[2] && nv[2] != nv[0]) || (v[3] && nv[3] != nv[0]))
      FAIL("node '%s' (Slice): starts, ends, axes and steps must list as many values (%zu starts)", name, nv[0]);
    int64_t s0[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s0, &nd, error)) return FALSE;
    for (size_t i = 0; i < nv[0]; i++) { /* dimension 0, the batch: only a slice that keeps it whole */
      int64_t a = v[2] ? v[2][i] : (int64_t)i;
      if (a == 0 || a == -nd) {
        if (!(v[0][i] == 0 && v[1][i] >= INT32_MAX && (!v[3] || v[3][i] == 1)))
          FAIL("node '%s' (Slice): it slices along the batch (axis 0), which pquant keeps whole", name);
      }
    }
    int64_t ks[4][PQ_MAX_DIMS];
    size_t kept = 0;
    for (size_t i = 0; i < nv[0] && kept < PQ_MAX_DIMS; i++) { /* the batch's whole-axis entries dropped */
      int64_t a = v[2] ? v[2][i] : (int64_t)i;
      if (a == 0 || a == -nd) continue;
      ks[0][kept] = v[0][i], ks[1][kept] = v[1][i], ks[2][kept] = a, ks[3][kept] = v[3] ? v[3][i] : 1;
      kept++;
    }
    if (kept == 0) { /* nothing sliced: the input itself */
      int64_t zeros[PQ_MAX_DIMS] = {0};
      ONE("reshape", in0);
      pq_node_set_ints(node, "shape", (size_t)nd, zeros);
    } else {
      ONE("slice", in0);
      for (int k = 0; k < 4; k++) pq_node_set_ints(node, keys[k], kept, ks[k]);
    }
  } else if (!strcmp(op, "Split")) { /* each output a slice along the axis */
    int64_t s0[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s0, &nd, error)) return FALSE;
    int64_t axis = attr_i(n, "axis", 0);
    if (axis < 0) axis += nd;
    if (axis <= 0 || axis >= nd) FAIL("node '%s' (Split): axis %lld is the batch or outside the %d dimensions", name, (long long)attr_i(n, "axis", 0), nd);
    const Onnx__AttributeProto *sa = attr(n, "split");
    PqTensor *st = !sa && n->n_input > 1 && n->input[1][0] ? small_int64(c, n->input[1]) : NULL;
    if (!sa && n->n_input > 1 && n->input[1][0] && !st) FAIL("node '%s' (Split): its split sizes must be an INT64 constant", name);
    const int64_t *sizes = sa ? sa->ints : st ? pq_tensor_data(st) : NULL;
    size_t nsz = sa ? sa->n_ints : st ? (size_t)pq_tensor_numel(st) : 0, parts = n->n_output;
    if (sizes && nsz != parts) FAIL("node '%s' (Split): %zu sizes for %zu outputs", name, nsz, parts);
    int64_t dim = s0[axis], at = 0, each = parts ? (dim + (int64_t)parts - 1) / (int64_t)parts : 0;
    for (size_t k = 0; k < parts; k++) {
      int64_t len = sizes ? sizes[k] : MIN(each, dim - at);
      if (len < 0 || at + len > dim) FAIL("node '%s' (Split): the sizes exceed dimension %lld (%lld)", name, (long long)axis, (long long)dim);
      if (!n->output[k][0]) {
        at += len;
        continue;
      }
      g_autofree char *nn = k ? g_strdup_printf("%s_%zu", name, k) : g_strdup(name);
      const char *si[1] = {in0}, *so[1] = {n->output[k]};
      int64_t b[1] = {at}, e[1] = {at + len}, a[1] = {axis}, one[1] = {1};
      node = pq_graph_add_node(g, "slice", nn, 1, si, 1, so);
      pq_node_set_ints(node, "starts", 1, b);
      pq_node_set_ints(node, "ends", 1, e);
      pq_node_set_ints(node, "axes", 1, a);
      pq_node_set_ints(node, "steps", 1, one);
      at += len;
    }
    if (sizes && at != dim) FAIL("node '%s' (Split): the sizes add up to %lld, dimension %lld is %lld", name, (long long)at, (long long)axis, (long long)dim);
  } else if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) {
    const Onnx__AttributeProto *k = attr(n, "kernel_shape");
    if (!k || (k->n_ints != 2 && k->n_ints != 1)) FAIL("node '%s' (%s): only 1-D and 2-D pooling is supported", name, op);
    if (n->n_output > 1) FAIL("node '%s' (MaxPool): the Indices output is not supported", name);
    const char *pqop = !strcmp(op, "MaxPool") ? "maxpool2d" : "avgpool2d";
    int64_t kernel[2] = {1, k->ints[0]};
    if (k->n_ints == 2) {
      ONE(pqop, in0);
      memcpy(kernel, k->ints, sizeof kernel);
    } else {
      const char *pi[1] = {in0};
      node = as_2d(c, name, pqop, 1, pi, out0);
    }
    pq_node_set_ints(node, "kernel", 2, kernel);
    pq_node_set_int(node, "ceil_mode", attr_i(n, "ceil_mode", 0));
    pq_node_set_int(node, "count_include_pad", attr_i(n, "count_include_pad", 0));
    if (attr_i(n, "storage_order", 0)) FAIL("node '%s' (MaxPool): storage_order = 1 is not supported", name);
    if (!window_attrs(c, n, node, in0, k->ints, (int)k->n_ints, error)) return FALSE;
  } else if (!strcmp(op, "GlobalAveragePool")) ONE("global_avg_pool", in0);
  else if (!strncmp(op, "Reduce", 6) && reduce_op(op + 6)) { /* ReduceSum, ReduceMean, …: over dimensions other than the batch */
    int64_t s[PQ_MAX_DIMS], ax[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    const Onnx__AttributeProto *aa = attr(n, "axes"); /* an attribute before opset 18 (13 for ReduceSum), an input since */
    PqTensor *at = n->n_input > 1 && n->input[1][0] ? small_int64(c, n->input[1]) : NULL;
    if (!aa && n->n_input > 1 && n->input[1][0] && !at) FAIL("node '%s' (%s): its axes must be a constant", name, op);
    const int64_t *av = aa ? aa->ints : at ? pq_tensor_data(at) : NULL;
    size_t nav = aa ? aa->n_ints : at ? (size_t)pq_tensor_numel(at) : 0;
    int keep = (int)attr_i(n, "keepdims", 1);
    if (nav == 0 && attr_i(n, "noop_with_empty_axes", 0)) { /* no axes: the input as it is */
      node = add_identity(g, name, in0, out0, nd);
    } else {
      if (nav == 0) FAIL("node '%s' (%s): with no axes it reduces every dimension, the batch too; pquant keeps one batch per run", name, op);
      if (nav > (size_t)nd) FAIL("node '%s' (%s): %zu axes for %d dimensions", name, op, nav, nd);
      for (size_t i = 0; i < nav; i++) {
        ax[i] = av[i] < 0 ? av[i] + nd : av[i];
        if (ax[i] == 0) FAIL("node '%s' (%s): axis 0 is the batch, which pquant keeps", name, op);
      }
      if (!strcmp(op, "ReduceMean") && keep && nd == 4 && nav == 2 && ((ax[0] == 2 && ax[1] == 3) || (ax[0] == 3 && ax[1] == 2)))
        ONE("global_avg_pool", in0); /* over the planes of [N, C, H, W] (SE blocks): a global average pool, which finetune trains through */
      else {
        g_autofree char *pqop = g_strdup_printf("reduce_%s", reduce_op(op + 6));
        ONE(pqop, in0);
        pq_node_set_ints(node, "axes", nav, av);
        pq_node_set_int(node, "keepdims", keep);
      }
    }
  } else if (!strcmp(op, "ArgMax") || !strcmp(op, "ArgMin")) { /* the index along one axis, as a float32 value */
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    int64_t axis = attr_i(n, "axis", 0);
    if (axis < -nd || axis >= nd) FAIL("node '%s' (%s): axis %lld outside the %d dimensions", name, op, (long long)axis, nd);
    if (axis < 0) axis += nd;
    if (axis == 0) FAIL("node '%s' (%s): axis 0 is the batch, which pquant keeps", name, op);
    if (attr_i(n, "select_last_index", 0)) FAIL("node '%s' (%s): select_last_index = 1 is not supported (the first of ties is taken)", name, op);
    ONE(!strcmp(op, "ArgMax") ? "argmax" : "argmin", in0);
    pq_node_set_ints(node, "axes", 1, &axis);
    pq_node_set_int(node, "keepdims", attr_i(n, "keepdims", 1));
  } else if (!strcmp(op, "GlobalMaxPool")) { /* a max pool whose window is the whole plane */
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    if (nd != 4) FAIL("node '%s' (GlobalMaxPool): 2-D planes only ([N, C, H, W]), not %d dimensions", name, nd);
    ONE("maxpool2d", in0);
    pq_node_set_ints(node, "kernel", 2, s + 2);
  }
  else if (!strcmp(op, "BatchNormalization")) {
    if (attr_i(n, "training_mode", 0) || n->n_output > 1) FAIL("node '%s' (BatchNormalization): training mode is not supported", name);
    ONE("batch_norm", in0, n->input[1], n->input[2], n->input[3], n->input[4]);
    pq_node_set_float(node, "epsilon", attr_f(n, "epsilon", 1e-5));
  } else if (!strcmp(op, "LayerNormalization")) {
    for (size_t k = 1; k < n->n_input && k < 3; k++)
      if (n->input[k][0] && !pq_model_tensor(c->m, n->input[k]))
        FAIL("node '%s' (LayerNormalization): its %s must be a constant", name, k == 1 ? "Scale" : "B");
    if (attr_i(n, "stash_type", 1) != 1) FAIL("node '%s' (LayerNormalization): stash_type %lld is not supported (float32 only)", name,
                                             (long long)attr_i(n, "stash_type", 1));
    if (n->n_input > 2 && n->input[2][0]) ONE("layer_norm", in0, n->input[1], n->input[2]);
    else ONE("layer_norm", in0, n->input[1]);
    pq_node_set_int(node, "axis", attr_i(n, "axis", -1));
    pq_node_set_float(node, "epsilon", attr_f(n, "epsilon", 1e-5));
    static const char *const stats[3] = {NULL, "mean", "inv_std_dev"};
    for (size_t k = 1; k < n->n_output && k < 3; k++) { /* Mean, InvStdDev: a node each, computing only that */
      if (!n->output[k][0]) continue;
      g_autofree char *sname = g_strdup_printf("%s.%s", name, stats[k]);
      const char *sin[1] = {in0}, *sout[1] = {n->output[k]};
      PqNode *sn = pq_graph_add_node(g, "layer_norm", sname, 1, sin, 1, sout);
      pq_node_set_int(sn, "axis", attr_i(n, "axis", -1));
      pq_node_set_float(sn, "epsilon", attr_f(n, "epsilon", 1e-5));
      pq_node_set_string(sn, "output", stats[k]);
    }
  } else if (!strcmp(op, "Transpose")) { /* of a constant: folded; of an activation: the batch must stay first */
    PqTensor *t = pq_model_tensor(c->m, in0);
    int64_t s[PQ_MAX_DIMS], perm[PQ_MAX_DIMS], osh[PQ_MAX_DIMS];
    int nd;
    if (t) {
      nd = pq_tensor_ndim(t);
      memcpy(s, pq_tensor_shape(t), sizeof(int64_t) * (size_t)nd);
    } else if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    const Onnx__AttributeProto *pa = attr(n, "perm");
    if (pa && (int)pa->n_ints != nd) FAIL("node '%s' (Transpose): perm has %zu entries for %d dimensions", name, pa->n_ints, nd);
    int seen = 0;
    for (int d = 0; d < nd; d++) {
      perm[d] = pa ? pa->ints[d] : nd - 1 - d;
      if (perm[d] < 0 || perm[d] >= nd || (seen >> perm[d]) & 1) FAIL("node '%s' (Transpose): perm is not a permutation", name);
      seen |= 1 << perm[d];
      osh[d] = s[perm[d]];
    }
    if (!t) {
      if (nd < 1 || perm[0] != 0)
        FAIL("node '%s' (Transpose): it moves the batch (perm[0] = %" G_GINT64_FORMAT "); pquant keeps it first", name, nd ? perm[0] : -1);
      ONE("transpose", in0);
      pq_node_set_ints(node, "perm", (size_t)nd, perm);
    } else {
      if (pq_tensor_dtype(t) != PQ_DTYPE_F32) FAIL("node '%s' (Transpose): constants of type F32 only", name);
      int64_t ist[PQ_MAX_DIMS], idx[PQ_MAX_DIMS] = {0}, m = 1;
      for (int d = nd - 1; d >= 0; d--) ist[d] = m, m *= s[d];
      PqTensor *o = pq_tensor_new(out0, PQ_DTYPE_F32, nd, osh);
      const float *src = pq_tensor_data(t);
      float *dst = pq_tensor_mutable_data(o);
      for (int64_t i = 0; i < pq_tensor_numel(o); i++) { /* dst in order; idx the output index */
        int64_t off = 0;
        for (int d = 0; d < nd; d++) off += idx[d] * ist[perm[d]];
        dst[i] = src[off];
        for (int d = nd - 1; d >= 0; d--) {
          if (++idx[d] < osh[d]) break;
          idx[d] = 0;
        }
      }
      set_tensor(c, o);
    }
  } else if (!strcmp(op, "Shape")) { /* folded: the input's static shape, the batch marked */
    int64_t s[PQ_MAX_DIMS], one = 0;
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    s[0] = BATCH_MARK;
    int64_t start = attr_i(n, "start", 0), end = attr_i(n, "end", nd); /* opset 15: dimensions start … end − 1 */
    if (start < 0) start += nd;
    if (end < 0) end += nd;
    start = CLAMP(start, 0, nd), end = CLAMP(end, 0, nd);
    one = MAX(end - start, 0);
    set_tensor(c, int64_const(out0, 1, &one, s + start));
  } else if (!strcmp(op, "Gather") && small_int64(c, in0)) { /* folded: elements of a shape constant */
    PqTensor *d = small_int64(c, in0), *ix = small_int64(c, n->input[1]);
    if (!ix || attr_i(n, "axis", 0) != 0) FAIL("node '%s' (Gather): on a shape, the indices must be an INT64 constant and axis 0", name);
    const int64_t *dv = pq_tensor_data(d), *iv = pq_tensor_data(ix);
    int64_t len = pq_tensor_numel(d), cnt = pq_tensor_numel(ix), v[64];
    for (int64_t i = 0; i < cnt; i++) {
      int64_t k = iv[i] < 0 ? iv[i] + len : iv[i];
      if (k < 0 || k >= len) FAIL("node '%s' (Gather): index %" G_GINT64_FORMAT " outside %" G_GINT64_FORMAT " values", name, iv[i], len);
      v[i] = dv[k];
    }
    set_tensor(c, int64_const(out0, pq_tensor_ndim(ix), pq_tensor_shape(ix), v));
  } else if (!strcmp(op, "Gather") && !pq_model_tensor(c->m, in0)) { /* of an activation, constant indices: slices */
    PqTensor *ix = pq_model_tensor(c->m, n->input[1]);
    int64_t s0[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s0, &nd, error)) return FALSE;
    int64_t axis = attr_i(n, "axis", 0);
    if (axis < 0) axis += nd;
    if (!ix || (pq_tensor_dtype(ix) != PQ_DTYPE_I64 && pq_tensor_dtype(ix) != PQ_DTYPE_I32))
      FAIL("node '%s' (Gather): of an activation, the indices must be an INT64 or INT32 constant", name);
    if (axis <= 0 || axis >= nd) FAIL("node '%s' (Gather): axis %lld is the batch or outside the %d dimensions", name, (long long)attr_i(n, "axis", 0), nd);
    int64_t cnt = pq_tensor_numel(ix), dim = s0[axis];
    if (cnt < 1 || cnt > (INT64_C(1) << 16)) FAIL("node '%s' (Gather): %lld indices (1 to 65536 on an activation)", name, (long long)cnt);
    g_autofree int64_t *iv = g_new(int64_t, cnt);
    for (int64_t i = 0; i < cnt; i++) {
      int64_t v = pq_tensor_dtype(ix) == PQ_DTYPE_I64 ? ((const int64_t *)pq_tensor_data(ix))[i] : ((const int32_t *)pq_tensor_data(ix))[i];
      iv[i] = v < 0 ? v + dim : v;
      if (iv[i] < 0 || iv[i] >= dim) FAIL("node '%s' (Gather): index %lld outside %lld values", name, (long long)v, (long long)dim);
    }
    /* the indices as runs of equal positive steps (0 1 2 3 | 7 | 9 11 13), each run one slice along the axis;
       the runs joined by concats of at most 16 inputs, a tree of them where there are more; then the
       indices' shape in the axis's place */
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    for (int64_t i = 0; i < cnt;) {
      int64_t j = i + 1, step = i + 1 < cnt && iv[i + 1] > iv[i] ? iv[i + 1] - iv[i] : 1;
      while (j < cnt && iv[j] - iv[j - 1] == step) j++;
      if (j == i + 1) step = 1;
      char *part = fresh(c, name);
      g_autofree char *pn = g_strdup_printf("%s_%lld", name, (long long)i);
      const char *si[1] = {in0}, *so[1] = {part};
      int64_t bg[1] = {iv[i]}, e[1] = {iv[j - 1] + 1}, ax[1] = {axis}, st[1] = {step};
      PqNode *sl = pq_graph_add_node(g, "slice", pn, 1, si, 1, so);
      pq_node_set_ints(sl, "starts", 1, bg);
      pq_node_set_ints(sl, "ends", 1, e);
      pq_node_set_ints(sl, "axes", 1, ax);
      pq_node_set_ints(sl, "steps", 1, st);
      g_ptr_array_add(parts, part);
      i = j;
    }
    for (int level = 0; parts->len > 1; level++) { /* join 16 at a time until one is left */
      g_autoptr(GPtrArray) next = g_ptr_array_new_with_free_func(g_free);
      for (guint k = 0; k < parts->len; k += 16) {
        guint take = MIN(16u, parts->len - k);
        if (take == 1) {
          g_ptr_array_add(next, g_strdup(parts->pdata[k]));
          continue;
        }
        char *joined = fresh(c, name);
        g_autofree char *cn = parts->len <= 16 ? g_strdup_printf("%s_join", name) : g_strdup_printf("%s_join%d_%u", name, level, k / 16);
        const char *co[1] = {joined};
        pq_node_set_int(pq_graph_add_node(g, "concat", cn, take, (const char **)parts->pdata + k, 1, co), "axis", axis);
        g_ptr_array_add(next, joined);
      }
      g_ptr_array_unref(parts);
      parts = g_steal_pointer(&next);
    }
    const char *joined = parts->pdata[0];
    int64_t shape[PQ_MAX_DIMS], r = 0; /* data's dimensions before the axis, the indices', those after */
    shape[r++] = 0;
    for (int d = 1; d < axis; d++) shape[r++] = s0[d];
    for (int d = 0; d < pq_tensor_ndim(ix); d++) {
      if (r >= PQ_MAX_DIMS) FAIL("node '%s' (Gather): more than %d dimensions", name, PQ_MAX_DIMS);
      shape[r++] = pq_tensor_shape(ix)[d];
    }
    for (int d = (int)axis + 1; d < nd; d++) {
      if (r >= PQ_MAX_DIMS) FAIL("node '%s' (Gather): more than %d dimensions", name, PQ_MAX_DIMS);
      shape[r++] = s0[d];
    }
    const char *ri[1] = {joined}, *ro[1] = {out0};
    node = pq_graph_add_node(g, "reshape", name, 1, ri, 1, ro);
    pq_node_set_ints(node, "shape", (size_t)r, shape);
  } else if (!strcmp(op, "Expand") && pq_model_tensor(c->m, in0) && pq_tensor_dtype(pq_model_tensor(c->m, in0)) != PQ_DTYPE_I64) {
    /* of a constant (a ViT's class token before its Concat): the constant broadcast to the shape, at load; a
       batch in the shape stays 1, and the Concat repeats the block for every sample */
    PqTensor *x = pq_model_tensor(c->m, in0), *sh = small_int64(c, n->input[1]);
    if (!sh || pq_tensor_ndim(sh) != 1) FAIL("node '%s' (Expand): its shape must be a 1-D INT64 constant", name);
    const int64_t *tv = pq_tensor_data(sh), *xs = pq_tensor_shape(x);
    int nx = pq_tensor_ndim(x), nt = (int)pq_tensor_numel(sh), r = MAX(nx, nt);
    if (r > PQ_MAX_DIMS) FAIL("node '%s' (Expand): more than %d dimensions", name, PQ_MAX_DIMS);
    int64_t os[PQ_MAX_DIMS], xst[PQ_MAX_DIMS], st = 1, total = 1;
    for (int d = r - 1; d >= 0; d--) {
      int64_t a = d < r - nx ? 1 : xs[d - (r - nx)], b = d < r - nt ? 1 : tv[d - (r - nt)];
      if (b == BATCH_MARK) {
        if (d != 0) FAIL("node '%s' (Expand): the batch in dimension %d; pquant keeps it first", name, d);
        b = 1;
      }
      if (a != b && a != 1 && b != 1) FAIL("node '%s' (Expand): dimension %d of %lld does not broadcast to %lld", name, d, (long long)a, (long long)b);
      os[d] = a == 1 ? b : a;
      xst[d] = a == 1 ? 0 : st; /* the constant's stride, 0 where it is repeated */
      st *= a;
      if (os[d] < 1 || os[d] > (INT64_C(1) << 26) / total)
        FAIL("node '%s' (Expand): the result would hold more than %lld values (or none)", name, (long long)(INT64_C(1) << 26));
      total *= os[d];
    }
    g_autofree float *xf = g_new(float, pq_tensor_numel(x) ? pq_tensor_numel(x) : 1);
    if (pq_tensor_to_f32(x, xf) != 0) FAIL("node '%s' (Expand): its input '%s' is not numeric", name, in0);
    PqTensor *t = pq_tensor_new(out0, PQ_DTYPE_F32, r, os);
    float *td = pq_tensor_mutable_data(t);
    for (int64_t i = 0; i < pq_tensor_numel(t); i++) td[i] = xf[pq_walk_offset(r, os, xst, i)];
    set_tensor(c, t);
  } else if (!strcmp(op, "Expand")) {
    /* of an activation: an add of zeros shaped [1, …] with the target's size where the input's is 1 and 1
       elsewhere, which broadcasts the input as Expand does (x [N, 1, H, W] to [N, 3, H, W]: zeros [1, 3, 1, 1]) */
    int64_t xs[PQ_MAX_DIMS];
    int nx;
    PqTensor *sh = small_int64(c, n->input[1]);
    if (pq_model_tensor(c->m, in0)) FAIL("node '%s' (Expand): of an INT64 constant (shape arithmetic) is not folded", name);
    if (!sh || pq_tensor_ndim(sh) != 1) FAIL("node '%s' (Expand): its shape must be a 1-D INT64 constant", name);
    if (!shape_of(c, in0, xs, &nx, error)) return FALSE;
    const int64_t *tv = pq_tensor_data(sh);
    int nt = (int)pq_tensor_numel(sh);
    if (nt > nx) FAIL("node '%s' (Expand): a shape of %d dimensions for an input of %d would move the batch from the first", name, nt, nx);
    int64_t zs[PQ_MAX_DIMS];
    gboolean grows = FALSE;
    for (int d = 0; d < nx; d++) {
      int64_t a = d == 0 ? 1 : xs[d], b = d < nx - nt ? 1 : tv[d - (nx - nt)];
      if (d == 0 && b != 1 && b != BATCH_MARK) FAIL("node '%s' (Expand): the batch dimension must stay as it is (1 or the batch), not %lld", name, (long long)b);
      if (d == 0) b = 1;
      if (a != b && a != 1 && b != 1) FAIL("node '%s' (Expand): dimension %d of %lld does not broadcast to %lld", name, d, (long long)a, (long long)b);
      if (b < 1 || b > (INT64_C(1) << 26)) FAIL("node '%s' (Expand): dimension %d of the shape is %lld", name, d, (long long)b);
      zs[d] = a == 1 && b > 1 ? b : 1;
      grows |= zs[d] > 1;
    }
    if (!grows) { /* nothing to broadcast: the input as it is */
      node = add_identity(g, name, in0, out0, nx);
    } else {
      g_autofree char *zn = fresh(c, "expand_zeros");
      /* (new tensors hold zeros; stored as U8, a byte each, so that finetune — which trains float32 tensors —
         keeps them zeros: they are the Expand's shape, not a parameter) */
      set_tensor(c, pq_tensor_new(zn, PQ_DTYPE_U8, nx, zs));
      ONE("add", in0, zn);
    }
  } else if (!strcmp(op, "Tile") && !pq_model_tensor(c->m, in0)) {
    /* of an activation: copies joined along each repeated axis (a concat of the input with itself) */
    int64_t xs[PQ_MAX_DIMS];
    int nx;
    PqTensor *rp = small_int64(c, n->input[1]);
    if (!shape_of(c, in0, xs, &nx, error)) return FALSE;
    if (!rp || pq_tensor_ndim(rp) != 1 || pq_tensor_numel(rp) != nx)
      FAIL("node '%s' (Tile): its repeats must be a 1-D INT64 constant of %d values", name, nx);
    const int64_t *rv = pq_tensor_data(rp);
    if (rv[0] != 1) FAIL("node '%s' (Tile): repeats of the batch (%lld) are not supported; pquant keeps the batch as it is", name, (long long)rv[0]);
    int last = -1;
    for (int d = 1; d < nx; d++) {
      if (rv[d] < 1 || rv[d] > 16) FAIL("node '%s' (Tile): repeats[%d] = %lld (1 to 16)", name, d, (long long)rv[d]);
      if (rv[d] > 1) last = d;
    }
    if (last < 0) node = add_identity(g, name, in0, out0, nx); /* every repeat 1: the input as it is */
    g_autofree char *cur = g_strdup(in0);
    for (int d = 1; d <= last; d++) {
      if (rv[d] == 1) continue;
      char *o = d == last ? g_strdup(out0) : fresh(c, name);
      g_autofree char *nn = d == last ? g_strdup(name) : g_strdup_printf("%s_axis%d", name, d);
      const char *ins[16], *outs[1] = {o};
      for (int k = 0; k < rv[d]; k++) ins[k] = cur;
      node = pq_graph_add_node(g, "concat", nn, (size_t)rv[d], ins, 1, outs);
      pq_node_set_int(node, "axis", d);
      g_free(cur);
      cur = o;
    }
  } else if (!strcmp(op, "Concat") && small_int64(c, in0)) { /* folded: shape constants joined */
    int64_t v[64], cnt = 0;
    for (size_t i = 0; i < n->n_input; i++) {
      PqTensor *t = small_int64(c, n->input[i]);
      if (!t || cnt + pq_tensor_numel(t) > 64) FAIL("node '%s' (Concat): on shapes, every input must be a small INT64 constant", name);
      memcpy(v + cnt, pq_tensor_data(t), sizeof(int64_t) * (size_t)pq_tensor_numel(t));
      cnt += pq_tensor_numel(t);
    }
    set_tensor(c, int64_const(out0, 1, &cnt, v));
  } else if (!strcmp(op, "Pad")) { /* constant borders on H and W of [N, C, H, W] */
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    char buf[32];
    const char *mode = attr_s(n, "mode", buf, sizeof buf);
    if (mode && strcmp(mode, "constant")) FAIL("node '%s' (Pad): mode '%s' is not supported (constant only)", name, mode);
    const Onnx__AttributeProto *pa = attr(n, "pads");
    PqTensor *pt = n->n_input > 1 && n->input[1][0] ? small_int64(c, n->input[1]) : NULL;
    const int64_t *pv = pa ? pa->ints : pt ? pq_tensor_data(pt) : NULL;
    size_t npv = pa ? pa->n_ints : pt ? (size_t)pq_tensor_numel(pt) : 0;
    if (nd != 4 || !pv || npv != 8 || pv[0] || pv[1] || pv[4] || pv[5])
      FAIL("node '%s' (Pad): only borders on H and W of a 4-D input, with constant pads, are supported", name);
    for (int k = 0; k < 8; k++)
      if (pv[k] < 0) FAIL("node '%s' (Pad): negative pads (cropping) are not supported", name);
    float value = (float)attr_f(n, "value", 0.0);
    if (n->n_input > 2 && n->input[2][0]) {
      PqTensor *vt = pq_model_tensor(c->m, n->input[2]);
      if (!vt || pq_tensor_numel(vt) != 1 || pq_tensor_to_f32(vt, &value) != 0) FAIL("node '%s' (Pad): constant_value must be a scalar constant", name);
    }
    int64_t p4[4] = {pv[2], pv[3], pv[6], pv[7]};
    ONE("pad2d", in0);
    pq_node_set_ints(node, "pads", 4, p4);
    pq_node_set_float(node, "value", value);
  } else if (!strcmp(op, "Concat")) { /* of activations, along an axis other than the batch */
    int64_t s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    int64_t axis = attr_i(n, "axis", 1);
    if (axis < 0) axis += nd;
    if (axis == 0) FAIL("node '%s' (Concat): along the batch; pquant keeps one batch per run", name);
    if (n->n_input > 16) FAIL("node '%s' (Concat): %zu inputs, at most 16", name, n->n_input);
    const char *ins[16];
    for (size_t i = 0; i < n->n_input; i++) ins[i] = n->input[i];
    const char *outs[1] = {out0};
    node = pq_graph_add_node(g, "concat", name, n->n_input, ins, 1, outs);
    pq_node_set_int(node, "axis", axis);
  } else if (!strcmp(op, "Unsqueeze") && small_int64(c, in0) && pq_tensor_ndim(small_int64(c, in0)) == 0) { /* folded: a scalar to [1] */
    PqTensor *t = small_int64(c, in0);
    int64_t one = 1;
    set_tensor(c, int64_const(out0, 1, &one, pq_tensor_data(t)));
  } else if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) { /* a reshape, the batch (dimension 0) kept */
    gboolean un = !strcmp(op, "Unsqueeze");
    int64_t s[PQ_MAX_DIMS], axes[PQ_MAX_DIMS], o[PQ_MAX_DIMS];
    int nd, na = 0;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    const Onnx__AttributeProto *aa = attr(n, "axes");
    PqTensor *at = n->n_input > 1 && n->input[1][0] ? pq_model_tensor(c->m, n->input[1]) : NULL;
    if (n->n_input > 1 && n->input[1][0] && (!at || pq_tensor_dtype(at) != PQ_DTYPE_I64 || pq_tensor_ndim(at) != 1))
      FAIL("node '%s' (%s): axes must be an INT64 initializer", name, op);
    const int64_t *av = aa ? aa->ints : at ? pq_tensor_data(at) : NULL;
    size_t nav = aa ? aa->n_ints : at ? (size_t)pq_tensor_numel(at) : 0;
    if (!av && un) FAIL("node '%s' (Unsqueeze): no axes", name);
    int ond = un ? nd + (int)nav : nd;
    if (ond > PQ_MAX_DIMS || nav > PQ_MAX_DIMS) FAIL("node '%s' (%s): more than %d dimensions", name, op, PQ_MAX_DIMS);
    for (size_t i = 0; i < nav; i++) {
      int64_t a = av[i] < 0 ? av[i] + (un ? ond : nd) : av[i];
      if (a < 0 || a >= (un ? ond : nd)) FAIL("node '%s' (%s): axis %" G_GINT64_FORMAT " out of range", name, op, av[i]);
      if (a == 0) FAIL("node '%s' (%s): axis 0 is the batch, which pquant keeps first", name, op);
      axes[na++] = a;
    }
    int k = 0;
    if (un) {
      for (int d = 0, src = 0; d < ond; d++) {
        gboolean ins = FALSE;
        for (int i = 0; i < na; i++) ins |= axes[i] == d;
        o[k++] = ins ? 1 : s[src++];
      }
    } else {
      for (int d = 0; d < nd; d++) {
        gboolean drop = FALSE;
        for (int i = 0; i < na; i++) drop |= axes[i] == d;
        if (!av && d > 0 && s[d] == 1) drop = TRUE; /* no axes: every dimension of 1 but the batch */
        if (drop && s[d] != 1) FAIL("node '%s' (Squeeze): dimension %d is %" G_GINT64_FORMAT ", not 1", name, d, s[d]);
        if (!drop) o[k++] = s[d];
      }
    }
    o[0] = 0; /* the batch, copied at run time */
    ONE("reshape", in0);
    pq_node_set_ints(node, "shape", (size_t)k, o);
  } else if (!strcmp(op, "Flatten")) {
    ONE("flatten", in0);
    pq_node_set_int(node, "axis", attr_i(n, "axis", 1));
  } else if (!strcmp(op, "DepthToSpace") || !strcmp(op, "SpaceToDepth")) { /* a reshape, a transpose and a reshape */
    int64_t s0[PQ_MAX_DIMS], b = attr_i(n, "blocksize", 0);
    int nd;
    if (!shape_of(c, in0, s0, &nd, error)) return FALSE;
    if (nd != 4 || b < 1) FAIL("node '%s' (%s): needs a 4-D input and a blocksize >= 1", name, op);
    int64_t C = s0[1], H = s0[2], W = s0[3];
    int64_t r1[6], perm[6], r2[4] = {0, 0, 0, 0};
    gboolean d2s = !strcmp(op, "DepthToSpace");
    char md[8] = "DCR";
    attr_s(n, "mode", md, sizeof md);
    if (d2s && C % (b * b)) FAIL("node '%s' (DepthToSpace): %lld channels are not a multiple of %lld", name, (long long)C, (long long)(b * b));
    if (!d2s && (H % b || W % b)) FAIL("node '%s' (SpaceToDepth): %lld x %lld is not a multiple of %lld", name, (long long)H, (long long)W, (long long)b);
    if (d2s && !strcmp(md, "CRD")) { /* [N, C/b², b, b, H, W] → [N, C/b², H, b, W, b] */
      int64_t a[6] = {0, C / (b * b), b, b, H, W}, p[6] = {0, 1, 4, 2, 5, 3};
      memcpy(r1, a, sizeof a), memcpy(perm, p, sizeof p);
    } else if (d2s) { /* DCR: [N, b, b, C/b², H, W] → [N, C/b², H, b, W, b] */
      int64_t a[6] = {0, b, b, C / (b * b), H, W}, p[6] = {0, 3, 4, 1, 5, 2};
      memcpy(r1, a, sizeof a), memcpy(perm, p, sizeof p);
    } else { /* [N, C, H/b, b, W/b, b] → [N, b, b, C, H/b, W/b] */
      int64_t a[6] = {0, C, H / b, b, W / b, b}, p[6] = {0, 3, 5, 1, 2, 4};
      memcpy(r1, a, sizeof a), memcpy(perm, p, sizeof p);
    }
    if (d2s) r2[1] = C / (b * b), r2[2] = H * b, r2[3] = W * b;
    else r2[1] = C * b * b, r2[2] = H / b, r2[3] = W / b;
    g_autofree char *t1 = fresh(c, name), *t2 = fresh(c, name), *n1 = g_strdup_printf("%s_split", name), *n2 = g_strdup_printf("%s_move", name);
    const char *i1[1] = {in0}, *o1[1] = {t1}, *i2[1] = {t1}, *o2[1] = {t2}, *i3[1] = {t2}, *o3[1] = {out0};
    pq_node_set_ints(pq_graph_add_node(g, "reshape", n1, 1, i1, 1, o1), "shape", 6, r1);
    pq_node_set_ints(pq_graph_add_node(g, "transpose", n2, 1, i2, 1, o2), "perm", 6, perm);
    node = pq_graph_add_node(g, "reshape", name, 1, i3, 1, o3);
    pq_node_set_ints(node, "shape", 4, r2);
  } else if (!strcmp(op, "InstanceNormalization")) { /* each channel's plane normalised, then scale and bias per channel */
    int64_t s0[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s0, &nd, error)) return FALSE;
    PqTensor *sc = pq_model_tensor(c->m, n->input[1]), *bi = pq_model_tensor(c->m, n->input[2]);
    if (nd < 3 || !sc || !bi || pq_tensor_numel(sc) != s0[1] || pq_tensor_numel(bi) != s0[1])
      FAIL("node '%s' (InstanceNormalization): needs an input [N, C, …] and scale and bias constants of C values", name);
    int64_t ps[PQ_MAX_DIMS];
    ps[0] = s0[1];
    for (int d = 1; d < nd - 1; d++) ps[d] = 1; /* [C, 1, …]: broadcast over the planes */
    g_autofree char *scn = fresh(c, "instance_norm_scale"), *bin = fresh(c, "instance_norm_bias"), *t1 = fresh(c, name),
                    *t2 = fresh(c, name), *n2 = g_strdup_printf("%s_scale", name), *n3 = g_strdup_printf("%s_bias", name);
    PqTensor *ts = pq_tensor_new(scn, PQ_DTYPE_F32, nd - 1, ps), *tb = pq_tensor_new(bin, PQ_DTYPE_F32, nd - 1, ps);
    pq_tensor_to_f32(sc, pq_tensor_mutable_data(ts));
    pq_tensor_to_f32(bi, pq_tensor_mutable_data(tb));
    set_tensor(c, ts);
    set_tensor(c, tb);
    const char *i1[1] = {in0}, *o1[1] = {t1}, *i2[2] = {t1, scn}, *o2[1] = {t2}, *i3[2] = {t2, bin}, *o3[1] = {out0};
    PqNode *ln = pq_graph_add_node(g, "layer_norm", name, 1, i1, 1, o1);
    pq_node_set_int(ln, "axis", 2);
    pq_node_set_float(ln, "epsilon", attr_f(n, "epsilon", 1e-5));
    pq_graph_add_node(g, "mul", n2, 2, i2, 1, o2);
    node = pq_graph_add_node(g, "add", n3, 2, i3, 1, o3);
  } else if (!strcmp(op, "Reshape")) {
    PqTensor *s = n->n_input > 1 ? pq_model_tensor(c->m, n->input[1]) : NULL;
    if (!s || pq_tensor_dtype(s) != PQ_DTYPE_I64 || pq_tensor_ndim(s) != 1) FAIL("node '%s' (Reshape): the shape must be an INT64 initializer", name);
    const int64_t *sv0 = pq_tensor_data(s);
    int64_t sv[PQ_MAX_DIMS];
    if (pq_tensor_numel(s) > PQ_MAX_DIMS) FAIL("node '%s' (Reshape): more than %d dimensions", name, PQ_MAX_DIMS);
    for (int64_t i = 0; i < pq_tensor_numel(s); i++) {
      sv[i] = sv0[i];
      if (sv[i] == 0 && attr_i(n, "allowzero", 0)) FAIL("node '%s' (Reshape): allowzero with a 0 in the shape is not supported", name);
      if (sv[i] == BATCH_MARK) { /* the batch from a folded Shape: kept in place 0, refused elsewhere */
        if (i != 0) FAIL("node '%s' (Reshape): the batch would move to dimension %" G_GINT64_FORMAT "; pquant keeps it first", name, i);
        sv[i] = 0;
      }
    }
    ONE("reshape", in0);
    pq_node_set_ints(node, "shape", (size_t)pq_tensor_numel(s), sv);
  } else if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax")) {
    const char *pqop = !strcmp(op, "Softmax") ? "softmax" : "log_softmax";
    int64_t axis = attr_i(n, "axis", c->opset >= 13 ? -1 : 1), s[PQ_MAX_DIMS];
    int nd;
    if (!shape_of(c, in0, s, &nd, error)) return FALSE;
    if (axis < 0) axis += nd;
    if (c->opset >= 13 || axis == nd - 1) {
      ONE(pqop, in0);
      pq_node_set_int(node, "axis", axis);
    } else { /* before opset 13: over all dimensions from axis on, as one */
      g_autofree char *flat = fresh(c, "softmax_in"), *sm = fresh(c, "softmax_2d");
      const char *fi[1] = {in0}, *fo[1] = {flat}, *si[1] = {flat}, *so[1] = {sm}, *ri[1] = {sm}, *ro[1] = {out0};
      g_autofree char *n1 = g_strdup_printf("%s_flatten", name), *n3 = g_strdup_printf("%s_reshape", name);
      pq_node_set_int(pq_graph_add_node(g, "flatten", n1, 1, fi, 1, fo), "axis", axis);
      pq_node_set_int(pq_graph_add_node(g, pqop, name, 1, si, 1, so), "axis", -1);
      s[0] = 0;
      pq_node_set_ints(pq_graph_add_node(g, "reshape", n3, 1, ri, 1, ro), "shape", (size_t)nd, s);
    }
  } else if (!strcmp(op, "Constant")) {
    const Onnx__AttributeProto *v = attr(n, "value");
    if (!v || !v->t) FAIL("node '%s' (Constant): only the tensor 'value' form is supported", name);
    PqTensor *t = tensor_from_proto(v->t, out0, path, error);
    if (!t) return FALSE;
    set_tensor(c, t);
  } else {
    FAIL("node '%s': op '%s' is not supported (supported: Add, ArgMax, ArgMin, AveragePool, BatchNormalization, Cast, Clip, Concat, Constant, Conv, ConvTranspose, DepthToSpace, Div, Dropout, "
         "DequantizeLinear, DynamicQuantizeLinear, Elu, Expand, Flatten, Gather, Gelu, Gemm, GlobalAveragePool, GlobalMaxPool, HardSigmoid, HardSwish, Identity, InstanceNormalization, LayerNormalization, LeakyRelu, LogSoftmax, MatMul, MatMulInteger, ConvInteger, Max, MaxPool, Mean, Min, Mul, Pad, Pow, PRelu, "
         "QLinearConv, QLinearMatMul, QuantizeLinear, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceMax, ReduceMean, ReduceMin, ReduceProd, ReduceSum, ReduceSumSquare, Relu, Reshape, Resize, Slice, Split, Sum, "
         "Selu, Shape, Sigmoid, Softmax, Softplus, SpaceToDepth, Squeeze, Sub, Tanh, Tile, Transpose, Unsqueeze, Upsample, and elementwise Abs, Acos, Acosh, Asin, Asinh, "
         "Atan, Atanh, Ceil, Celu, Cos, Cosh, Erf, Exp, Floor, Log, Neg, Reciprocal, Round, Shrink, Sign, Sin, Sinh, Softsign, Sqrt, Tan, "
         "ThresholdedRelu)", name, op);
  }
#undef ONE
  return TRUE;
fail:
  return FALSE;
}

/* Weight w [rows, …] (float32) as 8-bit codes on fold f's grid, one scale a row (or one for all), where every
 * value is exactly what a code there stands for; else NULL. The codes are ONNX's plus 128 where signed. */
static PqTensor *dq_packed(const PqTensor *w, const DqFold *f) {
  const int64_t rows = pq_tensor_rows(w), cols = pq_tensor_cols(w);
  if (f->numel != pq_tensor_numel(w) || (f->ns != 1 && f->ns != rows) || rows < 1) return NULL;
  const float *v = pq_tensor_data(w), shift = f->is_signed ? 128.0f : 0.0f;
  g_autofree uint8_t *codes = g_new(uint8_t, MAX(rows * cols, 1));
  for (int64_t r = 0; r < rows; r++) {
    const float sc = f->s[f->ns == 1 ? 0 : r], z = f->z[f->ns == 1 ? 0 : r];
    for (int64_t i = 0; i < cols; i++) {
      const float q = rintf(v[r * cols + i] / sc) + z, code = q + shift;
      if (!(code >= 0.0f && code <= 255.0f) || (q - z) * sc != v[r * cols + i]) return NULL; /* not this grid's value */
      codes[r * cols + i] = (uint8_t)code;
    }
  }
  gboolean implicit = TRUE; /* a zero point of 128 (as pquant's codes count) everywhere: symmetric, none stored */
  for (int64_t k = 0; k < f->ns; k++) implicit &= f->z[k] + shift == 128.0f;
  int64_t ns = f->ns;
  g_autoptr(PqTensor) scales = pq_tensor_new("scales", PQ_DTYPE_F32, 1, &ns);
  memcpy(pq_tensor_mutable_data(scales), f->s, sizeof(float) * (size_t)ns);
  g_autoptr(PqTensor) zeros = implicit ? NULL : pq_tensor_new("zeros", PQ_DTYPE_U8, 1, &ns);
  for (int64_t k = 0; zeros && k < ns; k++) ((uint8_t *)pq_tensor_mutable_data(zeros))[k] = (uint8_t)(f->z[k] + shift);
  PqTensor *p = pq_tensor_new_packed(pq_tensor_name(w), 8, pq_tensor_ndim(w), pq_tensor_shape(w), ns == 1 ? PQ_QUANT_PER_TENSOR : PQ_QUANT_PER_CHANNEL,
                                     0, scales, zeros);
  if (p) memcpy(pq_tensor_mutable_data(p), codes, (size_t)(rows * cols)); /* (8-bit codes are their own packing) */
  return p;
}

/* The weights of linear and conv2d layers (groups 1) that DequantizeLinear folded from 8-bit codes, one scale a
 * row of the layer's weight or one for all, stay 8-bit: packed tensors on the same grid, so that the model is
 * the size the file stores and runs from the codes. Matched by exact values, so a weight a MatMul transposed,
 * or one scaled on the way (Gemm's alpha), is packed only where it is still exactly on that grid. */
static void pack_dq_weights(Ctx *c) {
  PqGraph *g = pq_model_graph(c->m);
  for (size_t i = 0; c->dq->len && i < pq_graph_n_nodes(g); i++) {
    const PqNode *nd = pq_graph_node(g, i);
    const int conv = !strcmp(pq_node_op(nd), "conv2d");
    if ((strcmp(pq_node_op(nd), "linear") && !conv) || pq_node_n_inputs(nd) < 2 || (conv && pq_node_get_int(nd, "groups", 1) != 1)) continue;
    PqTensor *w = pq_model_tensor(c->m, pq_node_input(nd, 1));
    if (!w || pq_tensor_dtype(w) != PQ_DTYPE_F32) continue;
    for (guint k = 0; k < c->dq->len; k++) {
      PqTensor *p = dq_packed(w, c->dq->pdata[k]);
      if (!p) continue;
      pq_model_set_tensor(c->m, p);
      pq_tensor_unref(p);
      break;
    }
  }
}

PqModel *pq_onnx_load_full(const char *path, GHashTable *constants, GError **error) {
  size_t len = 0;
  g_autofree uint8_t *data = read_file(path, &len, error);
  Onnx__ModelProto *mp = NULL;
  PqModel *m = NULL;
  GHashTable *transposed = NULL;
  GPtrArray *dq = NULL;
  if (!data) return NULL;
  if (!unpack_survives(data, len, &onnx__model_proto__descriptor))
    FAIL("the protobuf parser crashed on this file (subgraphs nested too deeply, or a malformed file)");
  mp = onnx__model_proto__unpack(NULL, len, data);
  if (!mp) FAIL("not an ONNX model (the protobuf does not parse as a ModelProto)");
  if (!mp->has_ir_version) FAIL("field ir_version is missing (an empty or foreign protobuf?)");
  if (!mp->graph) FAIL("field graph is missing");
  if (mp->n_opset_import == 0) FAIL("field opset_import is empty");
  Ctx c = {pq_model_new(), path, 0, 0, NULL, NULL};
  m = c.m;
  c.transposed = transposed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  c.dq = dq = g_ptr_array_new_with_free_func(dq_fold_free);
  for (size_t i = 0; i < mp->n_opset_import; i++)
    if (!mp->opset_import[i]->domain || !mp->opset_import[i]->domain[0] || !strcmp(mp->opset_import[i]->domain, "ai.onnx"))
      c.opset = mp->opset_import[i]->version;
  const Onnx__GraphProto *gp = mp->graph;
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const char *tn = gp->initializer[i]->name;
    if (!tn || !tn[0]) FAIL("initializer %zu has no name", i);
    PqTensor *t = tensor_from_proto(gp->initializer[i], tn, path, error);
    if (!t) goto out;
    set_tensor(&c, t);
  }
  if (gp->n_sparse_initializer) FAIL("sparse initializers are not supported");
  GHashTableIter it;
  gpointer k, v;
  if (constants) {
    g_hash_table_iter_init(&it, constants);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      PqTensor *t = pq_tensor_new(k, pq_tensor_dtype(v), pq_tensor_ndim(v), pq_tensor_shape(v));
      memcpy(pq_tensor_mutable_data(t), pq_tensor_data(v), pq_tensor_nbytes(v));
      set_tensor(&c, t);
    }
  }
  PqGraph *g = pq_model_graph(m);
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    if (!vi->name || !vi->name[0]) FAIL("graph input %zu has no name", i);
    if (pq_model_tensor(m, vi->name)) continue; /* an initializer listed as an input too */
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type->shape)
      FAIL("input '%s': needs a tensor type with a shape", vi->name);
    if (tp->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
      FAIL("input '%s': element type %s, pquant runs FLOAT inputs", vi->name, dtype_label(tp->tensor_type->elem_type));
    const Onnx__TensorShapeProto *sp = tp->tensor_type->shape;
    if (sp->n_dim < 1 || sp->n_dim > PQ_MAX_DIMS) FAIL("input '%s': %zu dimensions, 1 to %d supported", vi->name, sp->n_dim, PQ_MAX_DIMS);
    int64_t shape[PQ_MAX_DIMS];
    for (size_t d = 0; d < sp->n_dim; d++) {
      const Onnx__TensorShapeProto__Dimension *dim = sp->dim[d];
      if (d == 0) shape[d] = -1; /* the first dimension is the batch */
      else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value >= 0) shape[d] = dim->dim_value;
      else FAIL("input '%s': dimension %zu must be a non-negative number (only the first may be symbolic)", vi->name, d);
    }
    pq_graph_add_input(g, vi->name, (int)sp->n_dim, shape);
  }
  for (size_t i = 0; i < gp->n_node; i++) {
    Onnx__NodeProto *n = gp->node[i];
    if (!n->op_type || !n->op_type[0]) FAIL("node %zu ('%s'): op_type is missing", i, n->name ? n->name : "");
    for (size_t a = 0; a < n->n_attribute; a++)
      if (!n->attribute[a]->name || !n->attribute[a]->name[0])
        FAIL("node %zu ('%s', %s): attribute %zu has no name", i, n->name ? n->name : "", n->op_type, a);
    g_autofree char *gen = NULL;
    char *orig = n->name;
    if (!n->name || !n->name[0]) { /* pquant names every node */
      gen = g_strdup_printf("%s_%zu", n->op_type ? n->op_type : "node", i);
      n->name = gen;
    }
    gboolean ok = add_node(&c, n, error);
    n->name = orig; /* protobuf-c frees its own */
    if (!ok) goto out;
  }
  for (size_t i = 0; i < gp->n_output; i++) {
    if (!gp->output[i]->name || !gp->output[i]->name[0]) FAIL("graph output %zu has no name", i);
    pq_graph_add_output(g, gp->output[i]->name);
  }
  /* a folded shape that still holds the batch is for Reshape alone: any other reader, or an output, is refused */
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    const PqNode *nd = pq_graph_node(g, i);
    for (size_t j = 0; j < pq_node_n_inputs(nd); j++) {
      PqTensor *t = pq_node_input(nd, j)[0] ? pq_model_tensor(m, pq_node_input(nd, j)) : NULL;
      if (!t || pq_tensor_dtype(t) != PQ_DTYPE_I64) continue;
      for (int64_t k = 0; k < pq_tensor_numel(t); k++)
        if (((const int64_t *)pq_tensor_data(t))[k] == BATCH_MARK)
          FAIL("node '%s' reads '%s', a shape holding the batch (known only at run time): only Reshape can take it", pq_node_name(nd),
               pq_tensor_name(t));
    }
  }
  for (size_t i = 0; i < pq_graph_n_outputs(g); i++) {
    PqTensor *t = pq_model_tensor(m, pq_graph_output_name(g, i));
    if (t && pq_tensor_dtype(t) == PQ_DTYPE_I64)
      for (int64_t k = 0; k < pq_tensor_numel(t); k++)
        if (((const int64_t *)pq_tensor_data(t))[k] == BATCH_MARK) FAIL("output '%s' is a shape holding the batch", pq_tensor_name(t));
  }
  { /* initializers no node reads (Gemm's originals once rewritten, or unused ones in the file) are dropped */
    g_autoptr(GHashTable) used = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
      const PqNode *nd = pq_graph_node(g, i);
      for (size_t j = 0; j < pq_node_n_inputs(nd); j++) g_hash_table_add(used, (gpointer)pq_node_input(nd, j));
    }
    g_autoptr(GPtrArray) drop = g_ptr_array_new_with_free_func(g_free);
    for (size_t i = 0; i < pq_model_n_tensors(m); i++) {
      const char *tn = pq_tensor_name(pq_model_tensor_at(m, i));
      gboolean is_output = FALSE;
      for (size_t j = 0; j < pq_graph_n_outputs(g); j++) is_output |= !strcmp(pq_graph_output_name(g, j), tn);
      if (!g_hash_table_contains(used, tn) && !is_output) g_ptr_array_add(drop, g_strdup(tn));
    }
    for (guint i = 0; i < drop->len; i++) pq_model_remove_tensor(m, drop->pdata[i]);
  }
  pack_dq_weights(&c);
  pq_model_set_meta(m, "pquant.model", mp->graph->name && mp->graph->name[0] ? mp->graph->name : "onnx");
  if (mp->producer_name && mp->producer_name[0]) pq_model_set_meta(m, "onnx.producer", mp->producer_name);
  {
    g_autoptr(GError) verr = NULL;
    if (!pq_model_validate(m, &verr)) FAIL("%s", verr->message);
  }
  onnx__model_proto__free_unpacked(mp, NULL);
  g_hash_table_destroy(transposed);
  g_ptr_array_free(dq, TRUE);
  return m;
fail:
out:
  if (mp) onnx__model_proto__free_unpacked(mp, NULL);
  if (transposed) g_hash_table_destroy(transposed);
  if (dq) g_ptr_array_free(dq, TRUE);
  if (m) pq_model_unref(m);
  return NULL;
}

PqModel *pq_onnx_load(const char *path, GError **error) { return pq_onnx_load_full(path, NULL, error); }

gboolean pq_have_onnx(void) { return TRUE; }
