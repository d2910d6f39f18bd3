/* tucker.c — Tucker-2 decomposition of conv2d kernels (Kim et al. 2016): W [O, C, kh, kw] ≈ G ×₀ U_out ×₁ U_in
 * with U_in [C, r_in], U_out [O, r_out] column-orthonormal and the core G [r_out, r_in, kh, kw]. The layer
 * becomes three convolutions: a 1×1 conv C → r_in (U_inᵀ), the kh × kw core r_in → r_out with the layer's
 * strides, pads and dilations, and a 1×1 conv r_out → O (U_out) with the layer's bias. A mode kept at full
 * size needs no 1×1 conv. The factors start from a sequentially truncated HOSVD and are refined by alternating
 * least squares (HOOI), each iteration of which cannot raise the error; optionally whitened by calibration data. */
#include <pquant/pq-plugin.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t rank_in, rank_out;
  double ratio, energy, damping;
  int iters, data_aware;
} Settings;

static int64_t calibration_wanted(const PqOptions *o) { return pq_options_get_bool(o, "data_aware", 0) ? 65536 : 0; /* as many as given */ }

/* The whitening factors of a conv's inputs from calibration data: l, the Cholesky factor of its patches' Gram
 * matrix [c·t, c·t] (the rows im2col makes), and l_in, that of its channel covariance [c, c] (the Gram matrix's
 * diagonal blocks over the taps, averaged), each with the ridge. */
static int whitening(const Settings *st, const PqCalibration *cal, const PqNode *node, int64_t c, int64_t t, float **l, float **l_in,
                     PqPluginError *err) {
  int64_t k = 0;
  *l_in = NULL;
  *l = pq_calibration_gram(cal, NULL, node, &k, NULL, err);
  if (!*l) return -1;
  if (k != c * t) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "the input Gram matrix is %lld wide, the kernel's patches %lld", (long long)k, (long long)(c * t));
    return -1;
  }
  *l_in = calloc((size_t)(c * c), sizeof(float));
  if (!*l_in) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    return -1;
  }
  for (int64_t a = 0; a < c; a++)
    for (int64_t b = 0; b < c; b++) {
      double sum = 0;
      for (int64_t i = 0; i < t; i++) sum += (*l)[(a * t + i) * k + b * t + i];
      (*l_in)[a * c + b] = (float)(sum / (double)t);
    }
  if (pq_cholesky_damped(*l, k, st->damping) != 0 || pq_cholesky_damped(*l_in, c, st->damping) != 0) {
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "the input covariance is not positive definite (raise damping)");
    return -1;
  }
  return 0;
}

/* The first k left singular vectors of A [m, n] into u [m, k]; k = m gives the identity (no truncation). */
static int left_basis(const float *a, int64_t m, int64_t n, int64_t k, float *u, PqPluginError *err) {
  if (k >= m) {
    memset(u, 0, sizeof(float) * (size_t)(m * m));
    for (int64_t i = 0; i < m; i++) u[i * m + i] = 1.0f;
    return 0;
  }
  float *s = malloc(sizeof(float) * (size_t)k), *vt = malloc(sizeof(float) * (size_t)(k * n));
  int rc = s && vt ? pq_svd_truncated(a, m, n, k, 0, 0, 0, 0, u, s, vt, err) : -1;
  if (!s || !vt) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
  free(s);
  free(vt);
  return rc;
}

/* Mode-1 unfolding of T [a, c, t] (row-major) into out [c, a·t]: out[ci, ai·t + ti] = T[ai, ci, ti]. */
static void unfold1(const float *tsr, int64_t a, int64_t c, int64_t t, float *out) {
  for (int64_t ai = 0; ai < a; ai++)
    for (int64_t ci = 0; ci < c; ci++) memcpy(out + ci * a * t + ai * t, tsr + (ai * c + ci) * t, sizeof(float) * (size_t)t);
}

/* T [a, c, t] ×₁ Uᵀ (U [c, r]) into out [a, r, t]: one GEMM a slice. */
static void mode1_project(const float *tsr, int64_t a, int64_t c, int64_t t, const float *u, int64_t r, float *out) {
  for (int64_t ai = 0; ai < a; ai++)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)t, (int)c, 1.0f, u, (int)r, tsr + ai * c * t, (int)t, 0.0f,
                out + ai * r * t, (int)t);
}

/* The inverse direction: T [a, r, t] ×₁ U (U [c, r]) into out [a, c, t]. */
static void mode1_expand(const float *tsr, int64_t a, int64_t r, int64_t t, const float *u, int64_t c, float *out) {
  for (int64_t ai = 0; ai < a; ai++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c, (int)t, (int)r, 1.0f, u, (int)r, tsr + ai * r * t, (int)t, 0.0f,
                out + ai * c * t, (int)t);
}

/* X [a, c, t]'s mode-1 unfolding [c, a·t] (in unf), or, with l_in, L_inᵀ times it (in tmp): the one to use. */
static const float *input_unfolding(const float *x, int64_t a, int64_t c, int64_t t, const float *l_in, float *unf, float *tmp) {
  unfold1(x, a, c, t, unf);
  if (!l_in) return unf;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c, (int)(a * t), (int)c, 1.0f, l_in, (int)c, unf, (int)(a * t), 0.0f, tmp, (int)(a * t));
  return tmp;
}

/* In place: A [rows, n] times L [n, n] (lower triangular), the whitening of the output mode. */
static void times_lower(float *a, int64_t rows, int64_t n, const float *l) {
  cblas_strmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)rows, (int)n, 1.0f, l, (int)n, a, (int)n);
}

typedef struct {
  int64_t o, c, t, ri, ro;
  float *u_in, *u_out, *core; /* [c, ri], [o, ro], [ro, ri, t] */
} Tucker;

/* W [o, c, t] ×₀ U_outᵀ into out [ro, c, t]. */
static void mode0_project(const float *w, const Tucker *tk, float *out) {
  int64_t ct = tk->c * tk->t;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)tk->ro, (int)ct, (int)tk->o, 1.0f, tk->u_out, (int)tk->ro, w, (int)ct, 0.0f, out,
              (int)ct);
}

static void tucker_clear(Tucker *tk) {
  free(tk->u_in);
  free(tk->u_out);
  free(tk->core);
}

/* The input mode from X [a, c, t] (W, or W ×₀ U_outᵀ): V = the first ri left singular vectors of X's mode-1
 * unfolding [c, a·t] — whitened, L_inᵀ times it, when l_in (the Cholesky factor of the inputs' channel
 * covariance) is given. The 1×1 conv in front is A = Vᵀ L_in⁻¹ (kept as u_in = Aᵀ [c, ri]); the core reads
 * the kernel through B = L_in V [c, ri] (b); B·A projects, obliquely, onto what the data makes matter. Without
 * l_in, A = Vᵀ and B = V. */
static int input_mode(const float *x, int64_t a, Tucker *tk, const float *l_in, float *b, float *unf, float *tmp, PqPluginError *err) {
  const int64_t c = tk->c, t = tk->t, ri = tk->ri;
  if (ri >= c) { /* every input kept: A = B = I */
    left_basis(NULL, c, 0, c, tk->u_in, err);
    memcpy(b, tk->u_in, sizeof(float) * (size_t)(c * c));
    return 0;
  }
  if (left_basis(input_unfolding(x, a, c, t, l_in, unf, tmp), c, a * t, ri, tk->u_in, err) != 0) return -1;
  memcpy(b, tk->u_in, sizeof(float) * (size_t)(c * ri));
  if (l_in) { /* Aᵀ = L_in⁻ᵀ V, B = L_in V */
    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)c, (int)ri, 1.0f, l_in, (int)c, tk->u_in, (int)ri);
    cblas_strmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)c, (int)ri, 1.0f, l_in, (int)c, b, (int)ri);
  }
  return 0;
}

/* The output mode, the input mode fixed: U_out = the first ro left singular vectors of W ×₁ Bᵀ [o, ri·t]; or,
 * whitened by l (the Cholesky factor of the patches' Gram matrix, [c·t, c·t]), of (W projected by B·A) L
 * [o, c·t], so that what the layer's outputs lose on the calibration data is what is kept smallest. */
static int output_mode(const float *w, Tucker *tk, const float *b, const float *l, float *proj, float *tmp, PqPluginError *err) {
  const int64_t o = tk->o, c = tk->c, t = tk->t, ri = tk->ri, ro = tk->ro;
  if (ro >= o) return left_basis(NULL, o, 0, o, tk->u_out, err);
  mode1_project(w, o, c, t, b, ri, proj); /* [o, ri, t] */
  if (!l) return left_basis(proj, o, ri * t, ro, tk->u_out, err);
  mode1_expand(proj, o, ri, t, tk->u_in, c, tmp); /* back to [o, c, t] through A */
  times_lower(tmp, o, c * t, l);
  return left_basis(tmp, o, c * t, ro, tk->u_out, err);
}

/* The input mode from W, the output mode from W through it (sequentially truncated HOSVD), then `iters`
 * alternating sweeps (HOOI: each mode the best for the other as it stands), then the core G = W ×₀ U_outᵀ ×₁ Bᵀ.
 * l and l_in: see output_mode and input_mode (NULL: plain Frobenius error of the kernel). */
static int tucker2(const float *w, Tucker *tk, int iters, const float *l, const float *l_in, PqPluginError *err) {
  int64_t o = tk->o, c = tk->c, t = tk->t, ri = tk->ri, ro = tk->ro;
  int64_t big = o * c * t;
  tk->u_in = malloc(sizeof(float) * (size_t)(c * c));
  tk->u_out = malloc(sizeof(float) * (size_t)(o * o));
  tk->core = malloc(sizeof(float) * (size_t)(ro * ri * t));
  float *unf = malloc(sizeof(float) * (size_t)big), *proj = malloc(sizeof(float) * (size_t)big), *tmp = malloc(sizeof(float) * (size_t)big);
  float *b = malloc(sizeof(float) * (size_t)(c * c));
  int rc = -1;
  if (!tk->u_in || !tk->u_out || !tk->core || !unf || !proj || !tmp || !b) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (input_mode(w, o, tk, l_in, b, unf, tmp, err) != 0 || output_mode(w, tk, b, l, proj, tmp, err) != 0) goto done;
  for (int it = 0; it < iters && ri < c && ro < o; it++) { /* (one mode kept whole: the other is already the best) */
    mode0_project(w, tk, proj);
    if (input_mode(proj, ro, tk, l_in, b, unf, tmp, err) != 0 || output_mode(w, tk, b, l, proj, tmp, err) != 0) goto done;
  }
  mode0_project(w, tk, proj);
  mode1_project(proj, ro, c, t, b, ri, tk->core);
  rc = 0;
done:
  free(unf);
  free(proj);
  free(tmp);
  free(b);
  return rc;
}

/* The kernel the three convolutions compute together, [o, c, t]. */
static void tucker_dense(const Tucker *tk, float *w) {
  int64_t o = tk->o, c = tk->c, t = tk->t, ri = tk->ri, ro = tk->ro;
  float *tmp = malloc(sizeof(float) * (size_t)(ro * c * t));
  mode1_expand(tk->core, ro, ri, t, tk->u_in, c, tmp); /* [ro, c, t] = G ×₁ U_in */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)o, (int)(c * t), (int)ro, 1.0f, tk->u_out, (int)ro, tmp, (int)(c * t),
              0.0f, w, (int)(c * t));
  free(tmp);
}

static int64_t clamp_rank(int64_t r, int64_t full) { return r < 1 ? 1 : r > full ? full : r; }

/* The ranks of a layer of o outputs and c inputs: given, by energy of each unfolding — whitened as the
 * decomposition will be when l and l_in are given (see input_mode and output_mode) — or by ratio. */
static int choose_ranks(const Settings *st, const float *w, int64_t o, int64_t c, int64_t t, const float *l, const float *l_in, int64_t *ri,
                        int64_t *ro, PqPluginError *err) {
  int64_t r[2] = {st->rank_in, st->rank_out}, full[2] = {c, o};
  for (int mode = 0; mode < 2; mode++) {
    if (r[mode] > 0) continue;
    if (st->energy > 0) {
      float *a = malloc(sizeof(float) * (size_t)(o * c * t)), *b = malloc(sizeof(float) * (size_t)(o * c * t));
      if (!a || !b) {
        free(a);
        free(b);
        pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
        return -1;
      }
      if (mode == 0) { /* [c, o·t], or L_inᵀ times it */
        r[mode] = pq_energy_rank(input_unfolding(w, o, c, t, l_in, a, b), c, o * t, st->energy, err);
      } else { /* [o, c·t], or times L */
        memcpy(a, w, sizeof(float) * (size_t)(o * c * t));
        if (l) times_lower(a, o, c * t, l);
        r[mode] = pq_energy_rank(a, o, c * t, st->energy, err);
      }
      free(a);
      free(b);
      if (r[mode] < 0) return -1;
    } else {
      r[mode] = (int64_t)llround(st->ratio * (double)full[mode]);
    }
  }
  *ri = clamp_rank(r[0], c);
  *ro = clamp_rank(r[1], o);
  /* the core's own unfoldings bound each rank by the other's times the taps */
  if (*ro > *ri * t) *ro = *ri * t;
  if (*ri > *ro * t) *ri = *ro * t;
  return 0;
}

static PqTensor *new_weight(PqModel *m, const char *name, const int64_t *shape, const float *data) {
  PqTensor *tsr = pq_tensor_new(name, PQ_DTYPE_F32, 4, shape);
  memcpy(pq_tensor_mutable_data(tsr), data, sizeof(float) * (size_t)pq_tensor_numel(tsr));
  pq_model_set_tensor(m, tsr);
  pq_tensor_unref(tsr);
  return tsr;
}

static void make_pointwise(PqNode *n) {
  int64_t one[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
  pq_node_set_ints(n, "strides", 2, one);
  pq_node_set_ints(n, "dilations", 2, one);
  pq_node_set_ints(n, "pads", 4, zero4);
}

/* Rewire conv node `idx` of g into up to three convolutions (see the top of the file). */
static void rewrite(PqModel *m, size_t idx, const char *wname, const Tucker *tk, int64_t kh, int64_t kw) {
  PqGraph *g = pq_model_graph(m);
  PqNode *node = pq_graph_node(g, idx);
  char layer[256], name[3][288], mid[2][288];
  snprintf(layer, sizeof layer, "%s", pq_node_name(node)[0] ? pq_node_name(node) : wname);
  const char *part[3] = {"tk_in", "tk_core", "tk_out"};
  char base[300];
  for (int k = 0; k < 3; k++) { /* names no other tensor, node or value has (a layer decomposed twice, a shared weight) */
    snprintf(base, sizeof base, "%s.%s", wname, part[k]);
    pq_model_unique_name(m, base, name[k], sizeof name[k]);
    if (k < 2) {
      snprintf(base, sizeof base, "%s.%s", layer, part[k]);
      pq_model_unique_name(m, base, mid[k], sizeof mid[k]);
    }
  }
  char input[288];
  snprintf(input, sizeof input, "%s", pq_node_input(node, 0));
  if (tk->ri < tk->c) { /* x → 1×1 conv (U_inᵀ) → mid0 */
    float *uit = malloc(sizeof(float) * (size_t)(tk->ri * tk->c));
    for (int64_t i = 0; i < tk->c; i++)
      for (int64_t s = 0; s < tk->ri; s++) uit[s * tk->c + i] = tk->u_in[i * tk->ri + s];
    int64_t shape[4] = {tk->ri, tk->c, 1, 1};
    new_weight(m, name[0], shape, uit);
    free(uit);
    const char *in[2] = {input, name[0]}, *out[1] = {mid[0]};
    make_pointwise(pq_graph_add_node(g, "conv2d", mid[0], 2, in, 1, out));
    snprintf(input, sizeof input, "%s", mid[0]);
  }
  int64_t cshape[4] = {tk->ro, tk->ri, kh, kw};
  new_weight(m, name[1], cshape, tk->core);
  node = pq_graph_node(g, idx); /* adding may move the node array */
  if (tk->ro < tk->o) { /* the core as a conv of its own, the layer becomes the 1×1 conv U_out (+ bias) */
    const char *in[2] = {input, name[1]}, *out[1] = {mid[1]};
    PqNode *core = pq_graph_add_node(g, "conv2d", mid[1], 2, in, 1, out);
    node = pq_graph_node(g, idx);
    const char *keys[4] = {"strides", "pads", "dilations", NULL};
    for (int k = 0; keys[k]; k++) {
      size_t cnt;
      const int64_t *v = pq_node_get_ints(node, keys[k], &cnt);
      if (v) pq_node_set_ints(core, keys[k], cnt, v);
    }
    make_pointwise(node);
    int64_t oshape[4] = {tk->o, tk->ro, 1, 1};
    new_weight(m, name[2], oshape, tk->u_out);
    pq_node_set_input(node, 0, mid[1]);
    pq_node_set_input(node, 1, name[2]);
  } else { /* U_out is the identity: the layer keeps its geometry and takes the core */
    pq_node_set_input(node, 0, input);
    pq_node_set_input(node, 1, name[1]);
  }
  pq_model_remove_tensor_if_unused(m, wname);
}

static PqStatus tk_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  Settings st = {
      .rank_in = pq_options_get_int(o, "rank_in", 0),
      .rank_out = pq_options_get_int(o, "rank_out", 0),
      .ratio = pq_options_get_float(o, "ratio", 0.5),
      .energy = pq_options_get_float(o, "energy", 0),
      .iters = (int)pq_options_get_int(o, "iters", 10),
      .data_aware = pq_options_get_bool(o, "data_aware", 0),
      .damping = pq_options_get_float(o, "damping", 0.01),
  };
  if (st.data_aware && (!cal || cal->n_samples < 1)) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "data_aware needs calibration samples (--calibration N > 0)");
    return PQ_ERR_INVALID;
  }
  PqModel *m = pq_model_copy(in);
  PqGraph *g = pq_model_graph(m);
  size_t n_nodes = pq_graph_n_nodes(g); /* nodes appended below are not revisited */
  char why[200], detail[260];
  for (size_t i = 0; i < n_nodes; i++) {
    PqNode *node = pq_graph_node(g, i);
    if (strcmp(pq_node_op(node), "conv2d") != 0 || pq_node_n_inputs(node) < 2) continue;
    char layer[256];
    snprintf(layer, sizeof layer, "%s", pq_node_name(node));
    PqTensor *w = pq_layer_weight(m, node, o, "tucker", "decompose before quantizing");
    if (!w) continue;
    const int64_t *ws = pq_tensor_shape(w);
    int64_t oc = ws[0], c = ws[1], kh = ws[2], kw = ws[3], t = kh * kw;
    if (pq_node_get_int(node, "groups", 1) != 1) {
      pq_model_record_skip(m, "tucker", layer, "grouped convolution");
      continue;
    }
    if (t == 1) {
      pq_model_record_skip(m, "tucker", layer, "a 1x1 convolution is a matrix: low_rank factors it");
      continue;
    }
    float *wf = pq_layer_weight_f32(node, w, err);
    if (!wf) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    Tucker tk = {.o = oc, .c = c, .t = t};
    float *l = NULL, *l_in = NULL;
    if ((st.data_aware && whitening(&st, cal, node, c, t, &l, &l_in, err) != 0) || choose_ranks(&st, wf, oc, c, t, l, l_in, &tk.ri, &tk.ro, err) != 0) {
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      free(l);
      free(l_in);
      free(wf);
      pq_model_unref(m); /* last: `layer` belongs to it */
      return code;
    }
    int64_t before = oc * c * t;
    int64_t after = (tk.ri < c ? c * tk.ri : 0) + tk.ro * tk.ri * t + (tk.ro < oc ? tk.ro * oc : 0);
    if (tk.ri >= c && tk.ro >= oc) snprintf(why, sizeof why, "ranks %lld / %lld keep all %lld inputs and %lld outputs", (long long)tk.ri,
                                              (long long)tk.ro, (long long)c, (long long)oc);
    else if (after >= before)
      snprintf(why, sizeof why, "ranks in %lld / out %lld would not shrink %lld x %lld x %lldx%lld (%lld >= %lld weights)", (long long)tk.ri,
               (long long)tk.ro, (long long)oc, (long long)c, (long long)kh, (long long)kw, (long long)after, (long long)before);
    if ((tk.ri >= c && tk.ro >= oc) || after >= before) {
      pq_model_record_skip(m, "tucker", layer, why);
      free(l);
      free(l_in);
      free(wf);
      continue;
    }
    if (tucker2(wf, &tk, st.iters, l, l_in, err) != 0) {
      free(l);
      free(l_in);
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      tucker_clear(&tk);
      free(wf);
      pq_model_unref(m); /* last: `layer` belongs to it */
      return code;
    }
    free(l);
    free(l_in);
    float *approx = malloc(sizeof(float) * (size_t)before);
    tucker_dense(&tk, approx);
    double rel, sqnr;
    pq_error_stats(wf, approx, before, &rel, &sqnr);
    free(approx);
    char wname[256];
    snprintf(wname, sizeof wname, "%s", pq_tensor_name(w));
    int64_t bytes_before = (int64_t)pq_tensor_nbytes(w);
    rewrite(m, i, wname, &tk, kh, kw);
    int at = snprintf(detail, sizeof detail, "Tucker-2 ranks in %lld / out %lld, %lldx%lld core, %d HOOI iterations", (long long)tk.ri,
                      (long long)tk.ro, (long long)kh, (long long)kw, st.iters);
    if (st.data_aware) snprintf(detail + at, sizeof detail - at, ", activation-whitened (%lld samples)", (long long)cal->n_samples);
    pq_model_record_layer(m, "tucker", layer, detail, before, after, bytes_before, after * (int64_t)sizeof(float), rel, sqnr);
    tucker_clear(&tk);
    free(wf);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable tk_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = tk_compress,
    .calibration_samples = calibration_wanted,
};

static const PqPluginDesc tk_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "tucker",
    .version = "1.0.0",
    .description = "Tucker-2 decomposition of conv2d kernels: 1x1 conv, a smaller kxk core conv, 1x1 conv (HOSVD + HOOI)",
    .options_schema =
        "{\"rank_in\": {\"type\": \"integer\", \"minimum\": 1, \"description\": \"kept input channels (default: from ratio or energy)\"},"
        " \"rank_out\": {\"type\": \"integer\", \"minimum\": 1, \"description\": \"kept output channels (default: from ratio or energy)\"},"
        " \"ratio\": {\"type\": \"number\", \"minimum\": 0.000001, \"maximum\": 1, \"default\": 0.5,"
        "  \"description\": \"ranks as this fraction of each layer's input and output channels\"},"
        " \"energy\": {\"type\": \"number\", \"minimum\": 0.000001, \"maximum\": 1,"
        "  \"description\": \"ranks keeping this fraction of each unfolding's squared singular values, whitened with data_aware (instead of ratio)\"},"
        " \"iters\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100, \"default\": 10,"
        "  \"description\": \"HOOI refinement sweeps after the HOSVD\"},"
        " \"data_aware\": {\"type\": \"boolean\", \"default\": false,"
        "  \"description\": \"factors that keep the layer's outputs on calibration data, not its weights (whitened by the inputs' covariance)\"},"
        " \"damping\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 10, \"default\": 0.01,"
        "  \"description\": \"ridge added to the input covariance, relative to its mean diagonal\"}}",
    .vtable = &tk_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &tk_desc; }
