/*
 * The threads of one engine call: OpenMP's limits, the barrier at which a parallel time loop's
 * threads meet, and the LSTM_FAST_SPLIT override of how they share the loop.
 */
#ifndef LSTM_FAST_TEAM_H
#define LSTM_FAST_TEAM_H

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
static int lstm_max_threads(void) { return omp_get_max_threads(); }
static int lstm_team_size(void) { return omp_get_num_threads(); }
#else
static int lstm_max_threads(void) { return 1; }
static int lstm_team_size(void) { return 1; }
#endif

/* Where the threads of one parallel time loop meet after each product and pass (zeroed
 * before the region). Not OpenMP's barrier: libgomp's waiters spin only briefly, then sleep
 * in the kernel, whenever it manages more threads than there are CPUs, which is the case as
 * soon as a second OS thread (a thread pool, a web server's workers) keeps a team of its own:
 * a step's two or three barriers then cost a futex wake each, and row 4 of the grid took
 * 21 ms on 2 threads instead of 11 (as long as on 1). Here a waiter spins, and yields its
 * core now and then in case the thread it waits for needs it. */
typedef struct {
    int arrived, generation;
    char alone[56];  /* a line of its own: nothing the threads write may share it */
} __attribute__((aligned(64))) lstm_team_barrier;

static __attribute__((noinline)) void lstm_barrier_wait(lstm_team_barrier *team, int parts)
{
    int generation = __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&team->arrived, 1, __ATOMIC_ACQ_REL) == parts) {
        /* the last to arrive resets the count, then lets the others go */
        __atomic_store_n(&team->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&team->generation, generation + 1, __ATOMIC_RELEASE);
        return;
    }
    for (unsigned spins = 1;
         __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE) == generation; spins++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if (spins % 4096 == 0)
            sched_yield();
    }
}

/* A team of one does not wait: the time loops stay free of a call at every barrier. */
static inline void lstm_barrier(lstm_team_barrier *team, int parts)
{
    if (parts > 1)
        lstm_barrier_wait(team, parts);
}

/* LSTM_FAST_SPLIT=rows or =columns in the environment (read once) forces how threads share a
 * time loop, for tests and measurements: 1 rows, 0 columns, -1 chosen by size. */
static int lstm_split_override(void)
{
    static int split = -2;
    if (split == -2) {
        const char *want = getenv("LSTM_FAST_SPLIT");
        split = want == NULL ? -1 : strcmp(want, "rows") == 0 ? 1
                : strcmp(want, "columns") == 0 ? 0 : -1;
    }
    return split;
}

#endif /* LSTM_FAST_TEAM_H */
