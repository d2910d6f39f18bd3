/* cli.c — pqrun as a user runs it: exit codes, messages naming files and fields, and outputs. */
#include "testutil.h"

#include <glib/gstdio.h>

#include <json-glib/json-glib.h>
#include <math.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static char *tmpdir;

/* Runs pqrun with arguments; returns the exit status and fills stdout/stderr. */
static int pqrun(char **out, char **err, ...) {
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_ptr_array_add(argv, (gpointer)PQRUN);
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *))) g_ptr_array_add(argv, (gpointer)a);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  int status = 0;
  g_autoptr(GError) e = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status, &e));
  g_assert_no_error(e);
  g_assert_true(WIFEXITED(status)); /* never a crash */
  return WEXITSTATUS(status);
}

static void test_version_help(void) {
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(pqrun(&out, &err, "--version", NULL), ==, 0);
  g_assert_true(g_str_has_prefix(out, "pqrun " PQ_VERSION_STRING));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--help", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "--model"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "frobnicate", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "unknown command 'frobnicate'"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--bogus", NULL), ==, 2);
}

static void test_eval_and_info(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 16, 10, 5);
  g_autofree char *path = g_build_filename(tmpdir, "tiny.safetensors", NULL);
  g_autoptr(GError) e = NULL;
  g_assert_true(pq_model_save(m, path, &e));
  g_autofree char *out = NULL, *err = NULL;
  int rc = pqrun(&out, &err, "eval", "--model", path, NULL);
  if (rc != 0 && strstr(err, "no such dataset folder")) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_assert_cmpint(rc, ==, 0);
  g_assert_nonnull(strstr(out, "accuracy: "));
  g_assert_nonnull(strstr(out, "of 10000 correct"));
  g_autofree char *first = g_strdup(out);
  g_free(out);
  g_free(err);
  /* backend options: the portable kernels give the same accuracy; a bad value or key is a clear error */
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--backend-opt", "simd=false", NULL), ==, 0);
  *strstr(first, " in ") = '\0'; /* "accuracy: P% (N of 10000 correct)", without the time */
  g_assert_true(g_str_has_prefix(out, first));
  g_free(out);
  g_free(err);
  /* a batch beyond the test set is the test set in one batch (not 400 GB reserved for activations) */
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--batch", "100000000", NULL), ==, 0);
  g_assert_true(g_str_has_prefix(out, first));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--backend-opt", "simd=maybe", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "cpu: option \"simd\" must be true or false, not \"maybe\""));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--backend-opt", "threads", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "--backend-opt 'threads': expected KEY=VALUE"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", path, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "w1                   F32    [16, 784]"));
  g_assert_nonnull(strstr(out, "total: 12730 parameters, 50920 bytes"));
}

static void test_bad_inputs(void) {
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *missing = g_build_filename(tmpdir, "missing.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", missing, NULL), ==, 1);
  g_assert_nonnull(strstr(err, missing));
  g_assert_nonnull(strstr(err, "cannot open"));
  g_free(out);
  g_free(err);
  g_autofree char *garbage = pq_test_write_safetensors(tmpdir, "garbage.safetensors", "{\"a\":{\"dtype\":1}}", NULL, 0);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", garbage, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "tensor \"a\": field \"dtype\""));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", "/dev/zero", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "/dev/zero: is not a regular file"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "plugins", "--plugin", "/nonexistent/x.so", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "plugin /nonexistent/x.so: cannot open"));
  g_free(out);
  g_free(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 4, 10, 5);
  g_autofree char *path = g_build_filename(tmpdir, "m2.safetensors", NULL);
  g_assert_true(pq_model_save(m, path, NULL));
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--dataset", tmpdir, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "missing t10k-images-idx3-ubyte"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--backend", "tpu", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "no backend plugin named 'tpu' (loaded: cpu"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--threads", "-2", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "pqrun eval: --threads must be at least 1"));
}

static void test_plugins_listing(void) {
  g_autofree char *out = NULL, *err = NULL;
  g_autofree char *good = g_build_filename(TEST_PLUGIN_DIR, "probe.so", NULL);
  g_assert_cmpint(pqrun(&out, &err, "plugins", "--plugin", good, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "backend    cpu"));
  g_assert_nonnull(strstr(out, "probe      test_probe"));
  g_assert_nonnull(strstr(out, "options: nan (boolean, default false)"));
  g_assert_nonnull(strstr(out, "rejected (0)"));
  { /* equalize says it is exact; quant, listed after it, does not */
    const char *eq = strstr(out, "compressor equalize"), *next = eq ? strstr(eq + 1, "  compressor ") : NULL, *ex = eq ? strstr(eq, "exact: ") : NULL;
    g_assert_nonnull(ex);
    g_assert_true(!next || ex < next);
    g_assert_null(strstr(ex + 1, "exact: "));
  }
  g_free(out);
  g_free(err);
  /* a folder on PQ_PLUGIN_PATH with broken plugins: each rejected file is listed with its reason */
  g_setenv("PQ_PLUGIN_PATH", TEST_PLUGIN_DIR, TRUE);
  g_assert_cmpint(pqrun(&out, &err, "plugins", NULL), ==, 0);
  g_unsetenv("PQ_PLUGIN_PATH");
  g_assert_nonnull(strstr(out, "rejected (16)"));
  g_assert_nonnull(strstr(out, "built for ABI 2."));
  g_assert_nonnull(strstr(out, "undefined symbol"));
  g_assert_nonnull(strstr(out, "NOT USABLE HERE: no test accelerator on this machine"));
}

/* A .npy file (version 1.0, its header unpadded) of `descr` and `shape` holding `len` bytes. */
static void write_npy(const char *dir, const char *name, const char *descr, const char *shape, const void *data, gsize len) {
  g_free(pq_test_write_npy(dir, name, descr, "False", shape, FALSE, data, len));
}

/* A dataset of NumPy files in a folder (float32 [N, 6] features, int64 labels): eval and run take it with
 * --dataset, for a model whose input is not an image. */
static void test_npy_dataset(void) {
  g_autofree char *dir = g_build_filename(tmpdir, "npyset", NULL);
  g_mkdir_with_parents(dir, 0700);
  enum { N = 300 };
  g_autofree float *x = g_new(float, N * 6);
  gint64 y[N];
  GRand *r = g_rand_new_with_seed(8);
  for (int i = 0; i < N; i++) {
    y[i] = g_rand_int_range(r, 0, 3);
    for (int j = 0; j < 6; j++) x[i * 6 + j] = (float)g_rand_double_range(r, -1, 1) + (j == y[i] ? 2.0f : 0.0f); /* separable */
  }
  g_rand_free(r);
  for (int split = 0; split < 2; split++) {
    write_npy(dir, split ? "test-images.npy" : "train-images.npy", "<f4", "(300, 6)", x, sizeof(float) * N * 6);
    write_npy(dir, split ? "test-labels.npy" : "train-labels.npy", "<i8", "(300,)", y, sizeof y);
  }
  /* a model that reads the class from features 0-2 */
  g_autoptr(PqModel) m = pq_test_tiny_mlp(6, 8, 3, 3);
  float *w1 = pq_tensor_mutable_data(pq_model_tensor(m, "w1")), *b1 = pq_tensor_mutable_data(pq_model_tensor(m, "b1"));
  float *w2 = pq_tensor_mutable_data(pq_model_tensor(m, "w2")), *b2 = pq_tensor_mutable_data(pq_model_tensor(m, "b2"));
  memset(w1, 0, 48 * sizeof(float)), memset(b1, 0, 8 * sizeof(float)), memset(w2, 0, 24 * sizeof(float)), memset(b2, 0, 3 * sizeof(float));
  for (int c = 0; c < 3; c++) w1[c * 6 + c] = 1.0f, w2[c * 8 + c] = 1.0f;
  g_autofree char *path = g_build_filename(tmpdir, "features.safetensors", NULL);
  g_assert_true(pq_model_save(m, path, NULL));
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--dataset", dir, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "(300 samples)"));
  const char *acc = strstr(out, "accuracy: ");
  g_assert_nonnull(acc);
  g_assert_cmpfloat(g_ascii_strtod(acc + 10, NULL), >, 90.0);
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--dataset", dir, "--compressor", "quant", "--opt", "quant.bits=8", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "compressed "));
  g_free(out);
  g_free(err);
  /* training images without a labels file: unlabelled samples, for calibration and distillation only */
  g_autofree char *train_labels = g_build_filename(dir, "train-labels.npy", NULL);
  g_assert_cmpint(g_unlink(train_labels), ==, 0);
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--dataset", dir, "--compressor", "low_rank", "--opt", "low_rank.rank=1", "--compressor",
                        "finetune", "--opt", "finetune.distill=1", "--opt", "finetune.samples=300", "--calibration", "300", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "distilled from the original (weight 1)"));
  g_assert_nonnull(strstr(out, "agreement with the original on them"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--dataset", dir, "--compressor", "finetune", "--calibration", "300", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "with labels unless distill is 1"));
  g_free(out);
  g_free(err);
  /* a test split without labels: accuracy says so */
  g_autofree char *test_labels = g_build_filename(dir, "test-labels.npy", NULL);
  g_assert_cmpint(g_unlink(test_labels), ==, 0);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--dataset", dir, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "/test has no labels (no labels file): accuracy needs them"));
  g_free(out);
  g_free(err);
  g_autofree char *never = g_build_filename(tmpdir, "never.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "train", "--dataset", dir, "-o", never, "--quiet", NULL), ==, 1);
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));
  g_assert_nonnull(strstr(err, "has no labels (no labels file): training needs them"));
  g_free(out);
  g_free(err);
  /* a malformed file is an error naming it */
  write_npy(dir, "test-labels.npy", "<f4", "(300,)", x, sizeof(float) * N);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", path, "--dataset", dir, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "test-labels.npy: labels must be one integer a sample"));
}

/* pqrun predict: a model's outputs on the samples of a .npy file (float32 as they are, uint8 scaled by 1/255),
 * written as a float32 .npy file of [N, outputs] that reads back as the backend's own outputs, bit for bit; a
 * sample of the wrong size and a missing --output are errors that write nothing. */
static void test_predict(void) {
  enum { N = 5, D = 6, O = 3 };
  g_autoptr(PqModel) m = pq_test_tiny_mlp(D, 8, O, 4);
  g_autofree char *mp = g_build_filename(tmpdir, "predict.safetensors", NULL), *dir = g_build_filename(tmpdir, "predict", NULL);
  g_assert_true(pq_model_save(m, mp, NULL));
  g_mkdir_with_parents(dir, 0700);
  float x[N * D];
  guint8 u[N * D];
  for (int i = 0; i < N * D; i++) x[i] = (float)(i % 7) * 0.25f - 0.6f, u[i] = (guint8)(i * 37 % 256);
  write_npy(dir, "x.npy", "<f4", "(5, 6)", x, sizeof x);
  write_npy(dir, "u.npy", "|u1", "(5, 2, 3)", u, sizeof u);
  g_autoptr(GError) e = NULL;
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(PqBackend) be = pq_backend_prepare(pq_test_cpu_backend(reg), m, 1, N, NULL, &e);
  g_assert_no_error(e);
  for (int form = 0; form < 2; form++) {
    g_autofree char *in = g_build_filename(dir, form ? "u.npy" : "x.npy", NULL), *outp = g_build_filename(dir, "y.npy", NULL);
    g_autofree char *out = NULL, *err = NULL;
    g_assert_cmpint(pqrun(&out, &err, "predict", "--model", mp, "--input", in, "--output", outp, "--batch", "2", "--threads", "1", NULL), ==, 0);
    g_assert_nonnull(strstr(out, "float32 [5, 3]"));
    float want[N * O], xin[N * D];
    for (int i = 0; i < N * D; i++) xin[i] = form ? (float)u[i] * (1.0f / 255.0f) : x[i]; /* (as datasets scale) */
    for (int s0 = 0; s0 < N; s0 += 2) /* (in the batches predict ran: at batch 1 a GEMV sums in another order) */
      g_assert_true(pq_backend_run_f32(be, xin + s0 * D, MIN(2, N - s0), want + s0 * O, &e));
    g_autoptr(PqDataset) back = pq_dataset_load_npy(outp, NULL, &e); /* (a float32 [N, D] file reads as it is) */
    g_assert_no_error(e);
    g_assert_cmpint(pq_dataset_n_samples(back), ==, N);
    g_assert_cmpint(pq_dataset_sample_numel(back), ==, O);
    float got[N * O];
    g_assert_cmpint(pq_dataset_get_batch(back, 0, N, got, NULL), ==, N);
    for (int i = 0; i < N * O; i++)
      if (got[i] != want[i]) g_error("form %d, value %d: %.9g, the backend gives %.9g", form, i, got[i], want[i]);
  }
  /* errors: a sample of 4 values for an input of 6; no --output */
  write_npy(dir, "short.npy", "<f4", "(5, 4)", x, sizeof(float) * 20);
  g_autofree char *shortp = g_build_filename(dir, "short.npy", NULL), *never = g_build_filename(dir, "never.npy", NULL);
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(pqrun(&out, &err, "predict", "--model", mp, "--input", shortp, "--output", never, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "short.npy: field 'shape': a sample has 4 values; the model's input 'x' takes 6"));
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "predict", "--model", mp, "--input", shortp, NULL), ==, 2);
  g_assert_nonnull(strstr(err, "--input FILE.npy and --output FILE.npy are both needed"));
  g_free(out);
  g_free(err);
  g_autofree char *xp = g_build_filename(dir, "x.npy", NULL);
  g_assert_cmpint(pqrun(&out, &err, "predict", "--model", mp, "--input", xp, "--output", never, "--batch", "0", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "--batch must be at least 1"));
  g_free(out);
  g_free(err);
  /* a model of two outputs: refused, nothing written */
  g_autoptr(PqModel) two = pq_model_copy(m);
  pq_graph_add_output(pq_model_graph(two), "h");
  g_autofree char *tp = g_build_filename(tmpdir, "predict-two.safetensors", NULL);
  g_assert_true(pq_model_save(two, tp, NULL));
  g_assert_cmpint(pqrun(&out, &err, "predict", "--model", tp, "--input", xp, "--output", never, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "the model has 1 inputs and 2 outputs; predict runs models with one of each"));
  g_assert_false(g_file_test(never, G_FILE_TEST_EXISTS));
}

/* pqrun train --arch cnn on a folder of 12x12 images (the class: which quadrant is bright), then a Tucker
 * decomposition of its convolutions. */
static void test_cnn_tucker(void) {
  g_autofree char *dir = g_build_filename(tmpdir, "quadrants", NULL);
  g_mkdir_with_parents(dir, 0700);
  enum { N = 400 };
  g_autofree guint8 *x = g_new(guint8, N * 144);
  guint8 y[N];
  GRand *r = g_rand_new_with_seed(12);
  for (int i = 0; i < N; i++) {
    y[i] = (guint8)(i % 4);
    for (int p = 0; p < 144; p++) {
      int qy = (p / 12) / 6, qx = (p % 12) / 6;
      x[i * 144 + p] = (guint8)(g_rand_int_range(r, 0, 80) + (qy * 2 + qx == y[i] ? 150 : 0));
    }
  }
  g_rand_free(r);
  for (int split = 0; split < 2; split++) {
    write_npy(dir, split ? "test-images.npy" : "train-images.npy", "|u1", "(400, 12, 12)", x, N * 144);
    write_npy(dir, split ? "test-labels.npy" : "train-labels.npy", "|u1", "(400,)", y, N);
  }
  g_autofree char *path = g_build_filename(tmpdir, "cnn.safetensors", NULL);
  g_autofree char *out = NULL, *err = NULL;
  g_assert_cmpint(pqrun(&out, &err, "train", "--arch", "cnn", "--epochs", "3", "--dataset", dir, "-o", path, "--quiet", NULL), ==, 0);
  const char *acc = strstr(out, "test accuracy: ");
  g_assert_nonnull(acc);
  g_assert_cmpfloat(g_ascii_strtod(acc + 15, NULL), >, 90.0);
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", path, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "cnn conv3x3 1-16-32-64 (max pool 2) + linear 64-4"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--dataset", dir, "--compressor", "tucker", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "skipped: ranks in 1 / out 8 would not shrink 16 x 1 x 3x3 (200 >= 144 weights)"));
  g_assert_nonnull(strstr(out, "Tucker-2 ranks in 8 / out 16, 3x3 core, 10 HOOI iterations"));
  g_assert_nonnull(strstr(out, "Tucker-2 ranks in 16 / out 32, 3x3 core, 10 HOOI iterations"));
  g_free(out);
  g_free(err);
  /* CP of the convs but the first, then fine-tuning: four convs a layer, trained through their depthwise parts */
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--dataset", dir, "--compressor", "cp", "--opt", "cp.exclude=conv1", "--compressor",
                        "finetune", "--opt", "finetune.samples=400", "--calibration", "400", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "CP rank "));
  g_assert_nonnull(strstr(out, "not selected (include, exclude, min_params)"));
  g_assert_nonnull(strstr(out, "2 epochs on 400 samples"));
  g_free(out);
  g_free(err);
  /* 4-bit with F16 scales, then fine-tuned on that grid (the packed convs and linear layer keep their F16 scales):
     saved, listed by info, evaluated */
  g_autofree char *q16 = g_build_filename(tmpdir, "cnn-q16.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--dataset", dir, "-c", "quant", "-O", "quant.bits=4", "-O", "quant.scale_dtype=f16",
                        "-c", "finetune", "-O", "finetune.samples=400", "--calibration", "400", "-o", q16, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "4-bit per_channel symmetric, F16 scales"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", q16, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "(4-bit per_channel, F16 scales)"));
  g_assert_null(strstr(out, "(4-bit per_channel)"));
  g_free(out);
  g_free(err);
  /* the convs' and the linear layer's group scales quantized to 8 bits (the first conv's 9 weights a channel: one
     group of 9) */
  g_autofree char *q8 = g_build_filename(tmpdir, "cnn-q8.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "compress", "--model", path, "-c", "quant", "-O", "quant.bits=4", "-O", "quant.scheme=per_group", "-O",
                        "quant.group_size=9", "-O", "quant.scale_dtype=q8", "-O", "quant.exclude=fc", "-o", q8, NULL), ==, 0);
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "info", "--model", q8, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "(4-bit per_group 9, 8-bit scales)"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", q8, "--dataset", dir, NULL), ==, 0);
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "eval", "--model", q16, "--dataset", dir, NULL), ==, 0);
  acc = strstr(out, "accuracy: ");
  g_assert_nonnull(acc);
  g_assert_cmpfloat(g_ascii_strtod(acc + 10, NULL), >, 80.0);
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "train", "--arch", "resnet", "--dataset", dir, "-o", path, NULL), ==, 2);
  g_assert_nonnull(strstr(err, "--arch must be mlp or cnn, not 'resnet'"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "train", "--arch", "cnn", "--threads", "-1", "--dataset", dir, "-o", path, NULL), ==, 2);
  g_assert_nonnull(strstr(err, "--threads must be at least 1"));
}

/* A nearest-class-mean classifier on Fashion-MNIST as one linear layer (w_c = the class's mean image,
 * b_c = −|w_c|² / 2), from the first 20000 training images: a model with real accuracy (about 68%) that a
 * 2-bit quantization visibly costs, built in a moment. */
/* The model saved at `path` holds t's tensors, byte for byte. */
static void assert_same_tensors(const PqModel *t, const char *path) {
  g_autoptr(PqModel) a = pq_model_load(path, NULL);
  g_assert_nonnull(a);
  g_assert_cmpint(pq_model_n_tensors(a), ==, pq_model_n_tensors(t));
  for (size_t i = 0; i < pq_model_n_tensors(t); i++) {
    const PqTensor *x = pq_model_tensor_at(t, i), *y = pq_model_tensor(a, pq_tensor_name(x));
    g_assert_nonnull(y);
    g_assert_cmpmem(pq_tensor_data(x), pq_tensor_nbytes(x), pq_tensor_data(y), pq_tensor_nbytes(y));
  }
}

/* A nearest-centroid classifier of Fashion-MNIST as one linear layer "fc" (x·μ_c − |μ_c|²/2, then softmax);
 * with `hidden`, as two: "fc" with K added to every bias so that each output is positive (K ≥ |μ_c|²/2, as
 * x·μ_c ≥ 0), a relu, which then changes nothing, and "fc2", the identity, whose columns equalize can scale. */
static PqModel *centroid_model(gboolean hidden) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) ds = pq_dataset_open("fashion-mnist", "train", &err);
  g_assert_no_error(err);
  enum { N = 20000, D = 784 };
  g_autofree float *x = g_new(float, (gsize)N * D);
  g_autofree guint8 *lab = g_new(guint8, N);
  g_assert_cmpint(pq_dataset_get_batch(ds, 0, N, x, lab), ==, N);
  int64_t ws[2] = {10, D}, bs[1] = {10}, xs[2] = {-1, D};
  PqTensor *w = pq_tensor_new("w", PQ_DTYPE_F32, 2, ws), *b = pq_tensor_new("b", PQ_DTYPE_F32, 1, bs);
  float *wd = pq_tensor_mutable_data(w), *bd = pq_tensor_mutable_data(b);
  double sum[10][D] = {{0}};
  int count[10] = {0};
  for (int i = 0; i < N; i++) {
    count[lab[i]]++;
    for (int k = 0; k < D; k++) sum[lab[i]][k] += x[(gsize)i * D + k];
  }
  for (int c = 0; c < 10; c++) {
    double sq = 0;
    for (int k = 0; k < D; k++) wd[c * D + k] = (float)(sum[c][k] / MAX(count[c], 1)), sq += (double)wd[c * D + k] * wd[c * D + k];
    bd[c] = (float)(-sq / 2);
  }
  float k = 0;
  for (int c = 0; c < 10 && hidden; c++) k = MAX(k, -bd[c]);
  for (int c = 0; c < 10 && hidden; c++) bd[c] += k;
  PqModel *m = pq_model_new();
  pq_model_set_tensor(m, w), pq_model_set_tensor(m, b);
  pq_tensor_unref(w), pq_tensor_unref(b);
  pq_graph_add_input(pq_model_graph(m), "x", 2, xs);
  pq_graph_add_node(pq_model_graph(m), "linear", "fc", 3, (const char *[]){"x", "w", "b"}, 1, (const char *[]){"z"});
  if (hidden) {
    int64_t is[2] = {10, 10};
    PqTensor *id = pq_tensor_new("w2", PQ_DTYPE_F32, 2, is), *b2 = pq_tensor_new("b2", PQ_DTYPE_F32, 1, bs);
    float *idd = pq_tensor_mutable_data(id);
    memset(idd, 0, sizeof(float) * 100);
    memset(pq_tensor_mutable_data(b2), 0, sizeof(float) * 10);
    for (int c = 0; c < 10; c++) idd[c * 10 + c] = 1;
    pq_model_set_tensor(m, id), pq_model_set_tensor(m, b2);
    pq_tensor_unref(id), pq_tensor_unref(b2);
    pq_graph_add_node(pq_model_graph(m), "relu", "act", 1, (const char *[]){"z"}, 1, (const char *[]){"h"});
    pq_graph_add_node(pq_model_graph(m), "linear", "fc2", 3, (const char *[]){"h", "w2", "b2"}, 1, (const char *[]){"z2"});
  }
  pq_graph_add_node(pq_model_graph(m), "softmax", "sm", 1, (const char *[]){hidden ? "z2" : "z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(pq_model_graph(m), "y");
  return m;
}

static void test_compress_and_run(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 64, 10, 5);
  g_autofree char *path = g_build_filename(tmpdir, "c.safetensors", NULL), *outp = g_build_filename(tmpdir, "c8.safetensors", NULL);
  g_assert_true(pq_model_save(m, path, NULL));
  g_autofree char *out = NULL, *err = NULL;
  int rc = pqrun(&out, &err, "compress", "--model", path, "--plugin", QUANT_PLUGIN, "--opt", "quant.bits=6", "-o", outp, NULL);
  if (rc != 0 && strstr(err, "no such dataset folder")) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_assert_cmpint(rc, ==, 0);
  g_assert_nonnull(strstr(out, "6-bit per_channel symmetric"));
  g_assert_nonnull(strstr(out, "written: "));
  g_autoptr(PqModel) back = pq_model_load(outp, NULL);
  g_assert_cmpint(pq_tensor_bits(pq_model_tensor(back, "w1")), ==, 6);
  g_free(out);
  g_free(err);
  /* run: both models evaluated side by side, the chain reported layer by layer */
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--compressor", "low_rank", "--compressor", "quant", "--opt",
                        "low_rank.rank=16", "--opt", "2.bits=8", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "1     low_rank   fc1"));
  g_assert_nonnull(strstr(out, "2     quant      fc1.lr_v"));
  g_assert_nonnull(strstr(out, "baseline "));
  g_assert_nonnull(strstr(out, "compressed "));
  g_assert_nonnull(strstr(out, " pp\n"));
  g_free(out);
  g_free(err);
  /* sensitivity: the chain on each layer alone, worst first, and as JSON */
  g_autofree char *sens = g_build_filename(tmpdir, "sens.json", NULL);
  g_assert_cmpint(pqrun(&out, &err, "sensitivity", "--model", path, "--compressor", "quant", "--opt", "quant.bits=2", "-o", sens, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "fc1 "));
  g_assert_nonnull(strstr(out, "fc2 "));
  g_assert_nonnull(strstr(out, "(all layers)"));
  {
    g_autoptr(JsonParser) jp = json_parser_new();
    g_assert_true(json_parser_load_from_file(jp, sens, NULL));
    JsonObject *root = json_node_get_object(json_parser_get_root(jp));
    g_assert_cmpstr(json_object_get_string_member(root, "schema"), ==, "pquant-sensitivity-1");
    JsonArray *layers = json_object_get_array_member(root, "layers");
    g_assert_cmpint(json_array_get_length(layers), ==, 2);
    double prev = -1, base = json_object_get_double_member(json_object_get_object_member(root, "baseline"), "accuracy");
    gint64 saved = 0;
    for (guint i = 0; i < 2; i++) { /* worst first; each row's degradation is its accuracy against the baseline */
      JsonObject *l = json_array_get_object_element(layers, i);
      double acc = json_object_get_double_member(l, "accuracy");
      g_assert_cmpfloat(acc, >=, prev); /* the lowest accuracy, the largest loss, first */
      g_assert_cmpfloat(fabs(json_object_get_double_member(l, "degradation_pp") - 100 * (acc - base)), <, 1e-9);
      saved += json_object_get_int_member(l, "bytes_saved");
      prev = acc;
    }
    /* what the layers save alone adds up to what the whole chain saves */
    g_assert_cmpint(saved, ==, json_object_get_int_member(json_object_get_object_member(root, "all"), "bytes_saved"));
  }
  g_free(out);
  g_free(err);
  /* with an exact head (equalize awq, run once for all the rows): a row a layer the chain compresses, none for
     the mul awq adds, and the baseline the model given */
  g_assert_cmpint(pqrun(&out, &err, "sensitivity", "--model", path, "--compressor", "equalize", "--opt", "equalize.method=awq", "--compressor",
                        "quant", "--opt", "quant.bits=2", "-o", sens, NULL), ==, 0);
  {
    g_autoptr(JsonParser) jp = json_parser_new();
    g_assert_true(json_parser_load_from_file(jp, sens, NULL));
    JsonObject *root = json_node_get_object(json_parser_get_root(jp));
    g_assert_cmpint(json_array_get_length(json_object_get_array_member(root, "layers")), ==, 2);
    g_autoptr(PqModel) given = pq_model_load(path, NULL);
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(root, "baseline"), "bytes"), ==, pq_model_nbytes(given));
  }
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "sensitivity", "--model", path, "--compressor", "quant", "--opt", "quant.include=nothing*", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "the chain changed no layer of the model"));
  g_free(out);
  g_free(err);
  g_autofree char *nodir = g_build_filename(tmpdir, "no-such-folder", "sens.json", NULL);
  g_assert_cmpint(pqrun(&out, &err, "sensitivity", "--model", path, "--compressor", "quant", "-o", nodir, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "no-such-folder"));
  g_free(out);
  g_free(err);
  /* tune: layers left out (or given the fallback chain) until the validation degradation is within the
     target; the last row within it, the model written as that row says */
  g_autofree char *tuned = g_build_filename(tmpdir, "tuned.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--opt", "quant.bits=2", "--max-degradation", "0",
                        "--validation", "2000", "--fallback-opt", "quant.bits=8", "-o", tuned, NULL), ==, 0);
  {
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    int steps = 0;
    double last_deg = 1e9;
    gint64 last_bytes = -1;
    for (char **l = lines; *l; l++) {
      int step;
      char what[64];
      gint64 bytes;
      double ratio, acc, deg;
      char *arrow = strstr(*l, " -> "); /* "fc2 -> 1" or "fc2 -> 2 (as it was)": blanked, a step row either way */
      if (arrow) {
        char *e = arrow + 4;
        while (*e && *e != ' ') e++;
        if (g_str_has_prefix(e, " (as it was)")) e += strlen(" (as it was)");
        memset(arrow, ' ', (size_t)(e - arrow));
      }
      if (sscanf(*l, "%d %63s %" G_GINT64_FORMAT " %lfx %lf%% %lf pp", &step, what, &bytes, &ratio, &acc, &deg) == 6) {
        g_assert_cmpint(step, ==, steps++);
        last_deg = deg, last_bytes = bytes;
      }
    }
    g_assert_cmpint(steps, >=, 1);
    g_assert_cmpint(steps, <=, 3); /* step 0, then at most the two layers */
    g_assert_cmpfloat(last_deg, >=, -0.005);
    g_assert_nonnull(strstr(out, "train[58000:60000]"));
    g_assert_nonnull(strstr(out, "within the target on validation"));
    g_autoptr(PqModel) t = pq_model_load(tuned, NULL);
    g_assert_nonnull(t);
    g_assert_cmpint(pq_model_nbytes(t), ==, last_bytes);
    if (steps > 1) g_assert_nonnull(strstr(out, " -> 1"));
    g_assert_nonnull(strstr(out, "levels: 0 the chain; 1 quant.bits=8; 2 left as it was"));
  }
  g_free(out);
  g_free(err);
  /* an exact stage (equalize) keeps its selection: the whole model, while tune sets quant's, and says so. It
     runs once, at level 0: the fallback chain starts from its result without it, and bias_correct there
     compares with that result, so it corrects the layers (run again, equalize renamed the values between
     them, and bias_correct found them in neither model and skipped them) */
  g_autofree char *eq_chain = g_build_filename(tmpdir, "eq-chain.json", NULL), *eq_tuned = g_build_filename(tmpdir, "eq-tuned.safetensors", NULL);
  g_autofree char *eq_again = g_build_filename(tmpdir, "eq-again.safetensors", NULL), *eq_path = g_build_filename(tmpdir, "centroids2.safetensors", NULL);
  g_autoptr(PqModel) em = centroid_model(TRUE);
  g_assert_true(pq_model_save(em, eq_path, NULL));
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", eq_path, "--compressor", "equalize", "--compressor", "quant", "--opt", "quant.bits=2",
                        "--opt", "quant.scheme=per_tensor", "--compressor", "bias_correct", "--max-degradation", "0.5", "--validation", "2000",
                        "--fallback-opt", "quant.bits=8", "--save-chain", eq_chain, "-o", eq_tuned, NULL), ==, 0);
  {
    g_assert_nonnull(strstr(out, "the same model again")); /* 2-bit per tensor: at least one layer moves */
    g_assert_nonnull(strstr(out, "for each stage N but equalize (it takes the whole model), then the chain without its first stages"));
    g_autoptr(JsonParser) jp = json_parser_new();
    g_assert_true(json_parser_load_from_file(jp, eq_chain, NULL));
    JsonArray *stages = json_object_get_array_member(json_node_get_object(json_parser_get_root(jp)), "stages");
    gboolean quant_set = FALSE;
    guint n_eq = 0, n_bc = 0;
    for (guint i = 0; i < json_array_get_length(stages); i++) {
      JsonObject *st = json_array_get_object_element(stages, i), *o = json_object_get_object_member(st, "options");
      /* only the options given are written (a default stays one when the file is read again) */
      const char *inc = json_object_get_string_member_with_default(o, "include", "*");
      const char *exc = json_object_get_string_member_with_default(o, "exclude", "");
      const char *plugin = json_object_get_string_member(st, "plugin");
      g_assert_false(json_object_has_member(o, "min_params"));
      if (!strcmp(plugin, "equalize")) {
        g_assert_cmpuint(i, ==, 0); /* once, first */
        g_assert_cmpuint(json_object_get_size(o), ==, 0);
        n_eq++;
        g_assert_cmpstr(inc, ==, "*");
        g_assert_cmpstr(exc, ==, "");
      } else {
        n_bc += !strcmp(plugin, "bias_correct");
        quant_set |= strcmp(inc, "*") || exc[0];
      }
    }
    g_assert_cmpuint(n_eq, ==, 1);
    g_assert_cmpuint(n_bc, ==, 2); /* level 0's and level 1's */
    g_assert_true(quant_set);
    g_autoptr(PqModel) t = pq_model_load(eq_tuned, NULL);
    g_assert_nonnull(t);
    guint corrected = 0, at_level1 = 0;
    for (guint i = 0; i < pq_model_n_records(t); i++) {
      const PqLayerRecord *r = pq_model_record(t, i);
      /* numbered as in the chain written: stage N of a record is the chain's stage N */
      g_assert_cmpint(r->stage, >=, 1);
      g_assert_cmpint(r->stage, <=, (int)json_array_get_length(stages));
      g_assert_cmpstr(json_object_get_string_member(json_array_get_object_element(stages, (guint)r->stage - 1), "plugin"), ==, r->method);
      at_level1 += r->stage > 3;
      if (strcmp(r->method, "bias_correct")) continue;
      if (r->skipped) g_assert_null(strstr(r->detail, "not one of the original model's values"));
      corrected += !r->skipped;
    }
    g_assert_cmpuint(corrected, >=, 2); /* every layer, at one level or the other */
    g_assert_cmpuint(at_level1, >, 0);
    /* the saved chain makes the same model again */
    g_free(out);
    g_free(err);
    g_assert_cmpint(pqrun(&out, &err, "compress", "--model", eq_path, "--config", eq_chain, "-o", eq_again, NULL), ==, 0);
    assert_same_tensors(t, eq_again);
  }
  g_free(out);
  g_free(err);
  /* awq at the head of a tune weighs for the quant stage after it (its 2 bits, not awq's default 4) */
  g_autofree char *awq_tuned = g_build_filename(tmpdir, "awq-tuned.safetensors", NULL);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", eq_path, "--compressor", "equalize", "--opt", "equalize.method=awq", "--compressor", "quant",
                        "--opt", "quant.bits=2", "--max-degradation", "0.5", "--validation", "2000", "--fallback-opt", "quant.bits=8", "-o",
                        awq_tuned, NULL), ==, 0);
  {
    g_autoptr(PqModel) t = pq_model_load(awq_tuned, NULL);
    g_assert_nonnull(t);
    guint weighed = 0;
    for (guint i = 0; i < pq_model_n_records(t); i++) {
      const PqLayerRecord *r = pq_model_record(t, i);
      if (strcmp(r->method, "equalize") || r->skipped) continue;
      g_assert_nonnull(strstr(r->detail, " 2-bit per channel (stage 2's grid)"));
      weighed++;
    }
    g_assert_cmpuint(weighed, >=, 1);
  }
  g_free(out);
  g_free(err);
  /* a level cannot change the exact stage, which it does not run */
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", eq_path, "--compressor", "equalize", "--compressor", "quant", "--max-degradation", "0",
                        "--validation", "2000", "--fallback-opt", "equalize.iterations=3", NULL), ==, 1);
  g_assert_nonnull(strstr(err, "level 1 changes stage 1 (equalize), which runs once, on the whole model, before the levels"));
  g_free(out);
  g_free(err);
  /* a ladder: 2 bits, then 3, then 4 bits with GPTQ, then as it was; with a target of 0 the layer climbs
     until the validation accuracy is the baseline's, each step a move up, the bytes never falling */
  g_autofree char *laddered = g_build_filename(tmpdir, "laddered.safetensors", NULL), *cpath = g_build_filename(tmpdir, "centroids.safetensors", NULL);
  g_autofree char *chain = g_build_filename(tmpdir, "tuned-chain.json", NULL), *again = g_build_filename(tmpdir, "again.safetensors", NULL);
  g_autoptr(PqModel) cm = centroid_model(FALSE);
  g_assert_true(pq_model_save(cm, cpath, NULL));
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", cpath, "--compressor", "quant", "--opt", "quant.bits=2", "--max-degradation", "0",
                        "--validation", "2000", "--level", "quant.bits=3", "--level", "quant.bits=4; quant.method=gptq", "-o", laddered, "--save-chain",
                        chain, NULL), ==, 0);
  {
    g_assert_nonnull(strstr(out, "levels: 0 the chain; 1 quant.bits=3; 2 quant.bits=4 quant.method=gptq; 3 left as it was"));
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    int steps = 0, level[8] = {0};
    gint64 prev = 0;
    for (char **l = lines; *l; l++) {
      int step, to;
      char layer[64];
      gint64 bytes;
      if (sscanf(*l, "%d %63s -> %d", &step, layer, &to) == 3) {
        g_assert_cmpstr(layer, ==, "fc");
        int li = 0;
        g_assert_cmpint(to, >, level[li]); /* up only */
        g_assert_cmpint(to, <=, 3);
        level[li] = to;
        g_assert_cmpint(step, ==, ++steps);
        char *after = strstr(*l, to == 3 ? "(as it was)" : "->");
        g_assert_nonnull(after);
        g_assert_cmpint(sscanf(after + (to == 3 ? 11 : 4), "%" G_GINT64_FORMAT, &bytes), ==, 1);
        g_assert_cmpint(bytes, >=, prev);
        prev = bytes;
      }
    }
    g_assert_cmpint(steps, >=, 1);
    g_assert_nonnull(strstr(out, "within the target on validation"));
    g_autoptr(PqModel) t = pq_model_load(laddered, NULL);
    g_assert_nonnull(t);
    g_assert_cmpint(pq_model_nbytes(t), ==, prev);
    /* the saved chain makes the same model again (pqrun compress --config), tensor for tensor */
    g_free(out);
    g_free(err);
    g_assert_cmpint(pqrun(&out, &err, "compress", "--model", cpath, "--config", chain, "-o", again, NULL), ==, 0);
    assert_same_tensors(t, again);
    /* and is a suite: the baseline and the tuned chain */
    g_free(out);
    g_free(err);
    g_assert_cmpint(pqrun(&out, &err, "bench", "--model", cpath, "--config", chain, "--dry-run", NULL), ==, 0);
    g_assert_nonnull(strstr(out, "baseline"));
    g_assert_nonnull(strstr(out, "tuned"));
  }
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--level", "quant.bits=4;quant.exclude=fc1", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "'quant.exclude=fc1': tune chooses the layers itself"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--level", " ; ", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "changes no option"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--fallback-opt", "quant.bits=3", "--level", "quant.bits=3",
                        "--level", "quant.bits=4", "--level", "quant.bits=5", "--level", "quant.bits=6", "--level", "quant.bits=7", "--level",
                        "quant.bits=8", "--level", "quant.bits=8", "--level", "quant.bits=8", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "9 fallback levels; at most 8"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--max-degradation", "100", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "0     -  "));
  g_assert_null(strstr(out, "\n1     "));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--opt", "quant.exclude=fc1", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "tune chooses the layers itself"));
  g_free(out);
  g_free(err);
  g_assert_cmpint(pqrun(&out, &err, "tune", "--model", path, "--compressor", "quant", "--validation", "60000", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "--validation must be 1 .. 59999"));
  g_free(out);
  g_free(err);
  /* fine-tuning after factoring: the random model's factors learn the labels (far above its chance level) */
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--compressor", "low_rank", "--opt", "low_rank.rank=16", "--compressor", "finetune",
                        "--opt", "finetune.samples=4096", "--calibration", "4096", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "2     finetune   (float weights)"));
  g_assert_nonnull(strstr(out, "2 epochs on 4096 samples: loss "));
  const char *deg = strrchr(out, '%');
  g_assert_nonnull(deg);
  double gained = g_ascii_strtod(deg + 1, NULL); /* the degradation column: "+NN.NN pp" */
  g_test_message("finetune: %+.2f pp", gained);
  g_assert_cmpfloat(gained, >, 30.0);
  g_free(out);
  g_free(err);
  /* distillation without labels: the teacher is the model the chain started from, not the low-rank model the
     stage receives (which would agree with itself 100% from the start) */
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--compressor", "low_rank", "--opt", "low_rank.rank=2", "--compressor", "finetune",
                        "--opt", "finetune.samples=2048", "--opt", "finetune.distill=1", "--opt", "finetune.epochs=3", "--calibration", "2048", NULL), ==, 0);
  {
    const char *rec = strstr(out, "distilled from the original (weight 1): loss ");
    g_assert_nonnull(rec);
    const char *ag = strstr(rec, "agreement with the original on them ");
    g_assert_nonnull(ag);
    double before = 0, after = 0;
    g_assert_cmpint(sscanf(ag + strlen("agreement with the original on them "), "%lf%% -> %lf%%", &before, &after), ==, 2);
    g_test_message("distilled: agreement %.2f%% -> %.2f%%", before, after);
    g_assert_cmpfloat(before, <, 95.0);
    g_assert_cmpfloat(after, >, before);
  }
  g_free(out);
  g_free(err);
  /* the example suite with fine-tuned methods validates and runs its chains (--dry-run: sizes only) */
  g_assert_cmpint(pqrun(&out, &err, "bench", "--model", path, "--config", TEST_SRCDIR "/../examples/suites/finetune.json", "--dry-run", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "low_rank_32_ft"));
  g_assert_nonnull(strstr(out, "combined_ft"));
  g_assert_nonnull(strstr(out, "tensor_train_32_ft"));
  g_assert_nonnull(strstr(out, "circulant_64_ft"));
  g_assert_null(strstr(out, "error"));
  g_free(out);
  g_free(err);
  /* the other example suites, each with one of its methods; the method column as wide as the longest name
     (dfq.json's 24 characters: the params column ends at one place in the header and in that row) */
  const struct {
    const char *suite, *method;
  } suites[] = {{"gptq.json", "q2_gptq"}, {"bias-correct.json", "quant_3_per_tensor_bc"}, {"dfq.json", "eq_quant_3_per_tensor_bc"},
                {"awq.json", "awq_quant_2_g16"}, {"scales.json", "q2_g16_gptq_q8"}};
  for (guint i = 0; i < G_N_ELEMENTS(suites); i++) {
    g_autofree char *suite = g_build_filename(TEST_SRCDIR, "..", "examples", "suites", suites[i].suite, NULL);
    g_assert_cmpint(pqrun(&out, &err, "bench", "--model", path, "--config", suite, "--dry-run", NULL), ==, 0);
    const char *row = strstr(out, suites[i].method), *params = strstr(out, "params");
    g_assert_nonnull(row);
    g_assert_nonnull(params);
    g_assert_null(strstr(out, "error"));
    const char *row_start = row, *row_end = strchr(row, '\n');
    while (row_start > out && row_start[-1] != '\n') row_start--;
    /* the row's second column (params) ends where the header's "params" ends */
    const char *p = row_start + strlen(suites[i].method);
    while (*p == ' ') p++;
    while (*p >= '0' && *p <= '9') p++;
    g_assert_true(p <= row_end);
    const char *head_start = params;
    while (head_start > out && head_start[-1] != '\n') head_start--;
    g_assert_cmpint((int)(p - row_start), ==, (int)(params + strlen("params") - head_start));
    g_free(out);
    g_free(err);
  }
  /* a chain from a config file */
  const char *cfg = "{\"stages\": [{\"plugin\": \"quant\", \"options\": {\"bits\": 4, \"scheme\": \"per_group\", \"group_size\": 16}}]}";
  g_autofree char *cfgp = pq_test_write(tmpdir, "chain.json", cfg, strlen(cfg));
  g_assert_cmpint(pqrun(&out, &err, "compress", "--model", path, "--config", cfgp, "-o", outp, NULL), ==, 0);
  g_assert_nonnull(strstr(out, "4-bit per_group group 16"));
  g_free(out);
  g_free(err);
  /* bad input: each a clear message and exit 1 (2 for usage) */
  g_assert_cmpint(pqrun(&out, &err, "compress", "--model", path, "--compressor", "quant", NULL), ==, 2);
  g_assert_nonnull(strstr(err, "-o FILE is required"));
  g_free(out);
  g_free(err);
  const char *cases[][3] = {
      {"--compressor", "nope", "no compressor plugin named 'nope'"},
      {"--opt", "quant.bitz=4", "quant: unknown option \"bitz\""},
      {"--opt", "quant.bits=12", "out of range [2, 8]"},
      {"--opt", "bits=4", "must read PLUGIN.KEY=VALUE"},
      {"--opt", "quant.scheme=per_group", "group_size 64 does not divide its row length 784"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, "--compressor", "quant", cases[i][0], cases[i][1], NULL), ==, 1);
    if (!strstr(err, cases[i][2])) g_error("'%s' lacks '%s'", err, cases[i][2]);
    g_free(out);
    g_free(err);
  }
  g_assert_cmpint(pqrun(&out, &err, "run", "--model", path, NULL), ==, 1);
  g_assert_nonnull(strstr(err, "no compressor given"));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = pq_test_mkdtemp();
  g_test_add_func("/cli/version-help", test_version_help);
  g_test_add_func("/cli/eval-and-info", test_eval_and_info);
  g_test_add_func("/cli/bad-inputs", test_bad_inputs);
  g_test_add_func("/cli/plugins", test_plugins_listing);
  g_test_add_func("/cli/compress-and-run", test_compress_and_run);
  g_test_add_func("/cli/npy-dataset", test_npy_dataset);
  g_test_add_func("/cli/predict", test_predict);
  g_test_add_func("/cli/cnn-tucker", test_cnn_tucker);
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
