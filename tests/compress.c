/* compress.c — compressors, the pipeline and compressed execution: quant (packed kernels, SIMD against
 * portable), low_rank (against the exact truncation), chains, records, and every bad input. */
#include "testutil.h"

#include <cblas.h>
#include <pquant/pq-activation.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

static PqRegistry *reg;
static PqPlugin *cpu, *quant, *low_rank, *circulant, *tensor_train, *prune, *tucker, *cp;

static PqModel *compress(PqPlugin *p, const PqModel *m, const char *const *kv, GError **error) {
  return pq_test_compress(p, cpu, m, kv, error);
}

/* Runs the model on a batch of `batch` seeded inputs with SIMD kernels on or off, on `threads` threads. */
/* through the CPU backend on `threads` threads with its `kernels` option (auto, avx2, portable) */
static float *forward_threads(const PqModel *m, int64_t batch, const char *kernels, int threads, int64_t *out_numel) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) bo = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
  g_assert_true(pq_options_set(bo, "kernels", kernels, &err));
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, threads, batch, bo, &err);
  g_assert_no_error(err);
  int64_t in = pq_backend_input_numel(b);
  *out_numel = pq_backend_output_numel(b);
  g_autofree float *x = g_new(float, batch * in);
  GRand *r = g_rand_new_with_seed(9);
  for (int64_t i = 0; i < batch * in; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  g_rand_free(r);
  float *y = g_new(float, batch * *out_numel);
  g_assert_true(pq_backend_run_f32(b, x, batch, y, &err));
  return y;
}

static float *forward(const PqModel *m, int64_t batch, gboolean simd, int64_t *out_numel) {
  return forward_threads(m, batch, simd ? "auto" : "portable", 1, out_numel);
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    num = fmax(num, fabs((double)a[i] - b[i]));
    den = fmax(den, fabs((double)b[i]));
  }
  return num / den;
}

static void quant_forms(int64_t in);
static void assert_avx2_same(const PqModel *q, int64_t batch, int threads, const char *what);
static void test_quant_forms(void) {
  /* 200 columns: per-channel chunks, groups of 8/40, a tail for the 64-wide SIMD loops; rows of at most 256
     codes take the short-row kernels (outputs in vector lanes), 360 columns the row kernels, 8200 two int32
     chunks a row (8192 codes and 8), 1040 65 groups of 16 (the AVX2 row kernel decodes those in registers, 64
     groups a call, and the last row's last sixteen 3-bit codes, whose 16-byte load would pass the weight's end,
     apart), 301 rows not a whole number of 4-code words (the lane layout's padding, from 2 rows) */
  const int64_t widths[5] = {200, 360, 8200, 1040, 301};
  for (int w = 0; w < 5; w++) quant_forms(widths[w]);
  /* the CPU backend's kernel sets are the three it names: another is refused, naming the option and the choices */
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) bo = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
  g_assert_false(pq_options_set(bo, "kernels", "avx512", &err));
  g_assert_nonnull(strstr(err->message, "\"kernels\" must be one of auto, avx2, portable"));
}

static void quant_forms(int64_t in) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(in, 80, 10, 21);
  int64_t on;
  g_autofree float *ref = forward(m, 5, FALSE, &on);
  const char *forms[][10] = {
      {"bits", "8", NULL},
      {"bits", "8", "symmetric", "false", NULL},
      {"bits", "6", NULL},
      {"bits", "4", "scheme", "per_group", "group_size", "8", NULL},
      {"bits", "4", "scheme", "per_channel", "clip_search", "0", NULL},
      {"bits", "3", "scheme", "per_tensor", NULL},
      {"bits", "5", "scheme", "per_group", "group_size", "40", "symmetric", "false", NULL},
      {"bits", "2", "scheme", "per_group", "group_size", "8", NULL},
      {"bits", "7", NULL},
      {"bits", "5", "symmetric", "false", NULL},
      {"bits", "3", NULL},
      {"bits", "3", "scheme", "per_group", "group_size", "16", NULL},
      {"bits", "6", "scheme", "per_group", "group_size", "16", "symmetric", "false", NULL},
      {"bits", "3", "scheme", "per_group", "group_size", "20", NULL}, /* (groups not starting on a byte: unpacked first) */
  };
  const double tol[] = {0.02, 0.02, 0.05, 0.15, 0.3, 0.5, 0.2, 1.0, 0.03, 0.1, 0.5, 0.5, 0.05, 0.5};
  G_STATIC_ASSERT(G_N_ELEMENTS(tol) == G_N_ELEMENTS(forms));
  for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
    if (!strcmp(forms[f][3] ? forms[f][3] : "", "per_group") && in % atoi(forms[f][5])) continue; /* (groups must divide a row) */
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) q = compress(quant, m, forms[f], &err);
    g_assert_no_error(err);
    PqTensor *w1 = pq_model_tensor(q, "w1");
    g_assert_cmpint(pq_tensor_dtype(w1), ==, PQ_DTYPE_PACKED);
    g_assert_cmpint(pq_tensor_bits(w1), ==, atoi(forms[f][1]));
    g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(q, "b1")), ==, PQ_DTYPE_F32);
    /* the SIMD and portable kernels compute the same integers; only the order of the float sums of
       scaled chunks differs */
    g_autofree float *ys = forward(q, 5, TRUE, &on), *yp = forward(q, 5, FALSE, &on);
    g_assert_cmpfloat(max_rel_diff(ys, yp, on * 5), <, 2e-6);
    /* one row at a time (batch 1) takes the other kernels: codes unpacked in registers */
    g_autofree float *y1s = forward(q, 1, TRUE, &on), *y1p = forward(q, 1, FALSE, &on);
    g_assert_cmpfloat(max_rel_diff(y1s, y1p, on), <, 2e-6);
    /* the AVX2 kernels (CPUs without AVX-512; where the CPU has AVX2) give the portable path's results bit for bit */
    for (int64_t bt = 1; bt <= 5; bt += 4) {
      g_autofree float *ya = forward_threads(q, bt, "avx2", 1, &on), *yc = forward_threads(q, bt, "portable", 1, &on);
      if (memcmp(ya, yc, (size_t)(bt * on) * sizeof(float))) g_error("form %zu, %lld inputs, batch %lld: AVX2 kernels differ from portable", f, (long long)in, (long long)bt);
    }
    /* and stay close to the float model */
    double d = max_rel_diff(ys, ref, on * 5);
    if (d > tol[f]) g_error("form %zu: relative difference %g > %g", f, d, tol[f]);
    /* stored bytes: packed codes plus scales (and zeros) */
    g_assert_cmpint(pq_model_nbytes(q), <, pq_model_nbytes(m));
    g_assert_cmpuint(pq_model_n_records(q), ==, 2);
    const PqLayerRecord *r = pq_model_record(q, 0);
    g_assert_false(r->skipped);
    g_assert_cmpint(r->bytes_after, ==, (gint64)(pq_tensor_nbytes(w1) + pq_tensor_nbytes(pq_tensor_scales(w1)) +
                                                 (pq_tensor_zeros(w1) ? pq_tensor_nbytes(pq_tensor_zeros(w1)) : 0)));
    g_assert_cmpfloat(r->sqnr_db, >, 5.0);
  }
}

/* The CPU backend's memory counters hold what it makes at prepare beside the weights: a packed layer's batch
 * buffers and per-row scratch (and, by kernel, its lane layout), which the float layer does not need */
static void test_quant_backend_memory(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 256, 10, 7);
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"bits", "8", "include", "fc1", NULL};
  g_autoptr(PqModel) q = compress(quant, m, kv, &err);
  g_assert_no_error(err);
  g_autoptr(PqBackend) bf = pq_backend_prepare(cpu, m, 1, 8, NULL, &err);
  g_autoptr(PqBackend) bq = pq_backend_prepare(cpu, q, 1, 8, NULL, &err);
  g_assert_no_error(err);
  PqMemoryCounters mf = {sizeof mf, 0, -1, -1, -1, -1, -1}, mq = {sizeof mq, 0, -1, -1, -1, -1, -1};
  g_assert_true(pq_backend_memory(bf, &mf, &err));
  g_assert_true(pq_backend_memory(bq, &mq, &err));
  g_assert_cmpint(mq.weights_bytes, <, mf.weights_bytes);
  /* the same activations either way: the difference beyond the weights is the packed layer's own buffers, at
     least its 8 int8 rows of 784 and six rows of per-row scratch */
  const int64_t beyond_q = mq.peak_bytes - mq.weights_bytes, beyond_f = mf.peak_bytes - mf.weights_bytes;
  g_assert_cmpint(beyond_q - beyond_f, >=, 8 * 784 + 6 * 784);
  g_assert_cmpint(mq.current_bytes, ==, mq.peak_bytes);
}

/* A layer of more than 8M weights in 4-bit groups of 128 takes the VNNI nibble kernel at one row and the lane
 * layout from two rows (lanes_wanted): both agree with the portable path, and threads give one thread's bits */
static void test_quant_large_groups(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(2176, 4096, 10, 97); /* fc1: 4096 × 2176, 8.9M weights */
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"bits", "4", "scheme", "per_group", "group_size", "128", "clip_search", "0", "include", "fc1", NULL};
  g_autoptr(PqModel) q = compress(quant, m, kv, &err);
  g_assert_no_error(err);
  for (int64_t bt = 1; bt <= 5; bt += 4) {
    int64_t on;
    g_autofree float *ya = forward_threads(q, bt, "auto", 1, &on), *yp = forward_threads(q, bt, "portable", 1, &on);
    g_autofree float *y2 = forward_threads(q, bt, "auto", 2, &on);
    g_assert_cmpfloat(max_rel_diff(ya, yp, bt * on), <, 2e-6);
    g_assert_cmpmem(ya, bt * on * sizeof(float), y2, bt * on * sizeof(float));
    assert_avx2_same(q, bt, 2, "4096 x 2176, 4-bit groups of 128");
  }
}

/* The AVX2 lane kernel on a layer past LANE_BLOCK_CODES (640 x 1280: 819K codes) quantizes up to 32 rows at
 * once and runs them over 128 KB of codes (6 blocks of 16 outputs) at a time: 70 rows (blocks of 32, 32 and 6,
 * the last with a row short of four), 40 blocks of outputs (seven passes, the last of four blocks); 8-bit
 * asymmetric (codes of 0, fixed up), 6-bit, 4-bit groups of 32. Bit for bit the portable path's results, on one
 * thread and on two (each its own rows and buffers). Both layers packed: a float layer's GEMM split over two
 * threads may round differently from one. */
static void test_quant_lane_blocks(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(1280, 640, 10, 41);
  const char *forms[][8] = {{"bits", "8", "symmetric", "false", NULL}, {"bits", "6", NULL}, {"bits", "4", "scheme", "per_group", "group_size", "32", NULL}};
  for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) q = compress(quant, m, forms[f], &err);
    g_assert_no_error(err);
    g_autofree char *what = g_strdup_printf("640 x 1280, %s bits%s", forms[f][1], f == 2 ? " in groups of 32" : "");
    assert_avx2_same(q, 70, 1, what);
    assert_avx2_same(q, 70, 2, what);
    assert_avx2_same(q, 9, 1, what);
  }
}

static void test_quant_saved(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(96, 40, 10, 5);
  const char *kv[] = {"bits", "6", "scheme", "per_group", "group_size", "8", NULL};
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) q = compress(quant, m, kv, &err);
  g_autofree char *dir = pq_test_mkdtemp();
  g_autofree char *pm = g_build_filename(dir, "m.safetensors", NULL), *pq = g_build_filename(dir, "q.safetensors", NULL);
  g_assert_true(pq_model_save(m, pm, &err));
  g_assert_true(pq_model_save(q, pq, &err));
  g_autoptr(PqModel) back = pq_model_load(pq, &err);
  g_assert_no_error(err);
  int64_t on;
  g_autofree float *a = forward(q, 3, TRUE, &on), *b = forward(back, 3, TRUE, &on);
  g_assert_cmpmem(a, on * 3 * sizeof(float), b, on * 3 * sizeof(float)); /* bit-identical after reload */
  g_assert_cmpuint(pq_model_n_records(back), ==, pq_model_n_records(q));
  g_assert_cmpstr(pq_model_record(back, 0)->detail, ==, "6-bit per_group group 8 symmetric");
  /* on disk: the header, then exactly the bytes the model stores (packed codes, scales, biases) */
  g_autofree char *bytes = NULL;
  gsize len;
  g_assert_true(g_file_get_contents(pq, &bytes, &len, NULL));
  guint64 hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | (guint8)bytes[i];
  g_assert_cmpuint(len - 8 - hl, ==, (guint64)pq_model_nbytes(q));
  pq_test_rmdir(dir);
}

static void test_quant_bad(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(30, 12, 10, 5);
  g_autoptr(GError) err = NULL;
  const char *bad_group[] = {"scheme", "per_group", "group_size", "8", NULL};
  g_assert_null(compress(quant, m, bad_group, &err));
  if (!strstr(err->message, "layer 'fc1': group_size 8 does not divide its row length 30")) g_error("%s", err->message);
  g_clear_error(&err);
  /* NaN weights: a clear error naming the layer */
  g_autoptr(PqModel) nan_m = pq_model_copy(m);
  int64_t sh[2] = {12, 30};
  g_autoptr(PqTensor) w = pq_test_random_tensor("w1", 2, sh, 3, 1);
  ((float *)pq_tensor_mutable_data(w))[7] = NAN;
  pq_model_set_tensor(nan_m, w);
  g_assert_null(compress(quant, nan_m, NULL, &err));
  g_assert_nonnull(strstr(err->message, "layer 'fc1': 'w1': element 7 is NaN"));
  g_clear_error(&err);
  /* quantizing twice at as many bits: the second pass reports skips, never re-quantizes */
  g_autoptr(PqModel) q = compress(quant, m, NULL, &err);
  g_autoptr(PqModel) qq = compress(quant, q, NULL, &err);
  g_assert_no_error(err);
  const PqLayerRecord *r = pq_model_record(qq, 2);
  g_assert_true(r->skipped);
  g_assert_cmpstr(r->detail, ==, "weight 'w1' is already packed (8-bit, not more than the 8 asked)");
  /* to fewer bits (an imported 8-bit model taken to 4): the values the 8-bit codes stand for, quantized again */
  const char *four[] = {"bits", "4", NULL};
  g_autoptr(PqModel) q4 = compress(quant, q, four, &err);
  g_assert_no_error(err);
  const PqLayerRecord *r4 = pq_model_record(q4, 2);
  g_assert_false(r4->skipped);
  g_assert_cmpstr(r4->detail, ==, "4-bit per_channel symmetric, from its 8-bit codes");
  PqTensor *w8 = pq_model_tensor(q, "w1"), *w4 = pq_model_tensor(q4, "w1");
  g_assert_cmpint(r4->bytes_before, ==, pq_tensor_stored_bytes(w8));
  g_assert_cmpint(r4->bytes_after, ==, pq_tensor_stored_bytes(w4));
  g_assert_cmpint(pq_tensor_bits(w4), ==, 4);
  g_autofree float *v8 = g_new(float, pq_tensor_numel(w8));
  g_assert_cmpint(pq_tensor_to_f32(w8, v8), ==, 0);
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_autoptr(PqTensor) want = pq_quantize_matrix("w1", v8, 2, pq_tensor_shape(w8), 4, PQ_QUANT_PER_CHANNEL, 0, 1, 20, &perr); /* (clip_search 20) */
  g_assert_cmpmem(pq_tensor_data(w4), pq_tensor_nbytes(w4), pq_tensor_data(want), pq_tensor_nbytes(want));
  g_assert_cmpmem(pq_tensor_data(pq_tensor_scales(w4)), pq_tensor_nbytes(pq_tensor_scales(w4)), pq_tensor_data(pq_tensor_scales(want)),
                  pq_tensor_nbytes(pq_tensor_scales(want)));
  /* layer selection */
  const char *only_fc2[] = {"include", "fc2", NULL};
  g_autoptr(PqModel) sel = compress(quant, m, only_fc2, &err);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(sel, "w1")), ==, PQ_DTYPE_F32);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(sel, "w2")), ==, PQ_DTYPE_PACKED);
  const char *big_only[] = {"min_params", "200", NULL};
  g_autoptr(PqModel) sel2 = compress(quant, m, big_only, &err);
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(sel2, "w1")), ==, PQ_DTYPE_PACKED); /* 360 weights */
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(sel2, "w2")), ==, PQ_DTYPE_F32);   /* 120 weights */
}

/* W8A8: the input ranges are fixed from calibration data and stored with the layers. */
static void test_quant_static(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 32, 10, 13);
  const char *kv[] = {"activations", "static", "act_range", "minmax", NULL};
  g_assert_null(compress(quant, m, kv, &err)); /* no calibration data */
  g_assert_nonnull(strstr(err->message, "needs calibration samples"));
  g_clear_error(&err);
  g_autoptr(PqDataset) train = pq_dataset_open("fashion-mnist", "train", &err);
  if (!train) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(quant), "quant", &err);
  pq_options_add_layer_selection(o, &err);
  pq_options_set(o, "activations", "static", &err);
  pq_options_set(o, "act_range", "minmax", &err);
  g_autoptr(PqModel) q = pq_compressor_run_full(quant, m, o, train, 128, cpu, &err);
  g_assert_no_error(err);
  /* fc1's range: the largest input value over the 128 images (pixels in [0,1]: 1/127 when one is white) */
  float xmax = 0;
  g_autofree float *x = g_new(float, 128 * 784);
  pq_dataset_get_batch(train, 0, 128, x, NULL);
  for (int i = 0; i < 128 * 784; i++) xmax = fmaxf(xmax, fabsf(x[i]));
  const PqNode *fc1 = pq_graph_node(pq_model_const_graph(q), 0);
  g_assert_cmpfloat_with_epsilon(pq_node_get_float(fc1, "act_scale", 0), xmax / 127.0f, 1e-7);
  g_assert_cmpfloat(pq_node_get_float(pq_graph_node(pq_model_const_graph(q), 2), "act_scale", 0), >, 0);
  g_assert_nonnull(strstr(pq_model_record(q, 0)->detail, "static int8 inputs (minmax)"));
  /* both kernels agree, and stay close to the float model */
  int64_t on;
  g_autofree float *ys = forward(q, 4, TRUE, &on), *yp = forward(q, 4, FALSE, &on), *yf = forward(m, 4, TRUE, &on);
  g_assert_cmpfloat(max_rel_diff(ys, yp, 4 * on), <, 2e-6);
  g_assert_cmpfloat(max_rel_diff(ys, yf, 4 * on), <, 0.1); /* forward() feeds [-1,1]: beyond the range, saturated */
  /* a layer input that overflows on the calibration samples (fc1's weights near float32's limit): refused by name */
  g_autoptr(PqModel) big = pq_model_copy(m);
  PqTensor *w1 = pq_test_random_tensor("w1", 2, (const int64_t[]){32, 784}, 13, 3e38f);
  pq_model_set_tensor(big, w1);
  pq_tensor_unref(w1);
  g_assert_null(pq_compressor_run_full(quant, big, o, train, 128, cpu, &err));
  g_assert_nonnull(strstr(err->message, "layer 'fc2': activations=static: its input 'hr' is infinite on calibration sample 0"));
  g_clear_error(&err);
  /* a conv: the range of its input feature map (the images), the same on both kernels */
  int64_t cxs[4] = {-1, 1, 28, 28}, cws[4] = {6, 1, 3, 3}, one[2] = {1, 1}, pads[4] = {1, 1, 1, 1};
  g_autoptr(PqModel) cm = pq_test_conv_model(cxs, cws, one, pads, 3);
  g_autoptr(PqModel) cq = pq_compressor_run_full(quant, cm, o, train, 128, cpu, &err);
  g_assert_no_error(err);
  g_assert_cmpfloat_with_epsilon(pq_node_get_float(pq_graph_node(pq_model_const_graph(cq), 0), "act_scale", 0), xmax / 127.0f, 1e-7);
  g_assert_nonnull(strstr(pq_model_record(cq, 0)->detail, "static int8 inputs (minmax)"));
  g_autofree float *cs = forward(cq, 2, TRUE, &on), *cp2 = forward(cq, 2, FALSE, &on);
  g_assert_cmpfloat(max_rel_diff(cs, cp2, 2 * on), <, 2e-6);
}

static void test_quantize_matrix(void) {
  int64_t sh[2] = {16, 256};
  g_autoptr(PqTensor) w = pq_test_random_tensor("w", 2, sh, 4, 1);
  float *wd = pq_tensor_mutable_data(w);
  for (int i = 0; i < 16; i++) wd[i * 256 + 3] = 9.0f; /* an outlier per row: clipping helps the rest */
  PqPluginError e = {sizeof e, 0, {0}};
  float back[4096];
  double err_full, err_clip, sq;
  g_autoptr(PqTensor) full = pq_quantize_matrix("w", wd, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &e);
  g_autoptr(PqTensor) clip = pq_quantize_matrix("w", wd, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 40, &e);
  pq_tensor_to_f32(full, back);
  pq_error_stats(wd, back, 4096, &err_full, &sq);
  pq_tensor_to_f32(clip, back);
  pq_error_stats(wd, back, 4096, &err_clip, &sq);
  g_assert_cmpfloat(err_clip, <, err_full);
  /* the AVX-512 path of 8-bit round-to-nearest equals the portable one */
  g_autoptr(PqTensor) fast = pq_quantize_matrix("w", wd, 2, sh, 8, PQ_QUANT_PER_GROUP, 32, 1, 0, &e);
  g_setenv("PQ_NO_SIMD", "1", TRUE);
  g_autoptr(PqTensor) slow = pq_quantize_matrix("w", wd, 2, sh, 8, PQ_QUANT_PER_GROUP, 32, 1, 0, &e);
  g_unsetenv("PQ_NO_SIMD");
  g_assert_cmpmem(pq_tensor_data(fast), 4096, pq_tensor_data(slow), 4096);
  g_assert_cmpmem(pq_tensor_data(pq_tensor_scales(fast)), 128 * 4, pq_tensor_data(pq_tensor_scales(slow)), 128 * 4);
  /* a NaN is found by the fast path too, with its index */
  float keep = wd[5 * 256 + 77];
  wd[5 * 256 + 77] = NAN;
  g_assert_null(pq_quantize_matrix("w", wd, 2, sh, 8, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': element 1357 is NaN");
  /* and by the portable path (4 bits, per group) and the per-tensor check over the whole matrix, an infinity too */
  g_assert_null(pq_quantize_matrix("w", wd, 2, sh, 4, PQ_QUANT_PER_GROUP, 32, 0, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': element 1357 is NaN");
  wd[5 * 256 + 77] = INFINITY;
  g_assert_null(pq_quantize_matrix("w", wd, 2, sh, 3, PQ_QUANT_PER_TENSOR, 0, 1, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': element 1357 is infinite");
  wd[5 * 256 + 77] = keep;
  /* 8-bit: error below half a step of the largest row range */
  pq_tensor_to_f32(fast, back);
  for (int i = 0; i < 4096; i++) g_assert_cmpfloat(fabsf(back[i] - wd[i]), <=, 9.0f / 127 / 2 + 1e-6f);
}

/* Every code pq_quantize_matrix writes is the one a plain reading of the rule gives: nearbyintf(v / scale) +
 * zero, clamped to the bits' range, on the scales and zero points it stored; and those are what the group's
 * extremes give (symmetric: max |v| / (2^(bits-1) - 1)). For 2..8 bits, each scheme, symmetric or not, rows of
 * 37 values (vector steps and a tail), and values that fall exactly halfway between two codes (ties go to the
 * even code) or far outside a clipped range. */
static void test_quantize_codes_reference(void) {
  const int64_t rows = 6, cols = 37 * 4;
  int64_t sh[2] = {rows, cols};
  g_autofree float *w = g_new(float, rows * cols);
  GRand *rng = g_rand_new_with_seed(77);
  for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)g_rand_double_range(rng, -2, 2);
  g_rand_free(rng);
  /* row 0: 8-bit symmetric scale 1 (its largest |v| is 127), with halves between codes */
  for (int64_t i = 0; i < cols; i++) w[i] = (float)((i % 41) - 20) + ((i % 3) ? 0.5f : 0.0f);
  w[5] = 127.0f;
  for (int bits = 2; bits <= 8; bits++)
    for (int scheme = 0; scheme < 3; scheme++)
      for (int symmetric = 0; symmetric <= 1; symmetric++)
        for (int clip = 0; clip <= 3; clip += 3) {
          PqQuantScheme sc = scheme == 0 ? PQ_QUANT_PER_TENSOR : scheme == 1 ? PQ_QUANT_PER_CHANNEL : PQ_QUANT_PER_GROUP;
          const int64_t group = 37;
          PqPluginError e = {sizeof e, 0, {0}};
          g_autoptr(PqTensor) q = pq_quantize_matrix("w", w, 2, sh, bits, sc, group, symmetric, clip, &e);
          g_assert_nonnull(q);
          const float *scales = pq_tensor_data(pq_tensor_scales(q));
          const uint8_t *zeros = pq_tensor_zeros(q) ? pq_tensor_data(pq_tensor_zeros(q)) : NULL;
          const int64_t per = sc == PQ_QUANT_PER_TENSOR ? rows * cols : sc == PQ_QUANT_PER_CHANNEL ? cols : group;
          const size_t rb = (size_t)(cols * bits + 7) / 8;
          g_autofree uint8_t *codes = g_new(uint8_t, cols);
          for (int64_t r = 0; r < rows; r++) {
            pq_unpack_codes((const uint8_t *)pq_tensor_data(q) + (size_t)r * rb, cols, bits, codes);
            for (int64_t c = 0; c < cols; c++) {
              const int64_t gi = (r * cols + c) / per;
              const float scale = scales[gi], zero = zeros ? zeros[gi] : (float)(1 << (bits - 1));
              float want = nearbyintf(w[r * cols + c] * (1.0f / scale)) + zero;
              want = want < 0 ? 0 : want > (float)((1 << bits) - 1) ? (float)((1 << bits) - 1) : want;
              if (codes[c] != (uint8_t)want)
                g_error("bits %d scheme %d symmetric %d clip %d: w[%lld][%lld] = %g, scale %g, zero %g: code %d, want %g", bits, scheme, symmetric,
                        clip, (long long)r, (long long)c, w[r * cols + c], scale, zero, codes[c], want);
            }
          }
          if (symmetric && !clip) /* the scales from the extremes */
            for (int64_t gi = 0; gi < rows * cols / per; gi++) {
              float amax = 0;
              for (int64_t i = gi * per; i < (gi + 1) * per; i++) amax = fmaxf(amax, fabsf(w[i]));
              g_assert_cmpfloat(scales[gi], ==, amax / (float)((1 << (bits - 1)) - 1));
            }
        }
}

/* Frobenius error of the best rank-k approximation: sqrt of the discarded squared singular values. */
static double optimal_error(const float *w, int64_t m, int64_t n, int64_t k) {
  g_autofree float *s = g_new(float, MIN(m, n));
  PqPluginError e = {sizeof e, 0, {0}};
  g_assert_cmpint(pq_singular_values(w, m, n, s, &e), ==, 0);
  double tail = 0;
  for (int64_t i = k; i < MIN(m, n); i++) tail += (double)s[i] * s[i];
  return sqrt(tail);
}

static void test_svd(void) {
  const int64_t m = 120, n = 90, k = 12;
  int64_t sh[2] = {m, n};
  g_autoptr(PqTensor) t = pq_test_random_tensor("a", 2, sh, 8, 1);
  float *a = pq_tensor_mutable_data(t);
  for (int64_t i = 0; i < m; i++) /* a decaying spectrum, like trained weights */
    for (int64_t j = 0; j < n; j++) a[i * n + j] += 3.0f * sinf(0.05f * (float)(i * j)) / (1 + (float)j * 0.1f);
  double best = optimal_error(a, m, n, k);
  for (int randomized = 0; randomized <= 1; randomized++) {
    g_autofree float *u = g_new(float, m * k), *s = g_new(float, k), *vt = g_new(float, k * n), *r = g_new(float, m * n);
    PqPluginError e = {sizeof e, 0, {0}};
    g_assert_cmpint(pq_svd_truncated(a, m, n, k, randomized, 10, 2, 1, u, s, vt, &e), ==, 0);
    for (int64_t j = 0; j < k; j++)
      for (int64_t i = 0; i < m; i++) u[i * k + j] *= s[j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1, u, (int)k, vt, (int)n, 0, r, (int)n);
    double err = 0;
    for (int64_t i = 0; i < m * n; i++) err += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
    err = sqrt(err);
    g_test_message("%s: error %.6f, optimal %.6f", randomized ? "randomized" : "exact", err, best);
    g_assert_cmpfloat(err, <=, best * (randomized ? 1.01 : 1.0001));
    for (int64_t j = 1; j < k; j++) g_assert_cmpfloat(s[j], <=, s[j - 1]);
  }
  PqPluginError e = {sizeof e, 0, {0}};
  float dummy[1];
  g_assert_cmpint(pq_svd_truncated(a, m, n, 0, 0, 0, 0, 0, dummy, dummy, dummy, &e), ==, -1);
  g_assert_nonnull(strstr(e.message, "rank 0 outside 1..90"));
}

static void test_low_rank(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(64, 48, 10, 31);
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"rank", "9", NULL};
  g_autoptr(PqModel) lr = compress(low_rank, m, kv, &err);
  g_assert_no_error(err);
  g_assert_null(pq_model_tensor(lr, "w1"));
  PqTensor *v = pq_model_tensor(lr, "w1.lr_v"), *u = pq_model_tensor(lr, "w1.lr_u");
  g_assert_cmpint(pq_tensor_shape(v)[0], ==, 9);
  g_assert_cmpint(pq_tensor_shape(v)[1], ==, 64);
  g_assert_cmpint(pq_tensor_shape(u)[0], ==, 48);
  g_assert_cmpint(pq_graph_n_nodes(pq_model_const_graph(lr)), ==, 4);
  /* fc2 (10 x 48) at rank 9 would not shrink: skipped with the reason */
  const PqLayerRecord *r1 = pq_model_record(lr, 0), *r2 = pq_model_record(lr, 1);
  g_assert_false(r1->skipped);
  g_assert_cmpint(r1->params_after, ==, 9 * (48 + 64));
  g_assert_true(r2->skipped);
  g_assert_cmpstr(r2->detail, ==, "rank 9 would not shrink 10 x 48 (k(m+n) >= mn)");
  /* the recorded error is the optimal one (Eckart–Young) */
  const float *w1 = pq_tensor_data(pq_model_tensor(m, "w1"));
  double norm = 0;
  for (int i = 0; i < 48 * 64; i++) norm += (double)w1[i] * w1[i];
  g_assert_cmpfloat_with_epsilon(r1->rel_error, optimal_error(w1, 48, 64, 9) / sqrt(norm), 1e-4);
  /* running the factored graph equals x (U V)^T + b: two linears in place of one */
  int64_t on;
  g_autofree float *y = forward(lr, 4, TRUE, &on);
  g_autoptr(PqModel) dense = pq_model_copy(m);
  int64_t sh[2] = {48, 64};
  g_autoptr(PqTensor) wd = pq_tensor_new("w1", PQ_DTYPE_F32, 2, sh);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 48, 64, 9, 1, pq_tensor_data(u), 9, pq_tensor_data(v), 64, 0,
              pq_tensor_mutable_data(wd), 64);
  pq_model_set_tensor(dense, wd);
  g_autofree float *yd = forward(dense, 4, TRUE, &on);
  g_assert_cmpfloat(max_rel_diff(y, yd, 4 * on), <, 1e-5);
  /* rank larger than the layer: reported, not an error */
  const char *big[] = {"rank", "100", NULL};
  g_autoptr(PqModel) lr2 = compress(low_rank, m, big, &err);
  g_assert_cmpstr(pq_model_record(lr2, 0)->detail, ==, "rank 100 is not below min(48, 64)");
  /* after quantization: the packed weight is reported and left alone */
  g_autoptr(PqModel) q = compress(quant, m, NULL, &err);
  g_autoptr(PqModel) ql = compress(low_rank, q, kv, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_model_record(ql, 2)->detail, ==, "weight 'w1' is packed: factor before quantizing");
  /* data-aware needs calibration */
  const char *da[] = {"data_aware", "true", NULL};
  g_assert_null(compress(low_rank, m, da, &err));
  g_assert_nonnull(strstr(err->message, "needs calibration samples"));
}

/* A conv2d factors into a k-channel conv2d and a 1x1 conv2d that compute the same as the product. */
static void test_low_rank_conv(void) {
  int64_t xs[4] = {-1, 3, 8, 8}, ws[4] = {16, 3, 3, 3}, st[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
  PqModel *m = pq_test_conv_model(xs, ws, st, pads, 3);
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"rank", "5", NULL};
  g_autoptr(PqModel) lr = compress(low_rank, m, kv, &err);
  g_assert_no_error(err);
  /* reference: the conv with W' = U V reshaped back */
  g_autoptr(PqModel) dense = pq_model_copy(m);
  int64_t on;
  PqTensor *u = pq_model_tensor(lr, "cw.lr_u"), *v = pq_model_tensor(lr, "cw.lr_v");
  g_assert_cmpint(pq_tensor_ndim(v), ==, 4);
  g_autoptr(PqTensor) wd = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 16, 27, 5, 1, pq_tensor_data(u), 5, pq_tensor_data(v), 27, 0,
              pq_tensor_mutable_data(wd), 27);
  pq_model_set_tensor(dense, wd);
  g_autofree float *y = forward(lr, 2, TRUE, &on), *yd = forward(dense, 2, TRUE, &on);
  g_assert_cmpint(on, ==, 16 * 4 * 4);
  g_assert_cmpfloat(max_rel_diff(y, yd, 2 * on), <, 1e-5);
  pq_model_unref(m);
}

/* The kernel the Tucker convs compute together (tk_in optional: absent when every input is kept). */
static void tucker_kernel(const PqModel *m, const int64_t *ws, float *w) {
  PqTensor *in = pq_model_tensor(m, "cw.tk_in"), *core = pq_model_tensor(m, "cw.tk_core"), *uo = pq_model_tensor(m, "cw.tk_out");
  const int64_t *cs = pq_tensor_shape(core);
  int64_t o = ws[0], c = ws[1], t = ws[2] * ws[3], ro = cs[0], ri = cs[1];
  const float *ui = in ? pq_tensor_data(in) : NULL, *g = pq_tensor_data(core), *u = uo ? pq_tensor_data(uo) : NULL;
  for (int64_t oi = 0; oi < o; oi++)
    for (int64_t ci = 0; ci < c; ci++)
      for (int64_t ti = 0; ti < t; ti++) {
        double acc = 0;
        for (int64_t r = 0; r < ro; r++)
          for (int64_t s = 0; s < ri; s++)
            acc += (u ? u[oi * ro + r] : (double)(oi == r)) * g[(r * ri + s) * t + ti] * (ui ? ui[s * c + ci] : (double)(s == ci));
        w[(oi * c + ci) * t + ti] = (float)acc;
      }
}

/* The Tucker convs against one conv of the kernel their factors make (same geometry, batch `batch`). */
static void tucker_check_forward(const PqModel *tk, const PqModel *m, const int64_t *ws, int64_t batch) {
  g_autoptr(PqModel) dense = pq_model_copy(m);
  g_autoptr(PqTensor) wd = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
  tucker_kernel(tk, ws, pq_tensor_mutable_data(wd));
  pq_model_set_tensor(dense, wd);
  int64_t on;
  g_autofree float *y = forward(tk, batch, TRUE, &on), *yd = forward(dense, batch, TRUE, &on);
  g_assert_cmpfloat(max_rel_diff(y, yd, batch * on), <, 1e-5);
}

/* Tucker-2: the three convs compute the conv of the kernel their factors make; the factors are orthonormal; a
 * kernel of exact multilinear rank is recovered; HOOI never does worse than HOSVD; skips say why. */
/* Finite weights whose products overflow float32 (values near its limit) make the randomized SVD's sketch NaN,
 * which LAPACK refuses: the error says the values overflowed and names the layer (it said "QR factorisation
 * failed (LAPACK info -4)"). */
static void test_low_rank_overflow(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(64, 48, 10, 7);
  PqTensor *w1 = pq_test_random_tensor("w1", 2, (const int64_t[]){48, 64}, 9, 3e38f);
  pq_model_set_tensor(m, w1);
  pq_tensor_unref(w1);
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"rank", "4", "svd", "randomized", "include", "fc1", NULL};
  g_autoptr(PqModel) lr = compress(low_rank, m, kv, &err);
  g_assert_null(lr);
  g_test_message("%s", err->message);
  g_assert_nonnull(strstr(err->message, "layer 'fc1': "));
  g_assert_nonnull(strstr(err->message, "the matrix holds NaN (values beyond float32's range on the way"));
}

/* A conv decomposed, then its decomposition decomposed again by the same method (a chain of two stages): the
 * second pass names what it adds apart from what the first added (before: "node 'conv.tk_in' ... already
 * defined"), and the model runs. pq_model_unique_name() picks those names. */
static void test_decompose_twice(void) {
  int64_t xs[4] = {-1, 8, 11, 10}, ws[4] = {12, 8, 3, 3}, st[2] = {1, 1}, pads[4] = {1, 1, 1, 1};
  g_autoptr(PqModel) m = pq_test_conv_model(xs, ws, st, pads, 5);
  const char *tk[] = {"rank_in", "4", "rank_out", "6", NULL}, *tk2[] = {"rank_in", "2", "rank_out", "3", NULL}, *lr[] = {"rank", "3", NULL},
             *lr2[] = {"rank", "2", NULL};
  struct {
    PqPlugin **plugin;
    const char *const *kv, *const *kv2;
  } methods[] = {{&tucker, tk, tk2}, {&low_rank, lr, lr2}}; /* (cp's second pass finds only 1x1 and depthwise convs: nothing to do) */
  for (size_t i = 0; i < G_N_ELEMENTS(methods); i++) {
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) once = compress(*methods[i].plugin, m, methods[i].kv, &err);
    g_assert_no_error(err);
    g_autoptr(PqModel) twice = compress(*methods[i].plugin, once, methods[i].kv2, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(twice)), >, pq_graph_n_nodes(pq_model_const_graph(once)));
    int64_t on;
    g_autofree float *y = forward(twice, 2, TRUE, &on);
    g_assert_cmpint(on, ==, 12 * 11 * 10);
    for (int64_t j = 0; j < 2 * on; j++) g_assert_true(isfinite(y[j]));
  }
  /* the names it gives */
  char name[64];
  g_assert_cmpint(pq_model_unique_name(m, "cw.free", name, sizeof name), ==, 0);
  g_assert_cmpstr(name, ==, "cw.free");
  g_assert_cmpint(pq_model_unique_name(m, "cw", name, sizeof name), ==, 0); /* a tensor */
  g_assert_cmpstr(name, ==, "cw.2");
  g_assert_cmpint(pq_model_unique_name(m, "conv", name, sizeof name), ==, 0); /* a node */
  g_assert_cmpstr(name, ==, "conv.2");
  g_assert_cmpint(pq_model_unique_name(m, "x", name, sizeof name), ==, 0); /* the graph's input */
  g_assert_cmpstr(name, ==, "x.2");
  g_assert_cmpint(pq_model_unique_name(m, "y", name, sizeof name), ==, 0); /* a node's output */
  g_assert_cmpstr(name, ==, "y.2");
  g_assert_cmpint(pq_model_unique_name(m, "a-long-name", name, 4), ==, -1);
}

static void test_tucker(void) {
  int64_t xs[4] = {-1, 8, 11, 10}, ws[4] = {12, 8, 3, 3}, st[2] = {2, 1}, pads[4] = {1, 0, 2, 1};
  PqModel *m = pq_test_conv_model(xs, ws, st, pads, 21);
  int64_t dil[2] = {1, 2};
  pq_node_set_ints(pq_graph_node(pq_model_graph(m), 0), "dilations", 2, dil);
  g_autoptr(GError) err = NULL;
  double errs[2];
  for (int iters = 0; iters < 2; iters++) {
    const char *kv[] = {"rank_in", "4", "rank_out", "6", "iters", iters ? "10" : "0", NULL};
    g_autoptr(PqModel) tk = compress(tucker, m, kv, &err);
    g_assert_no_error(err);
    g_assert_cmpint(pq_graph_n_nodes(pq_model_graph(tk)), ==, 3);
    g_assert_null(pq_model_tensor(tk, "cw"));
    const int64_t *is = pq_tensor_shape(pq_model_tensor(tk, "cw.tk_in")), *cs = pq_tensor_shape(pq_model_tensor(tk, "cw.tk_core"));
    const int64_t *os = pq_tensor_shape(pq_model_tensor(tk, "cw.tk_out"));
    g_assert_true(is[0] == 4 && is[1] == 8 && is[2] == 1 && is[3] == 1);
    g_assert_true(cs[0] == 6 && cs[1] == 4 && cs[2] == 3 && cs[3] == 3);
    g_assert_true(os[0] == 12 && os[1] == 6 && os[2] == 1 && os[3] == 1);
    /* orthonormal factors: U_inᵀ's rows, U_out's columns */
    const float *ui = pq_tensor_data(pq_model_tensor(tk, "cw.tk_in")), *uo = pq_tensor_data(pq_model_tensor(tk, "cw.tk_out"));
    for (int a = 0; a < 4; a++)
      for (int b = 0; b < 4; b++) g_assert_cmpfloat(fabs(cblas_sdot(8, ui + a * 8, 1, ui + b * 8, 1) - (a == b)), <, 1e-5);
    for (int a = 0; a < 6; a++)
      for (int b = 0; b < 6; b++) g_assert_cmpfloat(fabs(cblas_sdot(12, uo + a, 6, uo + b, 6) - (a == b)), <, 1e-5);
    /* outputs = the original conv (strides, pads, dilations) with the factors' kernel */
    tucker_check_forward(tk, m, ws, 3);
    /* the record: its error is that kernel's */
    g_autofree float *wd = g_new(float, 12 * 8 * 9);
    tucker_kernel(tk, ws, wd);
    const PqLayerRecord *r = pq_model_record(tk, 0);
    g_assert_false(r->skipped);
    g_assert_cmpint(r->params_before, ==, 12 * 8 * 9);
    g_assert_cmpint(r->params_after, ==, 8 * 4 + 6 * 4 * 9 + 6 * 12);
    g_assert_cmpint(r->bytes_after, ==, 4 * r->params_after);
    double rel, sqnr;
    pq_error_stats(pq_tensor_data(pq_model_tensor(m, "cw")), wd, 12 * 8 * 9, &rel, &sqnr);
    g_assert_cmpfloat_with_epsilon(r->rel_error, rel, 1e-5);
    errs[iters] = r->rel_error;
  }
  g_test_message("Tucker (4, 6) of a random 12x8x3x3 kernel: HOSVD %.4f, HOOI %.4f", errs[0], errs[1]);
  g_assert_cmpfloat(errs[1], <=, errs[0] + 1e-6);
  g_assert_cmpfloat(errs[1], <, errs[0]); /* on a random kernel the sweeps gain something */

  /* a kernel of multilinear rank (3, 5) built from random factors is recovered */
  {
    g_autoptr(PqModel) ex = pq_model_copy(m);
    int64_t gs[3] = {5, 3, 9}, as[2] = {12, 5}, bs[2] = {8, 3};
    g_autoptr(PqTensor) g = pq_test_random_tensor("g", 3, gs, 1, 1);
    g_autoptr(PqTensor) a = pq_test_random_tensor("a", 2, as, 2, 1);
    g_autoptr(PqTensor) b = pq_test_random_tensor("b", 2, bs, 3, 1);
    g_autoptr(PqTensor) w = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
    float *wv = pq_tensor_mutable_data(w);
    const float *gv = pq_tensor_data(g), *av = pq_tensor_data(a), *bv = pq_tensor_data(b);
    for (int o = 0; o < 12; o++)
      for (int c = 0; c < 8; c++)
        for (int t = 0; t < 9; t++) {
          double acc = 0;
          for (int rr = 0; rr < 5; rr++)
            for (int s = 0; s < 3; s++) acc += av[o * 5 + rr] * gv[(rr * 3 + s) * 9 + t] * bv[c * 3 + s];
          wv[(o * 8 + c) * 9 + t] = (float)acc;
        }
    pq_model_set_tensor(ex, w);
    const char *kv[] = {"rank_in", "3", "rank_out", "5", NULL};
    g_autoptr(PqModel) tk = compress(tucker, ex, kv, &err);
    g_assert_no_error(err);
    g_assert_cmpfloat(pq_model_record(tk, 0)->rel_error, <, 1e-5);
    /* energy 0.9999 finds those ranks */
    const char *kve[] = {"energy", "0.9999", NULL};
    g_autoptr(PqModel) te = compress(tucker, ex, kve, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(pq_model_record(te, 0)->detail, ==, "Tucker-2 ranks in 3 / out 5, 3x3 core, 10 HOOI iterations");
  }
  /* every input kept: no 1x1 conv in front, the core reads x */
  {
    const char *kv[] = {"rank_in", "8", "rank_out", "3", NULL};
    g_autoptr(PqModel) tk = compress(tucker, m, kv, &err);
    g_assert_no_error(err);
    g_assert_null(pq_model_tensor(tk, "cw.tk_in"));
    g_assert_cmpint(pq_graph_n_nodes(pq_model_graph(tk)), ==, 2);
    tucker_check_forward(tk, m, ws, 2);
  }
  /* every output kept: the layer itself runs the core, bias and geometry as they were */
  {
    const char *kv[] = {"rank_in", "2", "rank_out", "12", NULL};
    g_autoptr(PqModel) tk = compress(tucker, m, kv, &err);
    g_assert_no_error(err);
    g_assert_null(pq_model_tensor(tk, "cw.tk_out"));
    g_assert_cmpint(pq_graph_n_nodes(pq_model_graph(tk)), ==, 2);
    tucker_check_forward(tk, m, ws, 2);
  }
  /* skipped, with the reason */
  {
    const char *kv[] = {"rank_in", "8", "rank_out", "12", NULL};
    g_autoptr(PqModel) tk = compress(tucker, m, kv, &err);
    g_assert_no_error(err);
    g_assert_true(pq_model_record(tk, 0)->skipped);
    g_assert_cmpstr(pq_model_record(tk, 0)->detail, ==, "ranks 8 / 12 keep all 8 inputs and 12 outputs");
    const char *kv2[] = {"rank_in", "7", "rank_out", "11", NULL};
    g_autoptr(PqModel) t2 = compress(tucker, m, kv2, &err);
    g_assert_cmpstr(pq_model_record(t2, 0)->detail, ==, "ranks in 7 / out 11 would not shrink 12 x 8 x 3x3 (881 >= 864 weights)");
    int64_t pws[4] = {12, 8, 1, 1}, one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
    g_autoptr(PqModel) pw = pq_test_conv_model(xs, pws, one, zero, 4);
    g_autoptr(PqModel) t3 = compress(tucker, pw, NULL, &err);
    g_assert_cmpstr(pq_model_record(t3, 0)->detail, ==, "a 1x1 convolution is a matrix: low_rank factors it");
    int64_t gws[4] = {12, 4, 3, 3};
    g_autoptr(PqModel) gc = pq_test_conv_model(xs, gws, one, zero, 5);
    pq_node_set_int(pq_graph_node(pq_model_graph(gc), 0), "groups", 2);
    g_autoptr(PqModel) t4 = compress(tucker, gc, NULL, &err);
    g_assert_cmpstr(pq_model_record(t4, 0)->detail, ==, "grouped convolution");
    g_assert_no_error(err);
  }
  pq_model_unref(m);
}

/* The kernel the four CP convs compute together: Σ_r out[o, r] · in[r, c] · h[r, i] · w[r, j]. */
static void cp_kernel(const PqModel *m, const int64_t *ws, float *w) {
  const float *fi = pq_tensor_data(pq_model_tensor(m, "cw.cp_in")), *fh = pq_tensor_data(pq_model_tensor(m, "cw.cp_h"));
  const float *fw = pq_tensor_data(pq_model_tensor(m, "cw.cp_w")), *fo = pq_tensor_data(pq_model_tensor(m, "cw.cp_out"));
  int64_t R = pq_tensor_shape(pq_model_tensor(m, "cw.cp_in"))[0], O = ws[0], C = ws[1], kh = ws[2], kw = ws[3];
  for (int64_t o = 0; o < O; o++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
          double s = 0;
          for (int64_t r = 0; r < R; r++) s += (double)fo[o * R + r] * fi[r * C + c] * fh[r * kh + i] * fw[r * kw + j];
          w[((o * C + c) * kh + i) * kw + j] = (float)s;
        }
}

/* CP: the four convs (1x1, depthwise kx1 and 1xk with the layer's strides, pads and dilations split by axis,
 * 1x1) compute the conv of the kernel their factors make; a kernel of CP rank 3 is recovered; skips say why. */
static void test_cp(void) {
  int64_t xs[4] = {-1, 6, 11, 10}, ws[4] = {10, 6, 3, 3}, st[2] = {2, 1}, pads[4] = {1, 0, 2, 1}, dil[2] = {1, 2};
  PqModel *m = pq_test_conv_model(xs, ws, st, pads, 41);
  pq_node_set_ints(pq_graph_node(pq_model_graph(m), 0), "dilations", 2, dil);
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"rank", "5", NULL};
  g_autoptr(PqModel) c = compress(cp, m, kv, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_graph_n_nodes(pq_model_graph(c)), ==, 4);
  const PqLayerRecord *r = pq_model_record(c, 0);
  g_assert_false(r->skipped);
  g_assert_cmpint(r->params_after, ==, 5 * (10 + 6 + 3 + 3));
  g_autoptr(PqModel) dense = pq_model_copy(m);
  g_autoptr(PqTensor) wd = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
  cp_kernel(c, ws, pq_tensor_mutable_data(wd));
  pq_model_set_tensor(dense, wd);
  int64_t on;
  g_autofree float *y = forward(c, 3, TRUE, &on), *yd = forward(dense, 3, TRUE, &on);
  g_assert_cmpfloat(max_rel_diff(y, yd, 3 * on), <, 1e-5);
  double rel, sqnr;
  pq_error_stats(pq_tensor_data(pq_model_tensor(m, "cw")), pq_tensor_data(wd), 10 * 6 * 9, &rel, &sqnr);
  g_assert_cmpfloat_with_epsilon(r->rel_error, rel, 1e-4);
  g_assert_cmpfloat(r->rel_error, <, 1.0);
  /* a kernel of CP rank 3 */
  g_autoptr(PqModel) ex = pq_model_copy(m);
  int64_t as[2] = {10, 3}, bs[2] = {6, 3}, hs[2] = {3, 3};
  g_autoptr(PqTensor) fa = pq_test_random_tensor("a", 2, as, 1, 1);
  g_autoptr(PqTensor) fb = pq_test_random_tensor("b", 2, bs, 2, 1);
  g_autoptr(PqTensor) fh = pq_test_random_tensor("h", 2, hs, 3, 1);
  g_autoptr(PqTensor) fw = pq_test_random_tensor("w", 2, hs, 4, 1);
  g_autoptr(PqTensor) w3 = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
  const float *a = pq_tensor_data(fa), *b = pq_tensor_data(fb), *h = pq_tensor_data(fh), *wv = pq_tensor_data(fw);
  float *k3 = pq_tensor_mutable_data(w3);
  for (int o = 0; o < 10; o++)
    for (int ci = 0; ci < 6; ci++)
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
          double s = 0;
          for (int q = 0; q < 3; q++) s += (double)a[o * 3 + q] * b[ci * 3 + q] * h[i * 3 + q] * wv[j * 3 + q];
          k3[((o * 6 + ci) * 3 + i) * 3 + j] = (float)s;
        }
  pq_model_set_tensor(ex, w3);
  const char *kv3[] = {"rank", "3", "tolerance", "0", "iters", "500", NULL};
  g_autoptr(PqModel) c3 = compress(cp, ex, kv3, &err);
  g_assert_no_error(err);
  g_test_message("CP rank 3 of a rank-3 kernel: relative error %.2e (%s)", pq_model_record(c3, 0)->rel_error, pq_model_record(c3, 0)->detail);
  g_assert_cmpfloat(pq_model_record(c3, 0)->rel_error, <, 1e-3);
  /* skipped, with the reason */
  const char *kvb[] = {"rank", "40", NULL};
  g_autoptr(PqModel) big = compress(cp, m, kvb, &err);
  g_assert_cmpstr(pq_model_record(big, 0)->detail, ==, "rank 40 would not shrink 10 x 6 x 3x3 (880 >= 540 weights)");
  int64_t pws[4] = {12, 6, 1, 1}, one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
  g_autoptr(PqModel) pw = pq_test_conv_model(xs, pws, one, zero, 4);
  g_autoptr(PqModel) cpw = compress(cp, pw, NULL, &err);
  g_assert_cmpstr(pq_model_record(cpw, 0)->detail, ==, "a 1x1 convolution is a matrix: low_rank factors it");
  g_assert_no_error(err);
  /* a one-input-channel conv (a CNN's first): param_fraction's rank is 1, below min_rank 4, so it stays as it
     is (rank 1 cost the CNN 31.7 pp); an explicit rank is taken as asked, and min_rank 1 takes the small rank */
  {
    int64_t xs1[4] = {-1, 1, 12, 12}, ws1[4] = {16, 1, 3, 3};
    g_autoptr(PqModel) m1 = pq_test_conv_model(xs1, ws1, one, zero, 5);
    g_autoptr(PqModel) c1 = compress(cp, m1, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(pq_model_record(c1, 0)->skipped);
    g_assert_cmpstr(pq_model_record(c1, 0)->detail, ==, "param_fraction 0.25 gives rank 1, below min_rank 4 (a 16 x 1 x 3x3 kernel)");
    const char *kvr[] = {"rank", "2", NULL}, *kvm[] = {"min_rank", "1", NULL};
    g_autoptr(PqModel) c2 = compress(cp, m1, kvr, &err);
    g_assert_false(pq_model_record(c2, 0)->skipped);
    g_autoptr(PqModel) c3m = compress(cp, m1, kvm, &err);
    g_assert_false(pq_model_record(c3m, 0)->skipped);
    g_assert_no_error(err);
  }
  /* a kernel of zeros without a ridge: the normal equations are singular, an error naming the layer */
  g_autoptr(PqModel) zm = pq_model_copy(m);
  g_autoptr(PqTensor) zw = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
  pq_model_set_tensor(zm, zw);
  const char *kvz[] = {"rank", "5", "ridge", "0", NULL};
  g_assert_null(compress(cp, zm, kvz, &err));
  g_assert_nonnull(strstr(err->message, "layer 'conv': the ALS normal equations are singular"));
  pq_model_unref(m);
}

/* The FFT kernel computes exactly the product with the expanded block-circulant matrix; the projection
 * keeps an already-circulant weight as it is. */
static void test_circulant(void) {
  for (int pass = 0; pass < 2; pass++) {
    const int64_t b = 8, in = pass ? 37 : 32, out = pass ? 21 : 24; /* pass 1: b divides neither */
    g_autoptr(PqModel) m = pq_test_tiny_mlp((int)in, (int)out, 10, 50 + pass);
    g_autoptr(GError) err = NULL;
    const char *kv[] = {"block", "8", "include", "fc1", NULL};
    g_autoptr(PqModel) c = compress(circulant, m, kv, &err);
    g_assert_no_error(err);
    PqTensor *blocks = pq_model_tensor(c, "w1.circ");
    g_assert_nonnull(blocks);
    g_assert_null(pq_model_tensor(c, "w1"));
    int64_t mb = (out + b - 1) / b, nb = (in + b - 1) / b;
    g_assert_cmpint(pq_tensor_numel(blocks), ==, mb * nb * b);
    /* the dense matrix the blocks stand for */
    const float *cb = pq_tensor_data(blocks);
    int64_t sh[2] = {out, in};
    g_autoptr(PqTensor) wd = pq_tensor_new("w1", PQ_DTYPE_F32, 2, sh);
    float *w = pq_tensor_mutable_data(wd);
    for (int64_t i = 0; i < out; i++)
      for (int64_t j = 0; j < in; j++) w[i * in + j] = cb[((i / b) * nb + j / b) * b + ((i % b - j % b) % b + b) % b];
    g_autoptr(PqModel) dense = pq_model_copy(m);
    pq_model_set_tensor(dense, wd);
    int64_t on;
    g_autofree float *y = forward(c, 3, TRUE, &on), *yd = forward(dense, 3, TRUE, &on);
    g_assert_cmpfloat(max_rel_diff(y, yd, 3 * on), <, 1e-5);
    /* projecting that circulant matrix again gives the same blocks (when b divides the shape) */
    if (!pass) {
      g_autoptr(PqModel) again = compress(circulant, dense, kv, &err);
      const float *cb2 = pq_tensor_data(pq_model_tensor(again, "w1.circ"));
      for (int64_t i = 0; i < mb * nb * b; i++) g_assert_cmpfloat_with_epsilon(cb2[i], cb[i], 1e-6);
      g_assert_cmpfloat(pq_model_record(again, 0)->rel_error, <, 1e-6);
    }
  }
  /* a block too large to shrink the layer: reported */
  g_autoptr(PqModel) m = pq_test_tiny_mlp(4, 3, 2, 1);
  g_autoptr(GError) err = NULL;
  const char *big[] = {"block", "16", NULL};
  g_autoptr(PqModel) c = compress(circulant, m, big, &err);
  g_assert_cmpstr(pq_model_record(c, 0)->detail, ==, "block 16 would not shrink 3 x 4");
}

/* W from TT cores, by the definition W[(i..), (j..)] = G_1[:, i1, j1, :] … G_d[:, id, jd, :]. */
static void tt_dense_ref(const PqModel *m, const char *base, int d, int64_t M, int64_t N, float *w) {
  const PqTensor *g[8];
  for (int k = 0; k < d; k++) {
    g_autofree char *name = g_strdup_printf("%s.tt%d", base, k + 1);
    g[k] = pq_model_tensor(m, name);
    g_assert_nonnull(g[k]);
  }
  for (int64_t row = 0; row < M; row++)
    for (int64_t col = 0; col < N; col++) {
      int64_t ii[8], jj[8], t = row, u = col;
      for (int k = d - 1; k >= 0; k--) {
        ii[k] = t % pq_tensor_shape(g[k])[1];
        t /= pq_tensor_shape(g[k])[1];
        jj[k] = u % pq_tensor_shape(g[k])[2];
        u /= pq_tensor_shape(g[k])[2];
      }
      double v[64] = {1.0}, v2[64];
      for (int k = 0; k < d; k++) {
        const int64_t *sh = pq_tensor_shape(g[k]);
        const float *c = pq_tensor_data(g[k]);
        for (int64_t b = 0; b < sh[3]; b++) {
          v2[b] = 0;
          for (int64_t a = 0; a < sh[0]; a++) v2[b] += v[a] * c[((a * sh[1] + ii[k]) * sh[2] + jj[k]) * sh[3] + b];
        }
        memcpy(v, v2, sizeof(double) * (size_t)sh[3]);
      }
      w[row * N + col] = (float)v[0];
    }
}

/* m with its fc1 weight w1 [M, N] replaced by the dense matrix of the d cores tensor_train gave it in tt */
static PqModel *tt_densified(const PqModel *m, const PqModel *tt, int d, int64_t M, int64_t N) {
  int64_t sh[2] = {M, N};
  g_autoptr(PqTensor) wd = pq_tensor_new("w1", PQ_DTYPE_F32, 2, sh);
  tt_dense_ref(tt, "w1", d, M, N, pq_tensor_mutable_data(wd));
  PqModel *dense = pq_model_copy(m);
  pq_model_set_tensor(dense, wd);
  return dense;
}

static void test_tensor_train(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(24, 30, 10, 61);
  g_autoptr(GError) err = NULL;
  /* a low rank: the kernel computes exactly the product with the matrix the cores stand for */
  for (int d = 2; d <= 3; d++) {
    g_autofree char *ds = g_strdup_printf("%d", d);
    const char *low[] = {"max_rank", "3", "cores", ds, "include", "fc1", NULL};
    g_autoptr(PqModel) tl = compress(tensor_train, m, low, &err);
    g_assert_no_error(err);
    g_assert_false(pq_model_record(tl, 0)->skipped);
    g_assert_null(pq_model_tensor(tl, "w1"));
    g_autoptr(PqModel) dense = tt_densified(m, tl, d, 30, 24);
    int64_t on;
    g_autofree float *y = forward(tl, 4, TRUE, &on), *yd = forward(dense, 4, TRUE, &on);
    g_assert_cmpfloat(max_rel_diff(y, yd, 4 * on), <, 1e-5);
    /* a batch of 70: 32 rows at a time, then 6 */
    g_autofree float *y70 = forward(tl, 70, TRUE, &on), *yd70 = forward(dense, 70, TRUE, &on);
    g_assert_cmpfloat(max_rel_diff(y70, yd70, 70 * on), <, 1e-5);
    /* so its work buffers do not grow past 32 rows: from 32 to 256 rows the backend holds no more than the float
       model's growth (the activations) */
    int64_t grow[2];
    const PqModel *both[2] = {tl, dense};
    for (int v = 0; v < 2; v++) {
      int64_t peak[2];
      for (int bi = 0; bi < 2; bi++) {
        g_autoptr(PqBackend) be = pq_backend_prepare(cpu, both[v], 1, bi ? 256 : 32, NULL, &err);
        g_assert_no_error(err);
        PqMemoryCounters mc = {sizeof mc, 0, -1, -1, -1, -1, -1};
        g_assert_true(pq_backend_memory(be, &mc, &err));
        peak[bi] = mc.peak_bytes;
      }
      grow[v] = peak[1] - peak[0];
    }
    g_assert_cmpint(grow[0], <=, grow[1]);
    /* the recorded error is the error of that matrix */
    double rel;
    pq_error_stats(pq_tensor_data(pq_model_tensor(m, "w1")), pq_tensor_data(pq_model_tensor(dense, "w1")), 720, &rel, NULL);
    g_assert_cmpfloat_with_epsilon(pq_model_record(tl, 0)->rel_error, rel, 1e-5);
  }
  /* W = A ⊗ B has TT rank 1 with 2 cores: the tolerance finds it, and the form is exact */
  g_autoptr(PqModel) k = pq_test_tiny_mlp(64, 64, 10, 62);
  float *w = pq_tensor_mutable_data(pq_model_tensor(k, "w1"));
  for (int i = 0; i < 64; i++)
    for (int j = 0; j < 64; j++) w[i * 64 + j] = sinf((float)(i / 8 * 8 + j / 8) * 0.7f) * cosf((float)(i % 8 * 8 + j % 8) * 0.3f);
  const char *tol[] = {"max_rank", "64", "cores", "2", "tolerance", "0.0001", "include", "fc1", NULL};
  g_autoptr(PqModel) tk = compress(tensor_train, k, tol, &err);
  g_assert_no_error(err);
  const PqLayerRecord *rk = pq_model_record(tk, 0);
  g_assert_false(rk->skipped);
  g_assert_cmpstr(rk->detail, ==, "2 cores, ranks 1-1-1, m 8x8, n 8x8");
  g_assert_cmpint(rk->params_after, ==, 128);
  g_assert_cmpfloat(rk->rel_error, <, 1e-5);
  /* a bond at full rank (3 cores of 30 x 24: the first core's 2·2 values a rank, all 4 kept) is merged: 2 cores
     holding fewer values, the same matrix; merge_full_bonds=false keeps the 3 */
  {
    const char *full[] = {"max_rank", "6", "cores", "3", "include", "fc1", NULL}, *keep[] = {"max_rank", "6", "cores", "3", "include", "fc1",
                                                                                           "merge_full_bonds", "false", NULL};
    g_autoptr(PqModel) tm = compress(tensor_train, m, full, &err);
    g_autoptr(PqModel) t3 = compress(tensor_train, m, keep, &err);
    g_assert_no_error(err);
    const PqLayerRecord *rm = pq_model_record(tm, 0), *r3 = pq_model_record(t3, 0);
    g_assert_cmpstr(r3->detail, ==, "3 cores, ranks 1-4-6-1, m 2x3x5, n 2x3x4");
    g_assert_cmpstr(rm->detail, ==, "2 cores (of 3: 1 bond at full rank merged), ranks 1-6-1, m 6x5, n 6x4");
    g_assert_cmpint(rm->params_after, <, r3->params_after);
    g_assert_cmpint(pq_node_get_int(pq_graph_node(pq_model_graph(tm), 0), "cores", 0), ==, 2);
    g_assert_cmpfloat_with_epsilon(rm->rel_error, r3->rel_error, 1e-5);
    g_autoptr(PqModel) dm = tt_densified(m, tm, 2, 30, 24);
    g_autoptr(PqModel) d3 = tt_densified(m, t3, 3, 30, 24);
    g_assert_cmpfloat(max_rel_diff(pq_tensor_data(pq_model_tensor(dm, "w1")), pq_tensor_data(pq_model_tensor(d3, "w1")), 720), <, 1e-5);
    int64_t on;
    g_autofree float *ym = forward(tm, 5, TRUE, &on), *y3 = forward(t3, 5, TRUE, &on);
    g_assert_cmpfloat(max_rel_diff(ym, y3, 5 * on), <, 1e-5);
  }
  /* left ranks of 8 and more (16 here, 3 cores of 256 x 256 kept as 3): those cores run as one GEMM a value of m_k,
     the others as one GEMM and a transpose; the same product with the dense matrix, at 4 rows and at 70 */
  {
    g_autoptr(PqModel) m64 = pq_test_tiny_mlp(256, 256, 10, 63);
    const char *r16[] = {"max_rank", "16", "cores", "3", "include", "fc1", "merge_full_bonds", "false", NULL};
    g_autoptr(PqModel) t16 = compress(tensor_train, m64, r16, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(pq_model_record(t16, 0)->detail, ==, "3 cores, ranks 1-16-16-1, m 4x8x8, n 4x8x8");
    g_autoptr(PqModel) dense = tt_densified(m64, t16, 3, 256, 256);
    for (int rows = 4; rows <= 70; rows += 66) {
      int64_t on;
      g_autofree float *y = forward(t16, rows, TRUE, &on), *yd = forward(dense, rows, TRUE, &on);
      g_assert_cmpfloat(max_rel_diff(y, yd, rows * on), <, 1e-5);
    }
  }
  /* not shrinking: reported */
  const char *big[] = {"max_rank", "64", "cores", "2", "include", "fc1", NULL};
  g_autoptr(PqModel) tb = compress(tensor_train, m, big, &err);
  g_assert_true(pq_model_record(tb, 0)->skipped);
  g_assert_nonnull(strstr(pq_model_record(tb, 0)->detail, "would not shrink 30 x 24"));
}

/* m with each named weight replaced by the dense matrix of its CSR form in p (name.sp_values, .sp_cols u16, .sp_rows). */
static PqModel *densified(const PqModel *p, const PqModel *m, const char *const *names) {
  PqModel *d = pq_model_copy(m);
  for (int l = 0; l < 2; l++) {
    const PqTensor *orig = pq_model_tensor(m, names[l]);
    int64_t rows_n = pq_tensor_shape(orig)[0], cols_n = pq_tensor_shape(orig)[1];
    g_autoptr(PqTensor) t = pq_tensor_new(names[l], PQ_DTYPE_F32, 2, pq_tensor_shape(orig));
    float *w = pq_tensor_mutable_data(t);
    memset(w, 0, sizeof(float) * (size_t)(rows_n * cols_n));
    g_autofree char *vn = g_strdup_printf("%s.sp_values", names[l]), *cn = g_strdup_printf("%s.sp_cols", names[l]),
                    *rn = g_strdup_printf("%s.sp_rows", names[l]);
    const float *v = pq_tensor_data(pq_model_tensor(p, vn));
    const guint16 *c = pq_tensor_data(pq_model_tensor(p, cn));
    const gint32 *r = pq_tensor_data(pq_model_tensor(p, rn));
    for (int64_t row = 0; row < rows_n; row++)
      for (gint32 q = r[row]; q < r[row + 1]; q++) w[row * cols_n + c[q]] = v[q];
    pq_model_set_tensor(d, t);
  }
  return d;
}

static void test_prune(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(40, 24, 10, 71);
  g_autoptr(GError) err = NULL;
  /* a convolution is left as it was, and the record says so */
  {
    int64_t xs[4] = {-1, 3, 8, 8}, ws[4] = {8, 3, 3, 3}, one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
    g_autoptr(PqModel) cm = pq_test_conv_model(xs, ws, one, zero, 2);
    g_autoptr(PqModel) cp1 = compress(prune, cm, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(pq_model_record(cp1, 0)->skipped);
    g_assert_nonnull(strstr(pq_model_record(cp1, 0)->detail, "a convolution: prune compresses linear layers"));
    const char *kvt[] = {"max_rank", "4", NULL};
    g_autoptr(PqModel) tt1 = compress(tensor_train, cm, kvt, &err);
    g_assert_cmpstr(pq_model_record(tt1, 0)->detail, ==, "a convolution: tensor_train compresses linear layers (tucker, cp, low_rank and quant take convolutions)");
    g_autoptr(PqModel) ci1 = compress(circulant, cm, NULL, &err);
    g_assert_true(pq_model_record(ci1, 0)->skipped);
    g_assert_no_error(err);
  }
  /* unstructured: the CSR kernel equals the dense layer with the pruned weights zeroed */
  const char *kv[] = {"sparsity", "0.75", NULL};
  g_autoptr(PqModel) p = compress(prune, m, kv, &err);
  g_assert_no_error(err);
  g_assert_null(pq_model_tensor(p, "w1"));
  PqTensor *vals = pq_model_tensor(p, "w1.sp_values"), *cols = pq_model_tensor(p, "w1.sp_cols");
  g_assert_cmpint(pq_tensor_numel(vals), ==, 240); /* 960 weights, 720 dropped */
  g_assert_cmpint(pq_tensor_dtype(cols), ==, PQ_DTYPE_U16);
  g_assert_cmpint(pq_model_n_params(p), ==, 240 + 60 + 24 + 10);
  const char *ws[2] = {"w1", "w2"};
  /* ties at the threshold (w1's magnitudes 0.05 .. 0.15 in steps, the largest met first in each row): exactly as
     many dropped as asked, the largest of the ties kept, whatever the order they come in */
  g_autoptr(PqModel) tied = pq_model_copy(m);
  PqTensor *tw = pq_tensor_new("w1", PQ_DTYPE_F32, 2, (const int64_t[]){24, 40});
  float *twd = pq_tensor_mutable_data(tw);
  for (int i = 0; i < 960; i++) twd[i] = (i % 40 < 20 ? 0.15f : 0.05f + 0.01f * (float)(i % 3)) * (i % 2 ? -1.0f : 1.0f);
  pq_model_set_tensor(tied, tw);
  pq_tensor_unref(tw);
  const char *nearly_all[] = {"sparsity", "0.999", "include", "fc1", NULL};
  g_autoptr(PqModel) pt = compress(prune, tied, nearly_all, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_tensor_numel(pq_model_tensor(pt, "w1.sp_values")), ==, 1); /* 960 - floor(0.999 * 960) */
  g_assert_cmpfloat(fabsf(((const float *)pq_tensor_data(pq_model_tensor(pt, "w1.sp_values")))[0]), ==, 0.15f);
  g_autoptr(PqModel) masked = densified(p, m, ws);
  int64_t on;
  g_autofree float *y = forward(p, 3, TRUE, &on), *ym = forward(masked, 3, TRUE, &on);
  g_assert_cmpfloat(max_rel_diff(y, ym, 3 * on), <, 1e-5);
  /* at every batch size (one row at a time below 4 rows, chunks of 16 transposed rows from 4, with a part
     chunk), with and without AVX-512, with u16 and i32 column indices; rows of 80 values (gathers of 16) */
  g_autoptr(PqModel) wide = pq_test_tiny_mlp(200, 40, 10, 72);
  const char *kv6[] = {"sparsity", "0.6", NULL};
  g_autoptr(PqModel) pw = compress(prune, wide, kv6, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) pw_dense = densified(pw, wide, ws), p32 = pq_model_copy(pw);
  for (int l = 0; l < 2; l++) {
    g_autofree char *cn = g_strdup_printf("%s.sp_cols", ws[l]);
    const PqTensor *c16 = pq_model_tensor(pw, cn);
    g_autoptr(PqTensor) c32 = pq_tensor_new(cn, PQ_DTYPE_I32, 1, pq_tensor_shape(c16));
    for (int64_t q = 0; q < pq_tensor_numel(c16); q++) ((gint32 *)pq_tensor_mutable_data(c32))[q] = ((const guint16 *)pq_tensor_data(c16))[q];
    pq_model_set_tensor(p32, c32);
  }
  const int64_t batches[] = {1, 3, 4, 16, 17, 37};
  for (int bi = 0; bi < 6; bi++)
    for (int simd = 0; simd < 2; simd++) {
      int64_t bt = batches[bi];
      g_autofree float *ys = forward(pw, bt, simd, &on), *yd = forward(pw_dense, bt, simd, &on), *y32 = forward(p32, bt, simd, &on);
      g_assert_cmpfloat(max_rel_diff(ys, yd, bt * on), <, 1e-5);
      g_assert_cmpfloat(max_rel_diff(y32, yd, bt * on), <, 1e-5);
    }
  /* the kept weights are the largest: every dropped |w| <= every kept |w| */
  const float *w1 = pq_tensor_data(pq_model_tensor(m, "w1")), *w1m = pq_tensor_data(pq_model_tensor(masked, "w1"));
  float max_dropped = 0, min_kept = INFINITY;
  for (int i = 0; i < 960; i++) {
    if (w1m[i] == 0.0f) max_dropped = fmaxf(max_dropped, fabsf(w1[i]));
    else min_kept = fminf(min_kept, fabsf(w1[i]));
  }
  g_assert_cmpfloat(max_dropped, <=, min_kept);
  /* a malformed CSR weight is refused at prepare, not read out of bounds */
  g_autoptr(PqModel) bad = pq_model_copy(p);
  int64_t rs[1] = {25};
  g_autoptr(PqTensor) br = pq_tensor_new("w1.sp_rows", PQ_DTYPE_I32, 1, rs);
  memcpy(pq_tensor_mutable_data(br), pq_tensor_data(pq_model_tensor(p, "w1.sp_rows")), 25 * 4);
  ((gint32 *)pq_tensor_mutable_data(br))[5] = 100000;
  pq_model_set_tensor(bad, br);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "row starts decrease"));
  g_clear_error(&err);
  g_autoptr(PqModel) bad2 = pq_model_copy(p); /* a column index beyond the input */
  PqTensor *ci = pq_model_tensor(p, "w1.sp_cols");
  g_autoptr(PqTensor) bc = pq_tensor_new("w1.sp_cols", pq_tensor_dtype(ci), 1, pq_tensor_shape(ci));
  memcpy(pq_tensor_mutable_data(bc), pq_tensor_data(ci), pq_tensor_nbytes(ci));
  ((guint16 *)pq_tensor_mutable_data(bc))[3] = 1000;
  pq_model_set_tensor(bad2, bc);
  g_assert_null(pq_backend_prepare(cpu, bad2, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "column index 1000 out of range"));
  g_clear_error(&err);
  g_autoptr(PqModel) bad3 = pq_model_copy(p); /* row starts for a different number of rows: the shape rule refuses it */
  int64_t rs3[1] = {24};
  g_autoptr(PqTensor) br3 = pq_tensor_new("w1.sp_rows", PQ_DTYPE_I32, 1, rs3);
  memcpy(pq_tensor_mutable_data(br3), pq_tensor_data(pq_model_tensor(p, "w1.sp_rows")), 24 * 4);
  pq_model_set_tensor(bad3, br3);
  g_assert_null(pq_backend_prepare(cpu, bad3, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "sparse_linear: row starts must have shape [25]"));
  g_clear_error(&err);
  /* low sparsity does not pay in CSR: reported */
  const char *low[] = {"sparsity", "0.2", NULL};
  g_autoptr(PqModel) pl = compress(prune, m, low, &err);
  g_assert_true(pq_model_record(pl, 0)->skipped);
  g_assert_nonnull(strstr(pq_model_record(pl, 0)->detail, "not fewer than 3840 dense"));

  /* structured: fc1 loses half its neurons and fc2 the matching inputs; the result equals the original
     with those neurons' outgoing weights zeroed. fc2 feeds the output: left alone, and said so */
  const char *st[] = {"sparsity", "0.5", "mode", "structured", NULL};
  g_autoptr(PqModel) s = compress(prune, m, st, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_tensor_shape(pq_model_tensor(s, "w1"))[0], ==, 12);
  g_assert_cmpint(pq_tensor_shape(pq_model_tensor(s, "w2"))[1], ==, 12);
  g_assert_cmpint(pq_tensor_numel(pq_model_tensor(s, "b1")), ==, 12);
  g_assert_true(pq_model_record(s, 1)->skipped);
  g_autoptr(PqModel) z = pq_model_copy(m);
  g_autoptr(PqTensor) w2z = pq_tensor_new("w2", PQ_DTYPE_F32, 2, (const int64_t[]){10, 24});
  float *w2d = pq_tensor_mutable_data(w2z);
  memcpy(w2d, pq_tensor_data(pq_model_tensor(m, "w2")), 240 * 4);
  const float *kept_rows = pq_tensor_data(pq_model_tensor(s, "w1"));
  for (int r = 0; r < 24; r++) {
    gboolean kept = FALSE;
    for (int k = 0; k < 12; k++) kept |= memcmp(kept_rows + k * 40, w1 + r * 40, 40 * 4) == 0;
    if (!kept)
      for (int o = 0; o < 10; o++) w2d[o * 24 + r] = 0.0f;
  }
  pq_model_set_tensor(z, w2z);
  g_autofree float *yst = forward(s, 3, TRUE, &on), *yz = forward(z, 3, TRUE, &on);
  g_assert_cmpfloat(max_rel_diff(yst, yz, 3 * on), <, 1e-5);
}

/* `c` at each of `n` batch sizes, with and without SIMD, on 2 and 3 threads: one thread's outputs, bit for bit */
static void threads_same_bits(const PqModel *c, const int64_t *batches, size_t n, const char *what) {
  const char *kernels[3] = {"portable", "avx2", "auto"};
  for (size_t bi = 0; bi < n; bi++)
    for (int kv = 0; kv < 3; kv++) {
      int64_t on;
      g_autofree float *y1 = forward_threads(c, batches[bi], kernels[kv], 1, &on);
      for (int t = 2; t <= 3; t++) {
        g_autofree float *yt = forward_threads(c, batches[bi], kernels[kv], t, &on);
        if (memcmp(y1, yt, batches[bi] * on * sizeof(float)))
          g_error("%s, batch %lld, %s kernels, %d threads: not one thread's results", what, (long long)batches[bi], kernels[kv], t);
      }
    }
}

/* The packed and CSR kernels on the backend's threads give the results of one thread, bit for bit: rows
 * split at batches of 16 and more, outputs split below that (blocks of 16 outputs) on a layer of 4M weights
 * (per-channel, per-group with zero points), on small layers that split (784 inputs, 200 outputs: 13 blocks
 * over 3 parts and 2 or 3 threads; 8 and 6 bits; CSR 90% by outputs too) and on one whose codes sit with the
 * outputs in vector lanes (256 inputs, 144 outputs); CSR rows split in chunks of 16; with and without SIMD. */
static void test_threads(void) {
  {
    g_autoptr(PqModel) small = pq_test_tiny_mlp(784, 200, 10, 93), lanes = pq_test_tiny_mlp(256, 144, 10, 95);
    const char *b8[] = {"bits", "8", NULL}, *b6[] = {"bits", "6", NULL}, *p90[] = {"sparsity", "0.9", NULL},
               *a8[] = {"bits", "8", "symmetric", "false", NULL};
    const char *const *kv[5] = {b8, b6, p90, b8, a8};
    const char *names[5] = {"784x200 8-bit", "784x200 6-bit", "784x200 CSR 90%", "256x144 8-bit (outputs in lanes)",
                            "784x200 8-bit asymmetric (codes of 0)"};
    /* packed: 1-15 rows split by outputs (5 and 9: the blocked kernel's blocks of 4 and one row left), 16, 20 and
       40 by rows; CSR: 1-31 rows by outputs (from 4 rows transposed; 20 in two chunks), 40 by rows */
    const int64_t small_batches[] = {1, 3, 5, 9, 16, 20, 40};
    for (int v = 0; v < 5; v++) {
      g_autoptr(GError) e = NULL;
      g_autoptr(PqModel) c = compress(v == 2 ? prune : quant, v == 3 ? lanes : small, kv[v], &e);
      g_assert_no_error(e);
      threads_same_bits(c, small_batches, G_N_ELEMENTS(small_batches), names[v]);
    }
  }
  g_autoptr(PqModel) m = pq_test_tiny_mlp(1024, 4096, 10, 91); /* fc1: 4096 × 1024 */
  g_autoptr(GError) err = NULL;
  const char *q8[] = {"bits", "8", NULL}, *q4[] = {"bits", "4", "scheme", "per_group", "group_size", "128", "symmetric", "false", NULL},
             *sp[] = {"sparsity", "0.9", NULL};
  const char *const *kvs[3] = {q8, q4, sp};
  PqPlugin *plugins[3] = {quant, quant, prune};
  const char *names[3] = {"4096x1024 8-bit", "4096x1024 4-bit per group", "4096x1024 CSR 90%"};
  for (int v = 0; v < 3; v++) {
    g_autoptr(PqModel) c = compress(plugins[v], m, kvs[v], &err);
    g_assert_no_error(err);
    const int64_t batches[] = {1, 3, 8, 13, 45};
    threads_same_bits(c, batches, G_N_ELEMENTS(batches), names[v]);
    /* a backend prepared with threads, run in a forked child (where its threads are not): on one thread */
    g_autoptr(PqBackend) b = pq_backend_prepare(cpu, c, 2, 45, NULL, &err);
    g_assert_no_error(err);
    pid_t pid = fork();
    if (pid == 0) {
      alarm(30);
      g_autofree float *x = g_new0(float, 45 * 1024), *y = g_new(float, 45 * 10);
      gboolean ran = pq_backend_run_f32(b, x, 45, y, NULL);
      pq_backend_free(b); /* and freed there: the parent's threads are not joined from the child */
      _exit(ran ? 0 : 1);
    }
    int status = 0;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  /* a packed conv: each image's 1024 positions split over the threads (more rows than the batch buffers
     hold: the one-row kernels, as on one thread); a smaller one, 64 positions, through the blocked ones; and
     small images (41k multiply-adds each), whole images over the threads (without the AVX-512 kernels: each
     thread its own batch buffers) */
  const int64_t xs_big[4] = {-1, 8, 32, 32}, ws_big[4] = {32, 8, 3, 3}, xs_small[4] = {-1, 64, 8, 8}, ws_small[4] = {256, 64, 3, 3},
                xs_tiny[4] = {-1, 4, 12, 12}, ws_tiny[4] = {8, 4, 3, 3}, one[2] = {1, 1}, pad1[4] = {1, 1, 1, 1};
  const int64_t *xs_of[3] = {xs_big, xs_small, xs_tiny}, *ws_of[3] = {ws_big, ws_small, ws_tiny};
  for (int v = 0; v < 3; v++) {
    PqModel *cm = pq_test_conv_model(xs_of[v], ws_of[v], one, pad1, 93);
    const char *kv8[] = {"bits", "8", NULL};
    g_autoptr(PqModel) cq = compress(quant, cm, kv8, &err);
    g_assert_no_error(err);
    const char *kernels[3] = {"portable", "avx2", "auto"};
    for (int kv = 0; kv < 3; kv++) {
      int64_t on;
      g_autofree float *y1 = forward_threads(cq, 3, kernels[kv], 1, &on), *y2 = forward_threads(cq, 3, kernels[kv], 2, &on);
      if (memcmp(y1, y2, 3 * on * sizeof(float))) g_error("packed conv %d, %s kernels, 2 threads: not one thread's results", v, kernels[kv]);
    }
    pq_model_unref(cm);
  }
}

/* Every compressor refuses NaN weights with an error naming the layer (and the empty model is no layer). */
static void test_nan_everywhere(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(64, 32, 10, 3);
  ((float *)pq_tensor_mutable_data(pq_model_tensor(m, "w1")))[100] = NAN;
  PqPlugin *all[5] = {quant, low_rank, circulant, tensor_train, prune};
  const char *opts[5][3] = {{NULL}, {"rank", "4", NULL}, {"block", "8", NULL}, {"max_rank", "4", NULL}, {NULL}};
  for (int i = 0; i < 5; i++) {
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) out = compress(all[i], m, opts[i], &err);
    g_assert_null(out);
    if (!err || !strstr(err->message, "layer 'fc1'")) g_error("%s: %s", pq_plugin_name(all[i]), err ? err->message : "no error");
  }
}

/* conv2d with a packed kernel runs from the codes and matches the float conv with the dequantized kernel. */
/* The AVX2 kernels (where the CPU has AVX2; else the portable ones again) give the portable path's results bit for bit */
static void assert_avx2_same(const PqModel *q, int64_t batch, int threads, const char *what) {
  int64_t on;
  g_autofree float *ya = forward_threads(q, batch, "avx2", threads, &on), *yp = forward_threads(q, batch, "portable", 1, &on);
  for (int64_t i = 0; i < batch * on; i++)
    if (memcmp(&ya[i], &yp[i], sizeof(float))) g_error("%s: AVX2 kernels on %d threads: output %lld is %.9g, portable %.9g", what, threads, (long long)i, ya[i], yp[i]);
}

static void test_quant_conv(void) {
  /* k = 27, 9, 18 and 360 (rows padded to 4 codes), 8, 20, 5 and 24 outputs, 35, 132, 42 and 36 positions (partial
     blocks of 16 positions in the vector lanes), windows inside the image and in its padding */
  const struct {
    int64_t xs[4], ws[4], st[2], pads[4];
  } geo[] = {{{-1, 3, 9, 7}, {8, 3, 3, 3}, {2, 1}, {1, 0, 1, 2}},
             {{-1, 1, 12, 11}, {20, 1, 3, 3}, {1, 1}, {1, 1, 1, 1}},
             {{-1, 2, 2, 3}, {5, 2, 3, 3}, {1, 1}, {3, 3, 3, 3}}, /* corner patches all padding: scale 0 */
             {{-1, 40, 6, 6}, {24, 40, 3, 3}, {1, 1}, {1, 1, 1, 1}}}; /* k = 360 */
  const char *forms[][8] = {{"bits", "8", NULL}, {"bits", "4", "symmetric", "false", NULL}, {"bits", "3", "scheme", "per_tensor", NULL}};
  for (size_t gi = 0; gi < G_N_ELEMENTS(geo); gi++)
    for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
      PqModel *m = pq_test_conv_model(geo[gi].xs, geo[gi].ws, geo[gi].st, geo[gi].pads, 5);
      if (gi % 2) { /* a ReLU after the conv, which the backend fuses into it: after the bias, never before */
        PqGraph *g = pq_model_graph(m);
        pq_node_set_output(pq_graph_node(g, 0), 0, "c");
        pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"c"}, 1, (const char *[]){"y"});
      }
      g_autoptr(GError) err = NULL;
      g_autoptr(PqModel) q = compress(quant, m, forms[f], &err);
      g_assert_no_error(err);
      PqTensor *qw = pq_model_tensor(q, "cw");
      g_assert_cmpint(pq_tensor_dtype(qw), ==, PQ_DTYPE_PACKED);
      g_autoptr(PqModel) deq = pq_model_copy(m);
      g_autoptr(PqTensor) wd = pq_tensor_new("cw", PQ_DTYPE_F32, 4, geo[gi].ws);
      pq_tensor_to_f32(qw, pq_tensor_mutable_data(wd));
      pq_model_set_tensor(deq, wd);
      int64_t on;
      g_autofree float *ys = forward(q, 2, TRUE, &on), *yp = forward(q, 2, FALSE, &on), *yd = forward(deq, 2, TRUE, &on);
      if (gi == 0) g_assert_cmpint(on, ==, 8 * 5 * 7);
      g_assert_cmpfloat(max_rel_diff(ys, yp, 2 * on), <, 2e-6);
      g_assert_cmpfloat(max_rel_diff(ys, yd, 2 * on), <, 0.02); /* int8 inputs: within a percent or two */
      g_autofree char *what = g_strdup_printf("conv %zu, form %zu", gi, f);
      assert_avx2_same(q, 2, 1, what);
      pq_model_unref(m);
    }
  /* scales per group of codes (k = 360): groups of whole 4-code words take the lanes kernel with a sum a group, groups of
     9 (not whole words) the row kernels; the same numbers as the portable path either way */
  const char *gforms[][10] = {{"bits", "4", "scheme", "per_group", "group_size", "8", NULL},
                              {"bits", "5", "scheme", "per_group", "group_size", "12", "symmetric", "false", NULL},
                              {"bits", "8", "scheme", "per_group", "group_size", "40", NULL},
                              {"bits", "6", "scheme", "per_group", "group_size", "9", NULL}};
  for (size_t f = 0; f < G_N_ELEMENTS(gforms); f++) {
    PqModel *m = pq_test_conv_model(geo[3].xs, geo[3].ws, geo[3].st, geo[3].pads, 9);
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) q = compress(quant, m, gforms[f], &err);
    g_assert_no_error(err);
    g_assert_cmpint(pq_tensor_quant_scheme(pq_model_tensor(q, "cw")), ==, PQ_QUANT_PER_GROUP);
    g_autoptr(PqModel) deq = pq_model_copy(m);
    g_autoptr(PqTensor) wd = pq_tensor_new("cw", PQ_DTYPE_F32, 4, geo[3].ws);
    pq_tensor_to_f32(pq_model_tensor(q, "cw"), pq_tensor_mutable_data(wd));
    pq_model_set_tensor(deq, wd);
    int64_t on;
    g_autofree float *ys = forward(q, 2, TRUE, &on), *yp = forward(q, 2, FALSE, &on), *yd = forward(deq, 2, TRUE, &on);
    g_assert_cmpfloat(max_rel_diff(ys, yp, 2 * on), <, 2e-6);
    g_assert_cmpfloat(max_rel_diff(ys, yd, 2 * on), <, 0.02);
    g_autofree char *what = g_strdup_printf("conv with groups, form %zu", f);
    assert_avx2_same(q, 2, 1, what);
    pq_model_unref(m);
  }
  /* a fixed int8 input range (static activations, as a model file may carry for a conv): saturating, the same
     numbers on both paths */
  {
    PqModel *m = pq_test_conv_model(geo[1].xs, geo[1].ws, geo[1].st, geo[1].pads, 6);
    g_autoptr(GError) err = NULL;
    const char *kv[] = {"bits", "8", NULL};
    g_autoptr(PqModel) q = compress(quant, m, kv, &err);
    g_assert_no_error(err);
    pq_node_set_float(pq_graph_node(pq_model_graph(q), 0), "act_scale", 0.005); /* ±0.635: inputs in ±1 saturate */
    int64_t on;
    g_autofree float *ys = forward(q, 2, TRUE, &on), *yp = forward(q, 2, FALSE, &on), *yd = forward(m, 2, TRUE, &on);
    g_assert_cmpfloat(max_rel_diff(ys, yp, 2 * on), <, 2e-6);
    g_assert_cmpfloat(max_rel_diff(ys, yd, 2 * on), >, 0.05); /* (saturated: not the float model) */
    assert_avx2_same(q, 2, 1, "conv with a fixed input range");
    pq_model_unref(m);
  }
  /* a small layer in a batch: whole images split over 1, 2 or 3 threads, the same bits */
  {
    int64_t sxs[4] = {-1, 16, 14, 14}, sws[4] = {32, 16, 3, 3}, one[2] = {1, 1}, p1[4] = {1, 1, 1, 1};
    PqModel *m = pq_test_conv_model(sxs, sws, one, p1, 10);
    g_autoptr(GError) err = NULL;
    const char *kv[] = {"bits", "8", NULL};
    g_autoptr(PqModel) q = compress(quant, m, kv, &err);
    g_assert_no_error(err);
    int64_t on;
    g_autofree float *y1 = forward_threads(q, 8, "auto", 1, &on), *y2 = forward_threads(q, 8, "auto", 2, &on), *y3 = forward_threads(q, 8, "auto", 3, &on);
    g_autofree float *yp = forward_threads(q, 8, "portable", 1, &on);
    g_assert_cmpmem(y1, 8 * on * sizeof(float), y2, 8 * on * sizeof(float));
    g_assert_cmpmem(y1, 8 * on * sizeof(float), y3, 8 * on * sizeof(float));
    g_assert_cmpfloat(max_rel_diff(y1, yp, 8 * on), <, 2e-6);
    for (int t = 1; t <= 3; t++) assert_avx2_same(q, 8, t, "small conv, batch 8");
    pq_model_unref(m);
  }
  /* a layer large enough for the backend's threads: blocks of positions split over 1, 2 or 3 threads, the same bits */
  int64_t xs[4] = {-1, 32, 16, 16}, ws[4] = {64, 32, 3, 3}, one[2] = {1, 1}, pads[4] = {1, 1, 1, 1};
  PqModel *m = pq_test_conv_model(xs, ws, one, pads, 8);
  g_autoptr(GError) err = NULL;
  const char *kvs[][8] = {{"bits", "8", NULL}, {"bits", "4", "scheme", "per_group", "group_size", "32", NULL}};
  for (size_t f = 0; f < G_N_ELEMENTS(kvs); f++) {
    g_autoptr(PqModel) q = compress(quant, m, kvs[f], &err);
    g_assert_no_error(err);
    int64_t on;
    g_autofree float *y1 = forward_threads(q, 2, "auto", 1, &on), *y2 = forward_threads(q, 2, "auto", 2, &on), *y3 = forward_threads(q, 2, "auto", 3, &on);
    g_assert_cmpmem(y1, 2 * on * sizeof(float), y2, 2 * on * sizeof(float));
    g_assert_cmpmem(y1, 2 * on * sizeof(float), y3, 2 * on * sizeof(float));
    for (int t = 1; t <= 3; t++) assert_avx2_same(q, 2, t, "conv 32 -> 64 channels");
  }
  pq_model_unref(m);
}

/* Labels from a teacher: the float model's own classes on seeded inputs, so a good student can learn them. */
static void teacher_data(const PqModel *m, int64_t n, int64_t in, float **x, guint8 **labels) {
  *x = g_new(float, n * in);
  *labels = g_new(guint8, n);
  GRand *r = g_rand_new_with_seed(99);
  for (int64_t i = 0; i < n * in; i++) (*x)[i] = (float)g_rand_double_range(r, -1, 1);
  g_rand_free(r);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, n, NULL, &err);
  g_assert_no_error(err);
  int64_t on = pq_backend_output_numel(b);
  g_autofree float *y = g_new(float, n * on);
  g_assert_true(pq_backend_run_f32(b, *x, n, y, &err));
  for (int64_t i = 0; i < n; i++) {
    int64_t best = 0;
    for (int64_t c = 1; c < on; c++)
      if (y[i * on + c] > y[i * on + best]) best = c;
    (*labels)[i] = (guint8)best;
  }
}

/* pq_test_tiny_mlp's fc1 without its bias (the slot left empty, "b1" gone). */
static void drop_fc1_bias(PqModel *m) {
  PqGraph *g = pq_model_graph(m);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++)
    if (!strcmp(pq_node_name(pq_graph_node(g, i)), "fc1")) pq_node_set_input(pq_graph_node(g, i), 2, "");
  pq_model_remove_tensor_if_unused(m, "b1");
}

/* Fine-tuning: a crudely factored model learns its teacher's labels back; packed weights are trained
 * through and left as they were; the model it was copied from is untouched; what it cannot train through
 * is refused by name. */
static void test_finetune(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(64, 48, 10, 81);
  g_autofree float *x = NULL;
  g_autofree guint8 *labels = NULL;
  teacher_data(m, 2048, 64, &x, &labels);
  g_autoptr(GError) err = NULL;
  const char *kv[] = {"rank", "6", NULL};
  g_autoptr(PqModel) lr = compress(low_rank, m, kv, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) ft = pq_model_copy(lr);
  g_autofree float *before = g_memdup2(pq_tensor_data(pq_model_tensor(lr, "b1")), 48 * sizeof(float));
  PqFinetuneParams p = {20, 64, 3e-3, 7, 1};
  PqFinetuneResult res;
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_assert_cmpint(pq_finetune(ft, x, labels, 2048, &p, &res, &perr), ==, 0);
  g_test_message("loss %.3f -> %.3f, accuracy %.3f -> %.3f, %lld trained", res.loss_before, res.loss_after, res.accuracy_before,
                 res.accuracy_after, (long long)res.trained_params);
  g_assert_cmpfloat(res.loss_after, <, 0.8 * res.loss_before);
  g_assert_cmpfloat(res.accuracy_after, >, res.accuracy_before + 0.05);
  g_assert_cmpint(res.trained_params, ==, pq_model_n_params(lr));
  g_assert_cmpmem(pq_tensor_data(pq_model_tensor(lr, "b1")), 48 * sizeof(float), before, 48 * sizeof(float)); /* shared: untouched */
  g_assert_true(memcmp(pq_tensor_data(pq_model_tensor(ft, "b1")), before, 48 * sizeof(float)) != 0);
  /* the same run again: the same weights (seeded, one thread) */
  g_autoptr(PqModel) ft2 = pq_model_copy(lr);
  PqFinetuneResult res2;
  g_assert_cmpint(pq_finetune(ft2, x, labels, 2048, &p, &res2, &perr), ==, 0);
  g_assert_cmpfloat(res2.loss_after, ==, res.loss_after);

  /* packed first layer: its codes stay, the float layers after it learn */
  const char *q8[] = {"bits", "4", "include", "fc1", NULL};
  g_autoptr(PqModel) q = compress(quant, m, q8, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) qft = pq_model_copy(q);
  g_assert_cmpint(pq_finetune(qft, x, labels, 2048, &p, &res, &perr), ==, 0);
  g_assert_true(pq_model_tensor(qft, "w1") == pq_model_tensor(q, "w1"));
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(qft, "w1")), ==, PQ_DTYPE_PACKED);
  g_assert_cmpint(res.trained_params, ==, pq_model_n_params(m) - 48 * 64);
  g_assert_cmpfloat(res.loss_after, <=, res.loss_before);

  /* through other activations too: the same MLP with tanh learns its teacher's labels */
  g_autoptr(PqModel) th = pq_model_copy(lr);
  PqGraph *tg = pq_model_graph(th);
  for (size_t i = 0; i < pq_graph_n_nodes(tg); i++)
    if (!strcmp(pq_node_op(pq_graph_node(tg, i)), "relu")) pq_node_set_op(pq_graph_node(tg, i), "tanh");
  g_assert_cmpint(pq_finetune(th, x, labels, 2048, &p, &res, &perr), ==, 0);
  g_assert_cmpfloat(res.loss_after, <, 0.8 * res.loss_before);

  /* a tensor-train first layer: its cores learn (a new tensor each, of the same shape) */
  const char *tt[] = {"max_rank", "2", "cores", "2", "include", "fc1", NULL};
  g_autoptr(PqModel) t = compress(tensor_train, m, tt, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) tft = pq_model_copy(t);
  g_assert_cmpint(pq_finetune(tft, x, labels, 2048, &p, &res, &perr), ==, 0);
  g_test_message("tensor-train: loss %.3f -> %.3f", res.loss_before, res.loss_after);
  g_assert_cmpfloat(res.loss_after, <, 0.8 * res.loss_before);
  g_assert_cmpint(res.trained_params, ==, pq_model_n_params(t));
  g_assert_true(pq_model_tensor(tft, "w1.tt1") != pq_model_tensor(t, "w1.tt1"));
  g_assert_cmpint(pq_tensor_numel(pq_model_tensor(tft, "w1.tt1")), ==, pq_tensor_numel(pq_model_tensor(t, "w1.tt1")));

  /* structured forms of a layer without a bias (its slot left empty): trained, the missing bias read as none */
  g_autoptr(PqModel) nb = pq_model_copy(m);
  drop_fc1_bias(nb);
  const char *sp[] = {"sparsity", "0.5", "include", "fc1", NULL}, *circ[] = {"block", "16", "include", "fc1", NULL},
             *none_left[] = {"sparsity", "0.5", "include", "fc2", NULL}; /* fc2's CSR then emptied below: no value left */
  struct {
    PqPlugin *plugin;
    const char *const *kv;
  } forms[] = {{prune, sp}, {tensor_train, tt}, {circulant, circ}, {prune, none_left}};
  for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
    g_autoptr(PqModel) c = compress(forms[f].plugin, nb, forms[f].kv, &err);
    g_assert_no_error(err);
    g_assert_null(pq_model_tensor(c, "b1"));
    if (forms[f].kv == none_left) { /* a CSR layer of no values (a file may hold one): empty tensors, rows all 0 */
      const char *names[2] = {"w2.sp_values", "w2.sp_cols"};
      for (int k = 0; k < 2; k++) {
        PqTensor *e = pq_tensor_new(names[k], pq_tensor_dtype(pq_model_tensor(c, names[k])), 1, (const int64_t[]){0});
        pq_model_set_tensor(c, e);
        pq_tensor_unref(e);
      }
      PqTensor *rows = pq_tensor_new("w2.sp_rows", PQ_DTYPE_I32, 1, (const int64_t[]){11});
      memset(pq_tensor_mutable_data(rows), 0, pq_tensor_nbytes(rows));
      pq_model_set_tensor(c, rows);
      pq_tensor_unref(rows);
    }
    g_assert_cmpint(pq_finetune(c, x, labels, 2048, &p, &res, &perr), ==, 0);
    g_assert_cmpint(res.trained_params, ==, pq_model_n_params(c));
    g_assert_cmpfloat(res.loss_after, <, res.loss_before);
  }

  /* refused: an op it cannot train through, a label the model cannot output */
  g_autoptr(PqModel) mx = pq_model_copy(m);
  PqNode *relu = NULL;
  for (size_t i = 0; i < pq_graph_n_nodes(pq_model_graph(mx)); i++)
    if (!strcmp(pq_node_op(pq_graph_node(pq_model_graph(mx), i)), "relu")) relu = pq_graph_node(pq_model_graph(mx), i);
  pq_node_set_op(relu, "reduce_prod"); /* over the last axis, kept: [n, 1], to a fc2 that takes one input */
  pq_node_set_ints(relu, "axes", 1, (const int64_t[]){1});
  pq_node_set_int(relu, "keepdims", 1);
  PqTensor *w1x = pq_test_random_tensor("w2x", 2, (const int64_t[]){10, 1}, 5, 1.0f);
  pq_model_set_tensor(mx, w1x);
  pq_tensor_unref(w1x);
  for (size_t i = 0; i < pq_graph_n_nodes(pq_model_graph(mx)); i++)
    if (!strcmp(pq_node_name(pq_graph_node(pq_model_graph(mx), i)), "fc2")) pq_node_set_input(pq_graph_node(pq_model_graph(mx), i), 1, "w2x");
  g_assert_cmpint(pq_finetune(mx, x, labels, 2048, &p, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "op 'reduce_prod' is not one it trains through"));
  /* a second output (a layer beside the chain): refused */
  g_autoptr(PqModel) skip = pq_test_tiny_mlp(64, 64, 10, 81);
  const char *sk_in[3] = {"x", "w2", "b2"};
  pq_graph_add_node(pq_model_graph(skip), "linear", "fc_skip", 3, sk_in, 1, (const char *[]){"unused"});
  pq_graph_add_output(pq_model_graph(skip), "unused");
  g_assert_cmpint(pq_finetune(skip, x, labels, 2048, &p, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "the model must have one input and one output"));
  labels[5] = 10;
  g_assert_cmpint(pq_finetune(ft, x, labels, 2048, &p, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "label 10 of sample 5 is not one of the model's 10 outputs"));
}

/* One fine-tuning step of Adam on one batch moves each trained weight by the learning rate against its
 * gradient's sign: checked for every weight whose gradient (central differences of `loss`, in double, over
 * the parameters `p0` laid out tensor after tensor as `names`) is clear of float32 noise. Returns how many were
 * checked; fails on any that stepped otherwise. The forward loss must match `loss` too. */
/* Soft targets for check_first_step's run (pq_finetune_ex): none unless a test sets them. */
static const float *soft_teacher;
static double soft_alpha;

static int check_first_step(PqModel *m, const char *const *names, int n_names, double (*loss)(const double *, const float *, const guint8 *, int),
                            const float *x, const guint8 *labels, int n) {
  int total = 0;
  for (int t = 0; t < n_names; t++) total += (int)pq_tensor_numel(pq_model_tensor(m, names[t]));
  g_autofree double *p0 = g_new(double, total), *p = g_new(double, total);
  for (int t = 0, at = 0; t < n_names; at += (int)pq_tensor_numel(pq_model_tensor(m, names[t])), t++)
    for (int64_t i = 0; i < pq_tensor_numel(pq_model_tensor(m, names[t])); i++) p0[at + i] = ((const float *)pq_tensor_data(pq_model_tensor(m, names[t])))[i];
  const double lr = 1e-3;
  PqFinetuneParams fp = {1, n, lr, 1, 1};
  PqFinetuneResult res;
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_autoptr(PqModel) ft = pq_model_copy(m);
  PqFinetuneExtra extra = {sizeof extra, 0, soft_teacher, soft_alpha};
  if (pq_finetune_ex(ft, x, labels, n, &fp, &extra, &res, &perr) != 0) g_error("%s", perr.message);
  if (!(fabs(res.loss_before - loss(p0, x, labels, n)) < 1e-5)) /* its forward pass is the model's */
    g_error("finetune's loss %.9g, the reference's %.9g", res.loss_before, loss(p0, x, labels, n));
  int checked = 0, wrong = 0;
  for (int t = 0, at = 0; t < n_names; at += (int)pq_tensor_numel(pq_model_tensor(m, names[t])), t++) {
    const float *after = pq_tensor_data(pq_model_tensor(ft, names[t]));
    for (int64_t i = 0; i < pq_tensor_numel(pq_model_tensor(m, names[t])); i++) {
      memcpy(p, p0, sizeof(double) * (size_t)total);
      p[at + i] = p0[at + i] + 1e-4;
      double up = loss(p, x, labels, n);
      p[at + i] = p0[at + i] - 1e-4;
      double grad = (up - loss(p, x, labels, n)) / 2e-4, step = (double)after[i] - p0[at + i];
      if (fabs(grad) < 1e-4) continue; /* too flat for float32 sums to give its sign surely */
      checked++;
      if (step * grad >= 0 || fabs(fabs(step) - lr) > 0.05 * lr) {
        wrong++;
        g_test_message("%s[%lld]: gradient %.3g, step %.3g", names[t], (long long)i, grad, step);
      }
    }
  }
  g_test_message("%d of %d weights stepped against their gradient by the learning rate", checked - wrong, checked);
  g_assert_cmpint(wrong, ==, 0);
  return checked;
}

/* The CPU backend's mean cross-entropy on the model (its last node a softmax) equals `loss` of the model's
 * parameters `names`: the double reference computes what the kernels compute. */
static void assert_backend_loss(PqModel *m, const char *const *names, int n_names, double (*loss)(const double *, const float *, const guint8 *, int),
                                const float *x, const guint8 *labels, int n) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, n, NULL, &err);
  g_assert_no_error(err);
  int64_t classes = pq_backend_output_numel(b), total = 0;
  g_autofree float *y = g_new(float, n * classes);
  g_assert_true(pq_backend_run_f32(b, x, n, y, &err));
  double backend = 0;
  for (int i = 0; i < n; i++) backend -= log(y[i * classes + labels[i]]) / n;
  for (int t = 0; t < n_names; t++) total += pq_tensor_numel(pq_model_tensor(m, names[t]));
  g_autofree double *p0 = g_new(double, total);
  for (int t = 0, at = 0; t < n_names; at += (int)pq_tensor_numel(pq_model_tensor(m, names[t])), t++)
    for (int64_t i = 0; i < pq_tensor_numel(pq_model_tensor(m, names[t])); i++) p0[at + i] = ((const float *)pq_tensor_data(pq_model_tensor(m, names[t])))[i];
  g_assert_cmpfloat(fabs(backend - loss(p0, x, labels, n)), <, 1e-5);
}

/* One sample's cross-entropy after a last dense layer, in double: z = w h + b (w [out, in]), log Σ exp z − z[label]. */
static double dense_ce(const double *w, const double *b, const double *h, int in, int out, int label) {
  double z[16], m = -INFINITY, sum = 0;
  for (int o = 0; o < out; o++) {
    z[o] = b[o];
    for (int i = 0; i < in; i++) z[o] += w[o * in + i] * h[i];
    m = fmax(m, z[o]);
  }
  for (int o = 0; o < out; o++) sum += exp(z[o] - m);
  return log(sum) + m - z[label];
}

/* The residual net of test_finetune_residual, in double: x → fc1 → h; relu → fc2 → b; s = h + b; t = s + x;
 * fc3 → z; mean cross-entropy over the samples. p: w1 [12·12], b1 [12], w2 [12·12], b2 [12], w3 [4·12], b3 [4]. */
static double residual_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 144, *w2 = b1 + 12, *b2 = w2 + 144, *w3 = b2 + 12, *b3 = w3 + 48;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    const float *xr = x + r * 12;
    double h[12], t[12];
    for (int o = 0; o < 12; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 12; i++) h[o] += w1[o * 12 + i] * xr[i];
    }
    for (int o = 0; o < 12; o++) {
      double b = b2[o];
      for (int i = 0; i < 12; i++) b += w2[o * 12 + i] * (h[i] > 0 ? h[i] : 0);
      t[o] = h[o] + b + xr[o];
    }
    loss += dense_ce(w3, b3, t, 12, 4, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through residual adds (one of two layers' outputs, one of a layer's and the model's input):
 * Adam's first step moves each weight by the learning rate against the sign of its gradient, so one step
 * on one batch shows every gradient's sign, checked against central differences of the loss in double. A
 * dropped share of a gradient (either operand of an add) shows as wrong signs. */
static void test_finetune_residual(void) {
  enum { N = 32 };
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[2] = {-1, 12}, sq[2] = {12, 12}, v12[1] = {12}, w3s[2] = {4, 12}, v4[1] = {4};
  pq_graph_add_input(g, "x", 2, xs);
  PqTensor *ts[6] = {pq_test_random_tensor("w1", 2, sq, 31, 0.5f), pq_test_random_tensor("b1", 1, v12, 32, 0.1f),
                     pq_test_random_tensor("w2", 2, sq, 33, 0.3f), pq_test_random_tensor("b2", 1, v12, 34, 0.1f),
                     pq_test_random_tensor("w3", 2, w3s, 35, 0.5f), pq_test_random_tensor("b3", 1, v4, 36, 0.1f)};
  for (int i = 0; i < 6; i++) pq_model_set_tensor(m, ts[i]);
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"hr", "w2", "b2"}, 1, (const char *[]){"b"});
  pq_graph_add_node(g, "add", "res1", 2, (const char *[]){"h", "b"}, 1, (const char *[]){"s"});
  pq_graph_add_node(g, "add", "res2", 2, (const char *[]){"s", "x"}, 1, (const char *[]){"t"});
  pq_graph_add_node(g, "linear", "fc3", 3, (const char *[]){"t", "w3", "b3"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  g_autofree float *x = g_new(float, N * 12);
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(17);
  for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 4);
  g_rand_free(r);
  const char *names[6] = {"w1", "b1", "w2", "b2", "w3", "b3"};
  g_assert_cmpint(check_first_step(m, names, 6, residual_loss, x, labels, N), >, 300);
  for (int i = 0; i < 6; i++) pq_tensor_unref(ts[i]);
  pq_model_unref(m);
}

/* The net of test_finetune_binary, in double: x → fc1 → h [3, 4]; a = h · s[i] (s [3, 1]); b = a − m[j]
 * (m [1, 1, 4]); c = prelu(b, slope[j]); e = t[i, j] − c (t [3, 4], the tensor first); g = e · sigmoid(e)
 * (two activations); q = g / dv[k] + h (flat, dv [12], then a residual add beside, so that a derivative off
 * by a factor turns the signs of fc1's gradients); fc3 → z. p: w1 [144], b1 [12], s [3], m [4], slope [4],
 * t [12], dv [12], w3 [48], b3 [4]. */
static double binary_net_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 144, *sc = b1 + 12, *mu = sc + 3, *sl = mu + 4, *t = sl + 4, *dv = t + 12, *w3 = dv + 12, *b3 = w3 + 48;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[12], q[12];
    for (int o = 0; o < 12; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 12; i++) h[o] += w1[o * 12 + i] * x[r * 12 + i];
    }
    for (int k = 0; k < 12; k++) {
      int i = k / 4, j = k % 4;
      double b = h[k] * sc[i] - mu[j], c = b >= 0 ? b : sl[j] * b, e = t[k] - c;
      q[k] = e / (1 + exp(-e)) / dv[k] + h[k];
    }
    loss += dense_ce(w3, b3, q, 12, 4, labels[r]);
  }
  return loss / n;
}

/* The tiny MLP (12 → 8 → relu → 4, then a softmax) against soft targets, in double: the cross-entropy with
 * (1 − soft_alpha)·onehot(label) + soft_alpha·soft_teacher (labels may be NULL when soft_alpha is 1). p: w1
 * [96], b1 [8], w2 [32], b2 [4]. */
static double soft_mlp_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 96, *w2 = b1 + 8, *b2 = w2 + 32;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[8], z[4], m = -INFINITY, sum = 0;
    for (int o = 0; o < 8; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 12; i++) h[o] += w1[o * 12 + i] * x[r * 12 + i];
      h[o] = h[o] > 0 ? h[o] : 0;
    }
    for (int o = 0; o < 4; o++) {
      z[o] = b2[o];
      for (int i = 0; i < 8; i++) z[o] += w2[o * 8 + i] * h[i];
      m = fmax(m, z[o]);
    }
    for (int o = 0; o < 4; o++) sum += exp(z[o] - m);
    for (int o = 0; o < 4; o++) {
      double t = (labels ? (1 - soft_alpha) * (o == labels[r]) : 0) + soft_alpha * soft_teacher[r * 4 + o];
      loss += t * (log(sum) + m - z[o]);
    }
  }
  return loss / n;
}

/* Fine-tuning towards soft targets (pq_finetune_ex: distillation): 0.7 labels, 0.3 a teacher's
 * probabilities, then the teacher alone without labels; Adam's first step against central differences of
 * the soft cross-entropy. Refused: a weight outside [0, 1], a teacher missing where it weighs, labels missing
 * where they do. */
static void test_finetune_soft(void) {
  enum { N = 32 };
  g_autoptr(PqModel) m = pq_model_new();
  int64_t xs[2] = {-1, 12}, w1s[2] = {8, 12}, v8[1] = {8}, w2s[2] = {4, 8}, v4[1] = {4};
  PqTensor *ts[4] = {pq_test_random_tensor("w1", 2, w1s, 71, 0.5f), pq_test_random_tensor("b1", 1, v8, 72, 0.1f),
                     pq_test_random_tensor("w2", 2, w2s, 73, 0.5f), pq_test_random_tensor("b2", 1, v4, 74, 0.1f)};
  for (int i = 0; i < 4; i++) pq_model_set_tensor(m, ts[i]), pq_tensor_unref(ts[i]);
  PqGraph *g = pq_model_graph(m);
  pq_graph_add_input(g, "x", 2, xs);
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"hr", "w2", "b2"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"p"});
  pq_graph_add_output(g, "p");
  float x[N * 12], teacher[N * 4];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(23);
  for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) {
    labels[i] = (guint8)g_rand_int_range(r, 0, 4);
    double sum = 0, v[4];
    for (int k = 0; k < 4; k++) sum += v[k] = exp(g_rand_double_range(r, -2, 2));
    for (int k = 0; k < 4; k++) teacher[i * 4 + k] = (float)(v[k] / sum);
  }
  g_rand_free(r);
  const char *names[4] = {"w1", "b1", "w2", "b2"};
  soft_teacher = teacher, soft_alpha = 0.3;
  g_assert_cmpint(check_first_step(m, names, 4, soft_mlp_loss, x, labels, N), >, 100);
  soft_alpha = 1.0;
  g_assert_cmpint(check_first_step(m, names, 4, soft_mlp_loss, x, NULL, N), >, 100);
  soft_teacher = NULL, soft_alpha = 0;
  PqFinetuneParams fp = {1, N, 1e-3, 1, 1};
  PqFinetuneResult res;
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_autoptr(PqModel) c = pq_model_copy(m);
  PqFinetuneExtra e1 = {sizeof e1, 0, teacher, 1.5}, e2 = {sizeof e2, 0, NULL, 0.5}, e3 = {sizeof e3, 0, teacher, 0.5};
  g_assert_cmpint(pq_finetune_ex(c, x, labels, N, &fp, &e1, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "the teacher's weight must be in [0, 1]"));
  g_assert_cmpint(pq_finetune_ex(c, x, labels, N, &fp, &e2, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "teacher missing"));
  g_assert_cmpint(pq_finetune_ex(c, x, NULL, N, &fp, &e3, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "labels missing"));
}

/* Quantization-aware fine-tuning (PqFinetuneExtra.qat): one Adam step on a model with 3-bit packed weights
 * equals one step on the same model with those weights dequantized to float32, the stepped weights rounded
 * onto the packed weights' own grid (their scales kept) — the forward pass uses the rounded weights, the
 * gradient goes straight through to the float copy, and the copy is packed again at the end. Then, over
 * epochs, it learns a teacher's labels better than training through the packed weights unchanged. */
static void test_finetune_qat(void) {
  g_autoptr(PqModel) teach = pq_test_tiny_mlp(24, 16, 6, 91);
  g_autofree float *x = NULL;
  g_autofree guint8 *labels = NULL;
  teacher_data(teach, 1024, 24, &x, &labels);
  g_autoptr(PqModel) mq = pq_test_tiny_mlp(24, 16, 6, 92), mf = pq_model_copy(mq);
  const char *ws[2] = {"w1", "w2"};
  for (int k = 0; k < 2; k++) { /* 3-bit per channel in mq, the same values as float32 in mf */
    PqTensor *w = pq_model_tensor(mq, ws[k]);
    PqPluginError perr = {sizeof perr, 0, {0}};
    PqTensor *q = pq_quantize_matrix(ws[k], pq_tensor_data(w), 2, pq_tensor_shape(w), 3, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &perr);
    g_assert_nonnull(q);
    PqTensor *f = pq_tensor_new(ws[k], PQ_DTYPE_F32, 2, pq_tensor_shape(w));
    pq_tensor_to_f32(q, pq_tensor_mutable_data(f));
    pq_model_set_tensor(mq, q), pq_model_set_tensor(mf, f);
    pq_tensor_unref(q), pq_tensor_unref(f);
  }
  PqFinetuneParams one = {1, 64, 0.1, 3, 1}; /* (dequantized weights sit mid-bin: a step must pass half a bin) */
  PqFinetuneExtra qat = {sizeof qat, 1, NULL, 0};
  PqFinetuneResult rq, rf;
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_autoptr(PqModel) q1 = pq_model_copy(mq), f1 = pq_model_copy(mf);
  g_assert_cmpint(pq_finetune_ex(q1, x, labels, 64, &one, &qat, &rq, &perr), ==, 0);
  g_assert_cmpint(pq_finetune(f1, x, labels, 64, &one, &rf, &perr), ==, 0);
  g_assert_cmpfloat(rq.loss_before, ==, rf.loss_before); /* the same forward pass */
  g_assert_cmpint(rq.trained_params, ==, rf.trained_params);
  int changed = 0;
  for (int k = 0; k < 2; k++) {
    PqTensor *q0 = pq_model_tensor(mq, ws[k]), *qn = pq_model_tensor(q1, ws[k]), *fn = pq_model_tensor(f1, ws[k]);
    g_assert_cmpint(pq_tensor_dtype(qn), ==, PQ_DTYPE_PACKED);
    g_assert_cmpint(pq_tensor_bits(qn), ==, 3);
    g_assert_cmpmem(pq_tensor_data(pq_tensor_scales(qn)), pq_tensor_nbytes(pq_tensor_scales(qn)), pq_tensor_data(pq_tensor_scales(q0)),
                    pq_tensor_nbytes(pq_tensor_scales(q0))); /* the grid kept */
    int64_t rows = pq_tensor_rows(qn), cols = pq_tensor_cols(qn);
    g_autofree float *got = g_new(float, rows * cols), *before = g_new(float, rows * cols);
    pq_tensor_to_f32(qn, got);
    pq_tensor_to_f32(q0, before);
    const float *sc = pq_tensor_data(pq_tensor_scales(qn)), *fw = pq_tensor_data(fn);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) { /* the float model's stepped weight, rounded onto row r's grid (codes 0..7, zero 4) */
        float code = nearbyintf(fw[r * cols + c] / sc[r]) + 4.0f;
        code = code < 0 ? 0 : code > 7 ? 7 : code;
        g_assert_cmpfloat(got[r * cols + c], ==, sc[r] * (code - 4.0f));
        changed += got[r * cols + c] != before[r * cols + c];
      }
  }
  g_test_message("one step: %d of %d codes moved", changed, 16 * 24 + 6 * 16);
  g_assert_cmpint(changed, >, 10);
  g_assert_cmpmem(pq_tensor_data(pq_model_tensor(q1, "b1")), 16 * sizeof(float), pq_tensor_data(pq_model_tensor(f1, "b1")), 16 * sizeof(float));
  /* over epochs: lower loss than training through the packed weights as they are */
  PqFinetuneParams many = {6, 64, 0.01, 3, 1};
  g_autoptr(PqModel) q2 = pq_model_copy(mq), t2 = pq_model_copy(mq);
  g_assert_cmpint(pq_finetune_ex(q2, x, labels, 1024, &many, &qat, &rq, &perr), ==, 0);
  g_assert_cmpint(pq_finetune(t2, x, labels, 1024, &many, &rf, &perr), ==, 0);
  g_test_message("loss %.3f: through the packed weights %.3f, quantization-aware %.3f", rq.loss_before, rf.loss_after, rq.loss_after);
  g_assert_cmpfloat(rq.loss_after, <, 0.9 * rf.loss_after);
  g_assert_cmpfloat(rq.accuracy_after, >, rf.accuracy_after);
  /* what it trained is what it wrote: the packed model's loss on the CPU backend is its final loss (the
     forward pass used the rounded weights, not the float copy) */
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, q2, 1, 1024, NULL, &err);
  g_assert_no_error(err);
  g_autofree float *y = g_new(float, 1024 * 6);
  g_assert_true(pq_backend_run_f32(b, x, 1024, y, &err));
  double ce = 0;
  for (int i = 0; i < 1024; i++) {
    double m = -INFINITY, sum = 0;
    for (int c = 0; c < 6; c++) m = fmax(m, y[i * 6 + c]);
    for (int c = 0; c < 6; c++) sum += exp(y[i * 6 + c] - m);
    ce += log(sum) + m - y[i * 6 + labels[i]];
  }
  g_test_message("packed model on the CPU backend: %.5f, finetune's final loss %.5f", ce / 1024, rq.loss_after);
  g_assert_cmpfloat(fabs(ce / 1024 - rq.loss_after), <, 2e-3); /* (the backend quantizes activations to int8 for packed layers) */
  /* a run that diverges (weights beyond float32) is an error naming the weight, and changes nothing */
  PqFinetuneParams wild = {3, 64, 1e38, 3, 1};
  g_autoptr(PqModel) q3 = pq_model_copy(mq);
  const void *before3 = pq_tensor_data(pq_model_tensor(q3, "w1"));
  g_assert_cmpint(pq_finetune_ex(q3, x, labels, 256, &wild, &qat, &rq, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "training diverged: weight 'w1' is no longer finite"));
  g_assert_true(pq_tensor_data(pq_model_tensor(q3, "w1")) == before3);
}

/* The tied net of test_finetune_binary, in double: x → fc(w, b1) → relu → fc(w, b2) (the same weight) →
 * minimum with tied_cap (fixed) → fc3 → z. p: w [144], b1 [12], b2 [12], w3 [48], b3 [4]. */
static const float tied_cap[12] = {0.3f, 0.1f, 0.5f, 0.2f, 0.4f, 0.0f, 0.6f, 0.15f, 0.35f, 0.25f, 0.45f, 0.05f};
static double tied_net_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w = p, *b1 = w + 144, *b2 = b1 + 12, *w3 = b2 + 12, *b3 = w3 + 48;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[12], q[12];
    for (int o = 0; o < 12; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 12; i++) h[o] += w[o * 12 + i] * x[r * 12 + i];
    }
    for (int o = 0; o < 12; o++) {
      q[o] = b2[o];
      for (int i = 0; i < 12; i++) q[o] += w[o * 12 + i] * (h[i] > 0 ? h[i] : 0);
      q[o] = fmin(q[o], tied_cap[o]);
    }
    loss += dense_ce(w3, b3, q, 12, 4, labels[r]);
  }
  return loss / n;
}

/* The squeeze-and-excitation net of test_finetune_binary, in double: x → fc1 → h [3, 4]; e_ij = sigmoid(mean_j'
 * h_ij' + kb_j) ([3, 1] plus a model tensor [4]: the activation broadcast); m = h · e; c_j = mean_i h_ij
 * ([1, 4]); u = c − m (the first operand broadcast); fc3 → z. p: w1 [144], b1 [12], kb [4], w3 [48], b3 [4]. */
static double se_net_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 144, *kb = b1 + 12, *w3 = kb + 4, *b3 = w3 + 48;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[12], u[12], e[3] = {0}, c[4] = {0};
    for (int o = 0; o < 12; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 12; i++) h[o] += w1[o * 12 + i] * x[r * 12 + i];
      e[o / 4] += h[o] / 4, c[o % 4] += h[o] / 3;
    }
    for (int k = 0; k < 12; k++) u[k] = c[k % 4] - h[k] / (1 + exp(-(e[k / 4] + kb[k % 4])));
    loss += dense_ce(w3, b3, u, 12, 4, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through the binary ops by model tensors of other shapes (broadcast, trained: a scale, a shift,
 * a slope, a tensor first in a sub, a divisor) and of two activations (a gate): Adam's first step against
 * central differences, and the CPU backend's loss against the reference. Then a tensor read by two nodes
 * (tied) is trained as one, from both gradients; a minimum by a tensor trains through it but keeps it. */
static void test_finetune_binary(void) {
  enum { N = 32 };
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[2] = {-1, 12}, sq[2] = {12, 12}, v12[1] = {12}, w3s[2] = {4, 12}, v4[1] = {4}, s31[2] = {3, 1}, m114[3] = {1, 1, 4};
  int64_t t34[2] = {3, 4}, to3[3] = {0, 3, 4}, to1[2] = {0, 12};
  PqTensor *ts[9] = {pq_test_random_tensor("w1", 2, sq, 41, 0.5f), pq_test_random_tensor("b1", 1, v12, 42, 0.1f),
                     pq_test_random_tensor("s", 2, s31, 43, 1.0f),   pq_test_random_tensor("m", 3, m114, 44, 0.3f),
                     pq_test_random_tensor("slope", 1, v4, 45, 0.5f), pq_test_random_tensor("t", 2, t34, 46, 0.5f),
                     pq_test_random_tensor("dv", 1, v12, 47, 0.5f),   pq_test_random_tensor("w3", 2, w3s, 48, 0.5f),
                     pq_test_random_tensor("b3", 1, v4, 49, 0.1f)};
  float *dv = pq_tensor_mutable_data(ts[6]);
  for (int i = 0; i < 12; i++) dv[i] = 1.0f + fabsf(dv[i]); /* divisors away from zero */
  for (int i = 0; i < 9; i++) pq_model_set_tensor(m, ts[i]);
  pq_graph_add_input(g, "x", 2, xs);
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_node_set_ints(pq_graph_add_node(g, "reshape", "to3", 1, (const char *[]){"h"}, 1, (const char *[]){"h3"}), "shape", 3, to3);
  pq_graph_add_node(g, "mul", "scale", 2, (const char *[]){"h3", "s"}, 1, (const char *[]){"a"});
  pq_graph_add_node(g, "sub", "shift", 2, (const char *[]){"a", "m"}, 1, (const char *[]){"b"});
  pq_graph_add_node(g, "prelu", "prelu", 2, (const char *[]){"b", "slope"}, 1, (const char *[]){"c"});
  pq_graph_add_node(g, "sub", "from_t", 2, (const char *[]){"t", "c"}, 1, (const char *[]){"e"});
  pq_graph_add_node(g, "sigmoid", "sig", 1, (const char *[]){"e"}, 1, (const char *[]){"se"});
  pq_graph_add_node(g, "mul", "gate", 2, (const char *[]){"e", "se"}, 1, (const char *[]){"gt"});
  pq_node_set_ints(pq_graph_add_node(g, "reshape", "to1", 1, (const char *[]){"gt"}, 1, (const char *[]){"g1"}), "shape", 2, to1);
  pq_graph_add_node(g, "div", "divide", 2, (const char *[]){"g1", "dv"}, 1, (const char *[]){"q0"});
  pq_graph_add_node(g, "add", "res", 2, (const char *[]){"q0", "h"}, 1, (const char *[]){"q"});
  pq_graph_add_node(g, "linear", "fc3", 3, (const char *[]){"q", "w3", "b3"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  g_autofree float *x = g_new(float, N * 12);
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(19);
  for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 4);
  g_rand_free(r);
  const char *names[9] = {"w1", "b1", "s", "m", "slope", "t", "dv", "w3", "b3"};
  assert_backend_loss(m, names, 9, binary_net_loss, x, labels, N);
  g_assert_cmpint(check_first_step(m, names, 9, binary_net_loss, x, labels, N), >, 200);
  for (int i = 0; i < 9; i++) pq_tensor_unref(ts[i]);
  pq_model_unref(m);

  /* one weight read by two layers: one gradient, the sum of both shares; a minimum's tensor stays */
  g_autoptr(PqModel) tm = pq_model_new();
  g = pq_model_graph(tm);
  PqTensor *tt[6] = {pq_test_random_tensor("w", 2, sq, 51, 0.5f),  pq_test_random_tensor("b1", 1, v12, 52, 0.1f),
                     pq_test_random_tensor("b2", 1, v12, 53, 0.1f), pq_test_random_tensor("w3", 2, w3s, 54, 0.5f),
                     pq_test_random_tensor("b3", 1, v4, 55, 0.1f),  pq_tensor_new("cap", PQ_DTYPE_F32, 1, v12)};
  memcpy(pq_tensor_mutable_data(tt[5]), tied_cap, sizeof tied_cap);
  for (int i = 0; i < 6; i++) pq_model_set_tensor(tm, tt[i]), pq_tensor_unref(tt[i]);
  pq_graph_add_input(g, "x", 2, xs);
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w", "b1"}, 1, (const char *[]){"h"});
  pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"hr", "w", "b2"}, 1, (const char *[]){"q0"});
  pq_graph_add_node(g, "minimum", "cap", 2, (const char *[]){"q0", "cap"}, 1, (const char *[]){"q"});
  pq_graph_add_node(g, "linear", "fc3", 3, (const char *[]){"q", "w3", "b3"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  const char *tnames[5] = {"w", "b1", "b2", "w3", "b3"};
  assert_backend_loss(tm, tnames, 5, tied_net_loss, x, labels, N);
  g_assert_cmpint(check_first_step(tm, tnames, 5, tied_net_loss, x, labels, N), >, 150);
  g_autoptr(PqModel) tft = pq_model_copy(tm);
  PqFinetuneParams fp = {3, 8, 1e-2, 1, 1};
  PqFinetuneResult res;
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_assert_cmpint(pq_finetune(tft, x, labels, N, &fp, &res, &perr), ==, 0);
  g_assert_cmpint(res.trained_params, ==, 144 + 12 + 12 + 48 + 4); /* w once; cap not at all */
  g_assert_cmpmem(pq_tensor_data(pq_model_tensor(tft, "cap")), sizeof tied_cap, tied_cap, sizeof tied_cap);
  g_assert_cmpfloat(res.loss_after, <, res.loss_before);

  /* two activations of different shapes: a squeeze-and-excitation scale, and a mean over the other axis first */
  g_autoptr(PqModel) se = pq_model_new();
  g = pq_model_graph(se);
  PqTensor *st3[5] = {pq_test_random_tensor("w1", 2, sq, 61, 0.5f), pq_test_random_tensor("b1", 1, v12, 62, 0.1f),
                      pq_test_random_tensor("kb", 1, v4, 65, 0.5f), pq_test_random_tensor("w3", 2, w3s, 63, 0.5f),
                      pq_test_random_tensor("b3", 1, v4, 64, 0.1f)};
  for (int i = 0; i < 5; i++) pq_model_set_tensor(se, st3[i]), pq_tensor_unref(st3[i]);
  pq_graph_add_input(g, "x", 2, xs);
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_node_set_ints(pq_graph_add_node(g, "reshape", "to3", 1, (const char *[]){"h"}, 1, (const char *[]){"h3"}), "shape", 3, to3);
  PqNode *rm = pq_graph_add_node(g, "reduce_mean", "squeeze", 1, (const char *[]){"h3"}, 1, (const char *[]){"e0"});
  pq_node_set_ints(rm, "axes", 1, (const int64_t[]){2}), pq_node_set_int(rm, "keepdims", 1);
  pq_graph_add_node(g, "add", "shift", 2, (const char *[]){"e0", "kb"}, 1, (const char *[]){"e1"}); /* [N, 3, 1] + [4] */
  pq_graph_add_node(g, "sigmoid", "excite", 1, (const char *[]){"e1"}, 1, (const char *[]){"e"});
  pq_graph_add_node(g, "mul", "scale", 2, (const char *[]){"h3", "e"}, 1, (const char *[]){"m"});
  PqNode *cm = pq_graph_add_node(g, "reduce_mean", "colmean", 1, (const char *[]){"h3"}, 1, (const char *[]){"c"});
  pq_node_set_ints(cm, "axes", 1, (const int64_t[]){1}), pq_node_set_int(cm, "keepdims", 1);
  pq_graph_add_node(g, "sub", "diff", 2, (const char *[]){"c", "m"}, 1, (const char *[]){"u3"});
  pq_node_set_ints(pq_graph_add_node(g, "reshape", "to1", 1, (const char *[]){"u3"}, 1, (const char *[]){"u"}), "shape", 2, to1);
  pq_graph_add_node(g, "linear", "fc3", 3, (const char *[]){"u", "w3", "b3"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  const char *snames[5] = {"w1", "b1", "kb", "w3", "b3"};
  assert_backend_loss(se, snames, 5, se_net_loss, x, labels, N);
  g_assert_cmpint(check_first_step(se, snames, 5, se_net_loss, x, labels, N), >, 150);
}

/* x → fc1 (12 → 8) → layer_norm (scale, bias, ε 1e-3) → relu → fc2 (8 → 4) → cross-entropy, in double.
 * p: w1 [96], b1 [8], scale [8], bias [8], w2 [32], b2 [4]. */
static double ln_net_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 96, *sc = b1 + 8, *bi = sc + 8, *w2 = bi + 8, *b2 = w2 + 32;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[8], mean = 0, var = 0;
    for (int o = 0; o < 8; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 12; i++) h[o] += w1[o * 12 + i] * x[r * 12 + i];
      mean += h[o];
    }
    mean /= 8;
    for (int o = 0; o < 8; o++) var += (h[o] - mean) * (h[o] - mean);
    double inv = 1 / sqrt(var / 8 + 1e-3);
    for (int o = 0; o < 8; o++) h[o] = fmax((h[o] - mean) * inv * sc[o] + bi[o], 0);
    loss += dense_ce(w2, b2, h, 8, 4, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through layer_norm: its scale and bias learn, and the layer before it gets the gradient through
 * the normalisation (every weight's first Adam step against central differences in double). */
static void test_finetune_layer_norm(void) {
  enum { N = 32 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[2] = {-1, 12}, w1s[2] = {8, 12}, v8[1] = {8}, w2s[2] = {4, 8}, v4[1] = {4};
  pq_graph_add_input(g, "x", 2, xs);
  PqTensor *ts[6] = {pq_test_random_tensor("w1", 2, w1s, 41, 0.5f), pq_test_random_tensor("b1", 1, v8, 42, 0.1f),
                     pq_test_random_tensor("sc", 1, v8, 43, 1.0f), pq_test_random_tensor("bi", 1, v8, 44, 0.2f),
                     pq_test_random_tensor("w2", 2, w2s, 45, 0.5f), pq_test_random_tensor("b2", 1, v4, 46, 0.1f)};
  for (int i = 0; i < 6; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  PqNode *ln = pq_graph_add_node(g, "layer_norm", "ln", 3, (const char *[]){"h", "sc", "bi"}, 1, (const char *[]){"n"});
  pq_node_set_float(ln, "epsilon", 1e-3);
  pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"n"}, 1, (const char *[]){"r"});
  pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"r", "w2", "b2"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 12];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(19);
  for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 4);
  g_rand_free(r);
  const char *names[6] = {"w1", "b1", "sc", "bi", "w2", "b2"};
  g_assert_cmpint(check_first_step(m, names, 6, ln_net_loss, x, labels, N), >, 100);
}

/* x → fc1 (5 → 4) → softmax (inside) → fc2 (4 → 3, weights offset by 2 so that the gradient reaching the
 * softmax is mostly the same for every entry, which the softmax must cancel) → cross-entropy, in double.
 * p: w1 [20], b1 [4], w2 [12], b2 [3]. */
static double smax_net_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 20, *w2 = b1 + 4, *b2 = w2 + 12;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[4], m = -INFINITY, sum = 0;
    for (int o = 0; o < 4; o++) {
      h[o] = b1[o];
      for (int i = 0; i < 5; i++) h[o] += w1[o * 5 + i] * x[r * 5 + i];
      m = fmax(m, h[o]);
    }
    for (int o = 0; o < 4; o++) sum += (h[o] = exp(h[o] - m));
    for (int o = 0; o < 4; o++) h[o] /= sum;
    loss += dense_ce(w2, b2, h, 4, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through a softmax inside the model: fc1's first Adam steps against central differences. */
static void test_finetune_softmax_inside(void) {
  enum { N = 24 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[2] = {-1, 5}, w1s[2] = {4, 5}, v4[1] = {4}, w2s[2] = {3, 4}, v3[1] = {3};
  pq_graph_add_input(g, "x", 2, xs);
  PqTensor *ts[4] = {pq_test_random_tensor("w1", 2, w1s, 61, 1.0f), pq_test_random_tensor("b1", 1, v4, 62, 0.2f),
                     pq_test_random_tensor("w2", 2, w2s, 63, 0.5f), pq_test_random_tensor("b2", 1, v3, 64, 0.1f)};
  float *w2 = pq_tensor_mutable_data(ts[2]);
  for (int i = 0; i < 12; i++) w2[i] += i / 4 == 0 ? 2.0f : -2.0f; /* a common part per output row */
  for (int i = 0; i < 4; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_graph_add_node(g, "softmax", "inner", 1, (const char *[]){"h"}, 1, (const char *[]){"p"});
  pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"p", "w2", "b2"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 5];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(29);
  for (int i = 0; i < N * 5; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
  g_rand_free(r);
  const char *names[4] = {"w1", "b1", "w2", "b2"}; /* fc1's gradients pass the softmax */
  g_assert_cmpint(check_first_step(m, names, 4, smax_net_loss, x, labels, N), >, 30);
}

/* The structured net of test_finetune_structured, in double: x [12] → tt_linear (cores g1 [1, 3, 2, 2],
 * g2 [2, 2, 3, 2], g3 [2, 2, 2, 1]: 12 → 12) → relu → circulant_linear (blocks [3, 3, 4]: 12 → 10) → relu → sparse_linear
 * (CSR, 10 → 4) → cross-entropy. Each dense matrix is formed here by its definition. p: g1 [12], g2 [24],
 * g3 [8], tb [12], cb [36], cbias [10], sv [STRUCT_NNZ], sb [4]. */
enum { STRUCT_NNZ = 19 };
static const int32_t struct_rows[5] = {0, 5, 9, 14, 19};
static const int32_t struct_cols[STRUCT_NNZ] = {0, 2, 3, 7, 9, 1, 4, 5, 8, 0, 3, 6, 7, 8, 1, 2, 5, 6, 9};
static double struct_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *g1 = p, *g2 = g1 + 12, *g3 = g2 + 24, *tb = g3 + 8, *cb = tb + 12, *cbias = cb + 36, *sv = cbias + 10, *sb = sv + STRUCT_NNZ;
  double w1[12][12] = {{0}}, w2[10][12], w3[4][10] = {{0}}, loss = 0;
  for (int i1 = 0; i1 < 3; i1++) /* W[(i1, i2, i3), (j1, j2, j3)] = Σ_ab G1[0, i1, j1, a] G2[a, i2, j2, b] G3[b, i3, j3, 0] */
    for (int i2 = 0; i2 < 2; i2++)
      for (int i3 = 0; i3 < 2; i3++)
        for (int j1 = 0; j1 < 2; j1++)
          for (int j2 = 0; j2 < 3; j2++)
            for (int j3 = 0; j3 < 2; j3++)
              for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                  w1[(i1 * 2 + i2) * 2 + i3][(j1 * 3 + j2) * 2 + j3] +=
                      g1[(i1 * 2 + j1) * 2 + a] * g2[((a * 2 + i2) * 3 + j2) * 2 + b] * g3[(b * 2 + i3) * 2 + j3];
  for (int i = 0; i < 10; i++) /* block (I, J)'s entry (r, s) is its column's value (r − s) mod 4 */
    for (int j = 0; j < 12; j++) w2[i][j] = cb[((i / 4) * 3 + j / 4) * 4 + ((i % 4) - (j % 4) + 4) % 4];
  for (int o = 0; o < 4; o++)
    for (int k = struct_rows[o]; k < struct_rows[o + 1]; k++) w3[o][struct_cols[k]] = sv[k];
  for (int r = 0; r < n; r++) {
    double h[12], c[10];
    for (int o = 0; o < 12; o++) {
      h[o] = tb[o];
      for (int i = 0; i < 12; i++) h[o] += w1[o][i] * x[r * 12 + i];
      h[o] = h[o] > 0 ? h[o] : 0;
    }
    for (int o = 0; o < 10; o++) {
      c[o] = cbias[o];
      for (int i = 0; i < 12; i++) c[o] += w2[o][i] * h[i];
      c[o] = c[o] > 0 ? c[o] : 0;
    }
    loss += dense_ce(&w3[0][0], sb, c, 10, 4, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through layers held in structured forms trains their parameters: the tensor-train cores,
 * the circulant blocks' columns and the CSR values (its pattern kept), each weight's first Adam step checked
 * against central differences as in test_finetune_residual. The CPU backend's loss on the model is the
 * reference's too, so finetune's dense forms are the kernels'. */
static void test_finetune_structured(void) {
  enum { N = 32 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[2] = {-1, 12}, g1s[4] = {1, 3, 2, 2}, g2s[4] = {2, 2, 3, 2}, g3s[4] = {2, 2, 2, 1}, v12[1] = {12}, cbs[3] = {3, 3, 4}, v10[1] = {10}, nnz[1] = {STRUCT_NNZ},
          v5[1] = {5}, v4[1] = {4};
  pq_graph_add_input(g, "x", 2, xs);
  PqTensor *ts[8] = {pq_test_random_tensor("g1", 4, g1s, 41, 0.9f),    pq_test_random_tensor("g2", 4, g2s, 42, 0.9f),
                     pq_test_random_tensor("g3", 4, g3s, 48, 0.9f),    pq_test_random_tensor("tb", 1, v12, 43, 0.2f),    pq_test_random_tensor("cb", 3, cbs, 44, 0.6f),
                     pq_test_random_tensor("cbias", 1, v10, 45, 0.2f), pq_test_random_tensor("sv", 1, nnz, 46, 0.8f),
                     pq_test_random_tensor("sb", 1, v4, 47, 0.1f)};
  for (int i = 0; i < 8; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  PqTensor *cols = pq_tensor_new("scols", PQ_DTYPE_I32, 1, nnz), *rows = pq_tensor_new("srows", PQ_DTYPE_I32, 1, v5);
  memcpy(pq_tensor_mutable_data(cols), struct_cols, sizeof struct_cols);
  memcpy(pq_tensor_mutable_data(rows), struct_rows, sizeof struct_rows);
  pq_model_set_tensor(m, cols);
  pq_model_set_tensor(m, rows);
  pq_tensor_unref(cols);
  pq_tensor_unref(rows);
  PqNode *tt = pq_graph_add_node(g, "tt_linear", "fc1", 5, (const char *[]){"x", "g1", "g2", "g3", "tb"}, 1, (const char *[]){"h"});
  pq_node_set_int(tt, "cores", 3);
  pq_graph_add_node(g, "relu", "r1", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  PqNode *circ = pq_graph_add_node(g, "circulant_linear", "fc2", 3, (const char *[]){"hr", "cb", "cbias"}, 1, (const char *[]){"c"});
  pq_node_set_int(circ, "in_features", 12);
  pq_node_set_int(circ, "out_features", 10);
  pq_graph_add_node(g, "relu", "r2", 1, (const char *[]){"c"}, 1, (const char *[]){"cr"});
  PqNode *sp = pq_graph_add_node(g, "sparse_linear", "fc3", 5, (const char *[]){"cr", "sv", "scols", "srows", "sb"}, 1, (const char *[]){"z"});
  pq_node_set_int(sp, "in_features", 10);
  pq_node_set_int(sp, "out_features", 4);
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 12];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(37);
  for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 4);
  g_rand_free(r);
  const char *names[8] = {"g1", "g2", "g3", "tb", "cb", "cbias", "sv", "sb"};
  assert_backend_loss(m, names, G_N_ELEMENTS(names), struct_loss, x, labels, N);
  g_assert_cmpint(check_first_step(m, names, 8, struct_loss, x, labels, N), >, 100);
  /* the pattern is kept: the same index tensors, the values' count */
  g_autoptr(PqModel) ft = pq_model_copy(m);
  PqFinetuneParams fp = {2, 8, 1e-2, 1, 1};
  PqFinetuneResult res;
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_assert_cmpint(pq_finetune(ft, x, labels, N, &fp, &res, &perr), ==, 0);
  g_assert_cmpint(res.trained_params, ==, 12 + 24 + 8 + 12 + 36 + 10 + STRUCT_NNZ + 4); /* every parameter above */
  g_assert_true(pq_model_tensor(ft, "scols") == pq_model_tensor(m, "scols"));
  g_assert_cmpint(pq_tensor_numel(pq_model_tensor(ft, "sv")), ==, STRUCT_NNZ);
  g_assert_true(pq_model_tensor(ft, "g1") != pq_model_tensor(m, "g1"));
  /* a CSR pattern out of range is refused naming the layer */
  int32_t *bad = pq_tensor_mutable_data(pq_model_tensor(m, "scols"));
  bad[3] = 10;
  g_assert_cmpint(pq_finetune(m, x, labels, N, &fp, &res, &perr), ==, -1);
  g_assert_nonnull(strstr(perr.message, "sparse_linear 'fc3': column index 10 out of range"));
}

/* The grouped-conv net of test_finetune_grouped_conv, in double: x [4, 5, 5] → depthwise 3×3 conv (groups 4,
 * pad 1) → relu → 2×2 conv stride 2, groups 2 (4 → 6 channels) → flatten → linear (24 → 3) → cross-entropy.
 * p: w1 [4, 1, 3, 3], b1 [4], w2 [6, 2, 2, 2], b2 [6], w3 [3, 24], b3 [3]. */
static double gconv_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 36, *w2 = b1 + 4, *b2 = w2 + 48, *w3 = b2 + 6, *b3 = w3 + 72;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    const float *xr = x + r * 100;
    double h[4][5][5], g[24];
    for (int c = 0; c < 4; c++)
      for (int y = 0; y < 5; y++)
        for (int xx = 0; xx < 5; xx++) {
          double a = b1[c];
          for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
              int iy = y - 1 + ky, ix = xx - 1 + kx;
              if (iy >= 0 && iy < 5 && ix >= 0 && ix < 5) a += w1[c * 9 + ky * 3 + kx] * xr[c * 25 + iy * 5 + ix];
            }
          h[c][y][xx] = a > 0 ? a : 0;
        }
    for (int o = 0; o < 6; o++) /* output channel o reads input channels 2·(o / 3) and the next */
      for (int y = 0; y < 2; y++)
        for (int xx = 0; xx < 2; xx++) {
          double a = b2[o];
          for (int ci = 0; ci < 2; ci++)
            for (int ky = 0; ky < 2; ky++)
              for (int kx = 0; kx < 2; kx++) a += w2[((o * 2 + ci) * 2 + ky) * 2 + kx] * h[(o / 3) * 2 + ci][y * 2 + ky][xx * 2 + kx];
          g[o * 4 + y * 2 + xx] = a;
        }
    loss += dense_ce(w3, b3, g, 24, 3, labels[r]);
  }
  return loss / n;
}

/* The second net of test_finetune_grouped_conv, in double: x [2, 6, 7] → 1×1 conv (w0 [2, 2, 1, 1], b0 [2]; so
 * that the depthwise conv's input gradient is trained through) → depthwise conv, two outputs a channel (w1
 * [4, 1, 3, 3], b1 [4]), stride 2, pads top 1 left 1 bottom 1 right 2, dilation 1 × 2 → [4, 3, 3] → tanh →
 * flatten → linear (36 → 3) → cross-entropy. */
static double dw2_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w0 = p, *b0 = w0 + 4, *w1 = b0 + 2, *b1 = w1 + 36, *w3 = b1 + 4, *b3 = w3 + 108;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double xr[84], h[36];
    for (int c = 0; c < 2; c++)
      for (int q = 0; q < 42; q++) xr[c * 42 + q] = b0[c] + w0[c * 2] * x[r * 84 + q] + w0[c * 2 + 1] * x[r * 84 + 42 + q];
    for (int o = 0; o < 4; o++)
      for (int y = 0; y < 3; y++)
        for (int xx = 0; xx < 3; xx++) {
          double a = b1[o];
          for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
              int iy = y * 2 - 1 + ky, ix = xx * 2 - 1 + kx * 2;
              if (iy >= 0 && iy < 6 && ix >= 0 && ix < 7) a += w1[o * 9 + ky * 3 + kx] * xr[(o / 2) * 42 + iy * 7 + ix];
            }
          h[o * 9 + y * 3 + xx] = tanh(a);
        }
    loss += dense_ce(w3, b3, h, 36, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through grouped convolutions (a depthwise one and one of two groups), weight by weight against
 * central differences; the CPU backend's loss is the reference's. */
static void test_finetune_grouped_conv(void) {
  enum { N = 24 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 4, 5, 5}, w1s[4] = {4, 1, 3, 3}, v4[1] = {4}, w2s[4] = {6, 2, 2, 2}, v6[1] = {6}, w3s[2] = {3, 24}, v3[1] = {3};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *ts[6] = {pq_test_random_tensor("w1", 4, w1s, 51, 0.6f), pq_test_random_tensor("b1", 1, v4, 52, 0.2f),
                     pq_test_random_tensor("w2", 4, w2s, 53, 0.6f), pq_test_random_tensor("b2", 1, v6, 54, 0.2f),
                     pq_test_random_tensor("w3", 2, w3s, 55, 0.5f), pq_test_random_tensor("b3", 1, v3, 56, 0.1f)};
  for (int i = 0; i < 6; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  PqNode *c1 = pq_graph_add_node(g, "conv2d", "dw", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_node_set_int(c1, "groups", 4);
  pq_node_set_ints(c1, "pads", 4, (const int64_t[]){1, 1, 1, 1});
  pq_graph_add_node(g, "relu", "r", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  PqNode *c2 = pq_graph_add_node(g, "conv2d", "gc", 3, (const char *[]){"hr", "w2", "b2"}, 1, (const char *[]){"c"});
  pq_node_set_int(c2, "groups", 2);
  pq_node_set_ints(c2, "strides", 2, (const int64_t[]){2, 2});
  pq_graph_add_node(g, "flatten", "f", 1, (const char *[]){"c"}, 1, (const char *[]){"cf"});
  pq_graph_add_node(g, "linear", "fc", 3, (const char *[]){"cf", "w3", "b3"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 100];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(53);
  for (int i = 0; i < N * 100; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
  g_rand_free(r);
  const char *names[6] = {"w1", "b1", "w2", "b2", "w3", "b3"};
  assert_backend_loss(m, names, G_N_ELEMENTS(names), gconv_loss, x, labels, N);
  g_assert_cmpint(check_first_step(m, names, 6, gconv_loss, x, labels, N), >, 100);

  /* a depthwise conv with two outputs a channel, stride 2, uneven pads, a dilation of 2 across: x [2, 6, 7] */
  g_autoptr(PqModel) d = pq_model_new();
  int64_t dxs[4] = {-1, 2, 6, 7}, d0s[4] = {2, 2, 1, 1}, v2[1] = {2}, dws[4] = {4, 1, 3, 3}, dfs[2] = {3, 36};
  pq_graph_add_input(pq_model_graph(d), "x", 4, dxs);
  PqTensor *dt[6] = {pq_test_random_tensor("w0", 4, d0s, 61, 0.8f), pq_test_random_tensor("b0", 1, v2, 62, 0.2f),
                     pq_test_random_tensor("w1", 4, dws, 57, 0.6f), pq_test_random_tensor("b1", 1, v4, 58, 0.2f),
                     pq_test_random_tensor("w3", 2, dfs, 59, 0.5f), pq_test_random_tensor("b3", 1, v3, 60, 0.1f)};
  for (int i = 0; i < 6; i++) pq_model_set_tensor(d, dt[i]), pq_tensor_unref(dt[i]);
  pq_graph_add_node(pq_model_graph(d), "conv2d", "mix", 3, (const char *[]){"x", "w0", "b0"}, 1, (const char *[]){"x0"});
  PqNode *dc = pq_graph_add_node(pq_model_graph(d), "conv2d", "dw", 3, (const char *[]){"x0", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_node_set_int(dc, "groups", 2);
  pq_node_set_ints(dc, "pads", 4, (const int64_t[]){1, 1, 1, 2});
  pq_node_set_ints(dc, "strides", 2, (const int64_t[]){2, 2});
  pq_node_set_ints(dc, "dilations", 2, (const int64_t[]){1, 2});
  pq_graph_add_node(pq_model_graph(d), "tanh", "t", 1, (const char *[]){"h"}, 1, (const char *[]){"ht"});
  pq_graph_add_node(pq_model_graph(d), "flatten", "f", 1, (const char *[]){"ht"}, 1, (const char *[]){"hf"});
  pq_graph_add_node(pq_model_graph(d), "linear", "fc", 3, (const char *[]){"hf", "w3", "b3"}, 1, (const char *[]){"z"});
  pq_graph_add_node(pq_model_graph(d), "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(pq_model_graph(d), "y");
  const char *dnames[6] = {"w0", "b0", "w1", "b1", "w3", "b3"};
  assert_backend_loss(d, dnames, 6, dw2_loss, x, labels, N); /* (the same x, read as samples of 84) */
  g_assert_cmpint(check_first_step(d, dnames, 6, dw2_loss, x, labels, N), >, 80);
}

/* The transposed-conv net of test_finetune_conv_transpose, in double: x [2, 3, 3] → 1×1 conv (w0 [2, 2, 1, 1],
 * b0 [2]) → tanh → conv_transpose2d (2 → 4
 * channels, groups 2, 3×3, stride 2, pads 1, output_padding 1: 6×6) → relu → global average pool → linear
 * (4 → 3) → cross-entropy. p: w0 [4], b0 [2], w1 [2, 2, 3, 3] ([C, O/groups, kh, kw]), b1 [4], w2 [3, 4], b2 [3]. */
static double convt_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w0 = p, *b0 = w0 + 4, *w1 = b0 + 2, *b1 = w1 + 36, *w2 = b1 + 4, *b2 = w2 + 12;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double xr[18], y[4][6][6], pooled[4];
    for (int c = 0; c < 2; c++)
      for (int i = 0; i < 9; i++) xr[c * 9 + i] = tanh(b0[c] + w0[c * 2] * x[r * 18 + i] + w0[c * 2 + 1] * x[r * 18 + 9 + i]);
    for (int o = 0; o < 4; o++)
      for (int i = 0; i < 36; i++) y[o][i / 6][i % 6] = b1[o];
    for (int c = 0; c < 2; c++) /* input channel c (group c) spreads into outputs 2c and 2c + 1 */
      for (int iy = 0; iy < 3; iy++)
        for (int ix = 0; ix < 3; ix++)
          for (int oo = 0; oo < 2; oo++)
            for (int ky = 0; ky < 3; ky++)
              for (int kx = 0; kx < 3; kx++) {
                int oy = iy * 2 - 1 + ky, ox = ix * 2 - 1 + kx;
                if (oy >= 0 && oy < 6 && ox >= 0 && ox < 6) y[c * 2 + oo][oy][ox] += xr[c * 9 + iy * 3 + ix] * w1[((c * 2 + oo) * 3 + ky) * 3 + kx];
              }
    for (int o = 0; o < 4; o++) {
      pooled[o] = 0;
      for (int i = 0; i < 36; i++) pooled[o] += fmax(y[o][i / 6][i % 6], 0) / 36;
    }
    loss += dense_ce(w2, b2, pooled, 4, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through a grouped, strided conv_transpose2d with output padding, weight by weight against
 * central differences; the CPU backend's loss is the reference's. */
static void test_finetune_conv_transpose(void) {
  enum { N = 24 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 2, 3, 3}, w1s[4] = {2, 2, 3, 3}, v4[1] = {4}, w2s[2] = {3, 4}, v3[1] = {3};
  pq_graph_add_input(g, "x", 4, xs);
  int64_t w0s[4] = {2, 2, 1, 1}, v2[1] = {2};
  PqTensor *ts[6] = {pq_test_random_tensor("w0", 4, w0s, 59, 0.8f), pq_test_random_tensor("b0", 1, v2, 60, 0.2f),
                     pq_test_random_tensor("w1", 4, w1s, 61, 0.7f), pq_test_random_tensor("b1", 1, v4, 62, 0.2f),
                     pq_test_random_tensor("w2", 2, w2s, 63, 1.0f), pq_test_random_tensor("b2", 1, v3, 64, 0.1f)};
  for (int i = 0; i < 6; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  pq_graph_add_node(g, "conv2d", "pre", 3, (const char *[]){"x", "w0", "b0"}, 1, (const char *[]){"h0"});
  pq_graph_add_node(g, "tanh", "t", 1, (const char *[]){"h0"}, 1, (const char *[]){"h0t"});
  PqNode *ct = pq_graph_add_node(g, "conv_transpose2d", "up", 3, (const char *[]){"h0t", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_node_set_int(ct, "groups", 2);
  pq_node_set_ints(ct, "strides", 2, (const int64_t[]){2, 2});
  pq_node_set_ints(ct, "pads", 4, (const int64_t[]){1, 1, 1, 1});
  pq_node_set_ints(ct, "output_padding", 2, (const int64_t[]){1, 1});
  pq_graph_add_node(g, "relu", "r", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  pq_graph_add_node(g, "global_avg_pool", "gap", 1, (const char *[]){"hr"}, 1, (const char *[]){"p"});
  pq_graph_add_node(g, "flatten", "f", 1, (const char *[]){"p"}, 1, (const char *[]){"pf"});
  pq_graph_add_node(g, "linear", "fc", 3, (const char *[]){"pf", "w2", "b2"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 18];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(67);
  for (int i = 0; i < N * 18; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
  g_rand_free(r);
  const char *names[6] = {"w0", "b0", "w1", "b1", "w2", "b2"}; /* w0, b0: through the transposed conv's input gradient */
  assert_backend_loss(m, names, G_N_ELEMENTS(names), convt_loss, x, labels, N);
  g_assert_cmpint(check_first_step(m, names, 6, convt_loss, x, labels, N), >, 45);
}

/* The resize-and-pad net of test_finetune_resize_pad, in double: x [2, 3, 3] → 1×1 conv (w0 [2, 2, 1, 1], b0 [2])
 * → tanh → resize2d (linear, half_pixel, to 5 × 5; the taps of pq_resize_taps) → pad2d (top 1, right 2, value
 * 0.5: 6 × 7) → flatten → linear (84 → 3) → cross-entropy. p: w0 [4], b0 [2], w [3, 84], b [3]. */
static PqResizeParams resize_pad_rs;
static double resize_pad_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w0 = p, *b0 = w0 + 4, *w = b0 + 2, *b = w + 252;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[2][9], z[2][5][5], f[84];
    for (int c = 0; c < 2; c++)
      for (int i = 0; i < 9; i++) h[c][i] = tanh(b0[c] + w0[c * 2] * x[r * 18 + i] + w0[c * 2 + 1] * x[r * 18 + 9 + i]);
    for (int c = 0; c < 2; c++)
      for (int oy = 0; oy < 5; oy++)
        for (int ox = 0; ox < 5; ox++) {
          int64_t iy[4], ix[4];
          double wy[4], wx[4], acc = 0;
          int ny = pq_resize_taps(&resize_pad_rs, 0, oy, iy, wy), nx = pq_resize_taps(&resize_pad_rs, 1, ox, ix, wx);
          for (int a = 0; a < ny; a++)
            for (int q = 0; q < nx; q++) acc += wy[a] * wx[q] * h[c][iy[a] * 3 + ix[q]];
          z[c][oy][ox] = acc;
        }
    for (int c = 0; c < 2; c++)
      for (int oy = 0; oy < 6; oy++)
        for (int ox = 0; ox < 7; ox++) f[c * 42 + oy * 7 + ox] = oy >= 1 && ox < 5 ? z[c][oy - 1][ox] : 0.5;
    loss += dense_ce(w, b, f, 84, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through resize2d (linear) and pad2d: the 1×1 conv before them learns through both, checked
 * weight by weight; the CPU backend's loss is the reference's. */
static void test_finetune_resize_pad(void) {
  enum { N = 24 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 2, 3, 3}, w0s[4] = {2, 2, 1, 1}, v2[1] = {2}, ws[2] = {3, 84}, v3[1] = {3};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *ts[4] = {pq_test_random_tensor("w0", 4, w0s, 71, 0.9f), pq_test_random_tensor("b0", 1, v2, 72, 0.2f),
                     pq_test_random_tensor("w", 2, ws, 73, 0.4f), pq_test_random_tensor("b", 1, v3, 74, 0.1f)};
  for (int i = 0; i < 4; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  pq_graph_add_node(g, "conv2d", "pre", 3, (const char *[]){"x", "w0", "b0"}, 1, (const char *[]){"h0"});
  pq_graph_add_node(g, "tanh", "t", 1, (const char *[]){"h0"}, 1, (const char *[]){"h"});
  PqNode *rz = pq_graph_add_node(g, "resize2d", "up", 1, (const char *[]){"h"}, 1, (const char *[]){"z"});
  pq_node_set_string(rz, "mode", "linear");
  pq_node_set_ints(rz, "sizes", 2, (const int64_t[]){5, 5});
  PqNode *pd = pq_graph_add_node(g, "pad2d", "pad", 1, (const char *[]){"z"}, 1, (const char *[]){"zp"});
  pq_node_set_ints(pd, "pads", 4, (const int64_t[]){1, 0, 0, 2});
  pq_node_set_float(pd, "value", 0.5);
  pq_graph_add_node(g, "flatten", "f", 1, (const char *[]){"zp"}, 1, (const char *[]){"zf"});
  pq_graph_add_node(g, "linear", "fc", 3, (const char *[]){"zf", "w", "b"}, 1, (const char *[]){"o"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"o"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  g_assert_cmpint(pq_resize_params(rz, 3, 3, &resize_pad_rs), ==, 0);
  float x[N * 18];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(77);
  for (int i = 0; i < N * 18; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
  g_rand_free(r);
  const char *names[4] = {"w0", "b0", "w", "b"};
  assert_backend_loss(m, names, G_N_ELEMENTS(names), resize_pad_loss, x, labels, N);
  g_assert_cmpint(check_first_step(m, names, 4, resize_pad_loss, x, labels, N), >, 200);
}

/* The max-pool net of test_finetune_max_pool_pow, in double: x [3 tokens, 4] → fc1 (4 → 5, per token) → tanh
 * → pow 2, plus the tanh itself (so that a wrong factor in pow's derivative turns signs) → minimum 0.8 → max
 * over the tokens → fc2 (5 → 3) → cross-entropy; variant 1: −1.5 · tanh and a min over the tokens (near
 * tanh ≈ 0.75, where the right derivative 2·tanh − 1.5 changes sign). p: w1 [20], b1 [5], w2 [15], b2 [3]. */
static int maxpow_variant; /* 1: the tanh enters as −1.5 · tanh, and the pool is a min */
static double maxpow_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 20, *w2 = b1 + 5, *b2 = w2 + 15;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double pooled[5];
    for (int o = 0; o < 5; o++) {
      pooled[o] = maxpow_variant ? INFINITY : -INFINITY;
      for (int t = 0; t < 3; t++) {
        double h = b1[o];
        for (int i = 0; i < 4; i++) h += w1[o * 4 + i] * x[(r * 3 + t) * 4 + i];
        double v = fmin(pow(tanh(h), 2.0) + (maxpow_variant ? -1.5 : 1.0) * tanh(h), 0.8);
        pooled[o] = maxpow_variant ? fmin(pooled[o], v) : fmax(pooled[o], v);
      }
    }
    loss += dense_ce(w2, b2, pooled, 5, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through reduce_max (and reduce_min) over tokens, and a power, a minimum and a scaling by scalar
 * constants, weight by weight; the CPU backend's loss is the reference's. (Adam's first step shows signs only:
 * a wrong factor in a derivative shows where another path adds to it, hence the residual add.) */
static void test_finetune_max_pool_pow(void) {
  enum { N = 32 };
  for (maxpow_variant = 0; maxpow_variant < 2; maxpow_variant++) {
    g_autoptr(PqModel) m = pq_model_new();
    PqGraph *g = pq_model_graph(m);
    int64_t xs[3] = {-1, 3, 4}, w1s[2] = {5, 4}, v5[1] = {5}, w2s[2] = {3, 5}, v3[1] = {3}, one[1] = {1};
    pq_graph_add_input(g, "x", 3, xs);
    PqTensor *ts[6] = {pq_test_random_tensor("w1", 2, w1s, 81, 1.5f), pq_test_random_tensor("b1", 1, v5, 82, 0.3f),
                       pq_test_random_tensor("w2", 2, w2s, 83, 1.5f), pq_test_random_tensor("b2", 1, v3, 84, 0.1f),
                       pq_tensor_new("two", PQ_DTYPE_F32, 1, one), pq_tensor_new("cap", PQ_DTYPE_F32, 1, one)};
    *(float *)pq_tensor_mutable_data(ts[4]) = 2.0f;
    *(float *)pq_tensor_mutable_data(ts[5]) = 0.8f;
    for (int i = 0; i < 6; i++) {
      pq_model_set_tensor(m, ts[i]);
      pq_tensor_unref(ts[i]);
    }
    pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
    pq_graph_add_node(g, "tanh", "t", 1, (const char *[]){"h"}, 1, (const char *[]){"ht"});
    pq_graph_add_node(g, "pow", "sq", 2, (const char *[]){"ht", "two"}, 1, (const char *[]){"h2"});
    if (maxpow_variant) { /* −1.5 · tanh, by a scalar constant */
      PqTensor *k = pq_tensor_new("k", PQ_DTYPE_F32, 1, one);
      *(float *)pq_tensor_mutable_data(k) = -1.5f;
      pq_model_set_tensor(m, k);
      pq_tensor_unref(k);
      pq_graph_add_node(g, "mul", "scaled", 2, (const char *[]){"ht", "k"}, 1, (const char *[]){"hk"});
    }
    pq_graph_add_node(g, "add", "res", 2, (const char *[]){"h2", maxpow_variant ? "hk" : "ht"}, 1, (const char *[]){"hs"});
    pq_graph_add_node(g, "minimum", "capped", 2, (const char *[]){"hs", "cap"}, 1, (const char *[]){"hc"});
    PqNode *mx = pq_graph_add_node(g, maxpow_variant ? "reduce_min" : "reduce_max", "pool", 1, (const char *[]){"hc"}, 1, (const char *[]){"p"});
    pq_node_set_ints(mx, "axes", 1, (const int64_t[]){1});
    pq_node_set_int(mx, "keepdims", 0);
    pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"p", "w2", "b2"}, 1, (const char *[]){"z"});
    pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
    pq_graph_add_output(g, "y");
    float x[N * 12];
    guint8 labels[N];
    GRand *r = g_rand_new_with_seed(87);
    for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
    for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
    g_rand_free(r);
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    assert_backend_loss(m, names, G_N_ELEMENTS(names), maxpow_loss, x, labels, N);
    g_assert_cmpint(check_first_step(m, names, 4, maxpow_loss, x, labels, N), >, 30);
  }
}

/* x [3 tokens, 4] → fc1 (4 → 5, per token) → tanh → mean over the tokens → fc2 (5 → 3) → cross-entropy, in
 * double. p: w1 [20], b1 [5], w2 [15], b2 [3]. */
static double pool_net_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *w1 = p, *b1 = w1 + 20, *w2 = b1 + 5, *b2 = w2 + 15;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double pooled[5] = {0};
    for (int t = 0; t < 3; t++)
      for (int o = 0; o < 5; o++) {
        double h = b1[o];
        for (int i = 0; i < 4; i++) h += w1[o * 4 + i] * x[(r * 3 + t) * 4 + i];
        pooled[o] += tanh(h) / 3;
      }
    loss += dense_ce(w2, b2, pooled, 5, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through reduce_mean (pooling over tokens): every weight's first Adam step. */
static void test_finetune_mean_pool(void) {
  enum { N = 20 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[3] = {-1, 3, 4}, w1s[2] = {5, 4}, v5[1] = {5}, w2s[2] = {3, 5}, v3[1] = {3}, ax[1] = {1};
  pq_graph_add_input(g, "x", 3, xs);
  PqTensor *ts[4] = {pq_test_random_tensor("w1", 2, w1s, 71, 1.0f), pq_test_random_tensor("b1", 1, v5, 72, 0.2f),
                     pq_test_random_tensor("w2", 2, w2s, 73, 1.0f), pq_test_random_tensor("b2", 1, v3, 74, 0.1f)};
  for (int i = 0; i < 4; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"h"});
  pq_graph_add_node(g, "tanh", "act", 1, (const char *[]){"h"}, 1, (const char *[]){"a"});
  PqNode *pool = pq_graph_add_node(g, "reduce_mean", "pool", 1, (const char *[]){"a"}, 1, (const char *[]){"p"});
  pq_node_set_ints(pool, "axes", 1, ax);
  pq_node_set_int(pool, "keepdims", 0);
  pq_graph_add_node(g, "linear", "fc2", 3, (const char *[]){"p", "w2", "b2"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 12];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(31);
  for (int i = 0; i < N * 12; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
  g_rand_free(r);
  const char *names[4] = {"w1", "b1", "w2", "b2"};
  g_assert_cmpint(check_first_step(m, names, 4, pool_net_loss, x, labels, N), >, 30);
}

/* A one-head attention block, in double: x [4 tokens, 6] + pos; q, k, v = linear (6 → 6, no bias); scores
 * q·kᵀ · (−0.4), softmax over keys, times v; + the block's input (residual); layer_norm; the class token: a fixed
 * row [1, 6] joined before the tokens, taken back out (slice of row 0) and flattened; fc (6 → 3); cross-entropy.
 * p: pos [24], wq, wk, wv [36 each], ln scale [6], bias [6], wf [18], bf [3]. */
static const float attn_cls[6] = {0.3f, -0.2f, 0.5f, 0.1f, -0.4f, 0.2f};
static double attn_loss(const double *p, const float *x, const guint8 *labels, int n) {
  const double *pos = p, *wq = pos + 24, *wk = wq + 36, *wv = wk + 36, *sc = wv + 36, *bi = sc + 6, *wf = bi + 6, *bf = wf + 18;
  double loss = 0;
  for (int r = 0; r < n; r++) {
    double h[5][6], q[5][6], k[5][6], v[5][6], a[5][5], o[5][6];
    for (int j = 0; j < 6; j++) h[0][j] = attn_cls[j]; /* the class token first */
    for (int t = 0; t < 4; t++)
      for (int j = 0; j < 6; j++) h[t + 1][j] = x[r * 24 + t * 6 + j] + pos[t * 6 + j];
    for (int t = 0; t < 5; t++)
      for (int j = 0; j < 6; j++) {
        q[t][j] = k[t][j] = v[t][j] = 0;
        for (int i = 0; i < 6; i++) q[t][j] += wq[j * 6 + i] * h[t][i], k[t][j] += wk[j * 6 + i] * h[t][i], v[t][j] += wv[j * 6 + i] * h[t][i];
      }
    for (int t = 0; t < 5; t++) {
      double m = -INFINITY, sum = 0;
      for (int u = 0; u < 5; u++) {
        a[t][u] = 0;
        for (int j = 0; j < 6; j++) a[t][u] += q[t][j] * k[u][j];
        a[t][u] *= -0.4;
        m = fmax(m, a[t][u]);
      }
      for (int u = 0; u < 5; u++) sum += (a[t][u] = exp(a[t][u] - m));
      for (int u = 0; u < 5; u++) a[t][u] /= sum;
      for (int j = 0; j < 6; j++) {
        o[t][j] = h[t][j];
        for (int u = 0; u < 5; u++) o[t][j] += a[t][u] * v[u][j];
      }
    }
    double mean = 0, var = 0, c[6];
    for (int j = 0; j < 6; j++) mean += o[0][j];
    mean /= 6;
    for (int j = 0; j < 6; j++) var += (o[0][j] - mean) * (o[0][j] - mean);
    for (int j = 0; j < 6; j++) c[j] = (o[0][j] - mean) / sqrt(var / 6 + 1e-5) * sc[j] + bi[j];
    loss += dense_ce(wf, bf, c, 6, 3, labels[r]);
  }
  return loss / n;
}

/* Fine-tuning through an attention block: matmuls of two activations, a transpose, a softmax inside, a scale,
 * a positional embedding (an add of a model tensor, trained), a class token (a concat of a model tensor, kept),
 * a slice, layer_norm and the residual add; every trained weight's first Adam step against central
 * differences in double. */
static void test_finetune_attention(void) {
  enum { N = 16 };
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[3] = {-1, 4, 6}, ps[3] = {1, 4, 6}, sq[2] = {6, 6}, v6[1] = {6}, wfs[2] = {3, 6}, v3[1] = {3}, one[1] = {1}, cs[3] = {1, 1, 6};
  pq_graph_add_input(g, "x", 3, xs);
  PqTensor *ts[8] = {pq_test_random_tensor("pos", 3, ps, 51, 0.3f), pq_test_random_tensor("wq", 2, sq, 52, 0.5f),
                     pq_test_random_tensor("wk", 2, sq, 53, 0.5f), pq_test_random_tensor("wv", 2, sq, 54, 0.5f),
                     pq_test_random_tensor("sc", 1, v6, 55, 1.0f), pq_test_random_tensor("bi", 1, v6, 56, 0.2f),
                     pq_test_random_tensor("wf", 2, wfs, 57, 0.5f), pq_test_random_tensor("bf", 1, v3, 58, 0.1f)};
  for (int i = 0; i < 8; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  PqTensor *scale = pq_tensor_new("scale", PQ_DTYPE_F32, 1, one), *cls = pq_tensor_new("cls", PQ_DTYPE_F32, 3, cs);
  *(float *)pq_tensor_mutable_data(scale) = -0.4f; /* negative: a scaling lost in the backward pass would flip signs */
  memcpy(pq_tensor_mutable_data(cls), attn_cls, sizeof attn_cls);
  pq_model_set_tensor(m, scale);
  pq_model_set_tensor(m, cls);
  pq_tensor_unref(scale);
  pq_tensor_unref(cls);
  int64_t perm[3] = {0, 2, 1}, s0[1] = {0}, e1[1] = {1}, a1[1] = {1}, st1[1] = {1}, flat[2] = {0, 6};
  pq_graph_add_node(g, "add", "pos_add", 2, (const char *[]){"x", "pos"}, 1, (const char *[]){"xp"});
  pq_node_set_int(pq_graph_add_node(g, "concat", "cls_cat", 2, (const char *[]){"cls", "xp"}, 1, (const char *[]){"h"}), "axis", 1);
  pq_graph_add_node(g, "linear", "q", 2, (const char *[]){"h", "wq"}, 1, (const char *[]){"q"});
  pq_graph_add_node(g, "linear", "k", 2, (const char *[]){"h", "wk"}, 1, (const char *[]){"k"});
  pq_graph_add_node(g, "linear", "v", 2, (const char *[]){"h", "wv"}, 1, (const char *[]){"v"});
  pq_node_set_ints(pq_graph_add_node(g, "transpose", "kt", 1, (const char *[]){"k"}, 1, (const char *[]){"kt"}), "perm", 3, perm);
  pq_graph_add_node(g, "matmul", "scores", 2, (const char *[]){"q", "kt"}, 1, (const char *[]){"s"});
  pq_graph_add_node(g, "mul", "scaled", 2, (const char *[]){"s", "scale"}, 1, (const char *[]){"s2"});
  pq_node_set_int(pq_graph_add_node(g, "softmax", "attn", 1, (const char *[]){"s2"}, 1, (const char *[]){"a"}), "axis", -1);
  pq_graph_add_node(g, "matmul", "mix", 2, (const char *[]){"a", "v"}, 1, (const char *[]){"o"});
  pq_graph_add_node(g, "add", "res", 2, (const char *[]){"o", "h"}, 1, (const char *[]){"r"});
  PqNode *sl = pq_graph_add_node(g, "slice", "take_cls", 1, (const char *[]){"r"}, 1, (const char *[]){"c0"});
  pq_node_set_ints(sl, "starts", 1, s0), pq_node_set_ints(sl, "ends", 1, e1), pq_node_set_ints(sl, "axes", 1, a1), pq_node_set_ints(sl, "steps", 1, st1);
  pq_node_set_ints(pq_graph_add_node(g, "reshape", "flat", 1, (const char *[]){"c0"}, 1, (const char *[]){"c"}), "shape", 2, flat);
  pq_graph_add_node(g, "layer_norm", "ln", 3, (const char *[]){"c", "sc", "bi"}, 1, (const char *[]){"n"});
  pq_graph_add_node(g, "linear", "fc", 3, (const char *[]){"n", "wf", "bf"}, 1, (const char *[]){"z"});
  pq_graph_add_node(g, "softmax", "sm", 1, (const char *[]){"z"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  float x[N * 24];
  guint8 labels[N];
  GRand *r = g_rand_new_with_seed(23);
  for (int i = 0; i < N * 24; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  for (int i = 0; i < N; i++) labels[i] = (guint8)g_rand_int_range(r, 0, 3);
  g_rand_free(r);
  const char *names[8] = {"pos", "wq", "wk", "wv", "sc", "bi", "wf", "bf"};
  g_assert_cmpint(check_first_step(m, names, 8, attn_loss, x, labels, N), >, 100);
}

/* A small CNN: x [-1, 2, 8, 8] → conv 3x3 (4 channels, pad 1) → batch_norm → relu → maxpool 2 (or avgpool 3
 * stride 2 pad 1, then global_avg_pool) → flatten → linear 10 → softmax. */
static PqModel *small_cnn(gboolean avg, guint32 seed) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 2, 8, 8}, ws[4] = {4, 2, 3, 3}, c4[1] = {4}, wl[2] = {10, avg ? 4 : 4 * 4 * 4}, bl[1] = {10};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *t[8] = {pq_test_random_tensor("cw", 4, ws, seed, 0.5f), pq_test_random_tensor("cb", 1, c4, seed + 1, 0.1f),
                    pq_test_random_tensor("g", 1, c4, seed + 2, 1), pq_test_random_tensor("be", 1, c4, seed + 3, 0.2f),
                    pq_test_random_tensor("mu", 1, c4, seed + 4, 0.2f), pq_test_random_tensor("var", 1, c4, seed + 5, 1),
                    pq_test_random_tensor("lw", 2, wl, seed + 6, 0.5f), pq_test_random_tensor("lb", 1, bl, seed + 7, 0.1f)};
  float *var = pq_tensor_mutable_data(t[5]);
  for (int i = 0; i < 4; i++) var[i] = fabsf(var[i]) + 0.5f;
  for (int i = 0; i < 8; i++) {
    pq_model_set_tensor(m, t[i]);
    pq_tensor_unref(t[i]);
  }
  int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2}, k3[2] = {3, 3}, s2[2] = {2, 2};
  const char *n1[3] = {"x", "cw", "cb"}, *o1[1] = {"c"}, *n2[5] = {"c", "g", "be", "mu", "var"}, *o2[1] = {"bn"}, *n3[1] = {"bn"},
             *o3[1] = {"r"}, *n4[1] = {"r"}, *o4[1] = {"p"}, *n5[1] = {"p"}, *o5[1] = {"gap"}, *n6[1] = {avg ? "gap" : "p"}, *o6[1] = {"f"},
             *n7[3] = {"f", "lw", "lb"}, *o7[1] = {"l"}, *n8[1] = {"l"}, *o8[1] = {"y"};
  pq_node_set_ints(pq_graph_add_node(g, "conv2d", "conv", 3, n1, 1, o1), "pads", 4, pads);
  pq_graph_add_node(g, "batch_norm", "bn", 5, n2, 1, o2);
  pq_graph_add_node(g, "relu", "relu", 1, n3, 1, o3);
  PqNode *pool = pq_graph_add_node(g, avg ? "avgpool2d" : "maxpool2d", "pool", 1, n4, 1, o4);
  pq_node_set_ints(pool, "kernel", 2, avg ? k3 : k2);
  if (avg) {
    pq_node_set_ints(pool, "strides", 2, s2);
    pq_node_set_ints(pool, "pads", 4, pads);
    pq_graph_add_node(g, "global_avg_pool", "gap", 1, n5, 1, o5);
  }
  pq_graph_add_node(g, "flatten", "flat", 1, n6, 1, o6);
  pq_graph_add_node(g, "linear", "fc", 3, n7, 1, o7);
  pq_graph_add_node(g, "softmax", "sm", 1, n8, 1, o8);
  pq_graph_add_output(g, "y");
  return m;
}

/* Fine-tuning through conv, batch_norm, pools and global average pooling: its forward pass gives the CPU
 * backend's loss exactly, and a factored CNN learns its teacher's labels back. */
static void test_finetune_cnn(void) {
  for (int avg = 0; avg < 2; avg++) {
    g_autoptr(PqModel) m = small_cnn(avg, 91);
    g_autofree float *x = NULL;
    g_autofree guint8 *labels = NULL;
    teacher_data(m, 512, 128, &x, &labels);
    const char *kv[] = {"rank", "1", NULL};
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) lr = compress(low_rank, m, kv, &err); /* conv 2·3·3 → 1 channel → 4: a crude student */
    g_assert_no_error(err);
    /* the loss its forward pass sees, from the CPU backend's outputs */
    g_autoptr(PqBackend) b = pq_backend_prepare(cpu, lr, 1, 512, NULL, &err);
    g_assert_no_error(err);
    g_autofree float *y = g_new(float, 512 * 10);
    g_assert_true(pq_backend_run_f32(b, x, 512, y, &err));
    double ce = 0;
    for (int i = 0; i < 512; i++) ce -= log(y[i * 10 + labels[i]]);
    ce /= 512;
    g_autoptr(PqModel) ft = pq_model_copy(lr);
    PqFinetuneParams p = {30, 32, 3e-3, 3, 1};
    PqFinetuneResult res;
    PqPluginError perr = {sizeof perr, 0, {0}};
    g_assert_cmpint(pq_finetune(ft, x, labels, 512, &p, &res, &perr), ==, 0);
    g_test_message("%s: loss %.4f (backend %.4f) -> %.4f, accuracy %.3f -> %.3f", avg ? "avgpool+gap" : "maxpool", res.loss_before, ce,
                   res.loss_after, res.accuracy_before, res.accuracy_after);
    g_assert_cmpfloat(fabs(res.loss_before - ce), <, 1e-4 * (1 + ce));
    g_assert_cmpfloat(res.loss_after, <, 0.8 * res.loss_before);
    g_assert_cmpfloat(res.accuracy_after, >, res.accuracy_before);
  }
}

static void test_pipeline(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(64, 48, 10, 31);
  g_autoptr(PqPipeline) p = pq_pipeline_new(reg);
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_pipeline_add_stage(p, low_rank, &err));
  g_assert_true(pq_pipeline_add_stage(p, quant, &err));
  g_assert_true(pq_pipeline_parse_option(p, "low_rank.rank=8", &err));
  g_assert_true(pq_pipeline_parse_option(p, "2.bits=6", &err));
  g_assert_no_error(err);
  const char *bad[][2] = {{"rank=8", "must read PLUGIN.KEY=VALUE"},
                          {"prune.amount=1", "no stage 'prune' in the chain (stages: 1 low_rank, 2 quant)"},
                          {"quant.bits=1", "quant: option \"bits\" = 1 is out of range [2, 8]"},
                          {"low_rank.ranq=8", "low_rank: unknown option \"ranq\""},
                          {"3.bits=4", "no stage '3'"}};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) e = NULL;
    g_assert_false(pq_pipeline_parse_option(p, bad[i][0], &e));
    if (!strstr(e->message, bad[i][1])) g_error("'%s' lacks '%s'", e->message, bad[i][1]);
  }
  g_autoptr(PqModel) out = pq_pipeline_run(p, m, &err);
  g_assert_no_error(err);
  /* stage numbers: low_rank 1 (fc1 factored, fc2 skipped), quant 2 */
  g_assert_cmpint(pq_model_record(out, 0)->stage, ==, 1);
  g_assert_cmpint(pq_model_record(out, pq_model_n_records(out) - 1)->stage, ==, 2);
  g_assert_cmpint(pq_tensor_bits(pq_model_tensor(out, "w1.lr_v")), ==, 6);
  g_assert_cmpint(pq_tensor_bits(pq_model_tensor(out, "w1.lr_u")), ==, 6);
  /* a config file: the same chain */
  g_autofree char *dir = pq_test_mkdtemp();
  const char *cfg = "{\"stages\": [{\"plugin\": \"low_rank\", \"options\": {\"rank\": 8}}, {\"plugin\": \"quant\", \"options\": {\"bits\": 6}}]}";
  g_autofree char *path = pq_test_write(dir, "chain.json", cfg, strlen(cfg));
  g_autoptr(PqPipeline) p2 = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_load_config(p2, path, &err));
  g_autoptr(PqModel) out2 = pq_pipeline_run(p2, m, &err);
  g_assert_no_error(err);
  g_assert_cmpmem(pq_tensor_data(pq_model_tensor(out2, "w1.lr_v")), pq_tensor_nbytes(pq_model_tensor(out2, "w1.lr_v")),
                  pq_tensor_data(pq_model_tensor(out, "w1.lr_v")), pq_tensor_nbytes(pq_model_tensor(out, "w1.lr_v")));
  const char *bad_cfgs[][2] = {
      {"{\"stages\": [{\"plugin\": \"nope\"}]}", "stages[0]: no compressor plugin named 'nope'"},
      {"{\"stages\": [{\"plugin\": \"quant\", \"options\": {\"bits\": 12}}]}", "stages[0]: quant: option \"bits\" = 12 is out of range"},
      {"{\"stages\": [{\"plugin\": \"quant\", \"options\": {\"bits\": [8]}}]}", "stages[0].options.bits must be"},
      {"{\"stage\": []}", "needs a \"stages\" array"},
      {"{\"stages\": [{\"plugin\": \"cpu\"}]}", "no compressor plugin named 'cpu'"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(bad_cfgs); i++) {
    g_autofree char *bp = pq_test_write(dir, "bad.json", bad_cfgs[i][0], strlen(bad_cfgs[i][0]));
    g_autoptr(PqPipeline) pb = pq_pipeline_new(reg);
    g_autoptr(GError) e = NULL;
    g_assert_false(pq_pipeline_load_config(pb, bp, &e));
    g_assert_nonnull(strstr(e->message, bp));
    if (!strstr(e->message, bad_cfgs[i][1])) g_error("'%s' lacks '%s'", e->message, bad_cfgs[i][1]);
  }
  /* an empty chain and an empty model are errors */
  g_autoptr(PqPipeline) empty = pq_pipeline_new(reg);
  g_assert_null(pq_pipeline_run(empty, m, &err));
  g_assert_nonnull(strstr(err->message, "no compressor stage"));
  g_clear_error(&err);
  g_autoptr(PqModel) nothing = pq_model_new();
  g_assert_null(pq_pipeline_run(p, nothing, &err));
  g_assert_nonnull(strstr(err->message, "graph is empty"));
  g_clear_error(&err);
  /* a stage taken out: the one after it moves up a number and keeps its options */
  g_assert_false(pq_pipeline_remove_stage(p2, 2));
  g_assert_true(pq_pipeline_remove_stage(p2, 0));
  g_assert_cmpuint(pq_pipeline_n_stages(p2), ==, 1);
  g_assert_true(pq_pipeline_stage_plugin(p2, 0) == quant);
  g_autofree char *left = pq_pipeline_to_json(p2);
  g_assert_nonnull(strstr(left, "\"bits\":6"));
  g_assert_null(strstr(left, "low_rank"));
  g_assert_true(pq_pipeline_set_option(p2, "1", "bits", "4", &err));
  g_autoptr(PqModel) out3 = pq_pipeline_run(p2, m, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_tensor_bits(pq_model_tensor(out3, "w1")), ==, 4);
  g_assert_cmpint(pq_model_record(out3, 0)->stage, ==, 1);
  pq_test_rmdir(dir);
}

/* Data-aware factoring preserves the layer's outputs on the calibration data better than plain SVD. */
static void test_data_aware(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqDataset) train = pq_dataset_open("fashion-mnist", "train", &err);
  if (!train) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 64, 10, 77);
  double out_err[2];
  for (int aware = 0; aware <= 1; aware++) {
    g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(low_rank), "low_rank", &err);
    pq_options_add_layer_selection(o, &err);
    pq_options_set(o, "rank", "8", &err);
    pq_options_set(o, "data_aware", aware ? "true" : "false", &err);
    g_autoptr(PqModel) lr = pq_compressor_run_full(low_rank, m, o, train, 256, cpu, &err);
    g_assert_no_error(err);
    if (aware) g_assert_nonnull(strstr(pq_model_record(lr, 0)->detail, "activation-whitened (256 samples)"));
    /* error of fc1's output on the first 256 training images */
    g_autoptr(PqModel) a = pq_model_copy(m), b = pq_model_copy(lr);
    pq_graph_add_output(pq_model_graph(a), "h");
    pq_graph_add_output(pq_model_graph(b), "h");
    g_autoptr(PqBackend) ba = pq_backend_prepare(cpu, a, 1, 256, NULL, &err), bb = pq_backend_prepare(cpu, b, 1, 256, NULL, &err);
    g_assert_no_error(err);
    g_autofree float *x = g_new(float, 256 * 784), *ya = g_new(float, 256 * 10), *yb = g_new(float, 256 * 10),
                     *ha = g_new(float, 256 * 64), *hb = g_new(float, 256 * 64);
    pq_dataset_get_batch(train, 0, 256, x, NULL);
    PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {256, 784}, x};
    PqTensorView oa[2] = {{sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {256, 10}, ya}, {sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {256, 64}, ha}};
    PqTensorView ob[2] = {{sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {256, 10}, yb}, {sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {256, 64}, hb}};
    g_assert_true(pq_backend_run(ba, &in, 1, oa, 2, &err));
    g_assert_true(pq_backend_run(bb, &in, 1, ob, 2, &err));
    pq_error_stats(ha, hb, 256 * 64, &out_err[aware], NULL);
  }
  g_test_message("fc1 output error: plain %.4f, activation-whitened %.4f", out_err[0], out_err[1]);
  g_assert_cmpfloat(out_err[1], <, out_err[0]);
  /* a conv is whitened by its input patches' covariance: rank 3 of a 8x1x5x5 kernel on images */
  int64_t xs[4] = {-1, 1, 28, 28}, ws[4] = {8, 1, 5, 5}, st[2] = {2, 2}, pads[4] = {2, 2, 2, 2};
  g_autoptr(PqModel) cm = pq_test_conv_model(xs, ws, st, pads, 12);
  g_autofree float *x = g_new(float, 100 * 784), *ya = g_new(float, 100 * 8 * 14 * 14), *yb = g_new(float, 100 * 8 * 14 * 14);
  pq_dataset_get_batch(train, 1000, 100, x, NULL);
  for (int aware = 0; aware <= 1; aware++) {
    g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(low_rank), "low_rank", &err);
    pq_options_add_layer_selection(o, &err);
    pq_options_set(o, "rank", "3", &err);
    pq_options_set(o, "data_aware", aware ? "true" : "false", &err);
    g_autoptr(PqModel) lr = pq_compressor_run_full(low_rank, cm, o, train, 256, cpu, &err);
    g_assert_no_error(err);
    g_assert_true((strstr(pq_model_record(lr, 0)->detail, "activation-whitened (256 samples)") != NULL) == aware);
    g_autoptr(PqBackend) ba = pq_backend_prepare(cpu, cm, 1, 100, NULL, &err), bb = pq_backend_prepare(cpu, lr, 1, 100, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(pq_backend_run_f32(ba, x, 100, ya, &err));
    g_assert_true(pq_backend_run_f32(bb, x, 100, yb, &err));
    pq_error_stats(ya, yb, 100 * 8 * 14 * 14, &out_err[aware], NULL);
  }
  g_test_message("conv output error on held-out images: plain %.4f, activation-whitened %.4f", out_err[0], out_err[1]);
  g_assert_cmpfloat(out_err[1], <, out_err[0]);
  /* Tucker-2 of a conv over 8 channels of features of those images (a fixed 1 -> 8 conv and a ReLU before it) */
  g_autoptr(PqModel) tm = pq_model_new();
  PqGraph *g = pq_model_graph(tm);
  int64_t w1s[4] = {8, 1, 3, 3}, b1s[1] = {8}, w2s[4] = {12, 8, 3, 3}, b2s[1] = {12}, one[2] = {1, 1}, p1[4] = {1, 1, 1, 1};
  PqTensor *tt[4] = {pq_test_random_tensor("w1", 4, w1s, 31, 1), pq_test_random_tensor("b1", 1, b1s, 32, 0.2f), pq_test_random_tensor("cw", 4, w2s, 33, 1),
                     pq_test_random_tensor("b2", 1, b2s, 34, 0.2f)};
  for (int i = 0; i < 4; i++) {
    pq_model_set_tensor(tm, tt[i]);
    pq_tensor_unref(tt[i]);
  }
  pq_graph_add_input(g, "x", 4, xs);
  pq_node_set_ints(pq_graph_add_node(g, "conv2d", "feat", 3, (const char *[]){"x", "w1", "b1"}, 1, (const char *[]){"f"}), "pads", 4, p1);
  pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"f"}, 1, (const char *[]){"r"});
  PqNode *cn = pq_graph_add_node(g, "conv2d", "conv", 3, (const char *[]){"r", "cw", "b2"}, 1, (const char *[]){"y"});
  pq_node_set_ints(cn, "pads", 4, p1);
  pq_node_set_ints(cn, "strides", 2, one);
  pq_graph_add_output(g, "y");
  g_autofree float *ta = g_new(float, 100 * 12 * 28 * 28), *tb = g_new(float, 100 * 12 * 28 * 28);
  for (int aware = 0; aware <= 1; aware++) {
    g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(tucker), "tucker", &err);
    pq_options_add_layer_selection(o, &err);
    pq_options_set(o, "include", "conv", &err);
    pq_options_set(o, "rank_in", "3", &err);
    pq_options_set(o, "rank_out", "4", &err);
    pq_options_set(o, "data_aware", aware ? "true" : "false", &err);
    g_autoptr(PqModel) tk = pq_compressor_run_full(tucker, tm, o, train, 256, cpu, &err);
    g_assert_no_error(err);
    const PqLayerRecord *rec = NULL;
    for (guint i = 0; i < pq_model_n_records(tk); i++)
      if (!strcmp(pq_model_record(tk, i)->layer, "conv")) rec = pq_model_record(tk, i);
    g_assert_nonnull(rec);
    g_assert_true((strstr(rec->detail, ", activation-whitened (256 samples)") != NULL) == aware);
    g_autoptr(PqBackend) ba = pq_backend_prepare(cpu, tm, 1, 100, NULL, &err), bb = pq_backend_prepare(cpu, tk, 1, 100, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(pq_backend_run_f32(ba, x, 100, ta, &err));
    g_assert_true(pq_backend_run_f32(bb, x, 100, tb, &err));
    pq_error_stats(ta, tb, 100 * 12 * 28 * 28, &out_err[aware], NULL);
  }
  /* ranks by energy are those of the whitened unfoldings with data_aware: the directions the data uses */
  char details[2][256];
  for (int aware = 0; aware <= 1; aware++) {
    g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(tucker), "tucker", &err);
    pq_options_add_layer_selection(o, &err);
    pq_options_set(o, "include", "conv", &err);
    pq_options_set(o, "energy", "0.95", &err);
    pq_options_set(o, "data_aware", aware ? "true" : "false", &err);
    g_autoptr(PqModel) tk = pq_compressor_run_full(tucker, tm, o, train, 256, cpu, &err);
    g_assert_no_error(err);
    for (guint i = 0; i < pq_model_n_records(tk); i++)
      if (!strcmp(pq_model_record(tk, i)->layer, "conv")) g_strlcpy(details[aware], pq_model_record(tk, i)->detail, sizeof details[aware]);
  }
  g_test_message("energy 0.95: %s | %s", details[0], details[1]);
  g_assert_nonnull(strstr(details[0], "would not shrink")); /* the weights' own spectrum: nearly every channel */
  g_assert_nonnull(strstr(details[1], "activation-whitened")); /* the outputs': few */
  g_test_message("Tucker (3, 4) output error on held-out images: plain %.4f, activation-whitened %.4f", out_err[0], out_err[1]);
  g_assert_cmpfloat(out_err[1], <, 0.8 * out_err[0]);
  /* without calibration data it says what it needs */
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(tucker), "tucker", &err);
  pq_options_add_layer_selection(o, &err);
  pq_options_set(o, "data_aware", "true", &err);
  g_assert_null(pq_compressor_run_full(tucker, tm, o, NULL, 0, cpu, &err));
  g_assert_nonnull(strstr(err->message, "'tucker' needs calibration samples"));
}

/* Σ_rows (w − q)ᵀ G (w − q) in double: the squared output error on inputs whose Gram matrix is G. */
static double gram_error(const float *w, const float *q, const float *g, int64_t n, int64_t k) {
  double e = 0;
  for (int64_t r = 0; r < n; r++)
    for (int64_t i = 0; i < k; i++)
      for (int64_t j = 0; j < k; j++) e += ((double)w[r * k + i] - q[r * k + i]) * g[i * k + j] * ((double)w[r * k + j] - q[r * k + j]);
  return e;
}

/* GPTQ against its definition: with G = I no error has anywhere to go, so every code is round-to-nearest's;
 * with correlated inputs its output error is well below round-to-nearest's; a column no input reaches
 * is 0; a Gram matrix that is not positive definite, or holds NaN, is refused by name. */
static void test_gptq_matrix(void) {
  enum { N = 24, K = 64, S = 300 };
  int64_t sh[2] = {N, K};
  g_autoptr(PqTensor) wt = pq_test_random_tensor("w", 2, sh, 21, 1);
  const float *w = pq_tensor_data(wt);
  PqPluginError e = {sizeof e, 0, {0}};
  g_autofree float *eye = g_new0(float, K * K), *g = g_new0(float, K * K), *x = g_new(float, S * K);
  for (int i = 0; i < K; i++) eye[i * K + i] = 1.0f;
  const struct {
    PqQuantScheme scheme;
    int64_t group;
    int symmetric, clip, act_order;
  } forms[] = {{PQ_QUANT_PER_CHANNEL, 0, 1, 20, 0}, {PQ_QUANT_PER_GROUP, 16, 1, 0, 0}, {PQ_QUANT_PER_GROUP, 16, 0, 10, 1},
               {PQ_QUANT_PER_TENSOR, 0, 1, 5, 1}, {PQ_QUANT_PER_CHANNEL, 0, 0, 0, 1}};
  for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
    g_autoptr(PqTensor) rtn = pq_quantize_matrix("w", w, 2, sh, 3, forms[f].scheme, forms[f].group, forms[f].symmetric, forms[f].clip, &e);
    g_autoptr(PqTensor) gq = pq_quantize_matrix_gptq("w", w, 2, sh, 3, forms[f].scheme, forms[f].group, forms[f].symmetric, forms[f].clip,
                                                     eye, 0.0, forms[f].act_order, &e);
    g_assert_nonnull(gq);
    g_assert_cmpuint(pq_tensor_nbytes(gq), ==, pq_tensor_nbytes(rtn));
    g_assert_cmpmem(pq_tensor_data(gq), pq_tensor_nbytes(gq), pq_tensor_data(rtn), pq_tensor_nbytes(rtn));
    g_assert_cmpmem(pq_tensor_data(pq_tensor_scales(gq)), pq_tensor_nbytes(pq_tensor_scales(gq)), pq_tensor_data(pq_tensor_scales(rtn)),
                    pq_tensor_nbytes(pq_tensor_scales(rtn)));
  }
  /* inputs with strongly correlated columns: x_j = common + small own part */
  GRand *r = g_rand_new_with_seed(5);
  for (int s = 0; s < S; s++) {
    float common = (float)g_rand_double_range(r, -1, 1);
    for (int j = 0; j < K; j++) x[s * K + j] = common * (1.0f + 0.02f * (float)j) + 0.2f * (float)g_rand_double_range(r, -1, 1);
  }
  g_rand_free(r);
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, K, S, 1.0f / S, x, K, 0.0f, g, K);
  for (int i = 0; i < K; i++)
    for (int j = 0; j < i; j++) g[j * K + i] = g[i * K + j];
  float back_r[N * K], back_g[N * K];
  for (int order = 0; order <= 1; order++)
    for (int scheme = 1; scheme <= 2; scheme++) {
      g_autoptr(PqTensor) rtn = pq_quantize_matrix("w", w, 2, sh, 3, (PqQuantScheme)scheme, 16, 1, 20, &e);
      g_autoptr(PqTensor) gq = pq_quantize_matrix_gptq("w", w, 2, sh, 3, (PqQuantScheme)scheme, 16, 1, 20, g, 0.01, order, &e);
      g_assert_nonnull(gq);
      pq_tensor_to_f32(rtn, back_r);
      pq_tensor_to_f32(gq, back_g);
      double er = gram_error(w, back_r, g, N, K), eg = gram_error(w, back_g, g, N, K);
      g_test_message("scheme %d act_order %d: output error GPTQ %.4g, round to nearest %.4g", scheme, order, eg, er);
      g_assert_cmpfloat(eg, <, 0.5 * er);
    }
  /* column 7 never sees an input */
  g_autofree float *gd = g_memdup2(g, sizeof(float) * K * K);
  for (int i = 0; i < K; i++) gd[i * K + 7] = gd[7 * K + i] = 0.0f;
  g_autoptr(PqTensor) dead = pq_quantize_matrix_gptq("w", w, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, gd, 0.01, 1, &e);
  g_assert_nonnull(dead);
  pq_tensor_to_f32(dead, back_g);
  for (int i = 0; i < N; i++) g_assert_cmpfloat(back_g[i * K + 7], ==, 0.0f);
  /* refusals */
  g_autofree float *bad = g_new0(float, K * K);
  for (int i = 0; i < K; i++) bad[i * K + i] = 1.0f;
  bad[1] = bad[K] = 3.0f; /* [[1, 3], [3, 1]]: indefinite */
  g_assert_null(pq_quantize_matrix_gptq("w", w, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, bad, 0.0, 0, &e));
  g_assert_nonnull(strstr(e.message, "'w': the inputs' Gram matrix is not positive definite"));
  bad[1] = bad[K] = NAN;
  g_assert_null(pq_quantize_matrix_gptq("w", w, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, bad, 0.01, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': the Gram matrix holds a non-finite value at 1");
  g_assert_null(pq_quantize_matrix_gptq("w", w, 2, sh, 4, PQ_QUANT_PER_GROUP, 10, 1, 0, eye, 0.01, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': group size 10 does not divide the row length 64");
  g_assert_null(pq_quantize_matrix_gptq("w", w, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, eye, -1.0, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': damping -1 is negative");
  /* a non-finite weight, found where it is, in GPTQ as in round-to-nearest */
  g_autofree float *w_inf = g_memdup2(w, sizeof(float) * (size_t)pq_tensor_numel(wt));
  w_inf[5 * K + 3] = -INFINITY;
  g_assert_null(pq_quantize_matrix_gptq("w", w_inf, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, eye, 0.01, 0, &e));
  g_assert_cmpstr(e.message, ==, "'w': element 323 is infinite");
}

static PqDataset *train_set(void) {
  g_autoptr(GError) err = NULL;
  PqDataset *d = pq_dataset_open("fashion-mnist", "train", &err);
  if (!d) g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
  return d;
}

/* The model a chain started from is what a stage sees as the original (its teacher for distillation):
 * finetune distill 1 on a rank-2 model starts in full agreement with the rank-2 model itself (pq_pipeline_run)
 * and short of it with the model it was made from (pq_pipeline_run_from, as pqrun tune's fallback levels run). */
static void test_pipeline_original(void) {
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  g_autoptr(GError) err = NULL;
  PqPlugin *ft = pq_registry_load(reg, FINETUNE_PLUGIN, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 32, 10, 41);
  const char *kv[] = {"rank", "2", NULL};
  g_autoptr(PqModel) lr = compress(low_rank, m, kv, &err);
  g_assert_no_error(err);
  g_autoptr(PqPipeline) p = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(p, ft, &err));
  g_assert_true(pq_pipeline_parse_option(p, "finetune.distill=1", &err) && pq_pipeline_parse_option(p, "finetune.samples=256", &err) &&
                pq_pipeline_parse_option(p, "finetune.epochs=1", &err));
  pq_pipeline_set_calibration(p, train, 256);
  g_assert_false(pq_pipeline_parse_option(p, "finetune.learning_rate=0", &err)); /* refused by the schema, not later */
  g_assert_nonnull(strstr(err->message, "option \"learning_rate\" = 0 is out of range"));
  g_clear_error(&err);
  for (int from = 0; from < 2; from++) {
    g_autoptr(PqModel) out = from ? pq_pipeline_run_from(p, lr, m, &err) : pq_pipeline_run(p, lr, &err);
    g_assert_no_error(err);
    const char *d = pq_model_record(out, pq_model_n_records(out) - 1)->detail, *ag = strstr(d, "agreement with the original on them ");
    g_assert_nonnull(ag);
    double before = g_ascii_strtod(ag + strlen("agreement with the original on them "), NULL);
    g_test_message("%s: %s", from ? "from the original" : "from itself", d);
    if (from) g_assert_cmpfloat(before, <, 90.0);
    else g_assert_cmpfloat(before, ==, 100.0);
  }
}

/* The per-feature means of `value` over the first n samples of x (rows of 784), run through `m`. */
static double *value_means(const PqModel *m, const char *value, const float *x, int64_t n, int64_t width) {
  g_autoptr(PqModel) probe = pq_model_copy(m);
  PqGraph *g = pq_model_graph(probe);
  pq_graph_add_output(g, value);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, probe, 1, n, NULL, &err);
  g_assert_no_error(err);
  g_autofree float *y = g_new(float, n * 10), *v = g_new(float, n * width);
  PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {n, 784}, (void *)x};
  PqTensorView outs[2] = {{sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {n, 10}, y}, {sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {n, width}, v}};
  g_assert_true(pq_backend_run(b, &in, 1, outs, 2, &err));
  g_assert_no_error(err);
  double *mean = g_new0(double, width);
  for (int64_t s = 0; s < n; s++)
    for (int64_t c = 0; c < width; c++) mean[c] += v[s * width + c] / (double)n;
  return mean;
}

/* A CNN whose channels between layers pass through every op equalize takes: conv1 → relu → maxpool → conv2
 * (groups 2) → leaky_relu → pad2d → flatten → fc1 → prelu → fc2 (no bias, the output). Every third row of
 * conv1 and fc1 is 30 times wider than the rest and the next layer's columns for it 30 times narrower: the
 * same function as the model without, with the lopsided ranges a per-tensor grid suffers from. */
static PqModel *equalize_cnn(void) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 3, 8, 8};
  pq_graph_add_input(g, "x", 4, xs);
  struct {
    const char *name;
    int nd;
    int64_t shape[4];
    float scale;
  } ts[] = {{"c1w", 4, {8, 3, 3, 3}, 0.5f}, {"c1b", 1, {8}, 0.1f},  {"c2w", 4, {6, 4, 3, 3}, 0.5f}, {"c2b", 1, {6}, 0.1f},
            {"f1w", 2, {12, 216}, 0.2f},    {"f1b", 1, {12}, 0.1f}, {"slope", 1, {12}, 0.3f},         {"f2w", 2, {5, 12}, 0.5f}};
  for (guint i = 0; i < G_N_ELEMENTS(ts); i++) {
    PqTensor *t = pq_test_random_tensor(ts[i].name, ts[i].nd, ts[i].shape, 300 + i, ts[i].scale);
    float *v = pq_tensor_mutable_data(t);
    int64_t per = pq_tensor_numel(t) / ts[i].shape[0];
    if (!strcmp(ts[i].name, "c1w") || !strcmp(ts[i].name, "f1w") || !strcmp(ts[i].name, "c1b") || !strcmp(ts[i].name, "f1b"))
      for (int64_t r = 0; r < ts[i].shape[0]; r += 3)
        for (int64_t j = 0; j < per; j++) v[r * per + j] *= 30.0f;
    if (!strcmp(ts[i].name, "c2w")) /* [6, 4, 3, 3], groups 2: input channel c is column c % 4 of the rows of group c / 4 */
      for (int64_t c = 0; c < 8; c += 3)
        for (int64_t o = c / 4 * 3; o < c / 4 * 3 + 3; o++)
          for (int64_t t2 = 0; t2 < 9; t2++) v[(o * 4 + c % 4) * 9 + t2] /= 30.0f;
    if (!strcmp(ts[i].name, "f2w"))
      for (int64_t o = 0; o < 5; o++)
        for (int64_t c = 0; c < 12; c += 3) v[o * 12 + c] /= 30.0f;
    pq_model_set_tensor(m, t);
    pq_tensor_unref(t);
  }
  const int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
  pq_node_set_ints(pq_graph_add_node(g, "conv2d", "conv1", 3, (const char *[]){"x", "c1w", "c1b"}, 1, (const char *[]){"a1"}), "pads", 4, pads);
  pq_graph_add_node(g, "relu", "relu1", 1, (const char *[]){"a1"}, 1, (const char *[]){"a2"});
  pq_node_set_ints(pq_graph_add_node(g, "maxpool2d", "pool", 1, (const char *[]){"a2"}, 1, (const char *[]){"a3"}), "kernel", 2, k2);
  PqNode *c2 = pq_graph_add_node(g, "conv2d", "conv2", 3, (const char *[]){"a3", "c2w", "c2b"}, 1, (const char *[]){"b1"});
  pq_node_set_ints(c2, "pads", 4, pads);
  pq_node_set_int(c2, "groups", 2);
  pq_node_set_float(pq_graph_add_node(g, "leaky_relu", "lrelu", 1, (const char *[]){"b1"}, 1, (const char *[]){"b2"}), "alpha", 0.1);
  pq_node_set_ints(pq_graph_add_node(g, "pad2d", "pad", 1, (const char *[]){"b2"}, 1, (const char *[]){"b3"}), "pads", 4, pads);
  pq_graph_add_node(g, "flatten", "flat", 1, (const char *[]){"b3"}, 1, (const char *[]){"b4"});
  pq_graph_add_node(g, "linear", "fc1", 3, (const char *[]){"b4", "f1w", "f1b"}, 1, (const char *[]){"c1"});
  pq_graph_add_node(g, "prelu", "prelu", 2, (const char *[]){"c1", "slope"}, 1, (const char *[]){"c2"});
  pq_graph_add_node(g, "linear", "fc2", 2, (const char *[]){"c2", "f2w"}, 1, (const char *[]){"y"});
  pq_graph_add_output(g, "y");
  return m;
}

/* The largest |w| of each of `t`'s rows (b = 0), or over each input channel of its columns (b = 1: a
 * conv's, with `groups`; a linear's, `inner` columns a channel). */
static double channel_range(const PqTensor *t, int b, int64_t ch, int64_t groups, int64_t inner) {
  const float *w = pq_tensor_data(t);
  const int64_t *s = pq_tensor_shape(t);
  int64_t rows = s[0], per = pq_tensor_numel(t) / rows, r = 0;
  double top = 0;
  if (!b) {
    for (int64_t j = 0; j < per; j++) top = fmax(top, fabsf(w[ch * per + j]));
    return top;
  }
  int64_t in = s[1], khw = per / in, out_per = rows / groups, grp = pq_tensor_ndim(t) == 4 ? ch / in : 0;
  for (int64_t o = grp * out_per; o < (pq_tensor_ndim(t) == 4 ? grp + 1 : 1) * out_per; o++, r++)
    for (int64_t j = 0; j < per; j++) {
      int64_t col = j / khw;
      if (pq_tensor_ndim(t) == 4 ? col == ch % in : col / inner == ch) top = fmax(top, fabsf(w[o * per + j]));
    }
  return top;
}

/* conv1 (no bias) → bn1 → relu → conv2 → bn2 → y: batch norms with their own statistics (variances 0.1–1.1). */
static PqModel *batch_norm_cnn(void) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 3, 6, 6}, w1[4] = {4, 3, 3, 3}, w2[4] = {5, 4, 3, 3}, c4[1] = {4}, c5[1] = {5};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *ts[] = {pq_test_random_tensor("w1", 4, w1, 71, 0.5f), pq_test_random_tensor("w2", 4, w2, 72, 0.5f),
                    pq_test_random_tensor("b2", 1, c5, 73, 0.1f)};
  for (guint i = 0; i < G_N_ELEMENTS(ts); i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  const char *stat[4] = {"scale", "bias", "mean", "var"};
  for (int b = 1; b <= 2; b++)
    for (int k = 0; k < 4; k++) {
      char name[32];
      snprintf(name, sizeof name, "bn%d.%s", b, stat[k]);
      PqTensor *t = pq_test_random_tensor(name, 1, b == 1 ? c4 : c5, 80 + 4 * b + k, 0.5f);
      float *v = pq_tensor_mutable_data(t);
      for (int64_t c = 0; c < pq_tensor_numel(t); c++) v[c] = k == 3 ? fabsf(v[c]) * 2 + 0.1f : k == 0 ? v[c] + 1.0f : v[c];
      pq_model_set_tensor(m, t);
      pq_tensor_unref(t);
    }
  const int64_t pads[4] = {1, 1, 1, 1};
  pq_node_set_ints(pq_graph_add_node(g, "conv2d", "conv1", 2, (const char *[]){"x", "w1"}, 1, (const char *[]){"a"}), "pads", 4, pads);
  pq_graph_add_node(g, "batch_norm", "bn1", 5, (const char *[]){"a", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"}, 1, (const char *[]){"an"});
  pq_graph_add_node(g, "relu", "relu", 1, (const char *[]){"an"}, 1, (const char *[]){"ar"});
  pq_graph_add_node(g, "conv2d", "conv2", 3, (const char *[]){"ar", "w2", "b2"}, 1, (const char *[]){"c"});
  pq_node_set_float(pq_graph_add_node(g, "batch_norm", "bn2", 5, (const char *[]){"c", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"}, 1,
                                      (const char *[]){"y"}),
                    "epsilon", 1e-3);
  pq_graph_add_output(g, "y");
  return m;
}

/* The record `method` made for `layer` in `m` (the last, where it made several), or NULL. */
static const PqLayerRecord *record_of(const PqModel *m, const char *method, const char *layer) {
  const PqLayerRecord *found = NULL;
  for (guint r = 0; r < pq_model_n_records(m); r++)
    if (!strcmp(pq_model_record(m, r)->method, method) && !strcmp(pq_model_record(m, r)->layer, layer)) found = pq_model_record(m, r);
  return found;
}

/* equalize: the same outputs (to float rounding); each pair's channel ranges equal on both sides, through a
 * grouped conv, a max pool, zero padding and a flatten; the values between renamed; a 3-bit per-tensor grid
 * loses less after it; what it cannot pair is said; and in a chain, bias_correct after it compares with the
 * equalized model (its values), not the original, unless a lossy stage came first. */
static void test_equalize(void) {
  g_autoptr(GError) err = NULL;
  PqPlugin *eq = pq_registry_load(reg, EQUALIZE_PLUGIN, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) m = equalize_cnn();
  g_autoptr(PqModel) e = pq_test_compress(eq, cpu, m, NULL, &err);
  g_assert_no_error(err);
  int64_t n = 0;
  g_autofree float *y0 = forward(m, 64, FALSE, &n), *y1 = forward(e, 64, FALSE, &n);
  double same = max_rel_diff(y1, y0, 64 * n);
  g_test_message("equalized: outputs differ by %.2e (relative)", same);
  g_assert_cmpfloat(same, <, 1e-5);
  /* conv1's rows against conv2's columns (groups 2), conv2's rows against fc1's columns (36 a channel), fc1's rows against fc2's */
  struct {
    const char *a, *b;
    int64_t c, groups, inner;
  } pairs[] = {{"c1w", "c2w", 8, 2, 1}, {"c2w", "f1w", 6, 1, 36}, {"f1w", "f2w", 12, 1, 1}};
  for (guint k = 0; k < G_N_ELEMENTS(pairs); k++) {
    double worst = 0, was = 0;
    for (int64_t c = 0; c < pairs[k].c; c++) {
      double ra = channel_range(pq_model_tensor(e, pairs[k].a), 0, c, 1, 1), rb = channel_range(pq_model_tensor(e, pairs[k].b), 1, c, pairs[k].groups, pairs[k].inner);
      double ra0 = channel_range(pq_model_tensor(m, pairs[k].a), 0, c, 1, 1), rb0 = channel_range(pq_model_tensor(m, pairs[k].b), 1, c, pairs[k].groups, pairs[k].inner);
      worst = fmax(worst, fabs(log(ra / rb)));
      was = fmax(was, fabs(log(ra0 / rb0)));
    }
    g_test_message("%s / %s: channel ranges off by %.2e (log), %.2f before", pairs[k].a, pairs[k].b, worst, was);
    g_assert_cmpfloat(worst, <, 2e-3);
    g_assert_cmpfloat(was, >, 0.5);
  }
  g_assert_true(record_of(e, "equalize", "fc2")->skipped);
  g_assert_cmpstr(record_of(e, "equalize", "fc2")->detail, ==, "its output reaches the model's output 'y'");
  g_assert_nonnull(strstr(record_of(e, "equalize", "conv1")->detail, "8 channels equalized with 'conv2'"));
  /* the values between the pairs renamed, the model's output not */
  const PqGraph *g = pq_model_const_graph(e);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    const PqNode *node = pq_graph_node((PqGraph *)g, i);
    const char *out = pq_node_output(node, 0);
    if (strcmp(pq_node_name(node), "fc2")) g_assert_true(g_str_has_suffix(out, ".eq"));
    else g_assert_cmpstr(out, ==, "y");
  }
  /* 3 bits a weight, one scale a tensor: the wide channels no longer take the grid */
  const char *q3[] = {"bits", "3", "scheme", "per_tensor", NULL};
  g_autoptr(PqModel) qm = pq_test_compress(quant, cpu, m, q3, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) qe = pq_test_compress(quant, cpu, e, q3, &err);
  g_assert_no_error(err);
  g_autofree float *yq = forward(qm, 64, FALSE, &n), *yqe = forward(qe, 64, FALSE, &n);
  double plain = max_rel_diff(yq, y0, 64 * n), eqd = max_rel_diff(yqe, y0, 64 * n);
  g_test_message("3-bit per tensor: output error %.3f, %.3f after equalize", plain, eqd);
  g_assert_cmpfloat(eqd, <, 0.5 * plain);
  /* what it leaves: an op the scales do not pass (sigmoid), a packed weight, a shared one */
  g_autoptr(PqModel) mlp = pq_test_tiny_mlp(16, 8, 4, 5);
  pq_node_set_op(pq_graph_node(pq_model_graph(mlp), 1), "sigmoid");
  g_autoptr(PqModel) sg = pq_test_compress(eq, cpu, mlp, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(record_of(sg, "equalize", "fc1")->detail, ==, "its output reaches sigmoid ('relu'), which does not pass a scale per channel through");
  pq_node_set_op(pq_graph_node(pq_model_graph(mlp), 1), "relu");
  const char *q8[] = {"bits", "8", "include", "fc2", NULL};
  g_autoptr(PqModel) half = pq_test_compress(quant, cpu, mlp, q8, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) hp = pq_test_compress(eq, cpu, half, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(record_of(hp, "equalize", "fc1")->detail, ==, "'w2' is packed (equalize changes float32 weights: put it before quant)");
  g_autoptr(PqModel) shared = pq_model_copy(mlp);
  pq_graph_add_node(pq_model_graph(shared), "linear", "again", 2, (const char *[]){"x", "w1"}, 1, (const char *[]){"z"});
  pq_graph_add_output(pq_model_graph(shared), "z");
  g_autoptr(PqModel) sh = pq_test_compress(eq, cpu, shared, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(record_of(sh, "equalize", "fc1")->detail, ==, "'w1' is shared with another node");
  { /* the graph between the layers: a value read twice, one not read at all, one read as a second input, and
       a pair more than 64 ops apart: each a skip with its reason */
    g_autoptr(PqModel) g2 = pq_model_copy(mlp);
    PqGraph *gg = pq_model_graph(g2);
    int64_t ws[2] = {8, 16};
    PqTensor *w3 = pq_test_random_tensor("w3", 2, ws, 77, 0.5f), *w4 = pq_test_random_tensor("w4", 2, ws, 78, 0.5f);
    pq_model_set_tensor(g2, w3), pq_model_set_tensor(g2, w4);
    pq_tensor_unref(w3), pq_tensor_unref(w4);
    pq_graph_add_node(gg, "relu", "tap", 1, (const char *[]){"h"}, 1, (const char *[]){"t"}); /* fc1's h: read twice */
    pq_graph_add_output(gg, "t");
    pq_graph_add_node(gg, "linear", "dead", 2, (const char *[]){"x", "w3"}, 1, (const char *[]){"d"}); /* read by none */
    pq_graph_add_node(gg, "linear", "side", 2, (const char *[]){"x", "w4"}, 1, (const char *[]){"s"});
    pq_graph_add_node(gg, "mul", "gate", 2, (const char *[]){"t", "s"}, 1, (const char *[]){"u"}); /* side's s: a second input */
    pq_graph_add_output(gg, "u");
    g_autoptr(PqModel) e2 = pq_test_compress(eq, cpu, g2, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(record_of(e2, "equalize", "fc1")->detail, ==, "'h' is read by 2 nodes");
    g_assert_cmpstr(record_of(e2, "equalize", "dead")->detail, ==, "'d' is not read by any node");
    g_assert_cmpstr(record_of(e2, "equalize", "side")->detail, ==, "its output reaches mul ('gate') other than as its first input");
    g_autoptr(PqModel) far = pq_model_copy(mlp); /* 70 relus between fc1 and fc2 */
    PqGraph *fg = pq_model_graph(far);
    pq_node_set_output(pq_graph_node(fg, 1), 0, "r0");
    for (int i = 1; i < 70; i++) {
      g_autofree char *name = g_strdup_printf("more%d", i), *in = g_strdup_printf("r%d", i - 1), *out = g_strdup_printf("r%d", i);
      pq_graph_add_node(fg, "relu", name, 1, (const char *[]){in}, 1, (const char *[]){i == 69 ? "hr" : out});
    }
    g_autoptr(PqModel) ef = pq_test_compress(eq, cpu, far, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(record_of(ef, "equalize", "fc1")->detail, ==, "no layer within 64 ops of its output");
  }
  /* batch norms folded into the convolutions before them (conv1 given a bias), then conv1 paired with conv2;
     without the fold, the batch_norm stops the pair */
  g_autoptr(PqModel) bm = batch_norm_cnn();
  g_autoptr(PqModel) bf = pq_test_compress(eq, cpu, bm, NULL, &err);
  g_assert_no_error(err);
  g_autofree float *yb0 = forward(bm, 16, FALSE, &n), *yb1 = forward(bf, 16, FALSE, &n);
  g_test_message("batch norms folded and equalized: outputs differ by %.2e (relative)", max_rel_diff(yb1, yb0, 16 * n));
  g_assert_cmpfloat(max_rel_diff(yb1, yb0, 16 * n), <, 1e-5);
  g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(bf)), ==, 3);
  g_assert_null(pq_model_tensor(bf, "bn1.var"));
  g_assert_null(pq_model_tensor(bf, "bn2.scale"));
  g_assert_nonnull(pq_model_tensor(bf, "conv1.bias"));
  g_assert_cmpint(pq_model_n_params(bf), ==, pq_model_n_params(bm) - 4 * 4 - 4 * 5 + 4);
  const PqLayerRecord *fold = NULL;
  for (guint r = 0; r < pq_model_n_records(bf); r++)
    if (strstr(pq_model_record(bf, r)->detail, "batch_norm 'bn1' folded")) fold = pq_model_record(bf, r);
  g_assert_nonnull(fold);
  g_assert_cmpstr(fold->layer, ==, "conv1");
  g_assert_cmpint(fold->params_before, ==, 4 * 27 + 4 * 4);
  g_assert_cmpint(fold->params_after, ==, 4 * 27 + 4);
  g_assert_nonnull(strstr(record_of(bf, "equalize", "conv1")->detail, "4 channels equalized with 'conv2'"));
  g_assert_cmpstr(record_of(bf, "equalize", "conv2")->detail, ==, "its output reaches the model's output 'y'");
  { /* a variance below -epsilon: no finite fold, refused by name */
    g_autoptr(PqModel) neg = pq_model_copy(bm);
    int64_t c4 = 4;
    PqTensor *v = pq_tensor_new("bn1.var", PQ_DTYPE_F32, 1, &c4);
    for (int i = 0; i < 4; i++) ((float *)pq_tensor_mutable_data(v))[i] = -1.0f;
    pq_model_set_tensor(neg, v);
    pq_tensor_unref(v);
    g_autoptr(GError) nerr = NULL;
    g_assert_null(pq_test_compress(eq, cpu, neg, NULL, &nerr));
    g_assert_nonnull(nerr);
    g_assert_nonnull(strstr(nerr->message, "layer 'conv1': batch_norm 'bn1' folded in gives weights or a bias that are not finite"));
  }
  const char *nofold[] = {"fold_batch_norm", "false", NULL};
  g_autoptr(PqModel) bk = pq_test_compress(eq, cpu, bm, nofold, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(record_of(bk, "equalize", "conv1")->detail, ==,
                  "its output reaches batch_norm ('bn1'), which does not pass a scale per channel through");
  /* a chain: bias_correct after equalize and quant matches the equalized model's values ('h.eq'), so it corrects fc1 */
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  PqPlugin *bc = pq_registry_load(reg, BIAS_CORRECT_PLUGIN, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) tiny = pq_test_tiny_mlp(784, 32, 10, 43);
  for (int chain = 0; chain < 2; chain++) { /* 0: equalize, quant, bias_correct; 1: low_rank of fc2 first */
    g_autoptr(PqPipeline) p = pq_pipeline_new(reg);
    if (chain) g_assert_true(pq_pipeline_add_stage(p, low_rank, &err) && pq_pipeline_parse_option(p, "low_rank.include=fc2", &err) &&
                             pq_pipeline_parse_option(p, "low_rank.rank=8", &err));
    g_assert_true(pq_pipeline_add_stage(p, eq, &err) && pq_pipeline_add_stage(p, quant, &err) && pq_pipeline_add_stage(p, bc, &err));
    g_assert_true(pq_pipeline_parse_option(p, "quant.bits=3", &err) && pq_pipeline_parse_option(p, "quant.scheme=per_tensor", &err));
    pq_pipeline_set_calibration(p, train, 200);
    g_autoptr(PqModel) out = pq_pipeline_run(p, tiny, &err);
    g_assert_no_error(err);
    const PqLayerRecord *fc1 = record_of(out, "bias_correct", "fc1");
    g_assert_nonnull(fc1);
    if (chain) { /* after a lossy stage the original is the reference, and it has no 'h.eq': left, said so */
      g_assert_true(fc1->skipped);
      g_assert_cmpstr(fc1->detail, ==, "its output is not one of the original model's values");
      continue;
    }
    g_assert_false(fc1->skipped);
    g_autoptr(PqModel) eqm = pq_test_compress(eq, cpu, tiny, NULL, &err);
    g_assert_no_error(err);
    g_autofree float *x = g_new(float, 200 * 784);
    pq_dataset_get_batch(train, 0, 200, x, NULL);
    g_autofree double *want = value_means(eqm, "h.eq", x, 200, 32), *got = value_means(out, "h.eq", x, 200, 32);
    double off = 0;
    for (int c = 0; c < 32; c++) off = fmax(off, fabs(got[c] - want[c]));
    g_test_message("after equalize, quant and bias_correct: fc1's means off the equalized model's by %.2e", off);
    g_assert_cmpfloat(off, <, 1e-4);
  }
}

/* bias_correct after a 3-bit quantization: each layer's output means over the calibration samples are the
 * original model's again, layer after layer (each measured on the model corrected so far; a sign or order
 * wrong fails), weights untouched; a layer without a bias gets one; it needs calibration samples. */
/* The outputs of `m` on n images. */
static float *outputs_on(const PqModel *m, const float *x, int64_t n, int64_t width) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, n, NULL, &err);
  g_assert_no_error(err);
  float *y = g_new(float, n * width);
  PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {n, 784}, (void *)x}, o = {sizeof o, PQ_DTYPE_F32, 2, 0, {n, width}, y};
  g_assert_true(pq_backend_run(b, &in, 1, &o, 1, &err));
  return y;
}

/* A record of `layer` by equalize whose detail holds `text`, or NULL. */
static const PqLayerRecord *eq_record_with(const PqModel *m, const char *layer, const char *text) {
  for (guint r = 0; r < pq_model_n_records(m); r++) {
    const PqLayerRecord *rec = pq_model_record(m, r);
    if (!strcmp(rec->method, "equalize") && !strcmp(rec->layer, layer) && strstr(rec->detail, text)) return rec;
  }
  return NULL;
}

/* equalize method=awq: the same function (fc1's inputs divided by a new mul node, its columns multiplied);
 * quantized on the grid it was told of, the outputs on images it did not see stay closer to the model's than
 * with quant alone; what it cannot weigh is said; without calibration samples it refuses. */
static void test_equalize_awq(void) {
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  g_autoptr(GError) err = NULL;
  PqPlugin *eq = pq_registry_load(reg, EQUALIZE_PLUGIN, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 32, 10, 43);
  enum { N = 256 };
  g_autofree float *x = g_new(float, 2 * N * 784);
  g_assert_cmpint(pq_dataset_get_batch(train, 0, 2 * N, x, NULL), ==, 2 * N);
  const float *unseen = x + N * 784; /* calibration takes the first N */
  { /* fc1's columns for the pixels that are nearly always dark 20 times wider: they set its rows' ranges, and
       weighing the inputs shrinks them (a trained model's are small, but wide ones are what awq is for) */
    PqTensor *w1 = pq_tensor_new("w1", PQ_DTYPE_F32, 2, (const int64_t[]){32, 784});
    float *wd = pq_tensor_mutable_data(w1);
    pq_tensor_to_f32(pq_model_tensor(m, "w1"), wd);
    for (int j = 0; j < 784; j++) {
      double mean = 0;
      for (int i = 0; i < N; i++) mean += x[i * 784 + j] / N;
      for (int r = 0; r < 32 && mean < 0.02; r++) wd[r * 784 + j] *= 20;
    }
    pq_model_set_tensor(m, w1);
    pq_tensor_unref(w1);
  }
  g_autoptr(PqPipeline) pa = pq_pipeline_new(reg), pq = pq_pipeline_new(reg), pr = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(pa, eq, &err) && pq_pipeline_add_stage(pq, eq, &err) && pq_pipeline_add_stage(pq, quant, &err) &&
                pq_pipeline_add_stage(pr, quant, &err));
  const char *opts[] = {"equalize.method=awq", "equalize.bits=3", "quant.bits=3"};
  for (int i = 0; i < 3; i++) {
    if (i < 2) g_assert_true(pq_pipeline_parse_option(pa, opts[i], &err));
    g_assert_true(pq_pipeline_parse_option(pq, opts[i], &err));
  }
  g_assert_true(pq_pipeline_parse_option(pr, "quant.bits=3", &err));
  g_assert_no_error(err);
  pq_pipeline_set_calibration(pa, train, N);
  pq_pipeline_set_calibration(pq, train, N);
  pq_pipeline_set_calibration(pr, train, N);
  g_autoptr(PqModel) e = pq_pipeline_run(pa, m, &err);
  g_assert_no_error(err);
  g_autofree float *y0 = outputs_on(m, unseen, N, 10), *y1 = outputs_on(e, unseen, N, 10);
  g_test_message("awq: outputs differ by %.2e (relative)", max_rel_diff(y1, y0, N * 10));
  g_assert_cmpfloat(max_rel_diff(y1, y0, N * 10), <, 1e-5);
  const PqLayerRecord *in_rec = eq_record_with(e, "fc1", "784 input channels scaled (awq, alpha ");
  g_assert_nonnull(in_rec);
  g_assert_nonnull(strstr(in_rec->detail, "in a new mul 'fc1.awq'; at 3-bit per channel, output error "));
  g_assert_nonnull(strstr(in_rec->detail, " on the 256 calibration rows"));
  g_assert_cmpint(in_rec->params_after, ==, in_rec->params_before + 784);
  const PqTensor *inv = pq_model_tensor(e, "fc1.awq_scale");
  g_assert_nonnull(inv);
  g_assert_cmpint(pq_tensor_numel(inv), ==, 784);
  const PqNode *mul = pq_graph_value_producer(pq_model_const_graph(e), pq_node_input(pq_graph_node(pq_model_const_graph(e), 0), 0));
  g_assert_nonnull(mul);
  g_assert_cmpstr(pq_node_op(mul), ==, "mul");
  g_assert_cmpstr(pq_node_input(mul, 0), ==, "x");
  g_assert_true(eq_record_with(e, "fc1", "32 channels scaled for 'fc2' (awq, alpha ") ||
                eq_record_with(e, "fc1", "no scale gave 'fc2' less output error than none (awq)"));
  /* quantized at 3 bits: closer to the model than quant alone */
  g_autoptr(PqModel) eqq = pq_pipeline_run(pq, m, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) rtn = pq_pipeline_run(pr, m, &err);
  g_assert_no_error(err);
  g_autofree float *y2 = outputs_on(eqq, unseen, N, 10), *y3 = outputs_on(rtn, unseen, N, 10);
  double e_awq = 0, e_rtn = 0;
  for (int i = 0; i < N * 10; i++) e_awq += ((double)y2[i] - y0[i]) * ((double)y2[i] - y0[i]), e_rtn += ((double)y3[i] - y0[i]) * ((double)y3[i] - y0[i]);
  g_test_message("3-bit: output error %.4g after awq, %.4g with quant alone (unseen images)", e_awq, e_rtn);
  g_assert_cmpfloat(e_awq, <, 0.9 * e_rtn);
  g_assert_nonnull(eq_record_with(eqq, "fc1", "at 3-bit per channel (stage 2's grid where not given), output error "));
  { /* the grid options not given are the quant stage's after it: the same model as equalize.bits=3 given */
    g_autoptr(PqPipeline) pf = pq_pipeline_new(reg);
    g_assert_true(pq_pipeline_add_stage(pf, eq, &err) && pq_pipeline_add_stage(pf, quant, &err) &&
                  pq_pipeline_parse_option(pf, "equalize.method=awq", &err) && pq_pipeline_parse_option(pf, "quant.bits=3", &err));
    pq_pipeline_set_calibration(pf, train, N);
    g_autoptr(PqModel) ef = pq_pipeline_run(pf, m, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eq_record_with(ef, "fc1", "at 3-bit per channel (stage 2's grid), output error "));
    g_autofree float *yf = outputs_on(ef, unseen, N, 10);
    g_assert_cmpmem(yf, sizeof(float) * N * 10, y2, sizeof(float) * N * 10);
    /* its scheme, group size and symmetry */
    g_assert_true(pq_pipeline_parse_option(pf, "quant.scheme=per_group", &err) && pq_pipeline_parse_option(pf, "quant.group_size=16", &err) &&
                  pq_pipeline_parse_option(pf, "quant.symmetric=false", &err));
    g_autoptr(PqModel) eg16 = pq_pipeline_run(pf, m, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eq_record_with(eg16, "fc1", "at 3-bit asymmetric in groups of 16 (stage 2's grid), output error "));
    /* per tensor: refused, with what to use instead; a group_size given here wins over that stage's scheme */
    g_assert_true(pq_pipeline_parse_option(pf, "quant.scheme=per_tensor", &err));
    g_assert_null(pq_pipeline_run(pf, m, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "stage 1 (equalize): compressor 'equalize': equalize method=awq: stage 2 (quant) quantizes per tensor"));
    g_assert_nonnull(strstr(err->message, "use method=range (the default)"));
    g_clear_error(&err);
    g_assert_true(pq_pipeline_parse_option(pf, "equalize.group_size=0", &err));
    g_autoptr(PqModel) ept = pq_pipeline_run(pf, m, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eq_record_with(ept, "fc1", "at 3-bit asymmetric per channel (stage 2's grid where not given), output error "));
    /* the chain's head alone: the quant stage is not run, but its grid is read */
    g_autoptr(PqModel) eh = pq_pipeline_run_head(pf, m, 1, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eq_record_with(eh, "fc1", "at 3-bit asymmetric per channel (stage 2's grid where not given), output error "));
    for (guint i = 0; i < pq_model_n_records(eh); i++) g_assert_cmpstr(pq_model_record(eh, i)->method, ==, "equalize");
    g_assert_null(pq_pipeline_run_head(pf, m, 0, &err));
    g_assert_error(err, PQ_PLUGIN_CALL_ERROR, PQ_ERR_INVALID);
    g_clear_error(&err);
    /* a chain numbered on from another's: records, the grid's stage and messages say so */
    pq_pipeline_set_first_stage(pf, 5);
    g_autoptr(PqModel) e5 = pq_pipeline_run(pf, m, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eq_record_with(e5, "fc1", "(stage 6's grid where not given), output error "));
    for (guint i = 0; i < pq_model_n_records(e5); i++)
      g_assert_cmpint(pq_model_record(e5, i)->stage, ==, strcmp(pq_model_record(e5, i)->method, "equalize") ? 6 : 5);
    g_assert_true(pq_pipeline_parse_option(pf, "quant.scheme=per_group", &err) && pq_pipeline_parse_option(pf, "quant.group_size=5", &err));
    g_assert_null(pq_pipeline_run(pf, m, &err));
    g_assert_nonnull(err);
    g_assert_true(g_str_has_prefix(err->message, "stage 6 (quant): "));
    g_clear_error(&err);
    pq_pipeline_set_first_stage(pf, 0); /* (taken as 1) */
    g_assert_null(pq_pipeline_run(pf, m, &err));
    g_assert_true(g_str_has_prefix(err->message, "stage 2 (quant): "));
    g_clear_error(&err);
  }
  { /* a quant stage that fits its groups to the rows (group_fit=divisor): awq weighs each layer for the size quant
       will take (784 and 32 values a row: groups of 4 for 5), and quant takes them */
    g_autoptr(PqPipeline) pg = pq_pipeline_new(reg);
    g_assert_true(pq_pipeline_add_stage(pg, eq, &err) && pq_pipeline_add_stage(pg, quant, &err) &&
                  pq_pipeline_parse_option(pg, "equalize.method=awq", &err) && pq_pipeline_parse_option(pg, "quant.bits=3", &err) &&
                  pq_pipeline_parse_option(pg, "quant.scheme=per_group", &err) && pq_pipeline_parse_option(pg, "quant.group_size=5", &err) &&
                  pq_pipeline_parse_option(pg, "quant.group_fit=divisor", &err));
    pq_pipeline_set_calibration(pg, train, N);
    g_autoptr(PqModel) efit = pq_pipeline_run(pg, m, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eq_record_with(efit, "fc1", "at 3-bit in groups of up to 5 (stage 2's grid), output error "));
    g_assert_cmpint(pq_tensor_group_size(pq_model_tensor(efit, "w1")), ==, 4);
    g_assert_cmpint(pq_tensor_group_size(pq_model_tensor(efit, "w2")), ==, 4);
    g_assert_nonnull(strstr(pq_model_record(efit, pq_model_n_records(efit) - 1)->detail, "group 4 (fitted to the row)"));
  }
  /* the exponents tried on 8 of fc1's 32 rows (and of fc2's 10), the choice checked on all: the same function,
     much the same gain */
  g_assert_true(pq_pipeline_parse_option(pq, "equalize.search_rows=8", &err));
  g_autoptr(PqModel) eqs = pq_pipeline_run(pq, m, &err);
  g_assert_no_error(err);
  g_autofree float *y4 = outputs_on(eqs, unseen, N, 10);
  double e_sub = 0;
  for (int i = 0; i < N * 10; i++) e_sub += ((double)y4[i] - y0[i]) * ((double)y4[i] - y0[i]);
  g_test_message("3-bit: output error %.4g after awq searching on 8 rows", e_sub);
  g_assert_cmpfloat(e_sub, <, 0.9 * e_rtn);
  g_assert_nonnull(eq_record_with(eqs, "fc1", "784 input channels scaled (awq, alpha "));
  /* a group size that divides no row: nothing weighed, said so */
  g_autoptr(PqPipeline) pg = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(pg, eq, &err) && pq_pipeline_parse_option(pg, "equalize.method=awq", &err) &&
                pq_pipeline_parse_option(pg, "equalize.group_size=5", &err));
  pq_pipeline_set_calibration(pg, train, N);
  g_autoptr(PqModel) eg = pq_pipeline_run(pg, m, &err);
  g_assert_no_error(err);
  g_assert_nonnull(eq_record_with(eg, "fc1", "group_size 5 does not divide the 32 values of a row of 'fc2'"));
  g_assert_nonnull(eq_record_with(eg, "fc1", "its inputs left as they are (awq): group_size 5 does not divide its rows of 784"));
  g_assert_null(pq_model_tensor(eg, "fc1.awq_scale"));
  { /* weights near float32's limit: the exponents that would take them past it are not tried, no error */
    g_autoptr(PqModel) big = pq_model_copy(m);
    PqTensor *w2 = pq_test_random_tensor("w2", 2, (const int64_t[]){10, 32}, 17, 3e38f);
    pq_model_set_tensor(big, w2);
    pq_tensor_unref(w2);
    g_autoptr(PqModel) eb = pq_pipeline_run(pa, big, &err);
    g_assert_no_error(err);
    g_assert_nonnull(eb);
  }
  /* a grouped convolution as the next layer: skipped by name */
  g_autoptr(PqModel) cm = pq_model_new();
  PqGraph *g = pq_model_graph(cm);
  int64_t xs[4] = {-1, 1, 28, 28}, aw[4] = {4, 1, 3, 3}, bw[4] = {4, 2, 3, 3};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *ta = pq_test_random_tensor("aw", 4, aw, 71, 0.5f), *tb = pq_test_random_tensor("bw", 4, bw, 72, 0.5f);
  pq_model_set_tensor(cm, ta), pq_model_set_tensor(cm, tb);
  pq_tensor_unref(ta), pq_tensor_unref(tb);
  pq_graph_add_node(g, "conv2d", "a", 2, (const char *[]){"x", "aw"}, 1, (const char *[]){"h"});
  pq_graph_add_node(g, "relu", "r", 1, (const char *[]){"h"}, 1, (const char *[]){"hr"});
  pq_node_set_int(pq_graph_add_node(g, "conv2d", "b", 2, (const char *[]){"hr", "bw"}, 1, (const char *[]){"y"}), "groups", 2);
  pq_graph_add_output(g, "y");
  g_autoptr(PqModel) ec = pq_pipeline_run(pg, cm, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(record_of(ec, "equalize", "a")->detail, ==, "'b' is a grouped convolution (awq weighs a layer's inputs by one Gram matrix, which it has not)");
  /* without calibration samples */
  const char *kv[] = {"method", "awq", NULL};
  g_autoptr(GError) nerr = NULL;
  g_assert_null(compress(eq, m, kv, &nerr));
  g_assert_nonnull(nerr);
  g_assert_nonnull(strstr(nerr->message, "compressor 'equalize' needs calibration samples (up to 512)"));
}

static void test_bias_correct(void) {
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  g_autoptr(GError) err = NULL;
  PqPlugin *bc = pq_registry_load(reg, BIAS_CORRECT_PLUGIN, &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 32, 10, 43);
  drop_fc1_bias(m);
  g_autoptr(PqPipeline) p = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(p, quant, &err) && pq_pipeline_add_stage(p, bc, &err));
  g_assert_true(pq_pipeline_parse_option(p, "quant.bits=3", &err) && pq_pipeline_parse_option(p, "quant.scheme=per_tensor", &err));
  enum { N = 200 };
  pq_pipeline_set_calibration(p, train, N);
  g_autoptr(PqModel) out = pq_pipeline_run(p, m, &err);
  g_assert_no_error(err);
  g_autoptr(PqPipeline) q = pq_pipeline_new(reg); /* the same quantization alone */
  g_assert_true(pq_pipeline_add_stage(q, quant, &err));
  g_assert_true(pq_pipeline_parse_option(q, "quant.bits=3", &err) && pq_pipeline_parse_option(q, "quant.scheme=per_tensor", &err));
  g_autoptr(PqModel) plain = pq_pipeline_run(q, m, &err);
  g_assert_no_error(err);
  g_assert_true(pq_model_tensor(out, "w1") == pq_model_tensor(plain, "w1") ||
                !memcmp(pq_tensor_data(pq_model_tensor(out, "w1")), pq_tensor_data(pq_model_tensor(plain, "w1")), pq_tensor_nbytes(pq_model_tensor(plain, "w1"))));
  g_assert_nonnull(pq_model_tensor(out, "fc1.bias")); /* given one */
  g_autofree float *x = g_new(float, N * 784);
  pq_dataset_get_batch(train, 0, N, x, NULL);
  const char *values[2] = {"h", "y"};
  const int64_t widths[2] = {32, 10};
  for (int k = 0; k < 2; k++) {
    g_autofree double *want = value_means(m, values[k], x, N, widths[k]), *got = value_means(out, values[k], x, N, widths[k]),
                      *before = value_means(plain, values[k], x, N, widths[k]);
    double off = 0, was = 0;
    for (int64_t c = 0; c < widths[k]; c++) {
      off = fmax(off, fabs(got[c] - want[c]));
      was = fmax(was, fabs(before[c] - want[c]));
    }
    g_test_message("%s: largest mean off %.2e (before the correction %.2e)", values[k], off, was);
    g_assert_cmpfloat(off, <, 1e-4 + 1e-4 * was);
    g_assert_cmpfloat(was, >, 1e-3); /* there was something to correct */
  }
  g_assert_nonnull(strstr(pq_model_record(out, pq_model_n_records(out) - 1)->detail, "bias shifted by"));
  /* after structured pruning fc1 has fewer outputs than the original: left, said so; fc2 is corrected */
  g_autoptr(PqPipeline) sp = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(sp, prune, &err) && pq_pipeline_add_stage(sp, bc, &err));
  g_assert_true(pq_pipeline_parse_option(sp, "prune.mode=structured", &err) && pq_pipeline_parse_option(sp, "prune.include=fc1", &err));
  pq_pipeline_set_calibration(sp, train, N);
  g_autoptr(PqModel) spo = pq_pipeline_run(sp, m, &err);
  g_assert_no_error(err);
  guint nr = pq_model_n_records(spo);
  g_assert_true(pq_model_record(spo, nr - 2)->skipped);
  g_assert_cmpstr(pq_model_record(spo, nr - 2)->detail, ==, "its output has 16 values a sample, the original's 32");
  g_assert_false(pq_model_record(spo, nr - 1)->skipped);
  /* skipped, and said so: the inner node of a low-rank layer (no such value in the original), and a layer whose
     outputs overflow (fc1's weights near float32's limit: its means are infinite) */
  g_autoptr(PqPipeline) lp = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(lp, low_rank, &err) && pq_pipeline_add_stage(lp, bc, &err));
  g_assert_true(pq_pipeline_parse_option(lp, "low_rank.rank=4", &err) && pq_pipeline_parse_option(lp, "low_rank.include=fc1", &err));
  pq_pipeline_set_calibration(lp, train, N);
  g_autoptr(PqModel) lpo = pq_pipeline_run(lp, m, &err);
  g_assert_no_error(err);
  gboolean inner_skipped = FALSE;
  for (guint r = 0; r < pq_model_n_records(lpo); r++)
    inner_skipped |= !strcmp(pq_model_record(lpo, r)->layer, "fc1.lr_v") && pq_model_record(lpo, r)->skipped &&
                     !strcmp(pq_model_record(lpo, r)->detail, "its output is not one of the original model's values");
  g_assert_true(inner_skipped);
  g_autoptr(PqModel) big = pq_model_copy(m);
  PqTensor *w1 = pq_test_random_tensor("w1", 2, (const int64_t[]){32, 784}, 13, 3e38f);
  pq_model_set_tensor(big, w1);
  pq_tensor_unref(w1);
  g_autoptr(PqPipeline) bp = pq_pipeline_new(reg);
  g_assert_true(pq_pipeline_add_stage(bp, bc, &err));
  pq_pipeline_set_calibration(bp, train, N);
  g_autoptr(PqModel) bpo = pq_pipeline_run(bp, big, &err);
  g_assert_no_error(err);
  g_assert_true(pq_model_record(bpo, 0)->skipped);
  g_assert_cmpstr(pq_model_record(bpo, 0)->detail, ==, "its outputs' means are not finite on the calibration samples");
  { /* a conv_transpose2d's bias (slot 2, as for conv2d): its outputs' means by channel (dimension 1) put back
       after the conv before it is quantized */
    g_autoptr(PqModel) cm = pq_model_new();
    PqGraph *g = pq_model_graph(cm);
    int64_t xs[4] = {-1, 1, 28, 28}, dws[4] = {4, 1, 4, 4}, uws[4] = {4, 3, 2, 2}, v4[1] = {4}, v3[1] = {3};
    pq_graph_add_input(g, "x", 4, xs);
    PqTensor *ts[4] = {pq_test_random_tensor("dw", 4, dws, 91, 0.5f), pq_test_random_tensor("db", 1, v4, 92, 0.1f),
                       pq_test_random_tensor("uw", 4, uws, 93, 0.5f), pq_test_random_tensor("ub", 1, v3, 94, 0.1f)};
    for (int i = 0; i < 4; i++) {
      pq_model_set_tensor(cm, ts[i]);
      pq_tensor_unref(ts[i]);
    }
    pq_node_set_ints(pq_graph_add_node(g, "conv2d", "down", 3, (const char *[]){"x", "dw", "db"}, 1, (const char *[]){"d"}), "strides", 2,
                     (const int64_t[]){4, 4});
    pq_graph_add_node(g, "relu", "r", 1, (const char *[]){"d"}, 1, (const char *[]){"dr"});
    pq_node_set_ints(pq_graph_add_node(g, "conv_transpose2d", "up", 3, (const char *[]){"dr", "uw", "ub"}, 1, (const char *[]){"y"}), "strides",
                     2, (const int64_t[]){2, 2});
    pq_graph_add_output(g, "y");
    g_autoptr(PqPipeline) cp = pq_pipeline_new(reg), cq = pq_pipeline_new(reg);
    g_assert_true(pq_pipeline_add_stage(cp, quant, &err) && pq_pipeline_add_stage(cp, bc, &err) && pq_pipeline_add_stage(cq, quant, &err));
    for (int k = 0; k < 2; k++)
      g_assert_true(pq_pipeline_parse_option(k ? cq : cp, "quant.bits=2", &err) && pq_pipeline_parse_option(k ? cq : cp, "quant.scheme=per_tensor", &err));
    pq_pipeline_set_calibration(cp, train, N);
    g_autoptr(PqModel) co = pq_pipeline_run(cp, cm, &err);
    g_assert_no_error(err);
    g_autoptr(PqModel) cplain = pq_pipeline_run(cq, cm, &err);
    g_assert_no_error(err);
    g_assert_nonnull(strstr(record_of(co, "bias_correct", "up")->detail, "over 3 channels"));
    double got[3], want[3], before[3];
    const PqModel *models[3] = {co, cm, cplain};
    double *means[3] = {got, want, before};
    for (int k = 0; k < 3; k++) {
      g_autoptr(PqBackend) b = pq_backend_prepare(cpu, models[k], 1, N, NULL, &err);
      g_assert_no_error(err);
      g_autofree float *y = g_new(float, N * 3 * 14 * 14);
      PqTensorView in = {sizeof in, PQ_DTYPE_F32, 4, 0, {N, 1, 28, 28}, x}, o = {sizeof o, PQ_DTYPE_F32, 4, 0, {N, 3, 14, 14}, y};
      g_assert_true(pq_backend_run(b, &in, 1, &o, 1, &err));
      for (int c = 0; c < 3; c++) {
        means[k][c] = 0;
        for (int s = 0; s < N; s++)
          for (int i = 0; i < 196; i++) means[k][c] += y[(s * 3 + c) * 196 + i] / (N * 196.0);
      }
    }
    double off = 0, was = 0;
    for (int c = 0; c < 3; c++) off = fmax(off, fabs(got[c] - want[c])), was = fmax(was, fabs(before[c] - want[c]));
    g_test_message("conv_transpose2d: largest channel mean off %.2e (before the correction %.2e)", off, was);
    g_assert_cmpfloat(was, >, 1e-3);
    g_assert_cmpfloat(off, <, 1e-4 + 1e-4 * was);
  }
  /* without calibration samples: refused */
  g_autoptr(PqModel) none = compress(bc, m, NULL, &err);
  g_assert_null(none);
  g_assert_nonnull(strstr(err->message, "compressor 'bias_correct' needs calibration samples"));
}

/* The Gram matrix a compressor gets (through the test plugin, which keeps it as a tensor) against one
 * computed here: a linear layer reading another layer's output, and a conv with strides, dilations and
 * uneven pads over image patches; a grouped conv and a relu are refused. */
static void test_calibration_gram(void) {
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  g_autoptr(GError) err = NULL;
  PqPlugin *tp = pq_registry_load(reg, TEST_PLUGIN_DIR "/good.so", &err);
  g_assert_no_error(err);
  enum { S = 40 };
  g_autofree float *x = g_new(float, S * 784);
  pq_dataset_get_batch(train, 0, S, x, NULL);
  /* linear fc2 of a 784-32-10 MLP: its input is fc1's output after relu, "hr" */
  g_autoptr(PqModel) mlp = pq_test_tiny_mlp(784, 32, 10, 3);
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(tp), "test_identity", &err);
  pq_options_add_layer_selection(o, &err);
  pq_options_set(o, "calibration", "40", &err);
  pq_options_set(o, "gram", "fc2", &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) out = pq_compressor_run_full(tp, mlp, o, train, 0, cpu, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_model_meta(out, "test.gram_rows"), ==, "40");
  g_autoptr(PqModel) probe = pq_model_copy(mlp);
  pq_graph_add_output(pq_model_graph(probe), "hr");
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, probe, 1, S, NULL, &err);
  g_assert_no_error(err);
  g_autofree float *y = g_new(float, S * 10), *h = g_new(float, S * 32);
  PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {S, 784}, x};
  PqTensorView outs[2] = {{sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {S, 10}, y}, {sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {S, 32}, h}};
  g_assert_true(pq_backend_run(b, &in, 1, outs, 2, &err));
  const float *gm = pq_tensor_data(pq_model_tensor(out, "test.gram"));
  double worst = 0, scale = 0;
  for (int i = 0; i < 32; i++)
    for (int j = 0; j < 32; j++) {
      double want = 0;
      for (int s = 0; s < S; s++) want += (double)h[s * 32 + i] * h[s * 32 + j];
      want /= S;
      worst = fmax(worst, fabs(want - gm[i * 32 + j]));
      scale = fmax(scale, fabs(want));
    }
  g_assert_cmpfloat(worst, <=, 1e-5 * scale);
  /* conv 3x3 on 1x28x28: strides 2, 1; dilations 2, 1; pads top 2, left 0, bottom 1, right 3 */
  int64_t xs[4] = {-1, 1, 28, 28}, ws[4] = {4, 1, 3, 3}, st[2] = {2, 1}, pads[4] = {2, 0, 1, 3}, dil[2] = {2, 1};
  g_autoptr(PqModel) cm = pq_test_conv_model(xs, ws, st, pads, 4);
  pq_node_set_ints(pq_graph_node(pq_model_graph(cm), 0), "dilations", 2, dil);
  pq_options_set(o, "gram", "conv", &err);
  g_autoptr(PqModel) cout = pq_compressor_run_full(tp, cm, o, train, 0, cpu, &err);
  g_assert_no_error(err);
  int64_t oh = (28 + 2 + 1 - 2 * 2 - 1) / 2 + 1, ow = (28 + 0 + 3 - 2 - 1) / 1 + 1;
  g_autofree char *rows = g_strdup_printf("%lld", (long long)(S * oh * ow));
  g_assert_cmpstr(pq_model_meta(cout, "test.gram_rows"), ==, rows);
  double want[81] = {0};
  for (int s = 0; s < S; s++)
    for (int64_t oy = 0; oy < oh; oy++)
      for (int64_t ox = 0; ox < ow; ox++) {
        double p[9];
        for (int ki = 0; ki < 3; ki++)
          for (int kj = 0; kj < 3; kj++) {
            int64_t iy = oy * 2 - 2 + ki * 2, ix = ox - 0 + kj;
            p[ki * 3 + kj] = iy >= 0 && iy < 28 && ix >= 0 && ix < 28 ? x[s * 784 + iy * 28 + ix] : 0.0;
          }
        for (int i = 0; i < 9; i++)
          for (int j = 0; j < 9; j++) want[i * 9 + j] += p[i] * p[j];
      }
  gm = pq_tensor_data(pq_model_tensor(cout, "test.gram"));
  worst = scale = 0;
  for (int i = 0; i < 81; i++) {
    want[i] /= (double)(S * oh * ow);
    worst = fmax(worst, fabs(want[i] - gm[i]));
    scale = fmax(scale, fabs(want[i]));
  }
  g_assert_cmpfloat(worst, <=, 1e-5 * scale);
  /* refusals */
  pq_options_set(o, "gram", "relu", &err);
  g_assert_null(pq_compressor_run_full(tp, mlp, o, train, 0, cpu, &err));
  g_assert_nonnull(strstr(err->message, "layer 'relu': a Gram matrix of inputs is for linear and conv2d layers, not relu"));
  g_clear_error(&err);
  int64_t gxs[4] = {-1, 4, 14, 14}, gws[4] = {4, 2, 3, 3}, one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
  g_autoptr(PqModel) gc = pq_test_conv_model(gxs, gws, one, zero, 5);
  pq_node_set_int(pq_graph_node(pq_model_graph(gc), 0), "groups", 2);
  pq_options_set(o, "gram", "conv", &err);
  g_assert_null(pq_compressor_run_full(tp, gc, o, train, 0, cpu, &err));
  g_assert_nonnull(strstr(err->message, "layer 'conv': a grouped convolution has one Gram matrix per group"));
  g_clear_error(&err);
  /* inputs beyond float32's range (fc1's weights near its limit): the sums overflow; refused, not handed on */
  g_autoptr(PqModel) big = pq_model_copy(mlp);
  PqTensor *w1 = pq_test_random_tensor("w1", 2, (const int64_t[]){32, 784}, 13, 1e30f);
  pq_model_set_tensor(big, w1);
  pq_tensor_unref(w1);
  pq_options_set(o, "gram", "fc2", &err);
  g_assert_null(pq_compressor_run_full(tp, big, o, train, 0, cpu, &err));
  g_assert_nonnull(strstr(err->message, "layer 'fc2': the Gram matrix of its input 'hr' holds a non-finite value"));
}

/* The same packed tensor with F32 scales holding the values of its F16 ones: what a backend must compute */
static PqTensor *widened_scales(const PqTensor *q) {
  const PqTensor *s = pq_tensor_scales(q);
  int64_t n = pq_tensor_numel(s);
  g_autoptr(PqTensor) f = pq_tensor_new("scales", PQ_DTYPE_F32, 1, &n);
  g_assert_cmpint(pq_tensor_to_f32(s, pq_tensor_mutable_data(f)), ==, 0);
  PqTensor *t = pq_tensor_new_packed(pq_tensor_name(q), pq_tensor_bits(q), pq_tensor_ndim(q), pq_tensor_shape(q), pq_tensor_quant_scheme(q),
                                     pq_tensor_group_size(q), f, pq_tensor_zeros(q));
  memcpy(pq_tensor_mutable_data(t), pq_tensor_data(q), pq_tensor_nbytes(q));
  return t;
}

/* F16 scales (ABI 1.11): pq_packed_with_f16_scales rounds each scale to F16 and, given the weights, picks each
 * code nearest on that grid (else keeps the codes); scales F16 cannot hold to its precision are refused by
 * name; quant's scale_dtype=f16 stores them so (half the scales' bytes, a layer whose scales do not fit keeps
 * F32 and says so), GPTQ's codes are kept, and the CPU backend computes what the widened scales give, bit for bit. */
static void test_quant_f16_scales(void) {
  int64_t sh[2] = {6, 32};
  g_autoptr(PqTensor) wt = pq_test_random_tensor("w", 2, sh, 5, 0.3f);
  const float *w = pq_tensor_data(wt);
  PqPluginError e = {sizeof e, 0, {0}};
  for (int sym = 0; sym <= 1; sym++) {
    g_autoptr(PqTensor) q = pq_quantize_matrix("w", w, 2, sh, 4, PQ_QUANT_PER_GROUP, 8, sym, 20, &e);
    g_assert_nonnull(q);
    g_autoptr(PqTensor) h = pq_packed_with_f16_scales(q, w, &e), kept = pq_packed_with_f16_scales(q, NULL, &e);
    g_assert_nonnull(h);
    g_assert_nonnull(kept);
    g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(h)), ==, PQ_DTYPE_F16);
    g_assert_cmpuint(pq_tensor_nbytes(pq_tensor_scales(h)), ==, pq_tensor_nbytes(pq_tensor_scales(q)) / 2);
    g_assert_true(pq_tensor_zeros(h) == pq_tensor_zeros(q)); /* shared */
    g_assert_cmpmem(pq_tensor_data(kept), pq_tensor_nbytes(kept), pq_tensor_data(q), pq_tensor_nbytes(q));
    const float *s32 = pq_tensor_data(pq_tensor_scales(q));
    const uint16_t *s16 = pq_tensor_data(pq_tensor_scales(h));
    float deq[6 * 32];
    g_assert_cmpint(pq_tensor_to_f32(h, deq), ==, 0);
    for (int64_t r = 0; r < 6; r++)
      for (int64_t c = 0; c < 32; c++) {
        const int64_t g = r * 4 + c / 8;
        g_assert_cmpuint(s16[g], ==, pq_f32_to_f16(s32[g]));
        const float sc = pq_f16_to_f32(s16[g]), z = pq_tensor_zeros(h) ? ((const uint8_t *)pq_tensor_data(pq_tensor_zeros(h)))[g] : 8.0f;
        float best = INFINITY, want = 0;
        for (int code = 0; code < 16; code++) { /* the nearest of every value the grid holds */
          const float v = sc * ((float)code - z);
          if (fabsf(v - w[r * 32 + c]) < best) best = fabsf(v - w[r * 32 + c]), want = v;
        }
        if (deq[r * 32 + c] != want) g_error("sym %d, [%lld, %lld]: %g is not the nearest value %g on the F16 grid", sym, (long long)r, (long long)c, deq[r * 32 + c], want);
      }
  }
  /* a value the two grids round apart: scale 1 + 3·2^-12 becomes 1 + 2^-10 in F16, and 100.51 steps of the first
     are 100.49 of the second, so the codes chosen again (h) and the codes kept differ there */
  {
    const float s32 = 1.0f + 3.0f / 4096.0f, row[2] = {127.0f * s32, 100.51f * s32};
    int64_t ts[2] = {1, 2};
    g_autoptr(PqTensor) q = pq_quantize_matrix("v", row, 2, ts, 8, PQ_QUANT_PER_TENSOR, 0, 1, 0, &e);
    g_assert_cmpfloat(((const float *)pq_tensor_data(pq_tensor_scales(q)))[0], ==, s32);
    g_autoptr(PqTensor) h = pq_packed_with_f16_scales(q, row, &e), kept = pq_packed_with_f16_scales(q, NULL, &e);
    float dh[2], dk[2];
    pq_tensor_to_f32(h, dh);
    pq_tensor_to_f32(kept, dk);
    g_assert_cmpfloat(dh[1], ==, 100.0f * (1.0f + 1.0f / 1024.0f));
    g_assert_cmpfloat(dk[1], ==, 101.0f * (1.0f + 1.0f / 1024.0f));
  }
  /* scales F16 cannot hold: refused, naming the tensor, the scale and where it is; 0 is held */
  {
    const float bad[3] = {1e5f, 1e-6f, 0.0f};
    const char *what[3] = {"'t': scale 0 of 1 is 100000, above F16's normal range", "'t': scale 0 of 1 is 1e-06, below F16's normal range", NULL};
    for (int i = 0; i < 3; i++) {
      int64_t one = 1, ts[2] = {2, 4};
      g_autoptr(PqTensor) sc = pq_tensor_new("s", PQ_DTYPE_F32, 1, &one);
      ((float *)pq_tensor_mutable_data(sc))[0] = bad[i];
      g_autoptr(PqTensor) t = pq_tensor_new_packed("t", 8, 2, ts, PQ_QUANT_PER_TENSOR, 0, sc, NULL);
      PqPluginError te = {sizeof te, 0, {0}};
      g_autoptr(PqTensor) h = pq_packed_with_f16_scales(t, NULL, &te);
      if (!what[i]) {
        g_assert_nonnull(h);
        continue;
      }
      g_assert_null(h);
      g_assert_cmpint(te.code, ==, PQ_ERR_UNSUPPORTED);
      if (!strstr(te.message, what[i])) g_error("'%s' lacks '%s'", te.message, what[i]);
    }
    g_assert_null(pq_packed_with_f16_scales(wt, NULL, &e));
    g_assert_nonnull(strstr(e.message, "'w' is F32, not a packed tensor"));
  }
  /* the plugin: fc2's weights too small for F16 scales keep F32 and say so */
  g_autoptr(PqModel) m = pq_test_tiny_mlp(200, 80, 10, 21);
  float *w2 = pq_tensor_mutable_data(pq_model_tensor(m, "w2"));
  for (int64_t i = 0; i < 80 * 10; i++) w2[i] *= 1e-5f;
  g_autoptr(GError) err = NULL;
  const char *k32[] = {"bits", "4", "scheme", "per_group", "group_size", "8", NULL};
  const char *k16[] = {"bits", "4", "scheme", "per_group", "group_size", "8", "scale_dtype", "f16", NULL};
  g_autoptr(PqModel) q32 = compress(quant, m, k32, &err), q16 = compress(quant, m, k16, &err);
  g_assert_no_error(err);
  PqTensor *a = pq_model_tensor(q32, "w1"), *b = pq_model_tensor(q16, "w1");
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(b)), ==, PQ_DTYPE_F16);
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(pq_model_tensor(q16, "w2"))), ==, PQ_DTYPE_F32);
  g_assert_cmpint(pq_model_nbytes(q32) - pq_model_nbytes(q16), ==, 80 * 25 * 2); /* w1's 2000 scales, 2 bytes each */
  const PqLayerRecord *r1 = pq_model_record(q16, 0), *r2 = pq_model_record(q16, 1);
  g_assert_true(g_str_has_suffix(r1->detail, ", F16 scales"));
  g_assert_cmpint(r1->bytes_after, ==, (gint64)(pq_tensor_nbytes(b) + pq_tensor_nbytes(pq_tensor_scales(b))));
  g_assert_cmpint(r1->bytes_after, ==, pq_model_record(q32, 0)->bytes_after - 80 * 25 * 2);
  if (!strstr(r2->detail, ", F32 scales kept ('w2': scale ") || !strstr(r2->detail, "below F16's normal range"))
    g_error("fc2's record: '%s'", r2->detail);
  g_assert_cmpfloat(fabs(r1->sqnr_db - pq_model_record(q32, 0)->sqnr_db), <, 0.1);
  (void)a;
  /* the CPU backend: the model with F16 scales computes what the same codes with the widened scales compute */
  g_autoptr(PqModel) wide = pq_model_copy(q16);
  g_autoptr(PqTensor) bw = widened_scales(b);
  pq_model_set_tensor(wide, bw);
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(pq_model_tensor(wide, "w1"))), ==, PQ_DTYPE_F32);
  const char *kernels[3] = {"auto", "avx2", "portable"};
  for (int kk = 0; kk < 3; kk++)
    for (int64_t batch = 1; batch <= 9; batch += 8) {
      if (!strcmp(kernels[kk], "avx2") && !__builtin_cpu_supports("avx2")) continue;
      int64_t on;
      g_autofree float *y16 = forward_threads(q16, batch, kernels[kk], 1, &on), *yw = forward_threads(wide, batch, kernels[kk], 1, &on);
      if (memcmp(y16, yw, sizeof(float) * (size_t)(batch * on))) g_error("kernels=%s, batch %lld: F16 scales differ from their widened values", kernels[kk], (long long)batch);
    }
  /* saved and loaded (pqrun compress writes it so), the same outputs */
  g_autofree char *dir = g_dir_make_tmp("pq-f16-XXXXXX", NULL), *path = g_build_filename(dir, "q16.safetensors", NULL);
  g_assert_true(pq_model_save(q16, path, &err));
  g_autoptr(PqModel) back = pq_model_load(path, &err);
  g_assert_no_error(err);
  int64_t on;
  g_autofree float *y0 = forward(q16, 5, TRUE, &on), *y1 = forward(back, 5, TRUE, &on);
  g_assert_cmpmem(y0, sizeof(float) * (size_t)(5 * on), y1, sizeof(float) * (size_t)(5 * on));
  g_unlink(path);
  g_rmdir(dir);
  /* GPTQ: its codes kept, only the scales rounded (the record's comparison is with round-to-nearest on F16 scales too) */
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  g_autoptr(PqModel) mlp = pq_test_tiny_mlp(784, 32, 10, 4);
  PqModel *gq[2];
  for (int half = 0; half <= 1; half++) {
    g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(quant), "quant", &err);
    pq_options_add_layer_selection(o, &err);
    pq_options_set(o, "bits", "3", &err);
    pq_options_set(o, "method", "gptq", &err);
    pq_options_set(o, "scale_dtype", half ? "f16" : "f32", &err);
    g_assert_no_error(err);
    gq[half] = pq_compressor_run_full(quant, mlp, o, train, 128, cpu, &err);
    g_assert_no_error(err);
  }
  for (int l = 1; l <= 2; l++) {
    const char *name = l == 1 ? "w1" : "w2";
    PqTensor *g32 = pq_model_tensor(gq[0], name), *g16 = pq_model_tensor(gq[1], name);
    g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(g16)), ==, PQ_DTYPE_F16);
    g_assert_cmpmem(pq_tensor_data(g16), pq_tensor_nbytes(g16), pq_tensor_data(g32), pq_tensor_nbytes(g32));
  }
  g_assert_nonnull(strstr(pq_model_record(gq[1], 0)->detail, "GPTQ: output error"));
  g_assert_true(g_str_has_suffix(pq_model_record(gq[1], 0)->detail, ", F16 scales"));
  pq_model_unref(gq[0]);
  pq_model_unref(gq[1]);
}

/* Per-group scales quantized to 8 bits a row (pq_packed_with_quantized_scales, quant scale_dtype=q8): each
 * scale within half a step of the row's grid over [0, largest], the codes chosen again nearest on the scales
 * that result (or kept), the bytes what is stored (a byte a scale, an F32 scale and a zero point a row), and
 * the CPU backend computing what the dequantized scales give, bit for bit, saved and loaded too. */
static void test_quant_q8_scales(void) {
  int64_t sh[2] = {6, 48};
  g_autoptr(PqTensor) wt = pq_test_random_tensor("w", 2, sh, 8, 0.3f);
  float *wm = pq_tensor_mutable_data(wt);
  for (int64_t c = 0; c < 48; c++) wm[48 + c] *= 0.01f; /* a row of small weights: its own scale of scales */
  const float *w = wm;
  PqPluginError e = {sizeof e, 0, {0}};
  g_autoptr(PqTensor) q = pq_quantize_matrix("w", w, 2, sh, 4, PQ_QUANT_PER_GROUP, 8, 1, 20, &e);
  g_autoptr(PqTensor) h = pq_packed_with_quantized_scales(q, w, 8, &e), kept = pq_packed_with_quantized_scales(q, NULL, 8, &e);
  g_assert_nonnull(h);
  g_assert_nonnull(kept);
  const PqTensor *hs = pq_tensor_scales(h);
  g_assert_cmpint(pq_tensor_dtype(hs), ==, PQ_DTYPE_PACKED);
  g_assert_cmpint(pq_tensor_bits(hs), ==, 8);
  g_assert_cmpint(pq_tensor_rows(hs), ==, 6);
  g_assert_cmpint(pq_tensor_cols(hs), ==, 6);
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(hs)), ==, PQ_DTYPE_F32);
  g_assert_cmpint(pq_tensor_stored_bytes(h), ==, 6 * 24 + 36 + 6 * 4 + 6); /* codes, a byte a scale, a float and a zero point a row */
  g_assert_cmpint(pq_tensor_stored_bytes(q), ==, 6 * 24 + 36 * 4);
  g_assert_cmpmem(pq_tensor_data(kept), pq_tensor_nbytes(kept), pq_tensor_data(q), pq_tensor_nbytes(q));
  const float *s32 = pq_tensor_data(pq_tensor_scales(q));
  float s8[36], deq[6 * 48];
  g_assert_cmpint(pq_tensor_to_f32(hs, s8), ==, 0);
  g_assert_cmpint(pq_tensor_to_f32(h, deq), ==, 0);
  for (int64_t r = 0; r < 6; r++) {
    float top = 0;
    for (int g = 0; g < 6; g++) top = fmaxf(top, s32[r * 6 + g]);
    for (int g = 0; g < 6; g++)
      if (fabsf(s8[r * 6 + g] - s32[r * 6 + g]) > 0.5001f * top / 255.0f)
        g_error("row %lld, group %d: scale %g became %g, beyond half a step of %g", (long long)r, g, s32[r * 6 + g], s8[r * 6 + g], top / 255.0f);
    for (int64_t c = 0; c < 48; c++) {
      const float sc = s8[r * 6 + c / 8];
      float best = INFINITY, want = 0;
      for (int code = 0; code < 16; code++)
        if (fabsf(sc * (float)(code - 8) - w[r * 48 + c]) < best) best = fabsf(sc * (float)(code - 8) - w[r * 48 + c]), want = sc * (float)(code - 8);
      if (deq[r * 48 + c] != want) g_error("[%lld, %lld]: %g is not the nearest value %g on the grid", (long long)r, (long long)c, deq[r * 48 + c], want);
    }
  }
  g_assert_null(pq_packed_with_quantized_scales(h, NULL, 8, &e));
  g_assert_nonnull(strstr(e.message, "'w': its scales are packed already"));
  g_autoptr(PqTensor) qc = pq_quantize_matrix("c", w, 2, sh, 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &e);
  g_assert_null(pq_packed_with_quantized_scales(qc, NULL, 8, &e));
  g_assert_nonnull(strstr(e.message, "'c': only a packed tensor with per-group scales has rows of scales to quantize"));
  /* the plugin: per_group only; the records; the CPU backend against the dequantized scales */
  g_autoptr(PqModel) m = pq_test_tiny_mlp(200, 80, 10, 21);
  g_autoptr(GError) err = NULL;
  const char *kc[] = {"bits", "4", "scale_dtype", "q8", NULL};
  g_assert_null(compress(quant, m, kc, &err));
  g_assert_nonnull(strstr(err->message, "scale_dtype=q8 quantizes each row's group scales, so it needs scheme=per_group (scheme is per_channel)"));
  g_clear_error(&err);
  const char *k32[] = {"bits", "4", "scheme", "per_group", "group_size", "8", NULL};
  const char *k8[] = {"bits", "4", "scheme", "per_group", "group_size", "8", "scale_dtype", "q8", NULL};
  g_autoptr(PqModel) q32 = compress(quant, m, k32, &err), q8 = compress(quant, m, k8, &err);
  g_assert_no_error(err);
  /* w1 [80, 200]: 25 groups a row, 2000 scales of 4 bytes -> 1 byte each, plus 80 floats and 80 zero points */
  g_assert_cmpint(pq_model_nbytes(q32) - pq_model_nbytes(q8), ==, 2000 * 3 - 80 * 5 + 10 * 30 - 10 * 5);
  const PqLayerRecord *r1 = pq_model_record(q8, 0);
  g_assert_true(g_str_has_suffix(r1->detail, ", 8-bit scales"));
  g_assert_cmpint(r1->bytes_after, ==, pq_tensor_stored_bytes(pq_model_tensor(q8, "w1")));
  g_autoptr(PqModel) wide = pq_model_copy(q8);
  g_autoptr(PqTensor) bw = widened_scales(pq_model_tensor(q8, "w1"));
  pq_model_set_tensor(wide, bw);
  for (int64_t batch = 1; batch <= 9; batch += 8) {
    int64_t on;
    g_autofree float *y8 = forward_threads(q8, batch, "auto", 1, &on), *yw = forward_threads(wide, batch, "auto", 1, &on);
    if (memcmp(y8, yw, sizeof(float) * (size_t)(batch * on))) g_error("batch %lld: 8-bit scales differ from their dequantized values", (long long)batch);
  }
  g_autofree char *dir = g_dir_make_tmp("pq-q8-XXXXXX", NULL), *path = g_build_filename(dir, "q8.safetensors", NULL);
  g_assert_true(pq_model_save(q8, path, &err));
  g_autoptr(PqModel) back = pq_model_load(path, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_model_nbytes(back), ==, pq_model_nbytes(q8));
  int64_t on;
  g_autofree float *y0 = forward(q8, 5, TRUE, &on), *y1 = forward(back, 5, TRUE, &on);
  g_assert_cmpmem(y0, sizeof(float) * (size_t)(5 * on), y1, sizeof(float) * (size_t)(5 * on));
  g_unlink(path);
  g_rmdir(dir);
}

/* group_fit=divisor: a layer whose row group_size does not divide takes the largest divisor from half of it
 * (pq_quant_group_fit), and says so; without it, or where no such divisor exists, the error names the layer and
 * the way out */
static void test_quant_group_fit(void) {
  const int64_t fits[][3] = {{784, 32, 28}, {784, 64, 56}, {784, 128, 112}, {256, 32, 32}, {147, 128, 0}, {10, 32, 10}, {97, 8, 0}, {0, 8, 0}};
  for (size_t i = 0; i < G_N_ELEMENTS(fits); i++)
    if (pq_quant_group_fit(fits[i][0], fits[i][1]) != fits[i][2])
      g_error("pq_quant_group_fit(%lld, %lld) = %lld, not %lld", (long long)fits[i][0], (long long)fits[i][1],
              (long long)pq_quant_group_fit(fits[i][0], fits[i][1]), (long long)fits[i][2]);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(200, 80, 10, 21); /* rows of 200 and 80 values */
  g_autoptr(GError) err = NULL;
  const char *exact[] = {"bits", "4", "scheme", "per_group", "group_size", "64", NULL};
  g_assert_null(compress(quant, m, exact, &err));
  g_assert_nonnull(strstr(err->message, "layer 'fc1': group_size 64 does not divide its row length 200 (use a divisor of 200, group_fit=divisor, or exclude the layer)"));
  g_clear_error(&err);
  const char *fit[] = {"bits", "4", "scheme", "per_group", "group_size", "64", "group_fit", "divisor", NULL};
  g_autoptr(PqModel) q = compress(quant, m, fit, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_tensor_group_size(pq_model_tensor(q, "w1")), ==, 50);
  g_assert_cmpint(pq_tensor_group_size(pq_model_tensor(q, "w2")), ==, 40);
  g_assert_nonnull(strstr(pq_model_record(q, 0)->detail, "4-bit per_group group 50 (fitted to the row) symmetric"));
  g_autoptr(PqModel) prime = pq_test_tiny_mlp(97, 8, 2, 3); /* rows of 97 values: no divisor but 1 and 97 */
  g_assert_null(compress(quant, prime, fit, &err));
  g_assert_nonnull(strstr(err->message, "layer 'fc1': its row length 97 has no divisor from 32 to 64 for group_fit=divisor"));
  g_clear_error(&err);
  /* a group size that divides: taken as it is, no word of fitting */
  const char *whole[] = {"bits", "4", "scheme", "per_group", "group_size", "40", "group_fit", "divisor", NULL};
  g_autoptr(PqModel) q40 = compress(quant, m, whole, &err);
  g_assert_no_error(err);
  g_assert_null(strstr(pq_model_record(q40, 0)->detail, "fitted"));
}

/* quant method=gptq on real data: the layers' outputs on held-out images are closer to the float model's
 * than round-to-nearest's at 3 bits (a linear MLP and a CNN), the record says so, and without calibration
 * samples it is refused. */
static void test_gptq_model(void) {
  g_autoptr(PqDataset) train = train_set();
  if (!train) return;
  g_autoptr(GError) err = NULL;
  int64_t xs[4] = {-1, 1, 28, 28}, ws[4] = {8, 1, 5, 5}, st[2] = {2, 2}, pads[4] = {2, 2, 2, 2};
  PqModel *models[2] = {pq_test_tiny_mlp(784, 64, 10, 8), pq_test_conv_model(xs, ws, st, pads, 6)};
  for (int mi = 0; mi < 2; mi++) {
    PqModel *m = models[mi];
    double out_err[2];
    for (int gptq = 0; gptq <= 1; gptq++) {
      g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(quant), "quant", &err);
      pq_options_add_layer_selection(o, &err);
      pq_options_set(o, "bits", "3", &err);
      pq_options_set(o, "method", gptq ? "gptq" : "rtn", &err);
      g_assert_no_error(err);
      g_autoptr(PqModel) q = pq_compressor_run_full(quant, m, o, train, 256, cpu, &err);
      g_assert_no_error(err);
      if (gptq) g_assert_nonnull(strstr(pq_model_record(q, 0)->detail, "GPTQ: output error"));
      /* the first layer's output on training images 1000..1099, which calibration did not see */
      const char *value = mi ? "y" : "h";
      g_autoptr(PqModel) a = pq_model_copy(m), b = pq_model_copy(q);
      if (!mi) {
        pq_graph_add_output(pq_model_graph(a), value);
        pq_graph_add_output(pq_model_graph(b), value);
      }
      g_autoptr(PqBackend) ba = pq_backend_prepare(cpu, a, 1, 100, NULL, &err), bb = pq_backend_prepare(cpu, b, 1, 100, NULL, &err);
      g_assert_no_error(err);
      int64_t per = mi ? 8 * 14 * 14 : 64;
      g_autofree float *x = g_new(float, 100 * 784), *ya = g_new(float, 100 * 10), *yb = g_new(float, 100 * 10), *ha = g_new(float, 100 * per),
                       *hb = g_new(float, 100 * per);
      pq_dataset_get_batch(train, 1000, 100, x, NULL);
      PqTensorView in = {sizeof in, PQ_DTYPE_F32, mi ? 4 : 2, 0, {100, mi ? 1 : 784, 28, 28}, x};
      PqTensorView oa[2] = {{sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {100, 10}, ya}, {sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {100, 64}, ha}};
      PqTensorView ob[2] = {{sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {100, 10}, yb}, {sizeof(PqTensorView), PQ_DTYPE_F32, 2, 0, {100, 64}, hb}};
      if (mi) {
        PqTensorView c = {sizeof c, PQ_DTYPE_F32, 4, 0, {100, 8, 14, 14}, ha};
        oa[0] = c;
        c.data = hb;
        ob[0] = c;
      }
      g_assert_true(pq_backend_run(ba, &in, 1, oa, mi ? 1 : 2, &err));
      g_assert_true(pq_backend_run(bb, &in, 1, ob, mi ? 1 : 2, &err));
      g_assert_no_error(err);
      pq_error_stats(ha, hb, 100 * per, &out_err[gptq], NULL);
    }
    g_test_message("%s, 3-bit: held-out output error round to nearest %.4f, GPTQ %.4f", mi ? "conv" : "fc1", out_err[0], out_err[1]);
    g_assert_cmpfloat(out_err[1], <, 0.8 * out_err[0]);
    pq_model_unref(m);
  }
  /* sequential: the first layer's inputs are the model's either way (the same codes); the second layer's come
     through the quantized first (other codes) */
  {
    g_autoptr(PqModel) mlp = pq_test_tiny_mlp(784, 32, 10, 4);
    PqModel *q[2];
    for (int seq = 0; seq <= 1; seq++) {
      g_autoptr(PqOptions) so = pq_options_new(pq_plugin_options_schema(quant), "quant", &err);
      pq_options_add_layer_selection(so, &err);
      pq_options_set(so, "bits", "2", &err);
      pq_options_set(so, "method", "gptq", &err);
      pq_options_set(so, "sequential", seq ? "true" : "false", &err);
      q[seq] = pq_compressor_run_full(quant, mlp, so, train, 128, cpu, &err);
      g_assert_no_error(err);
    }
    g_assert_nonnull(strstr(pq_model_record(q[1], 1)->detail, "GPTQ sequential"));
    PqTensor *a1 = pq_model_tensor(q[0], "w1"), *b1 = pq_model_tensor(q[1], "w1"), *a2 = pq_model_tensor(q[0], "w2"), *b2 = pq_model_tensor(q[1], "w2");
    g_assert_cmpmem(pq_tensor_data(a1), pq_tensor_nbytes(a1), pq_tensor_data(b1), pq_tensor_nbytes(b1));
    g_assert_true(memcmp(pq_tensor_data(a2), pq_tensor_data(b2), pq_tensor_nbytes(a2)) != 0);
    pq_model_unref(q[0]);
    pq_model_unref(q[1]);
  }
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(quant), "quant", &err);
  pq_options_add_layer_selection(o, &err);
  pq_options_set(o, "method", "gptq", &err);
  /* a grouped conv (no one Gram matrix, and no packed kernel to run it) is left as it was, and the record says why */
  int64_t gxs[4] = {-1, 4, 14, 14}, gws[4] = {4, 2, 3, 3}, one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
  g_autoptr(PqModel) gc = pq_test_conv_model(gxs, gws, one, zero, 5);
  pq_node_set_int(pq_graph_node(pq_model_graph(gc), 0), "groups", 2);
  g_autoptr(PqModel) gq = pq_compressor_run_full(quant, gc, o, train, 64, cpu, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_model_record(gq, 0)->detail, ==, "grouped convolution (packed conv kernels run with groups = 1)");
  g_assert_cmpint(pq_tensor_dtype(pq_model_tensor(gq, "cw")), ==, PQ_DTYPE_F32);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 16, 10, 8);
  g_assert_null(pq_compressor_run_full(quant, m, o, NULL, 0, cpu, &err));
  g_assert_nonnull(strstr(err->message, "needs calibration samples"));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  reg = pq_registry_new();
  cpu = pq_test_cpu_backend(reg);
  g_autoptr(GError) err = NULL;
  const char *paths[7] = {QUANT_PLUGIN, LOW_RANK_PLUGIN, CIRCULANT_PLUGIN, TENSOR_TRAIN_PLUGIN, PRUNE_PLUGIN, TUCKER_PLUGIN, CP_PLUGIN};
  PqPlugin **slots[7] = {&quant, &low_rank, &circulant, &tensor_train, &prune, &tucker, &cp};
  for (int i = 0; i < 7; i++) {
    *slots[i] = pq_registry_load(reg, paths[i], &err);
    g_assert_no_error(err); /* (each: an error is never set over another) */
  }
  g_test_add_func("/compress/quant-forms", test_quant_forms);
  g_test_add_func("/compress/quant-backend-memory", test_quant_backend_memory);
  g_test_add_func("/compress/quant-large-groups", test_quant_large_groups);
  g_test_add_func("/compress/quant-lane-blocks", test_quant_lane_blocks);
  g_test_add_func("/compress/quant-saved", test_quant_saved);
  g_test_add_func("/compress/quant-f16-scales", test_quant_f16_scales);
  g_test_add_func("/compress/quant-q8-scales", test_quant_q8_scales);
  g_test_add_func("/compress/quant-group-fit", test_quant_group_fit);
  g_test_add_func("/compress/quant-bad-input", test_quant_bad);
  g_test_add_func("/compress/quant-static-activations", test_quant_static);
  g_test_add_func("/compress/quantize-matrix", test_quantize_matrix);
  g_test_add_func("/compress/quantize-codes-reference", test_quantize_codes_reference);
  g_test_add_func("/compress/svd", test_svd);
  g_test_add_func("/compress/low-rank", test_low_rank);
  g_test_add_func("/compress/low-rank-conv", test_low_rank_conv);
  g_test_add_func("/compress/tucker", test_tucker);
  g_test_add_func("/compress/decompose-twice", test_decompose_twice);
  g_test_add_func("/compress/low-rank-overflow", test_low_rank_overflow);
  g_test_add_func("/compress/bias-correct", test_bias_correct);
  g_test_add_func("/compress/equalize", test_equalize);
  g_test_add_func("/compress/equalize-awq", test_equalize_awq);
  g_test_add_func("/compress/cp", test_cp);
  g_test_add_func("/compress/circulant", test_circulant);
  g_test_add_func("/compress/tensor-train", test_tensor_train);
  g_test_add_func("/compress/prune", test_prune);
  g_test_add_func("/compress/threads", test_threads);
  g_test_add_func("/compress/quant-conv", test_quant_conv);
  g_test_add_func("/compress/nan-weights", test_nan_everywhere);
  g_test_add_func("/compress/pipeline", test_pipeline);
  g_test_add_func("/compress/pipeline-original", test_pipeline_original);
  g_test_add_func("/compress/finetune", test_finetune);
  g_test_add_func("/compress/finetune-cnn", test_finetune_cnn);
  g_test_add_func("/compress/finetune-residual", test_finetune_residual);
  g_test_add_func("/compress/finetune-binary-ops", test_finetune_binary);
  g_test_add_func("/compress/finetune-soft-targets", test_finetune_soft);
  g_test_add_func("/compress/finetune-qat", test_finetune_qat);
  g_test_add_func("/compress/finetune-layer-norm", test_finetune_layer_norm);
  g_test_add_func("/compress/finetune-attention", test_finetune_attention);
  g_test_add_func("/compress/finetune-softmax-inside", test_finetune_softmax_inside);
  g_test_add_func("/compress/finetune-mean-pool", test_finetune_mean_pool);
  g_test_add_func("/compress/finetune-structured", test_finetune_structured);
  g_test_add_func("/compress/finetune-grouped-conv", test_finetune_grouped_conv);
  g_test_add_func("/compress/finetune-conv-transpose", test_finetune_conv_transpose);
  g_test_add_func("/compress/finetune-resize-pad", test_finetune_resize_pad);
  g_test_add_func("/compress/finetune-max-pool-pow", test_finetune_max_pool_pow);
  g_test_add_func("/compress/data-aware", test_data_aware);
  g_test_add_func("/compress/gptq-matrix", test_gptq_matrix);
  g_test_add_func("/compress/calibration-gram", test_calibration_gram);
  g_test_add_func("/compress/gptq-model", test_gptq_model);
  int rc = g_test_run();
  pq_registry_free(reg);
  return rc;
}
