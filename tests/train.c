/* train.c — the default model's trainer: deterministic, and accurate on Fashion-MNIST. */
#include "testutil.h"

#include <string.h>
#include <zlib.h>

static PqRegistry *reg;

/* A learnable synthetic set: 28x28 images whose bright 7x7 block position is the class. */
static char *write_synthetic(int n) {
  char *dir = pq_test_mkdtemp();
  const char *splits[2] = {"train", "t10k"};
  for (int s = 0; s < 2; s++) {
    GByteArray *img = g_byte_array_new(), *lab = g_byte_array_new();
    guint8 ih[16] = {0, 0, 8, 3, (guint8)(n >> 24), (guint8)(n >> 16), (guint8)(n >> 8), (guint8)n, 0, 0, 0, 28, 0, 0, 0, 28};
    guint8 lh[8] = {0, 0, 8, 1, (guint8)(n >> 24), (guint8)(n >> 16), (guint8)(n >> 8), (guint8)n};
    g_byte_array_append(img, ih, 16);
    g_byte_array_append(lab, lh, 8);
    GRand *r = g_rand_new_with_seed(100 + (guint32)s);
    for (int i = 0; i < n; i++) {
      guint8 px[784], c = (guint8)(i % 10);
      for (int p = 0; p < 784; p++) px[p] = (guint8)g_rand_int_range(r, 0, 60);
      int by = (c / 4) * 7, bx = (c % 4) * 7;
      for (int y = 0; y < 7; y++)
        for (int x = 0; x < 7; x++) px[(by + y) * 28 + bx + x] = 250;
      g_byte_array_append(img, px, 784);
      g_byte_array_append(lab, &c, 1);
    }
    g_rand_free(r);
    g_autofree char *in = g_strdup_printf("%s-images-idx3-ubyte", splits[s]), *ln = g_strdup_printf("%s-labels-idx1-ubyte", splits[s]);
    g_free(pq_test_write(dir, in, img->data, img->len));
    g_free(pq_test_write(dir, ln, lab->data, lab->len));
    g_byte_array_unref(img);
    g_byte_array_unref(lab);
  }
  return dir;
}

static double accuracy(PqModel *m, PqDataset *test) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(pq_test_cpu_backend(reg), m, 1, 256, NULL, &err);
  g_assert_no_error(err);
  double acc = 0;
  g_assert_true(pq_evaluate_accuracy(b, test, &acc, &err));
  return acc;
}

/* The synthetic set's two splits and training parameters for a short run. */
static void synthetic_splits(const char *dir, PqDataset **train, PqDataset **test, PqTrainParams *p, int epochs) {
  g_autoptr(GError) err = NULL;
  *train = pq_dataset_open(dir, "train", &err);
  g_assert_no_error(err);
  *test = pq_dataset_open(dir, "test", &err);
  g_assert_no_error(err);
  pq_train_params_init(p);
  p->epochs = epochs;
  p->batch_size = 32;
}

static void test_deterministic(void) {
  g_autofree char *dir = write_synthetic(600);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) train = NULL;
  g_autoptr(PqDataset) test = NULL;
  PqTrainParams p;
  synthetic_splits(dir, &train, &test, &p, 2);
  g_autoptr(PqModel) a = pq_train_mlp(train, &p, &err);
  g_autoptr(PqModel) b = pq_train_mlp(train, &p, &err);
  g_assert_no_error(err);
  for (size_t i = 0; i < pq_model_n_tensors(a); i++) {
    PqTensor *ta = pq_model_tensor_at(a, i), *tb = pq_model_tensor_at(b, i);
    g_assert_cmpmem(pq_tensor_data(ta), pq_tensor_nbytes(ta), pq_tensor_data(tb), pq_tensor_nbytes(tb));
  }
  p.seed = 7; /* another seed gives other weights */
  g_autoptr(PqModel) c = pq_train_mlp(train, &p, &err);
  PqTensor *wa = pq_model_tensor(a, "fc1.weight"), *wc = pq_model_tensor(c, "fc1.weight");
  g_assert_true(memcmp(pq_tensor_data(wa), pq_tensor_data(wc), pq_tensor_nbytes(wa)) != 0);
  g_assert_cmpfloat(accuracy(a, test), >=, 0.99);
  g_assert_true(pq_model_validate(a, &err));
  g_assert_cmpint(pq_model_n_params(a), ==, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  pq_test_rmdir(dir);
}

static void test_bad_params(void) {
  g_autofree char *dir = write_synthetic(20);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) train = pq_dataset_open(dir, "train", &err);
  PqTrainParams p;
  pq_train_params_init(&p);
  p.epochs = 0;
  g_assert_null(pq_train_mlp(train, &p, &err));
  g_assert_nonnull(err);
  pq_test_rmdir(dir);
}

/* The CNN: its graph and parameter count, deterministic, learns the synthetic set; vector samples refused. */
static void test_cnn(void) {
  g_autofree char *dir = write_synthetic(600);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) train = NULL;
  g_autoptr(PqDataset) test = NULL;
  PqTrainParams p;
  synthetic_splits(dir, &train, &test, &p, 3);
  p.learning_rate = 2e-3;
  g_autoptr(PqModel) a = pq_train_cnn(train, &p, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) b = pq_train_cnn(train, &p, &err);
  g_assert_no_error(err);
  for (size_t i = 0; i < pq_model_n_tensors(a); i++) {
    PqTensor *ta = pq_model_tensor_at(a, i), *tb = pq_model_tensor_at(b, i);
    g_assert_cmpmem(pq_tensor_data(ta), pq_tensor_nbytes(ta), pq_tensor_data(tb), pq_tensor_nbytes(tb));
  }
  g_assert_true(pq_model_validate(a, &err));
  g_assert_cmpint(pq_model_n_params(a), ==, (16 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64) + (10 * 64 * 3 * 3 + 10));
  int convs = 0;
  PqGraph *g = pq_model_graph(a);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) convs += !strcmp(pq_node_op(pq_graph_node(g, i)), "conv2d");
  g_assert_cmpint(convs, ==, 3);
  double acc = accuracy(a, test);
  g_test_message("CNN on the synthetic set: %.2f%%", 100 * acc);
  g_assert_cmpfloat(acc, >=, 0.95);
  /* samples that are vectors are not images */
  guint8 npy[128] = "\x93NUMPY\x01\x00";
  const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }";
  size_t hl = 128 - 10;
  npy[8] = (guint8)hl;
  memset(npy + 10, ' ', hl);
  memcpy(npy + 10, hdr, strlen(hdr));
  npy[127] = '\n';
  GByteArray *f = g_byte_array_new();
  g_byte_array_append(f, npy, 128);
  float vals[8] = {0};
  g_byte_array_append(f, (guint8 *)vals, sizeof vals);
  g_autofree char *vdir = pq_test_mkdtemp();
  g_free(pq_test_write(vdir, "train-images.npy", f->data, f->len));
  g_byte_array_unref(f);
  g_autoptr(PqDataset) vec = pq_dataset_open(vdir, "train", &err);
  g_assert_no_error(err);
  g_assert_null(pq_train_cnn(vec, &p, &err));
  g_assert_nonnull(strstr(err->message, "the CNN needs images of [H, W] or [C, H, W]"));
  pq_test_rmdir(vdir);
  pq_test_rmdir(dir);
}

/* The default recipe reaches the advertised accuracy on the real Fashion-MNIST test set. */
static void test_fashion_mnist(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) train = pq_dataset_open("fashion-mnist", "train", &err);
  if (!train) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_autoptr(PqDataset) test = pq_dataset_open("fashion-mnist", "t10k", &err);
  PqTrainParams p;
  pq_train_params_init(&p);
  g_autoptr(PqModel) m = pq_train_mlp(train, &p, &err);
  g_assert_no_error(err);
  double acc = accuracy(m, test);
  g_test_message("Fashion-MNIST test accuracy %.2f%%", 100 * acc);
  g_assert_cmpfloat(acc, >=, 0.885);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  reg = pq_registry_new();
  g_test_add_func("/train/deterministic", test_deterministic);
  g_test_add_func("/train/bad-params", test_bad_params);
  g_test_add_func("/train/cnn", test_cnn);
  g_test_add_func("/train/fashion-mnist-accuracy", test_fashion_mnist);
  int rc = g_test_run();
  pq_registry_free(reg);
  return rc;
}
