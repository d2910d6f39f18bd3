/* idx.c — IDX datasets: raw and gzip files, the Fashion-MNIST package, and every malformed input. */
#include "testutil.h"

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
  g_autofree char *a = gz ? write_gz(iname, ib) : pq_test_write(tmpdir, iname, ib->data, ib->len);
  g_autofree char *b = gz ? write_gz(lname, lb) : pq_test_write(tmpdir, lname, lb->data, lb->len);
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
  g_autofree char *tp = pq_test_write(tmpdir, "trunc.gz", gz, glen / 2);
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
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
