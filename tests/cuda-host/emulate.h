/* emulate.h — just enough of CUDA to run the CUDA backend's warp-level kernels on the host, for
 * tests/cuda-kernels.cpp: the vector types, __global__/__device__, the thread indices, the byte permute, the
 * cached loads as plain loads, and a warp as 32 host threads that meet at a barrier at every shuffle.
 * A kernel runs by pq_emulate_launch(); each warp's lanes run together, warps one after another. */
#pragma once

#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

struct uint4 {
  uint32_t x, y, z, w;
};
struct float4 {
  float x, y, z, w;
};
struct uchar4 {
  uint8_t x, y, z, w;
};
struct PqEmuDim {
  unsigned x;
};

inline thread_local PqEmuDim blockIdx, threadIdx;
inline PqEmuDim blockDim = {256};

#define __global__
#define __device__
#define __forceinline__ inline

/* byte n of the result is byte (s >> 4n) & 7 of the eight bytes y:x (x the low four) */
static inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
  const uint64_t bytes = ((uint64_t)y << 32) | x;
  uint32_t r = 0;
  for (int n = 0; n < 4; n++) r |= (uint32_t)((bytes >> (((s >> (4 * n)) & 7u) * 8)) & 0xffu) << (8 * n);
  return r;
}
static inline float __uint_as_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
template <class T> static inline T __ldg(const T *p) { return *p; }
template <class T> static inline T __ldcs(const T *p) { return *p; }

struct PqEmuWarp {
  std::barrier<> meet{32};
  float slot[32];
};
inline thread_local PqEmuWarp *pq_emu_warp;

static inline float pq_emu_exchange(float v, int from) {
  const int lane = (int)(threadIdx.x % 32);
  pq_emu_warp->slot[lane] = v;
  pq_emu_warp->meet.arrive_and_wait();
  const float r = pq_emu_warp->slot[from];
  pq_emu_warp->meet.arrive_and_wait();
  return r;
}
static inline float __shfl_xor_sync(unsigned, float v, int mask) { return pq_emu_exchange(v, (int)(threadIdx.x % 32) ^ mask); }
static inline float __shfl_down_sync(unsigned, float v, int delta) {
  const int lane = (int)(threadIdx.x % 32);
  return pq_emu_exchange(v, lane + delta < 32 ? lane + delta : lane);
}

/* Runs `body` as a grid of `blocks` blocks of blockDim.x threads (a multiple of 32). The kernels leave
 * early only a whole warp at a time, so every lane of a warp reaches each shuffle. */
static inline void pq_emulate_launch(unsigned blocks, const std::function<void()> &body) {
  for (unsigned b = 0; b < blocks; b++)
    for (unsigned w = 0; w < blockDim.x / 32; w++) {
      PqEmuWarp warp;
      std::vector<std::thread> lanes;
      for (unsigned l = 0; l < 32; l++)
        lanes.emplace_back([&, l] {
          blockIdx.x = b;
          threadIdx.x = w * 32 + l;
          pq_emu_warp = &warp;
          body();
        });
      for (std::thread &t : lanes) t.join();
    }
}
