/* finetune.c — a pipeline stage that trains a compressed model's remaining float32 weights (low-rank
 * factors, biases, layers left dense) on labelled calibration samples, so that the layers compensate for
 * one another's compression error. Packed weights are trained through, not changed: chain it after
 * low_rank and before quant ("low_rank, finetune, quant"). The work is core's pq_finetune(). */
#include <pquant/pq-plugin.h>

#include <math.h>
#include <stdio.h>
#include <stddef.h>

static int64_t ft_samples(const PqOptions *o) { return pq_options_get_int(o, "samples", 8192); }

static PqStatus ft_compress(const PqModel *in, const PqOptions *o, const PqCalibration *cal, PqModel **out, PqPluginError *err) {
  const uint8_t *labels = cal && cal->struct_size >= offsetof(PqCalibration, labels) + sizeof cal->labels ? cal->labels : NULL;
  if (!cal || cal->n_samples < 1 || !labels) {
    pq_plugin_error_set(err, PQ_ERR_INVALID, "finetune: needs labelled calibration samples (a dataset with labels)");
    return PQ_ERR_INVALID;
  }
  PqFinetuneParams p = {(int)pq_options_get_int(o, "epochs", 2), (int)pq_options_get_int(o, "batch_size", 128),
                        pq_options_get_float(o, "learning_rate", 5e-4), (uint64_t)pq_options_get_int(o, "seed", 42), 0};
  PqFinetuneResult r;
  PqModel *m = pq_model_copy(in);
  if (pq_finetune(m, (const float *)cal->inputs->data, labels, cal->n_samples, &p, &r, err) != 0) {
    pq_model_unref(m);
    return (PqStatus)err->code;
  }
  char detail[200];
  snprintf(detail, sizeof detail, "%d epochs on %lld samples: loss %.3f -> %.3f, accuracy on them %.2f%% -> %.2f%%", p.epochs,
           (long long)cal->n_samples, r.loss_before, r.loss_after, 100 * r.accuracy_before, 100 * r.accuracy_after);
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
    .description = "train the float32 weights left after compression on labelled calibration samples (chains of linear layers)",
    .options_schema = "{\"epochs\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000, \"default\": 2},"
                      " \"learning_rate\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1, \"default\": 0.0005,"
                      " \"description\": \"Adam's, cosine-decayed over the run\"},"
                      " \"batch_size\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 65536, \"default\": 128},"
                      " \"samples\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 8192,"
                      " \"description\": \"labelled samples wanted (the host's --calibration caps them)\"},"
                      " \"seed\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 42}}",
    .vtable = &ft_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &ft_desc; }
