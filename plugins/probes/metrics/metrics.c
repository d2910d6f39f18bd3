/* metrics.c — the metrics probe: parameters, bytes stored in memory and on disk, bits per weight,
 * compression ratio, reductions, and MACs/FLOPs from the real shapes, against the baseline. */
#include <pquant/pq-plugin.h>

static PqStatus metrics_observe(const PqProbeContext *ctx, PqMetricSink *sink, PqPluginError *err) {
  const PqModel *b = ctx->baseline, *c = ctx->compressed;
  PqCost cb = {sizeof cb, 0, 0, 0}, cc = {sizeof cc, 0, 0, 0};
  if (pq_model_cost(b, &cb, err) != 0 || pq_model_cost(c, &cc, err) != 0) return PQ_ERR_INVALID;
  int64_t pb = pq_model_n_params(b), pc = pq_model_n_params(c), bb = pq_model_nbytes(b), bc = pq_model_nbytes(c);
  int64_t db = pq_model_file_size(b), dc = pq_model_file_size(c);
  if (db < 0 || dc < 0) {
    pq_plugin_error_set(err, PQ_ERR_INTERNAL, "cannot size the model files");
    return PQ_ERR_INTERNAL;
  }
  pq_metrics_add(sink, "metrics.params", (double)pc, "", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "metrics.bytes", (double)bc, "bytes", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "metrics.disk_bytes", (double)dc, "bytes", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "metrics.bits_per_weight", pb ? 8.0 * (double)bc / (double)pb : 0, "bits", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "metrics.compression_ratio", bc ? (double)bb / (double)bc : 0, "x", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "metrics.disk_ratio", dc ? (double)db / (double)dc : 0, "x", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "metrics.param_reduction", pb ? 100.0 * (double)(pb - pc) / (double)pb : 0, "%", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "metrics.size_reduction_mb", (double)(bb - bc) / 1e6, "MB", PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "metrics.macs", (double)cc.macs, "", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "metrics.flops", (double)cc.flops, "", PQ_BETTER_LOWER);
  pq_metrics_add(sink, "metrics.flops_reduction", cb.flops ? 100.0 * (double)(cb.flops - cc.flops) / (double)cb.flops : 0, "%",
                 PQ_BETTER_HIGHER);
  pq_metrics_add(sink, "metrics.flops_estimated", cc.estimated ? 1 : 0, "flag", PQ_BETTER_NONE);
  return PQ_OK;
}

static const PqProbeVTable vt = {.struct_size = sizeof(PqProbeVTable), .observe = metrics_observe};
static const PqPluginDesc desc = {
    .struct_size = sizeof(PqPluginDesc), .abi_major = PQ_ABI_MAJOR, .abi_minor = PQ_ABI_MINOR, .kind = PQ_KIND_PROBE,
    .name = "metrics", .version = "1.0.0", .description = "parameters, stored bytes (memory and disk), compression ratio, MACs and FLOPs",
    .vtable = &vt,
};
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &desc; }
