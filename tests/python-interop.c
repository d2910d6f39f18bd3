/* python-interop.c — the Python safetensors library reads pquant's files, and pquant reads its files.
 * Needs a python3 with safetensors and numpy: $PQ_TEST_PYTHON (set by .ci/run), else skipped. */
#include "testutil.h"

#include <string.h>
#include <sys/wait.h>

static void test_interop(void) {
  const char *python = g_getenv("PQ_TEST_PYTHON");
  if (!python || !python[0]) {
    g_test_skip("set PQ_TEST_PYTHON to a python3 with safetensors and numpy (.ci/run does)");
    return;
  }
  g_autofree char *dir = pq_test_mkdtemp();
  g_autoptr(PqModel) m = pq_model_new();
  int64_t s34[2] = {3, 4}, s2[1] = {2}, s3[1] = {3}, s28[2] = {2, 8};
  g_autoptr(PqTensor) ramp = pq_tensor_new("ramp", PQ_DTYPE_F32, 2, s34);
  for (int i = 0; i < 12; i++) ((float *)pq_tensor_mutable_data(ramp))[i] = (float)i - 5.5f;
  g_autoptr(PqTensor) half = pq_tensor_new("half", PQ_DTYPE_F16, 1, s2);
  ((guint16 *)pq_tensor_mutable_data(half))[0] = pq_f32_to_f16(0.5f);
  ((guint16 *)pq_tensor_mutable_data(half))[1] = pq_f32_to_f16(-2.0f);
  g_autoptr(PqTensor) count = pq_tensor_new("count", PQ_DTYPE_I32, 1, s3);
  for (int i = 0; i < 3; i++) ((gint32 *)pq_tensor_mutable_data(count))[i] = 7 + i;
  g_autoptr(PqTensor) scales = pq_tensor_new("s", PQ_DTYPE_F32, 1, s2);
  ((float *)pq_tensor_mutable_data(scales))[0] = 0.25f;
  ((float *)pq_tensor_mutable_data(scales))[1] = 0.5f;
  g_autoptr(PqTensor) q = pq_tensor_new_packed("q", 5, 2, s28, PQ_QUANT_PER_CHANNEL, 0, scales, NULL);
  for (int r = 0; r < 2; r++) {
    guint8 codes[8];
    for (int c = 0; c < 8; c++) codes[c] = (guint8)(r * 8 + c + 3);
    pq_pack_codes(codes, 8, 5, (guint8 *)pq_tensor_mutable_data(q) + r * 5);
  }
  /* a packed tensor with F16 scales (since ABI 1.11): 8-bit codes, one scale a row */
  g_autoptr(PqTensor) hs = pq_tensor_new("s16", PQ_DTYPE_F16, 1, s2);
  ((guint16 *)pq_tensor_mutable_data(hs))[0] = pq_f32_to_f16(0.125f);
  ((guint16 *)pq_tensor_mutable_data(hs))[1] = pq_f32_to_f16(3.0f);
  g_autoptr(PqTensor) q16 = pq_tensor_new_packed("q16", 8, 2, s28, PQ_QUANT_PER_CHANNEL, 0, hs, NULL);
  for (int i = 0; i < 16; i++) ((guint8 *)pq_tensor_mutable_data(q16))[i] = (guint8)(120 + i);
  /* 4-bit codes in groups of 4 whose scales are packed themselves (quant scale_dtype=q8), and the values pquant
     reads from them, for Python to compute again from the stored bytes by the file format's rules */
  int64_t s38[2] = {3, 8};
  g_autoptr(PqTensor) wf = pq_test_random_tensor("wf", 2, s38, 3, 1.0f);
  PqPluginError pe = {sizeof pe, 0, {0}};
  g_autoptr(PqTensor) g4 = pq_quantize_matrix("q8", pq_tensor_data(wf), 2, s38, 4, PQ_QUANT_PER_GROUP, 4, 1, 0, &pe);
  g_autoptr(PqTensor) q8 = pq_packed_with_quantized_scales(g4, pq_tensor_data(wf), 8, &pe);
  g_assert_nonnull(q8);
  g_autoptr(PqTensor) expect = pq_tensor_new("q8_values", PQ_DTYPE_F32, 2, s38);
  g_assert_cmpint(pq_tensor_to_f32(q8, pq_tensor_mutable_data(expect)), ==, 0);
  PqTensor *all[8] = {ramp, half, count, q, q16, q8, expect, NULL};
  for (int i = 0; all[i]; i++) pq_model_set_tensor(m, all[i]);
  int64_t is[2] = {-1, 4};
  pq_graph_add_input(pq_model_graph(m), "x", 2, is);
  const char *ins[2] = {"x", "ramp"}, *outs[1] = {"y"};
  pq_graph_add_node(pq_model_graph(m), "linear", "fc", 2, ins, 1, outs);
  pq_graph_add_output(pq_model_graph(m), "y");
  g_autofree char *a = g_build_filename(dir, "a.safetensors", NULL), *b = g_build_filename(dir, "b.safetensors", NULL);
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_model_save(m, a, &err));
  const char *argv[] = {python, TEST_SRCDIR "/check_safetensors.py", a, b, NULL};
  g_autofree char *out = NULL, *errout = NULL;
  int status;
  g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errout, &status, &err));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) g_error("python check failed:\n%s%s", out, errout);
  g_test_message("%s", out);
  /* and back: safetensors' own writer, read by pquant with the graph and packing intact */
  g_autoptr(PqModel) back = pq_model_load(b, &err);
  g_assert_no_error(err);
  const float *r = pq_tensor_data(pq_model_tensor(back, "ramp"));
  for (int i = 0; i < 12; i++) g_assert_cmpfloat(r[i], ==, 2 * ((float)i - 5.5f));
  PqTensor *qb = pq_model_tensor(back, "q");
  g_assert_cmpint(pq_tensor_dtype(qb), ==, PQ_DTYPE_PACKED);
  g_assert_cmpmem(pq_tensor_data(qb), 10, pq_tensor_data(q), 10);
  PqTensor *q16b = pq_model_tensor(back, "q16");
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(q16b)), ==, PQ_DTYPE_F16);
  float v[16];
  g_assert_cmpint(pq_tensor_to_f32(q16b, v), ==, 0);
  for (int i = 0; i < 16; i++) g_assert_cmpfloat(v[i], ==, (i < 8 ? 0.125f : 3.0f) * (float)(120 + i - 128));
  float w8[24];
  g_assert_cmpint(pq_tensor_to_f32(pq_model_tensor(back, "q8"), w8), ==, 0);
  g_assert_cmpmem(w8, sizeof w8, pq_tensor_data(expect), sizeof w8);
  g_assert_cmpint(pq_graph_n_nodes(pq_model_const_graph(back)), ==, 1);
  pq_test_rmdir(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/python/safetensors-interop", test_interop);
  return g_test_run();
}
