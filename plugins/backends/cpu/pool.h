/* pool.h — the CPU backend's own worker threads, for its kernels that OpenBLAS does not run (packed and
 * CSR weights, depthwise convs): made at prepare, each run split into parts of which the calling thread takes the first.
 * Between jobs a worker spins (with pause) for up to POOL_SPIN_US before it sleeps on a condition variable:
 * waking a sleeping thread costs tens of µs on the virtual machines measured, more than a small layer
 * takes, while the layers of one run follow each other within µs. A pool made before a fork() is not used
 * in the child (its threads are not there): the work then runs on the calling thread alone. */
#ifndef PQ_CPU_POOL_H
#define PQ_CPU_POOL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 64
#define POOL_SPIN_US 200

typedef void (*PoolFn)(void *ctx, int part, int parts);

typedef struct Pool Pool;
typedef struct {
  Pool *pool;
  int index;
} PoolWorker;

struct Pool {
  int n;                   /* threads taking part, the caller included */
  pid_t pid;               /* the process that made it */
  pthread_t th[POOL_MAX];
  PoolWorker w[POOL_MAX];
  pthread_mutex_t mu;      /* with `go`: for sleeping workers only */
  pthread_cond_t go;
  atomic_ulong gen;        /* one more a job */
  atomic_int pending;      /* workers yet to finish the current job */
  atomic_int stop;
  int parts;               /* the job: written before gen is raised, read after it is seen */
  PoolFn fn;
  void *ctx;
};

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

static void *pool_main(void *arg) {
  PoolWorker *w = arg;
  Pool *p = w->pool;
  unsigned long seen = 0; /* the generation the pool was made with: a job posted before this thread ran is still new to it */
  for (;;) {
    double t0 = pool_now_us();
    for (int i = 1; atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !atomic_load(&p->stop); i++) {
      pool_pause();
      if (i % 64 == 0) sched_yield(); /* (OpenBLAS's threads, spinning as well, get the core when they have work) */
      if (i % 64 == 0 && pool_now_us() - t0 > POOL_SPIN_US) { /* long idle: sleep */
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->go, &p->mu);
        pthread_mutex_unlock(&p->mu);
      }
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (w->index < p->parts) p->fn(p->ctx, w->index, p->parts);
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
  }
}

static void pool_free(Pool *p) {
  if (!p) return;
  if (p->pid != getpid()) { /* a forked child's copy: its threads were never here, nothing to stop or join */
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
  p->pid = getpid();
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  p->n = 1;
  for (int i = 1; i < n; i++) {
    p->w[i].pool = p;
    p->w[i].index = i;
    if (pthread_create(&p->th[i], NULL, pool_main, &p->w[i]) != 0) break;
    p->n = i + 1;
  }
  if (p->n < 2) {
    pool_free(p);
    return NULL;
  }
  return p;
}

static int pool_size(const Pool *p) { return p && p->pid == getpid() ? p->n : 1; }

/* fn(ctx, part, parts) for part = 0 … parts − 1 (parts capped at the pool's size), part 0 on the caller;
 * returns when every part is done. */
static void pool_run(Pool *p, int parts, PoolFn fn, void *ctx) {
  if (parts > pool_size(p)) parts = pool_size(p);
  if (parts <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->parts = parts;
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  pthread_mutex_lock(&p->mu); /* (under the lock: a worker deciding to sleep either sees the new job or is woken) */
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  fn(ctx, 0, parts);
  for (int i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
    pool_pause();
    if (i % 1024 == 0) sched_yield();
  }
}

#endif
