/* tensor.c — PqTensor: dense and packed low-bit tensors, owned or memory-mapped, plus packing helpers. */
#include "pq-private.h"

#include <math.h>
#include <string.h>

static const struct {
  const char *name;
  size_t size;
} dtype_info[] = {
    [PQ_DTYPE_F32] = {"F32", 4}, [PQ_DTYPE_F16] = {"F16", 2}, [PQ_DTYPE_BF16] = {"BF16", 2},
    [PQ_DTYPE_I8] = {"I8", 1},   [PQ_DTYPE_U8] = {"U8", 1},   [PQ_DTYPE_I32] = {"I32", 4},
    [PQ_DTYPE_I64] = {"I64", 8}, [PQ_DTYPE_PACKED] = {"PACKED", 0}, [PQ_DTYPE_U16] = {"U16", 2},
};

const char *pq_dtype_name(PqDType dtype) {
  if ((unsigned)dtype >= PQ_N_ELEMENTS(dtype_info)) return "?";
  return dtype_info[dtype].name;
}

const char *pq_quant_scheme_name(PqQuantScheme scheme) {
  static const char *const names[] = {"per_tensor", "per_channel", "per_group"};
  return (unsigned)scheme < PQ_N_ELEMENTS(names) ? names[scheme] : NULL;
}

size_t pq_dtype_size(PqDType dtype) {
  if ((unsigned)dtype >= PQ_N_ELEMENTS(dtype_info)) return 0;
  return dtype_info[dtype].size;
}

gboolean pq_shape_numel(int ndim, const int64_t *shape, int64_t *numel) {
  int64_t n = 1;
  if (ndim < 0 || ndim > PQ_MAX_DIMS) return FALSE;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return FALSE;
    if (__builtin_mul_overflow(n, shape[i], &n)) return FALSE;
  }
  if (n > G_MAXINT64 / 8) return FALSE; /* keep byte counts representable */
  *numel = n;
  return TRUE;
}

gboolean pq_packed_layout(int bits, int ndim, const int64_t *shape, int64_t *rows, int64_t *cols, size_t *row_bytes,
                          size_t *nbytes) {
  int64_t numel;
  if (bits < 2 || bits > 8 || !pq_shape_numel(ndim, shape, &numel)) return FALSE;
  int64_t r = ndim == 0 ? 1 : shape[0];
  int64_t c = r == 0 ? 0 : numel / r;
  if (ndim == 0) c = 1;
  int64_t rb = (c * bits + 7) / 8;
  int64_t total;
  if (__builtin_mul_overflow(rb, r, &total)) return FALSE;
  *rows = r;
  *cols = c;
  *row_bytes = (size_t)rb;
  *nbytes = (size_t)total;
  return TRUE;
}

int64_t pq_quant_group_fit(int64_t cols, int64_t group_size) {
  if (cols <= 0 || group_size <= 0) return 0;
  if (cols <= group_size) return cols; /* a row no longer than a group: one group */
  for (int64_t g = MIN(group_size, cols); 2 * g >= group_size; g--)
    if (cols % g == 0) return g;
  return 0;
}

int64_t pq_quant_n_scales(PqQuantScheme scheme, int64_t rows, int64_t cols, int64_t group_size) {
  switch (scheme) {
  case PQ_QUANT_PER_TENSOR: return 1;
  case PQ_QUANT_PER_CHANNEL: return rows;
  case PQ_QUANT_PER_GROUP: return group_size > 0 ? rows * (cols / group_size) : -1;
  }
  return -1;
}

gboolean pq_quant_params_valid(int bits, int ndim, const int64_t *shape, PqQuantScheme scheme, int64_t group_size,
                               const PqTensor *scales, const PqTensor *zeros, GError **error) {
  int64_t rows, cols;
  size_t rb, nb;
  if (!pq_packed_layout(bits, ndim, shape, &rows, &cols, &rb, &nb)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "bits %d outside 2..8 or invalid shape", bits);
    return FALSE;
  }
  if (scheme == PQ_QUANT_PER_GROUP) {
    if (group_size <= 0 || cols % group_size != 0) {
      g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID,
                  "group size %" G_GINT64_FORMAT " does not divide the row length %" G_GINT64_FORMAT, group_size, cols);
      return FALSE;
    }
  } else if (scheme != PQ_QUANT_PER_TENSOR && scheme != PQ_QUANT_PER_CHANNEL) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "unknown quantization scheme %d", (int)scheme);
    return FALSE;
  }
  int64_t ns = pq_quant_n_scales(scheme, rows, cols, group_size);
  /* per group, the scales may be packed themselves (a row of codes per row of scales), one level deep */
  const gboolean packed = scales && scales->dtype == PQ_DTYPE_PACKED && scheme == PQ_QUANT_PER_GROUP;
  if (!scales || (scales->dtype != PQ_DTYPE_F32 && scales->dtype != PQ_DTYPE_F16 && !packed) || scales->numel != ns) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID,
                "scales must be an F32 or F16 tensor of %" G_GINT64_FORMAT " elements%s", ns,
                scheme == PQ_QUANT_PER_GROUP ? " (or a packed one)" : "");
    return FALSE;
  }
  if (packed && scales->scales->dtype == PQ_DTYPE_PACKED) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID, "packed scales must have F32 or F16 scales of their own (one level only)");
    return FALSE;
  }
  if (zeros && (zeros->dtype != PQ_DTYPE_U8 || zeros->numel != ns)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID,
                "zero points must be a U8 tensor of %" G_GINT64_FORMAT " elements", ns);
    return FALSE;
  }
  return TRUE;
}

static PqTensor *tensor_alloc(const char *name, PqDType dtype, int ndim, const int64_t *shape) {
  int64_t numel;
  if (!pq_shape_numel(ndim, shape, &numel)) return NULL;
  PqTensor *t = g_new0(PqTensor, 1);
  t->refcount = 1;
  t->name = g_strdup(name ? name : "");
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim > 0) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
  t->numel = numel;
  t->bits = (int)(8 * pq_dtype_size(dtype));
  return t;
}

PqTensor *pq_tensor_new(const char *name, PqDType dtype, int ndim, const int64_t *shape) {
  if (dtype == PQ_DTYPE_PACKED || pq_dtype_size(dtype) == 0) return NULL;
  PqTensor *t = tensor_alloc(name, dtype, ndim, shape);
  if (!t) return NULL;
  t->nbytes = (size_t)t->numel * pq_dtype_size(dtype);
  t->data = g_try_malloc0(t->nbytes ? t->nbytes : 1); /* a shape from a file may ask for more than there is */
  if (!t->data) {
    g_free(t->name);
    g_free(t);
    return NULL;
  }
  t->owns_data = TRUE;
  return t;
}

PqTensor *pq_tensor_new_packed(const char *name, int bits, int ndim, const int64_t *shape, PqQuantScheme scheme,
                               int64_t group_size, PqTensor *scales, PqTensor *zeros) {
  if (!pq_quant_params_valid(bits, ndim, shape, scheme, group_size, scales, zeros, NULL)) return NULL;
  PqTensor *t = tensor_alloc(name, PQ_DTYPE_PACKED, ndim, shape);
  if (!t) return NULL;
  int64_t rows, cols;
  size_t rb;
  pq_packed_layout(bits, ndim, shape, &rows, &cols, &rb, &t->nbytes);
  t->data = g_malloc0(t->nbytes ? t->nbytes : 1);
  t->owns_data = TRUE;
  t->bits = bits;
  t->scheme = scheme;
  t->group_size = scheme == PQ_QUANT_PER_GROUP ? group_size : 0;
  t->scales = pq_tensor_ref(scales);
  t->zeros = zeros ? pq_tensor_ref(zeros) : NULL;
  return t;
}

PqTensor *pq_tensor_new_mapped(const char *name, PqDType dtype, int ndim, const int64_t *shape, const void *data,
                               size_t nbytes, GMappedFile *mapping) {
  PqTensor *t = tensor_alloc(name, dtype, ndim, shape);
  if (!t) return NULL;
  t->nbytes = nbytes;
  t->data = (void *)data;
  t->owns_data = FALSE;
  t->mapping = mapping ? g_mapped_file_ref(mapping) : NULL;
  return t;
}

PqTensor *pq_tensor_ref(PqTensor *tensor) {
  g_return_val_if_fail(tensor != NULL, NULL);
  g_atomic_int_inc(&tensor->refcount);
  return tensor;
}

void pq_tensor_unref(PqTensor *tensor) {
  if (!tensor || !g_atomic_int_dec_and_test(&tensor->refcount)) return;
  if (tensor->owns_data) g_free(tensor->data);
  if (tensor->mapping) g_mapped_file_unref(tensor->mapping);
  if (tensor->scales) pq_tensor_unref(tensor->scales);
  if (tensor->zeros) pq_tensor_unref(tensor->zeros);
  g_free(tensor->name);
  g_free(tensor);
}

const char *pq_tensor_name(const PqTensor *t) { return t->name; }
PqDType pq_tensor_dtype(const PqTensor *t) { return t->dtype; }
int pq_tensor_ndim(const PqTensor *t) { return t->ndim; }
const int64_t *pq_tensor_shape(const PqTensor *t) { return t->shape; }
int64_t pq_tensor_numel(const PqTensor *t) { return t->numel; }
size_t pq_tensor_nbytes(const PqTensor *t) { return t->nbytes; }
const void *pq_tensor_data(const PqTensor *t) { return t->data; }
void *pq_tensor_mutable_data(PqTensor *t) { return t->owns_data ? t->data : NULL; }
int pq_tensor_bits(const PqTensor *t) { return t->bits; }
PqQuantScheme pq_tensor_quant_scheme(const PqTensor *t) { return t->scheme; }
int64_t pq_tensor_group_size(const PqTensor *t) { return t->group_size; }
PqTensor *pq_tensor_scales(const PqTensor *t) { return t->scales; }
float *pq_packed_scales_f32(const PqTensor *t) {
  float *sc = g_new(float, MAX(t->scales->numel, 1));
  pq_tensor_to_f32(t->scales, sc);
  return sc;
}
int64_t pq_tensor_stored_bytes(const PqTensor *t) {
  return (int64_t)t->nbytes + (t->scales ? pq_tensor_stored_bytes(t->scales) : 0) + (t->zeros ? (int64_t)t->zeros->nbytes : 0);
}
PqTensor *pq_tensor_zeros(const PqTensor *t) { return t->zeros; }
int64_t pq_tensor_rows(const PqTensor *t) { return t->ndim == 0 ? 1 : t->shape[0]; }
int64_t pq_tensor_cols(const PqTensor *t) {
  int64_t r = pq_tensor_rows(t);
  return r == 0 ? 0 : t->numel / r;
}
size_t pq_tensor_row_bytes(const PqTensor *t) {
  if (t->dtype != PQ_DTYPE_PACKED) return (size_t)pq_tensor_cols(t) * pq_dtype_size(t->dtype);
  return (size_t)((pq_tensor_cols(t) * t->bits + 7) / 8);
}

void pq_pack_codes(const uint8_t *codes, int64_t n, int bits, uint8_t *out) {
  memset(out, 0, (size_t)((n * bits + 7) / 8));
  if (bits == 8) {
    memcpy(out, codes, (size_t)n);
    return;
  }
  uint32_t mask = (1u << bits) - 1;
  for (int64_t i = 0; i < n; i++) {
    int64_t bit = i * bits;
    uint32_t v = (uint32_t)(codes[i] & mask) << (bit & 7);
    out[bit >> 3] |= (uint8_t)v;
    if ((bit & 7) + bits > 8) out[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
  }
}

void pq_unpack_codes(const uint8_t *packed, int64_t n, int bits, uint8_t *codes) {
  if (bits == 8) {
    memcpy(codes, packed, (size_t)n);
    return;
  }
  uint32_t mask = (1u << bits) - 1;
  for (int64_t i = 0; i < n; i++) {
    int64_t bit = i * bits;
    uint32_t v = packed[bit >> 3];
    if ((bit & 7) + bits > 8) v |= (uint32_t)packed[(bit >> 3) + 1] << 8;
    codes[i] = (uint8_t)((v >> (bit & 7)) & mask);
  }
}

float pq_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: renormalise */
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) {
        man <<= 1;
        exp--;
      }
      man &= 0x3ff;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t pq_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
  uint32_t rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into the exponent: correct */
  return (uint16_t)half;
}

float pq_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t pq_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* keep NaN a NaN */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

int pq_tensor_to_f32(const PqTensor *t, float *out) {
  const void *d = t->data;
  int64_t n = t->numel;
  switch (t->dtype) {
  case PQ_DTYPE_F32:
    if (n > 0) memcpy(out, d, (size_t)n * 4); /* (an empty tensor's data may be NULL) */
    return 0;
  case PQ_DTYPE_F16:
    for (int64_t i = 0; i < n; i++) out[i] = pq_f16_to_f32(((const uint16_t *)d)[i]);
    return 0;
  case PQ_DTYPE_BF16:
    for (int64_t i = 0; i < n; i++) out[i] = pq_bf16_to_f32(((const uint16_t *)d)[i]);
    return 0;
  case PQ_DTYPE_I8:
    for (int64_t i = 0; i < n; i++) out[i] = ((const int8_t *)d)[i];
    return 0;
  case PQ_DTYPE_U8:
    for (int64_t i = 0; i < n; i++) out[i] = ((const uint8_t *)d)[i];
    return 0;
  case PQ_DTYPE_I32:
    for (int64_t i = 0; i < n; i++) out[i] = (float)((const int32_t *)d)[i];
    return 0;
  case PQ_DTYPE_I64:
    for (int64_t i = 0; i < n; i++) out[i] = (float)((const int64_t *)d)[i];
    return 0;
  case PQ_DTYPE_U16:
    for (int64_t i = 0; i < n; i++) out[i] = ((const uint16_t *)d)[i];
    return 0;
  case PQ_DTYPE_PACKED: {
    int64_t rows = pq_tensor_rows(t), cols = pq_tensor_cols(t);
    size_t rb = pq_tensor_row_bytes(t);
    g_autofree float *sc = pq_packed_scales_f32(t);
    const uint8_t *zp = t->zeros ? t->zeros->data : NULL;
    float zdef = (float)(1 << (t->bits - 1));
    g_autofree uint8_t *codes = g_malloc(cols ? (size_t)cols : 1);
    for (int64_t r = 0; r < rows; r++) {
      pq_unpack_codes((const uint8_t *)d + (size_t)r * rb, cols, t->bits, codes);
      for (int64_t c = 0; c < cols; c++) {
        int64_t s = t->scheme == PQ_QUANT_PER_TENSOR    ? 0
                    : t->scheme == PQ_QUANT_PER_CHANNEL ? r
                                                        : r * (cols / t->group_size) + c / t->group_size;
        float z = zp ? (float)zp[s] : zdef;
        out[r * cols + c] = sc[s] * ((float)codes[c] - z);
      }
    }
    return 0;
  }
  }
  return -1;
}

void pq_tensor_view_init(PqTensorView *v, int dtype, int ndim, const int64_t *shape, int64_t batch, void *data) {
  memset(v, 0, sizeof *v);
  v->struct_size = sizeof *v;
  v->dtype = dtype;
  v->ndim = shape ? ndim : 0;
  if (shape) memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
  if (shape && ndim > 0 && batch >= 1) v->shape[0] = batch;
  v->data = data;
}
