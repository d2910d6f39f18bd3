/* cpu-features.h — which of the CPU backend's kernel sets this CPU can run: the one test of it, for the backend
 * (which picks its kernels by it) and for bench/bench-compressed (which judges each set by its own target). */
#ifndef PQ_CPU_FEATURES_H
#define PQ_CPU_FEATURES_H

/* AVX-512 with VNNI: the widest kernels ("auto" on such a CPU). */
static inline int pq_cpu_has_vnni(void) {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return 0;
#endif
}

/* AVX2: the kernels "auto" runs on an x86-64 CPU without VNNI, and "avx2" asks for. */
static inline int pq_cpu_has_avx2(void) {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2");
#else
  return 0;
#endif
}

#endif
