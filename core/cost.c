/* cost.c — MACs and FLOPs per sample from the real shapes of every op, compressed forms included. */
#include "pq-private.h"

#include <pquant/pq-activation.h>

#include <math.h>
#include <string.h>

int pq_model_cost(const PqModel *model, PqCost *cost, PqPluginError *error) {
  g_autoptr(GError) err = NULL;
  g_autoptr(PqPlan) plan = pq_model_plan(model, 1, &err);
  if (!plan) {
    pq_plugin_error_set(error, PQ_ERR_INVALID, "%s", err->message);
    return -1;
  }
  int64_t macs = 0, flops = 0;
  int estimated = 0;
  for (size_t s = 0; s < pq_plan_n_steps(plan); s++) {
    const PqNode *n = pq_plan_step(plan, s);
    const char *op = n->op;
    int xnd;
    int out = pq_plan_step_output(plan, s, 0), x = pq_plan_step_input(plan, s, 0);
    const int64_t *xs = pq_plan_value_shape(plan, x, &xnd);
    int64_t out_numel = pq_plan_value_numel(plan, out), in_numel = pq_plan_value_numel(plan, x);
    int has_bias = pq_layer_bias(n)[0] != 0;
    int64_t m = 0, add = 0; /* multiply-accumulates; other flops */
    if (!strcmp(op, "linear")) {
      m = out_numel * xs[xnd - 1];
      add = has_bias ? out_numel : 0;
    } else if (!strcmp(op, "matmul")) {
      m = out_numel * xs[xnd - 1];
    } else if (!strcmp(op, "conv2d")) {
      int wnd;
      const int64_t *ws = pq_plan_value_shape(plan, pq_plan_step_input(plan, s, 1), &wnd);
      m = out_numel * ws[1] * ws[2] * ws[3]; /* OC·OH·OW · (C/groups)·kh·kw */
      add = has_bias ? out_numel : 0;
    } else if (!strcmp(op, "conv_transpose2d")) {
      int wnd;
      const int64_t *ws = pq_plan_value_shape(plan, pq_plan_step_input(plan, s, 1), &wnd);
      m = in_numel * ws[1] * ws[2] * ws[3]; /* every input value times its (O/groups)·kh·kw kernel taps */
      add = has_bias ? out_numel : 0;
    } else if (!strcmp(op, "sparse_linear")) {
      int64_t rows = in_numel / xs[xnd - 1];
      m = rows * pq_plan_value_numel(plan, pq_plan_step_input(plan, s, 1));
      add = has_bias ? out_numel : 0;
    } else if (!strcmp(op, "tt_linear")) {
      int64_t d = pq_node_get_int(n, "cores", 0), rows = in_numel / xs[xnd - 1];
      const int64_t *g[16];
      for (int64_t k = 0; k < d; k++) {
        int gnd;
        g[k] = pq_plan_value_shape(plan, pq_plan_step_input(plan, s, (size_t)(1 + k)), &gnd);
      }
      for (int64_t k = d - 1; k >= 0; k--) { /* step k: A_k rows × (n_k r_k) × (r_{k-1} m_k) */
        int64_t a = rows;
        for (int64_t t = k + 1; t < d; t++) a *= g[t][1];
        for (int64_t t = 0; t < k; t++) a *= g[t][2];
        m += a * g[k][2] * g[k][3] * g[k][0] * g[k][1];
      }
      add = has_bias ? out_numel : 0;
    } else if (!strcmp(op, "circulant_linear")) {
      int bnd;
      const int64_t *bs = pq_plan_value_shape(plan, pq_plan_step_input(plan, s, 1), &bnd);
      int64_t rows = in_numel / xs[xnd - 1], b = bs[2], f = b / 2 + 1;
      m = rows * bs[0] * bs[1] * f * 4; /* complex multiply-accumulate in the frequency domain */
      /* a real FFT of size b: ~2.5 b log2 b flops (an estimate) for each input and output block */
      add = rows * (int64_t)llround(2.5 * (double)b * log2((double)b)) * (bs[0] + bs[1]) + (has_bias ? out_numel : 0);
      estimated = 1;
    } else if (pq_binary_kind(op) != PQ_BIN_NONE || !strcmp(op, "relu") || !strcmp(op, "global_avg_pool")) {
      add = !strcmp(op, "global_avg_pool") ? in_numel : out_numel;
    } else if (pq_activation_kind(op) != PQ_ACT_NONE) {
      /* counted as one flop an element; exp, tanh and erf cost more, so the total is an estimate */
      add = out_numel;
      estimated = 1;
    } else if (!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) {
      add = 4 * out_numel; /* max, exp, sum, divide per element */
    } else if (pq_reduce_kind(op) != PQ_RED_NONE) {
      /* one step an input element (an add, a compare, a multiply; a square and an add for l2 and sum_square;
         a compare, a subtract, an exp and an add for log_sum_exp), then mean's one division an output; a
         root, log or exp counted as one flop makes it an estimate */
      PqReduce k = pq_reduce_kind(op);
      add = in_numel * (k == PQ_RED_LOG_SUM_EXP ? 4 : k == PQ_RED_L2 || k == PQ_RED_SUM_SQUARE ? 2 : 1) + (k == PQ_RED_MEAN ? out_numel : 0);
      if (k == PQ_RED_L2 || k == PQ_RED_LOG_SUM || k == PQ_RED_LOG_SUM_EXP) estimated = 1;
    } else if (!strcmp(op, "resize2d")) {
      /* a multiply-add per tap: 1 (nearest), 4 (linear), 16 (cubic) an output value */
      const char *mode = pq_node_get_string(n, "mode", "nearest");
      m = !strcmp(mode, "nearest") ? 0 : out_numel * (!strcmp(mode, "linear") ? 4 : 16);
    } else if (!strcmp(op, "layer_norm")) {
      /* per element: two multiply-adds (the variance's d·d + Σ, then y·scale + bias) and four more (the mean's
         Σ, x − mean twice, × 1/σ); a row's division and square root are not counted: an estimate */
      m = 2 * out_numel;
      add = 4 * out_numel;
      estimated = 1;
    } else if (!strcmp(op, "batch_norm")) {
      m = out_numel; /* folded: one multiply-add per element */
    } else if (!strcmp(op, "maxpool2d") || !strcmp(op, "avgpool2d")) {
      size_t kn;
      const int64_t *k = pq_node_get_ints(n, "kernel", &kn);
      add = out_numel * (k ? k[0] * k[1] : 1);
    } else if (!pq_op_is_builtin(op)) {
      estimated = 1; /* an op a plugin declared: pquant cannot count its arithmetic */
    } /* flatten, reshape: no arithmetic */
    macs += m;
    flops += 2 * m + add;
  }
  cost->macs = macs;
  cost->flops = flops;
  cost->estimated = estimated;
  return 0;
}
