/* idx.c — datasets in the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed. */
#include "../pq-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

G_DEFINE_QUARK(pq-dataset-error-quark, pq_dataset_error)

#define PQ_IDX_MAX_BYTES (2ull << 30) /* 2 GiB of decoded data: far beyond any IDX set in use */

#define FAIL(code, ...)                                                                                            \
  do {                                                                                                             \
    g_autofree char *msg_ = g_strdup_printf(__VA_ARGS__);                                                          \
    g_set_error(error, PQ_DATASET_ERROR, code, "%s: %s", path, msg_);                                              \
    goto out;                                                                                                      \
  } while (0)

/* Reads `len` bytes; returns the count read or -1 with *why set. */
static gint64 gz_read_all(gzFile gz, void *buf, guint64 len, const char **why) {
  guint64 done = 0;
  while (done < len) {
    unsigned chunk = (unsigned)MIN(len - done, 1u << 30);
    int r = gzread(gz, (char *)buf + done, chunk);
    if (r < 0) {
      int errnum;
      *why = gzerror(gz, &errnum);
      return -1;
    }
    if (r == 0) break;
    done += (guint64)r;
  }
  return (gint64)done;
}

/* Loads one IDX file of unsigned bytes. dims/ndim receive its dimensions. */
static guint8 *idx_load(const char *path, int expect_ndim, int64_t *dims, GError **error) {
  guint8 *data = NULL;
  gzFile gz = NULL;
  struct stat st;
  const char *why = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) FAIL(PQ_DATASET_ERROR_IO, "cannot open: %s", g_strerror(errno));
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    close(fd);
    FAIL(PQ_DATASET_ERROR_IO, "is a folder, not an IDX file");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    FAIL(PQ_DATASET_ERROR_IO, "is not a regular file");
  }
  gz = gzdopen(fd, "rb");
  if (!gz) {
    close(fd);
    FAIL(PQ_DATASET_ERROR_IO, "cannot open: out of memory");
  }
  guint8 magic[4];
  gint64 r = gz_read_all(gz, magic, 4, &why);
  if (r < 0) FAIL(PQ_DATASET_ERROR_INVALID, "corrupt gzip data: %s", why);
  if (r < 4) FAIL(PQ_DATASET_ERROR_INVALID, "truncated: %" G_GINT64_FORMAT " bytes, the IDX magic needs 4", r);
  if (magic[0] != 0 || magic[1] != 0) FAIL(PQ_DATASET_ERROR_INVALID, "wrong magic %02x%02x%02x%02x (an IDX file starts with two zero bytes)", magic[0], magic[1], magic[2], magic[3]);
  if (magic[2] != 0x08) {
    static const struct { guint8 code; const char *name; } types[] = {{0x09, "signed byte"}, {0x0B, "short"}, {0x0C, "int"}, {0x0D, "float"}, {0x0E, "double"}};
    for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
      if (types[i].code == magic[2]) FAIL(PQ_DATASET_ERROR_INVALID, "type code 0x%02x (%s) is not supported: pquant reads unsigned-byte IDX files", magic[2], types[i].name);
    FAIL(PQ_DATASET_ERROR_INVALID, "unknown type code 0x%02x", magic[2]);
  }
  int ndim = magic[3];
  if (ndim == 0) FAIL(PQ_DATASET_ERROR_INVALID, "0 dimensions");
  if (ndim != expect_ndim) FAIL(PQ_DATASET_ERROR_INVALID, "%d dimensions, expected %d", ndim, expect_ndim);
  guint8 dimbuf[4 * 3];
  r = gz_read_all(gz, dimbuf, (guint64)(4 * ndim), &why);
  if (r < 0) FAIL(PQ_DATASET_ERROR_INVALID, "corrupt gzip data: %s", why);
  if (r < 4 * ndim) FAIL(PQ_DATASET_ERROR_INVALID, "truncated in the dimension sizes");
  guint64 total = 1;
  for (int i = 0; i < ndim; i++) {
    dims[i] = ((int64_t)dimbuf[4 * i] << 24) | (dimbuf[4 * i + 1] << 16) | (dimbuf[4 * i + 2] << 8) | dimbuf[4 * i + 3];
    if (dims[i] == 0) FAIL(PQ_DATASET_ERROR_INVALID, "dimension %d is 0", i);
    total *= (guint64)dims[i];
    if (total > PQ_IDX_MAX_BYTES) FAIL(PQ_DATASET_ERROR_INVALID, "declares more than 2 GiB of data");
  }
  data = g_try_malloc(total);
  if (!data) FAIL(PQ_DATASET_ERROR_IO, "out of memory for %" G_GUINT64_FORMAT " bytes", total);
  r = gz_read_all(gz, data, total, &why);
  if (r < 0) FAIL(PQ_DATASET_ERROR_INVALID, "corrupt gzip data: %s", why);
  if ((guint64)r < total) FAIL(PQ_DATASET_ERROR_INVALID, "truncated: %" G_GINT64_FORMAT " of %" G_GUINT64_FORMAT " data bytes", r, total);
  guint8 extra;
  r = gz_read_all(gz, &extra, 1, &why);
  if (r < 0) FAIL(PQ_DATASET_ERROR_INVALID, "corrupt gzip data: %s", why);
  if (r > 0) FAIL(PQ_DATASET_ERROR_INVALID, "trailing bytes after the %" G_GUINT64_FORMAT " data bytes", total);
  gzclose(gz);
  return data;
out:
  if (gz) gzclose(gz);
  g_free(data);
  return NULL;
}

PqDataset *pq_dataset_load_idx(const char *images_path, const char *labels_path, GError **error) {
  g_return_val_if_fail(images_path, NULL);
  int64_t idims[3], ldims[1] = {0};
  const char *path = labels_path;
  g_autofree guint8 *images = idx_load(images_path, 3, idims, error);
  if (!images) return NULL;
  g_autofree guint8 *labels = labels_path ? idx_load(labels_path, 1, ldims, error) : NULL; /* (none: unlabelled samples) */
  if (labels_path && !labels) return NULL;
  if (labels && ldims[0] != idims[0]) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: %" G_GINT64_FORMAT " labels for %" G_GINT64_FORMAT " images in %s",
                path, ldims[0], idims[0], images_path);
    return NULL;
  }
  for (int64_t i = 0; i < ldims[0]; i++)
    if (labels[i] >= 10) {
      g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: label %u of sample %" G_GINT64_FORMAT " is not a class 0..9",
                  path, labels[i], i);
      return NULL;
    }
  PqDataset *ds = g_new0(PqDataset, 1);
  ds->refcount = 1;
  ds->name = g_path_get_basename(images_path);
  ds->n = idims[0];
  ds->ndim = 3;
  ds->sample_shape[0] = 1;
  ds->sample_shape[1] = idims[1];
  ds->sample_shape[2] = idims[2];
  ds->sample_numel = idims[1] * idims[2];
  ds->images = g_steal_pointer(&images);
  ds->n_classes = labels ? 10 : 0;
  ds->labels = g_steal_pointer(&labels);
  return ds;
}

static char *find_split_file(const char *dir, const char *split, const char *kind) {
  const char *suffixes[] = {".gz", ""};
  for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
    g_autofree char *base = g_strdup_printf("%s-%s-ubyte%s", split, kind, suffixes[i]);
    char *p = g_build_filename(dir, base, NULL);
    if (g_file_test(p, G_FILE_TEST_EXISTS)) return p;
    g_free(p);
  }
  return NULL;
}

PqDataset *pq_dataset_open(const char *name_or_dir, const char *split, GError **error) {
  g_return_val_if_fail(name_or_dir && split, NULL);
  const char *dir = name_or_dir;
  if (strcmp(name_or_dir, "fashion-mnist") == 0) {
    const char *env = g_getenv("PQ_FASHION_MNIST_DIR");
    dir = env && env[0] ? env : "/usr/share/datasets/fashion-mnist";
  }
  const char *sp = strcmp(split, "test") == 0 ? "t10k" : split;
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_IO,
                "%s: no such dataset folder (use \"fashion-mnist\" after installing the dataset-fashion-mnist package, or a folder of IDX files)",
                dir);
    return NULL;
  }
  g_autofree char *images = find_split_file(dir, sp, "images-idx3");
  g_autofree char *labels = find_split_file(dir, sp, "labels-idx1");
  PqDataset *ds;
  const char *found = sp; /* the split's name in the files */
  if (images) { /* (without a labels file: unlabelled samples, for calibration and distillation) */
    ds = pq_dataset_load_idx(images, labels, error);
  } else { /* NumPy files: {split}-images.npy and {split}-labels.npy ("test" for the t10k split too); images
               without a labels file are unlabelled samples (calibration, distillation) */
    const char *names[2] = {sp, strcmp(sp, "t10k") == 0 ? "test" : NULL};
    for (int i = 0; i < 2 && names[i] && !images; i++) {
      g_free(images), g_free(labels);
      g_autofree char *ib = g_strdup_printf("%s-images.npy", names[i]), *lbn = g_strdup_printf("%s-labels.npy", names[i]);
      images = g_build_filename(dir, ib, NULL), labels = g_build_filename(dir, lbn, NULL);
      if (!g_file_test(images, G_FILE_TEST_EXISTS)) {
        g_clear_pointer(&images, g_free);
        g_clear_pointer(&labels, g_free);
      } else {
        found = names[i];
        if (!g_file_test(labels, G_FILE_TEST_EXISTS)) g_clear_pointer(&labels, g_free);
      }
    }
    if (!images) {
      g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_IO,
                  "%s: missing %s-images-idx3-ubyte[.gz] and %s-labels-idx1-ubyte[.gz], or %s-images.npy and %s-labels.npy", dir, sp, sp,
                  names[1] ? names[1] : sp, names[1] ? names[1] : sp);
      return NULL;
    }
    ds = pq_dataset_load_npy(images, labels, error);
  }
  if (ds) {
    g_free(ds->name);
    ds->name = g_strdup_printf("%s/%s", strcmp(name_or_dir, "fashion-mnist") == 0 ? "fashion-mnist" : dir, found);
  }
  return ds;
}

PqDataset *pq_dataset_ref(PqDataset *ds) {
  g_atomic_int_inc(&ds->refcount);
  return ds;
}

void pq_dataset_unref(PqDataset *ds) {
  if (!ds || !g_atomic_int_dec_and_test(&ds->refcount)) return;
  g_free(ds->name);
  g_free(ds->images);
  g_free(ds->fimages);
  g_free(ds->labels);
  g_free(ds);
}

PqDataset *pq_dataset_slice(const PqDataset *ds, int64_t start, int64_t count, GError **error) {
  g_return_val_if_fail(ds, NULL);
  if (start < 0 || count < 1 || start > ds->n - count) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "%s: samples %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " asked, it has %" G_GINT64_FORMAT,
                ds->name, start, start + count - 1, ds->n);
    return NULL;
  }
  PqDataset *s = g_new0(PqDataset, 1);
  *s = *ds;
  s->refcount = 1;
  s->name = g_strdup_printf("%s[%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT "]", ds->name, start, start + count);
  s->n = count;
  if (ds->fimages) s->fimages = g_memdup2(ds->fimages + start * ds->sample_numel, sizeof(float) * (gsize)(count * ds->sample_numel));
  else s->images = g_memdup2(ds->images + start * ds->sample_numel, (gsize)(count * ds->sample_numel));
  s->labels = ds->labels ? g_memdup2(ds->labels + start, (gsize)count) : NULL;
  return s;
}

int64_t pq_dataset_n_samples(const PqDataset *ds) { return ds->n; }
int pq_dataset_n_classes(const PqDataset *ds) { return ds->n_classes; }
const int64_t *pq_dataset_sample_shape(const PqDataset *ds, int *ndim) {
  if (ndim) *ndim = ds->ndim;
  return ds->sample_shape;
}
int64_t pq_dataset_sample_numel(const PqDataset *ds) { return ds->sample_numel; }
const char *pq_dataset_name(const PqDataset *ds) { return ds->name; }
const guint8 *pq_dataset_labels(const PqDataset *ds) { return ds->labels; }

int64_t pq_dataset_get_batch(const PqDataset *ds, int64_t start, int64_t count, float *images, uint8_t *labels) {
  if (start < 0 || start >= ds->n || count <= 0) return 0;
  int64_t n = MIN(count, ds->n - start);
  int64_t total = n * ds->sample_numel;
  if (ds->fimages) {
    memcpy(images, ds->fimages + start * ds->sample_numel, sizeof(float) * (size_t)total);
  } else {
    const guint8 *src = ds->images + start * ds->sample_numel;
    for (int64_t i = 0; i < total; i++) images[i] = src[i] * (1.0f / 255.0f);
  }
  if (labels && ds->labels) memcpy(labels, ds->labels + start, (size_t)n);
  return n;
}
