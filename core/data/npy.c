/* npy.c — datasets as NumPy .npy files: images [N, …] (uint8, scaled by 1/255 as IDX images are, or
 * float32/float64, taken as they are: preprocessing such as a per-channel normalisation is baked in by
 * whoever wrote them) and labels [N] of any integer type with values 0..255. C order, little-endian. */
#include "../pq-private.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define PQ_NPY_MAX_BYTES (8ull << 30)

#define FAIL(...)                                                                                                  \
  do {                                                                                                             \
    g_autofree char *msg_ = g_strdup_printf(__VA_ARGS__);                                                          \
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: %s", path, msg_);                          \
    return FALSE;                                                                                                  \
  } while (0)

typedef struct {
  GMappedFile *file;
  const guint8 *data; /* past the header */
  char kind;          /* 'u', 'i' or 'f' */
  int itemsize;
  int ndim;
  int64_t shape[8];
  guint64 count;      /* Π shape */
} Npy;

/* The value of `key` in the header dict: a pointer just past "'key':" and its spaces, or NULL. */
static const char *npy_field(const char *header, const char *key) {
  g_autofree char *pat = g_strdup_printf("'%s'", key);
  const char *p = strstr(header, pat);
  if (!p) return NULL;
  p += strlen(pat);
  while (*p == ' ') p++;
  if (*p != ':') return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

static gboolean npy_open(const char *path, Npy *n, GError **error) {
  memset(n, 0, sizeof *n);
  GError *ferr = NULL;
  n->file = g_mapped_file_new(path, FALSE, &ferr);
  if (!n->file) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_IO, "%s: cannot open: %s", path, ferr->message);
    g_error_free(ferr);
    return FALSE;
  }
  const guint8 *b = (const guint8 *)g_mapped_file_get_contents(n->file);
  gsize size = g_mapped_file_get_length(n->file);
  if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0) FAIL("not a .npy file (it starts with \\x93NUMPY)");
  int major = b[6];
  gsize hlen, hstart;
  if (major == 1) hlen = (gsize)b[8] | (gsize)b[9] << 8, hstart = 10;
  else if (major == 2 || major == 3) {
    if (size < 12) FAIL("truncated in the header length");
    hlen = (gsize)b[8] | (gsize)b[9] << 8 | (gsize)b[10] << 16 | (gsize)b[11] << 24, hstart = 12;
  } else FAIL("format version %d.%d is not one pquant reads (1, 2 or 3)", major, b[7]);
  if (hlen > size - hstart) FAIL("truncated: the header says %zu bytes, the file has %zu after it", hlen, size - hstart);
  g_autofree char *header = g_strndup((const char *)b + hstart, hlen);
  const char *d = npy_field(header, "descr"), *fo = npy_field(header, "fortran_order"), *sh = npy_field(header, "shape");
  if (!d || !fo || !sh) FAIL("the header lacks %s", !d ? "'descr'" : !fo ? "'fortran_order'" : "'shape'");
  /* descr: '<f4', '|u1', … */
  if (*d != '\'' || !d[1] || !d[2] || !d[3] || !strchr("<>|=", d[1])) FAIL("field 'descr': not a simple type such as '<f4'");
  if (d[1] == '>') FAIL("field 'descr': big-endian data is not supported");
  n->kind = d[2];
  char *end;
  n->itemsize = (int)strtol(d + 3, &end, 10);
  if (*end != '\'' || !strchr("uif", n->kind) || !(n->itemsize == 1 || n->itemsize == 2 || n->itemsize == 4 || n->itemsize == 8) ||
      (n->kind == 'f' && n->itemsize < 4))
    FAIL("field 'descr': type %.*s is not supported (unsigned or signed integers, float32, float64)", (int)(strchr(d + 1, '\'') ? strchr(d + 1, '\'') - d - 1 : 3), d + 1);
  if (!g_str_has_prefix(fo, "False")) FAIL("field 'fortran_order': only C order is supported");
  if (*sh != '(') FAIL("field 'shape': not a tuple");
  const char *p = sh + 1;
  n->count = 1;
  for (;;) {
    while (*p == ' ') p++;
    if (*p == ')') break;
    if (n->ndim == 8) FAIL("field 'shape': more than 8 dimensions");
    gint64 v = g_ascii_strtoll(p, &end, 10);
    if (end == p || v < 0) FAIL("field 'shape': not a tuple of sizes");
    n->shape[n->ndim++] = v;
    if (v && n->count > PQ_NPY_MAX_BYTES / (guint64)v) FAIL("field 'shape': more than 8 GiB of data");
    n->count *= (guint64)v;
    p = end;
    while (*p == ' ') p++;
    if (*p == ',') p++;
    else if (*p != ')') FAIL("field 'shape': not a tuple of sizes");
  }
  if (n->count > PQ_NPY_MAX_BYTES / (guint64)n->itemsize) FAIL("field 'shape': more than 8 GiB of data");
  guint64 want = n->count * (guint64)n->itemsize, have = size - hstart - hlen;
  if (have != want)
    FAIL("%s: %" G_GUINT64_FORMAT " data bytes, its shape and type make %" G_GUINT64_FORMAT, have < want ? "truncated" : "trailing bytes", have, want);
  n->data = b + hstart + hlen;
  return TRUE;
}

static double npy_value(const Npy *n, guint64 i) {
  const guint8 *q = n->data + i * (guint64)n->itemsize;
  union {
    guint8 b[8];
    guint16 u16;
    guint32 u32;
    guint64 u64;
    gint8 i8;
    gint16 i16;
    gint32 i32;
    gint64 i64;
    float f;
    double d;
  } v;
  memcpy(v.b, q, (size_t)n->itemsize); /* little-endian, as this machine */
  switch (n->kind) {
  case 'u': return n->itemsize == 1 ? v.b[0] : n->itemsize == 2 ? v.u16 : n->itemsize == 4 ? v.u32 : (double)v.u64;
  case 'i': return n->itemsize == 1 ? v.i8 : n->itemsize == 2 ? v.i16 : n->itemsize == 4 ? v.i32 : (double)v.i64;
  default: return n->itemsize == 4 ? v.f : v.d;
  }
}

PqDataset *pq_dataset_load_npy(const char *images_path, const char *labels_path, GError **error) {
  g_return_val_if_fail(images_path, NULL);
  Npy im, lb = {0};
  if (!npy_open(images_path, &im, error)) {
    if (im.file) g_mapped_file_unref(im.file);
    return NULL;
  }
  if (labels_path && !npy_open(labels_path, &lb, error)) {
    g_mapped_file_unref(im.file);
    if (lb.file) g_mapped_file_unref(lb.file);
    return NULL;
  }
  PqDataset *ds = NULL;
  const char *path = images_path;
  GError **err = error;
  gboolean ok = FALSE;
  do {
    if (im.ndim < 2 || im.ndim > 4) {
      g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: field 'shape': images must be [N, H, W], [N, C, H, W] or [N, D]", path);
      break;
    }
    if (im.kind != 'f' && !(im.kind == 'u' && im.itemsize == 1)) {
      g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: field 'descr': images must be uint8, float32 or float64", path);
      break;
    }
    path = labels_path;
    if (labels_path && (lb.ndim != 1 || lb.kind == 'f')) {
      g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: labels must be one integer a sample (field 'shape' [N], an integer 'descr')", path);
      break;
    }
    if (labels_path && lb.shape[0] != im.shape[0]) {
      g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: field 'shape': %" G_GINT64_FORMAT " labels for %" G_GINT64_FORMAT " images in %s", path,
                  lb.shape[0], im.shape[0], images_path);
      break;
    }
    if (im.shape[0] < 1) {
      g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: field 'shape': no samples", images_path);
      break;
    }
    ds = g_new0(PqDataset, 1);
    ds->refcount = 1;
    ds->name = g_path_get_basename(images_path);
    ds->n = im.shape[0];
    ds->ndim = 3;
    int64_t c = im.ndim == 4 ? im.shape[1] : 1, h = im.ndim >= 3 ? im.shape[im.ndim - 2] : 1, w = im.shape[im.ndim - 1];
    ds->sample_shape[0] = c, ds->sample_shape[1] = h, ds->sample_shape[2] = w;
    ds->sample_numel = c * h * w;
    ds->labels = labels_path ? g_malloc((gsize)ds->n) : NULL; /* (no labels file: unlabelled samples, no classes) */
    int max = -1;
    ok = TRUE;
    for (int64_t i = 0; labels_path && i < ds->n && ok; i++) {
      double v = npy_value(&lb, (guint64)i);
      if (!(v >= 0 && v <= 255)) {
        g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: label %.0f of sample %" G_GINT64_FORMAT " is not a class 0..255", path, v, i);
        ok = FALSE;
      } else {
        ds->labels[i] = (guint8)v;
        max = MAX(max, ds->labels[i]);
      }
    }
    if (!ok) break;
    ds->n_classes = max + 1;
    if (im.kind == 'u') {
      ds->images = g_memdup2(im.data, (gsize)im.count);
    } else {
      ds->fimages = g_try_new(float, im.count);
      if (!ds->fimages) {
        g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_IO, "%s: out of memory for %" G_GUINT64_FORMAT " values", images_path, im.count);
        ok = FALSE;
        break;
      }
      for (guint64 i = 0; i < im.count && ok; i++) {
        ds->fimages[i] = (float)npy_value(&im, i);
        if (!isfinite(ds->fimages[i])) {
          g_set_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: value %" G_GUINT64_FORMAT " (sample %" G_GUINT64_FORMAT ") is not a finite float32", images_path,
                      i, i / (guint64)ds->sample_numel);
          ok = FALSE;
        }
      }
    }
  } while (0);
  g_mapped_file_unref(im.file);
  if (lb.file) g_mapped_file_unref(lb.file);
  if (!ok) {
    if (ds) pq_dataset_unref(ds);
    return NULL;
  }
  return ds;
}

typedef struct {
  GString *header;
  const float *data;
  guint64 count;
} NpyOut;

static gboolean npy_write_body(FILE *out, gpointer user_data, GError **error) {
  const NpyOut *o = user_data;
  if (fwrite(o->header->str, 1, o->header->len, out) != o->header->len ||
      (o->count && fwrite(o->data, sizeof(float), (size_t)o->count, out) != (size_t)o->count)) {
    g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO, "write failed: %s", g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

gboolean pq_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data, GError **error) {
  g_return_val_if_fail(path && ndim >= 1 && ndim <= 8 && shape, FALSE);
  /* version 1.0: magic, version, a 2-byte header length, then the dict padded with spaces to a multiple of 64
     bytes in all, ending in a newline */
  g_autoptr(GString) dict = g_string_new("{'descr': '<f4', 'fortran_order': False, 'shape': (");
  guint64 count = 1;
  for (int d = 0; d < ndim; d++) {
    g_string_append_printf(dict, "%s%" G_GINT64_FORMAT, d ? ", " : "", shape[d]);
    count *= (guint64)shape[d];
  }
  g_string_append(dict, ndim == 1 ? ",), }" : "), }");
  const gsize used = 10 + dict->len + 1, padded = (used + 63) / 64 * 64;
  g_string_append_len(dict, "                                                                ", (gssize)(padded - used));
  g_string_append_c(dict, '\n');
  const gsize hlen = dict->len;
  NpyOut o = {g_string_new_len("\x93NUMPY\x01\x00", 8), data, count};
  g_string_append_c(o.header, (char)(hlen & 0xff));
  g_string_append_c(o.header, (char)(hlen >> 8));
  g_string_append_len(o.header, dict->str, (gssize)dict->len);
  gboolean ok = pq_write_atomically(path, npy_write_body, &o, error);
  g_string_free(o.header, TRUE);
  return ok;
}
