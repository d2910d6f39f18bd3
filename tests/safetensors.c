/* safetensors.c — model files: round trips, compatibility with the spec, and every malformed input. */
#include "testutil.h"

#include <math.h>

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir;

static void expect_load_error(const char *path, const char *needle) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_model_load(path, &err);
  g_assert_null(m);
  g_assert_nonnull(err);
  g_assert_true(err->domain == PQ_FORMAT_ERROR);
  if (!strstr(err->message, path)) g_error("'%s' does not name the file", err->message);
  if (!strstr(err->message, needle)) g_error("'%s' lacks '%s'", err->message, needle);
}

static void test_roundtrip(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(5, 4, 3, 7);
  int64_t s8[1] = {2}, sh[2] = {4, 8}, ns[1] = {8};
  g_autoptr(PqTensor) half = pq_tensor_new("extra.f16", PQ_DTYPE_F16, 1, s8);
  ((guint16 *)pq_tensor_mutable_data(half))[1] = pq_f32_to_f16(1.5f);
  g_autoptr(PqTensor) scales = pq_test_random_tensor("s", 1, ns, 3, 1.0f);
  g_autoptr(PqTensor) packed = pq_tensor_new_packed("extra.q", 3, 2, sh, PQ_QUANT_PER_GROUP, 4, scales, NULL);
  guint8 *pd = pq_tensor_mutable_data(packed);
  for (size_t i = 0; i < pq_tensor_nbytes(packed); i++) pd[i] = (guint8)(i * 29 + 1);
  pq_model_set_tensor(m, half);
  pq_model_set_tensor(m, packed);
  pq_model_set_meta(m, "author", "test");
  g_autofree char *path = g_build_filename(tmpdir, "rt.safetensors", NULL);
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_model_save(m, path, &err));
  g_assert_no_error(err);

  /* the header length is a multiple of 8 and the header starts with '{' */
  g_autofree char *bytes = NULL;
  gsize len;
  g_assert_true(g_file_get_contents(path, &bytes, &len, NULL));
  guint64 hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | (guint8)bytes[i];
  g_assert_cmpuint(hl % 8, ==, 0);
  g_assert_cmpint(bytes[8], ==, '{');
  /* file size: header + stored bytes, packed codes at 3 bits */
  g_assert_cmpuint(len, ==, 8 + hl + (gsize)pq_model_nbytes(m));

  g_autoptr(PqModel) back = pq_model_load(path, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(pq_model_n_tensors(back), ==, pq_model_n_tensors(m));
  for (size_t i = 0; i < pq_model_n_tensors(m); i++) {
    PqTensor *a = pq_model_tensor_at(m, i), *b = pq_model_tensor(back, pq_tensor_name(a));
    g_assert_nonnull(b);
    g_assert_cmpint(pq_tensor_dtype(a), ==, pq_tensor_dtype(b));
    g_assert_cmpint(pq_tensor_ndim(a), ==, pq_tensor_ndim(b));
    g_assert_cmpmem(pq_tensor_shape(a), pq_tensor_ndim(a) * 8, pq_tensor_shape(b), pq_tensor_ndim(b) * 8);
    g_assert_cmpmem(pq_tensor_data(a), pq_tensor_nbytes(a), pq_tensor_data(b), pq_tensor_nbytes(b));
    g_assert_null(pq_tensor_mutable_data(b)); /* memory-mapped: read-only */
  }
  PqTensor *q = pq_model_tensor(back, "extra.q");
  g_assert_cmpint(pq_tensor_bits(q), ==, 3);
  g_assert_cmpint(pq_tensor_quant_scheme(q), ==, PQ_QUANT_PER_GROUP);
  g_assert_cmpint(pq_tensor_group_size(q), ==, 4);
  g_assert_cmpmem(pq_tensor_data(pq_tensor_scales(q)), 32, pq_tensor_data(scales), 32);
  g_assert_cmpstr(pq_model_meta(back, "author"), ==, "test");
  g_autofree char *j1 = pq_graph_to_json(pq_model_const_graph(m)), *j2 = pq_graph_to_json(pq_model_const_graph(back));
  g_assert_cmpstr(j1, ==, j2);
  g_assert_cmpint(pq_model_nbytes(back), ==, pq_model_nbytes(m));
}

/* Packed tensors whose scales are F16 (since ABI 1.11): saved and loaded as F16, half the bytes of F32; a scales
 * tensor of another type is refused by name. */
static void test_f16_scales(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(16, 5, 3, 7); /* w1 [5, 16] */
  PqTensor *w = pq_model_tensor(m, "w1");
  PqPluginError e = {sizeof e, 0, {0}};
  g_autoptr(PqTensor) q32 = pq_quantize_matrix("w1", pq_tensor_data(w), 2, pq_tensor_shape(w), 4, PQ_QUANT_PER_GROUP, 8, 0, 0, &e);
  g_assert_nonnull(q32);
  g_autoptr(PqTensor) q16 = pq_packed_with_f16_scales(q32, pq_tensor_data(w), &e);
  g_assert_nonnull(q16);
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(q16)), ==, PQ_DTYPE_F16);
  pq_model_set_tensor(m, q16);
  g_autofree char *path = g_build_filename(tmpdir, "f16-scales.safetensors", NULL);
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_model_save(m, path, &err));
  g_autoptr(PqModel) back = pq_model_load(path, &err);
  g_assert_no_error(err);
  PqTensor *b = pq_model_tensor(back, "w1");
  g_assert_cmpint(pq_tensor_dtype(b), ==, PQ_DTYPE_PACKED);
  g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(b)), ==, PQ_DTYPE_F16);
  g_assert_cmpuint(pq_tensor_nbytes(pq_tensor_scales(b)), ==, 2 * 10); /* 5 rows x 2 groups */
  g_assert_cmpmem(pq_tensor_data(pq_tensor_scales(b)), 20, pq_tensor_data(pq_tensor_scales(q16)), 20);
  g_assert_cmpmem(pq_tensor_data(b), pq_tensor_nbytes(b), pq_tensor_data(q16), pq_tensor_nbytes(q16));
  g_assert_nonnull(pq_tensor_zeros(b));
  g_assert_cmpint(pq_model_nbytes(back), ==, pq_model_nbytes(m));
  float a[80], c[80];
  g_assert_cmpint(pq_tensor_to_f32(q16, a), ==, 0);
  g_assert_cmpint(pq_tensor_to_f32(b, c), ==, 0);
  g_assert_cmpmem(a, sizeof a, c, sizeof c);
  /* BF16 scales: refused, naming the file, the tensor and the field */
  guint8 data[4 + 2] = {0x11, 0x22, 0x33, 0x44, 0x80, 0x3f};
  g_autofree char *bad = pq_test_write_safetensors(tmpdir, "bf16-scales.safetensors",
      "{\"__metadata__\":{\"pquant.packed\":\"{\\\"q\\\":{\\\"bits\\\":8,\\\"shape\\\":[1,4],\\\"scheme\\\":\\\"per_tensor\\\",\\\"scales\\\":\\\"q.scales\\\"}}\"},"
      "\"q\":{\"dtype\":\"U8\",\"shape\":[1,4],\"data_offsets\":[0,4]},\"q.scales\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]}}",
      data, sizeof data);
  expect_load_error(bad, "pquant.packed[\"q\"]: scales must be an F32 or F16 tensor of 1 elements");
}

/* A file with packed tensors described by `packed` (pquant.packed's JSON, written plainly here and escaped as
 * the header's string) over q.s.s (F32 [1], 0.5), q (U8 [1, 4]) and q.s (U8 [1, 2]) */
static char *packed_scales_file(const char *name, const char *packed) {
  g_autoptr(GString) esc = g_string_new(NULL);
  for (const char *c = packed; *c; c++) {
    if (*c == '"') g_string_append_c(esc, '\\');
    g_string_append_c(esc, *c);
  }
  g_autofree char *header = g_strdup_printf("{\"__metadata__\":{\"pquant.packed\":\"%s\"},"
                                            "\"q.s.s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                            "\"q\":{\"dtype\":\"U8\",\"shape\":[1,4],\"data_offsets\":[4,8]},"
                                            "\"q.s\":{\"dtype\":\"U8\",\"shape\":[1,2],\"data_offsets\":[8,10]}}",
                                            esc->str);
  guint8 data[10];
  const float half = 0.5f;
  memcpy(data, &half, 4);
  const guint8 codes[6] = {129, 127, 130, 126, 130, 132}; /* q's, then q.s's */
  memcpy(data + 4, codes, 6);
  return pq_test_write_safetensors(tmpdir, name, header, data, sizeof data);
}

/* Per-group scales packed themselves (quant scale_dtype=q8): a file lists the packed scales' entry before or
 * after the tensor whose scales they are, and both load; scales packed two levels deep, or naming themselves,
 * are refused by name. */
static void test_packed_scales(void) {
  const char *weight = "\"q\":{\"bits\":8,\"shape\":[1,4],\"scheme\":\"per_group\",\"group_size\":2,\"scales\":\"q.s\"}";
  const char *scales = "\"q.s\":{\"bits\":8,\"shape\":[1,2],\"scheme\":\"per_channel\",\"scales\":\"q.s.s\"}";
  for (int order = 0; order < 2; order++) {
    g_autofree char *json = order ? g_strdup_printf("{%s,%s}", weight, scales) : g_strdup_printf("{%s,%s}", scales, weight);
    g_autofree char *path = packed_scales_file(order ? "weight-first.safetensors" : "scales-first.safetensors", json);
    g_autoptr(GError) err = NULL;
    g_autoptr(PqModel) m = pq_model_load(path, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(pq_model_n_tensors(m), ==, 1); /* the scales and theirs belong to q */
    PqTensor *q = pq_model_tensor(m, "q");
    g_assert_cmpint(pq_tensor_dtype(pq_tensor_scales(q)), ==, PQ_DTYPE_PACKED);
    float v[4];
    g_assert_cmpint(pq_tensor_to_f32(q, v), ==, 0);
    /* scales 0.5·(130 − 128) = 1 and 0.5·(132 − 128) = 2 */
    g_assert_cmpfloat(v[0], ==, 1.0f);
    g_assert_cmpfloat(v[1], ==, -1.0f);
    g_assert_cmpfloat(v[2], ==, 4.0f);
    g_assert_cmpfloat(v[3], ==, -4.0f);
    g_assert_cmpint(pq_tensor_stored_bytes(q), ==, 4 + 2 + 4);
    g_assert_cmpint(pq_model_nbytes(m), ==, 10);
    /* written back, the same */
    g_autofree char *again = g_build_filename(tmpdir, "packed-scales-again.safetensors", NULL);
    g_assert_true(pq_model_save(m, again, &err));
    g_autoptr(PqModel) back = pq_model_load(again, &err);
    g_assert_no_error(err);
    float w[4];
    g_assert_cmpint(pq_tensor_to_f32(pq_model_tensor(back, "q"), w), ==, 0);
    g_assert_cmpmem(v, sizeof v, w, sizeof w);
  }
  /* two levels: q.s.s declared packed too (over a tensor that is not there: the level is refused first) */
  g_autofree char *deep = g_strdup_printf("{%s,%s,\"q.s.s\":{\"bits\":8,\"shape\":[1],\"scheme\":\"per_tensor\",\"scales\":\"x\"}}", weight, scales);
  g_autofree char *dp = packed_scales_file("deep.safetensors", deep);
  expect_load_error(dp, "pquant.packed[\"q\"].scales names a packed tensor whose own scales are packed (one level only)");
  const char *self = "{\"q\":{\"bits\":8,\"shape\":[1,4],\"scheme\":\"per_group\",\"group_size\":2,\"scales\":\"q\"}}";
  g_autofree char *sp = packed_scales_file("self.safetensors", self);
  expect_load_error(sp, "pquant.packed[\"q\"].scales names the tensor itself");
  /* packed scales for a per-channel tensor: refused */
  const char *chan = "{\"q.s\":{\"bits\":8,\"shape\":[1,2],\"scheme\":\"per_channel\",\"scales\":\"q.s.s\"},"
                     "\"q\":{\"bits\":8,\"shape\":[2,2],\"scheme\":\"per_channel\",\"scales\":\"q.s\"}}";
  g_autofree char *cp = packed_scales_file("per-channel.safetensors", chan);
  expect_load_error(cp, "pquant.packed[\"q\"]: scales must be an F32 or F16 tensor of 2 elements");
}

/* A file written by another writer: unpadded header, tensors in any order, misaligned starts. */
static void test_foreign(void) {
  guint8 data[1 + 8];
  data[0] = 7;
  float v[2] = {1.5f, -2.0f};
  memcpy(data + 1, v, 8);
  g_autofree char *p = pq_test_write_safetensors(tmpdir, "foreign.safetensors",
      "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", data, 9);
  g_autoptr(GError) err = NULL;
  g_autoptr(PqModel) m = pq_model_load(p, &err);
  g_assert_no_error(err);
  const float *b = pq_tensor_data(pq_model_tensor(m, "b"));
  g_assert_cmpfloat(b[0], ==, 1.5f);
  g_assert_cmpfloat(b[1], ==, -2.0f);
  g_assert_cmpint(pq_tensor_ndim(pq_model_tensor(m, "a")), ==, 0);
}

static void test_bad_files(void) {
  guint8 four[4] = {0};
  struct {
    const char *name, *header, *needle;
    gsize data_len;
  } cases[] = {
      {"not-json", "{\"a\": nope}", "not valid JSON", 0},
      {"not-brace", "[{\"a\": 1}]     ", "does not start with '{'", 0},
      {"unknown-dtype", "{\"a\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype \"Q9\"", 4},
      {"unsupported-dtype", "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", "F64 is not supported", 0},
      {"negative-shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "field \"shape\"[0]", 4},
      {"float-shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "field \"shape\"[0]", 4},
      {"string-shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", "field \"shape\" must be an array", 4},
      {"overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", "element count overflows", 0},
      {"size-mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "spans 4 bytes", 4},
      {"gap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}", "gap of 2 bytes", 4},
      {"overlap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", "overlaps", 4},
      {"past-end", "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", "past the end of the data", 4},
      {"trailing", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", "2 trailing bytes", 4},
      {"reversed", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", "0 <= begin <= end", 4},
      {"duplicate", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", "duplicate tensor names", 4},
      {"meta-not-string", "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "__metadata__[\"k\"] must be a string", 4},
      {"meta-not-object", "{\"__metadata__\":[],\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "__metadata__ must be an object", 4},
      {"graph-missing-tensor",
       "{\"__metadata__\":{\"pquant.graph\":\"{\\\"version\\\":1,\\\"inputs\\\":[{\\\"name\\\":\\\"x\\\",\\\"shape\\\":[-1,1]}],\\\"outputs\\\":[\\\"y\\\"],\\\"nodes\\\":[{\\\"op\\\":\\\"linear\\\",\\\"name\\\":\\\"fc\\\",\\\"inputs\\\":[\\\"x\\\",\\\"w\\\"],\\\"outputs\\\":[\\\"y\\\"]}]}\"},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       "input 'w' is not defined", 4},
      {"graph-cycle",
       "{\"__metadata__\":{\"pquant.graph\":\"{\\\"version\\\":1,\\\"inputs\\\":[{\\\"name\\\":\\\"x\\\",\\\"shape\\\":[-1,1]}],\\\"outputs\\\":[\\\"q\\\"],\\\"nodes\\\":["
       "{\\\"op\\\":\\\"add\\\",\\\"name\\\":\\\"n1\\\",\\\"inputs\\\":[\\\"x\\\",\\\"q\\\"],\\\"outputs\\\":[\\\"p\\\"]},"
       "{\\\"op\\\":\\\"relu\\\",\\\"name\\\":\\\"n2\\\",\\\"inputs\\\":[\\\"p\\\"],\\\"outputs\\\":[\\\"q\\\"]}]}\"},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       "part of a cycle", 4},
      {"packed-bad-bits", "{\"__metadata__\":{\"pquant.packed\":\"{\\\"a\\\":{\\\"bits\\\":9}}\"},\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", "bits must be an integer in 2..8", 4},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *name = g_strdup_printf("%s.safetensors", cases[i].name);
    g_autofree char *p = pq_test_write_safetensors(tmpdir, name, cases[i].header, four, cases[i].data_len);
    expect_load_error(p, cases[i].needle);
  }
}

static void test_bad_lengths(void) {
  g_autofree char *empty = pq_test_write(tmpdir, "empty.safetensors", "", 0);
  expect_load_error(empty, "too short for the 8-byte header length");
  guint8 buf[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
  g_autofree char *max = pq_test_write(tmpdir, "max.safetensors", buf, 10);
  expect_load_error(max, "exceeds the 100 MB limit");
  guint8 big[10] = {0x01, 0x00, 0x00, 0x10, 0, 0, 0, 0, '{', '}'}; /* 256 MB + 1 */
  g_autofree char *bigp = pq_test_write(tmpdir, "big.safetensors", big, 10);
  expect_load_error(bigp, "exceeds the 100 MB limit");
  guint8 past[10] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  g_autofree char *pastp = pq_test_write(tmpdir, "past.safetensors", past, 10);
  expect_load_error(pastp, "runs past the end of the file");
  expect_load_error(tmpdir, "is a folder");
  expect_load_error("/dev/zero", "not a regular file");
  g_autofree char *missing = g_build_filename(tmpdir, "missing.safetensors", NULL);
  expect_load_error(missing, "cannot open");
  guint8 nonutf[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 0xff, 0xfe, '}'};
  g_autofree char *nu = pq_test_write(tmpdir, "nonutf.safetensors", nonutf, 12);
  expect_load_error(nu, "not valid UTF-8");
}

/* Saving over an existing file either replaces it whole or leaves it untouched. */
static void test_atomic_write(void) {
  g_autoptr(PqModel) m = pq_test_tiny_mlp(3, 2, 2, 1);
  g_autofree char *sub = g_build_filename(tmpdir, "ro", NULL);
  g_mkdir(sub, 0755);
  g_autofree char *path = g_build_filename(sub, "m.safetensors", NULL);
  g_autoptr(GError) err = NULL;
  g_assert_true(pq_model_save(m, path, &err));
  g_autofree char *before = NULL;
  gsize blen;
  g_file_get_contents(path, &before, &blen, NULL);
  if (getuid() != 0) { /* root writes anywhere: the permission half runs only as a normal user */
    g_chmod(sub, 0555);
    g_autoptr(PqModel) m2 = pq_test_tiny_mlp(3, 2, 2, 99);
    g_assert_false(pq_model_save(m2, path, &err));
    g_assert_error(err, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_IO);
    g_assert_nonnull(strstr(err->message, path));
    g_chmod(sub, 0755);
  }
  /* a float attribute JSON cannot hold (NaN, an infinity): refused by name, the file left as it was */
  const double bad[] = {NAN, INFINITY};
  for (int i = 0; i < 2; i++) {
    g_autoptr(PqModel) m3 = pq_test_tiny_mlp(3, 2, 2, 7);
    pq_node_set_float(pq_graph_node(pq_model_graph(m3), 2), "act_scale", bad[i]);
    g_clear_error(&err);
    g_assert_false(pq_model_save(m3, path, &err));
    g_assert_error(err, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "node 'fc2': attribute \"act_scale\" is not a finite number"));
    g_autofree char *graph = pq_graph_to_json(pq_model_const_graph(m3)); /* the JSON form writes it as null */
    g_assert_nonnull(strstr(graph, "\"act_scale\":null"));
  }
  g_autofree char *after = NULL;
  gsize alen;
  g_file_get_contents(path, &after, &alen, NULL);
  g_assert_cmpmem(before, blen, after, alen);
  /* no temporary files are left behind */
  g_autoptr(GDir) d = g_dir_open(sub, 0, NULL);
  int n = 0;
  while (g_dir_read_name(d)) n++;
  g_assert_cmpint(n, ==, 1);
  /* a folder that does not exist: clear error naming the path */
  g_autofree char *nowhere = g_build_filename(tmpdir, "no", "such", "dir", "m.safetensors", NULL);
  g_clear_error(&err);
  g_assert_false(pq_model_save(m, nowhere, &err));
  g_assert_nonnull(strstr(err->message, nowhere));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = pq_test_mkdtemp();
  g_test_add_func("/safetensors/roundtrip", test_roundtrip);
  g_test_add_func("/safetensors/foreign-writer", test_foreign);
  g_test_add_func("/safetensors/f16-scales", test_f16_scales);
  g_test_add_func("/safetensors/packed-scales", test_packed_scales);
  g_test_add_func("/safetensors/bad-headers", test_bad_files);
  g_test_add_func("/safetensors/bad-lengths-and-paths", test_bad_lengths);
  g_test_add_func("/safetensors/atomic-write", test_atomic_write);
  int rc = g_test_run();
  pq_test_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
