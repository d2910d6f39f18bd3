/* fuzz-load.c — libFuzzer harness for the model loaders: each input is written to a file and loaded as
 * safetensors, or as ONNX when FUZZ_ONNX is set at build time. Any crash, hang or sanitizer report is a bug:
 * a bad file must be an error. Build and run: see docs/benchmarks.md ("Fuzzing the loaders"). */
#include <pquant/pquant.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/pquant-fuzz-%d.%s", (int)getpid(),
#ifdef FUZZ_ONNX
                         "onnx"
#else
                         "safetensors"
#endif
  );
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  GError *err = NULL;
  PqModel *m = pq_model_load(path, &err);
  if (m) {
    PqCost c = {sizeof c, 0, 0, 0};
    pq_model_cost(m, &c, NULL); /* a model that loads is planned too */
    pq_model_unref(m);
  } else {
    if (!err || !err->message[0]) abort(); /* a failure must say why */
    g_error_free(err);
  }
  return 0;
}
