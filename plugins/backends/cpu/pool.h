/* pool.h — the CPU backend's worker threads, for every kernel it runs in parallel: its own (packed and CSR
 * weights, depthwise convs) and the float GEMMs, which gemm.h splits over the pool while OpenBLAS is held to
 * one thread for the run. One pool a thread count is shared by every backend in the process (refcounted), so
 * two prepared models run one after the other (a method and its baseline, alternated by the latency probe)
 * do not leave threads spinning on the cores the other needs, as OpenBLAS's own workers did beside the pool.
 *
 * A job is split into parts, claimed one at a time by whichever thread comes first, the caller included: a
 * worker the scheduler has not run yet delays nothing, the caller takes its part. Between jobs a worker spins
 * (with pause) for up to POOL_SPIN_US before it sleeps on a condition variable: waking a sleeping thread
 * costs tens of µs on the virtual machines measured, more than a small layer takes, while the layers of one
 * run follow each other within µs. A pool made before a fork() is not used in the child (its threads are not
 * there): the work then runs on the calling thread alone, as it does when another thread is running a job on
 * the same pool. */
#ifndef PQ_CPU_POOL_H
#define PQ_CPU_POOL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 64
#define POOL_SPIN_US 200

typedef void (*PoolFn)(void *ctx, int part, int parts);

typedef struct Pool Pool;

struct Pool {
  int n;        /* threads taking part, the caller included */
  int refs;     /* backends holding it (under pools_mu) */
  unsigned forks; /* pool_forks when it was made: a fork() since means its threads are not in this process */
  pthread_t th[POOL_MAX];
  pthread_mutex_t mu; /* with `go`: for sleeping workers only */
  pthread_cond_t go;
  /* the job: generation (bits 32–63), parts (16–31), next part to claim (0–15). A part is claimed by raising
   * `next` in the same word as the generation, so no thread claims a part of a job it has not seen. */
  _Alignas(64) _Atomic uint64_t job;
  _Alignas(64) atomic_int done; /* parts finished (a line of its own: the caller's count does not move the job's) */
  _Alignas(64) atomic_int stop;
  atomic_flag busy; /* a caller is running a job */
  PoolFn fn;        /* written before the job word is published, read after a part of it is claimed */
  void *ctx;
};

#define POOL_GEN(v) ((uint32_t)((v) >> 32))
#define POOL_PARTS(v) ((int)(((v) >> 16) & 0xffff))
#define POOL_NEXT(v) ((int)((v)&0xffff))

/* fork()s this process has made so far, counted in the child (getpid() is a system call: asked on every
 * GEMM, it cost 0.4 µs a run of a five-layer model). */
static atomic_uint pool_forks;
static void pool_count_fork(void) { atomic_fetch_add(&pool_forks, 1); }
static pthread_once_t pool_fork_once = PTHREAD_ONCE_INIT;
static void pool_watch_forks(void) { pthread_atfork(NULL, NULL, pool_count_fork); }

static inline void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static double pool_now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Claim and run parts of job `gen` until none is left. fn and ctx cannot change under a claimed part: the
 * caller posts no new job before every part of this one is done. */
static void pool_claim(Pool *p, uint32_t gen) {
  uint64_t v = atomic_load_explicit(&p->job, memory_order_acquire);
  while (POOL_GEN(v) == gen && POOL_NEXT(v) < POOL_PARTS(v)) {
    if (!atomic_compare_exchange_weak_explicit(&p->job, &v, v + 1, memory_order_acq_rel, memory_order_acquire)) continue;
    p->fn(p->ctx, POOL_NEXT(v), POOL_PARTS(v));
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    v = atomic_load_explicit(&p->job, memory_order_acquire);
  }
}

static void *pool_main(void *arg) {
  Pool *p = arg;
  uint32_t seen = 0; /* the generation the pool was made with: a job posted before this thread ran is still new to it */
  for (;;) {
    double t0 = pool_now_us();
    for (int i = 1; POOL_GEN(atomic_load_explicit(&p->job, memory_order_acquire)) == seen && !atomic_load(&p->stop); i++) {
      pool_pause();
      if (i % 64 == 0) sched_yield();
      if (i % 64 == 0 && pool_now_us() - t0 > POOL_SPIN_US) { /* long idle: sleep */
        pthread_mutex_lock(&p->mu);
        while (POOL_GEN(atomic_load(&p->job)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->go, &p->mu);
        pthread_mutex_unlock(&p->mu);
      }
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = POOL_GEN(atomic_load_explicit(&p->job, memory_order_acquire));
    pool_claim(p, seen);
  }
}

static void pool_free(Pool *p) {
  if (!p) return;
  if (p->forks != atomic_load(&pool_forks)) { /* a forked child's copy: its threads were never here, nothing to stop or join */
    free(p);
    return;
  }
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->go);
  free(p);
}

/* A pool of n threads (the caller and n − 1 workers); NULL for n < 2 or when the threads cannot be made. */
static Pool *pool_new(int n) {
  if (n < 2) return NULL;
  if (n > POOL_MAX) n = POOL_MAX;
  Pool *p = calloc(1, sizeof(Pool));
  if (!p) return NULL;
  pthread_once(&pool_fork_once, pool_watch_forks);
  p->forks = atomic_load(&pool_forks);
  atomic_flag_clear(&p->busy);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  p->n = 1;
  for (int i = 1; i < n; i++) {
    if (pthread_create(&p->th[i], NULL, pool_main, p) != 0) break;
    p->n = i + 1;
  }
  if (p->n < 2) {
    pool_free(p);
    return NULL;
  }
  return p;
}

static int pool_size(const Pool *p) { return p && p->forks == atomic_load_explicit(&pool_forks, memory_order_relaxed) ? p->n : 1; }

/* fn(ctx, part, parts) for part = 0 … parts − 1 (parts capped at the pool's size); returns when every part is
 * done. A part's index, not the thread that runs it, names its scratch space. */
static void pool_run(Pool *p, int parts, PoolFn fn, void *ctx) {
  if (parts > pool_size(p)) parts = pool_size(p);
  if (parts <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  if (atomic_flag_test_and_set_explicit(&p->busy, memory_order_acquire)) { /* another thread's job is running */
    for (int i = 0; i < parts; i++) fn(ctx, i, parts);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  uint32_t gen = POOL_GEN(atomic_load_explicit(&p->job, memory_order_relaxed)) + 1;
  pthread_mutex_lock(&p->mu); /* (under the lock: a worker deciding to sleep either sees the new job or is woken) */
  atomic_store_explicit(&p->job, (uint64_t)gen << 32 | (uint64_t)parts << 16 | 1, memory_order_release); /* part 0: the caller's */
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(ctx, 0, parts);
  atomic_fetch_add_explicit(&p->done, 1, memory_order_relaxed);
  pool_claim(p, gen);
  for (int i = 1; atomic_load_explicit(&p->done, memory_order_acquire) < parts; i++) {
    pool_pause();
    if (i % 1024 == 0) sched_yield();
  }
  atomic_flag_clear_explicit(&p->busy, memory_order_release);
}

/* The process's pool of n threads, shared by every backend that asks for n until the last pool_release();
 * NULL for n < 2 or when the threads cannot be made. */
static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static Pool *pools[8];

static Pool *pool_acquire(int n) {
  if (n < 2) return NULL;
  if (n > POOL_MAX) n = POOL_MAX;
  pthread_mutex_lock(&pools_mu);
  Pool *p = NULL;
  size_t slot = sizeof pools / sizeof pools[0];
  for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
    if (pools[i] && pools[i]->forks != atomic_load(&pool_forks)) pools[i] = NULL; /* a parent's, copied by fork(): not to be used */
    if (pools[i] && pools[i]->n == n && !p) p = pools[i];
    if (!pools[i] && slot == sizeof pools / sizeof pools[0]) slot = i;
  }
  if (!p && (p = pool_new(n)) && slot < sizeof pools / sizeof pools[0]) pools[slot] = p;
  if (p) p->refs++;
  pthread_mutex_unlock(&pools_mu);
  return p;
}

static void pool_release(Pool *p) {
  if (!p) return;
  pthread_mutex_lock(&pools_mu);
  int last = --p->refs == 0;
  if (last)
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++)
      if (pools[i] == p) pools[i] = NULL;
  pthread_mutex_unlock(&pools_mu);
  if (last) pool_free(p);
}

#endif
