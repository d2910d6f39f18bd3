/* cpu.c — the CPU backend: every op against a plain reference, batching, fusion and buffer reuse. */
#include "testutil.h"
#include "../plugins/probes/latency/slower.h"

#include <pquant/pq-activation.h>

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static PqRegistry *reg;
static PqPlugin *cpu;

static void fill(float *x, int64_t n, guint32 seed) {
  GRand *r = g_rand_new_with_seed(seed);
  for (int64_t i = 0; i < n; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  g_rand_free(r);
}

static void assert_close(const float *a, const float *b, int64_t n, float tol) {
  for (int64_t i = 0; i < n; i++)
    if (!(fabsf(a[i] - b[i]) <= tol * (1.0f + fabsf(b[i])))) g_error("element %" G_GINT64_FORMAT ": %g != %g", i, a[i], b[i]);
}

/* A graph x → op(x, weights...) → y; returns the model. */
static PqModel *single(const char *op, int xnd, const int64_t *xs, int n_w, PqTensor **ws, PqNode **node) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  pq_graph_add_input(g, "x", xnd, xs);
  const char *ins[6] = {"x"}, *outs[1] = {"y"};
  for (int i = 0; i < n_w; i++) {
    ins[i + 1] = pq_tensor_name(ws[i]);
    pq_model_set_tensor(m, ws[i]);
  }
  *node = pq_graph_add_node(g, op, "n", (size_t)(n_w + 1), ins, 1, outs);
  pq_graph_add_output(g, "y");
  return m;
}

/* Runs the model at `batch` on the CPU backend; returns the output (owned). */
static float *run(PqModel *m, const float *x, int64_t batch, int64_t max_batch, int64_t *out_numel) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, max_batch, NULL, &err);
  g_assert_no_error(err);
  *out_numel = pq_backend_output_numel(b);
  float *y = g_new0(float, batch * *out_numel);
  g_assert_true(pq_backend_run_f32(b, x, batch, y, &err));
  g_assert_no_error(err);
  return y;
}

static void test_linear(void) {
  for (int64_t batch = 1; batch <= 5; batch += 4) {
    int64_t xs[2] = {-1, 7}, wsh[2] = {5, 7}, bsh[1] = {5}, on;
    g_autoptr(PqTensor) w = pq_test_random_tensor("w", 2, wsh, 1, 1), b = pq_test_random_tensor("b", 1, bsh, 2, 1);
    PqTensor *ws[2] = {w, b};
    PqNode *n;
    g_autoptr(PqModel) m = single("linear", 2, xs, 2, ws, &n);
    float x[35];
    fill(x, batch * 7, 3);
    g_autofree float *y = run(m, x, batch, 8, &on);
    const float *W = pq_tensor_data(w), *B = pq_tensor_data(b);
    float ref[25];
    for (int64_t r = 0; r < batch; r++)
      for (int o = 0; o < 5; o++) {
        double acc = B[o];
        for (int k = 0; k < 7; k++) acc += (double)x[r * 7 + k] * W[o * 7 + k];
        ref[r * 5 + o] = (float)acc;
      }
    assert_close(y, ref, batch * 5, 1e-5f);
  }
}

static void test_matmul_add_softmax(void) {
  int64_t xs[3] = {-1, 3, 4}, wsh[2] = {4, 6}, on;
  g_autoptr(PqTensor) w = pq_test_random_tensor("w", 2, wsh, 4, 1);
  PqTensor *ws[1] = {w};
  PqNode *n;
  g_autoptr(PqModel) m = single("matmul", 3, xs, 1, ws, &n);
  float x[24];
  fill(x, 24, 5);
  g_autofree float *y = run(m, x, 2, 2, &on);
  const float *W = pq_tensor_data(w);
  float ref[36];
  for (int r = 0; r < 6; r++)
    for (int c = 0; c < 6; c++) {
      double acc = 0;
      for (int k = 0; k < 4; k++) acc += (double)x[r * 4 + k] * W[k * 6 + c];
      ref[r * 6 + c] = (float)acc;
    }
  assert_close(y, ref, 36, 1e-5f);

  /* add with broadcasting: [N,2,3,4] + [3,1] */
  int64_t xa[4] = {-1, 2, 3, 4}, bsh[2] = {3, 1};
  g_autoptr(PqTensor) bb = pq_test_random_tensor("bb", 2, bsh, 6, 1);
  PqTensor *wa[1] = {bb};
  g_autoptr(PqModel) ma = single("add", 4, xa, 1, wa, &n);
  float xv[48];
  fill(xv, 48, 7);
  g_autofree float *ya = run(ma, xv, 2, 3, &on);
  const float *Bv = pq_tensor_data(bb);
  for (int i = 0; i < 48; i++) g_assert_cmpfloat_with_epsilon(ya[i], xv[i] + Bv[(i / 4) % 3], 1e-6);

  /* softmax over axis 1 of [N,4,3] */
  int64_t xsm[3] = {-1, 4, 3};
  g_autoptr(PqModel) ms = single("softmax", 3, xsm, 0, NULL, &n);
  pq_node_set_int(n, "axis", 1);
  float xs2[24];
  fill(xs2, 24, 8);
  g_autofree float *ys = run(ms, xs2, 2, 2, &on);
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 3; i++) {
      double sum = 0;
      for (int j = 0; j < 4; j++) sum += exp(xs2[b * 12 + j * 3 + i]);
      for (int j = 0; j < 4; j++) g_assert_cmpfloat_with_epsilon(ys[b * 12 + j * 3 + i], exp(xs2[b * 12 + j * 3 + i]) / sum, 1e-6);
    }
}

typedef struct {
  int64_t c, h, w, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups;
} ConvCase;

static void ref_conv(const ConvCase *k, const float *x, const float *w, const float *b, float *y, int64_t batch, int64_t oh,
                     int64_t ow) {
  int64_t cg = k->c / k->groups, ocg = k->oc / k->groups;
  for (int64_t n = 0; n < batch; n++)
    for (int64_t o = 0; o < k->oc; o++)
      for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++) {
          double acc = b ? b[o] : 0;
          int64_t g = o / ocg;
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t i = 0; i < k->kh; i++)
              for (int64_t j = 0; j < k->kw; j++) {
                int64_t iy = oy * k->sh - k->pt + i * k->dh, ix = ox * k->sw - k->pl + j * k->dw;
                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w) continue;
                acc += (double)x[((n * k->c + g * cg + ci) * k->h + iy) * k->w + ix] * w[((o * cg + ci) * k->kh + i) * k->kw + j];
              }
          y[((n * k->oc + o) * oh + oy) * ow + ox] = (float)acc;
        }
}

static void test_conv(void) {
  const ConvCase cases[] = {
      {3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},  /* same padding */
      {4, 9, 8, 6, 3, 2, 2, 1, 1, 2, 1, 0, 0, 1, 2},  /* strides, dilations, asymmetric pads, groups */
      {5, 4, 4, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},  /* 1x1: direct GEMM */
      {4, 6, 6, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 4},  /* depthwise */
      {5, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5},  /* depthwise, same padding (a MobileNet block) */
      {3, 8, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3},  /* depthwise, stride 2, two outputs a channel */
      {2, 9, 10, 2, 3, 2, 1, 3, 2, 2, 2, 0, 1, 3, 2}, /* depthwise, dilated, uneven strides and pads */
      {3, 5, 5, 3, 5, 5, 1, 1, 1, 1, 3, 3, 3, 3, 3},  /* depthwise, a kernel as wide as the input, pads beyond it */
      {4, 7, 7, 4, 3, 1, 1, 1, 2, 1, 2, 0, 2, 0, 4},  /* depthwise 3x1, dilated (a CP factor): narrow planes as one row */
      {4, 7, 6, 8, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 4},  /* depthwise 1x3, two outputs a channel */
      {2, 15, 15, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2}, /* depthwise, 15 wide: the widest narrow plane */
      {3, 11, 9, 3, 3, 1, 2, 1, 1, 1, 1, 0, 1, 0, 3},  /* depthwise 3x1, vertical stride 2 (a CP factor of a strided conv) */
      {4, 14, 13, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4}, /* depthwise, stride 2, odd width: even and odd half planes */
      {2, 9, 40, 4, 3, 4, 1, 2, 2, 1, 2, 1, 2, 2, 2},  /* depthwise, horizontal stride 2, wide, even kernel width, dilated rows */
  };
  for (size_t ci = 0; ci < G_N_ELEMENTS(cases); ci++) {
    const ConvCase *k = &cases[ci];
    int64_t xs[4] = {-1, k->c, k->h, k->w}, wsh[4] = {k->oc, k->c / k->groups, k->kh, k->kw}, bsh[1] = {k->oc}, on;
    g_autoptr(PqTensor) w = pq_test_random_tensor("w", 4, wsh, 10 + (guint32)ci, 1), b = pq_test_random_tensor("b", 1, bsh, 20, 1);
    PqTensor *ws[2] = {w, b};
    PqNode *n;
    g_autoptr(PqModel) m = single("conv2d", 4, xs, 2, ws, &n);
    int64_t st[2] = {k->sh, k->sw}, dl[2] = {k->dh, k->dw}, pads[4] = {k->pt, k->pl, k->pb, k->pr};
    pq_node_set_ints(n, "strides", 2, st);
    pq_node_set_ints(n, "dilations", 2, dl);
    pq_node_set_ints(n, "pads", 4, pads);
    pq_node_set_int(n, "groups", k->groups);
    int64_t batch = 3, in_n = batch * k->c * k->h * k->w;
    g_autofree float *x = g_new(float, in_n);
    fill(x, in_n, 30);
    g_autofree float *y = run(m, x, batch, 4, &on);
    int64_t oh = (k->h + k->pt + k->pb - k->dh * (k->kh - 1) - 1) / k->sh + 1;
    int64_t ow = (k->w + k->pl + k->pr - k->dw * (k->kw - 1) - 1) / k->sw + 1;
    g_assert_cmpint(on, ==, k->oc * oh * ow);
    g_autofree float *ref = g_new(float, batch * on);
    ref_conv(k, x, pq_tensor_data(w), pq_tensor_data(b), ref, batch, oh, ow);
    assert_close(y, ref, batch * on, 1e-4f);
  }
  /* a depthwise layer large enough to be split over the backend's threads (3 here): the same results */
  const ConvCase big = {32, 40, 40, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 32};
  int64_t xs[4] = {-1, 32, 40, 40}, wsh[4] = {32, 1, 3, 3}, bsh[1] = {32};
  g_autoptr(PqTensor) w = pq_test_random_tensor("w", 4, wsh, 17, 1), b = pq_test_random_tensor("b", 1, bsh, 18, 1);
  PqTensor *ws[2] = {w, b};
  PqNode *n;
  g_autoptr(PqModel) m = single("conv2d", 4, xs, 2, ws, &n);
  pq_node_set_ints(n, "pads", 4, (const int64_t[]){1, 1, 1, 1});
  pq_node_set_int(n, "groups", 32);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) be = pq_backend_prepare(cpu, m, 3, 3, NULL, &err);
  g_assert_no_error(err);
  int64_t in_n = 3 * 32 * 1600;
  g_autofree float *x = g_new(float, in_n), *y = g_new(float, in_n), *ref = g_new(float, in_n);
  fill(x, in_n, 31);
  g_assert_true(pq_backend_run_f32(be, x, 3, y, &err));
  ref_conv(&big, x, pq_tensor_data(w), pq_tensor_data(b), ref, 3, 40, 40);
  assert_close(y, ref, in_n, 1e-4f);
}

static void test_pool_bn_gap(void) {
  int64_t xs[4] = {-1, 2, 5, 5}, on;
  float x[100];
  fill(x, 100, 40);
  PqNode *n;
  /* max pool 2x2 stride 2 with ceil_mode: 3x3 output, the last window partial */
  g_autoptr(PqModel) mm = single("maxpool2d", 4, xs, 0, NULL, &n);
  int64_t k2[2] = {2, 2};
  pq_node_set_ints(n, "kernel", 2, k2);
  pq_node_set_int(n, "ceil_mode", 1);
  g_autofree float *ym = run(mm, x, 2, 2, &on);
  g_assert_cmpint(on, ==, 2 * 3 * 3);
  for (int nc = 0; nc < 4; nc++)
    for (int oy = 0; oy < 3; oy++)
      for (int ox = 0; ox < 3; ox++) {
        float best = -INFINITY;
        for (int i = 0; i < 2; i++)
          for (int j = 0; j < 2; j++) {
            int iy = oy * 2 + i, ix = ox * 2 + j;
            if (iy < 5 && ix < 5) best = fmaxf(best, x[nc * 25 + iy * 5 + ix]);
          }
        g_assert_cmpfloat(ym[nc * 9 + oy * 3 + ox], ==, best);
      }
  /* average pool 3x3 stride 1 pad 1, with and without the padding in the divisor */
  for (int include = 0; include <= 1; include++) {
    g_autoptr(PqModel) ma = single("avgpool2d", 4, xs, 0, NULL, &n);
    int64_t k3[2] = {3, 3}, s1[2] = {1, 1}, p1[4] = {1, 1, 1, 1};
    pq_node_set_ints(n, "kernel", 2, k3);
    pq_node_set_ints(n, "strides", 2, s1);
    pq_node_set_ints(n, "pads", 4, p1);
    pq_node_set_int(n, "count_include_pad", include);
    g_autofree float *ya = run(ma, x, 2, 2, &on);
    for (int nc = 0; nc < 4; nc++)
      for (int oy = 0; oy < 5; oy++)
        for (int ox = 0; ox < 5; ox++) {
          double acc = 0;
          int cnt = 0;
          for (int i = -1; i <= 1; i++)
            for (int j = -1; j <= 1; j++) {
              int iy = oy + i, ix = ox + j;
              if (iy < 0 || iy >= 5 || ix < 0 || ix >= 5) continue;
              acc += x[nc * 25 + iy * 5 + ix];
              cnt++;
            }
          g_assert_cmpfloat_with_epsilon(ya[nc * 25 + oy * 5 + ox], acc / (include ? 9 : cnt), 1e-6);
        }
  }
  /* global average pool */
  g_autoptr(PqModel) mg = single("global_avg_pool", 4, xs, 0, NULL, &n);
  g_autofree float *yg = run(mg, x, 2, 2, &on);
  for (int nc = 0; nc < 4; nc++) {
    double acc = 0;
    for (int i = 0; i < 25; i++) acc += x[nc * 25 + i];
    g_assert_cmpfloat_with_epsilon(yg[nc], acc / 25, 1e-6);
  }
  /* batch norm */
  int64_t c2[1] = {2};
  g_autoptr(PqTensor) sc = pq_test_random_tensor("scale", 1, c2, 50, 1), bi = pq_test_random_tensor("bias", 1, c2, 51, 1);
  g_autoptr(PqTensor) mean = pq_test_random_tensor("mean", 1, c2, 52, 1), var = pq_test_random_tensor("var", 1, c2, 53, 1);
  float *vd = pq_tensor_mutable_data(var);
  vd[0] = fabsf(vd[0]) + 0.1f;
  vd[1] = fabsf(vd[1]) + 0.1f;
  PqTensor *ws[4] = {sc, bi, mean, var};
  g_autoptr(PqModel) mb = single("batch_norm", 4, xs, 4, ws, &n);
  pq_node_set_float(n, "epsilon", 1e-3);
  g_autofree float *yb = run(mb, x, 2, 2, &on);
  const float *S = pq_tensor_data(sc), *Bi = pq_tensor_data(bi), *M = pq_tensor_data(mean);
  for (int i = 0; i < 100; i++) {
    int ch = (i / 25) % 2;
    double ref = (x[i] - M[ch]) / sqrt(vd[ch] + 1e-3) * S[ch] + Bi[ch];
    g_assert_cmpfloat_with_epsilon(yb[i], ref, 1e-5);
  }
}

/* A small CNN with flatten, a diamond (two branches added) and fused relus, against the same ops run
 * one by one as separate single-op models. Batch sizes below max_batch reuse the planned buffers. */
static void test_network(void) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 1, 6, 6}, w1[4] = {4, 1, 3, 3}, b1[1] = {4}, wl[2] = {10, 36}, bl[1] = {10}, wl2[2] = {10, 10};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *ts[5] = {pq_test_random_tensor("c1.w", 4, w1, 60, 1), pq_test_random_tensor("c1.b", 1, b1, 61, 1),
                     pq_test_random_tensor("fc.w", 2, wl, 62, 0.3f), pq_test_random_tensor("fc.b", 1, bl, 63, 1),
                     pq_test_random_tensor("fc2.w", 2, wl2, 64, 0.3f)};
  for (int i = 0; i < 5; i++) {
    pq_model_set_tensor(m, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  const char *n1i[3] = {"x", "c1.w", "c1.b"}, *n1o[1] = {"c1"};
  PqNode *conv = pq_graph_add_node(g, "conv2d", "conv", 3, n1i, 1, n1o);
  int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
  pq_node_set_ints(conv, "pads", 4, pads);
  const char *r1i[1] = {"c1"}, *r1o[1] = {"r1"};
  pq_graph_add_node(g, "relu", "relu1", 1, r1i, 1, r1o);
  const char *pi[1] = {"r1"}, *po[1] = {"p1"};
  PqNode *pool = pq_graph_add_node(g, "maxpool2d", "pool", 1, pi, 1, po);
  pq_node_set_ints(pool, "kernel", 2, k2);
  const char *fi[1] = {"p1"}, *fo[1] = {"f"};
  pq_graph_add_node(g, "flatten", "flat", 1, fi, 1, fo);
  const char *li[3] = {"f", "fc.w", "fc.b"}, *lo[1] = {"h"};
  pq_graph_add_node(g, "linear", "fc", 3, li, 1, lo);
  const char *ri[1] = {"h"}, *ro[1] = {"hr"};
  pq_graph_add_node(g, "relu", "relu2", 1, ri, 1, ro);
  const char *l2i[2] = {"hr", "fc2.w"}, *l2o[1] = {"h2"};
  pq_graph_add_node(g, "linear", "fc2", 2, l2i, 1, l2o);
  const char *ai[2] = {"h2", "hr"}, *ao[1] = {"sum"}; /* diamond: hr is read twice, so relu2 is not fused */
  pq_graph_add_node(g, "add", "skip", 2, ai, 1, ao);
  const char *si[1] = {"sum"}, *so[1] = {"y"};
  pq_graph_add_node(g, "softmax", "sm", 1, si, 1, so);
  pq_graph_add_output(g, "y");

  int64_t batch = 3;
  float x[3 * 36];
  fill(x, 3 * 36, 70);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) be = pq_backend_prepare(cpu, m, 1, 8, NULL, &err);
  g_assert_no_error(err);
  float y[30], y1[10];
  g_assert_true(pq_backend_run_f32(be, x, batch, y, &err));
  g_assert_true(pq_backend_run_f32(be, x + 36, 1, y1, &err)); /* batch 1 equals the same sample in batch 3 */
  assert_close(y1, y + 10, 10, 1e-5f);

  /* reference: the same computation in plain C */
  const float *W1 = pq_tensor_data(pq_model_tensor(m, "c1.w")), *B1 = pq_tensor_data(pq_model_tensor(m, "c1.b"));
  const float *WL = pq_tensor_data(pq_model_tensor(m, "fc.w")), *BL = pq_tensor_data(pq_model_tensor(m, "fc.b"));
  const float *W2 = pq_tensor_data(pq_model_tensor(m, "fc2.w"));
  ConvCase k = {1, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  float c1[3 * 144];
  ref_conv(&k, x, W1, B1, c1, batch, 6, 6);
  for (int i = 0; i < 3 * 144; i++) c1[i] = fmaxf(c1[i], 0);
  for (int n = 0; n < 3; n++) {
    float p[36], h[10], s[10];
    for (int c = 0; c < 4; c++)
      for (int oy = 0; oy < 3; oy++)
        for (int ox = 0; ox < 3; ox++) {
          float best = -INFINITY;
          for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) best = fmaxf(best, c1[((n * 4 + c) * 6 + oy * 2 + i) * 6 + ox * 2 + j]);
          p[(c * 3 + oy) * 3 + ox] = best;
        }
    for (int o = 0; o < 10; o++) {
      double acc = BL[o];
      for (int i = 0; i < 36; i++) acc += (double)p[i] * WL[o * 36 + i];
      h[o] = fmaxf((float)acc, 0);
    }
    double mx = -INFINITY, sum = 0;
    for (int o = 0; o < 10; o++) {
      double acc = 0;
      for (int i = 0; i < 10; i++) acc += (double)h[i] * W2[o * 10 + i];
      s[o] = (float)acc + h[o];
      mx = fmax(mx, s[o]);
    }
    for (int o = 0; o < 10; o++) sum += exp(s[o] - mx);
    for (int o = 0; o < 10; o++) g_assert_cmpfloat_with_epsilon(y[n * 10 + o], exp(s[o] - mx) / sum, 1e-5);
  }
  PqMemoryCounters mc;
  g_assert_true(pq_backend_memory(be, &mc, &err));
  g_assert_cmpint(mc.weights_bytes, ==, pq_model_nbytes(m));
  g_assert_cmpint(mc.peak_bytes, >, mc.weights_bytes);
  pq_model_unref(m);
}

/* The activation ops against double-precision formulas written out here, over a range that reaches both
 * saturated ends; a bad attribute is refused when the graph is checked. */
static void test_activations(void) {
  const struct {
    const char *op, *attr;
    double a, b;   /* attributes set (NAN: left at the default) */
    double da, db; /* the defaults the reference uses when unset */
  } cases[] = {
      {"sigmoid", NULL, NAN, NAN, 0, 0},       {"tanh", NULL, NAN, NAN, 0, 0},
      {"leaky_relu", "alpha", 0.1, NAN, 0.01, 0}, {"leaky_relu", NULL, NAN, NAN, 0.01, 0},
      {"elu", "alpha", 0.5, NAN, 1, 0},         {"selu", NULL, NAN, NAN, 1.6732632423543772, 1.0507009873554805},
      {"clip", "min", -0.5, 1.5, 0, 0},         {"hard_sigmoid", NULL, NAN, NAN, 0.2, 0.5},
      {"hard_swish", NULL, NAN, NAN, 0, 0},     {"softplus", NULL, NAN, NAN, 0, 0},
      {"gelu", NULL, NAN, NAN, 0, 0},           {"gelu", "approximate", NAN, NAN, 1, 0},
      {"abs", NULL, NAN, NAN, 0, 0},            {"neg", NULL, NAN, NAN, 0, 0},
      {"exp", NULL, NAN, NAN, 0, 0},            {"log", NULL, NAN, NAN, 0, 0},
      {"sqrt", NULL, NAN, NAN, 0, 0},           {"reciprocal", NULL, NAN, NAN, 0, 0},
      {"erf", NULL, NAN, NAN, 0, 0},            {"floor", NULL, NAN, NAN, 0, 0},
      {"ceil", NULL, NAN, NAN, 0, 0},           {"round", NULL, NAN, NAN, 0, 0},
      {"sign", NULL, NAN, NAN, 0, 0},           {"sin", NULL, NAN, NAN, 0, 0},
      {"cos", NULL, NAN, NAN, 0, 0},            {"tan", NULL, NAN, NAN, 0, 0},
      {"asin", NULL, NAN, NAN, 0, 0},           {"acos", NULL, NAN, NAN, 0, 0},
      {"atan", NULL, NAN, NAN, 0, 0},           {"sinh", NULL, NAN, NAN, 0, 0},
      {"cosh", NULL, NAN, NAN, 0, 0},           {"asinh", NULL, NAN, NAN, 0, 0},
      {"acosh", NULL, NAN, NAN, 0, 0},          {"atanh", NULL, NAN, NAN, 0, 0},
      {"softsign", NULL, NAN, NAN, 0, 0},       {"thresholded_relu", NULL, NAN, NAN, 1, 0},
      {"thresholded_relu", "alpha", 2.5, NAN, 1, 0}, {"celu", NULL, NAN, NAN, 1, 0},
      {"celu", "alpha", 2.0, NAN, 1, 0},        {"shrink", NULL, NAN, NAN, 0.5, 0},
      {"shrink", "lambd", 1.5, 0.25, 0.5, 0},
  };
  int64_t xs[2] = {-1, 41};
  float x[2 * 41];
  for (int i = 0; i < 2 * 41; i++) x[i] = (float)(i - 41) * 0.75f; /* -30.75 .. 30 */
  for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
    PqNode *n;
    g_autoptr(PqModel) m = single(cases[c].op, 2, xs, 0, NULL, &n);
    double a = cases[c].da, b = cases[c].db;
    if (cases[c].attr && !strcmp(cases[c].attr, "approximate")) pq_node_set_string(n, "approximate", "tanh");
    else if (cases[c].attr && !strcmp(cases[c].op, "clip")) {
      pq_node_set_float(n, "min", cases[c].a);
      pq_node_set_float(n, "max", cases[c].b);
      a = cases[c].a, b = cases[c].b;
    } else if (cases[c].attr && !strcmp(cases[c].op, "shrink")) {
      pq_node_set_float(n, "lambd", cases[c].a);
      pq_node_set_float(n, "bias", cases[c].b);
      a = cases[c].a, b = cases[c].b;
    } else if (cases[c].attr) {
      pq_node_set_float(n, cases[c].attr, cases[c].a);
      a = cases[c].a;
    }
    int64_t on;
    g_autofree float *y = run(m, x, 2, 2, &on);
    for (int i = 0; i < 2 * 41; i++) {
      double v = x[i], r;
      const char *op = cases[c].op;
      if (!strcmp(op, "sigmoid")) r = 1 / (1 + exp(-v));
      else if (!strcmp(op, "tanh")) r = tanh(v);
      else if (!strcmp(op, "leaky_relu")) r = v >= 0 ? v : a * v;
      else if (!strcmp(op, "elu")) r = v >= 0 ? v : a * (exp(v) - 1);
      else if (!strcmp(op, "selu")) r = b * (v > 0 ? v : a * (exp(v) - 1));
      else if (!strcmp(op, "clip")) r = fmin(fmax(v, a), b);
      else if (!strcmp(op, "hard_sigmoid")) r = fmin(fmax(a * v + b, 0), 1);
      else if (!strcmp(op, "hard_swish")) r = v * fmin(fmax(v / 6 + 0.5, 0), 1);
      else if (!strcmp(op, "softplus")) r = log1p(exp(v));
      else if (!strcmp(op, "abs")) r = fabs(v);
      else if (!strcmp(op, "neg")) r = -v;
      else if (!strcmp(op, "exp")) r = exp(v);
      else if (!strcmp(op, "log")) r = log(v);
      else if (!strcmp(op, "sqrt")) r = sqrt(v);
      else if (!strcmp(op, "reciprocal")) r = 1 / v;
      else if (!strcmp(op, "erf")) r = erf(v);
      else if (!strcmp(op, "floor")) r = floor(v);
      else if (!strcmp(op, "ceil")) r = ceil(v);
      else if (!strcmp(op, "round")) r = nearbyint(v); /* ties to even, as rintf: -1.5 → -2, 4.5 → 4 */
      else if (!strcmp(op, "sign")) r = v > 0 ? 1 : v < 0 ? -1 : 0;
      else if (!strcmp(op, "sin")) r = sin(v);
      else if (!strcmp(op, "cos")) r = cos(v);
      else if (!strcmp(op, "tan")) r = tan(v);
      else if (!strcmp(op, "asin")) r = asin(v);
      else if (!strcmp(op, "acos")) r = acos(v);
      else if (!strcmp(op, "atan")) r = atan(v);
      else if (!strcmp(op, "sinh")) r = sinh(v);
      else if (!strcmp(op, "cosh")) r = cosh(v);
      else if (!strcmp(op, "asinh")) r = asinh(v);
      else if (!strcmp(op, "acosh")) r = acosh(v);
      else if (!strcmp(op, "atanh")) r = atanh(v);
      else if (!strcmp(op, "softsign")) r = v / (1 + fabs(v));
      else if (!strcmp(op, "thresholded_relu")) r = v > a ? v : 0;
      else if (!strcmp(op, "celu")) r = fmax(0, v) + fmin(0, a * (exp(v / a) - 1));
      else if (!strcmp(op, "shrink")) r = v < -a ? v + b : v > a ? v - b : 0;
      else if (a == 0) r = 0.5 * v * (1 + erf(v / sqrt(2))); /* gelu */
      else r = 0.5 * v * (1 + tanh(sqrt(2 / G_PI) * (v + 0.044715 * v * v * v)));
      /* out of a function's domain both are NaN; 1/0 is infinite in both */
      if (!(y[i] == r || (isnan(y[i]) && isnan(r)) || fabs(y[i] - r) <= 2e-6 * (1 + fabs(r))))
        g_error("%s(%g) = %.9g, expected %.9g", op, v, y[i], r);
    }
  }
  /* their derivatives (what fine-tuning trains through) against central differences, away from the kinks */
  const double pts[] = {-2.3, -0.7, 0.4, 1.3, 2.2};
  int checked = 0;
  for (int k = PQ_ACT_SIGMOID; k <= PQ_ACT_LAST; k++)
    for (int approx = 0; approx < (k == PQ_ACT_GELU ? 2 : 1); approx++)
      for (size_t i = 0; i < G_N_ELEMENTS(pts); i++) {
        float a = k == PQ_ACT_CLIP ? -0.5f : k == PQ_ACT_GELU ? (float)approx : k == PQ_ACT_HARD_SIGMOID ? 0.2f : 0.3f;
        float b = k == PQ_ACT_CLIP ? 1.5f : k == PQ_ACT_HARD_SIGMOID ? 0.5f : 1.05f;
        double h = 1e-3, x0 = pts[i];
        double fd = ((double)pq_activation(k, (float)(x0 + h), a, b) - (double)pq_activation(k, (float)(x0 - h), a, b)) / (2 * h);
        if (isnan(fd)) continue; /* outside the function's domain (log, sqrt, asin, acosh, atanh) */
        checked++;
        double g = pq_activation_grad(k, (float)x0, a, b);
        if (!(fabs(g - fd) <= 2e-3 * (1 + fabs(fd)))) g_error("activation %d (a %g): derivative at %g is %g, differences give %g", k, a, x0, g, fd);
      }
  g_assert_cmpint(checked, >, 5 * 30);
  /* the binary ops' derivatives by either operand, the same way (points off the ties of minimum and maximum) */
  const double pa[] = {-1.7, 0.6, 1.9}, pb[] = {-0.8, 0.45, 1.3};
  int bchecked = 0;
  for (int k = PQ_BIN_ADD; k <= PQ_BIN_MAXIMUM; k++)
    for (size_t i = 0; i < G_N_ELEMENTS(pa); i++)
      for (size_t j = 0; j < G_N_ELEMENTS(pb); j++) {
        double h = 1e-3, a0 = pa[i], b0 = pb[j];
        double fa = ((double)pq_binary(k, (float)(a0 + h), (float)b0) - (double)pq_binary(k, (float)(a0 - h), (float)b0)) / (2 * h);
        double fb = ((double)pq_binary(k, (float)a0, (float)(b0 + h)) - (double)pq_binary(k, (float)a0, (float)(b0 - h))) / (2 * h);
        if (isnan(fa) || isnan(fb)) continue; /* pow of a negative base */
        bchecked++;
        double ga = pq_binary_da(k, (float)a0, (float)b0), gb = pq_binary_db(k, (float)a0, (float)b0);
        if (!(fabs(ga - fa) <= 2e-3 * (1 + fabs(fa))) || !(fabs(gb - fb) <= 2e-3 * (1 + fabs(fb))))
          g_error("binary op %d at (%g, %g): derivatives %g, %g; differences give %g, %g", k, a0, b0, ga, gb, fa, fb);
      }
  g_assert_cmpint(bchecked, >, 8 * 9 - 10);
  g_autoptr(GError) err = NULL;
  PqNode *n;
  g_autoptr(PqModel) bad = single("clip", 2, xs, 0, NULL, &n);
  pq_node_set_float(n, "min", 2);
  pq_node_set_float(n, "max", 1);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "clip: min 2 above max 1"));
  g_clear_error(&err);
  g_autoptr(PqModel) bad2 = single("gelu", 2, xs, 0, NULL, &n);
  pq_node_set_string(n, "approximate", "fast");
  g_assert_null(pq_backend_prepare(cpu, bad2, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "gelu: approximate must be \"none\" or \"tanh\", not \"fast\""));
  g_clear_error(&err);
  g_autoptr(PqModel) bad3 = single("celu", 2, xs, 0, NULL, &n);
  pq_node_set_float(n, "alpha", 0);
  g_assert_null(pq_backend_prepare(cpu, bad3, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "celu: alpha must not be 0"));
}

/* layer_norm against a double-precision reference: x [N, 3, 4, 5] normalised over its last two dimensions
 * (axis 2) with scale and bias, over all three (axis 1, no bias), and the rows' means and 1/σ; a bad axis,
 * a scale of the wrong size and an unknown output are refused when the graph is checked. */
static void test_layer_norm(void) {
  int64_t xs[4] = {-1, 3, 4, 5}, ps[2] = {4, 5}, p60[1] = {60};
  enum { N = 3 };
  float x[N * 60];
  GRand *r = g_rand_new_with_seed(4);
  for (int i = 0; i < N * 60; i++) x[i] = (float)g_rand_double_range(r, -2, 3) + (i % 7 == 0 ? 40.0f : 0.0f); /* an offset the mean removes */
  g_rand_free(r);
  g_autoptr(PqTensor) sc = pq_test_random_tensor("sc", 2, ps, 5, 1), bi = pq_test_random_tensor("bi", 2, ps, 6, 1),
                      sc60 = pq_test_random_tensor("sc60", 1, p60, 7, 1);
  for (int form = 0; form < 4; form++) {
    PqNode *n;
    PqTensor *w2[2] = {sc, bi}, *w1[1] = {sc60};
    int axis = form == 0 ? 2 : 1;
    g_autoptr(PqModel) m = form == 0 ? single("layer_norm", 4, xs, 2, w2, &n) : form == 1 ? single("layer_norm", 4, xs, 1, w1, &n)
                                                                                       : single("layer_norm", 4, xs, 0, NULL, &n);
    pq_node_set_int(n, "axis", form == 0 ? -2 : 1);
    pq_node_set_float(n, "epsilon", 1e-3);
    if (form >= 2) pq_node_set_string(n, "output", form == 2 ? "mean" : "inv_std_dev");
    int64_t on, len = axis == 2 ? 20 : 60;
    g_autofree float *y = run(m, x, N, N, &on);
    g_assert_cmpint(on, ==, form >= 2 ? 60 / len : 60);
    const float *s = pq_tensor_data(form == 0 ? sc : sc60), *b = form == 0 ? pq_tensor_data(bi) : NULL;
    for (int64_t row = 0; row < N * 60 / len; row++) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < len; i++) mean += x[row * len + i];
      mean /= len;
      for (int64_t i = 0; i < len; i++) var += (x[row * len + i] - mean) * (x[row * len + i] - mean);
      double inv = 1 / sqrt(var / len + 1e-3);
      if (form == 2) g_assert_cmpfloat(fabs(y[row] - mean), <=, 1e-5 * (1 + fabs(mean)));
      if (form == 3) g_assert_cmpfloat(fabs(y[row] - inv), <=, 1e-5 * inv);
      if (form >= 2) continue;
      for (int64_t i = 0; i < len; i++) {
        int64_t pi = (row * len + i) % len;
        double want = (x[row * len + i] - mean) * inv * s[pi] + (b ? b[pi] : 0);
        if (!(fabs(y[row * len + i] - want) <= 1e-5 * (1 + fabs(want)))) g_error("layer_norm form %d [%lld]: %g, expected %g", form, (long long)(row * len + i), y[row * len + i], want);
      }
    }
  }
  g_autoptr(GError) err = NULL;
  const struct {
    const char *attr, *value;
    PqTensor *w;
    const char *needle;
  } bad[] = {{"axis", "0", NULL, "layer_norm: axis 0 outside 1 .. 3 (dimension 0, the batch, is not normalised across)"},
             {"axis", "4", NULL, "layer_norm: axis 4 outside 1 .. 3"},
             {"axis", "-1", sc, "layer_norm: its scale holds 20 values, the normalised dimensions 5"},
             {"output", "variance", NULL, "layer_norm: output must be \"y\", \"mean\" or \"inv_std_dev\", not \"variance\""}};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    PqNode *n;
    PqTensor *w[1] = {bad[i].w};
    g_autoptr(PqModel) m = single("layer_norm", 4, xs, bad[i].w ? 1 : 0, w, &n);
    if (!strcmp(bad[i].attr, "axis")) pq_node_set_int(n, "axis", atoi(bad[i].value));
    else pq_node_set_string(n, bad[i].attr, bad[i].value);
    g_assert_null(pq_backend_prepare(cpu, m, 1, 2, NULL, &err));
    if (!strstr(err->message, bad[i].needle)) g_error("'%s' lacks '%s'", err->message, bad[i].needle);
    g_clear_error(&err);
  }
}

/* matmul of two activations (attention's Q·Kᵀ): each sample's [2, 3, 4] times its own transpose, a Gram
 * matrix per leading index; a relu after it folded in. */
static void test_matmul_activations(void) {
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 2, 3, 4}, perm[4] = {0, 1, 3, 2};
  pq_graph_add_input(g, "x", 4, xs);
  const char *ti[1] = {"x"}, *to[1] = {"t"}, *mi[2] = {"x", "t"}, *mo[1] = {"g"}, *ri[1] = {"g"}, *ro[1] = {"y"};
  pq_node_set_ints(pq_graph_add_node(g, "transpose", "tr", 1, ti, 1, to), "perm", 4, perm);
  pq_graph_add_node(g, "matmul", "mm", 2, mi, 1, mo);
  pq_graph_add_node(g, "relu", "relu", 1, ri, 1, ro);
  pq_graph_add_output(g, "y");
  enum { N = 3 };
  float x[N * 24];
  fill(x, N * 24, 41);
  int64_t on;
  g_autofree float *y = run(m, x, N, N, &on);
  g_assert_cmpint(on, ==, 2 * 3 * 3);
  for (int s0 = 0; s0 < N; s0++)
    for (int h = 0; h < 2; h++)
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
          double acc = 0;
          for (int k = 0; k < 4; k++) acc += (double)x[((s0 * 2 + h) * 3 + i) * 4 + k] * x[((s0 * 2 + h) * 3 + j) * 4 + k];
          g_assert_cmpfloat(fabs(y[((s0 * 2 + h) * 3 + i) * 3 + j] - fmax(acc, 0)), <, 1e-5);
        }
}

/* resize2d: nearest (asymmetric, floor) doubling is replication; linear half_pixel against a bilinear
 * formula with edge clamping written out here; bad attributes are refused. (ONNX's Resize tests check the
 * other modes against ONNX's reference outputs.) */
static void test_resize(void) {
  int64_t xs[4] = {-1, 2, 3, 4};
  enum { N = 2 };
  float x[N * 24];
  fill(x, N * 24, 31);
  PqNode *n;
  g_autoptr(PqModel) m = single("resize2d", 4, xs, 0, NULL, &n);
  int64_t up[2] = {6, 8};
  pq_node_set_ints(n, "sizes", 2, up);
  pq_node_set_string(n, "coordinate_transformation_mode", "asymmetric");
  pq_node_set_string(n, "nearest_mode", "floor");
  int64_t on;
  g_autofree float *y = run(m, x, N, N, &on);
  g_assert_cmpint(on, ==, 2 * 48);
  for (int p = 0; p < N * 2; p++)
    for (int oy = 0; oy < 6; oy++)
      for (int ox = 0; ox < 8; ox++) g_assert_cmpfloat(y[p * 48 + oy * 8 + ox], ==, x[p * 12 + (oy / 2) * 4 + ox / 2]);
  g_autoptr(PqModel) l = single("resize2d", 4, xs, 0, NULL, &n);
  int64_t odd[2] = {5, 7};
  pq_node_set_ints(n, "sizes", 2, odd);
  pq_node_set_string(n, "mode", "linear");
  g_autofree float *yl = run(l, x, N, N, &on);
  for (int p = 0; p < N * 2; p++)
    for (int oy = 0; oy < 5; oy++)
      for (int ox = 0; ox < 7; ox++) {
        double sy = (oy + 0.5) * 3.0 / 5.0 - 0.5, sx = (ox + 0.5) * 4.0 / 7.0 - 0.5, fy = floor(sy), fx = floor(sx), want = 0;
        for (int a = 0; a < 2; a++)
          for (int b = 0; b < 2; b++) {
            int iy = (int)CLAMP(fy + a, 0, 2), ix = (int)CLAMP(fx + b, 0, 3);
            want += (a ? sy - fy : 1 - (sy - fy)) * (b ? sx - fx : 1 - (sx - fx)) * x[p * 12 + iy * 4 + ix];
          }
        g_assert_cmpfloat(fabs(yl[p * 35 + oy * 7 + ox] - want), <, 1e-5);
      }
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) bad = single("resize2d", 4, xs, 0, NULL, &n);
  pq_node_set_ints(n, "sizes", 2, up);
  pq_node_set_string(n, "mode", "bicubic");
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "resize2d: \"sizes\" must be two sizes, mode nearest, linear or cubic"));
  g_clear_error(&err);
  int64_t zero[2] = {0, 4};
  pq_node_set_string(n, "mode", "cubic");
  pq_node_set_ints(n, "sizes", 2, zero);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "resize2d: sizes 0 x 4 and scales"));
}

/* slice against index arithmetic: steps forward and backward, negative starts and ends, ends past the
 * dimension (clamped), axes in any order; refusals for the batch axis, a step of 0, lists of unequal length. */
static void test_slice(void) {
  int64_t xs[4] = {-1, 5, 6, 7};
  enum { N = 2 };
  float x[N * 210];
  for (int i = 0; i < N * 210; i++) x[i] = (float)i;
  const struct {
    int n;
    int64_t starts[3], ends[3], axes[3], steps[3];
  } cases[] = {{1, {1}, {4}, {1}, {1}},                       /* dimension 1: 1, 2, 3 */
               {2, {-1, 0}, {-8, 100}, {3, 2}, {-2, 3}},       /* dimension 3 backwards from the last: 6, 4, 2, 0; dimension 2: 0, 3 */
               {3, {4, -2, 1}, {0, 6, 7}, {-3, -2, -1}, {-1, 1, 3}}}; /* 4, 3, 2, 1; 4, 5; 1, 4 */
  for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
    PqNode *n;
    g_autoptr(PqModel) m = single("slice", 4, xs, 0, NULL, &n);
    pq_node_set_ints(n, "starts", (size_t)cases[c].n, cases[c].starts);
    pq_node_set_ints(n, "ends", (size_t)cases[c].n, cases[c].ends);
    pq_node_set_ints(n, "axes", (size_t)cases[c].n, cases[c].axes);
    pq_node_set_ints(n, "steps", (size_t)cases[c].n, cases[c].steps);
    int64_t on;
    g_autofree float *y = run(m, x, N, N, &on);
    /* the indices each dimension keeps, worked out here */
    int64_t idx[4][8], cnt[4] = {0, 5, 6, 7};
    for (int d = 1; d < 4; d++)
      for (int i = 0; i < cnt[d]; i++) idx[d][i] = i;
    for (int k = 0; k < cases[c].n; k++) {
      int64_t a = cases[c].axes[k] < 0 ? cases[c].axes[k] + 4 : cases[c].axes[k], dim = xs[a], st = cases[c].starts[k], en = cases[c].ends[k],
              step = cases[c].steps[k];
      if (st < 0) st += dim;
      if (en < 0) en += dim;
      cnt[a] = 0;
      if (step > 0)
        for (int64_t i = MAX(st, 0); i < MIN(en, dim); i += step) idx[a][cnt[a]++] = i;
      else
        for (int64_t i = MIN(st, dim - 1); i > MAX(en, -1); i += step) idx[a][cnt[a]++] = i;
    }
    g_assert_cmpint(on, ==, cnt[1] * cnt[2] * cnt[3]);
    int64_t o = 0;
    for (int s0 = 0; s0 < N; s0++)
      for (int i = 0; i < cnt[1]; i++)
        for (int j = 0; j < cnt[2]; j++)
          for (int k = 0; k < cnt[3]; k++, o++) g_assert_cmpfloat(y[o], ==, x[s0 * 210 + (idx[1][i] * 6 + idx[2][j]) * 7 + idx[3][k]]);
  }
  const struct {
    int n;
    int64_t starts[2], ends[2], axes[2], steps[2];
  } bad[] = {{1, {0}, {1}, {0}, {1}}, {1, {0}, {3}, {1}, {0}}, {2, {0, 0}, {2, 2}, {1, -3}, {1, 1}}};
  for (size_t c = 0; c < G_N_ELEMENTS(bad); c++) {
    PqNode *n;
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) m = single("slice", 4, xs, 0, NULL, &n);
    pq_node_set_ints(n, "starts", (size_t)bad[c].n, bad[c].starts);
    pq_node_set_ints(n, "ends", (size_t)bad[c].n, bad[c].ends);
    pq_node_set_ints(n, "axes", (size_t)bad[c].n, bad[c].axes);
    pq_node_set_ints(n, "steps", (size_t)bad[c].n, bad[c].steps);
    g_assert_null(pq_backend_prepare(cpu, m, 1, 2, NULL, &err));
    g_assert_nonnull(strstr(err->message, "each axis a dimension other than the batch (0) given once, each step not 0"));
  }
}

/* conv_transpose2d against its definition (each input value scattered through its kernel into the output),
 * with groups, uneven strides, dilations and pads, output_padding, bias and a folded relu; bad attributes are
 * refused. */
static void test_conv_transpose(void) {
  enum { N = 2, C = 4, H = 3, W = 5, G = 2, OG = 3, KH = 2, KW = 3 };
  int64_t xs[4] = {-1, C, H, W}, ws[4] = {C, OG, KH, KW}, bs[1] = {G * OG}, st[2] = {2, 1}, dl[2] = {1, 2}, pads[4] = {1, 0, 0, 1},
          opad[2] = {1, 0};
  const int64_t OH = (H - 1) * 2 - 1 - 0 + 1 * (KH - 1) + 1 + 1, OW = (W - 1) * 1 - 0 - 1 + 2 * (KW - 1) + 0 + 1;
  g_autoptr(PqTensor) w = pq_test_random_tensor("w", 4, ws, 21, 1), b = pq_test_random_tensor("b", 1, bs, 22, 1);
  float x[N * C * H * W];
  fill(x, N * C * H * W, 23);
  for (int relu = 0; relu <= 1; relu++) {
    PqTensor *wl[2] = {w, b};
    PqNode *n;
    g_autoptr(PqModel) m = single("conv_transpose2d", 4, xs, 2, wl, &n);
    pq_node_set_int(n, "groups", G);
    pq_node_set_ints(n, "strides", 2, st);
    pq_node_set_ints(n, "dilations", 2, dl);
    pq_node_set_ints(n, "pads", 4, pads);
    pq_node_set_ints(n, "output_padding", 2, opad);
    if (relu) { /* then a relu, folded into the transposed conv */
      pq_node_set_output(n, 0, "t");
      const char *ri[1] = {"t"}, *ro[1] = {"y"};
      pq_graph_add_node(pq_model_graph(m), "relu", "relu", 1, ri, 1, ro);
    }
    int64_t on;
    g_autofree float *y = run(m, x, N, N, &on);
    g_assert_cmpint(on, ==, G * OG * OH * OW);
    double want[N][G * OG][OH][OW];
    const float *wd = pq_tensor_data(w), *bd = pq_tensor_data(b);
    for (int s0 = 0; s0 < N; s0++)
      for (int o = 0; o < G * OG; o++)
        for (int yy = 0; yy < OH; yy++)
          for (int yx = 0; yx < OW; yx++) want[s0][o][yy][yx] = bd[o];
    for (int s0 = 0; s0 < N; s0++)
      for (int ci = 0; ci < C; ci++)
        for (int iy = 0; iy < H; iy++)
          for (int ix = 0; ix < W; ix++)
            for (int ol = 0; ol < OG; ol++)
              for (int ki = 0; ki < KH; ki++)
                for (int kj = 0; kj < KW; kj++) {
                  int yy = iy * 2 - 1 + ki * 1, yx = ix * 1 - 0 + kj * 2, o = (ci / (C / G)) * OG + ol;
                  if (yy >= 0 && yy < OH && yx >= 0 && yx < OW)
                    want[s0][o][yy][yx] += (double)x[((s0 * C + ci) * H + iy) * W + ix] * wd[((ci * OG + ol) * KH + ki) * KW + kj];
                }
    for (int i = 0; i < N * on; i++) {
      double v = (&want[0][0][0][0])[i];
      if (relu && v < 0) v = 0;
      if (!(fabs(y[i] - v) <= 1e-5 * (1 + fabs(v)))) g_error("conv_transpose2d (relu %d) [%d]: %g, expected %g", relu, i, y[i], v);
    }
  }
  g_autoptr(GError) err = NULL;
  PqTensor *wl[1] = {w};
  PqNode *n;
  g_autoptr(PqModel) bad = single("conv_transpose2d", 4, xs, 1, wl, &n);
  int64_t big[2] = {2, 0};
  pq_node_set_ints(n, "output_padding", 2, big);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "conv_transpose2d: output_padding 2 must be below its stride or dilation"));
  g_clear_error(&err);
  int64_t none[2] = {0, 0};
  pq_node_set_ints(n, "output_padding", 2, none);
  pq_node_set_int(n, "groups", 3);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  if (!strstr(err->message, "conv_transpose2d: 4 input channels, a weight for 4, groups 3 do not match")) g_error("%s", err->message);
}

/* Float GEMMs split over the backend's threads (columns or rows of the product, by shape), with OpenBLAS on one
 * thread a part: the same outputs on 2 and 3 threads as on 1 (which never splits) — a linear at batch 1
 * (matrix-vector) and at odd batches, one of 10 outputs (split by rows), a matmul by a weight, a conv with a bias
 * (accumulated into the output), a transposed conv (the weight read transposed). Then two threads running two
 * models at once on the same shared pool: each gets its own results. */
typedef struct {
  PqBackend *be;
  const float *x, *want;
  int64_t batch, n_out;
  int bad;
} PoolRace;

static gpointer pool_race(gpointer p) {
  PoolRace *r = p;
  g_autofree float *y = g_new(float, r->batch * r->n_out);
  for (int i = 0; i < 200 && !r->bad; i++) {
    if (!pq_backend_run_f32(r->be, r->x, r->batch, y, NULL)) r->bad = 1;
    for (int64_t j = 0; j < r->batch * r->n_out && !r->bad; j++) r->bad = !(fabsf(y[j] - r->want[j]) <= 1e-4f * (1 + fabsf(r->want[j])));
  }
  return NULL;
}

static void test_threads_float(void) {
  g_autoptr(PqModel) mlp = pq_model_new();
  {
    PqGraph *g = pq_model_graph(mlp);
    int64_t xs[2] = {-1, 300}, w1s[2] = {200, 300}, b1s[1] = {200}, w2s[2] = {200, 150}, w3s[2] = {10, 150};
    pq_graph_add_input(g, "x", 2, xs);
    PqTensor *t[4] = {pq_test_random_tensor("w1", 2, w1s, 51, 1), pq_test_random_tensor("b1", 1, b1s, 52, 1), pq_test_random_tensor("w2", 2, w2s, 53, 1),
                      pq_test_random_tensor("w3", 2, w3s, 54, 1)};
    for (int i = 0; i < 4; i++) {
      pq_model_set_tensor(mlp, t[i]);
      pq_tensor_unref(t[i]);
    }
    const char *i1[3] = {"x", "w1", "b1"}, *o1[1] = {"h1"}, *i2[1] = {"h1"}, *o2[1] = {"r1"}, *i3[2] = {"r1", "w2"}, *o3[1] = {"h2"},
               *i4[2] = {"h2", "w3"}, *o4[1] = {"y"};
    pq_graph_add_node(g, "linear", "fc1", 3, i1, 1, o1);
    pq_graph_add_node(g, "relu", "relu1", 1, i2, 1, o2);
    pq_graph_add_node(g, "matmul", "mm", 2, i3, 1, o3);
    pq_graph_add_node(g, "linear", "fc3", 2, i4, 1, o4);
    pq_graph_add_output(g, "y");
  }
  g_autoptr(PqModel) conv = pq_model_new();
  {
    PqGraph *g = pq_model_graph(conv);
    int64_t xs[4] = {-1, 16, 14, 14}, ws[4] = {32, 16, 3, 3}, bs[1] = {32}, ts[4] = {32, 16, 2, 2}, two[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
    pq_graph_add_input(g, "x", 4, xs);
    PqTensor *t[3] = {pq_test_random_tensor("cw", 4, ws, 55, 1), pq_test_random_tensor("cb", 1, bs, 56, 1), pq_test_random_tensor("tw", 4, ts, 57, 1)};
    for (int i = 0; i < 3; i++) {
      pq_model_set_tensor(conv, t[i]);
      pq_tensor_unref(t[i]);
    }
    const char *i1[3] = {"x", "cw", "cb"}, *o1[1] = {"c"}, *i2[2] = {"c", "tw"}, *o2[1] = {"y"};
    pq_node_set_ints(pq_graph_add_node(g, "conv2d", "conv", 3, i1, 1, o1), "pads", 4, pads);
    pq_node_set_ints(pq_graph_add_node(g, "conv_transpose2d", "up", 2, i2, 1, o2), "strides", 2, two);
    pq_graph_add_output(g, "y");
  }
  PqModel *models[2] = {mlp, conv};
  const int64_t in_numel[2] = {300, 16 * 14 * 14}, batches[3] = {1, 37, 8};
  float *want[2][3] = {{NULL}};
  int64_t n_out[2] = {0};
  g_autofree float *x = g_new(float, 40 * in_numel[1]);
  fill(x, 40 * in_numel[1], 58);
  for (int mi = 0; mi < 2; mi++)
    for (int bi = 0; bi < 3; bi++) want[mi][bi] = run(models[mi], x, batches[bi], 40, &n_out[mi]);
  /* the one-thread outputs of the MLP against a double-precision reference (batch 1: matrix-vector products) */
  {
    const float *w1 = pq_tensor_data(pq_model_tensor(mlp, "w1")), *b1 = pq_tensor_data(pq_model_tensor(mlp, "b1")),
                *w2 = pq_tensor_data(pq_model_tensor(mlp, "w2")), *w3 = pq_tensor_data(pq_model_tensor(mlp, "w3"));
    for (int bi = 0; bi < 2; bi++)
      for (int64_t r = 0; r < batches[bi]; r++) {
        double h1[200], h2[150];
        for (int o = 0; o < 200; o++) {
          double a = b1[o];
          for (int k = 0; k < 300; k++) a += (double)x[r * 300 + k] * w1[o * 300 + k];
          h1[o] = a > 0 ? a : 0;
        }
        for (int o = 0; o < 150; o++) {
          double a = 0;
          for (int k = 0; k < 200; k++) a += h1[k] * w2[k * 150 + o];
          h2[o] = a;
        }
        for (int o = 0; o < 10; o++) {
          double a = 0;
          for (int k = 0; k < 150; k++) a += h2[k] * w3[o * 150 + k];
          if (!(fabs(want[0][bi][r * 10 + o] - a) <= 1e-3 * (1 + fabs(a)))) g_error("batch %" G_GINT64_FORMAT " row %" G_GINT64_FORMAT " output %d: %g, expected %g", batches[bi], r, o, want[0][bi][r * 10 + o], a);
        }
      }
  }
  for (int threads = 2; threads <= 3; threads++)
    for (int mi = 0; mi < 2; mi++) {
      g_autoptr(GError) err = NULL;
      g_autoptr(PqBackend) be = pq_backend_prepare(cpu, models[mi], threads, 40, NULL, &err);
      g_assert_no_error(err);
      for (int bi = 0; bi < 3; bi++) {
        g_autofree float *y = g_new(float, batches[bi] * n_out[mi]);
        g_assert_true(pq_backend_run_f32(be, x, batches[bi], y, &err));
        assert_close(y, want[mi][bi], batches[bi] * n_out[mi], 1e-4f);
      }
    }
  g_autoptr(GError) err = NULL;
  PoolRace race[2];
  GThread *th[2];
  for (int mi = 0; mi < 2; mi++) {
    race[mi] = (PoolRace){pq_backend_prepare(cpu, models[mi], 3, 40, NULL, &err), x, want[mi][1], 37, n_out[mi], 0};
    g_assert_no_error(err);
  }
  for (int mi = 0; mi < 2; mi++) th[mi] = g_thread_new("pool-race", pool_race, &race[mi]);
  for (int mi = 0; mi < 2; mi++) {
    g_thread_join(th[mi]);
    g_assert_false(race[mi].bad);
    pq_backend_free(race[mi].be);
  }
  /* OpenBLAS on one thread while a backend with threads of its own is prepared (its workers would take the
     cores), the program's count back after the last one is released; a count the program changes between runs
     is set aside for a run and given back */
  openblas_set_num_threads(2);
  {
    g_autoptr(PqBackend) a = pq_backend_prepare(cpu, mlp, 2, 40, NULL, &err);
    g_autoptr(PqBackend) b = pq_backend_prepare(cpu, conv, 2, 40, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(openblas_get_num_threads(), ==, 1);
    pq_backend_free(g_steal_pointer(&a));
    g_assert_cmpint(openblas_get_num_threads(), ==, 1);
    openblas_set_num_threads(3);
    g_autofree float *y = g_new(float, 37 * n_out[1]);
    g_assert_true(pq_backend_run_f32(b, x, 37, y, &err));
    assert_close(y, want[1][1], 37 * n_out[1], 1e-4f);
    g_assert_cmpint(openblas_get_num_threads(), ==, 3);
    openblas_set_num_threads(1);
  }
  g_assert_cmpint(openblas_get_num_threads(), ==, 2);
  for (int mi = 0; mi < 2; mi++)
    for (int bi = 0; bi < 3; bi++) g_free(want[mi][bi]);
}

/* Every reduction against a double-precision reference, over one axis and over two that are not adjacent
 * (axes {-2} and {1, 3} of [N, 3, 4, 5]), keeping the reduced dimensions or not; bad axes are refused. */
static void test_reductions(void) {
  static const char *const ops[] = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
                                    "reduce_l1", "reduce_l2", "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp",
                                    "argmax", "argmin"};
  int64_t xs[4] = {-1, 3, 4, 5};
  enum { N = 2 };
  float x[N * 60];
  GRand *r = g_rand_new_with_seed(12);
  for (int i = 0; i < N * 60; i++) x[i] = (float)g_rand_double_range(r, 0.2, 1.8) * (i % 4 == 1 ? -1.0f : 1.0f) + (i % 11 == 0 ? 30.0f : 0.0f);
  g_rand_free(r);
  for (size_t k = 0; k < G_N_ELEMENTS(ops); k++)
    for (int form = 0; form < 4; form++) {
      gboolean two = form >= 2, keep = form % 2 == 0;
      int64_t one[1] = {-2}, both[2] = {1, 3};
      PqNode *n;
      g_autoptr(PqModel) m = single(ops[k], 4, xs, 0, NULL, &n);
      pq_node_set_ints(n, "axes", two ? 2 : 1, two ? both : one);
      pq_node_set_int(n, "keepdims", keep);
      g_autoptr(PqPlan) plan = pq_plan_new(m, 1, NULL);
      int ond;
      const int64_t *os = pq_plan_value_shape(plan, pq_plan_value_index(plan, "y"), &ond);
      g_assert_cmpint(ond, ==, keep ? 4 : two ? 2 : 3);
      if (keep) g_assert_true(two ? os[1] == 1 && os[2] == 4 && os[3] == 1 : os[1] == 3 && os[2] == 1 && os[3] == 5);
      int64_t on;
      g_autofree float *y = run(m, x, N, N, &on);
      g_assert_cmpint(on, ==, two ? 4 : 15);
      for (int64_t s0 = 0; s0 < N; s0++)
        for (int64_t o = 0; o < on; o++) {
          /* the elements output o gathers: two ? (c, h=o, w) : (c=o/5, h, w=o%5) */
          double acc = 0, mx = -INFINITY, mn = INFINITY, prod = 1, l1 = 0, sq = 0, cnt = 0, imx = 0, imn = 0; /* (the index: row-major over the reduced dimensions) */
          for (int64_t c = 0; c < 3; c++)
            for (int64_t h = 0; h < 4; h++)
              for (int64_t w = 0; w < 5; w++) {
                if (two ? h != o : (c != o / 5 || w != o % 5)) continue;
                double v = x[s0 * 60 + (c * 4 + h) * 5 + w];
                if (v > mx) imx = cnt;
                if (v < mn) imn = cnt;
                acc += v, mx = fmax(mx, v), mn = fmin(mn, v), prod *= v, l1 += fabs(v), sq += v * v, cnt++;
              }
          double lse = 0;
          for (int64_t c = 0; c < 3; c++)
            for (int64_t h = 0; h < 4; h++)
              for (int64_t w = 0; w < 5; w++)
                if (!(two ? h != o : (c != o / 5 || w != o % 5))) lse += exp(x[s0 * 60 + (c * 4 + h) * 5 + w] - mx);
          double want[12] = {acc, acc / cnt, mx, mn, prod, l1, sqrt(sq), sq, log(acc), log(lse) + mx, imx, imn};
          double got = y[s0 * on + o];
          if (!(fabs(got - want[k]) <= 2e-5 * (1 + fabs(want[k])) || (isnan(got) && isnan(want[k])))) /* log of a negative sum: NaN both */
            g_error("%s form %d [%lld]: %.9g, expected %.9g", ops[k], form, (long long)o, got, want[k]);
        }
    }
  /* adjacent reduced (2, 3) and kept dimensions walk as one run each: the same values, and argmax's index in
     row-major order over (h, w) */
  for (int k = 0; k < 3; k++) {
    static const char *const adj[3] = {"reduce_sum", "argmax", "reduce_max"};
    PqNode *n;
    g_autoptr(PqModel) m = single(adj[k], 4, xs, 0, NULL, &n);
    pq_node_set_ints(n, "axes", 2, (const int64_t[]){2, 3});
    pq_node_set_int(n, "keepdims", 0);
    int64_t on;
    g_autofree float *y = run(m, x, N, N, &on);
    g_assert_cmpint(on, ==, 3);
    for (int64_t s0 = 0; s0 < N; s0++)
      for (int64_t c = 0; c < 3; c++) {
        double acc = 0, mx = -INFINITY;
        int64_t at = 0;
        for (int64_t i = 0; i < 20; i++) {
          double v = x[s0 * 60 + c * 20 + i];
          if (v > mx) mx = v, at = i;
          acc += v;
        }
        const double want = k == 0 ? acc : k == 1 ? (double)at : mx;
        g_assert_cmpfloat(fabs(y[s0 * 3 + c] - want), <=, 2e-5 * (1 + fabs(want)));
      }
  }
  /* argmax and argmin: the first of ties; a NaN's index wins, as in NumPy */
  {
    int64_t xs2[2] = {-1, 4};
    const float tx[12] = {2, 5, 5, 1, 1, 3, 3, NAN, NAN, 0, 9, -9};
    const float want[2][3] = {{1, 3, 0}, {3, 3, 0}};
    for (int k = 0; k < 2; k++) {
      PqNode *n;
      g_autoptr(PqModel) m = single(k ? "argmin" : "argmax", 2, xs2, 0, NULL, &n);
      pq_node_set_ints(n, "axes", 1, (const int64_t[]){1});
      pq_node_set_int(n, "keepdims", 0);
      int64_t on;
      g_autofree float *y = run(m, tx, 3, 3, &on);
      g_assert_cmpint(on, ==, 1);
      for (int i = 0; i < 3; i++) g_assert_cmpfloat(y[i], ==, want[k][i]);
    }
  }
  /* refused when the graph is checked */
  const struct {
    int64_t axes[2];
    int n_axes, keep;
    const char *needle;
  } bad[] = {{{0}, 1, 1, "reduce_sum: axis 0 outside 1 .. 3 (dimension 0, the batch, is not reduced across)"},
             {{-4}, 1, 1, "reduce_sum: axis -4 outside 1 .. 3"},
             {{2, -2}, 2, 1, "reduce_sum: axis -2 given twice"},
             {{1}, 0, 1, "reduce_sum: \"axes\" is required"},
             {{1}, 1, 2, "reduce_sum: keepdims must be 0 or 1, not 2"}};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    PqNode *n;
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) m = single("reduce_sum", 4, xs, 0, NULL, &n);
    if (bad[i].n_axes) pq_node_set_ints(n, "axes", (size_t)bad[i].n_axes, bad[i].axes);
    pq_node_set_int(n, "keepdims", bad[i].keep);
    g_assert_null(pq_backend_prepare(cpu, m, 1, 2, NULL, &err));
    if (!strstr(err->message, bad[i].needle)) g_error("'%s' lacks '%s'", err->message, bad[i].needle);
  }
}

/* sub, mul, div, prelu, pow, minimum, maximum (and add) with a broadcast weight, and with two activations of one shape; a relu after
 * them is folded in. */
static void test_binary(void) {
  const char *ops[] = {"add", "sub", "mul", "div", "prelu", "pow", "minimum", "maximum"};
  int64_t xs[3] = {-1, 3, 4}, ws[1] = {4};
  float x[2 * 12];
  fill(x, 24, 9);
  for (size_t o = 0; o < G_N_ELEMENTS(ops); o++) {
    g_autoptr(PqTensor) w = pq_test_random_tensor("w", 1, ws, 4, 1);
    float *wd = pq_tensor_mutable_data(w);
    for (int i = 0; i < 4; i++) wd[i] += wd[i] >= 0 ? 0.5f : -0.5f; /* away from 0: a divisor */
    PqTensor *wl[1] = {w};
    PqNode *n;
    g_autoptr(PqModel) m = single(ops[o], 3, xs, 1, wl, &n);
    int64_t on;
    g_autofree float *y = run(m, x, 2, 2, &on);
    /* x op relu(x), same shapes, then a relu */
    g_autoptr(PqModel) m2 = pq_model_new();
    PqGraph *g = pq_model_graph(m2);
    pq_graph_add_input(g, "x", 3, xs);
    const char *ri[1] = {"x"}, *ro[1] = {"r"}, *bi[2] = {"x", "r"}, *bo[1] = {"b"}, *fi[1] = {"b"}, *fo[1] = {"y"};
    pq_graph_add_node(g, "relu", "relu", 1, ri, 1, ro);
    pq_graph_add_node(g, ops[o], "bin", 2, bi, 1, bo);
    pq_graph_add_node(g, "relu", "relu2", 1, fi, 1, fo);
    pq_graph_add_output(g, "y");
    g_autofree float *y2 = run(m2, x, 2, 2, &on);
    /* the tensor first: w op x (as ONNX writes 1 − x), broadcast the other way */
    g_autoptr(PqModel) m3 = pq_model_new();
    pq_model_set_tensor(m3, w);
    pq_graph_add_input(pq_model_graph(m3), "x", 3, xs);
    pq_graph_add_node(pq_model_graph(m3), ops[o], "wfirst", 2, (const char *[]){"w", "x"}, 1, (const char *[]){"y"});
    pq_graph_add_output(pq_model_graph(m3), "y");
    g_autofree float *y3 = run(m3, x, 2, 2, &on);
    g_assert_cmpint(on, ==, 12);
    for (int i = 0; i < 24; i++) {
      float e3 = pq_binary((int)o, wd[i % 4], x[i]); /* (the formulas themselves are checked below) */
      if (isnan(e3)) g_assert_true(isnan(y3[i]));
      else g_assert_cmpfloat(fabsf(y3[i] - e3), <=, 1e-6f * (1 + fabsf(e3)));
    }
    for (int i = 0; i < 24; i++) {
      float a = x[i], b = wd[i % 4], r = a > 0 ? a : 0, e1, e2;
      switch (o) {
      case 0: e1 = a + b, e2 = a + r; break;
      case 1: e1 = a - b, e2 = a - r; break;
      case 2: e1 = a * b, e2 = a * r; break;
      case 3: e1 = a / b, e2 = r != 0 ? a / r : (a == 0 ? NAN : a / r); break;
      case 4: e1 = a >= 0 ? a : a * b, e2 = a >= 0 ? a : a * r; break; /* prelu: b, r the slopes */
      case 5: e1 = (float)pow(a, b), e2 = (float)pow(a, r); break; /* a negative base to a fraction: NaN */
      case 6: e1 = fminf(a, b), e2 = fminf(a, r); break;
      default: e1 = fmaxf(a, b), e2 = fmaxf(a, r); break;
      }
      e2 = e2 > 0 ? e2 : 0;
      if (isnan(e1)) g_assert_true(isnan(y[i]));
      else g_assert_cmpfloat(fabsf(y[i] - e1), <=, 1e-6f * (1 + fabsf(e1)));
      if (!isnan(e2) && isfinite(e2)) g_assert_cmpfloat(fabsf(y2[i] - e2), <=, 1e-6f * (1 + fabsf(e2)));
    }
  }
}

/* transpose keeps the batch first and permutes the rest; moving the batch is refused */
static void test_transpose(void) {
  int64_t xs[4] = {-1, 2, 3, 4}, perm[4] = {0, 3, 1, 2};
  PqNode *n;
  g_autoptr(PqModel) m = single("transpose", 4, xs, 0, NULL, &n);
  pq_node_set_ints(n, "perm", 4, perm);
  float x[2 * 24];
  fill(x, 48, 13);
  int64_t on;
  g_autofree float *y = run(m, x, 2, 2, &on);
  g_assert_cmpint(on, ==, 24);
  for (int r = 0; r < 2; r++)
    for (int a = 0; a < 4; a++)     /* output [4, 2, 3] */
      for (int b = 0; b < 2; b++)
        for (int c = 0; c < 3; c++) g_assert_cmpfloat(y[r * 24 + (a * 2 + b) * 3 + c], ==, x[r * 24 + (b * 3 + c) * 4 + a]);
  g_autoptr(GError) err = NULL;
  int64_t bad[4] = {1, 0, 2, 3};
  g_autoptr(PqModel) mb = single("transpose", 4, xs, 0, NULL, &n);
  pq_node_set_ints(n, "perm", 4, bad);
  g_assert_null(pq_backend_prepare(cpu, mb, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "transpose: perm[0] must be 0 (the batch stays first)"));
  g_clear_error(&err);
  int64_t twice[4] = {0, 1, 1, 3};
  g_autoptr(PqModel) mt = single("transpose", 4, xs, 0, NULL, &n);
  pq_node_set_ints(n, "perm", 4, twice);
  g_assert_null(pq_backend_prepare(cpu, mt, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "transpose: \"perm\" is not a permutation"));
}

/* concat along the channels of [N, C, H, W] (two inputs of 2 and 3 channels), and its refusals */
static void test_concat(void) {
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 5, 2, 3};
  pq_graph_add_input(g, "x", 4, xs);
  /* split x's channels apart with two 1x1 convs that pick 2 and 3 of them, then join them again */
  int64_t w1s[4] = {2, 5, 1, 1}, w2s[4] = {3, 5, 1, 1};
  PqTensor *w1 = pq_tensor_new("w1", PQ_DTYPE_F32, 4, w1s), *w2 = pq_tensor_new("w2", PQ_DTYPE_F32, 4, w2s);
  float *a = pq_tensor_mutable_data(w1), *b = pq_tensor_mutable_data(w2);
  memset(a, 0, 40), memset(b, 0, 60);
  a[0 * 5 + 3] = a[1 * 5 + 0] = 1; /* channels 3, 0 */
  b[0 * 5 + 1] = b[1 * 5 + 4] = b[2 * 5 + 2] = 1; /* channels 1, 4, 2 */
  pq_model_set_tensor(m, w1), pq_model_set_tensor(m, w2);
  pq_tensor_unref(w1), pq_tensor_unref(w2);
  const char *i1[2] = {"x", "w1"}, *o1[1] = {"a"}, *i2[2] = {"x", "w2"}, *o2[1] = {"b"}, *i3[2] = {"a", "b"}, *o3[1] = {"y"};
  pq_graph_add_node(g, "conv2d", "c1", 2, i1, 1, o1);
  pq_graph_add_node(g, "conv2d", "c2", 2, i2, 1, o2);
  pq_node_set_int(pq_graph_add_node(g, "concat", "cat", 2, i3, 1, o3), "axis", -3);
  pq_graph_add_output(g, "y");
  float x[2 * 30];
  fill(x, 60, 17);
  int64_t on;
  g_autofree float *y = run(m, x, 2, 2, &on);
  g_assert_cmpint(on, ==, 30);
  const int order[5] = {3, 0, 1, 4, 2};
  for (int r = 0; r < 2; r++)
    for (int ch = 0; ch < 5; ch++)
      for (int k = 0; k < 6; k++) g_assert_cmpfloat(fabsf(y[r * 30 + ch * 6 + k] - x[r * 30 + order[ch] * 6 + k]), <, 1e-6f);
  /* along the batch, or inputs that differ elsewhere: refused */
  g_autoptr(GError) err = NULL;
  PqNode *n;
  g_autoptr(PqModel) bad = single("concat", 4, xs, 0, NULL, &n);
  pq_node_set_int(n, "axis", 0);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "concat: axis 0 must be one of dimensions 1..3 (not the batch)"));
  g_clear_error(&err);
  /* a model tensor [1, …] as a part (a ViT's class token), first or second: the same block for every sample */
  int64_t cs[4] = {1, 5, 2, 3};
  g_autoptr(PqTensor) cw = pq_test_random_tensor("cw", 4, cs, 3, 1);
  const float *cwd = pq_tensor_data(cw);
  for (int first = 0; first <= 1; first++) {
    g_autoptr(PqModel) withw = pq_model_new();
    pq_graph_add_input(pq_model_graph(withw), "x", 4, xs);
    pq_model_set_tensor(withw, cw);
    const char *ci[2] = {first ? "cw" : "x", first ? "x" : "cw"}, *co[1] = {"y"};
    pq_graph_add_node(pq_model_graph(withw), "concat", "cat", 2, ci, 1, co);
    pq_graph_add_output(pq_model_graph(withw), "y");
    g_autofree float *yw = run(withw, x, 2, 2, &on);
    g_assert_cmpint(on, ==, 60);
    for (int r = 0; r < 2; r++)
      for (int i = 0; i < 30; i++) {
        g_assert_cmpfloat(yw[r * 60 + (first ? 30 : 0) + i], ==, x[r * 30 + i]);
        g_assert_cmpfloat(yw[r * 60 + (first ? 0 : 30) + i], ==, cwd[i]);
      }
  }
  int64_t c2[4] = {2, 5, 2, 3};
  g_autoptr(PqTensor) cw2 = pq_test_random_tensor("cw2", 4, c2, 3, 1);
  PqTensor *cwl[1] = {cw2};
  g_autoptr(PqModel) withw2 = single("concat", 4, xs, 1, cwl, &n); /* a model tensor of two "samples": refused */
  g_assert_null(pq_backend_prepare(cpu, withw2, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "value 'y' does not keep the batch as its first dimension"));
}

/* log_softmax is the log of softmax, computed without overflow on large inputs */
static void test_log_softmax(void) {
  int64_t xs[2] = {-1, 6};
  PqNode *n;
  g_autoptr(PqModel) m = single("log_softmax", 2, xs, 0, NULL, &n);
  float x[12] = {1, 2, 3, 4, 5, 6, 800, 801, 799, -800, 0, 802};
  int64_t on;
  g_autofree float *y = run(m, x, 2, 2, &on);
  for (int r = 0; r < 2; r++) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < 6; j++) mx = fmax(mx, x[r * 6 + j]);
    for (int j = 0; j < 6; j++) sum += exp(x[r * 6 + j] - mx);
    for (int j = 0; j < 6; j++) g_assert_cmpfloat(fabs(y[r * 6 + j] - (x[r * 6 + j] - mx - log(sum))), <, 1e-4);
  }
}

/* pad2d: the input in place, the border's value around it */
static void test_pad(void) {
  int64_t xs[4] = {-1, 2, 2, 3}, pads[4] = {1, 0, 2, 1};
  PqNode *n;
  g_autoptr(PqModel) m = single("pad2d", 4, xs, 0, NULL, &n);
  pq_node_set_ints(n, "pads", 4, pads);
  pq_node_set_float(n, "value", -7);
  float x[2 * 12];
  fill(x, 24, 19);
  int64_t on;
  g_autofree float *y = run(m, x, 2, 2, &on);
  g_assert_cmpint(on, ==, 2 * 5 * 4);
  for (int p = 0; p < 4; p++)
    for (int r = 0; r < 5; r++)
      for (int c = 0; c < 4; c++) {
        int ir = r - 1, ic = c;
        float want = ir >= 0 && ir < 2 && ic < 3 ? x[p * 6 + ir * 3 + ic] : -7.0f;
        g_assert_cmpfloat(y[p * 20 + r * 4 + c], ==, want);
      }
  g_autoptr(GError) err = NULL;
  int64_t neg[4] = {1, -1, 0, 0};
  g_autoptr(PqModel) bad = single("pad2d", 4, xs, 0, NULL, &n);
  pq_node_set_ints(n, "pads", 4, neg);
  g_assert_null(pq_backend_prepare(cpu, bad, 1, 2, NULL, &err));
  g_assert_nonnull(strstr(err->message, "pad2d: \"pads\" must be four counts >= 0"));
}

static void test_errors(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(4, 3, 2, 1);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, 4, NULL, &err);
  g_assert_no_error(err);
  float x[40] = {0}, y[20];
  g_assert_false(pq_backend_run_f32(b, x, 5, y, &err)); /* batch above max_batch */
  g_assert_nonnull(strstr(err->message, "batch must be 1..4"));
  g_clear_error(&err);
  PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {2, 5}, x}, out = {sizeof out, PQ_DTYPE_F32, 2, 0, {2, 2}, y};
  g_assert_false(pq_backend_run(b, &in, 1, &out, 1, &err)); /* wrong per-sample shape */
  g_assert_nonnull(strstr(err->message, "backend 'cpu': run: input 0"));
  g_clear_error(&err);
  /* packed weights run in linear layers; elsewhere they are refused with the tensor's name */
  int64_t sh[2] = {3, 4}, one[1] = {1}, xs2[2] = {-1, 3};
  g_autoptr(PqTensor) s = pq_tensor_new("s", PQ_DTYPE_F32, 1, one);
  g_autoptr(PqTensor) q = pq_tensor_new_packed("wq", 4, 2, sh, PQ_QUANT_PER_TENSOR, 0, s, NULL);
  PqTensor *qw[1] = {q};
  PqNode *node;
  g_autoptr(PqModel) mq = single("matmul", 2, xs2, 1, qw, &node);
  g_assert_null(pq_backend_prepare(cpu, mq, 1, 4, NULL, &err));
  g_assert_error(err, PQ_PLUGIN_CALL_ERROR, PQ_ERR_UNSUPPORTED);
  g_assert_nonnull(strstr(err->message, "'wq' is packed 4-bit: the CPU backend runs packed weights in linear layers only"));
  g_clear_error(&err);
  /* F16 weights are widened once at prepare and give the same result */
  g_autoptr(PqModel) mh = pq_model_copy(m);
  PqTensor *w1 = pq_model_tensor(m, "w1");
  g_autoptr(PqTensor) h = pq_tensor_new("w1", PQ_DTYPE_F16, 2, sh);
  g_autoptr(PqTensor) wr = pq_tensor_new("w1", PQ_DTYPE_F32, 2, sh);
  for (int i = 0; i < 12; i++) {
    guint16 v = pq_f32_to_f16(((const float *)pq_tensor_data(w1))[i]);
    ((guint16 *)pq_tensor_mutable_data(h))[i] = v;
    ((float *)pq_tensor_mutable_data(wr))[i] = pq_f16_to_f32(v);
  }
  pq_model_set_tensor(mh, h);
  g_autoptr(PqModel) mr = pq_model_copy(m);
  pq_model_set_tensor(mr, wr);
  fill(x, 8, 80);
  int64_t on;
  g_autofree float *yh = run(mh, x, 2, 2, &on), *yr = run(mr, x, 2, 2, &on);
  g_assert_cmpmem(yh, 4 * sizeof(float), yr, 4 * sizeof(float));
}

/* [x ->] mul by s -> packed linear, or the linear alone on "x" (scaled = FALSE), or the mul alone (lin = FALSE) */
static PqModel *scaled_linear(const PqTensor *s, const PqTensor *w, const PqTensor *b, gboolean scaled, gboolean lin, float act_scale) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[2] = {-1, pq_tensor_shape(s)[0]};
  pq_graph_add_input(g, "x", 2, xs);
  pq_model_set_tensor(m, (PqTensor *)s), pq_model_set_tensor(m, (PqTensor *)w), pq_model_set_tensor(m, (PqTensor *)b);
  if (scaled) pq_graph_add_node(g, "mul", "m", 2, (const char *[]){"x", "s"}, 1, (const char *[]){"xs"});
  if (lin) {
    PqNode *n = pq_graph_add_node(g, "linear", "fc", 3, (const char *[]){scaled ? "xs" : "x", "w", "b"}, 1, (const char *[]){"y"});
    if (act_scale > 0) pq_node_set_float(n, "act_scale", act_scale);
  }
  pq_graph_add_output(g, lin ? "y" : "xs");
  return m;
}

/* Runs m on the CPU backend with `kernels` and fuse_elementwise `fuse`; *current: its memory counter */
static float *run_fuse(PqModel *m, const float *x, int64_t batch, int64_t max_batch, int threads, const char *kernels, gboolean fuse,
                       int64_t *current) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
  g_assert_true(pq_options_set(o, "kernels", kernels, &err));
  g_assert_true(pq_options_set(o, "fuse_elementwise", fuse ? "true" : "false", &err));
  g_autoptr(PqBackend) be = pq_backend_prepare(cpu, m, threads, max_batch, o, &err);
  g_assert_no_error(err);
  float *y = g_new0(float, batch * pq_backend_output_numel(be));
  g_assert_true(pq_backend_run_f32(be, x, batch, y, &err));
  g_assert_no_error(err);
  if (current) {
    PqMemoryCounters mc = {sizeof mc, 0, 0, 0, 0, 0, 0};
    g_assert_true(pq_backend_memory(be, &mc, &err));
    *current = mc.current_bytes;
  }
  return y;
}

static float *run_with(PqModel *m, const float *x, int64_t batch, int64_t max_batch, int threads, const char *kernels, int64_t *current) {
  return run_fuse(m, x, batch, max_batch, threads, kernels, TRUE, current);
}

/* A model x → ops[0] → … → y; an op's `t` names the model tensor it takes with x (first: t op x), "" none */
typedef struct {
  const char *op, *t;
  gboolean first;
  const char *attr[2];
  double val[2];
} ChainOp;

static PqModel *chain_model(const ChainOp *ops, int n, int xnd, const int64_t *xs, PqTensor **ts, int n_t, int also_out) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  for (int i = 0; i < n_t; i++) pq_model_set_tensor(m, ts[i]);
  pq_graph_add_input(g, "x", xnd, xs);
  for (int i = 0; i < n; i++) {
    g_autofree char *in = i ? g_strdup_printf("v%d", i - 1) : g_strdup("x"), *out = i == n - 1 ? g_strdup("y") : g_strdup_printf("v%d", i),
                    *name = g_strdup_printf("n%d", i);
    const char *ins[2] = {in, ops[i].t}, *outs[1] = {out};
    if (ops[i].first) ins[0] = ops[i].t, ins[1] = in;
    PqNode *node = pq_graph_add_node(g, ops[i].op, name, ops[i].t[0] ? 2 : 1, ins, 1, outs);
    for (int k = 0; k < 2; k++)
      if (ops[i].attr[k]) pq_node_set_float(node, ops[i].attr[k], ops[i].val[k]);
  }
  pq_graph_add_output(g, "y");
  if (also_out >= 0) {
    g_autofree char *o = g_strdup_printf("v%d", also_out);
    pq_graph_add_output(g, o);
  }
  return m;
}

/* Elementwise ops that read one another run as one pass (fuse_elementwise): the values are those of each op run
 * alone, bit for bit (one sample in blocks, batches split over two threads, a value also a graph output), a
 * QuantizeLinear/DequantizeLinear pair gives the formula's values, and the buffers between the ops are gone. */
static void test_elementwise_chain(void) {
  enum { C = 3, H = 40, W = 40, PS = C * H * W, MB = 16 };
  g_autoptr(GError) err = NULL;
  int64_t xs[4] = {-1, C, H, W};
  g_autofree float *x = g_new(float, MB * PS);
  fill(x, MB * PS, 120);
  for (int i = 0; i < MB * PS; i++) x[i] *= 8.0f;
  g_autoptr(PqTensor) s = pq_tensor_new("s", PQ_DTYPE_F32, 1, (const int64_t[]){1});
  g_autoptr(PqTensor) z = pq_tensor_new("z", PQ_DTYPE_F32, 3, (const int64_t[]){C, 1, 1});
  g_autoptr(PqTensor) row = pq_tensor_new("row", PQ_DTYPE_F32, 1, (const int64_t[]){W});
  g_autoptr(PqTensor) full = pq_tensor_new("full", PQ_DTYPE_F32, 3, (const int64_t[]){C, H, W});
  float *sd = pq_tensor_mutable_data(s), *zd = pq_tensor_mutable_data(z);
  sd[0] = 0.037f;
  zd[0] = 0, zd[1] = 7, zd[2] = 128;
  fill(pq_tensor_mutable_data(row), W, 121);
  fill(pq_tensor_mutable_data(full), PS, 122);
  PqTensor *ts[4] = {s, z, row, full};
  const ChainOp qdq[] = {{"div", "s", FALSE, {0}, {0}},  {"round", "", FALSE, {0}, {0}},
                         {"add", "z", FALSE, {0}, {0}},  {"clip", "", FALSE, {"min", "max"}, {0, 255}},
                         {"sub", "z", FALSE, {0}, {0}},  {"mul", "s", FALSE, {0}, {0}}};
  const ChainOp more[] = {{"sub", "row", TRUE, {0}, {0}}, {"leaky_relu", "", FALSE, {"alpha"}, {0.1}},
                          {"div", "s", TRUE, {0}, {0}},   {"sigmoid", "", FALSE, {0}, {0}},
                          {"maximum", "full", FALSE, {0}, {0}}, {"hard_swish", "", FALSE, {0}, {0}},
                          {"relu", "", FALSE, {0}, {0}}};
  ChainOp all[G_N_ELEMENTS(qdq) + G_N_ELEMENTS(more)];
  memcpy(all, qdq, sizeof qdq);
  memcpy(all + G_N_ELEMENTS(qdq), more, sizeof more);
  /* the QDQ pair against its formula */
  g_autoptr(PqModel) mq = chain_model(qdq, G_N_ELEMENTS(qdq), 4, xs, ts, 4, -1);
  g_autofree float *yq = run_fuse(mq, x, MB, MB, 1, "auto", TRUE, NULL);
  for (int i = 0; i < MB * PS; i++) {
    float zz = zd[i / (H * W) % C], q = rintf(x[i] / sd[0]) + zz;
    q = q > 0.0f ? q : 0.0f;
    q = q < 255.0f ? q : 255.0f;
    float want = (q - zz) * sd[0];
    if (memcmp(&want, &yq[i], sizeof want)) g_error("value %d: %g, the formula gives %g", i, yq[i], want);
  }
  /* the long chain against the ops one at a time, on each build of the loops, at batches within one part and
   * split over threads (MB × PS values: three parts), and the memory it saves */
  g_autoptr(PqModel) ma = chain_model(all, G_N_ELEMENTS(all), 4, xs, ts, 4, -1);
  const char *kernels[] = {"auto", "portable"};
  for (int ki = 0; ki < 2; ki++)
    for (int threads = 1; threads <= 2; threads++)
      for (int64_t batch = 1; batch <= MB; batch = batch == 1 ? 5 : batch + 11) {
        int64_t fused_bytes, op_bytes;
        g_autofree float *want = run_fuse(ma, x, batch, MB, threads, kernels[ki], FALSE, &op_bytes);
        g_autofree float *got = run_fuse(ma, x, batch, MB, threads, kernels[ki], TRUE, &fused_bytes);
        g_assert_cmpmem(got, sizeof(float) * batch * PS, want, sizeof(float) * batch * PS);
        /* one buffer of a batch fewer (the output's alone), and z (twice) and row copied out over a sample; full
         * is read where it is */
        g_assert_cmpint(fused_bytes + (int64_t)sizeof(float) * MB * PS, ==, op_bytes + (int64_t)sizeof(float) * 3 * PS);
      }
  /* a value in the middle that is also a graph output: two chains, both outputs right */
  g_autoptr(PqModel) mo = chain_model(all, G_N_ELEMENTS(all), 4, xs, ts, 4, 3);
  float *outs[2][2];
  for (int f = 0; f < 2; f++) {
    g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(cpu), "cpu", &err);
    g_assert_true(pq_options_set(o, "fuse_elementwise", f ? "true" : "false", &err));
    g_autoptr(PqBackend) be = pq_backend_prepare(cpu, mo, 2, MB, o, &err);
    g_assert_no_error(err);
    outs[f][0] = g_new(float, MB * PS);
    outs[f][1] = g_new(float, MB * PS);
    PqTensorView in = {sizeof in, PQ_DTYPE_F32, 4, 0, {MB, C, H, W}, x};
    PqTensorView out[2] = {{sizeof out[0], PQ_DTYPE_F32, 4, 0, {MB, C, H, W}, outs[f][0]}, {sizeof out[1], PQ_DTYPE_F32, 4, 0, {MB, C, H, W}, outs[f][1]}};
    g_assert_true(pq_backend_run(be, &in, 1, out, 2, &err));
    g_assert_no_error(err);
  }
  for (int k = 0; k < 2; k++) {
    g_assert_cmpmem(outs[1][k], sizeof(float) * MB * PS, outs[0][k], sizeof(float) * MB * PS);
    g_free(outs[0][k]);
    g_free(outs[1][k]);
  }
  /* an add with its relu folded (fuse_relu) starts a chain: add, relu, mul, round */
  const ChainOp biased[] = {{"add", "row", FALSE, {0}, {0}}, {"relu", "", FALSE, {0}, {0}}, {"mul", "s", TRUE, {0}, {0}}, {"round", "", FALSE, {0}, {0}}};
  g_autoptr(PqModel) mb = chain_model(biased, G_N_ELEMENTS(biased), 4, xs, ts, 4, -1);
  g_autofree float *bw = run_fuse(mb, x, 7, MB, 2, "auto", FALSE, NULL), *bg = run_fuse(mb, x, 7, MB, 2, "auto", TRUE, NULL);
  g_assert_cmpmem(bg, sizeof(float) * 7 * PS, bw, sizeof(float) * 7 * PS);
  for (int i = 0; i < 7 * PS; i++) {
    float v = x[i] + ((const float *)pq_tensor_data(row))[i % W];
    v = v > 0.0f ? v : 0.0f;
    g_assert_cmpfloat(bg[i], ==, rintf(sd[0] * v));
  }
}

/* A mul by a vector before a packed linear layer (equalize awq's input scales) is folded into the layer: the
 * outputs are those of the mul run alone and its result then given to the layer, bit for bit, on every
 * kernel path (one row, lanes, blocked batches, split by outputs and by rows over two threads, static
 * activations), and the mul's buffer of a batch of rows is gone. */
static void test_input_scale(void) {
  enum { K = 128, N = 128, MB = 16 };
  g_autoptr(GError) err = NULL;
  g_autofree float *wf = g_new(float, N * K), *x = g_new(float, MB * K);
  fill(wf, N * K, 90);
  fill(x, MB * K, 91);
  g_autoptr(PqTensor) s = pq_tensor_new("s", PQ_DTYPE_F32, 1, (const int64_t[]){K});
  g_autoptr(PqTensor) b = pq_tensor_new("b", PQ_DTYPE_F32, 1, (const int64_t[]){N});
  float *sd = pq_tensor_mutable_data(s);
  for (int j = 0; j < K; j++) sd[j] = powf(10.0f, (float)(j % 21 - 10) / 10.0f); /* 0.1 … 10 */
  fill(pq_tensor_mutable_data(b), N, 92);
  const struct {
    int bits;
    PqQuantScheme scheme;
    int64_t group;
    float act;
  } grids[] = {{8, PQ_QUANT_PER_CHANNEL, 0, 0}, {4, PQ_QUANT_PER_GROUP, 32, 0}, {3, PQ_QUANT_PER_CHANNEL, 0, 0}, {8, PQ_QUANT_PER_CHANNEL, 0, 0.05f}};
  for (size_t gi = 0; gi < G_N_ELEMENTS(grids); gi++) {
    PqPluginError perr = {sizeof perr, 0, {0}};
    g_autoptr(PqTensor) w = pq_quantize_matrix("w", wf, 2, (const int64_t[]){N, K}, grids[gi].bits, grids[gi].scheme, grids[gi].group, 1, 0, &perr);
    g_assert_nonnull(w);
    g_autoptr(PqModel) fused = scaled_linear(s, w, b, TRUE, TRUE, grids[gi].act), mul = scaled_linear(s, w, b, TRUE, FALSE, 0);
    g_autoptr(PqModel) lin = scaled_linear(s, w, b, FALSE, TRUE, grids[gi].act);
    const char *kernels[] = {"auto", "portable"};
    for (int ki = 0; ki < 2; ki++)
      for (int threads = 1; threads <= 2; threads++)
        for (int64_t batch = 1; batch <= MB; batch = batch == 1 ? 8 : batch * 2) {
          int64_t with_mul, alone;
          g_autofree float *xs = run_with(mul, x, batch, MB, threads, kernels[ki], NULL);
          g_autofree float *want = run_with(lin, xs, batch, MB, threads, kernels[ki], &alone);
          g_autofree float *got = run_with(fused, x, batch, MB, threads, kernels[ki], &with_mul);
          g_assert_cmpmem(got, sizeof(float) * batch * N, want, sizeof(float) * batch * N);
          /* a row of scratch a thread, not a batch of rows */
          g_assert_cmpint(with_mul, <=, alone + (int64_t)sizeof(float) * K * (threads + 1));
        }
  }
  /* not folded where the mul's result is read elsewhere too (here a model output): both outputs right */
  PqPluginError perr = {sizeof perr, 0, {0}};
  g_autoptr(PqTensor) w = pq_quantize_matrix("w", wf, 2, (const int64_t[]){N, K}, 8, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &perr);
  g_autoptr(PqModel) both = scaled_linear(s, w, b, TRUE, TRUE, 0), mul = scaled_linear(s, w, b, TRUE, FALSE, 0);
  g_autoptr(PqModel) lin = scaled_linear(s, w, b, FALSE, TRUE, 0);
  pq_graph_add_output(pq_model_graph(both), "xs");
  g_autofree float *xs = run_with(mul, x, 8, MB, 1, "auto", NULL), *want = run_with(lin, xs, 8, MB, 1, "auto", NULL);
  g_autoptr(PqBackend) be = pq_backend_prepare(cpu, both, 1, MB, NULL, &err);
  g_assert_no_error(err);
  g_autofree float *y = g_new(float, 8 * N), *xo = g_new(float, 8 * K);
  PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {8, K}, x};
  PqTensorView out[2] = {{sizeof out[0], PQ_DTYPE_F32, 2, 0, {8, N}, y}, {sizeof out[1], PQ_DTYPE_F32, 2, 0, {8, K}, xo}};
  g_assert_true(pq_backend_run(be, &in, 1, out, 2, &err));
  g_assert_no_error(err);
  g_assert_cmpmem(y, sizeof(float) * 8 * N, want, sizeof(float) * 8 * N);
  g_assert_cmpmem(xo, sizeof(float) * 8 * K, xs, sizeof(float) * 8 * K);
}

static double metric(GPtrArray *metrics, const char *name) {
  for (guint i = 0; i < metrics->len; i++)
    if (!strcmp(((PqMetric *)metrics->pdata[i])->name, name)) return ((PqMetric *)metrics->pdata[i])->value;
  g_error("no metric '%s'", name);
  return 0;
}

/* The latency probe's options: pairs of key and value, then NULL (each set, or the test fails) */
static PqOptions *latency_options(PqPlugin *lat, ...) {
  g_autoptr(GError) err = NULL;
  PqOptions *o = pq_options_new(pq_plugin_options_schema(lat), "latency", &err);
  g_assert_no_error(err);
  va_list ap;
  va_start(ap, lat);
  for (const char *k; (k = va_arg(ap, const char *));) {
    const char *v = va_arg(ap, const char *);
    g_assert_true(pq_options_set(o, k, v, &err));
  }
  va_end(ap);
  return o;
}

/* The backend times its own runs (ABI 1.2): nothing before a run; after one, the compute and the copy out;
 * the latency probe reports those figures beside its own, and each lies inside the span the host timed. */
static void test_timing(void) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(256, 128, 10, 5);
  g_autoptr(PqBackend) b = pq_backend_prepare(cpu, m, 1, 8, NULL, &err);
  g_assert_no_error(err);
  PqRunTiming t;
  g_assert_true(pq_backend_last_timing(b, &t, &err));
  g_assert_cmpfloat(t.total_ms, ==, -1); /* no run yet */
  float x[8 * 256], y[8 * 10];
  fill(x, 8 * 256, 1);
  g_assert_true(pq_backend_run_f32(b, x, 8, y, &err));
  g_assert_true(pq_backend_last_timing(b, &t, &err));
  g_assert_cmpfloat(t.compute_ms, >, 0);
  g_assert_cmpfloat(t.copy_in_ms, ==, 0); /* the CPU backend reads its input in place */
  g_assert_cmpfloat(t.copy_out_ms, >=, 0);
  g_assert_cmpfloat(fabs(t.total_ms - (t.compute_ms + t.copy_out_ms)), <, 1e-9);
  for (int i = 0; i < 5; i++) { /* each run's own timing lies inside the host's span of it */
    struct timespec a, z; /* (the backend's clock: CLOCK_MONOTONIC, finer than g_get_monotonic_time's µs) */
    clock_gettime(CLOCK_MONOTONIC, &a);
    g_assert_true(pq_backend_run_f32(b, x, 8, y, &err));
    clock_gettime(CLOCK_MONOTONIC, &z);
    const double host_ms = (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) * 1e-6;
    g_assert_true(pq_backend_last_timing(b, &t, &err));
    g_assert_cmpfloat(t.compute_ms, >, 0);
    g_assert_cmpfloat(t.total_ms, <=, host_ms);
  }

  PqPlugin *lat = pq_registry_load(reg, LATENCY_PLUGIN, &err);
  g_assert_no_error(err);
  g_autoptr(PqOptions) o = latency_options(lat, "batch_sizes", "1,8", "runs", "30", NULL);
  g_autoptr(GPtrArray) r = pq_probe_run(lat, cpu, m, m, NULL, o, 1, 8, &err);
  g_assert_no_error(err);
  const char *batches[2] = {"b1", "b8"};
  for (int i = 0; i < 2; i++) {
    char k1[96], k2[96];
    /* the backend's timings come from runs of their own (after the host-timed ones, which asked for none):
       each run's compute lies inside its total, so each order statistic does too */
    g_snprintf(k1, sizeof k1, "latency.%s.backend_p50_ms", batches[i]);
    g_assert_cmpfloat(metric(r, k1), >, 0);
    g_snprintf(k2, sizeof k2, "latency.%s.backend_compute_p50_ms", batches[i]);
    g_assert_cmpfloat(metric(r, k2), >, 0);
    g_assert_cmpfloat(metric(r, k2), <=, metric(r, k1));
    g_snprintf(k1, sizeof k1, "latency.%s.baseline.backend_p50_ms", batches[i]);
    g_snprintf(k2, sizeof k2, "latency.%s.baseline.backend_compute_p50_ms", batches[i]);
    g_assert_cmpfloat(metric(r, k2), >, 0);
    g_assert_cmpfloat(metric(r, k2), <=, metric(r, k1));
  }

  /* the first batch size warms up for warmup_ms as well as `warmup` runs: a probe of one timed run with no
     warm-up runs still takes at least that long (a lower bound: the machine's speed cannot break it) */
  {
    g_autoptr(PqOptions) w = latency_options(lat, "batch_sizes", "1", "runs", "1", "warmup", "0", "warmup_ms", "300", NULL);
    gint64 t0 = g_get_monotonic_time();
    g_autoptr(GPtrArray) rw = pq_probe_run(lat, cpu, m, m, NULL, w, 1, 8, &err);
    g_assert_no_error(err);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 300000);
    g_assert_cmpfloat(metric(rw, "latency.b1.runs"), ==, 1);
  }

  /* which of the two models runs first is swapped every pair: a backend that times the first run of a pair as
     1 ms and the second as 2 ms gives both models a mean of 1.5 ms (always baseline first: 1 and 2). It times
     only runs whose timing was asked for before they ran, so the probe must ask ahead (else no backend_*). */
  {
    PqPlugin *ord = pq_registry_load(reg, TEST_PLUGIN_DIR "/timing-order.so", &err);
    g_assert_no_error(err);
    g_autoptr(PqOptions) w = latency_options(lat, "batch_sizes", "1", "runs", "20", "warmup", "3", "warmup_ms", "0", NULL);
    g_autoptr(GPtrArray) ro = pq_probe_run(lat, ord, m, m, NULL, w, 1, 8, &err);
    g_assert_no_error(err);
    g_assert_cmpfloat_with_epsilon(metric(ro, "latency.b1.backend_mean_ms"), 1.5, 1e-9);
    g_assert_cmpfloat_with_epsilon(metric(ro, "latency.b1.baseline.backend_mean_ms"), 1.5, 1e-9);
  }

  /* --min-time keeps the host timing past `runs` (its arrays grow); the backend's own pass still times `runs` */
  {
    g_autoptr(PqOptions) w = latency_options(lat, "batch_sizes", "1", "runs", "3", "warmup_ms", "0", "min_time_ms", "30", NULL);
    g_autoptr(GPtrArray) rm = pq_probe_run(lat, cpu, m, m, NULL, w, 1, 8, &err);
    g_assert_no_error(err);
    g_assert_cmpfloat(metric(rm, "latency.b1.runs"), >, 3);
    g_assert_cmpfloat(metric(rm, "latency.b1.backend_p50_ms"), >, 0);
  }

  /* "slower" (slower.h): the median above the baseline's 90th percentile and more than 5% above its median; the
     figures of the H200's baseline row (23.45 µs against 22.80, 90th percentile 22.94) are not slower */
  g_assert_false(pq_latency_slower(23.45, 22.80, 22.94));
  g_assert_true(pq_latency_slower(24.00, 22.80, 22.94));  /* 5.3% above */
  g_assert_false(pq_latency_slower(23.90, 22.80, 22.94)); /* 4.8% above */
  g_assert_false(pq_latency_slower(30.00, 22.80, 31.00)); /* within the baseline's spread */

  /* a backend whose timing is not a time: the probe fails with the backend and the field named */
  PqPlugin *bad = pq_registry_load(reg, TEST_PLUGIN_DIR "/timing-nan.so", &err);
  g_assert_no_error(err);
  g_assert_null(pq_probe_run(lat, bad, m, m, NULL, o, 1, 8, &err));
  g_assert_nonnull(err);
  g_assert_nonnull(strstr(err->message, "backend 'test_timing_nan' timing: compute_ms = nan is neither a time nor -1"));
}

/* A backend built before ABI 1.11 reads a packed tensor's scales as floats: a model with F16 scales is refused
 * for it at prepare, by name (and one with F32 scales is not) */
static void test_old_backend_f16_scales(void) {
  g_autoptr(GError) err = NULL;
  PqPlugin *old = pq_registry_load(reg, TEST_PLUGIN_DIR "/old-minor.so", &err);
  g_assert_no_error(err);
  g_autoptr(PqModel) m = pq_test_tiny_mlp(16, 8, 3, 2);
  PqPluginError e = {sizeof e, 0, {0}};
  PqTensor *w = pq_model_tensor(m, "w1");
  g_autoptr(PqTensor) q = pq_quantize_matrix("w1", pq_tensor_data(w), 2, pq_tensor_shape(w), 4, PQ_QUANT_PER_CHANNEL, 0, 1, 0, &e);
  g_autoptr(PqTensor) h = pq_packed_with_f16_scales(q, pq_tensor_data(w), &e);
  pq_model_set_tensor(m, q); /* (w is gone) */
  g_autoptr(PqBackend) ok = pq_backend_prepare(old, m, 1, 1, NULL, &err);
  g_assert_no_error(err);
  pq_model_set_tensor(m, h);
  g_assert_null(pq_backend_prepare(old, m, 1, 1, NULL, &err));
  g_assert_nonnull(err);
  if (!strstr(err->message, "backend 'test_old_minor' was built for plugin ABI 1.10, before packed tensors could carry F16 scales ('w1')"))
    g_error("%s", err->message);
  g_clear_error(&err);
  g_autoptr(PqBackend) now = pq_backend_prepare(cpu, m, 1, 1, NULL, &err); /* (this build's backend takes it) */
  g_assert_no_error(err);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  reg = pq_registry_new();
  cpu = pq_test_cpu_backend(reg);
  g_test_add_func("/cpu/linear", test_linear);
  g_test_add_func("/cpu/matmul-add-softmax", test_matmul_add_softmax);
  g_test_add_func("/cpu/conv2d", test_conv);
  g_test_add_func("/cpu/pool-batchnorm-gap", test_pool_bn_gap);
  g_test_add_func("/cpu/network", test_network);
  g_test_add_func("/cpu/errors", test_errors);
  g_test_add_func("/cpu/timing", test_timing);
  g_test_add_func("/cpu/old-backend-f16-scales", test_old_backend_f16_scales);
  g_test_add_func("/cpu/activations", test_activations);
  g_test_add_func("/cpu/layer-norm", test_layer_norm);
  g_test_add_func("/cpu/reductions", test_reductions);
  g_test_add_func("/cpu/conv-transpose", test_conv_transpose);
  g_test_add_func("/cpu/slice", test_slice);
  g_test_add_func("/cpu/resize", test_resize);
  g_test_add_func("/cpu/matmul-activations", test_matmul_activations);
  g_test_add_func("/cpu/binary-ops", test_binary);
  g_test_add_func("/cpu/transpose", test_transpose);
  g_test_add_func("/cpu/concat", test_concat);
  g_test_add_func("/cpu/log-softmax", test_log_softmax);
  g_test_add_func("/cpu/pad2d", test_pad);
  g_test_add_func("/cpu/threads-float", test_threads_float);
  g_test_add_func("/cpu/input-scale", test_input_scale);
  g_test_add_func("/cpu/elementwise-chain", test_elementwise_chain);
  int rc = g_test_run();
  pq_registry_free(reg);
  return rc;
}
