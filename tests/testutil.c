/* testutil.c — helpers shared by the test programs. */
#include "testutil.h"

#include <glib/gstdio.h>
#include <string.h>

char *pq_test_mkdtemp(void) {
  g_autoptr(GError) err = NULL;
  char *dir = g_dir_make_tmp("pquant-test-XXXXXX", &err);
  g_assert_no_error(err);
  return dir;
}

void pq_test_rmdir(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (!d) return;
  const char *n;
  while ((n = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(dir, n, NULL);
    if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK)) pq_test_rmdir(p);
    else g_unlink(p);
  }
  g_rmdir(dir);
}

char *pq_test_write(const char *dir, const char *name, const void *data, gsize len) {
  char *p = g_build_filename(dir, name, NULL);
  g_autoptr(GError) err = NULL;
  g_file_set_contents(p, data, (gssize)len, &err);
  g_assert_no_error(err);
  return p;
}

char *pq_test_write_npy(const char *dir, const char *name, const char *descr, const char *fortran, const char *shape, gboolean pad,
                        const void *data, gsize len) {
  g_autofree char *dict = g_strdup_printf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape);
  gsize hl = strlen(dict) + 1, fill = pad ? (64 - (10 + hl) % 64) % 64 : 0;
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, (const guint8 *)"\x93NUMPY\x01\x00", 8);
  guint8 hb[2] = {(guint8)((hl + fill) & 0xff), (guint8)((hl + fill) >> 8)};
  g_byte_array_append(b, hb, 2);
  g_byte_array_append(b, (const guint8 *)dict, (guint)strlen(dict));
  for (gsize i = 0; i < fill; i++) g_byte_array_append(b, (const guint8 *)" ", 1);
  g_byte_array_append(b, (const guint8 *)"\n", 1);
  if (len) g_byte_array_append(b, data, (guint)len);
  char *path = pq_test_write(dir, name, b->data, b->len);
  g_byte_array_unref(b);
  return path;
}

char *pq_test_write_safetensors(const char *dir, const char *name, const char *header, const void *data, gsize len) {
  gsize hl = strlen(header);
  GByteArray *b = g_byte_array_new();
  guint8 n[8];
  for (int i = 0; i < 8; i++) n[i] = (guint8)((guint64)hl >> (8 * i));
  g_byte_array_append(b, n, 8);
  g_byte_array_append(b, (const guint8 *)header, (guint)hl);
  if (len) g_byte_array_append(b, data, (guint)len);
  char *p = pq_test_write(dir, name, b->data, b->len);
  g_byte_array_unref(b);
  return p;
}

PqTensor *pq_test_random_tensor(const char *name, int ndim, const int64_t *shape, guint32 seed, float scale) {
  PqTensor *t = pq_tensor_new(name, PQ_DTYPE_F32, ndim, shape);
  g_assert_nonnull(t);
  GRand *r = g_rand_new_with_seed(seed);
  float *d = pq_tensor_mutable_data(t);
  for (int64_t i = 0; i < pq_tensor_numel(t); i++) d[i] = (float)g_rand_double_range(r, -scale, scale);
  g_rand_free(r);
  return t;
}

PqModel *pq_test_tiny_mlp(int in, int hidden, int out, guint32 seed) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t is[2] = {-1, in}, w1[2] = {hidden, in}, b1[1] = {hidden}, w2[2] = {out, hidden}, b2[1] = {out};
  pq_graph_add_input(g, "x", 2, is);
  PqTensor *t[4] = {pq_test_random_tensor("w1", 2, w1, seed, 0.5f), pq_test_random_tensor("b1", 1, b1, seed + 1, 0.1f),
                    pq_test_random_tensor("w2", 2, w2, seed + 2, 0.5f), pq_test_random_tensor("b2", 1, b2, seed + 3, 0.1f)};
  for (int i = 0; i < 4; i++) {
    pq_model_set_tensor(m, t[i]);
    pq_tensor_unref(t[i]);
  }
  const char *i1[3] = {"x", "w1", "b1"}, *o1[1] = {"h"}, *i2[1] = {"h"}, *o2[1] = {"hr"}, *i3[3] = {"hr", "w2", "b2"},
             *o3[1] = {"y"};
  pq_graph_add_node(g, "linear", "fc1", 3, i1, 1, o1);
  pq_graph_add_node(g, "relu", "relu", 1, i2, 1, o2);
  pq_graph_add_node(g, "linear", "fc2", 3, i3, 1, o3);
  pq_graph_add_output(g, "y");
  return m;
}

PqPlugin *pq_test_cpu_backend(PqRegistry *reg) {
  g_autoptr(GError) err = NULL;
  PqPlugin *p = pq_registry_load(reg, CPU_PLUGIN, &err);
  g_assert_no_error(err);
  return p;
}

PqModel *pq_test_compress(PqPlugin *compressor, PqPlugin *cpu, const PqModel *m, const char *const *kv, GError **error) {
  g_autoptr(PqOptions) o = pq_options_new(pq_plugin_options_schema(compressor), pq_plugin_name(compressor), error);
  g_assert_true(pq_options_add_layer_selection(o, error));
  for (; kv && kv[0]; kv += 2) g_assert_true(pq_options_set(o, kv[0], kv[1], error));
  return pq_compressor_run_full(compressor, m, o, NULL, 0, cpu, error);
}

PqModel *pq_test_conv_model(const int64_t *xs, const int64_t *ws, const int64_t *strides, const int64_t *pads, guint32 seed) {
  PqModel *m = pq_model_new();
  int64_t bs[1] = {ws[0]};
  pq_graph_add_input(pq_model_graph(m), "x", 4, xs);
  PqTensor *w = pq_test_random_tensor("cw", 4, ws, seed, 1), *b = pq_test_random_tensor("cb", 1, bs, seed + 1, 1);
  pq_model_set_tensor(m, w);
  pq_model_set_tensor(m, b);
  pq_tensor_unref(w);
  pq_tensor_unref(b);
  const char *in[3] = {"x", "cw", "cb"}, *out[1] = {"y"};
  PqNode *n = pq_graph_add_node(pq_model_graph(m), "conv2d", "conv", 3, in, 1, out);
  pq_node_set_ints(n, "strides", 2, strides);
  pq_node_set_ints(n, "pads", 4, pads);
  pq_graph_add_output(pq_model_graph(m), "y");
  return m;
}
