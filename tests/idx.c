/* idx.c — IDX datasets: raw and gzip files, the Fashion-MNIST package, and every malformed input. */
#include "testutil.h"

#include <glib/gstdio.h>

#include <math.h>
#include <string.h>
#include <zlib.h>

static char *tmpdir;

static GByteArray *idx_bytes(guint8 type, int ndim, const guint32 *dims, const guint8 *data, gsize len) {
  GByteArray *b = g_byte_array_new();
  guint8 magic[4] = {0, 0, type, (guint8)ndim};
  g_byte_array_append(b, magic, 4);
  for (int i = 0; i < ndim; i++) {
    guint8 d[4] = {(guint8)(dims[i] >> 24), (guint8)(dims[i] >> 16), (guint8)(dims[i] >> 8), (guint8)dims[i]};
    g_byte_array_append(b, d, 4);
  }
  if (len) g_byte_array_append(b, data, (guint)len);
  return b;
}

static char *write_gz(const char *name, const GByteArray *b) {
  char *p = g_build_filename(tmpdir, name, NULL);
  gzFile gz = gzopen(p, "wb");
  gzwrite(gz, b->data, b->len);
  gzclose(gz);
  return p;
}

/* A valid set of n images of 2x3 and n labels. */
static void write_set(const char *prefix, guint32 n, gboolean gz) {
  g_autofree guint8 *img = g_new(guint8, n * 6), *lab = g_new(guint8, n);
  for (guint32 i = 0; i < n * 6; i++) img[i] = (guint8)(i * 7);
  for (guint32 i = 0; i < n; i++) lab[i] = (guint8)(i % 10);
  guint32 idims[3] = {n, 2, 3}, ldims[1] = {n};
  g_autoptr(GByteArray) ib = idx_bytes(0x08, 3, idims, img, n * 6), lb = idx_bytes(0x08, 1, ldims, lab, n);
  g_autofree char *iname = g_strdup_printf("%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
  g_autofree char *lname = g_strdup_printf("%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
  g_free(gz ? write_gz(iname, ib) : pq_test_write(tmpdir, iname, ib->data, ib->len));
  g_free(gz ? write_gz(lname, lb) : pq_test_write(tmpdir, lname, lb->data, lb->len));
}

static void test_valid(void) {
  write_set("train", 5, TRUE);
  write_set("t10k", 3, FALSE);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) tr = pq_dataset_open(tmpdir, "train", &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_dataset_n_samples(tr), ==, 5);
  g_assert_cmpint(pq_dataset_sample_numel(tr), ==, 6);
  float x[12];
  guint8 l[2];
  g_assert_cmpint(pq_dataset_get_batch(tr, 4, 2, x, l), ==, 1); /* the last batch is short */
  g_assert_cmpfloat(x[0], ==, (float)(guint8)(24 * 7) / 255.0f);
  g_assert_cmpint(l[0], ==, 4);
  g_autoptr(PqDataset) te = pq_dataset_open(tmpdir, "test", &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_dataset_n_samples(te), ==, 3);
  /* a slice: the same samples, renumbered; a range outside is an error */
  g_autoptr(PqDataset) sl = pq_dataset_slice(tr, 3, 2, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_dataset_n_samples(sl), ==, 2);
  g_assert_true(g_str_has_suffix(pq_dataset_name(sl), "[3:5]"));
  float xs[12], xt[12];
  guint8 ls[2], lt[2];
  g_assert_cmpint(pq_dataset_get_batch(sl, 0, 2, xs, ls), ==, 2);
  g_assert_cmpint(pq_dataset_get_batch(tr, 3, 2, xt, lt), ==, 2);
  g_assert_cmpmem(xs, sizeof xs, xt, sizeof xt);
  g_assert_cmpmem(ls, 2, lt, 2);
  g_assert_null(pq_dataset_slice(tr, 4, 2, &err));
  g_assert_error(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID);
  g_assert_nonnull(strstr(err->message, "samples 4 to 5 asked, it has 5"));
  g_clear_error(&err);
  /* images without their labels file: unlabelled samples (no labels, no classes), sliced and read alike */
  g_autofree char *lp = g_build_filename(tmpdir, "train-labels-idx1-ubyte.gz", NULL);
  g_assert_cmpint(g_remove(lp), ==, 0);
  g_autoptr(PqDataset) un = pq_dataset_open(tmpdir, "train", &err);
  g_assert_no_error(err);
  g_assert_null(pq_dataset_labels(un));
  g_assert_cmpint(pq_dataset_n_classes(un), ==, 0);
  guint8 lu[2] = {77, 77};
  g_assert_cmpint(pq_dataset_get_batch(un, 3, 2, xs, lu), ==, 2);
  g_assert_cmpmem(xs, sizeof xs, xt, sizeof xt);
  g_assert_cmpint(lu[0], ==, 77); /* (no labels to copy) */
  g_autoptr(PqDataset) us = pq_dataset_slice(un, 1, 2, &err);
  g_assert_no_error(err);
  g_assert_null(pq_dataset_labels(us));
}

/* A .npy file: version 1.0, the header padded to a multiple of 64 bytes as NumPy writes it. */
static char *write_npy(const char *name, const char *descr, const char *shape, const char *fortran, const void *data, gsize len) {
  return pq_test_write_npy(tmpdir, name, descr, fortran, shape, TRUE, data, len);
}

/* NumPy datasets: uint8 images scaled as IDX's, float32 NCHW images as they are, labels of any integer type;
 * found by pq_dataset_open as {split}-images.npy ("test" for t10k); each malformed field an error naming it. */
static void test_npy(void) {
  char *outer = tmpdir; /* a folder of its own: test_valid's IDX files would be found first */
  g_autofree char *own = g_build_filename(outer, "npy", NULL);
  g_mkdir_with_parents(own, 0700);
  tmpdir = own;
  guint8 img8[3 * 4];
  for (int i = 0; i < 12; i++) img8[i] = (guint8)(i * 20);
  gint64 lab64[3] = {2, 0, 5};
  g_autofree char *i8 = write_npy("u8-images.npy", "|u1", "(3, 2, 2)", "False", img8, sizeof img8),
                  *l64 = write_npy("u8-labels.npy", "<i8", "(3,)", "False", lab64, sizeof lab64);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) a = pq_dataset_load_npy(i8, l64, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_dataset_n_samples(a), ==, 3);
  g_assert_cmpint(pq_dataset_sample_numel(a), ==, 4);
  g_assert_cmpint(pq_dataset_n_classes(a), ==, 6);
  float x[24];
  guint8 l[3];
  g_assert_cmpint(pq_dataset_get_batch(a, 1, 2, x, l), ==, 2);
  g_assert_cmpfloat(x[0], ==, 80.0f / 255.0f);
  g_assert_cmpint(l[0], ==, 0);
  g_assert_cmpint(l[1], ==, 5);
  /* float32 [2, 3, 2, 2], found through pq_dataset_open by its split, read as it is, sliced */
  float imgf[24];
  for (int i = 0; i < 24; i++) imgf[i] = -1.5f + 0.25f * (float)i;
  guint8 labu[2] = {1, 3};
  g_free(write_npy("test-images.npy", "<f4", "(2, 3, 2, 2)", "False", imgf, sizeof imgf));
  g_free(write_npy("test-labels.npy", "|u1", "(2,)", "False", labu, sizeof labu));
  g_autoptr(PqDataset) f = pq_dataset_open(tmpdir, "t10k", &err);
  g_assert_no_error(err);
  int nd;
  const int64_t *sh = pq_dataset_sample_shape(f, &nd);
  g_assert_cmpint(sh[0], ==, 3);
  g_assert_cmpint(sh[2], ==, 2);
  g_assert_cmpint(pq_dataset_get_batch(f, 0, 2, x, l), ==, 2);
  g_assert_cmpmem(x, sizeof imgf, imgf, sizeof imgf);
  g_autoptr(PqDataset) fs = pq_dataset_slice(f, 1, 1, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_dataset_get_batch(fs, 0, 1, x, l), ==, 1);
  g_assert_cmpfloat(x[0], ==, imgf[12]);
  g_assert_cmpint(l[0], ==, 3);
  /* every malformed field: an error naming the file and the field */
  gint16 lab16[3] = {1, 300, 2};
  float nanimg[4] = {0.0f, NAN, 1.0f, 2.0f};
  struct {
    const char *descr, *shape, *fortran;
    const void *data;
    gsize len;
    gboolean labels; /* the bad file is the labels' */
    const char *says;
  } bad[] = {
      {"|u1", "(3, 2, 2)", "True", img8, sizeof img8, FALSE, "field 'fortran_order': only C order"},
      {">f4", "(3, 2, 2)", "False", img8, sizeof img8, FALSE, "field 'descr': big-endian"},
      {"<c8", "(3, 2, 2)", "False", img8, sizeof img8, FALSE, "field 'descr': type <c8 is not supported"},
      {"|u1", "(3, 2, 2)", "False", img8, sizeof img8 - 1, FALSE, "truncated: 11 data bytes, its shape and type make 12"},
      {"|u1", "(3, 2)", "False", img8, sizeof img8, FALSE, "trailing bytes"},
      {"|u1", "(3, 2, a)", "False", img8, 12, FALSE, "field 'shape': not a tuple of sizes"},
      {"<i2", "(3, 2, 2)", "False", img8, 0, FALSE, "truncated"},
      {"<i4", "(3, 2, 2)", "False", lab64, 0, FALSE, "truncated"},
      {"<i2", "(3,)", "False", lab16, sizeof lab16, TRUE, "label 300 of sample 1 is not a class 0..255"},
      {"<f4", "(3,)", "False", imgf, 12, TRUE, "labels must be one integer a sample"},
      {"<i8", "(2,)", "False", lab64, 16, TRUE, "field 'shape': 2 labels for 3 images"},
      {"<f4", "(1, 2, 2)", "False", nanimg, sizeof nanimg, FALSE, "value 1 (sample 0) is not a finite float32"},
      {"|u1", "(12,)", "False", img8, 12, FALSE, "field 'shape': images must be"},
      {"<i2", "(3, 2, 2)", "False", lab64, sizeof lab64, FALSE, "field 'descr': images must be uint8, float32 or float64"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *bp = write_npy("bad.npy", bad[i].descr, bad[i].shape, bad[i].fortran, bad[i].data, bad[i].len);
    g_autoptr(PqDataset) d = bad[i].labels ? pq_dataset_load_npy(i8, bp, &err) : pq_dataset_load_npy(bp, l64, &err);
    if (g_str_has_prefix(bad[i].says, "value 1")) { /* one image of float32: labels for one sample */
      g_autofree char *l1 = write_npy("l1.npy", "|u1", "(1,)", "False", labu, 1);
      g_clear_error(&err);
      d = pq_dataset_load_npy(bp, l1, &err);
    }
    g_assert_null(d);
    g_assert_nonnull(err);
    if (!strstr(err->message, bad[i].says) || !strstr(err->message, "bad.npy")) g_error("case %zu: %s", i, err->message);
    g_clear_error(&err);
  }
  /* not a .npy file at all */
  g_autofree char *junk = pq_test_write(tmpdir, "junk.npy", "hello, world", 12);
  g_assert_null(pq_dataset_load_npy(junk, l64, &err));
  g_assert_nonnull(strstr(err->message, "junk.npy: not a .npy file"));
  tmpdir = outer;
}

static void test_fashion_mnist(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) ds = pq_dataset_open("fashion-mnist", "t10k", &err);
  if (!ds && g_error_matches(err, PQ_DATASET_ERROR, PQ_DATASET_ERROR_IO)) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_assert_no_error(err);
  g_assert_cmpint(pq_dataset_n_samples(ds), ==, 10000);
  int nd;
  const int64_t *s = pq_dataset_sample_shape(ds, &nd);
  g_assert_cmpint(nd, ==, 3);
  g_assert_cmpint(s[1], ==, 28);
  g_assert_cmpint(s[2], ==, 28);
  int counts[10] = {0};
  for (int i = 0; i < 10000; i++) counts[pq_dataset_labels(ds)[i]]++;
  for (int c = 0; c < 10; c++) g_assert_cmpint(counts[c], ==, 1000);
}

static void expect_error(const char *images, const char *labels, const char *needle) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) ds = pq_dataset_load_idx(images, labels, &err);
  g_assert_null(ds);
  g_assert_nonnull(err);
  g_assert_true(err->domain == PQ_DATASET_ERROR);
  if (!strstr(err->message, needle)) g_error("'%s' lacks '%s'", err->message, needle);
}

static void test_bad(void) {
  guint8 img[12] = {0}, lab[2] = {1, 2};
  guint32 idims[3] = {2, 2, 3}, ldims[1] = {2};
  g_autoptr(GByteArray) good_l = idx_bytes(0x08, 1, ldims, lab, 2);
  g_autofree char *lp = pq_test_write(tmpdir, "l", good_l->data, good_l->len);
  g_autoptr(GByteArray) good_i = idx_bytes(0x08, 3, idims, img, 12);
  g_autofree char *ip = pq_test_write(tmpdir, "i", good_i->data, good_i->len);

  struct {
    const char *name;
    GByteArray *bytes;
    const char *needle;
  } cases[] = {
      {"magic", NULL, "wrong magic"},
      {"type", idx_bytes(0x0D, 3, idims, img, 12), "type code 0x0d (float) is not supported"},
      {"type2", idx_bytes(0x42, 3, idims, img, 12), "unknown type code 0x42"},
      {"zero-dims", idx_bytes(0x08, 0, NULL, NULL, 0), "0 dimensions"},
      {"truncated", idx_bytes(0x08, 3, idims, img, 7), "truncated: 7 of 12"},
      {"trailing", idx_bytes(0x08, 3, idims, img, 12), "trailing bytes"},
      {"short", NULL, "truncated"},
  };
  cases[0].bytes = g_byte_array_new();
  g_byte_array_append(cases[0].bytes, (const guint8 *)"\x1f\x00\x08\x03xxxxxxxxxxxxxxxxxxxx", 24);
  g_byte_array_append(cases[5].bytes, (const guint8 *)"!", 1);
  cases[6].bytes = g_byte_array_new();
  g_byte_array_append(cases[6].bytes, (const guint8 *)"\x00\x00", 2);
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *p = pq_test_write(tmpdir, cases[i].name, cases[i].bytes->data, cases[i].bytes->len);
    expect_error(p, lp, cases[i].needle);
    g_autofree char *gzname = g_strconcat(cases[i].name, ".gz", NULL);
    g_autofree char *pg = write_gz(gzname, cases[i].bytes); /* the same faults inside gzip */
    expect_error(pg, lp, cases[i].needle);
    g_byte_array_unref(cases[i].bytes);
  }
  /* image/label count mismatch and a label >= 10 */
  guint32 three[1] = {3};
  guint8 lab3[3] = {0, 1, 2}, bad_lab[2] = {3, 10};
  g_autoptr(GByteArray) l3 = idx_bytes(0x08, 1, three, lab3, 3), lbad = idx_bytes(0x08, 1, ldims, bad_lab, 2);
  g_autofree char *l3p = pq_test_write(tmpdir, "l3", l3->data, l3->len);
  g_autofree char *lbadp = pq_test_write(tmpdir, "lbad", lbad->data, lbad->len);
  expect_error(ip, l3p, "3 labels for 2 images");
  expect_error(ip, lbadp, "label 10 of sample 1 is not a class 0..9");
  /* corrupt gzip: a valid gzip file with its deflate stream damaged */
  g_autofree char *gp = write_gz("corrupt.gz", good_i);
  g_autofree char *gz = NULL;
  gsize glen;
  g_file_get_contents(gp, &gz, &glen, NULL);
  for (gsize i = 10; i < glen - 8; i++) gz[i] ^= 0x5a;
  g_autofree char *cp = pq_test_write(tmpdir, "corrupt2.gz", gz, glen);
  expect_error(cp, lp, "corrupt gzip data");
  /* a truncated gzip stream */
  g_free(pq_test_write(tmpdir, "trunc.gz", gz, glen / 2));
  g_autofree char *gz_ok = NULL;
  g_file_get_contents(gp, &gz_ok, &glen, NULL);
  g_autofree char *tp2 = pq_test_write(tmpdir, "trunc2.gz", gz_ok, glen - 12);
  {
    g_autoptr(GError) err = NULL;
    g_autoptr(PqDataset) ds = pq_dataset_load_idx(tp2, lp, &err);
    g_assert_null(ds);
    g_assert_true(err->domain == PQ_DATASET_ERROR);
  }
  /* paths that are not files */
  expect_error(tmpdir, lp, "is a folder");
  expect_error("/dev/zero", lp, "not a regular file");
  expect_error(ip, "/nonexistent/labels", "cannot open");
  /* a dataset folder without the files */
  g_autoptr(GError) err = NULL;
  g_autofree char *empty = g_build_filename(tmpdir, "emptydir", NULL);
  g_mkdir_with_parents(empty, 0755);
  g_assert_null(pq_dataset_open(empty, "train", &err));
  g_assert_nonnull(strstr(err->message, "missing train-images-idx3-ubyte"));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = pq_test_mkdtemp();
  g_test_add_func("/idx/valid-raw-and-gzip", test_valid);
  g_test_add_func("/idx/fashion-mnist-package", test_fashion_mnist);
  g_test_add_func("/idx/bad-files", test_bad);
  g_test_add_func("/idx/npy", test_npy);
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
