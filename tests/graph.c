/* graph.c — the graph IR: JSON round trip, validation errors and shape inference of every op. */
#include "testutil.h"

#include <string.h>

static PqModel *model_with(const char *json, int n_tensors, const char *const *names, const int64_t (*shapes)[4],
                           const int *ndims) {
  PqModel *m = pq_model_new();
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_graph_from_json(pq_model_graph(m), json, &err));
  g_assert_no_error(err);
  for (int i = 0; i < n_tensors; i++) {
    PqTensor *t = pq_tensor_new(names[i], PQ_DTYPE_F32, ndims[i], shapes[i]);
    pq_model_set_tensor(m, t);
    pq_tensor_unref(t);
  }
  return m;
}

static void expect_invalid(PqModel *m, const char *needle) {
  g_autoptr(GError) err = NULL;
  g_assert_false(pq_model_validate(m, &err));
  g_assert_error(err, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID);
  if (!strstr(err->message, needle)) g_error("'%s' lacks '%s'", err->message, needle);
}

static void test_roundtrip(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(4, 3, 2, 1);
  PqNode *n = pq_graph_node(pq_model_graph(m), 0);
  int64_t v[3] = {1, -2, 3};
  pq_node_set_ints(n, "list", 3, v);
  pq_node_set_float(n, "eps", 0.25);
  pq_node_set_string(n, "note", "x");
  g_autofree char *json = pq_graph_to_json(pq_model_graph(m));
  g_autoptr(PqModel) m2 = pq_model_new();
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_graph_from_json(pq_model_graph(m2), json, &err));
  g_autofree char *json2 = pq_graph_to_json(pq_model_graph(m2));
  g_assert_cmpstr(json, ==, json2);
  const PqNode *n2 = pq_graph_node(pq_model_graph(m2), 0);
  size_t cnt;
  const int64_t *got = pq_node_get_ints(n2, "list", &cnt);
  g_assert_cmpuint(cnt, ==, 3);
  g_assert_cmpint(got[1], ==, -2);
  g_assert_cmpfloat(pq_node_get_float(n2, "eps", 0), ==, 0.25);
  g_assert_cmpstr(pq_node_get_string(n2, "note", NULL), ==, "x");
}

static void test_errors(void) {
  const char *names[2] = {"w", "b"};
  const int64_t shapes[2][4] = {{3, 4}, {3}};
  const int nd[2] = {2, 1};
  struct {
    const char *json, *needle;
  } cases[] = {
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,4]}],\"outputs\":[\"y\"],\"nodes\":[{\"op\":\"linear\",\"name\":\"fc\",\"inputs\":[\"x\",\"missing\",\"b\"],\"outputs\":[\"y\"]}]}",
       "node 'fc' (linear): input 'missing' is not defined"},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,3]}],\"outputs\":[\"b2\"],\"nodes\":["
       "{\"op\":\"add\",\"name\":\"a1\",\"inputs\":[\"x\",\"b2\"],\"outputs\":[\"a\"]},"
       "{\"op\":\"relu\",\"name\":\"r1\",\"inputs\":[\"a\"],\"outputs\":[\"b2\"]}]}",
       "is part of a cycle"},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,5]}],\"outputs\":[\"y\"],\"nodes\":[{\"op\":\"linear\",\"name\":\"fc\",\"inputs\":[\"x\",\"w\",\"b\"],\"outputs\":[\"y\"]}]}",
       "input [1, 5] does not match weight [3, 4]"},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,4]}],\"outputs\":[\"y\"],\"nodes\":[{\"op\":\"frobnicate\",\"name\":\"f\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
       "unknown op \"frobnicate\""},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,4]}],\"outputs\":[\"z\"],\"nodes\":[{\"op\":\"relu\",\"name\":\"r\",\"inputs\":[\"x\"],\"outputs\":[\"y\"]}]}",
       "graph output 'z' is not produced"},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,4]}],\"outputs\":[\"y\"],\"nodes\":[{\"op\":\"relu\",\"name\":\"r\",\"inputs\":[\"x\"],\"outputs\":[\"w\"]}]}",
       "output 'w' is empty or already defined"},
      {"{\"version\":1,\"inputs\":[],\"outputs\":[],\"nodes\":[]}", "graph is empty"},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,2,3]}],\"outputs\":[\"y\"],\"nodes\":[{\"op\":\"reshape\",\"name\":\"r\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],\"attrs\":{\"shape\":[0,4]}}]}",
       "asks for 4"},
      {"{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,3,4]}],\"outputs\":[\"y\"],\"nodes\":[{\"op\":\"add\",\"name\":\"a\",\"inputs\":[\"x\",\"w\"],\"outputs\":[\"y\"]}]}",
       "add: shapes [1, 3, 4] and [3, 4] do not broadcast"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(PqModel) m = model_with(cases[i].json, 2, names, shapes, nd);
    if (i == 8) { /* make w [4, 3] so the trailing dims clash */
      int64_t s[2] = {4, 3};
      PqTensor *t = pq_tensor_new("w", PQ_DTYPE_F32, 2, s);
      pq_model_set_tensor(m, t);
      pq_tensor_unref(t);
      cases[i].needle = "do not broadcast";
    }
    expect_invalid(m, cases[i].needle);
  }
  /* a static int8 input scale that is no usable float32 scale (zero, negative, below the normal range, beyond it) */
  const double bad_scales[] = {0, -0.5, 1e-40, 1e39};
  for (size_t i = 0; i < G_N_ELEMENTS(bad_scales); i++) {
    g_autoptr(PqModel) m = pq_test_tiny_mlp(4, 3, 2, 1);
    pq_node_set_float(pq_graph_node(pq_model_graph(m), 0), "act_scale", bad_scales[i]);
    expect_invalid(m, "linear: act_scale");
  }
}

static void test_bad_json(void) {
  const char *bad[] = {"[]", "{\"version\":2,\"inputs\":[],\"outputs\":[],\"nodes\":[]}",
                       "{\"version\":1,\"inputs\":[{\"name\":\"x\",\"shape\":[-1,-3]}],\"outputs\":[],\"nodes\":[]}",
                       "{\"version\":1,\"inputs\":[],\"outputs\":[1],\"nodes\":[]}",
                       "{\"version\":1,\"inputs\":[],\"outputs\":[],\"nodes\":[{\"name\":\"no-op\"}]}",
                       "{\"version\":1,\"inputs\":[],\"outputs\":[],\"nodes\":[{\"op\":\"relu\",\"inputs\":[],\"outputs\":[],\"attrs\":{\"k\":[1.5]}}]}"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(PqModel) m = pq_model_new();
    g_autoptr(GError) err = NULL;
    g_assert_false(pq_graph_from_json(pq_model_graph(m), bad[i], &err));
    g_assert_error(err, PQ_GRAPH_ERROR, PQ_GRAPH_ERROR_INVALID);
  }
}

/* Builds a one-node graph over x (and optional weights) and returns the output shape at batch 2. */
static void infer(const char *op, int xnd, const int64_t *xs, int n_w, const int64_t (*ws)[4], const int *wnd,
                  void (*attrs)(PqNode *), int expect_nd, const int64_t *expect) {
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  pq_graph_add_input(g, "x", xnd, xs);
  const char *ins[5] = {"x", "w0", "w1", "w2", "w3"}, *outs[1] = {"y"};
  for (int i = 0; i < n_w; i++) {
    PqTensor *t = pq_tensor_new(ins[i + 1], PQ_DTYPE_F32, wnd[i], ws[i]);
    pq_model_set_tensor(m, t);
    pq_tensor_unref(t);
  }
  PqNode *n = pq_graph_add_node(g, op, "n", (size_t)(1 + n_w), ins, 1, outs);
  if (attrs) attrs(n);
  pq_graph_add_output(g, "y");
  g_autoptr(GError) err = NULL;
  g_autoptr(PqPlan) plan = pq_model_plan(m, 2, &err);
  g_assert_no_error(err);
  int nd;
  const int64_t *s = pq_plan_value_shape(plan, pq_plan_value_index(plan, "y"), &nd);
  g_assert_cmpint(nd, ==, expect_nd);
  g_assert_cmpmem(s, sizeof(int64_t) * (size_t)nd, expect, sizeof(int64_t) * (size_t)expect_nd);
}

static void conv_attrs(PqNode *n) {
  int64_t st[2] = {2, 1}, pads[4] = {1, 0, 1, 0}, dil[2] = {1, 2};
  pq_node_set_ints(n, "strides", 2, st);
  pq_node_set_ints(n, "pads", 4, pads);
  pq_node_set_ints(n, "dilations", 2, dil);
  pq_node_set_int(n, "groups", 2);
}
static void pool_attrs(PqNode *n) {
  int64_t k[2] = {3, 3}, st[2] = {2, 2};
  pq_node_set_ints(n, "kernel", 2, k);
  pq_node_set_ints(n, "strides", 2, st);
  pq_node_set_int(n, "ceil_mode", 1);
}
static void reshape_attrs(PqNode *n) {
  int64_t s[3] = {0, -1, 2};
  pq_node_set_ints(n, "shape", 3, s);
}
static void flatten_attrs(PqNode *n) { pq_node_set_int(n, "axis", 1); }

static void test_infer(void) {
  const int64_t x4[4] = {-1, 4, 9, 10};
  {
    const int64_t ws[2][4] = {{6, 2, 3, 3}, {6}};
    const int wnd[2] = {4, 1};
    /* H: (9+2-3)/2+1 = 5, W: (10-5)/1+1 = 6 */
    const int64_t e[4] = {2, 6, 5, 6};
    infer("conv2d", 4, x4, 2, ws, wnd, conv_attrs, 4, e);
  }
  {
    const int64_t e[4] = {2, 4, 4, 5}; /* ceil((9-3)/2)+1 = 4, ceil((10-3)/2)+1 = 5 */
    infer("maxpool2d", 4, x4, 0, NULL, NULL, pool_attrs, 4, e);
    infer("avgpool2d", 4, x4, 0, NULL, NULL, pool_attrs, 4, e);
  }
  {
    const int64_t e[4] = {2, 4, 1, 1};
    infer("global_avg_pool", 4, x4, 0, NULL, NULL, NULL, 4, e);
  }
  {
    const int64_t e[2] = {2, 360};
    infer("flatten", 4, x4, 0, NULL, NULL, flatten_attrs, 2, e);
  }
  {
    const int64_t e[3] = {2, 180, 2};
    infer("reshape", 4, x4, 0, NULL, NULL, reshape_attrs, 3, e);
  }
  {
    const int64_t ws[4][4] = {{4}, {4}, {4}, {4}};
    const int wnd[4] = {1, 1, 1, 1};
    const int64_t e[4] = {2, 4, 9, 10};
    infer("batch_norm", 4, x4, 4, ws, wnd, NULL, 4, e);
  }
  {
    const int64_t ws[1][4] = {{9, 1}};
    const int wnd[1] = {2};
    const int64_t e[4] = {2, 4, 9, 10};
    infer("add", 4, x4, 1, ws, wnd, NULL, 4, e);
  }
  {
    const int64_t x3[3] = {-1, 5, 7}, ws[1][4] = {{7, 3}};
    const int wnd[1] = {2};
    const int64_t e[3] = {2, 5, 3};
    infer("matmul", 3, x3, 1, ws, wnd, NULL, 3, e);
    const int64_t wl[2][4] = {{3, 7}, {3}};
    const int wlnd[2] = {2, 1};
    infer("linear", 3, x3, 2, wl, wlnd, NULL, 3, e);
    const int64_t es[3] = {2, 5, 7};
    infer("softmax", 3, x3, 0, NULL, NULL, NULL, 3, es);
    infer("relu", 3, x3, 0, NULL, NULL, NULL, 3, es);
  }
}

static void test_plan_order(void) {
  /* nodes listed out of order still run in dependency order */
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t s[2] = {-1, 3};
  pq_graph_add_input(g, "x", 2, s);
  const char *a_in[1] = {"h"}, *a_out[1] = {"y"}, *b_in[1] = {"x"}, *b_out[1] = {"h"};
  pq_graph_add_node(g, "relu", "second", 1, a_in, 1, a_out);
  pq_graph_add_node(g, "relu", "first", 1, b_in, 1, b_out);
  pq_graph_add_output(g, "y");
  g_autoptr(GError) err = NULL;
  g_autoptr(PqPlan) plan = pq_model_plan(m, 4, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(pq_node_name(pq_plan_step(plan, 0)), ==, "first");
  g_assert_cmpstr(pq_node_name(pq_plan_step(plan, 1)), ==, "second");
  int h = pq_plan_value_index(plan, "h");
  g_assert_cmpint(pq_plan_value_last_use(plan, h), ==, 1);
  g_assert_cmpint(pq_plan_value_last_use(plan, pq_plan_value_index(plan, "y")), ==, 2);
  g_assert_cmpint(pq_plan_value_numel(plan, h), ==, 12);
  /* inputs found by name */
  pq_graph_add_input(g, "mask", 2, s);
  g_assert_cmpint(pq_graph_input_index(g, "x"), ==, 0);
  g_assert_cmpint(pq_graph_input_index(g, "mask"), ==, 1);
  g_assert_cmpint(pq_graph_input_index(g, "h"), ==, -1); /* a value, not an input */
  g_assert_cmpint(pq_graph_input_index(g, NULL), ==, -1);
}

/* Who reads and who writes a value; a node removed. */
/* Where each layer op takes its bias, and the bias a node gives there ("" for none, an empty slot, or an op
 * without one). */
static void test_layer_bias(void) {
  g_autoptr(PqModel) m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  const struct {
    const char *op;
    size_t n;
    const char *in[6];
    int slot;
    const char *bias;
  } cases[] = {{"linear", 3, {"x", "w", "b"}, 2, "b"},
               {"linear", 2, {"x", "w"}, 2, ""},
               {"conv2d", 3, {"x", "w", ""}, 2, ""},
               {"conv_transpose2d", 3, {"x", "w", "b"}, 2, "b"},
               {"circulant_linear", 3, {"x", "blocks", "b"}, 2, "b"},
               {"sparse_linear", 5, {"x", "v", "c", "r", "b"}, 4, "b"},
               {"sparse_linear", 4, {"x", "v", "c", "r"}, 4, ""},
               {"tt_linear", 5, {"x", "g1", "g2", "g3", "b"}, 4, "b"},
               {"matmul", 2, {"x", "w"}, -1, ""},
               {"layer_norm", 3, {"x", "s", "b"}, -1, ""},
               {"relu", 1, {"x"}, -1, ""}};
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *name = g_strdup_printf("n%zu", i), *out = g_strdup_printf("o%zu", i);
    PqNode *n = pq_graph_add_node(g, cases[i].op, name, cases[i].n, cases[i].in, 1, (const char *[]){out});
    if (!strcmp(cases[i].op, "tt_linear")) pq_node_set_int(n, "cores", 3);
    g_assert_cmpint(pq_layer_bias_input(n), ==, cases[i].slot);
    g_assert_cmpstr(pq_layer_bias(n), ==, cases[i].bias);
  }
  PqNode *tt = pq_graph_add_node(g, "tt_linear", "nocores", 2, (const char *[]){"x", "g"}, 1, (const char *[]){"t"});
  g_assert_cmpint(pq_layer_bias_input(tt), ==, -1); /* without "cores" its layout is unknown */
  g_assert_cmpstr(pq_layer_bias(tt), ==, "");
}

static void test_readers(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(4, 3, 2, 1);
  PqGraph *g = pq_model_graph(m);
  pq_graph_add_node(g, "add", "twice", 2, (const char *[]){"h", "h"}, 1, (const char *[]){"hh"});
  PqNode *first = NULL;
  int out = -1;
  g_assert_cmpuint(pq_graph_value_readers(g, "h", &first, &out), ==, 3); /* relu once, twice twice */
  g_assert_cmpstr(pq_node_name(first), ==, "relu");
  g_assert_cmpint(out, ==, 0);
  g_assert_cmpuint(pq_graph_value_readers(g, "y", &first, &out), ==, 0);
  g_assert_null(first);
  g_assert_cmpint(out, ==, 1);
  g_assert_cmpuint(pq_graph_value_readers(g, "w1", NULL, NULL), ==, 1);
  g_assert_cmpstr(pq_node_name(pq_graph_value_producer(g, "hh")), ==, "twice");
  g_assert_null(pq_graph_value_producer(g, "x")); /* a graph input */
  g_assert_null(pq_graph_value_producer(g, "w2")); /* a tensor */
  g_assert_cmpint(pq_graph_remove_node(g, pq_graph_value_producer(g, "hh")), ==, 1);
  g_assert_cmpuint(pq_graph_n_nodes(g), ==, 3);
  g_assert_cmpuint(pq_graph_value_readers(g, "h", NULL, NULL), ==, 1);
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_model_validate(m, &err));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/graph/json-roundtrip", test_roundtrip);
  g_test_add_func("/graph/readers", test_readers);
  g_test_add_func("/graph/layer-bias", test_layer_bias);
  g_test_add_func("/graph/validation-errors", test_errors);
  g_test_add_func("/graph/bad-json", test_bad_json);
  g_test_add_func("/graph/shape-inference", test_infer);
  g_test_add_func("/graph/plan-order", test_plan_order);
  return g_test_run();
}
