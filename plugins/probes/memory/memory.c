/* memory.c — the memory probe: the model's stored size, the backend's own counters (weights, current and
 * peak bytes it holds, device memory), and the resident memory of the process that runs the method
 * (current, and the peak since it started: compression and inference included). */
#include <pquant/pq-plugin.h>

#include <stdio.h>
#include <string.h>

/* VmRSS / VmHWM of this process in bytes, from /proc/self/status; -1 where unavailable. */
static double proc_status(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') {
      long long kb;
      if (sscanf(line + kl + 1, "%lld", &kb) == 1) v = (double)kb * 1024.0;
      break;
    }
  fclose(f);
  return v;
}

static PqStatus memory_observe(const PqProbeContext *ctx, PqMetricSink *sink, PqPluginError *err) {
  PqMemoryCounters mb = {sizeof mb, 0, -1, -1, -1, -1, -1}, mc = {sizeof mc, 0, -1, -1, -1, -1, -1};
  if (pq_runner_memory(ctx->runner, PQ_MODEL_BASELINE, &mb, err) != PQ_OK ||
      pq_runner_memory(ctx->runner, PQ_MODEL_COMPRESSED, &mc, err) != PQ_OK)
    return PQ_ERR_INTERNAL;
  pq_metrics_add(sink, "memory.model_bytes", (double)pq_model_nbytes(ctx->compressed), "bytes", PQ_BETTER_LOWER);
  if (mc.weights_bytes >= 0) pq_metrics_add(sink, "memory.backend_weights_bytes", (double)mc.weights_bytes, "bytes", PQ_BETTER_LOWER);
  if (mc.peak_bytes >= 0) {
    pq_metrics_add(sink, "memory.backend_peak_bytes", (double)mc.peak_bytes, "bytes", PQ_BETTER_LOWER);
    if (mb.peak_bytes > 0)
      pq_metrics_add(sink, "memory.backend_peak_reduction", 100.0 * (double)(mb.peak_bytes - mc.peak_bytes) / (double)mb.peak_bytes, "%",
                     PQ_BETTER_HIGHER);
  }
  if (mc.current_bytes >= 0) pq_metrics_add(sink, "memory.backend_current_bytes", (double)mc.current_bytes, "bytes", PQ_BETTER_LOWER);
  if (mc.device_total_bytes >= 0) {
    pq_metrics_add(sink, "memory.device_free_bytes", (double)mc.device_free_bytes, "bytes", PQ_BETTER_NONE);
    pq_metrics_add(sink, "memory.device_total_bytes", (double)mc.device_total_bytes, "bytes", PQ_BETTER_NONE);
  }
  double rss = proc_status("VmRSS"), hwm = proc_status("VmHWM");
  if (rss >= 0) pq_metrics_add(sink, "memory.rss_current_mb", rss / 1e6, "MB", PQ_BETTER_LOWER);
  if (hwm >= 0) pq_metrics_add(sink, "memory.rss_peak_mb", hwm / 1e6, "MB", PQ_BETTER_LOWER);
  return PQ_OK;
}

static const PqProbeVTable vt = {.struct_size = sizeof(PqProbeVTable), .observe = memory_observe};
static const PqPluginDesc desc = {
    .struct_size = sizeof(PqPluginDesc), .abi_major = PQ_ABI_MAJOR, .abi_minor = PQ_ABI_MINOR, .kind = PQ_KIND_PROBE,
    .name = "memory", .version = "1.0.0", .description = "model size, the backend's memory counters, resident memory of the run",
    .vtable = &vt,
};
PQ_PLUGIN_EXPORT const PqPluginDesc *pq_plugin_query(void) { return &desc; }
