/* train.c — trains the default model: an MLP 784→256→128→10 on Fashion-MNIST with Adam, deterministically. */
#include "pq-private.h"

#include <cblas.h>
#include <pquant/pq-activation.h>
#include <math.h>
#include <string.h>

void pq_train_params_init(PqTrainParams *p) {
  p->epochs = 18;
  p->batch_size = 128;
  p->learning_rate = 1e-3;
  p->seed = 42;
  p->threads = 1;
  p->verbose = FALSE;
}

/* He initialisation of n weights of fan-in `fan_in`: normal by Box–Muller from a seeded Mersenne twister (the
 * same on every machine). */
static void he_normal(float *w, size_t n, int64_t fan_in, GRand *rng) {
  double sd = sqrt(2.0 / (double)fan_in);
  for (size_t i = 0; i < n; i += 2) {
    double u1 = g_rand_double(rng), u2 = g_rand_double(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    double r = sqrt(-2.0 * log(u1));
    w[i] = (float)(sd * r * cos(2 * G_PI * u2));
    if (i + 1 < n) w[i + 1] = (float)(sd * r * sin(2 * G_PI * u2));
  }
}

/* What both trainers need: labels, and epochs, a batch size and a learning rate that make sense. */
static gboolean train_inputs_ok(const PqDataset *train, const PqTrainParams *params, GError **error) {
  if (!pq_dataset_labels(train)) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "dataset %s has no labels (no labels file): training needs them", pq_dataset_name(train));
    return FALSE;
  }
  if (params->batch_size < 1 || params->epochs < 1 || !(params->learning_rate > 0)) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "training needs epochs >= 1, batch size >= 1 and a positive learning rate");
    return FALSE;
  }
  return TRUE;
}

typedef struct {
  int in, out;
  float *w, *b;           /* parameters */
  float *gw, *gb;         /* gradients */
  float *mw, *vw, *mb, *vb; /* Adam moments */
} Layer;

static void layer_init(Layer *l, int in, int out, GRand *rng) {
  l->in = in;
  l->out = out;
  size_t nw = (size_t)in * out;
  l->w = g_new(float, nw);
  l->b = g_new0(float, out);
  l->gw = g_new0(float, nw);
  l->gb = g_new0(float, out);
  l->mw = g_new0(float, nw);
  l->vw = g_new0(float, nw);
  l->mb = g_new0(float, out);
  l->vb = g_new0(float, out);
  he_normal(l->w, nw, in, rng);
}

static void layer_clear(Layer *l) {
  g_free(l->w);
  g_free(l->b);
  g_free(l->gw);
  g_free(l->gb);
  g_free(l->mw);
  g_free(l->vw);
  g_free(l->mb);
  g_free(l->vb);
}

/* y[B,out] = x[B,in] W^T + b, optionally ReLU */
static void forward(const Layer *l, const float *x, float *y, int B, gboolean relu) {
  for (int r = 0; r < B; r++) memcpy(y + (size_t)r * l->out, l->b, sizeof(float) * (size_t)l->out);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 1.0f, y, l->out);
  if (relu)
    for (size_t i = 0; i < (size_t)B * l->out; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

/* From dy[B,out]: gradients of W and b, and dx[B,in] (if dx). */
static void backward(Layer *l, const float *x, const float *dy, float *dx, int B) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, B, 1.0f, dy, l->out, x, l->in, 0.0f, l->gw, l->in);
  memset(l->gb, 0, sizeof(float) * (size_t)l->out);
  for (int r = 0; r < B; r++)
    for (int j = 0; j < l->out; j++) l->gb[j] += dy[(size_t)r * l->out + j];
  if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, 0.0f, dx, l->in);
}

static void adam(float *p, const float *g, float *m, float *v, size_t n, double lr, int t) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
  float a = (float)(lr * sqrt(c2) / c1);
  for (size_t i = 0; i < n; i++) {
    m[i] = (float)(b1 * m[i] + (1 - b1) * g[i]);
    v[i] = (float)(b2 * v[i] + (1 - b2) * g[i] * g[i]);
    p[i] -= a * m[i] / (sqrtf(v[i]) + (float)eps);
  }
}

static PqTensor *make_tensor(const char *name, int ndim, const int64_t *shape, const float *data) {
  PqTensor *t = pq_tensor_new(name, PQ_DTYPE_F32, ndim, shape);
  if (pq_tensor_nbytes(t)) memcpy(pq_tensor_mutable_data(t), data, pq_tensor_nbytes(t)); /* (none: a CSR layer with no values left) */
  return t;
}

PqModel *pq_train_mlp(const PqDataset *train, const PqTrainParams *params, GError **error) {
  g_return_val_if_fail(train && params, NULL);
  const int sizes[4] = {(int)pq_dataset_sample_numel(train), 256, 128, pq_dataset_n_classes(train)};
  const int B = params->batch_size;
  if (!train_inputs_ok(train, params, error)) return NULL;
  int64_t n = pq_dataset_n_samples(train);
  int old_threads = openblas_get_num_threads();
  openblas_set_num_threads(params->threads > 0 ? params->threads : 1);
  GRand *rng = g_rand_new_with_seed((guint32)params->seed);
  Layer L[3];
  for (int i = 0; i < 3; i++) layer_init(&L[i], sizes[i], sizes[i + 1], rng);
  g_autofree float *x = g_new(float, (size_t)B * sizes[0]);
  g_autofree float *h1 = g_new(float, (size_t)B * sizes[1]);
  g_autofree float *h2 = g_new(float, (size_t)B * sizes[2]);
  g_autofree float *z = g_new(float, (size_t)B * sizes[3]);
  g_autofree float *d2 = g_new(float, (size_t)B * sizes[2]);
  g_autofree float *d1 = g_new(float, (size_t)B * sizes[1]);
  g_autofree guint8 *labels = g_new(guint8, B);
  g_autofree gint32 *order = g_new(gint32, n);
  const guint8 *all_labels = pq_dataset_labels(train);
  for (int64_t i = 0; i < n; i++) order[i] = (gint32)i;
  int64_t steps_per_epoch = (n + B - 1) / B, total_steps = steps_per_epoch * params->epochs;
  int t = 0;
  gint64 t0 = g_get_monotonic_time();
  for (int ep = 0; ep < params->epochs; ep++) {
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher–Yates with the seeded generator */
      int64_t j = g_rand_int_range(rng, 0, (gint32)(i + 1));
      gint32 tmp = order[i];
      order[i] = order[j];
      order[j] = tmp;
    }
    double loss = 0;
    int64_t correct = 0;
    for (int64_t s = 0; s < n; s += B) {
      int bs = (int)MIN(B, n - s);
      for (int r = 0; r < bs; r++) {
        pq_dataset_get_batch(train, order[s + r], 1, x + (size_t)r * sizes[0], NULL);
        labels[r] = all_labels[order[s + r]];
      }
      forward(&L[0], x, h1, bs, TRUE);
      forward(&L[1], h1, h2, bs, TRUE);
      forward(&L[2], h2, z, bs, FALSE);
      /* softmax cross-entropy: dz = (p - onehot) / bs */
      for (int r = 0; r < bs; r++) {
        float *zr = z + (size_t)r * sizes[3];
        float m = zr[0], sum = 0;
        int best = 0;
        for (int c = 1; c < sizes[3]; c++) {
          if (zr[c] > m) m = zr[c];
          if (zr[c] > zr[best]) best = c;
        }
        correct += best == labels[r];
        for (int c = 0; c < sizes[3]; c++) sum += (zr[c] = expf(zr[c] - m));
        loss -= log(zr[labels[r]] / sum + 1e-12);
        for (int c = 0; c < sizes[3]; c++) zr[c] = (zr[c] / sum - (c == labels[r])) / (float)bs;
      }
      backward(&L[2], h2, z, d2, bs);
      for (size_t i = 0; i < (size_t)bs * sizes[2]; i++) d2[i] = h2[i] > 0 ? d2[i] : 0;
      backward(&L[1], h1, d2, d1, bs);
      for (size_t i = 0; i < (size_t)bs * sizes[1]; i++) d1[i] = h1[i] > 0 ? d1[i] : 0;
      backward(&L[0], x, d1, NULL, bs);
      t++;
      double lr = params->learning_rate * 0.5 * (1.0 + cos(G_PI * (double)(t - 1) / (double)total_steps));
      for (int l = 0; l < 3; l++) {
        adam(L[l].w, L[l].gw, L[l].mw, L[l].vw, (size_t)L[l].in * L[l].out, lr, t);
        adam(L[l].b, L[l].gb, L[l].mb, L[l].vb, (size_t)L[l].out, lr, t);
      }
    }
    if (params->verbose)
      g_printerr("epoch %2d/%d  loss %.4f  train accuracy %.2f%%  %.1f s\n", ep + 1, params->epochs, loss / (double)n,
                 100.0 * (double)correct / (double)n, (double)(g_get_monotonic_time() - t0) / 1e6);
  }
  g_rand_free(rng);
  openblas_set_num_threads(old_threads);

  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  int64_t in_shape[2] = {-1, sizes[0]};
  pq_graph_add_input(g, "input", 2, in_shape);
  const char *names[3] = {"fc1", "fc2", "fc3"};
  const char *prev = "input";
  char wname[32], bname[32], oname[3][32], rname[3][32];
  for (int l = 0; l < 3; l++) {
    int64_t ws[2] = {L[l].out, L[l].in}, bsz[1] = {L[l].out};
    g_snprintf(wname, sizeof wname, "%s.weight", names[l]);
    g_snprintf(bname, sizeof bname, "%s.bias", names[l]);
    g_snprintf(oname[l], sizeof oname[l], "%s.out", names[l]);
    PqTensor *tw = make_tensor(wname, 2, ws, L[l].w), *tb = make_tensor(bname, 1, bsz, L[l].b);
    pq_model_set_tensor(m, tw);
    pq_model_set_tensor(m, tb);
    pq_tensor_unref(tw);
    pq_tensor_unref(tb);
    const char *ins[3] = {prev, wname, bname};
    const char *outs[1] = {l == 2 ? "logits" : oname[l]};
    pq_graph_add_node(g, "linear", names[l], 3, ins, 1, outs);
    if (l < 2) {
      g_snprintf(rname[l], sizeof rname[l], "relu%d.out", l + 1);
      const char *rin[1] = {oname[l]}, *rout[1] = {rname[l]};
      char nn[16];
      g_snprintf(nn, sizeof nn, "relu%d", l + 1);
      pq_graph_add_node(g, "relu", nn, 1, rin, 1, rout);
      prev = rname[l];
    }
  }
  const char *sin[1] = {"logits"}, *sout[1] = {"probs"};
  pq_graph_add_node(g, "softmax", "softmax", 1, sin, 1, sout);
  pq_graph_add_output(g, "probs");
  g_autofree char *info = g_strdup_printf("mlp 784-256-128-10, adam lr %g cosine, %d epochs, batch %d, seed %" G_GUINT64_FORMAT,
                                          params->learning_rate, params->epochs, B, params->seed);
  pq_model_set_meta(m, "pquant.model", "fashion-mnist-mlp");
  pq_model_set_meta(m, "pquant.training", info);
  for (int i = 0; i < 3; i++) layer_clear(&L[i]);
  return m;
}

/* ---- the CNN ------------------------------------------------------------------------------------------ */

/* A weight (He-initialised) and a zero bias for a layer `name` of `fan_in` inputs. */
static void cnn_params(PqModel *m, const char *name, int ndim, const int64_t *shape, int64_t fan_in, GRand *rng) {
  char wn[32], bn[32];
  g_snprintf(wn, sizeof wn, "%s.weight", name);
  g_snprintf(bn, sizeof bn, "%s.bias", name);
  PqTensor *w = pq_tensor_new(wn, PQ_DTYPE_F32, ndim, shape), *b = pq_tensor_new(bn, PQ_DTYPE_F32, 1, shape);
  he_normal(pq_tensor_mutable_data(w), (size_t)pq_tensor_numel(w), fan_in, rng);
  pq_model_set_tensor(m, w);
  pq_model_set_tensor(m, b);
  pq_tensor_unref(w);
  pq_tensor_unref(b);
}

static const char *cnn_node(PqGraph *g, const char *op, const char *name, const char *in, gboolean params, char *out, size_t out_size) {
  char wn[32], bn[32];
  g_snprintf(wn, sizeof wn, "%s.weight", name);
  g_snprintf(bn, sizeof bn, "%s.bias", name);
  g_snprintf(out, out_size, "%s.out", name);
  const char *ins[3] = {in, wn, bn}, *outs[1] = {out};
  pq_graph_add_node(g, op, name, params ? 3 : 1, ins, 1, outs);
  return out;
}

PqModel *pq_train_cnn(const PqDataset *train, const PqTrainParams *params, GError **error) {
  g_return_val_if_fail(train && params, NULL);
  int nd = 0;
  const int64_t *ss = pq_dataset_sample_shape(train, &nd);
  int64_t c = nd == 3 ? ss[0] : 1, h = nd >= 2 ? ss[nd - 2] : 0, w = nd >= 2 ? ss[nd - 1] : 0;
  if (nd < 2 || h < 8 || w < 8) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID,
                "dataset %s: the CNN needs images of [H, W] or [C, H, W] with H and W of at least 8", pq_dataset_name(train));
    return NULL;
  }
  if (!train_inputs_ok(train, params, error)) return NULL;
  /* conv 3x3 (pad 1) + ReLU + 2x2 max pool, three times (16, 32, 64 channels), then one linear layer */
  const int64_t chans[4] = {c, 16, 32, 64};
  PqModel *m = pq_model_new();
  PqGraph *g = pq_model_graph(m);
  GRand *rng = g_rand_new_with_seed((guint32)params->seed);
  int64_t xs[4] = {-1, c, h, w}, pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
  pq_graph_add_input(g, "input", 4, xs);
  char outs[12][48];
  const char *cur = "input";
  int64_t oh = h, ow = w;
  for (int l = 0; l < 3; l++) {
    char name[16];
    g_snprintf(name, sizeof name, "conv%d", l + 1);
    int64_t ws[4] = {chans[l + 1], chans[l], 3, 3};
    cnn_params(m, name, 4, ws, chans[l] * 9, rng);
    cur = cnn_node(g, "conv2d", name, cur, TRUE, outs[3 * l], sizeof outs[0]);
    pq_node_set_ints(pq_graph_node(g, pq_graph_n_nodes(g) - 1), "pads", 4, pads);
    g_snprintf(name, sizeof name, "relu%d", l + 1);
    cur = cnn_node(g, "relu", name, cur, FALSE, outs[3 * l + 1], sizeof outs[0]);
    g_snprintf(name, sizeof name, "pool%d", l + 1);
    cur = cnn_node(g, "maxpool2d", name, cur, FALSE, outs[3 * l + 2], sizeof outs[0]);
    PqNode *pool = pq_graph_node(g, pq_graph_n_nodes(g) - 1);
    pq_node_set_ints(pool, "kernel", 2, k2);
    pq_node_set_ints(pool, "strides", 2, k2);
    oh /= 2;
    ow /= 2;
  }
  cur = cnn_node(g, "flatten", "flatten", cur, FALSE, outs[9], sizeof outs[0]);
  int64_t n_classes = pq_dataset_n_classes(train), fs[2] = {n_classes, chans[3] * oh * ow};
  cnn_params(m, "fc", 2, fs, fs[1], rng);
  cnn_node(g, "linear", "fc", cur, TRUE, outs[10], sizeof outs[0]);
  const char *sin[1] = {outs[10]}, *sout[1] = {"probs"};
  pq_graph_add_node(g, "softmax", "softmax", 1, sin, 1, sout);
  pq_graph_add_output(g, "probs");
  g_rand_free(rng);
  /* the training split in memory, trained by the fine-tuning loop (any graph it runs) */
  int64_t n = pq_dataset_n_samples(train), numel = pq_dataset_sample_numel(train);
  float *x = g_try_new(float, (gsize)(n * numel));
  if (!x) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "dataset %s: out of memory for its %" G_GINT64_FORMAT " samples",
                pq_dataset_name(train), n);
    pq_model_unref(m);
    return NULL;
  }
  pq_dataset_get_batch(train, 0, n, x, NULL);
  PqFinetuneParams fp = {params->epochs, params->batch_size, params->learning_rate, params->seed, params->threads};
  PqFinetuneResult res;
  PqPluginError perr = {sizeof perr, 0, {0}};
  int rc = pq_finetune(m, x, pq_dataset_labels(train), n, &fp, &res, &perr);
  g_free(x);
  if (rc != 0) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "training the CNN on %s: %s", pq_dataset_name(train), perr.message);
    pq_model_unref(m);
    return NULL;
  }
  if (params->verbose)
    g_printerr("loss %.4f -> %.4f, train accuracy %.2f%% -> %.2f%%\n", res.loss_before, res.loss_after, 100.0 * res.accuracy_before,
               100.0 * res.accuracy_after);
  g_autofree char *info = g_strdup_printf("cnn conv3x3 %" G_GINT64_FORMAT "-16-32-64 (max pool 2) + linear %" G_GINT64_FORMAT "-%" G_GINT64_FORMAT
                                          ", adam lr %g cosine, %d epochs, batch %d, seed %" G_GUINT64_FORMAT,
                                          c, fs[1], n_classes, params->learning_rate, params->epochs, params->batch_size, params->seed);
  pq_model_set_meta(m, "pquant.model", "cnn");
  pq_model_set_meta(m, "pquant.training", info);
  return m;
}

/* ---- fine-tuning a compressed model ---------------------------------------------------------------------- */

enum {
  FT_LINEAR, FT_RELU, FT_SOFTMAX, FT_ALIAS, FT_ACT, FT_CONV, FT_MAXPOOL, FT_AVGPOOL, FT_GAP, FT_BN, FT_BIN2, FT_LN,
  FT_TRANSPOSE, FT_MATMUL2, FT_SMAX, FT_BINW, FT_SLICE, FT_CONCAT, FT_REDUCE, FT_CONVT, FT_PAD, FT_RESIZE
};

typedef struct {
  int kind;
  int act;                   /* FT_ACT: which activation (pq-activation.h) and its parameters */
  float act_a, act_b;
  const char *name;          /* node name */
  int src0, src1;            /* the steps whose outputs it reads (src1: add's second operand); -1: the model's input */
  int64_t in, out;           /* per-sample widths of the step's input and output */
  float *w, *b;              /* linear: weight [out, in] (float32: trained; else its dequantized copy, fixed), bias */
  gboolean train_w, train_b;
  int64_t nw, nb;            /* weight and bias sizes (linear, conv2d) */
  const char *wname, *bname;
  float *gw, *gb, *mw, *vw, *mb, *vb;
  /* conv2d and pools: [C, H, W] in, [O, OH, OW] out; the window; conv's weight is [O, C·kh·kw] */
  int64_t c, h, w_, o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups; /* (groups: conv2d, c and o split in that many) */
  int include_pad;
  int32_t *argmax;           /* maxpool: for each output of the batch, the input it took */
  float *scale, *shift;      /* batch_norm (fixed): y = x·scale + shift per channel */
  double eps;                /* layer_norm: rows of c values, its scale and bias in w and b (trained where float32) */
  int rank;                  /* transpose: per-sample output dimensions and their input strides */
  int64_t tr_out[PQ_MAX_DIMS], tr_ist[PQ_MAX_DIMS];
  PqSliceGeometry slice;     /* slice */
  PqReduceGeometry red;      /* reduce_sum, reduce_mean (bin: which) */
  int64_t mm_m, mm_k, mm_n, mm_slices; /* matmul of two activations: [m, k] · [k, n], matrices a sample */
  int bin;                   /* FT_BINW: x op c (c op x with swap), c a model tensor in w, broadcast by bidx; */
  int swap;                  /* trained where float32 and not a scalar for add, sub, mul, div and prelu */
  int32_t *bidx;             /* (each per-sample output element's index into c) */
  float *shadow;             /* quantization-aware: the float32 weight that learns; w is it rounded onto the packed */
  PqTensor *q_like;          /* weight's grid (its scales and zero points, kept), again after every step */
  int32_t *aidx;             /* FT_BIN2, FT_BINW: the same into each operand where it is broadcast (else NULL), */
  int64_t in1;               /* and the second operand's values a sample */
  float cst;                 /* pad2d: the border's value */
  int cat_n, cat_src[16];    /* concat: each input's step (-1: the model's input, -2: a model tensor, fixed) */
  int64_t cat_outer, cat_blk[16];
  float *cat_w[16];
  int form;                  /* a linear layer's weight held in a structured form (FORM_*): w is its dense matrix, */
  int np;                    /* formed again after each step from np parameter tensors (TT cores, circulant blocks, */
  float *p[16], *gp[16], *mp[16], *vp[16]; /* CSR values), each trained where float32 */
  int64_t pn[16];
  const char *pname[16];
  gboolean ptrain[16];
  PqTtChain *tt;             /* tt_linear: its partial products */
  int64_t blk;               /* circulant_linear: the block size */
  int32_t *csr_col, *csr_row; /* sparse_linear: the pattern, kept */
  PqResizeParams rs;         /* resize2d (c planes of h × w_ to oh × ow) */
} FtStep;

enum { FORM_DENSE, FORM_TT, FORM_CIRC, FORM_CSR };

static void ft_free(FtStep *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    g_free(s[i].w), g_free(s[i].b), g_free(s[i].gw), g_free(s[i].gb);
    g_free(s[i].mw), g_free(s[i].vw), g_free(s[i].mb), g_free(s[i].vb);
    g_free(s[i].argmax), g_free(s[i].scale), g_free(s[i].shift);
    for (int j = 0; j < 16; j++) g_free(s[i].cat_w[j]), g_free(s[i].p[j]), g_free(s[i].gp[j]), g_free(s[i].mp[j]), g_free(s[i].vp[j]);
    pq_tt_chain_free(s[i].tt);
    g_free(s[i].csr_col), g_free(s[i].csr_row), g_free(s[i].bidx), g_free(s[i].aidx), g_free(s[i].shadow);
    if (s[i].q_like) pq_tensor_unref(s[i].q_like);
  }
  g_free(s);
}

/* A trained tensor as one step reads it: its values, gradient and Adam moments; tie: the index of the first
 * step's hold on the same tensor, or -1. */
typedef struct {
  float *val, *grad, *m, *v;
  int64_t n;
  int tie;
} FtParam;

static void ft_param_add(GArray *params, GHashTable *first, float *val, float *grad, float *m, float *v, int64_t n, const char *name) {
  gpointer at;
  FtParam fp = {val, grad, m, v, n, g_hash_table_lookup_extended(first, name, NULL, &at) ? GPOINTER_TO_INT(at) : -1};
  if (fp.tie < 0) g_hash_table_insert(first, (gpointer)name, GINT_TO_POINTER((int)params->len));
  g_array_append_val(params, fp);
}

/* For a binary op with output shape os (the batch first), each per-sample output element's index into one
 * operand of shape bs (NumPy broadcasting): a model tensor, whose batch dimension (if it has one) must be 1,
 * or (batch) an activation of the same rank, indexed within its sample. NULL where neither holds. */
static int32_t *ft_broadcast_index(const int64_t *os, int ond, const int64_t *bs, int bnd, gboolean batch) {
  if (bnd > ond || (!batch && bnd == ond && bs[0] != 1) || (batch && bnd != ond)) return NULL;
  int64_t per = 1, stride[PQ_MAX_DIMS], b[PQ_MAX_DIMS], acc = 1;
  for (int d = ond - 1; d >= 0; d--) {
    b[d] = d < ond - bnd ? 1 : bs[d - (ond - bnd)];
    stride[d] = acc;
    acc *= b[d];
    if (d > 0) per *= os[d];
  }
  int32_t *idx = g_new(int32_t, per ? per : 1);
  for (int64_t k = 0; k < per; k++) {
    int64_t rest = k, off = 0;
    for (int d = ond - 1; d >= 1; d--) {
      int64_t i = rest % os[d];
      rest /= os[d];
      if (b[d] != 1) off += i * stride[d];
    }
    idx[k] = (int32_t)off;
  }
  return idx;
}

/* A linear or conv layer's weight and bias (b may be NULL) in float32: trained where stored as float32, else
 * (packed, float16) fixed and trained through. */
static void ft_params(FtStep *s, PqTensor *w, PqTensor *b) {
  if (w) { /* (a layer_norm may have no scale) */
    s->nw = pq_tensor_numel(w);
    s->wname = pq_tensor_name(w);
    s->w = g_new(float, s->nw);
    pq_tensor_to_f32(w, s->w);
    s->train_w = pq_tensor_dtype(w) == PQ_DTYPE_F32;
  }
  if (!b) return;
  s->nb = pq_tensor_numel(b);
  s->bname = pq_tensor_name(b);
  s->b = g_new(float, s->nb);
  pq_tensor_to_f32(b, s->b);
  s->train_b = pq_tensor_dtype(b) == PQ_DTYPE_F32;
}

/* Quantization-aware training of a packed weight: its dequantized values (in w) become a float32 copy that
 * learns, and w is that copy rounded onto the weight's own grid (bits, scheme, scales and zero points, kept
 * as they are: the codes change, not the grid). */
static void ft_qat_setup(FtStep *s, PqTensor *w) {
  if (pq_tensor_dtype(w) != PQ_DTYPE_PACKED || !s->w) return;
  s->shadow = g_memdup2(s->w, sizeof(float) * (size_t)s->nw);
  s->q_like = pq_tensor_ref(w);
  s->train_w = TRUE;
}

/* w = the copy rounded (straight-through: the step's gradient, taken at w, went to the copy). */
static void ft_qat_round(FtStep *s) { pq_round_like(s->shadow, s->q_like, s->w); }

/* A structured layer's dense weight [o, c] from its parameters. */
static void ft_form_dense(FtStep *s) {
  switch (s->form) {
  case FORM_TT: pq_tt_chain_dense(s->tt, (const float *const *)s->p, s->w); break;
  case FORM_CIRC: pq_circulant_dense(s->p[0], s->o, s->c, s->blk, s->w); break;
  default: /* CSR: a column named twice in a row sums, as the sparse kernels sum it */
    memset(s->w, 0, sizeof(float) * (size_t)s->nw);
    for (int64_t o = 0; o < s->o; o++)
      for (int32_t k = s->csr_row[o]; k < s->csr_row[o + 1]; k++) s->w[o * s->c + s->csr_col[k]] += s->p[0][k];
  }
}

/* The gradient with respect to the dense weight (in gw) taken back to the parameters (gp). */
static void ft_form_grads(FtStep *s) {
  switch (s->form) {
  case FORM_TT: pq_tt_chain_grads(s->tt, (const float *const *)s->p, s->gw, s->gp); break;
  case FORM_CIRC: pq_circulant_grad(s->gw, s->o, s->c, s->blk, s->gp[0]); break;
  default:
    for (int64_t o = 0; o < s->o; o++)
      for (int32_t k = s->csr_row[o]; k < s->csr_row[o + 1]; k++) s->gp[0][k] = s->gw[o * s->c + s->csr_col[k]];
  }
}

/* A depthwise conv (one input channel a group) on one sample by direct loops, tap by tap over the output span
 * where the input is inside: with y, y += w ∗ x (forward); with gw, gw += dy ⋆ x; with dx, dx += wᵀ ∗ dy. (A
 * GEMM a channel would be a 1 × OH·OW × kh·kw product each.) */
static void ft_depthwise(const FtStep *s, const float *x, const float *w, float *y, const float *dy, float *gw, float *dx) {
  int64_t og = s->o / s->groups, hw = s->h * s->w_, ohw = s->oh * s->ow;
  for (int64_t o = 0; o < s->o; o++) {
    int64_t ci = o / og;
    const float *xp = x + ci * hw, *dyo = dy ? dy + o * ohw : NULL;
    float *yo = y ? y + o * ohw : NULL, *dxp = dx ? dx + ci * hw : NULL;
    for (int64_t ky = 0; ky < s->kh; ky++)
      for (int64_t kx = 0; kx < s->kw; kx++) {
        int64_t wi = (o * s->kh + ky) * s->kw + kx, off = kx * s->dw - s->pw; /* ix = ox·sw + off, kept in [0, w) */
        int64_t lo = off >= 0 ? 0 : (-off + s->sw - 1) / s->sw, hi = s->w_ - 1 - off < 0 ? 0 : (s->w_ - 1 - off) / s->sw + 1;
        if (hi > s->ow) hi = s->ow;
        float wv = w[wi];
        double acc = 0;
        for (int64_t oy = 0; oy < s->oh; oy++) {
          int64_t iy = oy * s->sh - s->ph + ky * s->dh;
          if (iy < 0 || iy >= s->h) continue;
          for (int64_t ox = lo; ox < hi; ox++) {
            int64_t xi = iy * s->w_ + off + ox * s->sw, yi = oy * s->ow + ox;
            if (yo) yo[yi] += wv * xp[xi];
            if (gw) acc += (double)dyo[yi] * xp[xi];
            if (dxp) dxp[xi] += dyo[yi] * wv;
          }
        }
        if (gw) gw[wi] += (float)acc;
      }
  }
}

/* col [C/groups·kh·kw, OH·OW] from one group's channels of one sample x [C/groups, H, W]; with `back`, the
 * reverse: col's values added into x. */
static void ft_im2col(const FtStep *s, float *x, float *col, gboolean back) {
  PqConvGeometry g = {s->c / s->groups, s->h, s->w_, s->kh, s->kw, s->oh, s->ow, s->sh, s->sw, s->dh, s->dw, s->ph, s->pw};
  if (back) pq_col2im_add(col, &g, x);
  else pq_im2col(x, &g, col);
}

/* conv_transpose2d: the geometry of the conv2d whose gradient it is — the output [O/groups, OH, OW] as that
 * conv's input, the input [C/groups, H, W] as its output — so that col2im spreads and im2col gathers. */
static PqConvGeometry ft_convt_geo(const FtStep *s) {
  PqConvGeometry g = {s->o / s->groups, s->oh, s->ow, s->kh, s->kw, s->h, s->w_, s->sh, s->sw, s->dh, s->dw, s->ph, s->pw};
  return g;
}

/* Pools over one sample's planes: forward (argmax kept for max), or backward from dy into dx (zeroed first). */
static void ft_pool(FtStep *s, const float *x, float *y, int r, gboolean back, const float *dy, float *dx) {
  int max = s->kind == FT_MAXPOOL;
  for (int64_t ch = 0; ch < s->c; ch++)
    for (int64_t oy = 0; oy < s->oh; oy++)
      for (int64_t ox = 0; ox < s->ow; ox++) {
        int64_t oi = (ch * s->oh + oy) * s->ow + ox, best = -1, cnt = 0, cnt_pad = 0;
        float acc = max ? -INFINITY : 0.0f;
        for (int64_t ki = 0; ki < s->kh; ki++)
          for (int64_t kj = 0; kj < s->kw; kj++) {
            int64_t iy = oy * s->sh - s->ph + ki * s->dh, ix = ox * s->sw - s->pw + kj * s->dw;
            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w_) {
              if (iy < s->h + s->ph && ix < s->w_ + s->pw) cnt_pad++;
              continue;
            }
            int64_t ii = (ch * s->h + iy) * s->w_ + ix;
            cnt++;
            if (max) {
              if (best < 0 || x[ii] > acc) acc = x[ii], best = ii;
            } else if (back) {
              (void)0; /* distributed below, once the count is known */
            } else acc += x[ii];
          }
        int64_t div = s->include_pad ? cnt + cnt_pad : cnt;
        if (!back) {
          if (max) s->argmax[(int64_t)r * s->out + oi] = (int32_t)best;
          y[oi] = max ? (best >= 0 ? acc : 0.0f) : (div ? acc / (float)div : 0.0f);
          continue;
        }
        if (max) {
          int32_t b = s->argmax[(int64_t)r * s->out + oi];
          if (b >= 0) dx[b] += dy[oi];
          continue;
        }
        if (!div) continue;
        float g = dy[oi] / (float)div;
        for (int64_t ki = 0; ki < s->kh; ki++)
          for (int64_t kj = 0; kj < s->kw; kj++) {
            int64_t iy = oy * s->sh - s->ph + ki * s->dh, ix = ox * s->sw - s->pw + kj * s->dw;
            if (iy >= 0 && iy < s->h && ix >= 0 && ix < s->w_) dx[(ch * s->h + iy) * s->w_ + ix] += g;
          }
      }
}

/* The forward pass of a batch (acts: per-step output buffers; col: im2col scratch). */
static void ft_forward(FtStep *st, size_t ns, const float *x, float **acts, int bs, float *col) {
  for (size_t i = 0; i < ns; i++) {
    FtStep *s = &st[i];
    float *y = acts[i];
    const float *cur = s->src0 >= 0 ? acts[s->src0] : x;
    switch (s->kind) {
    case FT_LINEAR: { /* rows of c inputs (h of them a sample: tokens, say) to rows of o outputs */
      int rows = bs * (int)s->h;
      for (int r = 0; r < rows; r++) {
        if (s->b) memcpy(y + (size_t)r * s->o, s->b, sizeof(float) * (size_t)s->o);
        else memset(y + (size_t)r * s->o, 0, sizeof(float) * (size_t)s->o);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, (int)s->o, (int)s->c, 1.0f, cur, (int)s->c, s->w, (int)s->c, 1.0f, y,
                  (int)s->o);
      break;
    }
    case FT_RELU:
      for (size_t k = 0; k < (size_t)bs * s->out; k++) y[k] = cur[k] > 0 ? cur[k] : 0;
      break;
    case FT_ACT:
      for (size_t k = 0; k < (size_t)bs * s->out; k++) y[k] = pq_activation(s->act, cur[k], s->act_a, s->act_b);
      break;
    case FT_CONV: { /* per group: W_g [o/g, c/g·kh·kw] · col_g */
      int64_t ohw = s->oh * s->ow, cg = s->c / s->groups, og = s->o / s->groups, ckk = cg * s->kh * s->kw;
      for (int r = 0; r < bs; r++) {
        float *yr = y + (size_t)r * s->out;
        for (int64_t oc = 0; oc < s->o; oc++)
          for (int64_t q = 0; q < ohw; q++) yr[oc * ohw + q] = s->b ? s->b[oc] : 0.0f;
        if (cg == 1 && s->groups > 1) { /* depthwise */
          ft_depthwise(s, cur + (size_t)r * s->in, s->w, yr, NULL, NULL, NULL);
          continue;
        }
        for (int64_t g = 0; g < s->groups; g++) {
          ft_im2col(s, (float *)cur + (size_t)r * s->in + g * cg * s->h * s->w_, col, FALSE);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)og, (int)ohw, (int)ckk, 1.0f, s->w + g * og * ckk, (int)ckk, col, (int)ohw,
                      1.0f, yr + g * og * ohw, (int)ohw);
        }
      }
      break;
    }
    case FT_CONVT: { /* per group: col = W_gᵀ · x_g [O/g·kh·kw, H·W], spread into y_g (col2im) */
      int64_t hw = s->h * s->w_, ohw = s->oh * s->ow, cg = s->c / s->groups, og = s->o / s->groups, kk = og * s->kh * s->kw;
      PqConvGeometry geo = ft_convt_geo(s);
      for (int r = 0; r < bs; r++) {
        float *yr = y + (size_t)r * s->out;
        memset(yr, 0, sizeof(float) * (size_t)s->out);
        for (int64_t g = 0; g < s->groups; g++) {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)hw, (int)cg, 1.0f, s->w + g * cg * kk, (int)kk,
                      cur + (size_t)r * s->in + g * cg * hw, (int)hw, 0.0f, col, (int)hw);
          pq_col2im_add(col, &geo, yr + g * og * ohw);
        }
        if (s->b)
          for (int64_t oc = 0; oc < s->o; oc++)
            for (int64_t q = 0; q < ohw; q++) yr[oc * ohw + q] += s->b[oc];
      }
      break;
    }
    case FT_MAXPOOL:
    case FT_AVGPOOL:
      for (int r = 0; r < bs; r++) ft_pool(s, cur + (size_t)r * s->in, y + (size_t)r * s->out, r, FALSE, NULL, NULL);
      break;
    case FT_PAD: /* planes grown by borders of a constant (its value in cst; top and left pads in ph, pw) */
      for (int64_t r = 0; r < (int64_t)bs * s->c; r++)
        for (int64_t oy = 0; oy < s->oh; oy++)
          for (int64_t ox = 0; ox < s->ow; ox++) {
            int64_t iy = oy - s->ph, ix = ox - s->pw;
            y[(r * s->oh + oy) * s->ow + ox] = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w_ ? cur[(r * s->h + iy) * s->w_ + ix] : s->cst;
          }
      break;
    case FT_RESIZE:
      for (int64_t r = 0; r < (int64_t)bs * s->c; r++)
        for (int64_t oy = 0; oy < s->oh; oy++)
          for (int64_t ox = 0; ox < s->ow; ox++) y[(r * s->oh + oy) * s->ow + ox] = pq_resize_one(&s->rs, cur + r * s->h * s->w_, oy, ox);
      break;
    case FT_GAP:
      for (int64_t r = 0; r < bs; r++)
        for (int64_t ch = 0; ch < s->c; ch++) {
          double a = 0;
          int64_t sp = s->in / s->c;
          for (int64_t k = 0; k < sp; k++) a += cur[r * s->in + ch * sp + k];
          y[r * s->out + ch] = (float)(a / (double)sp);
        }
      break;
    case FT_BN:
      for (int64_t r = 0; r < bs; r++)
        for (int64_t k = 0; k < s->out; k++) {
          int64_t ch = k / (s->out / s->c);
          y[r * s->out + k] = cur[r * s->out + k] * s->scale[ch] + s->shift[ch];
        }
      break;
    case FT_LN:
      for (int64_t r = 0; r < (int64_t)bs * s->out / s->c; r++) {
        const float *xr = cur + r * s->c;
        float *yr = y + r * s->c;
        double mean = 0, var = 0;
        for (int64_t k = 0; k < s->c; k++) mean += xr[k];
        mean /= (double)s->c;
        for (int64_t k = 0; k < s->c; k++) var += ((double)xr[k] - mean) * ((double)xr[k] - mean);
        float inv = (float)(1.0 / sqrt(var / (double)s->c + s->eps)), m = (float)mean;
        for (int64_t k = 0; k < s->c; k++) yr[k] = (xr[k] - m) * inv * (s->w ? s->w[k] : 1.0f) + (s->b ? s->b[k] : 0.0f);
      }
      break;
    case FT_BIN2: { /* a binary op of two activations */
      const float *b = s->src1 >= 0 ? acts[s->src1] : x;
      for (int64_t r = 0; r < bs; r++)
        for (int64_t k = 0; k < s->out; k++)
          y[r * s->out + k] = pq_binary(s->bin, cur[r * s->in + (s->aidx ? s->aidx[k] : k)], b[r * s->in1 + (s->bidx ? s->bidx[k] : k)]);
      break;
    }
    case FT_BINW: /* x op c, c a model tensor, the same for every sample */
      for (int64_t r = 0; r < bs; r++)
        for (int64_t k = 0; k < s->out; k++) {
          float a = cur[r * s->in + (s->aidx ? s->aidx[k] : k)], c = s->w[s->bidx[k]];
          y[r * s->out + k] = s->swap ? pq_binary(s->bin, c, a) : pq_binary(s->bin, a, c);
        }
      break;
    case FT_TRANSPOSE:
      for (int64_t r = 0; r < bs; r++)
        for (int64_t o = 0; o < s->out; o++) y[r * s->out + o] = cur[r * s->in + pq_walk_offset(s->rank - 1, s->tr_out + 1, s->tr_ist + 1, o)];
      break;
    case FT_SLICE:
      for (int64_t r = 0; r < bs; r++)
        for (int64_t o = 0; o < s->out; o++) y[r * s->out + o] = cur[r * s->in + pq_slice_offset(&s->slice, o)];
      break;
    case FT_REDUCE:
      for (int64_t r = 0; r < bs; r++)
        for (int64_t o = 0; o < s->out; o++) {
          y[r * s->out + o] = pq_reduce_one(s->bin, &s->red, cur + r * s->in, o);
          if (!s->argmax) continue;
          const float *xb = cur + r * s->in + pq_reduce_base(&s->red, o); /* max, min: which element (the first of ties) */
          int32_t best = 0;
          for (int64_t q = 1; q < s->red.red_count; q++) {
            float v = xb[pq_reduce_offset(&s->red, q)], b = xb[pq_reduce_offset(&s->red, best)];
            if (s->bin == PQ_RED_MAX ? v > b : v < b) best = (int32_t)q;
          }
          s->argmax[r * s->out + o] = best;
        }
      break;
    case FT_MATMUL2: {
      const float *b = s->src1 >= 0 ? acts[s->src1] : x;
      int64_t m = s->mm_m, k = s->mm_k, n = s->mm_n;
      for (int64_t i = 0; i < bs * s->mm_slices; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, cur + i * m * k, (int)k, b + i * k * n, (int)n, 0.0f,
                    y + i * m * n, (int)n);
      break;
    }
    case FT_SMAX: /* a softmax inside the graph, over the last dimension */
      for (int64_t r = 0; r < (int64_t)bs * s->out / s->c; r++) {
        const float *xr = cur + r * s->c;
        float *yr = y + r * s->c, m = -INFINITY, sum = 0.0f;
        for (int64_t k = 0; k < s->c; k++) m = fmaxf(m, xr[k]);
        for (int64_t k = 0; k < s->c; k++) sum += (yr[k] = expf(xr[k] - m));
        for (int64_t k = 0; k < s->c; k++) yr[k] /= sum;
      }
      break;
    case FT_CONCAT:
      for (int64_t r = 0; r < bs; r++)
        for (int64_t o = 0; o < s->cat_outer; o++) {
          float *yo = y + r * s->out + o * (s->out / s->cat_outer);
          for (int j = 0; j < s->cat_n; j++) {
            const float *src = s->cat_src[j] == -2 ? s->cat_w[j] + o * s->cat_blk[j]
                                                   : (s->cat_src[j] >= 0 ? acts[s->cat_src[j]] : x) + (r * s->cat_outer + o) * s->cat_blk[j];
            memcpy(yo, src, sizeof(float) * (size_t)s->cat_blk[j]);
            yo += s->cat_blk[j];
          }
        }
      break;
    default: memcpy(y, cur, sizeof(float) * (size_t)bs * s->out); break; /* alias; a final softmax is left to the loss */
    }
  }
}

/* The softmax cross-entropy of bs rows of logits against their targets: (1 − alpha)·onehot(label) +
 * alpha·teacher (teacher: rows of c probabilities, or NULL with alpha 0; labels NULL with alpha 1). `correct`
 * counts the rows whose top class is the label's (else the teacher's). With `grad`, the logits are replaced
 * by the loss's gradient, (softmax − target) / bs. */
static double ft_loss(float *logits, const guint8 *labels, const float *teacher, double alpha, int bs, int64_t c, int64_t *correct,
                      gboolean grad) {
  double loss = 0;
  for (int r = 0; r < bs; r++) {
    float *z = logits + (size_t)r * c, m = z[0], sum = 0;
    const float *tr = teacher ? teacher + (size_t)r * c : NULL;
    int64_t best = 0, want = 0;
    for (int64_t k = 1; k < c; k++) {
      if (z[k] > m) m = z[k];
      if (z[k] > z[best]) best = k;
    }
    if (labels) want = labels[r];
    else
      for (int64_t k = 1; k < c; k++)
        if (tr[k] > tr[want]) want = k;
    *correct += best == want;
    for (int64_t k = 0; k < c; k++) sum += expf(z[k] - m);
    double lse = log(sum) + m;
    for (int64_t k = 0; k < c; k++) {
      float t = (float)((labels ? (1 - alpha) * (k == labels[r]) : 0) + (tr ? alpha * tr[k] : 0));
      if (t != 0) loss += t * (lse - z[k]);
      if (grad) z[k] = (expf(z[k] - m) / sum - t) / (float)bs; /* (after its loss term: that reads z[k] first) */
    }
  }
  return loss;
}

int pq_finetune(PqModel *model, const float *inputs, const uint8_t *labels, int64_t n, const PqFinetuneParams *p, PqFinetuneResult *res,
                PqPluginError *error) {
  g_return_val_if_fail(labels, -1);
  return pq_finetune_ex(model, inputs, labels, n, p, NULL, res, error);
}

#define EXTRA_HAS(e, field) ((e) && (e)->struct_size >= offsetof(PqFinetuneExtra, field) + sizeof((e)->field))

int pq_finetune_ex(PqModel *model, const float *inputs, const uint8_t *labels, int64_t n, const PqFinetuneParams *p,
                   const PqFinetuneExtra *extra, PqFinetuneResult *res, PqPluginError *error) {
  g_return_val_if_fail(model && inputs && p && res, -1);
  const float *teacher = EXTRA_HAS(extra, teacher) ? extra->teacher : NULL;
  double alpha = EXTRA_HAS(extra, alpha) ? extra->alpha : 0.0;
  gboolean qat = EXTRA_HAS(extra, qat) && extra->qat;
  if (n < 1 || p->epochs < 1 || p->batch_size < 1 || !(p->learning_rate > 0)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "finetune: needs samples, epochs >= 1, batch size >= 1 and a positive learning rate");
    return -1;
  }
  if (!(alpha >= 0 && alpha <= 1) || (alpha > 0 && !teacher) || (alpha < 1 && !labels)) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "finetune: the teacher's weight must be in [0, 1], with the teacher's outputs where it is above 0 "
                                               "and labels where it is below 1 (it is %g; labels %s, teacher %s)",
                        alpha, labels ? "given" : "missing", teacher ? "given" : "missing");
    return -1;
  }
  if (alpha == 0) teacher = NULL;
  if (alpha == 1) labels = NULL;
  g_autoptr(GError) gerr = NULL;
  g_autoptr(PqPlan) plan = pq_model_plan(model, 1, &gerr);
  if (!plan) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "finetune: %s", gerr->message);
    return -1;
  }
  const PqGraph *g = model->graph;
  size_t ns = pq_plan_n_steps(plan), nv = pq_plan_n_values(plan);
  FtStep *st = g_new0(FtStep, ns ? ns : 1);
  g_autofree int *producer = g_new(int, nv ? nv : 1); /* per value: the step that computes it, -1 the model's input, -2 neither */
  for (size_t v = 0; v < nv; v++) producer[v] = -2;
  int ok = g->inputs->len == 1 && g->outputs->len == 1, last = -1;
  const char *why = "the model must have one input and one output";
  if (ok) producer[pq_plan_value_index(plan, pq_graph_input_name(g, 0))] = -1;
  for (size_t i = 0; ok && i < ns; i++) {
    const PqNode *node = pq_plan_step(plan, i);
    FtStep *s = &st[i];
    s->name = node->name;
    const char *op = node->op;
    int in0 = pq_plan_step_input(plan, i, 0), out = pq_plan_step_output(plan, i, 0), in1_ = pq_plan_step_input(plan, i, 1);
    int swap = pq_binary_kind(op) != PQ_BIN_NONE && in0 >= 0 && in1_ >= 0 && pq_plan_value_kind(plan, in0) == PQ_VALUE_WEIGHT &&
               pq_plan_value_kind(plan, in1_) != PQ_VALUE_WEIGHT; /* c op x: the activation is the second input */
    if (swap) {
      int t = in0;
      in0 = in1_, in1_ = t;
    }
    if (in0 < 0 || (producer[in0] == -2 && !(!strcmp(op, "concat") && pq_plan_value_kind(plan, in0) == PQ_VALUE_WEIGHT))) {
      ok = 0; /* (a concat may start with a model tensor: a class token) */
      why = "each node's first input must be the model's input or another node's output";
      break;
    }
    s->src0 = producer[in0];
    s->in = pq_plan_value_numel(plan, in0);
    s->out = pq_plan_value_numel(plan, out);
    producer[out] = (int)i;
    last = out;
    if (pq_binary_kind(op) != PQ_BIN_NONE && in1_ >= 0 && pq_plan_value_kind(plan, in1_) != PQ_VALUE_WEIGHT) {
      /* two activations: a residual add, a gate (x · sigmoid(x)), a squeeze-and-excitation scale ([C, 1, 1]) */
      int ond, and_, bnd;
      const int64_t *os = pq_plan_value_shape(plan, out, &ond), *as = pq_plan_value_shape(plan, in0, &and_),
                    *bshape = pq_plan_value_shape(plan, in1_, &bnd);
      s->in1 = pq_plan_value_numel(plan, in1_);
      if (producer[in1_] == -2 || (s->in != s->out && !(s->aidx = ft_broadcast_index(os, ond, as, and_, TRUE))) ||
          (s->in1 != s->out && !(s->bidx = ft_broadcast_index(os, ond, bshape, bnd, TRUE)))) {
        ok = 0;
        why = "a binary op of two activations is trained through when their shapes broadcast with the batch first in both";
        break;
      }
      s->kind = FT_BIN2;
      s->bin = (int)pq_binary_kind(op);
      s->src1 = producer[in1_];
    } else if (!strcmp(op, "linear")) {
      int wv = pq_plan_step_input(plan, i, 1), bv = pq_plan_step_input(plan, i, (size_t)pq_layer_bias_input(node));
      if (wv < 0 || pq_plan_value_kind(plan, wv) != PQ_VALUE_WEIGHT || (bv >= 0 && pq_plan_value_kind(plan, bv) != PQ_VALUE_WEIGHT)) {
        ok = 0;
        why = "a linear layer's weight and bias must be model tensors";
        break;
      }
      PqTensor *w = pq_plan_value_tensor(plan, wv);
      s->o = pq_tensor_rows(w), s->c = pq_tensor_cols(w);
      if (s->c < 1 || s->in % s->c || s->out != s->in / s->c * s->o) {
        ok = 0;
        why = "a linear layer's input must be rows of its weight's width";
        break;
      }
      s->h = s->in / s->c; /* rows a sample */
      s->kind = FT_LINEAR;
      ft_params(s, w, bv >= 0 ? pq_plan_value_tensor(plan, bv) : NULL);
      if (qat) ft_qat_setup(s, w);
    } else if (!strcmp(op, "tt_linear") || !strcmp(op, "circulant_linear") || !strcmp(op, "sparse_linear")) {
      /* trained as its parameters: tensor-train cores, circulant blocks' columns, or CSR values (the pattern kept) */
      int form = op[0] == 't' ? FORM_TT : op[0] == 'c' ? FORM_CIRC : FORM_CSR, xnd, ond;
      size_t nin = pq_node_n_inputs(node);
      int np = form == FORM_TT ? (int)pq_node_get_int(node, "cores", 1) : 1, bias_at = pq_layer_bias_input(node);
      for (size_t j = 1; j < nin && ok; j++) {
        int v = pq_plan_step_input(plan, i, j); /* -1: an optional input left empty (the bias, alone) */
        if (v < 0 ? (int)j != bias_at : pq_plan_value_kind(plan, v) != PQ_VALUE_WEIGHT) ok = 0;
      }
      if (!ok) {
        why = "a tt_linear, circulant_linear or sparse_linear layer's parameters must be model tensors";
        break;
      }
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd), *os = pq_plan_value_shape(plan, out, &ond);
      s->kind = FT_LINEAR;
      s->form = form;
      s->c = xs[xnd - 1], s->o = os[ond - 1], s->h = s->in / s->c;
      s->np = np;
      int64_t shapes[16][4];
      for (int j = 0; j < np; j++) {
        PqTensor *t = pq_plan_value_tensor(plan, pq_plan_step_input(plan, i, (size_t)(1 + j)));
        s->pn[j] = pq_tensor_numel(t);
        s->pname[j] = pq_tensor_name(t);
        s->p[j] = g_new(float, s->pn[j]);
        pq_tensor_to_f32(t, s->p[j]);
        s->ptrain[j] = pq_tensor_dtype(t) == PQ_DTYPE_F32;
        if (form == FORM_TT) memcpy(shapes[j], pq_tensor_shape(t), sizeof shapes[j]);
        if (form == FORM_CIRC) s->blk = pq_tensor_shape(t)[2];
      }
      if (form == FORM_CSR) {
        PqTensor *vals = pq_plan_value_tensor(plan, pq_plan_step_input(plan, i, 1)), *cols = pq_plan_value_tensor(plan, pq_plan_step_input(plan, i, 2)),
                 *rows = pq_plan_value_tensor(plan, pq_plan_step_input(plan, i, 3));
        if (pq_sparse_check(node, vals, cols, rows, error) != 0) {
          ft_free(st, ns);
          return -1;
        }
        int64_t nnz = pq_tensor_numel(cols);
        s->csr_col = g_new(int32_t, nnz ? nnz : 1);
        s->csr_row = g_memdup2(pq_tensor_data(rows), sizeof(int32_t) * (size_t)(s->o + 1));
        for (int64_t k = 0; k < nnz; k++)
          s->csr_col[k] = pq_tensor_dtype(cols) == PQ_DTYPE_U16 ? ((const uint16_t *)pq_tensor_data(cols))[k] : ((const int32_t *)pq_tensor_data(cols))[k];
      }
      if (form == FORM_TT && !(s->tt = pq_tt_chain_new(np, (const int64_t(*)[4])shapes))) {
        pq_plugin_error_set(error, PQ_ERR_NOMEM, "finetune: node '%s': out of memory for its tensor-train products", node->name);
        ft_free(st, ns);
        return -1;
      }
      s->nw = s->o * s->c;
      s->w = g_new(float, s->nw);
      int bv = (int)nin > bias_at ? pq_plan_step_input(plan, i, (size_t)bias_at) : -1; /* -1: no bias, or left empty */
      ft_params(s, NULL, bv >= 0 ? pq_plan_value_tensor(plan, bv) : NULL);
      ft_form_dense(s);
    } else if (!strcmp(op, "conv2d") || !strcmp(op, "conv_transpose2d")) {
      int wv = pq_plan_step_input(plan, i, 1), bv = pq_plan_step_input(plan, i, (size_t)pq_layer_bias_input(node)), xnd, ond;
      if (wv < 0 || pq_plan_value_kind(plan, wv) != PQ_VALUE_WEIGHT || (bv >= 0 && pq_plan_value_kind(plan, bv) != PQ_VALUE_WEIGHT)) {
        ok = 0;
        why = "a conv2d or conv_transpose2d needs its kernel and bias as model tensors";
        break;
      }
      PqTensor *w = pq_plan_value_tensor(plan, wv);
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd), *os = pq_plan_value_shape(plan, out, &ond), *ws = pq_tensor_shape(w);
      s->kind = !strcmp(op, "conv_transpose2d") ? FT_CONVT : FT_CONV;
      s->c = xs[1], s->h = xs[2], s->w_ = xs[3], s->o = os[1], s->oh = os[2], s->ow = os[3], s->kh = ws[2], s->kw = ws[3];
      s->groups = pq_node_get_int(node, "groups", 1); /* (the plan checked that it divides both channel counts) */
      size_t cnt;
      const int64_t *v = pq_node_get_ints(node, "strides", &cnt);
      s->sh = v ? v[0] : 1, s->sw = v ? v[1] : 1;
      v = pq_node_get_ints(node, "pads", &cnt);
      s->ph = v ? v[0] : 0, s->pw = v ? v[1] : 0;
      v = pq_node_get_ints(node, "dilations", &cnt);
      s->dh = v ? v[0] : 1, s->dw = v ? v[1] : 1;
      ft_params(s, w, bv >= 0 ? pq_plan_value_tensor(plan, bv) : NULL);
      if (qat && s->kind == FT_CONV) ft_qat_setup(s, w);
    } else if (!strcmp(op, "maxpool2d") || !strcmp(op, "avgpool2d")) {
      int xnd, ond;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd), *os = pq_plan_value_shape(plan, out, &ond);
      size_t cnt;
      const int64_t *k = pq_node_get_ints(node, "kernel", &cnt), *v;
      s->kind = !strcmp(op, "maxpool2d") ? FT_MAXPOOL : FT_AVGPOOL;
      s->c = xs[1], s->h = xs[2], s->w_ = xs[3], s->oh = os[2], s->ow = os[3], s->kh = k[0], s->kw = k[1];
      v = pq_node_get_ints(node, "strides", &cnt);
      s->sh = v ? v[0] : s->kh, s->sw = v ? v[1] : s->kw;
      v = pq_node_get_ints(node, "pads", &cnt);
      s->ph = v ? v[0] : 0, s->pw = v ? v[1] : 0;
      v = pq_node_get_ints(node, "dilations", &cnt);
      s->dh = v ? v[0] : 1, s->dw = v ? v[1] : 1;
      s->include_pad = (int)pq_node_get_int(node, "count_include_pad", 0);
      if (s->kind == FT_MAXPOOL) s->argmax = g_new(int32_t, (int64_t)p->batch_size * s->out);
    } else if (!strcmp(op, "pad2d") || !strcmp(op, "resize2d")) {
      int xnd, ond;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd), *os = pq_plan_value_shape(plan, out, &ond);
      s->c = xs[1], s->h = xs[2], s->w_ = xs[3], s->oh = os[2], s->ow = os[3];
      if (op[0] == 'p') {
        size_t np;
        const int64_t *pads = pq_node_get_ints(node, "pads", &np);
        s->kind = FT_PAD;
        s->ph = pads[0], s->pw = pads[1];
        s->cst = (float)pq_node_get_float(node, "value", 0.0);
      } else {
        s->kind = FT_RESIZE;
        if (pq_resize_params(node, s->h, s->w_, &s->rs) != 0) {
          ok = 0;
          why = "a resize2d's mode is not one pquant knows";
          break;
        }
      }
    } else if (!strcmp(op, "global_avg_pool")) {
      int xnd;
      s->kind = FT_GAP;
      s->c = pq_plan_value_shape(plan, in0, &xnd)[1];
    } else if (!strcmp(op, "layer_norm")) { /* its scale and bias are trained (where float32) */
      int sv = pq_plan_step_input(plan, i, 1), bv = pq_plan_step_input(plan, i, 2), xnd;
      if (strcmp(pq_node_get_string(node, "output", "y"), "y") || (sv >= 0 && pq_plan_value_kind(plan, sv) != PQ_VALUE_WEIGHT) ||
          (bv >= 0 && pq_plan_value_kind(plan, bv) != PQ_VALUE_WEIGHT)) {
        ok = 0;
        why = "a layer_norm is trained through when it outputs the normalised values and its scale and bias are model tensors";
        break;
      }
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd);
      int64_t axis = pq_node_get_int(node, "axis", -1);
      if (axis < 0) axis += xnd;
      s->kind = FT_LN;
      s->c = 1;
      for (int d = (int)axis; d < xnd; d++) s->c *= xs[d];
      s->eps = pq_node_get_float(node, "epsilon", 1e-5);
      ft_params(s, sv >= 0 ? pq_plan_value_tensor(plan, sv) : NULL, bv >= 0 ? pq_plan_value_tensor(plan, bv) : NULL);
    } else if (!strcmp(op, "batch_norm")) { /* fixed: its statistics are not trained */
      int xnd;
      s->kind = FT_BN;
      s->c = pq_plan_value_shape(plan, in0, &xnd)[1];
      float *par[4];
      for (int j = 0; j < 4; j++) {
        int v = pq_plan_step_input(plan, i, (size_t)(1 + j));
        if (v < 0 || pq_plan_value_kind(plan, v) != PQ_VALUE_WEIGHT) {
          for (int q = 0; q < j; q++) g_free(par[q]);
          ok = 0;
          why = "a batch_norm's parameters must be model tensors";
          break;
        }
        par[j] = g_new(float, s->c);
        pq_tensor_to_f32(pq_plan_value_tensor(plan, v), par[j]);
      }
      if (!ok) break;
      double eps = pq_node_get_float(node, "epsilon", 1e-5);
      s->scale = g_new(float, s->c), s->shift = g_new(float, s->c);
      for (int64_t ch = 0; ch < s->c; ch++) {
        s->scale[ch] = (float)(par[0][ch] / sqrt((double)par[3][ch] + eps));
        s->shift[ch] = par[1][ch] - par[2][ch] * s->scale[ch];
      }
      for (int j = 0; j < 4; j++) g_free(par[j]);
    } else if (!strcmp(op, "transpose")) {
      int xnd, ond;
      size_t np;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd), *os = pq_plan_value_shape(plan, out, &ond), *perm = pq_node_get_ints(node, "perm", &np);
      int64_t ist[PQ_MAX_DIMS], m = 1;
      for (int d = xnd - 1; d >= 1; d--) ist[d] = m, m *= xs[d];
      s->kind = FT_TRANSPOSE;
      s->rank = ond;
      for (int d = 1; d < ond; d++) s->tr_out[d] = os[d], s->tr_ist[d] = ist[perm[d]];
    } else if (pq_reduce_kind(op) == PQ_RED_SUM || pq_reduce_kind(op) == PQ_RED_MEAN || pq_reduce_kind(op) == PQ_RED_MAX ||
               pq_reduce_kind(op) == PQ_RED_MIN) { /* pooling over tokens, say */
      int xnd;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd);
      s->kind = FT_REDUCE;
      s->bin = (int)pq_reduce_kind(op);
      pq_reduce_geometry(xnd, xs, pq_reduce_axes_of(node, xnd), &s->red);
      if (s->bin == PQ_RED_MAX || s->bin == PQ_RED_MIN) s->argmax = g_new(int32_t, (int64_t)p->batch_size * s->out); /* the element each output took */
    } else if (!strcmp(op, "slice")) {
      int xnd;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd);
      s->kind = FT_SLICE;
      pq_slice_geometry(node, xnd, xs, &s->slice);
    } else if (!strcmp(op, "matmul")) { /* of two activations, as attention multiplies them */
      int in1 = pq_plan_step_input(plan, i, 1), and_, bnd;
      if (in1 < 0 || producer[in1] == -2) {
        ok = 0;
        why = "a matmul is trained through when it multiplies two activations (attention)";
        break;
      }
      const int64_t *as = pq_plan_value_shape(plan, in0, &and_), *bsh = pq_plan_value_shape(plan, in1, &bnd);
      s->kind = FT_MATMUL2;
      s->src1 = producer[in1];
      s->mm_m = as[and_ - 2], s->mm_k = as[and_ - 1], s->mm_n = bsh[bnd - 1];
      s->mm_slices = s->in / (s->mm_m * s->mm_k);
    } else if ((!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) && i != ns - 1) {
      int xnd;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd);
      int64_t axis = pq_node_get_int(node, "axis", -1);
      if (strcmp(op, "softmax") || (axis != -1 && axis != xnd - 1)) {
        ok = 0;
        why = "a softmax inside the model is trained through over its last dimension only";
        break;
      }
      s->kind = FT_SMAX;
      s->c = xs[xnd - 1];
    } else if (pq_binary_kind(op) != PQ_BIN_NONE) { /* by a model tensor that broadcasts to the activation's shape */
      PqTensor *t = in1_ >= 0 && pq_plan_value_kind(plan, in1_) == PQ_VALUE_WEIGHT ? pq_plan_value_tensor(plan, in1_) : NULL;
      int ond, bnd, and_;
      const int64_t *os = pq_plan_value_shape(plan, out, &ond), *bshape = t ? pq_plan_value_shape(plan, in1_, &bnd) : NULL,
                    *as = pq_plan_value_shape(plan, in0, &and_);
      if (!t || !(s->bidx = ft_broadcast_index(os, ond, bshape, bnd, FALSE)) ||
          (s->in != s->out && !(s->aidx = ft_broadcast_index(os, ond, as, and_, TRUE)))) {
        ok = 0; /* (the activation broadcast too: an Expand, x [1, H, W] + zeros [3, 1, 1]) */
        why = "a binary op is trained through when it takes two activations or an activation and a model tensor whose shapes "
              "broadcast, with the batch first";
        break;
      }
      s->kind = FT_BINW;
      s->bin = (int)pq_binary_kind(op);
      s->swap = swap;
      ft_params(s, t, NULL); /* trained: a scale, shift or slope of more than one value (scalars and pow, min, max: fixed) */
      s->train_w = s->train_w && s->nw > 1 && s->bin <= PQ_BIN_PRELU;
    } else if (!strcmp(op, "concat")) {
      int xnd;
      const int64_t *xs = pq_plan_value_shape(plan, in0, &xnd);
      int64_t axis = pq_node_get_int(node, "axis", 1);
      if (axis < 0) axis += xnd;
      s->kind = FT_CONCAT;
      s->cat_outer = 1;
      for (int d = 1; d < axis; d++) s->cat_outer *= xs[d];
      s->cat_n = (int)pq_node_n_inputs(node);
      for (int j = 0; j < s->cat_n && j < 16; j++) {
        int v = pq_plan_step_input(plan, i, (size_t)j);
        if (pq_plan_value_kind(plan, v) == PQ_VALUE_WEIGHT) { /* a class token: kept as it is */
          PqTensor *t = pq_plan_value_tensor(plan, v);
          s->cat_src[j] = -2;
          s->cat_w[j] = g_new(float, pq_tensor_numel(t));
          pq_tensor_to_f32(t, s->cat_w[j]);
          s->cat_blk[j] = pq_tensor_numel(t) / s->cat_outer;
        } else {
          s->cat_src[j] = producer[v];
          s->cat_blk[j] = pq_plan_value_numel(plan, v) / s->cat_outer;
          if (producer[v] == -2) ok = 0, why = "each node's inputs must be the model's input, other nodes' outputs or model tensors";
        }
      }
      if (!ok) break;
    } else if (!strcmp(op, "relu")) s->kind = FT_RELU;
    else if (pq_activation_kind(op) != PQ_ACT_NONE) {
      s->kind = FT_ACT;
      s->act = (int)pq_activation_kind(op);
      pq_activation_params(node, (PqActivation)s->act, &s->act_a, &s->act_b);
    }
    else if (!strcmp(op, "flatten") || !strcmp(op, "reshape")) s->kind = FT_ALIAS;
    else if ((!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) && i == ns - 1) s->kind = FT_SOFTMAX; /* both: CE on logits */
    else {
      pq_plugin_error_set(error, PQ_ERR_UNSUPPORTED, "finetune: node '%s': op '%s' is not one it trains through (linear, tt_linear, circulant_linear, sparse_linear, conv2d, conv_transpose2d, pad2d, resize2d, pools, batch_norm, layer_norm, relu and the other activations, flatten, reshape, transpose, slice, concat, reduce_sum, reduce_mean, reduce_max, reduce_min, matmul of activations, softmax, and the binary ops of two activations or of an activation and a model tensor)",
                          node->name, op);
      ft_free(st, ns);
      return -1;
    }
  }
  if (ok && last != pq_plan_value_index(plan, pq_graph_output_name(g, 0))) {
    ok = 0;
    why = "the last node must compute the model's output";
  }
  if (!ok || ns == 0) {
    pq_plugin_error_set(error, PQ_ERR_UNSUPPORTED, "finetune: %s", ns ? why : "the model has no layers");
    ft_free(st, ns);
    return -1;
  }
  int64_t classes = st[ns - 1].out, trained = 0;
  for (int64_t i = 0; labels && i < n; i++)
    if (labels[i] >= classes) {
      pq_plugin_error_set(error, PQ_ERR_INVALID, "finetune: label %d of sample %lld is not one of the model's %lld outputs", labels[i], (long long)i,
                          (long long)classes);
      ft_free(st, ns);
      return -1;
    }
  /* a tensor that one of its readers holds fixed (packed, a scalar, an exponent) is fixed for all of them */
  g_autoptr(GHashTable) fixed = g_hash_table_new(g_str_hash, g_str_equal);
  for (size_t i = 0; i < ns; i++) {
    FtStep *s = &st[i];
    if (s->wname && !s->train_w && !s->form) g_hash_table_add(fixed, (gpointer)s->wname);
    if (s->bname && !s->train_b) g_hash_table_add(fixed, (gpointer)s->bname);
    for (int j = 0; j < s->np; j++)
      if (!s->ptrain[j]) g_hash_table_add(fixed, (gpointer)s->pname[j]);
  }
  for (size_t i = 0; i < ns; i++) {
    FtStep *s = &st[i];
    s->train_w = s->train_w && !g_hash_table_contains(fixed, s->wname);
    s->train_b = s->train_b && !g_hash_table_contains(fixed, s->bname);
    for (int j = 0; j < s->np; j++) s->ptrain[j] = s->ptrain[j] && !g_hash_table_contains(fixed, s->pname[j]);
  }
  for (size_t i = 0; i < ns; i++) {
    FtStep *s = &st[i];
    if (s->train_w) s->gw = g_new0(float, s->nw), s->mw = g_new0(float, s->nw), s->vw = g_new0(float, s->nw);
    if (s->train_b) s->gb = g_new0(float, s->nb), s->mb = g_new0(float, s->nb), s->vb = g_new0(float, s->nb);
    gboolean any = FALSE;
    for (int j = 0; j < s->np; j++) any |= s->ptrain[j];
    if (s->form && any) { /* the dense weight's gradient, then each parameter's */
      s->gw = g_new0(float, s->nw);
      for (int j = 0; j < s->np; j++) {
        s->gp[j] = g_new0(float, s->pn[j]);
        if (s->ptrain[j]) s->mp[j] = g_new0(float, s->pn[j]), s->vp[j] = g_new0(float, s->pn[j]);
      }
    }
  }
  /* every trained tensor once: a tensor that two nodes read (tied weights) is held by the first, which adds
     the others' gradients to its own and hands them its values after each step */
  g_autoptr(GArray) params = g_array_new(FALSE, FALSE, sizeof(FtParam));
  {
    g_autoptr(GHashTable) first = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i < ns; i++) {
      FtStep *s = &st[i];
      if (s->train_w) ft_param_add(params, first, s->shadow ? s->shadow : s->w, s->gw, s->mw, s->vw, s->nw, s->wname);
      if (s->train_b) ft_param_add(params, first, s->b, s->gb, s->mb, s->vb, s->nb, s->bname);
      for (int j = 0; j < s->np; j++)
        if (s->ptrain[j] && s->gw) ft_param_add(params, first, s->p[j], s->gp[j], s->mp[j], s->vp[j], s->pn[j], s->pname[j]);
    }
    for (guint k = 0; k < params->len; k++)
      if (g_array_index(params, FtParam, k).tie < 0) trained += g_array_index(params, FtParam, k).n;
  }
  int64_t col_floats = 1; /* im2col scratch: the largest conv's [C·kh·kw, OH·OW] */
  for (size_t i = 0; i < ns; i++)
    if (st[i].kind == FT_CONV) col_floats = MAX(col_floats, st[i].c / st[i].groups * st[i].kh * st[i].kw * st[i].oh * st[i].ow);
    else if (st[i].kind == FT_CONVT) col_floats = MAX(col_floats, st[i].o / st[i].groups * st[i].kh * st[i].kw * st[i].h * st[i].w_);
  float *col = g_new(float, col_floats);
  const int B = p->batch_size;
  int64_t in_width = pq_plan_value_numel(plan, pq_plan_value_index(plan, pq_graph_input_name(g, 0)));
  float **acts = g_new(float *, ns), **grads = g_new(float *, ns); /* per step: its output, and the loss's gradient there */
  for (size_t i = 0; i < ns; i++) {
    acts[i] = g_new(float, (size_t)B * st[i].out);
    grads[i] = g_new(float, (size_t)B * st[i].out);
  }
  float *xb = g_new(float, (size_t)B * in_width);
  guint8 *lb = g_new(guint8, B);
  float *tb = teacher ? g_new(float, (size_t)B * classes) : NULL; /* a batch's teacher rows */
  gint32 *order = g_new(gint32, n);
  for (int64_t i = 0; i < n; i++) order[i] = (gint32)i;
  GRand *rng = g_rand_new_with_seed((guint32)p->seed);
  int old_threads = openblas_get_num_threads();
  openblas_set_num_threads(p->threads > 0 ? p->threads : 1);
  /* the loss and accuracy on the samples before and after */
#define EVALUATE(loss_out, acc_out)                                                                                \
  do {                                                                                                             \
    double l_ = 0;                                                                                                 \
    int64_t c_ = 0;                                                                                                \
    for (int64_t s0 = 0; s0 < n; s0 += B) {                                                                        \
      int bs_ = (int)MIN(B, n - s0);                                                                               \
      ft_forward(st, ns, inputs + s0 * in_width, acts, bs_, col);                                                  \
      l_ += ft_loss(acts[ns - 1], labels ? labels + s0 : NULL, teacher ? teacher + s0 * classes : NULL, alpha, bs_, classes, &c_, FALSE); \
    }                                                                                                              \
    loss_out = l_ / (double)n;                                                                                     \
    acc_out = (double)c_ / (double)n;                                                                              \
  } while (0)
  EVALUATE(res->loss_before, res->accuracy_before);
  int64_t total = ((n + B - 1) / B) * p->epochs;
  int t = 0;
  for (int ep = 0; ep < p->epochs; ep++) {
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = g_rand_int_range(rng, 0, (gint32)(i + 1));
      gint32 tmp = order[i];
      order[i] = order[j];
      order[j] = tmp;
    }
    for (int64_t s0 = 0; s0 < n; s0 += B) {
      int bs = (int)MIN(B, n - s0);
      for (int r = 0; r < bs; r++) {
        memcpy(xb + (size_t)r * in_width, inputs + (size_t)order[s0 + r] * in_width, sizeof(float) * (size_t)in_width);
        if (labels) lb[r] = labels[order[s0 + r]];
        if (teacher) memcpy(tb + (size_t)r * classes, teacher + (size_t)order[s0 + r] * classes, sizeof(float) * (size_t)classes);
      }
      ft_forward(st, ns, xb, acts, bs, col);
      for (size_t i = 0; i + 1 < ns; i++) memset(grads[i], 0, sizeof(float) * (size_t)bs * st[i].out);
      int64_t dummy = 0;
      memcpy(grads[ns - 1], acts[ns - 1], sizeof(float) * (size_t)bs * classes);
      ft_loss(grads[ns - 1], labels ? lb : NULL, teacher ? tb : NULL, alpha, bs, classes, &dummy, TRUE);
      /* in reverse order each step adds its input's share of the gradient to the step that computed that input
         (whose own turn comes later): a value read twice, as by a residual add, gets both shares */
      for (size_t i = ns; i-- > 0;) {
        FtStep *s = &st[i];
        const float *dy = grads[i], *x = s->src0 >= 0 ? acts[s->src0] : xb;
        float *dx = s->src0 >= 0 ? grads[s->src0] : NULL; /* NULL: the model's input needs no gradient */
        size_t n_out = (size_t)bs * s->out;
        switch (s->kind) {
        case FT_LINEAR: {
          int rows = bs * (int)s->h;
          if (s->gw) /* its own weight, or a structured layer's dense one */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)s->o, (int)s->c, rows, 1.0f, dy, (int)s->o, x, (int)s->c, 0.0f, s->gw,
                        (int)s->c);
          if (s->train_b) {
            memset(s->gb, 0, sizeof(float) * (size_t)s->o);
            for (int r = 0; r < rows; r++)
              for (int64_t k = 0; k < s->o; k++) s->gb[k] += dy[(size_t)r * s->o + k];
          }
          if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, (int)s->c, (int)s->o, 1.0f, dy, (int)s->o, s->w, (int)s->c, 1.0f, dx,
                        (int)s->c);
          break;
        }
        case FT_CONV: { /* group by group */
          int64_t ohw = s->oh * s->ow, cg = s->c / s->groups, og = s->o / s->groups, ckk = cg * s->kh * s->kw, chw = cg * s->h * s->w_;
          if (s->train_w) memset(s->gw, 0, sizeof(float) * (size_t)s->nw);
          if (s->train_b) memset(s->gb, 0, sizeof(float) * (size_t)s->nb);
          for (int r = 0; r < bs; r++) {
            const float *dyr = dy + (size_t)r * s->out;
            if (cg == 1 && s->groups > 1) /* depthwise */
              ft_depthwise(s, x + (size_t)r * s->in, s->w, NULL, dyr, s->train_w ? s->gw : NULL, dx ? dx + (size_t)r * s->in : NULL);
            for (int64_t g = 0; g < (cg == 1 && s->groups > 1 ? 0 : s->groups); g++) {
              const float *dyg = dyr + g * og * ohw, *wg = s->w + g * og * ckk;
              if (s->train_w) { /* dW_g += dY_g · colᵀ */
                ft_im2col(s, (float *)x + (size_t)r * s->in + g * chw, col, FALSE);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)og, (int)ckk, (int)ohw, 1.0f, dyg, (int)ohw, col, (int)ohw, 1.0f,
                            s->gw + g * og * ckk, (int)ckk);
              }
              if (dx) { /* dX_g += col2im(W_gᵀ · dY_g) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ckk, (int)ohw, (int)og, 1.0f, wg, (int)ckk, dyg, (int)ohw, 0.0f, col,
                            (int)ohw);
                ft_im2col(s, dx + (size_t)r * s->in + g * chw, col, TRUE);
              }
            }
            if (s->train_b)
              for (int64_t oc = 0; oc < s->o; oc++)
                for (int64_t q = 0; q < ohw; q++) s->gb[oc] += dyr[oc * ohw + q];
          }
          break;
        }
        case FT_CONVT: { /* dcol = im2col(dY_g); dX_g += W_g · dcol; dW_g += X_g · dcolᵀ */
          int64_t hw = s->h * s->w_, ohw = s->oh * s->ow, cg = s->c / s->groups, og = s->o / s->groups, kk = og * s->kh * s->kw;
          PqConvGeometry geo = ft_convt_geo(s);
          if (s->train_w) memset(s->gw, 0, sizeof(float) * (size_t)s->nw);
          if (s->train_b) memset(s->gb, 0, sizeof(float) * (size_t)s->nb);
          for (int r = 0; r < bs; r++) {
            const float *dyr = dy + (size_t)r * s->out;
            for (int64_t g = 0; g < s->groups; g++) {
              pq_im2col(dyr + g * og * ohw, &geo, col);
              if (dx)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cg, (int)hw, (int)kk, 1.0f, s->w + g * cg * kk, (int)kk, col, (int)hw,
                            1.0f, dx + (size_t)r * s->in + g * cg * hw, (int)hw);
              if (s->train_w)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)cg, (int)kk, (int)hw, 1.0f, x + (size_t)r * s->in + g * cg * hw, (int)hw, col,
                            (int)hw, 1.0f, s->gw + g * cg * kk, (int)kk);
            }
            if (s->train_b)
              for (int64_t oc = 0; oc < s->o; oc++)
                for (int64_t q = 0; q < ohw; q++) s->gb[oc] += dyr[oc * ohw + q];
          }
          break;
        }
        case FT_PAD: /* the inner part of the gradient */
          if (dx)
            for (int64_t r = 0; r < (int64_t)bs * s->c; r++)
              for (int64_t iy = 0; iy < s->h; iy++)
                for (int64_t ix = 0; ix < s->w_; ix++) dx[(r * s->h + iy) * s->w_ + ix] += dy[(r * s->oh + iy + s->ph) * s->ow + ix + s->pw];
          break;
        case FT_RESIZE: /* each output's gradient back to the taps it read, by their weights */
          if (dx)
            for (int64_t r = 0; r < (int64_t)bs * s->c; r++)
              for (int64_t oy = 0; oy < s->oh; oy++)
                for (int64_t ox = 0; ox < s->ow; ox++) {
                  int64_t iy[4], ix[4];
                  double wy[4], wx[4];
                  int ny = pq_resize_taps(&s->rs, 0, oy, iy, wy), nx = pq_resize_taps(&s->rs, 1, ox, ix, wx);
                  float g = dy[(r * s->oh + oy) * s->ow + ox], *d = dx + r * s->h * s->w_;
                  for (int a = 0; a < ny; a++)
                    for (int b2 = 0; b2 < nx; b2++) d[iy[a] * s->w_ + ix[b2]] += (float)(wy[a] * wx[b2]) * g;
                }
          break;
        case FT_MAXPOOL:
        case FT_AVGPOOL:
          if (dx)
            for (int r = 0; r < bs; r++) ft_pool(s, x + (size_t)r * s->in, NULL, r, TRUE, dy + (size_t)r * s->out, dx + (size_t)r * s->in);
          break;
        case FT_GAP:
          if (dx) {
            int64_t sp = s->in / s->c;
            for (int64_t r = 0; r < bs; r++)
              for (int64_t k = 0; k < s->in; k++) dx[r * s->in + k] += dy[r * s->out + k / sp] / (float)sp;
          }
          break;
        case FT_BN:
          if (dx)
            for (int64_t r = 0; r < bs; r++)
              for (int64_t k = 0; k < s->out; k++) dx[r * s->out + k] += dy[r * s->out + k] * s->scale[k / (s->out / s->c)];
          break;
        case FT_RELU:
          if (dx)
            for (size_t k = 0; k < n_out; k++) dx[k] += acts[i][k] > 0 ? dy[k] : 0;
          break;
        case FT_ACT: /* the derivative at the step's input */
          if (dx)
            for (size_t k = 0; k < n_out; k++) dx[k] += dy[k] * pq_activation_grad(s->act, x[k], s->act_a, s->act_b);
          break;
        case FT_LN: /* dx = (1/σ)(g − mean g − x̂ · mean(g x̂)), g = dy · scale */
          if (s->train_w) memset(s->gw, 0, sizeof(float) * (size_t)s->nw);
          if (s->train_b) memset(s->gb, 0, sizeof(float) * (size_t)s->nb);
          for (int64_t r = 0; r < (int64_t)bs * s->out / s->c; r++) {
            const float *xr = x + r * s->c, *dyr = dy + r * s->c;
            double mean = 0, var = 0, mg = 0, mgx = 0;
            for (int64_t k = 0; k < s->c; k++) mean += xr[k];
            mean /= (double)s->c;
            for (int64_t k = 0; k < s->c; k++) var += ((double)xr[k] - mean) * ((double)xr[k] - mean);
            double inv = 1.0 / sqrt(var / (double)s->c + s->eps);
            for (int64_t k = 0; k < s->c; k++) {
              double xh = ((double)xr[k] - mean) * inv, gk = (double)dyr[k] * (s->w ? s->w[k] : 1.0f);
              mg += gk, mgx += gk * xh;
              if (s->train_w) s->gw[k] += (float)(dyr[k] * xh);
              if (s->train_b) s->gb[k] += dyr[k];
            }
            mg /= (double)s->c, mgx /= (double)s->c;
            if (dx)
              for (int64_t k = 0; k < s->c; k++) {
                double xh = ((double)xr[k] - mean) * inv, gk = (double)dyr[k] * (s->w ? s->w[k] : 1.0f);
                dx[r * s->c + k] += (float)(inv * (gk - mg - xh * mgx));
              }
          }
          break;
        case FT_BINW: /* d(x op c)/dx to the input; d(x op c)/dc summed over the samples and the broadcast */
          if (s->train_w) memset(s->gw, 0, sizeof(float) * (size_t)s->nw);
          for (int64_t r = 0; r < bs; r++)
            for (int64_t k = 0; k < s->out; k++) {
              int64_t ia = r * s->in + (s->aidx ? s->aidx[k] : k);
              float a = x[ia], c = s->w[s->bidx[k]], g = dy[r * s->out + k];
              if (dx) dx[ia] += g * (s->swap ? pq_binary_db(s->bin, c, a) : pq_binary_da(s->bin, a, c));
              if (s->train_w) s->gw[s->bidx[k]] += g * (s->swap ? pq_binary_da(s->bin, c, a) : pq_binary_db(s->bin, a, c));
            }
          break;
        case FT_TRANSPOSE: /* each output value's gradient back to the input value it came from */
          if (dx)
            for (int64_t r = 0; r < bs; r++)
              for (int64_t o = 0; o < s->out; o++) dx[r * s->in + pq_walk_offset(s->rank - 1, s->tr_out + 1, s->tr_ist + 1, o)] += dy[r * s->out + o];
          break;
        case FT_REDUCE: /* each gathered element gets the output's gradient (divided by the count for a mean); max and min: the element taken */
          if (dx && s->argmax)
            for (int64_t r = 0; r < bs; r++)
              for (int64_t o = 0; o < s->out; o++)
                dx[r * s->in + pq_reduce_base(&s->red, o) + pq_reduce_offset(&s->red, s->argmax[r * s->out + o])] += dy[r * s->out + o];
          else if (dx)
            for (int64_t r = 0; r < bs; r++)
              for (int64_t o = 0; o < s->out; o++) {
                float g = dy[r * s->out + o] / (s->bin == PQ_RED_MEAN ? (float)s->red.red_count : 1.0f);
                float *d = dx + r * s->in + pq_reduce_base(&s->red, o);
                for (int64_t q = 0; q < s->red.red_count; q++) d[pq_reduce_offset(&s->red, q)] += g;
              }
          break;
        case FT_SLICE:
          if (dx)
            for (int64_t r = 0; r < bs; r++)
              for (int64_t o = 0; o < s->out; o++) dx[r * s->in + pq_slice_offset(&s->slice, o)] += dy[r * s->out + o];
          break;
        case FT_MATMUL2: { /* dA += dY Bᵀ, dB += Aᵀ dY, matrix by matrix */
          const float *b = s->src1 >= 0 ? acts[s->src1] : xb;
          float *db = s->src1 >= 0 ? grads[s->src1] : NULL;
          int64_t m = s->mm_m, k = s->mm_k, n = s->mm_n;
          for (int64_t q = 0; q < bs * s->mm_slices; q++) {
            if (dx)
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)n, 1.0f, dy + q * m * n, (int)n, b + q * k * n, (int)n, 1.0f,
                          dx + q * m * k, (int)k);
            if (db)
              cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)n, (int)m, 1.0f, x + q * m * k, (int)k, dy + q * m * n, (int)n, 1.0f,
                          db + q * k * n, (int)n);
          }
          break;
        }
        case FT_SMAX: /* dx = y (dy − Σ dy y) along each row */
          if (dx)
            for (int64_t r = 0; r < (int64_t)bs * s->out / s->c; r++) {
              const float *yr = acts[i] + r * s->c, *dyr = dy + r * s->c;
              double dot = 0;
              for (int64_t k = 0; k < s->c; k++) dot += (double)dyr[k] * yr[k];
              for (int64_t k = 0; k < s->c; k++) dx[r * s->c + k] += yr[k] * (float)(dyr[k] - dot);
            }
          break;
        case FT_CONCAT: /* each block's gradient back to its input (a model tensor's is dropped: kept as it is) */
          for (int64_t r = 0; r < bs; r++)
            for (int64_t o = 0; o < s->cat_outer; o++) {
              const float *go = dy + r * s->out + o * (s->out / s->cat_outer);
              for (int j = 0; j < s->cat_n; j++) {
                if (s->cat_src[j] >= 0) {
                  float *gi = grads[s->cat_src[j]] + (r * s->cat_outer + o) * s->cat_blk[j];
                  for (int64_t k = 0; k < s->cat_blk[j]; k++) gi[k] += go[k];
                }
                go += s->cat_blk[j];
              }
            }
          break;
        case FT_BIN2: { /* each operand's share, summed over where it was broadcast */
          const float *b = s->src1 >= 0 ? acts[s->src1] : xb;
          for (int64_t r = 0; r < bs; r++)
            for (int64_t k = 0; k < s->out; k++) {
              int64_t ia = r * s->in + (s->aidx ? s->aidx[k] : k), ib = r * s->in1 + (s->bidx ? s->bidx[k] : k);
              float g = dy[r * s->out + k];
              if (s->src1 >= 0) grads[s->src1][ib] += g * pq_binary_db(s->bin, x[ia], b[ib]);
              if (dx) dx[ia] += g * pq_binary_da(s->bin, x[ia], b[ib]);
            }
          break;
        }
        default: /* alias and the final softmax (folded into the loss) pass the gradient through */
          if (dx)
            for (size_t k = 0; k < n_out; k++) dx[k] += dy[k];
        }
      }
      t++;
      double lr = p->learning_rate * 0.5 * (1.0 + cos(G_PI * (double)(t - 1) / (double)total));
      for (size_t i = 0; i < ns; i++)
        if (st[i].form && st[i].gw) ft_form_grads(&st[i]); /* the dense weight's gradient to the parameters' */
      FtParam *ps = (FtParam *)(void *)params->data;
      for (guint k = 0; k < params->len; k++)
        if (ps[k].tie >= 0)
          for (int64_t q = 0; q < ps[k].n; q++) ps[ps[k].tie].grad[q] += ps[k].grad[q];
      for (guint k = 0; k < params->len; k++)
        if (ps[k].tie < 0) adam(ps[k].val, ps[k].grad, ps[k].m, ps[k].v, (size_t)ps[k].n, lr, t);
      for (guint k = 0; k < params->len; k++)
        if (ps[k].tie >= 0) memcpy(ps[k].val, ps[ps[k].tie].val, sizeof(float) * (size_t)ps[k].n);
      for (size_t i = 0; i < ns; i++)
        if (st[i].form && st[i].gw) ft_form_dense(&st[i]);
        else if (st[i].shadow) ft_qat_round(&st[i]);
    }
  }
  EVALUATE(res->loss_after, res->accuracy_after);
#undef EVALUATE
  openblas_set_num_threads(old_threads);
  /* the trained tensors replace the model's (which other models may share: new tensors, never in place) */
  int rc = 0;
  for (size_t i = 0; i < ns && rc == 0; i++) /* first: every weight to pack again is finite (else nothing is changed) */
    for (int64_t q = 0; st[i].shadow && st[i].train_w && q < st[i].nw && rc == 0; q++)
      if (!isfinite(st[i].shadow[q])) {
        pq_plugin_error_set(error, PQ_ERR_INVALID, "finetune: training diverged: weight '%s' is no longer finite (try a smaller learning rate)",
                            st[i].wname);
        rc = -1;
      }
  for (size_t i = 0; i < ns && rc == 0; i++) {
    FtStep *s = &st[i];
    PqTensor *old;
    if (s->train_w && (old = pq_model_tensor(model, s->wname))) {
      PqTensor *nt = s->shadow ? pq_quantize_like(s->wname, s->shadow, s->q_like) : make_tensor(s->wname, pq_tensor_ndim(old), pq_tensor_shape(old), s->w);
      pq_model_set_tensor(model, nt);
      pq_tensor_unref(nt);
    }
    if (s->train_b && (old = pq_model_tensor(model, s->bname))) {
      PqTensor *nt = make_tensor(s->bname, pq_tensor_ndim(old), pq_tensor_shape(old), s->b);
      pq_model_set_tensor(model, nt);
      pq_tensor_unref(nt);
    }
    for (int j = 0; j < s->np; j++)
      if (s->ptrain[j] && s->gw && (old = pq_model_tensor(model, s->pname[j]))) {
        PqTensor *nt = make_tensor(s->pname[j], pq_tensor_ndim(old), pq_tensor_shape(old), s->p[j]);
        pq_model_set_tensor(model, nt);
        pq_tensor_unref(nt);
      }
  }
  res->trained_params = trained;
  g_rand_free(rng);
  for (size_t i = 0; i < ns; i++) g_free(acts[i]), g_free(grads[i]);
  g_free(acts), g_free(grads);
  g_free(xb), g_free(lb), g_free(tb), g_free(order), g_free(col);
  ft_free(st, ns);
  return rc;
}
