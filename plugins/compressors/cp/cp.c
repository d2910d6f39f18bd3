/* cp.c — CP (CANDECOMP/PARAFAC) decomposition of conv2d kernels (Lebedev et al. 2015): W [O, C, kh, kw] ≈
 * Σ_r a_r ∘ b_r ∘ h_r ∘ w_r, rank R, found by alternating least squares. The layer becomes four convolutions: a
 * 1×1 conv C → R (the b_r), a depthwise kh×1 conv over the R channels (the h_r; the layer's vertical stride,
 * pads and dilation), a depthwise 1×kw conv (the w_r; the horizontal ones) and a 1×1 conv R → O (the a_r, with
 * the layer's bias) — every one an ordinary conv2d that every backend runs and finetune trains. */
#include <pquant/pq-plugin.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t rank, min_rank;
  double param_fraction, tolerance, ridge;
  int iters;
  uint64_t seed;
} Settings;

/* The kernel's four unfoldings, each [dim_n, product of the others] with the other indices in their order. */
typedef struct {
  int64_t dim[4], numel, rank;
  float *unf[4];
  float *f[4];     /* factors [dim_n, R] */
  float *lambda;   /* column norms taken out of the factors */
} Cp;

static void cp_clear(Cp *cp) {
  for (int n = 0; n < 4; n++) {
    free(cp->unf[n]);
    free(cp->f[n]);
  }
  free(cp->lambda);
}

static uint64_t next_random(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Khatri–Rao product of the factors other than `skip`, rows in the unfolding's column order, into kr [rows, R]. */
static void khatri_rao(const Cp *cp, int skip, float *kr) {
  const int64_t R = cp->rank;
  int modes[3], nm = 0;
  for (int n = 0; n < 4; n++)
    if (n != skip) modes[nm++] = n;
  int64_t rows = cp->numel / cp->dim[skip];
  for (int64_t i = 0; i < rows; i++) {
    int64_t i2 = i % cp->dim[modes[2]], i1 = (i / cp->dim[modes[2]]) % cp->dim[modes[1]], i0 = i / (cp->dim[modes[2]] * cp->dim[modes[1]]);
    const float *a = cp->f[modes[0]] + i0 * R, *b = cp->f[modes[1]] + i1 * R, *c = cp->f[modes[2]] + i2 * R;
    for (int64_t r = 0; r < R; r++) kr[i * R + r] = a[r] * b[r] * c[r];
  }
}

/* Solve X V = M for X (V [R, R] symmetric positive definite after a ridge), X overwriting M [rows, R]. */
static int solve_gram(float *v, int64_t R, double ridge, float *m, int64_t rows) {
  if (pq_cholesky_damped(v, R, ridge) != 0) return -1;
  /* X L Lᵀ = M: X = M L⁻ᵀ L⁻¹ */
  cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)rows, (int)R, 1.0f, v, (int)R, m, (int)R);
  cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)rows, (int)R, 1.0f, v, (int)R, m, (int)R);
  return 0;
}

/* V = the Hadamard product of the Gram matrices FᵀF of the factors other than `skip` (-1: of all four); g is
 * scratch [R, R]. */
static void gram_hadamard(const Cp *cp, int skip, float *v, float *g) {
  const int64_t R = cp->rank;
  for (int64_t i = 0; i < R * R; i++) v[i] = 1.0f;
  for (int m = 0; m < 4; m++) {
    if (m == skip) continue;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)R, (int)R, (int)cp->dim[m], 1.0f, cp->f[m], (int)R, cp->f[m], (int)R, 0.0f, g,
                (int)R);
    for (int64_t i = 0; i < R * R; i++) v[i] *= g[i];
  }
}

/* ALS sweeps until the relative error stops falling by `tolerance` (or `iters`). Returns the relative error, or
 * -1 on failure. */
static double cp_als(Cp *cp, const float *w, const Settings *st, int *sweeps, PqPluginError *err) {
  const int64_t R = cp->rank, *d = cp->dim;
  int64_t maxrows = 0;
  for (int n = 0; n < 4; n++)
    if (cp->numel / d[n] > maxrows) maxrows = cp->numel / d[n];
  /* mt: the last mode's MTTKRP, kept from its update for the error (the other factors have not moved since) */
  float *kr = malloc(sizeof(float) * (size_t)(maxrows * R)), *v = malloc(sizeof(float) * (size_t)(R * R)),
        *g = malloc(sizeof(float) * (size_t)(R * R)), *mt = malloc(sizeof(float) * (size_t)(d[3] * R));
  double norm = 0, prev = INFINITY, rel = -1;
  if (!kr || !v || !g || !mt) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int64_t i = 0; i < cp->numel; i++) norm += (double)w[i] * w[i];
  /* unfoldings: mode n's index first, the others in order */
  for (int64_t i = 0; i < cp->numel; i++) {
    int64_t idx[4], t = i;
    for (int n = 3; n >= 0; n--) {
      idx[n] = t % d[n];
      t /= d[n];
    }
    for (int n = 0; n < 4; n++) {
      int64_t col = 0;
      for (int m = 0; m < 4; m++)
        if (m != n) col = col * d[m] + idx[m];
      cp->unf[n][idx[n] * (cp->numel / d[n]) + col] = w[i];
    }
  }
  /* start: seeded normal-ish values (sums of uniforms) */
  uint64_t seed = st->seed;
  for (int n = 0; n < 4; n++)
    for (int64_t i = 0; i < d[n] * R; i++) {
      double u = 0;
      for (int k = 0; k < 4; k++) u += (double)(next_random(&seed) >> 11) / 9007199254740992.0;
      cp->f[n][i] = (float)(u - 2.0);
    }
  for (int it = 0; it < st->iters; it++) {
    for (int n = 0; n < 4; n++) { /* F_n = unfolding · Khatri–Rao of the others, solved through V */
      int64_t rows = cp->numel / d[n];
      gram_hadamard(cp, n, v, g);
      khatri_rao(cp, n, kr);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d[n], (int)R, (int)rows, 1.0f, cp->unf[n], (int)rows, kr, (int)R, 0.0f,
                  cp->f[n], (int)R);
      if (n == 3) memcpy(mt, cp->f[n], sizeof(float) * (size_t)(d[n] * R));
      if (solve_gram(v, R, st->ridge, cp->f[n], d[n]) != 0) {
        pq_plugin_error_set(err, PQ_ERR_INTERNAL, "the ALS normal equations are singular (raise ridge)");
        rel = -1;
        goto out;
      }
      /* column norms into lambda (the last mode keeps them in the end) */
      for (int64_t r = 0; r < R; r++) {
        double sn = 0;
        for (int64_t i = 0; i < d[n]; i++) sn += (double)cp->f[n][i * R + r] * cp->f[n][i * R + r];
        sn = sqrt(sn);
        cp->lambda[r] = (float)sn;
        if (sn > 0)
          for (int64_t i = 0; i < d[n]; i++) cp->f[n][i * R + r] /= (float)sn;
      }
    }
    /* error: |W|² − 2⟨W, Ŵ⟩ + |Ŵ|², from the last mode's MTTKRP and the Gram matrices */
    double inner = 0, self = 0;
    for (int64_t i = 0; i < d[3]; i++)
      for (int64_t r = 0; r < R; r++) inner += (double)mt[i * R + r] * cp->f[3][i * R + r] * cp->lambda[r];
    gram_hadamard(cp, -1, v, g);
    for (int64_t a = 0; a < R; a++)
      for (int64_t b = 0; b < R; b++) self += (double)cp->lambda[a] * cp->lambda[b] * v[a * R + b];
    double e2 = norm - 2 * inner + self;
    rel = norm > 0 ? sqrt(e2 > 0 ? e2 / norm : 0) : 0;
    *sweeps = it + 1;
    if (prev - rel < st->tolerance * (prev > 1 ? 1 : prev)) break;
    prev = rel;
  }
  /* lambda into the output factor */
  for (int64_t i = 0; i < d[0]; i++)
    for (int64_t r = 0; r < R; r++) cp->f[0][i * R + r] *= cp->lambda[r];
out:
  free(kr);
  free(v);
  free(g);
  free(mt);
  return rel;
}

/* The kernel the factors make, [O, C, kh, kw]. */
static void cp_dense(const Cp *cp, float *w) {
  const int64_t R = cp->rank, *d = cp->dim;
  for (int64_t o = 0; o < d[0]; o++)
    for (int64_t c = 0; c < d[1]; c++)
      for (int64_t i = 0; i < d[2]; i++)
        for (int64_t j = 0; j < d[3]; j++) {
          double s = 0;
          for (int64_t r = 0; r < R; r++) s += (double)cp->f[0][o * R + r] * cp->f[1][c * R + r] * cp->f[2][i * R + r] * cp->f[3][j * R + r];
          w[((o * d[1] + c) * d[2] + i) * d[3] + j] = (float)s;
        }
}

static void add_weight(PqModel *m, const char *name, int64_t a, int64_t b, int64_t h, int64_t w, const float *data, int transpose_from) {
  int64_t shape[4] = {a, b, h, w};
  PqTensor *t = pq_tensor_new(name, PQ_DTYPE_F32, 4, shape);
  float *dst = pq_tensor_mutable_data(t);
  int64_t n = a * b * h * w;
  if (transpose_from > 0) /* a factor [dim, R] laid out as [R, dim]: dst[r·dim + i] = f[i·R + r] */
    for (int64_t r = 0; r < a; r++)
      for (int64_t i = 0; i < n / a; i++) dst[r * (n / a) + i] = data[i * a + r];
  else
    memcpy(dst, data, sizeof(float) * (size_t)n);
  pq_model_set_tensor(m, t);
  pq_tensor_unref(t);
}

/* A conv2d node `out` (also its name) = conv(in, weight) with this geometry. */
static void add_conv(PqGraph *g, const char *in, const char *weight, const char *out, const int64_t *strides, const int64_t *dilations,
                     const int64_t *pads, int64_t groups) {
  const char *ins[2] = {in, weight}, *outs[1] = {out};
  PqNode *n = pq_graph_add_node(g, "conv2d", out, 2, ins, 1, outs);
  pq_node_set_ints(n, "strides", 2, strides);
  pq_node_set_ints(n, "dilations", 2, dilations);
  pq_node_set_ints(n, "pads", 4, pads);
  if (groups > 1) pq_node_set_int(n, "groups", groups);
}

/* Rewire conv node `idx` into the four convolutions (see the top of the file). */
static void rewrite(PqModel *m, size_t idx, const char *wname, const Cp *cp) {
  PqGraph *g = pq_model_graph(m);
  PqNode *node = pq_graph_node(g, idx);
  const int64_t R = cp->rank, O = cp->dim[0], C = cp->dim[1], kh = cp->dim[2], kw = cp->dim[3];
  char layer[256], wn[3][288], mid[3][288], input[288];
  snprintf(layer, sizeof layer, "%s", pq_node_name(node)[0] ? pq_node_name(node) : wname);
  snprintf(input, sizeof input, "%s", pq_node_input(node, 0));
  const char *suffix[3] = {"cp_in", "cp_h", "cp_w"};
  char base[300], outw[288];
  for (int k = 0; k < 3; k++) { /* names no other tensor, node or value has (a layer decomposed twice, a shared weight) */
    snprintf(base, sizeof base, "%s.%s", wname, suffix[k]);
    pq_model_unique_name(m, base, wn[k], sizeof wn[k]);
    snprintf(base, sizeof base, "%s.%s", layer, suffix[k]);
    pq_model_unique_name(m, base, mid[k], sizeof mid[k]);
  }
  snprintf(base, sizeof base, "%s.cp_out", wname);
  pq_model_unique_name(m, base, outw, sizeof outw);
  add_weight(m, wn[0], R, C, 1, 1, cp->f[1], 1);
  add_weight(m, wn[1], R, 1, kh, 1, cp->f[2], 1);
  add_weight(m, wn[2], R, 1, 1, kw, cp->f[3], 1);
  add_weight(m, outw, O, R, 1, 1, cp->f[0], 0);
  size_t n;
  const int64_t *sv = pq_node_get_ints(node, "strides", &n), *dv = pq_node_get_ints(node, "dilations", &n), *pv = pq_node_get_ints(node, "pads", &n);
  int64_t s[2] = {sv ? sv[0] : 1, sv ? sv[1] : 1}, dl[2] = {dv ? dv[0] : 1, dv ? dv[1] : 1};
  int64_t p[4] = {pv ? pv[0] : 0, pv ? pv[1] : 0, pv ? pv[2] : 0, pv ? pv[3] : 0};
  int64_t one[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
  int64_t s_h[2] = {s[0], 1}, d_h[2] = {dl[0], 1}, p_h[4] = {p[0], 0, p[2], 0};
  int64_t s_w[2] = {1, s[1]}, d_w[2] = {1, dl[1]}, p_w[4] = {0, p[1], 0, p[3]};
  add_conv(g, input, wn[0], mid[0], one, one, zero4, 1);
  add_conv(g, mid[0], wn[1], mid[1], s_h, d_h, p_h, R);
  add_conv(g, mid[1], wn[2], mid[2], s_w, d_w, p_w, R);
  node = pq_graph_node(g, idx); /* adding may move the node array */
  pq_node_set_ints(node, "strides", 2, one);
  pq_node_set_ints(node, "dilations", 2, one);
  pq_node_set_ints(node, "pads", 4, zero4);
  pq_node_set_input(node, 0, mid[2]);
  pq_node_set_input(node, 1, outw);
  pq_model_remove_tensor_if_unused(m, wname);
}

static PqStatus cp_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  (void)cal;
  Settings st = {
      .rank = pq_options_get_int(o, "rank", 0),
      .min_rank = pq_options_get_int(o, "min_rank", 4),
      .param_fraction = pq_options_get_float(o, "param_fraction", 0.25),
      .tolerance = pq_options_get_float(o, "tolerance", 1e-5),
      .ridge = pq_options_get_float(o, "ridge", 1e-6),
      .iters = (int)pq_options_get_int(o, "iters", 200),
      .seed = (uint64_t)pq_options_get_int(o, "seed", 1),
  };
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  size_t n_nodes = pq_graph_n_nodes(g);
  char why[200], detail[200];
  for (size_t i = 0; i < n_nodes; i++) {
    PqNode *node = pq_graph_node(g, i);
    if (strcmp(pq_node_op(node), "conv2d") != 0 || pq_node_n_inputs(node) < 2) continue;
    char layer[256];
    snprintf(layer, sizeof layer, "%s", pq_node_name(node));
    PqTensor *w = pq_layer_weight(m, node, o, "cp", "decompose before quantizing");
    if (!w) continue;
    const int64_t *ws = pq_tensor_shape(w);
    Cp cp = {.dim = {ws[0], ws[1], ws[2], ws[3]}, .numel = pq_tensor_numel(w)};
    if (pq_node_get_int(node, "groups", 1) != 1) {
      pq_model_record_skip(m, "cp", layer, "grouped convolution");
      continue;
    }
    if (ws[2] * ws[3] == 1) {
      pq_model_record_skip(m, "cp", layer, "a 1x1 convolution is a matrix: low_rank factors it");
      continue;
    }
    int64_t per_rank = ws[0] + ws[1] + ws[2] + ws[3];
    cp.rank = st.rank > 0 ? st.rank : (int64_t)floor(st.param_fraction * (double)cp.numel / (double)per_rank);
    if (cp.rank < 1 || (st.rank <= 0 && cp.rank < st.min_rank) || cp.rank * per_rank >= cp.numel) {
      if (cp.rank < 1) snprintf(why, sizeof why, "the rank would be 0");
      else if (st.rank <= 0 && cp.rank < st.min_rank)
        snprintf(why, sizeof why, "param_fraction %g gives rank %lld, below min_rank %lld (a %lld x %lld x %lldx%lld kernel)", st.param_fraction,
                 (long long)cp.rank, (long long)st.min_rank, (long long)ws[0], (long long)ws[1], (long long)ws[2], (long long)ws[3]);
      else snprintf(why, sizeof why, "rank %lld would not shrink %lld x %lld x %lldx%lld (%lld >= %lld weights)", (long long)cp.rank,
                    (long long)ws[0], (long long)ws[1], (long long)ws[2], (long long)ws[3], (long long)(cp.rank * per_rank), (long long)cp.numel);
      pq_model_record_skip(m, "cp", layer, why);
      continue;
    }
    float *wf = pq_layer_weight_f32(node, w, err);
    if (!wf) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    int ok = 1;
    for (int n = 0; n < 4; n++) {
      cp.unf[n] = malloc(sizeof(float) * (size_t)cp.numel);
      cp.f[n] = malloc(sizeof(float) * (size_t)(cp.dim[n] * cp.rank));
      ok = ok && cp.unf[n] && cp.f[n];
    }
    cp.lambda = malloc(sizeof(float) * (size_t)cp.rank);
    int sweeps = 0;
    if (!ok || !cp.lambda) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    if (!ok || !cp.lambda || cp_als(&cp, wf, &st, &sweeps, err) < 0) {
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      cp_clear(&cp);
      free(wf);
      pq_model_unref(m); /* last: `layer` belongs to it */
      return code;
    }
    float *approx = malloc(sizeof(float) * (size_t)cp.numel);
    cp_dense(&cp, approx);
    double rel, sqnr;
    pq_error_stats(wf, approx, cp.numel, &rel, &sqnr);
    free(approx);
    char wname[256];
    snprintf(wname, sizeof wname, "%s", pq_tensor_name(w));
    int64_t bytes_before = (int64_t)pq_tensor_nbytes(w);
    rewrite(m, i, wname, &cp);
    snprintf(detail, sizeof detail, "CP rank %lld, %d ALS sweeps", (long long)cp.rank, sweeps);
    pq_model_record_layer(m, "cp", layer, detail, cp.numel, cp.rank * per_rank, bytes_before, cp.rank * per_rank * (int64_t)sizeof(float), rel,
                          sqnr);
    cp_clear(&cp);
    free(wf);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable cp_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = cp_compress,
};

static const PqPluginDesc cp_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "cp",
    .version = "1.0.0",
    .description = "CP decomposition of conv2d kernels by ALS: 1x1 conv, depthwise kx1 and 1xk convs, 1x1 conv",
    .options_schema =
        "{\"rank\": {\"type\": \"integer\", \"minimum\": 1, \"description\": \"CP rank (default: from param_fraction)\"},"
        " \"param_fraction\": {\"type\": \"number\", \"minimum\": 0.000001, \"maximum\": 1, \"default\": 0.25,"
        "  \"description\": \"the largest rank whose factors hold at most this fraction of the kernel's weights\"},"
        " \"min_rank\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 4,"
        "  \"description\": \"a layer whose param_fraction rank is below this is left as it is (not with an explicit rank)\"},"
        " \"iters\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10000, \"default\": 200, \"description\": \"ALS sweeps at most\"},"
        " \"tolerance\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, \"default\": 0.00001,"
        "  \"description\": \"stop when a sweep lowers the relative error by less than this\"},"
        " \"ridge\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, \"default\": 0.000001,"
        "  \"description\": \"added to the normal equations' diagonal, relative to its mean\"},"
        " \"seed\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 1}}",
    .vtable = &cp_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &cp_desc; }
