/* cuda.c — the CUDA backend: on a machine without a usable GPU it says why and refuses to prepare (checked
 * here); on a GPU, every op and compressed form it runs matches the CPU backend on the same inputs, the
 * TF32/fp16 modes stay within their precision, and its CUDA-event timing and memory counters are sane. */
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static PqRegistry *reg;
static PqPlugin *cpu, *cuda, *quant, *tensor_train, *circulant, *prune, *low_rank, *tucker, *cp;

/* the CUDA backend's options: the GEMM precision (NULL: the default) and whether runs go through CUDA graphs.
 * The tests ask for graphs "on", so that a run that cannot be captured fails instead of running as it is. */
static PqOptions *cuda_options(const char *math, const char *graphs) {
  g_autoptr(GError) err = NULL;
  PqOptions *o = pq_options_new(pq_plugin_options_schema(cuda), "cuda", &err);
  g_assert_no_error(err);
  if (math) g_assert_true(pq_options_set(o, "math", math, &err));
  g_assert_true(pq_options_set(o, "graphs", graphs, &err));
  return o;
}

static PqOptions *math_options(const char *math) { return cuda_options(math, "on"); }

/* the CUDA backend's option `key` refuses `value` (a value outside its choices), machine with a GPU or not */
static void assert_option_refused(const char *key, const char *value) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(cuda), "cuda", &err);
  g_assert_no_error(err);
  g_assert_false(pq_options_set(o, key, value, &err));
  g_assert_nonnull(err);
}

/* worst |a - b| over n values, NaN counting as infinite */
static double max_diff(const float *a, const float *b, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = isnan(a[i]) || isnan(b[i]) ? INFINITY : fmax(worst, fabs((double)a[i] - b[i]));
  return worst;
}

/* the largest |a| over n values */
static double max_abs(const float *a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
  return m;
}

/* The outputs of a run on random inputs. On the GPU the same batch runs three times on one prepared backend:
 * plain launches, then captured into a graph and launched, then the graph again; the graph's runs must give
 * the same outputs as each other and as the plain run (the same kernels in the same order), and the last is
 * what is returned. */
static float *run_opts(PqPlugin *backend, const PqModel *m, int64_t batch, int64_t *on, PqOptions *o) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(backend, m, 1, batch, o, &err);
  g_assert_no_error(err);
  int64_t in = pq_backend_input_numel(b);
  *on = pq_backend_output_numel(b);
  g_autofree float *x = g_new(float, batch * in);
  GRand *r = g_rand_new_with_seed(11);
  for (int64_t i = 0; i < batch * in; i++) x[i] = (float)g_rand_double_range(r, -1, 1);
  g_rand_free(r);
  float *y = NULL;
  g_autofree float *first = NULL;
  for (int pass = 0; pass < (backend == cuda ? 3 : 1); pass++) {
    g_free(first);
    first = y;
    y = g_new(float, batch * *on);
    for (int64_t i = 0; i < batch * *on; i++) y[i] = NAN; /* poisoned: every output must be written */
    g_assert_true(pq_backend_run_f32(b, x, batch, y, &err));
    g_assert_no_error(err);
    if (pass == 1) g_assert_cmpfloat(max_diff(y, first, batch * *on), <=, 1e-5 * (1 + max_abs(y, batch * *on))); /* captured vs plain */
    if (pass == 2) g_assert_cmpfloat(max_diff(y, first, batch * *on), ==, 0); /* the graph again */
  }
  return y;
}

/* run_opts with the GEMM precision `math` (NULL: the default) on the GPU */
static float *run_with(PqPlugin *backend, const PqModel *m, int64_t batch, int64_t *on, const char *math) {
  g_autoptr(PqOptions) o = backend == cuda ? math_options(math) : NULL;
  return run_opts(backend, m, batch, on, o);
}

static float *run(PqPlugin *backend, const PqModel *m, int64_t batch, int64_t *on) { return run_with(backend, m, batch, on, NULL); }

/* the GPU's outputs with options `o` against the CPU backend's, within tol of their scale */
static void compare_opts(const PqModel *gpu_model, const PqModel *cpu_model, int64_t batch, double tol, PqOptions *o, const char *what) {
  int64_t on;
  g_autofree float *a = run_opts(cuda, gpu_model, batch, &on, o), *b = run(cpu, cpu_model, batch, &on);
  const double worst = max_diff(a, b, batch * on), scale = max_abs(b, batch * on);
  g_test_message("max |gpu - cpu| = %g (scale %g, batch %lld, %s)", worst, scale, (long long)batch, what);
  g_assert_cmpfloat(worst, <=, tol * (1 + scale));
}

static void compare_math(const PqModel *gpu_model, const PqModel *cpu_model, int64_t batch, double tol, const char *math) {
  g_autoptr(PqOptions) o = math_options(math);
  compare_opts(gpu_model, cpu_model, batch, tol, o, math ? math : "fp32");
}

static void compare(const PqModel *gpu_model, const PqModel *cpu_model, int64_t batch, double tol) {
  compare_math(gpu_model, cpu_model, batch, tol, NULL);
}

static PqModel *compressed(PqPlugin *p, const PqModel *m, const char *const *kv) {
  g_autoptr(GError) err = NULL;
  PqModel *out = pq_test_compress(p, cpu, m, kv, &err);
  g_assert_no_error(err);
  return out;
}

static gboolean usable(void) {
  const char *why = NULL;
  if (pq_plugin_usable(cuda, &why)) return TRUE;
  g_autofree char *msg = g_strdup_printf("no usable GPU here: %s", why);
  g_test_skip(msg);
  return FALSE;
}

static void test_not_usable(void) {
  const char *why = NULL;
  if (pq_plugin_usable(cuda, &why)) {
    g_test_skip("a GPU is usable here: nothing to refuse");
    return;
  }
  g_assert_nonnull(why);
  g_assert_cmpstr(why, !=, "");
  g_autoptr(PqModel) m = pq_test_tiny_mlp(8, 4, 3, 1);
  g_autoptr(GError) err = NULL;
  g_assert_null(pq_backend_prepare(cuda, m, 1, 4, NULL, &err));
  g_assert_error(err, PQ_PLUGIN_CALL_ERROR, PQ_ERR_NOT_USABLE);
  g_assert_nonnull(strstr(err->message, "backend 'cuda' is not usable on this machine"));
}

/* The suite runs each method in a forked child: asking whether the GPU is usable must leave this process
 * without CUDA initialized, or the child could not use it. Runs before any test here touches the GPU. */
static void test_fork_safe(void) {
  if (!usable()) return;
  pid_t pid = fork();
  g_assert_cmpint(pid, >=, 0);
  if (pid == 0) {
    g_autoptr(PqModel) m = pq_test_tiny_mlp(16, 8, 4, 1);
    g_autoptr(PqBackend) b = pq_backend_prepare(cuda, m, 1, 2, NULL, NULL);
    float x[32] = {0}, y[8];
    _exit(b && pq_backend_run_f32(b, x, 2, y, NULL) ? 0 : 3);
  }
  int status = 0;
  g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
  g_assert_true(WIFEXITED(status));
  g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

static void test_dense(void) {
  if (!usable()) return;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(300, 64, 10, 3);
  compare(m, m, 1, 1e-4);
  compare(m, m, 33, 1e-4);
  /* a small CNN: conv (padded, strided, grouped), batch norm, pools, add, flatten, linear, softmax */
  PqModel *c = pq_model_new();
  PqGraph *g = pq_model_graph(c);
  int64_t xs[4] = {-1, 4, 12, 10}, w1[4] = {8, 2, 3, 3}, b1[1] = {8}, ch[1] = {8}, wl[2] = {10, 8 * 6 * 5}, bl[1] = {10};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *ts[8] = {pq_test_random_tensor("w1", 4, w1, 1, 0.5f), pq_test_random_tensor("b1", 1, b1, 2, 0.1f),
                     pq_test_random_tensor("g", 1, ch, 3, 1), pq_test_random_tensor("be", 1, ch, 4, 1),
                     pq_test_random_tensor("mu", 1, ch, 5, 1), pq_test_random_tensor("var", 1, ch, 6, 1),
                     pq_test_random_tensor("wl", 2, wl, 7, 0.2f), pq_test_random_tensor("bl", 1, bl, 8, 0.1f)};
  float *var = pq_tensor_mutable_data(ts[5]);
  for (int i = 0; i < 8; i++) var[i] = fabsf(var[i]) + 0.5f;
  for (int i = 0; i < 8; i++) {
    pq_model_set_tensor(c, ts[i]);
    pq_tensor_unref(ts[i]);
  }
  const char *n1[3] = {"x", "w1", "b1"}, *o1[1] = {"c1"}, *n2[5] = {"c1", "g", "be", "mu", "var"}, *o2[1] = {"bn"}, *n3[1] = {"bn"},
             *o3[1] = {"r"}, *n4[1] = {"r"}, *o4[1] = {"mp"}, *n5[1] = {"mp"}, *o5[1] = {"ap"}, *n6[2] = {"mp", "ap"}, *o6[1] = {"s"},
             *n7[1] = {"s"}, *o7[1] = {"f"}, *n8[3] = {"f", "wl", "bl"}, *o8[1] = {"l"}, *n9[1] = {"l"}, *o9[1] = {"y"};
  PqNode *conv = pq_graph_add_node(g, "conv2d", "conv", 3, n1, 1, o1);
  int64_t pads[4] = {1, 1, 1, 1}, st[2] = {1, 1}, k2[2] = {2, 2}, k3[2] = {3, 3}, s1[2] = {1, 1};
  pq_node_set_ints(conv, "pads", 4, pads);
  pq_node_set_ints(conv, "strides", 2, st);
  pq_node_set_int(conv, "groups", 2);
  pq_graph_add_node(g, "batch_norm", "bn", 5, n2, 1, o2);
  pq_graph_add_node(g, "relu", "relu", 1, n3, 1, o3);
  PqNode *mp = pq_graph_add_node(g, "maxpool2d", "mp", 1, n4, 1, o4);
  pq_node_set_ints(mp, "kernel", 2, k2);
  pq_node_set_int(mp, "ceil_mode", 1);
  PqNode *ap = pq_graph_add_node(g, "avgpool2d", "ap", 1, n5, 1, o5);
  pq_node_set_ints(ap, "kernel", 2, k3);
  pq_node_set_ints(ap, "strides", 2, s1);
  pq_node_set_ints(ap, "pads", 4, pads);
  pq_graph_add_node(g, "add", "add", 2, n6, 1, o6);
  pq_graph_add_node(g, "flatten", "flat", 1, n7, 1, o7);
  pq_graph_add_node(g, "linear", "fc", 3, n8, 1, o8);
  pq_graph_add_node(g, "softmax", "sm", 1, n9, 1, o9);
  pq_graph_add_output(g, "y");
  compare(c, c, 5, 1e-4);
  pq_model_unref(c);
  /* depthwise convs (their own kernel): same padding; stride 2 with two outputs a channel; dilated, uneven
     strides and pads; each followed by a relu folded into it */
  const struct {
    int64_t c, h, w, mult, kh, kw, sh, sw, dh, dw, pads[4];
  } dws[3] = {{6, 9, 8, 1, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}}, {4, 10, 10, 2, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}}, {3, 9, 11, 1, 3, 2, 1, 3, 2, 2, {2, 0, 1, 3}}};
  for (int k = 0; k < 3; k++) {
    g_autoptr(PqModel) dm = pq_model_new();
    int64_t dxs[4] = {-1, dws[k].c, dws[k].h, dws[k].w}, dw[4] = {dws[k].c * dws[k].mult, 1, dws[k].kh, dws[k].kw}, db[1] = {dws[k].c * dws[k].mult};
    pq_graph_add_input(pq_model_graph(dm), "x", 4, dxs);
    PqTensor *wt = pq_test_random_tensor("w", 4, dw, 20 + (guint32)k, 0.5f), *bt = pq_test_random_tensor("b", 1, db, 30 + (guint32)k, 0.1f);
    pq_model_set_tensor(dm, wt), pq_model_set_tensor(dm, bt);
    pq_tensor_unref(wt), pq_tensor_unref(bt);
    PqNode *dn = pq_graph_add_node(pq_model_graph(dm), "conv2d", "dw", 3, (const char *[]){"x", "w", "b"}, 1, (const char *[]){"c"});
    pq_node_set_int(dn, "groups", dws[k].c);
    pq_node_set_ints(dn, "pads", 4, dws[k].pads);
    pq_node_set_ints(dn, "strides", 2, (const int64_t[]){dws[k].sh, dws[k].sw});
    pq_node_set_ints(dn, "dilations", 2, (const int64_t[]){dws[k].dh, dws[k].dw});
    pq_graph_add_node(pq_model_graph(dm), "relu", "r", 1, (const char *[]){"c"}, 1, (const char *[]){"y"});
    pq_graph_add_output(pq_model_graph(dm), "y");
    compare(dm, dm, 3, 1e-5);
  }
}

/* The activation ops: the same formula (pq-activation.h) on both sides. (Of the elementwise math ops, those
 * defined and continuous over every real: a step such as floor may round a GEMM's last-bit difference into
 * a whole step, and log or sqrt of negative hidden values gives NaN on both sides.) */
static void test_activations(void) {
  if (!usable()) return;
  const char *ops[] = {"sigmoid", "tanh", "leaky_relu", "elu", "selu", "clip", "hard_sigmoid", "hard_swish", "softplus", "gelu",
                       "abs", "neg", "exp", "erf", "sin", "cos", "atan", "asinh", "softsign", "celu"};
  for (size_t i = 0; i < G_N_ELEMENTS(ops); i++) {
    g_autoptr(PqModel) m = pq_test_tiny_mlp(64, 32, 10, 3);
    PqGraph *g = pq_model_graph(m);
    for (size_t k = 0; k < pq_graph_n_nodes(g); k++) /* the MLP's relu becomes this activation */
      if (!strcmp(pq_node_op(pq_graph_node(g, k)), "relu")) pq_node_set_op(pq_graph_node(g, k), ops[i]);
    if (!strcmp(ops[i], "clip")) {
      for (size_t k = 0; k < pq_graph_n_nodes(g); k++)
        if (!strcmp(pq_node_op(pq_graph_node(g, k)), "clip")) pq_node_set_float(pq_graph_node(g, k), "max", 0.5);
    }
    compare(m, m, 7, 1e-5);
  }
}

/* layer_norm: over the last two dimensions with scale and bias (a row of 40 values: more than a warp), and each
 * row's mean and 1/σ beside it, summed into one output so that all three are compared; the reductions */
static void test_layer_norm(void) {
  if (!usable()) return;
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[3] = {-1, 5, 40}, ps[1] = {40};
  pq_graph_add_input(g, "x", 3, xs);
  PqTensor *sc = pq_test_random_tensor("sc", 1, ps, 8, 1), *bi = pq_test_random_tensor("bi", 1, ps, 9, 1);
  pq_model_set_tensor(m, sc);
  pq_model_set_tensor(m, bi);
  pq_tensor_unref(sc);
  pq_tensor_unref(bi);
  const char *i1[3] = {"x", "sc", "bi"}, *o1[1] = {"n"}, *i2[1] = {"x"}, *o2[1] = {"mu"}, *o3[1] = {"inv"}, *i4[2] = {"n", "mu"},
             *o4[1] = {"a"}, *i5[2] = {"a", "inv"}, *o5[1] = {"y"};
  pq_graph_add_node(g, "layer_norm", "ln", 3, i1, 1, o1);
  pq_node_set_string(pq_graph_add_node(g, "layer_norm", "ln_mean", 1, i2, 1, o2), "output", "mean");
  pq_node_set_string(pq_graph_add_node(g, "layer_norm", "ln_inv", 1, i2, 1, o3), "output", "inv_std_dev");
  pq_graph_add_node(g, "add", "a1", 2, i4, 1, o4);
  pq_graph_add_node(g, "add", "a2", 2, i5, 1, o5);
  pq_graph_add_output(g, "y");
  compare(m, m, 7, 1e-4);
  /* and each reduction over two dimensions that are not adjacent, keeping them */
  const char *ops[] = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2", "reduce_sum_square",
                       "reduce_log_sum", "reduce_log_sum_exp", "argmax", "argmin"};
  for (size_t i = 0; i < G_N_ELEMENTS(ops); i++) {
    g_autoptr(PqModel) r = pq_model_new();
    int64_t rs[4] = {-1, 3, 4, 6}, axes[2] = {1, -1};
    pq_graph_add_input(pq_model_graph(r), "x", 4, rs);
    const char *ri[1] = {"x"}, *rs1[1] = {"s"}, *ri2[1] = {"s"}, *ro[1] = {"y"};
    pq_graph_add_node(pq_model_graph(r), "sigmoid", "pos", 1, ri, 1, rs1); /* positive: log_sum is defined */
    PqNode *n = pq_graph_add_node(pq_model_graph(r), ops[i], "red", 1, ri2, 1, ro);
    pq_node_set_ints(n, "axes", 2, axes);
    pq_graph_add_output(pq_model_graph(r), "y");
    compare(r, r, 5, 1e-5);
  }
}

/* conv_transpose2d: groups, uneven strides, dilations and pads, output_padding, bias, a folded relu; slice; resize2d */
static void test_conv_transpose(void) {
  if (!usable()) return;
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t xs[4] = {-1, 4, 5, 6}, ws[4] = {4, 3, 3, 2}, bs[1] = {6}, st[2] = {2, 1}, dl[2] = {1, 2}, pads[4] = {1, 0, 0, 1}, opad[2] = {1, 0};
  pq_graph_add_input(g, "x", 4, xs);
  PqTensor *w = pq_test_random_tensor("w", 4, ws, 31, 0.5f), *b = pq_test_random_tensor("b", 1, bs, 32, 0.1f);
  pq_model_set_tensor(m, w);
  pq_model_set_tensor(m, b);
  pq_tensor_unref(w);
  pq_tensor_unref(b);
  const char *ci[3] = {"x", "w", "b"}, *co[1] = {"t"}, *ri[1] = {"t"}, *ro[1] = {"y"};
  PqNode *n = pq_graph_add_node(g, "conv_transpose2d", "ct", 3, ci, 1, co);
  pq_node_set_int(n, "groups", 2);
  pq_node_set_ints(n, "strides", 2, st);
  pq_node_set_ints(n, "dilations", 2, dl);
  pq_node_set_ints(n, "pads", 4, pads);
  pq_node_set_ints(n, "output_padding", 2, opad);
  pq_graph_add_node(g, "relu", "relu", 1, ri, 1, ro);
  pq_graph_add_output(g, "y");
  compare(m, m, 3, 1e-5);
  /* and a slice with a backward step and a clamped end */
  g_autoptr(PqModel) sl = pq_model_new();
  pq_graph_add_input(pq_model_graph(sl), "x", 4, xs);
  const char *si[1] = {"x"}, *so[1] = {"y"};
  PqNode *sn = pq_graph_add_node(pq_model_graph(sl), "slice", "sl", 1, si, 1, so);
  int64_t starts[2] = {-1, 1}, ends[2] = {-10, 100}, axes[2] = {3, 1}, steps[2] = {-2, 2};
  pq_node_set_ints(sn, "starts", 2, starts);
  pq_node_set_ints(sn, "ends", 2, ends);
  pq_node_set_ints(sn, "axes", 2, axes);
  pq_node_set_ints(sn, "steps", 2, steps);
  pq_graph_add_output(pq_model_graph(sl), "y");
  compare(sl, sl, 3, 0);
  /* and a concat that starts with a model tensor [1, …] (a class token), repeated for every sample */
  {
    g_autoptr(PqModel) cm = pq_model_new();
    int64_t cxs[3] = {-1, 3, 4}, cts[3] = {1, 2, 4};
    pq_graph_add_input(pq_model_graph(cm), "x", 3, cxs);
    PqTensor *tok = pq_test_random_tensor("tok", 3, cts, 12, 1);
    pq_model_set_tensor(cm, tok);
    pq_tensor_unref(tok);
    const char *ci[2] = {"tok", "x"}, *co[1] = {"y"};
    pq_graph_add_node(pq_model_graph(cm), "concat", "cat", 2, ci, 1, co);
    pq_graph_add_output(pq_model_graph(cm), "y");
    compare(cm, cm, 3, 0);
  }
  /* and a matmul of two activations (each [3, 4] slice times its transpose) */
  {
    g_autoptr(PqModel) mm = pq_model_new();
    int64_t ms[4] = {-1, 2, 3, 4}, perm[4] = {0, 1, 3, 2};
    pq_graph_add_input(pq_model_graph(mm), "x", 4, ms);
    const char *ti[1] = {"x"}, *to[1] = {"t"}, *mi[2] = {"x", "t"}, *mo[1] = {"y"};
    pq_node_set_ints(pq_graph_add_node(pq_model_graph(mm), "transpose", "tr", 1, ti, 1, to), "perm", 4, perm);
    pq_graph_add_node(pq_model_graph(mm), "matmul", "mm", 2, mi, 1, mo);
    pq_graph_add_output(pq_model_graph(mm), "y");
    compare(mm, mm, 3, 1e-5);
  }
  /* and resize2d in each mode */
  const char *modes[3] = {"nearest", "linear", "cubic"};
  for (int i = 0; i < 3; i++) {
    g_autoptr(PqModel) rz = pq_model_new();
    pq_graph_add_input(pq_model_graph(rz), "x", 4, xs);
    PqNode *rn = pq_graph_add_node(pq_model_graph(rz), "resize2d", "rz", 1, si, 1, so);
    int64_t sizes[2] = {9, 4};
    pq_node_set_ints(rn, "sizes", 2, sizes);
    pq_node_set_string(rn, "mode", modes[i]);
    pq_graph_add_output(pq_model_graph(rz), "y");
    compare(rz, rz, 3, 1e-5);
  }
}

/* sub, mul, div, minimum, maximum, pow (add is in the CNN above): a broadcast weight and a same-shape activation; transpose. */
static void test_binary(void) {
  if (!usable()) return;
  const char *ops[] = {"sub", "mul", "div", "minimum", "maximum"};
  for (size_t i = 0; i < G_N_ELEMENTS(ops); i++) {
    g_autoptr(PqModel) m = pq_model_new();
    PqGraph *g = pq_model_graph(m);
    int64_t xs[3] = {-1, 3, 8}, ws[1] = {8};
    pq_graph_add_input(g, "x", 3, xs);
    PqTensor *w = pq_test_random_tensor("w", 1, ws, 5, 1);
    float *wd = pq_tensor_mutable_data(w);
    for (int k = 0; k < 8; k++) wd[k] += wd[k] >= 0 ? 0.5f : -0.5f;
    pq_model_set_tensor(m, w);
    pq_tensor_unref(w);
    const char *s1[1] = {"x"}, *o1[1] = {"s"}, *i2[2] = {"x", "w"}, *o2[1] = {"a"}, *i3[2] = {"a", "s"}, *o3[1] = {"y0"};
    pq_graph_add_node(g, "sigmoid", "sig", 1, s1, 1, o1); /* a divisor that is never 0 */
    pq_graph_add_node(g, ops[i], "bw", 2, i2, 1, o2);
    pq_graph_add_node(g, ops[i], "bs", 2, i3, 1, o3);
    pq_graph_add_node(g, ops[i], "wf", 2, (const char *[]){"w", "s"}, 1, (const char *[]){"z"}); /* the tensor first: w − s, w / s */
    pq_graph_add_node(g, "add", "sum", 2, (const char *[]){"y0", "z"}, 1, (const char *[]){"y"});
    pq_graph_add_output(g, "y");
    compare(m, m, 6, 1e-5);
  }
  /* pow of a positive base (sigmoid) to a broadcast weight */
  {
    g_autoptr(PqModel) m = pq_model_new();
    PqGraph *g = pq_model_graph(m);
    int64_t xs[3] = {-1, 3, 8}, ws[1] = {8};
    pq_graph_add_input(g, "x", 3, xs);
    PqTensor *w = pq_test_random_tensor("w", 1, ws, 6, 2);
    pq_model_set_tensor(m, w);
    pq_tensor_unref(w);
    const char *s1[1] = {"x"}, *o1[1] = {"s"}, *i2[2] = {"s", "w"}, *o2[1] = {"y"};
    pq_graph_add_node(g, "sigmoid", "sig", 1, s1, 1, o1);
    pq_graph_add_node(g, "pow", "pw", 2, i2, 1, o2);
    pq_graph_add_output(g, "y");
    compare(m, m, 6, 1e-5);
  }
  /* and a transpose of the last two dimensions */
  g_autoptr(PqModel) t = pq_model_new();
  int64_t xs[3] = {-1, 3, 8}, perm[3] = {0, 2, 1};
  pq_graph_add_input(pq_model_graph(t), "x", 3, xs);
  const char *ti[1] = {"x"}, *to[1] = {"y"};
  pq_node_set_ints(pq_graph_add_node(pq_model_graph(t), "transpose", "tr", 1, ti, 1, to), "perm", 3, perm);
  pq_graph_add_output(pq_model_graph(t), "y");
  compare(t, t, 5, 0);
  /* and a concat of x with its transpose's sigmoid along the last axis */
  g_autoptr(PqModel) cc = pq_model_new();
  int64_t sq[3] = {-1, 4, 4};
  pq_graph_add_input(pq_model_graph(cc), "x", 3, sq);
  const char *ci[1] = {"x"}, *co[1] = {"t"}, *si[1] = {"t"}, *so[1] = {"s"}, *ki[2] = {"x", "s"}, *ko[1] = {"y"};
  pq_node_set_ints(pq_graph_add_node(pq_model_graph(cc), "transpose", "tr", 1, ci, 1, co), "perm", 3, perm);
  pq_graph_add_node(pq_model_graph(cc), "sigmoid", "sg", 1, si, 1, so);
  pq_node_set_int(pq_graph_add_node(pq_model_graph(cc), "concat", "cat", 2, ki, 1, ko), "axis", 2);
  pq_graph_add_output(pq_model_graph(cc), "y");
  compare(cc, cc, 3, 1e-6);
  /* the MLP ending in log_softmax instead of softmax */
  g_autoptr(PqModel) ls = pq_test_tiny_mlp(64, 32, 10, 8);
  for (size_t k = 0; k < pq_graph_n_nodes(pq_model_graph(ls)); k++)
    if (!strcmp(pq_node_op(pq_graph_node(pq_model_graph(ls), k)), "softmax")) pq_node_set_op(pq_graph_node(pq_model_graph(ls), k), "log_softmax");
  compare(ls, ls, 4, 1e-5);
  /* pad2d before a conv */
  g_autoptr(PqModel) pd = pq_model_new();
  int64_t ps[4] = {-1, 2, 5, 6}, pads[4] = {1, 2, 0, 1}, ws[4] = {3, 2, 3, 3};
  pq_graph_add_input(pq_model_graph(pd), "x", 4, ps);
  PqTensor *w = pq_test_random_tensor("w", 4, ws, 6, 0.5f);
  pq_model_set_tensor(pd, w);
  pq_tensor_unref(w);
  const char *pi[1] = {"x"}, *po[1] = {"p"}, *qi[2] = {"p", "w"}, *qo[1] = {"y"};
  PqNode *pn = pq_graph_add_node(pq_model_graph(pd), "pad2d", "pad", 1, pi, 1, po);
  pq_node_set_ints(pn, "pads", 4, pads);
  pq_node_set_float(pn, "value", 0.25);
  pq_graph_add_node(pq_model_graph(pd), "conv2d", "conv", 2, qi, 1, qo);
  pq_graph_add_output(pq_model_graph(pd), "y");
  compare(pd, pd, 3, 1e-4);
}

/* The tiny MLP's two weights packed (*q; with `half` 1, their scales stored as F16; 2, quantized to 8 bits a row)
 * and the same packed weights dequantized to float32 (*deq). */
static void quantized_pair(const PqModel *m, int bits, PqQuantScheme scheme, int64_t group, int symmetric, int half, PqModel **q, PqModel **deq) {
  *q = pq_model_copy(m);
  *deq = pq_model_copy(m);
  const char *ws[2] = {"w1", "w2"};
  for (int l = 0; l < 2; l++) {
    PqTensor *w = pq_model_tensor((PqModel *)m, ws[l]);
    PqPluginError e = {sizeof e, 0, {0}};
    /* a per-group form takes the largest group up to the one asked that divides the row (odd widths such as 97
       inputs: groups of 1, one scale a value) */
    int64_t g = group, cols = pq_tensor_shape(w)[1];
    while (scheme == PQ_QUANT_PER_GROUP && cols % g) g--;
    PqTensor *p = pq_quantize_matrix(ws[l], pq_tensor_data(w), 2, pq_tensor_shape(w), bits, scheme, g, symmetric, 0, &e);
    if (!p) g_error("%s, %d bits, group %lld: %s", ws[l], bits, (long long)g, e.message);
    if (half) {
      PqTensor *h = half == 2 ? pq_packed_with_quantized_scales(p, pq_tensor_data(w), 8, &e) : pq_packed_with_f16_scales(p, pq_tensor_data(w), &e);
      if (!h) g_error("%s, %d bits, scales as %s: %s", ws[l], bits, half == 2 ? "8 bits" : "F16", e.message);
      pq_tensor_unref(p);
      p = h;
    }
    PqTensor *d = pq_tensor_new(ws[l], PQ_DTYPE_F32, 2, pq_tensor_shape(w));
    pq_tensor_to_f32(p, pq_tensor_mutable_data(d));
    pq_model_set_tensor(*q, p);
    pq_model_set_tensor(*deq, d);
    pq_tensor_unref(p);
    pq_tensor_unref(d);
  }
}

/* Packed weights of 8, 4, 6 and 3 bits (8 and 4 also with F16 scales, 4 with 8-bit scales), dequantized inside the
 * GPU kernel, against the CPU backend running their dequantized float weights. */
static void packed_forms(PqModel *m_owned) {
  g_autoptr(PqModel) m = m_owned;
  const struct {
    int bits;
    PqQuantScheme scheme;
    int64_t group;
    int symmetric, half;
  } forms[] = {{8, PQ_QUANT_PER_CHANNEL, 0, 1, 0}, {4, PQ_QUANT_PER_GROUP, 32, 1, 0}, {6, PQ_QUANT_PER_GROUP, 16, 0, 0},
               {3, PQ_QUANT_PER_TENSOR, 0, 1, 0},  {8, PQ_QUANT_PER_CHANNEL, 0, 0, 1}, {4, PQ_QUANT_PER_GROUP, 32, 1, 1},
               {4, PQ_QUANT_PER_GROUP, 32, 0, 2}};
  for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
    g_autoptr(PqModel) q = NULL, deq = NULL;
    quantized_pair(m, forms[f].bits, forms[f].scheme, forms[f].group, forms[f].symmetric, forms[f].half, &q, &deq);
    compare(q, deq, 1, 1e-4);
    compare(q, deq, 17, 1e-4);
  }
}

static void test_packed(void) {
  if (!usable()) return;
  /* 8-bit layers of 1024 and 96 inputs run the kernel of 16-byte loads, two outputs a warp (97 outputs: the
   * last warp's second output past the end); 1028 and 100 inputs, the one of 4-byte loads */
  packed_forms(pq_test_tiny_mlp(1024, 96, 10, 9));
  packed_forms(pq_test_tiny_mlp(1024, 97, 10, 9));
  packed_forms(pq_test_tiny_mlp(1028, 100, 10, 9));
}

/* The 8-bit kernel's variants (int8_kernel): each, fixed, and the choice made by timing them at prepare (auto)
 * give the CPU's results on the same codes. The first layer (1024 x 1024, asymmetric: zero points) has the 1M
 * codes from which auto times the variants; the second (10 outputs) leaves the last warp of r4 and r8 part
 * empty. The option takes only its values. */
static void test_int8_kernels(void) {
  assert_option_refused("int8_kernel", "r3");
  g_autoptr(PqOptions) schema = cuda_options(NULL, "on");
  g_auto(GStrv) names = pq_options_choices(schema, "int8_kernel"); /* auto, then every variant the backend has */
  g_assert_nonnull(names);
  g_assert_cmpuint(g_strv_length(names), ==, 13);
  g_assert_cmpstr(names[0], ==, "auto");
  g_assert_cmpstr(names[8], ==, "r8-cached");
  g_assert_cmpstr(names[12], ==, "r4b8"); /* (batch 9 below: row groups of 2, 4 and 8 partly filled) */
  if (!usable()) return;
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(1024, 1024, 10, 33);
  g_autoptr(PqModel) q = NULL, deq = NULL;
  quantized_pair(m, 8, PQ_QUANT_PER_CHANNEL, 0, 0, 0, &q, &deq);
  for (size_t i = 0; names[i]; i++) {
    g_autoptr(PqOptions) o = cuda_options(NULL, "on");
    g_assert_true(pq_options_set(o, "int8_kernel", names[i], &err));
    compare_opts(q, deq, 1, 1e-4, o, names[i]);
    compare_opts(q, deq, 9, 1e-4, o, names[i]);
  }
}

/* Tensor-train, block-circulant and CSR layers: the same ops on both backends, at batch 1 and a batch that is
 * not a power of two (the circulant layer transforms its rows in chunks of 16, 2 and 1). */
static void test_forms(void) {
  if (!usable()) return;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(256, 96, 10, 21);
  const char *tt[] = {"max_rank", "8", "cores", "2", NULL}, *circ[] = {"block", "32", NULL}, *sp[] = {"sparsity", "0.8", NULL},
             *st[] = {"sparsity", "0.5", "mode", "structured", NULL}, *lr[] = {"rank", "16", NULL};
  struct {
    PqPlugin **plugin;
    const char *const *kv;
    double tol;
  } forms[] = {{&tensor_train, tt, 1e-4}, {&circulant, circ, 1e-3}, {&prune, sp, 1e-4}, {&prune, st, 1e-4}, {&low_rank, lr, 1e-4}};
  for (size_t f = 0; f < G_N_ELEMENTS(forms); f++) {
    g_autoptr(PqModel) c = compressed(*forms[f].plugin, m, forms[f].kv);
    g_test_message("%s", pq_node_op(pq_graph_node(pq_model_const_graph(c), 0)));
    compare(c, c, 1, forms[f].tol);
    compare(c, c, 19, forms[f].tol);
    int64_t on; /* a second batch size on one prepared model, then the first again */
    g_autoptr(GError) err = NULL;
    g_autoptr(PqBackend) b = pq_backend_prepare(cuda, c, 1, 32, NULL, &err);
    g_assert_no_error(err);
    on = pq_backend_output_numel(b);
    float x[32 * 256], y1[32 * 10], y2[32 * 10];
    for (int i = 0; i < 32 * 256; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    g_assert_true(pq_backend_run_f32(b, x, 3, y1, &err));
    g_assert_true(pq_backend_run_f32(b, x, 32, y2, &err));
    g_assert_true(pq_backend_run_f32(b, x, 3, y2, &err));
    g_assert_no_error(err);
    for (int64_t i = 0; i < 3 * on; i++) g_assert_cmpfloat(y1[i], ==, y2[i]);
  }
}

/* Tucker-2 and CP decompositions of a conv (1x1, core or depthwise kx1 / 1xk convs, 1x1): the same results on both
 * backends, the layer's strides, pads and dilations carried into the factors. */
static void test_conv_decompositions(void) {
  if (!usable()) return;
  int64_t xs[4] = {-1, 6, 11, 10}, ws[4] = {10, 6, 3, 3}, st[2] = {2, 1}, pads[4] = {1, 0, 2, 1}, dil[2] = {1, 2};
  g_autoptr(PqModel) m = pq_test_conv_model(xs, ws, st, pads, 5);
  pq_node_set_ints(pq_graph_node(pq_model_graph(m), 0), "dilations", 2, dil);
  const char *tk[] = {"rank_in", "3", "rank_out", "4", NULL}, *cpk[] = {"rank", "5", NULL};
  g_autoptr(PqModel) a = compressed(tucker, m, tk);
  g_autoptr(PqModel) b = compressed(cp, m, cpk);
  compare(a, a, 1, 1e-4);
  compare(a, a, 5, 1e-4);
  compare(b, b, 1, 1e-4);
  compare(b, b, 5, 1e-4);
}

/* Packed conv kernels (dequantized in the GPU kernel) against the same weights dequantized, in float on the
 * CPU; static int8 activations (W8A8) against the CPU backend's own int8 path. */
static void test_packed_conv_and_static(void) {
  if (!usable()) return;
  const char *kv[] = {"bits", "8", NULL};
  /* patches (channels x 3 x 3) of 27 values take the general kernel, 144 (a multiple of 16) the one of
   * 16-byte loads writing by channel, 36 (of 4) the uchar4 one */
  const int64_t shapes[3][2] = {{3, 8}, {16, 11}, {4, 11}}; /* input channels, output channels */
  for (int i = 0; i < 3; i++) {
    int64_t xs[4] = {-1, shapes[i][0], 9, 7}, ws[4] = {shapes[i][1], shapes[i][0], 3, 3}, st[2] = {2, 1}, pads[4] = {1, 0, 1, 2};
    g_autoptr(PqModel) m = pq_test_conv_model(xs, ws, st, pads, 5);
    g_autoptr(PqModel) q = compressed(quant, m, kv);
    g_autoptr(PqModel) deq = pq_model_copy(m);
    g_autoptr(PqTensor) wd = pq_tensor_new("cw", PQ_DTYPE_F32, 4, ws);
    pq_tensor_to_f32(pq_model_tensor(q, "cw"), pq_tensor_mutable_data(wd));
    pq_model_set_tensor(deq, wd);
    compare(q, deq, 1, 1e-4);
    compare(q, deq, 6, 1e-4);
  }
  /* static activations: both backends round the input to the same int8 grid */
  g_autoptr(PqModel) mlp = pq_test_tiny_mlp(128, 64, 10, 23);
  g_autoptr(PqModel) qs = compressed(quant, mlp, kv);
  PqGraph *g = pq_model_graph(qs);
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++)
    if (!strcmp(pq_node_op(pq_graph_node(g, i)), "linear")) pq_node_set_float(pq_graph_node(g, i), "act_scale", 1.0 / 127.0);
  compare(qs, qs, 5, 1e-3);
  compare(qs, qs, 1, 1e-3); /* batch 1 too */
}

/* TF32 and fp16 GEMMs: within their precision of the float32 CPU result. */
static void test_math(void) {
  if (!usable()) return;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(512, 256, 10, 25);
  compare_math(m, m, 64, 5e-3, "tf32");
  compare_math(m, m, 64, 2e-2, "fp16");
  g_autoptr(GError) err = NULL;
  g_autoptr(PqOptions) half = math_options("fp16");
  g_autoptr(PqBackend) bh = pq_backend_prepare(cuda, m, 1, 64, half, &err);
  g_autoptr(PqBackend) bf = pq_backend_prepare(cuda, m, 1, 64, NULL, &err);
  g_assert_no_error(err);
  PqMemoryCounters mh, mf;
  g_assert_true(pq_backend_memory(bh, &mh, &err));
  g_assert_true(pq_backend_memory(bf, &mf, &err));
  g_assert_cmpint(mh.weights_bytes, <, mf.weights_bytes); /* the linear weights in half the bytes */
}

/* CUDA-event timing of a run, and the memory counters. */
static void test_timing_memory(void) {
  if (!usable()) return;
  g_autoptr(PqModel) m = pq_test_tiny_mlp(784, 256, 10, 27);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqBackend) b = pq_backend_prepare(cuda, m, 1, 64, NULL, &err);
  g_assert_no_error(err);
  PqRunTiming t;
  g_assert_true(pq_backend_last_timing(b, &t, &err));
  g_assert_cmpfloat(t.total_ms, ==, -1); /* nothing ran yet */
  g_autofree float *x = g_new0(float, 64 * 784), *y = g_new(float, 64 * 10);
  for (int i = 0; i < 64 * 784; i++) x[i] = (float)(i % 13) / 13.0f;
  /* timing on request: a run whose timing nobody asked for before it ran records no events (its fields -1);
     asking turns them on for the next run */
  g_assert_true(pq_backend_run_f32(b, x, 64, y, &err));
  g_assert_true(pq_backend_last_timing(b, &t, &err));
  g_assert_no_error(err);
  g_assert_cmpfloat(t.total_ms, ==, -1);
  g_assert_cmpfloat(t.compute_ms, ==, -1);
  g_autofree float *y0 = g_memdup2(y, sizeof(float) * 64 * 10); /* timed or not, the same outputs */
  gint64 t0 = g_get_monotonic_time();
  g_assert_true(pq_backend_run_f32(b, x, 64, y, &err));
  double host_ms = (double)(g_get_monotonic_time() - t0) / 1e3;
  g_assert_true(pq_backend_last_timing(b, &t, &err));
  g_assert_no_error(err);
  g_test_message("events: in %.4f, compute %.4f, out %.4f ms; host %.4f ms", t.copy_in_ms, t.compute_ms, t.copy_out_ms, host_ms);
  g_assert_cmpfloat(t.copy_in_ms, >, 0);
  g_assert_cmpfloat(t.compute_ms, >, 0);
  g_assert_cmpfloat(t.copy_out_ms, >, 0);
  g_assert_cmpfloat(fabs(t.total_ms - (t.copy_in_ms + t.compute_ms + t.copy_out_ms)), <, 1e-6);
  g_assert_cmpfloat(t.total_ms, <=, host_ms);
  /* the third and fourth runs go through the graph captured with the event nodes, which time them; a run not
     asked for before it goes through the one without (-1), and the next, asked for, is timed again */
  for (int pass = 0; pass < 4; pass++) {
    if (pass == 2) {
      g_assert_true(pq_backend_run_f32(b, x, 64, y, &err)); /* nobody asks after this one */
      g_assert_true(pq_backend_run_f32(b, x, 64, y, &err));
      g_assert_true(pq_backend_last_timing(b, &t, &err));
      g_assert_cmpfloat(t.total_ms, ==, -1);
    }
    t0 = g_get_monotonic_time();
    g_assert_true(pq_backend_run_f32(b, x, 64, y, &err));
    host_ms = (double)(g_get_monotonic_time() - t0) / 1e3;
    g_assert_true(pq_backend_last_timing(b, &t, &err));
    g_assert_no_error(err);
    g_test_message("graph run %d events: in %.4f, compute %.4f, out %.4f ms; host %.4f ms", pass + 1, t.copy_in_ms, t.compute_ms, t.copy_out_ms,
                   host_ms);
    g_assert_cmpfloat(t.copy_in_ms, >, 0);
    g_assert_cmpfloat(t.compute_ms, >, 0);
    g_assert_cmpfloat(t.copy_out_ms, >, 0);
    g_assert_cmpfloat(t.total_ms, <=, host_ms);
    g_assert_cmpfloat(max_diff(y, y0, 64 * 10), <=, 1e-5 * (1 + max_abs(y0, 64 * 10)));
  }
  PqMemoryCounters mc;
  g_assert_true(pq_backend_memory(b, &mc, &err));
  g_assert_cmpint(mc.weights_bytes, ==, pq_model_nbytes(m)); /* float32 weights as stored */
  g_assert_cmpint(mc.current_bytes, >, mc.weights_bytes);
  g_assert_cmpint(mc.device_total_bytes, >, 0);
  g_assert_cmpint(mc.device_free_bytes, <=, mc.device_total_bytes);
}

/* CUDA graphs: one per batch size, each captured at that size's second run. Runs that change batch size back
 * and forth give what plain launches give (graphs off); the option takes only its three values. The run's
 * copies made by kernels through mapped memory (copies=kernel) give the same outputs bit for bit as those made
 * by a copy engine (copies=engine), graphs on or off: inputs of 3136 bytes a sample and of 189 floats (a tail
 * past the last float4), outputs of 10 and 240 floats. */
static void test_graphs(void) {
  assert_option_refused("graphs", "sometimes");
  assert_option_refused("copies", "dma");
  if (!usable()) return;
  g_autoptr(GError) err = NULL;
  int64_t xs[4] = {-1, 3, 9, 7}, ws[4] = {8, 3, 3, 3}, st[2] = {2, 1}, pads[4] = {1, 0, 1, 2};
  g_autoptr(PqModel) cnn = pq_test_conv_model(xs, ws, st, pads, 5); /* a conv: launches per image */
  g_autoptr(PqModel) mlp = pq_test_tiny_mlp(784, 256, 10, 31);
  const PqModel *models[2] = {mlp, cnn};
  const int64_t batches[] = {5, 5, 2, 5, 2, 2, 1, 1, 5};
  for (int mi = 0; mi < 2; mi++) {
    g_autoptr(PqOptions) on = cuda_options(NULL, "on"), off = cuda_options(NULL, "off");
    g_autoptr(PqOptions) on_k = cuda_options(NULL, "on"), off_k = cuda_options(NULL, "off");
    g_assert_true(pq_options_set(on, "copies", "engine", &err) && pq_options_set(off, "copies", "engine", &err));
    g_assert_true(pq_options_set(on_k, "copies", "kernel", &err) && pq_options_set(off_k, "copies", "kernel", &err));
    g_autoptr(PqBackend) bg = pq_backend_prepare(cuda, models[mi], 1, 5, on, &err);
    g_assert_no_error(err);
    g_autoptr(PqBackend) bp = pq_backend_prepare(cuda, models[mi], 1, 5, off, &err);
    g_assert_no_error(err);
    g_autoptr(PqBackend) bgk = pq_backend_prepare(cuda, models[mi], 1, 5, on_k, &err);
    g_assert_no_error(err);
    g_autoptr(PqBackend) bpk = pq_backend_prepare(cuda, models[mi], 1, 5, off_k, &err);
    g_assert_no_error(err);
    int64_t in = pq_backend_input_numel(bg), out = pq_backend_output_numel(bg);
    g_autofree float *x = g_new(float, 5 * in), *yg = g_new(float, 5 * out), *yp = g_new(float, 5 * out);
    g_autofree float *ygk = g_new(float, 5 * out), *ypk = g_new(float, 5 * out);
    for (size_t r = 0; r < G_N_ELEMENTS(batches); r++) {
      for (int64_t i = 0; i < 5 * in; i++) x[i] = (float)((i * 7 + (int64_t)r * 3) % 17) / 17.0f - 0.5f; /* new inputs each run */
      for (int64_t i = 0; i < 5 * out; i++) yg[i] = yp[i] = ygk[i] = ypk[i] = NAN;
      g_assert_true(pq_backend_run_f32(bg, x, batches[r], yg, &err));
      g_assert_no_error(err);
      g_assert_true(pq_backend_run_f32(bp, x, batches[r], yp, &err));
      g_assert_no_error(err);
      g_assert_true(pq_backend_run_f32(bgk, x, batches[r], ygk, &err));
      g_assert_no_error(err);
      g_assert_true(pq_backend_run_f32(bpk, x, batches[r], ypk, &err));
      g_assert_no_error(err);
      g_assert_cmpfloat(max_diff(yg, yp, batches[r] * out), <=, 1e-5);
      g_assert_cmpfloat(max_diff(ygk, yg, batches[r] * out), ==, 0); /* the same kernels: only the copies differ */
      g_assert_cmpfloat(max_diff(ypk, yp, batches[r] * out), ==, 0);
      for (int64_t i = batches[r] * out; i < 5 * out; i++) g_assert_true(isnan(yg[i]) && isnan(ygk[i])); /* nothing written past the batch */
    }
  }
}

static PqPlugin *load(const char *path) {
  g_autoptr(GError) err = NULL;
  PqPlugin *p = pq_registry_load(reg, path, &err);
  g_assert_no_error(err);
  return p;
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  reg = pq_registry_new();
  cpu = pq_test_cpu_backend(reg);
  g_autoptr(GError) err = NULL;
  cuda = pq_registry_load(reg, CUDA_PLUGIN, &err);
  g_assert_no_error(err);
  quant = load(QUANT_PLUGIN);
  tensor_train = load(TENSOR_TRAIN_PLUGIN);
  circulant = load(CIRCULANT_PLUGIN);
  prune = load(PRUNE_PLUGIN);
  low_rank = load(LOW_RANK_PLUGIN);
  tucker = load(TUCKER_PLUGIN);
  cp = load(CP_PLUGIN);
  g_test_add_func("/cuda/not-usable-here", test_not_usable);
  g_test_add_func("/cuda/fork-safe", test_fork_safe);
  g_test_add_func("/cuda/dense-ops", test_dense);
  g_test_add_func("/cuda/packed-weights", test_packed);
  g_test_add_func("/cuda/int8-kernels", test_int8_kernels);
  g_test_add_func("/cuda/activations", test_activations);
  g_test_add_func("/cuda/binary-ops", test_binary);
  g_test_add_func("/cuda/layer-norm", test_layer_norm);
  g_test_add_func("/cuda/conv-transpose", test_conv_transpose);
  g_test_add_func("/cuda/tt-circulant-sparse-lowrank", test_forms);
  g_test_add_func("/cuda/packed-conv-static-activations", test_packed_conv_and_static);
  g_test_add_func("/cuda/tucker-cp", test_conv_decompositions);
  g_test_add_func("/cuda/tf32-fp16", test_math);
  g_test_add_func("/cuda/timing-memory", test_timing_memory);
  g_test_add_func("/cuda/graphs", test_graphs);
  int rc = g_test_run();
  pq_registry_free(reg);
  return rc;
}
