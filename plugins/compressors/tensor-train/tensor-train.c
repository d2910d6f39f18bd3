/* tensor-train.c — TT-matrix format of linear layers (Novikov et al. 2015): W [M, N] with M = m_1…m_d and
 * N = n_1…n_d becomes d cores G_k [r_{k-1}, m_k, n_k, r_k] found by TT-SVD (sequential truncated SVDs),
 * with a maximum rank or a relative error tolerance. Backends contract the cores with the input; the
 * dense weight is never rebuilt. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split n into d factors as even as possible (largest prime factors to the smallest bucket). */
static void factorize(int64_t n, int d, int64_t *f) {
  int64_t primes[64];
  int np = 0;
  for (int64_t p = 2; p * p <= n && np < 64; p++)
    while (n % p == 0 && np < 64) {
      primes[np++] = p;
      n /= p;
    }
  if (n > 1 && np < 64) primes[np++] = n;
  for (int k = 0; k < d; k++) f[k] = 1;
  for (int i = np - 1; i >= 0; i--) { /* primes ascending: walk from the largest */
    int best = 0;
    for (int k = 1; k < d; k++)
      if (f[k] < f[best]) best = k;
    f[best] *= primes[i];
  }
  for (int i = 0; i < d; i++) /* ascending order, for a tidy core chain */
    for (int j = i + 1; j < d; j++)
      if (f[j] < f[i]) {
        int64_t t = f[i];
        f[i] = f[j];
        f[j] = t;
      }
}

typedef struct {
  int d;
  int64_t max_rank;
  double tolerance;
} Settings;

/* TT-SVD of W [M, N] (row-major) into cores; returns 0 and the cores (malloc'd) or -1. */
static int tt_svd(const Settings *st, const float *w, int64_t M, int64_t N, const int64_t *m, const int64_t *n, float **cores,
                  int64_t *ranks, PqPluginError *err) {
  int d = st->d;
  /* A[i1..id, j1..jd] → C[(i1 j1), (i2 j2), …]: interleave row and column indices */
  int64_t total = M * N;
  float *c = malloc(sizeof(float) * (size_t)total);
  if (!c) return -1;
  int64_t idx_i[16], idx_j[16];
  for (int64_t row = 0; row < M; row++) {
    int64_t t = row;
    for (int k = d - 1; k >= 0; k--) {
      idx_i[k] = t % m[k];
      t /= m[k];
    }
    for (int64_t col = 0; col < N; col++) {
      int64_t u = col;
      for (int k = d - 1; k >= 0; k--) {
        idx_j[k] = u % n[k];
        u /= n[k];
      }
      int64_t pos = 0;
      for (int k = 0; k < d; k++) pos = (pos * m[k] + idx_i[k]) * n[k] + idx_j[k];
      c[pos] = w[row * N + col];
    }
  }
  double norm2 = 0;
  for (int64_t i = 0; i < total; i++) norm2 += (double)c[i] * c[i];
  double delta2 = st->tolerance > 0 ? st->tolerance * st->tolerance * norm2 / (d > 1 ? d - 1 : 1) : 0;
  ranks[0] = 1;
  int64_t cols = total; /* C is [rows, cols] with rows = r_{k-1} m_k n_k */
  for (int k = 0; k < d - 1; k++) {
    int64_t rows = ranks[k] * m[k] * n[k];
    cols /= m[k] * n[k];
    int64_t kmax = rows < cols ? rows : cols;
    if (kmax > st->max_rank) kmax = st->max_rank;
    float *u = malloc(sizeof(float) * (size_t)(rows * kmax)), *s = malloc(sizeof(float) * (size_t)kmax),
          *vt = malloc(sizeof(float) * (size_t)(kmax * cols));
    if (!u || !s || !vt || pq_svd_truncated(c, rows, cols, kmax, 0, 0, 0, 0, u, s, vt, err) != 0) {
      free(u);
      free(s);
      free(vt);
      free(c);
      return -1;
    }
    int64_t r = kmax;
    if (delta2 > 0) { /* drop trailing values while the discarded energy stays within this core's share */
      double cnorm = 0, kept = 0;
      for (int64_t i = 0; i < rows * cols; i++) cnorm += (double)c[i] * c[i];
      for (int64_t i = 0; i < kmax; i++) kept += (double)s[i] * s[i];
      double tail = cnorm - kept;
      while (r > 1 && tail + (double)s[r - 1] * s[r - 1] <= delta2) {
        tail += (double)s[r - 1] * s[r - 1];
        r--;
      }
    }
    ranks[k + 1] = r;
    cores[k] = malloc(sizeof(float) * (size_t)(rows * r)); /* [r_{k-1}, m_k, n_k, r_k] = U[:, :r] */
    for (int64_t i = 0; i < rows; i++) memcpy(cores[k] + i * r, u + i * kmax, sizeof(float) * (size_t)r);
    float *next = malloc(sizeof(float) * (size_t)(r * cols)); /* S V^T, the rest of the chain */
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < cols; j++) next[i * cols + j] = s[i] * vt[i * cols + j];
    free(u);
    free(s);
    free(vt);
    free(c);
    c = next;
  }
  ranks[d] = 1;
  cores[d - 1] = c; /* [r_{d-1}, m_d * n_d] = [r_{d-1}, m_d, n_d, 1] */
  return 0;
}

/* Bonds at full rank carry no compression: where r_{k+1} = r_k·m_k·n_k (the left side's whole size, as the
 * first bond of a short row always is) or = m_{k+1}·n_{k+1}·r_{k+2}, cores k and k+1 are contracted into one
 * [r_k, m_k·m_{k+1}, n_k·n_{k+1}, r_{k+2}] holding no more values than the larger of the two, and the layer's
 * contraction takes fewer multiply-adds (the default MLP's first layer: 3.5 M → 0.66 M at one row). The same
 * matrix, to float rounding. Merges while d > 2; returns the bonds merged. */
static int merge_full_bonds(int *d, float **cores, int64_t *ranks, int64_t *mf, int64_t *nf) {
  int merged = 0;
  for (int k = 0; k + 1 < *d && *d > 2;) {
    const int64_t rp = ranks[k], m1 = mf[k], n1 = nf[k], r = ranks[k + 1], m2 = mf[k + 1], n2 = nf[k + 1], rn = ranks[k + 2];
    if (r != rp * m1 * n1 && r != m2 * n2 * rn) {
      k++;
      continue;
    }
    float *c = calloc((size_t)(rp * m1 * m2 * n1 * n2 * rn), sizeof(float));
    if (!c) return merged; /* (left as they are: the same matrix) */
    for (int64_t a = 0; a < rp; a++)
      for (int64_t i = 0; i < m1; i++)
        for (int64_t j = 0; j < n1; j++)
          for (int64_t b = 0; b < r; b++) {
            const float g = cores[k][((a * m1 + i) * n1 + j) * r + b];
            for (int64_t i2 = 0; i2 < m2; i2++)
              for (int64_t j2 = 0; j2 < n2; j2++) {
                float *dst = c + ((a * (m1 * m2) + i * m2 + i2) * (n1 * n2) + j * n2 + j2) * rn;
                const float *src = cores[k + 1] + ((b * m2 + i2) * n2 + j2) * rn;
                for (int64_t s = 0; s < rn; s++) dst[s] += g * src[s];
              }
          }
    free(cores[k]);
    free(cores[k + 1]);
    cores[k] = c;
    mf[k] = m1 * m2, nf[k] = n1 * n2;
    for (int t = k + 1; t + 1 < *d; t++) cores[t] = cores[t + 1], mf[t] = mf[t + 1], nf[t] = nf[t + 1];
    for (int t = k + 1; t < *d; t++) ranks[t] = ranks[t + 1];
    (*d)--;
    merged++;
    k = k > 0 ? k - 1 : 0; /* (the new core's bonds may now be full) */
  }
  return merged;
}

static PqStatus tt_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  (void)cal;
  Settings st = {(int)pq_options_get_int(o, "cores", 3), pq_options_get_int(o, "max_rank", 32), pq_options_get_float(o, "tolerance", 0)};
  PqModel *mdl = pq_model_copy(in);
  PqGraph *g = pq_model_graph(mdl);
  char why[256];
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    PqNode *node = pq_graph_node(g, i);
    const char *layer = pq_node_name(node);
    if (pq_layer_linear_only(mdl, node, o, "tensor_train")) continue;
    if (strcmp(pq_node_op(node), "linear") || pq_node_n_inputs(node) < 2) continue;
    PqTensor *w = pq_layer_weight(mdl, node, o, "tensor_train", NULL);
    if (!w) continue;
    int64_t M = pq_tensor_rows(w), N = pq_tensor_cols(w), numel = pq_tensor_numel(w);
    int64_t mf[16], nf[16], ranks[17];
    factorize(M, st.d, mf);
    factorize(N, st.d, nf);
    float *wf = pq_layer_weight_f32(node, w, err);
    if (!wf) {
      pq_model_unref(mdl);
      return (PqStatus)err->code;
    }
    float *cores[16] = {0};
    if (tt_svd(&st, wf, M, N, mf, nf, cores, ranks, err) != 0) {
      free(wf);
      PqStatus code = pq_plugin_error_in_layer(err, layer);
      pq_model_unref(mdl); /* last: the layer's name belongs to it */
      return code;
    }
    int d = st.d, merged = 0;
    char merged_note[96] = "";
    if (pq_options_get_bool(o, "merge_full_bonds", 1) && (merged = merge_full_bonds(&d, cores, ranks, mf, nf)) > 0)
      snprintf(merged_note, sizeof merged_note, " (of %d: %d bond%s at full rank merged)", st.d, merged, merged > 1 ? "s" : "");
    int64_t params = 0;
    for (int k = 0; k < d; k++) params += ranks[k] * mf[k] * nf[k] * ranks[k + 1];
    if (params >= numel) {
      snprintf(why, sizeof why, "%d cores at rank %lld would not shrink %lld x %lld (%lld values for %lld%s)", st.d, (long long)st.max_rank,
               (long long)M, (long long)N, (long long)params, (long long)numel, merged ? ", full-rank bonds merged" : "");
      pq_model_record_skip(mdl, "tensor_train", layer, why);
      for (int k = 0; k < d; k++) free(cores[k]);
      free(wf);
      continue;
    }
    float *back = malloc(sizeof(float) * (size_t)numel);
    int64_t shapes[16][4];
    for (int k = 0; k < d; k++) shapes[k][0] = ranks[k], shapes[k][1] = mf[k], shapes[k][2] = nf[k], shapes[k][3] = ranks[k + 1];
    double rel = NAN, sqnr = NAN; /* (the recorded error: the dense matrix the cores make against the weight) */
    if (back && pq_tt_dense(d, (const int64_t(*)[4])shapes, (const float *const *)cores, back) == 0) pq_error_stats(wf, back, numel, &rel, &sqnr);
    free(back);
    char wname[256], cname[300];
    snprintf(wname, sizeof wname, "%s", pq_tensor_name(w));
    const char *bias = pq_layer_bias(node);
    char biasname[256];
    snprintf(biasname, sizeof biasname, "%s", bias);
    int64_t bytes_after = 0;
    for (int k = 0; k < d; k++) {
      int64_t cs[4] = {ranks[k], mf[k], nf[k], ranks[k + 1]};
      snprintf(cname, sizeof cname, "%s.tt%d", wname, k + 1);
      PqTensor *t = pq_tensor_new(cname, PQ_DTYPE_F32, 4, cs);
      memcpy(pq_tensor_mutable_data(t), cores[k], pq_tensor_nbytes(t));
      bytes_after += (int64_t)pq_tensor_nbytes(t);
      pq_model_set_tensor(mdl, t);
      pq_tensor_unref(t);
      pq_node_set_input(node, (size_t)(1 + k), cname);
      free(cores[k]);
    }
    pq_node_set_input(node, (size_t)(1 + d), biasname);
    pq_node_set_op(node, "tt_linear");
    pq_node_set_int(node, "cores", d);
    char detail[256];
    size_t at = (size_t)snprintf(detail, sizeof detail, "%d cores%s, ranks", d, merged_note);
    for (int k = 0; k <= d && at < sizeof detail; k++) at += (size_t)snprintf(detail + at, sizeof detail - at, "%s%lld", k ? "-" : " ", (long long)ranks[k]);
    for (int k = 0; k < d && at < sizeof detail; k++) at += (size_t)snprintf(detail + at, sizeof detail - at, "%s%lld", k ? "x" : ", m ", (long long)mf[k]);
    for (int k = 0; k < d && at < sizeof detail; k++) at += (size_t)snprintf(detail + at, sizeof detail - at, "%s%lld", k ? "x" : ", n ", (long long)nf[k]);
    pq_model_record_layer(mdl, "tensor_train", layer, detail, numel, params, (int64_t)pq_tensor_nbytes(w), bytes_after, rel, sqnr);
    pq_model_remove_tensor_if_unused(mdl, wname); /* a weight another layer shares stays */
    free(wf);
  }
  *out = mdl;
  return PQ_OK;
}

static const PqCompressorVTable tt_vtable = {.struct_size = sizeof(PqCompressorVTable), .compress = tt_compress};

static const PqPluginDesc tt_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "tensor_train",
    .version = "1.0.0",
    .description = "tensor-train (TT-matrix) factorisation of linear layers by TT-SVD, run as core contractions",
    .options_schema = "{\"max_rank\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 4096, \"default\": 32},"
                      " \"tolerance\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, \"default\": 0,"
                      "  \"description\": \"relative Frobenius error allowed overall (0: ranks set by max_rank only)\"},"
                      " \"cores\": {\"type\": \"integer\", \"minimum\": 2, \"maximum\": 8, \"default\": 3,"
                      "  \"description\": \"number of cores d: both sizes are factored into d near-equal factors\"},"
                      " \"merge_full_bonds\": {\"type\": \"boolean\", \"default\": true,"
                      "  \"description\": \"two cores whose bond is at full rank (it compresses nothing) stored as one: fewer values and"
                      " multiply-adds, the same matrix (false: d cores always)\"}}",
    .vtable = &tt_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &tt_desc; }
