/* embed.c — an example program embedding libpquant: load plugins, compress a model with a compressor
 * plugin, evaluate both on the CPU backend, and run a probe. Build out of tree with:
 *   cc -O2 embed.c $(pkg-config --cflags --libs pquant) -o embed
 * Usage: embed MODEL COMPRESSOR.so [PROBE.so] */
#include <pquant/pquant.h>

#include <stdio.h>

static gboolean run(int argc, char **argv, GError **error) {
  g_autoptr(PqRegistry) reg = pq_registry_new();
  PqPlugin *comp = pq_registry_load(reg, argv[2], error);
  if (!comp) return FALSE;
  PqPlugin *probe = NULL;
  if (argc > 3 && !(probe = pq_registry_load(reg, argv[3], error))) return FALSE;
  pq_registry_scan_default(reg); /* PQ_PLUGIN_PATH and the installed plugins: the CPU backend */
  PqPlugin *cpu = pq_registry_find(reg, "cpu", PQ_KIND_BACKEND, error);
  if (!cpu) return FALSE;
  g_autoptr(PqModel) model = pq_model_load(argv[1], error);
  if (!model) return FALSE;
  g_autoptr(PqModel) small = pq_compressor_run(comp, model, NULL, NULL, error);
  if (!small) return FALSE;
  g_autoptr(PqDataset) test = pq_dataset_open("fashion-mnist", "t10k", error);
  if (!test) return FALSE;
  PqModel *models[2] = {model, small};
  const char *labels[2] = {"baseline", pq_plugin_name(comp)};
  for (int i = 0; i < 2; i++) {
    g_autoptr(PqBackend) b = pq_backend_prepare(cpu, models[i], 0, 256, NULL, error);
    double acc;
    if (!b || !pq_evaluate_accuracy(b, test, &acc, error)) return FALSE;
    printf("%-10s %10" G_GINT64_FORMAT " bytes  accuracy %.2f%%\n", labels[i], pq_model_nbytes(models[i]), 100 * acc);
  }
  if (probe) {
    g_autoptr(GPtrArray) metrics = pq_probe_run(probe, cpu, model, small, test, NULL, 0, 256, error);
    if (!metrics) return FALSE;
    for (guint i = 0; i < metrics->len; i++) {
      PqMetric *m = metrics->pdata[i];
      printf("%-22s %g %s\n", m->name, m->value, m->unit);
    }
  }
  return TRUE;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL COMPRESSOR.so [PROBE.so]\n", argv[0]);
    return 2;
  }
  g_autoptr(GError) err = NULL;
  if (!run(argc, argv, &err)) {
    fprintf(stderr, "embed: %s\n", err->message);
    return 1;
  }
  return 0;
}
