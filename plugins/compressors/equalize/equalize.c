/* equalize.c — cross-layer equalization, a stage for the start of a chain (`-c equalize -c quant`): for two
 * layers A and B where A's outputs reach B's inputs through ops that commute with a positive scale per channel
 * (relu, leaky_relu, prelu, zero padding, pools, flatten), output channel i of A is divided by s_i and input
 * channel i of B multiplied by it. The model computes the same function (up to float rounding), but the
 * ranges of A's rows and B's columns become equal — s_i = sqrt(r_A,i / r_B,i) — so a tensor with a few wide
 * channels no longer spends most of a per-tensor grid on them. Chains of layers are swept until the scales
 * settle. No calibration data: the first half of Nagel et al. 2019 ("Data-free quantization through weight
 * equalization and bias correction"); bias_correct is the second. Float32 weights only; nothing changes size.
 * method awq chooses each pair's scales instead for the least output error of B once quantized on the grid the
 * next stage uses, from the Gram matrix of B's calibration inputs (Lin et al. 2023), and scales a linear layer
 * that reads a model input through a new mul node. */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD "equalize"

/* A float32 working copy of a weight or bias, written back at the end when the stage changed it. */
typedef struct {
  const PqTensor *tensor;
  float *data;
  int changed;
} Work;

typedef struct {
  const PqNode *a, *b;
  Work *wa, *ba, *wb; /* ba: NULL where A has no bias */
  int64_t c;          /* the channels between them */
  int64_t a_per;      /* values of A's weight per output channel */
  int b_conv;
  int64_t b_rows, b_in, b_khw, b_groups; /* B's weight [b_rows, b_in (/group), b_khw]; a linear's b_khw is 1 */
  int64_t inner;                          /* B's inputs per channel (a flattened [C, H, W]: H·W), else 1 */
  double *total;                          /* the product of the scales applied, per channel (then 3·c of work) */
  double a_spread0, b_spread0; /* the mean channel range over the largest, before */
  double awq_alpha, awq_ratio;  /* method awq: the exponent chosen, B's output error over round-to-nearest's */
  int64_t awq_rows;             /* and the calibration rows that error is over */
} Pair;

/* method awq: the grid the next quant stage will use, and the search. */
typedef struct {
  int bits, symmetric, clip, steps;
  PqQuantScheme scheme;
  int64_t group, search_rows;
  int from_stage, from_all; /* the chain's quant stage (its number) the grid options not given were read from, or 0;
                                whether that was all four */
  int fit;                  /* that stage's group_fit=divisor: a row group does not divide takes pq_quant_group_fit's size */
} AwqGrid;

/* The group size q gives rows of k values (per_group): its own where it divides them, else, where the quant
 * stage fits groups to rows, the divisor it fits; 0 for none */
static int64_t grid_group(const AwqGrid *q, int64_t k) {
  if (q->group > 0 && k % q->group == 0) return q->group;
  return q->fit ? pq_quant_group_fit(k, q->group) : 0;
}

static int is_layer(const PqNode *n) { return !strcmp(pq_node_op(n), "linear") || !strcmp(pq_node_op(n), "conv2d"); }

/* The node reading `value`, if exactly one does and it is not a graph output; NULL otherwise. */
static PqNode *sole_reader(const PqGraph *g, const char *value) {
  PqNode *first;
  int is_output;
  return pq_graph_value_readers(g, value, &first, &is_output) == 1 && !is_output ? first : NULL;
}

static const int64_t *value_shape(const PqPlan *plan, const char *value, int *nd) {
  int v = pq_plan_value_index(plan, value);
  *nd = 0;
  return v >= 0 ? pq_plan_value_shape(plan, v, nd) : NULL;
}

/* Whether a reader `n` of the value between A and B passes a positive scale per channel through, given where
 * the channels are: 4-D [N, C, H, W] (spatial) or the last dimension (features). Sets *why otherwise. */
static int commutes(const PqNode *n, int spatial, int rank, char *why, size_t len) {
  const char *op = pq_node_op(n);
  /* x or slope·x by the sign of x: f(x / s) = f(x) / s for s > 0, whatever the slope */
  if (!strcmp(op, "relu") || !strcmp(op, "leaky_relu") || !strcmp(op, "prelu")) return 1;
  if (!strcmp(op, "flatten") && rank == 2) return 1;                /* [N, D] flattened: the same */
  if (spatial) {
    if (!strcmp(op, "maxpool2d") || !strcmp(op, "avgpool2d") || !strcmp(op, "global_avg_pool")) return 1; /* per channel */
    if (!strcmp(op, "pad2d") && pq_node_get_float(n, "value", 0.0) == 0.0) return 1;
    if (!strcmp(op, "flatten") && pq_node_get_int(n, "axis", 1) == 1) return 1;
  }
  snprintf(why, len, "its output reaches %s ('%s'), which does not pass a scale per channel through", op, pq_node_name(n));
  return 0;
}

static Work *work_for(Work *works, int *n_works, const PqModel *m, const char *name, const PqNode *layer, PqPluginError *err) {
  for (int i = 0; i < *n_works; i++)
    if (!strcmp(pq_tensor_name(works[i].tensor), name)) return &works[i];
  const PqTensor *t = pq_model_tensor((PqModel *)m, name);
  float *f = pq_layer_weight_f32(layer, t, err);
  if (!f) return NULL;
  works[*n_works] = (Work){t, f, 0};
  return &works[(*n_works)++];
}

/* Why `node`'s tensor `name` cannot be changed here, or NULL when it can: a float32 tensor no other node reads. */
static const char *tensor_unusable(const PqModel *m, const char *name, char *why, size_t len) {
  const PqTensor *t = pq_model_tensor((PqModel *)m, name);
  if (!t) {
    snprintf(why, len, "'%s' is computed, not a model tensor", name);
    return why;
  }
  if (pq_tensor_dtype(t) != PQ_DTYPE_F32) {
    snprintf(why, len, "'%s' is %s (equalize changes float32 weights: put it before quant)", name,
             pq_tensor_dtype(t) == PQ_DTYPE_PACKED ? "packed" : pq_dtype_name(pq_tensor_dtype(t)));
    return why;
  }
  if (!sole_reader(pq_model_const_graph(m), name)) {
    snprintf(why, len, "'%s' is shared with another node", name);
    return why;
  }
  return NULL;
}

/* The pair that starts at layer `a`, or 0 with the reason in `why`. */
static int find_pair(const PqModel *m, const PqPlan *plan, const PqNode *a, const PqOptions *o, Pair *p, char *why, size_t len) {
  const PqGraph *g = pq_model_const_graph(m);
  const char *wname = pq_node_input(a, 1);
  if (pq_node_n_outputs(a) != 1) {
    snprintf(why, len, "it has %zu outputs", pq_node_n_outputs(a));
    return 0;
  }
  if (tensor_unusable(m, wname, why, len)) return 0;
  const char *bias = pq_layer_bias(a);
  if (bias[0] && tensor_unusable(m, bias, why, len)) return 0;
  const PqTensor *wa = pq_model_tensor((PqModel *)m, wname);
  int conv = !strcmp(pq_node_op(a), "conv2d");
  int64_t c = pq_tensor_shape(wa)[0];
  const char *value = pq_node_output(a, 0);
  int nd = 0;
  const int64_t *shape = value_shape(plan, value, &nd);
  if (!shape || (conv && nd != 4) || nd < 2 || shape[conv ? 1 : nd - 1] != c) {
    snprintf(why, len, "its output's shape is not [N, %lld, ...]", (long long)c);
    return 0;
  }
  int spatial = conv;
  int64_t inner = 1;
  for (int hops = 0;; hops++) {
    PqNode *next = NULL;
    int is_output;
    size_t n = pq_graph_value_readers(g, value, &next, &is_output);
    if (n != 1 || is_output) {
      if (is_output) snprintf(why, len, "its output reaches the model's output '%s'", value);
      else if (n == 0) snprintf(why, len, "'%s' is not read by any node", value);
      else snprintf(why, len, "'%s' is read by %zu nodes", value, n);
      return 0;
    }
    if (strcmp(pq_node_input(next, 0), value) != 0 || pq_node_n_outputs(next) != 1) {
      snprintf(why, len, "its output reaches %s ('%s') other than as its first input", pq_node_op(next), pq_node_name(next));
      return 0;
    }
    if (is_layer(next)) {
      int bconv = !strcmp(pq_node_op(next), "conv2d");
      if (bconv != spatial) {
        snprintf(why, len, "its output reaches %s '%s' with its channels %s", pq_node_op(next), pq_node_name(next),
                 spatial ? "in dimension 1 (not flattened)" : "flattened");
        return 0;
      }
      const char *wb = pq_node_input(next, 1);
      if (tensor_unusable(m, wb, why, len)) return 0;
      if (!pq_options_layer_selected(o, pq_node_name(next), pq_tensor_numel(pq_model_tensor((PqModel *)m, wb)))) {
        snprintf(why, len, "'%s', the layer its outputs reach, is not selected", pq_node_name(next));
        return 0;
      }
      const PqTensor *tb = pq_model_tensor((PqModel *)m, wb);
      const int64_t *s = pq_tensor_shape(tb);
      *p = (Pair){.a = a, .b = next, .c = c, .a_per = pq_tensor_numel(wa) / (c ? c : 1), .b_conv = bconv, .b_rows = s[0],
                  .b_in = s[1], .b_khw = bconv ? s[2] * s[3] : 1, .b_groups = bconv ? pq_node_get_int(next, "groups", 1) : 1,
                  .inner = inner};
      if (bconv ? p->b_in * p->b_groups != c : p->b_in != c * inner) {
        snprintf(why, len, "'%s' reads %lld input values, not %lld channels of %lld", pq_node_name(next),
                 (long long)(bconv ? p->b_in * p->b_groups : p->b_in), (long long)c, (long long)inner);
        return 0;
      }
      return 1;
    }
    int rank = 0;
    const int64_t *in_shape = value_shape(plan, value, &rank);
    if (!commutes(next, spatial, rank, why, len)) return 0;
    if (spatial && !strcmp(pq_node_op(next), "flatten")) { /* [N, C, H, W] → [N, C·H·W]: channel i, H·W values on */
      spatial = 0;
      inner = 1;
      for (int d = 2; d < rank; d++) inner *= in_shape[d];
    }
    value = pq_node_output(next, 0);
    if (hops > 64) {
      snprintf(why, len, "no layer within 64 ops of its output");
      return 0;
    }
  }
}

/* The input channel of B's weight value at row-major offset j within a row (a conv's row holds its group's
 * channels, b_khw values each; a linear's, `inner` columns a channel). */
static inline int64_t b_channel(const Pair *p, int64_t row, int64_t j) {
  return p->b_conv ? row / (p->b_rows / p->b_groups) * p->b_in + j / p->b_khw : j / p->inner;
}

/* The largest |w| of A's row per channel (ra) and of B's columns per channel (rb), in row-major passes. */
static void channel_ranges(const Pair *p, double *ra, double *rb) {
  int64_t b_per = p->b_conv ? p->b_in * p->b_khw : p->b_in;
  for (int64_t i = 0; i < p->c; i++) {
    const float *w = p->wa->data + i * p->a_per;
    float r = 0;
    for (int64_t j = 0; j < p->a_per; j++) r = fmaxf(r, fabsf(w[j]));
    ra[i] = r;
    rb[i] = 0;
  }
  for (int64_t o = 0; o < p->b_rows; o++) {
    const float *w = p->wb->data + o * b_per;
    for (int64_t j = 0; j < b_per; j++) {
      int64_t ch = b_channel(p, o, j);
      rb[ch] = fmax(rb[ch], fabsf(w[j]));
    }
  }
}

/* The mean of the channels' ranges over the largest: 1 when all are equal, which is what a per-tensor grid
 * wants. */
static double spread(const double *r, int64_t n) {
  double sum = 0, top = 0;
  for (int64_t i = 0; i < n; i++) {
    sum += r[i];
    top = fmax(top, r[i]);
  }
  return top > 0 ? sum / (double)n / top : 1.0;
}

/* Channel i of the pair scaled by s[i] (rounded to float32): A's row and bias divided, B's columns multiplied.
 * A channel whose weights or bias the scale would take past float32's range (near its limits) is left, its
 * s[i] set to 1; ra and rb: the channel ranges before (channel_ranges). Returns the largest |log s| applied. */
static double apply_scales(Pair *p, const double *ra, const double *rb, double *s) {
  double moved = 0;
  for (int64_t i = 0; i < p->c; i++) {
    float fs = (float)s[i];
    s[i] = 1.0;
    if (!(fs > 0) || !isfinite(fs) || !isfinite((float)ra[i] / fs) || !isfinite((float)rb[i] * fs) || (p->ba && !isfinite(p->ba->data[i] / fs)))
      continue;
    s[i] = fs;
    float *wa = p->wa->data + i * p->a_per;
    for (int64_t j = 0; j < p->a_per; j++) wa[j] /= fs;
    if (p->ba) p->ba->data[i] /= fs;
    p->total[i] *= fs;
    moved = fmax(moved, fabs(log(fs)));
  }
  int64_t b_per = p->b_conv ? p->b_in * p->b_khw : p->b_in;
  for (int64_t o = 0; o < p->b_rows; o++) {
    float *w = p->wb->data + o * b_per;
    for (int64_t j = 0; j < b_per; j++) w[j] *= (float)s[b_channel(p, o, j)];
  }
  p->wa->changed = p->wb->changed = 1;
  if (p->ba) p->ba->changed = 1;
  return moved;
}

/* One equalization of the pair: s_i = sqrt(r_A,i / r_B,i); returns the largest |log s| applied. `work` holds
 * 3·c doubles (the first 2·c: ranges). */
static double equalize_pair(Pair *p, double *work) {
  double *ra = work, *rb = work + p->c, *s = work + 2 * p->c;
  channel_ranges(p, ra, rb);
  for (int64_t i = 0; i < p->c; i++)
    s[i] = ra[i] > 0 && rb[i] > 0 ? sqrt(ra[i] / rb[i]) : 1.0; /* a dead channel on either side: nothing to balance */
  return apply_scales(p, ra, rb, s);
}

/* The output error Σ (w − q)ᵀ G (w − q) of w [rows, k] with its columns multiplied by s (column j by channel
 * chan[j]'s), quantized on q and divided by s again. INFINITY where a scaled weight would pass float32's range;
 * -1 with err set on failure. ws and back hold rows · k floats. */
static double awq_error(const float *w, int64_t rows, int64_t k, const int64_t *chan, const double *s, const float *gram, const AwqGrid *q,
                        float *ws, float *back, PqPluginError *err) {
  int finite = 1;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < k; j++) finite &= isfinite(ws[r * k + j] = w[r * k + j] * (float)s[chan[j]]) != 0;
  if (!finite) return INFINITY;
  const int64_t shape[2] = {rows, k};
  PqTensor *t = pq_quantize_matrix("awq", ws, 2, shape, q->bits, q->scheme, q->scheme == PQ_QUANT_PER_GROUP ? grid_group(q, k) : 0, q->symmetric,
                                   q->clip, err);
  if (!t) return -1;
  pq_tensor_to_f32(t, back);
  pq_tensor_unref(t);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < k; j++) back[r * k + j] /= (float)s[chan[j]];
  double e = pq_output_error(w, back, gram, rows, k);
  if (e < 0) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
  return e;
}

/* Activation-aware scales (AWQ, Lin et al. 2023) for a layer's input channels: its weight w [rows, k] and the
 * Gram matrix of its inputs (k × k); column j belongs to channel b_channel(p, 0, j), or to channel j where p is
 * NULL (c = k). For α = 0, 1/steps, … 1, s_ch = rms_ch^α (rms_ch: the root mean square of the channel's inputs,
 * at least 1e-4 of the largest), divided by the geometric mean of its extremes, and awq_error taken — on
 * q->search_rows of w's rows, evenly spaced, where it has more (each row's error is its own: per-row and
 * per-group grids quantize a row alone). The α of least error is then measured on every row against α = 0
 * (round-to-nearest itself, s = 1) and kept only if it is lower there too. Returns the scales (malloc'd, c of
 * them) with α in *alpha and that error over round-to-nearest's in *ratio; NULL with `err` set. */
static double *awq_search(const Pair *p, const float *w, int64_t rows, int64_t k, int64_t c, const float *gram, const AwqGrid *q, double *alpha,
                          double *ratio, PqPluginError *err) {
  int64_t sub = rows > q->search_rows ? q->search_rows : rows;
  double *rms = calloc((size_t)c, sizeof(double)), *s = malloc(sizeof(double) * (size_t)c), *best = malloc(sizeof(double) * (size_t)c);
  int64_t *chan = malloc(sizeof(int64_t) * (size_t)k), *count = calloc((size_t)c, sizeof(int64_t));
  float *ws = malloc(sizeof(float) * (size_t)(rows * k)), *back = malloc(sizeof(float) * (size_t)(rows * k));
  float *wsub = sub < rows ? malloc(sizeof(float) * (size_t)(sub * k)) : NULL;
  int ok = rms && s && best && chan && count && ws && back && (sub == rows || wsub);
  if (!ok) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
  double top = 0, e0 = -1, eb = INFINITY;
  for (int64_t j = 0; ok && j < k; j++) {
    chan[j] = p ? b_channel(p, 0, j) : j;
    rms[chan[j]] += fmax(gram[j * k + j], 0.0);
    count[chan[j]]++;
  }
  for (int64_t ch = 0; ok && ch < c; ch++) {
    rms[ch] = count[ch] ? sqrt(rms[ch] / (double)count[ch]) : 0.0;
    top = fmax(top, rms[ch]);
  }
  for (int64_t i = 0; ok && wsub && i < sub; i++) memcpy(wsub + i * k, w + (i * rows / sub) * k, sizeof(float) * (size_t)k);
  *alpha = 0;
  *ratio = 1;
  for (int64_t ch = 0; ok && ch < c; ch++) best[ch] = 1.0;
  for (int step = 0; ok && top > 0 && step <= q->steps; step++) { /* (inputs all 0: nothing to weigh, s = 1) */
    double a = (double)step / q->steps, lo = INFINITY, hi = 0;
    for (int64_t ch = 0; ch < c; ch++) {
      s[ch] = pow(fmax(rms[ch], 1e-4 * top), a);
      lo = fmin(lo, s[ch]);
      hi = fmax(hi, s[ch]);
    }
    for (int64_t ch = 0; ch < c; ch++) s[ch] = (double)(float)(s[ch] / sqrt(lo * hi));
    double e = awq_error(wsub ? wsub : w, sub, k, chan, s, gram, q, ws, back, err);
    if (e < 0) {
      ok = 0;
      break;
    }
    if (step == 0) e0 = e;
    if (e < eb) { /* (ties keep the smaller α; a weight past float32's range: INFINITY, never taken) */
      eb = e;
      *alpha = a;
      memcpy(best, s, sizeof(double) * (size_t)c);
    }
  }
  if (ok && wsub && *alpha > 0) { /* the choice measured on every row */
    for (int64_t ch = 0; ch < c; ch++) s[ch] = 1.0;
    e0 = awq_error(w, rows, k, chan, s, gram, q, ws, back, err);
    eb = e0 < 0 ? -1 : awq_error(w, rows, k, chan, best, gram, q, ws, back, err);
    ok = e0 >= 0 && eb >= 0;
    if (ok && !(eb < e0)) { /* not lower on every row: left as it was */
      *alpha = 0;
      eb = e0;
      for (int64_t ch = 0; ch < c; ch++) best[ch] = 1.0;
    }
  }
  if (ok && e0 > 0) *ratio = eb / e0;
  free(rms);
  free(s);
  free(chan);
  free(count);
  free(ws);
  free(back);
  free(wsub);
  if (!ok) {
    free(best);
    return NULL;
  }
  return best;
}

/* The grid's words for a record: "4-bit per channel", "3-bit asymmetric in groups of 128 (stage 2's grid)". */
static void grid_words(const AwqGrid *q, char *out, size_t len) {
  char where[64] = "", from[48] = "";
  if (q->scheme == PQ_QUANT_PER_GROUP) snprintf(where, sizeof where, "in groups of %s%lld", q->fit ? "up to " : "", (long long)q->group);
  else snprintf(where, sizeof where, "per channel");
  if (q->from_stage) snprintf(from, sizeof from, " (stage %d's grid%s)", q->from_stage, q->from_all ? "" : " where not given");
  snprintf(out, len, "%d-bit%s %s%s", q->bits, q->symmetric ? "" : " asymmetric", where, from);
}

/* Where awq reads grid option `key`: this stage's options when given here or when no quant stage follows
 * (the schema's default), else that quant stage's (counted in *taken). */
static const PqOptions *grid_source(const PqOptions *o, const PqOptions *q, const char *key, int *taken) {
  if (!q || pq_options_given(o, key)) return o;
  ++*taken;
  return q;
}

/* The grid awq weighs for: an option given to this stage wins; one not given is that of the first quant stage
 * after it in the chain, where there is one, else this schema's default. */
static AwqGrid awq_grid(const PqOptions *o) {
  int st = 0, taken = 0;
  const PqOptions *q = pq_options_later_stage(o, "quant", &st);
  AwqGrid g = {(int)pq_options_get_int(grid_source(o, q, "bits", &taken), "bits", 4),
               pq_options_get_bool(grid_source(o, q, "symmetric", &taken), "symmetric", 1),
               (int)pq_options_get_int(grid_source(o, q, "clip_search", &taken), "clip_search", 20),
               (int)pq_options_get_int(o, "alpha_steps", 20), PQ_QUANT_PER_CHANNEL, 0, pq_options_get_int(o, "search_rows", 512), 0, 0, 0};
  if (q && !pq_options_given(o, "group_size")) {
    const char *scheme = pq_options_get_string(q, "scheme", "per_channel");
    taken++;
    if (!strcmp(scheme, "per_group")) {
      g.scheme = PQ_QUANT_PER_GROUP;
      g.group = pq_options_get_int(q, "group_size", 64);
      g.fit = !strcmp(pq_options_get_string(q, "group_fit", "exact"), "divisor");
    } else if (!strcmp(scheme, "per_tensor")) {
      g.scheme = PQ_QUANT_PER_TENSOR; /* refused by eq_compress */
    }
  } else if ((g.group = pq_options_get_int(o, "group_size", 0)) > 0) {
    g.scheme = PQ_QUANT_PER_GROUP;
  }
  g.from_stage = taken ? st : 0;
  g.from_all = taken == 4;
  return g;
}

/* Whether method awq can weigh pair p's B, or why not. */
static int awq_fits(const Pair *p, const AwqGrid *q, char *why, size_t len) {
  int64_t k = p->b_conv ? p->b_in * p->b_khw : p->b_in;
  if (p->b_conv && p->b_groups != 1) {
    snprintf(why, len, "'%s' is a grouped convolution (awq weighs a layer's inputs by one Gram matrix, which it has not)", pq_node_name(p->b));
    return 0;
  }
  if (q->scheme == PQ_QUANT_PER_GROUP && !grid_group(q, k)) {
    snprintf(why, len, "group_size %lld does not divide the %lld values of a row of '%s'%s", (long long)q->group, (long long)k, pq_node_name(p->b),
             q->fit ? ", nor does any size from half of it" : "");
    return 0;
  }
  return 1;
}

/* awq_search for `node`'s weight w [rows, k] (p: the pair it is B of, or NULL for a layer reading a model
 * input, c = k) from the Gram matrix of its inputs through m (whose tensors are still the model's); the
 * calibration rows in *grows. NULL with `err` set, naming the layer. */
static double *awq_scales(const PqModel *m, const PqCalibration *cal, const PqNode *node, const Pair *p, const float *w, int64_t rows, int64_t k,
                          int64_t c, const AwqGrid *q, double *alpha, double *ratio, int64_t *grows, PqPluginError *err) {
  int64_t kg = 0;
  float *gram = pq_calibration_gram(cal, m, node, &kg, grows, err);
  if (gram && kg != k) {
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "its Gram matrix (%lld) does not match its weight (%lld)", (long long)kg, (long long)k);
    free(gram);
    gram = NULL;
  }
  double *s = gram ? awq_search(p, w, rows, k, c, gram, q, alpha, ratio, err) : NULL;
  free(gram);
  if (!s) pq_plugin_error_in_layer(err, pq_node_name(node));
  return s;
}

/* Method awq on pair p: the scales chosen for B, then applied as equalize_pair's are. */
static PqStatus awq_pair(const PqModel *m, const PqCalibration *cal, Pair *p, const AwqGrid *q, PqPluginError *err) {
  int64_t b_per = p->b_conv ? p->b_in * p->b_khw : p->b_in;
  double *s = awq_scales(m, cal, p->b, p, p->wb->data, p->b_rows, b_per, p->c, q, &p->awq_alpha, &p->awq_ratio, &p->awq_rows, err);
  if (!s) return (PqStatus)err->code;
  double *ra = p->total + p->c, *rb = p->total + 2 * p->c;
  channel_ranges(p, ra, rb);
  if (p->awq_alpha > 0) apply_scales(p, ra, rb, s); /* (α = 0: s = 1, the pair is left as it was) */
  free(s);
  return PQ_OK;
}

/* Method awq on a linear layer that reads a model input (no layer before it to take 1/s): its columns are
 * multiplied by the scales and a new `mul` node divides its input by them. Records what it did. */
static PqStatus awq_input(PqModel *m, const PqCalibration *cal, PqNode *l, Work *w, const AwqGrid *q, PqPluginError *err) {
  const char *layer = pq_node_name(l);
  const PqTensor *t = w->tensor;
  int64_t rows = pq_tensor_shape(t)[0], k = pq_tensor_shape(t)[1], grows = 0;
  double alpha = 0, ratio = 1;
  double *s = awq_scales(m, cal, l, NULL, w->data, rows, k, k, q, &alpha, &ratio, &grows, err);
  if (!s) return (PqStatus)err->code;
  char gw[64], detail[1000];
  grid_words(q, gw, sizeof gw);
  if (alpha == 0) { /* (an α > 0 is chosen only where every scaled weight stays a finite float32: awq_error) */
    pq_model_record_skip(m, METHOD, layer, "its inputs left as they are (awq: no scale gave less output error than none)");
    free(s);
    return PQ_OK;
  }
  for (int64_t i = 0; i < rows * k; i++) w->data[i] *= (float)s[i % k];
  w->changed = 1;
  char base[300], tname[320], nname[320], vname[320];
  snprintf(base, sizeof base, "%s.awq_scale", layer);
  pq_model_unique_name(m, base, tname, sizeof tname);
  PqTensor *inv = pq_tensor_new(tname, PQ_DTYPE_F32, 1, &k);
  float *iv = pq_tensor_mutable_data(inv);
  double lo = INFINITY, hi = 0;
  for (int64_t j = 0; j < k; j++) {
    iv[j] = 1.0f / (float)s[j];
    lo = fmin(lo, s[j]);
    hi = fmax(hi, s[j]);
  }
  free(s);
  pq_model_set_tensor(m, inv);
  pq_tensor_unref(inv);
  snprintf(base, sizeof base, "%s.awq", layer);
  pq_model_unique_name(m, base, nname, sizeof nname);
  snprintf(base, sizeof base, "%s.awq", pq_node_input(l, 0));
  pq_model_unique_name(m, base, vname, sizeof vname);
  const char *ins[2] = {pq_node_input(l, 0), tname}, *outs[1] = {vname};
  pq_graph_add_node(pq_model_graph(m), "mul", nname, 2, ins, 1, outs);
  pq_node_set_input(l, 0, vname);
  snprintf(detail, sizeof detail,
           "%lld input channels scaled (awq, alpha %.2f): its columns multiplied by %.3g-%.3g, its input divided by them in a new mul '%s'; "
           "at %s, output error %.2fx round-to-nearest's on the %lld calibration rows",
           (long long)k, alpha, lo, hi, nname, gw, ratio, (long long)grows);
  int64_t n = pq_tensor_numel(t), bytes = (int64_t)pq_tensor_nbytes(t);
  pq_model_record_layer(m, METHOD, layer, detail, n, n + k, bytes, bytes + 4 * k, NAN, NAN);
  return PQ_OK;
}

/* Why a batch_norm node `bn` cannot be folded into the layer before it, or NULL with that layer in *layer. */
static const char *fold_unusable(const PqModel *m, const PqPlan *plan, const PqNode *bn, const PqOptions *o, const PqNode **layer,
                                 char *why, size_t len) {
  const PqGraph *g = pq_model_const_graph(m);
  const char *x = pq_node_input(bn, 0);
  const PqNode *a = pq_graph_value_producer(g, x);
  if (!a || !is_layer(a) || pq_node_n_inputs(a) < 2 || pq_node_n_outputs(a) != 1) {
    snprintf(why, len, "its input '%s' is not a linear or conv2d layer's output", x);
    return why;
  }
  *layer = a;
  if (!pq_options_layer_selected(o, pq_node_name(a), 0)) {
    snprintf(why, len, "'%s', the layer before it, is not selected", pq_node_name(a));
    return why;
  }
  if (!sole_reader(g, x) || pq_node_n_outputs(bn) != 1) {
    snprintf(why, len, "'%s' is read by more than the batch_norm", x);
    return why;
  }
  int nd = 0;
  const int64_t *shape = value_shape(plan, x, &nd);
  if (!shape || (!strcmp(pq_node_op(a), "linear") && nd != 2)) {
    snprintf(why, len, "'%s' has its features in dimension %d, the batch_norm's channels in dimension 1", x, nd - 1);
    return why;
  }
  if (tensor_unusable(m, pq_node_input(a, 1), why, len)) return why;
  const char *bias = pq_layer_bias(a);
  if (bias[0] && tensor_unusable(m, bias, why, len)) return why;
  for (int k = 1; k < 5; k++)
    if (!pq_model_tensor((PqModel *)m, pq_node_input(bn, (size_t)k))) {
      snprintf(why, len, "its input '%s' is computed, not a model tensor", pq_node_input(bn, (size_t)k));
      return why;
    }
  return NULL;
}

/* Each batch_norm right after a linear or conv2d layer folded into that layer's weight and bias (which it
 * is given where it has none): W_c·k_c and (b_c − mean_c)·k_c + beta_c, k_c = gamma_c / sqrt(var_c + eps).
 * The layer then writes the batch_norm's output, and the batch_norm and its tensors go. */
static PqStatus fold_batch_norms(PqModel *m, const PqOptions *o, PqPluginError *err) {
  PqGraph *g = pq_model_graph(m);
  /* the shapes, from one plan made before any fold: a fold renames only its own batch_norm's input, which no
     later fold asks about (the plan keeps its own copies of the names and shapes) */
  PqPlan *plan = NULL;
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++) {
    PqNode *bn = pq_graph_node(g, i);
    if (strcmp(pq_node_op(bn), "batch_norm") != 0) continue;
    if (!plan && !(plan = pq_plan_new(m, 1, err))) return (PqStatus)err->code;
    const PqNode *a = NULL;
    char why[300];
    const char *bad = fold_unusable(m, plan, bn, o, &a, why, sizeof why);
    if (bad) {
      char what[400];
      snprintf(what, sizeof what, "batch_norm '%s' left: %s", pq_node_name(bn), bad);
      pq_model_record_skip(m, METHOD, a ? pq_node_name(a) : pq_node_name(bn), what);
      continue;
    }
    const PqTensor *w = pq_model_tensor(m, pq_node_input(a, 1));
    int64_t c = pq_tensor_shape(w)[0], per = pq_tensor_numel(w) / c;
    const char *bias = pq_layer_bias(a);
    int64_t bias_numel = bias[0] ? pq_tensor_numel(pq_model_tensor(m, bias)) : c;
    for (int k = 1; k < 5; k++)
      if (pq_tensor_numel(pq_model_tensor(m, pq_node_input(bn, (size_t)k))) != c || bias_numel != c) {
        pq_plugin_error_set(err, PQ_ERR_INVALID, "batch_norm '%s': '%s' or the bias does not hold %lld values, one a channel", pq_node_name(bn),
                            pq_node_input(bn, (size_t)k), (long long)c);
        pq_plan_free(plan);
        return pq_plugin_error_in_layer(err, pq_node_name(a));
      }
    float *p[4] = {0};
    int ok = 1;
    for (int k = 0; k < 4; k++) ok = ok && (p[k] = pq_layer_weight_f32(bn, pq_model_tensor(m, pq_node_input(bn, (size_t)k + 1)), err));
    float *wf = ok ? pq_layer_weight_f32(a, w, err) : NULL;
    char bname[300], base[300];
    if (bias[0]) snprintf(bname, sizeof bname, "%s", bias);
    else {
      snprintf(base, sizeof base, "%s.bias", pq_node_name(a));
      pq_model_unique_name(m, base, bname, sizeof bname);
    }
    PqTensor *nb = wf ? pq_tensor_new(bname, PQ_DTYPE_F32, 1, &c) : NULL;
    float *bv = nb ? pq_tensor_mutable_data(nb) : NULL;
    if (bv && bias[0]) pq_tensor_to_f32(pq_model_tensor(m, bias), bv);
    else if (bv) memset(bv, 0, sizeof(float) * (size_t)c);
    double eps = pq_node_get_float(bn, "epsilon", 1e-5);
    for (int64_t ch = 0; bv && ch < c; ch++) { /* scale, bias, mean, var */
      double k = p[0][ch] / sqrt((double)p[3][ch] + eps);
      for (int64_t j = 0; j < per; j++) wf[ch * per + j] = (float)(wf[ch * per + j] * k);
      bv[ch] = (float)((bv[ch] - (double)p[2][ch]) * k + p[1][ch]);
    }
    int finite = bv != NULL;
    for (int64_t j = 0; finite && j < c * per; j++) finite = isfinite(wf[j]);
    for (int64_t j = 0; finite && j < c; j++) finite = isfinite(bv[j]);
    for (int k = 0; k < 4; k++) free(p[k]);
    if (!wf || !finite) { /* (a NaN or infinite weight or statistic: the error is set) */
      if (wf) pq_plugin_error_set(err, PQ_ERR_INVALID, "batch_norm '%s' folded in gives weights or a bias that are not finite float32 numbers "
                                  "(a variance at or below -epsilon, or a scale near float32's limit)", pq_node_name(bn));
      free(wf);
      if (nb) pq_tensor_unref(nb);
      pq_plan_free(plan);
      return pq_plugin_error_in_layer(err, pq_node_name(a));
    }
    PqTensor *nw = pq_tensor_new(pq_tensor_name(w), PQ_DTYPE_F32, pq_tensor_ndim(w), pq_tensor_shape(w));
    memcpy(pq_tensor_mutable_data(nw), wf, sizeof(float) * (size_t)(c * per));
    free(wf);
    int64_t before = pq_tensor_numel(w) + (bias[0] ? c : 0), after = pq_tensor_numel(w) + c;
    int64_t bytes_before = (int64_t)pq_tensor_nbytes(w) + (bias[0] ? (int64_t)pq_tensor_nbytes(pq_model_tensor(m, bias)) : 0),
            bytes_after = (int64_t)(pq_tensor_nbytes(nw) + pq_tensor_nbytes(nb));
    pq_model_set_tensor(m, nw);
    pq_tensor_unref(nw);
    pq_model_set_tensor(m, nb);
    pq_tensor_unref(nb);
    PqNode *layer = (PqNode *)a;
    pq_node_set_input(layer, 2, bname);
    char bn_name[256], stats[4][256];
    snprintf(bn_name, sizeof bn_name, "%s", pq_node_name(bn));
    for (int k = 0; k < 4; k++) snprintf(stats[k], sizeof stats[k], "%s", pq_node_input(bn, (size_t)k + 1));
    pq_node_set_output(layer, 0, pq_node_output(bn, 0));
    pq_graph_remove_node(g, bn);
    for (int k = 0; k < 4; k++) { /* the statistics' bytes counted where they go (another node may read them) */
      const PqTensor *t = pq_model_tensor(m, stats[k]);
      int64_t n = t ? pq_tensor_numel(t) : 0, bytes = t ? (int64_t)pq_tensor_nbytes(t) : 0;
      if (t && pq_model_remove_tensor_if_unused(m, stats[k])) before += n, bytes_before += bytes;
    }
    char detail[400];
    snprintf(detail, sizeof detail, "batch_norm '%s' folded into its weight and bias (%lld channels)", bn_name, (long long)c);
    pq_model_record_layer(m, METHOD, pq_node_name(layer), detail, before, after, bytes_before, bytes_after, NAN, NAN);
    i--; /* the next node is now at i */
  }
  pq_plan_free(plan);
  return PQ_OK;
}

static int uses_awq(const PqOptions *o) { return !strcmp(pq_options_get_string(o, "method", "range"), "awq"); }
static int64_t calibration_wanted(const PqOptions *o) { return uses_awq(o) ? pq_options_get_int(o, "samples", 512) : 0; }

static PqStatus eq_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  int64_t sweeps = pq_options_get_int(o, "iterations", 100);
  double tol = pq_options_get_float(o, "tolerance", 1e-4);
  int awq = uses_awq(o);
  AwqGrid grid = awq_grid(o);
  if (awq && grid.scheme == PQ_QUANT_PER_TENSOR) { /* its scales spread the rows of the layer before B (and fc1's columns) */
    pq_plugin_error_set(err, PQ_ERR_INVALID,
                        "equalize method=awq: stage %d (quant) quantizes per tensor, where the ranges awq's scales spread across a "
                        "layer's rows or columns share one scale; use method=range (the default), which evens them out, or a "
                        "per_channel or per_group scheme",
                        grid.from_stage);
    return PQ_ERR_INVALID;
  }
  if (awq && (!cal || cal->n_samples < 1)) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "equalize method=awq needs calibration samples (--calibration N > 0)");
    return PQ_ERR_INVALID;
  }
  PqModel *m = pq_model_copy(in);
  if (pq_options_get_bool(o, "fold_batch_norm", 1)) {
    PqStatus folded = fold_batch_norms(m, o, err);
    if (folded != PQ_OK) {
      pq_model_unref(m);
      return folded;
    }
  }
  const PqGraph *g = pq_model_const_graph(m);
  size_t n_nodes = pq_graph_n_nodes(g);
  PqPlan *plan = pq_plan_new(m, 1, err);
  Pair *pairs = plan ? calloc(n_nodes ? n_nodes : 1, sizeof(Pair)) : NULL;
  char **skips = pairs ? calloc(n_nodes ? n_nodes : 1, sizeof(char *)) : NULL; /* recorded at the end, in graph order */
  Work *works = skips ? calloc(3 * (n_nodes ? n_nodes : 1), sizeof(Work)) : NULL;
  int n_pairs = 0, n_works = 0;
  PqStatus code = PQ_OK;
  if (!works) {
    if (plan) pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of memory");
    code = (PqStatus)err->code;
    goto done;
  }
  for (size_t i = 0; i < n_nodes; i++) {
    const PqNode *a = pq_graph_node(g, i);
    if (!is_layer(a) || pq_node_n_inputs(a) < 2 || !pq_model_tensor(m, pq_node_input(a, 1))) continue;
    const char *layer = pq_node_name(a);
    char why[300] = "not selected (include, exclude, min_params)";
    Pair p;
    if (!pq_options_layer_selected(o, layer, pq_tensor_numel(pq_model_tensor(m, pq_node_input(a, 1)))) ||
        !find_pair(m, plan, a, o, &p, why, sizeof why) || (awq && !awq_fits(&p, &grid, why, sizeof why))) {
      skips[i] = strdup(why);
      continue;
    }
    const char *bias = pq_layer_bias(a);
    p.wa = work_for(works, &n_works, m, pq_node_input(a, 1), a, err);
    p.ba = p.wa && bias[0] ? work_for(works, &n_works, m, bias, a, err) : NULL;
    p.wb = p.wa && (p.ba || !bias[0]) ? work_for(works, &n_works, m, pq_node_input(p.b, 1), p.b, err) : NULL;
    p.total = p.wb ? malloc(sizeof(double) * 4 * (size_t)p.c) : NULL; /* and 3·c for the sweeps' work */
    if (!p.total) {
      if (p.wb) pq_plugin_error_set(err, PQ_ERR_NOMEM, "layer '%s': out of memory", layer);
      code = (PqStatus)err->code;
      goto done;
    }
    for (int64_t k = 0; k < p.c; k++) p.total[k] = 1.0;
    channel_ranges(&p, p.total + p.c, p.total + 2 * p.c);
    p.a_spread0 = spread(p.total + p.c, p.c);
    p.b_spread0 = spread(p.total + 2 * p.c, p.c);
    pairs[n_pairs++] = p;
  }
  /* awq: each pair's scales chosen once, for its B; else sweeps over every pair in graph order until no scale
     moves by more than the tolerance */
  int64_t done_sweeps = 0;
  for (int k = 0; awq && k < n_pairs; k++)
    if ((code = awq_pair(m, cal, &pairs[k], &grid, err)) != PQ_OK) goto done;
  for (; !awq && done_sweeps < sweeps && n_pairs;) {
    double moved = 0;
    for (int k = 0; k < n_pairs; k++) moved = fmax(moved, equalize_pair(&pairs[k], pairs[k].total + pairs[k].c));
    done_sweeps++;
    if (moved <= tol) break;
  }
  for (size_t i = 0, k = 0; i < n_nodes; i++) {
    if (skips[i]) pq_model_record_skip(m, METHOD, pq_node_name(pq_graph_node(g, i)), skips[i]);
    if (k == (size_t)n_pairs || pairs[k].a != pq_graph_node(g, i)) continue;
    Pair *p = &pairs[k++];
    if (awq && p->awq_alpha == 0) {
      char why[400];
      snprintf(why, sizeof why, "no scale gave '%s' less output error than none (awq)", pq_node_name(p->b));
      pq_model_record_skip(m, METHOD, pq_node_name(p->a), why);
      continue;
    }
    double lo = INFINITY, hi = 0, *ra = p->total + p->c, *rb = p->total + 2 * p->c;
    channel_ranges(p, ra, rb);
    for (int64_t ch = 0; ch < p->c; ch++) {
      lo = fmin(lo, p->total[ch]);
      hi = fmax(hi, p->total[ch]);
    }
    char detail[400], gw[64];
    grid_words(&grid, gw, sizeof gw);
    if (awq)
      snprintf(detail, sizeof detail,
               "%lld channels scaled for '%s' (awq, alpha %.2f): its rows divided and those columns multiplied by %.3g-%.3g; "
               "'%s' at %s: output error %.2fx round-to-nearest's on the %lld calibration rows",
               (long long)p->c, pq_node_name(p->b), p->awq_alpha, lo, hi, pq_node_name(p->b), gw, p->awq_ratio, (long long)p->awq_rows);
    else
      snprintf(detail, sizeof detail,
               "%lld channels equalized with '%s' (%lld sweep%s): its rows divided and those columns multiplied by %.3g-%.3g; "
               "mean channel range / largest: its rows %.2f -> %.2f, the columns of '%s' %.2f -> %.2f",
               (long long)p->c, pq_node_name(p->b), (long long)done_sweeps, done_sweeps == 1 ? "" : "s", lo, hi, p->a_spread0, spread(ra, p->c),
               pq_node_name(p->b), p->b_spread0, spread(rb, p->c));
    int64_t n = pq_tensor_numel(p->wa->tensor);
    pq_model_record_layer(m, METHOD, pq_node_name(p->a), detail, n, n, (int64_t)pq_tensor_nbytes(p->wa->tensor),
                          (int64_t)pq_tensor_nbytes(p->wa->tensor), NAN, NAN);
  }
  /* awq: linear layers reading a model input, through a new mul node */
  for (size_t i = 0; awq && pq_options_get_bool(o, "scale_inputs", 1) && i < n_nodes; i++) {
    PqNode *l = pq_graph_node(pq_model_graph(m), i);
    if (strcmp(pq_node_op(l), "linear") || pq_node_n_inputs(l) < 2 || pq_graph_input_index(g, pq_node_input(l, 0)) < 0) continue;
    const PqTensor *w = pq_model_tensor(m, pq_node_input(l, 1));
    if (!w || !pq_options_layer_selected(o, pq_node_name(l), pq_tensor_numel(w))) continue;
    char why[300] = "", what[400];
    int64_t cols = pq_tensor_shape(w)[1]; /* (a linear's weight is 2-D: validated) */
    if (pq_tensor_dtype(w) == PQ_DTYPE_F32 && grid.scheme == PQ_QUANT_PER_GROUP && !grid_group(&grid, cols))
      snprintf(why, sizeof why, "group_size %lld does not divide its rows of %lld%s", (long long)grid.group, (long long)cols,
               grid.fit ? ", nor does any size from half of it" : "");
    else
      tensor_unusable(m, pq_node_input(l, 1), why, sizeof why);
    if (why[0]) {
      snprintf(what, sizeof what, "its inputs left as they are (awq): %s", why);
      pq_model_record_skip(m, METHOD, pq_node_name(l), what);
      continue;
    }
    Work *wl = work_for(works, &n_works, m, pq_node_input(l, 1), l, err);
    if (!wl || (code = awq_input(m, cal, l, wl, &grid, err)) != PQ_OK) {
      if (!wl) code = pq_plugin_error_in_layer(err, pq_node_name(l));
      goto done;
    }
  }
  /* the values between the layers of a pair now hold scaled channels: they take new names, so that nothing
     matches them by name against a model where they are not scaled (bias_correct after a lossy stage) */
  for (int k = 0; k < n_pairs; k++) {
    if (awq && pairs[k].awq_alpha == 0) continue; /* left as it was */
    PqNode *from = (PqNode *)pairs[k].a;
    while (from != pairs[k].b) {
      PqNode *next = sole_reader(g, pq_node_output(from, 0)); /* (find_pair walked this path) */
      char base[300], name[320];
      snprintf(base, sizeof base, "%s.eq", pq_node_output(from, 0));
      pq_model_unique_name(m, base, name, sizeof name);
      pq_node_set_output(from, 0, name);
      pq_node_set_input(next, 0, name);
      from = next;
    }
  }
  for (int k = 0; k < n_works; k++) {
    if (!works[k].changed) continue;
    const PqTensor *t = works[k].tensor;
    PqTensor *nt = pq_tensor_new(pq_tensor_name(t), PQ_DTYPE_F32, pq_tensor_ndim(t), pq_tensor_shape(t));
    memcpy(pq_tensor_mutable_data(nt), works[k].data, sizeof(float) * (size_t)pq_tensor_numel(t));
    works[k].tensor = NULL; /* (t goes with the model's old entry) */
    pq_model_set_tensor(m, nt);
    pq_tensor_unref(nt);
  }
done:
  for (int k = 0; k < n_pairs; k++) free(pairs[k].total);
  for (int k = 0; k < n_works; k++) free(works[k].data);
  for (size_t i = 0; skips && i < n_nodes; i++) free(skips[i]);
  free(skips);
  free(works);
  free(pairs);
  pq_plan_free(plan);
  if (code != PQ_OK) {
    pq_model_unref(m);
    return code;
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable eq_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = eq_compress,
    .calibration_samples = calibration_wanted,
    .flags = PQ_COMPRESSOR_EXACT,
};

static const PqPluginDesc eq_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "equalize",
    .version = "1.2.0",
    .description = "cross-layer equalization: scales between consecutive layers that the model's function absorbs, balancing their "
                   "channel ranges (range) or chosen from calibration data for the quantization that follows (awq)",
    .options_schema = "{\"iterations\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 10000, \"default\": 100,"
                      "  \"description\": \"sweeps over the pairs of layers at most (a chain of more than two layers needs several)\"},"
                      " \"tolerance\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, \"default\": 0.0001,"
                      "  \"description\": \"stop when no scale moves by more than this (as |log s|) in a sweep\"},"
                      " \"fold_batch_norm\": {\"type\": \"boolean\", \"default\": true,"
                      "  \"description\": \"first fold each batch_norm right after a linear or conv2d layer into its weight and bias\"},"
                      " \"method\": {\"type\": \"string\", \"enum\": [\"range\", \"awq\"], \"default\": \"range\","
                      "  \"description\": \"range: both sides' weight ranges made equal, no data; awq: the scales that give the next layer the least"
                      " output error once quantized on the grid below, from calibration data (Lin et al. 2023)\"},"
                      " \"bits\": {\"type\": \"integer\", \"minimum\": 2, \"maximum\": 8, \"default\": 4,"
                      "  \"description\": \"awq: the bits of the quant stage it prepares for. The grid options not given here are"
                      " those of the first quant stage after this one in the chain (its scheme too: per_tensor, per_channel or per_group"
                      " with its group_size); their defaults stand only where none follows\"},"
                      " \"group_size\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 65536, \"default\": 0,"
                      "  \"description\": \"awq: values per scale (per_group); 0: one scale a row (per_channel)\"},"
                      " \"symmetric\": {\"type\": \"boolean\", \"default\": true, \"description\": \"awq: a grid symmetric about 0\"},"
                      " \"clip_search\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 200, \"default\": 20,"
                      "  \"description\": \"awq: clipping ratios tried per scale group, as quant's clip_search\"},"
                      " \"alpha_steps\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100, \"default\": 20,"
                      "  \"description\": \"awq: exponents tried for the scales, 0 to 1 in this many steps\"},"
                      " \"search_rows\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 512,"
                      "  \"description\": \"awq: rows of the next layer's weight each exponent is tried on (evenly spaced; all where it has"
                      " fewer); the one chosen is then checked on all\"},"
                      " \"samples\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 512,"
                      "  \"description\": \"awq: calibration samples for the layers' input statistics (at most what the host gives)\"},"
                      " \"scale_inputs\": {\"type\": \"boolean\", \"default\": true,"
                      "  \"description\": \"awq: a linear layer reading a model input is scaled too, its input divided by a new mul node\"}}",
    .vtable = &eq_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &eq_desc; }
