/* onnx.c — ONNX models built here with the protobuf structs: a small CNN that loads, converts and runs
 * through pqrun bench with compressed variants; and every malformed file refused with a clear error. */
#include "testutil.h"

#include <math.h>

#include <string.h>
#include <sys/wait.h>

#include "onnx.pb-c.h"

static char *tmpdir;

/* ---- building models --------------------------------------------------------------------------------- */

static Onnx__TensorProto *tensor(const char *name, int nd, const int64_t *dims, guint32 seed, float scale) {
  Onnx__TensorProto *t = g_new0(Onnx__TensorProto, 1);
  onnx__tensor_proto__init(t);
  t->name = g_strdup(name);
  t->n_dims = (size_t)nd;
  t->dims = g_memdup2(dims, sizeof(int64_t) * (size_t)nd);
  t->has_data_type = 1;
  t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= dims[i];
  t->n_float_data = (size_t)n;
  t->float_data = g_new(float, n);
  GRand *r = g_rand_new_with_seed(seed);
  for (int64_t i = 0; i < n; i++) t->float_data[i] = (float)g_rand_double_range(r, -scale, scale);
  g_rand_free(r);
  return t;
}

static Onnx__AttributeProto *attr_ints(const char *name, int n, const int64_t *v) {
  Onnx__AttributeProto *a = g_new0(Onnx__AttributeProto, 1);
  onnx__attribute_proto__init(a);
  a->name = g_strdup(name);
  a->has_type = 1;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  a->n_ints = (size_t)n;
  a->ints = g_memdup2(v, sizeof(int64_t) * (size_t)n);
  return a;
}

/* A tensor's name, dims and type, no data yet; *n its element count */
static Onnx__TensorProto *tensor_head(const char *name, int nd, const int64_t *dims, int data_type, int64_t *n) {
  Onnx__TensorProto *t = g_new0(Onnx__TensorProto, 1);
  onnx__tensor_proto__init(t);
  t->name = g_strdup(name);
  t->n_dims = (size_t)nd;
  t->dims = nd ? g_memdup2(dims, sizeof(int64_t) * (size_t)nd) : NULL;
  t->has_data_type = 1;
  t->data_type = data_type;
  *n = 1;
  for (int i = 0; i < nd; i++) *n *= dims[i];
  return t;
}

static Onnx__TensorProto *int64_tensor(const char *name, int nd, const int64_t *dims, const int64_t *v) {
  int64_t n;
  Onnx__TensorProto *t = tensor_head(name, nd, dims, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &n);
  t->n_int64_data = (size_t)n;
  t->int64_data = g_memdup2(v, sizeof(int64_t) * (size_t)n);
  return t;
}

static Onnx__AttributeProto *attr_string(const char *name, const char *v) {
  Onnx__AttributeProto *a = g_new0(Onnx__AttributeProto, 1);
  onnx__attribute_proto__init(a);
  a->name = g_strdup(name);
  a->has_type = 1;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  a->has_s = 1;
  a->s.len = strlen(v);
  a->s.data = (uint8_t *)g_strdup(v);
  return a;
}

static Onnx__AttributeProto *attr_int(const char *name, int64_t v) {
  Onnx__AttributeProto *a = g_new0(Onnx__AttributeProto, 1);
  onnx__attribute_proto__init(a);
  a->name = g_strdup(name);
  a->has_type = 1;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  a->has_i = 1;
  a->i = v;
  return a;
}

static Onnx__NodeProto *node(const char *op, const char *name, int nin, const char *const *in, const char *out, int nattr,
                             Onnx__AttributeProto **attrs) {
  Onnx__NodeProto *n = g_new0(Onnx__NodeProto, 1);
  onnx__node_proto__init(n);
  n->op_type = g_strdup(op);
  n->name = g_strdup(name);
  n->n_input = (size_t)nin;
  n->input = g_new(char *, nin);
  for (int i = 0; i < nin; i++) n->input[i] = g_strdup(in[i]);
  n->n_output = 1;
  n->output = g_new(char *, 1);
  n->output[0] = g_strdup(out);
  n->n_attribute = (size_t)nattr;
  n->attribute = g_memdup2(attrs, sizeof(void *) * (size_t)nattr);
  return n;
}

static Onnx__ValueInfoProto *value(const char *name, int nd, const int64_t *dims) {
  Onnx__ValueInfoProto *v = g_new0(Onnx__ValueInfoProto, 1);
  onnx__value_info_proto__init(v);
  v->name = g_strdup(name);
  Onnx__TypeProto *tp = g_new0(Onnx__TypeProto, 1);
  onnx__type_proto__init(tp);
  Onnx__TypeProto__Tensor *tt = g_new0(Onnx__TypeProto__Tensor, 1);
  onnx__type_proto__tensor__init(tt);
  tt->has_elem_type = 1;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  Onnx__TensorShapeProto *sp = g_new0(Onnx__TensorShapeProto, 1);
  onnx__tensor_shape_proto__init(sp);
  sp->n_dim = (size_t)nd;
  sp->dim = g_new(Onnx__TensorShapeProto__Dimension *, nd);
  for (int i = 0; i < nd; i++) {
    Onnx__TensorShapeProto__Dimension *d = g_new0(Onnx__TensorShapeProto__Dimension, 1);
    onnx__tensor_shape_proto__dimension__init(d);
    if (dims[i] < 0) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = g_strdup("N");
    } else {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = dims[i];
    }
    sp->dim[i] = d;
  }
  tt->shape = sp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  v->type = tp;
  return v;
}

/* Packs a model with the given graph; the structs are left to the process (a test). */
static char *write_model(const char *name, Onnx__GraphProto *g, gboolean with_ir) {
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__OperatorSetIdProto ops = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsp = &ops;
  ops.has_version = 1;
  ops.version = 13;
  m.has_ir_version = with_ir;
  m.ir_version = 8;
  m.n_opset_import = 1;
  m.opset_import = &opsp;
  m.graph = g;
  size_t len = onnx__model_proto__get_packed_size(&m);
  g_autofree uint8_t *buf = g_malloc(len);
  onnx__model_proto__pack(&m, buf);
  return pq_test_write(tmpdir, name, buf, len);
}

static Onnx__GraphProto *graph(int nn, Onnx__NodeProto **nodes, int ni, Onnx__TensorProto **inits, Onnx__ValueInfoProto *in,
                               const char *out) {
  Onnx__GraphProto *g = g_new0(Onnx__GraphProto, 1);
  onnx__graph_proto__init(g);
  g->name = g_strdup("test");
  g->n_node = (size_t)nn;
  g->node = g_memdup2(nodes, sizeof(void *) * (size_t)nn);
  g->n_initializer = (size_t)ni;
  g->initializer = g_memdup2(inits, sizeof(void *) * (size_t)ni);
  g->n_input = 1;
  g->input = g_new(Onnx__ValueInfoProto *, 1);
  g->input[0] = in;
  int64_t od[2] = {-1, 10};
  g->n_output = 1;
  g->output = g_new(Onnx__ValueInfoProto *, 1);
  g->output[0] = value(out, 2, od);
  return g;
}

/* Conv(1→4, 3x3, pad 1) → Relu → MaxPool 2 → Flatten → Gemm(784→10, transB) → Softmax, on [N,1,28,28]. */
static char *write_cnn(void) {
  int64_t wd[4] = {4, 1, 3, 3}, bd[1] = {4}, fd[2] = {10, 784}, fbd[1] = {10}, xin[4] = {-1, 1, 28, 28};
  Onnx__TensorProto *inits[4] = {tensor("conv.w", 4, wd, 1, 0.5f), tensor("conv.b", 1, bd, 2, 0.1f), tensor("fc.w", 2, fd, 3, 0.05f),
                                 tensor("fc.b", 1, fbd, 4, 0.1f)};
  int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
  Onnx__AttributeProto *conv_a[1] = {attr_ints("pads", 4, pads)};
  Onnx__AttributeProto *pool_a[2] = {attr_ints("kernel_shape", 2, k2), attr_ints("strides", 2, k2)};
  Onnx__AttributeProto *gemm_a[1] = {attr_int("transB", 1)};
  const char *ci[3] = {"image", "conv.w", "conv.b"}, *ri[1] = {"c"}, *pi[1] = {"r"}, *fi[1] = {"p"}, *gi[3] = {"f", "fc.w", "fc.b"},
             *si[1] = {"logits"};
  Onnx__NodeProto *nodes[6] = {node("Conv", "conv", 3, ci, "c", 1, conv_a), node("Relu", "", 1, ri, "r", 0, NULL),
                               node("MaxPool", "pool", 1, pi, "p", 2, pool_a), node("Flatten", "flatten", 1, fi, "f", 0, NULL),
                               node("Gemm", "fc", 3, gi, "logits", 1, gemm_a), node("Softmax", "softmax", 1, si, "probs", 0, NULL)};
  return write_model("cnn.onnx", graph(6, nodes, 4, inits, value("image", 4, xin), "probs"), TRUE);
}

static int pqrun(char **out, char **err, const char *const *argv) {
  g_autoptr(GPtrArray) a = g_ptr_array_new();
  g_ptr_array_add(a, (gpointer)PQRUN);
  for (; *argv; argv++) g_ptr_array_add(a, (gpointer)*argv);
  g_ptr_array_add(a, NULL);
  int status = 0;
  g_assert_true(g_spawn_sync(NULL, (char **)a->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status, NULL));
  g_assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* A model that must load. */
static PqModel *load_ok(const char *path) {
  g_autoptr(GError) err = NULL;
  PqModel *m = pq_model_load(path, &err);
  g_assert_no_error(err);
  return m;
}

/* `batch` samples of x through m on the CPU backend into y; its output must hold `out_numel` values a sample. */
static void run_cpu(const PqModel *m, int64_t batch, const float *x, float *y, int64_t out_numel) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqRegistry) reg = pq_registry_new();
  g_autoptr(PqBackend) b = pq_backend_prepare(pq_test_cpu_backend(reg), m, 1, batch, NULL, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_backend_output_numel(b), ==, out_numel);
  g_assert_true(pq_backend_run_f32(b, x, batch, y, &err));
  g_assert_no_error(err);
}

/* A row-attention classifier on Fashion-MNIST's 28 × 28 images: each image as 28 tokens of 28 pixels, one
 * attention head (MatMul by constants for q, k, v, a Transpose, MatMul of activations, a scaled Softmax), mean
 * pooling over the tokens (ReduceMean) and a Gemm. Its weights are random. */
static char *write_attention(void) {
  int64_t wd[2] = {28, 16}, fd[2] = {10, 16}, fbd[1] = {10}, xin[2] = {-1, 784}, sd[1] = {3}, one[1] = {1};
  Onnx__TensorProto *inits[7] = {tensor("wq", 2, wd, 11, 0.2f), tensor("wk", 2, wd, 12, 0.2f), tensor("wv", 2, wd, 13, 0.2f),
                                 tensor("wf", 2, fd, 14, 0.3f), tensor("bf", 1, fbd, 15, 0.1f),
                                 int64_tensor("tokens", 1, sd, (int64_t[]){0, 28, 28}), tensor("scale", 1, one, 16, 1.0f)};
  inits[6]->float_data[0] = 0.25f;
  int64_t perm[3] = {0, 2, 1}, axes[1] = {1};
  Onnx__AttributeProto *tp[1] = {attr_ints("perm", 3, perm)}, *ra[2] = {attr_ints("axes", 1, axes), attr_int("keepdims", 0)},
                       *ga[1] = {attr_int("transB", 1)};
  const char *r_in[2] = {"image", "tokens"}, *q_in[2] = {"t", "wq"}, *k_in[2] = {"t", "wk"}, *v_in[2] = {"t", "wv"}, *kt_in[1] = {"k"},
             *s_in[2] = {"q", "kt"}, *sc_in[2] = {"s", "scale"}, *a_in[1] = {"s2"}, *o_in[2] = {"a", "v"}, *p_in[1] = {"o"},
             *g_in[3] = {"p", "wf", "bf"}, *sm_in[1] = {"logits"};
  Onnx__NodeProto *nodes[12] = {node("Reshape", "tok", 2, r_in, "t", 0, NULL),       node("MatMul", "q", 2, q_in, "q", 0, NULL),
                                node("MatMul", "k", 2, k_in, "k", 0, NULL),          node("MatMul", "v", 2, v_in, "v", 0, NULL),
                                node("Transpose", "kt", 1, kt_in, "kt", 1, tp),      node("MatMul", "scores", 2, s_in, "s", 0, NULL),
                                node("Mul", "scaled", 2, sc_in, "s2", 0, NULL),      node("Softmax", "attn", 1, a_in, "a", 0, NULL),
                                node("MatMul", "mix", 2, o_in, "o", 0, NULL),        node("ReduceMean", "pool", 1, p_in, "p", 2, ra),
                                node("Gemm", "fc", 3, g_in, "logits", 1, ga),        node("Softmax", "softmax", 1, sm_in, "probs", 0, NULL)};
  return write_model("attention.onnx", graph(12, nodes, 7, inits, value("image", 2, xin), "probs"), TRUE);
}

/* That attention model through pquant: q, k and v load as linear layers, low_rank factors them, finetune
 * trains through the attention (20 pp or more above its random start), and GPTQ quantizes its linear layers. */
static void test_attention_pipeline(void) {
  g_autofree char *path = write_attention();
  g_autoptr(PqModel) m = load_ok(path);
  int linear = 0;
  for (size_t i = 0; i < pq_graph_n_nodes(pq_model_const_graph(m)); i++) linear += !strcmp(pq_node_op(pq_graph_node(pq_model_const_graph(m), i)), "linear");
  g_assert_cmpint(linear, ==, 4); /* q, k, v and the Gemm */
  if (!g_file_test("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", G_FILE_TEST_EXISTS)) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  g_autofree char *out = NULL, *errs = NULL;
  const char *ft[] = {"run", "--model", path, "--compressor", "finetune", "--opt", "finetune.samples=8192", "--opt", "finetune.learning_rate=0.003",
                      "--calibration", "8192", NULL};
  g_assert_cmpint(pqrun(&out, &errs, ft), ==, 0);
  const char *deg = strstr(out, "compressed ");
  g_assert_nonnull(deg);
  deg = strrchr(deg, '%'); /* the accuracy's %, then the degradation "+NN.NN pp" */
  double gained = g_ascii_strtod(deg + 1, NULL);
  g_test_message("attention, finetuned from random weights: %+.2f pp", gained);
  g_assert_cmpfloat(gained, >, 20.0);
  g_free(out);
  g_free(errs);
  const char *chain[] = {"run", "--model", path, "--compressor", "low_rank", "--opt", "low_rank.rank=4", "--compressor", "quant", "--opt",
                         "quant.method=gptq", "--opt", "quant.bits=4", NULL};
  g_assert_cmpint(pqrun(&out, &errs, chain), ==, 0);
  g_assert_nonnull(strstr(out, "1     low_rank   q "));
  g_assert_nonnull(strstr(out, "GPTQ"));
}

static void test_cnn(void) {
  g_autofree char *path = write_cnn();
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_model_load(path, &err);
  g_assert_no_error(err);
  g_assert_cmpint(pq_graph_n_nodes(pq_model_const_graph(m)), ==, 6);
  g_assert_cmpint(pq_model_n_params(m), ==, 36 + 4 + 7840 + 10);
  /* converted, and read back with the same outputs */
  g_autofree char *st = g_build_filename(tmpdir, "cnn.safetensors", NULL);
  g_autofree char *out = NULL, *errs = NULL;
  const char *conv[] = {"convert", path, "-o", st, NULL};
  g_assert_cmpint(pqrun(&out, &errs, conv), ==, 0);
  g_autoptr(PqModel) back = pq_model_load(st, &err);
  g_assert_no_error(err);
  g_autoptr(PqRegistry) reg = pq_registry_new();
  PqPlugin *cpu = pq_test_cpu_backend(reg);
  g_autoptr(PqBackend) b1 = pq_backend_prepare(cpu, m, 1, 2, NULL, &err), b2 = pq_backend_prepare(cpu, back, 1, 2, NULL, &err);
  g_assert_no_error(err);
  float x[2 * 784], y1[20], y2[20];
  for (int i = 0; i < 2 * 784; i++) x[i] = (float)(i % 29) / 29.0f;
  g_assert_true(pq_backend_run_f32(b1, x, 2, y1, &err));
  g_assert_true(pq_backend_run_f32(b2, x, 2, y2, &err));
  g_assert_cmpmem(y1, sizeof y1, y2, sizeof y2);
  double sum = 0;
  for (int i = 0; i < 10; i++) sum += y1[i];
  g_assert_cmpfloat_with_epsilon(sum, 1.0, 1e-5); /* a softmax came out */
  if (!g_file_test("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", G_FILE_TEST_EXISTS)) {
    g_test_skip("the dataset-fashion-mnist package is not installed (run .ci/setup)");
    return;
  }
  /* the ONNX CNN through the suite with compressed variants, conv layers included */
  const char *cfg = "{\"methods\": {\"baseline\": [], \"quantization_8\": [{\"plugin\": \"quant\", \"options\": {\"bits\": 8}}],"
                    " \"low_rank_2\": [{\"plugin\": \"low_rank\", \"options\": {\"rank\": 2}}]}}";
  g_autofree char *cfgp = pq_test_write(tmpdir, "cnn-suite.json", cfg, strlen(cfg));
  g_autofree char *dir = g_build_filename(tmpdir, "cnn-report", NULL);
  g_free(out);
  g_free(errs);
  const char *bench[] = {"bench", "--model", path, "--config", cfgp, "--runs", "3", "--batch-sizes", "1", "-o", dir, NULL};
  g_assert_cmpint(pqrun(&out, &errs, bench), ==, 0);
  g_assert_nonnull(strstr(out, "quantization_8"));
  g_assert_null(strstr(out, "error:"));
  g_autofree char *md = NULL, *mdp = g_build_filename(dir, "report.md", NULL);
  g_assert_true(g_file_get_contents(mdp, &md, NULL, NULL));
  g_assert_nonnull(strstr(md, "| 1 | quant | conv |")); /* the conv kernel was quantized and ran packed */
  g_assert_nonnull(strstr(md, "| 1 | low_rank | conv |"));
}

/* A 1-D Conv (strides 2, uneven pads) and MaxPool over x [N, 2, 30] load as 2-D ones over [N, 2, 1, 30],
 * between reshapes, and compute what the 1-D formulas give. */
static void test_conv1d(void) {
  int64_t wd[3] = {4, 2, 3}, bd[1] = {4}, xin[3] = {-1, 2, 30}, st[1] = {2}, pads[2] = {1, 2}, k2[1] = {2}, od[3] = {-1, 4, 8};
  Onnx__TensorProto *inits[2] = {tensor("w", 3, wd, 7, 0.5f), tensor("b", 1, bd, 8, 0.1f)};
  Onnx__AttributeProto *conv_a[2] = {attr_ints("strides", 1, st), attr_ints("pads", 2, pads)};
  Onnx__AttributeProto *pool_a[2] = {attr_ints("kernel_shape", 1, k2), attr_ints("strides", 1, k2)};
  const char *ci[3] = {"x", "w", "b"}, *pi[1] = {"c"};
  Onnx__NodeProto *nodes[2] = {node("Conv", "conv1", 3, ci, "c", 2, conv_a), node("MaxPool", "pool1", 1, pi, "y", 2, pool_a)};
  Onnx__GraphProto *g = graph(2, nodes, 2, inits, value("x", 3, xin), "y");
  g->output[0] = value("y", 3, od);
  g_autofree char *path = write_model("conv1d.onnx", g, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  const PqNode *conv = NULL;
  for (size_t i = 0; i < pq_graph_n_nodes(pq_model_const_graph(m)); i++)
    if (!strcmp(pq_node_name(pq_graph_node(pq_model_const_graph(m), i)), "conv1")) conv = pq_graph_node(pq_model_const_graph(m), i);
  g_assert_nonnull(conv);
  g_assert_cmpstr(pq_node_op(conv), ==, "conv2d");
  g_assert_cmpint(pq_tensor_ndim(pq_model_tensor(m, pq_node_input(conv, 1))), ==, 4);
  float x[2 * 60], y[2 * 32];
  for (int i = 0; i < 120; i++) x[i] = (float)((i * 7) % 13) / 6.0f - 1.0f;
  run_cpu(m, 2, x, y, 32);
  const float *w = inits[0]->float_data, *bias = inits[1]->float_data;
  for (int s0 = 0; s0 < 2; s0++)
    for (int o = 0; o < 4; o++)
      for (int q = 0; q < 8; q++) {
        double best = -INFINITY;
        for (int t = 2 * q; t < 2 * q + 2; t++) { /* the conv's positions t = 0 … 15, pooled in pairs */
          double acc = bias[o];
          for (int ci2 = 0; ci2 < 2; ci2++)
            for (int k = 0; k < 3; k++) {
              int at = t * 2 - 1 + k;
              if (at >= 0 && at < 30) acc += w[(o * 2 + ci2) * 3 + k] * x[s0 * 60 + ci2 * 30 + at];
            }
          best = fmax(best, acc);
        }
        g_assert_cmpfloat(fabs(y[s0 * 32 + o * 8 + q] - best), <, 1e-5);
      }
}

/* Gather of an activation with constant indices: x[:, 2] (a scalar index drops the axis, as ViT's class
 * token is taken) and x[:, :, [3, -4]] (a list keeps it), as slices, a concat and a reshape. */
static void test_gather_activation(void) {
  int64_t xin[3] = {-1, 3, 4}, none[1] = {0}, two[1] = {2}, idx2[2] = {3, -4}, od[2] = {-1, 4}, od2[3] = {-1, 3, 2};
  for (int form = 0; form < 2; form++) {
    Onnx__TensorProto *inits[1] = {form ? int64_tensor("ix", 1, two, idx2) : int64_tensor("ix", 0, none, (int64_t[]){2})};
    Onnx__AttributeProto *ga[1] = {attr_int("axis", form ? 2 : 1)};
    const char *gi[2] = {"x", "ix"};
    Onnx__NodeProto *nodes[1] = {node("Gather", "g", 2, gi, "y", 1, ga)};
    Onnx__GraphProto *gr = graph(1, nodes, 1, inits, value("x", 3, xin), "y");
    gr->output[0] = form ? value("y", 3, od2) : value("y", 2, od);
    g_autofree char *path = write_model(form ? "gather2.onnx" : "gather1.onnx", gr, TRUE);
    g_autoptr(PqModel) m = load_ok(path);
    float x[24], y[12];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    run_cpu(m, 2, x, y, form ? 6 : 4);
    for (int s0 = 0; s0 < 2; s0++)
      if (!form)
        for (int j = 0; j < 4; j++) g_assert_cmpfloat(y[s0 * 4 + j], ==, x[s0 * 12 + 2 * 4 + j]);
      else
        for (int r = 0; r < 3; r++) {
          g_assert_cmpfloat(y[s0 * 6 + r * 2], ==, x[s0 * 12 + r * 4 + 3]);
          g_assert_cmpfloat(y[s0 * 6 + r * 2 + 1], ==, x[s0 * 12 + r * 4 + 0]);
        }
  }
}

static void expect_error(const char *path, const char *needle);

/* A Gather of many indices on an activation (x [N, 48], 60 indices: a run of 20, a run with step 2, single
 * indices going down, then 34 scattered ones: more than 16 slices, joined by a tree of concats). */
static void test_gather_many(void) {
  int64_t xin[2] = {-1, 48}, cnt[1] = {60}, od[2] = {-1, 60}, idx[60];
  int k = 0;
  for (int i = 0; i < 20; i++) idx[k++] = i;
  for (int i = 21; i <= 25; i += 2) idx[k++] = i;
  idx[k++] = 47, idx[k++] = -2, idx[k++] = 44;
  for (int i = 0; k < 60; i++) idx[k++] = (i * 17 + 5) % 48;
  Onnx__TensorProto *inits[1] = {int64_tensor("ix", 1, cnt, idx)};
  Onnx__AttributeProto *ga[1] = {attr_int("axis", 1)};
  Onnx__NodeProto *nodes[1] = {node("Gather", "g", 2, (const char *[]){"x", "ix"}, "y", 1, ga)};
  Onnx__GraphProto *gr = graph(1, nodes, 1, inits, value("x", 2, xin), "y");
  gr->output[0] = value("y", 2, od);
  g_autofree char *path = write_model("gather-many.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  int concats = 0;
  for (size_t i = 0; i < pq_graph_n_nodes(pq_model_const_graph(m)); i++) concats += !strcmp(pq_node_op(pq_graph_node(pq_model_const_graph(m), i)), "concat");
  g_assert_cmpint(concats, >, 1); /* more than 16 runs: a tree */
  float x[96], y[120];
  for (int i = 0; i < 96; i++) x[i] = (float)i * 0.5f;
  run_cpu(m, 2, x, y, 60);
  for (int s0 = 0; s0 < 2; s0++)
    for (int j = 0; j < 60; j++) g_assert_cmpfloat(y[s0 * 60 + j], ==, x[s0 * 48 + (idx[j] < 0 ? idx[j] + 48 : idx[j])]);
  /* more than 65 536 indices: refused */
  int64_t big[1] = {65537};
  g_autofree int64_t *bidx = g_new0(int64_t, 65537);
  Onnx__TensorProto *bi[1] = {int64_tensor("ix", 1, big, bidx)};
  Onnx__AttributeProto *ba[1] = {attr_int("axis", 1)};
  Onnx__NodeProto *bn[1] = {node("Gather", "g", 2, (const char *[]){"x", "ix"}, "y", 1, ba)};
  g_autofree char *bpath = write_model("gather-too-many.onnx", graph(1, bn, 1, bi, value("x", 2, xin), "y"), TRUE);
  expect_error(bpath, "node 'g' (Gather): 65537 indices (1 to 65536 on an activation)");
}

/* An initializer first in Sub and Div (1 − x, c / sigmoid(x), as exports of gates write them): loaded as
 * they are, and run so on the CPU backend. */
static void test_constant_first(void) {
  int64_t xin[2] = {-1, 4}, four[1] = {4};
  Onnx__TensorProto *inits[2] = {tensor("c", 1, four, 71, 1.0f), tensor("d", 1, four, 72, 2.0f)};
  Onnx__NodeProto *nodes[3] = {node("Sub", "one_minus", 2, (const char *[]){"c", "x"}, "a", 0, NULL),
                               node("Sigmoid", "sig", 1, (const char *[]){"a"}, "s", 0, NULL),
                               node("Div", "over", 2, (const char *[]){"d", "s"}, "y", 0, NULL)};
  float cv[4], dv[4];
  memcpy(cv, inits[0]->float_data, sizeof cv);
  memcpy(dv, inits[1]->float_data, sizeof dv);
  Onnx__GraphProto *gr = graph(3, nodes, 2, inits, value("x", 2, xin), "y");
  g_autofree char *path = write_model("constant-first.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  float x[8], y[8];
  for (int i = 0; i < 8; i++) x[i] = (float)i * 0.3f - 1.0f;
  run_cpu(m, 2, x, y, 4);
  for (int i = 0; i < 8; i++) {
    double e = dv[i % 4] * (1 + exp(-(cv[i % 4] - x[i])));
    g_assert_cmpfloat(fabs(y[i] - e), <=, 1e-5 * (1 + fabs(e)));
  }
}

/* Expand and Tile of activations: a grey image made three channels (x [N, 1, 2, 3] expanded to [1, 3, 2, 3],
 * loaded as an add of zeros [1, 3, 1, 1]), a Tile of [N, 2, 3] by [1, 2, 3] (copies joined per axis), and
 * what moves or repeats the batch refused. */
static void test_expand_tile(void) {
  int64_t xin[4] = {-1, 1, 2, 3}, four[1] = {4}, to[4] = {1, 3, 2, 3};
  Onnx__TensorProto *inits[1] = {int64_tensor("shape", 1, four, to)};
  Onnx__NodeProto *nodes[1] = {node("Expand", "grey_to_rgb", 2, (const char *[]){"x", "shape"}, "y", 0, NULL)};
  g_autofree char *path = write_model("expand.onnx", graph(1, nodes, 1, inits, value("x", 4, xin), "y"), TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  const PqTensor *z = NULL;
  for (size_t i = 0; i < pq_model_n_tensors(m); i++)
    if (strstr(pq_tensor_name(pq_model_tensor_at(m, i)), "expand_zeros")) z = pq_model_tensor_at(m, i);
  g_assert_nonnull(z);
  g_assert_cmpint(pq_tensor_numel(z), ==, 3); /* [1, 3, 1, 1]: three zeros, not a copy of the image */
  g_assert_cmpint(pq_tensor_dtype(z), ==, PQ_DTYPE_U8); /* not float32: finetune keeps it as it is */
  float x[12], y[36];
  for (int i = 0; i < 12; i++) x[i] = (float)i - 4.5f;
  run_cpu(m, 2, x, y, 18);
  for (int s0 = 0; s0 < 2; s0++)
    for (int ch = 0; ch < 3; ch++)
      for (int k = 0; k < 6; k++) g_assert_cmpfloat(y[s0 * 18 + ch * 6 + k], ==, x[s0 * 6 + k]);

  int64_t tin[3] = {-1, 2, 3}, three[1] = {3}, reps[3] = {1, 2, 3};
  Onnx__TensorProto *ti[1] = {int64_tensor("reps", 1, three, reps)};
  Onnx__NodeProto *tn[1] = {node("Tile", "tile", 2, (const char *[]){"x", "reps"}, "y", 0, NULL)};
  g_autofree char *tpath = write_model("tile.onnx", graph(1, tn, 1, ti, value("x", 3, tin), "y"), TRUE);
  g_autoptr(PqModel) t = load_ok(tpath);
  float tx[12], ty[72];
  for (int i = 0; i < 12; i++) tx[i] = (float)i;
  run_cpu(t, 2, tx, ty, 36);
  for (int s0 = 0; s0 < 2; s0++) /* y[r][c] = x[r % 2][c % 3] over [4, 9] */
    for (int r = 0; r < 4; r++)
      for (int c = 0; c < 9; c++) g_assert_cmpfloat(ty[s0 * 36 + r * 9 + c], ==, tx[s0 * 6 + (r % 2) * 3 + c % 3]);

  int64_t bad_reps[3] = {2, 1, 1}, five[1] = {5}, to5[5] = {1, 1, 1, 2, 3};
  Onnx__TensorProto *bi[1] = {int64_tensor("reps", 1, three, bad_reps)};
  Onnx__NodeProto *bn[1] = {node("Tile", "tile", 2, (const char *[]){"x", "reps"}, "y", 0, NULL)};
  g_autofree char *bpath = write_model("tile-batch.onnx", graph(1, bn, 1, bi, value("x", 3, tin), "y"), TRUE);
  expect_error(bpath, "node 'tile' (Tile): repeats of the batch (2) are not supported");
  Onnx__TensorProto *ei[1] = {int64_tensor("shape", 1, five, to5)};
  Onnx__NodeProto *en[1] = {node("Expand", "up", 2, (const char *[]){"x", "shape"}, "y", 0, NULL)};
  g_autofree char *epath = write_model("expand-batch.onnx", graph(1, en, 1, ei, value("x", 4, xin), "y"), TRUE);
  expect_error(epath, "node 'up' (Expand): a shape of 5 dimensions for an input of 4 would move the batch");
  int64_t two[1] = {2}, iv[2] = {3, 4};
  Onnx__TensorProto *ci[2] = {int64_tensor("c", 1, two, iv), int64_tensor("shape", 1, two, iv)};
  Onnx__NodeProto *cn[2] = {node("Expand", "cexp", 2, (const char *[]){"c", "shape"}, "ce", 0, NULL),
                            node("Relu", "r", 1, (const char *[]){"x"}, "y", 0, NULL)};
  g_autofree char *cpath = write_model("expand-const.onnx", graph(2, cn, 2, ci, value("x", 4, xin), "y"), TRUE);
  expect_error(cpath, "node 'cexp' (Expand): of an INT64 constant (shape arithmetic) is not folded");
  int64_t to_bad[4] = {1, 1, 3, 3}; /* 2 × 3 does not broadcast to 3 × 3 */
  Onnx__TensorProto *bi2[1] = {int64_tensor("shape", 1, four, to_bad)};
  Onnx__NodeProto *bn2[1] = {node("Expand", "nb", 2, (const char *[]){"x", "shape"}, "y", 0, NULL)};
  g_autofree char *bpath2 = write_model("expand-nobcast.onnx", graph(1, bn2, 1, bi2, value("x", 4, xin), "y"), TRUE);
  expect_error(bpath2, "node 'nb' (Expand): dimension 2 of 2 does not broadcast to 3");
  int64_t many[3] = {1, 17, 1};
  Onnx__TensorProto *mi[1] = {int64_tensor("reps", 1, three, many)};
  Onnx__NodeProto *mn[1] = {node("Tile", "tile", 2, (const char *[]){"x", "reps"}, "y", 0, NULL)};
  g_autofree char *mpath = write_model("tile-many.onnx", graph(1, mn, 1, mi, value("x", 3, tin), "y"), TRUE);
  expect_error(mpath, "node 'tile' (Tile): repeats[1] = 17 (1 to 16)");
}

/* A ViT's class token: cls [1, 1, 4] expanded to [batch, 1, 4] (the batch from Shape, Gather, Unsqueeze,
 * Concat) and joined before the patches x [N, 3, 4]: every sample's first row is the token. */
static void test_class_token(void) {
  int64_t xin[3] = {-1, 3, 4}, cs[3] = {1, 1, 4}, d1[1] = {1}, d2[1] = {2}, od[3] = {-1, 4, 4};
  Onnx__TensorProto *inits[4] = {tensor("cls", 3, cs, 9, 1), int64_tensor("idx", 0, NULL, (int64_t[]){0}),
                                 int64_tensor("axes0", 1, d1, (int64_t[]){0}), int64_tensor("rest", 1, d2, (int64_t[]){1, 4})};
  const char *s_in[1] = {"x"}, *g_in[2] = {"shape", "idx"}, *u_in[2] = {"b", "axes0"}, *c_in[2] = {"b1", "rest"}, *e_in[2] = {"cls", "shp"},
             *j_in[2] = {"clsN", "x"};
  Onnx__AttributeProto *cat0[1] = {attr_int("axis", 0)}, *cat1[1] = {attr_int("axis", 1)};
  Onnx__NodeProto *nodes[6] = {node("Shape", "sh", 1, s_in, "shape", 0, NULL), node("Gather", "ga", 2, g_in, "b", 0, NULL),
                               node("Unsqueeze", "un", 2, u_in, "b1", 0, NULL), node("Concat", "ca", 2, c_in, "shp", 1, cat0),
                               node("Expand", "ex", 2, e_in, "clsN", 0, NULL), node("Concat", "join", 2, j_in, "y", 1, cat1)};
  Onnx__GraphProto *gr = graph(6, nodes, 4, inits, value("x", 3, xin), "y");
  gr->output[0] = value("y", 3, od);
  g_autofree char *path = write_model("cls.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(m)), ==, 1); /* only the concat runs */
  float x[3 * 12], y[3 * 16];
  for (int i = 0; i < 36; i++) x[i] = (float)i;
  run_cpu(m, 3, x, y, 16);
  for (int s0 = 0; s0 < 3; s0++) {
    for (int k = 0; k < 4; k++) g_assert_cmpfloat(y[s0 * 16 + k], ==, inits[0]->float_data[k]);
    for (int k = 0; k < 12; k++) g_assert_cmpfloat(y[s0 * 16 + 4 + k], ==, x[s0 * 12 + k]);
  }
}

static void expect_error(const char *path, const char *needle) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_model_load(path, &err);
  g_assert_null(m);
  g_assert_nonnull(err);
  g_assert_nonnull(strstr(err->message, path));
  if (!strstr(err->message, needle)) g_error("'%s' lacks '%s'", err->message, needle);
}

/* A protobuf nesting graph → node → attribute → graph … `depth` times, written inside out. */
/* Cast: of an activation to FLOAT, the input itself; of an INT64 constant to FLOAT, converted at load (x · 3);
 * of an activation to INT64, refused by name. */
static void test_cast(void) {
  int64_t xin[2] = {-1, 4}, d1[1] = {1};
  Onnx__TensorProto *inits[1] = {int64_tensor("three", 1, d1, (int64_t[]){3})};
  Onnx__AttributeProto *tf[1] = {attr_int("to", 1)}, *tf2[1] = {attr_int("to", 1)}, *ti[1] = {attr_int("to", 7)};
  const char *c1[1] = {"x"}, *c2[1] = {"three"}, *mi[2] = {"xf", "threef"};
  Onnx__NodeProto *nodes[3] = {node("Cast", "cx", 1, c1, "xf", 1, tf), node("Cast", "c3", 1, c2, "threef", 1, tf2),
                               node("Mul", "mul", 2, mi, "y", 0, NULL)};
  Onnx__GraphProto *gr = graph(3, nodes, 1, inits, value("x", 2, xin), "y");
  gr->output[0] = value("y", 2, xin);
  g_autofree char *path = write_model("cast.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  float x[8] = {1, -2, 3.5f, 0, 4, 5, -6, 7}, y[8];
  run_cpu(m, 2, x, y, 4);
  for (int i = 0; i < 8; i++) g_assert_cmpfloat(y[i], ==, 3 * x[i]);
  Onnx__NodeProto *bad[1] = {node("Cast", "ci", 1, c1, "y", 1, ti)};
  g_autofree char *p2 = write_model("cast-int.onnx", graph(1, bad, 0, NULL, value("x", 2, xin), "y"), TRUE);
  expect_error(p2, "node 'ci' (Cast): of an activation, only to FLOAT (pquant runs float32), not type 7");
}

/* An integer initializer of type data_type (INT8, UINT8, INT32) of these values (int32_data, as ONNX stores them) */
static Onnx__TensorProto *int32_values(const char *name, int nd, const int64_t *dims, int data_type, const int32_t *v) {
  int64_t n;
  Onnx__TensorProto *t = tensor_head(name, nd, dims, data_type, &n);
  t->n_int32_data = (size_t)n;
  t->int32_data = g_memdup2(v, sizeof(int32_t) * (size_t)n);
  return t;
}

/* An INT8 or UINT8 initializer of these values */
static Onnx__TensorProto *int8_tensor(const char *name, int nd, const int64_t *dims, gboolean is_signed, const int32_t *v) {
  return int32_values(name, nd, dims, is_signed ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8 : ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, v);
}

static Onnx__TensorProto *float_values(const char *name, int nd, const int64_t *dims, const float *v) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= dims[i];
  Onnx__TensorProto *t = tensor(name, nd, dims, 1, 1.0f);
  memcpy(t->float_data, v, sizeof(float) * (size_t)n);
  return t;
}

/* The weight (input 1) of m's first node of op `op` */
static PqTensor *op_weight(PqModel *m, const char *op) {
  for (size_t i = 0; i < pq_graph_n_nodes(pq_model_const_graph(m)); i++) {
    const PqNode *nd = pq_graph_node(pq_model_graph(m), i);
    if (!strcmp(pq_node_op(nd), op)) return pq_model_tensor(m, pq_node_input(nd, 1));
  }
  return NULL;
}

/* QDQ models, as quantization tools export them: a weight stored as int8 codes behind DequantizeLinear (per
 * axis, with zero points) is folded into the float32 weight it stands for; an activation's QuantizeLinear →
 * DequantizeLinear (per tensor, UINT8 with a zero point; per axis, INT8) runs as the rounding it is: the
 * values come out on the grid, ties to even, saturating at the code type's range. */
static void test_qdq(void) {
  int64_t xin[2] = {-1, 4}, bd[2] = {4, 3}, d3[1] = {3}, d0[1] = {1}, od[2] = {-1, 3};
  const int32_t codes[12] = {-3, 5, 127, 0, -128, 7, 12, -1, 2, 100, 9, -60}, zps[3] = {1, -2, 0};
  const float scales[3] = {0.5f, 0.25f, 0.125f};
  Onnx__TensorProto *inits[5] = {int8_tensor("bq", 2, bd, TRUE, codes), float_values("bs", 1, d3, scales), int8_tensor("bz", 1, d3, TRUE, zps),
                                 float_values("as", 1, d0, (const float[]){0.1f}), int8_tensor("az", 1, d0, FALSE, (const int32_t[]){128})};
  Onnx__AttributeProto *ax1[1] = {attr_int("axis", 1)};
  const char *dqi[3] = {"bq", "bs", "bz"}, *qi[3] = {"x", "as", "az"}, *dai[3] = {"xq", "as", "az"}, *mi[2] = {"xd", "b"};
  Onnx__NodeProto *nodes[4] = {node("DequantizeLinear", "dqw", 3, dqi, "b", 1, ax1), node("QuantizeLinear", "qx", 3, qi, "xq", 0, NULL),
                               node("DequantizeLinear", "dqx", 3, dai, "xd", 0, NULL), node("MatMul", "mm", 2, mi, "y", 0, NULL)};
  Onnx__GraphProto *gr = graph(4, nodes, 5, inits, value("x", 2, xin), "y");
  gr->output[0] = value("y", 2, od);
  g_autofree char *path = write_model("qdq.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  /* x: values between grid points, a tie (0.05 and 0.15: to even), and beyond the UINT8 range (0.1 · (255 − 128)) */
  const float x[8] = {0.05f, 0.15f, -0.26f, 0.31f, 20.0f, -20.0f, 1.04f, -0.96f};
  float y[6], xd[8];
  run_cpu(m, 2, x, y, 3);
  for (int i = 0; i < 8; i++) {
    const float q = fminf(fmaxf(rintf(x[i] / 0.1f) + 128.0f, 0.0f), 255.0f);
    xd[i] = (q - 128.0f) * 0.1f;
  }
  g_assert_cmpfloat(xd[4], ==, 127.0f * 0.1f); /* (saturated) */
  g_assert_cmpfloat(xd[5], ==, -128.0f * 0.1f);
  /* the weight stays 8-bit: the MatMul a linear layer over a packed tensor on the file's grid (one scale and
     zero point an output), holding exactly the values DequantizeLinear gives; the CPU backend runs it from the
     codes, with int8 activations (so within 1% of the float product) */
  PqTensor *w = op_weight(m, "linear");
  g_assert_nonnull(w);
  g_assert_cmpint(pq_tensor_dtype(w), ==, PQ_DTYPE_PACKED);
  g_assert_cmpint(pq_tensor_bits(w), ==, 8);
  g_assert_cmpint(pq_tensor_quant_scheme(w), ==, PQ_QUANT_PER_CHANNEL);
  g_assert_nonnull(pq_tensor_zeros(w));
  g_assert_cmpint(pq_tensor_stored_bytes(w), ==, 12 + 3 * 4 + 3);
  float wv[12];
  g_assert_cmpint(pq_tensor_to_f32(w, wv), ==, 0);
  for (int o = 0; o < 3; o++)
    for (int k = 0; k < 4; k++) g_assert_cmpfloat(wv[o * 4 + k], ==, ((float)codes[k * 3 + o] - (float)zps[o]) * scales[o]);
  double top = 0;
  for (int r = 0; r < 2; r++)
    for (int o = 0; o < 3; o++) {
      double want = 0;
      for (int k = 0; k < 4; k++) want += (double)xd[r * 4 + k] * ((double)codes[k * 3 + o] - zps[o]) * scales[o];
      top = fmax(top, fabs(want));
    }
  for (int r = 0; r < 2; r++)
    for (int o = 0; o < 3; o++) {
      double want = 0;
      for (int k = 0; k < 4; k++) want += (double)xd[r * 4 + k] * ((double)codes[k * 3 + o] - zps[o]) * scales[o];
      if (fabs(y[r * 3 + o] - want) > 0.01 * top) g_error("y[%d][%d] = %g, want %g", r, o, y[r * 3 + o], want);
    }
  /* a conv's weight per output channel (axis 0), INT8 without zero points: packed, symmetric (no zero points
     stored); a MatMul weight whose scales run along its inputs (axis 0 of B [4, 3]): not one a row, stays float32 */
  {
    int64_t xc[4] = {-1, 1, 3, 3}, wd[4] = {2, 1, 2, 2}, d2c[1] = {2}, d4[1] = {4}, x2[2] = {-1, 4}, oc[4] = {-1, 2, 2, 2};
    const int32_t wc[8] = {1, -2, 3, -4, 127, -128, 0, 5};
    Onnx__TensorProto *ci[4] = {int8_tensor("wq", 4, wd, TRUE, wc), float_values("ws", 1, d2c, (const float[]){0.5f, 0.03125f}),
                                int8_tensor("bq2", 2, bd, TRUE, codes), float_values("bs2", 1, d4, (const float[]){0.5f, 0.25f, 1.0f, 2.0f})};
    Onnx__AttributeProto *ax0[1] = {attr_int("axis", 0)}, *ax0b[1] = {attr_int("axis", 0)};
    const char *wi[2] = {"wq", "ws"}, *cvi[2] = {"x", "w"};
    Onnx__NodeProto *cn[2] = {node("DequantizeLinear", "dqc", 2, wi, "w", 1, ax0), node("Conv", "conv", 2, cvi, "y", 0, NULL)};
    Onnx__GraphProto *cg = graph(2, cn, 2, ci, value("x", 4, xc), "y");
    cg->output[0] = value("y", 4, oc);
    g_autofree char *cp = write_model("qdq-conv.onnx", cg, TRUE);
    g_autoptr(PqModel) cm = load_ok(cp);
    PqTensor *cw = pq_model_tensor(cm, "w");
    g_assert_cmpint(pq_tensor_dtype(cw), ==, PQ_DTYPE_PACKED);
    g_assert_null(pq_tensor_zeros(cw));
    g_assert_cmpint(pq_tensor_stored_bytes(cw), ==, 8 + 2 * 4);
    const char *bi2[2] = {"bq2", "bs2"}, *mm2[2] = {"x", "b2"};
    Onnx__NodeProto *mn[2] = {node("DequantizeLinear", "dqb", 2, bi2, "b2", 1, ax0b), node("MatMul", "mm2", 2, mm2, "y", 0, NULL)};
    Onnx__TensorProto *mi2[2] = {ci[2], ci[3]};
    Onnx__GraphProto *mg = graph(2, mn, 2, mi2, value("x", 2, x2), "y");
    mg->output[0] = value("y", 2, od);
    g_autofree char *mp = write_model("qdq-inputs.onnx", mg, TRUE);
    g_autoptr(PqModel) mm = load_ok(mp);
    for (size_t i = 0; i < pq_model_n_tensors(mm); i++) g_assert_cmpint(pq_tensor_dtype(pq_model_tensor_at(mm, i)), ==, PQ_DTYPE_F32);
  }
  /* per axis on an activation [N, 2, 1, 2], INT8 codes without zero points: channel 1's values saturate at 127 steps */
  int64_t x4[4] = {-1, 2, 1, 2}, d2[1] = {2};
  Onnx__TensorProto *pinits[2] = {float_values("cs", 1, d2, (const float[]){1.0f, 0.01f}), int8_tensor("cz", 1, d2, TRUE, (const int32_t[]){0, 0})};
  const char *pq[3] = {"x", "cs", "cz"}, *pd[3] = {"q", "cs", "cz"};
  Onnx__NodeProto *pn[2] = {node("QuantizeLinear", "q1", 3, pq, "q", 1, ax1), node("DequantizeLinear", "d1", 3, pd, "y", 1, ax1)};
  Onnx__GraphProto *pg = graph(2, pn, 2, pinits, value("x", 4, x4), "y");
  pg->output[0] = value("y", 4, x4);
  g_autofree char *pp = write_model("qdq-axis.onnx", pg, TRUE);
  g_autoptr(PqModel) pm = load_ok(pp);
  const float px[4] = {2.4f, -300.0f, 2.0f, -0.0151f};
  float py[4];
  run_cpu(pm, 1, px, py, 4);
  g_assert_cmpfloat(py[0], ==, 2.0f);
  g_assert_cmpfloat(py[1], ==, -128.0f);
  g_assert_cmpfloat(py[2], ==, 127.0f * 0.01f);
  g_assert_cmpfloat(py[3], ==, -2.0f * 0.01f);
  /* refused, by name: a scale from an activation, blocked quantization, a scale of 0 */
  const char *vq[2] = {"x", "x"};
  Onnx__NodeProto *b1[1] = {node("QuantizeLinear", "qv", 2, vq, "y", 0, NULL)};
  g_autofree char *e1 = write_model("qdq-var.onnx", graph(1, b1, 0, NULL, value("x", 2, xin), "y"), TRUE);
  expect_error(e1, "node 'qv' (QuantizeLinear): its scale and zero point must be constants");
  Onnx__AttributeProto *blk[1] = {attr_int("block_size", 2)};
  Onnx__TensorProto *bi[1] = {float_values("s", 1, d0, (const float[]){0.5f})};
  const char *qs[2] = {"x", "s"};
  Onnx__NodeProto *b2[1] = {node("QuantizeLinear", "qb", 2, qs, "y", 1, blk)};
  g_autofree char *e2 = write_model("qdq-block.onnx", graph(1, b2, 1, bi, value("x", 2, xin), "y"), TRUE);
  expect_error(e2, "node 'qb' (QuantizeLinear): blocked quantization (block_size) is not supported");
  Onnx__TensorProto *zi[1] = {float_values("s", 1, d0, (const float[]){0.0f})};
  Onnx__NodeProto *b3[1] = {node("DequantizeLinear", "dz", 2, qs, "y", 0, NULL)};
  g_autofree char *e3 = write_model("qdq-zero.onnx", graph(1, b3, 1, zi, value("x", 2, xin), "y"), TRUE);
  expect_error(e3, "node 'dz' (DequantizeLinear): scale 0 is 0 (it must be positive)");
}

/* ONNX's integer reference of a QLinear op's output code: acc · (x_scale · w_scale / y_scale) + y_zero, rounded
 * to even and saturated to UINT8, as its QLinearMatMul and QLinearConv define it */
static float qlinear_code(int64_t acc, float xs, float ws, float ys, float yz) {
  double v = rint((double)acc * (double)(xs * ws / ys) + yz);
  return (float)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* QOperator models: QLinearMatMul and QLinearConv load as the ops they are defined as (DequantizeLinear of input
 * and weight, MatMul or Conv, QuantizeLinear), their weights kept 8-bit; where each input row's int8 grid is the
 * input's own (a code of ±127 in every row and patch) the outputs are ONNX's integer reference, code for code. */
static void test_qlinear(void) {
  /* x [N, 4] → QuantizeLinear (0.1, 128) → QLinearMatMul by B [4, 3] (UINT8, a scale and zero point a column)
     to (0.05, 120) → DequantizeLinear */
  int64_t xin[2] = {-1, 4}, bd[2] = {4, 3}, d3[1] = {3}, d0[1] = {1}, od[2] = {-1, 3};
  const int32_t bq[12] = {200, 5, 127, 0, 255, 7, 12, 128, 60, 100, 9, 250}, bz[3] = {128, 100, 130};
  const float bs[3] = {0.01f, 0.004f, 0.02f};
  Onnx__TensorProto *inits[7] = {float_values("xs", 1, d0, (const float[]){0.1f}), int8_tensor("xz", 1, d0, FALSE, (const int32_t[]){128}),
                                 int8_tensor("bq", 2, bd, FALSE, bq), float_values("bs", 1, d3, bs), int8_tensor("bz", 1, d3, FALSE, bz),
                                 float_values("ys", 1, d0, (const float[]){0.05f}), int8_tensor("yz", 1, d0, FALSE, (const int32_t[]){120})};
  const char *qi[3] = {"x", "xs", "xz"}, *mi[8] = {"xq", "xs", "xz", "bq", "bs", "bz", "ys", "yz"}, *di[3] = {"yq", "ys", "yz"};
  Onnx__NodeProto *nodes[3] = {node("QuantizeLinear", "q", 3, qi, "xq", 0, NULL), node("QLinearMatMul", "qmm", 8, mi, "yq", 0, NULL),
                               node("DequantizeLinear", "dq", 3, di, "y", 0, NULL)};
  Onnx__GraphProto *gr = graph(3, nodes, 7, inits, value("x", 2, xin), "y");
  gr->output[0] = value("y", 2, od);
  g_autofree char *path = write_model("qlinear-matmul.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  PqTensor *w = op_weight(m, "linear");
  g_assert_nonnull(w);
  g_assert_cmpint(pq_tensor_dtype(w), ==, PQ_DTYPE_PACKED);
  g_assert_cmpint(pq_tensor_bits(w), ==, 8);
  g_assert_nonnull(pq_tensor_zeros(w));
  const int32_t k[8] = {127, -5, 33, 0, -127, 64, -1, 12}; /* the input codes less 128 */
  float x[8], y[6];
  for (int i = 0; i < 8; i++) x[i] = (float)k[i] * 0.1f;
  run_cpu(m, 2, x, y, 3);
  for (int r = 0; r < 2; r++)
    for (int o = 0; o < 3; o++) {
      int64_t acc = 0;
      for (int j = 0; j < 4; j++) acc += (int64_t)k[r * 4 + j] * (bq[j * 3 + o] - bz[o]);
      float want = (qlinear_code(acc, 0.1f, bs[o], 0.05f, 120) - 120.0f) * 0.05f;
      if (fabsf(y[r * 3 + o] - want) > 1e-5f) g_error("y[%d][%d] = %g, ONNX's reference %g", r, o, y[r * 3 + o], want);
    }
  /* x [N, 1, 3, 3] → QuantizeLinear (0.1, 128) → QLinearConv 2×2 by W [2, 1, 2, 2] (INT8, a scale an output
     channel, zero points 0) with an INT32 bias, to (0.05, 120) → DequantizeLinear; the centre code 127 lies in
     every patch */
  int64_t xc[4] = {-1, 1, 3, 3}, wd[4] = {2, 1, 2, 2}, d2[1] = {2}, oc[4] = {-1, 2, 2, 2};
  const int32_t wq[8] = {5, -3, 127, 0, -128, 60, 7, -20}, wz[2] = {0, 0}, bias[2] = {300, -1003}; /* (no ties: each acc · x_scale · w_scale / y_scale lies 0.02 or more from a half) */
  const float ws[2] = {0.02f, 0.01f};
  Onnx__TensorProto *ci[9] = {inits[0], inits[1], int8_tensor("wq", 4, wd, TRUE, wq), float_values("ws", 1, d2, ws), int8_tensor("wz", 1, d2, TRUE, wz),
                              inits[5], inits[6], int32_values("b", 1, d2, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, bias)};
  const char *cvi[9] = {"xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "b"};
  Onnx__NodeProto *cn[3] = {node("QuantizeLinear", "q", 3, qi, "xq", 0, NULL), node("QLinearConv", "qconv", 9, cvi, "yq", 0, NULL),
                            node("DequantizeLinear", "dq", 3, di, "y", 0, NULL)};
  Onnx__GraphProto *cg = graph(3, cn, 8, ci, value("x", 4, xc), "y");
  cg->output[0] = value("y", 4, oc);
  g_autofree char *cp = write_model("qlinear-conv.onnx", cg, TRUE);
  g_autoptr(PqModel) cm = load_ok(cp);
  PqTensor *cw = op_weight(cm, "conv2d");
  g_assert_nonnull(cw);
  g_assert_cmpint(pq_tensor_dtype(cw), ==, PQ_DTYPE_PACKED);
  g_assert_null(pq_tensor_zeros(cw)); /* (symmetric: none stored) */
  const int32_t xk[9] = {-40, 3, 90, 17, 127, -66, 0, 25, -101};
  float cx[9], cy[8];
  for (int i = 0; i < 9; i++) cx[i] = (float)xk[i] * 0.1f;
  run_cpu(cm, 1, cx, cy, 8);
  for (int o = 0; o < 2; o++)
    for (int p = 0; p < 4; p++) {
      int64_t acc = bias[o];
      for (int a = 0; a < 2; a++)
        for (int b2 = 0; b2 < 2; b2++) acc += (int64_t)xk[(p / 2 + a) * 3 + p % 2 + b2] * (wq[o * 4 + a * 2 + b2] - wz[o]);
      float want = (qlinear_code(acc, 0.1f, ws[o], 0.05f, 120) - 120.0f) * 0.05f;
      if (fabsf(cy[o * 4 + p] - want) > 1e-5f) g_error("conv y[%d][%d] = %g, ONNX's reference %g", o, p, cy[o * 4 + p], want);
    }
  /* refused, by name: a weight that is not a constant, an input scale that is not one value */
  const char *vi[8] = {"xq", "xs", "xz", "xq", "bs", "bz", "ys", "yz"};
  Onnx__NodeProto *b1[2] = {node("QuantizeLinear", "q", 3, qi, "xq", 0, NULL), node("QLinearMatMul", "qv", 8, vi, "y", 0, NULL)};
  g_autofree char *e1 = write_model("qlinear-var.onnx", graph(2, b1, 7, inits, value("x", 2, xin), "y"), TRUE);
  expect_error(e1, "node 'qv' (QLinearMatMul): its weight 'xq' must be a constant (an initializer)");
  const char *si[8] = {"xq", "bs", "bz", "bq", "bs", "bz", "ys", "yz"};
  Onnx__NodeProto *b2[2] = {node("QuantizeLinear", "q", 3, qi, "xq", 0, NULL), node("QLinearMatMul", "qs", 8, si, "y", 0, NULL)};
  g_autofree char *e2 = write_model("qlinear-scales.onnx", graph(2, b2, 7, inits, value("x", 2, xin), "y"), TRUE);
  expect_error(e2, "node 'qs' (QLinearMatMul): x_scale must be a constant scalar (one scale for the input)");
}

/* A DynamicQuantizeLinear node of x, its three outputs named */
static Onnx__NodeProto *dql_node(const char *name, const char *x, const char *y, const char *scale, const char *zero) {
  Onnx__NodeProto *n = node("DynamicQuantizeLinear", name, 1, (const char *[]){x}, y, 0, NULL);
  n->n_output = 3;
  n->output = g_renew(char *, n->output, 3);
  n->output[1] = g_strdup(scale);
  n->output[2] = g_strdup(zero);
  return n;
}

/* Dynamic quantization as onnxruntime's quantize_dynamic writes it. DynamicQuantizeLinear gives ONNX's codes,
 * scale and zero point exactly, over each sample's own range (a sample of zeros: scale 1/255); MatMulInteger and
 * ConvInteger give the integer products of codes less zero points, their weights kept 8-bit; and the chain
 * DynamicQuantizeLinear → MatMulInteger → Cast → Mul by the scales is the float product within 1%. */
static void test_dynamic_quantize(void) {
  int64_t xin[2] = {-1, 4}, bd[2] = {4, 3}, d3[1] = {3}, d0[1] = {1};
  /* DynamicQuantizeLinear alone, its three outputs */
  Onnx__NodeProto *dn = dql_node("dql", "x", "q", "scale", "zero");
  Onnx__GraphProto *dg = graph(1, &dn, 0, NULL, value("x", 2, xin), "q");
  dg->n_output = 3;
  dg->output = g_renew(Onnx__ValueInfoProto *, dg->output, 3);
  dg->output[0] = value("q", 2, xin);
  dg->output[1] = value("scale", 2, (const int64_t[]){-1, 1});
  dg->output[2] = value("zero", 2, (const int64_t[]){-1, 1});
  g_autofree char *dp = write_model("dql.onnx", dg, TRUE);
  g_autoptr(PqModel) dm = load_ok(dp);
  const float x[16] = {0.3f, -1.7f, 2.25f, 0.0f, /* mixed */ 0.5f, 3.0f, 1.0f, 0.1f, /* positive: zero point 0 */
                       -2.0f, -0.01f, -7.5f, -3.0f, /* negative: zero point 255 */ 0, 0, 0, 0}; /* zeros: scale 1/255 */
  float q[16], sc[4], zp[4];
  {
    g_autoptr(GError) err = NULL;
    g_autoptr(PqRegistry) reg = pq_registry_new();
    g_autoptr(PqBackend) b = pq_backend_prepare(pq_test_cpu_backend(reg), dm, 1, 4, NULL, &err);
    g_assert_no_error(err);
    PqTensorView in = {sizeof in, PQ_DTYPE_F32, 2, 0, {4, 4}, (void *)x};
    PqTensorView out[3] = {{sizeof out[0], PQ_DTYPE_F32, 2, 0, {4, 4}, q}, {sizeof out[1], PQ_DTYPE_F32, 2, 0, {4, 1}, sc},
                           {sizeof out[2], PQ_DTYPE_F32, 2, 0, {4, 1}, zp}};
    g_assert_true(pq_backend_run(b, &in, 1, out, 3, &err));
    g_assert_no_error(err);
  }
  for (int r = 0; r < 4; r++) { /* ONNX's reference, in float32 */
    float mx = 0, mn = 0;
    for (int j = 0; j < 4; j++) mx = fmaxf(mx, x[r * 4 + j]), mn = fminf(mn, x[r * 4 + j]);
    const float s = (mx == mn ? 1.0f : mx - mn) / 255.0f, z = rintf(fminf(255.0f, fmaxf(0.0f, 0.0f - mn / s)));
    g_assert_cmpfloat(sc[r], ==, s);
    g_assert_cmpfloat(zp[r], ==, z);
    for (int j = 0; j < 4; j++) g_assert_cmpfloat(q[r * 4 + j], ==, fminf(255.0f, fmaxf(0.0f, rintf(x[r * 4 + j] / s) + z)));
  }
  g_assert_cmpfloat(zp[1], ==, 0.0f);
  g_assert_cmpfloat(zp[2], ==, 255.0f);
  g_assert_cmpfloat(sc[3], ==, 1.0f / 255.0f);
  /* MatMulInteger of UINT8 codes (zero point 128, a constant) by INT8 B with a zero point a column: the weight
     packed 8-bit, the products exact (each row holds a code 127 from its zero point: its int8 grid is its own) */
  const int32_t bq[12] = {-3, 5, 127, 0, -128, 7, 12, -1, 2, 100, 9, -60}, bz[3] = {1, -2, 0};
  Onnx__TensorProto *mi[3] = {int8_tensor("b", 2, bd, TRUE, bq), int8_tensor("az", 1, d0, FALSE, (const int32_t[]){128}),
                              int8_tensor("bz", 1, d3, TRUE, bz)};
  Onnx__NodeProto *mn[1] = {node("MatMulInteger", "mmi", 4, (const char *[]){"x", "b", "az", "bz"}, "y", 0, NULL)};
  Onnx__GraphProto *mg = graph(1, mn, 3, mi, value("x", 2, xin), "y");
  mg->output[0] = value("y", 2, (const int64_t[]){-1, 3});
  g_autofree char *mp = write_model("matmulinteger.onnx", mg, TRUE);
  g_autoptr(PqModel) mm = load_ok(mp);
  PqTensor *w = op_weight(mm, "linear");
  g_assert_nonnull(w);
  g_assert_cmpint(pq_tensor_dtype(w), ==, PQ_DTYPE_PACKED);
  const float a[8] = {255, 128, 3, 200, 1, 90, 128, 250};
  float y[6];
  run_cpu(mm, 2, a, y, 3);
  for (int r = 0; r < 2; r++)
    for (int o = 0; o < 3; o++) {
      int64_t acc = 0;
      for (int k = 0; k < 4; k++) acc += (int64_t)(a[r * 4 + k] - 128) * (bq[k * 3 + o] - bz[o]);
      g_assert_cmpfloat(y[r * 3 + o], ==, (float)acc);
    }
  /* ConvInteger: a UINT8 kernel with a zero point an output channel, codes 127 from the input's zero point in
     every patch */
  int64_t xc[4] = {-1, 1, 3, 3}, wd[4] = {2, 1, 2, 2}, d2[1] = {2};
  const int32_t wq[8] = {5, 200, 127, 0, 255, 60, 7, 20}, wz[2] = {100, 128};
  Onnx__TensorProto *ci[3] = {int8_tensor("w", 4, wd, FALSE, wq), mi[1], int8_tensor("wz", 1, d2, FALSE, wz)};
  Onnx__NodeProto *cn[1] = {node("ConvInteger", "ci", 4, (const char *[]){"x", "w", "az", "wz"}, "y", 0, NULL)};
  Onnx__GraphProto *cg = graph(1, cn, 3, ci, value("x", 4, xc), "y");
  cg->output[0] = value("y", 4, (const int64_t[]){-1, 2, 2, 2});
  g_autofree char *cp = write_model("convinteger.onnx", cg, TRUE);
  g_autoptr(PqModel) cm = load_ok(cp);
  const float cx[9] = {88, 131, 218, 145, 255, 62, 128, 153, 27};
  float cy[8];
  run_cpu(cm, 1, cx, cy, 8);
  for (int o = 0; o < 2; o++)
    for (int p = 0; p < 4; p++) {
      int64_t acc = 0;
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) acc += (int64_t)(cx[(p / 2 + i) * 3 + p % 2 + j] - 128) * (wq[o * 4 + i * 2 + j] - wz[o]);
      g_assert_cmpfloat(cy[o * 4 + p], ==, (float)acc);
    }
  /* the chain quantize_dynamic writes: x → DynamicQuantizeLinear → MatMulInteger (INT8 B, no zero point) → Cast →
     Mul by x_scale · b_scale; against the float product x · (b_scale · B) */
  const float bsc = 0.01f;
  Onnx__TensorProto *ki[2] = {int8_tensor("b", 2, bd, TRUE, bq), float_values("bs", 1, d0, &bsc)};
  Onnx__NodeProto *dqln = dql_node("dql", "x", "xq", "xs", "xz");
  Onnx__AttributeProto *to[1] = {attr_int("to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)};
  Onnx__NodeProto *kn[5] = {dqln, node("MatMulInteger", "mmi", 3, (const char *[]){"xq", "b", "xz"}, "i32", 0, NULL),
                            node("Cast", "cast", 1, (const char *[]){"i32"}, "f", 1, to), node("Mul", "smul", 2, (const char *[]){"xs", "bs"}, "s", 0, NULL),
                            node("Mul", "mul", 2, (const char *[]){"f", "s"}, "y", 0, NULL)};
  Onnx__GraphProto *kg = graph(5, kn, 2, ki, value("x", 2, xin), "y");
  kg->output[0] = value("y", 2, (const int64_t[]){-1, 3});
  g_autofree char *kp = write_model("dynamic-chain.onnx", kg, TRUE);
  g_autoptr(PqModel) km = load_ok(kp);
  float ky[12];
  run_cpu(km, 4, x, ky, 3);
  for (int r = 0; r < 3; r++) { /* (the rows with values) */
    double top = 0, want[3];
    for (int o = 0; o < 3; o++) {
      want[o] = 0;
      for (int k = 0; k < 4; k++) want[o] += (double)x[r * 4 + k] * bsc * bq[k * 3 + o];
      top = fmax(top, fabs(want[o]));
    }
    for (int o = 0; o < 3; o++)
      if (fabs(ky[r * 3 + o] - want[o]) > 0.01 * top) g_error("row %d, output %d: %g, the float product %g", r, o, ky[r * 3 + o], want[o]);
  }
  for (int o = 0; o < 3; o++) g_assert_cmpfloat(ky[9 + o], ==, 0.0f);
  /* refused, by name */
  Onnx__NodeProto *b1[1] = {node("MatMulInteger", "mv", 2, (const char *[]){"x", "x"}, "y", 0, NULL)};
  g_autofree char *e1 = write_model("mmi-var.onnx", graph(1, b1, 0, NULL, value("x", 2, xin), "y"), TRUE);
  expect_error(e1, "node 'mv' (MatMulInteger): its weight 'x' must be a constant (an initializer)");
  Onnx__TensorProto *fi[1] = {float_values("bf", 2, bd, (const float[12]){0})};
  Onnx__NodeProto *b2[1] = {node("MatMulInteger", "mf", 2, (const char *[]){"x", "bf"}, "y", 0, NULL)};
  g_autofree char *e2 = write_model("mmi-float.onnx", graph(1, b2, 1, fi, value("x", 2, xin), "y"), TRUE);
  expect_error(e2, "node 'mf' (MatMulInteger): its weight is F32, not INT8 or UINT8");
}

/* ArgMax and ArgMin along an axis after the batch: the index as a float32 value (keepdims 0 here); axis 0 and
 * select_last_index = 1 are refused by name. */
static void test_argmax(void) {
  int64_t xin[2] = {-1, 4};
  Onnx__AttributeProto *a1[2] = {attr_int("axis", 1), attr_int("keepdims", 0)};
  Onnx__NodeProto *n1[1] = {node("ArgMax", "am", 1, (const char *[]){"x"}, "y", 2, a1)};
  Onnx__GraphProto *g1 = graph(1, n1, 0, NULL, value("x", 2, xin), "y");
  g1->output[0] = value("y", 1, (const int64_t[]){-1});
  g_autofree char *p1 = write_model("argmax.onnx", g1, TRUE);
  g_autoptr(PqModel) m = load_ok(p1);
  const float x[8] = {0.5f, -2, 7, 7, 3, 3, 1, -1};
  float y[2];
  run_cpu(m, 2, x, y, 1);
  g_assert_cmpfloat(y[0], ==, 2.0f);
  g_assert_cmpfloat(y[1], ==, 0.0f);
  Onnx__AttributeProto *a0[1] = {attr_int("axis", 0)}, *al[2] = {attr_int("axis", -1), attr_int("select_last_index", 1)};
  Onnx__NodeProto *n0[1] = {node("ArgMin", "a0", 1, (const char *[]){"x"}, "y", 1, a0)}, *nl[1] = {node("ArgMax", "al", 1, (const char *[]){"x"}, "y", 2, al)};
  g_autofree char *e0 = write_model("argmin-batch.onnx", graph(1, n0, 0, NULL, value("x", 2, xin), "y"), TRUE);
  expect_error(e0, "node 'a0' (ArgMin): axis 0 is the batch, which pquant keeps");
  g_autofree char *el = write_model("argmax-last.onnx", graph(1, nl, 0, NULL, value("x", 2, xin), "y"), TRUE);
  expect_error(el, "node 'al' (ArgMax): select_last_index = 1 is not supported (the first of ties is taken)");
}

/* The quantized-op refusals not covered above, each by name: a QLinear weight of the wrong rank, a QLinearConv
 * bias of the wrong count and an empty required input; DynamicQuantizeLinear of a constant and of a 1-D input;
 * MatMulInteger with a zero point of several values for its input, or one for its weight that is not a
 * constant; ArgMax along an axis outside the input. */
static void test_quant_refusals(void) {
  int64_t xin[2] = {-1, 4}, x1[1] = {-1}, d0[1] = {1}, d2[1] = {2}, b3[3] = {4, 3, 1}, bd[2] = {4, 3}, wd[4] = {2, 1, 2, 2};
  const int32_t z12[12] = {0}, z8[8] = {0};
  Onnx__TensorProto *sc[6] = {float_values("xs", 1, d0, (const float[]){0.1f}), int8_tensor("xz", 1, d0, FALSE, (const int32_t[]){128}),
                              float_values("ws", 1, d0, (const float[]){0.5f}), int8_tensor("wz", 1, d0, TRUE, (const int32_t[]){0}),
                              float_values("ys", 1, d0, (const float[]){0.2f}), int8_tensor("yz", 1, d0, FALSE, (const int32_t[]){128})};
  const struct {
    const char *file, *op, *needle;
    int nin, in_nd;
    const char *in[9];
    Onnx__TensorProto *w;
  } cases[] = {
      {"ql-rank.onnx", "QLinearMatMul", "node 'n' (QLinearMatMul): a weight of 3 dimensions (2: B [K, N])", 8, 2,
       {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, int8_tensor("w", 3, b3, TRUE, z12)},
      {"ql-bias.onnx", "QLinearConv", "node 'n' (QLinearConv): its bias must be a constant of 2 values (one an output channel)", 9, 4,
       {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "xs"}, int8_tensor("w", 4, wd, TRUE, z8)},
      {"ql-empty.onnx", "QLinearMatMul", "node 'n' (QLinearMatMul): input 1 is empty", 8, 2, {"x", "", "xz", "w", "ws", "wz", "ys", "yz"},
       int8_tensor("w", 2, bd, TRUE, z12)},
      {"dql-const.onnx", "DynamicQuantizeLinear", "node 'n' (DynamicQuantizeLinear): its input 'xs' is a constant", 1, 2, {"xs"}, NULL},
      {"dql-1d.onnx", "DynamicQuantizeLinear", "node 'n' (DynamicQuantizeLinear): a 1-D input has no values a sample besides the batch", 1, 1,
       {"x"}, NULL},
      {"mmi-az.onnx", "MatMulInteger", "node 'n' (MatMulInteger): a constant zero point for the input must be one value", 3, 2, {"x", "w", "azz"},
       int8_tensor("w", 2, bd, FALSE, z12)},
      {"mmi-bz.onnx", "MatMulInteger", "node 'n' (MatMulInteger): the weight's zero point must be a constant", 4, 2, {"x", "w", "xz", "x"},
       int8_tensor("w", 2, bd, FALSE, z12)},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    Onnx__TensorProto *inits[8];
    int ni = 0;
    for (int k = 0; k < 6; k++) inits[ni++] = sc[k];
    if (cases[i].w) inits[ni++] = cases[i].w;
    inits[ni++] = int8_tensor("azz", 1, d2, FALSE, (const int32_t[]){1, 2});
    Onnx__NodeProto *nn[1] = {node(cases[i].op, "n", cases[i].nin, cases[i].in, "y", 0, NULL)};
    int64_t xc[4] = {-1, 1, 3, 3};
    Onnx__ValueInfoProto *in = cases[i].in_nd == 4 ? value("x", 4, xc) : cases[i].in_nd == 1 ? value("x", 1, x1) : value("x", 2, xin);
    g_autofree char *path = write_model(cases[i].file, graph(1, nn, ni, inits, in, "y"), TRUE);
    expect_error(path, cases[i].needle);
  }
  Onnx__AttributeProto *a3[1] = {attr_int("axis", 2)};
  Onnx__NodeProto *na[1] = {node("ArgMax", "am", 1, (const char *[]){"x"}, "y", 1, a3)};
  g_autofree char *pa = write_model("argmax-axis.onnx", graph(1, na, 0, NULL, value("x", 2, xin), "y"), TRUE);
  expect_error(pa, "node 'am' (ArgMax): axis 2 outside the 2 dimensions");
}

/* Shape with end (opset 15): Shape(x, end = 1) is the batch alone, which Concat and Reshape take as
 * x.view(x.size(0), -1). */
static void test_shape_slice(void) {
  int64_t x3[3] = {-1, 2, 6}, d1[1] = {1}, od[2] = {-1, 12};
  Onnx__TensorProto *inits[1] = {int64_tensor("minus1", 1, d1, (int64_t[]){-1})};
  Onnx__AttributeProto *end1[1] = {attr_int("end", 1)}, *cat[1] = {attr_int("axis", 0)};
  const char *s_in[1] = {"x"}, *c_in[2] = {"b", "minus1"}, *r_in[2] = {"x", "shp"};
  Onnx__NodeProto *nodes[3] = {node("Shape", "sh", 1, s_in, "b", 1, end1), node("Concat", "ca", 2, c_in, "shp", 1, cat),
                               node("Reshape", "re", 2, r_in, "y", 0, NULL)};
  Onnx__GraphProto *gr = graph(3, nodes, 1, inits, value("x", 3, x3), "y");
  gr->output[0] = value("y", 2, od);
  g_autofree char *path = write_model("shape-end.onnx", gr, TRUE);
  g_autoptr(PqModel) m = load_ok(path);
  g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(m)), ==, 1);
  g_autoptr(PqPlan) plan = pq_plan_new(m, 3, NULL);
  int nd;
  const int64_t *os = pq_plan_value_shape(plan, pq_plan_value_index(plan, "y"), &nd);
  g_assert_cmpint(nd, ==, 2);
  g_assert_cmpint(os[0], ==, 3);
  g_assert_cmpint(os[1], ==, 12);
}

static char *write_nested(int depth) {
  gsize cap = (gsize)depth * 16 + 64, pos = cap;
  g_autofree guint8 *buf = g_malloc(cap);
  const int fields[3] = {6, 5, 1}; /* AttributeProto.g, NodeProto.attribute, GraphProto.node */
  for (int d = 0; d < depth; d++)
    for (int f = 0; f < 3; f++) {
      guint64 len = cap - pos;
      guint8 v[10];
      int n = 0;
      do {
        v[n++] = (guint8)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
        len >>= 7;
      } while (len);
      pos -= (gsize)n;
      memcpy(buf + pos, v, (size_t)n);
      buf[--pos] = (guint8)(fields[f] << 3 | 2);
    }
  /* the outermost graph is ModelProto.graph (7); ir_version first */
  guint64 len = cap - pos;
  GByteArray *out = g_byte_array_new();
  guint8 head[2] = {0x08, 0x08}; /* ir_version = 8 */
  g_byte_array_append(out, head, 2);
  guint8 tag = 7 << 3 | 2, v[10];
  int n = 0;
  do {
    v[n++] = (guint8)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
    len >>= 7;
  } while (len);
  g_byte_array_append(out, &tag, 1);
  g_byte_array_append(out, v, (guint)n);
  g_byte_array_append(out, buf + pos, (guint)(cap - pos));
  char *p = pq_test_write(tmpdir, "nested.onnx", out->data, out->len);
  g_byte_array_unref(out);
  return p;
}

static void test_bad(void) {
  g_autofree char *empty = pq_test_write(tmpdir, "empty.onnx", "", 0);
  expect_error(empty, "field ir_version is missing");
  guint8 junk[256];
  GRand *r = g_rand_new_with_seed(7);
  for (int i = 0; i < 256; i++) junk[i] = (guint8)g_rand_int_range(r, 0, 256);
  g_rand_free(r);
  g_autofree char *random = pq_test_write(tmpdir, "random.onnx", junk, sizeof junk);
  expect_error(random, "random.onnx");
  g_autofree char *cnn = write_cnn(), *bytes = NULL;
  gsize len;
  g_file_get_contents(cnn, &bytes, &len, NULL);
  g_autofree char *trunc = pq_test_write(tmpdir, "truncated.onnx", bytes, len / 2);
  expect_error(trunc, "not an ONNX model");
  expect_error(tmpdir, "is a folder");
  expect_error("/dev/zero.onnx", "cannot open");
  int64_t xin[2] = {-1, 4}, wd[2] = {10, 4}, neg[2] = {-3, 4};
  /* undefined input, a cycle */
  {
    const char *in[1] = {"nope"};
    Onnx__NodeProto *nodes[1] = {node("Relu", "r", 1, in, "probs", 0, NULL)};
    g_autofree char *p = write_model("undefined.onnx", graph(1, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p, "node 'r' (relu): input 'nope' is not defined");
  }
  {
    const char *a[2] = {"x", "b"}, *bb[1] = {"a"};
    Onnx__NodeProto *nodes[2] = {node("Add", "n1", 2, a, "a", 0, NULL), node("Relu", "n2", 1, bb, "b", 0, NULL)};
    g_autofree char *p = write_model("cycle.onnx", graph(2, nodes, 0, NULL, value("x", 2, xin), "b"), TRUE);
    expect_error(p, "part of a cycle");
  }
  /* an attribute without a name (found by fuzz-onnx: the loader compared the missing name) */
  {
    const char *in[1] = {"x"};
    Onnx__AttributeProto *a[1] = {attr_int("alpha", 2)};
    g_clear_pointer(&a[0]->name, g_free);
    Onnx__NodeProto *nodes[1] = {node("LeakyRelu", "lr", 1, in, "probs", 1, a)};
    g_autofree char *p = write_model("nameless-attr.onnx", graph(1, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p, "node 0 ('lr', LeakyRelu): attribute 0 has no name");
  }
  /* negative dimensions, raw_data of the wrong length, external data (read, and refused when wrong) */
  {
    const char *in[2] = {"x", "w"};
    Onnx__TensorProto *w = tensor("w", 2, wd, 1, 1);
    w->dims[0] = neg[0];
    Onnx__TensorProto *inits[1] = {w};
    Onnx__NodeProto *nodes[1] = {node("MatMul", "mm", 2, in, "probs", 0, NULL)};
    g_autofree char *p = write_model("negative.onnx", graph(1, nodes, 1, inits, value("x", 2, xin), "probs"), TRUE);
    expect_error(p, "tensor 'w': dimension 0 is negative");
    w->dims[0] = 10;
    w->n_float_data = 0;
    w->has_raw_data = 1;
    w->raw_data.len = 12;
    w->raw_data.data = g_malloc0(12);
    g_autofree char *p2 = write_model("rawdata.onnx", graph(1, nodes, 1, inits, value("x", 2, xin), "probs"), TRUE);
    expect_error(p2, "tensor 'w': raw_data holds 12 bytes, its shape and type need 160");
    w->has_raw_data = 0;
    w->n_float_data = 40;
    /* external data: the weights in a file beside the model, at an offset after other bytes */
    float *values = w->float_data;
    g_autofree guint8 *file = g_malloc0(4096 + 160 + 7);
    memset(file, 0xab, 4096);
    memcpy(file + 4096, values, 160);
    g_free(pq_test_write(tmpdir, "w.bin", file, 4096 + 160 + 7));
    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT, off = ONNX__STRING_STRING_ENTRY_PROTO__INIT,
                                 len = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    Onnx__StringStringEntryProto *entries[3] = {&loc, &off, &len};
    loc.key = "location", loc.value = "w.bin", off.key = "offset", off.value = "4096", len.key = "length", len.value = "160";
    w->n_float_data = 0;
    w->dims[0] = 4, w->dims[1] = 10; /* x [-1, 4] · w [4, 10]: a model that loads */
    w->has_data_location = 1;
    w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    w->external_data = entries;
    w->n_external_data = 3;
    g_autofree char *p3 = write_model("external.onnx", graph(1, nodes, 1, inits, value("x", 2, xin), "probs"), TRUE);
    {
      g_autoptr(GError) err = NULL;
      g_autoptr(PqModel) m = pq_model_load(p3, &err);
      g_assert_no_error(err);
      /* a MatMul by a constant loads as a linear layer, its weight the constant transposed */
      const PqNode *mm = pq_graph_node(pq_model_const_graph(m), 0);
      g_assert_cmpstr(pq_node_op(mm), ==, "linear");
      PqTensor *t = pq_model_tensor(m, pq_node_input(mm, 1));
      g_assert_nonnull(t);
      g_assert_cmpint(pq_tensor_shape(t)[0], ==, 10);
      const float *td = pq_tensor_data(t);
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 10; j++) g_assert_cmpfloat(td[j * 4 + i], ==, values[i * 10 + j]);
    }
    /* and each way it can be wrong, named */
    const struct {
      const char *loc, *off, *len, *needle;
    } bad[] = {
        {"", "4096", "160", "tensor 'w': external data without a \"location\""},
        {"/etc/passwd", "0", "160", "external data location '/etc/passwd' must be relative to the model's folder"},
        {"../w.bin", "4096", "160", "external data location '../w.bin' leaves the model's folder"},
        {"missing.bin", "0", "160", "cannot open its external data"},
        {"w.bin", "4200", "160", "external data offset 4200 + length 160 lies beyond the end of"},
        {"w.bin", "9000", "160", "external data offset 9000 lies beyond the end of"},
        {"w.bin", "4096", "156", "tensor 'w': the external data holds 156 bytes, its shape and type need 160"},
        {"w.bin", "4096", NULL, "tensor 'w': the external data holds 167 bytes, its shape and type need 160"},
        {"w.bin", "-1", "160", "external data offset '-1' is not a byte count"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
      loc.value = (char *)bad[i].loc;
      off.value = (char *)bad[i].off;
      len.value = (char *)bad[i].len;
      w->n_external_data = bad[i].len ? 3 : 2;
      g_autofree char *pb = write_model("external-bad.onnx", graph(1, nodes, 1, inits, value("x", 2, xin), "probs"), TRUE);
      expect_error(pb, bad[i].needle);
    }
    w->external_data = NULL;
    w->n_external_data = 0;
  }
  /* a node without an op type, an output without a name, too few inputs (found by fuzzing: these crashed) */
  {
    const char *in[1] = {"x"};
    Onnx__NodeProto *nodes[1] = {node("Relu", "r", 1, in, "probs", 0, NULL)};
    g_free(nodes[0]->op_type);
    nodes[0]->op_type = NULL;
    g_autofree char *p = write_model("no-op-type.onnx", graph(1, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p, "node 0 ('r'): op_type is missing");
    Onnx__NodeProto *ok[1] = {node("Relu", "r", 1, in, "probs", 0, NULL)};
    Onnx__GraphProto *gp = graph(1, ok, 0, NULL, value("x", 2, xin), "probs");
    g_free(gp->output[0]->name);
    gp->output[0]->name = NULL;
    g_autofree char *p2 = write_model("no-output-name.onnx", gp, TRUE);
    expect_error(p2, "graph output 0 has no name");
    /* an op short of the inputs it reads by position */
    Onnx__NodeProto *bn[1] = {node("BatchNormalization", "bn", 1, in, "probs", 0, NULL)};
    g_autofree char *p3 = write_model("bn-one-input.onnx", graph(1, bn, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p3, "node 'bn' (BatchNormalization): 1 inputs, it needs 5");
    Onnx__NodeProto *add[1] = {node("Add", "a", 1, in, "probs", 0, NULL)};
    g_autofree char *p4 = write_model("add-one-input.onnx", graph(1, add, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p4, "node 'a' (Add): 1 inputs, it needs 2");
  }
  /* Unsqueeze then Squeeze: reshapes that keep the batch; an axis on the batch is refused */
  {
    int64_t ax[1] = {2}, ax0[1] = {0};
    const char *i1[1] = {"x"}, *i2[1] = {"u"}, *i3[1] = {"s"};
    Onnx__AttributeProto *au[1] = {attr_ints("axes", 1, ax)}, *as[1] = {attr_ints("axes", 1, ax)};
    Onnx__NodeProto *nodes[3] = {node("Unsqueeze", "un", 1, i1, "u", 1, au), node("Squeeze", "sq", 1, i2, "s", 1, as),
                                 node("Relu", "r", 1, i3, "probs", 0, NULL)};
    g_autofree char *p = write_model("squeeze.onnx", graph(3, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    g_autoptr(GError) e = NULL;
    g_autoptr(PqModel) m = pq_model_load(p, &e);
    g_assert_no_error(e);
    g_assert_cmpstr(pq_node_op(pq_graph_node(pq_model_const_graph(m), 0)), ==, "reshape");
    g_autoptr(PqPlan) plan = pq_plan_new(m, 3, NULL);
    int nd;
    const int64_t *us = pq_plan_value_shape(plan, pq_plan_value_index(plan, "u"), &nd);
    g_assert_cmpint(nd, ==, 3);
    g_assert_cmpint(us[0], ==, 3);
    g_assert_cmpint(us[1], ==, 4);
    g_assert_cmpint(us[2], ==, 1);
    Onnx__AttributeProto *a0[1] = {attr_ints("axes", 1, ax0)};
    Onnx__NodeProto *bad[1] = {node("Unsqueeze", "un0", 1, i1, "probs", 1, a0)};
    g_autofree char *p2 = write_model("unsqueeze0.onnx", graph(1, bad, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p2, "node 'un0' (Unsqueeze): axis 0 is the batch, which pquant keeps first");
  }
  /* PyTorch's x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat, Reshape, folded at load into one reshape
   * that keeps the batch; the batch moved out of place is refused */
  {
    int64_t x3[3] = {-1, 2, 6}, d1[1] = {1};
    Onnx__TensorProto *idx = int64_tensor("idx", 0, NULL, (int64_t[]){0}), *minus = int64_tensor("minus1", 1, d1, (int64_t[]){-1}),
                      *axes = int64_tensor("axes0", 1, d1, (int64_t[]){0});
    const char *s_in[1] = {"x"}, *g_in[2] = {"shape", "idx"}, *u_in[2] = {"b", "axes0"}, *c_in[2] = {"b1", "minus1"}, *r_in[2] = {"x", "shp"},
               *c_bad[2] = {"minus1", "b1"};
    Onnx__AttributeProto *cat[1] = {attr_int("axis", 0)}, *cat2[1] = {attr_int("axis", 0)};
    Onnx__TensorProto *inits[3] = {idx, minus, axes};
    Onnx__NodeProto *nodes[5] = {node("Shape", "sh", 1, s_in, "shape", 0, NULL), node("Gather", "ga", 2, g_in, "b", 0, NULL),
                                 node("Unsqueeze", "un", 2, u_in, "b1", 0, NULL), node("Concat", "ca", 2, c_in, "shp", 1, cat),
                                 node("Reshape", "re", 2, r_in, "probs", 0, NULL)};
    g_autofree char *p = write_model("view.onnx", graph(5, nodes, 3, inits, value("x", 3, x3), "probs"), TRUE);
    g_autoptr(GError) e = NULL;
    g_autoptr(PqModel) m = pq_model_load(p, &e);
    g_assert_no_error(e);
    g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(m)), ==, 1);
    g_autoptr(PqPlan) plan = pq_plan_new(m, 5, NULL);
    int nd;
    const int64_t *os = pq_plan_value_shape(plan, pq_plan_value_index(plan, "probs"), &nd);
    g_assert_cmpint(nd, ==, 2);
    g_assert_cmpint(os[0], ==, 5);
    g_assert_cmpint(os[1], ==, 12);
    g_assert_cmpuint(pq_model_n_tensors(m), ==, 0); /* the folded shapes are gone */
    nodes[3] = node("Concat", "ca", 2, c_bad, "shp", 1, cat2);
    g_autofree char *p2 = write_model("view-bad.onnx", graph(5, nodes, 3, inits, value("x", 3, x3), "probs"), TRUE);
    expect_error(p2, "node 're' (Reshape): the batch would move to dimension 1");
  }
  /* Transpose of a weight (PyTorch's Linear without bias) is folded into the weight at load */
  {
    int64_t wd10[2] = {10, 4};
    Onnx__TensorProto *w = tensor("wT", 2, wd10, 7, 1);
    const char *t_in[1] = {"wT"}, *m_in[2] = {"x", "w"};
    Onnx__TensorProto *inits[1] = {w};
    Onnx__NodeProto *nodes[2] = {node("Transpose", "tr", 1, t_in, "w", 0, NULL), node("MatMul", "mm", 2, m_in, "probs", 0, NULL)};
    g_autofree char *p = write_model("transpose.onnx", graph(2, nodes, 1, inits, value("x", 2, xin), "probs"), TRUE);
    g_autoptr(GError) e = NULL;
    g_autoptr(PqModel) m = pq_model_load(p, &e);
    g_assert_no_error(e);
    /* x · wTᵀ: the MatMul by a constant is a linear layer whose weight [10, 4] is wT's values again */
    const PqNode *mm = pq_graph_node(pq_model_const_graph(m), 0);
    g_assert_cmpuint(pq_graph_n_nodes(pq_model_const_graph(m)), ==, 1);
    g_assert_cmpstr(pq_node_op(mm), ==, "linear");
    PqTensor *t = pq_model_tensor(m, pq_node_input(mm, 1));
    g_assert_nonnull(t);
    g_assert_cmpint(pq_tensor_shape(t)[0], ==, 10);
    g_assert_cmpint(pq_tensor_shape(t)[1], ==, 4);
    g_assert_cmpmem(pq_tensor_data(t), 160, w->float_data, 160);
    g_assert_null(pq_model_tensor(m, "w")); /* the folded transpose, no longer read, is dropped */
  }
  /* ReduceMean over H and W (squeeze-and-excitation blocks): a global average pool, then [N, C] */
  {
    int64_t x4[4] = {-1, 2, 3, 4}, axes[2] = {2, 3};
    const char *ri[1] = {"x"};
    Onnx__AttributeProto *ra[2] = {attr_ints("axes", 2, axes), attr_int("keepdims", 0)};
    Onnx__NodeProto *nodes[1] = {node("ReduceMean", "rm", 1, ri, "probs", 2, ra)};
    g_autofree char *p = write_model("reducemean.onnx", graph(1, nodes, 0, NULL, value("x", 4, x4), "probs"), TRUE);
    g_autoptr(GError) e = NULL;
    g_autoptr(PqModel) m = pq_model_load(p, &e);
    g_assert_no_error(e);
    g_autoptr(PqRegistry) reg = pq_registry_new();
    g_autoptr(PqBackend) b = pq_backend_prepare(pq_test_cpu_backend(reg), m, 1, 2, NULL, &e);
    g_assert_no_error(e);
    g_assert_cmpint(pq_backend_output_numel(b), ==, 2);
    float x[48], y[4];
    for (int i = 0; i < 48; i++) x[i] = (float)(i % 7) - 2.5f;
    g_assert_true(pq_backend_run_f32(b, x, 2, y, &e));
    for (int k = 0; k < 4; k++) {
      double mean = 0;
      for (int i = 0; i < 12; i++) mean += x[k * 12 + i];
      g_assert_cmpfloat(fabs(y[k] - mean / 12), <, 1e-5);
    }
    int64_t bad_axes[1] = {0};
    Onnx__AttributeProto *rb[1] = {attr_ints("axes", 1, bad_axes)};
    Onnx__NodeProto *bad[1] = {node("ReduceMean", "rm1", 1, ri, "probs", 1, rb)};
    g_autofree char *p2 = write_model("reducemean1.onnx", graph(1, bad, 0, NULL, value("x", 4, x4), "probs"), TRUE);
    expect_error(p2, "node 'rm1' (ReduceMean): axis 0 is the batch, which pquant keeps");
    Onnx__NodeProto *all[1] = {node("ReduceSum", "rs", 1, ri, "probs", 0, NULL)};
    g_autofree char *p3 = write_model("reducesum.onnx", graph(1, all, 0, NULL, value("x", 4, x4), "probs"), TRUE);
    expect_error(p3, "node 'rs' (ReduceSum): with no axes it reduces every dimension, the batch too");
  }
  /* Concat of activations along a feature axis: a concat node; along the batch: refused */
  {
    const char *ri[1] = {"x"}, *ci[2] = {"x", "r"};
    Onnx__AttributeProto *ca[1] = {attr_int("axis", -1)}, *cb[1] = {attr_int("axis", 0)};
    Onnx__NodeProto *nodes[2] = {node("Relu", "r", 1, ri, "r", 0, NULL), node("Concat", "cat", 2, ci, "probs", 1, ca)};
    g_autofree char *p = write_model("concat.onnx", graph(2, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    g_autoptr(GError) e = NULL;
    g_autoptr(PqModel) m = pq_model_load(p, &e);
    g_assert_no_error(e);
    g_autoptr(PqPlan) plan = pq_plan_new(m, 2, NULL);
    int nd;
    const int64_t *os = pq_plan_value_shape(plan, pq_plan_value_index(plan, "probs"), &nd);
    g_assert_cmpint(os[1], ==, 8);
    nodes[1] = node("Concat", "cat0", 2, ci, "probs", 1, cb);
    g_autofree char *p2 = write_model("concat0.onnx", graph(2, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p2, "node 'cat0' (Concat): along the batch");
  }
  /* refusals of the shape ops, each naming the node: a Squeeze of a dimension that is not 1, a Gather past
   * the shape, a Pad that reflects, a Transpose of an activation that moves the batch */
  {
    int64_t ax1[1] = {1}, d1[1] = {1}, p8[8] = {0, 0, 1, 1, 0, 0, 1, 1}, perm2[2] = {1, 0};
    int64_t x4[4] = {-1, 2, 3, 4};
    const char *i1[1] = {"x"}, *gi[2] = {"shape", "idx9"};
    Onnx__AttributeProto *sq[1] = {attr_ints("axes", 1, ax1)}, *tp[1] = {attr_ints("perm", 2, perm2)};
    Onnx__NodeProto *n1[1] = {node("Squeeze", "sq", 1, i1, "probs", 1, sq)};
    g_autofree char *p1 = write_model("squeeze-bad.onnx", graph(1, n1, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p1, "node 'sq' (Squeeze): dimension 1 is 4, not 1");
    Onnx__TensorProto *idx = int64_tensor("idx9", 1, d1, (int64_t[]){9});
    Onnx__TensorProto *gin[1] = {idx};
    Onnx__NodeProto *n2[2] = {node("Shape", "sh", 1, i1, "shape", 0, NULL), node("Gather", "ga", 2, gi, "probs", 0, NULL)};
    g_autofree char *p2 = write_model("gather-bad.onnx", graph(2, n2, 1, gin, value("x", 2, xin), "probs"), TRUE);
    expect_error(p2, "node 'ga' (Gather): index 9 outside 2 values");
    Onnx__AttributeProto *pa[2] = {attr_ints("pads", 8, p8), attr_string("mode", "reflect")};
    Onnx__NodeProto *n3[1] = {node("Pad", "pad", 1, i1, "probs", 2, pa)};
    g_autofree char *p3 = write_model("pad-reflect.onnx", graph(1, n3, 0, NULL, value("x", 4, x4), "probs"), TRUE);
    expect_error(p3, "node 'pad' (Pad): mode 'reflect' is not supported (constant only)");
    /* a Pad whose constant value is an activation, not a scalar constant */
    int64_t p8b[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    Onnx__TensorProto *pads_t[1] = {int64_tensor("pads8", 1, (int64_t[]){8}, p8b)};
    const char *pv_in[3] = {"x", "pads8", "x"};
    Onnx__NodeProto *n5[1] = {node("Pad", "padv", 3, pv_in, "probs", 0, NULL)};
    g_autofree char *p5 = write_model("pad-value.onnx", graph(1, n5, 1, pads_t, value("x", 4, x4), "probs"), TRUE);
    expect_error(p5, "node 'padv' (Pad): constant_value must be a scalar constant");
    /* a Slice whose ends list fewer values than its starts */
    Onnx__AttributeProto *sa[2] = {attr_ints("starts", 2, (int64_t[]){0, 0}), attr_ints("ends", 1, (int64_t[]){1})};
    Onnx__NodeProto *n6[1] = {node("Slice", "sl", 1, i1, "probs", 2, sa)};
    g_autofree char *p6 = write_model("slice-lengths.onnx", graph(1, n6, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p6, "node 'sl' (Slice): starts, ends, axes and steps must list as many values (2 starts)");
    Onnx__NodeProto *n4[1] = {node("Transpose", "tr", 1, i1, "probs", 1, tp)};
    g_autofree char *p4 = write_model("transpose-batch.onnx", graph(1, n4, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p4, "node 'tr' (Transpose): it moves the batch (perm[0] = 1)");
  }
  /* an unsupported op names itself and the node */
  {
    const char *in[1] = {"x"};
    Onnx__NodeProto *nodes[1] = {node("Hardmax", "hm", 1, in, "probs", 0, NULL)};
    g_autofree char *p = write_model("hardmax.onnx", graph(1, nodes, 0, NULL, value("x", 2, xin), "probs"), TRUE);
    expect_error(p, "node 'hm': op 'Hardmax' is not supported");
  }
  /* 100 000 nested subgraphs: refused, the process intact */
  g_autofree char *nested = write_nested(100000);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_model_load(nested, &err);
  g_assert_null(m);
  g_assert_nonnull(err);
  g_test_message("nested: %s", err->message);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = pq_test_mkdtemp();
  g_test_add_func("/onnx/cnn", test_cnn);
  g_test_add_func("/onnx/qdq", test_qdq);
  g_test_add_func("/onnx/qlinear", test_qlinear);
  g_test_add_func("/onnx/dynamic-quantize", test_dynamic_quantize);
  g_test_add_func("/onnx/argmax", test_argmax);
  g_test_add_func("/onnx/quant-refusals", test_quant_refusals);
  g_test_add_func("/onnx/conv1d", test_conv1d);
  g_test_add_func("/onnx/gather-activation", test_gather_activation);
  g_test_add_func("/onnx/constant-first", test_constant_first);
  g_test_add_func("/onnx/gather-many", test_gather_many);
  g_test_add_func("/onnx/expand-tile", test_expand_tile);
  g_test_add_func("/onnx/class-token", test_class_token);
  g_test_add_func("/onnx/cast", test_cast);
  g_test_add_func("/onnx/shape-end", test_shape_slice);
  g_test_add_func("/onnx/attention-pipeline", test_attention_pipeline);
  g_test_add_func("/onnx/bad-files", test_bad);
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
