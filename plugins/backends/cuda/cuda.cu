/* cuda.cu — the CUDA backend: the CPU backend's op set on an NVIDIA GPU. Dense GEMMs through cuBLAS,
 * elementwise, pooling and im2col kernels, and linear layers with packed 2–8-bit weights dequantized inside
 * the kernel (no float copy of a weight in device memory). Weights are uploaded once at prepare, every
 * activation buffer is allocated there too; a run is one host→device copy of the input, the kernels, and one
 * device→host copy of each output. On a machine without a driver or device it says it is not usable. */
#include <pquant/pq-plugin.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

enum { K_LINEAR, K_MATMUL, K_ADD, K_RELU, K_SOFTMAX, K_CONV2D, K_MAXPOOL, K_AVGPOOL, K_GAP, K_BATCHNORM, K_ALIAS };

static const struct {
  const char *op;
  int kind;
} op_table[] = {{"linear", K_LINEAR},       {"matmul", K_MATMUL},     {"add", K_ADD},         {"relu", K_RELU},
                {"softmax", K_SOFTMAX},     {"conv2d", K_CONV2D},     {"maxpool2d", K_MAXPOOL}, {"avgpool2d", K_AVGPOOL},
                {"global_avg_pool", K_GAP}, {"batch_norm", K_BATCHNORM}, {"flatten", K_ALIAS},  {"reshape", K_ALIAS}};

static int op_kind(const char *op) {
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
    if (!strcmp(op_table[i].op, op)) return op_table[i].kind;
  return -1;
}

static int cuda_supports_op(const char *op) { return op_kind(op) >= 0; }

struct Shape8 {
  int64_t d[PQ_MAX_DIMS];
};

struct Step {
  int kind = 0, in[16], out = -1, relu = 0;
  int64_t k = 0, n = 0, m_rows = 1;                                       /* linear, matmul */
  int64_t c = 0, h = 0, w = 0, oc = 0, oh = 0, ow = 0, kh = 0, kw = 0, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, groups = 1;
  int count_include_pad = 0;
  int64_t axis_len = 0, axis_inner = 1;                                   /* softmax */
  float *bn = nullptr;                                                    /* device: scale then shift, 2·C */
  int rank = 0;                                                           /* add */
  Shape8 as{}, bs{}, os{};
  /* packed linear */
  const uint8_t *q_codes = nullptr;
  const float *q_scales = nullptr;
  const uint8_t *q_zeros = nullptr;
  int q_bits = 0, q_per = 0;
  int64_t q_row_bytes = 0, q_group = 0, q_groups_per_row = 1;
};

struct Value {
  float *ptr = nullptr;     /* device */
  int64_t per_sample = 0;
  int ndim = 0;
  int64_t shape[PQ_MAX_DIMS] = {0};
  bool weight = false;
};

struct Cuda {
  PqModel *model = nullptr;
  PqPlan *plan = nullptr;
  int64_t max_batch = 1;
  std::vector<Value> values;
  std::vector<Step> steps;
  std::vector<void *> allocations;
  std::vector<int> inputs, outputs;
  float *workspace = nullptr;
  size_t workspace_floats = 0;
  cublasHandle_t blas = nullptr;
  cudaStream_t stream = nullptr;
  int64_t weights_bytes = 0, allocated = 0;
};

#define CHECK(call, what)                                                                                          \
  do {                                                                                                             \
    cudaError_t e_ = (call);                                                                                       \
    if (e_ != cudaSuccess) {                                                                                       \
      pq_plugin_error_set(err, PQ_ERR_INTERNAL, "%s: %s", what, cudaGetErrorString(e_));                           \
      return PQ_ERR_INTERNAL;                                                                                      \
    }                                                                                                              \
  } while (0)

static int cuda_usable_here(PqPluginError *why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    pq_plugin_error_set(why, PQ_ERR_NOT_USABLE, "%s", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0) {
    pq_plugin_error_set(why, PQ_ERR_NOT_USABLE, "no CUDA device");
    return 0;
  }
  return 1;
}

static void cuda_release(void *handle) {
  Cuda *c = (Cuda *)handle;
  if (!c) return;
  for (void *p : c->allocations) cudaFree(p);
  if (c->blas) cublasDestroy(c->blas);
  if (c->stream) cudaStreamDestroy(c->stream);
  if (c->plan) pq_plan_free(c->plan);
  if (c->model) pq_model_unref(c->model);
  delete c;
}

static void *dev_alloc(Cuda *c, size_t bytes) {
  void *p = nullptr;
  if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) return nullptr;
  c->allocations.push_back(p);
  c->allocated += (int64_t)bytes;
  return p;
}

/* ---- kernels --------------------------------------------------------------------------------------- */

__global__ void k_bias_relu(float *y, const float *b, int64_t rows, int64_t n, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * n) return;
  float v = y[i] + (b ? b[i % n] : 0.0f);
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

__global__ void k_relu(const float *x, float *y, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void k_add(const float *a, const float *b, float *y, int rank, Shape8 as, Shape8 bs, Shape8 os, int64_t total, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  int64_t rem = i, ai = 0, bi = 0, am = 1, bm = 1;
  for (int d = rank - 1; d >= 0; d--) {
    int64_t idx = rem % os.d[d];
    rem /= os.d[d];
    if (as.d[d] != 1) ai += idx * am;
    if (bs.d[d] != 1) bi += idx * bm;
    am *= as.d[d];
    bm *= bs.d[d];
  }
  float v = a[ai] + b[bi];
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

__global__ void k_softmax(const float *x, float *y, int64_t outer, int64_t len, int64_t inner) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= outer * inner) return;
  int64_t o = t / inner, in = t % inner;
  const float *xp = x + o * len * inner + in;
  float *yp = y + o * len * inner + in;
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = 0; j < len; j++) m = fmaxf(m, xp[j * inner]);
  for (int64_t j = 0; j < len; j++) s += (yp[j * inner] = expf(xp[j * inner] - m));
  for (int64_t j = 0; j < len; j++) yp[j * inner] /= s;
}

__global__ void k_im2col(const float *x, float *col, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                         int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pl) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, ohw = oh * ow;
  if (i >= c * kh * kw * ohw) return;
  int64_t p = i % ohw, r = i / ohw, kj = r % kw, ki = (r / kw) % kh, ci = r / (kw * kh);
  int64_t oy = p / ow, ox = p % ow, iy = oy * sh - pt + ki * dh, ix = ox * sw - pl + kj * dw;
  col[i] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(ci * h + iy) * w + ix] : 0.0f;
}

__global__ void k_bias_channels(float *y, const float *b, int64_t oc, int64_t ohw, int64_t total, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  float v = y[i] + (b ? b[(i / ohw) % oc] : 0.0f);
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

__global__ void k_pool(const float *x, float *y, int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pl, int is_max, int include_pad) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= nc * oh * ow) return;
  int64_t plane = i / (oh * ow), oy = (i / ow) % oh, ox = i % ow;
  const float *xp = x + plane * h * w;
  float acc = is_max ? -INFINITY : 0.0f;
  int64_t cnt = 0, cnt_pad = 0;
  for (int64_t ki = 0; ki < kh; ki++)
    for (int64_t kj = 0; kj < kw; kj++) {
      int64_t iy = oy * sh - pt + ki * dh, ix = ox * sw - pl + kj * dw;
      if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
        if (iy < h + pt && ix < w + pl) cnt_pad++;
        continue;
      }
      float v = xp[iy * w + ix];
      acc = is_max ? fmaxf(acc, v) : acc + v;
      cnt++;
    }
  if (!is_max) {
    int64_t div = include_pad ? cnt + cnt_pad : cnt;
    acc = div ? acc / (float)div : 0.0f;
  }
  y[i] = acc;
}

__global__ void k_gap(const float *x, float *y, int64_t nc, int64_t spatial) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= nc) return;
  float s = 0.0f;
  for (int64_t j = 0; j < spatial; j++) s += x[i * spatial + j];
  y[i] = s / (float)spatial;
}

__global__ void k_batchnorm(const float *x, float *y, const float *bn, int64_t c, int64_t spatial, int64_t total, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  int64_t ch = (i / spatial) % c;
  float v = x[i] * bn[ch] + bn[c + ch];
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

/* Packed linear: one warp per (row, output); codes unpacked and dequantized in registers. */
__global__ void k_packed_linear(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias,
                                float *y, int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int bits, int per, int64_t group,
                                int64_t groups_per_row, int relu) {
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (warp >= rows * n) return;
  int64_t r = warp / n, o = warp % n;
  const uint8_t *row = codes + o * row_bytes;
  const float *xr = x + r * k;
  const unsigned mask = (1u << bits) - 1;
  const float zdef = (float)(1 << (bits - 1));
  float acc = 0.0f;
  for (int64_t i = lane; i < k; i += 32) {
    int64_t bit = i * bits;
    unsigned v = row[bit >> 3];
    if ((bit & 7) + bits > 8) v |= (unsigned)row[(bit >> 3) + 1] << 8;
    unsigned code = (v >> (bit & 7)) & mask;
    int64_t si = per == 2 ? o * groups_per_row + i / group : per == 1 ? o : 0;
    float z = zeros ? (float)zeros[si] : zdef;
    acc += xr[i] * scales[si] * ((float)code - z);
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    float v = acc + (bias ? bias[o] : 0.0f);
    y[r * n + o] = relu && v < 0.0f ? 0.0f : v;
  }
}

static unsigned blocks(int64_t n, int t = 256) { return (unsigned)((n + t - 1) / t); }

/* ---- prepare ------------------------------------------------------------------------------------- */

static PqStatus upload_weight(Cuda *c, int v, PqPluginError *err) {
  Value &val = c->values[v];
  if (val.ptr) return PQ_OK;
  PqTensor *t = pq_plan_value_tensor(c->plan, v);
  if (pq_tensor_dtype(t) == PQ_DTYPE_PACKED) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "tensor '%s' is packed: the CUDA backend runs packed weights in linear layers only",
                        pq_tensor_name(t));
    return PQ_ERR_UNSUPPORTED;
  }
  int64_t n = pq_tensor_numel(t);
  std::vector<float> host((size_t)(n ? n : 1));
  if (pq_tensor_to_f32(t, host.data()) != 0) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "tensor '%s': dtype not supported", pq_tensor_name(t));
    return PQ_ERR_UNSUPPORTED;
  }
  val.ptr = (float *)dev_alloc(c, sizeof(float) * (size_t)n);
  if (!val.ptr) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of device memory for '%s'", pq_tensor_name(t));
    return PQ_ERR_NOMEM;
  }
  CHECK(cudaMemcpy(val.ptr, host.data(), sizeof(float) * (size_t)n, cudaMemcpyHostToDevice), "upload");
  val.weight = true;
  c->weights_bytes += 4 * n;
  return PQ_OK;
}

static const void *upload_bytes(Cuda *c, const void *data, size_t bytes) {
  void *p = dev_alloc(c, bytes);
  if (p && cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice) != cudaSuccess) return nullptr;
  c->weights_bytes += (int64_t)bytes;
  return p;
}

static PqStatus setup_step(Cuda *c, int s, PqPluginError *err) {
  PqPlan *p = c->plan;
  const PqNode *node = pq_plan_step(p, (size_t)s);
  Step &st = c->steps[s];
  st.kind = op_kind(pq_node_op(node));
  for (int j = 0; j < 16; j++) st.in[j] = pq_plan_step_input(p, (size_t)s, (size_t)j);
  st.out = pq_plan_step_output(p, (size_t)s, 0);
  if (st.kind < 0) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "op '%s' (node '%s') is not supported by the CUDA backend", pq_node_op(node), pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  int nd;
  const int64_t *xs = pq_plan_value_shape(p, st.in[0], &nd);
  if (st.kind == K_LINEAR && pq_tensor_dtype(pq_plan_value_tensor(p, st.in[1])) == PQ_DTYPE_PACKED) {
    PqTensor *w = pq_plan_value_tensor(p, st.in[1]);
    st.n = pq_tensor_rows(w);
    st.k = pq_tensor_cols(w);
    st.m_rows = c->values[st.in[0]].per_sample / st.k;
    st.q_bits = pq_tensor_bits(w);
    st.q_per = (int)pq_tensor_quant_scheme(w);
    st.q_row_bytes = (int64_t)pq_tensor_row_bytes(w);
    st.q_group = st.q_per == 2 ? pq_tensor_group_size(w) : st.k;
    st.q_groups_per_row = st.q_per == 2 ? st.k / st.q_group : 1;
    st.q_codes = (const uint8_t *)upload_bytes(c, pq_tensor_data(w), pq_tensor_nbytes(w));
    st.q_scales = (const float *)upload_bytes(c, pq_tensor_data(pq_tensor_scales(w)), pq_tensor_nbytes(pq_tensor_scales(w)));
    if (pq_tensor_zeros(w)) st.q_zeros = (const uint8_t *)upload_bytes(c, pq_tensor_data(pq_tensor_zeros(w)), pq_tensor_nbytes(pq_tensor_zeros(w)));
    if (!st.q_codes || !st.q_scales || (pq_tensor_zeros(w) && !st.q_zeros)) {
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of device memory for '%s'", pq_tensor_name(w));
      return PQ_ERR_NOMEM;
    }
    if (st.in[2] >= 0) return upload_weight(c, st.in[2], err);
    return PQ_OK;
  }
  for (int j = 0; j < 16; j++) {
    int v = st.in[j];
    if (v < 0 || pq_plan_value_kind(p, v) != PQ_VALUE_WEIGHT) continue;
    PqStatus rc = upload_weight(c, v, err);
    if (rc != PQ_OK) return rc;
  }
  switch (st.kind) {
  case K_LINEAR: {
    int wnd;
    const int64_t *ws = pq_plan_value_shape(p, st.in[1], &wnd);
    st.n = ws[0];
    st.k = ws[1];
    st.m_rows = c->values[st.in[0]].per_sample / st.k;
    break;
  }
  case K_MATMUL: {
    int bnd;
    const int64_t *bs = pq_plan_value_shape(p, st.in[1], &bnd);
    if (bnd != 2 || pq_plan_value_kind(p, st.in[1]) != PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "matmul '%s': the CUDA backend multiplies by a 2-D model tensor only", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    st.k = bs[0];
    st.n = bs[1];
    st.m_rows = c->values[st.in[0]].per_sample / st.k;
    break;
  }
  case K_CONV2D:
  case K_MAXPOOL:
  case K_AVGPOOL: {
    int ond;
    const int64_t *os = pq_plan_value_shape(p, st.out, &ond);
    size_t cnt;
    const int64_t *v;
    st.c = xs[1];
    st.h = xs[2];
    st.w = xs[3];
    st.oc = os[1];
    st.oh = os[2];
    st.ow = os[3];
    if (st.kind == K_CONV2D) {
      int wnd;
      const int64_t *ws = pq_plan_value_shape(p, st.in[1], &wnd);
      st.kh = ws[2];
      st.kw = ws[3];
      st.groups = pq_node_get_int(node, "groups", 1);
      size_t need = (size_t)((st.c / st.groups) * st.kh * st.kw * st.oh * st.ow);
      if (need > c->workspace_floats) c->workspace_floats = need;
    } else {
      v = pq_node_get_ints(node, "kernel", &cnt);
      st.kh = v[0];
      st.kw = v[1];
    }
    v = pq_node_get_ints(node, "strides", &cnt);
    st.sh = v ? v[0] : (st.kind == K_CONV2D ? 1 : st.kh);
    st.sw = v ? v[1] : (st.kind == K_CONV2D ? 1 : st.kw);
    v = pq_node_get_ints(node, "dilations", &cnt);
    st.dh = v ? v[0] : 1;
    st.dw = v ? v[1] : 1;
    v = pq_node_get_ints(node, "pads", &cnt);
    st.pt = v ? v[0] : 0;
    st.pl = v ? v[1] : 0;
    st.count_include_pad = (int)pq_node_get_int(node, "count_include_pad", 0);
    break;
  }
  case K_GAP:
    st.c = xs[1];
    st.h = c->values[st.in[0]].per_sample / xs[1];
    break;
  case K_BATCHNORM: {
    int64_t ch = xs[1];
    double eps = pq_node_get_float(node, "epsilon", 1e-5);
    std::vector<float> g(ch), b(ch), mean(ch), var(ch), host(2 * ch);
    pq_tensor_to_f32(pq_plan_value_tensor(p, st.in[1]), g.data());
    pq_tensor_to_f32(pq_plan_value_tensor(p, st.in[2]), b.data());
    pq_tensor_to_f32(pq_plan_value_tensor(p, st.in[3]), mean.data());
    pq_tensor_to_f32(pq_plan_value_tensor(p, st.in[4]), var.data());
    for (int64_t i = 0; i < ch; i++) {
      host[i] = (float)(g[i] / sqrt((double)var[i] + eps));
      host[ch + i] = b[i] - mean[i] * host[i];
    }
    st.bn = (float *)upload_bytes(c, host.data(), sizeof(float) * (size_t)(2 * ch));
    st.c = ch;
    st.h = c->values[st.in[0]].per_sample / ch;
    break;
  }
  case K_SOFTMAX: {
    int64_t axis = pq_node_get_int(node, "axis", -1);
    if (axis < 0) axis += nd;
    st.axis_len = xs[axis];
    st.axis_inner = 1;
    for (int d = (int)axis + 1; d < nd; d++) st.axis_inner *= xs[d];
    break;
  }
  case K_ADD: {
    int an, bn2, on;
    const int64_t *as = pq_plan_value_shape(p, st.in[0], &an), *bs = pq_plan_value_shape(p, st.in[1], &bn2);
    const int64_t *os = pq_plan_value_shape(p, st.out, &on);
    st.rank = on;
    for (int d = 0; d < on; d++) {
      st.as.d[d] = d < on - an ? 1 : as[d - (on - an)];
      st.bs.d[d] = d < on - bn2 ? 1 : bs[d - (on - bn2)];
      st.os.d[d] = os[d];
    }
    break;
  }
  default: break;
  }
  return PQ_OK;
}

static PqStatus cuda_prepare(const PqModel *model, const PqBackendConfig *cfg, void **handle, PqPluginError *err) {
  Cuda *c = new Cuda();
  PqStatus st = PQ_ERR_INVALID;
  c->model = pq_model_ref((PqModel *)model);
  c->max_batch = cfg->max_batch;
  c->plan = pq_plan_new(model, cfg->max_batch, err);
  PqPlan *p1 = c->plan ? pq_plan_new(model, 1, err) : nullptr;
  if (!c->plan || !p1) {
    cuda_release(c);
    return PQ_ERR_INVALID;
  }
  if (cudaStreamCreate(&c->stream) != cudaSuccess || cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
    pq_plan_free(p1);
    cuda_release(c);
    pq_plugin_error_set(err, PQ_ERR_NOT_USABLE, "cannot start CUDA or cuBLAS");
    return PQ_ERR_NOT_USABLE;
  }
  cublasSetStream(c->blas, c->stream);
  size_t nv = pq_plan_n_values(c->plan), ns = pq_plan_n_steps(c->plan);
  c->values.resize(nv);
  c->steps.resize(ns);
  for (size_t v = 0; v < nv; v++) { /* activations keep the batch first, as in the CPU backend */
    int nd, nd1;
    const int64_t *s = pq_plan_value_shape(c->plan, (int)v, &nd);
    c->values[v].ndim = nd;
    memcpy(c->values[v].shape, s, sizeof(int64_t) * (size_t)nd);
    if (pq_plan_value_kind(c->plan, (int)v) == PQ_VALUE_WEIGHT) continue;
    int v1 = pq_plan_value_index(p1, pq_plan_value_name(c->plan, (int)v));
    const int64_t *s1 = pq_plan_value_shape(p1, v1, &nd1);
    bool ok = nd == nd1 && nd >= 1 && s1[0] == 1 && s[0] == c->max_batch;
    for (int d = 1; ok && d < nd; d++) ok = s[d] == s1[d];
    if (!ok) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "value '%s' does not keep the batch as its first dimension", pq_plan_value_name(c->plan, (int)v));
      pq_plan_free(p1);
      cuda_release(c);
      return PQ_ERR_UNSUPPORTED;
    }
    c->values[v].per_sample = pq_plan_value_numel(p1, v1);
  }
  pq_plan_free(p1);
  const PqGraph *g = pq_model_const_graph(model);
  for (size_t i = 0; i < pq_graph_n_inputs(g); i++) c->inputs.push_back(pq_plan_value_index(c->plan, pq_graph_input_name(g, i)));
  for (size_t i = 0; i < pq_graph_n_outputs(g); i++) c->outputs.push_back(pq_plan_value_index(c->plan, pq_graph_output_name(g, i)));
  for (size_t s = 0; s < ns; s++)
    if ((st = setup_step(c, (int)s, err)) != PQ_OK) {
      cuda_release(c);
      return st;
    }
  /* every activation its own buffer, allocated now: a run allocates nothing */
  for (int v : c->inputs) c->values[v].ptr = (float *)dev_alloc(c, sizeof(float) * (size_t)(c->values[v].per_sample * c->max_batch));
  for (size_t s = 0; s < ns; s++) {
    Step &stp = c->steps[s];
    Value &ov = c->values[stp.out];
    ov.ptr = stp.kind == K_ALIAS ? c->values[stp.in[0]].ptr : (float *)dev_alloc(c, sizeof(float) * (size_t)(ov.per_sample * c->max_batch));
  }
  if (c->workspace_floats) c->workspace = (float *)dev_alloc(c, sizeof(float) * c->workspace_floats);
  for (const Value &v : c->values)
    if (!v.ptr) {
      cuda_release(c);
      pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of device memory");
      return PQ_ERR_NOMEM;
    }
  *handle = c;
  return PQ_OK;
}

/* ---- run ----------------------------------------------------------------------------------------- */

static PqStatus cuda_run(void *handle, const PqTensorView *inputs, size_t n_inputs, PqTensorView *outputs, size_t n_outputs,
                         PqPluginError *err) {
  Cuda *c = (Cuda *)handle;
  if (n_inputs != c->inputs.size() || n_outputs != c->outputs.size()) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "expected %zu inputs and %zu outputs", c->inputs.size(), c->outputs.size());
    return PQ_ERR_INVALID;
  }
  int64_t batch = inputs[0].shape[0];
  if (batch < 1 || batch > c->max_batch) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "batch %lld outside 1..%lld", (long long)batch, (long long)c->max_batch);
    return PQ_ERR_INVALID;
  }
  for (size_t i = 0; i < n_inputs; i++) {
    Value &v = c->values[c->inputs[i]];
    bool ok = inputs[i].dtype == PQ_DTYPE_F32 && inputs[i].ndim == v.ndim && inputs[i].shape[0] == batch && inputs[i].data;
    for (int d = 1; ok && d < v.ndim; d++) ok = inputs[i].shape[d] == v.shape[d];
    if (!ok) {
      pq_plugin_error_set(err, PQ_ERR_INVALID, "input %zu: expected float32 of the graph input's shape with batch %lld", i, (long long)batch);
      return PQ_ERR_INVALID;
    }
    CHECK(cudaMemcpyAsync(v.ptr, inputs[i].data, sizeof(float) * (size_t)(v.per_sample * batch), cudaMemcpyHostToDevice, c->stream), "input copy");
  }
  const float one = 1.0f, zero = 0.0f;
  cudaStream_t s = c->stream;
  for (Step &st : c->steps) {
    float *y = c->values[st.out].ptr;
    const float *x = c->values[st.in[0]].ptr;
    int64_t total = c->values[st.out].per_sample * batch;
    switch (st.kind) {
    case K_LINEAR: {
      int64_t rows = batch * st.m_rows;
      const float *b = st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr;
      if (st.q_codes) {
        int64_t warps = rows * st.n;
        k_packed_linear<<<blocks(warps * 32), 256, 0, s>>>(x, st.q_codes, st.q_scales, st.q_zeros, b, y, rows, st.n, st.k, st.q_row_bytes,
                                                            st.q_bits, st.q_per, st.q_group, st.q_groups_per_row, st.relu);
        break;
      }
      /* row-major y [rows, n] = x W^T is column-major y^T = W x^T */
      cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)st.n, (int)rows, (int)st.k, &one, c->values[st.in[1]].ptr, (int)st.k, x, (int)st.k,
                  &zero, y, (int)st.n);
      if (b || st.relu) k_bias_relu<<<blocks(rows * st.n), 256, 0, s>>>(y, b, rows, st.n, st.relu);
      break;
    }
    case K_MATMUL: {
      int64_t rows = batch * st.m_rows;
      cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)st.n, (int)rows, (int)st.k, &one, c->values[st.in[1]].ptr, (int)st.n, x, (int)st.k,
                  &zero, y, (int)st.n);
      if (st.relu) k_bias_relu<<<blocks(rows * st.n), 256, 0, s>>>(y, nullptr, rows, st.n, 1);
      break;
    }
    case K_ADD: {
      Shape8 as = st.as, bs = st.bs, os = st.os;
      os.d[0] = batch;
      if (!c->values[st.in[0]].weight && as.d[0] != 1) as.d[0] = batch;
      if (!c->values[st.in[1]].weight && bs.d[0] != 1) bs.d[0] = batch;
      k_add<<<blocks(total), 256, 0, s>>>(x, c->values[st.in[1]].ptr, y, st.rank, as, bs, os, total, st.relu);
      break;
    }
    case K_RELU: k_relu<<<blocks(total), 256, 0, s>>>(x, y, total); break;
    case K_SOFTMAX: {
      int64_t outer = total / (st.axis_len * st.axis_inner);
      k_softmax<<<blocks(outer * st.axis_inner), 256, 0, s>>>(x, y, outer, st.axis_len, st.axis_inner);
      break;
    }
    case K_CONV2D: {
      int64_t cg = st.c / st.groups, ocg = st.oc / st.groups, ohw = st.oh * st.ow, kk = cg * st.kh * st.kw;
      const float *w = c->values[st.in[1]].ptr;
      for (int64_t n = 0; n < batch; n++)
        for (int64_t g = 0; g < st.groups; g++) {
          const float *xg = x + (n * st.c + g * cg) * st.h * st.w;
          k_im2col<<<blocks(kk * ohw), 256, 0, s>>>(xg, c->workspace, cg, st.h, st.w, st.kh, st.kw, st.oh, st.ow, st.sh, st.sw, st.dh, st.dw,
                                                    st.pt, st.pl);
          /* row-major yg [ocg, ohw] = W_g [ocg, kk] · col [kk, ohw]: column-major yg^T = col^T W_g^T */
          cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)ohw, (int)ocg, (int)kk, &one, c->workspace, (int)ohw, w + g * ocg * kk, (int)kk,
                      &zero, y + (n * st.oc + g * ocg) * ohw, (int)ohw);
        }
      const float *b = st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr;
      if (b || st.relu) k_bias_channels<<<blocks(total), 256, 0, s>>>(y, b, st.oc, ohw, total, st.relu);
      break;
    }
    case K_MAXPOOL:
    case K_AVGPOOL:
      k_pool<<<blocks(batch * st.c * st.oh * st.ow), 256, 0, s>>>(x, y, batch * st.c, st.h, st.w, st.oh, st.ow, st.kh, st.kw, st.sh, st.sw, st.dh,
                                                                 st.dw, st.pt, st.pl, st.kind == K_MAXPOOL, st.count_include_pad);
      break;
    case K_GAP: k_gap<<<blocks(batch * st.c), 256, 0, s>>>(x, y, batch * st.c, st.h); break;
    case K_BATCHNORM: k_batchnorm<<<blocks(total), 256, 0, s>>>(x, y, st.bn, st.c, st.h, total, st.relu); break;
    case K_ALIAS: break;
    }
  }
  for (size_t i = 0; i < n_outputs; i++) {
    Value &v = c->values[c->outputs[i]];
    CHECK(cudaMemcpyAsync(outputs[i].data, v.ptr, sizeof(float) * (size_t)(v.per_sample * batch), cudaMemcpyDeviceToHost, s), "output copy");
  }
  CHECK(cudaStreamSynchronize(s), "run");
  CHECK(cudaGetLastError(), "kernel");
  return PQ_OK;
}

static PqStatus cuda_memory(void *handle, PqMemoryCounters *out, PqPluginError *err) {
  Cuda *c = (Cuda *)handle;
  size_t free_b = 0, total_b = 0;
  CHECK(cudaMemGetInfo(&free_b, &total_b), "memory");
  out->weights_bytes = c->weights_bytes;
  out->current_bytes = c->allocated;
  out->peak_bytes = c->allocated; /* everything is allocated at prepare */
  out->device_free_bytes = (int64_t)free_b;
  out->device_total_bytes = (int64_t)total_b;
  return PQ_OK;
}

static const PqBackendVTable cuda_vtable = {
    sizeof(PqBackendVTable), cuda_supports_op, cuda_prepare, cuda_run, cuda_release, cuda_memory, {nullptr},
};

static const PqPluginDesc cuda_desc = {
    sizeof(PqPluginDesc), PQ_ABI_MAJOR, PQ_ABI_MINOR, PQ_KIND_BACKEND, 0, "cuda", "0.1.0",
    "float32 inference on an NVIDIA GPU (cuBLAS; packed weights dequantized in-kernel)", nullptr, &cuda_vtable, cuda_usable_here,
    {nullptr},
};

extern "C" PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &cuda_desc; }
