/* half.c — an example compressor plugin: stores float32 weights as float16 (or bfloat16), halving their
 * bytes. Backends widen them once at prepare, so the graph is unchanged. Build out of tree with:
 *   cc -shared -fPIC -O2 half.c $(pkg-config --cflags --libs pquant) -o half.so */
#include <pquant/pq-plugin.h>

#include <string.h>

static PqStatus half_compress(const PqModel *in, const PqOptions *options, const PqCalibration *calibration,
                              PqModel **out, PqPluginError *error) {
  (void)calibration;
  const char *format = pq_options_get_string(options, "format", "f16");
  int64_t min_elements = pq_options_get_int(options, "min_elements", 0);
  int bf16 = strcmp(format, "bf16") == 0;
  PqModel *m = pq_model_copy(in); /* shares tensors by reference: the input is never modified */
  for (size_t i = 0; i < pq_model_n_tensors(in); i++) {
    PqTensor *t = pq_model_tensor_at(in, i);
    if (pq_tensor_dtype(t) != PQ_DTYPE_F32 || pq_tensor_numel(t) < min_elements) continue;
    PqTensor *h = pq_tensor_new(pq_tensor_name(t), bf16 ? PQ_DTYPE_BF16 : PQ_DTYPE_F16, pq_tensor_ndim(t), pq_tensor_shape(t));
    if (!h) {
      pq_model_unref(m);
      pq_plugin_error_set(error, PQ_ERR_NOMEM, "cannot allocate '%s'", pq_tensor_name(t));
      return PQ_ERR_NOMEM;
    }
    const float *src = pq_tensor_data(t);
    uint16_t *dst = pq_tensor_mutable_data(h);
    for (int64_t j = 0; j < pq_tensor_numel(t); j++) dst[j] = bf16 ? pq_f32_to_bf16(src[j]) : pq_f32_to_f16(src[j]);
    pq_model_set_tensor(m, h); /* replaces the float32 tensor in the copy */
    pq_tensor_unref(h);
  }
  *out = m;
  return PQ_OK;
}

static const PqCompressorVTable half_vtable = {
    .struct_size = sizeof(PqCompressorVTable),
    .compress = half_compress,
};

static const PqPluginDesc half_desc = {
    .struct_size = sizeof(PqPluginDesc),
    .abi_major = PQ_ABI_MAJOR,
    .abi_minor = PQ_ABI_MINOR,
    .kind = PQ_KIND_COMPRESSOR,
    .name = "half",
    .version = "1.0.0",
    .description = "example: store float32 weights as float16 or bfloat16",
    .options_schema = "{\"format\": {\"type\": \"string\", \"enum\": [\"f16\", \"bf16\"], \"default\": \"f16\","
                      " \"description\": \"storage type\"},"
                      " \"min_elements\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 0,"
                      " \"description\": \"leave smaller tensors (biases) in float32\"}}",
    .vtable = &half_vtable,
};

PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &half_desc; }
