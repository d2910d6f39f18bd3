/* packed8.cuh — the CUDA backend's kernels for linear layers with 8-bit codes and one scale (and zero point)
 * per output row: the layer a quantized model spends its time in at small batches, where the codes' bytes,
 * not arithmetic, set the time. Shared by the backend (cuda.cu) and bench/bench-cuda-int8.cu, which times
 * and checks every variant here on a GPU.
 *
 * y[r·ys_r + o·ys_o] = scale[o] · Σ_i x[r, i] · (code[o, i] − zero[o]) + bias[o]   (ReLU where asked)
 * With act_scale > 0 the input is first rounded to that int8 grid, as the model's static activations say
 * (the same rounding as the CPU backend). */
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

/* an input rounded to the layer's static int8 grid */
__device__ __forceinline__ float pq8_round_act(float v, float act_scale, float inv) {
  return fminf(fmaxf(rintf(v * inv), -127.0f), 127.0f) * act_scale;
}

/* One warp per (row, output), four codes and four inputs a lane a step (uchar4, float4); the scale and zero
 * point applied once to the sums: y = scale · (Σ x·code − zero · Σ x). Needs k % 4 == 0. */
__global__ void k_packed_linear8(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias,
                                 float *y, int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r,
                                 int64_t ys_o, float act_scale) {
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (warp >= rows * n) return;
  int64_t r = warp / n, o = warp % n;
  const uchar4 *row = (const uchar4 *)(codes + o * row_bytes);
  const float4 *xr = (const float4 *)(x + r * k);
  const float inv = act_scale > 0.0f ? 1.0f / act_scale : 0.0f;
  float dot = 0.0f, sum = 0.0f;
  for (int64_t i = lane; i < k / 4; i += 32) {
    uchar4 c = row[i];
    float4 v = xr[i];
    if (act_scale > 0.0f) {
      v.x = pq8_round_act(v.x, act_scale, inv);
      v.y = pq8_round_act(v.y, act_scale, inv);
      v.z = pq8_round_act(v.z, act_scale, inv);
      v.w = pq8_round_act(v.w, act_scale, inv);
    }
    dot += v.x * (float)c.x + v.y * (float)c.y + v.z * (float)c.z + v.w * (float)c.w;
    sum += v.x + v.y + v.z + v.w;
  }
  for (int off = 16; off > 0; off >>= 1) {
    dot += __shfl_down_sync(0xffffffffu, dot, off);
    sum += __shfl_down_sync(0xffffffffu, sum, off);
  }
  if (lane == 0) {
    int64_t si = per == 1 ? o : 0;
    float z = zeros ? (float)zeros[si] : 128.0f;
    float v = scales[si] * (dot - z * sum) + (bias ? bias[o] : 0.0f);
    y[r * ys_r + o * ys_o] = relu && v < 0.0f ? 0.0f : v;
  }
}

/* Byte b (0..3) of a word of codes, less the zero point, as a float, without a conversion instruction
 * (integer-to-float conversions run at a quarter of the rate of float adds on this hardware): the byte is
 * placed under the exponent of 2^23, whose float then reads 2^23 + code exactly, and 2^23 + zero is taken
 * off (zmagic): code − zero, exact. */
__device__ __forceinline__ float pq8_code(uint32_t w, uint32_t b, float zmagic) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440u | b)) - zmagic;
}

/* a lane's 16 inputs (four float4) against one 16-byte load of codes */
__device__ __forceinline__ float pq8_dot16(const float4 *v, uint4 c, float zmagic, float acc) {
  const uint32_t w[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
  for (int q = 0; q < 4; q++) {
    acc = fmaf(v[q].x, pq8_code(w[q], 0, zmagic), acc);
    acc = fmaf(v[q].y, pq8_code(w[q], 1, zmagic), acc);
    acc = fmaf(v[q].z, pq8_code(w[q], 2, zmagic), acc);
    acc = fmaf(v[q].w, pq8_code(w[q], 3, zmagic), acc);
  }
  return acc;
}

/* One warp per B consecutive rows and R consecutive outputs: each step a lane loads 16 codes of each of the R
 * rows of codes at once (uint4), then for each of the B rows of the batch the 16 inputs they meet (four
 * float4, read once for the R outputs), and takes the zero point off each code as it is unpacked (pq8_code),
 * so one sum per output and row is kept and scaled at the end. With B > 1 a warp reads its codes once for B
 * rows of a batch, where B = 1 leaves each row's warp to read them again (from L2 at best). The warps of a
 * batch's row groups for the same outputs are neighbours, so a batch reads each code from memory about once.
 * STREAM: the codes are read with the evict-first hint, so that they pass the caches by and leave the input
 * there. Needs R·B <= 32, k % 16 == 0 and row_bytes % 16 == 0, codes 16-byte aligned (cudaMalloc's are) and x
 * too (a row of the batch starts 64 bytes after the last). */
template <int R, int B, bool STREAM>
__global__ void k_packed_linear8x16(const float *x, const uint8_t *codes, const float *scales, const uint8_t *zeros, const float *bias,
                                    float *y, int64_t rows, int64_t n, int64_t k, int64_t row_bytes, int per, int relu, int64_t ys_r,
                                    int64_t ys_o, float act_scale) {
  static_assert(R * B <= 32, "a lane writes each output");
  const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32, groups = (n + R - 1) / R, rgroups = (rows + B - 1) / B;
  const int lane = threadIdx.x % 32;
  if (warp >= rgroups * groups) return;
  const int64_t r0 = (warp % rgroups) * B, o0 = (warp / rgroups) * R; /* a batch's row groups of the same outputs side by side */
  const int live = (int)(n - o0 < R ? n - o0 : R); /* the last group may have fewer outputs: the others reread row o0 */
  const int live_rows = (int)(rows - r0 < B ? rows - r0 : B); /* and fewer rows: the others reread row r0 */
  const uint4 *row[R];
  float zm[R], acc[R][B];
#pragma unroll
  for (int j = 0; j < R; j++) {
    const int64_t o = o0 + (j < live ? j : 0);
    row[j] = (const uint4 *)(codes + o * row_bytes);
    zm[j] = 8388608.0f + (zeros ? (float)zeros[per == 1 ? o : 0] : 128.0f);
#pragma unroll
    for (int b = 0; b < B; b++) acc[j][b] = 0.0f;
  }
  const float4 *xr[B];
#pragma unroll
  for (int b = 0; b < B; b++) xr[b] = (const float4 *)(x + (r0 + (b < live_rows ? b : 0)) * k);
  const float inv = act_scale > 0.0f ? 1.0f / act_scale : 0.0f;
  const int64_t steps = k / 16;
#pragma unroll 2
  for (int64_t i = lane; i < steps; i += 32) {
    uint4 c[R];
#pragma unroll
    for (int j = 0; j < R; j++) c[j] = STREAM ? __ldcs(row[j] + i) : __ldg(row[j] + i);
#pragma unroll
    for (int b = 0; b < B; b++) {
      float4 v[4];
#pragma unroll
      for (int q = 0; q < 4; q++) {
        v[q] = xr[b][4 * i + q];
        if (act_scale > 0.0f) {
          v[q].x = pq8_round_act(v[q].x, act_scale, inv);
          v[q].y = pq8_round_act(v[q].y, act_scale, inv);
          v[q].z = pq8_round_act(v[q].z, act_scale, inv);
          v[q].w = pq8_round_act(v[q].w, act_scale, inv);
        }
      }
#pragma unroll
      for (int j = 0; j < R; j++) acc[j][b] = pq8_dot16(v, c[j], zm[j], acc[j][b]);
    }
  }
#pragma unroll
  for (int j = 0; j < R; j++)
#pragma unroll
    for (int b = 0; b < B; b++)
      for (int off = 16; off > 0; off >>= 1) acc[j][b] += __shfl_xor_sync(0xffffffffu, acc[j][b], off);
  const int j = lane % R, b = lane / R; /* lane b·R + j writes output o0 + j of row r0 + b */
  if (b < live_rows && j < live) {
    float a = acc[0][0];
#pragma unroll
    for (int jj = 0; jj < R; jj++)
#pragma unroll
      for (int bb = 0; bb < B; bb++)
        if (lane == bb * R + jj) a = acc[jj][bb];
    const int64_t o = o0 + j;
    const float v = scales[per == 1 ? o : 0] * a + (bias ? bias[o] : 0.0f);
    y[(r0 + b) * ys_r + o * ys_o] = relu && v < 0.0f ? 0.0f : v;
  }
}

/* the warps k_packed_linear8x16<R, B, …> needs for rows × n outputs */
static inline int64_t pq8x16_warps(int R, int B, int64_t rows, int64_t n) { return ((rows + B - 1) / B) * ((n + R - 1) / R); }
