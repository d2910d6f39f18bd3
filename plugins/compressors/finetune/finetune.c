/* finetune.c — a pipeline stage that trains a compressed model's remaining float32 weights (low-rank
 * factors, biases, layers left dense, structured forms' parameters) on calibration samples — towards their
 * labels, the original model's outputs (distill), or a mix — so that the layers compensate for one
 * another's compression error. Packed weights are trained through, not changed: chain it after
 * low_rank and before quant ("low_rank, finetune, quant"). The work is core's pq_finetune(). */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int64_t ft_samples(const PqOptions *o) { return pq_options_get_int(o, "samples", 8192); }

/* The teacher's targets: the chain's original model on the calibration samples, as probabilities (its output
 * taken as it is after a softmax, exponentiated after a log_softmax, else passed through one). malloc'd. */
static float *ft_teacher(const PqCalibration *cal, int64_t classes, PqPluginError *err) {
  const PqModel *t = pq_calibration_original(cal);
  const PqGraph *g = t ? pq_model_const_graph(t) : NULL;
  if (!g || pq_graph_n_outputs(g) != 1) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "finetune: distill needs the original model, with one output");
    return NULL;
  }
  const char *out = pq_graph_output_name(g, 0), *op = "";
  for (size_t i = 0; i < pq_graph_n_nodes(g); i++)
    if (!strcmp(pq_node_output(pq_graph_node(g, i), 0), out)) op = pq_node_op(pq_graph_node(g, i));
  int64_t per = 0;
  float *y = pq_calibration_capture_model(cal, t, out, &per, err);
  if (!y) return NULL;
  if (per != classes) {
    free(y);
    pq_plugin_error_set(err, PQ_ERR_INVALID, "finetune: the original model has %lld outputs a sample, this one %lld", (long long)per,
                        (long long)classes);
    return NULL;
  }
  if (strcmp(op, "softmax"))
    for (int64_t r = 0; r < cal->n_samples; r++) {
      float *row = y + r * per, m = row[0];
      double sum = 0;
      for (int64_t k = 1; k < per; k++) m = row[k] > m ? row[k] : m;
      for (int64_t k = 0; k < per; k++) sum += (row[k] = !strcmp(op, "log_softmax") ? expf(row[k]) : expf(row[k] - m));
      for (int64_t k = 0; k < per; k++) row[k] = (float)(row[k] / sum);
    }
  return y;
}

static PqStatus ft_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  const uint8_t *labels = cal && cal->struct_size >= offsetof(PqCalibration, labels) + sizeof cal->labels ? cal->labels : NULL;
  double alpha = pq_options_get_float(o, "distill", 0.0);
  int qat = pq_options_get_bool(o, "qat", 0);
  if (!cal || cal->n_samples < 1 || (!labels && alpha < 1)) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "finetune: needs calibration samples, with labels unless distill is 1 (a dataset with labels)");
    return PQ_ERR_INVALID;
  }
  PqFinetuneParams p = {(int)pq_options_get_int(o, "epochs", 2), (int)pq_options_get_int(o, "batch_size", 128),
                        pq_options_get_float(o, "learning_rate", 5e-4), (uint64_t)pq_options_get_int(o, "seed", 42), 0};
  PqFinetuneResult r;
  PqModel *m = pq_model_copy(in);
  const PqGraph *g = pq_model_const_graph(in);
  int64_t classes = 0; /* the output's width a sample, which the teacher's must match */
  if (alpha > 0 && pq_graph_n_outputs(g) == 1) {
    PqPlan *plan = pq_plan_new(in, 1, err);
    if (!plan) {
      pq_model_unref(m);
      return (PqStatus)err->code;
    }
    classes = pq_plan_value_numel(plan, pq_plan_value_index(plan, pq_graph_output_name(g, 0)));
    pq_plan_free(plan);
  }
  float *teacher = alpha > 0 ? ft_teacher(cal, classes, err) : NULL;
  PqFinetuneExtra extra = {sizeof extra, qat, teacher, alpha};
  if ((alpha > 0 && !teacher) ||
      pq_finetune_ex(m, (const float *)cal->inputs->data, labels, cal->n_samples, &p, &extra, &r, err) != 0) {
    free(teacher);
    pq_model_unref(m);
    return (PqStatus)err->code;
  }
  free(teacher);
  char detail[240], how[80] = "";
  if (alpha > 0) snprintf(how, sizeof how, ", distilled from the original (weight %g)", alpha);
  snprintf(detail, sizeof detail, "%d epochs on %lld samples%s%s: loss %.3f -> %.3f, %s on them %.2f%% -> %.2f%%", p.epochs,
           (long long)cal->n_samples, qat ? ", quantization-aware" : "", how, r.loss_before, r.loss_after, alpha < 1 ? "accuracy" : "agreement with the original",
           100 * r.accuracy_before, 100 * r.accuracy_after);
  int64_t bytes = pq_model_nbytes(m), params = pq_model_n_params(m);
  pq_model_record_layer(m, "finetune", "(float weights)", detail, params, params, bytes, bytes, NAN, NAN);
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable ft_vtable = {.struct_size = sizeof(PqCompressorVTable), .compress = ft_compress,
                                             .calibration_samples = ft_samples};

static const PqPluginDesc ft_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "finetune",
    .version = "1.0.0",
    .description = "train the float32 weights left after compression on calibration samples, from their labels and/or the original model's outputs",
    .options_schema = "{\"epochs\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000, \"default\": 2},"
                      " \"learning_rate\": {\"type\": \"number\", \"minimum\": 0.000000001, \"maximum\": 1, \"default\": 0.0005,"
                      " \"description\": \"Adam's, cosine-decayed over the run\"},"
                      " \"batch_size\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 65536, \"default\": 128},"
                      " \"samples\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 8192,"
                      " \"description\": \"samples wanted (the host's --calibration caps them)\"},"
                      " \"seed\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 42},"
                      " \"distill\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, \"default\": 0,"
                      " \"description\": \"weight of the original model's outputs in the targets, against the labels' (1: no labels needed)\"},"
                      " \"qat\": {\"type\": \"boolean\", \"default\": false,"
                      " \"description\": \"train packed weights too, through their rounding, and pack them again (quantization-aware)\"}}",
    .vtable = &ft_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &ft_desc; }
