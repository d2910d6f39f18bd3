/* fuzz-load.c — libFuzzer harness for what pquant reads from users' files, one target per build:
 *   (default)    the input as a safetensors model file
 *   FUZZ_ONNX    the input as an ONNX model file
 *   FUZZ_IDX     the input as an IDX images file (raw, or gzip when it starts so) beside a valid labels file
 *   FUZZ_NPY     the input as a NumPy images file beside a valid labels file, then as the labels beside valid images
 *   FUZZ_CONFIG  the input as a suite config (JSON) checked against the built-in plugins' registry
 *   FUZZ_COMPARE the input as report B of `pqrun compare`, against a small valid report A
 * Any crash, hang, sanitizer report or GLib critical (made fatal here) is a bug: a bad file must be an error that says why. Build and run:
 * docs/testing.md ("Fuzzing the loaders"). */
#include <pquant/pquant.h>

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a loaded dataset's last sample, then drops it. */
G_GNUC_UNUSED static void read_last_sample(PqDataset *ds) {
  int64_t per = pq_dataset_sample_numel(ds), n = pq_dataset_n_samples(ds);
  if (per > 0 && per < (1 << 20) && n > 0) {
    float *x = malloc(sizeof(float) * (size_t)per);
    uint8_t y;
    pq_dataset_get_batch(ds, n - 1, 1, x, &y);
    free(x);
  }
  pq_dataset_unref(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

G_GNUC_UNUSED static void write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
}

static void must_say_why(GError *err) {
  if (!err || !err->message[0]) abort(); /* a failure must say why */
  g_error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char dir[64];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/pquant-fuzz-%d", (int)getpid());
    g_mkdir_with_parents(dir, 0700);
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_ERROR);
  }
  GError *err = NULL;
#if defined(FUZZ_NPY)
  /* a valid .npy of 4 uint8 labels, and one of 4 images of 2 × 2 uint8 */
  static const char lab[] = "\x93NUMPY\x01\x00\x3e\x00{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }    \n\x00\x01\x02\x03";
  static const char img[] = "\x93NUMPY\x01\x00\x3f\x00{'descr': '|u1', 'fortran_order': False, 'shape': (4, 2, 2), }\n"
                            "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f";
  g_autofree char *lp = g_build_filename(dir, "labels.npy", NULL), *ip = g_build_filename(dir, "images.npy", NULL),
                  *fp = g_build_filename(dir, "fuzz.npy", NULL);
  write_file(lp, lab, sizeof lab - 1);
  write_file(ip, img, sizeof img - 1);
  write_file(fp, data, size);
  for (int side = 0; side < 2; side++) {
    PqDataset *ds = side ? pq_dataset_load_npy(ip, fp, &err) : pq_dataset_load_npy(fp, lp, &err);
    if (ds) {
      read_last_sample(ds);
    } else {
      must_say_why(err);
      err = NULL;
    }
  }
#elif defined(FUZZ_IDX)
  /* labels: 4 samples of class 0..3; images: the input */
  static const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 2, 3};
  g_autofree char *lp = g_build_filename(dir, "fuzz-labels-idx1-ubyte", NULL), *ip = g_build_filename(dir, "fuzz-images-idx3-ubyte", NULL);
  write_file(lp, labels, sizeof labels);
  write_file(ip, data, size);
  PqDataset *ds = pq_dataset_open(dir, "fuzz", &err);
  if (ds)
    read_last_sample(ds);
  else must_say_why(err);
#elif defined(FUZZ_COMPARE)
  static const char a[] = "{\"schema\": \"pquant-report\", \"schema_version\": 1, \"methods\": [{\"method\": \"q8\", \"status\": \"ok\","
                          " \"metrics\": {\"latency.b1.p50_ms\": {\"value\": 1.5, \"unit\": \"ms\", \"better\": \"lower\", \"samples\": [1, 2, 1.5]},"
                          " \"accuracy.top1\": {\"value\": 89.7, \"unit\": \"%\", \"better\": \"higher\"}},"
                          " \"layers\": [{\"stage\": 1, \"method\": \"quant\", \"layer\": \"fc1\", \"sqnr_db\": null}]}]}";
  g_autofree char *ap = g_build_filename(dir, "a.json", NULL), *bp = g_build_filename(dir, "b.json", NULL);
  write_file(ap, a, sizeof a - 1);
  write_file(bp, data, size);
  GString *out = g_string_new(NULL);
  if (pq_report_compare(ap, bp, 0.05, 0.5, out, &err) < 0) must_say_why(err);
  g_string_free(out, TRUE);
#elif defined(FUZZ_CONFIG)
  static PqRegistry *reg;
  if (!reg) {
    reg = pq_registry_new();
    pq_registry_scan_default(reg);
  }
  char *json = g_strndup((const char *)data, size);
  GHashTable *pipelines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)pq_pipeline_free);
  GPtrArray *methods = pq_bench_load_config(reg, json, "fuzz", pipelines, &err);
  if (methods) g_ptr_array_unref(methods);
  else must_say_why(err);
  g_hash_table_unref(pipelines);
  g_free(json);
#else
  g_autofree char *path = g_build_filename(dir,
#ifdef FUZZ_ONNX
                                           "model.onnx",
#else
                                           "model.safetensors",
#endif
                                           NULL);
  write_file(path, data, size);
  PqModel *m = pq_model_load(path, &err);
  if (m) {
    PqCost c = {sizeof c, 0, 0, 0};
    pq_model_cost(m, &c, NULL); /* a model that loads is planned too */
    pq_model_unref(m);
  } else must_say_why(err);
#endif
  return 0;
}
