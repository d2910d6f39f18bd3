/* train.c — trains the default model: an MLP 784→256→128→10 on Fashion-MNIST with Adam, deterministically. */
#include "pq-private.h"

#include <cblas.h>
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
  /* He initialisation, normal by Box–Muller from a seeded Mersenne twister (the same on every machine) */
  double sd = sqrt(2.0 / in);
  for (size_t i = 0; i < nw; i += 2) {
    double u1 = g_rand_double(rng), u2 = g_rand_double(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    double r = sqrt(-2.0 * log(u1));
    l->w[i] = (float)(sd * r * cos(2 * G_PI * u2));
    if (i + 1 < nw) l->w[i + 1] = (float)(sd * r * sin(2 * G_PI * u2));
  }
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
  memcpy(pq_tensor_mutable_data(t), data, pq_tensor_nbytes(t));
  return t;
}

PqModel *pq_train_mlp(const PqDataset *train, const PqTrainParams *params, GError **error) {
  g_return_val_if_fail(train && params, NULL);
  const int sizes[4] = {(int)pq_dataset_sample_numel(train), 256, 128, pq_dataset_n_classes(train)};
  const int B = params->batch_size;
  if (B < 1 || params->epochs < 1 || !(params->learning_rate > 0)) {
    g_set_error(error, PQ_DATASET_ERROR, PQ_DATASET_ERROR_INVALID, "training needs epochs >= 1, batch size >= 1 and a positive learning rate");
    return NULL;
  }
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
