/* tensor.c — dense and packed tensors, bit packing and float conversions. */
#include "testutil.h"

#include <math.h>
#include <string.h>

static void test_pack_roundtrip(void) {
  for (int bits = 2; bits <= 8; bits++) {
    for (int64_t n = 1; n <= 67; n += 11) {
      g_autofree guint8 *codes = g_new(guint8, n), *back = g_new(guint8, n);
      g_autofree guint8 *packed = g_new0(guint8, (n * bits + 7) / 8);
      for (int64_t i = 0; i < n; i++) codes[i] = (guint8)((i * 37 + bits) % (1 << bits));
      pq_pack_codes(codes, n, bits, packed);
      pq_unpack_codes(packed, n, bits, back);
      g_assert_cmpmem(codes, n, back, n);
    }
  }
  /* the layout is part of the file format: 3-bit codes 1..8 pack little-endian bit by bit */
  guint8 codes[8] = {1, 2, 3, 4, 5, 6, 7, 0}, packed[3];
  pq_pack_codes(codes, 8, 3, packed);
  g_assert_cmphex(packed[0], ==, 0xD1);
  g_assert_cmphex(packed[1], ==, 0x58);
  g_assert_cmphex(packed[2], ==, 0x1F);
}

static void test_dense(void) {
  int64_t shape[3] = {2, 3, 4};
  g_autoptr(PqTensor) t = pq_tensor_new("t", PQ_DTYPE_I32, 3, shape);
  g_assert_cmpint(pq_tensor_numel(t), ==, 24);
  g_assert_cmpuint(pq_tensor_nbytes(t), ==, 96);
  g_assert_cmpint(pq_tensor_rows(t), ==, 2);
  g_assert_cmpint(pq_tensor_cols(t), ==, 12);
  g_assert_nonnull(pq_tensor_mutable_data(t));
  int64_t neg[2] = {2, -1}, huge[2] = {G_GINT64_CONSTANT(1) << 32, G_GINT64_CONSTANT(1) << 32};
  g_assert_null(pq_tensor_new("bad", PQ_DTYPE_F32, 2, neg));
  g_assert_null(pq_tensor_new("bad", PQ_DTYPE_F32, 2, huge));
  g_assert_null(pq_tensor_new("bad", PQ_DTYPE_F32, PQ_MAX_DIMS + 1, shape));
  g_assert_null(pq_tensor_new("bad", PQ_DTYPE_PACKED, 2, shape));
}

static void test_packed(void) {
  int64_t shape[2] = {3, 8}, ns[1] = {6}, one[1] = {1};
  g_autoptr(PqTensor) scales = pq_tensor_new("s", PQ_DTYPE_F32, 1, ns);
  float *s = pq_tensor_mutable_data(scales);
  for (int i = 0; i < 6; i++) s[i] = 0.5f * (float)(i + 1);
  g_autoptr(PqTensor) t = pq_tensor_new_packed("w", 6, 2, shape, PQ_QUANT_PER_GROUP, 4, scales, NULL);
  g_assert_nonnull(t);
  g_assert_cmpuint(pq_tensor_nbytes(t), ==, 3 * 6); /* 8 values of 6 bits = 6 bytes a row */
  g_assert_cmpuint(pq_tensor_row_bytes(t), ==, 6);
  guint8 codes[8];
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 8; c++) codes[c] = (guint8)(32 + r * 8 + c - 10);
    pq_pack_codes(codes, 8, 6, (guint8 *)pq_tensor_mutable_data(t) + r * 6);
  }
  float out[24];
  g_assert_cmpint(pq_tensor_to_f32(t, out), ==, 0);
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 8; c++) g_assert_cmpfloat(out[r * 8 + c], ==, s[r * 2 + c / 4] * (float)(r * 8 + c - 10));
  /* invalid: group not dividing the row, wrong scale count, bits out of range */
  g_assert_null(pq_tensor_new_packed("w", 6, 2, shape, PQ_QUANT_PER_GROUP, 3, scales, NULL));
  g_assert_null(pq_tensor_new_packed("w", 6, 2, shape, PQ_QUANT_PER_CHANNEL, 0, scales, NULL));
  g_assert_null(pq_tensor_new_packed("w", 9, 2, shape, PQ_QUANT_PER_GROUP, 4, scales, NULL));
  g_assert_null(pq_tensor_new_packed("w", 1, 2, shape, PQ_QUANT_PER_GROUP, 4, scales, NULL));
  /* asymmetric per-tensor with a zero point */
  g_autoptr(PqTensor) s1 = pq_tensor_new("s1", PQ_DTYPE_F32, 1, one);
  g_autoptr(PqTensor) z1 = pq_tensor_new("z1", PQ_DTYPE_U8, 1, one);
  *(float *)pq_tensor_mutable_data(s1) = 2.0f;
  *(guint8 *)pq_tensor_mutable_data(z1) = 3;
  g_autoptr(PqTensor) a = pq_tensor_new_packed("a", 2, 2, shape, PQ_QUANT_PER_TENSOR, 0, s1, z1);
  memset(pq_tensor_mutable_data(a), 0xFF, pq_tensor_nbytes(a)); /* every code 3 → 0 */
  pq_tensor_to_f32(a, out);
  for (int i = 0; i < 24; i++) g_assert_cmpfloat(out[i], ==, 0.0f);
  /* the schemes' names, as files and options write them */
  g_assert_cmpstr(pq_quant_scheme_name(PQ_QUANT_PER_TENSOR), ==, "per_tensor");
  g_assert_cmpstr(pq_quant_scheme_name(PQ_QUANT_PER_CHANNEL), ==, "per_channel");
  g_assert_cmpstr(pq_quant_scheme_name(PQ_QUANT_PER_GROUP), ==, "per_group");
  g_assert_null(pq_quant_scheme_name((PqQuantScheme)3));
}

static void test_half(void) {
  const float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f};
  for (size_t i = 0; i < G_N_ELEMENTS(vals); i++) {
    g_assert_cmpfloat(pq_f16_to_f32(pq_f32_to_f16(vals[i])), ==, vals[i]);
    g_assert_cmpfloat(pq_bf16_to_f32(pq_f32_to_bf16(vals[i])), ==, pq_bf16_to_f32(pq_f32_to_bf16(vals[i])));
  }
  g_assert_cmphex(pq_f32_to_f16(1.0f), ==, 0x3C00);
  g_assert_cmphex(pq_f32_to_f16(1e6f), ==, 0x7C00);          /* overflow → inf */
  g_assert_cmphex(pq_f32_to_f16(1.0f + 1.0f / 2048), ==, 0x3C00); /* ties to even */
  g_assert_true(isnan(pq_f16_to_f32(pq_f32_to_f16(NAN))));
  g_assert_cmphex(pq_f32_to_bf16(1.0f), ==, 0x3F80);
  g_assert_true(isnan(pq_bf16_to_f32(pq_f32_to_bf16(NAN))));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/tensor/pack-roundtrip", test_pack_roundtrip);
  g_test_add_func("/tensor/dense", test_dense);
  g_test_add_func("/tensor/packed", test_packed);
  g_test_add_func("/tensor/half", test_half);
  return g_test_run();
}
