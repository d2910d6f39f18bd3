/* fuzz-compress.c — the compressors and the CPU backend on models and options made from the input bytes.
 *
 * The bytes are read as choices, not as a file: an MLP (1–3 linear layers, with or without biases and ReLUs)
 * or a small CNN (one or two conv2d of any kernel, stride, padding, dilation and group count, each maybe
 * followed by a ReLU, a batch_norm and a 2x2 pool; then linear layers),
 * its weights (ordinary, zero, constant, huge, subnormal, of mixed magnitudes, of rank one, or with one NaN
 * or infinity; float32 or bfloat16), a chain of one or two of the loaded compressors with values for their
 * options taken from each plugin's own schema (any option, its range and its choices), then the CPU
 * backend's options, threads and batch. What must hold:
 *   - a failure (a graph the validation refuses, a compressor refusing a layer or an option value) says why;
 *   - a model the chain returns is saved, loaded back, prepared and run wherever the original model was
 *     prepared (a compressor never hands on a model its own backend cannot run);
 *   - on ordinary weights, where the original model's outputs are finite, so are the compressed model's;
 *     and after a chain of exact stages only (PQ_COMPRESSOR_EXACT: equalize), they are the same outputs, to
 *     1e-4 of the largest.
 * A crash, a sanitizer report, a GLib critical or warning, or a broken rule above is a bug (abort).
 *
 * Built two ways (tests/meson.build): as a libFuzzer target (-Dfuzz=true, clang; docs/testing.md) and as the
 * test program `fuzz-compress-random`, which runs the same function on pseudo-random inputs from fixed seeds
 * (`--inputs N --seed S`) and runs in the test suite. */
#include <pquant/pquant.h>
#include <pquant/pq-core.h>
#include <pquant/pq-plugin.h>

#include "../testutil.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* what became of the inputs: the original model refused (an invalid graph), the chain refused (a layer or an
 * option value), the compressed model run; and the first refusals' messages, for `--verbose` */
static long n_base_refused, n_chain_refused, n_ran;
static int verbose;

typedef struct {
  const uint8_t *p;
  size_t n, at;
} Bytes;

/* the next choice in [0, range); 0 once the input is used up */
static unsigned take(Bytes *b, unsigned range) {
  if (range <= 1) return 0;
  unsigned v = b->at < b->n ? b->p[b->at++] : 0;
  if (range > 256 && b->at < b->n) v = v << 8 | b->p[b->at++];
  return v % range;
}

static void must_say_why(GError *err) {
  if (!err || !err->message[0]) abort(); /* a failure must say why */
  if (verbose) fprintf(stderr, "  refused: %s\n", err->message);
  g_error_free(err);
}

static unsigned gcd(unsigned a, unsigned b) { return b ? gcd(b, a % b) : a; }

enum { W_NORMAL, W_ZERO, W_CONST, W_HUGE, W_SUBNORMAL, W_MIXED, W_RANK1, W_NAN, W_INF, W_MODES };

/* A weight or bias tensor of `mode`, float32 or (bf16) bfloat16, from `seed`. */
static void add_tensor(PqModel *m, const char *name, int ndim, const int64_t *shape, int mode, gboolean bf16, guint32 seed) {
  PqTensor *t = pq_tensor_new(name, bf16 ? PQ_DTYPE_BF16 : PQ_DTYPE_F32, ndim, shape);
  int64_t n = pq_tensor_numel(t), cols = shape[ndim - 1];
  GRand *r = g_rand_new_with_seed(seed);
  void *d = pq_tensor_mutable_data(t);
  for (int64_t i = 0; i < n; i++) {
    float v = (float)g_rand_double_range(r, -0.5, 0.5);
    switch (mode) {
    case W_ZERO: v = 0; break;
    case W_CONST: v = 0.25f; break;
    case W_HUGE: v *= 1e30f; break;
    case W_SUBNORMAL: v *= 1e-39f; break;
    case W_MIXED: v *= powf(10.0f, (float)g_rand_int_range(r, -20, 21)); break;
    case W_RANK1: v = (float)((i / cols) % 7 - 3) * (float)(i % cols % 5 + 1) * 0.01f; break;
    case W_NAN: v = i == n / 2 ? NAN : v; break;
    case W_INF: v = i == n / 3 ? -INFINITY : v; break;
    default: break;
    }
    if (bf16) {
      uint32_t u;
      memcpy(&u, &v, 4);
      ((uint16_t *)d)[i] = (uint16_t)(u >> 16);
    } else {
      ((float *)d)[i] = v;
    }
  }
  g_rand_free(r);
  pq_model_set_tensor(m, t);
  pq_tensor_unref(t);
}

/* A linear layer `name` from value `in` (k per sample) to `out` (n), its weights of `mode`. */
static void add_linear(PqModel *m, Bytes *b, const char *name, const char *in, const char *out, int64_t k, int64_t n, int mode,
                       gboolean bf16) {
  char w[64], bias[64];
  snprintf(w, sizeof w, "%s.weight", name);
  snprintf(bias, sizeof bias, "%s.bias", name);
  int64_t ws[2] = {n, k}, bs[1] = {n};
  add_tensor(m, w, 2, ws, mode, bf16, take(b, 256));
  gboolean has_bias = take(b, 3) != 0;
  if (has_bias) add_tensor(m, bias, 1, bs, W_NORMAL, FALSE, take(b, 256));
  const char *ins[3] = {in, w, bias}, *outs[1] = {out};
  pq_graph_add_node(pq_model_graph(m), "linear", name, has_bias ? 3 : 2, ins, 1, outs);
}

/* A conv2d (any kernel, stride, padding, dilation and group count, mostly fitting its input) from value `cur`
 * of [c, h, w] a sample, then maybe a ReLU, a batch_norm and a 2x2 max or average pool; `cur` and the shape
 * become the block's output. FALSE where the conv's kernel does not fit (the graph is refused then). */
static gboolean add_conv_block(PqModel *m, Bytes *b, int k, char *cur, size_t cur_size, int64_t *c, int64_t *h, int64_t *w, int mode,
                               gboolean bf16) {
  PqGraph *g = pq_model_graph(m);
  int64_t oc = 1 + take(b, 8), groups = take(b, 2) ? gcd((unsigned)*c, (unsigned)oc) : 1;
  int64_t strides[2] = {1 + take(b, 2), 1 + take(b, 2)}, pads[4] = {take(b, 3), take(b, 3), take(b, 3), take(b, 3)};
  /* kernels that fit the padded input, mostly (one in eight may not: the graph's refusal is checked too) */
  int64_t ph = *h + pads[0] + pads[2], pw = *w + pads[1] + pads[3], fit = take(b, 8) != 0;
  int64_t kh = 1 + take(b, fit ? (unsigned)MIN(5, ph) : 5), kw = 1 + take(b, fit ? (unsigned)MIN(5, pw) : 5);
  int64_t dil[2] = {1 + take(b, 2), 1 + take(b, 2)};
  if (fit && (kh - 1) * dil[0] + 1 > ph) dil[0] = 1;
  if (fit && (kw - 1) * dil[1] + 1 > pw) dil[1] = 1;
  int64_t ws[4] = {oc, *c / groups, kh, kw}, bs[1] = {oc};
  char wn[32], bn[32], name[16], out[32];
  snprintf(wn, sizeof wn, "conv%d.weight", k + 1);
  snprintf(bn, sizeof bn, "conv%d.bias", k + 1);
  snprintf(name, sizeof name, "conv%d", k + 1);
  snprintf(out, sizeof out, "conv%d.out", k + 1);
  add_tensor(m, wn, 4, ws, mode, bf16, take(b, 256));
  gboolean has_bias = take(b, 3) != 0;
  if (has_bias) add_tensor(m, bn, 1, bs, W_NORMAL, FALSE, take(b, 256));
  const char *ins[3] = {cur, wn, bn}, *outs[1] = {out};
  PqNode *n = pq_graph_add_node(g, "conv2d", name, has_bias ? 3 : 2, ins, 1, outs);
  pq_node_set_ints(n, "strides", 2, strides);
  pq_node_set_ints(n, "pads", 4, pads);
  pq_node_set_ints(n, "dilations", 2, dil);
  pq_node_set_int(n, "groups", groups);
  snprintf(cur, cur_size, "%s", out);
  int64_t oh = (ph - dil[0] * (kh - 1) - 1) / strides[0] + 1, ow = (pw - dil[1] * (kw - 1) - 1) / strides[1] + 1;
  if (oh < 1 || ow < 1 || ph < dil[0] * (kh - 1) + 1 || pw < dil[1] * (kw - 1) + 1) return FALSE;
  *c = oc, *h = oh, *w = ow;
  if (take(b, 2)) { /* ReLU */
    char r[32];
    snprintf(r, sizeof r, "%s.relu", name);
    const char *ri[1] = {cur}, *ro[1] = {r};
    pq_graph_add_node(g, "relu", r, 1, ri, 1, ro);
    snprintf(cur, cur_size, "%s", r);
  }
  if (take(b, 3) == 0) { /* batch_norm, its variances positive */
    const char *part[4] = {"scale", "shift", "mean", "var"};
    char pn[4][40], bo[32];
    const char *bi[5] = {cur, pn[0], pn[1], pn[2], pn[3]}, *bout[1] = {bo};
    for (int j = 0; j < 4; j++) {
      snprintf(pn[j], sizeof pn[j], "%s.bn.%s", name, part[j]);
      add_tensor(m, pn[j], 1, c, j == 3 ? W_CONST : W_NORMAL, FALSE, take(b, 256));
    }
    snprintf(bo, sizeof bo, "%s.bn", name);
    pq_graph_add_node(g, "batch_norm", bo, 5, bi, 1, bout);
    snprintf(cur, cur_size, "%s", bo);
  }
  if (*h >= 2 && *w >= 2 && take(b, 3) == 0) { /* a 2x2 pool */
    char po[32];
    const int64_t kern[2] = {2, 2};
    snprintf(po, sizeof po, "%s.pool", name);
    const char *pi[1] = {cur}, *pout[1] = {po};
    PqNode *pn = pq_graph_add_node(g, take(b, 2) ? "maxpool2d" : "avgpool2d", po, 1, pi, 1, pout);
    pq_node_set_ints(pn, "kernel", 2, kern);
    snprintf(cur, cur_size, "%s", po);
    *h /= 2, *w /= 2;
  }
  return TRUE;
}

/* A chain of 1..4 elementwise ops on value `cur` of n values a sample: binary ops with a model tensor of n values
 * or one (either side), and activations; `cur` becomes its output. (What the CPU backend runs as one pass.) */
static void add_elementwise(PqModel *m, Bytes *b, int l, char *cur, size_t cur_size, int64_t n) {
  static const char *const ops[] = {"mul", "add", "sub", "div", "sigmoid", "clip", "round", "tanh", "leaky_relu", "maximum"};
  int k = 1 + (int)take(b, 4);
  for (int i = 0; i < k; i++) {
    const char *op = ops[take(b, G_N_ELEMENTS(ops))];
    char name[32], out[40], tn[40];
    snprintf(name, sizeof name, "ew%d_%d", l + 1, i);
    snprintf(out, sizeof out, "%s.out", name);
    snprintf(tn, sizeof tn, "%s.t", name);
    const int binary = !strcmp(op, "mul") || !strcmp(op, "add") || !strcmp(op, "sub") || !strcmp(op, "div") || !strcmp(op, "maximum");
    if (binary) {
      int64_t ts[1] = {take(b, 2) ? n : 1};
      add_tensor(m, tn, 1, ts, !strcmp(op, "div") ? W_CONST : W_NORMAL, FALSE, take(b, 256)); /* (a divisor of 0.25) */
    }
    const int first = binary && strcmp(op, "div") && take(b, 3) == 0; /* tensor op x */
    const char *ins[2] = {first ? tn : cur, first ? cur : tn}, *outs[1] = {out};
    PqNode *node = pq_graph_add_node(pq_model_graph(m), op, name, binary ? 2 : 1, ins, 1, outs);
    if (!strcmp(op, "clip")) pq_node_set_float(node, "min", -1.0), pq_node_set_float(node, "max", 2.0);
    snprintf(cur, cur_size, "%s", out);
  }
}

/* The model the bytes describe; *mode gets its weights' kind, *in_numel the input's values a sample. */
static PqModel *make_model(Bytes *b, int *mode, int64_t *in_numel) {
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  *mode = (int)take(b, W_MODES + 3); /* ordinary weights three times in ten */
  if (*mode >= W_MODES) *mode = W_NORMAL;
  gboolean bf16 = take(b, 4) == 0;
  char cur[48] = "x"; /* the value the next layer reads: the graph's input first */
  int64_t width;
  if (take(b, 2) == 0) { /* MLP */
    width = 1 + take(b, 48);
    int64_t is[2] = {-1, width};
    pq_graph_add_input(g, cur, 2, is);
    *in_numel = width;
  } else { /* one or two conv blocks, flatten */
    int64_t c = 1 + take(b, 4), h = 1 + take(b, 10), w = 1 + take(b, 10);
    int64_t is[4] = {-1, c, h, w};
    pq_graph_add_input(g, cur, 4, is);
    *in_numel = c * h * w;
    int blocks = 1 + (int)take(b, 2);
    gboolean valid = TRUE;
    for (int k = 0; k < blocks && valid; k++) valid = add_conv_block(m, b, k, cur, sizeof cur, &c, &h, &w, *mode, bf16);
    const char *fin[1] = {cur}, *fout[1] = {"flat"};
    pq_graph_add_node(g, "flatten", "flatten", 1, fin, 1, fout);
    snprintf(cur, sizeof cur, "flat");
    width = valid ? c * h * w : 1; /* (an invalid shape: the graph is refused later) */
  }
  int layers = 1 + (int)take(b, 3);
  for (int l = 0; l < layers; l++) {
    int64_t n = l == layers - 1 ? 1 + take(b, 12) : 1 + take(b, 48);
    char name[16], out[32];
    snprintf(name, sizeof name, "fc%d", l + 1);
    snprintf(out, sizeof out, "fc%d.out", l + 1);
    add_linear(m, b, name, cur, out, width, n, *mode, bf16);
    snprintf(cur, sizeof cur, "%s", out);
    if (l < layers - 1 && take(b, 4)) {
      char r[32];
      snprintf(r, sizeof r, "relu%d", l + 1);
      const char *ri[1] = {out}, *ro[1] = {r};
      pq_graph_add_node(g, "relu", r, 1, ri, 1, ro);
      snprintf(cur, sizeof cur, "%s", r);
    }
    if (l < layers - 1 && take(b, 4) == 0) add_elementwise(m, b, l, cur, sizeof cur, n);
    width = n;
  }
  pq_graph_add_output(g, cur);
  return m;
}

/* Values for a plugin's options from its schema: each option set one time in two, within its range. */
static gboolean set_options(PqPipeline *p, guint stage, const char *schema, Bytes *b, GError **error) {
  if (!schema) return TRUE;
  g_autoptr(JsonParser) jp = json_parser_new();
  if (!json_parser_load_from_data(jp, schema, -1, NULL)) abort(); /* a loaded plugin's schema is valid JSON */
  JsonObject *o = json_node_get_object(json_parser_get_root(jp));
  g_autoptr(GList) keys = json_object_get_members(o);
  char target[16];
  snprintf(target, sizeof target, "%u", stage);
  for (GList *l = keys; l; l = l->next) {
    if (take(b, 2) == 0) continue;
    JsonObject *d = json_object_get_object_member(o, l->data);
    const char *type = json_object_get_string_member_with_default(d, "type", "");
    double lo = json_object_has_member(d, "minimum") ? json_object_get_double_member(d, "minimum") : 0;
    double hi = json_object_has_member(d, "maximum") ? json_object_get_double_member(d, "maximum") : lo + 100;
    char value[64] = "";
    if (!strcmp(type, "boolean")) {
      snprintf(value, sizeof value, "%s", take(b, 2) ? "true" : "false");
    } else if (!strcmp(type, "integer")) { /* small values mostly: lo + 0..7, or up to 2^k above lo */
      double span = take(b, 2) ? (double)take(b, 8) : (double)((1u << take(b, 12)) - 1);
      snprintf(value, sizeof value, "%.0f", fmin(lo + span, hi));
    } else if (!strcmp(type, "number")) {
      snprintf(value, sizeof value, "%.6g", lo + (hi - lo) * take(b, 256) / 255.0);
    } else if (json_object_has_member(d, "enum")) {
      JsonArray *e = json_object_get_array_member(d, "enum");
      snprintf(value, sizeof value, "%s", json_array_get_string_element(e, take(b, json_array_get_length(e))));
    } else {
      continue; /* free text (layer patterns): left at its default */
    }
    if (!pq_pipeline_set_option(p, target, l->data, value, error)) return FALSE;
  }
  return TRUE;
}

/* A NumPy dataset of 24 samples of `per` float32 values, labels 0..2, in `dir`. */
static PqDataset *calibration_set(const char *dir, int64_t per, guint32 seed) {
  enum { N = 24 };
  GRand *r = g_rand_new_with_seed(seed);
  g_autofree float *x = g_new(float, N * per);
  guint8 y[N];
  for (int64_t i = 0; i < N * per; i++) x[i] = (float)g_rand_double(r);
  for (int i = 0; i < N; i++) y[i] = (guint8)(i % 3);
  g_rand_free(r);
  g_autofree char *shape = g_strdup_printf("(%d, %lld)", N, (long long)per);
  g_autofree char *ip = pq_test_write_npy(dir, "cal-images.npy", "<f4", "False", shape, FALSE, x, sizeof(float) * (gsize)(N * per));
  g_autofree char *lp = pq_test_write_npy(dir, "cal-labels.npy", "|u1", "False", "(24,)", FALSE, y, N);
  GError *err = NULL;
  PqDataset *ds = pq_dataset_load_npy(ip, lp, &err);
  if (!ds) abort(); /* the files written just above */
  return ds;
}

/* The model prepared and run once on `x` at `batch`: TRUE with `y` filled, or FALSE having said why. */
static gboolean prepare_and_run(PqPlugin *cpu, const PqModel *m, const PqOptions *o, int threads, int64_t batch, const float *x, float **y,
                                int64_t *out_numel) {
  GError *err = NULL;
  PqBackend *be = pq_backend_prepare(cpu, m, threads, batch, o, &err);
  if (!be) {
    must_say_why(err);
    return FALSE;
  }
  *out_numel = pq_backend_output_numel(be);
  *y = g_new0(float, batch * *out_numel);
  gboolean ok = pq_backend_run_f32(be, x, batch, *y, &err);
  if (!ok) must_say_why(err);
  pq_backend_free(be);
  return ok;
}

static char dir[64]; /* the process's own folder for the files it writes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static PqRegistry *reg;
  static PqPlugin *cpu, *compressors[32];
  static int n_compressors;
  if (!reg) {
    snprintf(dir, sizeof dir, "/tmp/pquant-fuzz-compress-%d", (int)getpid());
    g_mkdir_with_parents(dir, 0700);
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_ERROR);
    reg = pq_registry_new();
    pq_registry_scan_dir(reg, FUZZ_PLUGIN_DIR);
    for (guint i = 0; i < pq_registry_n_plugins(reg); i++) {
      PqPlugin *p = pq_registry_plugin(reg, i);
      if (pq_plugin_desc(p)->kind == PQ_KIND_COMPRESSOR && n_compressors < 32) compressors[n_compressors++] = p;
    }
    cpu = pq_registry_find(reg, "cpu", PQ_KIND_BACKEND, NULL);
    if (!cpu || n_compressors < 2) {
      fprintf(stderr, "fuzz-compress: no CPU backend or compressors in %s\n", FUZZ_PLUGIN_DIR);
      abort();
    }
  }
  Bytes b = {data, size, 0};
  int mode;
  int64_t in_numel;
  PqModel *m = make_model(&b, &mode, &in_numel);
  g_autoptr(PqPipeline) p = pq_pipeline_new(reg);
  GError *err = NULL;
  int stages = 1 + (int)take(&b, 2);
  gboolean ok = TRUE, exact = TRUE;
  for (int s = 0; s < stages && ok; s++) {
    PqPlugin *c = compressors[take(&b, (unsigned)n_compressors)];
    const PqCompressorVTable *vt = pq_plugin_desc(c)->vtable;
    exact = exact && (vt->flags & PQ_COMPRESSOR_EXACT);
    ok = pq_pipeline_add_stage(p, c, &err) && set_options(p, (guint)s + 1, pq_plugin_options_schema(c), &b, &err);
  }
  if (verbose) {
    g_autofree char *chain = pq_pipeline_to_json(p);
    fprintf(stderr, "input of %zu bytes: weights %d, chain %s\n", size, mode, chain);
  }
  PqDataset *cal = ok ? calibration_set(dir, in_numel, take(&b, 256)) : NULL;
  if (cal) pq_pipeline_set_calibration(p, cal, 16);
  /* the backend's options, threads and batch; the inputs */
  g_autoptr(PqOptions) bo = pq_options_new(pq_plugin_options_schema(cpu), "cpu", NULL);
  if (!bo) abort();
  g_auto(GStrv) kernels = pq_options_choices(bo, "kernels");
  const char *kernel = kernels ? kernels[take(&b, g_strv_length(kernels))] : NULL, *simd = take(&b, 4) ? "true" : "false";
  const gboolean fuse = take(&b, 4) != 0;
  if ((kernel && !pq_options_set(bo, "kernels", kernel, NULL)) || !pq_options_set(bo, "simd", simd, NULL) ||
      !pq_options_set(bo, "fuse_elementwise", fuse ? "true" : "false", NULL))
    abort();
  int threads = 1 + (int)take(&b, 2);
  int64_t batch = 1 + take(&b, 19);
  float *x = g_new(float, batch * in_numel);
  for (int64_t i = 0; i < batch * in_numel; i++) x[i] = (float)((i * 37) % 101) / 101.0f;
  float *y0 = NULL, *y1 = NULL;
  int64_t n0 = 0, n1 = 0;
  gboolean base = ok && prepare_and_run(cpu, m, bo, threads, batch, x, &y0, &n0);
  if (base) { /* elementwise chains as one pass or an op at a time: the same values, bit for bit */
    g_autoptr(PqOptions) flip = pq_options_new(pq_plugin_options_schema(cpu), "cpu", NULL);
    float *yf = NULL;
    int64_t nf = 0;
    if (!flip || (kernel && !pq_options_set(flip, "kernels", kernel, NULL)) || !pq_options_set(flip, "simd", simd, NULL) ||
        !pq_options_set(flip, "fuse_elementwise", fuse ? "false" : "true", NULL))
      abort();
    if (!prepare_and_run(cpu, m, flip, threads, batch, x, &yf, &nf) || nf != n0 || memcmp(yf, y0, sizeof(float) * (size_t)(batch * n0))) {
      fprintf(stderr, "fuzz-compress: fuse_elementwise=%s changed the outputs\n", fuse ? "false" : "true");
      abort();
    }
    g_free(yf);
  }
  PqModel *c = ok ? pq_pipeline_run(p, m, &err) : NULL;
  n_base_refused += ok && !base;
  if (!ok || !c) {
    n_chain_refused++;
    must_say_why(err);
  } else {
    g_autofree char *path = g_build_filename(dir, "compressed.safetensors", NULL);
    if (!pq_model_save(c, path, &err)) abort(); /* a model a compressor returns can be written */
    PqModel *back = pq_model_load(path, &err);
    if (!back) {
      fprintf(stderr, "fuzz-compress: the compressed model does not load back: %s\n", err->message);
      abort();
    }
    gboolean ran = prepare_and_run(cpu, back, bo, threads, batch, x, &y1, &n1);
    n_ran += ran;
    if (base && !ran) {
      fprintf(stderr, "fuzz-compress: the original model runs, the compressed one does not\n");
      abort();
    }
    if (base && ran && mode == W_NORMAL) {
      gboolean finite0 = TRUE, finite1 = TRUE;
      for (int64_t i = 0; i < batch * n0; i++) finite0 &= isfinite(y0[i]) != 0;
      for (int64_t i = 0; i < batch * n1; i++) finite1 &= isfinite(y1[i]) != 0;
      if (n0 != n1 || (finite0 && !finite1)) {
        fprintf(stderr, "fuzz-compress: outputs %lld a sample (was %lld), finite before: %d, after: %d\n", (long long)n1, (long long)n0,
                finite0, finite1);
        abort();
      }
      double off = 0, top = 0;
      for (int64_t i = 0; exact && finite0 && i < batch * n0; i++) {
        off = fmax(off, fabs((double)y1[i] - y0[i]));
        top = fmax(top, fabs((double)y0[i]));
      }
      if (off > 1e-4 * top) {
        fprintf(stderr, "fuzz-compress: a chain of exact stages changed the outputs by %g (largest %g)\n", off, top);
        abort();
      }
    }
    pq_model_unref(back);
    pq_model_unref(c);
    g_unlink(path);
  }
  g_free(y0);
  g_free(y1);
  g_free(x);
  if (cal) pq_dataset_unref(cal);
  pq_model_unref(m);
  return 0;
}

#ifdef FUZZ_STANDALONE
/* The test suite's form: `--inputs N` pseudo-random inputs of 16..400 bytes from `--seed S`. */
int main(int argc, char **argv) {
  long inputs = 300, seed = 1, only = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--inputs")) inputs = strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--only")) only = strtol(argv[i + 1], NULL, 10); /* the input of that number alone */
    else if (!strcmp(argv[i], "--seed")) seed = strtol(argv[i + 1], NULL, 10);
  }
  verbose = g_getenv("FUZZ_VERBOSE") != NULL;
  GRand *r = g_rand_new_with_seed((guint32)seed);
  uint8_t buf[400];
  for (long k = 0; k < inputs; k++) {
    size_t n = (size_t)g_rand_int_range(r, 16, (gint32)sizeof buf + 1);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)g_rand_int_range(r, 0, 256);
    if (only >= 0 && k != only) continue;
    if (verbose) fprintf(stderr, "#%ld ", k);
    LLVMFuzzerTestOneInput(buf, n);
  }
  g_rand_free(r);
  const char *files[] = {"cal-images.npy", "cal-labels.npy", "compressed.safetensors"};
  for (size_t i = 0; i < G_N_ELEMENTS(files) && dir[0]; i++) {
    g_autofree char *f = g_build_filename(dir, files[i], NULL);
    g_unlink(f);
  }
  if (dir[0]) g_rmdir(dir);
  printf("fuzz-compress: %ld inputs from seed %ld, no failure: %ld graphs refused, %ld chains refused, %ld compressed models run\n",
         inputs, seed, n_base_refused, n_chain_refused, n_ran);
  return 0;
}
#endif
