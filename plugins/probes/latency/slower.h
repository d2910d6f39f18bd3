/* slower.h — the latency probe's rule for calling a method slower than its baseline beyond noise, apart so
 * that tests/cpu.c can check it on given figures (a timed test could not: these machines are shared). */
#pragma once

/* How far above the baseline's median a method's must be, besides above the baseline's 90th percentile. Two
 * prepared copies of one model differed by up to 3% at batch 1 on an H200 (2026-11-29), each with a spread
 * under 1%: the percentile alone called the baseline slower than itself. */
#define PQ_LATENCY_SLOWER_MARGIN 0.05

/* 1 where a method of median p50 is slower than a baseline of median base_p50 and 90th percentile base_p90 */
static inline int pq_latency_slower(double p50, double base_p50, double base_p90) {
  return p50 > base_p90 && p50 > (1 + PQ_LATENCY_SLOWER_MARGIN) * base_p50;
}
