/* onnx-missing.c — the ONNX entry points of a build without protobuf-c: each says so. */
#include "../pq-private.h"

gboolean pq_have_onnx(void) { return FALSE; }

static void missing(const char *path, GError **error) {
  g_set_error(error, PQ_FORMAT_ERROR, PQ_FORMAT_ERROR_UNSUPPORTED,
              "%s: this pquant was built without ONNX support (install protobuf-c-compiler, libprotobuf-c-dev and libonnx-dev, then rebuild)", path);
}

PqModel *pq_onnx_load_full(const char *path, GHashTable *constants, GError **error) {
  (void)constants;
  missing(path, error);
  return NULL;
}

PqModel *pq_onnx_load(const char *path, GError **error) { return pq_onnx_load_full(path, NULL, error); }

PqTensor *pq_onnx_load_tensor(const char *path, GError **error) {
  missing(path, error);
  return NULL;
}
