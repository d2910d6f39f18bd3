/* testutil.h — helpers shared by the test programs: temporary folders, files and tiny models. */
#ifndef PQ_TESTUTIL_H
#define PQ_TESTUTIL_H

#include <pquant/pquant.h>

/* A fresh temporary folder, removed with its files by pq_test_rmdir(). */
char *pq_test_mkdtemp(void);
void pq_test_rmdir(const char *dir);
/* Write bytes to dir/name; returns the path (owned). */
char *pq_test_write(const char *dir, const char *name, const void *data, gsize len);
/* A .npy file (version 1.0) in dir: the header {'descr': DESCR, 'fortran_order': FORTRAN, 'shape': SHAPE, },
 * taken as given (a test may write a malformed one), padded with spaces to a multiple of 64 bytes as NumPy
 * writes it when `pad`, then `len` bytes of data; returns the path (owned). */
char *pq_test_write_npy(const char *dir, const char *name, const char *descr, const char *fortran, const char *shape, gboolean pad,
                        const void *data, gsize len);
/* A safetensors file from a JSON header (padded as the spec allows) and raw data. */
char *pq_test_write_safetensors(const char *dir, const char *name, const char *header, const void *data, gsize len);
/* An F32 tensor filled with deterministic pseudo-random values in [-scale, scale]. */
PqTensor *pq_test_random_tensor(const char *name, int ndim, const int64_t *shape, guint32 seed, float scale);
/* The MLP graph in[-1, in] → linear(hidden) → relu → linear(out) with random weights. */
PqModel *pq_test_tiny_mlp(int in, int hidden, int out, guint32 seed);
/* The CPU backend plugin from the build tree. */
PqPlugin *pq_test_cpu_backend(PqRegistry *reg);
/* Compress `m` with `compressor` and options KEY, VALUE, ..., NULL (plus the layer-selection keys); stages that
 * ask for calibration capture it on `cpu`. NULL with `error` set on failure. */
PqModel *pq_test_compress(PqPlugin *compressor, PqPlugin *cpu, const PqModel *m, const char *const *kv, GError **error);
/* x [-1, C, H, W] → conv2d(cw [ws], cb) with these strides and pads → y, random weights. */
PqModel *pq_test_conv_model(const int64_t *xs, const int64_t *ws, const int64_t *strides, const int64_t *pads, guint32 seed);

#endif
