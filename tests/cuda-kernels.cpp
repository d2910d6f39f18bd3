/* cuda-kernels.cpp — the CUDA backend's 8-bit packed-linear kernels (plugins/backends/cuda/packed8.cuh) run on
 * the host through a small emulation of CUDA (cuda-host/emulate.h: a warp is 32 threads meeting at every
 * shuffle), against a double-precision reference: their indexing, the unpacking of codes by byte permute,
 * zero points, static activations, ReLU and the partly filled last warp, checked on machines without a GPU
 * (tests/cuda.c runs the same kernels on a GPU, where there is one). */
#include <glib.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "../plugins/backends/cuda/packed8.cuh"
#include "cuda-host/packed8-ref.h"

struct Shape {
  int64_t rows, n, k;
  bool zero_points;
  int relu;
  float act_scale;
  bool by_position; /* outputs written [n, rows] (a conv's channels over its positions) instead of [rows, n] */
};

typedef void (*Kernel)(const float *, const uint8_t *, const float *, const uint8_t *, const float *, float *, int64_t, int64_t, int64_t,
                       int64_t, int, int, int64_t, int64_t, float);

/* the worst error of one kernel on one shape, relative to each output's sum of |terms| */
static double worst_error(Kernel kernel, int64_t warps, const Shape &s, GRand *rng) {
  std::vector<uint8_t> codes((size_t)(s.n * s.k)), zeros((size_t)s.n);
  std::vector<float> scales((size_t)s.n), bias((size_t)s.n), x((size_t)(s.rows * s.k)), y((size_t)(s.rows * s.n), NAN);
  for (auto &c : codes) c = (uint8_t)g_rand_int_range(rng, 0, 256);
  for (auto &z : zeros) z = (uint8_t)g_rand_int_range(rng, 90, 166);
  for (auto &v : scales) v = (float)g_rand_double_range(rng, 0.0005, 0.002);
  for (auto &v : bias) v = (float)g_rand_double_range(rng, -0.5, 0.5);
  for (auto &v : x) v = (float)g_rand_double_range(rng, -1, 1);
  const int per = s.zero_points ? 1 : 0;
  const unsigned blocks = (unsigned)((warps * 32 + blockDim.x - 1) / blockDim.x);
  pq_emulate_launch(blocks, [&] {
    kernel(x.data(), codes.data(), scales.data(), s.zero_points ? zeros.data() : nullptr, bias.data(), y.data(), s.rows, s.n, s.k, s.k, per,
           s.relu, s.by_position ? 1 : s.n, s.by_position ? s.rows : 1, s.act_scale);
  });
  std::vector<double> ref(y.size()), mag(y.size());
  pq8_reference(x.data(), codes.data(), scales.data(), s.zero_points ? zeros.data() : nullptr, per, bias.data(), s.rows, s.n, s.k, s.relu,
                s.act_scale, ref.data(), mag.data());
  double worst = 0;
  for (int64_t r = 0; r < s.rows; r++)
    for (int64_t o = 0; o < s.n; o++) {
      const double got = y[(size_t)(s.by_position ? o * s.rows + r : r * s.n + o)];
      const size_t at = (size_t)(r * s.n + o);
      worst = std::isnan(got) ? INFINITY : std::fmax(worst, std::fabs(got - ref[at]) / mag[at]);
    }
  return worst;
}

static const Shape shapes[] = {
    {1, 97, 1024, true, 0, 0.0f, false},  /* batch 1; an odd output count: the last warp of two or four outputs partly filled */
    {3, 10, 96, true, 1, 0.0f, false},  /* a batch; ReLU */
    {2, 13, 160, false, 0, 0.02f, false}, /* no zero points (128); static int8 activations */
    {1, 9, 64, true, 0, 0.0f, false},   /* fewer steps than lanes: most lanes add nothing */
    {25, 11, 144, true, 1, 0.0f, true}, /* a packed conv: 25 positions of a 16-channel 3x3 patch, written by channel */
};

static void check(const char *name, Kernel kernel, int outputs_per_warp, int rows_per_warp = 1) {
  GRand *rng = g_rand_new_with_seed(7);
  for (const Shape &s : shapes) {
    const int64_t warps = outputs_per_warp ? pq8x16_warps(outputs_per_warp, rows_per_warp, s.rows, s.n) : s.rows * s.n;
    const double e = worst_error(kernel, warps, s, rng);
    g_test_message("%s: batch %lld, %lld outputs, %lld inputs: worst error %.2e", name, (long long)s.rows, (long long)s.n, (long long)s.k, e);
    g_assert_cmpfloat(e, <=, 1e-5);
  }
  g_rand_free(rng);
}

static void test_uchar4(void) { check("uchar4", k_packed_linear8, 0); }
static void test_x16_1(void) { check("16 B, 1 output", k_packed_linear8x16<1, 1, false>, 1); }
static void test_x16_2(void) { check("16 B, 2 outputs, evict-first", k_packed_linear8x16<2, 1, true>, 2); }
static void test_x16_4(void) { check("16 B, 4 outputs, evict-first", k_packed_linear8x16<4, 1, true>, 4); }
static void test_x16_8(void) { check("16 B, 8 outputs, evict-first", k_packed_linear8x16<8, 1, true>, 8); }
/* several rows of the batch a warp: a row group partly filled (3 rows in groups of 2 or 4, 25 in groups of 8) */
static void test_x16_rows(void) {
  check("16 B, 4 outputs x 2 rows", k_packed_linear8x16<4, 2, true>, 4, 2);
  check("16 B, 4 outputs x 4 rows", k_packed_linear8x16<4, 4, true>, 4, 4);
  check("16 B, 8 outputs x 4 rows", k_packed_linear8x16<8, 4, true>, 8, 4);
  check("16 B, 4 outputs x 8 rows", k_packed_linear8x16<4, 8, false>, 4, 8);
}

/* the unpacking alone, every code against every zero point: exactly code − zero */
static void test_unpack(void) {
  for (uint32_t z = 0; z < 256; z++)
    for (uint32_t c = 0; c < 256; c++) {
      const uint32_t word = 0xa5000000u | (c << 16) | 0x5a5au; /* the code as byte 2, other bytes around it */
      g_assert_cmpfloat(pq8_code(word, 2, 8388608.0f + (float)z), ==, (float)c - (float)z);
    }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cuda-kernels/unpack", test_unpack);
  g_test_add_func("/cuda-kernels/uchar4", test_uchar4);
  g_test_add_func("/cuda-kernels/16B-1", test_x16_1);
  g_test_add_func("/cuda-kernels/16B-2", test_x16_2);
  g_test_add_func("/cuda-kernels/16B-4", test_x16_4);
  g_test_add_func("/cuda-kernels/16B-8", test_x16_8);
  g_test_add_func("/cuda-kernels/16B-rows", test_x16_rows);
  return g_test_run();
}
