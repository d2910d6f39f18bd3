/* cuda.cu — the CUDA backend: the CPU backend's op set on an NVIDIA GPU. Dense GEMMs through cuBLAS (fp32, or
 * TF32 / fp16 weights where the "math" option asks), elementwise, pooling and im2col kernels; linear and
 * conv layers with packed 2–8-bit weights dequantized inside the kernel (no float copy of a weight in device
 * memory); tensor-train layers as one GEMM and one transpose per core; block-circulant layers through cuFFT;
 * CSR sparse layers. Weights are uploaded (and transformed: TT cores laid out for the GEMMs, circulant blocks'
 * spectra) once at prepare, every activation buffer is allocated there too; a run is one host→device copy of
 * the input, the kernels, and one device→host copy of each output (by a kernel through mapped page-locked
 * memory where small), timed with CUDA events where the run before it had its timing asked for. On a machine
 * without a driver or device it says it is not usable. */
#include <pquant/pq-activation.h>
#include <pquant/pq-plugin.h>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cufft.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <vector>

#include "packed8-launch.cuh"

enum { K_LINEAR, K_MATMUL, K_ADD, K_RELU, K_SOFTMAX, K_CONV2D, K_MAXPOOL, K_AVGPOOL, K_GAP, K_BATCHNORM, K_ALIAS, K_CIRC, K_TT, K_SPARSE,
       K_ACT /* sigmoid, tanh, … (pq-activation.h) */, K_TRANSPOSE, K_CONCAT, K_PAD, K_LAYERNORM, K_REDUCE /* reduce_sum, … */, K_CONVT, K_SLICE, K_RESIZE };
enum { MATH_FP32, MATH_TF32, MATH_FP16 };
/* 8-bit linear layers with at least so many codes have their kernel variant (packed8-launch.cuh) chosen by
 * timing each at prepare (int8_kernel=auto); smaller ones, whose runs launches and copies dominate, take the
 * default */
#define PQ8_TUNE_MIN_CODES (1 << 20)
/* the most rows a variant is timed at (a larger batch takes the choice made there) */
#define PQ8_TUNE_MAX_ROWS 64
/* copies=auto: a run's input or output of at most so many bytes is copied by a kernel through mapped
 * page-locked memory rather than by a copy engine (whose start costs more than moving a few KB) */
#define COPY_KERNEL_MAX (256 << 10)

static const struct {
  const char *op;
  int kind;
} op_table[] = {{"linear", K_LINEAR},       {"matmul", K_MATMUL},     {"relu", K_RELU},
                {"transpose", K_TRANSPOSE}, {"concat", K_CONCAT}, {"pad2d", K_PAD},
                {"softmax", K_SOFTMAX},     {"conv2d", K_CONV2D},     {"log_softmax", K_SOFTMAX},     {"maxpool2d", K_MAXPOOL}, {"avgpool2d", K_AVGPOOL},
                {"global_avg_pool", K_GAP}, {"batch_norm", K_BATCHNORM}, {"flatten", K_ALIAS},  {"reshape", K_ALIAS},
                {"circulant_linear", K_CIRC}, {"tt_linear", K_TT}, {"sparse_linear", K_SPARSE}, {"layer_norm", K_LAYERNORM},
                {"conv_transpose2d", K_CONVT}, {"slice", K_SLICE}, {"resize2d", K_RESIZE}};

static int op_kind(const char *op) {
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
    if (!strcmp(op_table[i].op, op)) return op_table[i].kind;
  if (pq_binary_kind(op) != PQ_BIN_NONE) return K_ADD; /* add, sub, mul, div, prelu, pow, minimum, maximum: one broadcasting step */
  if (pq_reduce_kind(op) != PQ_RED_NONE) return K_REDUCE;
  return pq_activation_kind(op) != PQ_ACT_NONE ? K_ACT : -1;
}

static int cuda_supports_op(const char *op) { return op_kind(op) >= 0; }

struct Shape8 {
  int64_t d[PQ_MAX_DIMS];
};

/* cuFFT plans of a circulant layer for one number of rows. A layer has them for every power of two up to
 * its largest batch, made at prepare and sharing the backend's one work area; a run of any batch size
 * transforms its rows in power-of-two chunks (19 rows: 16, 2 and 1), so runs plan and allocate nothing. */
struct FftPlans {
  int64_t rows = 0;
  cufftHandle fwd = 0, inv = 0;
};

struct Step {
  int kind = 0, in[16], out = -1, relu = 0;
  int64_t k = 0, n = 0, m_rows = 1;                                       /* linear, matmul */
  int64_t mm_slices = 0;                                                  /* matmul of two activations: matrices per sample */
  int64_t c = 0, h = 0, w = 0, oc = 0, oh = 0, ow = 0, kh = 0, kw = 0, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, groups = 1;
  int count_include_pad = 0;
  int64_t axis_len = 0, axis_inner = 1;                                   /* softmax */
  int log_sm = 0;                                                         /* log_softmax */
  float ln_eps = 0.0f;                                                    /* layer_norm: rows of axis_len values */
  int ln_out = 0;                                                         /* layer_norm: 0 the values, 1 the means, 2 1/σ */
  int red = 0;                                                            /* reduce_*: which, and where it reads */
  PqReduceGeometry red_geo{};
  PqSliceGeometry slice{};                                                /* slice */
  PqResizeParams resize{};                                                /* resize2d */
  float pad_value = 0.0f;                                                 /* pad2d: the border (pads in pt, pl) */
  float *bn = nullptr;                                                    /* device: scale then shift, 2·C */
  int rank = 0, bin = 0;                                                  /* add, sub, mul, div; transpose */
  Shape8 tr_ist{};                                                        /* transpose: each output dimension's input stride */
  int64_t cat_outer = 1, cat_blk[16] = {0};                              /* concat: blocks before the axis; each input's after */
  unsigned cat_const = 0;                                                 /* concat: a bit per model-tensor input */
  Shape8 as{}, bs{}, os{};
  /* packed linear */
  const uint8_t *q_codes = nullptr;
  const float *q_scales = nullptr;
  const uint8_t *q_zeros = nullptr;
  int q_bits = 0, q_per = 0;
  int64_t q_row_bytes = 0, q_group = 0, q_groups_per_row = 1;
  float q_act_scale = 0.0f;                                               /* > 0: static int8 activations */
  /* 8-bit codes a row, k % 16 == 0: the kernel variant (pq8_variants) for runs of up to and past the geometric
   * mean of pq8_rows[0] and pq8_rows[1] rows (the rows each was timed at where it was chosen by timing) */
  int pq8[2] = {PQ8_DEFAULT_VARIANT, PQ8_DEFAULT_VARIANT};
  int64_t pq8_rows[2] = {1, 1};
  int act = 0;                                                            /* K_ACT: the function and its parameters */
  float act_a = 0.0f, act_b = 0.0f;
  /* tensor train: cores C_k [(n_k r_k), (r_{k-1} m_k)] row-major, two work buffers */
  int tt_d = 0, tt_bias = -1;
  int64_t tt_r[17] = {0}, tt_m[16] = {0}, tt_n[16] = {0}, tt_M = 0;
  float *tt_c[16] = {nullptr}, *tt_bufr = nullptr, *tt_buft = nullptr;
  /* block circulant: blocks of cb, cf = cb/2+1 frequencies, cmb x cnb blocks; spectra scaled by 1/cb */
  int64_t cb = 0, cf = 0, cmb = 0, cnb = 0;
  cufftComplex *cw = nullptr, *cx = nullptr, *cacc = nullptr;
  float *cxpad = nullptr, *cypad = nullptr;
  std::vector<FftPlans> plans;
  /* CSR sparse */
  const float *sp_vals = nullptr;
  const int32_t *sp_cols = nullptr, *sp_rows = nullptr;
};

struct Value {
  float *ptr = nullptr;     /* device */
  __half *hptr = nullptr;   /* device: the fp16 copy of a linear weight (math = fp16) */
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
  /* page-locked host buffers the batch and the outputs pass through (nullptr where none could be had: the
     copy then goes from the caller's memory as it is). A copy from pageable memory goes through the
     driver's own staging: 32 KB of outputs took 19 µs on an H200 against a few µs from page-locked memory. */
  std::vector<float *> pinned_in, pinned_out;
  /* the same buffers as the device addresses them (mapped page-locked memory; nullptr where it cannot), for
     copies made by a kernel reading or writing host memory instead of by a copy engine */
  std::vector<float *> pinned_in_dev, pinned_out_dev;
  int copies = 0; /* 0 auto: by a kernel up to COPY_KERNEL_MAX bytes, else by a copy engine; 1 engine; 2 kernel */
  float *workspace = nullptr;
  size_t workspace_floats = 0;
  cublasHandle_t blas = nullptr;
  cudaStream_t stream = nullptr;
  int64_t weights_bytes = 0, allocated = 0;
  int math = MATH_FP32;
  int int8_kernel = -1; /* an index into pq8_variants, or -1: chosen by timing (auto) */
  __half *half_ws = nullptr;   /* a linear layer's input in fp16 (math = fp16) */
  size_t half_ws_elems = 0;
  void *fft_work = nullptr;    /* the cuFFT work area every plan shares */
  size_t fft_work_bytes = 0;
  cudaEvent_t ev[4] = {nullptr, nullptr, nullptr, nullptr}; /* before the copies in, after them, after the compute, after the copies out */
  /* Timing on request: a run records the four events only where its timing was asked for (last_run_timing,
   * which the host calls only after a run) since the run before it, so a model's first run is never timed:
   * event-record nodes cost a run at batch 1 about 8 µs of its 46 on an H200 (the int8 target's run,
   * 2026-11-29), which runs that nobody times should not pay. */
  bool timing_asked = false;
  bool timed = false;   /* a run has completed */
  bool evented = false; /* the last run recorded its events */
  float last_ms[3] = {0, 0, 0}; /* copies in, compute, copies out of the last run */
  /* CUDA graphs: a run's copies, kernels and events captured once per batch size (from its second run: the
   * first loads the kernels and lets cuBLAS settle) and replayed with one launch. graphs: 0 off, 1 auto (where
   * capture fails the runs stay as they are), 2 on (a failed capture is the run's error). */
  int graphs = 1;
  struct Captured {
    int64_t batch;
    cudaGraphExec_t exec[2]; /* without and with the events; nullptr: not captured yet (the first run of a size is eager) */
  };
  std::vector<Captured> captured;
  std::vector<const void *> run_src; /* a run's copy sources and destinations (sized at prepare: runs allocate nothing) */
  std::vector<void *> run_dst;
  bool staged = false; /* every input and output has its page-locked buffer (a graph's copies need them) */
};

/* graphs kept for so many batch sizes at most; runs of further sizes are not captured */
#define MAX_CAPTURED 16

/* a cuBLAS call inside run(): its failure is the run's error */
#define BLAS(call, what)                                                                                           \
  do {                                                                                                             \
    cublasStatus_t b_ = (call);                                                                                    \
    if (b_ != CUBLAS_STATUS_SUCCESS) {                                                                             \
      pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cuBLAS %s: status %d", what, (int)b_);                            \
      return PQ_ERR_INTERNAL;                                                                                      \
    }                                                                                                              \
  } while (0)

#define CHECK(call, what)                                                                                          \
  do {                                                                                                             \
    cudaError_t e_ = (call);                                                                                       \
    if (e_ != cudaSuccess) {                                                                                       \
      pq_plugin_error_set(err, PQ_ERR_INTERNAL, "%s: %s", what, cudaGetErrorString(e_));                           \
      return PQ_ERR_INTERNAL;                                                                                      \
    }                                                                                                              \
  } while (0)

/* Whether a device answers, and if not why (a NUL-terminated reason). */
struct Probe {
  int usable;
  char reason[240];
};

static Probe probe_devices(void) {
  Probe r = {0, {0}};
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) snprintf(r.reason, sizeof r.reason, "%s", cudaGetErrorString(e));
  else if (n == 0) snprintf(r.reason, sizeof r.reason, "no CUDA device");
  else r.usable = 1;
  return r;
}

/* CUDA cannot be used in a process forked after CUDA was initialized in its parent, and the suite runs
 * each method in a forked child: so the host process never initializes CUDA to ask. The question is put
 * to a child of its own, once; the answer comes back through a pipe. */
static int cuda_usable_here(PqPluginError *why) {
  static int asked = 0;
  static Probe answer;
  if (!asked) {
    int fds[2];
    pid_t pid = pipe(fds) == 0 ? fork() : -1;
    if (pid < 0) {
      answer = {0, {0}};
      snprintf(answer.reason, sizeof answer.reason, "cannot start a process to look for a GPU: %s", strerror(errno));
    } else if (pid == 0) {
      close(fds[0]);
      Probe r = probe_devices();
      ssize_t w = write(fds[1], &r, sizeof r);
      _exit(w == (ssize_t)sizeof r ? 0 : 1);
    } else {
      close(fds[1]);
      Probe r = {0, {0}};
      size_t got = 0;
      while (got < sizeof r) {
        ssize_t k = read(fds[0], (char *)&r + got, sizeof r - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
      }
      close(fds[0]);
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      if (got == sizeof r) answer = r;
      else {
        answer = {0, {0}};
        snprintf(answer.reason, sizeof answer.reason, "the CUDA runtime failed while looking for a GPU%s",
                 WIFSIGNALED(status) ? " (the check crashed)" : "");
      }
      answer.reason[sizeof answer.reason - 1] = 0;
    }
    asked = 1;
  }
  if (!answer.usable) pq_plugin_error_set(why, PQ_ERR_NOT_USABLE, "%s", answer.reason);
  return answer.usable;
}

static void cuda_release(void *handle) {
  Cuda *c = (Cuda *)handle;
  if (!c) return;
  for (Step &st : c->steps)
    for (FftPlans &pl : st.plans) {
      if (pl.fwd) cufftDestroy(pl.fwd);
      if (pl.inv) cufftDestroy(pl.inv);
    }
  for (Cuda::Captured &g : c->captured)
    for (cudaGraphExec_t e : g.exec)
      if (e) cudaGraphExecDestroy(e);
  for (cudaEvent_t e : c->ev)
    if (e) cudaEventDestroy(e);
  for (float *p : c->pinned_in)
    if (p) cudaFreeHost(p);
  for (float *p : c->pinned_out)
    if (p) cudaFreeHost(p);
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

/* n floats from src to dst, one of them host memory mapped for the device: a run's small copies made by the
 * SMs (float4 where both are 16-byte aligned, the tail and unaligned ones a float a thread) */
__global__ void k_copy_f32(float *dst, const float *src, int64_t n, int vec) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t n4 = vec ? n / 4 : 0;
  if (i < n4) ((float4 *)dst)[i] = ((const float4 *)src)[i];
  if (i < n - 4 * n4) dst[4 * n4 + i] = src[4 * n4 + i];
}

__global__ void k_bias_relu(float *y, const float *b, int64_t rows, int64_t n, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * n) return;
  float v = y[i] + (b ? b[i % n] : 0.0f);
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

/* pad2d: each output element the input's, or the border's value */
__global__ void k_pad(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow, int64_t pt, int64_t pl,
                      float value) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= planes * oh * ow) return;
  int64_t p = i / (oh * ow), oy = (i / ow) % oh - pt, ox = i % ow - pl;
  y[i] = oy >= 0 && oy < h && ox >= 0 && ox < w ? x[(p * h + oy) * w + ox] : value;
}

/* concat: one input's blocks into their place in the output's; a model tensor's `per_sample` blocks (else 0) are
 * the same for every sample */
__global__ void k_concat(const float *x, float *y, int64_t rows, int64_t blk_in, int64_t blk_out, int64_t offset, int64_t const_rows) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * blk_in) return;
  int64_t row = i / blk_in, src = const_rows ? (row % const_rows) * blk_in + i % blk_in : i;
  y[row * blk_out + offset + i % blk_in] = x[src];
}

/* transpose per sample: output element i (of `per` per sample) read through the permuted input strides */
__global__ void k_transpose(const float *x, float *y, int rank, Shape8 os, Shape8 ist, int64_t per, int64_t total) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  int64_t r = i / per, rem = i % per, off = 0;
  for (int d = rank - 1; d >= 1; d--) {
    off += (rem % os.d[d]) * ist.d[d];
    rem /= os.d[d];
  }
  y[i] = x[r * per + off];
}

__global__ void k_activation(const float *x, float *y, int64_t n, int kind, float a, float b) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = pq_activation(kind, x[i], a, b); /* the formula every backend shares */
}

__global__ void k_relu(const float *x, float *y, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void k_add(const float *a, const float *b, float *y, int rank, Shape8 as, Shape8 bs, Shape8 os, int64_t total, int relu, int op) {
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
  float v = pq_binary(op, a[ai], b[bi]);
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

__global__ void k_softmax(const float *x, float *y, int64_t outer, int64_t len, int64_t inner, int log_sm) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= outer * inner) return;
  int64_t o = t / inner, in = t % inner;
  const float *xp = x + o * len * inner + in;
  float *yp = y + o * len * inner + in;
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = 0; j < len; j++) m = fmaxf(m, xp[j * inner]);
  for (int64_t j = 0; j < len; j++) s += (yp[j * inner] = expf(xp[j * inner] - m));
  if (log_sm) { /* x − max − log Σ e^(x − max) */
    float ls = logf(s);
    for (int64_t j = 0; j < len; j++) yp[j * inner] = xp[j * inner] - m - ls;
    return;
  }
  for (int64_t j = 0; j < len; j++) yp[j * inner] /= s;
}

/* layer_norm: one warp per row of `len` values: mean, then variance (two passes, shuffles), then the normalised
 * values with their scale and bias */
__global__ void k_layer_norm(const float *x, const float *scale, const float *bias, float *y, int64_t rows, int64_t len, float eps,
                             int which) {
  int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float *xr = x + row * len;
  float *yr = y + row * len;
  float s = 0.0f;
  for (int64_t i = lane; i < len; i += 32) s += xr[i];
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  float mean = s / (float)len, v = 0.0f;
  for (int64_t i = lane; i < len; i += 32) v += (xr[i] - mean) * (xr[i] - mean);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  float inv = rsqrtf(v / (float)len + eps);
  if (which) { /* the row's mean or 1/σ */
    if (lane == 0) y[row] = which == 1 ? mean : inv;
    return;
  }
  for (int64_t i = lane; i < len; i += 32) {
    float t = (xr[i] - mean) * inv;
    yr[i] = (scale ? t * scale[i] : t) + (bias ? bias[i] : 0.0f);
  }
}

/* conv_transpose2d, one group of one sample: each output value gathers the column values (col [O/g·kh·kw, H·W]
 * = W_gᵀ · x_g) that a conv2d of the same geometry would have read from its place, then bias (and relu) */
__global__ void k_col2im_bias(const float *col, const float *bias, float *y, int64_t ocg, int64_t oh, int64_t ow, int64_t h, int64_t w,
                              int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pl, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= ocg * oh * ow) return;
  int64_t c = i / (oh * ow), yy = (i / ow) % oh, yx = i % ow;
  float acc = bias ? bias[c] : 0.0f;
  for (int64_t ki = 0; ki < kh; ki++) {
    int64_t ty = yy + pt - ki * dh;
    if (ty < 0 || ty % sh || ty / sh >= h) continue;
    for (int64_t kj = 0; kj < kw; kj++) {
      int64_t tx = yx + pl - kj * dw;
      if (tx < 0 || tx % sw || tx / sw >= w) continue;
      acc += col[((c * kh + ki) * kw + kj) * h * w + (ty / sh) * w + tx / sw];
    }
  }
  y[i] = relu && acc < 0.0f ? 0.0f : acc;
}

/* resize2d: one thread per output value, sampling its plane through pq_resize_one() (as on the CPU) */
__global__ void k_resize(const float *x, float *y, int64_t total, PqResizeParams rp) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  int64_t ohw = rp.out[0] * rp.out[1], o = i % ohw;
  y[i] = pq_resize_one(&rp, x + (i / ohw) * rp.in[0] * rp.in[1], o / rp.out[1], o % rp.out[1]);
}

/* slice: one thread per output value, reading the input element pq_slice_offset() names (as on the CPU) */
__global__ void k_slice(const float *x, float *y, int64_t total, int64_t in_ps, int64_t out_ps, PqSliceGeometry geo) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  y[i] = x[(i / out_ps) * in_ps + pq_slice_offset(&geo, i % out_ps)];
}

/* reduce_*: one thread per output value, over the input elements it gathers (pq_reduce_one, as on the CPU) */
__global__ void k_reduce(const float *x, float *y, int64_t total, int64_t in_ps, int64_t out_ps, int kind, PqReduceGeometry geo) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  y[i] = pq_reduce_one(kind, &geo, x + (i / out_ps) * in_ps, i % out_ps);
}

/* col [c·kh·kw, oh·ow], or with `by_position` [oh·ow, c·kh·kw] (the rows a packed-linear kernel reads) */
__global__ void k_im2col(const float *x, float *col, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                         int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pl, int by_position) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, ohw = oh * ow, kk = c * kh * kw;
  if (i >= kk * ohw) return;
  int64_t p = i % ohw, r = i / ohw, kj = r % kw, ki = (r / kw) % kh, ci = r / (kw * kh);
  int64_t oy = p / ow, ox = p % ow, iy = oy * sh - pt + ki * dh, ix = ox * sw - pl + kj * dw;
  col[by_position ? p * kk + r : i] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(ci * h + iy) * w + ix] : 0.0f;
}

/* A depthwise conv (one input channel a group, oc / c outputs each), one thread an output: a GEMM a channel
 * would be a launch and a 1 × OH·OW × kh·kw product for each channel of each sample. Bias and ReLU inside. */
__global__ void k_conv_depthwise(const float *x, const float *w, const float *b, float *y, int64_t total, int64_t c, int64_t oc, int64_t h,
                                 int64_t wd, int64_t oh, int64_t ow, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                                 int64_t pt, int64_t pl, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  int64_t ox = i % ow, oy = (i / ow) % oh, o = (i / (ow * oh)) % oc, n = i / (ow * oh * oc);
  const float *xp = x + (n * c + o / (oc / c)) * h * wd, *wo = w + o * kh * kw;
  float acc = b ? b[o] : 0.0f;
  for (int64_t ky = 0; ky < kh; ky++) {
    int64_t iy = oy * sh - pt + ky * dh;
    if (iy < 0 || iy >= h) continue;
    for (int64_t kx = 0; kx < kw; kx++) {
      int64_t ix = ox * sw - pl + kx * dw;
      if (ix >= 0 && ix < wd) acc += wo[ky * kw + kx] * xp[iy * wd + ix];
    }
  }
  y[i] = relu && acc < 0.0f ? 0.0f : acc;
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

/* Packed linear: one warp per (row, output); codes unpacked and dequantized in registers. y[r·ys_r + o·ys_o]
 * (a linear layer: ys_r = n, ys_o = 1; a conv over positions: ys_r = 1, ys_o = positions). With act_scale > 0
 * the input is rounded to that int8 grid first, as the model's static activations say. */
__global__ void k_packed_linear(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias,
                                float *y, int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int bits, int per, int64_t group,
                                int64_t groups_per_row, int relu, int64_t ys_r, int64_t ys_o, float act_scale) {
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
    float z = zeros ? (float)zeros[si] : zdef, xv = xr[i];
    if (act_scale > 0.0f) xv = fminf(fmaxf(rintf(xv * (1.0f / act_scale)), -127.0f), 127.0f) * act_scale; /* as the CPU rounds */
    acc += xv * scales[si] * ((float)code - z);
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    float v = acc + (bias ? bias[o] : 0.0f);
    y[r * ys_r + o * ys_o] = relu && v < 0.0f ? 0.0f : v;
  }
}

/* CSR sparse linear: one warp per (row, output), the lanes over that output's stored weights. */
__global__ void k_sparse_linear(const float *x, const float *vals, const int32_t *cols, const int32_t *starts, const float *bias,
                                float *y, int64_t rows, int64_t n, int64_t k, int relu) {
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (warp >= rows * n) return;
  int64_t r = warp / n, o = warp % n;
  const float *xr = x + r * k;
  float acc = 0.0f;
  for (int32_t q = starts[o] + lane; q < starts[o + 1]; q += 32) acc += vals[q] * xr[cols[q]];
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0) {
    float v = acc + (bias ? bias[o] : 0.0f);
    y[r * n + o] = relu && v < 0.0f ? 0.0f : v;
  }
}

/* tensor train: [A, r, m] → [m, A, r], the output index to the front */
__global__ void k_tt_transpose(const float *src, float *dst, int64_t a, int64_t rp, int64_t m) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= a * rp * m) return;
  int64_t mi = i % m, r = (i / m) % rp, ai = i / (m * rp);
  dst[(mi * a + ai) * rp + r] = src[i];
}

/* tensor train: the last contraction left [M, rows]; y [rows, M] = its transpose + bias */
__global__ void k_tt_out(const float *cur, const float *bias, float *y, int64_t rows, int64_t m, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * m) return;
  int64_t b = i / m, o = i % m;
  float v = cur[o * rows + b] + (bias ? bias[o] : 0.0f);
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

/* circulant: each input row zero-padded to whole blocks */
__global__ void k_circ_pad(const float *x, float *xpad, int64_t rows, int64_t in, int64_t padded) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * padded) return;
  int64_t r = i / padded, j = i % padded;
  xpad[i] = j < in ? x[r * in + j] : 0.0f;
}

/* circulant: acc[r, bi, f] = Σ_bj W[bi, bj, f] · X[r, bj, f] in the frequency domain */
__global__ void k_circ_mac(const cufftComplex *w, const cufftComplex *x, cufftComplex *acc, int64_t rows, int64_t mb, int64_t nb, int64_t f) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * mb * f) return;
  int64_t k = i % f, bi = (i / f) % mb, r = i / (f * mb);
  float re = 0.0f, im = 0.0f;
  for (int64_t bj = 0; bj < nb; bj++) {
    cufftComplex a = w[(bi * nb + bj) * f + k], b = x[(r * nb + bj) * f + k];
    re += a.x * b.x - a.y * b.y;
    im += a.x * b.y + a.y * b.x;
  }
  acc[i].x = re;
  acc[i].y = im;
}

__global__ void k_circ_out(const float *ypad, const float *bias, float *y, int64_t rows, int64_t out, int64_t padded, int relu) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * out) return;
  int64_t r = i / out, o = i % out;
  float v = ypad[r * padded + o] + (bias ? bias[o] : 0.0f);
  y[i] = relu && v < 0.0f ? 0.0f : v;
}

__global__ void k_scale_complex(cufftComplex *v, int64_t n, float s) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  v[i].x *= s;
  v[i].y *= s;
}

__global__ void k_to_half(const float *x, __half *y, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2half(x[i]);
}

static unsigned blocks_for(int64_t n, int t = 256) { return (unsigned)((n + t - 1) / t); }

/* ---- prepare ------------------------------------------------------------------------------------- */

static PqStatus upload_weight(Cuda *c, int v, PqPluginError *err) {
  Value &val = c->values[v];
  if (val.ptr) return PQ_OK;
  PqTensor *t = pq_plan_value_tensor(c->plan, v);
  if (pq_tensor_dtype(t) == PQ_DTYPE_PACKED) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "tensor '%s' is packed: the CUDA backend runs packed weights in linear and conv2d layers only",
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

#define NOMEM(what)                                                                                                \
  do {                                                                                                             \
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of device memory for '%s'", what);                                 \
    return PQ_ERR_NOMEM;                                                                                           \
  } while (0)

static std::vector<float> host_f32(PqTensor *t) {
  std::vector<float> h((size_t)(pq_tensor_numel(t) ? pq_tensor_numel(t) : 1));
  pq_tensor_to_f32(t, h.data());
  return h;
}

/* A linear weight held in fp16 (math = fp16): half the bytes, tensor-core GEMMs with float32 accumulation. */
static PqStatus upload_weight_half(Cuda *c, int v, PqPluginError *err) {
  Value &val = c->values[v];
  if (val.hptr) return PQ_OK;
  PqTensor *t = pq_plan_value_tensor(c->plan, v);
  std::vector<float> f = host_f32(t);
  std::vector<__half> h(f.size());
  for (size_t i = 0; i < f.size(); i++) h[i] = __float2half(f[i]);
  val.hptr = (__half *)upload_bytes(c, h.data(), sizeof(__half) * h.size());
  if (!val.hptr) NOMEM(pq_tensor_name(t));
  val.weight = true;
  return PQ_OK;
}

/* Packed weights (linear, or conv over output positions): codes, scales and zero points as stored. */
static PqStatus setup_packed(Cuda *c, Step &st, const PqNode *node, PqPluginError *err) {
  PqTensor *w = pq_plan_value_tensor(c->plan, st.in[1]);
  st.n = pq_tensor_rows(w);
  st.k = pq_tensor_cols(w);
  st.q_bits = pq_tensor_bits(w);
  st.q_per = (int)pq_tensor_quant_scheme(w);
  st.q_row_bytes = (int64_t)pq_tensor_row_bytes(w);
  st.q_group = st.q_per == PQ_QUANT_PER_GROUP ? pq_tensor_group_size(w) : st.k;
  st.q_groups_per_row = st.q_per == PQ_QUANT_PER_GROUP ? st.k / st.q_group : 1;
  st.q_act_scale = (float)pq_node_get_float(node, "act_scale", 0.0);
  st.q_codes = (const uint8_t *)upload_bytes(c, pq_tensor_data(w), pq_tensor_nbytes(w));
  std::vector<float> scales((size_t)std::max<int64_t>(pq_tensor_numel(pq_tensor_scales(w)), 1)); /* F32 or F16 stored: floats on the device */
  pq_tensor_to_f32(pq_tensor_scales(w), scales.data());
  st.q_scales = (const float *)upload_bytes(c, scales.data(), sizeof(float) * scales.size());
  if (pq_tensor_zeros(w)) st.q_zeros = (const uint8_t *)upload_bytes(c, pq_tensor_data(pq_tensor_zeros(w)), pq_tensor_nbytes(pq_tensor_zeros(w)));
  if (!st.q_codes || !st.q_scales || (pq_tensor_zeros(w) && !st.q_zeros)) NOMEM(pq_tensor_name(w));
  return PQ_OK;
}

/* Tensor train: cores [r_{k-1}, m_k, n_k, r_k] laid out once as C_k [(n_k r_k), (r_{k-1} m_k)] for the
 * GEMMs (as the CPU backend lays them out), and two work buffers for the largest batch. */
static PqStatus setup_tt(Cuda *c, Step &st, const PqNode *node, PqPluginError *err) {
  PqPlan *p = c->plan;
  int d = (int)pq_node_get_int(node, "cores", 0);
  if (d < 1 || d > 16) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "tt_linear '%s': %d cores (1..16)", pq_node_name(node), d);
    return PQ_ERR_INVALID;
  }
  st.tt_d = d;
  st.tt_r[0] = 1;
  st.tt_M = 1;
  int64_t nin = 1;
  for (int k = 0; k < d; k++) {
    if (pq_plan_value_kind(p, st.in[1 + k]) != PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "tt_linear '%s': cores must be model tensors", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    int cnd;
    const int64_t *cs = pq_plan_value_shape(p, st.in[1 + k], &cnd);
    st.tt_m[k] = cs[1];
    st.tt_n[k] = cs[2];
    st.tt_r[k + 1] = cs[3];
    st.tt_M *= cs[1];
    nin *= cs[2];
  }
  st.m_rows = c->values[st.in[0]].per_sample / nin;
  for (int k = 0; k < d; k++) {
    int64_t rp = st.tt_r[k], m = st.tt_m[k], n = st.tt_n[k], rn = st.tt_r[k + 1];
    std::vector<float> core = host_f32(pq_plan_value_tensor(p, st.in[1 + k])), lay((size_t)(n * rn * rp * m));
    for (int64_t a = 0; a < rp; a++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
          for (int64_t s2 = 0; s2 < rn; s2++) lay[(size_t)((j * rn + s2) * (rp * m) + a * m + i)] = core[(size_t)(((a * m + i) * n + j) * rn + s2)];
    st.tt_c[k] = (float *)upload_bytes(c, lay.data(), sizeof(float) * lay.size());
    if (!st.tt_c[k]) NOMEM(pq_node_name(node));
  }
  int64_t work = 0;
  for (int k = d - 1; k >= 0; k--) { /* step k: m_{k+1}…m_d · rows · n_1…n_{k-1} by the wider of its two sides */
    int64_t a = c->max_batch * st.m_rows;
    for (int t = k + 1; t < d; t++) a *= st.tt_m[t];
    for (int t = 0; t < k; t++) a *= st.tt_n[t];
    int64_t wide = st.tt_n[k] * st.tt_r[k + 1] > st.tt_r[k] * st.tt_m[k] ? st.tt_n[k] * st.tt_r[k + 1] : st.tt_r[k] * st.tt_m[k];
    if (a * wide > work) work = a * wide;
  }
  st.tt_bufr = (float *)dev_alloc(c, sizeof(float) * (size_t)work);
  st.tt_buft = (float *)dev_alloc(c, sizeof(float) * (size_t)work);
  if (!st.tt_bufr || !st.tt_buft) NOMEM(pq_node_name(node));
  st.tt_bias = st.in[1 + d];
  return st.tt_bias >= 0 ? upload_weight(c, st.tt_bias, err) : PQ_OK;
}

/* The two cuFFT plans of a circulant layer for `rows` input rows, on the backend's stream and work area. */
static PqStatus make_fft_plans(Cuda *c, Step &st, int64_t rows, FftPlans *out, size_t *work, PqPluginError *err) {
  int n = (int)st.cb;
  size_t wf = 0, wi = 0;
  FftPlans pl;
  pl.rows = rows;
  if (cufftCreate(&pl.fwd) != CUFFT_SUCCESS || cufftCreate(&pl.inv) != CUFFT_SUCCESS || cufftSetAutoAllocation(pl.fwd, 0) != CUFFT_SUCCESS ||
      cufftSetAutoAllocation(pl.inv, 0) != CUFFT_SUCCESS ||
      cufftMakePlanMany(pl.fwd, 1, &n, nullptr, 1, n, nullptr, 1, (int)st.cf, CUFFT_R2C, (int)(rows * st.cnb), &wf) != CUFFT_SUCCESS ||
      cufftMakePlanMany(pl.inv, 1, &n, nullptr, 1, (int)st.cf, nullptr, 1, n, CUFFT_C2R, (int)(rows * st.cmb), &wi) != CUFFT_SUCCESS ||
      cufftSetStream(pl.fwd, c->stream) != CUFFT_SUCCESS || cufftSetStream(pl.inv, c->stream) != CUFFT_SUCCESS) {
    if (pl.fwd) cufftDestroy(pl.fwd);
    if (pl.inv) cufftDestroy(pl.inv);
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cuFFT: cannot plan %lld transforms of %d points", (long long)(rows * st.cnb), n);
    return PQ_ERR_INTERNAL;
  }
  *work = wf > wi ? wf : wi;
  *out = pl;
  return PQ_OK;
}

/* Block circulant: the blocks' spectra, computed once on the device and scaled by 1/b (cuFFT's inverse is
 * unnormalised), buffers and plans for the largest batch. */
static PqStatus setup_circ(Cuda *c, Step &st, const PqNode *node, PqPluginError *err) {
  PqPlan *p = c->plan;
  if (pq_plan_value_kind(p, st.in[1]) != PQ_VALUE_WEIGHT) {
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "circulant_linear '%s': its blocks must be a model tensor", pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  int bnd;
  const int64_t *bs = pq_plan_value_shape(p, st.in[1], &bnd);
  st.k = pq_node_get_int(node, "in_features", 0);
  st.n = pq_node_get_int(node, "out_features", 0);
  st.m_rows = c->values[st.in[0]].per_sample / st.k;
  st.cmb = bs[0];
  st.cnb = bs[1];
  st.cb = bs[2];
  st.cf = st.cb / 2 + 1;
  int64_t rows = c->max_batch * st.m_rows, nw = st.cmb * st.cnb * st.cf;
  std::vector<float> blocks = host_f32(pq_plan_value_tensor(p, st.in[1]));
  float *tmp = nullptr;
  CHECK(cudaMalloc(&tmp, sizeof(float) * blocks.size()), "circulant blocks");
  st.cw = (cufftComplex *)dev_alloc(c, sizeof(cufftComplex) * (size_t)nw);
  cufftHandle plan = 0;
  int n = (int)st.cb;
  bool ok = st.cw && cudaMemcpy(tmp, blocks.data(), sizeof(float) * blocks.size(), cudaMemcpyHostToDevice) == cudaSuccess &&
            cufftPlanMany(&plan, 1, &n, nullptr, 1, n, nullptr, 1, (int)st.cf, CUFFT_R2C, (int)(st.cmb * st.cnb)) == CUFFT_SUCCESS &&
            cufftExecR2C(plan, tmp, st.cw) == CUFFT_SUCCESS;
  if (ok) k_scale_complex<<<blocks_for(nw), 256>>>(st.cw, nw, 1.0f / (float)st.cb);
  ok = ok && cudaDeviceSynchronize() == cudaSuccess;
  if (plan) cufftDestroy(plan);
  cudaFree(tmp);
  if (!ok) {
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "circulant_linear '%s': cannot transform its blocks on the device", pq_node_name(node));
    return PQ_ERR_INTERNAL;
  }
  c->weights_bytes += (int64_t)sizeof(cufftComplex) * nw;
  st.cxpad = (float *)dev_alloc(c, sizeof(float) * (size_t)(rows * st.cnb * st.cb));
  st.cx = (cufftComplex *)dev_alloc(c, sizeof(cufftComplex) * (size_t)(rows * st.cnb * st.cf));
  st.cacc = (cufftComplex *)dev_alloc(c, sizeof(cufftComplex) * (size_t)(rows * st.cmb * st.cf));
  st.cypad = (float *)dev_alloc(c, sizeof(float) * (size_t)(rows * st.cmb * st.cb));
  if (!st.cxpad || !st.cx || !st.cacc || !st.cypad) NOMEM(pq_node_name(node));
  int64_t top = 1; /* plans for top, top/2, ..., 1 rows: the run walks them largest first */
  while (top * 2 <= rows) top *= 2;
  for (int64_t r = top; r >= 1; r /= 2) {
    FftPlans pl;
    size_t work = 0;
    PqStatus rc = make_fft_plans(c, st, r, &pl, &work, err);
    if (rc != PQ_OK) return rc;
    st.plans.push_back(pl);
    if (work > c->fft_work_bytes) c->fft_work_bytes = work;
  }
  if (st.in[2] >= 0) return upload_weight(c, st.in[2], err);
  return PQ_OK;
}

/* CSR sparse: checked once (core's pq_sparse_check), values in float32, column indices widened to int32. */
static PqStatus setup_sparse(Cuda *c, Step &st, const PqNode *node, PqPluginError *err) {
  PqPlan *p = c->plan;
  for (int j = 1; j < 5; j++)
    if (st.in[j] >= 0 && pq_plan_value_kind(p, st.in[j]) != PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "sparse_linear '%s': its weight and bias must be model tensors", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
  PqTensor *vals = pq_plan_value_tensor(p, st.in[1]), *cols = pq_plan_value_tensor(p, st.in[2]), *rows = pq_plan_value_tensor(p, st.in[3]);
  if (pq_sparse_check(node, vals, cols, rows, err) != 0) return PQ_ERR_INVALID;
  st.k = pq_node_get_int(node, "in_features", 0);
  st.n = pq_node_get_int(node, "out_features", 0);
  st.m_rows = c->values[st.in[0]].per_sample / st.k;
  int64_t nnz = pq_tensor_numel(vals);
  std::vector<float> v = host_f32(vals);
  std::vector<int32_t> ci((size_t)(nnz ? nnz : 1));
  for (int64_t q = 0; q < nnz; q++)
    ci[(size_t)q] = pq_tensor_dtype(cols) == PQ_DTYPE_U16 ? ((const uint16_t *)pq_tensor_data(cols))[q] : ((const int32_t *)pq_tensor_data(cols))[q];
  st.sp_vals = (const float *)upload_bytes(c, v.data(), sizeof(float) * v.size());
  st.sp_cols = (const int32_t *)upload_bytes(c, ci.data(), sizeof(int32_t) * ci.size());
  st.sp_rows = (const int32_t *)upload_bytes(c, pq_tensor_data(rows), pq_tensor_nbytes(rows));
  if (!st.sp_vals || !st.sp_cols || !st.sp_rows) NOMEM(pq_node_name(node));
  return st.in[4] >= 0 ? upload_weight(c, st.in[4], err) : PQ_OK;
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
  if (pq_plan_value_kind(p, st.in[0]) == PQ_VALUE_WEIGHT && st.kind != K_CONCAT && /* concat may start with a model tensor, */
      !(st.kind == K_ADD && pq_plan_value_kind(p, st.in[1]) != PQ_VALUE_WEIGHT)) { /* a binary op too: c − x */
    pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "node '%s': the first input must be an activation, not a tensor", pq_node_name(node));
    return PQ_ERR_UNSUPPORTED;
  }
  if (st.kind == K_ACT) {
    st.act = (int)pq_activation_kind(pq_node_op(node));
    pq_activation_params(node, (PqActivation)st.act, &st.act_a, &st.act_b);
  }
  if (st.kind == K_TT) return setup_tt(c, st, node, err);
  if (st.kind == K_CIRC) return setup_circ(c, st, node, err);
  if (st.kind == K_SPARSE) return setup_sparse(c, st, node, err);
  int nd;
  const int64_t *xs = pq_plan_value_shape(p, st.in[0], &nd);
  bool packed = (st.kind == K_LINEAR || st.kind == K_CONV2D) && pq_plan_value_kind(p, st.in[1]) == PQ_VALUE_WEIGHT &&
                pq_tensor_dtype(pq_plan_value_tensor(p, st.in[1])) == PQ_DTYPE_PACKED;
  bool half = st.kind == K_LINEAR && !packed && c->math == MATH_FP16 && pq_plan_value_kind(p, st.in[1]) == PQ_VALUE_WEIGHT;
  if (packed) {
    if (st.kind == K_CONV2D && pq_node_get_int(node, "groups", 1) != 1) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "conv2d '%s': packed kernels run with groups = 1 only", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    PqStatus rc = setup_packed(c, st, node, err);
    if (rc != PQ_OK) return rc;
  } else if (half) {
    PqStatus rc = upload_weight_half(c, st.in[1], err);
    if (rc != PQ_OK) return rc;
  }
  for (int j = 0; j < 16; j++) {
    int v = st.in[j];
    if (v < 0 || pq_plan_value_kind(p, v) != PQ_VALUE_WEIGHT || (j == 1 && (packed || half))) continue;
    PqStatus rc = upload_weight(c, v, err);
    if (rc != PQ_OK) return rc;
  }
  switch (st.kind) {
  case K_LINEAR: {
    if (pq_plan_value_kind(p, st.in[1]) != PQ_VALUE_WEIGHT) {
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "linear '%s': weight and bias must be model tensors", pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    if (!packed) {
      int wnd;
      const int64_t *ws = pq_plan_value_shape(p, st.in[1], &wnd);
      st.n = ws[0];
      st.k = ws[1];
    }
    st.m_rows = c->values[st.in[0]].per_sample / st.k;
    if (half && (size_t)(c->max_batch * st.m_rows * st.k) > c->half_ws_elems) c->half_ws_elems = (size_t)(c->max_batch * st.m_rows * st.k);
    break;
  }
  case K_MATMUL: {
    int bnd;
    const int64_t *bs = pq_plan_value_shape(p, st.in[1], &bnd);
    bool weight = pq_plan_value_kind(p, st.in[1]) == PQ_VALUE_WEIGHT;
    if (weight ? bnd != 2 : bnd < 3) { /* an activation B has the batch first, then the same leading dimensions as A */
      pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED,
                          "matmul '%s': the CUDA backend multiplies by a 2-D model tensor, or by an activation with A's leading dimensions",
                          pq_node_name(node));
      return PQ_ERR_UNSUPPORTED;
    }
    st.k = bs[bnd - 2];
    st.n = bs[bnd - 1];
    if (weight) st.m_rows = c->values[st.in[0]].per_sample / st.k;
    else { /* batched: one [m, k] · [k, n] product per leading index */
      st.m_rows = xs[nd - 2];
      st.mm_slices = c->values[st.in[0]].per_sample / (st.m_rows * st.k);
    }
    break;
  }
  case K_CONV2D:
  case K_CONVT:
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
    if (st.kind == K_CONV2D || st.kind == K_CONVT) {
      if (pq_plan_value_kind(p, st.in[1]) != PQ_VALUE_WEIGHT) {
        pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "%s '%s': the kernel must be a model tensor", pq_node_op(node), pq_node_name(node));
        return PQ_ERR_UNSUPPORTED;
      }
      int wnd;
      const int64_t *ws = pq_plan_value_shape(p, st.in[1], &wnd);
      st.kh = ws[2];
      st.kw = ws[3];
      st.groups = pq_node_get_int(node, "groups", 1);
      size_t need = st.kind == K_CONV2D ? (size_t)((st.c / st.groups) * st.kh * st.kw * st.oh * st.ow)
                                        : (size_t)((st.oc / st.groups) * st.kh * st.kw * st.h * st.w); /* columns of one group */
      if (need > c->workspace_floats) c->workspace_floats = need;
    } else {
      v = pq_node_get_ints(node, "kernel", &cnt);
      st.kh = v[0];
      st.kw = v[1];
    }
    v = pq_node_get_ints(node, "strides", &cnt);
    st.sh = v ? v[0] : (st.kind == K_CONV2D || st.kind == K_CONVT ? 1 : st.kh);
    st.sw = v ? v[1] : (st.kind == K_CONV2D || st.kind == K_CONVT ? 1 : st.kw);
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
    std::vector<float> g = host_f32(pq_plan_value_tensor(p, st.in[1])), b = host_f32(pq_plan_value_tensor(p, st.in[2])),
                       mean = host_f32(pq_plan_value_tensor(p, st.in[3])), var = host_f32(pq_plan_value_tensor(p, st.in[4])), host(2 * ch);
    for (int64_t i = 0; i < ch; i++) {
      host[i] = (float)(g[i] / sqrt((double)var[i] + eps));
      host[ch + i] = b[i] - mean[i] * host[i];
    }
    st.bn = (float *)upload_bytes(c, host.data(), sizeof(float) * (size_t)(2 * ch));
    if (!st.bn) NOMEM(pq_node_name(node));
    st.c = ch;
    st.h = c->values[st.in[0]].per_sample / ch;
    break;
  }
  case K_PAD: {
    size_t np;
    const int64_t *pads = pq_node_get_ints(node, "pads", &np);
    st.c = xs[1], st.h = xs[2], st.w = xs[3], st.pt = pads[0], st.pl = pads[1];
    st.oh = xs[2] + pads[0] + pads[2], st.ow = xs[3] + pads[1] + pads[3];
    st.pad_value = (float)pq_node_get_float(node, "value", 0.0);
    break;
  }
  case K_CONCAT: {
    int64_t axis = pq_node_get_int(node, "axis", 1);
    if (axis < 0) axis += nd;
    for (int d = 1; d < axis; d++) st.cat_outer *= xs[d];
    st.rank = (int)pq_node_n_inputs(node);
    for (int j = 0; j < st.rank; j++) {
      int wnd;
      const int64_t *ws = pq_plan_value_shape(p, st.in[j], &wnd);
      if (pq_plan_value_kind(p, st.in[j]) == PQ_VALUE_WEIGHT) { /* a model tensor [1, …]: the same block for every sample */
        if (ws[0] != 1) {
          pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "concat '%s': a model tensor joins activations only with a first dimension of 1",
                              pq_node_name(node));
          return PQ_ERR_UNSUPPORTED;
        }
        st.cat_blk[j] = pq_tensor_numel(pq_plan_value_tensor(p, st.in[j])) / st.cat_outer;
        st.cat_const |= 1u << j;
      } else st.cat_blk[j] = c->values[st.in[j]].per_sample / st.cat_outer;
    }
    break;
  }
  case K_TRANSPOSE: {
    int ond;
    size_t np;
    const int64_t *os = pq_plan_value_shape(p, st.out, &ond), *perm = pq_node_get_ints(node, "perm", &np);
    int64_t ist[PQ_MAX_DIMS], m = 1;
    for (int d = nd - 1; d >= 0; d--) ist[d] = m, m *= d ? xs[d] : 1; /* per sample: dimension 0 is the batch */
    st.rank = ond;
    for (int d = 0; d < ond; d++) st.os.d[d] = os[d], st.tr_ist.d[d] = ist[perm[d]];
    break;
  }
  case K_SLICE: pq_slice_geometry(node, nd, xs, &st.slice); break;
  case K_RESIZE: pq_resize_params(node, xs[2], xs[3], &st.resize); break;
  case K_REDUCE:
    st.red = (int)pq_reduce_kind(pq_node_op(node));
    pq_reduce_geometry(nd, xs, pq_reduce_axes_of(node, nd), &st.red_geo);
    break;
  case K_LAYERNORM: {
    for (int j = 1; j < 3; j++)
      if (st.in[j] >= 0 && pq_plan_value_kind(p, st.in[j]) != PQ_VALUE_WEIGHT) {
        pq_plugin_error_set(err, PQ_ERR_UNSUPPORTED, "layer_norm '%s': its scale and bias must be model tensors", pq_node_name(node));
        return PQ_ERR_UNSUPPORTED;
      }
    int64_t axis = pq_node_get_int(node, "axis", -1);
    if (axis < 0) axis += nd;
    st.axis_len = 1;
    for (int d = (int)axis; d < nd; d++) st.axis_len *= xs[d];
    st.ln_eps = (float)pq_node_get_float(node, "epsilon", 1e-5);
    const char *which = pq_node_get_string(node, "output", "y");
    st.ln_out = !strcmp(which, "mean") ? 1 : !strcmp(which, "inv_std_dev") ? 2 : 0;
    break;
  }
  case K_SOFTMAX: {
    st.log_sm = !strcmp(pq_node_op(node), "log_softmax");
    int64_t axis = pq_node_get_int(node, "axis", -1);
    if (axis < 0) axis += nd;
    st.axis_len = xs[axis];
    st.axis_inner = 1;
    for (int d = (int)axis + 1; d < nd; d++) st.axis_inner *= xs[d];
    break;
  }
  case K_ADD: {
    st.bin = (int)pq_binary_kind(pq_node_op(node));
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

/* A relu that alone reads the output of the step just before it runs inside that step (as on the CPU): the
 * step's kernels clamp as they write, and the relu becomes an alias of its input, one launch fewer. */
static void fuse_relu(Cuda *c) {
  for (size_t s = 1; s < c->steps.size(); s++) {
    Step &st = c->steps[s], &prev = c->steps[s - 1];
    if (st.kind != K_RELU || st.in[0] != prev.out || pq_plan_value_n_uses(c->plan, prev.out) != 1) continue;
    if (prev.kind != K_LINEAR && prev.kind != K_CONV2D && prev.kind != K_CONVT && prev.kind != K_ADD && prev.kind != K_BATCHNORM && prev.kind != K_MATMUL &&
        prev.kind != K_CIRC && prev.kind != K_TT && prev.kind != K_SPARSE)
      continue;
    prev.relu = 1;
    st.kind = K_ALIAS;
  }
}

/* whether a packed layer of k inputs a row runs the 16-byte 8-bit kernel (packed8-launch.cuh) */
static bool packed8_x16(const Step &st, int64_t k) {
  return st.q_bits == 8 && st.q_per != PQ_QUANT_PER_GROUP && k % 16 == 0 && st.q_row_bytes % 16 == 0;
}

/* The 16-byte 8-bit kernel's variant for each layer that runs it. A fixed int8_kernel applies to every such
 * layer. With auto, each 8-bit linear layer of at least PQ8_TUNE_MIN_CODES codes has every variant launched on
 * its own buffers at a sample's rows and at the prepared batch's (up to PQ8_TUNE_MAX_ROWS samples), timed by
 * CUDA events (the fastest of three rounds of four launches, after one launch to warm up), and keeps the
 * fastest for runs of about that many rows; which is fastest depends on the card and the shape. The input
 * buffer is zeroed first (its values do not change the time; the outputs are overwritten by every run). */
static PqStatus choose_int8_kernels(Cuda *c, PqPluginError *err) {
  for (Step &st : c->steps) {
    if (!st.q_codes) continue;
    if (c->int8_kernel >= 0) {
      st.pq8[0] = st.pq8[1] = c->int8_kernel;
      continue;
    }
    if (st.kind != K_LINEAR || !packed8_x16(st, st.k) || st.n * st.k < PQ8_TUNE_MIN_CODES) continue;
    const float *b = st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr;
    float *x = c->values[st.in[0]].ptr, *y = c->values[st.out].ptr;
    const int64_t rows_at[2] = {st.m_rows, (c->max_batch < PQ8_TUNE_MAX_ROWS ? c->max_batch : PQ8_TUNE_MAX_ROWS) * st.m_rows};
    if (pq_plan_value_kind(c->plan, st.in[0]) != PQ_VALUE_WEIGHT)
      CHECK(cudaMemsetAsync(x, 0, sizeof(float) * (size_t)(rows_at[1] * st.k), c->stream), "int8 kernel timing");
    for (int i = 0; i < 2; i++) {
      st.pq8_rows[i] = rows_at[i];
      if (i == 1 && rows_at[1] == rows_at[0]) {
        st.pq8[1] = st.pq8[0];
        break;
      }
      float best = INFINITY;
      for (int v = 0; v < PQ8_N_VARIANTS; v++) {
        float t = INFINITY;
        for (int round = 0; round < 4; round++) { /* round 0 warms up, untimed */
          CHECK(cudaEventRecord(c->ev[0], c->stream), "int8 kernel timing");
          for (int l = 0; l < (round ? 4 : 1); l++)
            pq8_variants[v].launch(x, st.q_codes, st.q_scales, st.q_zeros, b, y, rows_at[i], st.n, st.k, st.q_row_bytes, st.q_per, st.relu, st.n, 1,
                                   st.q_act_scale, c->stream);
          CHECK(cudaGetLastError(), pq8_variants[v].what);
          CHECK(cudaEventRecord(c->ev[1], c->stream), "int8 kernel timing");
          CHECK(cudaEventSynchronize(c->ev[1]), pq8_variants[v].what);
          float ms = 0;
          CHECK(cudaEventElapsedTime(&ms, c->ev[0], c->ev[1]), "int8 kernel timing");
          if (round) t = fminf(t, ms);
        }
        if (t < best) {
          best = t;
          st.pq8[i] = v;
        }
      }
    }
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
  const char *math = pq_options_get_string(cfg->options, "math", "fp32");
  c->math = !strcmp(math, "tf32") ? MATH_TF32 : !strcmp(math, "fp16") ? MATH_FP16 : MATH_FP32;
  const char *graphs = pq_options_get_string(cfg->options, "graphs", "auto");
  c->graphs = !strcmp(graphs, "off") ? 0 : !strcmp(graphs, "on") ? 2 : 1;
  c->int8_kernel = pq8_variant_index(pq_options_get_string(cfg->options, "int8_kernel", "auto")); /* auto: -1 */
  const char *copies = pq_options_get_string(cfg->options, "copies", "auto");
  c->copies = !strcmp(copies, "engine") ? 1 : !strcmp(copies, "kernel") ? 2 : 0;
  bool events = true;
  for (cudaEvent_t &e : c->ev) events = events && cudaEventCreate(&e) == cudaSuccess;
  if (!events || cudaStreamCreate(&c->stream) != cudaSuccess || cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
    pq_plan_free(p1);
    cuda_release(c);
    pq_plugin_error_set(err, PQ_ERR_NOT_USABLE, "cannot start CUDA or cuBLAS");
    return PQ_ERR_NOT_USABLE;
  }
  cublasSetStream(c->blas, c->stream);
  /* tf32: float32 GEMMs on the tensor cores; fp16 keeps that for the GEMMs it does not hold in fp16 */
  if (c->math != MATH_FP32) cublasSetMathMode(c->blas, CUBLAS_TF32_TENSOR_OP_MATH);
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
  c->run_src.resize(c->inputs.size());
  c->run_dst.resize(c->outputs.size());
  c->captured.reserve(MAX_CAPTURED);
  for (size_t s = 0; s < ns; s++)
    if ((st = setup_step(c, (int)s, err)) != PQ_OK) {
      cuda_release(c);
      return st;
    }
  fuse_relu(c);
  /* every activation its own buffer, allocated now: a run allocates nothing */
  for (int v : c->inputs) c->values[v].ptr = (float *)dev_alloc(c, sizeof(float) * (size_t)(c->values[v].per_sample * c->max_batch));
  c->staged = true;
  for (int pass = 0; pass < 2; pass++)
    for (int v : pass ? c->outputs : c->inputs) {
      void *h = nullptr;
      if (cudaMallocHost(&h, sizeof(float) * (size_t)(c->values[v].per_sample * c->max_batch)) != cudaSuccess) h = nullptr;
      (pass ? c->pinned_out : c->pinned_in).push_back((float *)h);
      void *d = nullptr;
      if (h && cudaHostGetDevicePointer(&d, h, 0) != cudaSuccess) {
        cudaGetLastError();
        d = nullptr;
      }
      (pass ? c->pinned_out_dev : c->pinned_in_dev).push_back((float *)d);
      c->staged = c->staged && h;
    }
  for (size_t s = 0; s < ns; s++) {
    Step &stp = c->steps[s];
    Value &ov = c->values[stp.out];
    ov.ptr = stp.kind == K_ALIAS ? c->values[stp.in[0]].ptr : (float *)dev_alloc(c, sizeof(float) * (size_t)(ov.per_sample * c->max_batch));
  }
  if (c->workspace_floats) c->workspace = (float *)dev_alloc(c, sizeof(float) * c->workspace_floats);
  if (c->half_ws_elems) c->half_ws = (__half *)dev_alloc(c, sizeof(__half) * c->half_ws_elems);
  if (c->fft_work_bytes) c->fft_work = dev_alloc(c, c->fft_work_bytes);
  bool ok = (!c->workspace_floats || c->workspace) && (!c->half_ws_elems || c->half_ws) && (!c->fft_work_bytes || c->fft_work);
  /* every activation has its buffer (weights were checked as they were uploaded; packed, TT, circulant and
   * sparse ones live in their steps) */
  for (size_t v = 0; v < c->values.size(); v++) ok = ok && (c->values[v].ptr || pq_plan_value_kind(c->plan, (int)v) == PQ_VALUE_WEIGHT);
  if (!ok) {
    cuda_release(c);
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "out of device memory");
    return PQ_ERR_NOMEM;
  }
  for (Step &stp : c->steps)
    for (FftPlans &pl : stp.plans)
      if (cufftSetWorkArea(pl.fwd, c->fft_work) != CUFFT_SUCCESS || cufftSetWorkArea(pl.inv, c->fft_work) != CUFFT_SUCCESS) {
        cuda_release(c);
        pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cuFFT: cannot set the work area");
        return PQ_ERR_INTERNAL;
      }
  if ((st = choose_int8_kernels(c, err)) != PQ_OK) {
    cuda_release(c);
    return st;
  }
  *handle = c;
  return PQ_OK;
}

/* ---- run ----------------------------------------------------------------------------------------- */

/* A layer with packed weights: rows × n outputs, y[r·ys_r + o·ys_o], by the fastest kernel its codes allow —
 * 8-bit codes with a scale per row and k % 16 == 0 (rows of x 64-byte aligned then), k % 4 == 0, or any. */
static void packed_linear(const Step &st, const float *x, const float *b, float *y, int64_t rows, int64_t n, int64_t k, int64_t ys_r, int64_t ys_o,
                          cudaStream_t s) {
  const bool per_row8 = st.q_bits == 8 && st.q_per != PQ_QUANT_PER_GROUP;
  if (packed8_x16(st, k))
    pq8_variants[st.pq8[rows * rows > st.pq8_rows[0] * st.pq8_rows[1]]].launch(x, st.q_codes, st.q_scales, st.q_zeros, b, y, rows, n, k,
                                                                               st.q_row_bytes, st.q_per, st.relu, ys_r, ys_o, st.q_act_scale, s);
  else if (per_row8 && k % 4 == 0 && st.q_row_bytes % 4 == 0)
    k_packed_linear8<<<blocks_for(rows * n * 32), 256, 0, s>>>(x, st.q_codes, st.q_scales, st.q_zeros, b, y, rows, n, k, st.q_row_bytes, st.q_per,
                                                              st.relu, ys_r, ys_o, st.q_act_scale);
  else
    k_packed_linear<<<blocks_for(rows * n * 32), 256, 0, s>>>(x, st.q_codes, st.q_scales, st.q_zeros, b, y, rows, n, k, st.q_row_bytes, st.q_bits,
                                                             st.q_per, st.q_group, st.q_groups_per_row, st.relu, ys_r, ys_o, st.q_act_scale);
}

/* One of a run's copies of n floats between host and device memory: by a kernel where `mapped` (the
 * page-locked buffer as the device addresses it) is known and the copies option takes a kernel for this
 * size, else by a copy engine. */
static PqStatus copy_async(Cuda *c, float *dst, const float *src, int64_t n, const float *mapped, bool to_device, PqPluginError *err) {
  const size_t bytes = sizeof(float) * (size_t)n;
  if (n > 0 && mapped && (c->copies == 2 || (c->copies == 0 && bytes <= COPY_KERNEL_MAX))) {
    const float *from = to_device ? mapped : src;
    float *to = to_device ? dst : (float *)mapped;
    const int vec = (((uintptr_t)from | (uintptr_t)to) & 15) == 0;
    const int64_t threads = vec ? std::max(n / 4, n % 4) : n;
    k_copy_f32<<<blocks_for(threads), 256, 0, c->stream>>>(to, from, n, vec);
    CHECK(cudaGetLastError(), to_device ? "input copy" : "output copy");
    return PQ_OK;
  }
  CHECK(cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, c->stream), to_device ? "input copy" : "output copy");
  return PQ_OK;
}

/* Record timing event i where the run is timed */
#define MARK(i)                                                                                                    \
  do {                                                                                                             \
    if (events) CHECK(cudaEventRecordWithFlags(c->ev[i], c->stream, ev_flags), "timing");                         \
  } while (0)

/* The work of a run of `batch` rows on the stream: the inputs' copies from `src`, the steps, the outputs' copies
 * to `dst`, and with `events` four events between them. Eager, or into a graph being captured (the events then
 * become the graph's own event-record nodes). */
static PqStatus enqueue(Cuda *c, int64_t batch, const void *const *src, void *const *dst, bool capturing, bool events, PqPluginError *err) {
  const unsigned ev_flags = capturing ? cudaEventRecordExternal : cudaEventRecordDefault;
  MARK(0);
  for (size_t i = 0; i < c->inputs.size(); i++) {
    const Value &v = c->values[c->inputs[i]];
    PqStatus st = copy_async(c, v.ptr, (const float *)src[i], v.per_sample * batch, src[i] == c->pinned_in[i] ? c->pinned_in_dev[i] : nullptr, true, err);
    if (st != PQ_OK) return st;
  }
  const float one = 1.0f, zero = 0.0f;
  cudaStream_t s = c->stream;
  MARK(1);
  for (Step &st : c->steps) {
    float *y = c->values[st.out].ptr;
    const float *x = c->values[st.in[0]].ptr;
    int64_t total = c->values[st.out].per_sample * batch;
    switch (st.kind) {
    case K_LINEAR: {
      int64_t rows = batch * st.m_rows;
      const float *b = st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr;
      if (st.q_codes) {
        packed_linear(st, x, b, y, rows, st.n, st.k, st.n, 1, s);
        break;
      }
      if (c->values[st.in[1]].hptr) { /* fp16 weights and inputs, float32 accumulation and output */
        k_to_half<<<blocks_for(rows * st.k), 256, 0, s>>>(x, c->half_ws, rows * st.k);
        if (cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)st.n, (int)rows, (int)st.k, &one, c->values[st.in[1]].hptr, CUDA_R_16F, (int)st.k,
                         c->half_ws, CUDA_R_16F, (int)st.k, &zero, y, CUDA_R_32F, (int)st.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) !=
            CUBLAS_STATUS_SUCCESS) {
          pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cuBLAS: fp16 GEMM failed");
          return PQ_ERR_INTERNAL;
        }
        if (b || st.relu) k_bias_relu<<<blocks_for(rows * st.n), 256, 0, s>>>(y, b, rows, st.n, st.relu);
        break;
      }
      /* row-major y [rows, n] = x W^T is column-major y^T = W x^T */
      BLAS(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)st.n, (int)rows, (int)st.k, &one, c->values[st.in[1]].ptr, (int)st.k, x, (int)st.k,
                  &zero, y, (int)st.n), "GEMM");
      if (b || st.relu) k_bias_relu<<<blocks_for(rows * st.n), 256, 0, s>>>(y, b, rows, st.n, st.relu);
      break;
    }
    case K_MATMUL: {
      if (st.mm_slices) { /* two activations: one strided batch of [m, k] · [k, n] products (column-major Cᵀ = Bᵀ Aᵀ) */
        int64_t m = st.m_rows, k = st.k, n = st.n, count = batch * st.mm_slices;
        BLAS(cublasSgemmStridedBatched(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, c->values[st.in[1]].ptr, (int)n, k * n, x,
                                       (int)k, m * k, &zero, y, (int)n, m * n, (int)count), "batched GEMM");
        if (st.relu) k_bias_relu<<<blocks_for(count * m * n), 256, 0, s>>>(y, nullptr, count * m, n, 1);
        break;
      }
      int64_t rows = batch * st.m_rows;
      BLAS(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)st.n, (int)rows, (int)st.k, &one, c->values[st.in[1]].ptr, (int)st.n, x, (int)st.k,
                  &zero, y, (int)st.n), "GEMM");
      if (st.relu) k_bias_relu<<<blocks_for(rows * st.n), 256, 0, s>>>(y, nullptr, rows, st.n, 1);
      break;
    }
    case K_ADD: {
      Shape8 as = st.as, bs = st.bs, os = st.os;
      os.d[0] = batch;
      if (!c->values[st.in[0]].weight && as.d[0] != 1) as.d[0] = batch;
      if (!c->values[st.in[1]].weight && bs.d[0] != 1) bs.d[0] = batch;
      k_add<<<blocks_for(total), 256, 0, s>>>(x, c->values[st.in[1]].ptr, y, st.rank, as, bs, os, total, st.relu, st.bin);
      break;
    }
    case K_RELU: k_relu<<<blocks_for(total), 256, 0, s>>>(x, y, total); break;
    case K_RESIZE: k_resize<<<blocks_for(total), 256, 0, s>>>(x, y, total, st.resize); break;
    case K_SLICE:
      k_slice<<<blocks_for(total), 256, 0, s>>>(x, y, total, c->values[st.in[0]].per_sample, c->values[st.out].per_sample, st.slice);
      break;
    case K_REDUCE:
      k_reduce<<<blocks_for(total), 256, 0, s>>>(x, y, total, c->values[st.in[0]].per_sample, c->values[st.out].per_sample, st.red, st.red_geo);
      break;
    case K_LAYERNORM: {
      int64_t rows = st.ln_out ? total : total / st.axis_len;
      k_layer_norm<<<blocks_for(rows * 32), 256, 0, s>>>(x, st.in[1] >= 0 ? c->values[st.in[1]].ptr : nullptr,
                                                        st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr, y, rows, st.axis_len, st.ln_eps,
                                                        st.ln_out);
      break;
    }
    case K_ACT: k_activation<<<blocks_for(total), 256, 0, s>>>(x, y, total, st.act, st.act_a, st.act_b); break;
    case K_SOFTMAX: {
      int64_t outer = total / (st.axis_len * st.axis_inner);
      k_softmax<<<blocks_for(outer * st.axis_inner), 256, 0, s>>>(x, y, outer, st.axis_len, st.axis_inner, st.log_sm);
      break;
    }
    case K_CONV2D: {
      int64_t cg = st.c / st.groups, ocg = st.oc / st.groups, ohw = st.oh * st.ow, kk = cg * st.kh * st.kw;
      const float *b = st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr;
      if (st.q_codes) { /* packed kernel: im2col by position, then the packed-linear kernel writing [oc, positions] */
        for (int64_t n = 0; n < batch; n++) {
          k_im2col<<<blocks_for(kk * ohw), 256, 0, s>>>(x + n * st.c * st.h * st.w, c->workspace, st.c, st.h, st.w, st.kh, st.kw, st.oh, st.ow,
                                                        st.sh, st.sw, st.dh, st.dw, st.pt, st.pl, 1);
          packed_linear(st, c->workspace, b, y + n * st.oc * ohw, ohw, st.oc, kk, 1, ohw, s);
        }
        break;
      }
      const float *w = c->values[st.in[1]].ptr;
      if (cg == 1 && st.groups > 1) { /* depthwise: one kernel for the whole batch */
        k_conv_depthwise<<<blocks_for(total), 256, 0, s>>>(x, w, b, y, total, st.c, st.oc, st.h, st.w, st.oh, st.ow, st.kh, st.kw, st.sh, st.sw,
                                                          st.dh, st.dw, st.pt, st.pl, st.relu);
        break;
      }
      for (int64_t n = 0; n < batch; n++)
        for (int64_t g = 0; g < st.groups; g++) {
          const float *xg = x + (n * st.c + g * cg) * st.h * st.w;
          k_im2col<<<blocks_for(kk * ohw), 256, 0, s>>>(xg, c->workspace, cg, st.h, st.w, st.kh, st.kw, st.oh, st.ow, st.sh, st.sw, st.dh, st.dw,
                                                    st.pt, st.pl, 0);
          /* row-major yg [ocg, ohw] = W_g [ocg, kk] · col [kk, ohw]: column-major yg^T = col^T W_g^T */
          BLAS(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)ohw, (int)ocg, (int)kk, &one, c->workspace, (int)ohw, w + g * ocg * kk, (int)kk,
                      &zero, y + (n * st.oc + g * ocg) * ohw, (int)ohw), "GEMM");
        }
      if (b || st.relu) k_bias_channels<<<blocks_for(total), 256, 0, s>>>(y, b, st.oc, ohw, total, st.relu);
      break;
    }
    case K_CONVT: {
      int64_t cg = st.c / st.groups, ocg = st.oc / st.groups, hw = st.h * st.w, kk = ocg * st.kh * st.kw, ohw = st.oh * st.ow;
      const float *w = c->values[st.in[1]].ptr, *b = st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr;
      for (int64_t n = 0; n < batch; n++)
        for (int64_t g = 0; g < st.groups; g++) {
          /* row-major col [kk, hw] = W_g [cg, kk]ᵀ · x_g [cg, hw]: column-major colᵀ = x_gᵀ · W_g */
          BLAS(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)hw, (int)kk, (int)cg, &one, x + (n * st.c + g * cg) * hw, (int)hw,
                           w + g * cg * kk, (int)kk, &zero, c->workspace, (int)hw), "GEMM");
          k_col2im_bias<<<blocks_for(ocg * ohw), 256, 0, s>>>(c->workspace, b ? b + g * ocg : nullptr, y + (n * st.oc + g * ocg) * ohw, ocg, st.oh,
                                                             st.ow, st.h, st.w, st.kh, st.kw, st.sh, st.sw, st.dh, st.dw, st.pt, st.pl, st.relu);
        }
      break;
    }
    case K_MAXPOOL:
    case K_AVGPOOL:
      k_pool<<<blocks_for(batch * st.c * st.oh * st.ow), 256, 0, s>>>(x, y, batch * st.c, st.h, st.w, st.oh, st.ow, st.kh, st.kw, st.sh, st.sw, st.dh,
                                                                 st.dw, st.pt, st.pl, st.kind == K_MAXPOOL, st.count_include_pad);
      break;
    case K_GAP: k_gap<<<blocks_for(batch * st.c), 256, 0, s>>>(x, y, batch * st.c, st.h); break;
    case K_BATCHNORM: k_batchnorm<<<blocks_for(total), 256, 0, s>>>(x, y, st.bn, st.c, st.h, total, st.relu); break;
    case K_ALIAS: break;
    case K_PAD:
      k_pad<<<blocks_for(total), 256, 0, s>>>(x, y, batch * st.c, st.h, st.w, st.oh, st.ow, st.pt, st.pl, st.pad_value);
      break;
    case K_CONCAT: {
      int64_t rows = batch * st.cat_outer, blk_out = c->values[st.out].per_sample / st.cat_outer, off = 0;
      for (int j = 0; j < st.rank; j++) {
        k_concat<<<blocks_for(rows * st.cat_blk[j]), 256, 0, s>>>(c->values[st.in[j]].ptr, y, rows, st.cat_blk[j], blk_out, off,
                                                                  (st.cat_const >> j & 1u) ? st.cat_outer : 0);
        off += st.cat_blk[j];
      }
      break;
    }
    case K_TRANSPOSE:
      k_transpose<<<blocks_for(total), 256, 0, s>>>(x, y, st.rank, st.os, st.tr_ist, c->values[st.out].per_sample, total);
      break;
    case K_SPARSE: {
      int64_t rows = batch * st.m_rows;
      k_sparse_linear<<<blocks_for(rows * st.n * 32), 256, 0, s>>>(x, st.sp_vals, st.sp_cols, st.sp_rows,
                                                                   st.in[4] >= 0 ? c->values[st.in[4]].ptr : nullptr, y, rows, st.n, st.k, st.relu);
      break;
    }
    case K_TT: {
      int64_t rows = batch * st.m_rows;
      const float *cur = x;
      for (int k = st.tt_d - 1; k >= 0; k--) {
        int64_t a = rows, rp = st.tt_r[k], m = st.tt_m[k], kk = st.tt_n[k] * st.tt_r[k + 1];
        for (int t = k + 1; t < st.tt_d; t++) a *= st.tt_m[t];
        for (int t = 0; t < k; t++) a *= st.tt_n[t];
        /* row-major bufr [a, rp·m] = cur [a, kk] · C_k [kk, rp·m]: column-major bufr^T = C_k^T cur^T */
        BLAS(cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)(rp * m), (int)a, (int)kk, &one, st.tt_c[k], (int)(rp * m), cur, (int)kk, &zero,
                    st.tt_bufr, (int)(rp * m)), "GEMM");
        k_tt_transpose<<<blocks_for(a * rp * m), 256, 0, s>>>(st.tt_bufr, st.tt_buft, a, rp, m);
        cur = st.tt_buft;
      }
      k_tt_out<<<blocks_for(rows * st.tt_M), 256, 0, s>>>(cur, st.tt_bias >= 0 ? c->values[st.tt_bias].ptr : nullptr, y, rows, st.tt_M, st.relu);
      break;
    }
    case K_CIRC: {
      int64_t rows = batch * st.m_rows, padded = st.cnb * st.cb;
      k_circ_pad<<<blocks_for(rows * padded), 256, 0, s>>>(x, st.cxpad, rows, st.k, padded);
      for (int64_t r0 = 0; r0 < rows;) /* power-of-two chunks, largest first (plans[] runs from the largest down) */
        for (const FftPlans &pl : st.plans)
          while (pl.rows <= rows - r0) {
            if (cufftExecR2C(pl.fwd, st.cxpad + r0 * padded, st.cx + r0 * st.cnb * st.cf) != CUFFT_SUCCESS) {
              pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cuFFT: forward transform failed");
              return PQ_ERR_INTERNAL;
            }
            r0 += pl.rows;
          }
      k_circ_mac<<<blocks_for(rows * st.cmb * st.cf), 256, 0, s>>>(st.cw, st.cx, st.cacc, rows, st.cmb, st.cnb, st.cf);
      for (int64_t r0 = 0; r0 < rows;)
        for (const FftPlans &pl : st.plans)
          while (pl.rows <= rows - r0) {
            if (cufftExecC2R(pl.inv, st.cacc + r0 * st.cmb * st.cf, st.cypad + r0 * st.cmb * st.cb) != CUFFT_SUCCESS) {
              pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cuFFT: inverse transform failed");
              return PQ_ERR_INTERNAL;
            }
            r0 += pl.rows;
          }
      k_circ_out<<<blocks_for(rows * st.n), 256, 0, s>>>(st.cypad, st.in[2] >= 0 ? c->values[st.in[2]].ptr : nullptr, y, rows, st.n,
                                                         st.cmb * st.cb, st.relu);
      break;
    }
    }
  }
  MARK(2);
  for (size_t i = 0; i < c->outputs.size(); i++) {
    const Value &v = c->values[c->outputs[i]];
    PqStatus st = copy_async(c, (float *)dst[i], v.ptr, v.per_sample * batch, dst[i] == c->pinned_out[i] ? c->pinned_out_dev[i] : nullptr, false, err);
    if (st != PQ_OK) return st;
  }
  MARK(3);
  return PQ_OK;
}
#undef MARK

/* The graph of a run of `batch` rows copying from `src` and to `dst` (the page-locked buffers: fixed for every
 * later replay), captured now; nullptr where capture failed (why in err). The stream is left as it was. */
static cudaGraphExec_t capture(Cuda *c, int64_t batch, const void *const *src, void *const *dst, bool events, PqPluginError *err) {
  cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    cudaGetLastError();
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "CUDA graph capture: %s", cudaGetErrorString(e));
    return nullptr;
  }
  PqStatus st = enqueue(c, batch, src, dst, true, events, err);
  cudaGraph_t graph = nullptr;
  e = cudaStreamEndCapture(c->stream, &graph);
  cudaGraphExec_t exec = nullptr;
  if (st == PQ_OK && e == cudaSuccess && graph) e = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (st == PQ_OK && (e != cudaSuccess || !exec)) {
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "CUDA graph capture: %s", cudaGetErrorString(e != cudaSuccess ? e : cudaErrorUnknown));
    exec = nullptr;
  }
  cudaGetLastError(); /* a capture's failure is not the next run's */
  return exec;
}

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
  c->timed = false;
  const bool events = c->timing_asked; /* timed where asked for since the last run */
  std::vector<const void *> &src = c->run_src;
  std::vector<void *> &dst = c->run_dst;
  for (size_t i = 0; i < n_inputs; i++) {
    const Value &v = c->values[c->inputs[i]];
    bool ok = inputs[i].dtype == PQ_DTYPE_F32 && inputs[i].ndim == v.ndim && inputs[i].shape[0] == batch && inputs[i].data;
    for (int d = 1; ok && d < v.ndim; d++) ok = inputs[i].shape[d] == v.shape[d];
    if (!ok) {
      pq_plugin_error_set(err, PQ_ERR_INVALID, "input %zu: expected float32 of the graph input's shape with batch %lld", i, (long long)batch);
      return PQ_ERR_INVALID;
    }
    src[i] = inputs[i].data;
    if (c->pinned_in[i]) { /* (the stream is idle here: the last run synchronized before it returned) */
      memcpy(c->pinned_in[i], inputs[i].data, sizeof(float) * (size_t)(v.per_sample * batch));
      src[i] = c->pinned_in[i];
    }
  }
  for (size_t i = 0; i < n_outputs; i++) dst[i] = c->pinned_out[i] ? (void *)c->pinned_out[i] : outputs[i].data;
  cudaGraphExec_t exec = nullptr;
  Cuda::Captured *slot = nullptr;
  if (c->graphs && c->staged) {
    for (Cuda::Captured &g : c->captured)
      if (g.batch == batch) slot = &g;
    if (!slot && c->captured.size() < MAX_CAPTURED) c->captured.push_back({batch, {nullptr, nullptr}}); /* the first run of this size: eager */
    else if (slot && !slot->exec[events]) {
      PqPluginError why = {sizeof why, 0, {0}};
      slot->exec[events] = capture(c, batch, src.data(), dst.data(), events, c->graphs == 2 ? err : &why);
      if (!slot->exec[events]) {
        if (c->graphs == 2) return PQ_ERR_INTERNAL;
        c->graphs = 0; /* auto: this model's runs stay eager */
      }
    }
    if (slot) exec = slot->exec[events];
  } else if (c->graphs == 2 && !c->staged) {
    pq_plugin_error_set(err, PQ_ERR_NOMEM, "graphs: no page-locked host memory for the copies");
    return PQ_ERR_NOMEM;
  }
  cudaStream_t s = c->stream;
  if (exec) {
    cudaError_t e = cudaGraphLaunch(exec, s);
    if (e != cudaSuccess && c->graphs == 2) CHECK(e, "graph launch");
    if (e != cudaSuccess) { /* auto: this model's runs go on without graphs */
      cudaGetLastError();
      c->graphs = 0;
      exec = nullptr;
    }
  }
  if (!exec) {
    PqStatus st = enqueue(c, batch, src.data(), dst.data(), false, events, err);
    if (st != PQ_OK) return st;
  }
  CHECK(cudaStreamSynchronize(s), "run");
  for (size_t i = 0; i < n_outputs; i++)
    if (c->pinned_out[i]) memcpy(outputs[i].data, c->pinned_out[i], sizeof(float) * (size_t)(c->values[c->outputs[i]].per_sample * batch));
  CHECK(cudaGetLastError(), "kernel");
  c->timed = true; /* (the events are read when the timing is asked for: a run that nobody times does not wait on them) */
  c->evented = events;
  c->timing_asked = false;
  return PQ_OK;
}

/* CUDA events: the device's own clock, so host scheduling and launch gaps before the first copy stay out. */
static PqStatus cuda_last_run_timing(void *handle, PqRunTiming *out, PqPluginError *err) {
  Cuda *c = (Cuda *)handle;
  if (!c->timed) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "no run to time yet");
    return PQ_ERR_INVALID;
  }
  c->timing_asked = true; /* the next run records its events */
  if (!c->evented) { /* nobody asked for this run's timing before it ran: it recorded none */
    out->copy_in_ms = out->compute_ms = out->copy_out_ms = out->total_ms = -1;
    return PQ_OK;
  }
  for (int i = 0; i < 3; i++) CHECK(cudaEventElapsedTime(&c->last_ms[i], c->ev[i], c->ev[i + 1]), "timing");
  out->copy_in_ms = c->last_ms[0];
  out->compute_ms = c->last_ms[1];
  out->copy_out_ms = c->last_ms[2];
  out->total_ms = (double)c->last_ms[0] + c->last_ms[1] + c->last_ms[2];
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
    sizeof(PqBackendVTable), cuda_supports_op, cuda_prepare, cuda_run, cuda_release, cuda_memory, cuda_last_run_timing, {nullptr},
};

static const PqPluginDesc cuda_desc = {
    sizeof(PqPluginDesc), PQ_ABI_MAJOR, PQ_ABI_MINOR, PQ_KIND_BACKEND, 0, "cuda", "0.2.0",
    "inference on an NVIDIA GPU (cuBLAS fp32/TF32/fp16, cuFFT; packed weights dequantized in-kernel; CUDA-event timing)",
    "{\"math\": {\"type\": \"string\", \"enum\": [\"fp32\", \"tf32\", \"fp16\"], \"default\": \"fp32\","
    " \"description\": \"GEMM precision: fp32; tf32 (tensor cores); fp16 (linear weights held in fp16, float32 accumulation; tf32 elsewhere)\"},"
    " \"graphs\": {\"type\": \"string\", \"enum\": [\"auto\", \"on\", \"off\"], \"default\": \"auto\","
    " \"description\": \"CUDA graphs: a run's copies and kernels captured at the second run of each batch size and replayed in one launch;"
    " auto falls back to plain launches where capture fails, on makes that an error, off never captures\"},"
    " \"int8_kernel\": {\"type\": \"string\", \"enum\": [\"auto\"" PQ8_ENUM_ITEMS "],"
    " \"default\": \"auto\", \"description\": \"8-bit linear layers with a scale a row and inputs a multiple of 16: rN takes N outputs a warp,"
    " -cached reads the codes through the caches instead of evict-first; auto times each at prepare on layers of 1M codes or more"
    " and keeps the fastest (r2 on smaller ones)\"},"
    " \"copies\": {\"type\": \"string\", \"enum\": [\"auto\", \"engine\", \"kernel\"], \"default\": \"auto\","
    " \"description\": \"a run's input and output copies: engine by a copy engine (cudaMemcpyAsync); kernel by a kernel reading or"
    " writing the page-locked buffers mapped for the device; auto a kernel for copies of up to 256 KB, an engine for larger ones\"}}",
    &cuda_vtable, cuda_usable_here, {nullptr},
};

extern "C" PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &cuda_desc; }
